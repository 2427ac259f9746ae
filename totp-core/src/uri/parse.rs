//! The otpauth URI parser: used by tests and fuzzing to check what the builder writes.
//! It takes untrusted text (a pasted URI, a decoded QR code): its input is bounded,
//! every value is checked, and unknown values of known parameters are rejected rather
//! than guessed at.

use zeroize::Zeroizing;

use super::{DEFAULT_PERIOD, KeyUri, Kind, MAX_URI_LEN, PERIOD_RANGE, UriError};
use crate::base32;
use crate::otp::{Algorithm, Digits};
use crate::secret::Secret;

impl KeyUri {
    /// The secret's bytes.
    pub fn secret(&self) -> Secret {
        // The text was checked against the RFC 4648 alphabet on the way in, so
        // the lenient decoder cannot fail; an empty secret is the safe fallback.
        Secret::new(base32::decode_lenient(self.secret_base32.as_bytes()).unwrap_or_default())
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
