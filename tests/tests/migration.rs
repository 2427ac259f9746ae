//! Migration from google-authenticator without lockouts or silent skips (issue 20):
//! `nullok_missing_home`, and every `nullok` skip logged without `debug`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use system_tests::*;

fn messages(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| syslog_message(l).to_owned()).collect()
}

#[test]
fn nullok_missing_home_skips_only_a_home_that_does_not_exist() {
    let t = "nullok_missing_home_skips_only_a_home_that_does_not_exist";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let gone = TestUser::create("nh");
    let home = gone.secret_path().parent().expect("home").to_path_buf();
    fs::remove_dir_all(&home).expect("remove the home");
    let plain = Stack::probe("svc", "nullok");
    let weak = Stack::probe("svc", "nullok nullok_missing_home");

    // Default: a missing home is an outage, not an opt-out: asked, denied, logged.
    let (d, lines) = capture_syslog(&Driver::new(&plain, "svc", &gone.name).answer("123456"));
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
    let m = messages(&lines);
    assert!(
        m.iter()
            .any(|l| l.contains("does not exist") && l.contains("nullok_missing_home")),
        "{m:#?}"
    );

    // With the option: skipped without a prompt, and the skip is logged at notice
    // (priority authpriv.notice = 85) without `debug`.
    let (d, lines) = capture_syslog(&Driver::new(&weak, "svc", &gone.name).rhost("192.0.2.5"));
    assert_eq!(d.module_code(), "PAM_IGNORE", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("<85>")
            && l.contains(&format!("not asking {} from 192.0.2.5", gone.name))
            && l.contains("nullok_missing_home")),
        "{lines:#?}"
    );

    // A home that exists but cannot be entered is not "missing": still asked.
    let locked = TestUser::create("nl");
    let lhome = locked.secret_path().parent().expect("home").to_path_buf();
    fs::set_permissions(&lhome, fs::Permissions::from_mode(0o000)).expect("chmod");
    std::os::unix::fs::chown(&lhome, Some(0), Some(0)).expect("chown");
    let d = Driver::new(&weak, "svc", &locked.name)
        .answer("123456")
        .run();
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");

    // An enrolled user with a home is unaffected by the option.
    let (u, secret) = TestUser::enrolled("ne");
    let d = Driver::new(&weak, "svc", &u.name)
        .answer(&code_at(&secret, T0))
        .at(T0)
        .run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // Without nullok the option means nothing: a configuration error, no prompt.
    let d = Driver::new(&Stack::probe("svc", "nullok_missing_home"), "svc", &u.name).run();
    assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
}
