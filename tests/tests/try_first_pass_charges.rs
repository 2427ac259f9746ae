//! `try_first_pass` through the real libpam: a code-shaped `PAM_AUTHTOK` that fails is
//! a guess, and so is the code typed at the prompt after it. Each is charged, and the
//! typed one is admitted again against what the first failure wrote, so one login
//! never gets two guesses for one charge nor a guess past `max_failures=` (R14).

use system_tests::*;

/// `svc`: pam_unix reads the password and stores it as `PAM_AUTHTOK` (its own verdict is
/// moot), then the module with `try_first_pass` and `args`. Backoff starts late enough
/// here that only the hard cap can refuse.
fn stack(args: &str) -> Stack {
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!(
            "auth optional pam_unix.so nodelay\n\
             auth requisite @MODULE@ try_first_pass throttle_after=50 {args}\n"
        ),
    );
    stack
}

/// One login: `password` at pam_unix's prompt (what becomes `PAM_AUTHTOK`), then `code`
/// at the module's; the result and the module's log lines.
fn login(stack: &Stack, u: &TestUser, password: &str, code: &str, at: u64) -> (Drive, String) {
    let driver = Driver::new(stack, "svc", &u.name)
        .answer(password)
        .answer(code)
        .rhost("192.0.2.40")
        .at(at);
    let (d, lines) = capture_syslog(&driver);
    (d, lines.join("\n"))
}

const CAPPED: &str = "second factor disabled after too many failures (max_failures)";

#[test]
fn the_typed_code_is_refused_once_the_password_guess_reached_max_failures() {
    let t = "the_typed_code_is_refused_once_the_password_guess_reached_max_failures";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    // The cap, then (control) one failure more of room; the same logins for both.
    for (cap, capped) in [(3, true), (4, false)] {
        let (u, secret) = TestUser::enrolled(&format!("tc{cap}"));
        let stack = stack(&format!("max_failures={cap}"));
        let wrong = wrong_totp(&secret, T0);
        // Two wrong guesses in one login: two failures.
        let (d, l) = login(&stack, &u, &wrong, &wrong_totp(&secret, T0 + 1), T0);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}\n{l}");
        assert_eq!(stored_failures(&stack, u.uid), 2, "cap {cap}: {l}");
        // The wrong guess as the password is the third failure; the right code follows.
        let at = T0 + 60;
        let (d, l) = login(&stack, &u, &wrong, &code_at(&secret, at), at);
        if capped {
            assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}\n{l}");
            assert!(l.contains(CAPPED), "{l}");
            assert!(!l.contains("accepted time-based code"), "{l}");
            assert_eq!(stored_failures(&stack, u.uid), 3, "{l}");
            assert_eq!(
                stored_last_step(&stack, u.uid),
                None,
                "the code was not used"
            );
        } else {
            assert_eq!(d.result, "PAM_SUCCESS", "{d:?}\n{l}");
            assert!(l.contains("accepted time-based code"), "{l}");
            assert!(!l.contains(CAPPED), "{l}");
            assert_eq!(stored_failures(&stack, u.uid), 0, "{l}");
        }
    }
}

/// A password that is not code-shaped was never a guess: nothing is charged for it, and
/// only the wrong code typed after it counts.
#[test]
fn a_password_that_is_no_code_is_not_charged() {
    let t = "a_password_that_is_no_code_is_not_charged";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tcpw");
    let stack = stack("max_failures=3");
    let (d, l) = login(&stack, &u, "hunter", &wrong_totp(&secret, T0), T0);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}\n{l}");
    assert_eq!(stored_failures(&stack, u.uid), 1, "{l}");
    // Control: the same wrong code as the password is a guess of its own.
    let (d, l) = login(
        &stack,
        &u,
        &wrong_totp(&secret, T0),
        &wrong_totp(&secret, T0),
        T0 + 1,
    );
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}\n{l}");
    assert_eq!(stored_failures(&stack, u.uid), 3, "{l}");
}

/// The `digits`-digit SHA-1 TOTP code with 30-s steps at `unix`.
fn code_of(secret: &str, unix: u64, digits: totp_core::otp::Digits) -> String {
    let bytes = totp_core::base32::decode_lenient(secret.as_bytes()).expect("base32 secret");
    let s = totp_core::secret::Secret::new(bytes);
    let step = i64::try_from(unix).expect("time");
    let v =
        totp_core::otp::totp(&s, step, 30, totp_core::otp::Algorithm::Sha1, digits).expect("totp");
    totp_core::otp::format_code(v, digits).to_string()
}

/// A user whose password ends in digits (what pam_unix stores as `PAM_AUTHTOK` on every
/// login) mistypes the code once, then types the right one: logged in, with the default
/// backoff. The password's check fails on every login and is charged; it must not be
/// what keeps every later right code out (a backoff it restarts on each login).
#[test]
fn a_password_ending_in_digits_and_one_mistyped_code_do_not_lock_the_user_out() {
    let t = "a_password_ending_in_digits_and_one_mistyped_code_do_not_lock_the_user_out";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    use totp_core::otp::Digits;
    let mut refused = Vec::new();
    // 8-digit codes with a password ending in 6 digits, 6-digit codes with one ending in
    // 6, and (control) a password without digits.
    for (tag, digits, password) in [
        ("tcd8", Digits::EIGHT, "Summer123456"),
        ("tcd6", Digits::SIX, "Summer123456"),
        ("tcdn", Digits::EIGHT, "Summer"),
    ] {
        let (u, secret) = TestUser::enrolled(tag);
        if digits == Digits::EIGHT {
            u.write_secret(
                &format!("{secret}\n\" TOTP_AUTH\n\" PAM_TOTP_DIGITS 8\n"),
                0o600,
            );
        }
        let stack = Stack::new();
        stack.service(
            "svc",
            "auth optional pam_unix.so nodelay\n\
             auth requisite @MODULE@ try_first_pass\n",
        );
        let wrong = if code_of(&secret, T0, digits).starts_with('1') {
            "2".repeat(digits.len())
        } else {
            "1".repeat(digits.len())
        };
        let (d, l) = login(&stack, &u, password, &wrong, T0);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{tag}: {d:?}\n{l}");
        // Later logins with the right code, each after any backoff would have ended.
        for at in [T0 + 120, T0 + 1200, T0 + 3600] {
            let (d, l) = login(&stack, &u, password, &code_of(&secret, at, digits), at);
            if d.result != "PAM_SUCCESS" {
                refused.push(format!("{tag} at +{}: {d:?}\n{l}", at - T0));
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

/// R9 with the backoff the failed `PAM_AUTHTOK` check starts: the code typed after it is
/// checked (and charged) for an account, and so for a name without one, whose typed
/// answer is charged the same way; the next login meets the backoff for both. Same
/// results, prompts and messages, login after login, from one origin.
#[test]
fn the_backoff_a_password_guess_starts_is_met_alike_with_or_without_an_account() {
    let t = "the_backoff_a_password_guess_starts_is_met_alike_with_or_without_an_account";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("tcbo");
    u.write_secret(
        &format!("{secret}\n\" TOTP_AUTH\n\" PAM_TOTP_DIGITS 8\n"),
        0o600,
    );
    let stranger = format!("{}x", u.name);
    let mut seen = Vec::new();
    for user in [u.name.as_str(), stranger.as_str()] {
        let stack = Stack::new();
        stack.service(
            "svc",
            "auth optional pam_unix.so nodelay\n\
             auth requisite @MODULE@ try_first_pass\n",
        );
        let mut runs = Vec::new();
        for at in [T0, T0 + 60, T0 + 61, T0 + 600] {
            let driver = Driver::new(&stack, "svc", user)
                .answer("pw123456")
                .answer("11111111")
                .rhost("192.0.2.41")
                .at(at);
            let d = driver.run();
            runs.push((d.result, d.prompts, d.messages));
        }
        seen.push(runs);
    }
    assert_eq!(seen[0], seen[1], "the account, then the name without one");
    // Not alike by doing nothing: the third failure (the second login's password) starts
    // the backoff, its typed code is still answered as wrong, and the next login waits.
    let waits = |r: &(String, usize, Vec<(i32, String)>)| {
        r.2.iter().any(|(_, m)| m.contains("too many failed codes"))
    };
    let runs = &seen[0];
    assert!(!waits(&runs[0]) && !waits(&runs[1]), "{runs:?}");
    assert!(waits(&runs[2]), "{runs:?}");
}

/// A user whose password ends in digits logs in often (sudo every ten minutes): each
/// login's password check fails and is charged, but the login then succeeds. The
/// per-user ceiling bounds guessing; a login with the right code was no guessing, and
/// must not use it up until the user is kept out.
#[test]
fn frequent_logins_with_a_password_ending_in_digits_never_meet_the_ceiling() {
    let t = "frequent_logins_with_a_password_ending_in_digits_never_meet_the_ceiling";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    // The password ending in digits, then (control) one without.
    for (tag, password) in [("tcfd", "Summer123456"), ("tcfn", "Summer")] {
        let (u, secret) = TestUser::enrolled(tag);
        let stack = Stack::new();
        stack.service(
            "svc",
            "auth optional pam_unix.so nodelay\n\
             auth requisite @MODULE@ try_first_pass\n",
        );
        for i in 0..20u64 {
            let at = T0 + 600 * i;
            let (d, l) = login(&stack, &u, password, &code_at(&secret, at), at);
            assert_eq!(d.result, "PAM_SUCCESS", "{tag}, login {i}: {d:?}\n{l}");
        }
    }
}

/// An account with 8-digit codes whose password ends in 6 digits logs in with the
/// password and code in one answer: from `PAM_AUTHTOK` (`use_first_pass`) and at the
/// module's own `forward_pass` prompt. Reading `PAM_AUTHTOK` as 6-digit codes decides
/// only whether it holds a code; the code is split at the account's 8 digits.
/// Control: a wrong 8-digit code is refused both ways.
#[test]
fn an_eight_digit_account_logs_in_with_a_password_ending_in_digits_and_its_code() {
    let t = "an_eight_digit_account_logs_in_with_a_password_ending_in_digits_and_its_code";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    use totp_core::otp::Digits;
    let (u, secret) = TestUser::enrolled("tce8");
    u.write_secret(
        &format!("{secret}\n\" TOTP_AUTH\n\" PAM_TOTP_DIGITS 8\n"),
        0o600,
    );
    let stacks = [
        "auth optional pam_unix.so nodelay\n\
         auth requisite @MODULE@ use_first_pass\n",
        "auth requisite @MODULE@ forward_pass\n",
    ];
    for (i, lines) in stacks.into_iter().enumerate() {
        let stack = Stack::new();
        stack.service("svc", lines);
        for (n, right) in [(0u64, true), (1, false)] {
            let at = T0 + 60 * (2 * i as u64 + n);
            let code = code_of(&secret, at, Digits::EIGHT);
            let code = if right {
                code
            } else if code.starts_with('1') {
                "22222222".to_owned()
            } else {
                "11111111".to_owned()
            };
            let d = Driver::new(&stack, "svc", &u.name)
                .answer(&format!("Summer123456{code}"))
                .rhost("192.0.2.42")
                .at(at)
                .run();
            let want = if right { "PAM_SUCCESS" } else { "PAM_AUTH_ERR" };
            assert_eq!(d.result, want, "stack {i}, right code: {right}: {d:?}");
        }
    }
}
