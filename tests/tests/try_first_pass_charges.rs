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
