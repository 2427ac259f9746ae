//! A11 of SECURITY.md through the real libpam: the secret file grows between the
//! module's `fstat` and its read.
//!
//! strace, restricted to the secret file (`-P`), holds the module's first `pread64` of it
//! at syscall entry (`inject=pread64:delay_enter=…:when=1`); the test sees the login
//! stopped in that very call (`/proc/PID/syscall`: `pread64` on a descriptor that is the
//! secret file) and appends to the file past the module's 64 KiB cap while the call is
//! held, and sees the call still held after the append. The module's `fstat` (in strace's
//! trace) saw the small file; its reads (in the trace) go past that size, proving they
//! met the grown file, and stop at the cap plus one byte; the login is denied and the log
//! names the file and the cap. Control: the same held read without the append logs in.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use system_tests::*;

/// The module's size cap for a secret file (`safefile::DEFAULT_MAX_SIZE`).
const CAP: u64 = 64 * 1024;
/// How long strace holds the read: long enough for the test to see it and append.
const HOLD: Duration = Duration::from_secs(3);
/// x86_64's `pread64`, as `/proc/PID/syscall` shows it.
const SYS_PREAD64: &str = "17";

/// The `pam-drive` process whose arguments name `confdir` (the driver strace started).
fn driver_pid(confdir: &Path) -> Option<u32> {
    let confdir = confdir.to_string_lossy().into_owned();
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_driver = args
            .first()
            .is_some_and(|a| Path::new(a) == built().driver.as_path());
        (is_driver && args.contains(&confdir)).then_some(pid)
    })
}

/// True while `pid` is stopped at the entry of a `pread64` of `path`.
fn held_in_read_of(pid: u32, path: &Path) -> bool {
    let Ok(syscall) = fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let mut fields = syscall.split_whitespace();
    if fields.next() != Some(SYS_PREAD64) {
        return false;
    }
    let Some(fd) = fields
        .next()
        .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok())
    else {
        return false;
    };
    fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|p| p == path)
}

/// One `pread64` of the secret in strace's trace: (count asked, offset, bytes returned).
fn preads(trace: &str) -> Vec<(u64, u64, u64)> {
    trace
        .lines()
        .filter(|l| l.contains("pread64("))
        .filter_map(|l| {
            let (call, ret) = l.rsplit_once(") = ")?;
            let mut args = call.rsplit(", ");
            let offset = args.next()?.trim().parse().ok()?;
            let count = args.next()?.trim().parse().ok()?;
            let ret = ret.split_whitespace().next()?.parse().ok()?;
            Some((count, offset, ret))
        })
        .collect()
}

/// The sizes the traced `fstat` calls of the secret reported.
fn fstat_sizes(trace: &str) -> Vec<u64> {
    trace
        .lines()
        .filter(|l| l.contains("fstat") || l.contains("statx"))
        .filter_map(|l| {
            let rest = &l[l.find("st_size=").or_else(|| l.find("stx_size="))?..];
            let digits: String = rest
                .split_once('=')?
                .1
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

struct Run {
    drive: Drive,
    syslog: Vec<String>,
    trace: String,
    /// Whether the test saw the login held in the read of the secret, and (with an
    /// append) still held there after the file had grown.
    held: bool,
    still_held_after_append: bool,
}

/// One login under strace with the first read of `secret` held; with `grow`, the file
/// grows past the cap while that read is held.
fn login(stack: &Stack, user: &str, answer: &str, secret: &Path, grow: bool) -> Run {
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    let cmd = Driver::new(stack, "svc", user).answer(answer).command();
    let mut strace = Command::new("strace");
    strace
        // -s 0: the trace never shows the file's bytes (the secret).
        .args(["-f", "-qq", "-y", "-s", "0", "-P"])
        .arg(secret)
        .args(["-e", "trace=pread64,fstat,newfstatat,statx", "-e"])
        .arg(format!(
            "inject=pread64:delay_enter={}:when=1",
            HOLD.as_micros()
        ))
        .arg("-o")
        .arg(trace.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let login = std::thread::spawn(move || with_syslog_capture(&strace));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut held = false;
    let mut still_held_after_append = false;
    while Instant::now() < deadline && !login.is_finished() {
        if let Some(pid) = driver_pid(stack.path())
            && held_in_read_of(pid, secret)
        {
            held = true;
            if grow {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(secret)
                    .expect("open the secret to append");
                // Blank lines: were they read, the file would still parse.
                f.write_all(&vec![b'\n'; usize::try_from(CAP).expect("cap") + 4096])
                    .expect("append");
                drop(f);
                still_held_after_append = held_in_read_of(pid, secret);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (out, syslog) = login.join().expect("login thread");
    Run {
        drive: Drive::parse(&out),
        syslog,
        trace: fs::read_to_string(trace.path()).unwrap_or_default(),
        held,
        still_held_after_append,
    }
}

/// A11: a secret file that grows past the cap while the module's read of it is held is
/// read only up to the cap plus one byte and the login is denied with the cap in the
/// log; the control (the same held read, no growth) logs in.
#[test]
fn a_secret_growing_past_the_cap_during_the_read_is_refused_at_the_cap() {
    let t = "a_secret_growing_past_the_cap_during_the_read_is_refused_at_the_cap";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gr");
    let path = u.secret_path();
    let small = fs::metadata(&path).expect("stat").len();
    let stack = Stack::probe("svc", "");

    let control = login(&stack, &u.name, &code_at(&secret, now()), &path, false);
    assert!(
        control.held && control.trace.contains("(DELAYED)"),
        "control: the read was never held: {}",
        control.trace
    );
    assert_eq!(
        control.drive.returned(),
        Returned::Success,
        "control: {:?} {:?}",
        control.drive,
        control.syslog
    );

    reset_state(&stack, u.uid);
    let run = login(&stack, &u.name, &code_at(&secret, now()), &path, true);
    assert!(
        run.held && run.trace.contains("(DELAYED)"),
        "the read was never held: {}",
        run.trace
    );
    assert!(
        run.still_held_after_append,
        "the file grew only after the read had gone on: {}",
        run.trace
    );
    let grown = fs::metadata(&path).expect("stat").len();
    assert!(grown > CAP + 1, "the file grew past the cap: {grown}");
    assert!(
        fstat_sizes(&run.trace).contains(&small),
        "the module's fstat saw the small file ({small} bytes): {}",
        run.trace
    );
    let reads = preads(&run.trace);
    let end = reads.iter().map(|&(_, off, n)| off + n).max().unwrap_or(0);
    assert!(
        end > small,
        "the reads met the grown file (past the {small} bytes fstat saw): {reads:?}\n{}",
        run.trace
    );
    assert!(
        reads
            .iter()
            .all(|&(count, off, n)| off + count <= CAP + 1 && off + n <= CAP + 1),
        "a read asked for or got bytes past the cap plus one: {reads:?}"
    );
    assert_eq!(
        end,
        CAP + 1,
        "the reads stopped at the cap plus one: {reads:?}"
    );
    assert!(
        matches!(run.drive.returned(), Returned::Failed(_)),
        "a file over the cap logged in: {:?}",
        run.drive
    );
    assert_eq!(
        run.drive.prompts, 1,
        "asked for a code as usual: {:?}",
        run.drive
    );
    assert!(
        run.syslog.iter().any(|l| {
            let m = syslog_message(l);
            m.contains(&format!("{} refused", path.display()))
                && m.contains(&format!("larger than {CAP} bytes"))
        }),
        "the log names the file and the cap: {:?}",
        run.syslog
    );
}
