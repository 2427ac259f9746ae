//! The `~/.google_authenticator` file, read and rewritten byte-exactly as GA does.
//!
//! [`GaFile`] keeps the raw bytes and edits them in place with GA's
//! `set_cfg_value` rules, so a file nobody changed is written back unchanged and
//! lines we do not understand survive every rewrite. [`GaFile::config`] is the
//! typed, bounds-checked view the verifier works from. The format, every key and
//! our `PAM_TOTP_*` extensions are described in `docs/file-format.md`.
//!
//! [`GaFile::parse`] validates the whole file (size, NUL, secret line, every known key):
//! a malformed file is an error, never a default or empty state, because a reset
//! state would erase the replay mark and the failure counter.

use std::fmt;

use zeroize::Zeroizing;

use crate::base32;
use crate::otp::{Algorithm, Digits};
use crate::secret::Secret;

/// GA's own cap on the file size.
pub const MAX_FILE_LEN: usize = 64 * 1024;
/// Decoded secrets longer than this are refused: no generator writes them and
/// they would only make every HMAC slower.
pub const MAX_SECRET_BYTES: usize = 1024;
/// Latest timestamp accepted in the file (9999-12-31T23:59:59Z).
pub const MAX_UNIX_TIME: u64 = 253_402_300_799;
/// Largest HOTP counter or TOTP step stored in the file (leaves room for the
/// window arithmetic in 64 bits).
pub const MAX_COUNTER: u64 = 1 << 62;
/// Largest |`TIME_SKEW`| the file may hold (GA learns at most ±1500).
pub const MAX_TIME_SKEW: i64 = 1_000_000;
/// Largest failure count stored in `PAM_TOTP_FAILURES`.
pub const MAX_FAILURE_COUNT: u32 = 1_000_000;
/// GA's default `WINDOW_SIZE` and `STEP_SIZE`.
pub const DEFAULT_WINDOW: u32 = 3;
pub const DEFAULT_STEP_SECS: u32 = 30;
/// The shortest `STEP_SIZE` a file may hold (GA's lower bound).
pub const SHORTEST_STEP_SECS: u64 = 1;
/// The longest `STEP_SIZE` a file may hold (GA's upper bound).
pub const LONGEST_STEP_SECS: u64 = 60;
/// The widest `WINDOW_SIZE` a file may hold (GA's upper bound).
pub const WIDEST_WINDOW: u32 = 100;
/// The longest interval of a `RATE_LIMIT` line (GA's upper bound).
pub const LONGEST_RATE_LIMIT_SECS: u64 = 3600;
/// Scratch codes are GA's 8-digit values without a leading zero.
pub const SCRATCH_MIN: u32 = 10_000_000;
pub const SCRATCH_MAX: u32 = 99_999_999;

/// GA keys.
pub const KEY_TOTP_AUTH: &str = "TOTP_AUTH";
pub const KEY_HOTP_COUNTER: &str = "HOTP_COUNTER";
pub const KEY_WINDOW_SIZE: &str = "WINDOW_SIZE";
pub const KEY_STEP_SIZE: &str = "STEP_SIZE";
pub const KEY_DISALLOW_REUSE: &str = "DISALLOW_REUSE";
pub const KEY_RATE_LIMIT: &str = "RATE_LIMIT";
pub const KEY_TIME_SKEW: &str = "TIME_SKEW";
pub const KEY_RESETTING_TIME_SKEW: &str = "RESETTING_TIME_SKEW";
/// Our keys (GA ignores and preserves them).
pub const KEY_ALGORITHM: &str = "PAM_TOTP_ALGORITHM";
pub const KEY_DIGITS: &str = "PAM_TOTP_DIGITS";
pub const KEY_LAST_STEP: &str = "PAM_TOTP_LAST_STEP";
pub const KEY_FAILURES: &str = "PAM_TOTP_FAILURES";
/// Prefix shared by all our keys.
pub const OUR_KEY_PREFIX: &str = "PAM_TOTP_";

/// Why a file (or an edit of it) was refused. Messages never contain file content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GaFileError {
    Empty,
    TooLarge,
    ContainsNul,
    /// Line 1 is not GA base32 (offset within the line).
    BadSecret {
        offset: usize,
    },
    /// Line 1 decodes to zero bytes.
    EmptySecret,
    SecretTooLong,
    /// A known key has a malformed or out-of-range value.
    BadValue {
        key: &'static str,
    },
    /// `set` was given a key that is not `[A-Z0-9_]+`.
    BadKey,
    /// `set` was given a value with CR, LF or NUL.
    BadValueBytes,
    /// A scratch code outside 10000000..=99999999.
    BadScratchCode,
    /// Enrollment settings outside GA's ranges.
    BadSettings(&'static str),
    /// A CR that does not start a CRLF: where such a file would be edited depends on
    /// whether CR ends a line, which GA's reader and writer disagree on.
    BareCarriageReturn,
}

impl fmt::Display for GaFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("file is empty"),
            Self::TooLarge => write!(f, "file is larger than {MAX_FILE_LEN} bytes"),
            Self::ContainsNul => f.write_str("file contains a NUL byte"),
            Self::BadSecret { offset } => {
                write!(f, "first line is not valid base32 (offset {offset})")
            }
            Self::EmptySecret => f.write_str("first line holds no secret"),
            Self::SecretTooLong => write!(f, "secret is longer than {MAX_SECRET_BYTES} bytes"),
            Self::BadValue { key } => write!(f, "malformed or out-of-range {key} line"),
            Self::BadKey => f.write_str("invalid option key"),
            Self::BadValueBytes => f.write_str("option value contains CR, LF or NUL"),
            Self::BadScratchCode => f.write_str("scratch code out of range"),
            Self::BadSettings(what) => write!(f, "invalid enrollment setting: {what}"),
            Self::BareCarriageReturn => f.write_str("file has a CR that is not part of a CRLF"),
        }
    }
}

impl std::error::Error for GaFileError {}

/// Authentication mode, decided as GA does: `HOTP_COUNTER` ≥ 1 wins, else TOTP if
/// `" TOTP_AUTH` occurs anywhere, else only scratch codes work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Totp,
    /// `counter` is the next expected counter.
    Hotp {
        counter: u64,
    },
    ScratchOnly,
}

/// `RATE_LIMIT attempts interval [timestamps…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub attempts: u32,
    pub interval_secs: u32,
    pub timestamps: Vec<u64>,
}

/// `PAM_TOTP_FAILURES <consecutive> <unix-time-of-last-failure>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub last: u64,
}

/// A well-formed `LASTn host time` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraceEntry {
    pub slot: u8,
    pub host: String,
    pub when: u64,
}

/// Typed view of the option lines. `None` means the line is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// `WINDOW_SIZE`, 1..=100, before any admin cap.
    pub window: Option<u32>,
    /// `STEP_SIZE`, 1..=60 seconds.
    pub step: Option<u32>,
    /// `DISALLOW_REUSE` list (present but empty = `Some(vec![])`).
    pub disallow_reuse: Option<Vec<u64>>,
    pub rate_limit: Option<RateLimit>,
    /// `TIME_SKEW` in steps, before any admin cap.
    pub time_skew: Option<i64>,
    /// `RESETTING_TIME_SKEW` is present (kept, never acted on).
    pub resetting_time_skew: bool,
    pub algorithm: Algorithm,
    pub digits: Digits,
    /// `PAM_TOTP_LAST_STEP`: highest TOTP step ever accepted.
    pub last_step: Option<u64>,
    pub failures: Option<Failures>,
    /// Well-formed `LAST0`..`LAST9` lines; malformed ones are skipped, as GA does.
    pub grace: Vec<GraceEntry>,
}

impl Config {
    pub fn window_or_default(&self) -> u32 {
        self.window.unwrap_or(DEFAULT_WINDOW)
    }

    pub fn step_secs(&self) -> u64 {
        u64::from(self.step.unwrap_or(DEFAULT_STEP_SECS))
    }
}

/// What [`GaFile::carry_use`] did to a newer file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// The newer file holds another secret (a new enrolment): nothing carried.
    OtherSecret,
    /// The use carried over: how many scratch lines were struck, and whether
    /// `HOTP_COUNTER` was raised. Both zero: the newer file already held the use.
    Use { struck: usize, counter_raised: bool },
}

/// What `totp-enroll` writes, in GA's tool layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollSettings {
    /// `true`: `" TOTP_AUTH`; `false`: `" HOTP_COUNTER 1`.
    pub totp: bool,
    /// `" DISALLOW_REUSE` (TOTP only).
    pub disallow_reuse: bool,
    /// `" STEP_SIZE n"` (TOTP only), 1..=60.
    pub step: Option<u32>,
    /// `" WINDOW_SIZE n"`, 1..=100.
    pub window: Option<u32>,
    /// `" RATE_LIMIT n m"`, n 1..=100, m 1..=3600.
    pub rate_limit: Option<(u32, u32)>,
    pub algorithm: Algorithm,
    pub digits: Digits,
    /// Each 10000000..=99999999.
    pub scratch_codes: Vec<u32>,
}

impl Default for EnrollSettings {
    fn default() -> Self {
        Self {
            totp: true,
            disallow_reuse: true,
            step: None,
            window: None,
            rate_limit: None,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            scratch_codes: Vec::new(),
        }
    }
}

/// The file as raw bytes, wiped on drop. `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct GaFile {
    buf: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for GaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GaFile(REDACTED, {} bytes)", self.buf.len())
    }
}

mod edit;
mod limits;
mod lines;
mod read;
mod values;

pub use limits::{disallow_reuse_update, rate_limit_update, rate_limit_value};
use lines::*;
use values::*;

#[cfg(test)]
mod tests;
