//! R12, R15 and R16 through the real libpam: a login that creates a user's first state
//! record and fails to finish it (a full file system, its own file size limit) never
//! takes away a name a racing login may have opened. Before the fix the creator made
//! `<dir>/<uid>` under its name and removed the name again when the allocation failed;
//! a second login of the same user that had opened and locked the file in between
//! recorded its code in a file no later login would open, and the same code was then
//! admitted again.
//!
//! The race is made deterministic with strace: the creating login is held on entry to
//! the system call that fails (or precedes the failure), the test waits until it sits
//! there (`/proc/PID/syscall`), and only then runs the second login. No timing is
//! asserted.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use system_tests::*;

/// How long strace holds the creating login: long enough for the second login to run.
const HOLD_US: u64 = 3_000_000;

/// A creating login held by strace, run in a thread with its syslog captured.
struct Held {
    run: JoinHandle<(Output, Vec<String>)>,
    trace: tempfile::NamedTempFile,
}

impl Held {
    /// `user` answering `code` with the clock at `at`, held `HOLD_US` on entry to its
    /// first `syscall`; under the file size limit `fsize` (bytes) when given.
    fn start(
        stack: &Stack,
        user: &TestUser,
        code: &str,
        at: u64,
        syscall: &str,
        fsize: Option<u64>,
    ) -> Held {
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let login = Driver::login(stack, user, code).at(at).command();
        let mut strace = Command::new("strace");
        strace.args(["-f", "-qq", "-o"]).arg(trace.path()).args([
            "-e",
            "trace=fchmod,fallocate,link,linkat,unlink,unlinkat,rename,renameat2",
            "-e",
            &format!("inject={syscall}:delay_enter={HOLD_US}:when=1"),
        ]);
        // The fake clock for the login only: strace's own delay runs on the real one.
        for (k, v) in login.get_envs() {
            if let Some(v) = v {
                strace
                    .arg("-E")
                    .arg(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
            }
        }
        if let Some(limit) = fsize {
            strace.args(["prlimit", &format!("--fsize={limit}"), "--"]);
        }
        strace.arg(login.get_program()).args(login.get_args());
        let run = std::thread::spawn(move || with_syslog_capture(&strace));
        let held = Held { run, trace };
        let nr = syscall_number(syscall);
        if !held.wait_in(&user.name, nr) {
            let (d, lines, trace) = held.finish();
            panic!(
                "the creating login ended before it sat in system call {nr}: {d:?} {lines:?}\n{trace}"
            );
        }
        held
    }

    /// Returns once the login of `name` sits on entry to system call `nr`: `false` when
    /// it ended first.
    fn wait_in(&self, name: &str, nr: i64) -> bool {
        let driver = built().driver.to_string_lossy().into_owned();
        let start = Instant::now();
        loop {
            let pids = fs::read_dir("/proc").expect("/proc").filter_map(|e| {
                let e = e.ok()?;
                e.file_name().to_str()?.parse::<u32>().ok()
            });
            for pid in pids {
                let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                    continue;
                };
                let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
                let is_login = args.first() == Some(&driver.as_bytes())
                    && args
                        .windows(2)
                        .any(|w| w[0] == b"--user" && w[1] == name.as_bytes());
                let at = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
                if is_login && at.split(' ').next() == Some(nr.to_string().as_str()) {
                    return true;
                }
            }
            if self.run.is_finished() {
                return false;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the creating login never sat in system call {nr}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The login's result, its syslog lines and strace's trace.
    fn finish(self) -> (Drive, Vec<String>, String) {
        let (out, lines) = self.run.join().expect("the held login");
        let trace = fs::read_to_string(self.trace.path()).unwrap_or_default();
        (Drive::ran(&out), lines, trace)
    }
}

fn syscall_number(name: &str) -> i64 {
    match name {
        "fallocate" => libc::SYS_fallocate,
        "fchmod" => libc::SYS_fchmod,
        other => panic!("no number for {other}"),
    }
}

fn logs_contain(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| syslog_message(l).contains(needle))
}

/// A line of the trace removing the name `name` (a record's is its uid).
fn removes_name(trace: &str, name: &str) -> bool {
    trace
        .lines()
        .any(|l| l.contains("unlink") && l.contains(&format!("\"{name}\"")))
}

/// The reviewer's case: the state directory's file system has room for a slot but not
/// for a record. The creating login is held on entry to its `fallocate`, which then
/// fails with ENOSPC (shown in the trace and the log); a second login with the same code
/// runs meanwhile. Whatever each is told, the code is admitted at most once over that
/// login, a login after space is freed (the control: a record is created without a
/// fault) and a third try; the creator never removed a record's name.
#[test]
fn a_creator_out_of_space_never_unlinks_a_record_a_racing_login_used() {
    let t = "a_creator_out_of_space_never_unlinks_a_record_a_racing_login_used";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (first, first_secret) = TestUser::enrolled("ra");
    let (u, secret) = TestUser::enrolled("rb");
    let fs_ = Tmpfs::new("128k");
    let dir = fs_.path().join("state");
    let stack = Stack::probe("svc", &format!("state_dir={}", dir.display()));
    // The directory, the store key and another user's record, so that only the user's
    // own record is created below.
    let d = login_at(&stack, &first, &code_at(&first_secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // Full, then two pages freed: room for a slot, not for a record (four pages).
    fs_.fill();
    let fill = fs_.path().join("fill");
    let len = fs::metadata(&fill).expect("fill").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&fill)
        .and_then(|f| f.set_len(len.saturating_sub(8192)))
        .expect("free two pages");

    let code = code_at(&secret, T0);
    assert!(!dir.join(u.uid.to_string()).exists(), "no record yet");
    let creator = Held::start(&stack, &u, &code, T0, "fallocate", None);
    let racer = login_at(&stack, &u, &code, None, T0);
    let (a, a_log, trace) = creator.finish();

    assert!(
        trace
            .lines()
            .any(|l| l.starts_with(|c: char| c.is_ascii_digit())
                && l.contains("fallocate(")
                && l.contains("ENOSPC")
                && l.contains("(DELAYED)")),
        "the creator's held fallocate failed with ENOSPC\n{trace}"
    );
    assert_eq!(a.module_code(), "PAM_AUTH_ERR", "the creator: {a:?}");
    assert!(
        logs_contain(&a_log, "No space left on device") && logs_contain(&a_log, "allocate"),
        "the creator's log names the failed allocation: {a_log:?}"
    );
    let record_name = u.uid.to_string();
    assert!(
        !removes_name(&trace, &record_name),
        "the creator removed the record's name\n{trace}"
    );

    fs::remove_file(&fill).expect("free the space");
    let after = login_at(&stack, &u, &code, None, T0 + 1);
    let again = login_at(&stack, &u, &code, None, T0 + 2);
    let admitted: Vec<&str> = [("racer", &racer), ("after", &after), ("again", &again)]
        .iter()
        .filter(|(_, d)| d.module_code() == "PAM_SUCCESS")
        .map(|(who, _)| *who)
        .collect();
    assert_eq!(
        admitted.len(),
        1,
        "the code was admitted once: {admitted:?}\nracer {racer:?}\nafter {after:?}\nagain {again:?}"
    );
    // Control: with room again a record is created and keeps the used code.
    let stored = {
        use totp_core::state::StateStore;
        totp_os::state_dir::StateDir::new(&dir, Duration::from_secs(1))
            .read(u.uid)
            .expect("the record is readable")
    };
    assert_eq!(last_step_of(&stored), Some(T0 / 30));
    assert_eq!(
        fs::metadata(dir.join(&record_name))
            .expect("record")
            .nlink(),
        1
    );
}

/// The creating login runs under a file size limit below a record's size (a user's
/// `ulimit -f` before `su`), held on entry to its first `fchmod` (the new record's); a
/// second login without the limit logs in with the same code meanwhile. The creator is
/// denied (its log names the limit), and the same code is refused afterwards as already
/// used. Control: the same race without the limit admits the code exactly once (creator
/// or racer) and refuses it afterwards.
#[test]
fn a_creator_past_its_file_size_limit_never_unlinks_a_record_a_racing_login_used() {
    let t = "a_creator_past_its_file_size_limit_never_unlinks_a_record_a_racing_login_used";
    if !require_root(t) || !require_tool(t, "strace") || !require_tool(t, "prlimit") {
        return;
    }
    let (first, first_secret) = TestUser::enrolled("rc");
    let stack = Stack::probe("svc", "");
    // The directory and the store key exist, so that the first fchmod of the logins
    // below is their record's.
    let d = login_at(&stack, &first, &code_at(&first_secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // Both accounts made first: an account removed at the end of a turn would leave its
    // uid, and so its record, to the next one.
    let runs = [("rd", Some(8192)), ("re", None)]
        .map(|(tag, fsize)| (tag, fsize, TestUser::enrolled(tag)));
    for (tag, fsize, (u, secret)) in &runs {
        let (tag, fsize) = (*tag, *fsize);
        let code = code_at(secret, T0);
        assert!(!stack.state_file(u.uid).exists(), "{tag}: no record yet");
        let creator = Held::start(&stack, u, &code, T0, "fchmod", fsize);
        let racer = login_at(&stack, u, &code, None, T0);
        let (a, a_log, trace) = creator.finish();
        assert!(
            trace
                .lines()
                .any(|l| l.contains("fchmod(") && l.contains("(DELAYED)")),
            "{tag}: the creator was held at its fchmod\n{trace}"
        );
        assert!(
            !removes_name(&trace, &u.uid.to_string()),
            "{tag}: the creator removed the record's name\n{trace}"
        );
        let later = login_at(&stack, u, &code, None, T0 + 1);
        if fsize.is_some() {
            assert_eq!(
                a.module_code(),
                "PAM_AUTH_ERR",
                "the limited creator: {a:?}"
            );
            assert!(
                logs_contain(&a_log, "file size limit"),
                "the creator's log names its limit: {a_log:?}"
            );
            assert_eq!(racer.module_code(), "PAM_SUCCESS", "the racer: {racer:?}");
        } else {
            let admitted = [&a, &racer]
                .iter()
                .filter(|d| d.module_code() == "PAM_SUCCESS")
                .count();
            assert_eq!(
                admitted, 1,
                "control: one of the two logins admitted\ncreator {a:?}\nracer {racer:?}"
            );
        }
        assert_eq!(
            later.module_code(),
            "PAM_AUTH_ERR",
            "{tag}: the used code is refused afterwards: {later:?}"
        );
        assert_eq!(
            stored_last_step(&stack, u.uid),
            Some(T0 / 30),
            "{tag}: refused as already used: the record holds the code's step"
        );
        assert!(
            Path::new(&stack.state_file(u.uid)).exists(),
            "{tag}: the record is there"
        );
    }
}
