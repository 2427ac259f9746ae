//! The secret command under hosts that handle SIGCHLD themselves. A daemon may ignore
//! SIGCHLD (the kernel then reaps every child, so no `wait` finds the command) or reap
//! every child in its own handler (which can take the command's exit status first).
//! Either would deny every login with `secret_command=`; the command would also inherit
//! an ignored SIGCHLD. The module runs the command with SIGCHLD at its default and gives
//! the host its own disposition back afterwards, as pam_unix does for its helper.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use pamapp::host_signals::{self, Sigchld};
use totp_os::command::{SecretOutput, run_secret_command};

use system_tests::fleet::{checking_secret_command, trusted_dir};
use system_tests::*;

/// SIGCHLD (17) in the `SigIgn:` mask of /proc/PID/status.
const SIGCHLD_BIT: &str = "0x10000";

/// A command that prints `file` only if SIGCHLD is not ignored in it, and that runs
/// a child of its own first (as a script that asks a directory does).
fn command(dir: &Path, file: &str) -> String {
    checking_secret_command(
        dir,
        &format!(
            "ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)\n\
             if [ $(( 0x$ign & {SIGCHLD_BIT} )) -ne 0 ]; then exit 5; fi"
        ),
        file,
    )
}

/// One test at a time: the in-process test changes this process's SIGCHLD, which
/// would break the other tests' waits for their `pam-drive`.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn line<'a>(d: &'a Drive, out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no `{key}` line: {d:?}"))
}

/// One login by a host whose SIGCHLD disposition is `how`: the result, the disposition
/// after `pam_end`, and how many children the host's handler reaped.
fn login_with_host_sigchld(how: &str, t: u64) -> (String, String, String) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = trusted_dir("sigchld");
    // A tag of each test's own (the host's disposition names the test).
    let u = TestUser::create(&format!("sg{}", &how[..1]));
    let secret = random_secret_b32();
    let stack = Stack::probe("svc", &command(dir.path(), &totp_file(&secret)));
    let out = Driver::login(&stack, &u, &code_at(&secret, t))
        .arg("--host-sigchld", how)
        .at(t)
        .output();
    let d = Drive::ran(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        d.module_code(),
        line(&d, &stdout, "sigchld ").to_owned(),
        line(&d, &stdout, "host-reaped ").to_owned(),
    )
}

#[test]
fn a_host_with_the_default_sigchld_logs_in() {
    if !require_root("a_host_with_the_default_sigchld_logs_in") {
        return;
    }
    let (code, after, reaped) = login_with_host_sigchld("default", T0);
    assert_eq!(code, "PAM_SUCCESS");
    assert_eq!((after.as_str(), reaped.as_str()), ("default", "0"));
}

#[test]
fn a_host_that_ignores_sigchld_logs_in_and_keeps_ignoring_it() {
    if !require_root("a_host_that_ignores_sigchld_logs_in_and_keeps_ignoring_it") {
        return;
    }
    let (code, after, _) = login_with_host_sigchld("ignore", T0);
    assert_eq!(code, "PAM_SUCCESS", "the command's status was found");
    assert_eq!(after, "ignore", "the host's disposition is given back");
}

#[test]
fn a_host_that_reaps_every_child_logs_in_and_keeps_its_handler() {
    if !require_root("a_host_that_reaps_every_child_logs_in_and_keeps_its_handler") {
        return;
    }
    let (code, after, reaped) = login_with_host_sigchld("reap", T0);
    assert_eq!(code, "PAM_SUCCESS", "the command's status was not stolen");
    assert_eq!(after, "reap", "the host's handler is given back");
    assert_eq!(
        reaped, "0",
        "the host's handler never saw the module's child"
    );
}

#[test]
fn overlapping_commands_in_one_process_give_the_host_its_disposition_back() {
    if !require_root("overlapping_commands_in_one_process_give_the_host_its_disposition_back") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = trusted_dir("sigchld-threads");
    let file = totp_file(&random_secret_b32());
    let line = command(dir.path(), &file);
    let path = line
        .strip_prefix("secret_command=")
        .and_then(|l| l.split(' ').next())
        .expect("command path")
        .to_owned();
    // Each command outlives the start of the next: their runs overlap.
    let slow = format!("{path}.slow");
    fs::write(&slow, format!("#!/bin/sh\nsleep 0.2\nexec {path}\n")).expect("write");
    fs::set_permissions(&slow, fs::Permissions::from_mode(0o755)).expect("chmod");

    host_signals::set(Sigchld::Ignore).expect("ignore SIGCHLD");
    let outputs: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..6)
            .map(|i| {
                let slow = &slow;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(30 * i));
                    run_secret_command(
                        Path::new(slow),
                        "nobody",
                        &command_user("alice"),
                        Duration::from_secs(5),
                    )
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("thread"))
            .collect()
    });
    let after = host_signals::current();
    host_signals::set(Sigchld::Default).expect("default SIGCHLD");
    for o in &outputs {
        match o {
            Ok(SecretOutput::Secret(b)) => assert_eq!(&b[..], file.as_bytes()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        after,
        Some(Sigchld::Ignore),
        "the host's disposition is given back"
    );
}

/// A host with a thread that waits for every child (`waitpid(-1)`, a daemon's reaper
/// thread) takes the command's exit status before the module sees it. The login cannot
/// trust an answer without it, so it is refused, and the error names that cause (it
/// said only "No child processes"). The command closes its output and lives on a little,
/// so the module is waiting for its status when the reaper takes it. Control: the same
/// command without the reaper thread gives its file.
#[test]
fn a_host_thread_reaping_every_child_is_named_when_it_takes_the_status() {
    if !require_root("a_host_thread_reaping_every_child_is_named_when_it_takes_the_status") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = trusted_dir("sigchld-reaper");
    let file = totp_file(&random_secret_b32());
    let path = dir.path().join("lingering");
    fs::write(
        &path,
        format!("#!/bin/sh\ncat <<'EOF'\n{file}EOF\nexec >&-\nsleep 0.3\n"),
    )
    .expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = || {
        run_secret_command(
            &path,
            "nobody",
            &command_user("alice"),
            Duration::from_secs(5),
        )
    };
    match run() {
        Ok(SecretOutput::Secret(b)) => assert_eq!(&b[..], file.as_bytes(), "control"),
        other => panic!("control: {other:?}"),
    }

    let stop = std::sync::atomic::AtomicBool::new(false);
    let reaped = std::sync::atomic::AtomicUsize::new(0);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: waitpid with a null status pointer writes no memory.
                if unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {
                    reaped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        // The module may, rarely, see the status before the reaper takes it: that run
        // gives the file, and the next one is tried.
        let mut taken = None;
        for _ in 0..5 {
            match run() {
                Ok(SecretOutput::Secret(b)) => assert_eq!(&b[..], file.as_bytes()),
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    taken = Some(e.to_string());
                    break;
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // A last child wakes the reaper from its wait.
        let _ = std::process::Command::new("/bin/true").status();
        taken
    });
    assert!(
        reaped.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the reaper thread took a child"
    );
    let said = result.expect("the reaper took a command's status in one of the runs");
    assert!(
        said.contains("exit status was taken by another thread") && said.contains("waitpid(-1)"),
        "{said}"
    );
}

/// The same reaper thread when the command leaves a background process holding its
/// output: the module reaches the time limit, finds the command's status taken, and
/// says so (it said "timed out", which sent an admin to `secret_command_timeout=`).
/// Control: without the reaper the same command is named as having exited while
/// something it started kept its output open.
#[test]
fn a_host_thread_reaping_a_command_past_its_time_limit_is_named() {
    if !require_root("a_host_thread_reaping_a_command_past_its_time_limit_is_named") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = trusted_dir("sigchld-reaper-held");
    let file = totp_file(&random_secret_b32());
    let path = dir.path().join("holding");
    fs::write(
        &path,
        format!("#!/bin/sh\ncat <<'EOF'\n{file}EOF\nsleep 1.5 &\n"),
    )
    .expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = || {
        run_secret_command(
            &path,
            "nobody",
            &command_user("alice"),
            Duration::from_millis(500),
        )
    };
    let said = run().expect_err("control: output held open").to_string();
    assert!(
        said.contains("exited (status 0)") && said.contains("kept its standard output open"),
        "control: {said}"
    );

    let stop = std::sync::atomic::AtomicBool::new(false);
    let reaped = std::sync::atomic::AtomicUsize::new(0);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: waitpid with a null status pointer writes no memory.
                if unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {
                    reaped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut said = Vec::new();
        for _ in 0..3 {
            let e = run().expect_err("output held open").to_string();
            let taken = e.contains("exit status was taken by another thread");
            said.push(e);
            if taken {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // A last child wakes the reaper from its wait.
        let _ = std::process::Command::new("/bin/true").status();
        said
    });
    assert!(
        reaped.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the reaper thread took a child"
    );
    assert!(
        result
            .iter()
            .any(|e| e.contains("exit status was taken by another thread")
                && e.contains("waitpid(-1)")),
        "{result:?}"
    );
    assert!(
        !result.iter().any(|e| e.contains("timed out")),
        "{result:?}"
    );
}
