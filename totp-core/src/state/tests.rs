use super::*;

fn how(clock_fault: bool) -> ResetHow {
    ResetHow {
        clock_fault,
        ..ResetHow::default()
    }
}

fn marks(until: Option<u64>, hotp: Option<u64>, scratch: &[u64]) -> Marks {
    Marks {
        totp_until: until,
        hotp,
        scratch: scratch.to_vec(),
    }
}

#[test]
fn encode_round_trips() {
    for s in [
        UserState::default(),
        UserState {
            marks: vec![(EnrolmentId(7), marks(Some(1_740_000_030), None, &[]))],
            legacy: None,
            extra: vec![1, 2, 3],
        },
        UserState {
            marks: vec![
                (EnrolmentId(u64::MAX), marks(None, Some(u64::MAX), &[1, 2])),
                (
                    EnrolmentId(0),
                    marks(Some(0), Some(0), &[9; MAX_USED_SCRATCH]),
                ),
            ],
            legacy: None,
            extra: Vec::new(),
        },
    ] {
        assert_eq!(UserState::decode(&s.encode()), Ok(s));
    }
}

#[test]
fn version_1_records_are_read_as_unbound_marks() {
    let mut v1 = vec![1, 0b11];
    v1.extend_from_slice(&58_000_000u64.to_le_bytes());
    v1.extend_from_slice(&12u64.to_le_bytes());
    v1.extend_from_slice(&[5, 6]);
    let s = UserState::decode(&v1).expect("version 1");
    assert_eq!(
        s.legacy,
        Some(LegacyMarks {
            last_step: Some(58_000_000),
            hotp: Some(12)
        })
    );
    assert!(s.marks.is_empty());
    assert_eq!(s.extra, vec![5, 6]);
    // Bound to an enrolment, the legacy marks stay for the others: version 3.
    let next = s.with_marks(EnrolmentId(3), marks(Some(30), None, &[]));
    assert_eq!(next.legacy, s.legacy);
    assert_eq!(next.encode()[0], 3);
    assert_eq!(UserState::decode(&next.encode()), Ok(next));
}

/// Finding: a version-1 record written back before any enrolment took its marks over
/// (a wrong code's throttling, an admin's reset) was encoded as version 2, which has no
/// place for them: the last used step and the HOTP counter were gone, and the codes
/// under them worked again. Now it is written back as version 1, byte for byte.
#[test]
fn unbound_version_1_marks_survive_being_written_back() {
    let mut v1 = vec![1, 0b11];
    v1.extend_from_slice(&58_000_000u64.to_le_bytes());
    v1.extend_from_slice(&12u64.to_le_bytes());
    v1.extend_from_slice(&[5, 6]);
    let s = UserState::decode(&v1).expect("version 1");
    assert_eq!(s.encode(), v1, "written back unchanged");

    // A wrong code's write: the throttling record changes, the marks stay.
    let throttled = UserState {
        extra: vec![7, 8, 9],
        ..s.clone()
    };
    let read = UserState::decode(&throttled.encode()).expect("decoded");
    assert_eq!(read, throttled);
    assert_eq!(read.legacy, s.legacy);

    // An admin's reset: throttling cleared, the marks kept (and lowered only as
    // `lifted` says), as a record of either version keeps them.
    let now = EARLIEST_CLOCK + 1_000_000;
    let (reset, _) = s.lifted(reset_mark_cap(now), how(false));
    let read = UserState::decode(&reset.encode()).expect("decoded");
    assert_eq!(read.legacy, s.legacy, "the reset kept the marks");
    assert!(read.extra.is_empty());

    // Only one of the two marks, and neither.
    for legacy in [
        LegacyMarks {
            last_step: Some(3),
            hotp: None,
        },
        LegacyMarks {
            last_step: None,
            hotp: Some(0),
        },
    ] {
        let one = UserState {
            legacy: Some(legacy),
            ..UserState::default()
        };
        assert_eq!(UserState::decode(&one.encode()), Ok(one));
    }
    // Beside bound marks the legacy marks are kept (version 3): the enrolment that
    // bound marks first need not be the one that wrote them.
    let bound = UserState {
        marks: vec![(EnrolmentId(1), marks(Some(60), None, &[]))],
        legacy: s.legacy,
        extra: vec![4],
    };
    let read = UserState::decode(&bound.encode()).expect("decoded");
    assert_eq!(read, bound);
    // Without legacy marks a record is still version 2.
    let plain = UserState {
        legacy: None,
        ..bound
    };
    assert_eq!(plain.encode()[0], 2);
    assert_eq!(UserState::decode(&plain.encode()), Ok(plain));
}

/// Finding (R34, R35): the first enrolment to bind marks after the upgrade dropped the
/// version-1 marks, so another enrolment (an HOTP file beside a TOTP one) started from
/// nothing. Kept as version 3, within the size bound at its largest.
#[test]
fn version_3_keeps_legacy_marks_beside_the_largest_record() {
    let mut s = UserState {
        legacy: Some(LegacyMarks {
            last_step: Some(u64::MAX),
            hotp: Some(500),
        }),
        extra: vec![0xAA; MAX_ENCODED_LEN / 2],
        ..UserState::default()
    };
    let scratch: Vec<u64> = (0..MAX_USED_SCRATCH as u64).collect();
    for i in 0..MAX_ENROLMENTS as u64 {
        s = s.with_marks(EnrolmentId(i), marks(Some(u64::MAX), Some(i), &scratch));
    }
    let e = s.encode();
    assert!(e.len() < MAX_ENCODED_LEN, "{}", e.len());
    assert_eq!(UserState::decode(&e), Ok(s));
}

#[test]
fn decode_refuses_what_encode_never_writes() {
    assert!(UserState::decode(b"").is_err());
    assert!(UserState::decode(&[4, 0]).is_err());
    // Version 3 only ever holds legacy marks beside bound ones.
    let mut no_legacy = vec![3, 0];
    no_legacy.extend_from_slice(&[0; 16]);
    no_legacy.extend_from_slice(&[1; 1]);
    no_legacy.extend_from_slice(&[0; 26]);
    assert!(UserState::decode(&no_legacy).is_err());
    let mut no_bound = vec![3, 0b10];
    no_bound.extend_from_slice(&[0; 16]);
    no_bound.push(0);
    assert!(UserState::decode(&no_bound).is_err());
    // The control: the same with both is read.
    let mut both = vec![3, 0b10];
    both.extend_from_slice(&[0; 16]);
    both.push(1);
    both.extend_from_slice(&[0; 26]);
    assert!(UserState::decode(&both).is_ok());
    assert!(UserState::decode(&[1, 4]).is_err());
    assert!(UserState::decode(&[1, 0, 0]).is_err());
    assert!(UserState::decode(&[2]).is_err());
    assert!(UserState::decode(&[2, MAX_ENROLMENTS as u8 + 1]).is_err());
    // An enrolment with an unknown flag, or too many scratch tags, or recorded twice.
    let one = |flags: u8, used: u8| {
        let mut b = vec![2, 1];
        b.extend_from_slice(&5u64.to_le_bytes());
        b.push(flags);
        b.extend_from_slice(&[0; 16]);
        b.push(used);
        b
    };
    assert!(UserState::decode(&one(0, 0)).is_ok());
    assert!(UserState::decode(&one(4, 0)).is_err());
    assert!(UserState::decode(&one(0, MAX_USED_SCRATCH as u8 + 1)).is_err());
    assert!(UserState::decode(&one(0, 1)).is_err(), "tag missing");
    let mut twice = one(0, 0);
    twice[1] = 2;
    twice.extend_from_slice(&one(0, 0)[2..]);
    assert!(UserState::decode(&twice).is_err());
    twice[3] = 6;
    assert!(UserState::decode(&twice).is_ok());
    assert!(UserState::decode(&vec![2; MAX_ENCODED_LEN + 1]).is_err());
}

#[test]
fn marks_move_to_the_front_and_the_oldest_is_forgotten() {
    let mut s = UserState::default();
    for i in 0..6u64 {
        s = s.with_marks(EnrolmentId(i), marks(Some(i * 30), None, &[]));
    }
    let ids: Vec<u64> = s.marks.iter().map(|(e, _)| e.0).collect();
    assert_eq!(ids, vec![5, 4, 3, 2]);
    s = s.with_marks(EnrolmentId(3), marks(Some(999), None, &[]));
    assert_eq!(s.marks[0], (EnrolmentId(3), marks(Some(999), None, &[])));
    assert_eq!(s.marks.len(), MAX_ENROLMENTS);
    assert_eq!(s.latest().and_then(|m| m.last_totp_step(30)), Some(32));
}

#[test]
fn tags_are_keyed_and_unambiguous() {
    let a = StoreKey::new([1; STORE_KEY_LEN]);
    let b = StoreKey::new([2; STORE_KEY_LEN]);
    assert_ne!(a.tag(&[b"x"]), b.tag(&[b"x"]));
    assert_ne!(a.tag(&[b"ab", b"c"]), a.tag(&[b"a", b"bc"]));
    assert_eq!(a.tag(&[b"ab", b"c"]), a.tag(&[b"ab", b"c"]));
    assert!(StoreKey::from_slice(&[0; 31]).is_err());
    assert_eq!(format!("{a:?}"), "StoreKey(..)");
    // The stores write the key as they were given it, and read it back unchanged.
    let bytes: [u8; STORE_KEY_LEN] = std::array::from_fn(|i| i as u8 + 2);
    assert_eq!(StoreKey::new(bytes).as_bytes(), &bytes);
    assert_eq!(
        StoreKey::from_slice(&bytes).map(|k| *k.as_bytes()),
        Ok(bytes)
    );
}

/// Marks with nothing in them are no marks: an enrolment that binds none takes no
/// place among the [`MAX_ENROLMENTS`], so it pushes no other enrolment's marks out.
#[test]
fn empty_marks_take_no_place_and_forget_nothing() {
    let mut s = UserState::default();
    for i in 0..MAX_ENROLMENTS as u64 {
        s = s.with_marks(EnrolmentId(i), marks(Some(60 + i), None, &[]));
    }
    let full = s.clone();
    let next = s.with_marks(EnrolmentId(99), Marks::default());
    assert_eq!(next.marks_of(EnrolmentId(99)), None);
    assert_eq!(next, full, "every other enrolment's marks kept");
    // Emptied, an enrolment's marks are dropped; the control: kept while they hold any.
    let id = EnrolmentId(2);
    assert_eq!(full.with_marks(id, Marks::default()).marks_of(id), None);
    assert_eq!(
        full.with_marks(id, marks(None, None, &[7])).marks_of(id),
        Some(&marks(None, None, &[7]))
    );
}

#[test]
fn records_with_counters_are_recognised() {
    let s = UserState::default().with_marks(EnrolmentId(1), marks(Some(60), None, &[]));
    assert!(!s.holds_counters());
    assert!(
        s.with_marks(EnrolmentId(2), marks(None, None, &[4]))
            .holds_counters()
    );
    assert!(
        s.with_marks(EnrolmentId(2), marks(None, Some(0), &[]))
            .holds_counters()
    );
}

#[test]
fn contexts_round_trip_and_damage_is_refused() {
    let c = StoreContext {
        key: StoreKey::new([9; STORE_KEY_LEN]),
        complete_since: 1_700_000_000,
    };
    let bytes = c.encode();
    assert_eq!(bytes.len(), CONTEXT_LEN);
    assert_eq!(StoreContext::decode(&bytes), Ok(c));
    assert!(StoreContext::decode(&bytes[1..]).is_err());
    let mut wrong = bytes.to_vec();
    wrong[0] = b'X';
    assert!(StoreContext::decode(&wrong).is_err());
    assert!(StoreContext::decode(&[0; CONTEXT_LEN]).is_err());
}

/// A reset lifts throttling and keeps what was used (R34): every enrolment's TOTP mark,
/// HOTP counter and used scratch codes. Only a TOTP mark past the cap (a clock that was
/// ahead) comes down, to the cap and no lower; without a trusted clock nothing does.
/// Finding: a reset lowered every mark more than a minute ahead, and a phone ahead of
/// the clock (a `TIME_SKEW` the module honours) sets its mark that far ahead, so the
/// code just typed worked again. Now a reset keeps every mark a login honours, with
/// the module's own limit: at the widest lead any options allow (`TIME_SKEW 1500` at
/// 60-s steps) the module honours a mark at the reset's limit, and refuses one a step
/// later, which the reset lowers. Neither cap can be raised past what the limit assumes.
#[test]
fn a_reset_keeps_every_mark_a_login_honours_and_lowers_the_rest() {
    use crate::code::candidates;
    use crate::gafile::GaFile;
    use crate::ledger::OriginKey;
    use crate::otp::Digits;
    use crate::verify::{Attempt, VerifyError, enrolment_of, prepare};

    let now = (EARLIEST_CLOCK + 1_000_000) / 60 * 60;
    let cap = reset_mark_cap(now).expect("a trusted clock");
    let beyond = reset_lowers_after(cap);
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let file = |lines: &str| GaFile::parse(format!("{secret}\n{lines}\" TOTP_AUTH\n").as_bytes());
    let skewed = file("\" STEP_SIZE 60\n\" TIME_SKEW 1500\n").expect("a valid file");
    let key = StoreKey::new([7; STORE_KEY_LEN]);
    let id = enrolment_of(&skewed, &key).expect("an enrolment");
    let policy = crate::policy::Policy::default();
    let attempt = Attempt {
        origin: OriginKey(1),
        rhost: None,
        local: true,
        now: i64::try_from(now).expect("a small clock"),
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: false,
    };
    let decided = |until: u64| {
        let state = UserState::default().with_marks(id, marks(Some(until), None, &[]));
        let c = candidates(b"000000", Digits::SIX, false);
        prepare(&skewed, &policy, &c, attempt.now, &key)
            .expect("prepared")
            .decide(&state, &policy, &attempt)
            .err()
    };
    // A login at the reset's clock honours a mark up to `beyond` (less the fleet slack
    // the reset adds on top), and refuses one a step after it as a clock fault.
    let honoured = beyond - crate::policy::CLOCK_SLACK_SECS;
    assert_eq!(decided(honoured), None, "honoured");
    assert!(
        matches!(decided(beyond + 60), Some(VerifyError::StateAhead { .. })),
        "a clock fault"
    );
    let lift = |until: u64| {
        UserState::default()
            .with_marks(id, marks(Some(until), None, &[]))
            .lifted(Some(cap), how(false))
    };
    for until in [honoured, beyond] {
        let (next, lowered) = lift(until);
        assert!(!lowered, "{until}");
        assert_eq!(next.marks_of(id), Some(&marks(Some(until), None, &[])));
    }
    let (next, lowered) = lift(beyond + 60);
    assert!(lowered);
    assert_eq!(next.marks_of(id), Some(&marks(Some(cap), None, &[])));

    // The review's case: a phone 20 steps ahead logged in at `now` (mark 21 steps on),
    // and a reset 20 s later keeps the mark.
    let (next, lowered) = UserState::default()
        .with_marks(id, marks(Some(now + 21 * 30), None, &[]))
        .lifted(reset_mark_cap(now + 20), how(false));
    assert!(!lowered);
    assert_eq!(next.marks_of(id), Some(&marks(Some(now + 630), None, &[])));

    // What the limit assumes: no longer step, no wider skew cap.
    assert!(file("\" STEP_SIZE 61\n").is_err());
    assert!(
        file(&format!(
            "\" STEP_SIZE {}\n",
            crate::verify::LONGEST_STEP_SECS
        ))
        .is_ok()
    );
    let opts = |arg: &str| crate::options::ModuleOptions::parse(&[arg.as_bytes()]);
    assert!(opts("max_time_skew=1501").is_err());
    assert_eq!(
        opts("max_time_skew=1500")
            .ok()
            .map(|o| u64::from(o.max_time_skew) * crate::verify::LONGEST_STEP_SECS),
        Some(crate::verify::LONGEST_SKEW_LEAD_SECS)
    );
}

#[test]
fn a_reset_clears_the_throttling_and_keeps_every_enrolments_marks() {
    let now = EARLIEST_CLOCK + 1_000_000;
    let cap = reset_mark_cap(now).expect("a trusted clock");
    assert_eq!(cap, now + crate::policy::CLOCK_SLACK_SECS);
    assert_eq!(reset_mark_cap(EARLIEST_CLOCK - 1), None, "a dead RTC");
    let mut s = UserState::default()
        .with_marks(EnrolmentId(1), marks(Some(now - 90), Some(41), &[7, 9]))
        .with_marks(EnrolmentId(2), marks(Some(now + 30), None, &[3]));
    s.extra = vec![2, 0, 0, 9, 9];
    let (next, lowered) = s.lifted(Some(cap), how(false));
    assert!(!lowered);
    assert!(next.extra.is_empty(), "throttling cleared");
    assert_eq!(next.marks, s.marks, "marks kept as they were");
    assert!(next.holds_counters(), "so the record still never expires");

    // A mark from a clock in 2100: down to the cap, the rest untouched.
    let ahead = s.with_marks(EnrolmentId(3), marks(Some(4_102_444_800), Some(2), &[5]));
    let (next, lowered) = ahead.lifted(Some(cap), how(false));
    assert!(lowered);
    assert_eq!(
        next.marks_of(EnrolmentId(3)),
        Some(&marks(Some(cap), Some(2), &[5]))
    );
    assert_eq!(next.marks_of(EnrolmentId(1)), s.marks_of(EnrolmentId(1)));
    let (untrusted, lowered) = ahead.lifted(None, how(false));
    assert!(!lowered);
    assert_eq!(untrusted.marks, ahead.marks, "no clock, no lowering");
    assert!(untrusted.extra.is_empty());

    // Two days ahead: within what a login honours for some file (a wide TIME_SKEW at a
    // 60-s step), so kept, unless the admin says it was a clock fault.
    let two_days = s.with_marks(EnrolmentId(4), marks(Some(now + 2 * 86_400), None, &[]));
    let (kept, lowered) = two_days.lifted(Some(cap), how(false));
    assert!(!lowered);
    assert_eq!(kept.marks, two_days.marks);
    let (fixed, lowered) = two_days.lifted(Some(cap), how(true));
    assert!(lowered);
    assert_eq!(
        fixed.marks_of(EnrolmentId(4)),
        Some(&marks(Some(cap), None, &[]))
    );
    assert_eq!(fixed.marks_of(EnrolmentId(1)), s.marks_of(EnrolmentId(1)));
    assert_eq!(
        fixed.marks_of(EnrolmentId(2)),
        s.marks_of(EnrolmentId(2)),
        "a mark within the slack is not a clock fault"
    );
}

/// A version-1 mark is a step of the file's STEP_SIZE, which the record does not hold.
/// Finding: a reset read it at 30 s whatever the file said, so the current mark of a
/// file of 10-s steps looked three times the clock and was "lowered" to a step the
/// file's 10 s put at a third of the clock, reopening every code it had used; a
/// 60-s file's mark far ahead was lowered to a step its 60 s put at twice the clock.
/// Now a reset lowers one only when it lies beyond at every step size, and to a step
/// that no step size reads as before the cap.
#[test]
fn a_reset_lowers_a_version_1_mark_only_where_no_step_size_reopens_a_code() {
    use crate::gafile::{GaFile, SHORTEST_STEP_SECS};

    let now = EARLIEST_CLOCK + 1_000_000;
    let cap = reset_mark_cap(now).expect("a trusted clock");
    let legacy = |step| UserState {
        legacy: Some(LegacyMarks {
            last_step: Some(step),
            hotp: Some(12),
        }),
        extra: vec![1],
        ..UserState::default()
    };
    // The step size a login reads the mark at is the file's.
    let step_of = |size: u64| {
        GaFile::parse(format!("JBSWY3DPEHPK3PXP\n\" STEP_SIZE {size}\n\" TOTP_AUTH\n").as_bytes())
            .and_then(|f| f.config())
            .expect("a valid file")
            .step_secs()
    };
    let until = |last: u64, size: u64| (last + 1) * step_of(size);

    // Current marks of files of 10-, 30- and 60-s steps: kept as they are, throttling
    // cleared, the HOTP counter kept.
    for size in [10, 30, 60] {
        let (next, lowered) = legacy(now / size).lifted(Some(cap), how(false));
        assert!(!lowered, "{size}");
        assert_eq!(next.legacy, legacy(now / size).legacy, "{size}");
        assert!(next.extra.is_empty());
        let (next, lowered) = legacy(now / size).lifted(Some(cap), how(true));
        assert!(
            !lowered,
            "a clock fault lowers nothing at or before the cap: {size}"
        );
        assert_eq!(next.legacy, legacy(now / size).legacy, "{size}");
    }

    // A 60-s file whose mark is far ahead (a clock in 2100): a login refuses it, but at
    // 1-s steps it would be before the cap, so the reset keeps it rather than guess the
    // step; the old reading at 30 s lowered it to a step 60 s reads as twice the clock.
    let far = 4_102_444_800 / 60;
    assert!(
        until(far, 60) > reset_lowers_after(cap),
        "ahead of what logins honour"
    );
    let (next, lowered) = legacy(far).lifted(Some(cap), how(true));
    assert!(!lowered);
    assert_eq!(next.legacy, legacy(far).legacy);

    // A mark beyond at every step size is lowered, to the cap at the shortest step:
    // a 60-s, 30-s or 1-s file reads it at or after the cap, never before.
    let absurd = reset_lowers_after(cap) + 5;
    let (next, lowered) = legacy(absurd).lifted(Some(cap), how(false));
    assert!(lowered);
    let kept = next.legacy.expect("kept");
    assert_eq!(kept.hotp, Some(12));
    let last = kept.last_step.expect("a mark");
    assert_eq!(last, cap / SHORTEST_STEP_SECS - 1);
    for size in [1, 30, 60] {
        assert!(until(last, size) >= cap, "{size}");
        assert!(
            until(last, size) <= until(absurd, size),
            "{size}: lowered, not raised"
        );
    }
    // Without a trusted clock nothing is lowered.
    let (next, lowered) = legacy(absurd).lifted(None, how(false));
    assert!(!lowered);
    assert_eq!(next.legacy, legacy(absurd).legacy);

    // With the file's step known (`totp-state reset` read the account's file), the mark
    // is read as the login reads it. The 60-s file's mark in 2100 comes down to the
    // first 60-s step boundary at or after the cap; its current mark stays.
    let at = |step_secs, clock_fault| ResetHow {
        clock_fault,
        legacy_step_secs: Some(step_secs),
        ..ResetHow::default()
    };
    // The 60-s file's mark in 2100 is beyond anything a login at 60 s honours, so no
    // login applies it (it is not that enrolment's, R35): kept, since lowering it to
    // the cap at 60 s would put it at half the clock for a 30-s file that wrote it.
    for clock_fault in [false, true] {
        let (next, lowered) = legacy(far).lifted(Some(cap), at(60, clock_fault));
        assert!(!lowered);
        assert_eq!(next.legacy, legacy(far).legacy);
        let (next, lowered) = legacy(now / 30).lifted(Some(cap), at(60, clock_fault));
        assert!(!lowered, "a 30-s mark read at 60 s");
        assert_eq!(next.legacy, legacy(now / 30).legacy);
    }
    // A mark an hour ahead at the file's step, which logins honour: the admin's
    // --clock-fault lowers it to the first 60-s step boundary at or after the cap.
    let hour = (now + 3_600) / 60;
    let (next, lowered) = legacy(hour).lifted(Some(cap), at(60, true));
    assert!(lowered);
    let last = next.legacy.and_then(|l| l.last_step).expect("a mark");
    assert!(
        until(last, 60) >= cap && until(last, 60) < cap + 60,
        "{last}"
    );
    assert_eq!(next.legacy.and_then(|l| l.hotp), Some(12));
    let (_, lowered) = legacy(hour).lifted(Some(cap), at(60, false));
    assert!(!lowered, "honoured: kept without --clock-fault");
    for size in [10, 30, 60] {
        let (next, lowered) = legacy(now / size).lifted(Some(cap), at(size, false));
        assert!(!lowered, "{size}");
        assert_eq!(next.legacy, legacy(now / size).legacy, "{size}");
    }
    // A 10-s file's current mark, which the old reading at 30 s lowered, is kept.
    let (next, lowered) = legacy(now / 10).lifted(Some(cap), at(10, false));
    assert!(!lowered);
    assert_eq!(next.legacy, legacy(now / 10).legacy);
}

#[test]
fn two_resets_report_a_removal_first_then_a_lift() {
    let removed = Reset::Removed("damaged".into());
    let lifted = |lowered| Reset::Lifted { lowered };
    assert_eq!(Reset::Absent.and(Reset::Absent), Reset::Absent);
    assert_eq!(Reset::Absent.and(lifted(true)), lifted(true));
    assert_eq!(lifted(false).and(Reset::Absent), lifted(false));
    assert_eq!(lifted(false).and(lifted(true)), lifted(true));
    assert_eq!(lifted(true).and(removed.clone()), removed);
    assert_eq!(removed.clone().and(Reset::Absent), removed);
}

/// After a reset that did not know the step, a version-1 mark a login at GA's default
/// 30-s step reads beyond what the reset keeps is reported; a current mark is not.
#[test]
fn a_version_1_mark_left_beyond_at_the_default_step_is_reported() {
    let now = EARLIEST_CLOCK + 1_000_000;
    let cap = reset_mark_cap(now);
    let legacy = |step| UserState {
        legacy: Some(LegacyMarks {
            last_step: Some(step),
            hotp: None,
        }),
        ..UserState::default()
    };
    // Current (30-s steps) and a phone a minute ahead: nothing to report.
    for clock_fault in [false, true] {
        assert!(!legacy(now / 30).legacy_mark_beyond(cap, clock_fault));
    }
    assert!(!legacy(now / 30 + 2).legacy_mark_beyond(cap, false));
    // A phone ahead within what logins honour: only --clock-fault wants it lowered.
    let ahead = (now + 3_600) / 30;
    assert!(!legacy(ahead).legacy_mark_beyond(cap, false));
    assert!(legacy(ahead).legacy_mark_beyond(cap, true));
    // A clock in 2100, and a mark lowered at the shortest step: beyond anything a
    // login at 30 s honours, so no such login applies it; nothing to settle.
    let (lowered, _) = legacy(u64::MAX / 2).lifted(cap, how(false));
    for s in [legacy(4_102_444_800 / 30), lowered] {
        for clock_fault in [false, true] {
            assert!(!s.legacy_mark_beyond(cap, clock_fault), "{s:?}");
        }
    }
    // No version-1 mark, or no trusted clock: nothing.
    assert!(!UserState::default().legacy_mark_beyond(cap, false));
    assert!(!legacy(4_102_444_800 / 30).legacy_mark_beyond(None, false));
}

/// A store whose record changed under the write says so in its own words, not as the
/// store being unavailable: the module logs them as it decides again (R34).
#[test]
fn a_changed_store_record_is_told_in_the_stores_words() {
    let changed = StoreError::StoreChanged("etcd: the store record changed".into());
    assert_eq!(changed.to_string(), "etcd: the store record changed");
    let down = StoreError::Unavailable("etcd: no quorum".into());
    assert_eq!(down.to_string(), "state store unavailable: etcd: no quorum");
}

/// Records the bound each update was given.
#[derive(Default)]
struct BoundSeen(Vec<bool>);

impl StateStore for BoundSeen {
    fn update_within(
        &mut self,
        _uid: Uid,
        bound: &dyn AnswerBound,
        decide: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError> {
        self.0.push(bound.fits());
        decide(&UserState::default());
        Ok(())
    }

    fn read(&mut self, _uid: Uid) -> Result<UserState, StoreError> {
        Ok(UserState::default())
    }

    fn reset_with(&mut self, _: Uid, _: u64, _: ResetHow) -> Result<Reset, StoreError> {
        Ok(Reset::Absent)
    }

    fn context(&mut self, _: Missing) -> Result<Option<StoreContext>, StoreError> {
        Ok(None)
    }
}

/// A plain update has no answer's bound, and a store without a clock of its own gives
/// answers none: both always fit, so only the store's own bounds apply.
#[test]
fn without_an_answers_bound_every_update_fits() {
    struct Spent;
    impl AnswerBound for Spent {
        fn fits(&self) -> bool {
            false
        }
    }
    let mut store = BoundSeen::default();
    assert!(store.answer_bound().fits());
    store.update(1, &mut |_| Write::Nothing).expect("update");
    // Control: a spent bound reaches the store as given.
    store
        .update_within(1, &Spent, &mut |_| Write::Nothing)
        .expect("update");
    assert_eq!(store.0, [true, false]);
}

/// `totp-state reset --forget-version-1-marks`: the admin re-enrolled the user, so a
/// version-1 record's marks (TOTP step and HOTP counter) go; the bound marks stay.
#[test]
fn a_reset_forgets_version_1_marks_only_when_told() {
    let now = EARLIEST_CLOCK + 1_000_000;
    let cap = reset_mark_cap(now);
    let bound = Marks {
        totp_until: Some(now),
        hotp: None,
        scratch: vec![7],
    };
    let s = UserState {
        legacy: Some(LegacyMarks {
            last_step: Some(now / 30),
            hotp: Some(500),
        }),
        extra: vec![1],
        ..UserState::default()
    }
    .with_marks(EnrolmentId(3), bound.clone());
    let (kept, _) = s.lifted(cap, how(false));
    assert_eq!(kept.legacy, s.legacy, "a plain reset keeps them");
    let forget = ResetHow {
        forget_version_1: true,
        ..ResetHow::default()
    };
    let (next, lowered) = s.lifted(cap, forget);
    assert!(!lowered);
    assert_eq!(next.legacy, None);
    assert_eq!(next.marks_of(EnrolmentId(3)), Some(&bound));
    assert!(next.extra.is_empty());
    // Written back as version 2 (no legacy marks), and read as such.
    let bytes = next.encode();
    assert_eq!(bytes[0], 2);
    assert_eq!(UserState::decode(&bytes).expect("decodes"), next);
}

/// A version-1 mark that ends exactly where a reset stops keeping marks is kept, and is
/// not reported: a login honours it, so lowering it would only say something changed
/// (with `--clock-fault`) or reopen codes under it (without). One step later it is
/// lowered (the control).
#[test]
fn a_version_1_mark_ending_at_the_limit_is_kept_and_not_reported() {
    let now0 = EARLIEST_CLOCK + 1_000_000;
    let cap0 = reset_mark_cap(now0).expect("a trusted clock");
    let now = now0 + (30 - cap0 % 30) % 30;
    let cap = reset_mark_cap(now).expect("a trusted clock");
    assert_eq!(cap % 30, 0);
    let legacy = |step| UserState {
        legacy: Some(LegacyMarks {
            last_step: Some(step),
            hotp: None,
        }),
        ..UserState::default()
    };
    let at = |secs: u64, clock_fault| ResetHow {
        clock_fault,
        legacy_step_secs: Some(secs),
        ..ResetHow::default()
    };

    // --clock-fault, the file's 30-s step known: a mark ending at the cap is kept.
    let edge = legacy(cap / 30 - 1);
    let (next, lowered) = edge.lifted(Some(cap), at(30, true));
    assert!(!lowered);
    assert_eq!(next.legacy, edge.legacy);
    let (next, lowered) = legacy(cap / 30).lifted(Some(cap), at(30, true));
    assert!(lowered);
    assert_eq!(next.legacy, edge.legacy);

    // The step unknown (read at the shortest): a mark ending where the reset stops
    // keeping is kept, one second later it is lowered to the cap.
    let beyond = reset_lowers_after(cap);
    let edge = legacy(beyond - 1);
    let (next, lowered) = edge.lifted(Some(cap), how(false));
    assert!(!lowered);
    assert_eq!(next.legacy, edge.legacy);
    let (next, lowered) = legacy(beyond).lifted(Some(cap), how(false));
    assert!(lowered);
    assert_eq!(next.legacy, legacy(cap - 1).legacy);

    // Reported only beyond the cap at GA's default step.
    assert!(!legacy(cap / 30 - 1).legacy_mark_beyond(Some(cap), true));
    assert!(legacy(cap / 30).legacy_mark_beyond(Some(cap), true));
}

/// Records what each reset was told.
#[derive(Default)]
struct HowSeen(Vec<(u64, ResetHow)>);

impl StateStore for HowSeen {
    fn update_within(
        &mut self,
        _: Uid,
        _: &dyn AnswerBound,
        _: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn read(&mut self, _: Uid) -> Result<UserState, StoreError> {
        Ok(UserState::default())
    }

    fn reset_with(&mut self, _: Uid, now: u64, how: ResetHow) -> Result<Reset, StoreError> {
        self.0.push((now, how));
        Ok(Reset::Absent)
    }

    fn context(&mut self, _: Missing) -> Result<Option<StoreContext>, StoreError> {
        Ok(None)
    }
}

/// `totp-state reset --clock-fault` reaches every store's reset: without it a mark set
/// by a clock that was ahead stayed, and the user stayed refused. The control: a plain
/// reset says no clock fault.
#[test]
fn a_reset_passes_the_admins_clock_fault_to_the_store() {
    let mut store = HowSeen::default();
    store.reset(1, 1_800_000_000, true).expect("reset");
    store.reset(1, 1_800_000_001, false).expect("reset");
    assert_eq!(
        store.0,
        [
            (1_800_000_000, how(true)),
            (1_800_000_001, ResetHow::default())
        ]
    );
}

/// A lost store record is recreated complete since a trusted clock only: from a clock
/// before [`EARLIEST_CLOCK`] (a dead RTC) it is left missing, so no floor in 1970
/// reopens every code used before the loss (R34).
#[test]
fn a_store_record_is_recreated_only_from_a_trusted_clock() {
    assert_eq!(Missing::recreate_at(0), Missing::Leave);
    assert_eq!(Missing::recreate_at(EARLIEST_CLOCK - 1), Missing::Leave);
    assert_eq!(
        Missing::recreate_at(EARLIEST_CLOCK),
        Missing::Create {
            complete_since: EARLIEST_CLOCK
        }
    );
    assert_eq!(
        Missing::recreate_at(EARLIEST_CLOCK + 1),
        Missing::Create {
            complete_since: EARLIEST_CLOCK + 1
        }
    );
}

/// The reader shared with the throttling ledger reads little-endian fields in order
/// and refuses a record cut short.
#[test]
fn the_record_reader_reads_fields_in_order_and_refuses_a_short_record() {
    let mut bytes = vec![7u8];
    bytes.extend_from_slice(&0x0102_0304u32.to_le_bytes());
    bytes.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    bytes.push(9);
    let mut r = Reader {
        b: &bytes,
        what: "test record",
    };
    assert_eq!(r.u8(), Ok(7));
    assert_eq!(r.u32(), Ok(0x0102_0304));
    assert_eq!(r.u64(), Ok(0x1122_3344_5566_7788));
    assert!(r.u32().is_err(), "one byte left");
    assert_eq!(r.b, [9]);
    assert_eq!(r.u8(), Ok(9));
    assert!(r.u8().is_err());
}

/// The size bound is on the record, whatever it holds: one byte over it is refused
/// even when it would otherwise read, a record of exactly the bound is read.
#[test]
fn a_record_over_the_size_bound_is_refused_and_one_at_it_is_read() {
    let sized = |len: usize| {
        let mut b = vec![2, 0];
        b.resize(len, 0xAA);
        b
    };
    let at = UserState::decode(&sized(MAX_ENCODED_LEN)).expect("at the bound");
    assert_eq!(at.extra.len(), MAX_ENCODED_LEN - 2);
    assert_eq!(
        UserState::decode(&sized(MAX_ENCODED_LEN + 1)),
        Err(StoreError::Corrupt("record too large".to_owned()))
    );
}
