use super::*;
use crate::code::candidates;
use crate::otp::{Algorithm, format_code};

const S: &str = "2SH3V3GDW7ZNMGYE";
const HOME: OriginKey = OriginKey(1);
const STRANGER: OriginKey = OriginKey(2);

fn file(text: &str) -> GaFile {
    gafile::GaFile::parse(text.as_bytes()).unwrap()
}

fn key() -> StoreKey {
    StoreKey::new([7; crate::state::STORE_KEY_LEN])
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
    .to_string()
}

/// One user: the secret file and the store record, updated as the module would.
#[derive(Clone)]
struct User {
    file: GaFile,
    state: UserState,
    /// The secret file cannot be rewritten (read-only mount, configuration management,
    /// a secret command): the decision's new file is dropped.
    readonly: bool,
    /// Hosts with another state store read the file (`Attempt::keep_ga_lines`).
    shared: bool,
    /// `PAM_RHOST` of the attempts.
    rhost: IpAddr,
}

impl User {
    fn new(text: &str) -> Self {
        Self {
            file: file(text),
            state: UserState::default(),
            readonly: false,
            shared: true,
            rhost: IpAddr::from([192, 0, 2, 7]),
        }
    }

    fn try_from(&mut self, p: &Policy, answer: &str, now: i64, origin: OriginKey) -> Decision {
        let digits = self.file.config().unwrap().digits;
        let c = candidates(answer.as_bytes(), digits, false);
        self.run(p, &c, now, origin, false)
    }

    fn run(
        &mut self,
        p: &Policy,
        c: &[Candidate],
        now: i64,
        origin: OriginKey,
        continued: bool,
    ) -> Decision {
        let prep = prepare(&self.file, p, c, now, &key()).unwrap();
        let a = Attempt {
            origin,
            rhost: Some(self.rhost),
            local: false,
            now,
            continued,
            boot_time: None,
            store_complete_since: 0,
            keep_ga_lines: self.shared,
        };
        let d = prep.decide(&self.state, p, &a).unwrap();
        match &d.write {
            Write::Nothing => {}
            Write::Lazy(s) | Write::Durable(s) => {
                // Every record written must survive the shared codec.
                self.state = UserState::decode(&s.encode()).unwrap();
            }
        }
        if let (Some(f), false) = (&d.file, self.readonly) {
            self.file = f.clone();
        }
        d
    }

    /// The TOTP mark of the enrolment used last, in 30-s steps.
    fn last_step(&self) -> Option<u64> {
        self.state.latest().and_then(|m| m.last_totp_step(30))
    }

    fn attempt(&mut self, p: &Policy, answer: &str, now: i64) -> Decision {
        self.try_from(p, answer, now, HOME)
    }

    fn ledger(&self) -> Ledger {
        Ledger::decode(&self.state.extra).unwrap()
    }
}

fn accepted(d: &Decision) -> bool {
    d.verdict.is_accepted()
}

/// Runs each (step, expected) against the *same* starting state: GA's window
/// scenarios reuse one code, which our always-on replay protection would refuse.
fn window_matrix(text: &str, step_secs: i64, cases: &[(i64, bool)]) {
    let u = User::new(text);
    for &(t, want) in cases {
        let d = u
            .clone()
            .attempt(&Policy::default(), "050548", t * step_secs);
        assert_eq!(accepted(&d), want, "T = {t}");
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
fn totp_logins_change_only_the_files_own_ga_lines_as_ga_does() {
    // GA's golden sequence (compat reference 7.5): the lines a shared home's other
    // hosts read are kept up to date byte for byte; nothing else changes.
    let text = format!(
        "{S}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" PAM_TOTP_FAILURES 1 299000\n\" TOTP_AUTH\n12345678\n"
    );
    let mut u = User::new(&text);
    let p = Policy::default();
    for (answer, now, reuse, times) in [
        ("050548", 300_000, "10000", "300000"),
        ("050548", 300_005, "10000", "300000 300005"),
        ("000000", 300_006, "10000", "300000 300005 300006"),
    ] {
        let d = u.attempt(&p, answer, now);
        assert!(d.file.is_some(), "{answer} at {now}: {:?}", d.verdict);
        let want = format!(
            "{S}\n\" RATE_LIMIT 3 30 {times}\n\" DISALLOW_REUSE {reuse}\n\" PAM_TOTP_FAILURES 1 299000\n\" TOTP_AUTH\n12345678\n"
        );
        assert_eq!(String::from_utf8_lossy(u.file.as_bytes()), want);
    }

    // A file without them is configuration: never written on a TOTP login.
    let text = format!("{S}\n\" PAM_TOTP_FAILURES 1 299000\n\" TOTP_AUTH\n12345678\n");
    let mut u = User::new(&text);
    for (answer, now) in [
        ("050548", 300_000),
        ("050548", 300_005),
        ("000000", 300_006),
    ] {
        let d = u.attempt(&p, answer, now);
        assert!(d.file.is_none(), "{answer} at {now}: {:?}", d.verdict);
    }
    assert_eq!(u.file.as_bytes(), text.as_bytes());
}

#[test]
fn ga_lines_are_obeyed_alike_but_written_only_where_the_file_is_shared() {
    // The same attempts on a shared file (GA's lines kept up to date) and on one only
    // this host's store reads: the same verdicts, a file change only for the first.
    let text = format!("{S}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n");
    let attempts = [
        // Listed in DISALLOW_REUSE: refused from the line alone.
        (code(10_000), 300_029, Verdict::Replayed),
        (
            code(10_001),
            300_030,
            Verdict::Accepted(Method::Totp { step: 10_001 }),
        ),
        // The store's mark refuses the replay.
        (code(10_001), 300_031, Verdict::Replayed),
        // The fourth attempt within 30 s: RATE_LIMIT refuses a right code.
        (
            code(10_002),
            300_032,
            Verdict::Throttled(Throttle::RateLimit),
        ),
        (
            code(10_004),
            300_120,
            Verdict::Accepted(Method::Totp { step: 10_004 }),
        ),
    ];
    for shared in [true, false] {
        let mut u = User::new(&text);
        u.shared = shared;
        let p = Policy::default();
        for (answer, now, want) in &attempts {
            let d = u.attempt(&p, answer, *now);
            assert_eq!(d.verdict, *want, "shared {shared}, at {now}");
            assert_eq!(d.file.is_some(), shared, "shared {shared}, at {now}");
        }
        let listed = u.file.get(KEY_DISALLOW_REUSE).map(<[u8]>::to_vec);
        if shared {
            assert_eq!(listed.as_deref(), Some(&b"10004"[..]));
            assert_eq!(
                u.file.get(KEY_RATE_LIMIT),
                Some(&b"3 30 300120"[..]),
                "{:?}",
                String::from_utf8_lossy(u.file.as_bytes())
            );
        } else {
            assert_eq!(u.file.as_bytes(), text.as_bytes());
        }
    }
}

#[test]
fn another_hosts_times_in_an_unwritten_rate_limit_line_still_count() {
    for shared in [true, false] {
        let mut u = User::new(&format!(
            "{S}\n\" RATE_LIMIT 2 120 600000 600010\n\" TOTP_AUTH"
        ));
        u.shared = shared;
        let d = u.attempt(&Policy::default(), &code(20_000), 600_020);
        assert_eq!(
            d.verdict,
            Verdict::Throttled(Throttle::RateLimit),
            "{shared}"
        );
        assert_eq!(d.file.is_some(), shared);
    }
}

#[test]
fn times_ahead_in_an_unwritten_rate_limit_line_lock_out_no_longer_than_the_line_says() {
    // A line left as it is (a file no other host reads) with times ahead of the clock
    // (GA on a host whose clock was ahead, a clock stepped back): were they counted as
    // now on every login, the user would wait until the clock reaches them, not the
    // interval. Beyond the clock slack they are dropped, as GA drops them; within it
    // they count as now until the clock passes them, then expire with the interval.
    let far = format!("{S}\n\" RATE_LIMIT 3 30 300400 300400 300400\n\" TOTP_AUTH\n");
    let mut u = User::new(&far);
    u.shared = false;
    let p = Policy::default();
    // The first login takes the line into the store as attempts made now (as a line
    // this host writes would be written), which wait out the interval once.
    let d = u.attempt(&p, &code(10_000), 300_000);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    let d = u.attempt(&p, &code(10_001), 300_031);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 10_001 }));
    assert_eq!(u.file.as_bytes(), far.as_bytes(), "left as it is");

    let near = format!("{S}\n\" RATE_LIMIT 3 30 300030 300030 300030\n\" TOTP_AUTH\n");
    let mut u = User::new(&near);
    u.shared = false;
    let d = u.attempt(&p, &code(10_000), 300_000);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    // Refused until the times are older than the interval: 30 s after 300030.
    let d = u.attempt(&p, &code(10_001), 300_059);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    let d = u.attempt(&p, &code(10_002), 300_061);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 10_002 }));

    // A line this host writes: the first login counts them as now and writes them so,
    // and they expire with the interval; so they do where the rewrite fails (a
    // read-only file), which leaves them as they were.
    for readonly in [false, true] {
        let mut u = User::new(&far);
        u.readonly = readonly;
        let d = u.attempt(&p, &code(10_000), 300_000);
        assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
        let d = u.attempt(&p, &code(10_001), 300_031);
        assert_eq!(
            d.verdict,
            Verdict::Accepted(Method::Totp { step: 10_001 }),
            "read-only {readonly}"
        );
    }

    // The store alone keeps a clock stepped back from handing out a fresh budget: the
    // times it holds from before the step count as now.
    let mut u = User::new(&format!("{S}\n\" RATE_LIMIT 3 30\n\" TOTP_AUTH\n"));
    u.readonly = true;
    for (i, now) in [300_400, 300_401, 300_402].into_iter().enumerate() {
        let d = u.attempt(&p, "000000", now);
        assert_eq!(d.verdict, Verdict::Rejected, "attempt {i}");
    }
    let d = u.attempt(&p, &code(10_000), 300_000);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
}

#[test]
fn a_used_scratch_code_leaves_ga_lines_alone_in_a_file_not_shared() {
    let text =
        format!("{S}\n\" RATE_LIMIT 3 30 299990\n\" DISALLOW_REUSE 9999\n\" TOTP_AUTH\n12345678\n");
    let mut u = User::new(&text);
    u.shared = false;
    let d = u.attempt(&Policy::default(), "12345678", 300_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch));
    let want = format!("{S}\n\" RATE_LIMIT 3 30 299990\n\" DISALLOW_REUSE 9999\n\" TOTP_AUTH\n");
    assert_eq!(String::from_utf8_lossy(u.file.as_bytes()), want);
}

#[test]
fn rate_limit_times_of_the_file_and_the_store_are_counted_once_each() {
    // Another host's attempts are in the file only; this host's in both.
    assert_eq!(
        super::throttle::merge_attempts(&[5, 7, 5], &[6, 5, 9], 8),
        vec![5, 5, 6, 7, 8]
    );
}

#[test]
fn a_right_code_is_one_durable_write_and_a_wrong_one_a_lazy_one() {
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    let d = u.attempt(&p, "050548", 300_000);
    assert!(matches!(d.write, Write::Durable(_)));
    assert_eq!(u.last_step(), Some(10_000));
    let d = u.attempt(&p, "000000", 300_001);
    assert!(matches!(d.write, Write::Lazy(_)));
    assert_eq!(u.last_step(), Some(10_000));
}

#[test]
fn disallow_reuse_list_in_the_file_is_honoured_and_kept_up_to_date() {
    for readonly in [false, true] {
        let mut u = User::new(&format!("{S}\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\n"));
        u.readonly = readonly;
        let p = Policy::default();
        assert_eq!(u.attempt(&p, "050548", 300_000).verdict, Verdict::Replayed);
        let d = u.attempt(&p, &code(10_001), 300_030);
        assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 10_001 }));
        let listed = d.file.as_ref().and_then(|f| f.get(KEY_DISALLOW_REUSE));
        assert_eq!(listed, Some(&b"10000 10001"[..]));
        // A file that could not be rewritten: the store still refuses the step.
        assert_eq!(
            u.attempt(&p, &code(10_001), 300_031).verdict,
            Verdict::Replayed,
            "readonly {readonly}"
        );
    }
}

#[test]
fn ga_scenario_rate_limit_4_per_120_from_the_store() {
    let mut u = User::new(&format!("{S}\n\" RATE_LIMIT 4 120\n\" TOTP_AUTH"));
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
        let d = u.attempt(&p, &code(t), t as i64 * 30);
        assert_eq!(accepted(&d), ok, "T = {t}");
        if !ok {
            assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
            assert!(d.warnings.contains(&Warning::RateLimitExceeded));
            // Until the oldest counted attempt leaves the 120-s interval.
            let oldest = u.ledger().attempts[0];
            assert_eq!(
                d.retry_after,
                Some(oldest + 120 - t * 30),
                "{:?}",
                u.ledger()
            );
        }
    }
    assert_eq!(
        u.ledger().attempts,
        vec![600_060, 600_090, 600_120, 600_180]
    );
}

#[test]
fn rate_limit_timestamps_in_the_file_are_taken_over_on_first_use() {
    let mut u = User::new(&format!(
        "{S}\n\" RATE_LIMIT 2 120 600000 600010\n\" TOTP_AUTH"
    ));
    let d = u.attempt(&Policy::default(), &code(20_000), 600_020);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    assert!(d.warnings.contains(&Warning::Migrated));
}

#[test]
fn ga_scenario_skew_learning_never_happens() {
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH"));
    let p = Policy::default();
    for i in 0..4u64 {
        let d = u.try_from(
            &p,
            &code(11_000 + i),
            (12_000 + i as i64) * 30,
            OriginKey(i),
        );
        assert!(!accepted(&d), "attempt {i}");
        assert!(d.file.is_none());
    }
}

#[test]
fn stored_time_skew_is_honoured_only_within_the_cap() {
    let u = User::new(&format!(
        "{S}\n\" TIME_SKEW -1000\n\" RESETTING_TIME_SKEW \n\" TOTP_AUTH\n"
    ));
    let wide = Policy {
        max_time_skew: 1000,
        ..Policy::default()
    };
    assert!(!accepted(&u.clone().attempt(
        &wide,
        &code(11_010),
        12_020 * 30
    )));
    let d = u.clone().attempt(&wide, &code(11_020), 12_020 * 30);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 11_020 }));
    // The default cap is GA's own range: a skew GA learned works as written.
    let d = u
        .clone()
        .attempt(&Policy::default(), &code(11_020), 12_020 * 30);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 11_020 }));
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::SkewClamped { .. }))
    );
    // An admin's lower cap clamps it, with a warning.
    let narrow = Policy {
        max_time_skew: 3,
        ..Policy::default()
    };
    let d = u.clone().attempt(&narrow, &code(11_020), 12_020 * 30);
    assert!(!accepted(&d));
    assert!(d.warnings.contains(&Warning::SkewClamped {
        file: -1000,
        used: -3
    }));
}

/// A skew GA learned (up to 1500 steps) at a 60-s step puts the accepted steps more
/// than a day ahead of the clock; the mark they leave is not a clock fault, or the
/// user would be locked out from the second login on.
#[test]
fn a_mark_ahead_by_a_stored_skew_is_no_clock_fault() {
    let p = Policy::default();
    for skew in [1450i64, 1500] {
        let mut u = User::new(&format!(
            "{S}\n\" STEP_SIZE 60\n\" TIME_SKEW {skew}\n\" TOTP_AUTH\n"
        ));
        let step = |t: i64| code((t + skew) as u64);
        for t in [5_000i64, 5_001, 5_002] {
            let d = u.attempt(&p, &step(t), t * 60);
            assert_eq!(
                d.verdict,
                Verdict::Accepted(Method::Totp {
                    step: (t + skew) as u64
                }),
                "skew {skew}, step {t}"
            );
        }
        // The replay mark still works, and a clock really set back is still a fault.
        assert_eq!(
            u.attempt(&p, &step(5_002), 5_002 * 60 + 1).verdict,
            Verdict::Replayed
        );
        let c = candidates(step(3_000).as_bytes(), Digits::SIX, false);
        let prep = prepare(&u.file, &p, &c, 3_000 * 60, &key()).unwrap();
        let a = Attempt {
            origin: HOME,
            rhost: None,
            local: false,
            now: 3_000 * 60,
            continued: false,
            boot_time: None,
            store_complete_since: 0,
            keep_ga_lines: true,
        };
        assert!(
            matches!(
                prep.decide(&u.state, &p, &a),
                Err(VerifyError::StateAhead { .. })
            ),
            "skew {skew}"
        );
    }
}

#[test]
fn ga_scenario_scratch_code_single_use() {
    let p = Policy::default();
    assert!(!accepted(
        &User::new(&format!("{S}\n\" TOTP_AUTH")).attempt(&p, "12345678", 300_000)
    ));
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n12345678\n"));
    let d = u.attempt(&p, "12345678", 300_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch));
    assert_eq!(
        d.file.as_ref().map(|f| f.as_bytes().to_vec()),
        Some(format!("{S}\n\" TOTP_AUTH\n").into_bytes())
    );
    assert!(!accepted(&u.attempt(&p, "12345678", 300_010)));
}

#[test]
fn ga_scenario_hotp_counter() {
    let mut u = User::new(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    let p = Policy::default();
    let d = u.attempt(&p, "293240", 300_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: 1 }));
    assert!(
        matches!(d.write, Write::Durable(_)),
        "the store is the record of the counter, whether or not the file can be rewritten"
    );
    assert_eq!(
        u.file.as_bytes(),
        format!("{S}\n\" HOTP_COUNTER 2\n").as_bytes()
    );
    // GA's sequence then types the same code again (a failure that moves the counter)
    // and a code 4 counters on. The repeat is a replay here: the counter stays, so
    // the token's next press is not left behind (differential row "HOTP: GA
    // unit-test sequence").
    let d = u.attempt(&p, "293240", 300_001);
    assert_eq!(d.verdict, Verdict::Replayed);
    assert!(d.file.is_none());
    assert_eq!(
        u.file.as_bytes(),
        format!("{S}\n\" HOTP_COUNTER 2\n").as_bytes()
    );
    let d = u.attempt(&p, &code(4), 300_002);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: 4 }));
    assert_eq!(
        u.file.as_bytes(),
        format!("{S}\n\" HOTP_COUNTER 5\n").as_bytes()
    );
    assert_eq!(u.state.latest().and_then(|m| m.hotp), Some(4));
    // A code of a counter passed over by that look-ahead (never accepted) is behind
    // the store's mark too: refused as out of order (not a replay), the counter stays.
    assert_eq!(
        u.attempt(&p, &code(3), 300_003).verdict,
        Verdict::OutOfOrder
    );
    assert_eq!(u.attempt(&p, &code(4), 300_003).verdict, Verdict::Replayed);
    // A code that is no code of the window at all is a failure and moves it on (GA).
    assert_eq!(u.attempt(&p, "000000", 300_004).verdict, Verdict::Rejected);
    assert_eq!(
        u.file.as_bytes(),
        format!("{S}\n\" HOTP_COUNTER 6\n").as_bytes()
    );
}

#[test]
fn hotp_file_rolled_back_below_the_stored_mark_never_reopens_a_counter() {
    let mut u = User::new(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    let p = Policy::default();
    assert!(accepted(&u.attempt(&p, "293240", 300_000)));
    u.file = file(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    assert_eq!(u.attempt(&p, "293240", 300_001).verdict, Verdict::Replayed);
}

#[test]
fn no_increment_hotp_keeps_the_counter_on_failure() {
    let mut u = User::new(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    let p = Policy {
        no_increment_hotp: true,
        ..Policy::default()
    };
    let d = u.attempt(&p, "000000", 300_000);
    assert_eq!(d.verdict, Verdict::Rejected);
    assert!(d.file.is_none());
}

#[test]
fn hotp_failure_then_scratch_success_still_advances_like_ga() {
    let mut u = User::new(&format!("{S}\n\" HOTP_COUNTER 1\n12345678\n"));
    let c = candidates(b"pw12345678", Digits::SIX, true);
    let d = u.run(&Policy::default(), &c, 300_000, HOME, false);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch));
    assert_eq!(d.matched, Some(1));
    assert_eq!(*c[1].prefix, b"pw");
    assert_eq!(
        u.file.as_bytes(),
        format!("{S}\n\" HOTP_COUNTER 2\n").as_bytes()
    );
}

#[test]
fn replay_is_refused_even_without_disallow_reuse() {
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    assert!(accepted(&u.attempt(&p, "050548", 300_000)));
    assert_eq!(u.attempt(&p, "050548", 300_020).verdict, Verdict::Replayed);
}

#[test]
fn a_last_step_line_in_the_file_is_a_floor_on_every_login() {
    // What earlier versions and `totp-enroll resync` write: it can only raise the mark.
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    assert!(accepted(&u.attempt(&p, &code(10_000), 300_000)));
    u.file = file(&format!("{S}\n\" PAM_TOTP_LAST_STEP 10002\n\" TOTP_AUTH\n"));
    assert_eq!(
        u.attempt(&p, &code(10_002), 300_060).verdict,
        Verdict::Replayed
    );
    assert!(accepted(&u.attempt(&p, &code(10_003), 300_090)));
    // A lower line does not lower the store's mark.
    u.file = file(&format!("{S}\n\" PAM_TOTP_LAST_STEP 1\n\" TOTP_AUTH\n"));
    assert_eq!(
        u.attempt(&p, &code(10_003), 300_091).verdict,
        Verdict::Replayed
    );
}

#[test]
fn clock_going_back_never_reopens_an_accepted_step() {
    let mut u = User::new(&format!("{S}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    assert!(accepted(&u.attempt(&p, &code(10_001), 10_001 * 30)));
    assert_eq!(
        u.try_from(&p, &code(9_981), 9_981 * 30, OriginKey(5))
            .verdict,
        Verdict::OutOfOrder
    );
    assert_eq!(
        u.try_from(&p, &code(10_000), 10_000 * 30, OriginKey(6))
            .verdict,
        Verdict::OutOfOrder
    );
    assert_eq!(
        u.try_from(&p, &code(10_001), 10_000 * 30, OriginKey(7))
            .verdict,
        Verdict::Replayed
    );
    assert!(accepted(&u.attempt(&p, &code(10_002), 10_002 * 30)));
}

#[test]
fn a_mark_far_ahead_of_the_clock_denies_with_a_recoverable_error() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    // The enrolment's own mark, set while the clock was at 600_000.
    assert!(accepted(&u.attempt(&p, &code(20_000), 600_000)));
    let legacy_only = UserState {
        legacy: Some(crate::state::LegacyMarks {
            last_step: Some(20_000),
            hotp: None,
        }),
        ..UserState::default()
    };
    let c = candidates(b"000000", Digits::SIX, false);
    assert_eq!(
        prepare(&u.file, &p, &c, -1, &key()).err(),
        Some(VerifyError::ClockFault)
    );
    let a = |now| Attempt {
        origin: HOME,
        rhost: None,
        local: false,
        now,
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: true,
    };
    let prep = prepare(&u.file, &p, &c, 600_000 - 86_401, &key()).unwrap();
    assert_eq!(
        prep.decide(&u.state, &p, &a(600_000 - 86_401)).err(),
        Some(VerifyError::StateAhead {
            mark_time: 600_000,
            in_file: false,
            version_1: false
        })
    );
    let prep = prepare(&u.file, &p, &c, 600_000 - 86_400, &key()).unwrap();
    assert!(prep.decide(&u.state, &p, &a(600_000 - 86_400)).is_ok());
    // At a clock this early a shorter step (25 s) puts a version-1 mark that far ahead
    // near the clock: it may be a re-enrolment's at a longer step, and is not applied
    // (R35); the log says so. (At today's clocks no shorter step does: a clock fault,
    // `a_same_step_version_1_mark_ahead_of_a_clock_set_back_is_a_clock_fault`.)
    let prep = prepare(&u.file, &p, &c, 600_000 - 86_401, &key()).unwrap();
    let d = prep
        .decide(&legacy_only, &p, &a(600_000 - 86_401))
        .expect("decided");
    assert!(
        d.warnings
            .contains(&Warning::Version1MarkNotApplied { mark_time: 600_000 })
    );
    // At the edge of the allowance the version-1 mark is one a login honours: applied,
    // so the code of the clock's own step stays refused as used.
    let edge = 600_000 - 86_400;
    let c = candidates(code(edge as u64 / 30).as_bytes(), Digits::SIX, false);
    let prep = prepare(&u.file, &p, &c, edge, &key()).unwrap();
    let d = prep.decide(&legacy_only, &p, &a(edge)).expect("decided");
    // Refused as older than the mark (the clock's own step was never accepted).
    assert_eq!(d.verdict, Verdict::OutOfOrder);
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::Version1MarkNotApplied { .. })),
        "{:?}",
        d.warnings
    );
    // The admin tool's reset (an empty record) is the recovery.
    u.state = UserState::default();
    assert!(accepted(&u.attempt(&p, &code(10_000), 300_000)));
    // The same from a file line.
    let f = file(&format!("{S}\n\" PAM_TOTP_LAST_STEP 20000\n\" TOTP_AUTH\n"));
    let prep = prepare(&f, &p, &c, 300_000, &key()).unwrap();
    assert_eq!(
        prep.decide(&UserState::default(), &p, &a(300_000)).err(),
        Some(VerifyError::StateAhead {
            mark_time: 600_000,
            in_file: true,
            version_1: false
        })
    );
}

#[test]
fn throttling_records_from_the_future_are_dropped_not_obeyed() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    for i in 0..5 {
        u.attempt(&p, "000000", 900_000_000 + i);
    }
    // The clock is back to the truth, years earlier: no wait of years.
    let d = u.attempt(&p, &code(10_000), 300_000);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert!(
        d.warnings
            .iter()
            .any(|w| matches!(w, Warning::FutureRecordsDropped { .. }))
    );
}

#[test]
fn a_far_future_record_keeps_the_failure_count_of_the_hard_cap() {
    let p = Policy {
        max_failures: Some(3),
        ..Policy::default()
    };
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.attempt(&p, "000000", 300_000);
    u.attempt(&p, "000000", 300_001);
    // The third failure on a host whose clock is two days ahead.
    u.attempt(&p, "000000", 300_002 + 2 * 86_400);
    let d = u.attempt(&p, &code(10_002), 300_060);
    assert_eq!(d.verdict, Verdict::Disabled);
    assert!(
        d.warnings
            .iter()
            .any(|w| matches!(w, Warning::FutureRecordsDropped { .. }))
    );
}

#[test]
fn backoff_is_per_origin_and_expires_by_itself() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    for i in 0..3 {
        assert_eq!(
            u.try_from(&p, "000000", 300_000 + i, STRANGER).verdict,
            Verdict::Rejected
        );
    }
    let at = 300_002 + 29;
    let before = u.state.clone();
    let d = u.try_from(&p, &code(at as u64 / 30), at, STRANGER);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::Backoff));
    assert_eq!(d.retry_after, Some(1));
    assert_eq!(
        d.write,
        Write::Nothing,
        "a refusal does not extend the wait"
    );
    assert_eq!(u.state, before);
    // The user's own origin is not held up by the stranger's failures.
    let mut own = u.clone();
    assert!(accepted(&own.attempt(&p, &code(at as u64 / 30), at)));
    let d = u.try_from(&p, &code(300_032 / 30), 300_032, STRANGER);
    assert!(accepted(&d));
    assert!(u.ledger().origin(STRANGER).is_none());
}

#[test]
fn backoff_doubles_and_is_capped() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let mut now = 1_000_000;
    for _ in 0..3 {
        u.attempt(&p, "000000", now);
    }
    assert_eq!(u.attempt(&p, "000000", now).retry_after, Some(30));
    now += 30;
    assert_eq!(u.attempt(&p, "000000", now).verdict, Verdict::Rejected);
    assert_eq!(u.attempt(&p, "000000", now).retry_after, Some(60));
    for _ in 0..20 {
        now += 600;
        u.state.extra = {
            // Keep the ceiling out of the way: only the origin backoff is measured.
            let mut l = u.ledger();
            l.ceiling = [0, 0];
            l.encode()
        };
        assert_eq!(u.attempt(&p, "000000", now).verdict, Verdict::Rejected);
    }
    assert_eq!(u.attempt(&p, "000000", now).retry_after, Some(600));
}

#[test]
fn the_per_user_ceiling_bounds_guesses_from_rotating_origins() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let burst = u64::from(p.ceiling_burst);
    let now = 2_000_000;
    for i in 0..burst {
        assert_eq!(
            u.try_from(&p, "000000", now, OriginKey(100 + i)).verdict,
            Verdict::Rejected
        );
    }
    let d = u.try_from(&p, "000000", now, OriginKey(999));
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::Ceiling));
    assert_eq!(d.retry_after, Some(p.ceiling_interval_secs));
    // One more guess per interval afterwards, whatever the origin.
    let later = now + p.ceiling_interval_secs as i64;
    assert_eq!(
        u.try_from(&p, "000000", later, OriginKey(1000)).verdict,
        Verdict::Rejected
    );
    assert_eq!(
        u.try_from(&p, "000000", later, OriginKey(1001)).verdict,
        Verdict::Throttled(Throttle::Ceiling)
    );
}

#[test]
fn an_exhausted_ceiling_of_strangers_leaves_the_known_origin_in() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&p, &code(10_000), 300_000)));
    for i in 0..u64::from(p.ceiling_burst) + 5 {
        u.try_from(&p, "000000", 300_010, OriginKey(100 + i));
    }
    assert_eq!(
        u.try_from(&p, "000000", 300_040, OriginKey(7)).verdict,
        Verdict::Throttled(Throttle::Ceiling)
    );
    assert!(accepted(&u.attempt(&p, &code(10_002), 300_060)));
}

#[test]
fn hard_cap_disables_until_an_admin_resets() {
    let p = Policy {
        max_failures: Some(2),
        ..Policy::default()
    };
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n12345678\n"));
    for (i, now) in [300_000, 400_000].into_iter().enumerate() {
        let d = u.try_from(&p, "87654321", now, OriginKey(i as u64));
        assert_eq!(d.verdict, Verdict::Rejected);
    }
    let much_later = 10_000_000;
    assert_eq!(
        u.attempt(&p, "12345678", much_later).verdict,
        Verdict::Disabled
    );
    u.state = UserState::default();
    assert!(accepted(&u.attempt(&p, "12345678", much_later)));
}

#[test]
fn old_failure_lines_are_taken_over_on_first_use_only() {
    let p = Policy::default();
    let mut u = User::new(&format!(
        "{S}\n\" PAM_TOTP_FAILURES 4 1000000\n\" TOTP_AUTH\n"
    ));
    let d = u.try_from(&p, &code(1_000_000 / 30), 1_000_000, STRANGER);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::Backoff));
    assert_eq!(d.retry_after, Some(60));
    assert!(d.warnings.contains(&Warning::Migrated));
    assert!(matches!(d.write, Write::Lazy(_)));
    assert_eq!(u.ledger().consecutive, 4);
    // From then on the line is ignored: the store decides.
    let d = u.try_from(&p, &code(1_000_060 / 30), 1_000_060, STRANGER);
    assert!(accepted(&d));
    assert!(!d.warnings.contains(&Warning::Migrated));
    assert_eq!(
        u.try_from(&p, &code(1_000_090 / 30), 1_000_090, OriginKey(3))
            .verdict,
        Verdict::Accepted(Method::Totp {
            step: 1_000_090 / 30
        })
    );
}

/// A tentative check of `PAM_AUTHTOK` (`try_first_pass`) with `tok`, failed, then the
/// prompted `answer` as the continued attempt of the same login, both at `now` from HOME.
fn tentative_then_continued(
    u: &mut User,
    p: &Policy,
    tok: &str,
    answer: &str,
    now: i64,
) -> (Decision, Decision) {
    let first = u.run(
        p,
        &candidates(tok.as_bytes(), Digits::SIX, true),
        now,
        HOME,
        false,
    );
    assert!(!accepted(&first), "the tentative guess must fail");
    let second = u.run(
        p,
        &candidates(answer.as_bytes(), Digits::SIX, false),
        now,
        HOME,
        true,
    );
    (first, second)
}

#[test]
fn a_continued_wrong_answer_is_charged_like_any_other() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" RATE_LIMIT 3 30\n\" TOTP_AUTH\n"));
    let (_, d) = tentative_then_continued(&mut u, &p, "pw000000", "000001", 300_000);
    assert_eq!(d.verdict, Verdict::Rejected);
    assert!(matches!(d.write, Write::Lazy(_)));
    let l = u.ledger();
    assert_eq!(l.consecutive, 2, "two guesses, two failures");
    assert_eq!(l.origin(HOME).map(|r| r.failures), Some(2));
    assert_eq!(
        l.ceiling[1],
        300_000 + 2 * p.ceiling_interval_secs,
        "both guesses draw from the per-user ceiling"
    );
    // GA's line gets one entry per authentication, as GA writes it.
    assert_eq!(l.attempts, [300_000]);
    assert_eq!(u.file.get(KEY_RATE_LIMIT), Some(&b"3 30 300000"[..]));
}

/// A login whose prompted code is right gives back the per-user ceiling's charge of its
/// failed `PAM_AUTHTOK` check (a password ending in digits, failing on every login),
/// and only that one: an earlier login's failures stay charged.
#[test]
fn a_continued_success_gives_back_the_ceiling_charge_of_its_tentative_check() {
    let p = Policy::default();
    let right = code(300_000 / 30);
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.attempt(&p, "000000", 299_000);
    let before = u.ledger().ceiling[1];
    assert_eq!(before, 299_000 + p.ceiling_interval_secs);
    let mut wrong = u.clone();
    let (_, d) = tentative_then_continued(&mut u, &p, "pw000000", &right, 300_000);
    assert!(accepted(&d));
    assert_eq!(
        u.ledger().ceiling[1],
        before,
        "only the earlier failure's charge"
    );
    // Control: a wrong prompted code keeps both charges of its login.
    let (_, d) = tentative_then_continued(&mut wrong, &p, "pw000000", "000001", 300_000);
    assert!(!accepted(&d));
    assert_eq!(
        wrong.ledger().ceiling[1],
        before + 2 * p.ceiling_interval_secs
    );
}

#[test]
fn a_continued_attempt_is_refused_unevaluated_once_the_tentative_failure_reached_the_cap() {
    let p = Policy {
        max_failures: Some(3),
        ..Policy::default()
    };
    let right = code(300_000 / 30);
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    // Two failures from elsewhere, so that HOME's backoff plays no part.
    u.try_from(&p, "000000", 299_000, STRANGER);
    u.try_from(&p, "000000", 299_001, OriginKey(3));
    let mut below = u.clone();
    let (_, d) = tentative_then_continued(&mut u, &p, "000000", &right, 300_000);
    assert_eq!(
        d.verdict,
        Verdict::Disabled,
        "the right code is not evaluated"
    );
    assert_eq!(d.write, Write::Nothing);
    assert_eq!(u.ledger().consecutive, 3);
    assert_eq!(u.last_step(), None, "the code was not used up");
    // Control: one failure short of the cap, the same login gets in.
    let roomy = Policy {
        max_failures: Some(4),
        ..Policy::default()
    };
    let (_, d) = tentative_then_continued(&mut below, &roomy, "000000", &right, 300_000);
    assert!(accepted(&d));
    assert_eq!(below.ledger().consecutive, 0);
}

/// The backoff the tentative failure started does not refuse the prompted answer of the
/// same login: a password ending in digits fails on every login, and would otherwise
/// restart the backoff each time and keep every later right code out. Both guesses are
/// charged, and the next login meets the backoff.
#[test]
fn a_continued_attempt_is_checked_past_the_backoff_the_tentative_failure_started() {
    let p = Policy::default();
    let right = code(300_000 / 30);
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.attempt(&p, "000000", 299_000);
    u.attempt(&p, "000000", 299_001);
    let mut wrong = u.clone();
    // The third failure from HOME starts its backoff; the typed code is still checked.
    let (_, d) = tentative_then_continued(&mut u, &p, "000000", &right, 300_000);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert_eq!(u.ledger().consecutive, 0);
    // Control: a wrong typed code is charged too, and the next login's first check
    // waits out the backoff the two failures started.
    let (_, d) = tentative_then_continued(&mut wrong, &p, "000000", "000001", 300_000);
    assert!(!accepted(&d));
    assert_eq!(wrong.ledger().consecutive, 4);
    let d = wrong.run(
        &p,
        &candidates(right.as_bytes(), Digits::SIX, true),
        300_001,
        HOME,
        false,
    );
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::Backoff));
}

#[test]
fn secret_strength_rules() {
    let p = Policy::default();
    let c = candidates(b"000000", Digits::SIX, false);
    let short = file("MFRGGZDFMZTWQ\n\" TOTP_AUTH\n");
    assert!(matches!(
        prepare(&short, &p, &c, 300_000, &key()),
        Err(VerifyError::SecretTooShort { bits: 64, min: 80 })
    ));
    let legacy = file(&format!("{S}\n\" TOTP_AUTH\n"));
    let prep = prepare(&legacy, &p, &c, 300_000, &key()).unwrap();
    assert!(prep.warnings.contains(&Warning::LegacySecret { bits: 80 }));
    let strict = Policy {
        min_secret_bits: 128,
        ..Policy::default()
    };
    assert!(matches!(
        prepare(&legacy, &strict, &c, 300_000, &key()),
        Err(VerifyError::SecretTooShort { bits: 80, min: 128 })
    ));
    let modern = file("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n");
    assert!(
        prepare(&modern, &strict, &c, 300_000, &key())
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn window_is_clamped_to_the_admin_cap() {
    let u = User::new(&format!("{S}\n\" WINDOW_SIZE 100\n\" TOTP_AUTH\n"));
    let p = Policy::default();
    let d = u.clone().attempt(&p, &code(10_008), 300_000);
    assert!(accepted(&d));
    assert!(d.warnings.contains(&Warning::WindowClamped {
        file: 100,
        used: 17
    }));
    assert!(!accepted(&u.clone().attempt(&p, &code(10_009), 300_000)));
    assert!(!accepted(&u.clone().attempt(&p, &code(10_020), 300_000)));
}

#[test]
fn eight_digit_sha256_files_work() {
    let key = crate::base32::encode(b"12345678901234567890123456789012");
    let u = User::new(&format!(
        "{key}\n\" PAM_TOTP_ALGORITHM SHA256\n\" PAM_TOTP_DIGITS 8\n\" TOTP_AUTH\n"
    ));
    let d = u.clone().attempt(&Policy::default(), "46119246", 59);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 1 }));
    assert_eq!(
        u.clone().attempt(&Policy::default(), "461192", 59).verdict,
        Verdict::Rejected
    );
}

#[test]
fn malformed_input_is_a_counted_failure() {
    let u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    for bad in [
        "05054",
        "0505488",
        " 050548",
        "+50548",
        "050 548",
        "\u{ff10}\u{ff15}\u{ff10}\u{ff15}\u{ff14}\u{ff18}",
        "",
    ] {
        let mut v = u.clone();
        let d = v.attempt(&Policy::default(), bad, 300_000);
        assert_eq!(d.verdict, Verdict::Rejected, "{bad:?}");
        assert_eq!(v.ledger().origin(HOME).map(|r| r.failures), Some(1));
    }
}

#[test]
fn scratch_only_file_accepts_scratch_codes_only() {
    let u = User::new(&format!("{S}\n12345678\n"));
    assert!(!accepted(&u.clone().attempt(
        &Policy::default(),
        "050548",
        300_000
    )));
    assert!(accepted(&u.clone().attempt(
        &Policy::default(),
        "12345678",
        300_000
    )));
}

impl User {
    /// Whether a login from `ip` at `now` skips the code (the module's pre-prompt check).
    fn graced(&self, p: &Policy, origin: OriginKey, ip: Option<IpAddr>, now: i64) -> bool {
        let e = enrolment_of(&self.file, &key()).unwrap();
        grace_applies(&self.state, p, e, origin, ip, now).unwrap()
    }
}

fn grace_policy() -> Policy {
    Policy {
        grace_period_secs: 60,
        ..Policy::default()
    }
}

#[test]
fn grace_period_is_recorded_in_the_store_and_matched_by_numeric_address() {
    let p = grace_policy();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let other: IpAddr = "192.0.2.8".parse().unwrap();
    assert!(!u.graced(&p, HOME, Some(ip), 300_000));
    assert!(accepted(&u.attempt(&p, "050548", 300_000)));
    assert!(u.graced(&p, HOME, Some(ip), 300_059));
    assert!(!u.graced(&p, HOME, Some(ip), 300_060));
    assert!(!u.graced(&p, HOME, Some(other), 300_010));
    assert!(!u.graced(&p, HOME, None, 300_010));
    assert!(!u.graced(&Policy::default(), HOME, Some(ip), 300_010));
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert!(u.graced(&p, HOME, Some(mapped), 300_010));
}

/// A link-local address is a host only with its link, which the record cannot hold:
/// such a peer earns no grace entry, and an entry for it (one written before) is never
/// matched. Control: a global address from the same user gets its grace.
#[test]
fn link_local_peers_get_no_grace() {
    let p = grace_policy();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let ll: IpAddr = "fe80::1".parse().unwrap();
    u.rhost = ll;
    assert!(accepted(&u.attempt(&p, "050548", 300_000)));
    assert!(u.ledger().grace.is_empty());
    assert!(!u.graced(&p, HOME, Some(ll), 300_010));
    let mut l = u.ledger();
    l.record_grace(ll, 300_000);
    u.state.extra = l.encode();
    assert!(!u.graced(&p, HOME, Some(ll), 300_010));
    let mut g = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    g.rhost = "2001:db8::7".parse().unwrap();
    assert!(accepted(&g.attempt(&p, "050548", 300_000)));
    assert!(g.graced(&p, HOME, Some(g.rhost), 300_010));
}

#[test]
fn grace_never_applies_while_the_origin_waits() {
    let p = grace_policy();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    assert!(accepted(&u.attempt(&p, "050548", 300_000)));
    for i in 0..3 {
        u.attempt(&p, "000000", 300_001 + i);
    }
    assert!(!u.graced(&p, HOME, Some(ip), 300_010));
    assert_eq!(wait_for(&u.state, &p, HOME, false, 300_010), Some(23));
    assert!(u.graced(&p, STRANGER, Some(ip), 300_010));
}

#[test]
fn grace_entries_belong_to_the_enrolment_that_earned_them() {
    let p = grace_policy();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let (a, b) = (IpAddr::from([192, 0, 2, 7]), IpAddr::from([192, 0, 2, 8]));
    assert!(accepted(&u.attempt(&p, "050548", 300_000)));
    assert!(u.graced(&p, HOME, Some(a), 300_010));
    // Re-enrolled: the entry earned with the old secret skips nothing.
    u.file = file("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n");
    assert!(!u.graced(&p, HOME, Some(a), 300_010));
    // The new secret's first login, from another address, does not bring it back.
    let secret = u.file.secret().unwrap();
    let value = otp::totp(&secret, 300_020, 30, Algorithm::Sha1, Digits::SIX).unwrap();
    u.rhost = b;
    assert!(accepted(&u.attempt(
        &p,
        &format_code(value, Digits::SIX),
        300_020
    )));
    assert!(u.graced(&p, HOME, Some(b), 300_030));
    assert!(!u.graced(&p, HOME, Some(a), 300_030));
    // Two secrets in use (a home file for SSH, a store file for sudo): switching
    // between known ones keeps what both earned.
    let second = u.file.clone();
    u.file = file(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(u.graced(&p, HOME, Some(b), 300_040));
    u.rhost = a;
    let value = otp::totp(
        &u.file.secret().unwrap(),
        300_060,
        30,
        Algorithm::Sha1,
        Digits::SIX,
    );
    assert!(accepted(&u.attempt(
        &p,
        &format_code(value.unwrap(), Digits::SIX),
        300_060
    )));
    u.file = second;
    assert!(u.graced(&p, HOME, Some(a), 300_070));
    assert!(u.graced(&p, HOME, Some(b), 300_070));
}

#[test]
fn with_a_known_boot_time_a_used_code_is_written_lazily_and_survives_losing_it() {
    let p = Policy::default();
    let f = file(&format!("{S}\n\" TOTP_AUTH\n"));
    let c = candidates(b"050548", Digits::SIX, false);
    // Booted at step 9966, long before the code's step 10000.
    let booted = 299_000;
    let a = |now, boot_time| Attempt {
        origin: HOME,
        rhost: None,
        local: false,
        now,
        continued: false,
        boot_time,
        store_complete_since: 0,
        keep_ga_lines: true,
    };
    let prep = prepare(&f, &p, &c, 300_000, &key()).unwrap();
    let d = prep
        .decide(&UserState::default(), &p, &a(300_000, Some(booted)))
        .unwrap();
    assert!(d.verdict.is_accepted());
    assert!(matches!(d.write, Write::Lazy(_)), "no fsync: {:?}", d.write);
    // Power loss: the lazy record is gone, and the machine boots again at 300_010.
    let prep = prepare(&f, &p, &c, 300_020, &key()).unwrap();
    let d = prep
        .decide(&UserState::default(), &p, &a(300_020, Some(300_010)))
        .unwrap();
    assert_eq!(
        d.verdict,
        Verdict::Replayed,
        "a code from before the boot is used"
    );
    assert!(d.warnings.contains(&Warning::UsedBeforeBoot));
    // The window reaches one step ahead: steps up to 10000 + 1 count as used, and the
    // code of step 10002 is the first that works after that boot.
    for (step, ok) in [(10_001, false), (10_002, true)] {
        let c = candidates(code(step).as_bytes(), Digits::SIX, false);
        let now = step as i64 * 30;
        let prep = prepare(&f, &p, &c, now, &key()).unwrap();
        let d = prep
            .decide(&UserState::default(), &p, &a(now, Some(300_010)))
            .unwrap();
        assert_eq!(d.verdict.is_accepted(), ok, "step {step}");
    }
    // Without a boot time a used code is written durably.
    let prep = prepare(&f, &p, &c, 300_000, &key()).unwrap();
    let d = prep
        .decide(&UserState::default(), &p, &a(300_000, None))
        .unwrap();
    assert!(matches!(d.write, Write::Durable(_)));
}

#[test]
fn a_doomed_attempt_is_throttled_and_charged_like_a_wrong_code() {
    let p = Policy::default();
    let mut state = UserState::default();
    let mut real = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    for i in 0..4 {
        let now = 300_000 + i;
        let a = Attempt {
            origin: HOME,
            rhost: None,
            local: false,
            now,
            continued: false,
            boot_time: None,
            store_complete_since: 0,
            keep_ga_lines: true,
        };
        let d = Prepared::doomed(now)
            .unwrap()
            .decide(&state, &p, &a)
            .unwrap();
        let r = real.attempt(&p, "000000", now);
        assert_eq!(d.verdict, r.verdict, "attempt {i}");
        assert_eq!(d.retry_after, r.retry_after, "attempt {i}");
        assert!(d.file.is_none());
        if let Write::Lazy(next) = d.write {
            state = next;
        }
    }
    assert_eq!(Ledger::decode(&state.extra).unwrap().consecutive, 3);
}

/// Another 160-bit secret (a re-enrolment).
const S2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn code_of(secret_b32: &str, counter: u64) -> String {
    let s = Secret::new(crate::base32::decode_lenient(secret_b32.as_bytes()).unwrap());
    format_code(
        otp::hotp(&s, counter, Algorithm::Sha1, Digits::SIX),
        Digits::SIX,
    )
    .to_string()
}

#[test]
fn a_new_secret_starts_fresh_marks_and_keeps_the_throttling() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&p, &code(10_000), 300_000)));
    // A wrong code charges the account.
    assert_eq!(u.attempt(&p, "000000", 300_001).verdict, Verdict::Rejected);
    let charged = u.ledger().consecutive;
    assert_eq!(charged, 1);
    // Re-enrolled with another secret, in the same step: its code of this step was
    // never used, so it is accepted (the old marks do not apply) ...
    u.file = file(&format!("{S2}\n\" TOTP_AUTH\n"));
    let later = 300_000 + i64::try_from(p.backoff_secs(1)).unwrap() + 1;
    let d = u.attempt(
        &p,
        &code_of(S2, 10_000 + (later as u64 - 300_000) / 30),
        later,
    );
    assert!(accepted(&d), "{d:?}");
    // ... and both enrolments keep their own marks, the latest first.
    assert_eq!(u.state.marks.len(), 2);
    // Back to the first secret (a restored backup): its marks still hold.
    u.file = file(&format!("{S}\n\" TOTP_AUTH\n"));
    assert_eq!(
        u.attempt(&p, &code(10_000), 300_010 + 30).verdict,
        Verdict::Replayed
    );
}

#[test]
fn throttling_survives_re_enrolment() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let mut failures = 0;
    while p.backoff_secs(failures) == 0 {
        assert_eq!(u.attempt(&p, "000000", 300_000).verdict, Verdict::Rejected);
        failures += 1;
    }
    u.file = file(&format!("{S2}\n\" TOTP_AUTH\n"));
    // Within the backoff: refused unevaluated, even with the new secret's right code.
    assert_eq!(
        u.attempt(&p, &code_of(S2, 10_000), 300_000).verdict,
        Verdict::Throttled(Throttle::Backoff)
    );
}

#[test]
fn a_new_step_size_is_a_new_enrolment_not_a_clock_fault() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    let now = 1_700_000_000;
    let step30 = now as u64 / 30;
    assert!(accepted(&u.attempt(&p, &code(step30), now)));
    // The same secret with 10-s steps: step numbers three times larger. Marks are kept
    // in seconds and per enrolment, so neither a fault nor a lockout.
    u.file = file(&format!("{S}\n\" STEP_SIZE 10\n\" TOTP_AUTH\n"));
    let d = u.attempt(&p, &code(now as u64 / 10 + 1), now + 10);
    assert!(accepted(&d), "{d:?}");
    // And back to 30 s: the first enrolment's mark still refuses its used step.
    u.file = file(&format!("{S}\n\" TOTP_AUTH\n"));
    assert_eq!(
        u.attempt(&p, &code(step30), now + 11).verdict,
        Verdict::Replayed
    );
}

#[test]
fn enrolment_ids_depend_on_key_secret_and_parameters() {
    let k = key();
    let cfg = |t: &str| file(t).config().unwrap();
    let id = |k: &StoreKey, t: &str| enrolment_id(k, &cfg(t), &file(t).secret().unwrap());
    let base = format!("{S}\n\" TOTP_AUTH\n");
    let other_key = StoreKey::new([8; crate::state::STORE_KEY_LEN]);
    assert_eq!(
        id(&k, &base),
        id(&k, &format!("{S}\n\" TOTP_AUTH\n12345678\n"))
    );
    for other in [
        format!("{S2}\n\" TOTP_AUTH\n"),
        format!("{S}\n\" STEP_SIZE 60\n\" TOTP_AUTH\n"),
        format!("{S}\n\" HOTP_COUNTER 1\n"),
        format!("{S}\n\" PAM_TOTP_DIGITS 8\n\" TOTP_AUTH\n"),
    ] {
        assert_ne!(id(&k, &base), id(&k, &other), "{other}");
    }
    assert_ne!(id(&k, &base), id(&other_key, &base));
    // The HOTP counter is not part of it: re-programming a token keeps its marks.
    assert_eq!(
        id(&k, &format!("{S}\n\" HOTP_COUNTER 1\n")),
        id(&k, &format!("{S}\n\" HOTP_COUNTER 9\n"))
    );
}

#[test]
fn scratch_codes_of_a_file_that_cannot_be_rewritten_are_used_once() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n12345678\n87654321\n"));
    u.readonly = true;
    let d = u.attempt(&p, "12345678", 300_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch));
    assert!(
        matches!(d.write, Write::Durable(_)),
        "the store is the record"
    );
    assert!(
        d.file.is_some(),
        "still rewritten where it can be (GA roll-back)"
    );
    // The file still lists it; the store refuses it.
    assert_eq!(
        u.attempt(&p, "12345678", 300_040).verdict,
        Verdict::Replayed
    );
    assert_eq!(
        u.attempt(&p, "87654321", 300_080).verdict,
        Verdict::Accepted(Method::Scratch)
    );
    // What the store holds is a keyed tag, never the code.
    let encoded = u.state.encode();
    for code in [12_345_678u32, 87_654_321] {
        for bytes in [code.to_le_bytes(), code.to_be_bytes()] {
            assert!(!encoded.windows(4).any(|w| w == bytes));
        }
    }
}

#[test]
fn used_scratch_codes_are_bounded_per_enrolment() {
    let p = Policy::default();
    let codes: Vec<u32> = (0..=MAX_USED_SCRATCH as u32)
        .map(|i| 20_000_000 + i)
        .collect();
    let text = codes
        .iter()
        .fold(format!("{S}\n\" TOTP_AUTH\n"), |t, c| format!("{t}{c}\n"));
    let mut u = User::new(&text);
    u.readonly = true;
    for (i, c) in codes.iter().enumerate().take(MAX_USED_SCRATCH) {
        let d = u.attempt(&p, &c.to_string(), 300_000 + 40 * i as i64);
        assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch));
    }
    let last = codes[MAX_USED_SCRATCH].to_string();
    let cands = candidates(last.as_bytes(), Digits::SIX, false);
    let prep = prepare(&u.file, &p, &cands, 400_000, &key()).unwrap();
    let a = Attempt {
        origin: HOME,
        rhost: None,
        local: false,
        now: 400_000,
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: true,
    };
    assert_eq!(
        prep.decide(&u.state, &p, &a).err(),
        Some(VerifyError::TooManyUsedScratch)
    );
}

/// A record merged from two stores (`state_fallback=local`'s used scratch codes carried
/// into the shared store's full list) holds more than a record keeps: the oldest code
/// the file no longer lists makes room, never the carried one, which the file still
/// lists (before, the encoding dropped it: the code open again on every other host).
/// Where every used code is still listed, nothing is forgotten and no scratch code logs
/// in, but a TOTP code does: the record written keeps what it held, the carried use
/// stays in the local record (before, every login of the enrolment was refused).
#[test]
fn a_carried_scratch_code_is_kept_when_the_record_is_full() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    // Sixteen codes used and removed from the file.
    for i in 0..MAX_USED_SCRATCH as u32 {
        let c = 40_000_000 + i;
        u.file = file(&format!(
            "{}{c}\n",
            String::from_utf8_lossy(u.file.as_bytes())
        ));
        let d = u.attempt(&p, &c.to_string(), 300_000 + 40 * i64::from(i));
        assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch), "code {i}");
    }
    let carried_code = 41_000_000u32;
    let spare = 41_000_001u32;
    u.file = file(&format!(
        "{}{carried_code}\n{spare}\n",
        String::from_utf8_lossy(u.file.as_bytes())
    ));
    let id = enrolment_of(&u.file, &key()).unwrap();
    let carried = scratch_tag(&key(), id, carried_code);
    let mut merged = u.state.latest().unwrap().clone();
    assert_eq!(merged.scratch.len(), MAX_USED_SCRATCH);
    merged.scratch.push(carried);
    u.state = u.state.with_marks(id, merged.clone());
    // A wrong code: the record written keeps the carried use.
    let d = u.attempt(&p, "00000000", 301_000);
    assert_eq!(d.verdict, Verdict::Rejected);
    let kept = &u.state.latest().unwrap().scratch;
    assert_eq!(kept.len(), MAX_USED_SCRATCH);
    assert!(kept.contains(&carried), "the carried use is kept");
    assert_eq!(
        u.attempt(&p, &carried_code.to_string(), 301_040).verdict,
        Verdict::Replayed
    );
    // Control: an unused listed code still logs in on the full record.
    assert_eq!(
        u.attempt(&p, &spare.to_string(), 301_080).verdict,
        Verdict::Accepted(Method::Scratch)
    );

    // Seventeen used codes the file still lists (sixteen in the record, one carried),
    // and one listed code never used: none can be forgotten, and none is.
    let codes: Vec<u32> = (0..=MAX_USED_SCRATCH as u32 + 1)
        .map(|i| 42_000_000 + i)
        .collect();
    let unused = codes[MAX_USED_SCRATCH + 1];
    let text = codes
        .iter()
        .fold(format!("{S}\n\" TOTP_AUTH\n"), |t, c| format!("{t}{c}\n"));
    let listed = file(&text);
    let id = enrolment_of(&listed, &key()).unwrap();
    let tags: Vec<u64> = codes[..=MAX_USED_SCRATCH]
        .iter()
        .map(|&c| scratch_tag(&key(), id, c))
        .collect();
    let full = UserState::default().with_marks(
        id,
        Marks {
            scratch: tags.clone(),
            ..Marks::default()
        },
    );
    let attempt = |answer: &str| {
        let cands = candidates(answer.as_bytes(), Digits::SIX, false);
        let prep = prepare(&listed, &p, &cands, 300_000, &key()).unwrap();
        let a = Attempt {
            origin: HOME,
            rhost: None,
            local: false,
            now: 300_000,
            continued: false,
            boot_time: None,
            store_complete_since: 0,
            keep_ga_lines: true,
        };
        prep.decide(&full, &p, &a)
    };
    // A right TOTP code logs in (before, every login of the enrolment was refused: a
    // lockout); the record written keeps its own sixteen uses and records no other.
    let d = attempt(&code(10_000)).expect("decided");
    assert_eq!(d.verdict, Verdict::Accepted(Method::Totp { step: 10_000 }));
    assert!(
        d.warnings
            .contains(&Warning::UsedScratchNotCarried { dropped: 1 }),
        "{:?}",
        d.warnings
    );
    let (Write::Durable(written) | Write::Lazy(written)) = &d.write else {
        panic!("nothing written: {:?}", d.write);
    };
    let kept = &written.marks_of(id).expect("marks").scratch;
    assert_eq!(kept[..], tags[..MAX_USED_SCRATCH]);
    // The carried use is refused as used, a listed code never used as no room is left.
    let d = attempt(&codes[MAX_USED_SCRATCH].to_string()).expect("decided");
    assert_eq!(d.verdict, Verdict::Replayed);
    assert_eq!(
        attempt(&unused.to_string()).err(),
        Some(VerifyError::TooManyUsedScratch)
    );
    // Control: a wrong code is refused and charged, the record still not over-full.
    let d = attempt("000000").expect("decided");
    assert_eq!(d.verdict, Verdict::Rejected);
    let Write::Lazy(written) = &d.write else {
        panic!("not charged: {:?}", d.write);
    };
    assert_eq!(
        written.marks_of(id).expect("marks").scratch.len(),
        MAX_USED_SCRATCH
    );
}

/// GA has no limit on scratch codes per secret: an admin appends new ones (or
/// `totp-enroll --regenerate-scratch-codes` replaces them) for the same secret. Once the
/// record of used codes is full, the oldest one the file no longer lists is forgotten,
/// instead of refusing every scratch code from then on.
#[test]
fn scratch_codes_appended_for_the_same_secret_keep_working() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    for i in 0..(3 * MAX_USED_SCRATCH as u32) {
        let c = 30_000_000 + i;
        u.file = file(&format!(
            "{}{c}\n",
            String::from_utf8_lossy(u.file.as_bytes())
        ));
        let d = u.attempt(&p, &c.to_string(), 300_000 + 40 * i64::from(i));
        assert_eq!(d.verdict, Verdict::Accepted(Method::Scratch), "code {i}");
        assert!(!u.file.scratch_codes().contains(&c), "code {i} removed");
        // The newest used codes are still refused if a backup brings them back.
        let back = file(&format!(
            "{}{c}\n",
            String::from_utf8_lossy(u.file.as_bytes())
        ));
        let mut restored = u.clone();
        restored.file = back;
        let d = restored.attempt(&p, &c.to_string(), 300_020 + 40 * i64::from(i));
        assert_eq!(d.verdict, Verdict::Replayed, "code {i} restored");
    }
}

#[test]
fn hotp_of_a_file_that_cannot_be_rewritten_moves_on_with_the_store() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    u.readonly = true;
    let d = u.attempt(&p, &code(1), 300_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: 1 }));
    assert!(matches!(d.write, Write::Durable(_)));
    assert_eq!(u.attempt(&p, &code(1), 300_040).verdict, Verdict::Replayed);
    // The window starts after the store's mark, so more codes than the window work.
    for ctr in 2..30 {
        let d = u.attempt(&p, &code(ctr), 300_000 + 40 * ctr as i64);
        assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: ctr }));
    }
}

#[test]
fn a_new_hotp_token_starts_at_its_own_counter() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" HOTP_COUNTER 1\n"));
    for ctr in 1..8 {
        assert!(accepted(&u.attempt(
            &p,
            &code(ctr),
            300_000 + 40 * ctr as i64
        )));
    }
    u.file = file(&format!("{S2}\n\" HOTP_COUNTER 1\n"));
    let d = u.attempt(&p, &code_of(S2, 1), 301_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: 1 }));
}

#[test]
fn a_version_1_record_keeps_protecting_after_the_upgrade() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: Some(10_000),
        hotp: None,
    });
    assert_eq!(
        u.attempt(&p, &code(10_000), 300_010).verdict,
        Verdict::Replayed
    );
    assert!(accepted(&u.attempt(&p, &code(10_001), 300_030)));
    // Kept for the enrolments that have no marks of their own.
    assert!(u.state.legacy.is_some());
    assert_eq!(u.last_step(), Some(10_001));
}

/// Finding (R34, R35): a version-1 record's marks went to whichever enrolment logged in
/// first and were dropped; an HOTP file beside the TOTP one then started from nothing,
/// and its recorded codes worked again.
#[test]
fn version_1_marks_protect_every_enrolment_not_only_the_first() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: Some(10_000),
        hotp: Some(500),
    });
    // The sudo (TOTP) login binds the marks first.
    assert!(accepted(&u.attempt(&p, &code(10_001), 300_030)));
    // The HOTP enrolment (a file that is never rewritten) is held to the old counter.
    u.file = file(&format!("{S2}\n\" HOTP_COUNTER 1\n"));
    u.readonly = true;
    // The file's own counters under the old one: refused as used, and said (the old
    // token's codes typed again, or a new token only an admin can tell from it).
    for ctr in [1, 3] {
        let d = u.attempt(&p, &code_of(S2, ctr), 300_100 + ctr as i64);
        assert_eq!(d.verdict, Verdict::Replayed, "counter {ctr}");
        assert!(
            d.warnings.contains(&Warning::Version1HotpCounter {
                counter: ctr,
                mark: 500
            }),
            "{:?}",
            d.warnings
        );
    }
    // (A counter beyond the file's window and at or below the mark: refused, not named.)
    let d = u.attempt(&p, &code_of(S2, 500), 300_600);
    assert!(!accepted(&d), "{:?}", d.verdict);
    // The control: the next counter works, once.
    let d = u.attempt(&p, &code_of(S2, 501), 301_000);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: 501 }));
    assert_eq!(
        u.attempt(&p, &code_of(S2, 501), 301_040).verdict,
        Verdict::Replayed
    );
    // A further TOTP enrolment is held to the old TOTP mark as well.
    u.file = file(&format!("{S2}\n\" TOTP_AUTH\n"));
    u.readonly = false;
    let d = u.attempt(&p, &code_of(S2, 10_000), 300_010);
    assert_eq!(d.verdict, Verdict::Replayed);
    assert!(accepted(&u.attempt(&p, &code_of(S2, 10_002), 300_070)));
}

/// Review finding (R35): a version-1 TOTP mark of a 30-s file, read at a re-enrolment's
/// 60-s step, lands near twice the clock; it was refused as a clock fault on every login
/// until an admin's reset. It is not that enrolment's, so it is not applied to it; the
/// enrolment that wrote it still reads it at its own step.
#[test]
fn a_version_1_mark_does_not_lock_out_a_re_enrolment_with_longer_steps() {
    let p = Policy::default();
    let now: i64 = 1_700_000_010;
    let old_step = now as u64 / 30 - 1;
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: Some(old_step),
        hotp: None,
    });
    let old = u.file.clone();
    // Re-enrolment with a new secret and 60-s steps (`totp-enroll -S 60`).
    u.file = file(&format!("{S2}\n\" STEP_SIZE 60\n\" TOTP_AUTH\n"));
    let later = now + 120;
    let d = u.attempt(&p, &code_of(S2, later as u64 / 60), later);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert!(
        d.warnings
            .iter()
            .any(|w| matches!(w, Warning::Version1MarkNotApplied { .. })),
        "{:?}",
        d.warnings
    );
    assert_eq!(
        u.attempt(&p, &code_of(S2, later as u64 / 60), later + 5)
            .verdict,
        Verdict::Replayed
    );
    // The control: the old 30-s secret (its file restored) is still held to the mark.
    assert!(u.state.legacy.is_some());
    u.file = old;
    assert_eq!(
        u.attempt(&p, &code(old_step), now).verdict,
        Verdict::Replayed
    );
    assert!(accepted(&u.attempt(&p, &code(now as u64 / 30), now)));
}

/// Review finding (R13): a version-1 record's mark was set aside whenever it lay after
/// anything a login honours, so a clock set back three days (NTP spoofed, a VM snapshot
/// restored) let the same 30-s enrolment's code of three days ago in again. No shorter
/// step puts that mark near the clock: it is a clock fault, said as the version-1
/// record's. Control: at the right clock the next code logs in.
#[test]
fn a_same_step_version_1_mark_ahead_of_a_clock_set_back_is_a_clock_fault() {
    let p = Policy::default();
    let real_now: i64 = 1_700_000_010;
    let mark = real_now as u64 / 30;
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: Some(mark),
        hotp: None,
    });
    let back = real_now - 3 * 86_400;
    let old_step = back as u64 / 30;
    let c = candidates(code(old_step).as_bytes(), Digits::SIX, false);
    let prep = prepare(&u.file, &p, &c, back, &key()).unwrap();
    let a = Attempt {
        origin: HOME,
        rhost: Some(u.rhost),
        local: false,
        now: back,
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: true,
    };
    assert_eq!(
        prep.decide(&u.state, &p, &a).err(),
        Some(VerifyError::StateAhead {
            mark_time: mark * 30,
            in_file: false,
            version_1: true
        })
    );
    // The same at every step a file may have: its own mark ahead is never set aside.
    for step in 1..=LONGEST_STEP_SECS {
        let f = file(&format!("{S}\n\" STEP_SIZE {step}\n\" TOTP_AUTH\n"));
        let state = UserState {
            legacy: Some(crate::state::LegacyMarks {
                last_step: Some(real_now as u64 / step),
                hotp: None,
            }),
            ..UserState::default()
        };
        let prep = prepare(&f, &p, &c, back, &key()).unwrap();
        assert!(
            matches!(
                prep.decide(&state, &p, &a),
                Err(VerifyError::StateAhead {
                    version_1: true,
                    ..
                })
            ),
            "step {step}"
        );
    }
    // Control: the clock right again, the next code logs in.
    let d = u.attempt(&p, &code(mark + 1), real_now + 30);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::Version1MarkNotApplied { .. })),
        "{:?}",
        d.warnings
    );
}

/// The margin of [`version_1_mark_from_shorter_step`] over every step a file may have,
/// at the worst allowance (a day of clock lag and the longest skew lead): from 2026 on
/// no same-step mark less than 340 days after the clock is set aside, while a shorter
/// step's mark of the clock always is, at every longer step. The bound is close: a
/// 60-s mark about 345 days ahead reads near the clock at 59 s.
#[test]
fn only_a_shorter_step_near_the_clock_sets_a_version_1_mark_aside() {
    let allowance = crate::policy::DEFAULT_MAX_CLOCK_LAG_SECS + LONGEST_SKEW_LEAD_SECS;
    let now: u64 = 1_767_225_600; // 2026-01-01
    let (earliest, latest) = (now - allowance, now + allowance);
    let aside =
        |last_step, step| version_1_mark_from_shorter_step(last_step, step, earliest, latest);
    for step in 1..=LONGEST_STEP_SECS {
        for ahead in (allowance + 1..340 * 86_400).step_by(3_600) {
            assert!(
                !aside((now + ahead) / step, step),
                "step {step}, {ahead} s ahead"
            );
        }
    }
    for written in 1..LONGEST_STEP_SECS {
        for step in written + 1..=LONGEST_STEP_SECS {
            let last_step = now / written;
            assert!(
                last_step * step > latest,
                "{written} s read at {step} s is ahead"
            );
            assert!(aside(last_step, step), "{written} s read at {step} s");
        }
    }
    assert!(
        (340 * 86_400..350 * 86_400)
            .step_by(3_600)
            .any(|ahead| aside((now + ahead) / 60, 60))
    );
    // No step is shorter than the shortest.
    assert!(!aside(now, 1));
}

/// A version-1 mark read at the file's own step within what a login honours (a phone
/// ahead) is still applied: only one beyond it is set aside.
#[test]
fn a_version_1_mark_a_login_honours_is_applied() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: Some(10_002),
        hotp: None,
    });
    let d = u.attempt(&p, &code(10_001), 300_030);
    assert_eq!(d.verdict, Verdict::OutOfOrder);
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::Version1MarkNotApplied { .. }))
    );
}

/// An HOTP re-enrolment under a version-1 counter: refused and said until the admin's
/// `totp-state reset --forget-version-1-marks`, then the new token's first code works.
#[test]
fn an_hotp_re_enrolment_under_a_version_1_counter_works_after_the_admin_forgets_it() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S2}\n\" HOTP_COUNTER 1\n"));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: None,
        hotp: Some(500),
    });
    let d = u.attempt(&p, &code_of(S2, 1), 300_000);
    assert_eq!(d.verdict, Verdict::Replayed);
    assert!(d.warnings.contains(&Warning::Version1HotpCounter {
        counter: 1,
        mark: 500
    }));
    // The file's counter did not move: the same press is still the next code.
    let forget = crate::state::ResetHow {
        forget_version_1: true,
        ..crate::state::ResetHow::default()
    };
    u.state = u.state.lifted(Some(300_100), forget).0;
    let d = u.attempt(&p, &code_of(S2, 1), 300_200);
    assert_eq!(d.verdict, Verdict::Accepted(Method::Hotp { counter: 1 }));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn a_store_that_lost_its_data_counts_every_step_before_it_as_used() {
    // R34: a shared store recreated at 300_000 (its data set lost) holds no record of
    // codes used just before; the code of that step is refused once, the next works.
    let p = Policy::default();
    let f = file(&format!("{S}\n\" TOTP_AUTH\n"));
    let attempt = |now, since| Attempt {
        origin: HOME,
        rhost: None,
        local: false,
        now,
        continued: false,
        boot_time: None,
        store_complete_since: since,
        keep_ga_lines: true,
    };
    let run = |answer: &str, now: i64, since: u64| {
        let c = candidates(answer.as_bytes(), Digits::SIX, false);
        let prep = prepare(&f, &p, &c, now, &key()).unwrap();
        prep.decide(&UserState::default(), &p, &attempt(now, since))
            .unwrap()
    };
    let d = run(&code(10_000), 300_010, 300_000);
    assert_eq!(d.verdict, Verdict::Replayed);
    assert!(d.warnings.contains(&Warning::UsedBeforeBoot));
    // A store recreated by a host whose clock was ahead refuses the codes up to then,
    // and the log names the clock trouble instead of a used code.
    let d = run(&code(10_000), 300_010, 301_000);
    assert_eq!(d.verdict, Verdict::Replayed);
    assert!(d.warnings.contains(&Warning::StoreRecreatedAhead {
        since: 301_000,
        ahead: 990
    }));
    assert!(!d.warnings.contains(&Warning::UsedBeforeBoot));
    // Within the clock slack it is the ordinary case.
    let d = run(&code(10_000), 300_010, 300_070);
    assert!(d.warnings.contains(&Warning::UsedBeforeBoot));
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::StoreRecreatedAhead { .. }))
    );
    // Control: the same attempt against a store complete since the beginning.
    assert!(accepted(&run(&code(10_000), 300_010, 0)));
    // The window reaches one step ahead: that one counts as used too; the one after it
    // is the first that works.
    assert_eq!(
        run(&code(10_001), 300_040, 300_000).verdict,
        Verdict::Replayed
    );
    assert!(accepted(&run(&code(10_002), 300_070, 300_000)));
    // Without a boot time the write stays durable; the store floor does not make it lazy.
    assert!(matches!(
        run(&code(10_002), 300_070, 300_000).write,
        Write::Durable(_)
    ));
}

#[test]
fn a_refusal_names_the_rule_with_the_longest_wait() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" RATE_LIMIT 3 600\n\" TOTP_AUTH\n"));
    for i in 0..3 {
        let d = u.try_from(&p, "000000", 300_000 + i, STRANGER);
        assert_eq!(d.verdict, Verdict::Rejected, "attempt {i}");
    }
    // Both this origin's backoff (3 failures: 30 s) and the RATE_LIMIT line (3 per
    // 600 s) refuse the fourth; the line's wait is the longer, so it is the reason and
    // the wait the user is told.
    let backoff = p.backoff_secs(3);
    assert!(backoff > 0 && backoff < 60, "{backoff}");
    let d = u.try_from(&p, &code(10_000), 300_003, STRANGER);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    assert!(
        d.retry_after.is_some_and(|s| s > 500),
        "{:?}",
        d.retry_after
    );
}

#[test]
fn only_an_unevaluated_verdict_is_a_refusal_and_its_wait_is_at_least_a_second() {
    let decision = |verdict, retry_after| Decision {
        verdict,
        write: Write::Nothing,
        file: None,
        matched: None,
        retry_after,
        warnings: Vec::new(),
    };
    let throttled = |rule, retry_after| Some(Refusal::Throttled { rule, retry_after });
    for (verdict, retry, want) in [
        (
            Verdict::Throttled(Throttle::Backoff),
            Some(30),
            throttled(Throttle::Backoff, 30),
        ),
        (
            Verdict::Throttled(Throttle::Ceiling),
            None,
            throttled(Throttle::Ceiling, 1),
        ),
        (
            Verdict::Throttled(Throttle::RateLimit),
            Some(0),
            throttled(Throttle::RateLimit, 1),
        ),
        (Verdict::Disabled, Some(30), Some(Refusal::Disabled)),
        (Verdict::Disabled, None, Some(Refusal::Disabled)),
        (Verdict::Rejected, Some(30), None),
        (Verdict::Replayed, None, None),
        (Verdict::Accepted(Method::Scratch), None, None),
    ] {
        assert_eq!(
            decision(verdict, retry).refusal(),
            want,
            "{verdict:?} {retry:?}"
        );
    }
}

#[test]
fn the_hard_cap_is_decided_as_a_refusal() {
    let p = Policy {
        max_failures: Some(3),
        ..Policy::default()
    };
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    for i in 0..3 {
        let d = u.try_from(&p, "000000", 300_000 + i * 3600, STRANGER);
        assert_eq!(d.refusal(), None, "attempt {i} is evaluated: {d:?}");
    }
    let d = u.try_from(&p, &code(10_000), 300_000 + 3 * 3600, STRANGER);
    assert_eq!(d.refusal(), Some(Refusal::Disabled), "{d:?}");
}

/// A file padded to just under GA's 64 KiB cap: GA accepts it, and the lines a login
/// updates would take it past the cap.
fn near_the_size_cap(head: &str) -> String {
    let mut text = format!("{head}\" X_PAD ");
    while text.len() < gafile::MAX_FILE_LEN - 1 {
        text.push('a');
    }
    text.push('\n');
    text
}

#[test]
fn a_line_update_that_would_outgrow_the_size_cap_is_dropped_not_a_denial() {
    let p = Policy::default();
    // TOTP: the shared file's DISALLOW_REUSE line would grow.
    let mut u = User::new(&near_the_size_cap(&format!(
        "{S}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"
    )));
    let d = u.attempt(&p, "050548", 300_000);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert_eq!(d.file, None, "nothing that fits to write");
    assert!(d.warnings.contains(&Warning::LineNotUpdated {
        key: gafile::KEY_DISALLOW_REUSE,
        shared: true
    }));
    // The store still refuses the code again.
    assert!(!accepted(&u.attempt(&p, "050548", 300_001)));
    // RATE_LIMIT: every attempt would grow the line; it is still obeyed.
    let mut u = User::new(&near_the_size_cap(&format!(
        "{S}\n\" RATE_LIMIT 1 30\n\" TOTP_AUTH\n"
    )));
    let d = u.attempt(&p, "050548", 300_000);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert!(d.warnings.contains(&Warning::LineNotUpdated {
        key: gafile::KEY_RATE_LIMIT,
        shared: true
    }));
    let d = u.attempt(&p, &code(10_001), 300_030 - 1);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    // HOTP: HOTP_COUNTER 9 -> 10 grows by one byte; the store holds the counter.
    let mut u = User::new(&near_the_size_cap(&format!("{S}\n\" HOTP_COUNTER 9\n")));
    let d = u.attempt(&p, &code(9), 300_000);
    assert!(accepted(&d), "{:?}", d.verdict);
    assert!(d.warnings.contains(&Warning::LineNotUpdated {
        key: gafile::KEY_HOTP_COUNTER,
        shared: true
    }));
    assert_ne!(
        u.attempt(&p, &code(9), 300_060).verdict,
        Verdict::Accepted(Method::Hotp { counter: 9 })
    );
    assert!(accepted(&u.attempt(&p, &code(10), 300_120)));
    // What the warning says where hosts with another store read the file: they take
    // the code again (the line is all they learn from); elsewhere only GA after a
    // rollback would.
    let shared = Warning::LineNotUpdated {
        key: gafile::KEY_DISALLOW_REUSE,
        shared: true,
    }
    .to_string();
    assert!(
        shared.contains("hosts with another state store") && shared.contains("again"),
        "{shared}"
    );
    let local = Warning::LineNotUpdated {
        key: gafile::KEY_HOTP_COUNTER,
        shared: false,
    };
    assert!(local.to_string().contains("after a rollback"), "{local}");
    let mut u = User::new(&near_the_size_cap(&format!("{S}\n\" HOTP_COUNTER 9\n")));
    u.shared = false;
    let d = u.attempt(&p, &code(9), 300_000);
    assert!(d.warnings.contains(&local), "{:?}", d.warnings);
    // A failed HOTP attempt used nothing: GA's move of the counter is dropped in
    // silence (no warning of an unrecorded use).
    let d = u.attempt(&p, &code(500), 300_060);
    assert_eq!(d.verdict, Verdict::Rejected);
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::LineNotUpdated { .. })),
        "{:?}",
        d.warnings
    );
    // Control: a file with room is updated as before.
    let mut u = User::new(&format!("{S}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"));
    let d = u.attempt(&p, "050548", 300_000);
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::LineNotUpdated { .. })),
        "{:?}",
        d.warnings
    );
    assert!(d.file.is_some());
}

/// Only the step accepted last (or one `DISALLOW_REUSE` lists) is a replay; a code of an
/// older step, never accepted, is out of order. Both are refused and charged alike.
#[test]
fn a_code_older_than_the_last_accepted_step_is_out_of_order_not_a_replay() {
    let p = Policy::default();
    for listed in [false, true] {
        let text = if listed {
            format!("{S}\n\" DISALLOW_REUSE 9999\n\" TOTP_AUTH\n")
        } else {
            format!("{S}\n\" TOTP_AUTH\n")
        };
        let mut u = User::new(&text);
        assert!(accepted(&u.attempt(&p, &code(10_000), 300_000)));
        // The control: the step accepted, typed again.
        let d = u.attempt(&p, &code(10_000), 300_001);
        assert_eq!(d.verdict, Verdict::Replayed, "listed {listed}");
        assert!(matches!(d.write, Write::Lazy(_)));
        let charged = u.ledger().consecutive;
        // The step before it, within the window, never accepted here.
        let d = u.attempt(&p, &code(9_999), 300_002);
        let want = if listed {
            Verdict::Replayed
        } else {
            Verdict::OutOfOrder
        };
        assert_eq!(d.verdict, want, "listed {listed}");
        assert!(matches!(d.write, Write::Lazy(_)));
        assert_eq!(
            u.ledger().consecutive,
            charged + 1,
            "the attempt is charged"
        );
        assert!(d.refusal().is_none());
    }
}

/// The module splits a typed "password then code" answer by these digits: an
/// eight-digit file read as six would cut two digits of the code into the password.
#[test]
fn prepared_reports_the_files_own_digits_and_mode() {
    let b32 = crate::base32::encode(b"12345678901234567890123456789012");
    let f = file(&format!(
        "{b32}\n\" PAM_TOTP_ALGORITHM SHA256\n\" PAM_TOTP_DIGITS 8\n\" TOTP_AUTH\n"
    ));
    let prep = prepare(&f, &Policy::default(), &[], 59, &key()).unwrap();
    assert_eq!(prep.digits(), Digits::EIGHT);
    assert_eq!(prep.mode(), Mode::Totp);
    let f = file(&format!("{S}\n\" HOTP_COUNTER 4\n"));
    let prep = prepare(&f, &Policy::default(), &[], 59, &key()).unwrap();
    assert_eq!(prep.digits(), Digits::SIX);
    assert_eq!(prep.mode(), Mode::Hotp { counter: 4 });
}

/// Half a wide window is how far it reaches, not a lead a stored skew gives: a mark
/// one second past the clock-lag allowance is a clock fault at any window size.
#[test]
fn a_wide_window_widens_no_clock_fault_allowance() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" WINDOW_SIZE 17\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&p, &code(20_000), 600_000)));
    let c = candidates(b"000000", Digits::SIX, false);
    let a = |now| Attempt {
        origin: HOME,
        rhost: None,
        local: false,
        now,
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: true,
    };
    let lag = p.max_clock_lag_secs as i64;
    let prep = prepare(&u.file, &p, &c, 600_000 - lag - 1, &key()).unwrap();
    assert_eq!(
        prep.decide(&u.state, &p, &a(600_000 - lag - 1)).err(),
        Some(VerifyError::StateAhead {
            mark_time: 600_000,
            in_file: false,
            version_1: false
        })
    );
    // Control: within the allowance the mark is honoured and the attempt decided.
    let prep = prepare(&u.file, &p, &c, 600_000 - lag, &key()).unwrap();
    assert!(prep.decide(&u.state, &p, &a(600_000 - lag)).is_ok());
}

/// The enrolment's own mark far ahead is its own clock fault, even where an older
/// version-1 mark is also kept: the log must not send the admin after the old one.
#[test]
fn an_own_mark_ahead_is_not_blamed_on_a_version_1_mark() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&p, &code(20_000), 600_000)));
    u.state.legacy = Some(crate::state::LegacyMarks {
        last_step: Some(10),
        hotp: None,
    });
    let c = candidates(b"000000", Digits::SIX, false);
    let now = 600_000 - p.max_clock_lag_secs as i64 - 1;
    let prep = prepare(&u.file, &p, &c, now, &key()).unwrap();
    let a = Attempt {
        origin: HOME,
        rhost: None,
        local: false,
        now,
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: true,
    };
    assert_eq!(
        prep.decide(&u.state, &p, &a).err(),
        Some(VerifyError::StateAhead {
            mark_time: 600_000,
            in_file: false,
            version_1: false
        })
    );
}

/// A mark past everything the window reaches, yet within the clock-lag allowance, is
/// obeyed and said: the operator learns of a clock that is behind before it locks out.
#[test]
fn a_mark_ahead_of_the_window_is_obeyed_with_a_warning() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&p, &code(20_000), 600_000)));
    let d = u.clone().attempt(&p, &code(19_966), 599_000);
    // Refused: an older step than the mark, never itself accepted.
    assert_eq!(d.verdict, Verdict::OutOfOrder);
    assert!(
        d.warnings.contains(&Warning::MarkAheadOfClock {
            mark_time: 600_000,
            ahead: 1_000
        }),
        "{:?}",
        d.warnings
    );
    // Control: a mark the window reaches, or reaches but for the clock slack, is no
    // clock trouble.
    for now in [600_000 - 30, 600_000 - 2 * 30 - CLOCK_SLACK_SECS as i64] {
        let d = u.clone().attempt(&p, &code(now as u64 / 30), now);
        assert_eq!(d.verdict, Verdict::OutOfOrder);
        assert!(
            !d.warnings
                .iter()
                .any(|w| matches!(w, Warning::MarkAheadOfClock { .. })),
            "{now}: {:?}",
            d.warnings
        );
    }
}

/// Logins made while the grace period is off earn nothing: an admin who turns it on
/// later must not find that the codes of the last hour already skip the prompt.
#[test]
fn logins_without_a_grace_period_record_no_grace() {
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&Policy::default(), "050548", 300_000)));
    assert!(u.ledger().grace.is_empty());
    assert!(!u.graced(&grace_policy(), HOME, Some(ip), 300_010));
    // Control: the same login with the grace period on records it.
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&grace_policy(), "050548", 300_000)));
    assert!(u.graced(&grace_policy(), HOME, Some(ip), 300_010));
}

/// The tools report configuration facts and the module logs them only with `debug`;
/// a per-login event among them would vanish from the log, and a 128-bit secret (the
/// recommended length) is no legacy secret.
#[test]
fn configuration_warnings_are_the_files_lasting_facts_only() {
    let p = Policy {
        max_window: 3,
        ..Policy::default()
    };
    let legacy = file(&format!("{S}\n\" WINDOW_SIZE 5\n\" TOTP_AUTH\n"));
    assert_eq!(
        configuration_warnings(&legacy, &p).unwrap(),
        vec![
            Warning::LegacySecret { bits: 80 },
            Warning::WindowClamped { file: 5, used: 3 }
        ]
    );
    let b128 = crate::base32::encode(&[9u8; 16]);
    let strong = file(&format!("{b128}\n\" TOTP_AUTH\n"));
    assert_eq!(configuration_warnings(&strong, &p).unwrap(), vec![]);
    assert!(!Warning::RateLimitExceeded.is_configuration());
    assert!(!Warning::UsedBeforeBoot.is_configuration());
}

/// The module reports a refused right code as a possible replay unless a warning
/// already says why it was refused: only those three may silence that report.
#[test]
fn only_the_reasons_of_a_refused_right_code_explain_a_replay() {
    assert!(Warning::UsedBeforeBoot.explains_replay());
    assert!(Warning::StoreRecreatedAhead { since: 1, ahead: 1 }.explains_replay());
    assert!(
        Warning::Version1HotpCounter {
            counter: 1,
            mark: 2
        }
        .explains_replay()
    );
    assert!(!Warning::RateLimitExceeded.explains_replay());
    assert!(!Warning::LegacySecret { bits: 80 }.explains_replay());
    assert!(
        !Warning::MarkAheadOfClock {
            mark_time: 1,
            ahead: 1
        }
        .explains_replay()
    );
}

/// What the log says of a refusal names its cause.
#[test]
fn verify_errors_and_line_warnings_name_their_cause() {
    assert_eq!(
        VerifyError::SecretTooShort { bits: 64, min: 80 }.to_string(),
        "secret has 64 bits, at least 80 required"
    );
    assert!(VerifyError::ClockFault.to_string().contains("clock"));
    let rl = Warning::LineNotUpdated {
        key: crate::gafile::KEY_RATE_LIMIT,
        shared: true,
    }
    .to_string();
    assert!(rl.contains("do not count this attempt"), "{rl}");
    let reuse = Warning::LineNotUpdated {
        key: crate::gafile::KEY_DISALLOW_REUSE,
        shared: true,
    }
    .to_string();
    assert!(reuse.contains("take this code again"), "{reuse}");
}

/// After a boot, every step a wide window reached by then counts as used (a lazy write
/// lost in the crash may have recorded one of them): half the window, not less.
#[test]
fn after_a_boot_every_step_a_wide_window_reached_counts_as_used() {
    let p = Policy::default();
    let f = file(&format!("{S}\n\" WINDOW_SIZE 17\n\" TOTP_AUTH\n"));
    let boot: u64 = 300_000;
    let run = |step: u64, now: i64| {
        let c = candidates(code(step).as_bytes(), Digits::SIX, false);
        let prep = prepare(&f, &p, &c, now, &key()).unwrap();
        let a = Attempt {
            origin: HOME,
            rhost: None,
            local: false,
            now,
            continued: false,
            boot_time: Some(boot),
            store_complete_since: 0,
            keep_ga_lines: true,
        };
        prep.decide(&UserState::default(), &p, &a).unwrap().verdict
    };
    // Eight steps ahead of the boot's step was within reach before it.
    assert_eq!(run(10_008, 300_010), Verdict::Replayed);
    assert_eq!(run(10_002, 300_010), Verdict::Replayed);
    // Control: the first step past that reach works.
    assert_eq!(
        run(10_009, 300_010 + 30),
        Verdict::Accepted(Method::Totp { step: 10_009 })
    );
}

/// An attempt counted at the very start of the interval leaves it now; the refusal
/// still says to wait a second, never zero.
#[test]
fn a_rate_limit_refusal_waits_at_least_a_second() {
    let mut u = User::new(&format!(
        "{S}\n\" RATE_LIMIT 2 120 600000 600000\n\" TOTP_AUTH"
    ));
    let d = u.attempt(&Policy::default(), &code(20_004), 600_120);
    assert_eq!(d.verdict, Verdict::Throttled(Throttle::RateLimit));
    assert_eq!(d.retry_after, Some(1));
}

/// Dropping records a clock far ahead wrote keeps the origins the user logged in
/// from: they are what spares the user the ceiling of strangers' guesses.
#[test]
fn dropped_future_records_keep_the_known_origins() {
    let p = Policy::default();
    let mut u = User::new(&format!("{S}\n\" TOTP_AUTH\n"));
    assert!(accepted(&u.attempt(&p, &code(10_000), 300_000)));
    u.attempt(&p, "000000", 900_000_000);
    let d = u.try_from(&p, "000000", 300_100, STRANGER);
    assert!(
        d.warnings
            .iter()
            .any(|w| matches!(w, Warning::FutureRecordsDropped { .. })),
        "{:?}",
        d.warnings
    );
    let known: Vec<OriginKey> = u.ledger().known.iter().map(|k| k.key).collect();
    assert_eq!(known, vec![HOME]);
}

/// Of the waits that apply, the longest is the one told and named (on a tie, the
/// backoff the origin itself ran into): a shorter one would send the user back into
/// another refusal.
#[test]
fn throttling_names_the_longest_wait() {
    let p = Policy::default();
    let now = 300_000;
    let waits = |blocked: u64, ceiling: u64| {
        let l = Ledger {
            blocked_until: now + blocked,
            ceiling: [0, now + p.ceiling_tolerance_secs() + ceiling],
            ..Ledger::default()
        };
        throttling(&l, &p, STRANGER, false, now, true)
    };
    assert_eq!(waits(100, 500), Some((now + 500, Throttle::Ceiling)));
    assert_eq!(waits(500, 100), Some((now + 500, Throttle::Backoff)));
    assert_eq!(waits(100, 100), Some((now + 100, Throttle::Backoff)));
    // Control: nothing to wait for.
    assert_eq!(waits(0, 0), None);
}

/// A scratch code one store marked used is named under another store's key for that
/// store's record: the listed codes the first store counts, no other.
#[test]
fn scratch_tags_carried_rename_only_the_used_listed_codes() {
    let f = file(&format!("{S}\n\" TOTP_AUTH\n11111111\n22222222\n"));
    let (local, shared) = (key(), StoreKey::new([8; crate::state::STORE_KEY_LEN]));
    let (lid, sid) = (
        enrolment_of(&f, &local).unwrap(),
        enrolment_of(&f, &shared).unwrap(),
    );
    let used = [scratch_tag(&local, lid, 11_111_111)];
    assert_eq!(
        scratch_tags_carried(&f, &local, &used, &shared).unwrap(),
        vec![scratch_tag(&shared, sid, 11_111_111)]
    );
    // Control: the shared store's name differs from the local one, and nothing used
    // carries nothing.
    assert_ne!(used[0], scratch_tag(&shared, sid, 11_111_111));
    assert!(
        scratch_tags_carried(&f, &local, &[], &shared)
            .unwrap()
            .is_empty()
    );
}

/// The file's `PAM_TOTP_LAST_STEP` line is named as the mark's source only when it
/// raises the record's: equal, the record holds the mark too, and a mark ahead of the
/// clock is reported as the store's (which a reset of the store settles), not the file's.
#[test]
fn a_last_step_line_equal_to_the_records_mark_leaves_the_mark_the_records() {
    let cfg = file(&format!("{S}\n\" PAM_TOTP_LAST_STEP 100\n\" TOTP_AUTH\n"))
        .config()
        .expect("a valid file");
    let ending = |step: u64| Marks {
        totp_until: Some((step + 1) * 30),
        ..Marks::default()
    };
    assert_eq!(effective_mark(&cfg, &ending(100)), Some((100, false)));
    assert_eq!(effective_mark(&cfg, &ending(101)), Some((101, false)));
    assert_eq!(effective_mark(&cfg, &ending(99)), Some((100, true)));
    assert_eq!(effective_mark(&cfg, &Marks::default()), Some((100, true)));
}

/// Records ahead of the clock: within [`CLOCK_SLACK_SECS`] nothing is said; beyond it
/// up to the clock-lag allowance they are kept and reported; beyond the allowance
/// their times are dropped. Each edge exactly.
#[test]
fn records_ahead_of_the_clock_are_judged_at_each_edge_exactly() {
    let cfg = file(&format!("{S}\n\" TOTP_AUTH\n"))
        .config()
        .expect("a valid file");
    let p = Policy::default();
    let now = 1_800_000_000;
    let load = |lead: u64| {
        let state = UserState {
            extra: Ledger {
                attempts: vec![now + lead],
                ..Ledger::default()
            }
            .encode(),
            ..UserState::default()
        };
        let mut w = Vec::new();
        let l = load_ledger(&cfg, &state, &p, now, &mut w).expect("a ledger");
        (l.attempts, w)
    };
    let (kept, w) = load(CLOCK_SLACK_SECS);
    assert_eq!((kept, w), (vec![now], vec![]));
    let (kept, w) = load(CLOCK_SLACK_SECS + 1);
    assert_eq!(kept, vec![now]);
    assert_eq!(
        w,
        vec![Warning::RecordsAheadOfClock {
            latest: now + CLOCK_SLACK_SECS + 1,
            ahead: CLOCK_SLACK_SECS + 1
        }]
    );
    let (kept, w) = load(p.max_clock_lag_secs);
    assert_eq!(kept, vec![now]);
    assert!(matches!(w[..], [Warning::RecordsAheadOfClock { .. }]));
    let (dropped, w) = load(p.max_clock_lag_secs + 1);
    assert!(dropped.is_empty());
    assert!(matches!(w[..], [Warning::FutureRecordsDropped { .. }]));
}

/// A file's failure count below the throttling threshold, taken in on the store's
/// first use, imposes no wait, even dated ahead of the clock; at the threshold it
/// imposes the backoff from the failure's time (the control).
#[test]
fn migrated_failures_below_the_threshold_impose_no_wait() {
    let p = Policy::default();
    let now = 1_800_000_000;
    let load = |count: u32| {
        let cfg = file(&format!(
            "{S}\n\" PAM_TOTP_FAILURES {count} {}\n\" TOTP_AUTH\n",
            now + 30
        ))
        .config()
        .expect("a valid file");
        let mut w = Vec::new();
        load_ledger(&cfg, &UserState::default(), &p, now, &mut w).expect("a ledger")
    };
    let below = load(p.throttle_after - 1);
    assert_eq!(below.consecutive, p.throttle_after - 1);
    assert_eq!(below.blocked_until, 0);
    let at = load(p.throttle_after);
    assert_eq!(
        at.blocked_until,
        now + 30 + p.backoff_secs(p.throttle_after)
    );
}
