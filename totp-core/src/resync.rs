//! Resynchronising a phone whose clock drifted: two consecutive codes → `TIME_SKEW`.
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
//! An offset beyond the admin's `max_time_skew` cap is refused rather than clamped:
//! a clamped skew would leave the user locked out while looking fixed. Every
//! position in the range is computed and compared in constant time through
//! [`Code::ct_eq`]; only the final (public) verdict branches.

use std::fmt;

use subtle::Choice;

use crate::code::Code;
use crate::gafile::{
    self, GaFile, GaFileError, KEY_DISALLOW_REUSE, KEY_LAST_STEP, KEY_RESETTING_TIME_SKEW,
    KEY_TIME_SKEW, MAX_COUNTER, Mode,
};
use crate::otp;

/// How far the search reaches either way, in seconds: one day of steps (2880 at
/// 30 s, 86400 at 1 s). A phone further off has a wrong date, not a drift; its
/// owner should fix the clock instead.
pub const SEARCH_SECS: u64 = 86_400;

/// Why no offset was recorded. Messages never contain codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResyncError {
    File(GaFileError),
    /// The file is counter-based (HOTP) or has only scratch codes.
    NotTimeBased,
    /// A code is not exactly the file's number of ASCII digits.
    Malformed {
        digits: usize,
    },
    /// The same code twice: the second must be the app's next code.
    SameCode,
    /// Neither code occurs within the search range.
    NotFound,
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
}

impl fmt::Display for ResyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "bad secret file: {e}"),
            Self::NotTimeBased => {
                f.write_str("the secret file is not time-based (TOTP); nothing to resynchronise")
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
            Self::NotConsecutive => f.write_str(
                "the codes belong to this secret but are not consecutive; type the code the \
                 app shows now, then the very next one",
            ),
            Self::Ambiguous => f.write_str(
                "the two codes fit more than one clock offset; try again with the next two codes",
            ),
            Self::BeyondCap { skew, cap } => write!(
                f,
                "the phone's clock is {} steps off, more than the {cap} steps the module \
                 accepts (its max_time_skew option); set the phone's clock to automatic \
                 time, or ask the administrator to raise max_time_skew",
                skew.unsigned_abs()
            ),
            Self::ClockFault => f.write_str("the system clock is set before 1970"),
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
    /// The replay mark written (`PAM_TOTP_LAST_STEP`).
    pub last_step: u64,
    /// Steps until the phone shows a code above a replay mark that was already
    /// beyond the second code (0 when the next code works at once).
    pub steps_until_usable: u64,
    /// How many steps the offset went down (the old `TIME_SKEW` minus the new one, when
    /// positive). The state store's replay mark, which this file does not show, may
    /// be ahead of the phone's codes by up to this many steps if a code was accepted
    /// with the old offset that recently: they are refused as used until it passes.
    pub lowered_by: u64,
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
    let malformed = ResyncError::Malformed {
        digits: digits.len(),
    };
    let first = Code::parse(first, digits.len()).ok_or(malformed.clone())?;
    let second = Code::parse(second, digits.len()).ok_or(malformed)?;
    if bool::from(first.ct_eq(&second)) {
        return Err(ResyncError::SameCode);
    }
    let secret = file.secret()?;
    let step_secs = cfg.step_secs();
    let now_step = otp::totp_step(now, step_secs).ok_or(ResyncError::ClockFault)?;
    let reach = SEARCH_SECS.div_ceil(step_secs);
    let lo = now_step.saturating_sub(reach);
    let hi = now_step.saturating_add(reach).min(MAX_COUNTER - 1);

    // Every position is computed and compared; nothing branches on a comparison
    // until all of them are known.
    let mut is_first: Vec<Choice> = Vec::new();
    let mut is_second: Vec<Choice> = Vec::new();
    for step in lo..=hi {
        let expected = Code::from_value(otp::hotp(&secret, step, cfg.algorithm, digits), digits);
        is_first.push(expected.ct_eq(&first));
        is_second.push(expected.ct_eq(&second));
    }
    let pairs: Vec<u64> = (0..is_first.len().saturating_sub(1))
        .filter(|&i| bool::from(is_first[i] & is_second[i + 1]))
        .map(|i| lo + i as u64)
        .collect();
    let first_step = match pairs.as_slice() {
        [one] => *one,
        [] => {
            let seen = |v: &[Choice]| v.iter().any(|c| bool::from(*c));
            return Err(if seen(&is_first) || seen(&is_second) {
                ResyncError::NotConsecutive
            } else {
                ResyncError::NotFound
            });
        }
        _ => return Err(ResyncError::Ambiguous),
    };
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

    let mut out = file.clone();
    if skew == 0 {
        out.remove(KEY_TIME_SKEW);
    } else {
        out.set(KEY_TIME_SKEW, &skew.to_string())?;
    }
    out.remove(KEY_RESETTING_TIME_SKEW);
    let last_step = cfg.last_step.map_or(second_step, |l| l.max(second_step));
    out.set(KEY_LAST_STEP, &last_step.to_string())?;
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
        out.set(KEY_DISALLOW_REUSE, &value)?;
    }
    Ok(Resynced {
        file: out,
        skew,
        step_secs,
        last_step,
        steps_until_usable: last_step - second_step,
        lowered_by: u64::try_from(cfg.time_skew.unwrap_or(0).saturating_sub(skew)).unwrap_or(0),
    })
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
        };
        let r = resync(&f, c(t).as_bytes(), c(t + 1).as_bytes(), NOW, 3).expect("found");
        assert_eq!(r.skew, 1);
    }
}
