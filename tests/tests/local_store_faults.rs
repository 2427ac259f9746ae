//! The local state store under faults the other store tests leave out, through the real
//! libpam: a record written by another release, clocks stepped back and forth.

use std::fs;
use std::process::Command;

use sha2::{Digest, Sha256};
use system_tests::*;
use totp_os::state_dir::SLOT_LEN;

const MAGIC: &[u8; 4] = b"PTS1";
const HEADER_LEN: usize = 32;

/// Sequence number of each slot of `bytes` whose header and checksum pass, by index.
fn complete_slots(bytes: &[u8]) -> Vec<(usize, u64)> {
    (0..bytes.len() / SLOT_LEN)
        .filter_map(|i| {
            let slot = &bytes[i * SLOT_LEN..(i + 1) * SLOT_LEN];
            let seq = u64::from_le_bytes(slot[4..12].try_into().ok()?);
            let len = u32::from_le_bytes(slot[12..16].try_into().ok()?) as usize;
            let payload = slot.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
            (&slot[..4] == MAGIC && slot[16..32] == slot_digest(seq, payload)[..])
                .then_some((i, seq))
        })
        .collect()
}

fn slot_digest(seq: u64, payload: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(seq.to_le_bytes());
    h.update((payload.len() as u32).to_le_bytes());
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// `bytes` with slot `index`'s payload version byte set to `version` and its checksum
/// made to pass: a complete record as a release writing that version would leave it.
fn with_version(bytes: &[u8], index: usize, version: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let slot = &mut out[index * SLOT_LEN..(index + 1) * SLOT_LEN];
    let seq = u64::from_le_bytes(slot[4..12].try_into().expect("seq"));
    let len = u32::from_le_bytes(slot[12..16].try_into().expect("len")) as usize;
    slot[HEADER_LEN] = version;
    let d = slot_digest(seq, &slot[HEADER_LEN..HEADER_LEN + len]);
    slot[16..32].copy_from_slice(&d);
    out
}

/// A downgrade after a newer release wrote the record: its newest slot is complete but
/// of a format this release cannot read. Skipping it for the older slot read the marks
/// from before the newer release's logins, and a code used under it logged in again.
/// Now the login is denied and the log says why, and `totp-state reset` keeps the marks
/// of the newest slot it reads and counts every TOTP code up to its clock as used, so
/// the code only the newer release's slot recorded stays refused. Control: the same rewrite keeping the version byte is
/// read as before (the replay refused, the next code accepted).
#[test]
fn a_record_slot_of_a_newer_release_is_refused_not_skipped_for_an_older_one() {
    if !require_root("a_record_slot_of_a_newer_release_is_refused_not_skipped_for_an_older_one") {
        return;
    }
    let (u, secret) = TestUser::enrolled("nv");
    let stack = Stack::probe("svc", "");
    for at in [T0, T0 + 30] {
        let d = login_at(&stack, &u, &code_at(&secret, at), None, at);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    }
    let rec = stack.state_file(u.uid);
    let newest = |bytes: &[u8]| {
        let slots = complete_slots(bytes);
        assert!(slots.len() >= 2, "an older slot to fall back to: {slots:?}");
        slots.iter().max_by_key(|(_, seq)| *seq).expect("a slot").0
    };

    // Control: the rewrite with the version byte it had changes nothing.
    let good = fs::read(&rec).expect("record");
    let n = newest(&good);
    let version = good[n * SLOT_LEN + HEADER_LEN];
    assert_eq!(
        with_version(&good, n, version),
        good,
        "the rewrite is faithful"
    );
    fs::write(&rec, with_version(&good, n, version)).expect("write");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 31);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "replay refused: {d:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // The fault: the newest slot (holding the use of T0 + 60) of an unknown version.
    let good = fs::read(&rec).expect("record");
    let n = newest(&good);
    let planted = with_version(&good, n, 0x7f);
    fs::write(&rec, &planted).expect("write");
    assert!(
        complete_slots(&planted).iter().any(|(i, _)| *i == n)
            && planted[n * SLOT_LEN + HEADER_LEN] == 0x7f,
        "the planted slot passes its checksum"
    );
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 61);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "a used code again: {d:?}");
    assert!(
        lines.iter().any(|l| l.contains("newer release")),
        "the log names the record's version: {lines:?}"
    );
    // Nothing was written over it.
    assert_eq!(fs::read(&rec).expect("record"), planted);
    // The reset, at the time of the logins (the CLI reads the clock), says what is
    // lost and keeps the marks of the slot it reads: the code of T0 + 30 stays used.
    // The code of T0 + 60, which only the unreadable slot recorded, stays used too: the
    // reset counts every TOTP code up to its clock (plus a minute's slack) as used.
    let reset_at = T0 + 62;
    let state_dir = stack.state_dir();
    let out = output_guarded(
        Command::new(&built().state_tool)
            .args(["reset", "--user", &u.name, "--state-dir"])
            .arg(&state_dir)
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(reset_at))
            .env("TZ", "UTC"),
        Input::Null,
    );
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("are kept") && said.contains("forgotten") && said.contains("counts as used"),
        "{said}"
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, reset_at);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "kept mark: {d:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), None, reset_at + 1);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "the code the newer release accepted: {d:?}"
    );
    // Control: a code of the first step after the reset's slack logs in.
    let next = reset_at + totp_core::policy::CLOCK_SLACK_SECS + 30;
    let d = login_at(&stack, &u, &code_at(&secret, next), None, next);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "after the reset: {d:?}");
}

fn logs_contain(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// The clock stepped back (NTP) by seconds and by a day after a code was accepted: the
/// codes the phone shows at the earlier time are refused (the mark only moves forward),
/// a day back is named a clock fault, and the used code is still refused when the clock
/// is right again. Control: a later step's code logs in once the clock is right.
#[test]
fn a_clock_stepped_back_never_reopens_a_used_code() {
    if !require_root("a_clock_stepped_back_never_reopens_a_used_code") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cb");
    let stack = Stack::probe("svc", "");
    let t = T0 + 60;
    let d = login_at(&stack, &u, &code_at(&secret, t), None, t);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // Back by 20 s: the same code, and the code of the step before, which the phone
    // shows at the earlier time, are both refused.
    for (code_time, label) in [(t, "the used code"), (t - 30, "the step before")] {
        let d = login_at(&stack, &u, &code_at(&secret, code_time), None, t - 20);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{label}, 20 s back: {d:?}");
    }
    // Back by a day: the day-old step's code is refused and the log names the clock.
    let day = 86_400;
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, t - day), None, t - day);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "a day back: {d:?}");
    assert!(logs_contain(&lines, "the clock went back"), "{lines:?}");
    // The clock right again: the used code stays used, the next one works.
    let d = login_at(&stack, &u, &code_at(&secret, t), None, t + 5);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "replay after the clock came back"
    );
    // After the backoff the refused attempts earned.
    let d = login_at(&stack, &u, &code_at(&secret, t + 120), None, t + 120);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}");
}

/// The clock forward by an hour for one login, then back: the code accepted in the
/// future is still refused when real time reaches it, and so is every code before it
/// (named a clock fault meanwhile). Control: the step after it logs in.
#[test]
fn a_code_accepted_in_the_future_stays_used_when_the_clock_gets_there() {
    if !require_root("a_code_accepted_in_the_future_stays_used_when_the_clock_gets_there") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cw");
    let stack = Stack::probe("svc", "");
    let ahead = T0 + 3600;
    let d = login_at(&stack, &u, &code_at(&secret, ahead), None, ahead);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "clock back: {d:?}");
    assert!(logs_contain(&lines, "the clock went back"), "{lines:?}");
    for at in [ahead - 30, ahead, ahead + 10] {
        let d = login_at(&stack, &u, &code_at(&secret, at.min(ahead)), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "at {at}: {d:?}");
    }
    let d = login_at(&stack, &u, &code_at(&secret, ahead + 30), None, ahead + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}");
}

/// A `state_dir=` that is a symlink, or has one as a component (even a root-owned one
/// to a sound directory), or that the user owns, or that its group can write, denies
/// with a log line naming the fault, and nothing is created or written through it.
/// Control: the same directory named directly logs in.
#[test]
fn a_symlinked_or_foreign_state_dir_is_refused_and_never_written_through() {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};
    if !require_root("a_symlinked_or_foreign_state_dir_is_refused_and_never_written_through") {
        return;
    }
    let (u, secret) = TestUser::enrolled("sd");
    let base = Stack::new();
    let real = base.path().join("real");
    fs::create_dir(&real).expect("real");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).expect("chmod");
    symlink(&real, base.path().join("link")).expect("symlink");
    let parent = base.path().join("parent");
    fs::create_dir(&parent).expect("parent");
    fs::create_dir(parent.join("state")).expect("parent/state");
    fs::set_permissions(parent.join("state"), fs::Permissions::from_mode(0o700)).expect("chmod");
    symlink(&parent, base.path().join("via")).expect("symlink");
    let users = base.path().join("users");
    fs::create_dir(&users).expect("users");
    fs::set_permissions(&users, fs::Permissions::from_mode(0o700)).expect("chmod");
    chown(&users, Some(u.uid), Some(u.gid)).expect("chown");
    let group = base.path().join("group");
    fs::create_dir(&group).expect("group");
    fs::set_permissions(&group, fs::Permissions::from_mode(0o770)).expect("chmod");

    let cases = [
        (
            base.path().join("link"),
            &real,
            "is a symlink; not followed",
        ),
        (
            base.path().join("via/state"),
            &parent.join("state"),
            "is a symlink; not followed",
        ),
        (
            users.clone(),
            &users,
            &format!("is owned by uid {}", u.uid) as &str,
        ),
        (group.clone(), &group, "with mode 770"),
    ];
    for (i, (dir, target, cause)) in cases.iter().enumerate() {
        let stack = Stack::probe("svc", &format!("state_dir={}", dir.display()));
        let at = T0 + 30 * i as u64;
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{}: {d:?}", dir.display());
        assert!(logs_contain(&lines, cause), "{}: {lines:?}", dir.display());
        let inside: Vec<_> = fs::read_dir(target).expect("list").collect();
        assert!(
            inside.is_empty(),
            "{}: written through: {inside:?}",
            dir.display()
        );
    }
    // Control: the directory itself.
    let stack = Stack::probe("svc", &format!("state_dir={}", real.display()));
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 300), None, T0 + 300);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert!(real.join(u.uid.to_string()).exists());
}

/// A hard link to a file outside the store, or a file of the user's, at the user's
/// record name in a root-owned `state_dir=`: the login (as root) is denied, the log
/// names what is there, and the file is left as it was. Before the fix the record's
/// allocation (for records an earlier version created with holes) ran before the owner
/// and link checks, and grew either file to the record's 16 KiB with zeros. Control:
/// with the entry gone, the same login creates its record and logs in.
#[test]
fn a_hard_link_or_foreign_file_at_a_record_name_is_refused_and_left_as_it_was() {
    if !require_root("a_hard_link_or_foreign_file_at_a_record_name_is_refused_and_left_as_it_was") {
        return;
    }
    let (u, secret) = TestUser::enrolled("hl");
    let base = Stack::new();
    let state = base.path().join("state");
    fs::create_dir(&state).expect("state");
    fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let record = state.join(u.uid.to_string());
    let outside = base.path().join("outside");
    let bytes = b"root:x:0:0::/root:/bin/sh\n";
    write_owned(&outside, bytes, 0, 0, 0o600);
    let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
    let cases: [(&str, &std::path::Path, String); 2] = [
        (
            "hard link",
            &outside,
            "has 2 hard links; refused".to_owned(),
        ),
        ("user's file", &record, format!("is owned by uid {}", u.uid)),
    ];
    for (i, (what, behind, cause)) in cases.iter().enumerate() {
        let _ = fs::remove_file(&record);
        if *what == "hard link" {
            fs::hard_link(&outside, &record).expect("link");
        } else {
            write_owned(&record, bytes, u.uid, u.gid, 0o600);
        }
        let at = T0 + 30 * i as u64;
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{what}: {d:?}");
        assert!(logs_contain(&lines, cause), "{what}: {lines:?}");
        let now = fs::read(behind).expect("read");
        assert!(
            now == bytes,
            "{what}: the file is as it was ({} bytes now)",
            now.len()
        );
    }
    // Control: nothing at the name.
    fs::remove_file(&record).expect("remove");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 300), None, T0 + 300);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}");
    assert_eq!(
        fs::metadata(&record).expect("record").len(),
        totp_os::state_dir::MAX_FILE_LEN as u64
    );
    assert!(fs::read(&outside).expect("read") == bytes);
}

/// R6: the login opens the user's record and the store key with `O_NOCTTY`, so a
/// terminal device put at either name (they are opened before their type is seen on
/// the descriptor) never becomes the controlling terminal of a host without one (sshd's
/// session leader). Shown on the login's `openat` calls in an strace trace; control:
/// the trace holds both opens, and the login succeeds.
#[test]
fn the_record_and_the_store_key_are_opened_without_taking_a_terminal() {
    if !require_root("the_record_and_the_store_key_are_opened_without_taking_a_terminal") {
        return;
    }
    let (u, secret) = TestUser::enrolled("nc");
    let base = Stack::new();
    let state = base.path().join("state");
    let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "first login: {d:?}");
    let trace = base.path().join("trace");
    let driver = Driver::new(&stack, "svc", &u.name)
        .answer(&code_at(&secret, T0 + 30))
        .at(T0 + 30);
    let out = strace_login(&driver, &trace, Some("trace=openat"));
    assert_eq!(Drive::parse(&out).module_code(), "PAM_SUCCESS", "{out:?}");
    let trace = fs::read_to_string(&trace).expect("trace");
    for name in [u.uid.to_string(), "store.key".to_owned()] {
        let opens: Vec<&str> = trace
            .lines()
            .filter(|l| l.contains("openat(") && l.contains(&format!("\"{name}\"")))
            .collect();
        assert!(!opens.is_empty(), "the open of {name} is traced:\n{trace}");
        for l in opens {
            assert!(l.contains("O_NOCTTY"), "{name}: {l}");
        }
    }
}

/// One line of an `strace -f -o` trace: the thread and the system call's name.
fn trace_call(line: &str) -> Option<(u32, &str)> {
    let (pid, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let name = &rest[..rest.find('(')?];
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some((pid.parse().ok()?, name))
}

/// The login answering `answer` under strace (`-f`, trace into `trace`), with `inject`
/// when given; the driver's environment (libfaketime) passed on.
fn strace_login(
    driver: &Driver,
    trace: &std::path::Path,
    inject: Option<&str>,
) -> std::process::Output {
    let cmd = driver.command();
    let mut strace = std::process::Command::new("strace");
    strace.args(["-f", "-qq", "-o"]).arg(trace);
    if let Some(i) = inject {
        strace.args(["-e", i]);
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            strace.env(k, v);
        }
    }
    strace.arg(cmd.get_program()).args(cmd.get_args());
    output_guarded(&mut strace, Input::Null)
}

/// D1, every step: a login using a scratch code (the durable write: the record's
/// `pwrite64` and `fdatasync`, then the secret file's rewrite) killed with SIGKILL on
/// entry to each system call from the record's first mention to the verdict, one run
/// per call, from the same record and secret file. Each run is shown to die of SIGKILL
/// at the call aimed at (its trace ends there); afterwards the record is always
/// readable, and the scratch code logs in again exactly when the record does not hold
/// its use (killed before the write), never once it does. Control: the unkilled login
/// succeeds and the code is then refused.
#[test]
fn a_login_killed_at_every_system_call_of_the_durable_write_never_readmits_a_code() {
    killed_at_every_call(
        "a_login_killed_at_every_system_call_of_the_durable_write_never_readmits_a_code",
        "kd",
        false,
    );
}

/// The same, for a user's first login: the record is built (`O_TMPFILE`, mode, blocks,
/// lock), linked, its directory synced, then written; a kill at any of those calls
/// leaves no record or one holding nothing, and the code usable, or the use recorded.
#[test]
fn a_first_login_killed_at_every_system_call_of_the_record_creation_never_readmits_a_code() {
    killed_at_every_call(
        "a_first_login_killed_at_every_system_call_of_the_record_creation_never_readmits_a_code",
        "kf",
        true,
    );
}

fn scratch_recorded(stack: &Stack, uid: u32) -> bool {
    stored(stack, uid)
        .marks
        .iter()
        .any(|(_, m)| !m.scratch.is_empty())
}

fn killed_at_every_call(t: &str, tag: &str, fresh: bool) {
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (u, secret) = TestUser::enrolled(tag);
    let scratch = "13572468";
    let file = format!("{}{scratch}\n", totp_file(&secret));
    u.write_secret(&file, 0o600);
    let stack = Stack::probe("svc", "throttle_after=100 ceiling_burst=1000");
    let record = stack.state_file(u.uid);
    // A first failure creates the store (and the record, which a fresh run removes).
    // Every login here runs on the real clock: a scratch code does not depend on the
    // time, and libfaketime sometimes creates its semaphore and shared memory on start
    // (a dozen calls more before the record's first mention), which would move the Nth
    // call a kill run aims at past the verdict.
    let d = Driver::login(&stack, &u, &wrong_totp(&secret, now())).run();
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    if fresh {
        fs::remove_file(&record).expect("remove the record");
    }
    let saved = fs::read(&record).ok();
    let uid = u.uid.to_string();
    let restore = || {
        match &saved {
            Some(bytes) => fs::write(&record, bytes).expect("restore the record"),
            None => {
                let _ = fs::remove_file(&record);
                let temp = format!(".{uid}.tmp-");
                for e in fs::read_dir(stack.state_dir()).expect("list").flatten() {
                    if e.file_name().to_string_lossy().starts_with(&temp) {
                        fs::remove_file(e.path()).expect("remove a temporary record");
                    }
                }
            }
        }
        u.write_secret(&file, 0o600);
    };
    let traces = tempfile::tempdir().expect("tempdir");
    let login = || Driver::login(&stack, &u, scratch);

    // The reference run (the control): the calls of the thread that writes the record.
    let reference = traces.path().join("reference");
    let out = strace_login(&login(), &reference, None);
    assert_eq!(Drive::parse(&out).module_code(), "PAM_SUCCESS", "{out:?}");
    assert!(scratch_recorded(&stack, u.uid), "control: the use recorded");
    assert_eq!(
        login().run().module_code(),
        "PAM_AUTH_ERR",
        "control: the used scratch code is refused"
    );
    let text = fs::read_to_string(&reference).expect("trace");
    let lines: Vec<&str> = text.lines().filter(|l| trace_call(l).is_some()).collect();
    let calls: Vec<(u32, &str)> = lines.iter().filter_map(|l| trace_call(l)).collect();
    let first = lines
        .iter()
        .position(|l| l.contains(&format!("\"{uid}\"")))
        .expect("the record's name in the trace");
    let writer = calls[first].0;
    for needed in ["fdatasync", "pwrite64"].iter().chain(if fresh {
        &["fallocate", "linkat"][..]
    } else {
        &[][..]
    }) {
        assert!(
            calls[first..]
                .iter()
                .any(|&(p, n)| p == writer && n == *needed),
            "{needed} in the trace: {text}"
        );
    }
    // From the record's first mention to the verdict on standard output.
    let region: Vec<(String, usize)> = {
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        let mut out = Vec::new();
        for (i, &(pid, name)) in calls.iter().enumerate() {
            if pid != writer {
                continue;
            }
            let n = seen.entry(name).or_default();
            *n += 1;
            if i < first {
                continue;
            }
            if name == "write" && lines[i].contains("write(1,") {
                break;
            }
            out.push((name.to_owned(), *n));
        }
        out
    };
    assert!(region.len() >= 8, "{region:?}");
    let (mut readmitted, mut refused) = (0, 0);
    for (k, (name, nth)) in region.iter().enumerate() {
        restore();
        let trace = traces.path().join(format!("kill-{k}"));
        let inject = format!("inject={name}:signal=SIGKILL:when={nth}");
        let out = strace_login(&login(), &trace, Some(&inject));
        assert_eq!(Drive::died(&out), libc::SIGKILL, "{inject}: {out:?}");
        let killed = fs::read_to_string(&trace).expect("trace");
        let last = killed
            .lines()
            .filter(|l| trace_call(l).is_some())
            .rfind(|l| !l.contains("resumed>"))
            .unwrap_or_default();
        assert!(
            trace_call(last).is_some_and(|(_, n)| n == name),
            "{inject}: the run died elsewhere (last call {last:?})"
        );
        // Readable (stored panics otherwise), and what it says decides the next login.
        let recorded = scratch_recorded(&stack, u.uid);
        let d = login().run();
        if recorded {
            assert_eq!(
                d.module_code(),
                "PAM_AUTH_ERR",
                "{inject}: the use recorded, admitted again: {d:?}"
            );
            refused += 1;
        } else {
            assert_eq!(
                d.module_code(),
                "PAM_SUCCESS",
                "{inject}: nothing recorded: {d:?}"
            );
            readmitted += 1;
        }
    }
    // Kills both before and after the write landed.
    assert!(
        readmitted > 0 && refused > 0,
        "{readmitted} {refused} {region:?}"
    );
    restore();
}

/// Two logins of one user racing, for the codes a durable write records (a scratch code,
/// an HOTP counter): sixteen logins released together with the same code, exactly one
/// success, in each of two rounds per kind; the record holds the use afterwards (the
/// same code alone is then refused). Control: the next scratch code or counter logs in.
#[test]
fn the_same_scratch_or_hotp_code_in_parallel_logins_succeeds_exactly_once() {
    if !require_root("the_same_scratch_or_hotp_code_in_parallel_logins_succeeds_exactly_once") {
        return;
    }
    let u = TestUser::create("pr");
    let stack = Stack::probe(
        "svc",
        "lock_timeout=5000 throttle_after=100 ceiling_burst=1000",
    );
    let race = |code: &str| {
        let start = start_time();
        let drivers = (0..16)
            .map(|_| Driver::login(&stack, &u, code).start_at(start))
            .collect();
        let results = spawn_all(drivers);
        let ok = results
            .iter()
            .filter(|d| d.module_code() == "PAM_SUCCESS")
            .count();
        assert_eq!(ok, 1, "{code}: {results:?}");
        assert!(
            results
                .iter()
                .all(|d| ["PAM_SUCCESS", "PAM_AUTH_ERR"].contains(&d.module_code().as_str())),
            "{results:?}"
        );
        let d = Driver::login(&stack, &u, code).run();
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{code} again: {d:?}");
    };
    for round in 0..2 {
        let secret = random_secret_b32();
        let scratch = ["24681357", "97531864"];
        u.write_secret(
            &format!("{}{}\n{}\n", totp_file(&secret), scratch[0], scratch[1]),
            0o600,
        );
        race(scratch[0]);
        let d = Driver::login(&stack, &u, scratch[1]).run();
        assert_eq!(
            d.module_code(),
            "PAM_SUCCESS",
            "round {round}, control: {d:?}"
        );

        let token = random_secret_b32();
        u.write_secret(&format!("{token}\n\" HOTP_COUNTER 1\n"), 0o600);
        race(&oathtool_hotp(&token, 1));
        let d = Driver::login(&stack, &u, &oathtool_hotp(&token, 2)).run();
        assert_eq!(
            d.module_code(),
            "PAM_SUCCESS",
            "round {round}, control: {d:?}"
        );
    }
}

/// Thousands of users: 3000 other records in the state directory (written through the
/// store, as logins write them) change nothing for a login (accepted, the replay
/// refused), and `totp-state show` lists every record. Control: the same login and
/// listing before the other records exist.
#[test]
fn thousands_of_records_beside_a_user_change_nothing() {
    use totp_core::state::{StateStore, UserState, Write};
    if !require_root("thousands_of_records_beside_a_user_change_nothing") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tu");
    let stack = Stack::probe("svc", "");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}");
    let listed = |out: &std::process::Output| {
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = listed(&stack.state_tool(&["show", "--json"]));
    assert_eq!(before, 1, "control: one record");
    let mut store =
        totp_os::state_dir::StateDir::new(stack.state_dir(), std::time::Duration::from_secs(5));
    let others = 3000u32;
    for uid in 200_000..200_000 + others {
        let state = UserState::default();
        store
            .update(uid, &mut |_| Write::Lazy(state.clone()))
            .expect("another user's record");
    }
    assert_eq!(
        stack.state_listing().len(),
        others as usize + 2,
        "records and the key"
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 1);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "replay: {d:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(
        listed(&stack.state_tool(&["show", "--json"])),
        others as usize + 1
    );
}
