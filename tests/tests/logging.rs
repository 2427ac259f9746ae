//! Log lines for configuration problems, and no openlog/closelog. (Who/where/outcome,
//! secret hygiene and escaping are in module_logging.rs.)

use system_tests::{Driver, Stack, built, capture_syslog, require_root, run, write_owned};

fn joined(lines: &[String]) -> String {
    lines.join("\n")
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
    let (_, lines) = capture_syslog(
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
    let (r, lines) = capture_syslog(&Driver::new(&stack, "sshd", "root").answer("000000"));
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
