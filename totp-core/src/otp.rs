//! HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! Only the arithmetic lives here; window, replay and throttling rules are in
//! [`crate::verify`]. HMAC comes from the RustCrypto `hmac` crate: hand-rolled
//! HMAC is exactly the kind of code that hides subtle bugs.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::secret::Secret;

/// HMAC hash function of the OTP (RFC 6238 §1.2 allows SHA-1, SHA-256, SHA-512).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// GA's only algorithm and the default everywhere.
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Canonical upper-case name, as written in `PAM_TOTP_ALGORITHM` and otpauth URIs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown algorithm name or an out-of-range digit count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOtpParamError;

impl fmt::Display for ParseOtpParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported OTP parameter")
    }
}

impl std::error::Error for ParseOtpParamError {}

impl FromStr for Algorithm {
    type Err = ParseOtpParamError;

    /// Accepts `SHA1`, `SHA256`, `SHA512`, ASCII case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or(ParseOtpParamError)
    }
}

/// Number of code digits, 6 to 8 (RFC 4226 §5.3 requires at least 6; 10^9 > 2^31
/// makes more than 9 meaningless and nothing in the field uses 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

impl Digits {
    pub const SIX: Digits = Digits(6);
    pub const SEVEN: Digits = Digits(7);
    pub const EIGHT: Digits = Digits(8);

    pub fn new(n: u8) -> Option<Self> {
        (6..=8).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The digit count as a length, for slicing answers.
    #[allow(clippy::len_without_is_empty)] // a digit count is never zero
    pub fn len(self) -> usize {
        usize::from(self.0)
    }

    /// 10^digits.
    pub fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

impl Default for Digits {
    fn default() -> Self {
        Self::SIX
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Digits {
    type Err = ParseOtpParamError;

    /// Exactly one ASCII digit, 6 to 8.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.as_bytes() {
            [d @ b'6'..=b'8'] => Ok(Self(d - b'0')),
            _ => Err(ParseOtpParamError),
        }
    }
}

/// RFC 4226 dynamic truncation of an HMAC value, as a 31-bit integer.
fn truncate(mac: &[u8]) -> u32 {
    // Every supported MAC is at least 20 bytes, so offset + 3 <= 15 + 3 < len.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let b = |i: usize| u32::from(mac.get(offset + i).copied().unwrap_or(0));
    ((b(0) & 0x7f) << 24) | (b(1) << 16) | (b(2) << 8) | b(3)
}

fn mac_truncated<M: Mac + KeyInit>(key: &[u8], msg: &[u8; 8]) -> u32 {
    // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            truncate(&m.finalize().into_bytes())
        }
        Err(_) => 0,
    }
}

/// HOTP value (RFC 4226 §5.3) for `counter`, already reduced modulo 10^digits.
pub fn hotp(secret: &Secret, counter: u64, alg: Algorithm, digits: Digits) -> u32 {
    #[cfg(feature = "test-hmac-count")]
    crate::hmac_count::count_otp();
    let msg = counter.to_be_bytes();
    let key = secret.as_bytes();
    let t = match alg {
        Algorithm::Sha1 => mac_truncated::<Hmac<Sha1>>(key, &msg),
        Algorithm::Sha256 => mac_truncated::<Hmac<Sha256>>(key, &msg),
        Algorithm::Sha512 => mac_truncated::<Hmac<Sha512>>(key, &msg),
    };
    t % digits.modulus()
}

/// TOTP value (RFC 6238 §4) at `unix` seconds, or `None` for a pre-1970 time or a
/// zero step.
pub fn totp(
    secret: &Secret,
    unix: i64,
    step_secs: u64,
    alg: Algorithm,
    digits: Digits,
) -> Option<u32> {
    totp_step(unix, step_secs).map(|t| hotp(secret, t, alg, digits))
}

/// Zero-padded decimal rendering of a code value, in a buffer sized for it (so it never
/// reallocates) and wiped when dropped: a code valid now is a password for its window.
pub fn format_code(value: u32, digits: Digits) -> zeroize::Zeroizing<String> {
    use std::fmt::Write;
    let mut out = zeroize::Zeroizing::new(String::with_capacity(digits.len()));
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{:0width$}",
        value % digits.modulus(),
        width = digits.len()
    );
    out
}

/// RFC 6238 time step `T = floor(unix / step)` with T0 = 0, in 64 bits (§4.2: no
/// 2038 problem). `None` before the epoch (a clock fault) or for a zero step.
pub fn totp_step(unix: i64, step_secs: u64) -> Option<u64> {
    let unix = u64::try_from(unix).ok()?;
    unix.checked_div(step_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret(alg: Algorithm) -> Secret {
        let base = b"1234567890";
        let len = match alg {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        };
        Secret::new(base.iter().copied().cycle().take(len).collect())
    }

    fn ga_secret() -> Secret {
        crate::base32::decode_lenient(b"2SH3V3GDW7ZNMGYE")
            .map(Secret::new)
            .unwrap()
    }

    fn hotp6(counter: u64) -> String {
        let s = rfc_secret(Algorithm::Sha1);
        format_code(hotp(&s, counter, Algorithm::Sha1, Digits::SIX), Digits::SIX).to_string()
    }

    macro_rules! rfc4226 {
        ($($name:ident: $c:expr => $code:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(hotp6($c), $code);
            }
        )*};
    }

    rfc4226! {
        rfc4226_counter_0: 0 => "755224";
        rfc4226_counter_1: 1 => "287082";
        rfc4226_counter_2: 2 => "359152";
        rfc4226_counter_3: 3 => "969429";
        rfc4226_counter_4: 4 => "338314";
        rfc4226_counter_5: 5 => "254676";
        rfc4226_counter_6: 6 => "287922";
        rfc4226_counter_7: 7 => "162583";
        rfc4226_counter_8: 8 => "399871";
        rfc4226_counter_9: 9 => "520489";
    }

    fn totp8(alg: Algorithm, t: i64) -> String {
        let v = totp(&rfc_secret(alg), t, 30, alg, Digits::EIGHT).unwrap();
        format_code(v, Digits::EIGHT).to_string()
    }

    macro_rules! rfc6238 {
        ($($name:ident: $alg:ident, $t:expr => $code:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(totp8(Algorithm::$alg, $t), $code);
            }
        )*};
    }

    rfc6238! {
        rfc6238_sha1_59: Sha1, 59 => "94287082";
        rfc6238_sha256_59: Sha256, 59 => "46119246";
        rfc6238_sha512_59: Sha512, 59 => "90693936";
        rfc6238_sha1_1111111109: Sha1, 1_111_111_109 => "07081804";
        rfc6238_sha256_1111111109: Sha256, 1_111_111_109 => "68084774";
        rfc6238_sha512_1111111109: Sha512, 1_111_111_109 => "25091201";
        rfc6238_sha1_1111111111: Sha1, 1_111_111_111 => "14050471";
        rfc6238_sha256_1111111111: Sha256, 1_111_111_111 => "67062674";
        rfc6238_sha512_1111111111: Sha512, 1_111_111_111 => "99943326";
        rfc6238_sha1_1234567890: Sha1, 1_234_567_890 => "89005924";
        rfc6238_sha256_1234567890: Sha256, 1_234_567_890 => "91819424";
        rfc6238_sha512_1234567890: Sha512, 1_234_567_890 => "93441116";
        rfc6238_sha1_2000000000: Sha1, 2_000_000_000 => "69279037";
        rfc6238_sha256_2000000000: Sha256, 2_000_000_000 => "90698825";
        rfc6238_sha512_2000000000: Sha512, 2_000_000_000 => "38618901";
        rfc6238_sha1_20000000000: Sha1, 20_000_000_000 => "65353130";
        rfc6238_sha256_20000000000: Sha256, 20_000_000_000 => "77737706";
        rfc6238_sha512_20000000000: Sha512, 20_000_000_000 => "47863826";
    }

    fn ga_hotp(counter: u64) -> String {
        format_code(
            hotp(&ga_secret(), counter, Algorithm::Sha1, Digits::SIX),
            Digits::SIX,
        )
        .to_string()
    }

    macro_rules! ga_vectors {
        ($($name:ident: $c:expr => $code:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(ga_hotp($c), $code);
            }
        )*};
    }

    ga_vectors! {
        ga_counter_9996: 9996 => "316007";
        ga_counter_9997: 9997 => "719291";
        ga_counter_9998: 9998 => "374875";
        ga_counter_9999: 9999 => "692344";
        ga_counter_10000: 10000 => "050548";
        ga_counter_10001: 10001 => "478726";
        ga_counter_10002: 10002 => "646986";
        ga_counter_10003: 10003 => "842639";
        ga_hotp_0: 0 => "488176";
        ga_hotp_1: 1 => "293240";
        ga_hotp_2: 2 => "445965";
        ga_hotp_3: 3 => "464407";
        ga_hotp_4: 4 => "374703";
        ga_hotp_5: 5 => "932068";
        ga_hotp_6: 6 => "687830";
    }

    #[test]
    fn ga_totp_at_300000_is_050548() {
        let v = totp(&ga_secret(), 300_000, 30, Algorithm::Sha1, Digits::SIX).unwrap();
        assert_eq!(*format_code(v, Digits::SIX), "050548");
    }

    #[test]
    fn totp_step_handles_64_bit_time_and_faults() {
        assert_eq!(totp_step(59, 30), Some(1));
        assert_eq!(totp_step(20_000_000_000, 30), Some(666_666_666));
        assert_eq!(totp_step(i64::MAX, 1), Some(i64::MAX as u64));
        assert_eq!(totp_step(-1, 30), None);
        assert_eq!(totp_step(100, 0), None);
        assert_eq!(totp_step(300, 300), Some(1));
    }

    #[test]
    fn digits_accepts_only_6_to_8() {
        assert_eq!(Digits::new(5), None);
        assert_eq!(Digits::new(9), None);
        assert_eq!(Digits::new(7).map(Digits::get), Some(7));
        assert_eq!("8".parse::<Digits>(), Ok(Digits::EIGHT));
        assert!("08".parse::<Digits>().is_err());
        assert!("9".parse::<Digits>().is_err());
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!("sha256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        assert!("MD5".parse::<Algorithm>().is_err());
        assert!("SHA-1".parse::<Algorithm>().is_err());
    }

    /// The verifier compares the value itself, not its rendering: it must be reduced.
    #[test]
    fn hotp_value_is_reduced_to_the_digit_count() {
        let s = rfc_secret(Algorithm::Sha1);
        assert_eq!(hotp(&s, 0, Algorithm::Sha1, Digits::SIX), 755_224);
        assert_eq!(hotp(&s, 0, Algorithm::Sha1, Digits::SEVEN), 4_755_224);
        for c in 0..50 {
            assert!(hotp(&s, c, Algorithm::Sha1, Digits::SIX) < 1_000_000);
        }
    }

    /// The file writer and the otpauth URI use these renderings.
    #[test]
    fn parameters_display_as_they_parse() {
        for a in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(a.to_string().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(Algorithm::Sha512.to_string(), "SHA512");
        for d in [Digits::SIX, Digits::SEVEN, Digits::EIGHT] {
            assert_eq!(d.to_string().parse::<Digits>(), Ok(d));
        }
        assert_eq!(Digits::SEVEN.to_string(), "7");
        assert_eq!(ParseOtpParamError.to_string(), "unsupported OTP parameter");
    }

    #[test]
    fn format_code_pads_with_zeros() {
        assert_eq!(*format_code(50548, Digits::SIX), "050548");
        assert_eq!(*format_code(7, Digits::EIGHT), "00000007");
        let c = format_code(12_345_678, Digits::EIGHT);
        assert_eq!(c.capacity(), 8, "sized once");
    }
}
