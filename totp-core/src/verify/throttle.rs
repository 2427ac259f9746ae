//! The replay mark in force and throttling from the ledger: admission, the per-user
//! ceiling, the hard cap, GA's grace period.

use super::*;

/// The marks of the file's enrolment: the record's, or for an enrolment with none of
/// its own the version-1 record's marks (kept for every such enrolment, not only the
/// first seen after the upgrade: R34, R35), or none (a new enrolment starts fresh). An
/// enrolment's own marks started from them, so they are never below them.
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

/// The attempt times to apply GA's `RATE_LIMIT` to: this store's and the file's line
/// (written by every host that shares the file), an attempt listed in both counted once
/// (a time as often as the list with more of it has it). A time after `now` counts as
/// now, as the store's own do (a clock stepped back hands out no fresh budget).
///
/// A file time more than [`CLOCK_SLACK_SECS`] ahead is dropped, as GA drops every time
/// after now: a line this login does not rewrite (`shared_file=`, a read-only file, a
/// lock NFSv4 refuses) would hand the same time to every login until the clock reached
/// it, a lockout as long as the time is ahead rather than the interval. This host's own
/// attempts need no such time: the store holds them and counts them as now, and the
/// store's first use takes the line in (`load_ledger`), so a clock stepped back still
/// hands out no fresh budget.
pub(super) fn merge_attempts(stored: &[u64], in_file: &[u64], now: u64) -> Vec<u64> {
    let clamp = |v: &mut dyn Iterator<Item = u64>| {
        let mut v: Vec<u64> = v.map(|t| t.min(now)).collect();
        v.sort_unstable();
        v
    };
    let reach = now.saturating_add(CLOCK_SLACK_SECS);
    let (a, b) = (
        clamp(&mut stored.iter().copied()),
        clamp(&mut in_file.iter().copied().filter(|&t| t <= reach)),
    );
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x == y => {
                out.push(x);
                i += 1;
                j += 1;
            }
            (Some(&x), Some(&y)) if x < y => {
                out.push(x);
                i += 1;
            }
            (Some(&x), None) => {
                out.push(x);
                i += 1;
            }
            (_, Some(&y)) => {
                out.push(y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
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
    let lead = records_lead(&l, policy, now);
    if lead > policy.max_clock_lag_secs {
        // Dated by a clock far ahead (a host booted in a wrong year, an RTC in local
        // time): their waits would last for days, so their times go. The failure count
        // is no time: it stays, or a host with such a clock would erase every
        // `max_failures=` lockout of the fleet with one failed attempt.
        warnings.push(Warning::FutureRecordsDropped {
            latest: l.latest_time().max(l.ceiling[0].max(l.ceiling[1])),
            ahead: lead,
        });
        let known = std::mem::take(&mut l.known);
        l = Ledger {
            consecutive: l.consecutive,
            known,
            ..Ledger::default()
        };
    } else if lead > CLOCK_SLACK_SECS {
        warnings.push(Warning::RecordsAheadOfClock {
            latest: l.latest_time().max(l.ceiling[0].max(l.ceiling[1])),
            ahead: lead,
        });
    }
    // Small steps back of the clock (NTP): nothing may wait longer than from now.
    for r in &mut l.origins {
        r.last = r.last.min(now);
    }
    for k in &mut l.known {
        k.last_success = k.last_success.min(now);
    }
    for t in &mut l.attempts {
        *t = (*t).min(now);
    }
    l.blocked_until = l
        .blocked_until
        .min(now.saturating_add(policy.throttle_max_secs));
    Ok(l)
}

/// How many seconds the records are ahead of what this clock could have written: a
/// failure, a success or a `RATE_LIMIT` time after now, a backoff or a per-user ceiling
/// reaching further than a failure now could have set them. 0 when none is.
pub fn records_lead(l: &Ledger, policy: &Policy, now: u64) -> u64 {
    let times = l
        .origins
        .iter()
        .map(|r| r.last)
        .chain(l.known.iter().map(|k| k.last_success))
        .chain(l.attempts.iter().copied())
        .chain(l.grace.iter().map(|g| g.when))
        .max()
        .unwrap_or(0)
        .saturating_sub(now);
    let blocked = l
        .blocked_until
        .saturating_sub(now.saturating_add(policy.throttle_max_secs));
    let ceiling = l.ceiling[0].max(l.ceiling[1]).saturating_sub(
        now.saturating_add(policy.ceiling_tolerance_secs())
            .saturating_add(policy.ceiling_interval_secs),
    );
    times.max(blocked).max(ceiling)
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

/// Which half of the per-user ceiling an origin draws from: the known origins' for an
/// origin a code was accepted from and for an attempt made on this host (`local`).
pub(super) fn ceiling_class(l: &Ledger, origin: OriginKey, local: bool) -> usize {
    if local || l.is_known(origin) { 0 } else { 1 }
}

/// End of the wait imposed by the per-user ceiling (GCRA) for `origin`'s class.
pub(super) fn ceiling_until(
    l: &Ledger,
    policy: &Policy,
    origin: OriginKey,
    local: bool,
    now: u64,
) -> Option<u64> {
    let tat = l.ceiling[ceiling_class(l, origin, local)];
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
    local: bool,
    now: u64,
) -> Option<u64> {
    throttling(l, policy, origin, local, now, true).map(|(until, _)| until)
}

/// The longest wait any rule imposes on `origin` now and the rule imposing it (on a
/// tie the backoff: the rule the origin itself ran into). `backoff`: whether the
/// origin's own backoff counts (not for a continued answer, `Attempt::continued`).
pub(super) fn throttling(
    l: &Ledger,
    policy: &Policy,
    origin: OriginKey,
    local: bool,
    now: u64,
    backoff: bool,
) -> Option<(u64, Throttle)> {
    let blocked = (now < l.blocked_until).then_some(l.blocked_until);
    [
        origin_until(l, policy, origin, now)
            .filter(|_| backoff)
            .map(|u| (u, Throttle::Backoff)),
        blocked.map(|u| (u, Throttle::Backoff)),
        ceiling_until(l, policy, origin, local, now).map(|u| (u, Throttle::Ceiling)),
    ]
    .into_iter()
    .flatten()
    .fold(None, |longest: Option<(u64, Throttle)>, w| match longest {
        Some(l) if l.0 >= w.0 => Some(l),
        _ => Some(w),
    })
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
///
/// Never for an IPv6 link-local address ([`grace_host`]).
pub fn grace_applies(
    state: &UserState,
    policy: &Policy,
    enrolment: EnrolmentId,
    origin: OriginKey,
    rhost: Option<IpAddr>,
    now: i64,
) -> Result<bool, VerifyError> {
    let Some(ip) = rhost.and_then(grace_host) else {
        return Ok(false);
    };
    if policy.grace_period_secs == 0 || state.marks_of(enrolment).is_none() {
        return Ok(false);
    }
    let now = u64::try_from(now).map_err(|_| VerifyError::ClockFault)?;
    let l = Ledger::decode(&state.extra).map_err(VerifyError::Store)?;
    if hard_capped(&l, policy) || throttled_until(&l, policy, origin, false, now).is_some() {
        return Ok(false);
    }
    Ok(l.grace.iter().any(|g| {
        g.host == ip && g.when <= now && now < g.when.saturating_add(policy.grace_period_secs)
    }))
}

/// The address a grace entry may be recorded and found under: `rhost` canonical, or
/// `None` for an IPv6 link-local address (`fe80::/10`). Such an address names a host only
/// together with its link, the zone id (`fe80::1%eth0`) that [`crate::addr::parse_rhost`]
/// strips; a grace entry holds 16 address bytes and no link, so a peer on another link
/// with the same address and the password would log in without a code. GA compares the
/// whole `PAM_RHOST` text, zone included; link-local peers get no grace here instead.
pub fn grace_host(rhost: IpAddr) -> Option<IpAddr> {
    match crate::addr::canonical(rhost) {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => None,
        ip => Some(ip),
    }
}

/// Seconds `origin` (`local`: see [`Attempt::local`]) must still wait before an attempt
/// is evaluated (for the message a throttled user sees), or `None`.
pub fn wait_for(
    state: &UserState,
    policy: &Policy,
    origin: OriginKey,
    local: bool,
    now: i64,
) -> Option<u64> {
    let now = u64::try_from(now).ok()?;
    let l = Ledger::decode(&state.extra).ok()?;
    throttled_until(&l, policy, origin, local, now).map(|u| u - now)
}
