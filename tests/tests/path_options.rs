//! The one rule for path-valued module options (`accessfile=`, `state_dir=` and the
//! fleet files), through the real libpam and the real CLIs: a `.` component is accepted
//! (an existing line keeps logging in after an upgrade), a control character is refused
//! and the line fails closed, logged, and named by `totp-enroll check` and
//! `totp-state audit`. (The `..` and `PATH_MAX` forms are in the unit tests of
//! `totp-core/src/options/tests.rs`; libpam cuts a pam.d line long before `PATH_MAX`.)

use std::process::{Command, Output, Stdio};

use system_tests::{
    Driver, Stack, T0, TestUser, built, capture_syslog, code_at, require_root, syslog_message,
};

fn check(stack: &Stack, user: &str) -> Output {
    Command::new(&built().enroll)
        .args(["check", "--user", user, "--service", "svc", "--pam-dir"])
        .arg(stack.path())
        .stdin(Stdio::null())
        .output()
        .expect("totp-enroll check")
}

fn audit(stack: &Stack, user: &str) -> Output {
    Command::new(&built().state_tool)
        .args(["audit", "--service", "svc", "--user", user, "--pam-dir"])
        .arg(stack.path())
        .output()
        .expect("totp-state audit")
}

#[test]
fn a_path_option_with_a_control_character_fails_closed_and_a_dot_component_logs_in() {
    if !require_root(
        "a_path_option_with_a_control_character_fails_closed_and_a_dot_component_logs_in",
    ) {
        return;
    }
    let (u, secret) = TestUser::enrolled("pq");

    // Control: a `.` component, refused before by the fleet options' rule, logs in.
    let stack = Stack::new();
    let dotted = format!("{}/./state", stack.path().display());
    stack.service(
        "svc",
        &format!("auth required @MODULE@ state_dir={dotted}\n"),
    );
    let (d, _) = capture_syslog(
        &Driver::new(&stack, "svc", &u.name)
            .answer(&code_at(&secret, T0))
            .at(T0),
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert!(
        stack.state_dir().is_dir(),
        "the state went where the line says"
    );
    assert_eq!(
        audit(&stack, &u.name).status.code(),
        Some(0),
        "audit of the control"
    );

    for (name, value) in [
        (
            "state_dir",
            format!("{}/state\u{1}", stack.path().display()),
        ),
        (
            "state_dir",
            format!("{}/\u{1b}[2Jstate", stack.path().display()),
        ),
        (
            "accessfile",
            format!("{}/access\u{7f}.conf", stack.path().display()),
        ),
    ] {
        let stack = Stack::new();
        stack.service("svc", &format!("auth required @MODULE@ {name}={value}\n"));
        let at = T0 + 60;
        let (d, lines) = capture_syslog(
            &Driver::new(&stack, "svc", &u.name)
                .answer(&code_at(&secret, at))
                .at(at),
        );
        assert_eq!(d.result, "PAM_SERVICE_ERR", "[{name}={value:?}] {d:?}");
        assert_eq!(d.prompts, 0, "[{name}={value:?}] {d:?}");
        let logged = lines
            .iter()
            .filter(|l| syslog_message(l).contains(&format!("invalid {name}= value")))
            .count();
        assert_eq!(logged, 1, "[{name}={value:?}] {lines:#?}");
        assert!(
            lines.iter().all(|l| !l.contains(&value)),
            "[{name}={value:?}] the raw value reached syslog: {lines:#?}"
        );

        let out = check(&stack, &u.name);
        assert!(!out.status.success(), "[{name}={value:?}] check: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("invalid {name}= value")),
            "[{name}={value:?}] check: {out:?}"
        );
        let out = audit(&stack, &u.name);
        assert_eq!(
            out.status.code(),
            Some(1),
            "[{name}={value:?}] audit: {out:?}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("invalid {name}= value")),
            "[{name}={value:?}] audit: {out:?}"
        );
    }
}
