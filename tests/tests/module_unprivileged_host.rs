//! R9 when the host process is not root (a screen locker, a user's own service): the
//! module cannot take an account's identity to read its file, and that failure must not
//! tell the account from a name without one. Both are prompted and denied with
//! `PAM_AUTH_ERR`; the log names the cause for the account.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use system_tests::*;

const UNKNOWN: &str = "ptt-no-such-user-nr";

/// pam-drive for `user` as the unprivileged `host` (no root, no groups), the log
/// captured.
fn drive_as(host: &TestUser, stack: &Stack, user: &str) -> (Drive, Vec<String>) {
    let driver = Driver::new(stack, "svc", user).answer("123456").command();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", host.uid))
        .arg(format!("--regid={}", host.gid))
        .arg("--clear-groups")
        .arg(driver.get_program())
        .args(driver.get_args());
    let (out, lines) = with_syslog_capture(&cmd);
    (Drive::ran(&out), lines)
}

#[test]
fn a_host_without_root_prompts_and_denies_an_account_as_a_name_without_one() {
    let t = "a_host_without_root_prompts_and_denies_an_account_as_a_name_without_one";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "setpriv") {
        return;
    }
    let (u, secret) = TestUser::enrolled("nra");
    let host = TestUser::create("nrh");
    let stack = Stack::with_module("svc", "");
    // The host must be able to read the PAM configuration; the state directory stays
    // out of its reach, as root's is.
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");

    // Control: as root, the account's right code logs in, so the account is sound.
    let d = Driver::login(&stack, &u, &code_at(&secret, now())).run();
    assert_eq!(d.result, "PAM_SUCCESS", "control: {d:?}");

    let (known, known_log) = drive_as(&host, &stack, &u.name);
    let (unknown, unknown_log) = drive_as(&host, &stack, UNKNOWN);
    for (d, log) in [(&known, &known_log), (&unknown, &unknown_log)] {
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}\n{log:#?}");
        assert_eq!(d.prompts, 1, "prompted: {d:?}");
    }
    assert_eq!(
        known.messages, unknown.messages,
        "the same conversation for both names"
    );
    // The fault happened: the log names it, at err level (priority 3 of authpriv: 83).
    assert!(
        known_log.iter().any(|l| l.starts_with("<83>")
            && l.contains(&format!("cannot switch to the identity of uid {}", u.uid))),
        "{known_log:#?}"
    );
    assert!(
        !unknown_log
            .iter()
            .any(|l| l.contains("cannot switch to the identity")),
        "{unknown_log:#?}"
    );
}
