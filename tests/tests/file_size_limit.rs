//! A process's file size limit (`RLIMIT_FSIZE`, `ulimit -f`) below what a login writes.
//! Setuid programs keep their caller's limits, so a user can lower it before `su` or a
//! polkit helper; a write past it is answered with SIGXFSZ, whose default action kills
//! the process. The module checks every write against the limit first: the login is
//! denied with the cause logged (the store could not record the attempt), or a scratch
//! code the store already recorded logs in once without the file's rewrite, and the
//! host lives. Controls: the same logins without a limit succeed.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use system_tests::*;

/// `driver` run with its file size limit at `bytes` (soft; the hard limit unlimited),
/// in the private mount namespace whose syslog the test reads.
fn limited(driver: &Driver, bytes: Option<u64>) -> (Output, Drive, Vec<String>) {
    let inner = driver.command();
    let command = match bytes {
        Some(b) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--fsize={b}:unlimited"))
                .arg("--")
                .arg(inner.get_program())
                .args(inner.get_args());
            for (k, v) in inner.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c
        }
        None => inner,
    };
    let (out, lines) = with_syslog_capture(&command);
    assert_eq!(
        out.status.signal(),
        None,
        "the host was killed: {out:?} {lines:?}"
    );
    let d = Drive::ran(&out);
    (out, d, lines)
}

fn denied_for_the_limit(d: &Drive, lines: &[String], what: &str) {
    assert!(
        !matches!(d.returned(), Returned::Success | Returned::Ignore),
        "{what}: {d:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("RLIMIT_FSIZE")),
        "{what}: the log names the limit: {lines:?}"
    );
}

#[test]
fn a_low_file_size_limit_denies_instead_of_killing_the_host() {
    let t = "a_low_file_size_limit_denies_instead_of_killing_the_host";
    if !require_root(t) || !require_tool(t, "prlimit") {
        return;
    }
    let (u, secret) = TestUser::enrolled("fz");
    let stack = Stack::probe("svc", "");
    let login = |at: u64| Driver::login(&stack, &u, &code_at(&secret, at)).at(at);
    // A fresh state directory: the store key and a new record cannot be written.
    for bytes in [0, 1, 4096] {
        let (_, d, lines) = limited(&login(T0), Some(bytes));
        denied_for_the_limit(&d, &lines, &format!("new record, limit {bytes}"));
    }
    // Control: without a limit the same code logs in (nothing was used above).
    let (_, d, lines) = limited(&login(T0), None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    // The record exists now: its write is refused too.
    let (_, d, lines) = limited(&login(T0 + 30), Some(0));
    denied_for_the_limit(&d, &lines, "existing record, limit 0");
    let (_, d, lines) = limited(&login(T0 + 30), None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
}

#[test]
fn a_scratch_code_whose_rewrite_would_pass_the_limit_logs_in_once() {
    let t = "a_scratch_code_whose_rewrite_would_pass_the_limit_logs_in_once";
    if !require_root(t) || !require_tool(t, "prlimit") {
        return;
    }
    let u = TestUser::create("fy");
    let secret = random_secret_b32();
    // Bigger than the state record (16 KiB), which the limit below lets through.
    let codes: Vec<String> = (0..2000).map(|i| format!("{}", 20_000_000 + i)).collect();
    let file = format!("{}{}\n", totp_file(&secret), codes.join("\n"));
    assert!(file.len() > 16384 + 1024, "{}", file.len());
    u.write_secret(&file, 0o600);
    let stack = Stack::probe("svc", "");
    // The record is created without a limit first.
    let (_, d, lines) = limited(
        &Driver::login(&stack, &u, &code_at(&secret, T0)).at(T0),
        None,
    );
    assert_eq!(d.returned(), Returned::Success, "set-up: {d:?} {lines:?}");

    let scratch = Driver::login(&stack, &u, &codes[7]).at(T0 + 60);
    let (_, d, lines) = limited(&scratch, Some(16384));
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("RLIMIT_FSIZE")),
        "{lines:?}"
    );
    let kept = std::fs::read_to_string(u.secret_path()).expect("read the file");
    assert!(kept.contains(&codes[7]), "the file was not rewritten");
    // Used up all the same: the store recorded it before the rewrite.
    let (_, d, lines) = limited(&Driver::login(&stack, &u, &codes[7]).at(T0 + 90), None);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "replayed: {d:?} {lines:?}"
    );
}
