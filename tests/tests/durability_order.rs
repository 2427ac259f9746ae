//! D3 and C7 of SECURITY.md through the real libpam, by fsync accounting: this kernel
//! has no device-mapper, so dm-flakey cannot cut the power; instead strace records every
//! open, write, `fallocate`, fsync, rename and `flock` of a real login (`-y` names each
//! descriptor's file) and the tests check the order the module's durability rests on.
//!
//! - A scratch code in home mode: the state record's `pwrite64` is `fdatasync`ed before
//!   the secret file's rewrite starts and before `pam_authenticate` returns (pam-drive
//!   prints its result only after); the rewrite writes a temp file, fsyncs it and only
//!   then renames it over the secret file, which then lacks the code. No directory
//!   fsync follows that rename (the store, not the file, is the authority): with the old
//!   file put back, as a power loss may leave it, the code is still refused.
//! - A fresh state directory: the store key is fsynced under a temporary name, renamed (or linked),
//!   and the directory fsynced; a user's first record is created unnamed (`O_TMPFILE`),
//!   allocated, then linked under its name, and the directory fsynced before anything
//!   is written into it (no login ever opens a record that is not complete, R16).
//! - A second login finding that new record before the creator's directory fsync (the
//!   creator held there) waits for the creator's lock, taken before the link and kept
//!   until after the fsync, and only then writes and syncs its mark (R12, R15).
//! - An accepted TOTP code with the boot time known is a lazy write: a `pwrite64` and
//!   no fsync of the record (the boot floor covers a lost write, R34).
//! - C7: `flock` failing with `ENOLCK` (NFS without a lock daemon), on the secret file
//!   or on the state record, denies the login and the log names the lock; the same
//!   logins without the injection succeed.
//!
//! Each order check is also run against the same trace with the order reversed and must
//! fail there, so none of them passes by finding nothing.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use system_tests::*;

/// A scratch code in the secret files these tests write.
const SCRATCH: &str = "48151623";

/// The system calls the module's writes use (`write_all_at` is `pwrite64`,
/// `sync_data` is `fdatasync`, `posix_fallocate` is `fallocate`); `write` also shows
/// pam-drive printing its result.
const TRACED: &str = "trace=openat,openat2,write,pwrite64,fsync,fdatasync,\
                      rename,renameat,renameat2,link,linkat,unlink,unlinkat,fallocate,flock";

/// One completed system call from strace's trace.
#[derive(Clone, Debug)]
struct Call {
    pid: u32,
    name: String,
    /// The arguments as strace printed them (with `-y`, descriptors as `N</path>`).
    args: String,
    /// The return value as printed: `0`, `N</path>`, `-1 ENOLCK (...)`.
    ret: String,
}

impl Call {
    fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.name.as_str())
    }

    /// The path of the first descriptor argument (`-y`).
    fn fd_path(&self) -> Option<&str> {
        fd_path(self.args.split(", ").next()?)
    }

    /// The path of the descriptor returned (`openat`).
    fn ret_path(&self) -> Option<&str> {
        fd_path(&self.ret)
    }

    fn ok(&self) -> bool {
        !self.ret.starts_with('-') && !self.ret.starts_with('?')
    }
}

/// `N</path>` → `/path`; `N</path>(deleted)` (a file without a name) → `/path`.
fn fd_path(s: &str) -> Option<&str> {
    let s = s.trim();
    let s = s.strip_suffix("(deleted)").unwrap_or(s);
    let open = s.find('<')?;
    s[..open].parse::<u32>().ok()?;
    s[open + 1..].strip_suffix('>')
}

/// strace `-f` output to completed calls in the order they completed; an
/// `<unfinished ...>` call is joined with its `<... resumed>` line of the same pid and
/// placed where it resumed; signal, exit and unparsable lines are skipped.
fn parse_trace(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<u32, (String, String)> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let line = line.trim_end();
        let (pid, rest) = match line.split_once(' ') {
            Some((p, r)) if p.bytes().all(|b| b.is_ascii_digit()) => {
                (p.parse().unwrap_or(0), r.trim_start())
            }
            _ => (0, line),
        };
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        let (name, text) = if let Some(r) = rest.strip_prefix("<... ") {
            let Some((name, after)) = r.split_once(" resumed>") else {
                continue;
            };
            let Some((_, start)) = pending.remove(&pid) else {
                continue;
            };
            (name.to_string(), format!("{start}{after}"))
        } else {
            let Some((name, args)) = rest.split_once('(') else {
                continue;
            };
            if let Some(start) = args.strip_suffix(" <unfinished ...>") {
                pending.insert(pid, (name.to_string(), start.to_string()));
                continue;
            }
            (name.to_string(), args.to_string())
        };
        let Some((args, ret)) = text.rsplit_once(") = ") else {
            continue;
        };
        calls.push(Call {
            pid,
            name,
            args: args.to_string(),
            ret: ret.trim().to_string(),
        });
    }
    calls
}

/// A named test on one call.
struct Step<'a> {
    what: String,
    test: Box<dyn Fn(&Call) -> bool + 'a>,
}

fn step<'a>(what: impl Into<String>, test: impl Fn(&Call) -> bool + 'a) -> Step<'a> {
    Step {
        what: what.into(),
        test: Box::new(test),
    }
}

/// The index of each step's first call, each after the previous step's; the first step
/// not found (after its predecessor) is the error.
fn in_order(calls: &[Call], steps: &[Step<'_>]) -> Result<Vec<usize>, String> {
    let mut from = 0;
    let mut found = Vec::new();
    for s in steps {
        let Some(i) = calls[from..].iter().position(|c| (s.test)(c)) else {
            return Err(format!(
                "no {} after call {from} (after {:?})",
                s.what,
                found.last().map(|&i: &usize| &calls[i])
            ));
        };
        found.push(from + i);
        from += i + 1;
    }
    Ok(found)
}

/// Asserts `steps` happen in that order in `calls`, and that the reversed order does
/// not: the check can fail on this very trace.
fn assert_order(label: &str, calls: &[Call], trace: &str, mut steps: Vec<Step<'_>>) {
    if let Err(e) = in_order(calls, &steps) {
        panic!("{label}: {e}\n{trace}");
    }
    steps.reverse();
    assert!(
        in_order(calls, &steps).is_err(),
        "{label}: the reversed order was found too; the check proves nothing\n{trace}"
    );
}

struct Run {
    drive: Drive,
    syslog: Vec<String>,
    trace: String,
    calls: Vec<Call>,
}

/// `driver` under strace (`strace_args` before the command), with the syslog captured.
fn traced(driver: &Driver, strace_args: &[&str]) -> Run {
    let out = tempfile::NamedTempFile::new().expect("trace file");
    let cmd = driver.command();
    let mut strace = Command::new("strace");
    strace
        // -s 0: the trace never shows the bytes written (the secret); paths still print.
        .args(["-f", "-qq", "-y", "-s", "0"])
        .args(strace_args)
        .arg("-o")
        .arg(out.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let (output, syslog) = with_syslog_capture(&strace);
    let trace = fs::read_to_string(out.path()).unwrap_or_default();
    Run {
        drive: Drive::parse(&output),
        syslog,
        calls: parse_trace(&trace),
        trace,
    }
}

fn traced_all(driver: &Driver) -> Run {
    traced(driver, &["-e", TRACED])
}

/// The login's `flock` on `what` was answered with an injected ENOLCK, the login was
/// denied, and the log names the lock failure.
fn assert_denied_for_enolck(run: &Run, what: &str) {
    assert!(
        run.calls
            .iter()
            .any(|c| c.is(&["flock"]) && c.ret.contains("ENOLCK") && c.ret.contains("INJECTED")),
        "{what}'s flock was answered with ENOLCK\n{}",
        run.trace
    );
    assert!(
        matches!(run.drive.returned(), Returned::Failed(_)),
        "no lock on {what} and still not denied: {:?} {:?}",
        run.drive,
        run.syslog
    );
    assert!(
        names_enolck(&run.syslog),
        "the log names the lock failure: {:?}",
        run.syslog
    );
}

fn path_is(c: &Call, p: &Path) -> bool {
    c.fd_path().is_some_and(|f| Path::new(f) == p)
}

fn is_temp_of(path: &str, target: &Path) -> bool {
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let p = Path::new(path);
    p.parent() == target.parent()
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!(".{name}.tmp-")))
}

/// The index of pam-drive's first write to its stdout: after `pam_authenticate` returned.
fn first_result_write(calls: &[Call]) -> Option<usize> {
    calls
        .iter()
        .position(|c| c.is(&["write"]) && c.args.starts_with("1<pipe:"))
}

/// The steps for "the record at `record` is written, then synced with `fsync` or
/// `fdatasync`".
fn durable_record_write<'a>(record: &'a Path) -> Vec<Step<'a>> {
    vec![
        step("pwrite64 of the state record", move |c| {
            c.is(&["pwrite64"]) && path_is(c, record) && c.ok()
        }),
        step("fdatasync/fsync of the state record", move |c| {
            c.is(&["fdatasync", "fsync"]) && path_is(c, record) && c.ok()
        }),
    ]
}

/// D3 (a) and (c): a scratch code in home mode. The record's durable write (pwrite64,
/// fdatasync) comes before the secret file's rewrite and before pam-drive prints the
/// result; the rewrite writes the temp file, fsyncs it, then renames it over the secret
/// file, which has lost the code; with the old file put back (no directory fsync
/// follows the rename) the durable record still refuses the code.
#[test]
fn a_scratch_code_is_durable_before_the_verdict_and_the_rewrite_is_synced_before_its_rename() {
    let t =
        "a_scratch_code_is_durable_before_the_verdict_and_the_rewrite_is_synced_before_its_rename";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let u = TestUser::create("du");
    let secret = random_secret_b32();
    let path = u.write_secret(&format!("{}{SCRATCH}\n", totp_file(&secret)), 0o600);
    let stack = Stack::probe("svc", "");
    let record = stack.state_file(u.uid);

    // The record exists first, so that this run shows the write and not the creation.
    let first = Driver::login(&stack, &u, &code_at(&secret, now())).run();
    assert_eq!(first.returned(), Returned::Success, "{first:?}");
    assert!(record.exists(), "the first login created the record");

    let before = fs::read(&path).expect("the secret file");
    let run = traced_all(&Driver::login(&stack, &u, SCRATCH));
    assert_eq!(
        run.drive.returned(),
        Returned::Success,
        "the scratch code: {:?} {:?}",
        run.drive,
        run.syslog
    );
    let after = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        !after.contains(SCRATCH) && after.contains(&secret),
        "the secret file was rewritten without the scratch code: {after:?}"
    );

    let calls = &run.calls;
    let trace = &run.trace;
    let temp_of = |c: &Call, p: &Path| c.fd_path().is_some_and(|f| is_temp_of(f, p));
    let mut steps = durable_record_write(&record);
    steps.extend([
        step("the temp file's O_EXCL create", |c: &Call| {
            c.is(&["openat", "openat2"])
                && c.args.contains("O_EXCL")
                && c.ret_path().is_some_and(|f| is_temp_of(f, &path))
        }),
        step("a write of the temp file", |c: &Call| {
            c.is(&["write"]) && temp_of(c, &path) && c.ok()
        }),
        step("fsync of the temp file", |c: &Call| {
            c.is(&["fsync", "fdatasync"]) && temp_of(c, &path) && c.ok()
        }),
        step("the rename over the secret file", |c: &Call| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("/");
            c.is(&["rename", "renameat", "renameat2"])
                && c.args.contains(".tmp-")
                && c.args.ends_with(&format!("\"{name}\""))
                && c.ok()
        }),
    ]);
    assert_order("scratch code", calls, trace, steps);

    // (c) The durable write precedes pam_authenticate's return.
    let synced = in_order(calls, &durable_record_write(&record))
        .unwrap_or_else(|e| panic!("{e}\n{trace}"))[1];
    let printed = first_result_write(calls)
        .unwrap_or_else(|| panic!("pam-drive's result write is not in the trace\n{trace}"));
    assert!(
        synced < printed,
        "the record was synced (call {synced}) before pam-drive printed the result \
         (call {printed})\n{trace}"
    );
    // The rewrite, too, is complete before the verdict reaches the host.
    let renamed = calls
        .iter()
        .position(|c| c.is(&["rename", "renameat", "renameat2"]) && c.args.contains(".tmp-"))
        .unwrap_or(usize::MAX);
    assert!(
        renamed < printed,
        "the rename came before the result\n{trace}"
    );

    // The rename is not followed by a directory fsync (`replace_unsynced`: the store is
    // the authority), so a power loss may bring the old file back. The durable record
    // is what refuses the code then: with the old file restored, the code is refused.
    assert!(
        !calls[renamed..]
            .iter()
            .any(|c| c.is(&["fsync"]) && path_is(c, path.parent().unwrap_or(&path))),
        "a directory fsync after the rename: the design note below is out of date\n{trace}"
    );
    fs::write(&path, &before).expect("restore the old secret file");
    let again = Driver::login(&stack, &u, SCRATCH).run();
    assert!(
        matches!(again.returned(), Returned::Failed(_)),
        "the old file back, the used scratch code was accepted again: {again:?}"
    );
}

/// D3 (b): a fresh state directory's first login. The store key is written under a
/// temporary name, fsynced, linked into place, and the directory fsynced; the user's
/// record is created without a name (`O_TMPFILE`), allocated (`fallocate`), linked
/// under its name, and the directory fsynced before the first `pwrite64` into it.
#[test]
fn a_new_record_is_allocated_and_its_directory_synced_before_the_first_write() {
    let t = "a_new_record_is_allocated_and_its_directory_synced_before_the_first_write";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dn");
    let stack = Stack::probe("svc", "");
    let record = stack.state_file(u.uid);
    let dir = stack.state_dir();
    assert!(!dir.exists(), "the state directory is new");

    let run = traced_all(&Driver::login(&stack, &u, &code_at(&secret, now())));
    assert_eq!(
        run.drive.returned(),
        Returned::Success,
        "{:?} {:?}",
        run.drive,
        run.syslog
    );
    assert!(record.exists(), "the login created the record");
    let calls = &run.calls;
    let trace = &run.trace;
    let dir_synced = |c: &Call| c.is(&["fsync"]) && path_is(c, &dir) && c.ok();
    let key = dir.join("store.key");
    let key_temp = |c: &Call| {
        c.fd_path()
            .is_some_and(|f| f.starts_with(&format!("{}/", dir.display())) && f.contains("key"))
            && c.fd_path().is_some_and(|f| Path::new(f) != key)
    };

    assert_order(
        "the store key",
        calls,
        trace,
        vec![
            step("a write of the key's temp file", |c: &Call| {
                c.is(&["write"]) && key_temp(c) && c.ok()
            }),
            step("fsync of the key's temp file", |c: &Call| {
                c.is(&["fsync", "fdatasync"]) && key_temp(c) && c.ok()
            }),
            step("the link to store.key", |c: &Call| {
                c.is(&["link", "linkat", "rename", "renameat", "renameat2"])
                    && c.args.contains("\"store.key\"")
                    && c.ok()
            }),
            step("fsync of the state directory", dir_synced),
        ],
    );

    let uid = u.uid.to_string();
    // strace -y names the unnamed file `DIR/#INODE` (followed by "(deleted)").
    let unnamed = |f: &str| f.starts_with(&format!("{}/#", dir.display()));
    let allocated = |c: &Call| c.is(&["fallocate"]) && c.fd_path().is_some_and(unnamed);
    assert_order(
        "the new record",
        calls,
        trace,
        vec![
            step("the record's unnamed create", |c: &Call| {
                c.is(&["openat", "openat2"])
                    && c.args.contains("O_TMPFILE")
                    && c.ret_path().is_some_and(unnamed)
            }),
            step("fallocate of the unnamed record", |c: &Call| {
                allocated(c) && c.ok()
            }),
            step("the link of the record under its name", |c: &Call| {
                c.is(&["linkat", "link"]) && c.args.contains(&format!("\"{uid}\"")) && c.ok()
            }),
            step("fsync of the state directory", dir_synced),
            step("the first pwrite64 of the record", |c: &Call| {
                c.is(&["pwrite64"]) && path_is(c, &record)
            }),
        ],
    );
    // No write of the record may come before the directory is synced, and nothing in
    // the creation removes a name.
    assert!(
        !calls
            .iter()
            .any(|c| c.is(&["unlink", "unlinkat"]) && c.args.contains(&format!("\"{uid}\""))),
        "a record's name was removed\n{trace}"
    );
    let first_sync = in_order(calls, &[step("fallocate", allocated)])
        .and_then(|f| {
            calls[f[0]..]
                .iter()
                .position(dir_synced)
                .map(|i| f[0] + i)
                .ok_or_else(|| "no directory fsync after the fallocate".to_string())
        })
        .unwrap_or_else(|e| panic!("{e}\n{trace}"));
    assert!(
        !calls[..first_sync]
            .iter()
            .any(|c| c.is(&["pwrite64", "write"]) && path_is(c, &record)),
        "the record was written before its directory entry was durable\n{trace}"
    );
}

/// D3 (d): an accepted TOTP code with the boot time known is written lazily: one
/// `pwrite64` of the record and no fsync of it (every step up to the boot counts as used,
/// so a write lost in a power loss cannot re-admit the code; R34). The control, in the
/// same test: a scratch code's record write is synced, so the check sees syncs.
#[test]
fn an_accepted_totp_code_is_a_lazy_write_without_fsync() {
    let t = "an_accepted_totp_code_is_a_lazy_write_without_fsync";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let u = TestUser::create("dl");
    let secret = random_secret_b32();
    u.write_secret(&format!("{}{SCRATCH}\n", totp_file(&secret)), 0o600);
    let stack = Stack::probe("svc", "");
    let record = stack.state_file(u.uid);
    let first = Driver::login(&stack, &u, &code_at(&secret, now())).run();
    assert_eq!(first.returned(), Returned::Success, "{first:?}");

    // The next step's code: the first login used this one.
    let run = traced_all(&Driver::login(&stack, &u, &code_at(&secret, now() + 30)));
    assert_eq!(
        run.drive.returned(),
        Returned::Success,
        "{:?} {:?}",
        run.drive,
        run.syslog
    );
    let writes = |r: &Run| {
        r.calls
            .iter()
            .filter(|c| c.is(&["pwrite64"]) && path_is(c, &record) && c.ok())
            .count()
    };
    let syncs = |r: &Run| {
        r.calls
            .iter()
            .filter(|c| c.is(&["fsync", "fdatasync"]) && path_is(c, &record))
            .count()
    };
    assert_eq!(writes(&run), 1, "one pwrite64 of the record\n{}", run.trace);
    assert_eq!(
        syncs(&run),
        0,
        "an accepted TOTP code synced the record\n{}",
        run.trace
    );

    let control = traced_all(&Driver::login(&stack, &u, SCRATCH));
    assert_eq!(
        control.drive.returned(),
        Returned::Success,
        "{control:?}",
        control = control.drive
    );
    assert!(
        writes(&control) >= 1 && syncs(&control) >= 1,
        "control: a scratch code's record write is synced and seen\n{}",
        control.trace
    );
}

/// True when a syslog line names the lock failure: `flock`/lock and the errno's text.
fn names_enolck(syslog: &[String]) -> bool {
    syslog.iter().any(|l| {
        let m = syslog_message(l).to_lowercase();
        m.contains("lock") && m.contains("no locks available") || m.contains("enolck")
    })
}

/// C7: `flock` answered with `ENOLCK` (an NFS mount without a lock daemon) on the secret
/// file (taken for a scratch code) denies the login, the scratch code stays unused, and
/// the log names the lock failure; the same login without the injection succeeds.
#[test]
fn enolck_on_the_secret_file_lock_denies() {
    let t = "enolck_on_the_secret_file_lock_denies";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let u = TestUser::create("dk");
    let secret = random_secret_b32();
    let path = u.write_secret(&format!("{}{SCRATCH}\n", totp_file(&secret)), 0o600);
    let stack = Stack::probe("svc", "");
    let secret_path = path.to_string_lossy().into_owned();
    let inject = [
        "-P",
        &secret_path,
        "-e",
        "trace=flock",
        "-e",
        "inject=flock:error=ENOLCK",
    ];

    let run = traced(&Driver::login(&stack, &u, SCRATCH), &inject);
    assert_denied_for_enolck(&run, "the secret file");
    assert!(
        read(&path).contains(SCRATCH),
        "the denied login did not use the scratch code"
    );

    let control = traced(
        &Driver::login(&stack, &u, SCRATCH),
        &["-P", &secret_path, "-e", "trace=flock"],
    );
    assert!(
        control
            .calls
            .iter()
            .any(|c| c.is(&["flock"]) && c.ret == "0"),
        "control: the secret file is locked\n{}",
        control.trace
    );
    assert_eq!(
        control.drive.returned(),
        Returned::Success,
        "control: {:?} {:?}",
        control.drive,
        control.syslog
    );
    assert!(!read(&path).contains(SCRATCH), "control: the code was used");
}

/// C7: `flock` answered with `ENOLCK` on the user's state record denies an otherwise
/// right TOTP code, writes nothing to the record, and the log names the lock failure;
/// the control without the injection logs in.
#[test]
fn enolck_on_the_state_record_lock_denies() {
    let t = "enolck_on_the_state_record_lock_denies";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dr");
    let stack = Stack::probe("svc", "");
    let record = stack.state_file(u.uid);
    // The record must exist for -P to name it.
    let control = traced(
        &Driver::login(&stack, &u, &code_at(&secret, now())),
        &["-e", "trace=flock"],
    );
    assert_eq!(
        control.drive.returned(),
        Returned::Success,
        "control: {:?} {:?}",
        control.drive,
        control.syslog
    );
    let record_path = record.to_string_lossy().into_owned();
    assert!(
        control
            .calls
            .iter()
            .any(|c| c.is(&["flock"]) && path_is(c, &record) && c.ret == "0"),
        "control: the record is locked with flock\n{}",
        control.trace
    );
    let before = fs::read(&record).unwrap_or_default();

    // The next step's code: unused, so only the lock can refuse it.
    let run = traced(
        &Driver::login(&stack, &u, &code_at(&secret, now() + 30)),
        &[
            "-P",
            &record_path,
            "-e",
            "trace=flock",
            "-e",
            "inject=flock:error=ENOLCK",
        ],
    );
    assert_denied_for_enolck(&run, "the record");
    assert_eq!(
        fs::read(&record).unwrap_or_default(),
        before,
        "nothing was written to the record without its lock"
    );
    let after = Driver::login(&stack, &u, &code_at(&secret, now() + 30)).run();
    assert_eq!(
        after.returned(),
        Returned::Success,
        "control: the refused code was right: {after:?}"
    );
}

/// The parser joins `<unfinished ...>` calls with their resumption, keeps pids apart,
/// reads `-y` paths, and skips signal and exit lines.
#[test]
fn the_trace_parser_reads_strace_f_output() {
    let trace = "\
100 openat(3</d>, \".f.tmp-ab\", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600) = 4</d/.f.tmp-ab>
100 fsync(4</d/.f.tmp-ab> <unfinished ...>
101 write(1<pipe:[9]>, \"\"..., 7 <unfinished ...>
100 <... fsync resumed>) = 0
101 <... write resumed>) = 7
100 --- SIGCHLD {si_signo=SIGCHLD} ---
100 renameat(3</d>, \".f.tmp-ab\", 3</d>, \"f\") = 0
100 flock(5</d/f>, LOCK_EX|LOCK_NB) = -1 ENOLCK (No locks available) (INJECTED)
100 +++ exited with 0 +++
";
    let calls = parse_trace(trace);
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["openat", "fsync", "write", "renameat", "flock"]);
    assert_eq!(calls[0].ret_path(), Some("/d/.f.tmp-ab"));
    assert_eq!(calls[1].fd_path(), Some("/d/.f.tmp-ab"));
    assert_eq!(calls[2].pid, 101);
    assert_eq!(fd_path("4</d/#12>(deleted)"), Some("/d/#12"));
    assert!(!calls[4].ok() && calls[3].ok());
    assert_eq!(first_result_write(&calls), Some(2));
    let target = Path::new("/d/f");
    let order = |fsync_first: bool| {
        let fsync = step("fsync", |c: &Call| {
            c.is(&["fsync"]) && c.fd_path().is_some_and(|p| is_temp_of(p, target))
        });
        let rename = step("rename", |c: &Call| c.is(&["renameat"]));
        if fsync_first {
            in_order(&calls, &[fsync, rename])
        } else {
            in_order(&calls, &[rename, fsync])
        }
    };
    assert_eq!(order(true), Ok(vec![1, 3]));
    assert!(
        order(false).is_err(),
        "an fsync after the rename is refused"
    );
}

/// How long strace holds the creating login in its directory fsync: less than the
/// longest lock wait (`lock_timeout=5000`), so that the second login waits it out.
const HOLD_US: u64 = 3_000_000;

/// The pid of the running pam-drive logging in `name`.
fn login_pid(name: &str) -> Option<u32> {
    let driver = built().driver.to_string_lossy().into_owned();
    fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid = e.ok()?.file_name().to_str()?.parse::<u32>().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        (args.first() == Some(&driver.as_bytes())
            && args
                .windows(2)
                .any(|w| w[0] == b"--user" && w[1] == name.as_bytes()))
        .then_some(pid)
    })
}

/// Whether process `pid` sits in system call `nr` (`/proc/PID/syscall`).
fn sits_in(pid: u32, nr: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .unwrap_or_default()
        .split(' ')
        .next()
        == Some(nr.to_string().as_str())
}

/// `driver` under strace in a thread: its trace file and the thread.
fn traced_in_thread(
    driver: &Driver,
    extra: &[&str],
) -> (
    tempfile::NamedTempFile,
    std::thread::JoinHandle<std::process::Output>,
) {
    let out = tempfile::NamedTempFile::new().expect("trace file");
    let cmd = driver.command();
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-y", "-s", "0", "-e"])
        .arg(format!("{TRACED},close"))
        .args(extra)
        .arg("-o")
        .arg(out.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let run = std::thread::spawn(move || strace.output().expect("run strace"));
    (out, run)
}

/// R12, R15 and D3 (b): a login that finds a user's new record while its creator has
/// linked it but not yet synced the directory writes nothing into it until that fsync
/// is done. The creator locks the unnamed file before it links it and keeps the lock
/// until after the directory fsync; the test holds the creator (a TOTP code) on entry to
/// that fsync, runs a second login of the same user with a scratch code (a durable
/// write), and finds the second login's first `flock` of the record refused
/// (`EAGAIN`), its write and fdatasync after a later successful `flock`, and the
/// creator out of its fsync by the time the second login is done. Control: the same
/// without the hold, where the second login's first `flock` succeeds and it syncs the
/// record once and the directory never.
#[test]
fn a_login_finding_a_new_record_writes_it_only_after_the_creators_directory_fsync() {
    let t = "a_login_finding_a_new_record_writes_it_only_after_the_creators_directory_fsync";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (first, first_secret) = TestUser::enrolled("dwf");
    let stack = Stack::probe("svc", "lock_timeout=5000");
    let dir = stack.state_dir();
    // The directory and the store key exist, so that the creator's first fsync is the
    // directory's after its record's link.
    let d = Driver::login(&stack, &first, &code_at(&first_secret, now())).run();
    assert_eq!(d.returned(), Returned::Success, "{d:?}");

    // Both accounts made first: an account removed at the end of a turn would leave its
    // uid, and so its record, to the next one.
    let users =
        [("dwh", true), ("dwc", false)].map(|(tag, hold)| (tag, hold, TestUser::create(tag)));
    for (tag, hold, u) in &users {
        let (tag, hold) = (*tag, *hold);
        let secret = random_secret_b32();
        u.write_secret(&format!("{}{SCRATCH}\n", totp_file(&secret)), 0o600);
        let record = stack.state_file(u.uid);
        let uid = u.uid.to_string();
        assert!(!record.exists(), "{tag}: no record yet");

        let inject = format!("inject=fsync:delay_enter={HOLD_US}:when=1");
        let extra: Vec<&str> = if hold { vec!["-e", &inject] } else { vec![] };
        let creator = Driver::login(&stack, u, &code_at(&secret, now()));
        let (a_trace, a_run) = traced_in_thread(&creator, &extra);
        let a_done = |run: std::thread::JoinHandle<std::process::Output>| {
            let out = run.join().expect("the creator");
            assert_eq!(Drive::parse(&out).returned(), Returned::Success, "{out:?}");
        };
        let (a_pid, a_run) = if hold {
            let start = std::time::Instant::now();
            loop {
                if let Some(pid) = login_pid(&u.name).filter(|&p| sits_in(p, libc::SYS_fsync)) {
                    break (Some(pid), Some(a_run));
                }
                assert!(!a_run.is_finished(), "{tag}: the creator ended unheld");
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(60),
                    "{tag}: the creator never sat in fsync"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        } else {
            a_done(a_run);
            (None, None)
        };

        let b = traced_in_thread(&Driver::login(&stack, u, SCRATCH), &[]);
        let b_out = b.1.join().expect("the second login");
        if let (Some(pid), Some(run)) = (a_pid, a_run) {
            assert!(
                !sits_in(pid, libc::SYS_fsync),
                "{tag}: the second login was done while the creator still sat in its \
                 directory fsync"
            );
            a_done(run);
        }
        assert_eq!(
            Drive::parse(&b_out).returned(),
            Returned::Success,
            "{tag}: the scratch code: {b_out:?}"
        );
        let a_text = fs::read_to_string(a_trace.path()).unwrap_or_default();
        let b_text = fs::read_to_string(b.0.path()).unwrap_or_default();
        let (a_calls, b_calls) = (parse_trace(&a_text), parse_trace(&b_text));

        // The creator: locked before the link, unlocked (closed) after the fsync.
        let unnamed = |c: &Call| {
            c.fd_path()
                .is_some_and(|f| f.starts_with(&format!("{}/#", dir.display())))
        };
        let dir_synced = |c: &Call| c.is(&["fsync"]) && path_is(c, &dir) && c.ok();
        assert_order(
            &format!("{tag}: the creator"),
            &a_calls,
            &a_text,
            vec![
                step("flock of the unnamed record", |c: &Call| {
                    c.is(&["flock"]) && unnamed(c) && c.ok()
                }),
                step("the link under its name", |c: &Call| {
                    c.is(&["linkat", "link"]) && c.args.contains(&format!("\"{uid}\"")) && c.ok()
                }),
                step("fsync of the state directory", dir_synced),
                step("close of the unnamed record", |c: &Call| {
                    c.is(&["close"]) && unnamed(c)
                }),
            ],
        );
        if hold {
            assert!(
                a_calls
                    .iter()
                    .any(|c| dir_synced(c) && c.ret.contains("DELAYED")),
                "{tag}: the held fsync was the directory's\n{a_text}"
            );
        }

        // The second login.
        let record_flock = |c: &Call| c.is(&["flock"]) && path_is(c, &record);
        let first_flock = b_calls
            .iter()
            .find(|c| record_flock(c))
            .unwrap_or_else(|| panic!("{tag}: the second login locked the record\n{b_text}"));
        assert_eq!(
            first_flock.ret.contains("EAGAIN") || first_flock.ret.contains("EWOULDBLOCK"),
            hold,
            "{tag}: the second login's first flock of the record was refused only while \
             the creator was held\n{b_text}"
        );
        let mut steps = vec![step("a successful flock of the record", |c: &Call| {
            record_flock(c) && c.ok()
        })];
        steps.extend(durable_record_write(&record));
        assert_order(
            &format!("{tag}: the second login"),
            &b_calls,
            &b_text,
            steps,
        );
        let synced = |c: &Call| c.is(&["fsync", "fdatasync"]) && path_is(c, &record);
        assert_eq!(
            b_calls.iter().filter(|c| synced(c)).count(),
            1,
            "{tag}: the second login synced the record once\n{b_text}"
        );
        assert!(
            !b_calls.iter().any(|c| c.is(&["fsync"]) && path_is(c, &dir)),
            "{tag}: the second login synced no directory\n{b_text}"
        );
    }
}
