//! The replay mark in force and throttling from the ledger: admission, the per-user
//! ceiling, the hard cap, GA's grace period.

use super::*;

/// The marks of the file's enrolment: the record's, or on the first login after an
/// upgrade the version-1 record's unbound marks, or none (a new enrolment starts fresh).
pub(super) fn current_marks(cfg: &Config, enrolment: EnrolmentId, state: &UserState) -> Marks {
    if let Some(m) = state.marks_of(enrolment) {
        return m.clone();
    }
    match state.legacy {
        Some(l) => Marks {
            totp_until: l
                .last_step
                .map(|s| s.saturating_add(1).saturating_mul(cfg.step_secs())),
            hotp: l.hotp,
            scratch: Vec::new(),
        },
        None => Marks::default(),
    }
}

/// The TOTP replay mark in force: the enrolment's, raised by the file's
/// `PAM_TOTP_LAST_STEP` line (written by earlier versions and by `totp-enroll resync`).
/// `(mark, from file)`.
pub(super) fn effective_mark(cfg: &Config, marks: &Marks) -> Option<(u64, bool)> {
    match (marks.last_totp_step(cfg.step_secs()), cfg.last_step) {
        (Some(s), Some(f)) if f > s => Some((f, true)),
        (Some(s), _) => Some((s, false)),
        (None, Some(f)) => Some((f, true)),
        (None, None) => None,
    }
}

/// The ledger to decide from: the stored one, or on first use the file's old lines
/// (never weaker than the file says). Records from far in the future are dropped.
pub(super) fn load_ledger(
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
pub(super) fn origin_until(
    l: &Ledger,
    policy: &Policy,
    origin: OriginKey,
    now: u64,
) -> Option<u64> {
    let r = l.origin(origin)?;
    let delay = policy.backoff_secs(r.failures);
    let until = r.last.saturating_add(delay);
    (delay > 0 && now < until).then_some(until)
}

/// Which half of the per-user ceiling an origin draws from.
pub(super) fn ceiling_class(l: &Ledger, origin: OriginKey) -> usize {
    if l.is_known(origin) { 0 } else { 1 }
}

/// End of the wait imposed by the per-user ceiling (GCRA) for `origin`'s class.
pub(super) fn ceiling_until(
    l: &Ledger,
    policy: &Policy,
    origin: OriginKey,
    now: u64,
) -> Option<u64> {
    let tat = l.ceiling[ceiling_class(l, origin)];
    let allowed_from = tat.saturating_sub(policy.ceiling_tolerance_secs());
    (now < allowed_from).then_some(allowed_from)
}

pub(super) fn hard_capped(l: &Ledger, policy: &Policy) -> bool {
    policy.max_failures.is_some_and(|m| l.consecutive >= m)
}

/// The longest wait any rule imposes on `origin` now, if any.
pub(super) fn throttled_until(
    l: &Ledger,
    policy: &Policy,
    origin: OriginKey,
    now: u64,
) -> Option<u64> {
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

pub(super) fn stored(state: &UserState, ledger: &Ledger) -> UserState {
    UserState {
        extra: ledger.encode(),
        ..state.clone()
    }
}

/// GA's grace period, checked before prompting: a recorded acceptance from this
/// numeric address with `when ≤ now < when + grace_period`. Never with grace off,
/// without an address, for a hard-capped account or while this origin waits, and only
/// for an enrolment the record has seen accept a code (`enrolment`, the secret file's
/// [`enrolment_of`]): a grace entry stands for a code, so a new secret (a lost phone
/// re-enrolled, a uid or name handed to someone else) starts without any, as GA's
/// `LASTn` lines go with the file they are in. Its first accepted code drops the
/// entries earned before ([`Prepared::decide`]); a user with two secrets in use (a
/// home file for SSH, a store file for sudo) keeps the entries of both.
pub fn grace_applies(
    state: &UserState,
    policy: &Policy,
    enrolment: EnrolmentId,
    origin: OriginKey,
    rhost: Option<IpAddr>,
    now: i64,
) -> Result<bool, VerifyError> {
    let Some(ip) = rhost else {
        return Ok(false);
    };
    if policy.grace_period_secs == 0 || state.marks_of(enrolment).is_none() {
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
