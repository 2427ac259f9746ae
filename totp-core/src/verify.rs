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
//! the HOTP counter advances (as GA does), returned as [`Decision::file`], and, where
//! hosts with another state store read it ([`Attempt::keep_ga_lines`]), when GA's
//! `DISALLOW_REUSE` and `RATE_LIMIT` lines it carries are brought up to date. The store is
//! the authority on what was used (R35): the marks of the file's enrolment (TOTP,
//! HOTP high-water mark, used scratch codes) are checked and recorded there, so a
//! secret that cannot be rewritten (read-only, configuration-managed, served by a
//! command) still supports scratch codes and HOTP, and a new enrolment starts fresh
//! marks while throttling stays with the account.
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
    self, Config, GaFile, GaFileError, KEY_DISALLOW_REUSE, KEY_HOTP_COUNTER, KEY_RATE_LIMIT,
    MAX_COUNTER, Mode, RateLimit,
};
use crate::ledger::{Ledger, OriginKey};
use crate::otp::{self, Digits};
use crate::policy::{CLOCK_SLACK_SECS, Policy, RECOMMENDED_SECRET_BITS};
use crate::secret::Secret;
use crate::state::{EnrolmentId, MAX_USED_SCRATCH, Marks, StoreError, StoreKey, UserState, Write};
use crate::utc::format_utc;

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
    /// The code matched only steps (HOTP: counters) older than the last one accepted,
    /// none of them that one nor one `DISALLOW_REUSE` lists: a code typed late, or
    /// from a device whose clock is behind. Refused and charged like a replay, but not
    /// reported as one: the store keeps only the last accepted step, so nothing says
    /// this code was ever used, and a man-in-the-middle warning would be a false alarm.
    OutOfOrder,
    /// Refused unevaluated: a backoff, the per-user ceiling or GA's `RATE_LIMIT`; which
    /// one is carried to the log line, which an admin reads to know what to change.
    Throttled(Throttle),
    /// Refused unevaluated: the admin hard cap (`max_failures`) is reached.
    Disabled,
}

/// The rule that refused a throttled attempt: the one imposing the wait the user is
/// told (the longest when several apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// The backoff of this origin (`throttle_after=`, `throttle_max=`), or the one a
    /// file's `PAM_TOTP_FAILURES` line carried over.
    Backoff,
    /// The per-user ceiling (`ceiling_burst=`, `ceiling_interval=`).
    Ceiling,
    /// google-authenticator's `RATE_LIMIT` line in the secret file.
    RateLimit,
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
    /// clock was far ahead when they were written, or is far behind now); their times
    /// were dropped, the failure count (the hard cap's) kept. The replay mark is never
    /// dropped this way.
    FutureRecordsDropped { latest: u64, ahead: u64 },
    /// Throttling records are dated after the clock by more than [`CLOCK_SLACK_SECS`]
    /// (and less than the allowed lag): this clock is behind, or a host whose clock was
    /// ahead wrote them. They are obeyed as written.
    RecordsAheadOfClock { latest: u64, ahead: u64 },
    /// The replay mark is after everything the window reaches (by more than
    /// [`CLOCK_SLACK_SECS`]): the clock went back since that code was accepted, so no
    /// code works until it passes the mark.
    MarkAheadOfClock { mark_time: u64, ahead: u64 },
    /// The code is from the step of the last boot or before (within the window), or
    /// from before the state store was recreated after losing its data: it counts as
    /// used, and the next code works.
    UsedBeforeBoot,
    /// The state store was recreated (after losing its data) at a time after this
    /// clock: every code up to then counts as used (R34), so codes are refused until the
    /// clock passes it, however far that is.
    StoreRecreatedAhead { since: u64, ahead: u64 },
    /// A version-1 record's TOTP mark, counted in this file's `STEP_SIZE`, is dated
    /// after anything a login honours, and a shorter step reads it near the clock: it
    /// was written at that step (a re-enrolment with a longer one), so it is not this
    /// enrolment's and is not applied to it. It stays for the enrolments it can be
    /// (R35). One that no shorter step puts near the clock is a clock fault
    /// ([`VerifyError::StateAhead`]; [`version_1_mark_from_shorter_step`]).
    Version1MarkNotApplied { mark_time: u64 },
    /// A code of the file's own HOTP counters, at or below a version-1 record's HOTP
    /// counter (`mark`), for an enrolment without marks of its own: refused as used. It
    /// is the old token's code typed again, or a token enrolled since the upgrade, which
    /// only an admin can tell (`totp-state reset --forget-version-1-marks`).
    Version1HotpCounter { counter: u64, mark: u64 },
    /// The file's `key` line was left as it is: updated, the file would outgrow GA's
    /// 64 KiB cap, which GA would then refuse at every login (it writes it all the same).
    /// This host's state store holds this login's use either way; `shared`: hosts with
    /// another state store read the file (`shared_file=`), and do not see it.
    LineNotUpdated { key: &'static str, shared: bool },
    /// A record merged from two stores (`state_fallback=local`'s used scratch codes
    /// carried into the shared record) holds more used scratch codes than a record
    /// keeps, and the file still lists every one of them: `dropped` of the carried uses
    /// are not written to the shared record (the local record keeps them). The login
    /// goes on: while the file lists every used code the full record refuses any scratch
    /// code not in it, so none is open again; a right TOTP or HOTP code logs in.
    UsedScratchNotCarried { dropped: usize },
}

impl Warning {
    /// The warning says why a right code was refused as used (no replay to report).
    pub fn explains_replay(&self) -> bool {
        matches!(
            self,
            Self::UsedBeforeBoot
                | Self::StoreRecreatedAhead { .. }
                | Self::Version1HotpCounter { .. }
        )
    }

    /// A fact about the configuration (the file or the caps), true on every login until
    /// an admin acts: reported by the tools, not logged on every login.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::LegacySecret { .. } | Self::WindowClamped { .. } | Self::SkewClamped { .. }
        )
    }
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
            Self::FutureRecordsDropped { latest, ahead } => write!(
                f,
                "clock: throttling records dated {} are {ahead} s ahead of this host's clock, \
                 more than the lag allowed; their times dropped, the failure count kept \
                 (check this host's clock and that of the host that wrote them)",
                format_utc(*latest)
            ),
            Self::RecordsAheadOfClock { latest, ahead } => write!(
                f,
                "clock: throttling records dated {} are {ahead} s ahead of this host's clock: \
                 this clock is behind, or a host whose clock was ahead wrote them (check both)",
                format_utc(*latest)
            ),
            Self::MarkAheadOfClock { mark_time, ahead } => write!(
                f,
                "clock: the last accepted code is dated {}, {ahead} s after this host's clock: \
                 the clock went back since, and no code is accepted until it passes that time \
                 (check the clock)",
                format_utc(*mark_time)
            ),
            Self::UsedBeforeBoot => f.write_str(
                "code of a time step before the last boot or before the state store lost its data: counted as used; the next code works",
            ),
            Self::StoreRecreatedAhead { since, ahead } => write!(
                f,
                "clock: the state store was recreated after losing its data at {}, {ahead} s \
                 after this host's clock, and every code up to then counts as used: this \
                 clock is behind, or the host that recreated it was ahead (see \"Clocks\" in \
                 the fleet documentation)",
                format_utc(*since)
            ),
            Self::Version1MarkNotApplied { mark_time } => write!(
                f,
                "the version-1 record's TOTP replay mark reads, at this file's step size, \
                 as {}, after anything a login accepts: it was written at a shorter step by \
                 an earlier enrolment and is not applied to this one",
                format_utc(*mark_time)
            ),
            Self::Version1HotpCounter { counter, mark } => write!(
                f,
                "counter-based code of the file's counter {counter} refused as used: the \
                 version-1 record's HOTP counter is {mark}, and this token has no marks of \
                 its own. Either the old token's code was typed again (a replay), or the \
                 user was given a new token since the upgrade"
            ),
            Self::LineNotUpdated { key, shared } => {
                write!(
                    f,
                    "the secret file's {key} line was left as it is: updated, the file \
                     would be larger than {} bytes, which GA refuses to read; this host's \
                     state store holds this login's use",
                    crate::gafile::MAX_FILE_LEN
                )?;
                // The line is what tells other readers of the file about this login:
                // without it they act as if it never happened.
                let unseen = match *key {
                    crate::gafile::KEY_RATE_LIMIT => "do not count this attempt",
                    _ => "take this code again",
                };
                if *shared {
                    write!(
                        f,
                        ", but hosts with another state store reading this file \
                         (shared_file=) {unseen}; make room in the file (remove what is not \
                         GA's or pam_totp's) or give the hosts one state store"
                    )
                } else {
                    write!(f, " (GA reading this file after a rollback would {unseen})")
                }
            }
            Self::UsedScratchNotCarried { dropped } => write!(
                f,
                "more scratch codes of this secret are recorded as used than a record keeps \
                 ({}), and the secret file still lists all of them: {dropped} used through \
                 the local store are not written to the shared one; no scratch code logs in \
                 until the user has new ones (totp-enroll --regenerate-scratch-codes, or \
                 re-enroll)",
                crate::state::MAX_USED_SCRATCH
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
        /// The mark is a version-1 record's, which a reset keeps unless told to forget
        /// it (`totp-state reset --forget-version-1-marks`): read at this file's step
        /// no shorter step puts it near the clock, so it is no re-enrolment's.
        version_1: bool,
    },
    /// The stored throttling record cannot be decoded.
    Store(StoreError),
    /// The enrolment has used as many scratch codes as a record keeps, and the file
    /// still lists every one of them (it could not be rewritten): a scratch code not
    /// among them is refused. New scratch codes (or a re-enrolment) make room;
    /// `totp-state reset` does not, what was used stays used.
    TooManyUsedScratch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "bad secret file: {e}"),
            Self::SecretTooShort { bits, min } => {
                write!(f, "secret has {bits} bits, at least {min} required")
            }
            Self::ClockFault => f.write_str("clock fault: time is before 1970"),
            Self::StateAhead {
                mark_time,
                in_file,
                version_1,
            } => write!(
                f,
                "the last accepted code is dated {mark_time} (unix time), far after the clock{}",
                if *in_file {
                    " (PAM_TOTP_LAST_STEP line of the secret file)"
                } else if *version_1 {
                    " (the version-1 record's mark)"
                } else {
                    ""
                }
            ),
            Self::Store(e) => write!(f, "{e}"),
            Self::TooManyUsedScratch => write!(
                f,
                "{} scratch codes of this secret are recorded as used, the most a record keeps, \
                 and the secret file still lists them all; give the user new scratch codes \
                 (totp-enroll --regenerate-scratch-codes) or re-enroll the user",
                crate::state::MAX_USED_SCRATCH
            ),
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
    /// `PAM_RHOST` as a strict IP literal (grace period; only such an origin becomes known).
    pub rhost: Option<IpAddr>,
    /// No `PAM_RHOST` at all: the attempt is made on this host (sudo, su, a console).
    /// It draws from the known origins' half of the per-user ceiling, so strangers on
    /// the network who used up the other half do not keep a logged-in user from sudo.
    pub local: bool,
    pub now: i64,
    /// The prompted answer after a failed check of `PAM_AUTHTOK` in the same
    /// authentication (`try_first_pass`), which the caller evaluates only when that
    /// check was admitted (evaluated, not refused). Admitted again against the record
    /// that failure wrote (hard cap, per-user ceiling) and charged like any other guess,
    /// but not against the origin's backoff: the first check was admitted, so none was
    /// running before this login, and a backoff that failure started would refuse the
    /// code of every later login of a user whose password ends in digits (its check
    /// fails on each login and restarts the backoff). Only GA's `RATE_LIMIT` line, one
    /// entry per authentication as GA counts it, is left to the first check.
    pub continued: bool,
    /// When the kernel booted (unix seconds), if known. Every TOTP step up to the boot,
    /// plus the steps the window reaches ahead, counts as used: a used code recorded
    /// without an fsync and lost in a power loss or crash (which always ends in a
    /// reboot) is still refused. With it, a used TOTP code is written lazily; without
    /// it, durably.
    pub boot_time: Option<u64>,
    /// Since when the state store holds everything written to it
    /// ([`crate::state::StoreContext::complete_since`]): steps before it count as used,
    /// like steps before the boot (R34). 0 for a store that never lost anything.
    pub store_complete_since: u64,
    /// The secret file is read by hosts with another state store (a shared home, the
    /// module's `shared_file=`): GA's `DISALLOW_REUSE` and `RATE_LIMIT` lines, where the
    /// file has them, are kept up to date in [`Decision::file`] as GA keeps them. When
    /// false they are still read and obeyed (a listed step is refused, the rate limit
    /// counts the line's times), never written: a file changes only for a used scratch
    /// code or an HOTP counter.
    pub keep_ga_lines: bool,
}

/// An attempt refused unevaluated, as the user is told of it and the log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// [`Verdict::Throttled`]: the rule that refused it, and the seconds to wait (at
    /// least 1: "try again in 0 s" would invite an attempt that is refused again).
    Throttled { rule: Throttle, retry_after: u64 },
    /// [`Verdict::Disabled`]: only an administrator lets the user in again.
    Disabled,
}

/// What [`Prepared::decide`] decided.
#[derive(Clone, Debug)]
pub struct Decision {
    pub verdict: Verdict,
    /// What the store must write before the verdict is released.
    pub write: Write,
    /// The new secret file, when a scratch code was used up, the HOTP counter moved, or
    /// (with [`Attempt::keep_ga_lines`]) GA's `DISALLOW_REUSE` or `RATE_LIMIT` line changed.
    pub file: Option<GaFile>,
    /// Index into the candidate list of the accepted candidate (for `forward_pass`).
    pub matched: Option<usize>,
    /// With [`Verdict::Throttled`]: seconds until an attempt from this origin is
    /// evaluated again.
    pub retry_after: Option<u64>,
    pub warnings: Vec<Warning>,
}

impl Decision {
    /// The refusal, when the attempt was refused unevaluated; `None` when it was
    /// evaluated (accepted, rejected or replayed).
    pub fn refusal(&self) -> Option<Refusal> {
        match self.verdict {
            Verdict::Throttled(rule) => Some(Refusal::Throttled {
                rule,
                retry_after: self.retry_after.unwrap_or(1).max(1),
            }),
            Verdict::Disabled => Some(Refusal::Disabled),
            Verdict::Accepted(_) | Verdict::Rejected | Verdict::Replayed | Verdict::OutOfOrder => {
                None
            }
        }
    }
}

/// What a candidate matched, computed before the store is asked.
#[derive(Clone, Debug)]
enum Matched {
    /// A scratch-shaped candidate: the scratch code value it equals and that value's
    /// tag for the store, if any.
    Scratch(Option<(u32, u64)>),
    /// TOTP steps in the window whose code equals the candidate.
    Totp(Vec<u64>),
    /// An HOTP candidate: compared in [`Prepared::decide`], because where the window
    /// starts depends on the store's high-water mark.
    Hotp(Code),
    /// Cannot match (wrong length, scratch-only file).
    Nothing,
}

/// The secret file read and every candidate compared; see the module docs.
#[derive(Clone, Debug)]
pub struct Prepared {
    file: GaFile,
    cfg: Config,
    secret: Secret,
    /// Which enrolment the file is, for the store's marks.
    enrolment: EnrolmentId,
    /// The store's key, to tag the file's scratch codes when the record of used ones
    /// is full (see `decide`).
    key: StoreKey,
    /// The effective window (HOTP counters are searched in `decide`).
    window: u32,
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

/// The facts about a secret file that stay true on every login until someone acts (a
/// legacy secret length, a window or skew above the admin's caps): what the module logs
/// only with `debug`, for the tools to report. Computed by the login's own checks.
pub fn configuration_warnings(file: &GaFile, policy: &Policy) -> Result<Vec<Warning>, VerifyError> {
    let mut warnings = check(file, policy, 0)?.warnings;
    warnings.retain(Warning::is_configuration);
    Ok(warnings)
}

/// Constant-time search: computes and compares every position; returns the matches.
fn search_window(
    secret: &Secret,
    cfg: &Config,
    code: &Code,
    counters: impl Iterator<Item = u64>,
) -> Vec<u64> {
    let digits = cfg.digits;
    let mut hits: Vec<(u64, Choice)> = Vec::new();
    for ctr in counters {
        let expected = Code::from_value(otp::hotp(secret, ctr, cfg.algorithm, digits), digits);
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

/// The keyed fingerprint of an enrolment: the secret and everything that changes which
/// code it gives (mode, algorithm, digits, and for TOTP the step). An HOTP token is
/// named by its secret, not its counter, so re-programming a token does not reset it.
pub fn enrolment_id(key: &StoreKey, cfg: &Config, secret: &Secret) -> EnrolmentId {
    let mode: &[u8] = match cfg.mode {
        Mode::Totp => b"totp",
        Mode::Hotp { .. } => b"hotp",
        Mode::ScratchOnly => b"scratch",
    };
    let step = match cfg.mode {
        Mode::Totp => cfg.step_secs(),
        _ => 0,
    };
    EnrolmentId(key.tag(&[
        b"pam_totp enrolment",
        mode,
        cfg.algorithm.name().as_bytes(),
        &[cfg.digits.len() as u8],
        &step.to_le_bytes(),
        secret.as_bytes(),
    ]))
}

/// The enrolment a secret file is ([`enrolment_id`] of its configuration and secret),
/// for a decision taken before the answer is in (the grace period).
pub fn enrolment_of(file: &GaFile, key: &StoreKey) -> Result<EnrolmentId, VerifyError> {
    Ok(enrolment_id(key, &file.config()?, &file.secret()?))
}

/// The scratch codes `file` lists that `used` (the marks of its enrolment in a record
/// of the store keyed by `from`) counts as used, named as the store keyed by `to` names
/// them: a host back on its shared store after `state_fallback=local` carries the codes
/// its local store alone saw used, which a file that could not be rewritten still lists.
pub fn scratch_tags_carried(
    file: &GaFile,
    from: &StoreKey,
    used: &[u64],
    to: &StoreKey,
) -> Result<Vec<u64>, VerifyError> {
    let (local, shared) = (enrolment_of(file, from)?, enrolment_of(file, to)?);
    Ok(file
        .scratch_codes()
        .iter()
        .filter(|&&c| used.contains(&scratch_tag(from, local, c)))
        .map(|&c| scratch_tag(to, shared, c))
        .collect())
}

/// The store's name for a used scratch code of an enrolment.
fn scratch_tag(key: &StoreKey, enrolment: EnrolmentId, value: u32) -> u64 {
    key.tag(&[
        b"pam_totp scratch",
        &enrolment.0.to_le_bytes(),
        &value.to_le_bytes(),
    ])
}

/// Step 1: read the configuration and compare every candidate (see the module docs).
/// `key` is the state store's (its [`crate::state::StoreContext`]).
pub fn prepare(
    file: &GaFile,
    policy: &Policy,
    candidates: &[Candidate],
    now: i64,
    key: &StoreKey,
) -> Result<Prepared, VerifyError> {
    let c = check(file, policy, now)?;
    let enrolment = enrolment_id(key, &c.cfg, &c.secret);
    let mut matches = Vec::with_capacity(candidates.len());
    for cand in candidates {
        let m = if cand.scratch {
            // The tag is computed whether or not the code matched (timing).
            let value = check_scratch(file, &cand.code);
            let tag = scratch_tag(key, enrolment, value.unwrap_or(0));
            Matched::Scratch(value.map(|v| (v, tag)))
        } else if cand.code.len() != c.cfg.digits.len() {
            Matched::Nothing
        } else {
            match c.cfg.mode {
                Mode::ScratchOnly => Matched::Nothing,
                Mode::Totp => Matched::Totp(search_window(
                    &c.secret,
                    &c.cfg,
                    &cand.code,
                    totp_counters(&c)?.into_iter(),
                )),
                Mode::Hotp { .. } => Matched::Hotp(cand.code.clone()),
            }
        };
        matches.push(m);
    }
    let ahead = u64::try_from(i64::from(c.window / 2) + c.skew).unwrap_or(0);
    Ok(Prepared {
        file: file.clone(),
        cfg: c.cfg,
        secret: c.secret,
        enrolment,
        key: key.clone(),
        window: c.window,
        now: c.now,
        ahead,
        matches,
        warnings: c.warnings,
    })
}

mod decide;
mod throttle;

pub use decide::{
    LONGEST_SKEW_LEAD_SECS, LONGEST_STEP_SECS, latest_honoured_mark,
    version_1_mark_from_shorter_step,
};

use throttle::*;
pub use throttle::{grace_applies, grace_host, records_lead, wait_for};

#[cfg(test)]
mod tests;
