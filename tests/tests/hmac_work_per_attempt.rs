//! I8 of SECURITY.md through the real libpam: the work of one attempt is at most the
//! window's HMACs, the admin's `max_window=` caps it, and it is the same whatever the
//! answer (right code, wrong code, a scratch code, an 8-digit answer that is none).
//!
//! The module is built with the test-only feature `test-hmac-count` (`pam_totp` and
//! `totp-core`), which counts every OTP HMAC the process computes and logs, once per
//! `pam_sm_authenticate`, "test build: N OTP HMACs in this call". The real module has no
//! such counter or line (the feature is off in every build but this test's).
//!
//! Also B2's work, not its timing: a name with no account computes as many OTP HMACs as
//! a real user with the default window.

use std::sync::OnceLock;

use system_tests::*;

/// A scratch code in every secret file of this test.
const SCRATCH: &str = "27182818";
/// An 8-digit answer that is not a scratch code (without `forward_pass` an 8-digit
/// answer is never read as a 6-digit code).
const NOT_SCRATCH: &str = "31415926";

fn counting_module() -> &'static std::path::Path {
    static SO: OnceLock<std::path::PathBuf> = OnceLock::new();
    SO.get_or_init(|| module_with_feature("test-hmac-count"))
}

/// What one call computed: OTP HMACs (HMAC-SHA1 of the secret) and store-key tags
/// (HMAC-SHA256 under the state store's key: the enrolment's name, a scratch code's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Work {
    otp: u64,
    tags: u64,
}

/// The counts the test build logged, one per `pam_sm_authenticate` call.
fn counts(syslog: &[String]) -> Vec<Work> {
    syslog
        .iter()
        .filter_map(|l| {
            let rest = syslog_message(l)
                .strip_prefix("test build: ")?
                .strip_suffix(" store-key tags in this call")?;
            let (otp, tags) = rest.split_once(" OTP HMACs and ")?;
            Some(Work {
                otp: otp.parse().ok()?,
                tags: tags.parse().ok()?,
            })
        })
        .collect()
}

/// One login with the counting module: what the module returned and what it computed.
fn counted(stack: &Stack, user: &str, answer: &str) -> (Returned, Work, Vec<String>) {
    let (d, syslog) = capture_syslog(&Driver::new(stack, "svc", user).answer(answer));
    let c = counts(&syslog);
    assert_eq!(c.len(), 1, "one count per call: {syslog:?}");
    (d.returned(), c[0], syslog)
}

/// I8: for each file `WINDOW_SIZE` and admin `max_window=`, a right and a wrong 6-digit
/// code each cost exactly min(window, cap) OTP HMACs, never more; a scratch code and an
/// 8-digit answer that is no scratch code cost none (without `forward_pass` an 8-digit
/// answer is only ever a scratch candidate: its shape, which the user typed, decides
/// this, not the secret). Right and wrong answers of one shape cost the same store-key
/// tags too. The result of each login is checked, so each count belongs to a login that
/// really took that path.
#[test]
fn each_attempt_costs_the_capped_window_whatever_the_answer() {
    if !require_root("each_attempt_costs_the_capped_window_whatever_the_answer") {
        return;
    }
    let (u, secret) = TestUser::enrolled("hw");
    // (file WINDOW_SIZE, module max_window=, expected OTP HMACs for a 6-digit answer)
    let cases: &[(Option<u32>, Option<u32>, u64)] = &[
        (None, None, 3),
        (Some(9), None, 9),
        (Some(17), Some(5), 5),
        (Some(100), None, 17),
        (Some(1), None, 1),
    ];
    for &(window, cap, expected) in cases {
        let args = cap.map(|c| format!("max_window={c}")).unwrap_or_default();
        let stack = Stack::probe_module("svc", counting_module(), &args);
        let file = match window {
            Some(w) => format!("{}\" WINDOW_SIZE {w}\n{SCRATCH}\n", totp_file(&secret)),
            None => format!("{}{SCRATCH}\n", totp_file(&secret)),
        };
        let t = now();
        // (name, answer, accepted, expected OTP HMACs)
        let answers: [(&str, String, bool, u64); 4] = [
            ("right code", code_at(&secret, t), true, expected),
            ("wrong code", wrong_totp(&secret, t), false, expected),
            ("scratch code", SCRATCH.to_string(), true, 0),
            (
                "8 digits, no scratch code",
                NOT_SCRATCH.to_string(),
                false,
                0,
            ),
        ];
        let mut work = Vec::new();
        for (name, answer, accepted, otp) in answers {
            u.write_secret(&file, 0o600);
            reset_state(&stack, u.uid);
            let (returned, w, syslog) = counted(&stack, &u.name, &answer);
            let case = format!("WINDOW_SIZE {window:?}, max_window {cap:?}, {name}");
            if accepted {
                assert_eq!(returned, Returned::Success, "{case}: {syslog:?}");
            } else {
                assert_eq!(
                    returned,
                    Returned::Failed("PAM_AUTH_ERR".into()),
                    "{case}: {syslog:?}"
                );
            }
            assert_eq!(w.otp, otp, "{case}: OTP HMACs per attempt");
            work.push(w);
        }
        let case = format!("WINDOW_SIZE {window:?}, max_window {cap:?}");
        assert_eq!(
            work[0], work[1],
            "{case}: right and wrong code: the same work"
        );
        assert_eq!(
            work[2], work[3],
            "{case}: a scratch code and an 8-digit answer that is none: the same work"
        );
        assert!(
            work.iter().all(|w| w.tags <= 2),
            "{case}: store-key tags per attempt: {work:?}"
        );
    }
}

/// B2's work: a name with no account (the doomed flow) computes as many OTP HMACs as a
/// real user with the default window and a wrong code, and at most one store-key tag
/// fewer; both are denied.
#[test]
fn an_unknown_name_costs_the_default_windows_hmacs() {
    if !require_root("an_unknown_name_costs_the_default_windows_hmacs") {
        return;
    }
    let (u, secret) = TestUser::enrolled("hu");
    let stack = Stack::probe_module("svc", counting_module(), "");
    let (returned, real, _) = counted(&stack, &u.name, &wrong_totp(&secret, now()));
    assert_eq!(returned, Returned::Failed("PAM_AUTH_ERR".into()));
    let unknown = format!("{}nobody", u.name);
    let (returned, doomed, syslog) = counted(&stack, &unknown, &wrong_totp(&secret, now()));
    assert_eq!(
        returned,
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{syslog:?}"
    );
    assert_eq!(real.otp, 3, "the default window");
    assert_eq!(
        doomed.otp, real.otp,
        "an unknown name computes as many OTP HMACs"
    );
    // The doomed flow names no enrolment, so it skips that one store-key tag (an HMAC of
    // a few bytes): within one HMAC of the real user, as B2 asks, and no more.
    assert!(
        doomed.tags <= real.tags && real.tags <= doomed.tags + 1,
        "store-key tags: real {real:?}, unknown {doomed:?}"
    );
}

/// The counter is in the test build only: its log line's text is in the counting `.so`
/// and in neither the module the other tests load nor the release module.
#[test]
fn only_the_test_build_has_the_counter() {
    let needle = b"OTP HMACs and ";
    let has = |so: &std::path::Path| {
        let bytes = std::fs::read(so).unwrap_or_else(|e| panic!("read {}: {e}", so.display()));
        bytes.windows(needle.len()).any(|w| w == needle)
    };
    assert!(has(counting_module()), "control: the counting build has it");
    assert!(
        !has(&built().module),
        "the module the tests load has no counter"
    );
    assert!(!has(&release_module()), "the release module has no counter");
}
