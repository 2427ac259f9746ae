//! What the module writes to syslog: who, from where, which outcome and why; never a
//! code, a secret or a password; attacker-chosen text escaped; no openlog/closelog.

use system_tests::{
    Drive, Driver, SECRET_160, Stack, TestUser, built, now, oathtool_totp, require_root,
    require_tool, run, with_syslog_capture, write_owned,
};

fn capture(d: &Driver) -> (Drive, Vec<String>) {
    let (out, lines) = with_syslog_capture(&d.command());
    (Drive::parse(&out), lines)
}

fn joined(lines: &[String]) -> String {
    lines.join("\n")
}

#[test]
fn success_and_failure_lines_never_contain_secrets_or_codes() {
    if !require_root("success_and_failure_lines_never_contain_secrets_or_codes")
        || !require_tool("logging", "oathtool")
    {
        return;
    }
    let user = TestUser::create("log");
    user.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n87654321\n"), 0o600);
    let stack = Stack::with_module("sshd", "debug forward_pass");
    let code = oathtool_totp(SECRET_160, now(), 30, 6, "sha1");
    let password = "hunter2-Correct-Horse";
    let (ok, ok_log) = capture(
        &Driver::new(&stack, "sshd", &user.name)
            .answer(&format!("{password}{code}"))
            .rhost("192.0.2.44"),
    );
    assert_eq!(ok.result, "PAM_SUCCESS", "{ok:?}");
    let (bad, bad_log) = capture(
        &Driver::new(&stack, "sshd", &user.name)
            .answer(&format!("{password}123456"))
            .rhost("192.0.2.44"),
    );
    assert_eq!(bad.result, "PAM_AUTH_ERR");
    let (scratch, scratch_log) = capture(
        &Driver::new(&stack, "sshd", &user.name)
            .answer(&format!("{password}87654321"))
            .rhost("192.0.2.44"),
    );
    assert_eq!(scratch.result, "PAM_SUCCESS", "{scratch:?}");

    let all = joined(&[ok_log.clone(), bad_log.clone(), scratch_log.clone()].concat());
    assert!(
        !ok_log.is_empty() && !bad_log.is_empty(),
        "no syslog lines captured"
    );
    for forbidden in [
        SECRET_160,
        &SECRET_160.to_lowercase(),
        "48656c6c6f21deadbeef", // the secret (JBSWY3DPEHPK3PXP...) in hex
        &code,
        "123456",
        "87654321",
        password,
    ] {
        assert!(
            !all.contains(forbidden),
            "syslog contains {forbidden:?}:\n{all}"
        );
    }
    // Who, from where, outcome; authpriv facility (10 << 3).
    let ok_text = joined(&ok_log);
    assert!(
        ok_text.contains(&user.name) && ok_text.contains("192.0.2.44"),
        "{ok_text}"
    );
    assert!(ok_text.contains("accepted"), "{ok_text}");
    assert!(
        joined(&bad_log).contains("invalid verification code"),
        "{bad_log:?}"
    );
    assert!(
        joined(&scratch_log).contains("scratch code"),
        "{scratch_log:?}"
    );
    for line in &ok_log {
        let pri: u32 = line
            .strip_prefix('<')
            .and_then(|r| r.split('>').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert_eq!(pri >> 3, 10, "facility must be authpriv: {line}");
        assert!(
            line.contains("pam_totp") || line.contains("libpam_totp"),
            "{line}"
        );
    }
}

#[test]
fn hostile_names_and_hosts_are_escaped() {
    if !require_root("hostile_names_and_hosts_are_escaped") {
        return;
    }
    let stack = Stack::with_module("sshd", "");
    let (r, lines) = capture(
        &Driver::new(&stack, "sshd", "evil\nFAKE: Accepted for root %n%s\x1b[2J")
            .answer("123456")
            .rhost("host\nFAKE line %s"),
    );
    assert_eq!(r.result, "PAM_AUTH_ERR");
    let all = joined(&lines);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            !line.contains('\n') && !line.contains('\x1b'),
            "raw control byte: {line:?}"
        );
    }
    assert!(all.contains("\\x0a"), "newline should be escaped: {all}");
    assert!(
        all.contains("%n%s"),
        "format specifiers are printed literally: {all}"
    );
}

#[test]
fn a_broken_access_file_is_logged_with_file_and_line() {
    if !require_root("a_broken_access_file_is_logged_with_file_and_line") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("access.conf");
    write_owned(
        &rules,
        b"+ : ALL : 10.0.0.0/24\n+ : ALL : lan.example.com\n",
        0,
        0,
        0o644,
    );
    let stack = Stack::with_module("sshd", &format!("accessfile={}", rules.display()));
    let (_, lines) = capture(
        &Driver::new(&stack, "sshd", "root")
            .answer("000000")
            .rhost("10.0.0.5"),
    );
    let all = joined(&lines);
    assert!(all.contains("access.conf"), "{all}");
    assert!(all.contains("line 2"), "{all}");
}

#[test]
fn an_unknown_option_is_logged_and_denies_without_prompt() {
    if !require_root("an_unknown_option_is_logged_and_denies_without_prompt") {
        return;
    }
    let stack = Stack::with_module("sshd", "nullok no_such_option=1");
    let (r, lines) = capture(&Driver::new(&stack, "sshd", "root").answer("000000"));
    assert_eq!(r.result, "PAM_SERVICE_ERR");
    assert_eq!(r.prompts, 0);
    assert!(joined(&lines).contains("no_such_option"), "{lines:?}");
}

#[test]
fn the_module_never_calls_openlog_or_closelog() {
    let out = run(
        "nm",
        ["-D", "--undefined-only"]
            .iter()
            .map(|s| s.to_string())
            .chain([built().module.to_string_lossy().into_owned()]),
    );
    let syms = String::from_utf8_lossy(&out.stdout);
    assert!(syms.contains("pam_syslog"), "expected pam_syslog: {syms}");
    for bad in ["openlog", "closelog", "syslog@", "vsyslog"] {
        assert!(
            !syms.lines().any(|l| l
                .split_whitespace()
                .last()
                .is_some_and(|s| s.starts_with(bad))),
            "module imports {bad}"
        );
    }
}
