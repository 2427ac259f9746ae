//! The `~/.google_authenticator` file, read and rewritten byte-exactly as GA does.
//!
//! [`GaFile`] keeps the raw bytes and edits them in place with GA's
//! `set_cfg_value` rules, so a file nobody changed is written back unchanged and
//! lines we do not understand survive every rewrite. [`GaFile::config`] is the
//! typed, bounds-checked view the verifier works from. The format, every key and
//! our `PAM_TOTP_*` extensions are described in `docs/file-format.md`.
//!
//! [`parse`] validates the whole file (size, NUL, secret line, every known key):
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

/// One line: content is `start..end`, the CR/LF run after it ends at `next`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    next: usize,
}

fn is_eol(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

fn span_at(buf: &[u8], start: usize) -> Span {
    let end = buf[start..]
        .iter()
        .position(|&b| is_eol(b))
        .map_or(buf.len(), |p| start + p);
    let next = end + buf[end..].iter().take_while(|&&b| is_eol(b)).count();
    Span { start, end, next }
}

/// GA walks lines with `strcspn("\r\n")` / `strspn("\r\n")` from the start.
fn spans(buf: &[u8]) -> impl Iterator<Item = Span> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let s = span_at(buf, pos);
        pos = s.next;
        Some(s)
    })
}

/// GA recognises `" KEY` only at the start of a line that follows a LF, with KEY
/// followed by end of line, space or tab. Returns the value range.
fn match_key(buf: &[u8], s: Span, key: &[u8]) -> Option<(usize, usize)> {
    if s.start == 0 || buf[s.start - 1] != b'\n' {
        return None;
    }
    let line = &buf[s.start..s.end];
    let rest = line.strip_prefix(b"\" ")?.strip_prefix(key)?;
    match rest.first() {
        None | Some(b' ') | Some(b'\t') => {}
        Some(_) => return None,
    }
    let skip = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    Some((s.end - rest.len() + skip, s.end))
}

/// The key of an option line, if the line is one.
fn line_key(buf: &[u8], s: Span) -> Option<&[u8]> {
    if s.start == 0 || buf[s.start - 1] != b'\n' {
        return None;
    }
    let rest = buf[s.start..s.end].strip_prefix(b"\" ")?;
    let n = rest
        .iter()
        .take_while(|&&b| b != b' ' && b != b'\t')
        .count();
    Some(&rest[..n])
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `strtoul`-like scan: optional blanks, optional `+`, at least one digit, no
/// overflow. Unlike `strtoul`, a `-` is refused instead of wrapping.
fn scan_u64(s: &[u8], mut i: usize) -> Option<(u64, usize)> {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | 0x0b | 0x0c) {
        i += 1;
    }
    if s.get(i) == Some(&b'+') {
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    (i > start).then_some((v, i))
}

/// A plain decimal: digits only, nothing else.
fn strict_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match scan_u64(s, 0) {
        Some((v, end)) if end == s.len() => Some(v),
        _ => None,
    }
}

/// GA's `WINDOW_SIZE`/`STEP_SIZE` reading: a number, then end or blank (text after
/// a blank is ignored, as in GA).
fn ga_small_number(s: &[u8], max: u64) -> Option<u32> {
    let (v, end) = scan_u64(s, 0)?;
    if end < s.len() && !matches!(s[end], b' ' | b'\t') {
        return None;
    }
    (1..=max).contains(&v).then_some(v as u32)
}

fn parse_rate_limit(s: &[u8]) -> Option<RateLimit> {
    let (attempts, mut i) = scan_u64(s, 0)?;
    if !(1..=100).contains(&attempts) || !matches!(s.get(i), Some(b' ' | b'\t')) {
        return None;
    }
    let (interval, j) = scan_u64(s, i)?;
    if !(1..=3600).contains(&interval) {
        return None;
    }
    i = j;
    let mut timestamps = Vec::new();
    while i < s.len() {
        // A trailing blank makes the next scan fail: GA's "Invalid list of timestamps".
        if !matches!(s[i], b' ' | b'\t') {
            return None;
        }
        let (ts, j) = scan_u64(s, i)?;
        if ts > MAX_UNIX_TIME {
            return None;
        }
        timestamps.push(ts);
        i = j;
    }
    Some(RateLimit {
        attempts: attempts as u32,
        interval_secs: interval as u32,
        timestamps,
    })
}

fn parse_reuse_list(s: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if i >= s.len() {
            return Some(out);
        }
        let (v, end) = scan_u64(s, i)?;
        if end < s.len() && !matches!(s[end], b' ' | b'\t' | b'\r' | b'\n') {
            return None;
        }
        if v > MAX_COUNTER {
            return None;
        }
        out.push(v);
        i = end;
    }
}

fn parse_time_skew(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = i64::try_from(strict_u64(digits)?).ok()?;
    (v <= MAX_TIME_SKEW).then_some(if neg { -v } else { v })
}

fn parse_failures(s: &[u8]) -> Option<Failures> {
    let sp = s.iter().position(|&b| b == b' ')?;
    let count = u32::try_from(strict_u64(&s[..sp])?).ok()?;
    let last = strict_u64(&s[sp + 1..])?;
    (count <= MAX_FAILURE_COUNT && last <= MAX_UNIX_TIME).then_some(Failures { count, last })
}

/// `sscanf(" %255[0-9a-zA-Z:%.-] %lu ")` as GA reads `LASTn`.
fn parse_grace(slot: u8, s: &[u8]) -> Option<GraceEntry> {
    let host_len = s
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'%' | b'.' | b'-'))
        .count();
    if host_len == 0 || host_len > 255 {
        return None;
    }
    let (when, _) =
        scan_u64(s, host_len).filter(|_| matches!(s.get(host_len), Some(b' ' | b'\t')))?;
    let host = String::from_utf8(s[..host_len].to_vec()).ok()?;
    Some(GraceEntry { slot, host, when })
}

/// A scratch line as GA's `strtol` reads it: blanks, optional sign, digits, then
/// end of line; value 10000000..=99999999.
fn parse_scratch_line(line: &[u8]) -> Option<u32> {
    let mut i = line
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | 0x0b | 0x0c))
        .count();
    if line.get(i) == Some(&b'-') {
        return None;
    }
    if line.get(i) == Some(&b'+') {
        i += 1;
    }
    let digits = &line[i..];
    if digits.len() > 18 {
        return None;
    }
    let v = strict_u64(digits)?;
    (u64::from(SCRATCH_MIN)..=u64::from(SCRATCH_MAX))
        .contains(&v)
        .then_some(v as u32)
}

/// Parses and fully validates a file (see the module docs).
pub fn parse(bytes: &[u8]) -> Result<GaFile, GaFileError> {
    if bytes.is_empty() {
        return Err(GaFileError::Empty);
    }
    if bytes.len() > MAX_FILE_LEN {
        return Err(GaFileError::TooLarge);
    }
    if bytes.contains(&0) {
        return Err(GaFileError::ContainsNul);
    }
    // LF and CRLF files are accepted (GA writes LF; editors write CRLF). A lone CR would
    // let a rewrite insert a line where the reader does not see it, or inside line 1
    // (found by fuzzing), so such a file is refused rather than guessed at.
    if bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
    {
        return Err(GaFileError::BareCarriageReturn);
    }
    let file = GaFile {
        buf: Zeroizing::new(bytes.to_vec()),
    };
    file.secret()?;
    file.config()?;
    Ok(file)
}

impl GaFile {
    /// Same as [`parse`].
    pub fn parse(bytes: &[u8]) -> Result<GaFile, GaFileError> {
        parse(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A copy of the bytes to write, wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.buf.to_vec())
    }

    /// The secret from line 1 (everything up to the first LF), GA-decoded.
    pub fn secret(&self) -> Result<Secret, GaFileError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.buf.len());
        let bytes = Zeroizing::new(
            base32::decode_lenient(&self.buf[..end])
                .map_err(|e| GaFileError::BadSecret { offset: e.offset })?,
        );
        if bytes.is_empty() {
            return Err(GaFileError::EmptySecret);
        }
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(GaFileError::SecretTooLong);
        }
        Ok(Secret::from_slice(&bytes))
    }

    /// Raw value of the first `" KEY` line (leading blanks removed, up to CR/LF).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let buf: &[u8] = &self.buf;
        spans(buf)
            .find_map(|s| match_key(buf, s, key.as_bytes()))
            .map(|(a, b)| &buf[a..b])
    }

    /// Whether a `" KEY` line exists.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// GA's `set_cfg_value`: replace the first `" KEY` line (and the CR/LF run after
    /// it) with `" KEY value\n`, delete later duplicates, or insert the line right
    /// after line 1 when the key is absent. Unlike GA, a line 1 without any line
    /// break gets a LF first, instead of the new line being glued onto the secret.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), GaFileError> {
        if !valid_key(key) {
            return Err(GaFileError::BadKey);
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(GaFileError::BadValueBytes);
        }
        let line = Zeroizing::new(format!("\" {key} {value}\n").into_bytes());
        let (start, stop) = match self.dedup_key(key) {
            Some(s) => (s.start, s.next),
            None => return self.insert_after_first_line(&line),
        };
        self.splice(start, stop, &[&line])
    }

    /// Removes every `" KEY` line with the CR/LF run after it. Returns whether any
    /// line was removed. (GA never removes keys; we use it for our own keys.)
    pub fn remove(&mut self, key: &str) -> bool {
        let mut removed = false;
        let mut pos = 0;
        while pos < self.buf.len() {
            let s = span_at(&self.buf, pos);
            if match_key(&self.buf, s, key.as_bytes()).is_some() {
                // Shrinking in place never reallocates, so no unwiped copy remains.
                self.buf.drain(s.start..s.next);
                removed = true;
            } else {
                pos = s.next;
            }
        }
        removed
    }

    /// Scratch codes in file order, as GA sees them (scanning stops at the first
    /// line that is neither a code, blank, nor a `"` line).
    pub fn scratch_codes(&self) -> Zeroizing<Vec<u32>> {
        Zeroizing::new(
            self.scratch_lines()
                .into_iter()
                .map(|(_, _, v)| v)
                .collect(),
        )
    }

    /// Removes the first visible scratch line holding `code` (GA: the line and the
    /// CR/LF run after it). Returns whether one was removed.
    pub fn remove_scratch_code(&mut self, code: u32) -> bool {
        match self
            .scratch_lines()
            .into_iter()
            .find(|&(_, _, v)| v == code)
        {
            Some((start, next, _)) => {
                self.buf.drain(start..next);
                true
            }
            None => false,
        }
    }

    /// Replaces all visible scratch codes with `codes`, appended at the end of the
    /// file as `%08d\n` lines (GA's tool writes them last).
    pub fn regenerate_scratch_codes(&mut self, codes: &[u32]) -> Result<(), GaFileError> {
        if codes
            .iter()
            .any(|c| !(SCRATCH_MIN..=SCRATCH_MAX).contains(c))
        {
            return Err(GaFileError::BadScratchCode);
        }
        for (start, next, _) in self.scratch_lines().into_iter().rev() {
            self.buf.drain(start..next);
        }
        let mut tail = Zeroizing::new(Vec::with_capacity(codes.len() * 9 + 1));
        if self.buf.last().is_some_and(|&b| !is_eol(b)) {
            tail.push(b'\n');
        }
        for c in codes {
            tail.extend_from_slice(format!("{c:08}\n").as_bytes());
        }
        let len = self.buf.len();
        self.splice(len, len, &[&tail])
    }

    /// The typed, validated view of the option lines.
    pub fn config(&self) -> Result<Config, GaFileError> {
        fn bad(key: &'static str) -> GaFileError {
            GaFileError::BadValue { key }
        }
        let counter = match self.get(KEY_HOTP_COUNTER) {
            None => 0,
            Some(v) => strict_u64(v)
                .filter(|&c| c <= MAX_COUNTER)
                .ok_or(bad(KEY_HOTP_COUNTER))?,
        };
        let totp_marker = self.buf.windows(11).any(|w| w == b"\" TOTP_AUTH");
        let mode = if counter >= 1 {
            Mode::Hotp { counter }
        } else if totp_marker {
            Mode::Totp
        } else {
            Mode::ScratchOnly
        };
        let window = self
            .get(KEY_WINDOW_SIZE)
            .map(|v| ga_small_number(v, 100).ok_or(bad(KEY_WINDOW_SIZE)))
            .transpose()?;
        let step = self
            .get(KEY_STEP_SIZE)
            .map(|v| ga_small_number(v, 60).ok_or(bad(KEY_STEP_SIZE)))
            .transpose()?;
        let disallow_reuse = self
            .get(KEY_DISALLOW_REUSE)
            .map(|v| parse_reuse_list(v).ok_or(bad(KEY_DISALLOW_REUSE)))
            .transpose()?;
        let rate_limit = self
            .get(KEY_RATE_LIMIT)
            .map(|v| parse_rate_limit(v).ok_or(bad(KEY_RATE_LIMIT)))
            .transpose()?;
        let time_skew = self
            .get(KEY_TIME_SKEW)
            .map(|v| parse_time_skew(v).ok_or(bad(KEY_TIME_SKEW)))
            .transpose()?;
        let algorithm = self
            .get(KEY_ALGORITHM)
            .map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(bad(KEY_ALGORITHM))
            })
            .transpose()?
            .unwrap_or_default();
        let digits = self
            .get(KEY_DIGITS)
            .map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(bad(KEY_DIGITS))
            })
            .transpose()?
            .unwrap_or_default();
        let last_step = self
            .get(KEY_LAST_STEP)
            .map(|v| {
                strict_u64(v)
                    .filter(|&s| s <= MAX_COUNTER)
                    .ok_or(bad(KEY_LAST_STEP))
            })
            .transpose()?;
        let failures = self
            .get(KEY_FAILURES)
            .map(|v| parse_failures(v).ok_or(bad(KEY_FAILURES)))
            .transpose()?;
        let grace = (0..10u8)
            .filter_map(|slot| {
                let key = format!("LAST{slot}");
                self.get(&key).and_then(|v| parse_grace(slot, v))
            })
            .collect();
        Ok(Config {
            mode,
            window,
            step,
            disallow_reuse,
            rate_limit,
            time_skew,
            resetting_time_skew: self.contains_key(KEY_RESETTING_TIME_SKEW),
            algorithm,
            digits,
            last_step,
            failures,
            grace,
        })
    }

    /// A new file in the layout of GA's enrollment tool: secret, mode line, scratch
    /// codes, then each option inserted after line 1 (so they read in reverse order
    /// of addition: `RATE_LIMIT`, `WINDOW_SIZE`, `STEP_SIZE`, `DISALLOW_REUSE`). Our
    /// `PAM_TOTP_ALGORITHM` / `PAM_TOTP_DIGITS` lines are added last, and only when
    /// not SHA1 / 6.
    pub fn new_enrollment(secret: &Secret, s: &EnrollSettings) -> Result<GaFile, GaFileError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
            return Err(GaFileError::BadSettings("secret length"));
        }
        if s.step.is_some_and(|v| !(1..=60).contains(&v)) {
            return Err(GaFileError::BadSettings("step"));
        }
        if s.window.is_some_and(|v| !(1..=100).contains(&v)) {
            return Err(GaFileError::BadSettings("window"));
        }
        if s.rate_limit
            .is_some_and(|(n, m)| !(1..=100).contains(&n) || !(1..=3600).contains(&m))
        {
            return Err(GaFileError::BadSettings("rate limit"));
        }
        if !s.totp && (s.disallow_reuse || s.step.is_some()) {
            return Err(GaFileError::BadSettings(
                "reuse and step apply to TOTP only",
            ));
        }
        if s.scratch_codes
            .iter()
            .any(|c| !(SCRATCH_MIN..=SCRATCH_MAX).contains(c))
        {
            return Err(GaFileError::BadScratchCode);
        }
        let mut text = Zeroizing::new(base32::encode(secret.as_bytes()));
        text.push('\n');
        text.push_str(if s.totp {
            "\" TOTP_AUTH\n"
        } else {
            "\" HOTP_COUNTER 1\n"
        });
        for c in &s.scratch_codes {
            text.push_str(&format!("{c:08}\n"));
        }
        let mut f = GaFile {
            buf: Zeroizing::new(text.as_bytes().to_vec()),
        };
        if s.disallow_reuse {
            f.insert_after_first_line(b"\" DISALLOW_REUSE\n")?;
        }
        if let Some(v) = s.step {
            f.insert_after_first_line(format!("\" STEP_SIZE {v}\n").as_bytes())?;
        }
        if let Some(v) = s.window {
            f.insert_after_first_line(format!("\" WINDOW_SIZE {v}\n").as_bytes())?;
        }
        if let Some((n, m)) = s.rate_limit {
            f.insert_after_first_line(format!("\" RATE_LIMIT {n} {m}\n").as_bytes())?;
        }
        if s.algorithm != Algorithm::Sha1 {
            f.set(KEY_ALGORITHM, s.algorithm.name())?;
        }
        if s.digits != Digits::SIX {
            f.set(KEY_DIGITS, &s.digits.to_string())?;
        }
        f.config()?;
        Ok(f)
    }

    /// The file with every option line whose key satisfies `drop` removed; used to
    /// tell which kind of state an update touched.
    pub fn without_keys(&self, drop: impl Fn(&[u8]) -> bool) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.buf.len()));
        for s in spans(&self.buf) {
            if line_key(&self.buf, s).is_some_and(&drop) {
                continue;
            }
            out.extend_from_slice(&self.buf[s.start..s.next]);
        }
        out
    }

    /// Deletes duplicates of `key` after the first and returns the first's span.
    fn dedup_key(&mut self, key: &str) -> Option<Span> {
        let mut first: Option<Span> = None;
        let mut pos = 0;
        while pos < self.buf.len() {
            let s = span_at(&self.buf, pos);
            if match_key(&self.buf, s, key.as_bytes()).is_some() {
                if first.is_none() {
                    first = Some(s);
                } else {
                    self.buf.drain(s.start..s.next);
                    continue;
                }
            }
            pos = s.next;
        }
        first
    }

    fn insert_after_first_line(&mut self, line: &[u8]) -> Result<(), GaFileError> {
        let first = span_at(&self.buf, 0);
        if first.next == first.end {
            let end = first.end;
            self.splice(end, end, &[b"\n", line])
        } else {
            self.splice(first.next, first.next, &[line])
        }
    }

    /// Replaces `start..stop` with `parts`, building a fresh buffer so that growth
    /// never leaves an unwiped copy behind in freed memory.
    fn splice(&mut self, start: usize, stop: usize, parts: &[&[u8]]) -> Result<(), GaFileError> {
        let add: usize = parts.iter().map(|p| p.len()).sum();
        let len = self.buf.len() - (stop - start) + add;
        if len > MAX_FILE_LEN {
            return Err(GaFileError::TooLarge);
        }
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(&self.buf[..start]);
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.buf[stop..]);
        self.buf = out;
        Ok(())
    }

    /// `(line start, end of its CR/LF run, value)` for each visible scratch code.
    fn scratch_lines(&self) -> Vec<(usize, usize, u32)> {
        let buf: &[u8] = &self.buf;
        let mut out = Vec::new();
        let Some(mut pos) = buf.iter().position(|&b| b == b'\n') else {
            return out;
        };
        loop {
            while pos < buf.len() && is_eol(buf[pos]) {
                pos += 1;
            }
            if pos >= buf.len() {
                return out;
            }
            if buf[pos] == b'"' {
                pos = buf[pos..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(buf.len(), |p| pos + p);
                continue;
            }
            let s = span_at(buf, pos);
            match parse_scratch_line(&buf[s.start..s.end]) {
                Some(v) => out.push((s.start, s.next, v)),
                None => return out,
            }
            pos = s.end;
        }
    }
}

/// GA's `RATE_LIMIT` step (its documented algorithm): append `now`, sort, drop entries older
/// than `now − interval` or later than `now`, and if more than `attempts` remain,
/// keep the newest `attempts` and report the attempt as exceeded.
pub fn rate_limit_update(rl: &RateLimit, now: u64) -> (RateLimit, bool) {
    let mut ts = rl.timestamps.clone();
    ts.push(now);
    ts.sort_unstable();
    let lo = now.saturating_sub(u64::from(rl.interval_secs));
    let mut start: usize = 0;
    let mut stop: Option<usize> = None;
    for (i, &t) in ts.iter().enumerate() {
        if t < lo {
            start = i + 1;
        } else if t > now {
            break;
        }
        stop = Some(i);
    }
    let attempts = rl.attempts as usize;
    let kept: &[u64] = match stop {
        Some(stop) if stop + 1 > start => {
            let exceeded = stop + 1 - start > attempts;
            if exceeded {
                start = stop + 1 - attempts;
            }
            let out = RateLimit {
                attempts: rl.attempts,
                interval_secs: rl.interval_secs,
                timestamps: ts[start..=stop].to_vec(),
            };
            return (out, exceeded);
        }
        _ => &[],
    };
    (
        RateLimit {
            attempts: rl.attempts,
            interval_secs: rl.interval_secs,
            timestamps: kept.to_vec(),
        },
        false,
    )
}

/// The `RATE_LIMIT` value as GA prints it: `"%d %d"` then `" %u"` per timestamp.
pub fn format_rate_limit(rl: &RateLimit) -> String {
    let mut s = format!("{} {}", rl.attempts, rl.interval_secs);
    for t in &rl.timestamps {
        s.push_str(&format!(" {t}"));
    }
    s
}

/// GA's `DISALLOW_REUSE` update for accepted step `tm`, on the raw value so the
/// bytes match GA's (including its spacing quirks): `None` if `tm` is listed,
/// otherwise the new value with entries `|entry − tm| ≥ window` pruned and `tm`
/// appended.
pub fn disallow_reuse_update(
    value: &[u8],
    tm: u64,
    window: u64,
) -> Result<Option<String>, GaFileError> {
    let bad = GaFileError::BadValue {
        key: KEY_DISALLOW_REUSE,
    };
    let mut v = value.to_vec();
    let mut p = 0;
    loop {
        while p < v.len() && matches!(v[p], b' ' | b'\t' | b'\r' | b'\n') {
            p += 1;
        }
        if p >= v.len() {
            break;
        }
        let (blocked, end) = scan_u64(&v, p).ok_or(bad.clone())?;
        if end < v.len() && !matches!(v[end], b' ' | b'\t' | b'\r' | b'\n') {
            return Err(bad);
        }
        if blocked == tm {
            return Ok(None);
        }
        if blocked.abs_diff(tm) >= window {
            let mut e = end;
            while e < v.len() && matches!(v[e], b' ' | b'\t') {
                e += 1;
            }
            v.drain(p..e);
        } else {
            p = end;
        }
    }
    let mut s = String::from_utf8(v).map_err(|_| bad)?;
    if s.is_empty() {
        s = tm.to_string();
    } else {
        s.push_str(&format!(" {tm}"));
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests;
