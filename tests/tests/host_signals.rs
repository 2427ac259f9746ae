//! The host's signal state. A forked child keeps the signal mask of the thread that
//! forked it, and ignored signals survive an exec; a threaded daemon typically blocks
//! every signal in its workers (one thread takes them with sigwait), and many daemons
//! ignore SIGHUP, SIGPIPE or SIGTERM. The secret command started with all of that: with
//! SIGCHLD blocked, a script's own `wait` for a child of its own never returned, so
//! every login with `secret_command=` ran into the time limit and was denied. The
//! module now starts the command with an empty mask and no ignored signal.
//! A host timer whose handler interrupts every slow system call (login arms alarm()
//! with a handler; here a SIGALRM every 2 ms without SA_RESTART) changes no verdict:
//! lock waits, the command's output and exit are all waited for again after EINTR.
//! Controls: the same logins with the host's signals left alone.

use std::fs;
use std::path::Path;

use system_tests::fleet::{checking_secret_command, trusted_dir};
use system_tests::*;

/// Signals 32 and 33, which glibc keeps for itself: its sigaction refuses them, so
/// neither the host nor the module sets them (the test's own parents may ignore them).
const GLIBC_OWN: u64 = 0x1_8000_0000;

/// A secret command that prints `file` only when it started with no signal blocked or
/// ignored (read with the shell's own `read`, before it forks anything: a shell blocks
/// signals around its own forks), and that waits for a child of its own as scripts do.
fn checking_command(dir: &Path, file: &str) -> String {
    checking_secret_command(
        dir,
        &format!(
            "while read -r key value; do\n\
               case $key in\n\
                 SigBlk:|SigIgn:) [ $(( 0x$value & ~{GLIBC_OWN:#x} )) -eq 0 ] || exit 5;;\n\
               esac\n\
             done < /proc/$$/status\n\
             sleep 0.01 &\n\
             wait"
        ),
        file,
    )
}

fn out_line(out: &std::process::Output, key: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
}

#[test]
fn the_secret_command_starts_with_no_signal_blocked_or_ignored() {
    if !require_root("the_secret_command_starts_with_no_signal_blocked_or_ignored") {
        return;
    }
    let dir = trusted_dir("sigmask");
    let u = TestUser::create("sm");
    let secret = random_secret_b32();
    let stack = Stack::probe("svc", &checking_command(dir.path(), &totp_file(&secret)));
    let hosts: [&[&str]; 4] = [
        &[],
        &["--host-block-signals"],
        &["--host-ignore-signals"],
        &["--host-block-signals", "--host-ignore-signals"],
    ];
    for (i, flags) in hosts.iter().enumerate() {
        let at = T0 + 30 * i as u64;
        let mut driver = Driver::login(&stack, &u, &code_at(&secret, at)).at(at);
        for f in *flags {
            driver = driver.flag(f);
        }
        let d = driver.run();
        assert_eq!(d.returned(), Returned::Success, "host {flags:?}: {d:?}");
    }
}

#[test]
fn a_host_timer_interrupting_every_call_changes_no_verdict() {
    if !require_root("a_host_timer_interrupting_every_call_changes_no_verdict") {
        return;
    }
    let dir = trusted_dir("sigalrm");
    let (u, secret) = TestUser::enrolled("sa");
    let args = "lock_timeout=300 throttle_after=100 ceiling_burst=1000";
    let plain = Stack::probe("svc", args);
    let file_secret = random_secret_b32();
    let command = Stack::probe(
        "svc",
        &format!(
            "{args} {}",
            checking_command(dir.path(), &totp_file(&file_secret))
        ),
    );
    // `at`: the frozen clock of libfaketime; `None` for the real one, which a bounded
    // wait needs (a frozen clock never reaches its end).
    let alarmed = |stack: &Stack, answer: &str, at: Option<u64>| {
        let driver = Driver::login(stack, &u, answer);
        let driver = match at {
            Some(t) => driver.at(t),
            None => driver,
        };
        let out = driver.arg("--host-alarm-every", "2").output();
        let d = Drive::ran(&out);
        let alarms: u64 = out_line(&out, "host-alarms ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no host-alarms line: {d:?}"));
        (d.returned(), alarms)
    };
    // A login that waits (for the command, for the lock) is interrupted for sure; a
    // quick one may end between two alarms, so only its verdict is checked.
    let verdict = |stack: &Stack, answer: &str, at: Option<u64>| alarmed(stack, answer, at).0;
    let interrupted = |stack: &Stack, answer: &str, at: Option<u64>| {
        let (returned, alarms) = alarmed(stack, answer, at);
        assert!(alarms > 0, "the host's handler ran: {returned:?}");
        returned
    };
    let denied = Returned::Failed("PAM_AUTH_ERR".into());
    let right = code_at(&secret, T0);
    let t0 = Some(T0);
    assert_eq!(verdict(&plain, &right, t0), Returned::Success, "right code");
    assert_eq!(verdict(&plain, &right, t0), denied, "replay");
    assert_eq!(
        verdict(&plain, &wrong_totp(&secret, T0 + 30), Some(T0 + 30)),
        denied,
        "wrong code"
    );
    assert_eq!(
        interrupted(&command, &code_at(&file_secret, T0), t0),
        Returned::Success,
        "secret command"
    );
    // The record's lock held elsewhere: the bounded wait ends in the usual refusal.
    let held = fs::File::open(plain.state_file(u.uid)).expect("open the record");
    held.lock().expect("flock");
    let code = code_at(&secret, now());
    let d = interrupted(&plain, &code, None);
    assert_eq!(d, Returned::Failed("PAM_SYSTEM_ERR".into()), "lock held");
    drop(held);
    // Control: the same code once the lock is free.
    assert_eq!(verdict(&plain, &code, None), Returned::Success, "lock free");
}
