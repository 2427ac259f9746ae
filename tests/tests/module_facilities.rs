//! The module on a PAM line of another type than `auth` (`account`, `session`,
//! `password`), as a stack copied from a blog post puts it, through the real `su` and
//! `chpasswd` of util-linux and shadow, with the service file bind-mounted over theirs in
//! a private mount namespace (the host's `/etc/pam.d` is untouched).
//!
//! Such a line can ask for no code. It used to return `PAM_IGNORE` without a word, so the
//! login went through and the admin believed the second factor was checked;
//! google-authenticator's module, which exports no such hook, makes libpam fail the line
//! (`PAM_MODULE_UNKNOWN`). Now the line fails and the log says why and what to do.

use std::process::Output;

use system_tests::*;

/// `script` with `stack`'s file for `service` mounted over the host's.
fn run_with_service(stack: &Stack, service: &str, script: &str) -> (Output, Vec<String>) {
    let file = stack.path().join(service);
    run_with_files_over(&[(&file, &format!("/etc/pam.d/{service}"))], script)
}

/// `su` from root to `user`, running a shell that prints `reached`.
fn su_reaches(stack: &Stack, user: &TestUser) -> (bool, String, Vec<String>) {
    let (out, log) = run_with_service(
        stack,
        "su",
        &format!("su -s /bin/sh -c 'echo reached' {} 2>&1", user.name),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && text.contains("reached"), text, log)
}

/// Whether the log names the line's type; libpam's own prefix names the call
/// (`chauthtok` for a password line).
fn says_misplaced(log: &[String], service: &str, call: &str, kind: &str) -> bool {
    log.iter().any(|l| {
        l.contains(&format!("pam_totp({service}:{call})"))
            && l.contains(&format!("loaded on a PAM line of type {kind}"))
            && l.contains("move it to an auth line")
    })
}

const SU_AUTH: &str = "auth required pam_permit.so\naccount required pam_unix.so\n";

#[test]
fn account_and_session_lines_fail_su_and_say_why() {
    let test = "account_and_session_lines_fail_su_and_say_why";
    if !require_root(test) || !require_tool(test, "su") || !require_tool(test, "unshare") {
        return;
    }
    let u = TestUser::create("fa");
    // Enrolled, so that nothing but the line's type can explain the outcome.
    u.write_secret(&totp_file(&random_secret_b32()), 0o600);

    // Control: the stack without the module lets su through.
    let control = Stack::new();
    control.service("su", &format!("{SU_AUTH}session required pam_permit.so\n"));
    let (ok, text, _) = su_reaches(&control, &u);
    assert!(
        ok,
        "control: su without the module line runs the shell: {text}"
    );

    for (kind, lines) in [
        (
            "account",
            format!("{SU_AUTH}account required @MODULE@\nsession required pam_permit.so\n"),
        ),
        (
            "session",
            format!("{SU_AUTH}session required pam_permit.so\nsession required @MODULE@\n"),
        ),
    ] {
        let stack = Stack::new();
        stack.service("su", &lines);
        let (ok, text, log) = su_reaches(&stack, &u);
        assert!(!ok, "{kind}: su must not run the shell: {text}");
        assert!(
            says_misplaced(&log, "su", kind, kind),
            "{kind}: the log says the line is misplaced: {log:#?}"
        );
        // Nothing was asked: the line is wrong, not the user.
        assert!(!text.contains("Verification code"), "{kind}: {text}");
    }

    // google-authenticator's module on the account line: libpam fails it as well.
    let ga = Stack::new();
    ga.service(
        "su",
        &format!("{SU_AUTH}account required pam_google_authenticator.so\nsession required pam_permit.so\n"),
    );
    let (ok, text, _) = su_reaches(&ga, &u);
    assert!(!ok, "google-authenticator on the account line: {text}");
}

#[test]
fn a_password_line_fails_chpasswd_and_says_why() {
    let test = "a_password_line_fails_chpasswd_and_says_why";
    if !require_root(test) || !require_tool(test, "chpasswd") || !require_tool(test, "unshare") {
        return;
    }
    let u = TestUser::create("fp");
    let shadow_hash = || {
        std::fs::read_to_string("/etc/shadow")
            .expect("read /etc/shadow")
            .lines()
            .find_map(|l| {
                let mut f = l.split(':');
                (f.next() == Some(u.name.as_str())).then(|| f.next().unwrap_or("").to_string())
            })
            .expect("the user's shadow line")
    };
    let change = |stack: &Stack, pw: &str| {
        run_with_service(
            stack,
            "chpasswd",
            &format!("echo '{}:{pw}' | chpasswd 2>&1", u.name),
        )
    };

    // Control: pam_unix alone changes the password.
    let control = Stack::new();
    control.service("chpasswd", "password required pam_unix.so yescrypt\n");
    let before = shadow_hash();
    let (out, _) = change(&control, "Control-pw-1");
    assert!(out.status.success(), "control: {out:?}");
    let changed = shadow_hash();
    assert_ne!(before, changed, "control: the password changed");

    let stack = Stack::new();
    stack.service(
        "chpasswd",
        "password required pam_unix.so yescrypt\npassword required @MODULE@\n",
    );
    let (out, log) = change(&stack, "Other-pw-2");
    assert!(!out.status.success(), "chpasswd must fail: {out:?}");
    assert_eq!(shadow_hash(), changed, "the password is unchanged");
    assert!(
        says_misplaced(&log, "chpasswd", "chauthtok", "password"),
        "the log says the line is misplaced: {log:#?}"
    );
}
