//! The real `sudo` as users drive it from scripts: `sudo -S` reading the code from a
//! pipe, with the line end of a Unix or a Windows-edited file, a code already used, and a
//! code pasted as an app shows it. sudo is run as an enrolled user (setuid root, so on
//! the real clock), with its PAM service and a sudoers file of the test mounted over the
//! host's in a private namespace.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use system_tests::*;

/// Waits until the current 30-s step has at least 8 s left, so the code a test computes
/// is still the current one when sudo checks it.
fn well_inside_a_step() -> u64 {
    loop {
        let t = now();
        if (2..22).contains(&(t % 30)) {
            return t;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn sudo_reading_a_pipe_takes_the_code_and_tells_a_used_or_pasted_one_apart() {
    let test = "sudo_reading_a_pipe_takes_the_code_and_tells_a_used_or_pasted_one_apart";
    for tool in ["sudo", "setpriv", "unshare"] {
        if !require_tool(test, tool) {
            return;
        }
    }
    if !require_root(test) {
        return;
    }
    let (u, secret) = TestUser::enrolled("sd");
    let stack = Stack::new();
    stack.service(
        "sudo",
        "auth required @MODULE@\naccount required pam_permit.so\nsession required pam_permit.so\n",
    );
    let sudoers = stack.path().join("sudoers");
    fs::write(
        &sudoers,
        format!(
            "Defaults !lecture, passwd_tries=1\nroot ALL=(ALL:ALL) ALL\n{} ALL=(ALL:ALL) ALL\n",
            u.name
        ),
    )
    .expect("write sudoers");
    fs::set_permissions(&sudoers, fs::Permissions::from_mode(0o440)).expect("chmod sudoers");
    let pam = stack.path().join("sudo");
    let sudo = |input: &str| {
        let (out, log) = run_with_files_over(
            &[(&pam, "/etc/pam.d/sudo"), (&sudoers, "/etc/sudoers")],
            &format!(
                "printf '{input}' | setpriv --reuid {uid} --regid {gid} --init-groups \
                 sudo -S -k sh -c 'echo ran-as-$(id -u)'",
                uid = u.uid,
                gid = u.gid
            ),
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (stdout.contains("ran-as-0"), stderr, log)
    };
    let accepted = |log: &[String]| {
        log.iter()
            .any(|l| syslog_message(l).starts_with("accepted time-based code for "))
    };

    // The code and a CRLF line end: sudo ends the answer at either, so this logs in.
    let t = well_inside_a_step();
    let code = code_at(&secret, t);
    let (ran, stderr, log) = sudo(&format!("{code}\\r\\n"));
    assert!(
        ran,
        "the code from a pipe runs the command: {stderr} {log:#?}"
    );
    assert!(stderr.contains("Verification code: "), "{stderr}");
    assert!(accepted(&log), "{log:#?}");

    // The same code again (a script re-run within the step): refused, and sudo shows
    // the user why.
    let (ran, stderr, log) = sudo(&format!("{code}\\n"));
    assert!(!ran, "a used code must not run the command: {stderr}");
    assert!(
        stderr.contains("that code was already used; wait for the next code"),
        "{stderr}"
    );
    assert!(!accepted(&log), "{log:#?}");

    // The next step's code pasted as "123 456": one failed attempt, logged as not a code.
    let failures = stored_failures(&stack, u.uid);
    let next = code_at(&secret, t + 30);
    let (ran, stderr, log) = sudo(&format!("{} {}\\n", &next[..3], &next[3..]));
    assert!(
        !ran,
        "a pasted code with a space must not run the command: {stderr}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("the answer is not a code (digits only")),
        "{log:#?}"
    );
    assert_eq!(
        stored_failures(&stack, u.uid),
        failures + 1,
        "one failed attempt"
    );
}
