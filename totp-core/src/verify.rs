//! The verification state machine: (file, policy, answer, now) → (verdict, file).
//!
//! Everything is a pure function of its arguments; the clock is a parameter.
//! Verification is split in two so the module can persist in between (R15):
//!
//! 1. [`begin`] does the bookkeeping that must happen whatever the answer turns
//!    out to be: GA's `RATE_LIMIT` list, the backoff and hard-cap decisions, and
//!    the failure counter pre-charged by one. The module writes `Begin::file`
//!    *before* looking at the code, so killing the process mid-way can never give
//!    an attacker a free guess.
//! 2. [`finish`] evaluates the candidates (scratch codes first, then HOTP or
//!    TOTP) and returns the file to persist before `PAM_SUCCESS` is returned.
//!
//! [`authenticate`] composes both for callers that write once. [`grace_applies`]
//! is the pre-prompt grace-period check.
//!
//! Safe defaults where GA is weak (each documented in `docs/file-format.md`):
//! replay protection is always on through the `PAM_TOTP_LAST_STEP` high-water
//! mark; automatic skew learning never happens; throttling is always on through
//! `PAM_TOTP_FAILURES`; window and skew are capped by the admin policy; every
//! window position is computed and compared in constant time.

use std::fmt;
use std::net::IpAddr;

use subtle::{Choice, ConditionallySelectable};

use crate::code::{Candidate, Code};
use crate::gafile::{
    self, Config, FileError, GaFile, KEY_DISALLOW_REUSE, KEY_FAILURES, KEY_HOTP_COUNTER,
    KEY_LAST_STEP, KEY_RATE_LIMIT, MAX_COUNTER, Mode,
};
use crate::otp::{self, Digits};
use crate::policy::{Policy, RECOMMENDED_SECRET_BITS};
use crate::secret::Secret;

/// How a code was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// TOTP; `step` is the accepted time step (including any skew).
    Totp {
        step: u64,
    },
    /// HOTP; `counter` is the matched counter (the file now holds `counter + 1`).
    Hotp {
        counter: u64,
    },
    Scratch,
}

/// The result of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted(Method),
    /// No candidate matched (or there was no well-formed candidate).
    Rejected,
    /// The code matched a step already used (high-water mark or `DISALLOW_REUSE`).
    Replayed,
    /// Refused unevaluated: backoff running or GA's `RATE_LIMIT` exceeded. The
    /// module still prompts and discards the answer.
    Throttled,
    /// Refused unevaluated: the admin hard cap (`max_failures`) is reached.
    Disabled,
}

impl Verdict {
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Accepted(_))
    }
}

/// Whether [`begin`] lets the attempt be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Evaluate,
    /// Backoff running until this unix time.
    Throttled {
        until: u64,
    },
    /// GA's `RATE_LIMIT` line says too many attempts.
    RateLimited,
    /// Hard cap reached; needs an admin to remove `PAM_TOTP_FAILURES`.
    Disabled,
}

/// Things worth a log line; never contains secrets or codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// Secret shorter than 128 bits (accepted, R10).
    LegacySecret { bits: usize },
    /// File `WINDOW_SIZE` above the admin cap.
    WindowClamped { file: u32, used: u32 },
    /// File `TIME_SKEW` beyond the admin cap.
    SkewClamped { file: i64, used: i64 },
    /// GA's "Too many concurrent login attempts".
    RateLimitExceeded,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LegacySecret { bits } => write!(
                f,
                "secret is only {bits} bits; re-enroll for a 160-bit secret"
            ),
            Self::WindowClamped { file, used } => {
                write!(f, "WINDOW_SIZE {file} exceeds the admin cap; using {used}")
            }
            Self::SkewClamped { file, used } => {
                write!(f, "TIME_SKEW {file} exceeds the admin cap; using {used}")
            }
            Self::RateLimitExceeded => f.write_str("too many login attempts (RATE_LIMIT)"),
        }
    }
}

/// Reasons to deny without evaluating and without changing state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    File(FileError),
    /// Secret below the policy minimum (never below 80 bits).
    SecretTooShort {
        bits: usize,
        min: u32,
    },
    /// Clock before 1970, or too far behind the state in the file.
    ClockFault,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "bad secret file: {e}"),
            Self::SecretTooShort { bits, min } => {
                write!(f, "secret has {bits} bits, at least {min} required")
            }
            Self::ClockFault => {
                f.write_str("clock fault: time is before 1970 or behind the recorded state")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<FileError> for Error {
    fn from(e: FileError) -> Self {
        Self::File(e)
    }
}

/// Result of [`begin`].
#[derive(Clone, Debug)]
pub struct Begin {
    /// Persist this before evaluating the answer.
    pub file: GaFile,
    pub admission: Admission,
    /// Whether `file` differs from the input (it always does when admitted).
    pub changed: bool,
    pub warnings: Vec<Warning>,
}

impl Begin {
    pub fn may_evaluate(&self) -> bool {
        self.admission == Admission::Evaluate
    }
}

/// Result of [`finish`] / [`authenticate`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Persist this (when `changed`) before returning success.
    pub file: GaFile,
    /// Whether `file` differs from the file passed in.
    pub changed: bool,
    /// The only difference is `LASTn` grace bookkeeping: the one write failure
    /// `allow_readonly` may excuse.
    pub only_grace_bookkeeping: bool,
    /// Index into the candidate list of the accepted candidate (for `forward_pass`).
    pub matched: Option<usize>,
    pub warnings: Vec<Warning>,
}

/// What every step needs: validated config, secret, effective window and skew.
struct Checked {
    cfg: Config,
    secret: Secret,
    window: u32,
    skew: i64,
    now: u64,
    warnings: Vec<Warning>,
}

fn check(file: &GaFile, policy: &Policy, now: i64) -> Result<Checked, Error> {
    let cfg = file.config()?;
    let secret = file.secret()?;
    let min = policy.effective_min_secret_bits();
    let bits = secret.bits();
    if bits < min as usize {
        return Err(Error::SecretTooShort { bits, min });
    }
    let mut warnings = Vec::new();
    if bits < RECOMMENDED_SECRET_BITS as usize {
        warnings.push(Warning::LegacySecret { bits });
    }
    let now = u64::try_from(now).map_err(|_| Error::ClockFault)?;
    let horizon = now.saturating_add(policy.max_clock_lag_secs);
    if cfg
        .last_step
        .is_some_and(|ls| ls.saturating_mul(cfg.step_secs()) > horizon)
    {
        return Err(Error::ClockFault);
    }
    if cfg.failures.is_some_and(|f| f.last > horizon) {
        return Err(Error::ClockFault);
    }
    let file_window = cfg.window_or_default();
    let max_window = policy.max_window.clamp(1, 100);
    let window = file_window.min(max_window);
    if window != file_window {
        warnings.push(Warning::WindowClamped {
            file: file_window,
            used: window,
        });
    }
    let file_skew = cfg.time_skew.unwrap_or(0);
    let cap = i64::from(policy.max_time_skew);
    let skew = file_skew.clamp(-cap, cap);
    if skew != file_skew {
        warnings.push(Warning::SkewClamped {
            file: file_skew,
            used: skew,
        });
    }
    Ok(Checked {
        cfg,
        secret,
        window,
        skew,
        now,
        warnings,
    })
}

/// End of the running backoff, if one is running at `now`.
fn backoff_until(cfg: &Config, policy: &Policy, now: u64) -> Option<u64> {
    let f = cfg.failures?;
    let delay = policy.backoff_secs(f.count);
    let until = f.last.saturating_add(delay);
    (delay > 0 && now < until).then_some(until)
}

fn hard_capped(cfg: &Config, policy: &Policy) -> bool {
    let count = cfg.failures.map_or(0, |f| f.count);
    policy.max_failures.is_some_and(|m| count >= m)
}

/// Step 1: record the attempt (see the module docs). Errors leave the state as
/// it was; the caller denies.
pub fn begin(file: GaFile, policy: &Policy, now: i64) -> Result<Begin, Error> {
    let c = check(&file, policy, now)?;
    let mut f = file.clone();
    let mut warnings = c.warnings;
    let mut rate_exceeded = false;
    if let Some(rl) = &c.cfg.rate_limit {
        let (updated, exceeded) = gafile::rate_limit_update(rl, c.now);
        f.set(KEY_RATE_LIMIT, &gafile::format_rate_limit(&updated))?;
        rate_exceeded = exceeded;
        if exceeded {
            warnings.push(Warning::RateLimitExceeded);
        }
    }
    let admission = if hard_capped(&c.cfg, policy) {
        Admission::Disabled
    } else if let Some(until) = backoff_until(&c.cfg, policy, c.now) {
        // Not charged: a stranger can make a user wait, but cannot extend the wait.
        Admission::Throttled { until }
    } else if rate_exceeded {
        Admission::RateLimited
    } else {
        let count = c.cfg.failures.map_or(0, |x| x.count);
        let count = count.saturating_add(1).min(gafile::MAX_FAILURE_COUNT);
        f.set(KEY_FAILURES, &format!("{count} {}", c.now))?;
        Admission::Evaluate
    };
    let changed = f != file;
    Ok(Begin {
        file: f,
        admission,
        changed,
        warnings,
    })
}

/// Constant-time search: computes and compares every position, then picks the
/// lowest matching counter for which `acceptable` holds. Returns
/// `(any match, accepted counter)`.
fn search_window(
    c: &Checked,
    code: &Code,
    counters: impl Iterator<Item = u64>,
    digits: Digits,
    acceptable: impl Fn(u64) -> bool,
) -> (bool, Option<u64>) {
    let mut hits: Vec<(u64, Choice)> = Vec::new();
    for ctr in counters {
        let expected = Code::from_value(otp::hotp(&c.secret, ctr, c.cfg.algorithm, digits), digits);
        hits.push((ctr, expected.ct_eq(code)));
    }
    let mut any = Choice::from(0);
    for (_, eq) in &hits {
        any.conditional_assign(&Choice::from(1), *eq);
    }
    let accepted = hits
        .iter()
        .filter(|(_, eq)| bool::from(*eq))
        .map(|&(ctr, _)| ctr)
        .find(|&ctr| acceptable(ctr));
    (bool::from(any), accepted)
}

enum OtpResult {
    Accepted(Method),
    Replayed,
    NoMatch,
}

fn check_totp(c: &Checked, f: &mut GaFile, code: &Code) -> Result<OtpResult, Error> {
    let step_secs = c.cfg.step_secs();
    let t = otp::totp_step(c.now as i64, step_secs).ok_or(Error::ClockFault)?;
    let w = i128::from(c.window);
    let base = i128::from(t) + i128::from(c.skew);
    let counters = (-((w - 1) / 2)..=w / 2)
        .map(|i| base + i)
        .filter(|&v| (0..=i128::from(MAX_COUNTER)).contains(&v))
        .map(|v| v as u64);
    let reuse = c.cfg.disallow_reuse.clone().unwrap_or_default();
    let last = c.cfg.last_step;
    let (any, accepted) = search_window(c, code, counters, c.cfg.digits, |s| {
        last.is_none_or(|l| s > l) && !reuse.contains(&s)
    });
    let Some(step) = accepted else {
        return Ok(if any {
            OtpResult::Replayed
        } else {
            OtpResult::NoMatch
        });
    };
    if let Some(value) = f.get(KEY_DISALLOW_REUSE) {
        // GA prunes with the file's own window, so its bytes match GA's.
        let file_window = u64::from(c.cfg.window_or_default());
        match gafile::disallow_reuse_update(value, step, file_window)? {
            Some(v) => f.set(KEY_DISALLOW_REUSE, &v)?,
            None => return Ok(OtpResult::Replayed),
        }
    }
    f.set(KEY_LAST_STEP, &step.to_string())?;
    Ok(OtpResult::Accepted(Method::Totp { step }))
}

fn check_hotp(c: &Checked, f: &mut GaFile, code: &Code, counter: u64) -> Result<OtpResult, Error> {
    let end = counter.saturating_add(u64::from(c.window)).min(MAX_COUNTER);
    let (_, accepted) = search_window(c, code, counter..end, c.cfg.digits, |_| true);
    Ok(match accepted {
        Some(ctr) => {
            f.set(KEY_HOTP_COUNTER, &(ctr + 1).to_string())?;
            OtpResult::Accepted(Method::Hotp { counter: ctr })
        }
        None => OtpResult::NoMatch,
    })
}

/// Index-free constant-time scan of the scratch codes; returns the matched value.
fn check_scratch(f: &GaFile, code: &Code) -> Option<u32> {
    let codes = f.scratch_codes();
    let mut found = 0u32;
    for &v in codes.iter() {
        let eq = Code::from_value(v, Digits::EIGHT).ct_eq(code);
        found.conditional_assign(&v, eq);
    }
    (found != 0).then_some(found)
}

fn is_grace_key(key: &[u8]) -> bool {
    matches!(key, [b'L', b'A', b'S', b'T', d] if d.is_ascii_digit())
}

fn same_host(stored: &str, rhost: IpAddr) -> bool {
    stored
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical() == rhost.to_canonical())
}

/// GA's `LASTn` update: the slot already holding this host, else the first empty
/// slot, else the oldest entry (malformed lines are skipped, as GA does).
fn record_grace(cfg: &Config, f: &mut GaFile, rhost: IpAddr, now: u64) -> Result<(), Error> {
    let host = rhost.to_canonical();
    let mut empty = None;
    let mut oldest: Option<(u64, u8)> = None;
    let mut found = None;
    for slot in 0..10u8 {
        let key = format!("LAST{slot}");
        if !f.contains_key(&key) {
            empty = empty.or(Some(slot));
            continue;
        }
        let Some(e) = cfg.grace.iter().find(|e| e.slot == slot) else {
            continue;
        };
        if same_host(&e.host, host) {
            found = Some(slot);
            break;
        }
        if oldest.is_none_or(|(w, _)| e.when < w) {
            oldest = Some((e.when, slot));
        }
    }
    let slot = found.or(empty).or(oldest.map(|(_, s)| s)).unwrap_or(0);
    f.set(&format!("LAST{slot}"), &format!("{host} {now}"))?;
    Ok(())
}

fn summarize(before: &GaFile, after: &GaFile) -> (bool, bool) {
    let changed = before != after;
    let only_grace =
        changed && *before.without_keys(is_grace_key) == *after.without_keys(is_grace_key);
    (changed, only_grace)
}

/// Step 2: evaluate the candidates against the file [`begin`] returned. A refused
/// attempt (`Throttled`, `Disabled`) is reported without evaluation and without
/// any change.
pub fn finish(
    begun: Begin,
    policy: &Policy,
    candidates: &[Candidate],
    now: i64,
    rhost: Option<IpAddr>,
) -> Result<Outcome, Error> {
    let refused = match begun.admission {
        Admission::Evaluate => None,
        Admission::Throttled { .. } | Admission::RateLimited => Some(Verdict::Throttled),
        Admission::Disabled => Some(Verdict::Disabled),
    };
    if let Some(verdict) = refused {
        return Ok(Outcome {
            verdict,
            file: begun.file,
            changed: false,
            only_grace_bookkeeping: false,
            matched: None,
            warnings: begun.warnings,
        });
    }
    let c = check(&begun.file, policy, now)?;
    let before = begun.file;
    let mut f = before.clone();
    let mut verdict = Verdict::Rejected;
    let mut matched = None;
    let mut hotp_failed = false;
    for (idx, cand) in candidates.iter().enumerate() {
        let result = if cand.scratch {
            match check_scratch(&f, &cand.code) {
                Some(v) => {
                    f.remove_scratch_code(v);
                    OtpResult::Accepted(Method::Scratch)
                }
                None => OtpResult::NoMatch,
            }
        } else if cand.code.len() != c.cfg.digits.len() {
            OtpResult::NoMatch
        } else {
            match c.cfg.mode {
                Mode::ScratchOnly => OtpResult::NoMatch,
                Mode::Totp => check_totp(&c, &mut f, &cand.code)?,
                Mode::Hotp { counter } => {
                    let r = check_hotp(&c, &mut f, &cand.code, counter)?;
                    hotp_failed |= matches!(r, OtpResult::NoMatch);
                    r
                }
            }
        };
        match result {
            OtpResult::Accepted(m) => {
                verdict = Verdict::Accepted(m);
                matched = Some(idx);
                break;
            }
            // GA ends the loop on a replay instead of trying further readings.
            OtpResult::Replayed => {
                verdict = Verdict::Replayed;
                break;
            }
            OtpResult::NoMatch => {}
        }
    }
    if let (Mode::Hotp { counter }, false) = (c.cfg.mode, policy.no_increment_hotp) {
        // GA advances once per attempt, even when a scratch code then succeeded.
        if hotp_failed && !matches!(verdict, Verdict::Accepted(Method::Hotp { .. })) {
            f.set(KEY_HOTP_COUNTER, &(counter.saturating_add(1)).to_string())?;
        }
    }
    if verdict.is_accepted() {
        f.remove(KEY_FAILURES);
        if let (true, Some(ip)) = (policy.grace_period_secs > 0, rhost) {
            record_grace(&c.cfg, &mut f, ip, c.now)?;
        }
    }
    let (changed, only_grace_bookkeeping) = summarize(&before, &f);
    Ok(Outcome {
        verdict,
        file: f,
        changed,
        only_grace_bookkeeping,
        matched,
        warnings: c.warnings,
    })
}

/// [`begin`] then [`finish`], for callers that persist once; `changed` and
/// `only_grace_bookkeeping` are relative to `file`.
pub fn authenticate(
    file: GaFile,
    policy: &Policy,
    candidates: &[Candidate],
    now: i64,
    rhost: Option<IpAddr>,
) -> Result<Outcome, Error> {
    let original = file.clone();
    let b = begin(file, policy, now)?;
    let mut out = finish(b, policy, candidates, now, rhost)?;
    let (changed, only_grace) = summarize(&original, &out.file);
    out.changed = changed;
    out.only_grace_bookkeeping = only_grace;
    Ok(out)
}

/// GA's grace period, checked before prompting: a `LASTn` entry for this numeric
/// address with `when ≤ now < when + grace_period`. Never with grace off, without
/// an address, for a hard-capped account or while a backoff runs. Host names in
/// `LASTn` never match (the caller passes only a parsed IP literal).
pub fn grace_applies(
    file: &GaFile,
    policy: &Policy,
    rhost: Option<IpAddr>,
    now: i64,
) -> Result<bool, Error> {
    let Some(ip) = rhost else {
        return Ok(false);
    };
    if policy.grace_period_secs == 0 {
        return Ok(false);
    }
    let c = check(file, policy, now)?;
    if hard_capped(&c.cfg, policy) || backoff_until(&c.cfg, policy, c.now).is_some() {
        return Ok(false);
    }
    Ok(c.cfg.grace.iter().any(|e| {
        same_host(&e.host, ip)
            && e.when <= c.now
            && c.now < e.when.saturating_add(policy.grace_period_secs)
    }))
}

#[cfg(test)]
mod tests;
