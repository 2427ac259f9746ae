//! What the module writes to syslog (SECURITY.md cases R26, K1, K2): captured from a
//! private `/dev/log` (see `capture_syslog`). Never a code, secret, scratch code or
//! password; hostile user names and hosts escaped; each verdict says who, from where
//! and what happened.

use system_tests::*;

/// True when `code` occurs in `hay` as a whole number (not inside a longer one).
fn has_number(hay: &str, code: &str) -> bool {
    let b = hay.as_bytes();
    hay.match_indices(code).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| b[j]);
        let after = b.get(i + code.len()).copied();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn logs_name_who_where_and_outcome_but_no_secrets() {
    if !require_root("logs_name_who_where_and_outcome_but_no_secrets")
        || !require_tool("logs_name_who_where_and_outcome_but_no_secrets", "unshare")
    {
        return;
    }
    let secret = random_secret_b32();
    let scratch = ["48151623", "42424242", "31415926"];
    let u = TestUser::create("lg");
    u.write_secret(
        &format!("{secret}\n\" TOTP_AUTH\n{}\n", scratch.join("\n")),
        0o600,
    );
    let password = "Tr0ub4dor&3pw";
    let stack = Stack::with_module("svc", "debug forward_pass");
    let host = "192.0.2.9";
    let good = code_at(&secret, T0);
    let wrong = wrong_totp(&secret, T0 + 30);
    let mut all = Vec::new();
    let mut run = |answer: String, at: u64, want: &str| {
        let (d, lines) = login_logged(&stack, &u, &answer, host, at);
        assert_eq!(d.result, want, "{answer}: {d:?}");
        all.extend(lines);
    };
    run(format!("{password}{good}"), T0, "PAM_SUCCESS");
    run(format!("{password}{good}"), T0 + 1, "PAM_AUTH_ERR");
    run(format!("{password}{wrong}"), T0 + 30, "PAM_AUTH_ERR");
    run(format!("{password}{}", scratch[1]), T0 + 31, "PAM_SUCCESS");
    run(format!("{password}{}", scratch[1]), T0 + 32, "PAM_AUTH_ERR");
    assert!(!all.is_empty(), "nothing captured");
    let messages: Vec<&str> = all.iter().map(|l| syslog_message(l)).collect();
    // Positive controls: the verdicts are there, with who and from where.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("accepted") && m.contains(&u.name) && m.contains(host)),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("invalid verification code")
                && m.contains(&u.name)
                && m.contains(host)),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("reused") && m.contains(&u.name)),
        "replay logged: {messages:#?}"
    );
    // Facility authpriv (10 << 3): priorities 80..=87.
    for l in &all {
        let pri: u32 = l
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .and_then(|(p, _)| p.parse().ok())
            .unwrap_or(0);
        assert_eq!(pri >> 3, 10, "facility authpriv: {l}");
    }
    let bytes = totp_core::base32::decode_lenient(secret.as_bytes()).expect("b32");
    for m in &messages {
        for s in [
            secret.as_str(),
            &secret.to_lowercase(),
            &secret[..16],
            &hex(&bytes),
            &hex(&bytes).to_uppercase(),
            password,
            "Tr0ub4dor",
        ] {
            assert!(!m.contains(s), "secret material in log: {m}");
        }
        for code in [good.as_str(), wrong.as_str()].into_iter().chain(scratch) {
            assert!(!has_number(m, code), "code {code} in log: {m}");
        }
    }
}

/// (user, rhost, the single-escaped form that must appear, a fragment that shows the
/// text was not used as a format string).
fn hostile_cases(real_user: &str) -> Vec<(String, String, &'static str, &'static str)> {
    vec![
        (
            "ev\nil%n%s\u{1b}[31m".to_string(),
            "192.0.2.1".to_string(),
            "ev\\x0ail%n%s\\x1b[31m",
            "il%n%s",
        ),
        (
            "nosuch%n%s%x".to_string(),
            "192.0.2.1".to_string(),
            "nosuch%n%s%x",
            "nosuch%n%s%x",
        ),
        (
            real_user.to_string(),
            "10.0.0.1\n%n%s\u{1b}]0;x\u{7}".to_string(),
            "10.0.0.1\\x0a%n%s\\x1b]0;x\\x07",
            "%n%s",
        ),
    ]
}

fn hostile_runs(tag: &str) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let (u, secret) = TestUser::enrolled(tag);
    let stack = Stack::with_module("svc", "debug");
    let mut out = Vec::new();
    for (user, rhost, escaped, literal) in hostile_cases(&u.name) {
        let drv = Driver::new(&stack, "svc", &user)
            .answer(&wrong_totp(&secret, T0))
            .rhost(&rhost)
            .at(T0);
        let (d, lines) = capture_syslog(&drv);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
        assert!(!lines.is_empty(), "nothing captured for {user:?}");
        out.push((escaped, literal, lines));
    }
    out
}

/// K2: no raw control character reaches syslog, `%` sequences are inert text, and the
/// denial is still logged.
#[test]
fn hostile_names_and_hosts_are_inert_in_logs() {
    if !require_root("hostile_names_and_hosts_are_inert_in_logs")
        || !require_tool("hostile_names_and_hosts_are_inert_in_logs", "unshare")
    {
        return;
    }
    for (_, literal, lines) in hostile_runs("li") {
        for l in &lines {
            let m = syslog_message(l);
            assert!(
                !m.chars().any(|c| c.is_control()),
                "raw control character in log: {m:?}"
            );
        }
        assert!(
            lines.iter().any(|l| syslog_message(l).contains(literal)),
            "{literal:?} not logged literally (format-string use?): {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| {
                let m = syslog_message(l);
                m.contains("code not verified (") || m.contains("invalid verification code")
            }),
            "outcome logged: {lines:#?}"
        );
    }
}

/// Escaping is applied once (`\n` → `\x0a`, as `log::sanitize` documents), so the log
/// shows the name a reader can map back to the bytes sent.
#[test]
fn hostile_names_and_hosts_are_escaped_exactly_once() {
    if !require_root("hostile_names_and_hosts_are_escaped_exactly_once")
        || !require_tool(
            "hostile_names_and_hosts_are_escaped_exactly_once",
            "unshare",
        )
    {
        return;
    }
    for (escaped, _, lines) in hostile_runs("lx") {
        assert!(
            lines.iter().any(|l| syslog_message(l).contains(escaped)),
            "{escaped:?} not found in {lines:#?}"
        );
    }
}

/// A learned skew beyond the admin cap is clamped, and the log line says how the user
/// (or the admin) measures the clock offset again: `totp-enroll resync` (issue 12).
#[test]
fn a_clamped_skew_names_the_resync_command() {
    let test = "a_clamped_skew_names_the_resync_command";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("sk");
    // GA learned -1000 steps; an admin capped the skew at 3 steps, so the code of the
    // real clock is refused and the log tells what to do.
    u.write_secret(
        &format!("{secret}\n\" TOTP_AUTH\n\" TIME_SKEW -1000\n"),
        0o600,
    );
    let stack = Stack::with_module("svc", "max_time_skew=3");
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    // Steps t-4..t-2 are searched (skew -3, window 3): the phone's right code is refused.
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    let clamped: Vec<&str> = lines
        .iter()
        .map(|l| syslog_message(l))
        .filter(|m| m.contains("TIME_SKEW -1000 exceeds the admin cap; using -3"))
        .collect();
    assert_eq!(clamped.len(), 1, "{lines:?}");
    assert!(clamped[0].contains("totp-enroll resync"), "{}", clamped[0]);
}

/// pam_totp(8), max_window= and max_time_skew=: a clamped `WINDOW_SIZE` is logged when
/// a code is refused (it may be why) and at every login with `debug`, never on an
/// ordinary success, so a routine fact does not fill the log (docs/logging.md).
#[test]
fn a_clamped_window_is_logged_on_a_refusal_or_with_debug() {
    let test = "a_clamped_window_is_logged_on_a_refusal_or_with_debug";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("cw");
    u.write_secret(
        &format!("{secret}\n\" WINDOW_SIZE 21\n\" TOTP_AUTH\n"),
        0o600,
    );
    let clamp = "WINDOW_SIZE 21 exceeds the admin cap; using 17";
    let logged = |lines: &[String]| lines.iter().any(|l| syslog_message(l).contains(clamp));
    for (args, at, right, want, clamp_logged) in [
        ("", T0, true, "PAM_SUCCESS", false),
        ("", T0 + 60, false, "PAM_AUTH_ERR", true),
        ("debug", T0 + 120, true, "PAM_SUCCESS", true),
    ] {
        let stack = Stack::with_module("svc", args);
        let answer = if right {
            code_at(&secret, at)
        } else {
            wrong_totp(&secret, at)
        };
        let (d, lines) = login_logged(&stack, &u, &answer, None, at);
        assert_eq!(d.result, want, "[{args}] {d:?}");
        assert_eq!(logged(&lines), clamp_logged, "[{args}] {want}: {lines:#?}");
    }
}

/// An unknown option is logged by its name alone: a pam.d line mistyped around a
/// password or secret (`secert=...`, `foo=...`) must not put the value in syslog. The
/// login still fails closed, with the one line that names the option.
#[test]
fn an_unknown_option_logs_its_name_never_its_value() {
    let test = "an_unknown_option_logs_its_name_never_its_value";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("uo");
    u.write_secret(&format!("{secret}\n\" TOTP_AUTH\n"), 0o600);
    let value = "S3cr3tV4lueTypedHere";
    // Control: the same code, with a known option only, logs in.
    let stack = Stack::with_module("svc", "debug");
    let (d, _) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    for arg in [format!("foo={value}"), format!("secert=/x/{value}")] {
        let stack = Stack::with_module("svc", &format!("debug {arg}"));
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 60);
        assert_ne!(d.result, "PAM_SUCCESS", "[{arg}] {d:?}");
        let name = arg.split('=').next().unwrap_or_default();
        let named: Vec<&str> = lines
            .iter()
            .map(|l| syslog_message(l))
            .filter(|m| m.contains(&format!("unrecognized option \"{name}\"")))
            .collect();
        assert_eq!(named.len(), 1, "[{arg}] {lines:#?}");
        assert!(
            lines.iter().all(|l| !l.contains(value)),
            "[{arg}] the value reached syslog: {lines:#?}"
        );
    }
}

/// docs/file-format.md: a file GA wrote with `-w 21` needs `max_window=21` on the line,
/// which lets the far edge of its window in; the loosened option is named in the log
/// only with `debug` (SECURITY.md R28's deviation), not at every load. Controls: the
/// same line with `debug` names it once; `debug` alone names no option and keeps the
/// cap of 17, which refuses that edge.
#[test]
fn a_loosened_max_window_is_named_only_with_debug() {
    let test = "a_loosened_max_window_is_named_only_with_debug";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("lw");
    u.write_secret(
        &format!("{secret}\n\" WINDOW_SIZE 21\n\" TOTP_AUTH\n"),
        0o600,
    );
    let named = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| syslog_message(l).contains("weakens security"))
            .map(|l| syslog_message(l).to_owned())
            .collect::<Vec<_>>()
    };
    for (args, at, want, logged) in [
        ("max_window=21", T0, "PAM_SUCCESS", vec![]),
        (
            "debug max_window=21",
            T0 + 60,
            "PAM_SUCCESS",
            vec!["option max_window weakens security (see pam_totp(8))"],
        ),
        ("debug", T0 + 120, "PAM_AUTH_ERR", vec![]),
    ] {
        let stack = Stack::with_module("svc", args);
        // The phone ten steps ahead: the last step of a 21-step window.
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at + 300), None, at);
        assert_eq!(d.result, want, "[{args}] {d:?}");
        assert_eq!(named(&lines), logged, "[{args}] {lines:#?}");
    }
}

/// docs/logging.md, SECURITY.md R10: an 80-bit secret (google-authenticator's before
/// 2016) logs in, and the warning that it is short is a fact of the configuration,
/// logged only with `debug`. Controls: the same login without `debug` logs no such
/// line; a 160-bit secret with `debug` neither.
#[test]
fn a_short_secret_is_warned_of_only_with_debug() {
    let test = "a_short_secret_is_warned_of_only_with_debug";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let u = TestUser::create("ss");
    // 16 base32 characters: 80 bits.
    let short = "JBSWY3DPEHPK3PXP";
    let long = random_secret_b32();
    let warned = |lines: &[String]| {
        lines
            .iter()
            .any(|l| syslog_message(l).contains("secret is only 80 bits; re-enroll"))
    };
    for (secret, args, at, want) in [
        (short, "", T0, false),
        (short, "debug", T0 + 30, true),
        (long.as_str(), "debug", T0 + 60, false),
    ] {
        u.write_secret(&format!("{secret}\n\" TOTP_AUTH\n"), 0o600);
        let stack = Stack::with_module("svc", args);
        let (d, lines) = login_logged(&stack, &u, &code_at(secret, at), None, at);
        assert_eq!(d.result, "PAM_SUCCESS", "[{args}] {d:?}");
        assert_eq!(warned(&lines), want, "[{args}] {secret}: {lines:#?}");
    }
}

/// A file with no mode line GA or the module recognises (`"  TOTP_AUTH`, a key in lower
/// case) and no scratch code accepts nothing: the log said only `invalid verification
/// code`, so the admin looked for a phone's clock, and fail2ban counted the user's own
/// address. The module now says the file is the problem (its path and the mode line it
/// lacks, never the secret) at `err`, and ends with `code not verified (secret file
/// unusable)`, as totp-state audit refuses it. With scratch codes a `warning` says only
/// they log in, and one still does. Control: the same secret with `" TOTP_AUTH` logs in
/// with the same code.
#[test]
fn a_file_without_a_recognised_mode_line_is_logged_as_the_files_fault() {
    if !require_root("a_file_without_a_recognised_mode_line_is_logged_as_the_files_fault") {
        return;
    }
    let u = TestUser::create("nm");
    let secret = random_secret_b32();
    let stack = Stack::with_module("svc", "");
    let t = now();
    let file = u.secret_path().display().to_string();
    let no_mode = format!("secret file {file} has no TOTP_AUTH or HOTP_COUNTER line");
    let login = |body: &str, answer: &str, at: u64| {
        u.write_secret(body, 0o600);
        let (d, logs) = capture_syslog(&Driver::login(&stack, &u, answer).at(at));
        for l in &logs {
            assert!(!l.contains(&secret), "the secret is never logged: {l}");
        }
        (d, logs)
    };
    for (what, body) in [
        ("two blanks", format!("{secret}\n\"  TOTP_AUTH\n")),
        ("lower case", format!("{secret}\n\" totp_auth\n")),
    ] {
        let (d, logs) = login(&body, &code_at(&secret, t), t);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{what}: {d:?}");
        assert!(
            logs.iter().any(|l| l.starts_with("<83>")
                && l.contains(&no_mode)
                && l.contains("holds no scratch code: every login is denied")),
            "{what}: {logs:#?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.contains("code not verified (secret file unusable)")),
            "{what}: {logs:#?}"
        );
        assert!(
            !logs.iter().any(|l| l.contains("invalid verification code")),
            "{what}: {logs:#?}"
        );
    }
    // With a scratch code: a warning, and the scratch code logs in.
    let (d, logs) = login(
        &format!("{secret}\n\"  TOTP_AUTH\n48151623\n"),
        "48151623",
        t + 60,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {logs:#?}");
    assert!(
        logs.iter().any(|l| l.starts_with("<84>")
            && l.contains(&no_mode)
            && l.contains("only its 1 scratch code logs in, once")),
        "{logs:#?}"
    );
    // Control: the mode line as GA writes it.
    let (d, logs) = login(
        &format!("{secret}\n\" TOTP_AUTH\n"),
        &code_at(&secret, t + 120),
        t + 120,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {logs:#?}");
    assert!(!logs.iter().any(|l| l.contains(&no_mode)), "{logs:#?}");
}

/// `" HOTP_COUNTER 0` is spelled as a mode line should be, yet a counter below 1 is no
/// counter (for GA too): without `TOTP_AUTH` and scratch codes the file accepts
/// nothing. The line naming the file's fault said a mode line "must read
/// '" HOTP_COUNTER n'", which the admin reads as what the file already holds; it now
/// says the counter must be 1 or more. Control: `" HOTP_COUNTER 1` logs the token's
/// code in, without the line.
#[test]
fn an_hotp_counter_of_0_is_named_as_no_counter() {
    let t = "an_hotp_counter_of_0_is_named_as_no_counter";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("hz");
    let secret = random_secret_b32();
    let stack = Stack::with_module("svc", "");
    let t = now();
    let file = u.secret_path().display().to_string();
    let no_mode = format!("secret file {file} has no TOTP_AUTH or HOTP_COUNTER line");
    let login = |counter: u64, at: u64| {
        u.write_secret(&format!("{secret}\n\" HOTP_COUNTER {counter}\n"), 0o600);
        capture_syslog(&Driver::login(&stack, &u, &oathtool_hotp(&secret, counter)).at(at))
    };
    let (d, logs) = login(0, t);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert!(
        logs.iter().any(|l| l.starts_with("<83>")
            && l.contains(&no_mode)
            && l.contains("with n of 1 or more")
            && l.contains("nor a counter of 0")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("code not verified (secret file unusable)")),
        "{logs:#?}"
    );
    // Control: a counter of 1 is a counter.
    let (d, logs) = login(1, t + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {logs:#?}");
    assert!(!logs.iter().any(|l| l.contains(&no_mode)), "{logs:#?}");
}
