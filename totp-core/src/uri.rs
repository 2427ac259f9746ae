//! otpauth:// URIs in the Key Uri Format, built and parsed.
//!
//! google-authenticator's tool wrote a bare label, no `algorithm`, `digits`,
//! `period` or `counter`, and left `@`, `:` and `/` unencoded, so a phone
//! scanning a 60-second or HOTP enrollment silently computed the wrong codes
//! (GA #3). [`KeyUri::to_uri`] always writes `Issuer:account`, `issuer=`, every
//! parameter that differs from the app defaults, `counter` for HOTP, and
//! percent-encodes everything outside RFC 3986's unreserved set.
//!
//! The parser takes untrusted text (a pasted URI, a decoded QR code): its input
//! is bounded, every value is checked, and unknown values of known parameters
//! are rejected rather than guessed at.

use std::fmt;

use zeroize::Zeroizing;

use crate::base32;
use crate::otp::{Algorithm, Digits};
use crate::secret::Secret;

/// Longest URI [`KeyUri::parse`] accepts. A QR code tops out below 3 KiB and real
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
            UriError::Fragment => f.write_str("URI has a fragment"),
            UriError::ControlByte => f.write_str("URI contains a raw control byte"),
        }
    }
}

impl std::error::Error for UriError {}

impl KeyUri {
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

    /// The secret's bytes.
    pub fn secret(&self) -> Secret {
        // The text was checked against the RFC 4648 alphabet on the way in, so
        // the lenient decoder cannot fail; an empty secret is the safe fallback.
        Secret::new(base32::decode_lenient(self.secret_base32.as_bytes()).unwrap_or_default())
    }

    /// The URI text. It contains the secret, hence the wiping wrapper.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(128));
        out.push_str(match self.kind {
            Kind::Totp { .. } => "otpauth://totp/",
            Kind::Hotp { .. } => "otpauth://hotp/",
        });
        if !self.issuer.is_empty() {
            percent_encode_into(&self.issuer, &mut out);
            // The separator stays a literal colon; a colon inside the issuer or
            // account is encoded, so the first literal one is unambiguous.
            out.push(':');
        }
        percent_encode_into(&self.account, &mut out);
        out.push_str("?secret=");
        out.push_str(&self.secret_base32);
        if !self.issuer.is_empty() {
            out.push_str("&issuer=");
            percent_encode_into(&self.issuer, &mut out);
        }
        if self.algorithm != Algorithm::Sha1 {
            out.push_str("&algorithm=");
            out.push_str(self.algorithm.name());
        }
        if self.digits != Digits::SIX {
            out.push_str("&digits=");
            out.push_str(&self.digits.to_string());
        }
        match self.kind {
            Kind::Totp { period } if period != DEFAULT_PERIOD => {
                out.push_str("&period=");
                out.push_str(&period.to_string());
            }
            Kind::Totp { .. } => {}
            Kind::Hotp { counter } => {
                out.push_str("&counter=");
                out.push_str(&counter.to_string());
            }
        }
        out
    }

    /// Parses an otpauth URI. Unknown parameters (`image`, vendor extensions)
    /// are ignored; known ones with unsupported values are errors, because an
    /// app and the server disagreeing on them means codes that never match.
    pub fn parse(uri: &str) -> Result<KeyUri, UriError> {
        if uri.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        // Control bytes are never part of a URI (RFC 3986 needs them percent-encoded).
        if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(UriError::ControlByte);
        }
        let k = Self::parse_fields(uri)?;
        // What we accept we can also write back: the canonical form percent-encodes more
        // than an input may have, so it is bounded by the same limit.
        if k.to_uri().len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        Ok(k)
    }

    fn parse_fields(uri: &str) -> Result<KeyUri, UriError> {
        let rest = strip_prefix_ignore_case(uri, "otpauth://").ok_or(UriError::NotOtpauth)?;
        if rest.contains('#') {
            return Err(UriError::Fragment);
        }
        let (kind_text, rest) = rest.split_once('/').ok_or(UriError::UnknownType)?;
        let is_totp = if kind_text.eq_ignore_ascii_case("totp") {
            true
        } else if kind_text.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(UriError::UnknownType);
        };
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));

        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.set(key, value)?;
        }
        let param_issuer = params.issuer.as_deref().map(percent_decode).transpose()?;

        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(percent_decode(issuer)?), percent_decode(account)?),
            None => {
                // The format also allows an encoded separator (`%3A`). That is
                // ambiguous with a colon inside the account, so it only counts
                // as a separator when the issuer parameter confirms the prefix.
                let decoded = percent_decode(label)?;
                match (decoded.split_once(':'), &param_issuer) {
                    (Some((prefix, account)), Some(p)) if prefix == p => {
                        (Some(prefix.to_owned()), account.to_owned())
                    }
                    _ => (None, decoded),
                }
            }
        };
        // The Key Uri Format allows spaces after the separator.
        let account = account.trim_start_matches(' ').to_owned();
        if account.is_empty() {
            return Err(UriError::EmptyAccount);
        }

        let secret = params.secret.take().ok_or(UriError::MissingSecret)?;
        let secret_base32 = canonical_secret(&percent_decode(&secret)?)?;

        let issuer = match (label_issuer, param_issuer) {
            (Some(l), Some(p)) if l != p => return Err(UriError::IssuerMismatch),
            (Some(l), _) => l,
            (None, Some(p)) => p,
            (None, None) => String::new(),
        };

        let algorithm = match params.algorithm.as_deref() {
            None => Algorithm::Sha1,
            Some(a) => a.parse().map_err(|_| UriError::BadParameter("algorithm"))?,
        };
        let digits = match params.digits.as_deref() {
            None => Digits::SIX,
            Some(d) => d.parse().map_err(|_| UriError::BadParameter("digits"))?,
        };

        let kind = if is_totp {
            if params.counter.is_some() {
                return Err(UriError::ParameterForOtherKind("counter"));
            }
            let period = match params.period.as_deref() {
                None => DEFAULT_PERIOD,
                Some(p) => parse_decimal(p)
                    .and_then(|v| u32::try_from(v).ok())
                    .filter(|v| PERIOD_RANGE.contains(v))
                    .ok_or(UriError::BadParameter("period"))?,
            };
            Kind::Totp { period }
        } else {
            if params.period.is_some() {
                return Err(UriError::ParameterForOtherKind("period"));
            }
            let counter = params.counter.as_deref().ok_or(UriError::MissingCounter)?;
            let counter = parse_decimal(counter).ok_or(UriError::BadParameter("counter"))?;
            Kind::Hotp { counter }
        };

        Ok(KeyUri {
            kind,
            issuer,
            account,
            secret_base32,
            algorithm,
            digits,
        })
    }
}

/// Raw (still percent-encoded) values of the parameters we understand.
#[derive(Default)]
struct Params {
    secret: Option<Zeroizing<String>>,
    issuer: Option<String>,
    algorithm: Option<String>,
    digits: Option<String>,
    period: Option<String>,
    counter: Option<String>,
}

impl Params {
    fn set(&mut self, key: &str, value: &str) -> Result<(), UriError> {
        let key_lower = key.to_ascii_lowercase();
        if key_lower == "secret" {
            if self.secret.is_some() {
                return Err(UriError::DuplicateParameter("secret".into()));
            }
            self.secret = Some(Zeroizing::new(value.to_owned()));
            return Ok(());
        }
        let slot = match key_lower.as_str() {
            "issuer" => &mut self.issuer,
            "algorithm" => &mut self.algorithm,
            "digits" => &mut self.digits,
            "period" => &mut self.period,
            "counter" => &mut self.counter,
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(UriError::DuplicateParameter(key_lower));
        }
        *slot = Some(value.to_owned());
        Ok(())
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Strict unsigned decimal: digits only, no sign, no spaces, no overflow.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Upper-cases, drops `=` padding, and checks the RFC 4648 alphabet and a length
/// that decodes to whole bytes (unpadded lengths mod 8 of 1, 3 and 6 cannot).
fn canonical_secret(s: &str) -> Result<Zeroizing<String>, UriError> {
    let body = s.trim_end_matches('=');
    if body.is_empty()
        || matches!(body.len() % 8, 1 | 3 | 6)
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
    {
        return Err(UriError::BadSecret);
    }
    // Padding, when present, must be exactly what completes the last group.
    if body.len() != s.len() && !s.len().is_multiple_of(8) {
        return Err(UriError::BadSecret);
    }
    Ok(Zeroizing::new(body.to_ascii_uppercase()))
}

/// RFC 3986 §2.3 unreserved characters pass through; every other byte of the
/// UTF-8 text becomes `%XX` with upper-case hex (RFC 3986 §2.1).
fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// RFC 3986 percent-decoding. `+` stays a plus sign: it means space only in
/// HTML form encoding, which is not what the Key Uri Format uses.
fn percent_decode(s: &str) -> Result<String, UriError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(UriError::BadPercentEncoding)?;
            let hi = hex_value(hex[0]).ok_or(UriError::BadPercentEncoding)?;
            let lo = hex_value(hex[1]).ok_or(UriError::BadPercentEncoding)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UriError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    fn secret() -> Secret {
        Secret::new(base32::decode_lenient(SECRET.as_bytes()).expect("valid base32"))
    }

    fn totp(issuer: &str, account: &str) -> KeyUri {
        KeyUri::new(
            Kind::Totp { period: 30 },
            issuer,
            account,
            &secret(),
            Algorithm::Sha1,
            Digits::SIX,
        )
        .expect("valid")
    }

    #[test]
    fn default_totp_uri_has_issuer_label_and_no_default_parameters() {
        let uri = totp("host", "alice@host").to_uri();
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/host:alice%40host?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=host"
        );
    }

    #[test]
    fn non_default_parameters_are_all_written() {
        let uri = KeyUri::new(
            Kind::Totp { period: 60 },
            "Ex",
            "a",
            &secret(),
            Algorithm::Sha512,
            Digits::EIGHT,
        )
        .expect("valid")
        .to_uri();
        assert!(
            uri.ends_with("&issuer=Ex&algorithm=SHA512&digits=8&period=60"),
            "{}",
            *uri
        );
    }

    #[test]
    fn hotp_uri_always_carries_the_counter() {
        let uri = KeyUri::new(
            Kind::Hotp { counter: 1 },
            "",
            "bob",
            &secret(),
            Algorithm::Sha1,
            Digits::SIX,
        )
        .expect("valid")
        .to_uri();
        assert_eq!(
            uri.as_str(),
            "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&counter=1"
        );
    }

    #[test]
    fn reserved_and_non_ascii_characters_are_percent_encoded() {
        let uri = totp("A&B Co:Ltd", "é@x?y=z/#").to_uri();
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/A%26B%20Co%3ALtd:%C3%A9%40x%3Fy%3Dz%2F%23?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=A%26B%20Co%3ALtd"
        );
        let back = KeyUri::parse(&uri).expect("parses");
        assert_eq!(back, totp("A&B Co:Ltd", "é@x?y=z/#"));
    }

    #[test]
    fn round_trip_over_kinds_algorithms_and_digits() {
        for kind in [
            Kind::Totp { period: 30 },
            Kind::Totp { period: 1 },
            Kind::Totp { period: 60 },
            Kind::Hotp { counter: 0 },
            Kind::Hotp { counter: u64::MAX },
        ] {
            for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
                for digits in [Digits::SIX, Digits::SEVEN, Digits::EIGHT] {
                    let k =
                        KeyUri::new(kind, "I", "a b", &secret(), algorithm, digits).expect("ok");
                    assert_eq!(KeyUri::parse(&k.to_uri()), Ok(k));
                }
            }
        }
    }

    #[test]
    fn parser_accepts_foreign_spellings() {
        let k = KeyUri::parse(
            "OTPAUTH://TOTP/Example%3A%20alice?SECRET=jbswy3dpehpk3pxp&algorithm=sha256&image=x&issuer=Example",
        )
        .expect("parses");
        assert_eq!(k.issuer, "Example");
        assert_eq!(k.account, "alice");
        assert_eq!(k.secret_base32(), "JBSWY3DPEHPK3PXP");
        assert_eq!(k.algorithm, Algorithm::Sha256);
        let padded = KeyUri::parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PX%3D").expect("ok");
        assert_eq!(padded.secret_base32(), "JBSWY3DPEHPK3PX");
        // Without a confirming issuer parameter an encoded colon is part of the account.
        let k = KeyUri::parse("otpauth://totp/a%3Ab?secret=JBSWY3DP").expect("ok");
        assert_eq!((k.issuer.as_str(), k.account.as_str()), ("", "a:b"));
    }

    #[test]
    fn parser_rejects_what_would_give_wrong_codes() {
        let bad = [
            ("http://totp/a?secret=JBSWY3DP", UriError::NotOtpauth),
            ("otpauth://motp/a?secret=JBSWY3DP", UriError::UnknownType),
            ("otpauth://totp/a", UriError::MissingSecret),
            ("otpauth://totp/a?secret=JBSWY3D1", UriError::BadSecret),
            ("otpauth://totp/a?secret=JBS", UriError::BadSecret),
            ("otpauth://totp/a?secret=", UriError::BadSecret),
            (
                "otpauth://totp/a?secret=JBSWY3DP&digits=10",
                UriError::BadParameter("digits"),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&algorithm=MD5",
                UriError::BadParameter("algorithm"),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&period=0",
                UriError::BadParameter("period"),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&period=61",
                UriError::BadParameter("period"),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&period=+30",
                UriError::BadParameter("period"),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&counter=1",
                UriError::ParameterForOtherKind("counter"),
            ),
            ("otpauth://hotp/a?secret=JBSWY3DP", UriError::MissingCounter),
            (
                "otpauth://hotp/a?secret=JBSWY3DP&counter=-1",
                UriError::BadParameter("counter"),
            ),
            (
                "otpauth://hotp/a?secret=JBSWY3DP&counter=99999999999999999999",
                UriError::BadParameter("counter"),
            ),
            (
                "otpauth://hotp/a?secret=JBSWY3DP&counter=1&period=30",
                UriError::ParameterForOtherKind("period"),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&secret=JBSWY3DP",
                UriError::DuplicateParameter("secret".into()),
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP&Digits=6&digits=6",
                UriError::DuplicateParameter("digits".into()),
            ),
            (
                "otpauth://totp/X:a?secret=JBSWY3DP&issuer=Y",
                UriError::IssuerMismatch,
            ),
            (
                "otpauth://totp/a%4?secret=JBSWY3DP",
                UriError::BadPercentEncoding,
            ),
            ("otpauth://totp/a%FF?secret=JBSWY3DP", UriError::NotUtf8),
            ("otpauth://totp/X:?secret=JBSWY3DP", UriError::EmptyAccount),
            ("otpauth://totp/a?secret=JBSWY3DP#frag", UriError::Fragment),
        ];
        for (uri, want) in bad {
            assert_eq!(KeyUri::parse(uri), Err(want), "{uri}");
        }
        let long = format!("otpauth://totp/{}?secret=JBSWY3DP", "a".repeat(MAX_URI_LEN));
        assert_eq!(KeyUri::parse(&long), Err(UriError::TooLong));
    }

    #[test]
    fn builder_rejects_empty_account_and_unwritable_period() {
        let mk = |period, account| {
            KeyUri::new(
                Kind::Totp { period },
                "",
                account,
                &secret(),
                Algorithm::Sha1,
                Digits::SIX,
            )
        };
        assert_eq!(mk(30, ""), Err(UriError::EmptyAccount));
        let empty = KeyUri::new(
            Kind::Totp { period: 30 },
            "",
            "a",
            &Secret::new(Vec::new()),
            Algorithm::Sha1,
            Digits::SIX,
        );
        assert_eq!(empty, Err(UriError::BadSecret));
        assert_eq!(mk(61, "a"), Err(UriError::BadParameter("period")));
        assert_eq!(mk(0, "a"), Err(UriError::BadParameter("period")));
    }

    #[test]
    fn secret_bytes_survive_the_round_trip() {
        let k = KeyUri::parse(&totp("i", "a").to_uri()).expect("parses");
        assert_eq!(k.secret(), secret());
        assert_eq!(k.secret().len(), 20);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let dbg = format!("{:?}", totp("i", "a"));
        assert!(!dbg.contains(SECRET) && dbg.contains("redacted"));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let samples = [
            "",
            "otpauth://",
            "otpauth://totp",
            "otpauth://totp/",
            "otpauth://totp/?",
            "otpauth://totp/:?&&=&",
            "otpauth://totp/%",
            "otpauth://totp/%%",
            "otpauth://totp/é?secret=%",
            "otpauth://totp/a?secret=AA======",
            "otpauth://hotp/a?counter=&secret=AA",
            "otpauth://totp/a?secret=AAAAAAAAA=======",
            "ｏtpauth://totp/a",
        ];
        for s in samples {
            let _ = KeyUri::parse(s);
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = KeyUri::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_otpauth_shaped_input(
            kind in "(totp|hotp|TOTP|x)",
            label in "[a-zA-Z0-9:%@ ]{0,20}",
            query in "[a-zA-Z0-9=&%]{0,60}",
        ) {
            let _ = KeyUri::parse(&format!("otpauth://{kind}/{label}?{query}"));
        }

        #[test]
        fn build_then_parse_is_identity(
            issuer in "\\PC{0,30}",
            account in "[^ ]\\PC{0,30}",
            bytes in proptest::collection::vec(any::<u8>(), 1..64),
            period in 1u32..=60,
            counter in any::<u64>(),
            hotp in any::<bool>(),
        ) {
            let kind = if hotp { Kind::Hotp { counter } } else { Kind::Totp { period } };
            let k = KeyUri::new(kind, &issuer, &account, &Secret::new(bytes), Algorithm::Sha256, Digits::SEVEN)
                .expect("valid");
            let uri = k.to_uri();
            prop_assert!(uri.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(KeyUri::parse(&uri), Ok(k));
        }
    }

    #[test]
    fn every_accepted_uri_can_be_written_back() {
        // Found by fuzzing: raw bytes that encode to three characters each made the
        // canonical form longer than the limit, so a parsed URI could not be rebuilt.
        let label = "A".repeat(1300);
        let padded = format!("otpauth://totp/{label}%C3%A9?secret=JBSWY3DPEHPK3PXP");
        if let Ok(k) = KeyUri::parse(&padded) {
            assert!(KeyUri::parse(&k.to_uri()).is_ok());
        }
        let tilde = format!(
            "otpauth://totp/{}?secret=JBSWY3DPEHPK3PXP",
            "é".repeat(1300)
        );
        match KeyUri::parse(&tilde) {
            Ok(k) => assert!(KeyUri::parse(&k.to_uri()).is_ok()),
            Err(e) => assert_eq!(e, UriError::TooLong),
        }
        assert_eq!(
            KeyUri::parse("otpauth://totp/a\u{0}b?secret=JBSWY3DPEHPK3PXP"),
            Err(UriError::ControlByte)
        );
    }
}
