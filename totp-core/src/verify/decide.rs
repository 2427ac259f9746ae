//! [`Prepared::decide`]: admission, the replay check and the record of one attempt,
//! inside the state store's atomic update.

use super::*;
use crate::policy::DEFAULT_MAX_TIME_SKEW;

/// The configuration a doomed attempt is checked against: a 160-bit zero secret with
/// no mode line and no scratch codes, so nothing can ever match.
pub(super) const STAND_IN: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";

/// The longest `STEP_SIZE` a secret file may name (the parser refuses more).
pub const LONGEST_STEP_SECS: u64 = 60;

/// The furthest a stored `TIME_SKEW` puts accepted codes past the clock, for any file
/// and any module options: the skew cap `max_time_skew=` can lower but never raise, at
/// the longest step.
pub const LONGEST_SKEW_LEAD_SECS: u64 = DEFAULT_MAX_TIME_SKEW as u64 * LONGEST_STEP_SECS;

/// The latest replay mark (unix time) a login at `now` honours, `lead_secs` being how
/// far the file's positive `TIME_SKEW` puts its codes past the clock: a later one is a
/// clock fault ([`VerifyError::StateAhead`]), refused until an admin's reset. The one
/// definition of that limit, so that `totp-state reset` lowers no mark a login would
/// still honour (the mark of a phone legitimately ahead).
pub fn latest_honoured_mark(now: u64, max_clock_lag_secs: u64, lead_secs: u64) -> u64 {
    now.saturating_add(max_clock_lag_secs)
        .saturating_add(lead_secs)
}

/// Whether a version-1 TOTP mark (`last_step`, a step of whatever `STEP_SIZE` wrote
/// it), read at the file's `file_step` after anything a login honours, can have been
/// written at a shorter step near the clock: at some valid step `s` below the file's,
/// `last_step × s` falls within `[earliest, latest]` (the clock less, and plus, the
/// clock-lag allowance and the file's skew lead). That is a re-enrolment at a longer
/// step (a 30-s mark read at 60 s lands near twice the clock, read at 30 s near the
/// clock), and the mark is set aside for it (R35). Otherwise it is a clock fault: the
/// same step's mark of a clock that was ahead, or of this clock set back, which must
/// keep refusing the codes it covers (R13).
///
/// The margin: a same-step mark `D` seconds after the clock is read at the next shorter
/// step `f − 1` as `D − mark_time / f` seconds from the clock, so no setback shorter
/// than `mark_time / f` less the allowance is set aside. That is least at the longest
/// step: the time divided by 60, over 340 days from 2026 on (less about two days of
/// allowance), and it grows with the clock. Longer setbacks are set aside only within
/// the allowance of one of those readings.
pub fn version_1_mark_from_shorter_step(
    last_step: u64,
    file_step: u64,
    earliest: u64,
    latest: u64,
) -> bool {
    (crate::gafile::SHORTEST_STEP_SECS..file_step.min(LONGEST_STEP_SECS + 1)).any(|s| {
        let t = last_step.saturating_mul(s);
        (earliest..=latest).contains(&t)
    })
}

/// `file.set(key, value)`, or nothing where the updated file would outgrow GA's size
/// cap: GA writes such a file and then refuses it at every login, and refusing the
/// login here would turn a bookkeeping line into a denial (R3). The line is read and
/// obeyed as before; the state store holds this login's use.
fn set_within_cap(
    file: &mut GaFile,
    key: &'static str,
    value: &str,
    shared: bool,
    warnings: &mut Vec<Warning>,
) -> Result<(), VerifyError> {
    match file.set(key, value) {
        Err(GaFileError::TooLarge) => {
            warnings.push(Warning::LineNotUpdated { key, shared });
            Ok(())
        }
        other => Ok(other?),
    }
}

impl Prepared {
    /// Forgets the oldest used scratch codes of `marks` until `room` more fit in a
    /// record. GA has no limit: users who live on scratch codes get new ones appended
    /// (or regenerated) for the same secret. Only a code the file no longer lists (its
    /// line was removed) is forgotten, as no login can use it again; one still listed (a
    /// file that could not be rewritten) never is, so it stays refused: without such
    /// room, [`VerifyError::TooManyUsedScratch`].
    fn make_room(&self, marks: &mut Marks, room: usize) -> Result<(), VerifyError> {
        if marks.scratch.len() + room <= MAX_USED_SCRATCH {
            return Ok(());
        }
        let listed: Vec<u64> = self
            .file
            .scratch_codes()
            .iter()
            .map(|&c| scratch_tag(&self.key, self.enrolment, c))
            .collect();
        while marks.scratch.len() + room > MAX_USED_SCRATCH {
            match marks.scratch.iter().position(|t| !listed.contains(t)) {
                Some(oldest) => {
                    marks.scratch.remove(oldest);
                }
                None => return Err(VerifyError::TooManyUsedScratch),
            }
        }
        Ok(())
    }

    /// The enrolment the file is ([`super::enrolment_id`]), whose record a `user=` name
    /// without an account is kept in ([`crate::ledger::EnrolmentRecord`]).
    pub fn enrolment(&self) -> EnrolmentId {
        self.enrolment
    }

    /// For a login that can never succeed (no account, no or an unusable secret): no
    /// candidate, nothing to match. Its decision throttles and charges exactly like a
    /// wrong code, so a name without an account is throttled, and told so, like one
    /// with an account (R9).
    pub fn doomed(now: i64) -> Result<Prepared, VerifyError> {
        let now = u64::try_from(now).map_err(|_| VerifyError::ClockFault)?;
        let file = GaFile::parse(STAND_IN)?;
        let cfg = file.config()?;
        let secret = file.secret()?;
        Ok(Prepared {
            file,
            cfg,
            secret,
            enrolment: EnrolmentId(0),
            key: StoreKey::new([0; crate::state::STORE_KEY_LEN]),
            window: 1,
            now,
            ahead: 0,
            matches: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// The end (unix time) of the furthest step this login's window reaches, the file's
    /// positive `TIME_SKEW` included: no TOTP code accepted at this clock is marked used
    /// past it. Further ahead, by more than [`CLOCK_SLACK_SECS`], a mark comes from a
    /// clock that was ahead when it was written ([`Warning::MarkAheadOfClock`]).
    pub fn window_reach(&self) -> u64 {
        let step = self.cfg.step_secs();
        (self.now / step)
            .saturating_add(self.ahead)
            .saturating_add(1)
            .saturating_mul(step)
    }

    /// The digits of the file's codes (for splitting the answer).
    pub fn digits(&self) -> Digits {
        self.cfg.digits
    }

    /// The file's mode (TOTP or HOTP).
    pub fn mode(&self) -> Mode {
        self.cfg.mode
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
        let own_marks = state.marks_of(self.enrolment).is_some();
        let mut marks = current_marks(&self.cfg, self.enrolment, state);
        // A record merged from two stores (`state_fallback=local`'s uses carried into the
        // shared store's) may hold more used scratch codes than a record keeps. Written
        // as it is, the encoding would drop the newest: a use forgotten, the code open
        // again on the hosts that read only the shared store (R34). Room is made as for
        // a new use. Where none can be (the file lists every used code), the record
        // written keeps its own uses and the first carried ones; the rest stay in the
        // local record, and the full record refuses every scratch code it lacks while
        // the file is unchanged. Refusing the login instead would refuse the user's TOTP
        // codes too, at every login on this host, until the file changed (a lockout).
        // The decision itself sees every use: a carried code is refused as used.
        let fitted;
        let state = if marks.scratch.len() > MAX_USED_SCRATCH {
            match self.make_room(&mut marks, 0) {
                Ok(()) => {}
                Err(VerifyError::TooManyUsedScratch) => {
                    warnings.push(Warning::UsedScratchNotCarried {
                        dropped: marks.scratch.len() - MAX_USED_SCRATCH,
                    });
                }
                Err(e) => return Err(e),
            }
            let mut kept = marks.clone();
            kept.scratch.truncate(MAX_USED_SCRATCH);
            fitted = state.with_marks(self.enrolment, kept);
            &fitted
        } else {
            state
        };
        // A positive stored TIME_SKEW puts every accepted step that far past the
        // clock: that lead is no clock fault. (A skew GA learned, up to 1500 steps,
        // is more than a day at a 60-s step.)
        let skew_steps = self.ahead.saturating_sub(u64::from(self.window / 2));
        let lead = skew_steps.saturating_mul(self.cfg.step_secs());
        let latest = latest_honoured_mark(now, policy.max_clock_lag_secs, lead);
        // A version-1 mark is a step of whatever STEP_SIZE the file had. Read at this
        // file's step beyond anything a login honours, it may have been written at a
        // shorter step (a 30-s mark read at 60 s lands near twice the clock): not this
        // enrolment's, and a clock fault for it would lock a re-enrolment out until an
        // admin's reset (R35). The enrolment that wrote it reads it at its own step.
        // Only a shorter step that puts it near the clock says so: a same-step mark
        // ahead is a clock fault like any other (a clock set back must not replay the
        // codes it covers, R13).
        let step = self.cfg.step_secs();
        let earliest = now
            .saturating_sub(policy.max_clock_lag_secs)
            .saturating_sub(lead);
        if !own_marks
            && let Some(last_step) = marks.last_totp_step(step)
            && last_step.saturating_mul(step) > latest
            && version_1_mark_from_shorter_step(last_step, step, earliest, latest)
        {
            marks.totp_until = None;
            warnings.push(Warning::Version1MarkNotApplied {
                mark_time: last_step.saturating_mul(step),
            });
        }
        let mark = effective_mark(&self.cfg, &marks);
        if let Some((m, in_file)) = mark {
            let mark_time = m.saturating_mul(self.cfg.step_secs());
            if mark_time > latest {
                // Only the file's line raises a mark above the record's (effective_mark).
                let version_1 = !own_marks && !in_file && state.legacy.is_some();
                return Err(VerifyError::StateAhead {
                    mark_time,
                    in_file,
                    version_1,
                });
            }
            let reach = self.window_reach();
            if mark_time > reach.saturating_add(CLOCK_SLACK_SECS) {
                warnings.push(Warning::MarkAheadOfClock {
                    mark_time,
                    ahead: mark_time - now,
                });
            }
        }
        let mut ledger = load_ledger(&self.cfg, state, policy, now, &mut warnings)?;
        let origin = attempt.origin;
        let mut touched = state.extra.is_empty() && warnings.contains(&Warning::Migrated);

        let mut file = self.file.clone();
        let mut refusal = None;
        // GA's RATE_LIMIT counts one entry per authentication: the tentative check of
        // `PAM_AUTHTOK` made it, and its verdict is repeated for the prompted answer.
        if !attempt.continued
            && let Some(rl) = &self.cfg.rate_limit
        {
            // A home shared by several hosts (NFS) holds the attempts of all of them
            // in this line, as with GA; this store knows only this host's.
            let current = RateLimit {
                attempts: rl.attempts,
                interval_secs: rl.interval_secs,
                timestamps: merge_attempts(&ledger.attempts, &rl.timestamps, now),
            };
            let (updated, exceeded) = gafile::rate_limit_update(&current, now);
            // Read and obeyed either way; written only for the hosts that read it.
            if attempt.keep_ga_lines {
                let value = gafile::rate_limit_value(&updated);
                set_within_cap(&mut file, KEY_RATE_LIMIT, &value, true, &mut warnings)?;
            }
            ledger.attempts = updated.timestamps;
            touched = true;
            if exceeded {
                warnings.push(Warning::RateLimitExceeded);
                let oldest = ledger.attempts.first().copied().unwrap_or(now);
                let until = oldest
                    .saturating_add(u64::from(rl.interval_secs))
                    .max(now + 1);
                refusal = Some((Verdict::Throttled(Throttle::RateLimit), Some(until - now)));
            }
        }
        // A continued answer is admitted again, against the record the failed tentative
        // check wrote: that failure may be the one that reached `max_failures=` or the
        // per-user ceiling, and a second guess must not slip past it (R14). Not against
        // the origin's backoff (see `Attempt::continued`): a login admitted once gets
        // its prompted answer checked, two guesses charged as two.
        let backoff = !attempt.continued;
        if hard_capped(&ledger, policy) {
            refusal = Some((Verdict::Disabled, None));
        } else if let Some((until, rule)) =
            throttling(&ledger, policy, origin, attempt.local, now, backoff)
        {
            // Not charged: a stranger can make an origin wait, never extend the wait.
            // GA's RATE_LIMIT stays the reason while its own wait is the longer one.
            let wait = until - now;
            if !matches!(refusal, Some((_, Some(w))) if w >= wait) {
                refusal = Some((Verdict::Throttled(rule), Some(wait)));
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
                file: (file != self.file).then_some(file),
                matched: None,
                retry_after,
                warnings,
            });
        }

        let reuse = self.cfg.disallow_reuse.clone().unwrap_or_default();
        // Steps before the boot (a lazy write lost in a crash) and before the store was
        // recreated (a shared store that lost its data) count as used.
        let floor_time = attempt
            .boot_time
            .unwrap_or(0)
            .max(attempt.store_complete_since);
        let boot_floor = (attempt.boot_time.is_some() || attempt.store_complete_since > 0)
            .then(|| (floor_time / self.cfg.step_secs()).saturating_add(self.ahead));
        // The window starts after the store's high-water mark, which is ahead of the
        // file's counter when the file could not be rewritten.
        let hotp_floor = match self.cfg.mode {
            Mode::Hotp { counter } => counter.max(marks.hotp.map_or(0, |m| m.saturating_add(1))),
            _ => 0,
        };
        let mut verdict = Verdict::Rejected;
        let mut matched = None;
        let mut hotp_failed = false;
        for (idx, m) in self.matches.iter().enumerate() {
            let accepted = match (m, self.cfg.mode) {
                (Matched::Scratch(Some((v, tag))), _) => {
                    if marks.scratch.contains(tag) {
                        // Used before; the file could not be rewritten then.
                        verdict = Verdict::Replayed;
                        break;
                    }
                    self.make_room(&mut marks, 1)?;
                    marks.scratch.push(*tag);
                    file.remove_scratch_code(*v);
                    Some(Method::Scratch)
                }
                (Matched::Scratch(None), _) => None,
                // A wrong-length answer is no HOTP attempt: the counter stays (as before).
                (Matched::Nothing, _) => None,
                (Matched::Totp(steps), Mode::Totp) => {
                    let unused = |s: &u64| mark.is_none_or(|(m, _)| *s > m) && !reuse.contains(s);
                    let after_boot = |s: &u64| boot_floor.is_none_or(|f| *s > f);
                    let ok = steps.iter().copied().find(|s| unused(s) && after_boot(s));
                    match ok {
                        Some(step) => {
                            // Kept up to date where the file has it and hosts with other
                            // stores read the same file (a shared home): they refuse the
                            // step too, as they did with GA. (Listed steps are refused
                            // above, `reuse`, whether or not it is written.)
                            if let (true, Some(listed)) =
                                (attempt.keep_ga_lines, self.file.get(KEY_DISALLOW_REUSE))
                            {
                                let window = u64::from(self.cfg.window_or_default());
                                if let Some(v) =
                                    gafile::disallow_reuse_update(listed, step, window)?
                                {
                                    set_within_cap(
                                        &mut file,
                                        KEY_DISALLOW_REUSE,
                                        &v,
                                        true,
                                        &mut warnings,
                                    )?;
                                }
                            }
                            Some(Method::Totp { step })
                        }
                        None if !steps.is_empty() => {
                            if steps.iter().any(unused) {
                                let since = attempt.store_complete_since;
                                warnings.push(if since > now.saturating_add(CLOCK_SLACK_SECS) {
                                    Warning::StoreRecreatedAhead {
                                        since,
                                        ahead: since - now,
                                    }
                                } else {
                                    Warning::UsedBeforeBoot
                                });
                                verdict = Verdict::Replayed;
                            } else if steps
                                .iter()
                                .any(|s| reuse.contains(s) || mark.is_some_and(|(m, _)| *s == m))
                            {
                                verdict = Verdict::Replayed;
                            } else {
                                // Every matching step lies below the mark, none of them
                                // the step accepted there.
                                verdict = Verdict::OutOfOrder;
                            }
                            // GA ends the loop on a replay instead of trying further readings.
                            break;
                        }
                        None => None,
                    }
                }
                (Matched::Hotp(code), Mode::Hotp { .. }) => {
                    let end = hotp_floor
                        .saturating_add(u64::from(self.window))
                        .min(MAX_COUNTER);
                    let found = search_window(&self.secret, &self.cfg, code, hotp_floor..end);
                    match found.first() {
                        Some(&counter) => {
                            let next = (counter + 1).to_string();
                            let shared = attempt.keep_ga_lines;
                            set_within_cap(
                                &mut file,
                                KEY_HOTP_COUNTER,
                                &next,
                                shared,
                                &mut warnings,
                            )?;
                            Some(Method::Hotp { counter })
                        }
                        None => {
                            // A code just accepted, typed again without a press: a replay,
                            // not a failure. Moving the counter on for it (GA does) would
                            // leave the token one behind, every later press failing.
                            let recent = hotp_floor.saturating_sub(u64::from(self.window))
                                ..marks.hotp.map_or(0, |m| m.saturating_add(1));
                            let used = search_window(&self.secret, &self.cfg, code, recent);
                            if !used.is_empty() {
                                // Only the counter accepted last is known to be used; an
                                // older one is a code the token showed before it.
                                verdict = if marks.hotp.is_some_and(|m| used.contains(&m)) {
                                    Verdict::Replayed
                                } else {
                                    Verdict::OutOfOrder
                                };
                                break;
                            }
                            // The file's own counters under a version-1 counter this
                            // token may not have written: refused as used all the same
                            // (a restored or never-rewritten file must not replay the
                            // old token's codes), and said, so that an admin who gave
                            // the user a new token can drop the old counter.
                            if let (false, Some(old), Mode::Hotp { counter }) =
                                (own_marks, state.legacy.and_then(|l| l.hotp), self.cfg.mode)
                            {
                                let end = counter
                                    .saturating_add(u64::from(self.window))
                                    .min(old.saturating_add(1));
                                if let Some(&c) =
                                    search_window(&self.secret, &self.cfg, code, counter..end)
                                        .first()
                                {
                                    warnings.push(Warning::Version1HotpCounter {
                                        counter: c,
                                        mark: old,
                                    });
                                    verdict = Verdict::Replayed;
                                    break;
                                }
                            }
                            hotp_failed = true;
                            None
                        }
                    }
                }
                (Matched::Totp(_) | Matched::Hotp(_), _) => None,
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
                let next = counter.saturating_add(1).to_string();
                match file.set(KEY_HOTP_COUNTER, &next) {
                    // GA's bookkeeping of a failure, which the store keeps no move for
                    // either: nothing was used, so a file too full for it loses nothing
                    // (a warning saying a use went unrecorded would be false).
                    Err(GaFileError::TooLarge) => {}
                    other => other?,
                }
            }
        }

        let mut next = stored(state, &ledger);
        let write = match verdict {
            Verdict::Accepted(method) => {
                if attempt.continued {
                    // The failed check of PAM_AUTHTOK this login made was the user's
                    // password, not guessing: a user whose password ends in digits
                    // pays it on every login, and would use up the per-user ceiling by
                    // logging in often. Given back, in the class it was charged to
                    // (before this success makes the origin known).
                    let class = ceiling_class(&ledger, origin, attempt.local);
                    ledger.ceiling[class] =
                        ledger.ceiling[class].saturating_sub(policy.ceiling_interval_secs);
                }
                ledger.clear_origin(origin);
                ledger.consecutive = 0;
                ledger.blocked_until = 0;
                // Only a numeric peer address is a place the user logs in from. A tty
                // (sudo, su) is a number any local account can pick, and each sudo in a
                // new session would push the user's network origins out of the short
                // list; a host name is whatever the peer's reverse zone says (R21).
                if attempt.rhost.is_some() {
                    ledger.remember_known(origin, now);
                }
                if state.marks_of(self.enrolment).is_none() {
                    // A secret new to the record: the grace entries were earned by the
                    // ones before it (a lost phone, the uid's earlier owner).
                    ledger.grace.clear();
                }
                // Not for a link-local peer: it would never be found ([`grace_host`]).
                if let (true, Some(ip)) = (
                    policy.grace_period_secs > 0,
                    attempt.rhost.and_then(grace_host),
                ) {
                    ledger.record_grace(ip, now);
                }
                next.extra = ledger.encode();
                let lazy = match method {
                    Method::Totp { step } => {
                        let until = step.saturating_add(1).saturating_mul(self.cfg.step_secs());
                        marks.totp_until = Some(until.max(marks.totp_until.unwrap_or(0)));
                        // Lazy is enough when the boot floor covers a write lost to a
                        // power loss or crash (see `Attempt::boot_time`).
                        attempt.boot_time.is_some()
                    }
                    // The store is the authority on counters and scratch codes (the
                    // file may not be writable): nothing else covers a lost write.
                    Method::Hotp { counter } => {
                        marks.hotp = Some(counter.max(marks.hotp.unwrap_or(0)));
                        false
                    }
                    Method::Scratch => false,
                };
                // Only an over-full merged record holds more (see above): what it keeps.
                marks.scratch.truncate(MAX_USED_SCRATCH);
                let next = next.with_marks(self.enrolment, marks);
                if lazy {
                    Write::Lazy(next)
                } else {
                    Write::Durable(next)
                }
            }
            // A continued answer is a guess of its own and is charged like one: two
            // guesses in one login cost two failures (R14).
            _ => {
                ledger.charge_origin(origin, attempt.rhost, now);
                ledger.consecutive = ledger.consecutive.saturating_add(1).min(1_000_000);
                let class = ceiling_class(&ledger, origin, attempt.local);
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
