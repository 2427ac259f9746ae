//! The evaluation of one answer: read the secret file, compare, one atomic state-store
//! update, the secret-file write when a code was used up, and the verdict with its log
//! line.

use super::*;

use totp_core::fleet::Fallback;
use totp_core::policy::CLOCK_SLACK_SECS;
use totp_core::state::{EnrolmentId, Marks, StoreKey};
use totp_os::state_dir::KEY_FILE;

/// Decisions one answer may take when a shared store's record keeps changing under the
/// write ([`StoreError::StoreChanged`]): each change is a data set lost or restored, so
/// a few rounds are plenty. Time bounds them too: all of them share one answer's bound
/// ([`StateStore::answer_bound`], R36).
const STORE_CHANGED_ROUNDS: u32 = 3;

impl Ctx {
    /// One answer evaluated ([`Ctx::evaluate_answer`]); a fault that stops it still
    /// ends the attempt with a line naming the user and the host, as every answered
    /// attempt does (docs/logging.md).
    pub(super) fn evaluate(
        &self,
        io: &mut dyn PamIo,
        sys: &dyn System,
        run: &mut Run<'_>,
        cands: &[Candidate],
        phase: Phase,
    ) -> Result<Continuation, AuthError> {
        let result = self.evaluate_answer(io, sys, run, cands, phase);
        // A server of a shared store's list passed over during the answer's calls (after
        // the open, whose warning is logged there): a member that fails unnoticed while
        // the others serve leaves the cluster one failure further from its majority.
        if let Some(note) = run.store.as_mut().and_then(|s| s.take_note()) {
            io.log(Level::Warning, &format!("shared state store: {note}"));
        }
        if let Some(text) = result.as_ref().err().and_then(AuthError::log_text) {
            self.log_end(io, run.who, text);
        }
        result
    }

    /// Reads the secret file as the target (locked when this attempt may change it),
    /// compares the candidates, then asks the store, in one atomic update, to admit,
    /// check for replay and record the attempt. The verdict is released only after that
    /// update (R15; see `totp_core::verify`).
    fn evaluate_answer(
        &self,
        io: &mut dyn PamIo,
        sys: &dyn System,
        run: &mut Run<'_>,
        cands: &[Candidate],
        phase: Phase,
    ) -> Result<Continuation, AuthError> {
        let who = run.who;
        let name = &run.target.name;
        let shown = self.shown(run.target);
        let now = sys.now().map_err(|_| {
            io.log(Level::Err, "cannot read the clock");
            AuthError::Clock
        })?;
        // Opened now that the answer is in (state_fallback=local acts here, when the
        // shared store cannot be opened), before the secret file is locked.
        // Whether this login opened the shared store (not the local fallback) itself.
        let mut shared_opened = false;
        let mut fell_back = false;
        let store = match run.store {
            Some(ref mut s) => s,
            None => match store::open(
                &self.opts,
                sys,
                run.record
                    .account()
                    .map(|uid| (uid, run.target.name.as_str())),
                &mut |note| match note {
                    store::OpenNote::FellBack(m) => {
                        fell_back = true;
                        io.log(Level::Warning, m);
                    }
                    store::OpenNote::Skipped(m) => io.log(Level::Warning, m),
                },
            ) {
                Ok(s) => {
                    shared_opened = self.opts.state.is_shared() && !fell_back;
                    run.store.insert(s)
                }
                Err(why) => {
                    io.log(
                        Level::Err,
                        &format!("no usable state store: {why}; denying"),
                    );
                    tell_store_fault(io);
                    burn_window(&self.policy);
                    let outcome = self.denied(io, who, Denial::StateUnusable);
                    return Ok(Continuation::Done(outcome));
                }
            },
        };
        // A code this host accepted through its local store is marked there only: before
        // the host moved to the shared store (state= local until the pam.d line changed,
        // minutes ago), or under state_fallback=local while the shared store could not be
        // opened (back without a restart: no floor raised). The shared store never saw
        // it, so its marks are carried into the decision, or the move, or the server's
        // return, would reopen the code on this host (R34). A host without a local store
        // reads nothing (the directory is not created).
        let fallback_marks = if shared_opened {
            run.record
                .account()
                .and_then(|uid| local_marks_of(io, &self.opts, sys, uid))
        } else {
            None
        };
        let read = self.read_secret(io, run.target, &run.preread, run.keep_ga_lines, cands)?;
        let (file, mut locked) = match read {
            SecretRead::Ready { file, locked } => (file, locked),
            SecretRead::Deny(denial) => {
                return Ok(Continuation::Done(self.denied(io, who, denial)));
            }
        };
        let Ok(now_secs) = u64::try_from(now) else {
            io.log(Level::Err, "clock fault: time is before 1970; denying");
            return Err(AuthError::Clock);
        };
        // An enrolment's record gets no grace period: two enrolments can share one, and
        // a grace entry of one must never let the other in without a code.
        let no_grace;
        let policy = match run.record {
            Record::Account(_) => &self.policy,
            Record::Enrolment => {
                no_grace = Policy {
                    grace_period_secs: 0,
                    ..self.policy.clone()
                };
                &no_grace
            }
        };
        let mut round = 0;
        // Once, before the first decision: deciding again, and every retry of the
        // decisions' updates, gets only what is left. Only the decision's updates take
        // it: what the login writes after has each update's own bound.
        let bound = store.answer_bound();
        let (prepared, uid, decided) = loop {
            round += 1;
            let found = self.store_context(&mut **store, now_secs);
            let recreated = store.take_recreation();
            if let Some(note) = recreated.as_ref().and_then(|r| r.clock_note.as_deref()) {
                io.log(Level::Warning, note);
            }
            let context = match found {
                // A store record as new as this login: this login (or another host's
                // in the same second) created it. Right once for a new store or after a
                // data loss; on a fleet in use, the sign of a host whose store URL,
                // prefix or database is not the other hosts', which would otherwise keep
                // a store of its own.
                Ok(c) if shared_opened && (recreated.is_some() || c.complete_since == now_secs) => {
                    io.log(
                        Level::Warning,
                        "the shared state store had no store record, so it was created now: \
                     every code up to now counts as used (expected for a new store without \
                     `totp-state init`, after a data loss, after a Redis server's restart \
                     or failover, or an etcd cluster restored from a snapshot; otherwise \
                     check that this host's state=, redis_prefix= or etcd_prefix= and \
                     database are the other hosts')",
                    );
                    c
                }
                Ok(c) => c,
                // Not tell_store_fault: the fix is this host's clock (or the server's),
                // and the log line names it.
                Err(ContextFault::Clock(line)) => {
                    io.log(Level::Err, &line);
                    return Err(AuthError::Clock);
                }
                Err(ContextFault::Store(e)) => {
                    // Unlocked before the user is told (the message may wait on them).
                    drop(locked);
                    return self
                        .store_unusable(io, who, name, e)
                        .map(Continuation::Done);
                }
            };
            let prepared = match verify::prepare(&file, policy, cands, now, &context.key) {
                Ok(p) => p,
                Err(verify::VerifyError::ClockFault) => {
                    io.log(Level::Err, "clock fault: time is before 1970; denying");
                    return Err(AuthError::Clock);
                }
                Err(e) => {
                    io.log(Level::Err, &format!("secret file {shown}: {e}"));
                    return Ok(Continuation::Done(self.denied(io, who, Denial::BadFile)));
                }
            };
            let attempt = Attempt {
                origin: self.origin,
                rhost: self.rhost_ip,
                local: self.local,
                now,
                continued: phase == Phase::Continued,
                // The boot time by the same clock the codes are checked against.
                boot_time: sys.uptime().and_then(|up| now_secs.checked_sub(up)),
                store_complete_since: context.complete_since,
                keep_ga_lines: run.keep_ga_lines,
            };
            let uid = run.record.uid(&prepared);
            // What the fallback's local store alone saw used: the TOTP mark (bounded),
            // the HOTP counter and the scratch codes. The last two are only the store's
            // to keep where the file could not be rewritten (read-only, immutable).
            let carried = fallback_marks.as_ref().and_then(|(key, state)| {
                let id = verify::enrolment_of(&file, key).ok()?;
                let local = match state.marks_of(id) {
                    Some(m) => m.clone(),
                    // A record of format 1 (the host upgraded from a release before
                    // enrolment-bound marks and moved at once): its TOTP mark holds
                    // every enrolment without marks of its own here, so it is carried
                    // for this one. Not its HOTP counter: a token given since would
                    // inherit it on the shared store as marks of its own, out of reach
                    // of `totp-state reset --forget-version-1-marks`.
                    None => {
                        let step = file.config().ok()?.step_secs();
                        Marks {
                            totp_until: state
                                .legacy?
                                .last_step
                                .map(|s| s.saturating_add(1).saturating_mul(step)),
                            ..Marks::default()
                        }
                    }
                };
                Some(Marks {
                    // A code the fallback accepted is marked no further ahead than the
                    // window reaches (with the file's TIME_SKEW), give or take the
                    // slack NTP leaves a clock. A mark beyond comes from a clock fault:
                    // carried, it would be written to the shared store and hold every
                    // host's logins of the user until then (an admin locked out
                    // fleet-wide).
                    totp_until: local.totp_until.filter(|&until| {
                        until <= prepared.window_reach().saturating_add(CLOCK_SLACK_SECS)
                    }),
                    hotp: local.hotp,
                    // Named under the shared store's key, which tags them differently.
                    scratch: verify::scratch_tags_carried(&file, key, &local.scratch, &context.key)
                        .unwrap_or_default(),
                })
            });
            let shared_id = carried
                .as_ref()
                .and_then(|_| verify::enrolment_of(&file, &context.key).ok());
            let step_secs = file.config().map(|c| c.step_secs()).ok();
            let mut decided = None;
            let stored = store.update_within(uid, &*bound, &mut |state| {
                let merged = match (&carried, shared_id, step_secs) {
                    (Some(local), Some(id), Some(step)) => with_local_marks(state, id, local, step),
                    _ => None,
                };
                let d = prepared.decide(merged.as_ref().unwrap_or(state), policy, &attempt);
                let write = d.as_ref().map_or(Write::Nothing, |d| d.write.clone());
                decided = Some(d);
                write
            });
            match stored {
                Ok(()) => break (prepared, uid, decided),
                // The write found the store record changed since it was read (a data
                // set lost or restored meanwhile): nothing was written, and the decision
                // used a floor that no longer holds. Read it again (recreated at now if
                // it is gone) and decide again with it, within a bound (R36). Not a
                // fault of the store: logged in its own words, without "unavailable".
                Err(StoreError::StoreChanged(e)) if round < STORE_CHANGED_ROUNDS => {
                    if !bound.fits() {
                        let why = format!(
                            "{e}; the time bound of this answer ran out while the store \
                             record kept changing"
                        );
                        drop(locked);
                        return self
                            .store_failed(io, who, name, StoreError::Unavailable(why))
                            .map(Continuation::Done);
                    }
                    io.log(
                        Level::Warning,
                        &format!(
                            "{who} ({shown}): {e}; deciding again with the store record as it \
                         is now"
                        ),
                    );
                }
                Err(e) => {
                    drop(locked);
                    return self.store_failed(io, who, name, e).map(Continuation::Done);
                }
            }
        };
        let decision = match decided {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                drop(locked);
                return self
                    .decide_failed(io, who, name, &shown, now, e)
                    .map(Continuation::Done);
            }
            None => {
                io.log(
                    Level::Err,
                    "the state store never ran the decision; denying",
                );
                let outcome = self.denied(io, who, Denial::StateUnusable);
                return Ok(Continuation::Done(outcome));
            }
        };
        for w in &decision.warnings {
            // Configuration facts would repeat on every login: they are logged with
            // `debug`, and a clamp also when a code was refused (it may be why);
            // `totp-enroll check` reports them.
            let clamp = matches!(
                w,
                Warning::WindowClamped { .. } | Warning::SkewClamped { .. }
            );
            if w.is_configuration()
                && !self.opts.debug
                && !(clamp && decision.verdict == Verdict::Rejected)
            {
                continue;
            }
            // The one command that lets a new token in: said on the refusal itself.
            let fix = match w {
                Warning::Version1HotpCounter { .. } => format!(
                    "; if so, `{} --forget-version-1-marks` lets it in (the old token's \
                     codes then work again, if it is still around)",
                    self.reset_command(name)
                ),
                _ => String::new(),
            };
            io.log(Level::Warning, &format!("{who} ({shown}): {w}{fix}"));
        }
        // A failed tentative check keeps only its charge: GA moves the HOTP counter at
        // most once per authentication, after the prompted answer. The charge is the
        // RATE_LIMIT entry GA counts for this authentication (the prompted answer is
        // not counted again): an HOTP file keeps it without the counter's move. (A
        // TOTP file's change is that line alone.)
        let counter_based = matches!(prepared.mode(), Mode::Hotp { .. });
        let tentative_hotp_failure =
            phase == Phase::Tentative && !decision.verdict.is_accepted() && counter_based;
        let kept = if tentative_hotp_failure {
            decision
                .file
                .as_ref()
                .and_then(|changed| rate_limit_only(&file, changed))
        } else {
            decision.file.clone()
        };
        // A used scratch code or an advanced HOTP counter is already recorded, durably,
        // in the state store, the authority on what was used. The secret file is
        // rewritten too where it can be (so that going back to GA stays safe), without
        // waiting for that to be durable; a file that cannot be rewritten (read-only,
        // configuration-managed) is no reason to deny. A command-served secret has no
        // file (nothing locked).
        if let (Some(changed), Some(l)) = (kept.as_ref(), locked.as_mut()) {
            let saved = if l.is_locked() {
                let _creds = switch_creds(&*io, run.target)?;
                l.replace_unsynced(changed.as_bytes())
                    .map_err(|e| e.to_string())
            } else {
                self.rewrite_refused_lock(io, run, uid, &decision.write, &file, changed)?
            };
            if let Err(e) = saved {
                // Said only where it matters (a file hosts with another store read),
                // and for every change the file would have carried: a used scratch
                // code left in it, an HOTP counter or a DISALLOW_REUSE line left behind
                // let those hosts take the same code again; a RATE_LIMIT line left as
                // it was does not count this attempt there.
                let shared = if run.keep_ga_lines {
                    shared_suffix(
                        decision.verdict,
                        file.contains_key(KEY_DISALLOW_REUSE),
                        file.contains_key(KEY_RATE_LIMIT),
                    )
                } else {
                    String::new()
                };
                // Only a success is in the store; a failure's move of an HOTP counter (GA's
                // rule) is simply dropped, and the log must not claim otherwise.
                let what = if decision.verdict.is_accepted() {
                    "what was used is recorded in the state store"
                } else if counter_based {
                    "the HOTP counter stays where it is (a failed attempt moves it on only \
                     in a file that can be rewritten)"
                } else {
                    "the attempt is counted in the state store"
                };
                io.log(
                    Level::Warning,
                    &format!("{who} ({shown}): not rewritten ({e}); {what}{shared}"),
                );
            }
        }
        drop(locked);
        let verdict = decision.verdict;
        if phase == Phase::Tentative && !verdict.is_accepted() {
            // The prompt decides the login, but a used code sent as the password is
            // still worth the warning (and the attempt is charged).
            if verdict == Verdict::Replayed {
                self.warn_replay(io, who, &decision);
            }
            if self.opts.debug {
                io.log(
                    Level::Info,
                    &format!("no valid code in PAM_AUTHTOK for {who}; prompting"),
                );
            }
            return Ok(Continuation::Carry(decision.refusal()));
        }
        self.verdict(io, who, cands, &decision, counter_based)
            .map(Continuation::Done)
    }

    /// The rewrite of a file whose lock the file system refused (NFSv4, see
    /// `read_secret`), run inside a second per-user update of the state store. A local
    /// state directory holds its per-user lock there, which serialises the rewrite with
    /// every other login of this user on this host; a shared store (`state=`) refuses
    /// a used code on every host itself, and the file is only GA's copy. The store must
    /// already hold what the first update recorded (a used scratch code, an HOTP
    /// counter): the file is only a copy, and a code this host accepted stays refused
    /// here whatever becomes of the file. The file is re-read there: if it still holds
    /// the bytes the decision was made from, `changed` is written; if another login of
    /// this host rewrote it after this one read it, this login's use is carried into
    /// the newer file (`GaFile::carry_use`: its used scratch codes struck, the HOTP
    /// counter raised, never lowered), so neither login puts back what the other used
    /// up. Hosts sharing the file are excluded by the file alone, as with GA, which
    /// takes no lock: that is logged. `uid` is the record the first update wrote.
    fn rewrite_refused_lock(
        &self,
        io: &mut dyn PamIo,
        run: &mut Run<'_>,
        uid: Uid,
        recorded: &Write,
        decided: &GaFile,
        changed: &GaFile,
    ) -> Result<Result<(), String>, AuthError> {
        let (who, shown) = (run.who, self.shown(run.target));
        let Some(store) = run.store.as_mut() else {
            return Ok(Err("no state store to serialise the rewrite".into()));
        };
        let target = run.target;
        // `Ok(Some(carried))`: the file had changed and this login's use was carried
        // into the newer one.
        let mut outcome: Option<Result<Result<Option<Carried>, String>, AuthError>> = None;
        let updated = store.update(uid, &mut |state| {
            // A store that retries calls this again: the file is rewritten once.
            if outcome.is_some() {
                return Write::Nothing;
            }
            if let Write::Durable(next) = recorded
                && !records_hold(state, next)
            {
                outcome = Some(Ok(Err(
                    "the state store does not hold what this login used".into(),
                )));
                return Write::Nothing;
            }
            let creds = match switch_creds(&*io, target) {
                Ok(c) => c,
                Err(e) => {
                    outcome = Some(Err(e));
                    return Write::Nothing;
                }
            };
            let saved = match safefile::open_refused_lock(&target.path, &target.rules) {
                Ok(mut fresh) if fresh.contents() == decided.as_bytes() => fresh
                    .replace_unsynced(changed.as_bytes())
                    .map(|()| None)
                    .map_err(|e| e.to_string()),
                Ok(mut fresh) => carry_into(&mut fresh, decided, changed),
                Err(e) => Err(e.to_string()),
            };
            drop(creds);
            outcome = Some(Ok(saved));
            Write::Nothing
        });
        if let Err(e) = updated {
            return Ok(Err(format!("state store: {e}")));
        }
        let saved =
            outcome.unwrap_or_else(|| Ok(Err("the state store never ran the rewrite".into())))?;
        let saved = saved.map_err(|e| {
            format!("the file system refused the lock (flock: EBADF), then the rewrite: {e}")
        });
        // Nothing written when the newer file already held the use, or is a new enrolment.
        let written = match &saved {
            Ok(Some(carried)) => {
                let (what, written) = match *carried {
                    Carried::OtherSecret => (
                        "it now holds another secret (a new enrolment), so it is kept as it is"
                            .to_owned(),
                        false,
                    ),
                    Carried::Use {
                        struck: 0,
                        counter_raised: false,
                    } => (
                        "it already holds what this login used, so it is kept as it is".to_owned(),
                        false,
                    ),
                    Carried::Use {
                        struck,
                        counter_raised,
                    } => {
                        let mut done = Vec::new();
                        if struck > 0 {
                            done.push(format!("{struck} used scratch code(s) struck"));
                        }
                        if counter_raised {
                            done.push("its HOTP counter raised".to_owned());
                        }
                        (
                            format!(
                                "this login's use was carried into the newer file ({})",
                                done.join(", ")
                            ),
                            true,
                        )
                    }
                };
                io.log(
                    Level::Warning,
                    &format!(
                        "{who} ({shown}): changed by another login since this one read it \
                         (the lock was refused); {what}"
                    ),
                );
                written
            }
            _ => true,
        };
        let saved = saved.map(|_| ());
        if saved.is_ok() {
            let how = if written { "rewritten" } else { "checked" };
            io.log(
                Level::Warning,
                &format!(
                    "{who} ({shown}): the file system refused the lock on a file opened \
                     read-only (flock: EBADF, as an NFSv4 client does); {how} under this \
                     host's state store lock instead: what was used is recorded in the \
                     state store, and hosts with another state store are kept from reusing \
                     it by the rewritten file alone, as with GA"
                ),
            );
        }
        Ok(saved)
    }

    /// The secret file as the target sees it, locked when the attempt may rewrite it
    /// (HOTP, a scratch-shaped answer and scratch codes present, or GA's lines kept up
    /// to date: `keep_ga_lines`). `Err` is a module-wide fault.
    pub(super) fn read_secret(
        &self,
        io: &mut dyn PamIo,
        target: &LoginTarget,
        preread: &GaFile,
        keep_ga_lines: bool,
        cands: &[Candidate],
    ) -> Result<SecretRead, AuthError> {
        let shown = self.shown(target);
        // A secret from a command has no file to lock or rewrite.
        let from_command = self.opts.fleet.secret_command.is_some();
        // GA's DISALLOW_REUSE and RATE_LIMIT lines are kept up to date, under the lock,
        // where the file has them and hosts with other state stores read the same file
        // (`shared_file=`); elsewhere a TOTP login takes no lock and writes nothing.
        let config = preread.config().ok();
        let uses_up = config.as_ref().is_some_and(|c| {
            matches!(c.mode, Mode::Hotp { .. })
                || (cands.iter().any(|c| c.scratch) && !preread.scratch_codes().is_empty())
        });
        let ga_lines = keep_ga_lines
            && config
                .as_ref()
                .is_some_and(|c| c.disallow_reuse.is_some() || c.rate_limit.is_some());
        let may_change = !from_command && (uses_up || ga_lines);
        if !may_change {
            return Ok(SecretRead::Ready {
                file: preread.clone(),
                locked: None,
            });
        }
        let _creds = switch_creds(&*io, target)?;
        let timeout = Duration::from_millis(self.opts.lock_timeout_ms);
        let locked = match safefile::lock_with_deadline(&target.path, &target.rules, timeout) {
            Ok(l) => l,
            Err(FileError::LockTimeout | FileError::Unstable) => {
                io.log(
                    Level::Err,
                    &format!("timed out waiting for the lock on {shown}"),
                );
                return Err(AuthError::LockTimeout);
            }
            // Locked only for GA's lines (an NFSv4 client refuses an exclusive flock on
            // a descriptor opened read-only, flock(2)): the store decides as it does for
            // a file without them, so the login goes on with the file unchanged.
            Err(e @ FileError::Os { op: "flock", .. }) if !uses_up => {
                io.log(
                    Level::Warning,
                    &format!(
                        "{shown}: cannot be locked ({e}); its DISALLOW_REUSE and RATE_LIMIT \
                         lines are not updated, so hosts with another state store reading \
                         this file do not see this attempt (a shared state= store holds \
                         across hosts)"
                    ),
                );
                return Ok(SecretRead::Ready {
                    file: preread.clone(),
                    locked: None,
                });
            }
            // A code would be used up (scratch, HOTP) and the file system refuses the
            // lock as an NFSv4 client does: denying would lock out a user whose only
            // way in is a scratch code. The store's per-user update serialises the
            // rewrite on this host instead (see `rewrite_refused_lock`). ENOLCK (no lock
            // service) and every other fault still deny.
            Err(e) if safefile::is_refused_read_only_lock(&e) => {
                match safefile::open_refused_lock(&target.path, &target.rules) {
                    Ok(l) => l,
                    Err(e) => {
                        io.log(Level::Err, &format!("secret file {shown}: {e}"));
                        return Ok(SecretRead::Deny(Denial::BadFile));
                    }
                }
            }
            Err(e) => {
                io.log(Level::Err, &format!("secret file {shown}: {e}"));
                return Ok(SecretRead::Deny(Denial::BadFile));
            }
        };
        match GaFile::parse(locked.contents()) {
            Ok(file) => Ok(SecretRead::Ready {
                file,
                locked: Some(locked),
            }),
            Err(e) => {
                io.log(Level::Err, &format!("secret file {shown} is invalid: {e}"));
                Ok(SecretRead::Deny(Denial::BadFile))
            }
        }
    }

    /// The `totp-state reset` that reaches this line's store: the default directory
    /// needs only the user; another directory or a shared store is found from the PAM
    /// service's lines (a plain `reset --user` there would reset the default directory
    /// and leave the record that denies). An admin pastes it into a root shell, so the
    /// user name and the service are quoted for the shell: a directory service's name
    /// with a space (`john smith`) would otherwise reset another account, and one with
    /// `$(…)` or a backtick would run what it says.
    fn reset_command(&self, name: &UserName) -> String {
        let default_store = !self.opts.state.is_shared() && self.opts.state_dir.is_none();
        let user = shell_word(name.as_str());
        match &self.service {
            Some(service) if !default_store => {
                format!(
                    "totp-state reset --user {user} --service {}",
                    shell_word(service)
                )
            }
            None if !default_store => format!(
                "totp-state reset --user {user} --options '<this pam_totp line's arguments>'"
            ),
            _ => format!("totp-state reset --user {user}"),
        }
    }

    /// The store as a whole failed (the local store's key, a fleet's store record), not
    /// one user's record: every login is denied until it is fixed, so the user's
    /// `totp-state reset`, which the record's line advises, would change nothing. The
    /// store's own words name the fix. The attempt still ends with its closing line, a
    /// host fault's (`state store unusable`), which the fail2ban filter does not count.
    fn store_unusable(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        name: &UserName,
        e: StoreError,
    ) -> Result<Outcome, AuthError> {
        match e {
            StoreError::Corrupt(m) => {
                tell_store_fault(io);
                log_store_unusable(io, who, &m);
                Ok(self.denied(io, who, Denial::StateUnusable))
            }
            e => self.store_failed(io, who, name, e),
        }
    }

    pub(super) fn store_failed(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        name: &UserName,
        e: StoreError,
    ) -> Result<Outcome, AuthError> {
        tell_store_fault(io);
        match e {
            // A store record still changing once the login may not decide again (or
            // under a write that is no decision) is the store being unavailable.
            StoreError::Unavailable(m) | StoreError::StoreChanged(m) => {
                io.log(
                    Level::Err,
                    &format!("state store unavailable for {who}: {m}; denying"),
                );
                Err(AuthError::StoreUnavailable)
            }
            StoreError::Corrupt(m) => {
                io.log(
                    Level::Err,
                    &format!(
                        "state record of {who} is unusable: {m}; denying. Inspect it, then reset it with `{}`",
                        self.reset_command(name)
                    ),
                );
                Ok(self.denied(io, who, Denial::StateUnusable))
            }
            StoreError::Refused(m) => {
                io.log(
                    Level::Err,
                    &format!("the state of {who} could not be saved: {m}; denying"),
                );
                Ok(self.denied(io, who, Denial::NotPersisted))
            }
            StoreError::Clock(m) => {
                io.log(Level::Err, &clock_refusal(&m));
                Err(AuthError::Clock)
            }
        }
    }

    pub(super) fn decide_failed(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        name: &UserName,
        shown: &str,
        now: i64,
        e: verify::VerifyError,
    ) -> Result<Outcome, AuthError> {
        match e {
            verify::VerifyError::StateAhead {
                mark_time,
                in_file,
                version_1,
            } => {
                let fix = if in_file {
                    format!("remove the PAM_TOTP_LAST_STEP line from {shown}")
                } else if version_1 {
                    // A reset lowers a version-1 mark only within what a login could
                    // honour (it cannot tell one from a re-enrolment's): forgetting it is
                    // the one reset that always lets the user in.
                    format!(
                        "the mark is the version-1 record's: `{} --forget-version-1-marks` \
                         drops it (the codes it covers, of every enrolment without marks of \
                         its own, then work again)",
                        self.reset_command(name)
                    )
                } else {
                    format!(
                        "reset the user's state with `{} --clock-fault`",
                        self.reset_command(name)
                    )
                };
                io.log(
                    Level::Err,
                    &format!(
                        "clock fault for {who}: the last accepted code is from {}, but the clock says {}. Either the clock is wrong now, or it was ahead when that code was accepted (bad RTC, restored VM). If the clock is right, {fix}; denying",
                        format_utc(mark_time),
                        format_utc(u64::try_from(now).unwrap_or(0)),
                    ),
                );
                Err(AuthError::Clock)
            }
            verify::VerifyError::Store(e) => self.store_failed(io, who, name, e),
            verify::VerifyError::ClockFault => Err(AuthError::Clock),
            // Fail closed like any refusal, but not in the words of an unusable file:
            // the file is fine and an admin sent to it finds nothing wrong.
            e @ verify::VerifyError::TooManyUsedScratch => {
                io.log(
                    Level::Err,
                    &format!(
                        "{who} from {} ({shown}): a right scratch code was refused: {e}; \
                         `totp-state reset` does not make room (what was used stays used)",
                        self.from
                    ),
                );
                // Only an answer that matched an unused scratch code gets here, so this
                // tells nothing to anyone who does not hold one.
                let _ = io.converse(
                    Style::ErrorMsg,
                    "that scratch code cannot be used now; ask an administrator for new \
                     scratch codes",
                );
                Ok(self.denied(io, who, Denial::ScratchRecordFull))
            }
            e => {
                io.log(Level::Err, &format!("secret file {shown}: {e}"));
                Ok(self.denied(io, who, Denial::BadFile))
            }
        }
    }

    /// A refusal without evaluation; throttled users are told how long to wait, users
    /// past `max_failures=` that only an administrator can let them in again (a right
    /// code refused in silence reads as a broken phone, and an admin locked out of sudo
    /// needs to know that a root shell from elsewhere is the way back), with the same
    /// words for every account.
    pub(super) fn refused(&self, io: &mut dyn PamIo, who: &str, refusal: Refusal) -> Outcome {
        // Best effort: the denial stands whether or not the message arrives.
        let _ = match refusal {
            Refusal::Throttled { retry_after, .. } => io.converse(
                Style::ErrorMsg,
                &format!("too many failed codes; try again in {retry_after} s"),
            ),
            Refusal::Disabled => io.converse(
                Style::ErrorMsg,
                "too many failed codes; the second factor is disabled until an administrator resets it",
            ),
        };
        self.denied(io, who, refusal_denial(refusal))
    }

    /// Logs and maps a verdict; forwards the password on success with `forward_pass`.
    pub(super) fn verdict(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        cands: &[Candidate],
        decision: &Decision,
        counter_based: bool,
    ) -> Result<Outcome, AuthError> {
        let matched = decision.matched;
        if let Some(refusal) = decision.refusal() {
            return Ok(self.refused(io, who, refusal));
        }
        let method = match decision.verdict {
            Verdict::Accepted(m) => m,
            // The refusals were answered above; a verdict that gets here is denied.
            Verdict::Rejected | Verdict::Throttled(_) | Verdict::Disabled => {
                if cands.is_empty() {
                    // Nothing was compared: a pasted "123 456" or "123-456" would
                    // otherwise read in the log like a wrong code or a drifted phone.
                    // Only the shape is told, never the answer or its length (it may
                    // be a password typed at the wrong prompt).
                    let what = if self.opts.forward_pass {
                        "the answer does not end in a code"
                    } else {
                        "the answer is not a code"
                    };
                    io.log(
                        Level::Notice,
                        &format!(
                            "{who} from {}: {what} (digits only: no spaces, dashes or other \
                             characters); counted as a failed attempt",
                            self.from
                        ),
                    );
                }
                return Ok(self.denied(io, who, Denial::WrongCode));
            }
            Verdict::Replayed => {
                self.warn_replay(io, who, decision);
                let ahead = decision.warnings.iter().find_map(|w| match w {
                    Warning::StoreRecreatedAhead { since, .. } => Some(*since),
                    _ => None,
                });
                match ahead {
                    // "Wait for the next code" would be wrong for hours: say until when.
                    Some(since) => {
                        let _ = io.converse(
                            Style::ErrorMsg,
                            &format!(
                                "codes are refused until {} (a server's clock was ahead); \
                                 ask an administrator",
                                format_utc(since)
                            ),
                        );
                    }
                    None => tell_code_used(io, counter_based),
                }
                return Ok(self.denied(io, who, Denial::Replay));
            }
            Verdict::OutOfOrder => {
                // No man-in-the-middle warning: nothing says this code was ever used
                // (a code typed late, a device clock behind).
                tell_code_out_of_order(io, counter_based);
                return Ok(self.denied(io, who, Denial::OutOfOrder));
            }
        };
        if self.opts.forward_pass {
            let prefix = matched
                .and_then(|i| cands.get(i))
                .map(|c| c.prefix.as_slice())
                .unwrap_or_default();
            // The code is used up in the store already; the denial still ends with the
            // line naming the user and the host, as every answered attempt does.
            if io.set_authtok(prefix).is_err() {
                io.log(Level::Err, "could not forward the password (PAM_AUTHTOK)");
                return Ok(self.denied(io, who, Denial::NotForwarded));
            }
        }
        let how = match method {
            Method::Totp { .. } => "time-based code",
            Method::Hotp { .. } => "counter-based code",
            Method::Scratch => "scratch code",
        };
        io.log(
            Level::Notice,
            &format!("accepted {how} for {who} from {}", self.from),
        );
        Ok(Outcome::Success)
    }

    /// The warning a replayed code gets, wherever it was sent (the prompt, or
    /// `PAM_AUTHTOK` under `try_first_pass`).
    fn warn_replay(&self, io: &mut dyn PamIo, who: &str, decision: &Decision) {
        // Refused by the boot or store floor only: already explained by its warning.
        if !decision.warnings.iter().any(Warning::explains_replay) {
            io.log(
                Level::Warning,
                &format!(
                    "{who} from {} reused an already accepted code; this might mean a man-in-the-middle attack",
                    self.from
                ),
            );
        }
    }

    pub(super) fn denied(&self, io: &mut dyn PamIo, who: &str, denial: Denial) -> Outcome {
        self.log_end(io, who, denial.log_text());
        Outcome::Deny(denial)
    }
}

/// The denial of an attempt refused unevaluated (a throttling rule or the hard cap).
pub(super) fn refusal_denial(refusal: Refusal) -> Denial {
    match refusal {
        Refusal::Throttled { rule, .. } => Denial::Throttled(rule),
        Refusal::Disabled => Denial::Locked,
    }
}

/// The error line of a store unusable as a whole (its key), for an account and for a
/// name without one alike ([`Ctx::store_unusable`]).
pub(super) fn log_store_unusable(io: &mut dyn PamIo, who: &str, m: &str) {
    io.log(
        Level::Err,
        &format!(
            "the state store is unusable for every user, not only {who}: {m}; denying (resetting a user's record does not fix this)"
        ),
    );
}

/// Tells the user that a right code was refused only because it was used already, so
/// `ssh` then `scp` within one step is not mistaken for a typo. Only an answer that
/// matched a valid code in constant time gets here (throttled attempts are refused
/// unevaluated), so it tells nothing to anyone who does not hold that code.
fn tell_code_used(io: &mut dyn PamIo, counter_based: bool) {
    // Best effort: the denial stands whether or not the message arrives. A token
    // shows its next code only when pressed: waiting would never bring it.
    let _ = io.converse(
        Style::ErrorMsg,
        if counter_based {
            "that code was already used; press the token for a new code"
        } else {
            "that code was already used; wait for the next code"
        },
    );
}

/// Tells the user that a right code was refused because a newer one was accepted
/// already, for the same reason and with the same guarantee as [`tell_code_used`].
fn tell_code_out_of_order(io: &mut dyn PamIo, counter_based: bool) {
    let _ = io.converse(
        Style::ErrorMsg,
        if counter_based {
            "that code is older than the last one accepted; press the token for a new code"
        } else {
            "that code has expired (a newer one was accepted); check the device's clock \
             and wait for the next code"
        },
    );
}

/// Takes the target's file-system identity for the calling thread (restored on drop).
pub(super) fn switch_creds(
    io: &dyn PamIo,
    target: &LoginTarget,
) -> Result<creds::CredGuard, AuthError> {
    let Some(identity) = target.identity.as_ref() else {
        io.log(
            Level::Err,
            "no file-system identity was looked up for a secret command's login; denying",
        );
        return Err(AuthError::Credentials("no identity".into()));
    };
    creds::switch_to(identity).map_err(|e| {
        io.log(
            Level::Err,
            &format!(
                "cannot switch to the identity of uid {}: {e}; denying",
                identity.uid
            ),
        );
        AuthError::Credentials(e.to_string())
    })
}

/// Computes as many codes as a real check of the default window would, so a doomed user
/// costs about what a real one does before the (fsync-bound) state write.
pub(super) fn burn_window(policy: &Policy) {
    let secret = Secret::new(vec![0x5a; 20]);
    let mut sink = 0u32;
    for c in 0..u64::from(policy.max_window.clamp(1, 3)) {
        sink ^= otp::hotp(&secret, c, Algorithm::Sha1, Digits::SIX);
    }
    std::hint::black_box(sink);
}

/// The rewrite of `fresh`, a file another login rewrote after this one read `decided`:
/// this login's use (`decided` → `changed`) carried into it, written only if that
/// changes it. Only the used scratch codes and the HOTP counter are carried: GA's
/// `DISALLOW_REUSE` and `RATE_LIMIT` lines (and our `PAM_TOTP_*` lines) keep the newer
/// file's values, best effort as the whole file is here (the state store is the
/// authority on what was used).
fn carry_into(
    fresh: &mut LockedFile,
    decided: &GaFile,
    changed: &GaFile,
) -> Result<Option<Carried>, String> {
    let mut newer = GaFile::parse(fresh.contents()).map_err(|e| {
        format!("changed by another login since it was read, and now invalid ({e}); kept")
    })?;
    let carried = newer
        .carry_use(decided, changed)
        .map_err(|e| format!("changed by another login since it was read ({e}); kept"))?;
    if newer.as_bytes() != fresh.contents() {
        fresh
            .replace_unsynced(newer.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(Some(carried))
}

/// Whether `state` still holds the marks `recorded` gave the enrolment it used last (a
/// later login may only have added to them: counters move forward, used scratch codes
/// are forgotten only when the file no longer lists them).
fn records_hold(state: &UserState, recorded: &UserState) -> bool {
    let Some((id, want)) = recorded.marks.first() else {
        return true;
    };
    let Some(have) = state.marks_of(*id) else {
        return false;
    };
    want.hotp <= have.hotp && want.scratch.iter().all(|t| have.scratch.contains(t))
}

/// What a user is told when the state store could not check or record the attempt (a
/// read-only or refused state directory, an unusable record, a fleet's server down or
/// refusing). Otherwise a right code refused reads as a broken phone, and an admin
/// locked out of sudo by a host fault would not know to take the way back in that does
/// not pass through the code. The same words whatever the fault, and for a name
/// without an account whose stand-in record meets the same store (R9).
pub(super) fn tell_store_fault(io: &mut dyn PamIo) {
    // Best effort: the denial stands whether or not the message arrives.
    let _ = io.converse(Style::ErrorMsg, STORE_FAULT_MESSAGE);
}

pub(super) const STORE_FAULT_MESSAGE: &str =
    "the code could not be checked: the login state store failed on this host (see the system log)";

/// The log line of a login that found the shared store's record missing with this
/// host's clock and the server's too far apart to recreate it ([`StoreError::Clock`]).
/// Why an attempt found no usable store record ([`Ctx::store_context`]).
pub(super) enum ContextFault {
    /// The record is missing and this host's clock may not recreate it: the line that
    /// says so.
    Clock(String),
    /// The store failed (a damaged key is `Corrupt`).
    Store(StoreError),
}

impl Ctx {
    /// The store's record (its key and floor), created or recreated where the store
    /// has none, for accounts and names without one alike (R9). Only a shared store
    /// keeps a floor (the local one is complete since the beginning whatever it is
    /// told), so only its record waits for a sane clock.
    pub(super) fn store_context(
        &self,
        store: &mut dyn StateStore,
        now_secs: u64,
    ) -> Result<totp_core::state::StoreContext, ContextFault> {
        let missing = if self.opts.fleet.shared().is_some() {
            Missing::recreate_at(now_secs)
        } else {
            Missing::Create {
                complete_since: now_secs,
            }
        };
        match store.context(missing) {
            Ok(Some(c)) => Ok(c),
            Ok(None) if missing == Missing::Leave => {
                Err(ContextFault::Clock(clock_too_early(now_secs)))
            }
            Ok(None) => Err(ContextFault::Store(StoreError::Unavailable(
                "the store's key record vanished".into(),
            ))),
            Err(StoreError::Clock(m)) => Err(ContextFault::Clock(clock_refusal(&m))),
            Err(e) => Err(ContextFault::Store(e)),
        }
    }

    /// The line that ends an attempt, naming the user and the host (docs/logging.md).
    pub(super) fn log_end(&self, io: &mut dyn PamIo, who: &str, text: &str) {
        io.log(
            Level::Notice,
            &format!("{text} for {who} from {}", self.from),
        );
    }
}

/// The line denying a login that would recreate a lost store record with a clock
/// before [`EARLIEST_CLOCK`].
fn clock_too_early(now_secs: u64) -> String {
    format!(
        "clock fault: the state store has no store record (its data set was lost, or it \
         was never initialised) and this host's clock says {}, before {}: recreating it \
         now would let codes used before the loss be used again on every host; denying \
         until the clock is set",
        format_utc(now_secs),
        format_utc(EARLIEST_CLOCK)
    )
}

fn clock_refusal(m: &str) -> String {
    format!(
        "clock fault: the state store has no store record (its data set was lost, or it was \
         never initialised) and {m}; denying"
    )
}

/// `original` with only the `RATE_LIMIT` line of `changed` (a failed tentative check
/// of an HOTP file: its charge without the counter's move); `None` when that line is
/// the same (nothing to write).
fn rate_limit_only(original: &GaFile, changed: &GaFile) -> Option<GaFile> {
    let value = changed.get(KEY_RATE_LIMIT)?;
    if original.get(KEY_RATE_LIMIT) == Some(value) {
        return None;
    }
    let mut kept = original.clone();
    kept.set(KEY_RATE_LIMIT, std::str::from_utf8(value).ok()?)
        .ok()?;
    Some(kept)
}

/// What hosts with another state store, reading a shared file that could not be
/// rewritten, do differently from this one: the log's last words. Empty when the
/// rewrite carried nothing they read.
fn shared_suffix(verdict: Verdict, disallow_reuse: bool, rate_limit: bool) -> String {
    let left = match verdict {
        Verdict::Accepted(Method::Scratch) => Some("the used scratch code stays in it"),
        Verdict::Accepted(Method::Hotp { .. }) => Some("its HOTP_COUNTER line stays as it was"),
        Verdict::Accepted(Method::Totp { .. }) if disallow_reuse => {
            Some("its DISALLOW_REUSE line stays as it was")
        }
        _ => None,
    };
    let reader = "hosts with another state store reading this file";
    match (left, rate_limit) {
        (Some(left), true) => format!(
            "; {left}, and so does its RATE_LIMIT line, so {reader} take the same code \
             again and do not count this attempt"
        ),
        (Some(left), false) => format!("; {left}, so {reader} take the same code again"),
        (None, true) => {
            format!("; its RATE_LIMIT line stays as it was, so {reader} do not count this attempt")
        }
        (None, false) => String::new(),
    }
}

/// This host's local store's key and `uid`'s record there, for a host whose shared store
/// opened although the local one may have been used before (the host's state= before it
/// moved, or `state_fallback=local`). None without a local store. Unreadable: logged, and
/// the shared store decides alone.
fn local_marks_of(
    io: &mut dyn PamIo,
    opts: &ModuleOptions,
    sys: &dyn System,
    uid: Uid,
) -> Option<(StoreKey, UserState)> {
    let not_read = |io: &mut dyn PamIo, why: &str| {
        io.log(
            Level::Warning,
            &format!(
                "codes accepted through this host's local store (before the move to the \
                 shared store, or through state_fallback=local) not checked, the shared \
                 store decides alone: {why}"
            ),
        );
    };
    // Without the fallback, a host whose local store has no key never used it (or not
    // since a login could have been accepted there): nothing to read, and nothing to
    // say about a directory a login through the shared store never needed (a screen
    // locker's owner without a home, or whose home the store's walk refuses). The
    // stat only spares that walk: what is read goes through the store's checks. Only
    // "not there" (or not searchable by a screen locker's owner) proves it never used;
    // any other failure (EIO, ELOOP) goes on to the checks that log it.
    // Once: without `state_dir=`, a process that is not root finds its directory through
    // the name service, and a second answer could differ from the first. A process owner
    // without an account or a usable home never had a local store; one the name service
    // failed to look up may have, so that is said, as an unreadable store is.
    let dir = store::local_dir(opts, sys);
    if opts.fleet.fallback != Fallback::Local {
        let never_used = match &dir {
            Ok(dir) => std::fs::symlink_metadata(dir.join(KEY_FILE)).is_err_and(|e| {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::NotADirectory
                        | std::io::ErrorKind::PermissionDenied
                )
            }),
            Err(e) => !e.lookup_failed,
        };
        if never_used {
            return None;
        }
    }
    let dir = match dir {
        Ok(dir) => dir,
        Err(e) => {
            not_read(io, &e.why);
            return None;
        }
    };
    let mut local = store::open_local_at(opts, dir.clone());
    let key = match local.context(Missing::Leave) {
        Ok(Some(c)) => c.key,
        Ok(None) => return None,
        Err(e) => {
            not_read(io, &e.to_string());
            return None;
        }
    };
    match local.read(uid) {
        Ok(state) => Some((key, state)),
        // Named with its path (a damaged record's error does not say which) and the
        // command that clears it: the login goes on without it at every login until then.
        Err(e) => {
            let dir = dir.display();
            not_read(
                io,
                &format!(
                    "{dir}/{uid}: {e}; `totp-state reset --user {uid} --state-dir {dir}` \
                     empties a damaged record or removes what stands in its place"
                ),
            );
            None
        }
    }
}

/// `state` with enrolment `id`'s marks raised to `local`'s (this host's local store's,
/// scratch codes already named under the shared store's key), or `None` when it already
/// holds that much. An enrolment without marks of its own in a record with version-1
/// marks is held by them, and marks of its own would end that hold: it gets its own only
/// for a local TOTP mark past the version-1 one read at the file's `step_secs` (a TOTP
/// enrolment, to which the version-1 HOTP counter does not apply). Left to them, such a
/// mark was dropped, and the code this host accepted just before its move logged in
/// once more through a shared record a release before enrolment-bound marks wrote. A
/// version-1 mark at or past it (or ahead of the clock, from a shorter step, which the
/// decision sets aside only for an enrolment without marks) keeps its hold.
fn with_local_marks(
    state: &UserState,
    id: EnrolmentId,
    local: &Marks,
    step_secs: u64,
) -> Option<UserState> {
    let own = state.marks_of(id);
    if own.is_none()
        && let Some(legacy) = state.legacy
    {
        let held = legacy
            .last_step
            .map(|s| s.saturating_add(1).saturating_mul(step_secs));
        let past = local
            .totp_until
            .is_some_and(|until| held.is_none_or(|h| h < until));
        if !past {
            return None;
        }
    }
    let mut marks = own.cloned().unwrap_or_default();
    let mut raised = false;
    if let Some(until) = local.totp_until
        && marks.totp_until.is_none_or(|u| u < until)
    {
        marks.totp_until = Some(until);
        raised = true;
    }
    if let Some(counter) = local.hotp
        && marks.hotp.is_none_or(|m| m < counter)
    {
        marks.hotp = Some(counter);
        raised = true;
    }
    for &tag in &local.scratch {
        if !marks.scratch.contains(&tag) {
            marks.scratch.push(tag);
            raised = true;
        }
    }
    raised.then(|| state.with_marks(id, marks))
}
