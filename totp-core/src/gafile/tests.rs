use super::*;
use proptest::prelude::*;

const GA_TOOL_FILE: &[u8] = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\
\" RATE_LIMIT 3 30\n\
\" WINDOW_SIZE 3\n\
\" STEP_SIZE 30\n\
\" DISALLOW_REUSE\n\
\" TOTP_AUTH\n\
69560333\n\
71528908\n\
93484149\n";

fn p(bytes: &[u8]) -> GaFile {
    GaFile::parse(bytes).unwrap()
}

#[test]
fn ga_tool_file_parses_and_round_trips() {
    let f = p(GA_TOOL_FILE);
    assert_eq!(f.as_bytes(), GA_TOOL_FILE);
    assert_eq!(*f.to_bytes(), GA_TOOL_FILE);
    let c = f.config().unwrap();
    assert_eq!(c.mode, Mode::Totp);
    assert_eq!(c.window, Some(3));
    assert_eq!(c.step, Some(30));
    assert_eq!(c.disallow_reuse, Some(vec![]));
    assert_eq!(
        c.rate_limit,
        Some(RateLimit {
            attempts: 3,
            interval_secs: 30,
            timestamps: vec![]
        })
    );
    assert_eq!(c.algorithm, Algorithm::Sha1);
    assert_eq!(c.digits, Digits::SIX);
    assert_eq!(*f.scratch_codes(), [69560333, 71528908, 93484149]);
    assert_eq!(f.secret().unwrap().bits(), 160);
}

#[test]
fn secret_lengths_of_16_26_32_chars_are_read() {
    for (line, bits) in [
        ("2SH3V3GDW7ZNMGYE", 80),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 128),
        ("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 160),
    ] {
        let f = p(format!("{line}\n\" TOTP_AUTH\n").as_bytes());
        assert_eq!(f.secret().unwrap().bits(), bits);
    }
}

#[test]
fn crlf_lowercase_and_no_trailing_newline_are_accepted() {
    let f = p(b"2sh3 v3gd-w7zn mgye\r\n\" TOTP_AUTH\r\n\" WINDOW_SIZE 5\r\n");
    assert_eq!(f.config().unwrap().window, Some(5));
    assert_eq!(
        f.secret().unwrap().as_bytes(),
        crate::base32::decode_lenient(b"2SH3V3GDW7ZNMGYE").unwrap()
    );
    let f = p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH");
    assert_eq!(f.config().unwrap().mode, Mode::Totp);
}

#[test]
fn malformed_files_are_errors_never_defaults() {
    let cases: &[(&[u8], GaFileError)] = &[
        (b"", GaFileError::Empty),
        (b"2SH3V3GDW7ZNMGYE\n\0", GaFileError::ContainsNul),
        (
            b"2SH3V3GDW7ZNMGYE====\n",
            GaFileError::BadSecret { offset: 16 },
        ),
        (
            b"\xef\xbb\xbf2SH3V3GDW7ZNMGYE\n",
            GaFileError::BadSecret { offset: 0 },
        ),
        (b"\n\" TOTP_AUTH\n", GaFileError::EmptySecret),
        (b"A\n", GaFileError::EmptySecret),
        (
            b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE 0\n",
            GaFileError::BadValue { key: "WINDOW_SIZE" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE 101\n",
            GaFileError::BadValue { key: "WINDOW_SIZE" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE x\n",
            GaFileError::BadValue { key: "WINDOW_SIZE" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" STEP_SIZE 0\n",
            GaFileError::BadValue { key: "STEP_SIZE" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" STEP_SIZE 61\n",
            GaFileError::BadValue { key: "STEP_SIZE" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" RATE_LIMIT 3 30 \n",
            GaFileError::BadValue { key: "RATE_LIMIT" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" RATE_LIMIT 0 30\n",
            GaFileError::BadValue { key: "RATE_LIMIT" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" RATE_LIMIT 3 3601\n",
            GaFileError::BadValue { key: "RATE_LIMIT" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" RATE_LIMIT 3\n",
            GaFileError::BadValue { key: "RATE_LIMIT" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" DISALLOW_REUSE 1 x\n",
            GaFileError::BadValue {
                key: "DISALLOW_REUSE",
            },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER one\n",
            GaFileError::BadValue {
                key: "HOTP_COUNTER",
            },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW 1x\n",
            GaFileError::BadValue { key: "TIME_SKEW" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW 99999999\n",
            GaFileError::BadValue { key: "TIME_SKEW" },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_ALGORITHM MD5\n",
            GaFileError::BadValue {
                key: "PAM_TOTP_ALGORITHM",
            },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_DIGITS 9\n",
            GaFileError::BadValue {
                key: "PAM_TOTP_DIGITS",
            },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_LAST_STEP -1\n",
            GaFileError::BadValue {
                key: "PAM_TOTP_LAST_STEP",
            },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_FAILURES 3\n",
            GaFileError::BadValue {
                key: "PAM_TOTP_FAILURES",
            },
        ),
        (
            b"2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_FAILURES 3  100\n",
            GaFileError::BadValue {
                key: "PAM_TOTP_FAILURES",
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            GaFile::parse(bytes).as_ref().err(),
            Some(want),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let mut big = b"2SH3V3GDW7ZNMGYE\n".to_vec();
    big.resize(MAX_FILE_LEN + 1, b'\n');
    assert_eq!(GaFile::parse(&big), Err(GaFileError::TooLarge));
    big.truncate(MAX_FILE_LEN);
    assert!(GaFile::parse(&big).is_ok());
}

#[test]
fn ga_lenient_number_forms_are_kept() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE 5 extra\n\" STEP_SIZE\t60\n\" RATE_LIMIT 3\t30  100\n\" TIME_SKEW -1000\n");
    let c = f.config().unwrap();
    assert_eq!(c.window, Some(5));
    assert_eq!(c.step, Some(60));
    assert_eq!(c.rate_limit.unwrap().timestamps, [100]);
    assert_eq!(c.time_skew, Some(-1000));
}

/// GA reads `HOTP_COUNTER` and `TIME_SKEW` with `strtol`, so a trailing blank (an
/// editor, a template) or a `+` does not change the value; refusing such a file locked
/// its user out after the switch.
#[test]
fn hotp_counter_and_time_skew_read_like_strtol_up_to_a_blank() {
    let c = |b: &[u8]| p(b).config().unwrap();
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 7 \n").mode,
        Mode::Hotp { counter: 7 }
    );
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER +7\t# reset by hand\r\n").mode,
        Mode::Hotp { counter: 7 }
    );
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 0007\n").mode,
        Mode::Hotp { counter: 7 }
    );
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW -2 \n\" TOTP_AUTH\n").time_skew,
        Some(-2)
    );
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW +3\t\n").time_skew,
        Some(3)
    );
    // Text glued to the digits, no digits, or a negative counter stay malformed.
    for bad in [
        &b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 7x\n"[..],
        b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER -1\n",
        b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER + 7\n",
        b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER \n",
        b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW -\n",
        b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW --2\n",
        b"2SH3V3GDW7ZNMGYE\n\" TIME_SKEW 2-\n",
    ] {
        assert!(
            matches!(GaFile::parse(bad), Err(GaFileError::BadValue { .. })),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn key_must_be_followed_by_blank_or_end_of_line() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n\" X_KEYX 5\n\" X_KEY\n\" WINDOW_SIZEX 0\n");
    assert_eq!(f.get("X_KEY"), Some(&b""[..]));
    assert_eq!(f.get("X_KEYX"), Some(&b"5"[..]));
    assert_eq!(f.config().unwrap().window, None);
}

/// The module asks whether GA's bookkeeping lines are present before it keeps them;
/// only a `" KEY` line at the start of a line counts, as for `get`.
#[test]
fn contains_key_sees_only_option_lines() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n\" DISALLOW_REUSE\n\" X \" RATE_LIMIT 3 30\n");
    assert!(f.contains_key(KEY_DISALLOW_REUSE));
    assert!(!f.contains_key(KEY_RATE_LIMIT));
}

#[test]
fn first_occurrence_wins_on_read() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE 5\n\" WINDOW_SIZE 7\n");
    assert_eq!(f.config().unwrap().window, Some(5));
}

#[test]
fn mode_follows_ga_precedence() {
    let c = |b: &[u8]| p(b).config().unwrap().mode;
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n\" HOTP_COUNTER 4\n"),
        Mode::Hotp { counter: 4 }
    );
    assert_eq!(
        c(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n\" HOTP_COUNTER 0\n"),
        Mode::Totp
    );
    assert_eq!(c(b"2SH3V3GDW7ZNMGYE\n12345678\n"), Mode::ScratchOnly);
    // GA searches the whole buffer for the substring.
    assert_eq!(c(b"2SH3V3GDW7ZNMGYE\n\" X\" TOTP_AUTHY\n"), Mode::Totp);
}

#[test]
fn set_replaces_the_first_line_in_place_and_drops_duplicates() {
    let mut f =
        p(b"2SH3V3GDW7ZNMGYE\n\" A 1\n\" WINDOW_SIZE 5\r\n\r\n\" B 2\n\" WINDOW_SIZE 7\n\" C 3");
    f.set("WINDOW_SIZE", "9").unwrap();
    assert_eq!(
        f.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" A 1\n\" WINDOW_SIZE 9\n\" B 2\n\" C 3"
    );
}

#[test]
fn set_inserts_after_line_one_when_absent() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\r\n\r\n\" TOTP_AUTH\r\n");
    f.set("DISALLOW_REUSE", "10000").unwrap();
    assert_eq!(
        f.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\r\n\r\n\" DISALLOW_REUSE 10000\n\" TOTP_AUTH\r\n"
    );
    f.set("RESETTING_TIME_SKEW", "").unwrap();
    assert!(
        f.as_bytes()
            .starts_with(b"2SH3V3GDW7ZNMGYE\r\n\r\n\" RESETTING_TIME_SKEW \n")
    );
}

#[test]
fn set_on_a_secret_only_file_adds_the_missing_line_break() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE");
    f.set("TOTP_AUTH", "").unwrap();
    assert_eq!(f.as_bytes(), b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH \n");
}

#[test]
fn set_rejects_bad_keys_and_values() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n");
    assert_eq!(f.set("lower", "1"), Err(GaFileError::BadKey));
    assert_eq!(f.set("", "1"), Err(GaFileError::BadKey));
    assert_eq!(f.set("A B", "1"), Err(GaFileError::BadKey));
    assert_eq!(f.set("A", "1\n\" B"), Err(GaFileError::BadValueBytes));
    assert_eq!(f.as_bytes(), b"2SH3V3GDW7ZNMGYE\n");
}

#[test]
fn set_refuses_to_grow_past_the_cap() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n");
    let huge = "1".repeat(MAX_FILE_LEN);
    assert_eq!(f.set("X_BIG", &huge), Err(GaFileError::TooLarge));
    assert_eq!(f.as_bytes(), b"2SH3V3GDW7ZNMGYE\n");
}

/// An edit may bring the file to `MAX_FILE_LEN` and not a byte past it, counting
/// what a replaced line gives back; a refused edit leaves the file as it was.
#[test]
fn edits_are_taken_up_to_the_size_cap_and_not_a_byte_past_it() {
    // `len` bytes: the secret, a WINDOW_SIZE line, an unknown line padding the rest.
    let file = |len: usize| {
        let mut f = b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE 5\n\" X_PAD ".to_vec();
        f.resize(len - 1, b'x');
        f.push(b'\n');
        p(&f)
    };
    let line = "\" STEP_SIZE 30\n".len();
    let mut f = file(MAX_FILE_LEN - line);
    f.set(KEY_STEP_SIZE, "30").unwrap();
    assert_eq!(f.as_bytes().len(), MAX_FILE_LEN);
    assert_eq!(f.config().unwrap().step, Some(30));
    let mut f = file(MAX_FILE_LEN - line + 1);
    let kept = f.clone();
    assert_eq!(f.set(KEY_STEP_SIZE, "30"), Err(GaFileError::TooLarge));
    assert_eq!(f, kept);
    // In a file at the cap: a line replaced by one as long, then by one a byte longer.
    let mut f = file(MAX_FILE_LEN);
    f.set(KEY_WINDOW_SIZE, "9").unwrap();
    assert_eq!(f.as_bytes().len(), MAX_FILE_LEN);
    assert_eq!(f.config().unwrap().window, Some(9));
    let kept = f.clone();
    assert_eq!(f.set(KEY_WINDOW_SIZE, "10"), Err(GaFileError::TooLarge));
    assert_eq!(f, kept);
}

#[test]
fn unknown_lines_survive_edits() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n\" X_UNKNOWN_KEY 1 2 3\n\" TOTP_AUTH\n\xc3\xa9 some junk\n");
    f.set("PAM_TOTP_LAST_STEP", "10000").unwrap();
    f.set("PAM_TOTP_LAST_STEP", "10001").unwrap();
    assert!(f.remove("PAM_TOTP_LAST_STEP"));
    assert!(!f.remove("PAM_TOTP_LAST_STEP"));
    assert_eq!(
        f.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" X_UNKNOWN_KEY 1 2 3\n\" TOTP_AUTH\n\xc3\xa9 some junk\n"
    );
}

#[test]
fn scratch_scan_stops_at_the_first_junk_line() {
    let f =
        p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n11111111\n\n\r\n\" X\n22222222\r\njunk\n33333333\n");
    assert_eq!(*f.scratch_codes(), [11111111, 22222222]);
}

#[test]
fn scratch_lines_follow_strtol() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n 11111111\n+22222222\n09999999\n33333333\n");
    assert_eq!(*f.scratch_codes(), [11111111, 22222222]);
    let f = p(b"2SH3V3GDW7ZNMGYE\n123456789\n");
    assert!(f.scratch_codes().is_empty());
}

#[test]
fn removing_a_scratch_code_takes_its_line_break_run() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n12345678\r\n\r\n87654321\n");
    assert!(f.remove_scratch_code(12345678));
    assert_eq!(f.as_bytes(), b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n87654321\n");
    assert!(!f.remove_scratch_code(12345678));
    assert!(f.remove_scratch_code(87654321));
    assert_eq!(f.as_bytes(), b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n");
}

#[test]
fn carrying_a_use_strikes_the_codes_this_login_used_from_a_newer_file() {
    let read = p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n11111111\n22222222\n33333333\n");
    let mut used = read.clone();
    assert!(used.remove_scratch_code(22222222));
    // Another login struck 11111111 in the meantime.
    let mut newer = p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n22222222\n33333333\n");
    assert_eq!(
        newer.carry_use(&read, &used),
        Ok(Carried::Use {
            struck: 1,
            counter_raised: false
        })
    );
    assert_eq!(
        newer.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n33333333\n"
    );
    // Carried again: the newer file already holds it, nothing changes.
    let kept = newer.clone();
    assert_eq!(
        newer.carry_use(&read, &used),
        Ok(Carried::Use {
            struck: 0,
            counter_raised: false
        })
    );
    assert_eq!(newer, kept);
    // A code listed twice and used once stays listed once.
    let read = p(b"2SH3V3GDW7ZNMGYE\n22222222\n22222222\n");
    let mut used = read.clone();
    assert!(used.remove_scratch_code(22222222));
    let mut newer = read.clone();
    newer.set("RATE_LIMIT", "3 30").unwrap();
    newer.carry_use(&read, &used).unwrap();
    assert_eq!(*newer.scratch_codes(), [22222222]);
}

#[test]
fn carrying_a_use_raises_the_hotp_counter_and_never_lowers_it() {
    let read = p(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 5\n");
    let mut used = read.clone();
    used.set(KEY_HOTP_COUNTER, "7").unwrap();
    let mut newer = p(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 6\n\" RATE_LIMIT 3 30\n");
    assert_eq!(
        newer.carry_use(&read, &used),
        Ok(Carried::Use {
            struck: 0,
            counter_raised: true
        })
    );
    assert_eq!(
        newer.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 7\n\" RATE_LIMIT 3 30\n"
    );
    // Another login went further: kept.
    let mut further = p(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 9\n");
    let kept = further.clone();
    further.carry_use(&read, &used).unwrap();
    assert_eq!(further, kept);
    // Another login reached the same counter, its line written otherwise: left as it
    // is, and not reported as raised.
    let mut same = p(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER  7\r\n\r\n11111111\n");
    let kept = same.clone();
    assert_eq!(
        same.carry_use(&read, &used),
        Ok(Carried::Use {
            struck: 0,
            counter_raised: false
        })
    );
    assert_eq!(same, kept);
    // This login did not move the counter: a lower newer counter is left alone.
    let mut lower = p(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 2\n");
    let kept = lower.clone();
    lower.carry_use(&read, &read).unwrap();
    assert_eq!(lower, kept);
}

#[test]
fn carrying_a_use_leaves_a_new_enrolment_alone() {
    let read = p(b"2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER 5\n11111111\n");
    let mut used = read.clone();
    used.set(KEY_HOTP_COUNTER, "7").unwrap();
    assert!(used.remove_scratch_code(11111111));
    let mut newer = p(b"JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 1\n11111111\n");
    let kept = newer.clone();
    assert_eq!(newer.carry_use(&read, &used), Ok(Carried::OtherSecret));
    assert_eq!(newer, kept);
}

#[test]
fn regenerating_scratch_codes_replaces_the_visible_ones() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n12345678\n87654321");
    f.regenerate_scratch_codes(&[11111111, 22222222]).unwrap();
    assert_eq!(
        f.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n11111111\n22222222\n"
    );
    assert_eq!(
        f.regenerate_scratch_codes(&[1234567]),
        Err(GaFileError::BadScratchCode)
    );
    f.regenerate_scratch_codes(&[]).unwrap();
    assert_eq!(f.as_bytes(), b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n");
}

/// GA's scan of the scratch codes ends at the first line that is neither a code, blank,
/// nor a `"` line. New codes used to be appended after such a line: shown to the user,
/// saved, and never accepted. They now go where the scan ends; the line and what follows
/// it are kept. Control: in a file without such a line they are appended at the end.
#[test]
fn regenerated_scratch_codes_are_where_the_scan_reads_them() {
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n12345678\n# note\r\n87654321\n");
    assert_eq!(*f.scratch_codes(), [12345678], "the note ends the list");
    f.regenerate_scratch_codes(&[11111111, 22222222]).unwrap();
    assert_eq!(
        f.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n11111111\n22222222\n# note\r\n87654321\n"
    );
    assert_eq!(*f.scratch_codes(), [11111111, 22222222]);
    // The list ends on the last line, which has no line break.
    let mut f = p(b"2SH3V3GDW7ZNMGYE\n11111111\r\n\" TOTP_AUTH\r\n\r\nnote");
    f.regenerate_scratch_codes(&[33333333]).unwrap();
    assert_eq!(
        f.as_bytes(),
        b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\r\n\r\n33333333\nnote"
    );
    assert_eq!(*f.scratch_codes(), [33333333]);
    // Control: nothing ends the list early, the codes go last.
    for (file, want) in [
        (
            &b"2SH3V3GDW7ZNMGYE\n12345678\n\" TOTP_AUTH"[..],
            &b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n33333333\n"[..],
        ),
        (b"2SH3V3GDW7ZNMGYE", b"2SH3V3GDW7ZNMGYE\n33333333\n"),
        (b"2SH3V3GDW7ZNMGYE\r\n", b"2SH3V3GDW7ZNMGYE\r\n33333333\n"),
    ] {
        let mut f = p(file);
        f.regenerate_scratch_codes(&[33333333]).unwrap();
        assert_eq!(f.as_bytes(), want);
        assert_eq!(*f.scratch_codes(), [33333333]);
    }
}

#[test]
fn enrollment_reproduces_the_ga_tool_layout() {
    let secret =
        Secret::new(crate::base32::decode_lenient(b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap());
    let s = EnrollSettings {
        totp: true,
        disallow_reuse: true,
        step: Some(30),
        window: Some(3),
        rate_limit: Some((3, 30)),
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        scratch_codes: vec![69560333, 71528908, 93484149],
    };
    let f = GaFile::new_enrollment(&secret, &s).unwrap();
    assert_eq!(f.as_bytes(), GA_TOOL_FILE);
}

#[test]
fn enrollment_adds_our_lines_only_when_not_default() {
    let secret = Secret::new(vec![0x55; 20]);
    let s = EnrollSettings {
        totp: false,
        disallow_reuse: false,
        window: Some(1),
        algorithm: Algorithm::Sha256,
        digits: Digits::EIGHT,
        scratch_codes: vec![10000000],
        ..EnrollSettings::default()
    };
    let f = GaFile::new_enrollment(&secret, &s).unwrap();
    assert_eq!(
        f.as_bytes(),
        b"KVKVKVKVKVKVKVKVKVKVKVKVKVKVKVKV\n\
\" PAM_TOTP_DIGITS 8\n\
\" PAM_TOTP_ALGORITHM SHA256\n\
\" WINDOW_SIZE 1\n\
\" HOTP_COUNTER 1\n\
10000000\n"
    );
    let c = f.config().unwrap();
    assert_eq!(c.mode, Mode::Hotp { counter: 1 });
    assert_eq!((c.algorithm, c.digits), (Algorithm::Sha256, Digits::EIGHT));
}

#[test]
fn enrollment_rejects_out_of_range_settings() {
    let secret = Secret::new(vec![1; 20]);
    let bad = [
        EnrollSettings {
            step: Some(61),
            ..EnrollSettings::default()
        },
        EnrollSettings {
            window: Some(0),
            ..EnrollSettings::default()
        },
        EnrollSettings {
            rate_limit: Some((0, 30)),
            ..EnrollSettings::default()
        },
        EnrollSettings {
            scratch_codes: vec![9_999_999],
            ..EnrollSettings::default()
        },
        EnrollSettings {
            totp: false,
            disallow_reuse: true,
            ..EnrollSettings::default()
        },
    ];
    for s in bad {
        assert!(GaFile::new_enrollment(&secret, &s).is_err(), "{s:?}");
    }
    assert!(GaFile::new_enrollment(&Secret::new(vec![]), &EnrollSettings::default()).is_err());
}

/// Each setting out of GA's range is refused by name (the message `totp-enroll`
/// prints), one past each end of its range; each end itself is written. A HOTP
/// enrolment refuses a step as it refuses `DISALLOW_REUSE`, each alone.
#[test]
fn enrollment_names_the_setting_out_of_range_and_takes_each_bound() {
    let secret = Secret::new(vec![1; 20]);
    let with = |f: &dyn Fn(&mut EnrollSettings)| {
        let mut s = EnrollSettings::default();
        f(&mut s);
        GaFile::new_enrollment(&secret, &s)
    };
    let refused = |what: &'static str| Err(GaFileError::BadSettings(what));
    for v in [0, 61] {
        assert_eq!(with(&|s| s.step = Some(v)), refused("step"), "{v}");
    }
    for v in [0, 101] {
        assert_eq!(with(&|s| s.window = Some(v)), refused("window"), "{v}");
    }
    for v in [(0, 30), (101, 30), (3, 0), (3, 3601)] {
        assert_eq!(
            with(&|s| s.rate_limit = Some(v)),
            refused("rate limit"),
            "{v:?}"
        );
    }
    let hotp_only = "reuse and step apply to TOTP only";
    assert_eq!(
        with(&|s| {
            s.totp = false;
            s.disallow_reuse = false;
            s.step = Some(30);
        }),
        refused(hotp_only)
    );
    assert_eq!(with(&|s| s.totp = false), refused(hotp_only));
    assert_eq!(
        GaFile::new_enrollment(&Secret::new(vec![]), &EnrollSettings::default()),
        refused("secret length")
    );
    for v in [1, 60] {
        let c = with(&|s| s.step = Some(v)).unwrap().config().unwrap();
        assert_eq!(c.step, Some(v));
    }
    for v in [1, 100] {
        let c = with(&|s| s.window = Some(v)).unwrap().config().unwrap();
        assert_eq!(c.window, Some(v));
    }
    for (n, m) in [(1, 1), (100, 3600)] {
        let c = with(&|s| s.rate_limit = Some((n, m)))
            .unwrap()
            .config()
            .unwrap();
        let rl = c.rate_limit.unwrap();
        assert_eq!((rl.attempts, rl.interval_secs), (n, m));
    }
    let c = with(&|s| {
        s.totp = false;
        s.disallow_reuse = false;
    })
    .unwrap()
    .config()
    .unwrap();
    assert_eq!(
        (c.mode, c.step, c.disallow_reuse),
        (Mode::Hotp { counter: 1 }, None, None)
    );
}

#[test]
fn our_keys_are_typed() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_LAST_STEP 10000\n\" PAM_TOTP_FAILURES 4 300000\n\" PAM_TOTP_ALGORITHM SHA512\n\" PAM_TOTP_DIGITS 7\n\" LAST0 10.0.0.5 1795360818\n\" LAST3 host.example 5\n\" LAST4 bad!host 5\n\" TOTP_AUTH\n");
    let c = f.config().unwrap();
    assert_eq!(c.last_step, Some(10000));
    assert_eq!(
        c.failures,
        Some(Failures {
            count: 4,
            last: 300_000
        })
    );
    assert_eq!(c.algorithm, Algorithm::Sha512);
    assert_eq!(c.digits, Digits::SEVEN);
    assert_eq!(
        c.grace,
        [
            GraceEntry {
                slot: 0,
                host: "10.0.0.5".into(),
                when: 1_795_360_818
            },
            GraceEntry {
                slot: 3,
                host: "host.example".into(),
                when: 5
            },
        ]
    );
}

#[test]
fn debug_does_not_show_content() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n");
    assert_eq!(format!("{f:?}"), "GaFile(REDACTED, 17 bytes)");
}

#[test]
fn rate_limit_update_follows_ga() {
    let rl = |ts: &[u64]| RateLimit {
        attempts: 3,
        interval_secs: 30,
        timestamps: ts.to_vec(),
    };
    assert_eq!(
        rate_limit_update(&rl(&[]), 300_000),
        (rl(&[300_000]), false)
    );
    assert_eq!(
        rate_limit_update(&rl(&[300_000, 300_005, 300_010]), 300_012),
        (rl(&[300_005, 300_010, 300_012]), true)
    );
    // Old and future entries are dropped (clock went back).
    assert_eq!(
        rate_limit_update(&rl(&[1, 400_000]), 300_000),
        (rl(&[300_000]), false)
    );
}

#[test]
fn disallow_reuse_update_follows_ga_bytes() {
    assert_eq!(
        disallow_reuse_update(b"", 10000, 3).unwrap().as_deref(),
        Some("10000")
    );
    assert_eq!(disallow_reuse_update(b"10000", 10000, 3).unwrap(), None);
    assert_eq!(
        disallow_reuse_update(b"10000 10001", 10002, 3)
            .unwrap()
            .as_deref(),
        Some("10000 10001 10002")
    );
    assert_eq!(
        disallow_reuse_update(b"10000 10001", 10003, 3)
            .unwrap()
            .as_deref(),
        Some("10001 10003")
    );
    // An entry far ahead (a clock stepped back) stays: GA would prune it.
    assert_eq!(
        disallow_reuse_update(b"10000 20000", 10001, 3)
            .unwrap()
            .as_deref(),
        Some("10000 20000 10001")
    );
    assert!(disallow_reuse_update(b"1x", 5, 3).is_err());
    // Found by the generated GA differential: GA prunes an entry ahead of the accepted
    // step too, and its code then logs in again; kept here until the clock passes it.
    assert_eq!(
        disallow_reuse_update(b"10003", 10000, 3)
            .unwrap()
            .as_deref(),
        Some("10003 10000")
    );
    // Pruning the last entry leaves GA's trailing blank, hence a double space.
    assert_eq!(
        disallow_reuse_update(b"10003 10000", 10004, 3)
            .unwrap()
            .as_deref(),
        Some("10003  10004")
    );
    assert_eq!(
        disallow_reuse_update(b"10003", 10006, 3)
            .unwrap()
            .as_deref(),
        Some("10006")
    );
    // A sign glued to the previous number is no separator (GA: "Invalid list").
    assert!(disallow_reuse_update(b"1+2", 5, 3).is_err());
}

/// An entry kept ahead of the clock (a clock since stepped back, or a hand-written line)
/// stays for as long as the clock is behind it; the logins meanwhile must not lengthen
/// the line, or it reaches the file's size cap and stops being updated (hosts with
/// another state store then take the codes again).
#[test]
fn disallow_reuse_line_stays_bounded_while_an_entry_is_kept_ahead() {
    let grow = |start: &str| {
        let mut line = start.to_string();
        // A login every 4 steps: each prunes the one before it, the last entry.
        for tm in (10_000..).step_by(4).take(200) {
            if let Some(v) = disallow_reuse_update(line.as_bytes(), tm, 3).unwrap() {
                line = v;
            }
        }
        line
    };
    let ahead = grow("99999999");
    assert_eq!(ahead, "99999999 10796", "{:?}", ahead.len());
    // Control: without an entry kept ahead, GA's bytes as before (the double space GA
    // leaves when it prunes the last entry and keeps one before it).
    assert_eq!(grow(""), "10796");
    assert_eq!(
        disallow_reuse_update(b"10003 10000", 10004, 3)
            .unwrap()
            .as_deref(),
        Some("10003  10004")
    );
    // Blanks a hand-written line ends with go too once an entry is kept ahead.
    assert_eq!(
        disallow_reuse_update(b"20000 \t ", 10000, 3)
            .unwrap()
            .as_deref(),
        Some("20000 10000")
    );
}

/// GA reads `WINDOW_SIZE`, `STEP_SIZE` and `RATE_LIMIT` with `strtoul`, which takes a
/// leading `+`; text glued to a number is refused (GA: "Invalid ...").
#[test]
fn plus_signs_and_glued_text_in_ga_numbers() {
    let c = p(
        b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE +5\n\" STEP_SIZE \x0b+20\n\" RATE_LIMIT +3 +30 +100\n",
    )
    .config()
    .unwrap();
    assert_eq!(c.window, Some(5));
    assert_eq!(c.step, Some(20));
    assert_eq!(
        c.rate_limit,
        Some(RateLimit {
            attempts: 3,
            interval_secs: 30,
            timestamps: vec![100]
        })
    );
    for bad in [
        &b"2SH3V3GDW7ZNMGYE\n\" WINDOW_SIZE 5x\n"[..],
        b"2SH3V3GDW7ZNMGYE\n\" STEP_SIZE 30s\n",
        b"2SH3V3GDW7ZNMGYE\n\" DISALLOW_REUSE 1+2\n",
        b"2SH3V3GDW7ZNMGYE\n\" DISALLOW_REUSE 1x 2\n",
    ] {
        assert!(
            matches!(GaFile::parse(bad), Err(GaFileError::BadValue { .. })),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// The largest stored values are accepted, one more is refused: a file at the bound
/// must not lock its user out, one past it must not overflow the window arithmetic.
#[test]
fn stored_numbers_are_accepted_up_to_their_bound() {
    let at = format!(
        "2SH3V3GDW7ZNMGYE\n\" RATE_LIMIT 3 30 {MAX_UNIX_TIME}\n\" DISALLOW_REUSE 5 {MAX_COUNTER} \n\" TOTP_AUTH\n"
    );
    let c = p(at.as_bytes()).config().unwrap();
    assert_eq!(c.rate_limit.unwrap().timestamps, [MAX_UNIX_TIME]);
    assert_eq!(c.disallow_reuse, Some(vec![5, MAX_COUNTER]));
    for (line, key) in [
        (
            format!("\" RATE_LIMIT 3 30 {}", MAX_UNIX_TIME + 1),
            KEY_RATE_LIMIT,
        ),
        (
            format!("\" DISALLOW_REUSE 5 {}", MAX_COUNTER + 1),
            KEY_DISALLOW_REUSE,
        ),
    ] {
        let f = format!("2SH3V3GDW7ZNMGYE\n{line}\n");
        assert_eq!(
            GaFile::parse(f.as_bytes()),
            Err(GaFileError::BadValue { key }),
            "{line}"
        );
    }
}

/// Bounds of `HOTP_COUNTER`, `PAM_TOTP_FAILURES` and the `LASTn` host: the largest value
/// is kept, one more is refused (or, for `LASTn`, the line is skipped as GA's `sscanf`
/// skips it).
#[test]
fn counter_failures_and_grace_host_bounds() {
    let f = format!("2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER {MAX_COUNTER}\n");
    assert_eq!(
        p(f.as_bytes()).config().unwrap().mode,
        Mode::Hotp {
            counter: MAX_COUNTER
        }
    );
    let f = format!("2SH3V3GDW7ZNMGYE\n\" HOTP_COUNTER {}\n", MAX_COUNTER + 1);
    assert_eq!(
        GaFile::parse(f.as_bytes()),
        Err(GaFileError::BadValue {
            key: KEY_HOTP_COUNTER
        })
    );

    let f = format!("2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_FAILURES {MAX_FAILURE_COUNT} {MAX_UNIX_TIME}\n");
    assert_eq!(
        p(f.as_bytes()).config().unwrap().failures,
        Some(Failures {
            count: MAX_FAILURE_COUNT,
            last: MAX_UNIX_TIME
        })
    );
    for v in [
        format!("{} 100", MAX_FAILURE_COUNT + 1),
        format!("3 {}", MAX_UNIX_TIME + 1),
    ] {
        let f = format!("2SH3V3GDW7ZNMGYE\n\" PAM_TOTP_FAILURES {v}\n");
        assert_eq!(
            GaFile::parse(f.as_bytes()),
            Err(GaFileError::BadValue { key: KEY_FAILURES }),
            "{v}"
        );
    }

    let host = "h".repeat(255);
    let f = format!("2SH3V3GDW7ZNMGYE\n\" LAST1 {host} 7\n\" LAST2 {host}x 7\n");
    let grace = p(f.as_bytes()).config().unwrap().grace;
    assert_eq!(
        grace,
        [GraceEntry {
            slot: 1,
            host,
            when: 7
        }]
    );
}

/// A scratch line is read like `strtol` up to 18 digits, so a zero-padded code is the
/// code; a longer line ends the scratch list (no generator writes one).
#[test]
fn scratch_lines_hold_at_most_18_digits() {
    let f = p(b"2SH3V3GDW7ZNMGYE\n000000000011111111\n0000000000022222222\n33333333\n");
    assert_eq!(*f.scratch_codes(), [11111111]);
}

/// A secret of `MAX_SECRET_BYTES` is read; one byte more is refused, in both
/// the reader and the enrolment writer.
#[test]
fn secret_length_bound() {
    for (len, ok) in [(MAX_SECRET_BYTES, true), (MAX_SECRET_BYTES + 1, false)] {
        let secret = vec![0x5a; len];
        let file = format!("{}\n\" TOTP_AUTH\n", crate::base32::encode(&secret));
        let got = GaFile::parse(file.as_bytes());
        if ok {
            assert_eq!(got.unwrap().secret().unwrap().as_bytes(), &secret[..]);
        } else {
            assert_eq!(got, Err(GaFileError::SecretTooLong));
        }
        let enrol = GaFile::new_enrollment(&Secret::new(secret), &EnrollSettings::default());
        assert_eq!(enrol.is_ok(), ok, "{len}");
    }
}

/// A CR is accepted only as the first half of a CRLF, wherever it is.
#[test]
fn a_bare_carriage_return_is_refused() {
    assert!(GaFile::parse(b"2SH3V3GDW7ZNMGYE\r\n\" TOTP_AUTH\r\n").is_ok());
    for bad in [
        &b"2SH3V3GDW7ZNMGYE\r\" TOTP_AUTH\n"[..],
        b"2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\r",
        b"\r2SH3V3GDW7ZNMGYE\n",
        b"2SH3V3GDW7ZNMGYE\n\r\r\n",
    ] {
        assert_eq!(
            GaFile::parse(bad),
            Err(GaFileError::BareCarriageReturn),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// GA's edges: an attempt exactly `interval` old still counts, exactly `attempts`
/// attempts are not yet too many, and an entry at `now` is not in the future.
#[test]
fn rate_limit_update_edges() {
    let rl = |ts: &[u64]| RateLimit {
        attempts: 3,
        interval_secs: 30,
        timestamps: ts.to_vec(),
    };
    assert_eq!(
        rate_limit_update(&rl(&[299_970, 299_990]), 300_000),
        (rl(&[299_970, 299_990, 300_000]), false)
    );
    assert_eq!(
        rate_limit_update(&rl(&[299_969, 299_990]), 300_000),
        (rl(&[299_990, 300_000]), false)
    );
    assert_eq!(
        rate_limit_update(&rl(&[300_000, 300_000, 300_000]), 300_000),
        (rl(&[300_000, 300_000, 300_000]), true)
    );
    assert_eq!(
        rate_limit_update(&rl(&[300_000, 300_001]), 300_000),
        (rl(&[300_000, 300_000]), false)
    );
    // Early in the epoch the interval reaches before 0.
    assert_eq!(
        rate_limit_update(&rl(&[0, 5]), 10),
        (rl(&[0, 5, 10]), false)
    );
    assert_eq!(
        rate_limit_value(&rl(&[7, 8])),
        "3 30 7 8",
        "GA's layout: attempts, interval, then each kept time"
    );
}

fn arb_file() -> impl Strategy<Value = Vec<u8>> {
    let secret = prop::sample::select(vec![
        "2SH3V3GDW7ZNMGYE",
        "2sh3 v3gd-w7zn mgye",
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    ]);
    let line = prop_oneof![
        Just("\" TOTP_AUTH".to_string()),
        (1u64..1000).prop_map(|c| format!("\" HOTP_COUNTER {c}")),
        (1u32..=100).prop_map(|w| format!("\" WINDOW_SIZE {w}")),
        (1u32..=60).prop_map(|s| format!("\" STEP_SIZE {s}")),
        prop::collection::vec(0u64..100_000, 0..4).prop_map(|v| {
            let s: Vec<String> = v.iter().map(u64::to_string).collect();
            format!("\" DISALLOW_REUSE {}", s.join(" "))
        }),
        (
            1u32..=100,
            1u32..=3600,
            prop::collection::vec(0u64..2_000_000_000, 0..4)
        )
            .prop_map(|(n, m, ts)| {
                let mut s = format!("\" RATE_LIMIT {n} {m}");
                for t in ts {
                    s.push_str(&format!(" {t}"));
                }
                s
            }),
        (-1500i64..1500).prop_map(|s| format!("\" TIME_SKEW {s}")),
        (0u64..100_000_000).prop_map(|s| format!("\" PAM_TOTP_LAST_STEP {s}")),
        (0u32..1000, 0u64..2_000_000_000)
            .prop_map(|(n, t)| format!("\" PAM_TOTP_FAILURES {n} {t}")),
        (0u8..10, 0u64..2_000_000_000).prop_map(|(i, t)| format!("\" LAST{i} 10.0.0.{i} {t}")),
        (10_000_000u32..=99_999_999).prop_map(|c| c.to_string()),
        Just("\" X_UNKNOWN_KEY 1 2 3".to_string()),
        Just(String::new()),
    ];
    let eol = prop::sample::select(vec!["\n", "\r\n"]);
    (
        secret,
        prop::collection::vec((line, eol), 0..12),
        any::<bool>(),
    )
        .prop_map(|(s, lines, trailing)| {
            let mut out = format!("{s}\n");
            for (l, e) in lines {
                out.push_str(&l);
                out.push_str(e);
            }
            if !trailing && out.ends_with('\n') {
                out.pop();
                if out.ends_with('\r') {
                    out.pop();
                }
            }
            out.into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = GaFile::parse(&bytes) {
            prop_assert_eq!(f.as_bytes(), &bytes[..]);
            let _ = f.scratch_codes();
        }
    }

    #[test]
    fn random_lines_after_a_secret_never_panic(tail in prop::collection::vec(prop::sample::select(b"\" \r\n\t0123456789ABLAST_TOTP-+x".to_vec()), 0..300)) {
        let mut bytes = b"2SH3V3GDW7ZNMGYE\n".to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(mut f) = GaFile::parse(&bytes) {
            prop_assert_eq!(f.as_bytes(), &bytes[..]);
            let _ = f.set("PAM_TOTP_LAST_STEP", "5");
            let _ = GaFile::parse(f.as_bytes());
        }
    }

    #[test]
    fn generated_files_round_trip(bytes in arb_file()) {
        let f = GaFile::parse(&bytes).unwrap();
        prop_assert_eq!(f.as_bytes(), &bytes[..]);
        let again = GaFile::parse(&f.to_bytes()).unwrap();
        prop_assert_eq!(&again, &f);
        prop_assert_eq!(again.config().unwrap(), f.config().unwrap());
    }

    #[test]
    fn edits_keep_the_file_valid_and_other_lines_intact(bytes in arb_file(), step in 0u64..1_000_000, n in 0u32..100) {
        let mut f = GaFile::parse(&bytes).unwrap();
        let before = f.config().unwrap();
        f.set(KEY_LAST_STEP, &step.to_string()).unwrap();
        f.set(KEY_FAILURES, &format!("{n} 1000")).unwrap();
        let g = GaFile::parse(&f.to_bytes()).unwrap();
        let c = g.config().unwrap();
        prop_assert_eq!(c.last_step, Some(step));
        prop_assert_eq!(c.failures, Some(Failures { count: n, last: 1000 }));
        prop_assert_eq!(c.mode, before.mode);
        prop_assert_eq!(c.window, before.window);
        prop_assert_eq!(c.rate_limit, before.rate_limit);
        prop_assert_eq!(g.scratch_codes(), f.scratch_codes());
    }
}

/// A new file is written into one buffer of its final size (its capacity is its
/// length), its scratch lines digit by digit with no `format!` string: the lines are
/// the zero-padded digits `format!("{c:08}")` gives, from the smallest code to the
/// largest. (That no copy of the secret is left is proven on the tool's memory:
/// `buffers_zeroised.rs::no_copy_of_a_new_secret_survives_an_enrolment`.)
#[test]
fn a_new_enrollment_is_built_in_one_buffer_of_its_size() {
    let secret = Secret::new(vec![0x5a; 20]);
    for scratch_codes in [vec![], vec![10_000_000, 69_560_333, 99_999_999]] {
        for totp in [true, false] {
            let s = EnrollSettings {
                totp,
                disallow_reuse: false,
                step: None,
                window: None,
                rate_limit: None,
                scratch_codes: scratch_codes.clone(),
                ..EnrollSettings::default()
            };
            let f = GaFile::new_enrollment(&secret, &s).expect("new file");
            assert_eq!(f.buf.capacity(), f.buf.len(), "{s:?}");
            let text = String::from_utf8(f.as_bytes().to_vec()).expect("text");
            let codes: Vec<String> = scratch_codes.iter().map(|c| format!("{c:08}")).collect();
            let lines: Vec<&str> = text.lines().skip(2).collect();
            assert_eq!(lines, codes, "{text}");
        }
    }
}
