//! Codes as typed by the user, and GA's way of splitting an answer.
//!
//! An answer is split GA's way: its last N characters are the OTP candidate and
//! its last 8 the scratch-code candidate; whatever precedes a candidate is the
//! prefix (a password under `forward_pass`). A candidate is kept only if it is
//! exactly the right number of ASCII digits (R11): full-width digits, signs,
//! spaces and wrong lengths never become a [`Code`], so they can only fail.

use std::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::otp::{Digits, format_code};

/// Length of a GA scratch (emergency) code.
pub const SCRATCH_DIGITS: usize = 8;

/// Exactly 6 to 8 ASCII digits, wiped on drop. `Debug` does not show them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Code {
    buf: [u8; 8],
    len: u8,
}

impl Code {
    /// Accepts exactly `len` ASCII digits (6 ≤ `len` ≤ 8) and nothing else.
    pub fn parse(s: &[u8], len: usize) -> Option<Code> {
        if !(6..=8).contains(&len) || s.len() != len || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..len].copy_from_slice(s);
        Some(Code {
            buf,
            len: len as u8,
        })
    }

    /// The code a generator would show for `value`.
    pub fn from_value(value: u32, digits: Digits) -> Code {
        let s = Zeroizing::new(format_code(value, digits));
        let mut buf = [0u8; 8];
        buf[..digits.len()].copy_from_slice(s.as_bytes());
        Code {
            buf,
            len: digits.get(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Numeric value (leading zeros dropped).
    pub fn value(&self) -> u32 {
        self.as_bytes()
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    }

    /// Constant-time equality; lengths are public (they follow from the file).
    pub fn ct_eq(&self, other: &Code) -> Choice {
        if self.len != other.len {
            return Choice::from(0);
        }
        self.as_bytes().ct_eq(other.as_bytes())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code(REDACTED, {} digits)", self.len)
    }
}

/// One way of reading an answer.
#[derive(Clone)]
pub struct Candidate {
    pub code: Code,
    /// `true`: check against the scratch codes only; `false`: against HOTP/TOTP.
    pub scratch: bool,
    /// Text before the code (the password under `forward_pass`); wiped on drop.
    pub prefix: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("code", &self.code)
            .field("scratch", &self.scratch)
            .field("prefix_len", &self.prefix.len())
            .finish()
    }
}

fn split(answer: &[u8], len: usize, allow_prefix: bool, scratch: bool) -> Option<Candidate> {
    let cut = answer.len().checked_sub(len)?;
    let (prefix, tail) = answer.split_at(cut);
    if !prefix.is_empty() && !allow_prefix {
        return None;
    }
    // GA: a scratch code never starts with 0 (values are 10000000..99999999).
    if scratch && tail.first() == Some(&b'0') {
        return None;
    }
    Some(Candidate {
        code: Code::parse(tail, len)?,
        scratch,
        prefix: Zeroizing::new(prefix.to_vec()),
    })
}

/// GA's candidate list for one answer, in the order they are to be tried: the
/// OTP reading (last `otp_digits` characters), then the scratch reading (last 8).
/// When OTPs are 8 digits long the scratch reading comes first, because GA
/// checks scratch codes before OTPs for the same digits.
///
/// `allow_prefix` is `forward_pass`, or an answer taken from `PAM_AUTHTOK`;
/// without it the code must be the whole answer.
pub fn candidates(answer: &[u8], otp_digits: Digits, allow_prefix: bool) -> Vec<Candidate> {
    let otp = split(answer, otp_digits.len(), allow_prefix, false);
    let scratch = split(answer, SCRATCH_DIGITS, allow_prefix, true);
    let ordered = if otp_digits.len() == SCRATCH_DIGITS {
        [scratch, otp]
    } else {
        [otp, scratch]
    };
    ordered.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn summary(c: &[Candidate]) -> Vec<(String, bool, String)> {
        c.iter()
            .map(|c| {
                (
                    String::from_utf8(c.code.as_bytes().to_vec()).unwrap(),
                    c.scratch,
                    String::from_utf8(c.prefix.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn six_digit_answer_is_one_otp_candidate() {
        let c = candidates(b"050548", Digits::SIX, false);
        assert_eq!(summary(&c), [("050548".into(), false, String::new())]);
    }

    #[test]
    fn eight_digit_answer_is_a_scratch_candidate_without_prefix() {
        let c = candidates(b"12345678", Digits::SIX, false);
        assert_eq!(summary(&c), [("12345678".into(), true, String::new())]);
    }

    #[test]
    fn forward_pass_splits_both_ways() {
        let c = candidates(b"pw12345678", Digits::SIX, true);
        assert_eq!(
            summary(&c),
            [
                ("345678".into(), false, "pw12".into()),
                ("12345678".into(), true, "pw".into())
            ]
        );
    }

    #[test]
    fn eight_digit_otps_try_scratch_first() {
        let c = candidates(b"12345678", Digits::EIGHT, false);
        assert_eq!(
            summary(&c),
            [
                ("12345678".into(), true, String::new()),
                ("12345678".into(), false, String::new())
            ]
        );
    }

    #[test]
    fn malformed_answers_give_no_candidates() {
        for bad in [
            &b""[..],
            b"12345",
            b"1234567",
            b"123 456",
            b" 123456",
            b"+123456",
            b"-123456",
            b"12345a",
            "\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}".as_bytes(),
            b"\x08\n\r\x7fINCORRECT",
            b"123456\n",
        ] {
            assert!(candidates(bad, Digits::SIX, false).is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn scratch_codes_never_start_with_zero() {
        assert!(candidates(b"01234567", Digits::SIX, false).is_empty());
    }

    #[test]
    fn code_value_and_debug() {
        let c = Code::parse(b"050548", 6).unwrap();
        assert_eq!(c.value(), 50548);
        assert_eq!(format!("{c:?}"), "Code(REDACTED, 6 digits)");
        assert!(bool::from(c.ct_eq(&Code::from_value(50548, Digits::SIX))));
        assert!(!bool::from(c.ct_eq(&Code::from_value(50549, Digits::SIX))));
        assert!(Code::parse(b"12345", 5).is_none());
    }

    proptest! {
        #[test]
        fn only_ascii_digit_codes_come_out(answer in proptest::collection::vec(any::<u8>(), 0..40),
                                           prefix in any::<bool>(), d in 6u8..=8) {
            let digits = Digits::new(d).unwrap();
            for c in candidates(&answer, digits, prefix) {
                prop_assert!(c.code.as_bytes().iter().all(u8::is_ascii_digit));
                let want = if c.scratch { 8 } else { digits.len() };
                prop_assert_eq!(c.code.len(), want);
                prop_assert!(prefix || c.prefix.is_empty());
                prop_assert!(answer.ends_with(c.code.as_bytes()));
            }
        }
    }
}
