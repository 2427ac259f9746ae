//! Verification: (secret file, user state, policy, answer, origin, now) →
//! (verdict, state write, secret-file change).
//!
//! Everything is a pure function of its arguments; the clock is a parameter. One
//! attempt is two steps:
//!
//! 1. [`prepare`] reads the secret file (configuration) and computes, in constant time,
//!    which window positions and scratch codes every candidate matches. Nothing is
//!    decided yet and nothing leaves the process.
//! 2. [`Prepared::decide`] runs inside the state store's one atomic update
//!    ([`crate::state::StateStore::update`]): throttling admission, the replay check
//!    and the record of the attempt, all from the same record. The caller releases the
//!    verdict only after the store has written what `decide` returned.
//!
//! Why one write is enough (R15): a failure and a success take the same path up to the
//! store write (the match was computed before, in memory, and is not observable), and
//! the store write that records the attempt happens before the verdict leaves the
//! process. Killing the process before that write gives an attacker no answer;
//! killing it after gives an answer that is already recorded (a charged failure or a
//! used step). The old scheme wrote a pre-charged failure before looking at the code
//! and a second time after; this one writes once.
//!
//! The secret file is configuration: it changes only when a scratch code is used up or
//! the HOTP counter advances (as GA does), returned as [`Decision::file`].
//!
//! Safe defaults where GA is weak (`docs/file-format.md`): replay protection always on
//! through the store's high-water mark (raised by a `PAM_TOTP_LAST_STEP` line in the
//! file, never lowered by one); no skew learning; throttling always on; window and
//! skew capped by the admin policy.

use std::fmt;
use std::net::IpAddr;

use subtle::{Choice, ConditionallySelectable};

use crate::code::{Candidate, Code};
use crate::gafile::{
    self, Config, GaFile, GaFileError, KEY_HOTP_COUNTER, MAX_COUNTER, Mode, RateLimit,
};
use crate::ledger::{Ledger, OriginKey};
use crate::otp::{self, Digits};
use crate::policy::{Policy, RECOMMENDED_SECRET_BITS};
use crate::secret::Secret;
use crate::state::{StoreError, UserState, Write};

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
    /// Refused unevaluated: a backoff, the per-user ceiling or GA's `RATE_LIMIT`.
    Throttled,
    /// Refused unevaluated: the admin hard cap (`max_failures`) is reached.
    Disabled,
}

impl Verdict {
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Accepted(_))
    }
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
    /// First use of the state store: the file's old throttling lines were taken over.
    Migrated,
    /// Throttling records were dated after the clock by more than the allowed lag (the
    /// clock was far ahead when they were written, or is far behind now); they were
    /// dropped. The replay mark is never dropped this way.
    FutureRecordsDropped { latest: u64 },
    /// The code is from the step of the last boot or before (within the window): it
    /// counts as used after a restart, and the next code works.
    UsedBeforeBoot,
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
                write!(
                    f,
                    "TIME_SKEW {file} exceeds the admin cap; using {used} (if the phone's \
                     clock is off, \"totp-enroll resync\" measures it again within the cap)"
                )
            }
            Self::RateLimitExceeded => f.write_str("too many login attempts (RATE_LIMIT)"),
            Self::Migrated => f.write_str(
                "first use of the state store: throttling lines of the secret file taken over",
            ),
            Self::FutureRecordsDropped { latest } => write!(
                f,
                "throttling records dated {latest} are ahead of the clock; dropped them (check the clock)"
            ),
            Self::UsedBeforeBoot => f.write_str(
                "code of a time step before the last boot: counted as used after a restart; the next code works",
            ),
        }
    }
}

/// Reasons to deny without evaluating and without changing state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    File(GaFileError),
    /// Secret below the policy minimum (never below 80 bits).
    SecretTooShort {
        bits: usize,
        min: u32,
    },
    /// Clock before 1970.
    ClockFault,
    /// The replay mark is further ahead of the clock than the allowed lag: either the
    /// clock is wrong now, or it was far ahead when the mark was recorded (bad RTC,
    /// restored VM). Never resolved automatically, because lowering the mark could
    /// re-admit used codes; the admin tool's reset is the recovery.
    StateAhead {
        /// Unix time of the recorded mark's step.
        mark_time: u64,
        /// The mark came from a `PAM_TOTP_LAST_STEP` line in the secret file.
        in_file: bool,
    },
    /// The stored throttling record cannot be decoded.
    Store(StoreError),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "bad secret file: {e}"),
            Self::SecretTooShort { bits, min } => {
                write!(f, "secret has {bits} bits, at least {min} required")
            }
            Self::ClockFault => f.write_str("clock fault: time is before 1970"),
            Self::StateAhead { mark_time, in_file } => write!(
                f,
                "the last accepted code is dated {mark_time} (unix time), far after the clock{}",
                if *in_file {
                    " (PAM_TOTP_LAST_STEP line of the secret file)"
                } else {
                    ""
                }
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<GaFileError> for VerifyError {
    fn from(e: GaFileError) -> Self {
        Self::File(e)
    }
}

/// What one attempt is, besides the answer.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub origin: OriginKey,
    /// `PAM_RHOST` as a strict IP literal (grace period).
    pub rhost: Option<IpAddr>,
    pub now: i64,
    /// The attempt was admitted and charged by an earlier check of the same
    /// authentication (`try_first_pass`): no admission, no second charge.
    pub continued: bool,
    /// When the kernel booted (unix seconds), if known. Every TOTP step up to the boot,
    /// plus the steps the window reaches ahead, counts as used: a used code recorded
    /// without an fsync and lost in a power loss or crash (which always ends in a
    /// reboot) is still refused. With it, a used TOTP code is written lazily; without
    /// it, durably.
    pub boot_time: Option<u64>,
}

/// What [`Prepared::decide`] decided.
#[derive(Clone, Debug)]
pub struct Decision {
    pub verdict: Verdict,
    /// What the store must write before the verdict is released.
    pub write: Write,
    /// The new secret file, when a scratch code was used up or the HOTP counter moved.
    pub file: Option<GaFile>,
    /// Index into the candidate list of the accepted candidate (for `forward_pass`).
    pub matched: Option<usize>,
    /// With [`Verdict::Throttled`]: seconds until an attempt from this origin is
    /// evaluated again.
    pub retry_after: Option<u64>,
    pub warnings: Vec<Warning>,
}

/// What a candidate matched, computed before the store is asked.
#[derive(Clone, Debug)]
enum Matched {
    /// A scratch-shaped candidate: the scratch code value it equals, if any.
    Scratch(Option<u32>),
    /// TOTP steps or HOTP counters in the window whose code equals the candidate.
    Otp(Vec<u64>),
    /// Cannot match (wrong length, scratch-only file).
    Nothing,
}

/// The secret file read and every candidate compared; see the module docs.
#[derive(Clone, Debug)]
pub struct Prepared {
    file: GaFile,
    cfg: Config,
    now: u64,
    /// How many steps past the current one the window (with skew) reaches.
    ahead: u64,
    matches: Vec<Matched>,
    warnings: Vec<Warning>,
}

/// Validated config, secret, effective window and skew.
struct Checked {
    cfg: Config,
    secret: Secret,
    window: u32,
    skew: i64,
    now: u64,
    warnings: Vec<Warning>,
}

fn check(file: &GaFile, policy: &Policy, now: i64) -> Result<Checked, VerifyError> {
    let cfg = file.config()?;
    let secret = file.secret()?;
    let min = policy.effective_min_secret_bits();
    let bits = secret.bits();
    if bits < min as usize {
        return Err(VerifyError::SecretTooShort { bits, min });
    }
    let mut warnings = Vec::new();
    if bits < RECOMMENDED_SECRET_BITS as usize {
        warnings.push(Warning::LegacySecret { bits });
    }
    let now = u64::try_from(now).map_err(|_| VerifyError::ClockFault)?;
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

/// Constant-time search: computes and compares every position; returns the matches.
fn search_window(
    c: &Checked,
    code: &Code,
    counters: impl Iterator<Item = u64>,
    digits: Digits,
) -> Vec<u64> {
    let mut hits: Vec<(u64, Choice)> = Vec::new();
    for ctr in counters {
        let expected = Code::from_value(otp::hotp(&c.secret, ctr, c.cfg.algorithm, digits), digits);
        hits.push((ctr, expected.ct_eq(code)));
    }
    hits.iter()
        .filter(|(_, eq)| bool::from(*eq))
        .map(|&(ctr, _)| ctr)
        .collect()
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

fn totp_counters(c: &Checked) -> Result<Vec<u64>, VerifyError> {
    let t = otp::totp_step(c.now as i64, c.cfg.step_secs()).ok_or(VerifyError::ClockFault)?;
    let w = i128::from(c.window);
    let base = i128::from(t) + i128::from(c.skew);
    Ok((-((w - 1) / 2)..=w / 2)
        .map(|i| base + i)
        .filter(|&v| (0..=i128::from(MAX_COUNTER)).contains(&v))
        .map(|v| v as u64)
        .collect())
}

/// Step 1: read the configuration and compare every candidate (see the module docs).
pub fn prepare(
    file: &GaFile,
    policy: &Policy,
    candidates: &[Candidate],
    now: i64,
) -> Result<Prepared, VerifyError> {
    let c = check(file, policy, now)?;
    let mut matches = Vec::with_capacity(candidates.len());
    for cand in candidates {
        let m = if cand.scratch {
            Matched::Scratch(check_scratch(file, &cand.code))
        } else if cand.code.len() != c.cfg.digits.len() {
            Matched::Nothing
        } else {
            match c.cfg.mode {
                Mode::ScratchOnly => Matched::Nothing,
                Mode::Totp => Matched::Otp(search_window(
                    &c,
                    &cand.code,
                    totp_counters(&c)?.into_iter(),
                    c.cfg.digits,
                )),
                Mode::Hotp { counter } => {
                    let end = counter.saturating_add(u64::from(c.window)).min(MAX_COUNTER);
                    Matched::Otp(search_window(&c, &cand.code, counter..end, c.cfg.digits))
                }
            }
        };
        matches.push(m);
    }
    let ahead = u64::try_from(i64::from(c.window / 2) + c.skew).unwrap_or(0);
    Ok(Prepared {
        file: file.clone(),
        cfg: c.cfg,
        now: c.now,
        ahead,
        matches,
        warnings: c.warnings,
    })
}

/// The replay mark in force: the store's, raised by the file's `PAM_TOTP_LAST_STEP`
/// line (written by earlier versions and by `totp-enroll resync`). `(mark, from file)`.
fn effective_mark(cfg: &Config, state: &UserState) -> Option<(u64, bool)> {
    match (state.last_step, cfg.last_step) {
        (Some(s), Some(f)) if f > s => Some((f, true)),
        (Some(s), _) => Some((s, false)),
        (None, Some(f)) => Some((f, true)),
        (None, None) => None,
    }
}

/// The ledger to decide from: the stored one, or on first use the file's old lines
/// (never weaker than the file says). Records from far in the future are dropped.
fn load_ledger(
    cfg: &Config,
    state: &UserState,
    policy: &Policy,
    now: u64,
    warnings: &mut Vec<Warning>,
) -> Result<Ledger, VerifyError> {
    let mut l = Ledger::decode(&state.extra).map_err(VerifyError::Store)?;
    if state.extra.is_empty() {
        if let Some(f) = cfg.failures {
            l.consecutive = f.count;
            let delay = policy.backoff_secs(f.count);
            if delay > 0 {
                l.blocked_until = f.last.saturating_add(delay);
            }
        }
        if let Some(rl) = &cfg.rate_limit {
            l.attempts = rl.timestamps.clone();
            l.attempts.truncate(crate::ledger::MAX_ATTEMPTS);
        }
        if cfg.failures.is_some() || cfg.rate_limit.is_some() {
            warnings.push(Warning::Migrated);
        }
    }
    let horizon = now.saturating_add(policy.max_clock_lag_secs);
    let ceiling_horizon = horizon
        .saturating_add(policy.ceiling_tolerance_secs())
        .saturating_add(policy.ceiling_interval_secs);
    let latest = l.latest_time();
    let latest_ceiling = l.ceiling[0].max(l.ceiling[1]);
    if latest > horizon || latest_ceiling > ceiling_horizon {
        warnings.push(Warning::FutureRecordsDropped {
            latest: latest.max(latest_ceiling),
        });
        return Ok(Ledger::default());
    }
    // Small steps back of the clock (NTP): nothing may wait longer than from now.
    for r in &mut l.origins {
        r.last = r.last.min(now);
    }
    for t in &mut l.attempts {
        *t = (*t).min(now);
    }
    l.blocked_until = l
        .blocked_until
        .min(now.saturating_add(policy.throttle_max_secs));
    Ok(l)
}

/// End of the backoff running for `origin`, if any.
fn origin_until(l: &Ledger, policy: &Policy, origin: OriginKey, now: u64) -> Option<u64> {
    let r = l.origin(origin)?;
    let delay = policy.backoff_secs(r.failures);
    let until = r.last.saturating_add(delay);
    (delay > 0 && now < until).then_some(until)
}

/// Which half of the per-user ceiling an origin draws from.
fn ceiling_class(l: &Ledger, origin: OriginKey) -> usize {
    if l.is_known(origin) { 0 } else { 1 }
}

/// End of the wait imposed by the per-user ceiling (GCRA) for `origin`'s class.
fn ceiling_until(l: &Ledger, policy: &Policy, origin: OriginKey, now: u64) -> Option<u64> {
    let tat = l.ceiling[ceiling_class(l, origin)];
    let allowed_from = tat.saturating_sub(policy.ceiling_tolerance_secs());
    (now < allowed_from).then_some(allowed_from)
}

fn hard_capped(l: &Ledger, policy: &Policy) -> bool {
    policy.max_failures.is_some_and(|m| l.consecutive >= m)
}

/// The longest wait any rule imposes on `origin` now, if any.
fn throttled_until(l: &Ledger, policy: &Policy, origin: OriginKey, now: u64) -> Option<u64> {
    let blocked = (now < l.blocked_until).then_some(l.blocked_until);
    [
        origin_until(l, policy, origin, now),
        ceiling_until(l, policy, origin, now),
        blocked,
    ]
    .into_iter()
    .flatten()
    .max()
}

fn stored(state: &UserState, ledger: &Ledger) -> UserState {
    UserState {
        last_step: state.last_step,
        hotp_mark: state.hotp_mark,
        extra: ledger.encode(),
    }
}

/// The configuration a doomed attempt is checked against: a 160-bit zero secret with
/// no mode line and no scratch codes, so nothing can ever match.
const STAND_IN: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";

impl Prepared {
    /// For a login that can never succeed (no account, no or an unusable secret): no
    /// candidate, nothing to match. Its decision throttles and charges exactly like a
    /// wrong code, so a name without an account is throttled, and told so, like one
    /// with an account (R9).
    pub fn doomed(now: i64) -> Result<Prepared, VerifyError> {
        let now = u64::try_from(now).map_err(|_| VerifyError::ClockFault)?;
        let file = GaFile::parse(STAND_IN)?;
        let cfg = file.config()?;
        Ok(Prepared {
            file,
            cfg,
            now,
            ahead: 0,
            matches: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// The digits of the file's codes (for splitting the answer).
    pub fn digits(&self) -> Digits {
        self.cfg.digits
    }

    /// Step 2, run inside the store's atomic update; pure, may run more than once.
    pub fn decide(
        &self,
        state: &UserState,
        policy: &Policy,
        attempt: &Attempt,
    ) -> Result<Decision, VerifyError> {
        let now = self.now;
        let mut warnings = self.warnings.clone();
        let mark = effective_mark(&self.cfg, state);
        if let Some((m, in_file)) = mark {
            let mark_time = m.saturating_mul(self.cfg.step_secs());
            if mark_time > now.saturating_add(policy.max_clock_lag_secs) {
                return Err(VerifyError::StateAhead { mark_time, in_file });
            }
        }
        let mut ledger = load_ledger(&self.cfg, state, policy, now, &mut warnings)?;
        let origin = attempt.origin;
        let mut touched = state.extra.is_empty() && warnings.contains(&Warning::Migrated);

        let mut refusal = None;
        if !attempt.continued {
            if let Some(rl) = &self.cfg.rate_limit {
                let current = RateLimit {
                    attempts: rl.attempts,
                    interval_secs: rl.interval_secs,
                    timestamps: ledger.attempts.clone(),
                };
                let (updated, exceeded) = gafile::rate_limit_update(&current, now);
                ledger.attempts = updated.timestamps;
                touched = true;
                if exceeded {
                    warnings.push(Warning::RateLimitExceeded);
                    let oldest = ledger.attempts.first().copied().unwrap_or(now);
                    let until = oldest
                        .saturating_add(u64::from(rl.interval_secs))
                        .max(now + 1);
                    refusal = Some((Verdict::Throttled, Some(until - now)));
                }
            }
            if hard_capped(&ledger, policy) {
                refusal = Some((Verdict::Disabled, None));
            } else if let Some(until) = throttled_until(&ledger, policy, origin, now) {
                // Not charged: a stranger can make an origin wait, never extend the wait.
                refusal = Some((Verdict::Throttled, Some(until - now)));
            }
        }
        if let Some((verdict, retry_after)) = refusal {
            let write = if touched {
                Write::Lazy(stored(state, &ledger))
            } else {
                Write::Nothing
            };
            return Ok(Decision {
                verdict,
                write,
                file: None,
                matched: None,
                retry_after,
                warnings,
            });
        }

        let reuse = self.cfg.disallow_reuse.clone().unwrap_or_default();
        let boot_floor = attempt
            .boot_time
            .map(|b| (b / self.cfg.step_secs()).saturating_add(self.ahead));
        let hotp_floor = match self.cfg.mode {
            Mode::Hotp { counter } => {
                counter.max(state.hotp_mark.map_or(0, |m| m.saturating_add(1)))
            }
            _ => 0,
        };
        let mut file = self.file.clone();
        let mut verdict = Verdict::Rejected;
        let mut matched = None;
        let mut hotp_failed = false;
        for (idx, m) in self.matches.iter().enumerate() {
            let accepted = match (m, self.cfg.mode) {
                (Matched::Scratch(Some(v)), _) => {
                    file.remove_scratch_code(*v);
                    Some(Method::Scratch)
                }
                (Matched::Scratch(None), _) => None,
                // A wrong-length answer is no HOTP attempt: the counter stays (as before).
                (Matched::Nothing, _) => None,
                (Matched::Otp(steps), Mode::Totp) => {
                    let unused = |s: &u64| mark.is_none_or(|(m, _)| *s > m) && !reuse.contains(s);
                    let after_boot = |s: &u64| boot_floor.is_none_or(|f| *s > f);
                    let ok = steps.iter().copied().find(|s| unused(s) && after_boot(s));
                    match ok {
                        Some(step) => Some(Method::Totp { step }),
                        None if !steps.is_empty() => {
                            if steps.iter().any(unused) {
                                warnings.push(Warning::UsedBeforeBoot);
                            }
                            // GA ends the loop on a replay instead of trying further readings.
                            verdict = Verdict::Replayed;
                            break;
                        }
                        None => None,
                    }
                }
                (Matched::Otp(ctrs), Mode::Hotp { .. }) => {
                    match ctrs.iter().copied().find(|&c| c >= hotp_floor) {
                        Some(counter) => {
                            file.set(KEY_HOTP_COUNTER, &(counter + 1).to_string())?;
                            Some(Method::Hotp { counter })
                        }
                        None => {
                            hotp_failed = true;
                            None
                        }
                    }
                }
                (Matched::Otp(_), Mode::ScratchOnly) => None,
            };
            if let Some(method) = accepted {
                verdict = Verdict::Accepted(method);
                matched = Some(idx);
                break;
            }
        }
        if let (Mode::Hotp { counter }, false) = (self.cfg.mode, policy.no_increment_hotp) {
            // GA advances once per attempt, even when a scratch code then succeeded.
            if hotp_failed && !matches!(verdict, Verdict::Accepted(Method::Hotp { .. })) {
                file.set(KEY_HOTP_COUNTER, &(counter.saturating_add(1)).to_string())?;
            }
        }

        let mut next = stored(state, &ledger);
        let write = match verdict {
            Verdict::Accepted(method) => {
                ledger.clear_origin(origin);
                ledger.consecutive = 0;
                ledger.blocked_until = 0;
                ledger.remember_known(origin, now);
                if let (true, Some(ip)) = (policy.grace_period_secs > 0, attempt.rhost) {
                    ledger.record_grace(ip, now);
                }
                next.extra = ledger.encode();
                match method {
                    // Lazy is enough when the boot floor covers a write lost to a
                    // power loss or crash (see `Attempt::boot_time`).
                    Method::Totp { step } => {
                        next.last_step = Some(step);
                        if attempt.boot_time.is_some() {
                            Write::Lazy(next)
                        } else {
                            Write::Durable(next)
                        }
                    }
                    // The secret file's crash-safe rewrite of HOTP_COUNTER is the
                    // durable record; this mark only guards against a rolled-back file.
                    Method::Hotp { counter } => {
                        next.hotp_mark = Some(counter.max(state.hotp_mark.unwrap_or(0)));
                        Write::Lazy(next)
                    }
                    // Single use is the secret file's rewrite; this only resets counters.
                    Method::Scratch => Write::Lazy(next),
                }
            }
            _ if attempt.continued => {
                if touched {
                    Write::Lazy(next)
                } else {
                    Write::Nothing
                }
            }
            _ => {
                ledger.charge_origin(origin, now);
                ledger.consecutive = ledger.consecutive.saturating_add(1).min(1_000_000);
                let class = ceiling_class(&ledger, origin);
                ledger.ceiling[class] = ledger.ceiling[class]
                    .max(now)
                    .saturating_add(policy.ceiling_interval_secs);
                next.extra = ledger.encode();
                Write::Lazy(next)
            }
        };
        let file = (file != self.file).then_some(file);
        Ok(Decision {
            verdict,
            write,
            file,
            matched,
            retry_after: None,
            warnings,
        })
    }
}

/// GA's grace period, checked before prompting: a recorded acceptance from this
/// numeric address with `when ≤ now < when + grace_period`. Never with grace off,
/// without an address, for a hard-capped account or while this origin waits.
pub fn grace_applies(
    state: &UserState,
    policy: &Policy,
    origin: OriginKey,
    rhost: Option<IpAddr>,
    now: i64,
) -> Result<bool, VerifyError> {
    let Some(ip) = rhost else {
        return Ok(false);
    };
    if policy.grace_period_secs == 0 {
        return Ok(false);
    }
    let now = u64::try_from(now).map_err(|_| VerifyError::ClockFault)?;
    let l = Ledger::decode(&state.extra).map_err(VerifyError::Store)?;
    if hard_capped(&l, policy) || throttled_until(&l, policy, origin, now).is_some() {
        return Ok(false);
    }
    let ip = crate::addr::canonical(ip);
    Ok(l.grace.iter().any(|g| {
        g.host == ip && g.when <= now && now < g.when.saturating_add(policy.grace_period_secs)
    }))
}

/// Seconds `origin` must still wait before an attempt is evaluated (for the message a
/// throttled user sees), or `None`.
pub fn wait_for(state: &UserState, policy: &Policy, origin: OriginKey, now: i64) -> Option<u64> {
    let now = u64::try_from(now).ok()?;
    let l = Ledger::decode(&state.extra).ok()?;
    throttled_until(&l, policy, origin, now).map(|u| u - now)
}

#[cfg(test)]
mod tests;
