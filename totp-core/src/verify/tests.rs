use super::*;
use crate::code::candidates;
use crate::otp::{Algorithm, format_code};

const S: &str = "2SH3V3GDW7ZNMGYE";

fn file(text: &str) -> GaFile {
    gafile::parse(text.as_bytes()).unwrap()
}

fn secret() -> Secret {
    Secret::new(crate::base32::decode_lenient(S.as_bytes()).unwrap())
}

/// The 6-digit SHA1 code of the GA test secret for `counter`.
fn code(counter: u64) -> String {
    format_code(
        otp::hotp(&secret(), counter, Algorithm::Sha1, Digits::SIX),
        Digits::SIX,
    )
}

fn attempt(f: &GaFile, policy: &Policy, answer: &str, now: i64) -> Outcome {
    let digits = f.config().unwrap().digits;
    let c = candidates(answer.as_bytes(), digits, false);
    authenticate(f.clone(), policy, &c, now, None).unwrap()
}

/// GA's lines only: our `PAM_TOTP_*` lines removed.
fn ga_bytes(f: &GaFile) -> String {
    String::from_utf8(f.without_keys(|k| k.starts_with(b"PAM_TOTP_")).to_vec()).unwrap()
}

fn accepted(o: &Outcome) -> bool {
    o.verdict.is_accepted()
}

/// Runs each (step, expected) against the *same* starting file: GA's window
/// scenarios reuse one code, which our always-on replay protection would refuse.
fn window_matrix(text: &str, step_secs: i64, cases: &[(i64, bool)]) {
    let f = file(text);
    for &(t, want) in cases {
        let o = attempt(&f, &Policy::default(), "050548", t * step_secs);
        assert_eq!(accepted(&o), want, "T = {t}");
    }
}

#[test]
fn ga_scenario_step_size_60() {
    window_matrix(
        &format!("{S}\n\" STEP_SIZE 60\n\" TOTP_AUTH"),
        60,
        &[
            (9998, false),
            (9999, true),
            (10001, true),
            (10002, false),
            (10000, true),
        ],
    );
}

#[test]
fn ga_scenario_default_window() {
    window_matrix(
        &format!("{S}\n\" TOTP_AUTH"),
        30,
        &[
            (9998, false),
            (9999, true),
            (10001, true),
            (10002, false),
            (10000, true),
        ],
    );
}

#[test]
fn ga_scenario_window_size_6_is_asymmetric() {
    window_matrix(
        &format!("{S}\n\" WINDOW_SIZE 6\n\" TOTP_AUTH"),
        30,
        &[
            (9996, false),
            (9997, true),
            (10002, true),
            (10003, false),
            (10000, true),
        ],
    );
}

#[test]
fn even_window_4_accepts_offsets_minus_1_to_plus_2() {
    window_matrix(
        &format!("{S}\n\" WINDOW_SIZE 4\n\" TOTP_AUTH"),
        30,
        &[
            (9998, true),
            (9999, true),
            (10001, true),
            (10002, false),
            (10000, true),
        ],
    );
}

#[test]
fn ga_scenario_disallow_reuse_list_bytes() {
    let mut f = file(&format!("{S}\n\" TOTP_AUTH"));
    f.set("WINDOW_SIZE", "6").unwrap();
    f.set("DISALLOW_REUSE", "").unwrap();
    let p = Policy::default();
    let o = attempt(&f, &p, "050548", 300_000);
    assert!(accepted(&o));
    let o = attempt(&o.file, &p, "050548", 300_000);
    assert_eq!(o.verdict, Verdict::Replayed);
    let mut f = o.file;
    for t in 10_001..=10_007u64 {
        let o = attempt(&f, &p, &code(t), t as i64 * 30);
        assert_eq!(
            o.verdict,
            Verdict::Accepted(Method::Totp { step: t }),
            "T = {t}"
        );
        f = o.file;
    }
    assert_eq!(
        ga_bytes(&f),
        format!(
            "{S}\n\" DISALLOW_REUSE 10002 10003 10004 10005 10006 10007\n\" WINDOW_SIZE 6\n\" TOTP_AUTH"
        )
    );
    assert_eq!(f.config().unwrap().last_step, Some(10_007));
    assert_eq!(f.config().unwrap().failures, None);
}

#[test]
fn ga_scenario_rate_limit_4_per_120() {
    let mut f = file(&format!("{S}\n\" TOTP_AUTH"));
    f.set("RATE_LIMIT", "4 120").unwrap();
    let p = Policy::default();
    let want = [
        (20_000, true),
        (20_001, true),
        (20_002, true),
        (20_003, true),
        (20_004, false),
        (20_006, true),
    ];
    for (t, ok) in want {
        let o = attempt(&f, &p, &code(t), t as i64 * 30);
        assert_eq!(accepted(&o), ok, "T = {t}");
        if !ok {
            assert_eq!(o.verdict, Verdict::Throttled);
            assert!(o.warnings.contains(&Warning::RateLimitExceeded));
        }
        f = o.file;
    }
    assert_eq!(
        ga_bytes(&f),
        format!("{S}\n\" RATE_LIMIT 4 120 600060 600090 600120 600180\n\" TOTP_AUTH")
    );
}

#[test]
fn ga_scenario_rate_limit_with_trailing_space_is_an_error() {
    let f = file(&format!("{S}\n\" TOTP_AUTH"));
    let mut bytes = f.as_bytes().to_vec();
    bytes.splice(17..17, b"\" RATE_LIMIT 4 120 \n".iter().copied());
    assert_eq!(
        gafile::parse(&bytes).err(),
        Some(FileError::BadValue { key: "RATE_LIMIT" })
    );
}

#[test]
fn ga_scenario_skew_learning_never_happens() {
    let mut f = file(&format!("{S}\n\" TOTP_AUTH"));
    let p = Policy::default();
    for i in 0..4u64 {
        let o = attempt(&f, &p, &code(11_000 + i), (12_000 + i as i64) * 30);
        assert!(!accepted(&o), "attempt {i}");
        f = o.file;
    }
    assert!(!f.contains_key("RESETTING_TIME_SKEW"));
    assert!(!f.contains_key("TIME_SKEW"));
}

#[test]
fn stored_time_skew_is_honoured_only_within_the_cap() {
    let f = file(&format!(
        "{S}\n\" TIME_SKEW -1000\n\" RESETTING_TIME_SKEW \n\" TOTP_AUTH\n"
    ));
    let wide = Policy {
        max_time_skew: 1000,
        ..Policy::default()
    };
    // GA's noskewadj case: 10 steps outside the shifted window.
    assert!(!accepted(&attempt(&f, &wide, &code(11_010), 12_020 * 30)));
    let o = attempt(&f, &wide, &code(11_020), 12_020 * 30);
    assert_eq!(o.verdict, Verdict::Accepted(Method::Totp { step: 11_020 }));
    assert!(
        o.file
            .as_bytes()
            .windows(22)
            .any(|w| w == b"\" RESETTING_TIME_SKEW ")
    );
    let o = attempt(&f, &Policy::default(), &code(11_020), 12_020 * 30);
    assert!(!accepted(&o));
    assert!(o.warnings.contains(&Warning::SkewClamped {
        file: -1000,
        used: -3
    }));
}

#[test]
fn ga_scenario_scratch_code_single_use() {
    let f = file(&format!("{S}\n\" TOTP_AUTH"));
    let p = Policy::default();
    assert!(!accepted(&attempt(&f, &p, "12345678", 300_000)));
    let f = file(&format!("{S}\n\" TOTP_AUTH\n12345678\n"));
    let o = attempt(&f, &p, "12345678", 300_000);
    assert_eq!(o.verdict, Verdict::Accepted(Method::Scratch));
    assert_eq!(ga_bytes(&o.file), format!("{S}\n\" TOTP_AUTH\n"));
    assert!(!accepted(&attempt(&o.file, &p, "12345678", 300_010)));
}

#[test]
fn ga_scenario_hotp_counter() {
    let f = file(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    let p = Policy::default();
    let o = attempt(&f, &p, "293240", 300_000);
    assert_eq!(o.verdict, Verdict::Accepted(Method::Hotp { counter: 1 }));
    assert_eq!(ga_bytes(&o.file), format!("{S}\n\" HOTP_COUNTER 2\n"));
    let o = attempt(&o.file, &p, "293240", 300_001);
    assert_eq!(o.verdict, Verdict::Rejected);
    assert_eq!(ga_bytes(&o.file), format!("{S}\n\" HOTP_COUNTER 3\n"));
    let o = attempt(&o.file, &p, "932068", 300_002);
    assert_eq!(o.verdict, Verdict::Accepted(Method::Hotp { counter: 5 }));
    assert_eq!(ga_bytes(&o.file), format!("{S}\n\" HOTP_COUNTER 6\n"));
}

#[test]
fn no_increment_hotp_keeps_the_counter_on_failure() {
    let f = file(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    let p = Policy {
        no_increment_hotp: true,
        ..Policy::default()
    };
    let o = attempt(&f, &p, "000000", 300_000);
    assert_eq!(o.verdict, Verdict::Rejected);
    assert_eq!(o.file.config().unwrap().mode, Mode::Hotp { counter: 1 });
}

#[test]
fn hotp_failure_then_scratch_success_still_advances_like_ga() {
    let f = file(&format!("{S}\n\" HOTP_COUNTER 1\n12345678\n"));
    let c = candidates(b"pw12345678", Digits::SIX, true);
    let o = authenticate(f, &Policy::default(), &c, 300_000, None).unwrap();
    assert_eq!(o.verdict, Verdict::Accepted(Method::Scratch));
    assert_eq!(o.matched, Some(1));
    assert_eq!(*c[1].prefix, b"pw");
    assert_eq!(ga_bytes(&o.file), format!("{S}\n\" HOTP_COUNTER 2\n"));
}

#[test]
fn golden_rewrite_sequence() {
    let p = Policy::default();
    let f = file(&format!(
        "{S}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n"
    ));

    let o = attempt(&f, &p, "050548", 300_000);
    assert!(accepted(&o));
    assert_eq!(
        ga_bytes(&o.file),
        format!(
            "{S}\n\" RATE_LIMIT 3 30 300000\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n12345678\n"
        )
    );
    assert_eq!(o.file.get(gafile::KEY_LAST_STEP), Some(&b"10000"[..]));
    assert_eq!(o.file.get(gafile::KEY_FAILURES), None);

    let o = attempt(&o.file, &p, "050548", 300_005);
    assert_eq!(o.verdict, Verdict::Replayed);
    assert_eq!(
        ga_bytes(&o.file),
        format!(
            "{S}\n\" RATE_LIMIT 3 30 300000 300005\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n12345678\n"
        )
    );
    assert_eq!(o.file.get(gafile::KEY_FAILURES), Some(&b"1 300005"[..]));

    let o = attempt(&o.file, &p, "12345678", 300_010);
    assert_eq!(o.verdict, Verdict::Accepted(Method::Scratch));
    assert_eq!(
        ga_bytes(&o.file),
        format!(
            "{S}\n\" RATE_LIMIT 3 30 300000 300005 300010\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n"
        )
    );
    assert_eq!(o.file.get(gafile::KEY_FAILURES), None);

    let o = attempt(&o.file, &p, "050548", 300_012);
    assert_eq!(o.verdict, Verdict::Throttled);
    assert_eq!(
        ga_bytes(&o.file),
        format!(
            "{S}\n\" RATE_LIMIT 3 30 300005 300010 300012\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n"
        )
    );
    assert_eq!(
        String::from_utf8(o.file.as_bytes().to_vec()).unwrap(),
        format!(
            "{S}\n\" PAM_TOTP_LAST_STEP 10000\n\" RATE_LIMIT 3 30 300005 300010 300012\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n"
        )
    );
}

#[test]
fn unchanged_ga_file_is_byte_identical_after_a_refused_attempt() {
    let text = format!("{S}\r\n\" X_UNKNOWN_KEY 1 2 3\r\n\" TOTP_AUTH\r\n");
    let f = file(&text);
    let p = Policy::default();
    let b = begin(f.clone(), &p, 300_000).unwrap();
    assert!(b.changed);
    assert_eq!(
        String::from_utf8(b.file.as_bytes().to_vec()).unwrap(),
        format!("{S}\r\n\" PAM_TOTP_FAILURES 1 300000\n\" X_UNKNOWN_KEY 1 2 3\r\n\" TOTP_AUTH\r\n")
    );
    let o = finish(
        b,
        &p,
        &candidates(b"050548", Digits::SIX, false),
        300_000,
        None,
    )
    .unwrap();
    assert!(accepted(&o));
    assert_eq!(
        String::from_utf8(o.file.as_bytes().to_vec()).unwrap(),
        format!("{S}\r\n\" PAM_TOTP_LAST_STEP 10000\n\" X_UNKNOWN_KEY 1 2 3\r\n\" TOTP_AUTH\r\n")
    );
}

#[test]
fn replay_is_refused_even_without_disallow_reuse() {
    let f = file(&format!("{S}\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    let o = attempt(&f, &p, "050548", 300_000);
    assert!(accepted(&o));
    let o2 = attempt(&o.file, &p, "050548", 300_020);
    assert_eq!(o2.verdict, Verdict::Replayed);
}

#[test]
fn clock_going_back_never_reopens_an_accepted_step() {
    let f = file(&format!("{S}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    let o = attempt(&f, &p, &code(10_001), 10_001 * 30);
    assert!(accepted(&o));
    // Ten minutes back: a step older than the mark is refused, DISALLOW_REUSE
    // pruning notwithstanding.
    let o = attempt(&o.file, &p, &code(9_981), 9_981 * 30);
    assert_eq!(o.verdict, Verdict::Replayed);
    let o = attempt(&o.file, &p, &code(10_000), 10_000 * 30);
    assert_eq!(o.verdict, Verdict::Replayed);
    let o = attempt(&o.file, &p, &code(10_002), 10_002 * 30);
    assert!(accepted(&o));
}

#[test]
fn clock_faults_deny_without_touching_state() {
    let f = file(&format!("{S}\n\" PAM_TOTP_LAST_STEP 20000\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    assert_eq!(begin(f.clone(), &p, -1).err(), Some(Error::ClockFault));
    // Step 20000 starts at 600000; a clock more than a day behind is a fault.
    assert_eq!(
        begin(f.clone(), &p, 600_000 - 86_401).err(),
        Some(Error::ClockFault)
    );
    assert!(begin(f.clone(), &p, 600_000 - 86_400).is_ok());
    let g = file(&format!(
        "{S}\n\" PAM_TOTP_FAILURES 1 900000\n\" TOTP_AUTH\n"
    ));
    assert_eq!(begin(g, &p, 300_000).err(), Some(Error::ClockFault));
}

fn fail(f: GaFile, p: &Policy, now: i64) -> Outcome {
    authenticate(f, p, &candidates(b"000000", Digits::SIX, false), now, None).unwrap()
}

#[test]
fn backoff_after_three_failures_expires_by_itself() {
    let p = Policy::default();
    let mut f = file(&format!("{S}\n\" TOTP_AUTH\n"));
    for i in 0..3 {
        let o = fail(f, &p, 300_000 + i);
        assert_eq!(o.verdict, Verdict::Rejected);
        f = o.file;
    }
    assert_eq!(f.get(gafile::KEY_FAILURES), Some(&b"3 300002"[..]));
    // The right code during the backoff is refused unevaluated, and the refusal
    // does not extend the backoff.
    let at = 300_002 + 29;
    let b = begin(f.clone(), &p, at).unwrap();
    assert_eq!(b.admission, Admission::Throttled { until: 300_032 });
    assert!(!b.changed);
    let o = attempt(&f, &p, &code(at as u64 / 30), at);
    assert_eq!(o.verdict, Verdict::Throttled);
    assert_eq!(o.file, f);
    let o = attempt(&f, &p, &code(300_032 / 30), 300_032);
    assert!(accepted(&o));
    assert_eq!(o.file.get(gafile::KEY_FAILURES), None);
}

#[test]
fn backoff_doubles_and_is_capped() {
    let p = Policy::default();
    let f = file(&format!(
        "{S}\n\" PAM_TOTP_FAILURES 4 1000000\n\" TOTP_AUTH\n"
    ));
    assert_eq!(
        begin(f, &p, 1_000_000).unwrap().admission,
        Admission::Throttled { until: 1_000_060 }
    );
    let f = file(&format!(
        "{S}\n\" PAM_TOTP_FAILURES 50 1000000\n\" TOTP_AUTH\n"
    ));
    assert_eq!(
        begin(f.clone(), &p, 1_000_000).unwrap().admission,
        Admission::Throttled { until: 1_000_600 }
    );
    let b = begin(f, &p, 1_000_600).unwrap();
    assert_eq!(b.admission, Admission::Evaluate);
    assert_eq!(b.file.get(gafile::KEY_FAILURES), Some(&b"51 1000600"[..]));
}

#[test]
fn hard_cap_disables_until_an_admin_resets() {
    let p = Policy {
        max_failures: Some(2),
        ..Policy::default()
    };
    let mut f = file(&format!("{S}\n\" TOTP_AUTH\n12345678\n"));
    // Scratch-code failures count too.
    for now in [300_000, 400_000] {
        let o = authenticate(
            f,
            &p,
            &candidates(b"87654321", Digits::SIX, false),
            now,
            None,
        )
        .unwrap();
        assert_eq!(o.verdict, Verdict::Rejected);
        f = o.file;
    }
    let much_later = 10_000_000;
    let o = attempt(&f, &p, "12345678", much_later);
    assert_eq!(o.verdict, Verdict::Disabled);
    assert!(o.file.contains_key("PAM_TOTP_FAILURES"));
    f.remove(gafile::KEY_FAILURES);
    assert!(accepted(&attempt(&f, &p, "12345678", much_later)));
}

#[test]
fn secret_strength_rules() {
    let p = Policy::default();
    let short = file(
        "MFRGGZDFMZTWQ2LK\n\" TOTP_AUTH\n"
            .replace("MFRGGZDFMZTWQ2LK", "MFRGGZDFMZTWQ")
            .as_str(),
    );
    assert!(matches!(
        begin(short, &p, 300_000),
        Err(Error::SecretTooShort { bits: 64, min: 80 })
    ));
    let legacy = file(&format!("{S}\n\" TOTP_AUTH\n"));
    let b = begin(legacy.clone(), &p, 300_000).unwrap();
    assert!(b.warnings.contains(&Warning::LegacySecret { bits: 80 }));
    let strict = Policy {
        min_secret_bits: 128,
        ..Policy::default()
    };
    assert!(matches!(
        begin(legacy, &strict, 300_000),
        Err(Error::SecretTooShort { bits: 80, min: 128 })
    ));
    let modern = file("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n");
    assert!(begin(modern, &strict, 300_000).unwrap().warnings.is_empty());
}

#[test]
fn window_is_clamped_to_the_admin_cap() {
    let f = file(&format!("{S}\n\" WINDOW_SIZE 100\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    let o = attempt(&f, &p, &code(10_008), 300_000);
    assert!(accepted(&o));
    assert!(o.warnings.contains(&Warning::WindowClamped {
        file: 100,
        used: 17
    }));
    assert!(!accepted(&attempt(&f, &p, &code(10_009), 300_000)));
    assert!(!accepted(&attempt(&f, &p, &code(10_020), 300_000)));
}

#[test]
fn eight_digit_sha256_files_work() {
    let key = crate::base32::encode(b"12345678901234567890123456789012");
    let f = file(&format!(
        "{key}\n\" PAM_TOTP_ALGORITHM SHA256\n\" PAM_TOTP_DIGITS 8\n\" TOTP_AUTH\n"
    ));
    let o = attempt(&f, &Policy::default(), "46119246", 59);
    assert_eq!(o.verdict, Verdict::Accepted(Method::Totp { step: 1 }));
    let o = attempt(&f, &Policy::default(), "461192", 59);
    assert_eq!(o.verdict, Verdict::Rejected);
}

#[test]
fn malformed_input_is_a_counted_failure() {
    let f = file(&format!("{S}\n\" TOTP_AUTH\n"));
    for bad in [
        "05054",
        "0505488",
        " 050548",
        "+50548",
        "050 548",
        "\u{ff10}\u{ff15}\u{ff10}\u{ff15}\u{ff14}\u{ff18}",
        "",
    ] {
        let o = attempt(&f, &Policy::default(), bad, 300_000);
        assert_eq!(o.verdict, Verdict::Rejected, "{bad:?}");
        assert_eq!(o.file.get(gafile::KEY_FAILURES), Some(&b"1 300000"[..]));
    }
}

#[test]
fn scratch_only_file_accepts_scratch_codes_only() {
    let f = file(&format!("{S}\n12345678\n"));
    assert!(!accepted(&attempt(
        &f,
        &Policy::default(),
        "050548",
        300_000
    )));
    assert!(accepted(&attempt(
        &f,
        &Policy::default(),
        "12345678",
        300_000
    )));
}

fn grace_policy() -> Policy {
    Policy {
        grace_period_secs: 60,
        ..Policy::default()
    }
}

#[test]
fn grace_period_is_recorded_and_matched_by_numeric_address() {
    let p = grace_policy();
    let f = file(&format!("{S}\n\" TOTP_AUTH\n"));
    let ip: IpAddr = "10.0.0.5".parse().unwrap();
    let c = candidates(b"050548", Digits::SIX, false);
    let o = authenticate(f, &p, &c, 300_000, Some(ip)).unwrap();
    assert!(accepted(&o));
    assert_eq!(o.file.get("LAST0"), Some(&b"10.0.0.5 300000"[..]));
    let g = &o.file;
    assert!(grace_applies(g, &p, Some(ip), 300_030).unwrap());
    assert!(grace_applies(g, &p, Some("::ffff:10.0.0.5".parse().unwrap()), 300_030).unwrap());
    assert!(!grace_applies(g, &p, Some(ip), 300_060).unwrap());
    assert!(!grace_applies(g, &p, Some(ip), 299_999).unwrap());
    assert!(!grace_applies(g, &p, Some("10.0.0.6".parse().unwrap()), 300_030).unwrap());
    assert!(!grace_applies(g, &p, None, 300_030).unwrap());
    assert!(!grace_applies(g, &Policy::default(), Some(ip), 300_030).unwrap());
}

#[test]
fn grace_never_applies_to_host_names_or_throttled_accounts() {
    let p = grace_policy();
    let f = file(&format!(
        "{S}\n\" LAST0 host.example 300000\n\" LAST1 10.0.0.5 300000\n\" TOTP_AUTH\n"
    ));
    assert!(grace_applies(&f, &p, Some("10.0.0.5".parse().unwrap()), 300_010).unwrap());
    let mut throttled = f.clone();
    throttled.set(gafile::KEY_FAILURES, "3 300005").unwrap();
    assert!(!grace_applies(&throttled, &p, Some("10.0.0.5".parse().unwrap()), 300_010).unwrap());
    let capped = Policy {
        max_failures: Some(3),
        ..grace_policy()
    };
    assert!(
        !grace_applies(
            &throttled,
            &capped,
            Some("10.0.0.5".parse().unwrap()),
            999_999
        )
        .unwrap()
    );
}

#[test]
fn grace_slots_reuse_the_host_then_empty_then_oldest() {
    let p = grace_policy();
    let mut text = format!("{S}\n");
    for i in 0..10 {
        text.push_str(&format!("\" LAST{i} 10.0.0.{i} {}\n", 1000 + (i * 7) % 10));
    }
    text.push_str("\" TOTP_AUTH\n");
    let f = file(&text);
    let c = candidates(b"050548", Digits::SIX, false);
    let o = authenticate(
        f.clone(),
        &p,
        &c,
        300_000,
        Some("10.0.0.4".parse().unwrap()),
    )
    .unwrap();
    assert_eq!(o.file.get("LAST4"), Some(&b"10.0.0.4 300000"[..]));
    // Oldest is slot 0 (time 1000).
    let o = authenticate(f, &p, &c, 300_000, Some("192.0.2.1".parse().unwrap())).unwrap();
    assert_eq!(o.file.get("LAST0"), Some(&b"192.0.2.1 300000"[..]));
    let g = file(&format!(
        "{S}\n\" LAST0 10.0.0.1 5\n\" LAST2 x 5\n\" TOTP_AUTH\n"
    ));
    let o = authenticate(g, &p, &c, 300_000, Some("2001:db8::1".parse().unwrap())).unwrap();
    assert_eq!(o.file.get("LAST1"), Some(&b"2001:db8::1 300000"[..]));
}

#[test]
fn only_grace_bookkeeping_is_detected() {
    let a = file(&format!("{S}\n\" LAST0 10.0.0.1 5\n\" TOTP_AUTH\n"));
    let mut b = a.clone();
    b.set("LAST0", "10.0.0.1 6").unwrap();
    assert_eq!(summarize(&a, &b), (true, true));
    b.set(gafile::KEY_LAST_STEP, "1").unwrap();
    assert_eq!(summarize(&a, &b), (true, false));
    assert_eq!(summarize(&a, &a), (false, false));
}

#[test]
fn finish_on_a_refused_begin_evaluates_nothing() {
    let f = file(&format!(
        "{S}\n\" PAM_TOTP_FAILURES 3 300000\n\" TOTP_AUTH\n"
    ));
    let b = begin(f.clone(), &Policy::default(), 300_001).unwrap();
    assert!(!b.may_evaluate());
    let o = finish(
        b,
        &Policy::default(),
        &candidates(b"050548", Digits::SIX, false),
        300_001,
        None,
    )
    .unwrap();
    assert_eq!(o.verdict, Verdict::Throttled);
    assert!(!o.changed);
    assert_eq!(o.file, f);
}
