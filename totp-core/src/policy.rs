//! Admin policy: limits that a user's file can tighten but never loosen.
//!
//! Built from module arguments by [`crate::options::ModuleOptions::policy`]; the
//! defaults here are the documented safe defaults.

/// Largest `WINDOW_SIZE` honoured by default: the widest window GA's interactive
/// enrollment offers, so no existing enrollment breaks (R13).
pub const DEFAULT_MAX_WINDOW: u32 = 17;
/// Largest stored `TIME_SKEW` (in steps, either direction) honoured by default: GA's own
/// range (it learns up to ±1500 steps), so a file GA wrote works as written after the
/// switch instead of locking its user out. A skew shifts the window, it never widens it
/// (the window stays `WINDOW_SIZE` codes); `max_time_skew=` lowers the cap.
pub const DEFAULT_MAX_TIME_SKEW: u32 = 1500;
/// RFC 4226 §4 asks for 128 bits, but GA wrote 80-bit secrets until 2016.
pub const DEFAULT_MIN_SECRET_BITS: u32 = 80;
/// Secrets shorter than this work but are reported as legacy (R10).
pub const RECOMMENDED_SECRET_BITS: u32 = 128;
pub const DEFAULT_THROTTLE_AFTER: u32 = 3;
/// First backoff delay; it doubles with every further failure.
pub const THROTTLE_BASE_SECS: u64 = 30;
pub const DEFAULT_THROTTLE_MAX_SECS: u64 = 600;
/// How far the clock may be behind the last accepted step before it counts as a
/// clock fault rather than ordinary drift.
pub const DEFAULT_MAX_CLOCK_LAG_SECS: u64 = 86_400;
/// How far a time in the state store (a throttling record, the replay mark beyond what the
/// window reaches, a recreated store's floor) may be after this host's clock before the
/// log names the clock: more than NTP keeps a fleet apart, less than a step back anyone
/// would mind.
pub const CLOCK_SLACK_SECS: u64 = 60;
/// Upper bound for the optional hard cap (R14).
pub const MAX_FAILURES_LIMIT: u32 = 100;
/// Per-user guess ceiling (R14), kept separately for origins the user has logged in from
/// (with attempts made on the host: sudo, su) and for all other origins: a burst of this
/// many failed guesses...
pub const DEFAULT_CEILING_BURST: u32 = 10;
/// ...then one more every this many seconds. With both classes exhausted an attacker
/// gets at most 2 × (10 + 48) guesses on the first day and 96 a day after that; see
/// SECURITY.md (R14) for the probabilities.
pub const DEFAULT_CEILING_INTERVAL_SECS: u64 = 1800;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Cap on the file's `WINDOW_SIZE` (1..=100); larger files are clamped with a warning.
    pub max_window: u32,
    /// Cap on |`TIME_SKEW`| in steps; larger values are clamped with a warning.
    pub max_time_skew: u32,
    /// Secrets below this many bits are refused (never below 80).
    pub min_secret_bits: u32,
    /// Consecutive failures before the backoff starts (≥ 1).
    pub throttle_after: u32,
    /// Longest single backoff delay in seconds.
    pub throttle_max_secs: u64,
    /// Optional hard cap: after this many consecutive failures the second factor is
    /// disabled until an admin resets `PAM_TOTP_FAILURES`. `None` (default) = off,
    /// because anyone who reaches the prompt could use it to lock a user out.
    pub max_failures: Option<u32>,
    /// GA's `no_increment_hotp`: a failed HOTP attempt does not move the counter.
    pub no_increment_hotp: bool,
    /// GA's `grace_period=` in seconds; 0 = off.
    pub grace_period_secs: u64,
    /// See [`DEFAULT_MAX_CLOCK_LAG_SECS`].
    pub max_clock_lag_secs: u64,
    /// See [`DEFAULT_CEILING_BURST`].
    pub ceiling_burst: u32,
    /// See [`DEFAULT_CEILING_INTERVAL_SECS`].
    pub ceiling_interval_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_window: DEFAULT_MAX_WINDOW,
            max_time_skew: DEFAULT_MAX_TIME_SKEW,
            min_secret_bits: DEFAULT_MIN_SECRET_BITS,
            throttle_after: DEFAULT_THROTTLE_AFTER,
            throttle_max_secs: DEFAULT_THROTTLE_MAX_SECS,
            max_failures: None,
            no_increment_hotp: false,
            grace_period_secs: 0,
            max_clock_lag_secs: DEFAULT_MAX_CLOCK_LAG_SECS,
            ceiling_burst: DEFAULT_CEILING_BURST,
            ceiling_interval_secs: DEFAULT_CEILING_INTERVAL_SECS,
        }
    }
}

impl Policy {
    /// Backoff delay after `failures` consecutive failures, or 0 below the threshold:
    /// `min(30 s × 2^(failures − throttle_after), throttle_max_secs)`.
    pub fn backoff_secs(&self, failures: u32) -> u64 {
        let after = self.throttle_after.max(1);
        if failures < after {
            return 0;
        }
        let exp = (failures - after).min(32);
        THROTTLE_BASE_SECS
            .saturating_mul(1u64 << exp)
            .min(self.throttle_max_secs)
    }

    /// GCRA tolerance of the per-user ceiling: how far the budget's clock may run ahead.
    pub fn ceiling_tolerance_secs(&self) -> u64 {
        u64::from(self.ceiling_burst.max(1) - 1).saturating_mul(self.ceiling_interval_secs)
    }

    /// The secret floor actually enforced: never below 80 bits whatever the field says.
    pub fn effective_min_secret_bits(&self) -> u32 {
        self.min_secret_bits.max(DEFAULT_MIN_SECRET_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_threshold_and_doubles_up_to_the_cap() {
        let p = Policy::default();
        assert_eq!(p.backoff_secs(0), 0);
        assert_eq!(p.backoff_secs(2), 0);
        assert_eq!(p.backoff_secs(3), 30);
        assert_eq!(p.backoff_secs(4), 60);
        assert_eq!(p.backoff_secs(5), 120);
        assert_eq!(p.backoff_secs(7), 480);
        assert_eq!(p.backoff_secs(8), 600);
        assert_eq!(p.backoff_secs(u32::MAX), 600);
    }

    #[test]
    fn min_secret_bits_never_drops_below_80() {
        let p = Policy {
            min_secret_bits: 8,
            ..Policy::default()
        };
        assert_eq!(p.effective_min_secret_bits(), 80);
    }
}
