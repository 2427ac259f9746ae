//! otpauth:// URIs in the Key Uri Format, built and parsed.
//!
//! google-authenticator's tool wrote a bare label, no `algorithm`, `digits`,
//! `period` or `counter`, and left `@`, `:` and `/` unencoded, so a phone
//! scanning a 60-second or HOTP enrollment silently computed the wrong codes
//! (GA #3). [`KeyUri::to_uri`] always writes `Issuer:account`, `issuer=`, every
//! parameter that differs from the app defaults, `counter` for HOTP, and
//! percent-encodes everything outside RFC 3986's unreserved set.
//!
//! The parser (`parse.rs`) exists for tests and fuzzing only: no shipped program reads
//! an otpauth URI. It is built with `cfg(test)` or the test-only `test-support` feature.

use std::fmt;

use zeroize::Zeroizing;

use crate::base32;
use crate::otp::{Algorithm, Digits};
use crate::secret::Secret;

/// Longest URI the parser accepts. A QR code tops out below 3 KiB and real
/// enrollment URIs are under 300 bytes; the cap bounds the work on hostile input.
pub const MAX_URI_LEN: usize = 4096;

/// Periods a `~/.google_authenticator` file can carry (`STEP_SIZE` 1..60).
pub const PERIOD_RANGE: std::ops::RangeInclusive<u32> = 1..=60;

/// The app-side defaults of the Key Uri Format: parameters equal to these are
/// left out so that older apps that ignore them still compute the same codes.
pub const DEFAULT_PERIOD: u32 = 30;

/// TOTP or HOTP, with the parameter that only that kind has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Totp { period: u32 },
    Hotp { counter: u64 },
}

/// One parsed or to-be-built otpauth URI.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyUri {
    pub kind: Kind,
    /// Empty means "no issuer": the label is then the account alone.
    pub issuer: String,
    pub account: String,
    /// Canonical base32: upper case, no padding, RFC 4648 alphabet.
    secret_base32: Zeroizing<String>,
    pub algorithm: Algorithm,
    pub digits: Digits,
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("secret_base32", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish()
    }
}

/// Why a URI could not be built or parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriError {
    TooLong,
    NotOtpauth,
    UnknownType,
    EmptyAccount,
    BadPercentEncoding,
    NotUtf8,
    MissingSecret,
    BadSecret,
    DuplicateParameter(String),
    BadParameter(&'static str),
    /// `period` on HOTP or `counter` on TOTP.
    ParameterForOtherKind(&'static str),
    MissingCounter,
    IssuerMismatch,
    /// The Key Uri Format forbids a colon in the issuer: the label is `issuer:account`,
    /// and apps split it at the first colon, encoded or not.
    ColonInIssuer,
    Fragment,
    ControlByte,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::TooLong => write!(f, "URI longer than {MAX_URI_LEN} bytes"),
            UriError::NotOtpauth => f.write_str("not an otpauth:// URI"),
            UriError::UnknownType => f.write_str("OTP type is neither totp nor hotp"),
            UriError::EmptyAccount => f.write_str("the account name is empty"),
            UriError::BadPercentEncoding => f.write_str("malformed percent-encoding"),
            UriError::NotUtf8 => f.write_str("percent-decoded text is not UTF-8"),
            UriError::MissingSecret => f.write_str("no secret parameter"),
            UriError::BadSecret => f.write_str("secret is not valid base32"),
            UriError::DuplicateParameter(p) => write!(f, "parameter {p} given twice"),
            UriError::BadParameter(p) => write!(f, "unsupported value for parameter {p}"),
            UriError::ParameterForOtherKind(p) => {
                write!(f, "parameter {p} does not apply to this OTP type")
            }
            UriError::MissingCounter => f.write_str("hotp URI without counter parameter"),
            UriError::IssuerMismatch => {
                f.write_str("issuer parameter differs from the label's issuer prefix")
            }
            UriError::ColonInIssuer => f.write_str(
                "the issuer contains a colon, which the Key Uri Format forbids \
                 (apps split the label issuer:account at the first colon)",
            ),
            UriError::Fragment => f.write_str("URI has a fragment"),
            UriError::ControlByte => f.write_str("URI contains a raw control byte"),
        }
    }
}

impl std::error::Error for UriError {}

impl KeyUri {
    /// An account that begins with `issuer:` (the label as google-authenticator's
    /// tool took it, which wrote no prefix of its own) loses that prefix, and the
    /// spaces the format allows after it: apps would otherwise show the issuer twice.
    /// Any other colon in the account stays part of it (percent-encoded).
    pub fn new(
        kind: Kind,
        issuer: &str,
        account: &str,
        secret: &Secret,
        algorithm: Algorithm,
        digits: Digits,
    ) -> Result<KeyUri, UriError> {
        if secret.is_empty() {
            return Err(UriError::BadSecret);
        }
        if issuer.contains(':') {
            return Err(UriError::ColonInIssuer);
        }
        let account = match account
            .strip_prefix(issuer)
            .and_then(|a| a.strip_prefix(':'))
        {
            Some(rest) if !issuer.is_empty() => rest.trim_start_matches(' '),
            _ => account,
        };
        if account.is_empty() {
            return Err(UriError::EmptyAccount);
        }
        if let Kind::Totp { period } = kind
            && !PERIOD_RANGE.contains(&period)
        {
            return Err(UriError::BadParameter("period"));
        }
        Ok(KeyUri {
            kind,
            issuer: issuer.to_owned(),
            account: account.to_owned(),
            secret_base32: Zeroizing::new(base32::encode(secret.as_bytes())),
            algorithm,
            digits,
        })
    }

    /// The secret as canonical base32 (upper case, unpadded).
    pub fn secret_base32(&self) -> &str {
        &self.secret_base32
    }

    /// The URI text. It contains the secret, hence the wiping wrapper, sized before
    /// anything is written: a buffer that grew would leave the old one, secret and all,
    /// unwiped on the heap (a long issuer or account is enough).
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut len = Count(0);
        self.write_uri(&mut len);
        let mut out = Zeroizing::new(String::with_capacity(len.0));
        self.write_uri(&mut *out);
        out
    }

    fn write_uri(&self, out: &mut impl UriSink) {
        out.put(match self.kind {
            Kind::Totp { .. } => "otpauth://totp/",
            Kind::Hotp { .. } => "otpauth://hotp/",
        });
        if !self.issuer.is_empty() {
            percent_encode_into(&self.issuer, out);
            // The separator stays a literal colon; a colon inside the issuer or
            // account is encoded, so the first literal one is unambiguous.
            out.put(":");
        }
        percent_encode_into(&self.account, out);
        out.put("?secret=");
        out.put(&self.secret_base32);
        if !self.issuer.is_empty() {
            out.put("&issuer=");
            percent_encode_into(&self.issuer, out);
        }
        if self.algorithm != Algorithm::Sha1 {
            out.put("&algorithm=");
            out.put(self.algorithm.name());
        }
        if self.digits != Digits::SIX {
            out.put("&digits=");
            out.put(&self.digits.to_string());
        }
        match self.kind {
            Kind::Totp { period } if period != DEFAULT_PERIOD => {
                out.put("&period=");
                out.put(&period.to_string());
            }
            Kind::Totp { .. } => {}
            Kind::Hotp { counter } => {
                out.put("&counter=");
                out.put(&counter.to_string());
            }
        }
    }
}

/// Where [`KeyUri::write_uri`] goes: the buffer, or a count of its length.
trait UriSink {
    fn put(&mut self, s: &str);
}

struct Count(usize);

impl UriSink for Count {
    fn put(&mut self, s: &str) {
        self.0 += s.len();
    }
}

impl UriSink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// RFC 3986 §2.3 unreserved characters pass through; every other byte of the
/// UTF-8 text becomes `%XX` with upper-case hex (RFC 3986 §2.1).
fn percent_encode_into(s: &str, out: &mut impl UriSink) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            // ASCII, one byte: a valid &str of its own.
            out.put(std::str::from_utf8(std::slice::from_ref(b)).unwrap_or("?"));
        } else {
            let hex = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]];
            out.put(std::str::from_utf8(&hex).unwrap_or("%3F"));
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
mod parse;

#[cfg(test)]
mod tests;
