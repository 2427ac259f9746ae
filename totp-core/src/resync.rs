//! Resynchronising a phone whose clock drifted: two consecutive codes → `TIME_SKEW`;
//! and an HOTP token out of step with its file: two consecutive codes → `HOTP_COUNTER`
//! ([`resync_counter`]).
//!
//! The module never learns a skew by itself (a wide search at login costs thousands
//! of HMACs and lets stale codes in), so a user whose phone clock is off needs a
//! deliberate step: `totp-enroll resync` feeds two consecutive codes from the app
//! to [`resync`], which searches a bounded range of steps around `now`
//! ([`SEARCH_SECS`] either way), accepts exactly one place where the first code is
//! followed by the second, and returns the file with
//!
//! - `TIME_SKEW` set to the phone's offset in steps (the line removed when it is 0,
//!   GA's learning-in-progress `RESETTING_TIME_SKEW` removed as stale),
//! - `PAM_TOTP_LAST_STEP` moved past both codes (never backwards), so the two codes
//!   typed here can never log anyone in,
//! - both steps added to GA's `DISALLOW_REUSE` list when the file has one, so GA
//!   refuses them too.
//!
//! A file near GA's size cap gets the offset (or counter) if its line fits, and the
//! two bookkeeping lines only where they fit too, as a login leaves them
//! ([`Resynced::lines_not_updated`]); an offset whose line does not fit is
//! [`ResyncError::NoRoom`], the file unchanged. "Fits" keeps [`GA_LOGIN_RESERVE`]
//! free below the cap (or the file no larger than it was): GA writes past the cap
//! without a check and then refuses the file, so a resync that fills the file to the
//! byte locks the user out everywhere at GA's next login.
//!
//! An offset beyond the admin's `max_time_skew` cap is refused rather than clamped:
//! a clamped skew would leave the user locked out while looking fixed. Every
//! position in the range is computed and compared in constant time through
//! [`Code::ct_eq`]; only the final (public) verdict branches.

use std::fmt;

use subtle::Choice;

use crate::code::Code;
use crate::gafile::{
    self, GaFile, GaFileError, KEY_DISALLOW_REUSE, KEY_HOTP_COUNTER, KEY_LAST_STEP,
    KEY_RESETTING_TIME_SKEW, KEY_TIME_SKEW, MAX_COUNTER, Mode,
};
use crate::otp;

/// The bytes one GA login may add to a secret file, which a resync leaves free below
/// [`gafile::MAX_FILE_LEN`] when it makes the file larger: GA appends a
/// `DISALLOW_REUSE` step (12) and a `RATE_LIMIT` time (11), may write a
/// `RESETTING_TIME_SKEW` line (88) and a `LASTn` line with a 255-byte host (275), and
/// checks the size only when it reads, so a file it writes past the cap is refused
/// from then on, by GA and by the module alike. Rounded up.
pub const GA_LOGIN_RESERVE: usize = 512;

/// How far the search reaches either way, in seconds: one day of steps (2880 at
/// 30 s, 86400 at 1 s). A phone further off has a wrong date, not a drift; its
/// owner should fix the clock instead.
pub const SEARCH_SECS: u64 = 86_400;

/// How far an HOTP search reaches either way from the file's counter. Ahead: a
/// token pressed (or a YubiKey touched) this many times without a login. Behind:
/// the file's counter pushed past the token by failed attempts made without a
/// press (a code typed twice, a typo retyped), which GA's rule of moving on after
/// each failure never undoes.
pub const COUNTER_REACH: u64 = 10_000;

/// Why no offset was recorded. Messages never contain codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResyncError {
    File(GaFileError),
    /// The file is counter-based (HOTP) or has only scratch codes.
    NotTimeBased,
    /// The file is time-based (TOTP) or has only scratch codes.
    NotCounterBased,
    /// A code is not exactly the file's number of ASCII digits.
    Malformed {
        digits: usize,
    },
    /// The same code twice: the second must be the app's next code.
    SameCode,
    /// Neither code occurs within the search range.
    NotFound,
    /// Neither code occurs within [`COUNTER_REACH`] of the file's HOTP counter.
    CounterNotFound,
    /// Both codes occur, but never the first directly followed by the second.
    NotConsecutive,
    /// The pair occurs at more than one offset (a coincidence; try two other codes).
    Ambiguous,
    /// The offset is beyond the admin cap, in steps either way.
    BeyondCap {
        skew: i64,
        cap: u32,
    },
    /// The clock is before 1970.
    ClockFault,
    /// The line the resync is for (`TIME_SKEW`, `HOTP_COUNTER`) would take the file
    /// past [`gafile::MAX_FILE_LEN`], which GA and the module refuse to read.
    NoRoom {
        key: &'static str,
    },
}

impl fmt::Display for ResyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "bad secret file: {e}"),
            Self::NotTimeBased => {
                f.write_str("the secret file is not time-based (TOTP); nothing to resynchronise")
            }
            Self::NotCounterBased => {
                f.write_str("the secret file is not counter-based (HOTP); nothing to resynchronise")
            }
            Self::Malformed { digits } => write!(f, "each code must be exactly {digits} digits"),
            Self::SameCode => f.write_str(
                "the two codes are the same; wait until the app shows the next code and \
                 type that one second",
            ),
            Self::NotFound => f.write_str(
                "neither code belongs to this secret within one day of this machine's clock \
                 (wrong account in the app, or the phone's date is wrong)",
            ),
            Self::CounterNotFound => write!(
                f,
                "neither code belongs to this secret within {COUNTER_REACH} counters of the \
                 file's HOTP_COUNTER (wrong token, or a token pressed that many times: \
                 re-enroll it)"
            ),
            Self::NotConsecutive => f.write_str(
                "the codes belong to this secret but are not consecutive; type the code the \
                 app (or token) shows now, then the very next one",
            ),
            Self::Ambiguous => f.write_str(
                "the two codes fit more than one place (clock offset or counter); try again with \
                 the next two codes",
            ),
            Self::BeyondCap { skew, cap } => write!(
                f,
                "the phone's clock is {} steps off, more than the {cap} steps the module \
                 accepts (its max_time_skew option); set the phone's clock to automatic \
                 time, or ask the administrator to raise max_time_skew",
                skew.unsigned_abs()
            ),
            Self::ClockFault => f.write_str("the system clock is set before 1970"),
            Self::NoRoom { key } => write!(
                f,
                "the secret file has no room for its {key} line: written, the file would \
                 come within {GA_LOGIN_RESERVE} bytes of the {} bytes GA and the module \
                 read at most, and GA's next login could take it past them (both then \
                 refuse it); nothing was changed. Make room in the file (remove what is \
                 not GA's or pam_totp's), then run resync again",
                gafile::MAX_FILE_LEN
            ),
        }
    }
}

impl std::error::Error for ResyncError {}

impl From<GaFileError> for ResyncError {
    fn from(e: GaFileError) -> Self {
        Self::File(e)
    }
}

/// A successful resynchronisation.
#[derive(Clone, Debug)]
pub struct Resynced {
    /// The file to write.
    pub file: GaFile,
    /// Phone step minus this machine's step (positive: the phone is ahead).
    pub skew: i64,
    pub step_secs: u64,
    /// The replay mark (`PAM_TOTP_LAST_STEP`), written unless `lines_not_updated`
    /// names it.
    pub last_step: u64,
    /// Steps until the phone shows a code above a replay mark that was already
    /// beyond the second code (0 when the next code works at once).
    pub steps_until_usable: u64,
    /// How many steps the offset went down (the old `TIME_SKEW` minus the new one, when
    /// positive). The state store's replay mark, which this file does not show, may
    /// be ahead of the phone's codes by up to this many steps if a code was accepted
    /// with the old offset that recently: they are refused as used until it passes.
    pub lowered_by: u64,
    /// Bookkeeping lines (`PAM_TOTP_LAST_STEP`, `DISALLOW_REUSE`) left as they were:
    /// updated, the file would outgrow [`gafile::MAX_FILE_LEN`]. A login leaves them so
    /// too (its use kept in the state store); here the two codes typed are then not
    /// marked used in the file.
    pub lines_not_updated: Vec<&'static str>,
}

/// The largest file a tool's rewrite of a file of `original_len` bytes may write (a
/// resync, new scratch codes): [`GA_LOGIN_RESERVE`] below the cap, or the size the file
/// already had (GA's logins were working with that).
pub fn rewrite_limit(original_len: usize) -> usize {
    original_len.max(gafile::MAX_FILE_LEN - GA_LOGIN_RESERVE)
}

/// `file.set(key, value)` if the file stays within `limit` bytes; `Ok(false)`, the
/// file unchanged, if not.
fn set_if_room(
    file: &mut GaFile,
    key: &'static str,
    value: &str,
    limit: usize,
) -> Result<bool, ResyncError> {
    let mut next = file.clone();
    match next.set(key, value) {
        Err(GaFileError::TooLarge) => return Ok(false),
        other => other?,
    }
    if next.as_bytes().len() > limit {
        return Ok(false);
    }
    *file = next;
    Ok(true)
}

/// `file.set(key, value)` where the resync cannot do without the line.
fn set_essential(
    file: &mut GaFile,
    key: &'static str,
    value: &str,
    limit: usize,
) -> Result<(), ResyncError> {
    if set_if_room(file, key, value, limit)? {
        Ok(())
    } else {
        Err(ResyncError::NoRoom { key })
    }
}

/// `file.set(key, value)`, or the line left as it is (named in `skipped`) where the
/// file would outgrow `limit`: the module's rule for its own bookkeeping
/// (`verify::decide`), so a file a user still logs in with can be resynchronised.
fn set_within_cap(
    file: &mut GaFile,
    key: &'static str,
    value: &str,
    limit: usize,
    skipped: &mut Vec<&'static str>,
) -> Result<(), ResyncError> {
    if !set_if_room(file, key, value, limit)? {
        skipped.push(key);
    }
    Ok(())
}

/// Finds the phone's offset from `first` and `second` (typed in that order, the
/// second being the app's next code) at unix time `now`, and returns the updated
/// file. `max_skew` is the module's `max_time_skew` cap.
pub fn resync(
    file: &GaFile,
    first: &[u8],
    second: &[u8],
    now: i64,
    max_skew: u32,
) -> Result<Resynced, ResyncError> {
    let cfg = file.config()?;
    if cfg.mode != Mode::Totp {
        return Err(ResyncError::NotTimeBased);
    }
    let digits = cfg.digits;
    let (first, second) = parse_codes(first, second, digits)?;
    let secret = file.secret()?;
    let step_secs = cfg.step_secs();
    let now_step = otp::totp_step(now, step_secs).ok_or(ResyncError::ClockFault)?;
    let reach = SEARCH_SECS.div_ceil(step_secs);
    let lo = now_step.saturating_sub(reach);
    let hi = now_step.saturating_add(reach).min(MAX_COUNTER - 1);

    let first_step = find_pair(&secret, &cfg, &first, &second, lo..=hi)?;
    let second_step = first_step + 1;
    // The phone shows `second` now (or a moment ago): its clock is at that step.
    let skew = i64::try_from(i128::from(second_step) - i128::from(now_step))
        .map_err(|_| ResyncError::ClockFault)?;
    if skew.unsigned_abs() > u64::from(max_skew) {
        return Err(ResyncError::BeyondCap {
            skew,
            cap: max_skew,
        });
    }

    let limit = rewrite_limit(file.as_bytes().len());
    let mut out = file.clone();
    // Removals first: the room they free may be what the offset's line needs.
    out.remove(KEY_RESETTING_TIME_SKEW);
    if skew == 0 {
        out.remove(KEY_TIME_SKEW);
    } else {
        set_essential(&mut out, KEY_TIME_SKEW, &skew.to_string(), limit)?;
    }
    let mut lines_not_updated = Vec::new();
    let last_step = cfg.last_step.map_or(second_step, |l| l.max(second_step));
    set_within_cap(
        &mut out,
        KEY_LAST_STEP,
        &last_step.to_string(),
        limit,
        &mut lines_not_updated,
    )?;
    if let Some(value) = file.get(KEY_DISALLOW_REUSE) {
        let window = u64::from(cfg.window_or_default());
        let mut value = value.to_vec();
        for step in [first_step, second_step] {
            if let Some(v) = gafile::disallow_reuse_update(&value, step, window)? {
                value = v.into_bytes();
            }
        }
        let value = String::from_utf8(value).map_err(|_| GaFileError::BadValue {
            key: KEY_DISALLOW_REUSE,
        })?;
        set_within_cap(
            &mut out,
            KEY_DISALLOW_REUSE,
            &value,
            limit,
            &mut lines_not_updated,
        )?;
    }
    Ok(Resynced {
        file: out,
        skew,
        step_secs,
        last_step,
        steps_until_usable: last_step - second_step,
        lowered_by: u64::try_from(cfg.time_skew.unwrap_or(0).saturating_sub(skew)).unwrap_or(0),
        lines_not_updated,
    })
}

/// A successful HOTP resynchronisation.
#[derive(Clone, Debug)]
pub struct CounterResynced {
    /// The file to write.
    pub file: GaFile,
    /// The counter of the second code; `HOTP_COUNTER` now names the one after it.
    pub second_counter: u64,
    /// The file's `HOTP_COUNTER` before.
    pub old_counter: u64,
}

/// Finds where an HOTP token is from `first` and `second` (two consecutive presses)
/// within [`COUNTER_REACH`] of the file's counter, either way, and sets
/// `HOTP_COUNTER` to the counter after `second`, so both codes are used up and the
/// token's next press is the first code of the login window. The counter may go
/// down (the file overtook the token); nothing used is reopened by that, because
/// every counter the token has shown is at most `second`'s, and the state store's
/// high-water mark still refuses every counter a login accepted.
pub fn resync_counter(
    file: &GaFile,
    first: &[u8],
    second: &[u8],
) -> Result<CounterResynced, ResyncError> {
    let cfg = file.config()?;
    let Mode::Hotp { counter } = cfg.mode else {
        return Err(ResyncError::NotCounterBased);
    };
    let (first, second) = parse_codes(first, second, cfg.digits)?;
    let secret = file.secret()?;
    let lo = counter.saturating_sub(COUNTER_REACH);
    let hi = counter.saturating_add(COUNTER_REACH).min(MAX_COUNTER - 2);
    let first_counter =
        find_pair(&secret, &cfg, &first, &second, lo..=hi).map_err(|e| match e {
            ResyncError::NotFound => ResyncError::CounterNotFound,
            e => e,
        })?;
    let second_counter = first_counter + 1;
    let mut out = file.clone();
    set_essential(
        &mut out,
        KEY_HOTP_COUNTER,
        &(second_counter + 1).to_string(),
        rewrite_limit(file.as_bytes().len()),
    )?;
    Ok(CounterResynced {
        file: out,
        second_counter,
        old_counter: counter,
    })
}

/// Both codes as the file's number of digits, and not the same code twice.
fn parse_codes(
    first: &[u8],
    second: &[u8],
    digits: otp::Digits,
) -> Result<(Code, Code), ResyncError> {
    let malformed = ResyncError::Malformed {
        digits: digits.len(),
    };
    let first = Code::parse(first, digits.len()).ok_or(malformed.clone())?;
    let second = Code::parse(second, digits.len()).ok_or(malformed)?;
    if bool::from(first.ct_eq(&second)) {
        return Err(ResyncError::SameCode);
    }
    Ok((first, second))
}

/// The one counter in `range` whose code is `first` and whose successor's is
/// `second`. Every position is computed and compared; nothing branches on a
/// comparison until all of them are known.
fn find_pair(
    secret: &crate::secret::Secret,
    cfg: &gafile::Config,
    first: &Code,
    second: &Code,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ResyncError> {
    let lo = *range.start();
    let mut is_first: Vec<Choice> = Vec::new();
    let mut is_second: Vec<Choice> = Vec::new();
    for counter in range {
        let expected = Code::from_value(
            otp::hotp(secret, counter, cfg.algorithm, cfg.digits),
            cfg.digits,
        );
        is_first.push(expected.ct_eq(first));
        is_second.push(expected.ct_eq(second));
    }
    let pairs: Vec<u64> = (0..is_first.len().saturating_sub(1))
        .filter(|&i| bool::from(is_first[i] & is_second[i + 1]))
        .map(|i| lo + i as u64)
        .collect();
    match pairs.as_slice() {
        [one] => Ok(*one),
        [] => {
            let seen = |v: &[Choice]| v.iter().any(|c| bool::from(*c));
            Err(if seen(&is_first) || seen(&is_second) {
                ResyncError::NotConsecutive
            } else {
                ResyncError::NotFound
            })
        }
        _ => Err(ResyncError::Ambiguous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::{Algorithm, Digits};
    use crate::secret::Secret;

    const KEY: &str = "2SH3V3GDW7ZNMGYE";
    /// A step-aligned clock: step 56_666_666 at 30 s.
    const NOW: i64 = 1_699_999_980;

    fn code_at(step: u64) -> String {
        let bytes = crate::base32::decode_lenient(KEY.as_bytes()).expect("key");
        otp::format_code(
            otp::hotp(&Secret::new(bytes), step, Algorithm::Sha1, Digits::SIX),
            Digits::SIX,
        )
        .to_string()
    }

    fn file(extra: &str) -> GaFile {
        GaFile::parse(format!("{KEY}\n{extra}\" TOTP_AUTH\n").as_bytes()).expect("file")
    }

    fn run(f: &GaFile, offset: i64, cap: u32) -> Result<Resynced, ResyncError> {
        let t = (NOW as u64 / 30) as i64;
        let s1 = (t + offset - 1) as u64;
        resync(
            f,
            code_at(s1).as_bytes(),
            code_at(s1 + 1).as_bytes(),
            NOW,
            cap,
        )
    }

    /// `extra` padded with an unknown line so the whole file is `len` bytes.
    fn padded(extra: &str, len: usize) -> GaFile {
        let base = format!("{KEY}\n{extra}\" TOTP_AUTH\n\" X_PAD \n");
        let pad = "a".repeat(len - base.len());
        let text = format!("{KEY}\n{extra}\" TOTP_AUTH\n\" X_PAD {pad}\n");
        assert_eq!(text.len(), len);
        GaFile::parse(text.as_bytes()).expect("file")
    }

    /// Near the size cap: the offset's line is written where it fits, leaving GA's
    /// login its reserve, and the bookkeeping lines left as they are (a login's rule);
    /// an offset with no room is `NoRoom`; control: with room, every line is written.
    #[test]
    fn near_the_size_cap_the_offset_comes_first() {
        let reuse = "\" DISALLOW_REUSE\n";
        let skew_line = "\" TIME_SKEW -20\n".len();
        let limit = gafile::MAX_FILE_LEN - GA_LOGIN_RESERVE;
        let f = padded(reuse, limit - skew_line);
        let done = run(&f, -20, 30).expect("resynced");
        assert_eq!(done.file.config().expect("cfg").time_skew, Some(-20));
        assert_eq!(done.file.as_bytes().len(), limit);
        assert_eq!(done.lines_not_updated, [KEY_LAST_STEP, KEY_DISALLOW_REUSE]);
        assert_eq!(done.file.get(KEY_LAST_STEP), None);

        let f = padded(reuse, limit - skew_line + 1);
        assert_eq!(
            run(&f, -20, 30).map(|d| d.skew),
            Err(ResyncError::NoRoom { key: KEY_TIME_SKEW })
        );
        // A stale RESETTING_TIME_SKEW line is removed first: its room is the offset's,
        // and a file no larger than before keeps what GA's logins had.
        let f = padded(
            "\" RESETTING_TIME_SKEW 1234+5 1235+5\n",
            gafile::MAX_FILE_LEN - 1,
        );
        let done = run(&f, -20, 30).expect("resynced");
        assert_eq!(done.skew, -20);
        assert!(done.file.as_bytes().len() < gafile::MAX_FILE_LEN - 1);

        let f = padded(reuse, limit - 1000);
        let done = run(&f, -20, 30).expect("resynced");
        assert!(done.lines_not_updated.is_empty());
        assert!(done.file.get(KEY_LAST_STEP).is_some());
    }

    /// A file filled to the byte is refused by GA once GA's next login appends to it
    /// (GA writes without checking the size): a resync never takes a file into GA's
    /// reserve, though the line would fit under the cap itself. Control: the same
    /// file with the reserve free is resynchronised.
    #[test]
    fn a_resync_leaves_ga_login_its_reserve_below_the_cap() {
        let reuse = "\" DISALLOW_REUSE\n";
        let skew_line = "\" TIME_SKEW -20\n".len();
        for len in [
            gafile::MAX_FILE_LEN - skew_line,
            gafile::MAX_FILE_LEN - GA_LOGIN_RESERVE,
        ] {
            assert_eq!(
                run(&padded(reuse, len), -20, 30).map(|d| d.skew),
                Err(ResyncError::NoRoom { key: KEY_TIME_SKEW }),
                "{len}"
            );
        }
        let f = padded(reuse, gafile::MAX_FILE_LEN - GA_LOGIN_RESERVE - skew_line);
        assert_eq!(run(&f, -20, 30).map(|d| d.skew), Ok(-20));
    }

    #[test]
    fn finds_the_offset_and_records_skew_and_replay_mark() {
        let now_step = NOW as u64 / 30;
        for offset in [-40i64, -3, -1, 0, 1, 2, 1500] {
            let r = run(&file(""), offset, 1500).expect("found");
            assert_eq!(r.skew, offset);
            let cfg = r.file.config().expect("valid");
            assert_eq!(cfg.time_skew, (offset != 0).then_some(offset));
            assert_eq!(cfg.last_step, Some((now_step as i64 + offset) as u64));
            assert_eq!(r.steps_until_usable, 0);
        }
    }

    #[test]
    fn the_search_stops_after_one_day() {
        // 2880 steps of 30 s = one day; the pair ending one step further is not found.
        assert!(run(&file(""), 2880, 5000).is_ok());
        assert_eq!(
            run(&file(""), 2882, 5000).unwrap_err(),
            ResyncError::NotFound
        );
    }

    #[test]
    fn an_offset_beyond_the_cap_is_refused_not_clamped() {
        assert_eq!(
            run(&file(""), -4, 3).unwrap_err(),
            ResyncError::BeyondCap { skew: -4, cap: 3 }
        );
        assert!(run(&file(""), -3, 3).is_ok());
    }

    #[test]
    fn non_consecutive_same_and_malformed_codes_are_refused() {
        let t = NOW as u64 / 30;
        let r = |a: &str, b: &str| resync(&file(""), a.as_bytes(), b.as_bytes(), NOW, 100);
        // Reversed order and a gap of one step.
        assert_eq!(
            r(&code_at(t + 1), &code_at(t)).unwrap_err(),
            ResyncError::NotConsecutive
        );
        assert_eq!(
            r(&code_at(t), &code_at(t + 2)).unwrap_err(),
            ResyncError::NotConsecutive
        );
        assert_eq!(
            r(&code_at(t), &code_at(t)).unwrap_err(),
            ResyncError::SameCode
        );
        assert!(matches!(
            r("12345", &code_at(t)).unwrap_err(),
            ResyncError::Malformed { digits: 6 }
        ));
        assert!(matches!(
            r(" 12345", &code_at(t)).unwrap_err(),
            ResyncError::Malformed { .. }
        ));
    }

    #[test]
    fn codes_of_another_secret_are_not_found() {
        let other = GaFile::parse(b"JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n").expect("file");
        let t = NOW as u64 / 30;
        let e = resync(
            &other,
            code_at(t).as_bytes(),
            code_at(t + 1).as_bytes(),
            NOW,
            100,
        );
        // Either no match at all or a lone coincidental match of one code.
        assert!(matches!(
            e.unwrap_err(),
            ResyncError::NotFound | ResyncError::NotConsecutive
        ));
    }

    #[test]
    fn the_replay_mark_never_moves_back_and_the_wait_is_reported() {
        let now_step = NOW as u64 / 30;
        let ahead = now_step + 10;
        let f = file(&format!("\" PAM_TOTP_LAST_STEP {ahead}\n"));
        let r = run(&f, -2, 3).expect("found");
        assert_eq!(r.last_step, ahead);
        assert_eq!(r.steps_until_usable, 12);
        assert_eq!(r.file.config().expect("valid").last_step, Some(ahead));
    }

    #[test]
    fn ga_lines_are_updated_for_ga_too() {
        let t = NOW as u64 / 30;
        let f = file("\" DISALLOW_REUSE\n\" RESETTING_TIME_SKEW 100+1\n\" TIME_SKEW -900\n");
        let r = run(&f, 2, 3).expect("found");
        let cfg = r.file.config().expect("valid");
        assert_eq!(cfg.disallow_reuse, Some(vec![t + 1, t + 2]));
        assert!(!cfg.resetting_time_skew);
        assert_eq!(cfg.time_skew, Some(2));
        let r = run(&f, 0, 3).expect("found");
        assert_eq!(r.file.config().expect("valid").time_skew, None);
    }

    #[test]
    fn counter_based_files_are_refused() {
        let f = GaFile::parse(format!("{KEY}\n\" HOTP_COUNTER 1\n").as_bytes()).expect("file");
        assert_eq!(
            resync(&f, b"123456", b"654321", NOW, 3).unwrap_err(),
            ResyncError::NotTimeBased
        );
    }

    #[test]
    fn eight_digit_files_take_eight_digit_codes() {
        let f = file("\" PAM_TOTP_DIGITS 8\n");
        let bytes = crate::base32::decode_lenient(KEY.as_bytes()).expect("key");
        let s = Secret::new(bytes);
        let t = NOW as u64 / 30;
        let c = |step| {
            otp::format_code(
                otp::hotp(&s, step, Algorithm::Sha1, Digits::EIGHT),
                Digits::EIGHT,
            )
            .to_string()
        };
        let r = resync(&f, c(t).as_bytes(), c(t + 1).as_bytes(), NOW, 3).expect("found");
        assert_eq!(r.skew, 1);
    }

    fn hotp_file(counter: u64) -> GaFile {
        GaFile::parse(format!("{KEY}\n\" HOTP_COUNTER {counter}\n").as_bytes()).expect("file")
    }

    #[test]
    fn a_counter_pair_ahead_or_behind_sets_the_counter_after_it() {
        for (file_counter, token) in [(1u64, 1u64), (1, 500), (50, 20), (1, COUNTER_REACH)] {
            let r = resync_counter(
                &hotp_file(file_counter),
                code_at(token).as_bytes(),
                code_at(token + 1).as_bytes(),
            )
            .expect("found");
            assert_eq!(r.second_counter, token + 1);
            assert_eq!(r.old_counter, file_counter);
            assert_eq!(
                r.file.config().expect("valid").mode,
                Mode::Hotp { counter: token + 2 }
            );
        }
    }

    /// An HOTP file near the size cap: the counter's line is the resync itself, so
    /// where its longer value would take the file into GA's reserve (and the file
    /// grows) nothing is written and the line is named (totp-enroll(1)). Controls: a
    /// counter of the same length keeps the file's size and is written; the file with
    /// room takes the longer one.
    #[test]
    fn a_counter_without_room_below_the_cap_is_refused_naming_the_line() {
        let limit = gafile::MAX_FILE_LEN - GA_LOGIN_RESERVE;
        let padded_hotp = |len: usize| {
            let base = format!("{KEY}\n\" HOTP_COUNTER 1\n\" X_PAD \n");
            let pad = "a".repeat(len - base.len());
            let text = format!("{KEY}\n\" HOTP_COUNTER 1\n\" X_PAD {pad}\n");
            assert_eq!(text.len(), len);
            GaFile::parse(text.as_bytes()).expect("file")
        };
        let pair = |f: &GaFile, token: u64| {
            resync_counter(f, code_at(token).as_bytes(), code_at(token + 1).as_bytes())
        };
        let full = padded_hotp(limit);
        assert_eq!(
            pair(&full, 500).map(|r| r.second_counter),
            Err(ResyncError::NoRoom {
                key: KEY_HOTP_COUNTER
            })
        );
        let same_length = pair(&full, 5).expect("found");
        assert_eq!(same_length.file.as_bytes().len(), limit);
        assert_eq!(
            same_length.file.config().expect("valid").mode,
            Mode::Hotp { counter: 7 }
        );
        let roomy = pair(&padded_hotp(limit - 100), 500).expect("found");
        assert_eq!(
            roomy.file.config().expect("valid").mode,
            Mode::Hotp { counter: 502 }
        );
    }

    #[test]
    fn a_counter_pair_beyond_the_reach_or_out_of_order_is_refused() {
        let f = hotp_file(1);
        let r = |a: u64, b: u64| {
            resync_counter(&f, code_at(a).as_bytes(), code_at(b).as_bytes()).unwrap_err()
        };
        // Over 10,000 counters one of two 6-digit codes may match somewhere by chance.
        assert!(matches!(
            r(COUNTER_REACH + 2, COUNTER_REACH + 3),
            ResyncError::CounterNotFound | ResyncError::NotConsecutive
        ));
        assert_eq!(r(7, 9), ResyncError::NotConsecutive);
        assert_eq!(r(8, 7), ResyncError::NotConsecutive);
        assert_eq!(
            resync_counter(&f, code_at(3).as_bytes(), code_at(3).as_bytes()).unwrap_err(),
            ResyncError::SameCode
        );
        assert_eq!(
            resync_counter(&file(""), code_at(3).as_bytes(), code_at(4).as_bytes()).unwrap_err(),
            ResyncError::NotCounterBased
        );
    }
}
