//! One record as people and scripts see it.
//!
//! Times are shown in UTC. The step of the replay mark is shown as a time assuming
//! 30-s steps (the default; a file's `STEP_SIZE` is not known here). Backoff ends are
//! computed with the module's default throttling options.

use serde::Serialize;
use totp_core::gafile::DEFAULT_STEP_SECS;
use totp_core::ledger::Ledger;
use totp_core::policy::{CLOCK_SLACK_SECS, Policy};
use totp_core::state::{StoreError, Uid, UserState, reset_lowers_after, reset_mark_cap};
use totp_core::utc::format_utc;
use totp_core::verify::records_lead;

#[derive(Serialize, Debug)]
pub struct OriginRecord {
    /// The hashed origin key, the throttling identity (a tty is never stored).
    pub key: String,
    /// The numeric remote address of the last failure from this origin (root-only
    /// state, as pam_faillock records it); null for console logins and host names.
    pub last_rhost: Option<String>,
    pub failures: u32,
    pub last_failure: String,
    /// End of this origin's backoff, if one is running (default options).
    pub backoff_until: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Grace {
    pub host: String,
    pub since: String,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub user: Option<String>,
    /// `None` for a shared store's record of a name no account has here any more.
    pub uid: Option<Uid>,
    /// Why the record cannot be used (the module denies this user until it is reset).
    pub error: Option<String>,
    /// The fault is the whole store's (its directory refused, its key unusable, its
    /// server not answering), which a reset of the record cannot reach: the text then
    /// says to fix the store, not to run a reset that would be refused too.
    #[serde(skip)]
    pub store_fault: bool,
    pub last_step: Option<u64>,
    pub last_accepted: Option<String>,
    /// True when the replay mark is after every mark a login honours (more than a day
    /// plus the widest `TIME_SKEW` lead after the clock): a clock fault the module
    /// refuses to resolve by itself, and the mark `reset` lowers.
    pub mark_ahead_of_clock: bool,
    /// Seconds the replay mark's step begins after this host's clock (0 when it does
    /// not): the clock went back since, or is behind the host that accepted the code.
    pub mark_ahead_secs: u64,
    pub hotp_mark: Option<u64>,
    /// How many enrolments (secrets) the record keeps replay marks for; the figures
    /// above and below are those of the one used last.
    pub enrolments: usize,
    /// Scratch codes of that enrolment recorded as used (stored as keyed tags).
    pub used_scratch_codes: usize,
    pub consecutive_failures: u32,
    pub blocked_until: Option<String>,
    pub origins: Vec<OriginRecord>,
    pub known_origins: usize,
    /// When the per-user ceiling admits guesses again, for known and for other origins.
    pub ceiling_until: [Option<String>; 2],
    pub grace: Vec<Grace>,
    /// Seconds the throttling records are ahead of what this host's clock could have
    /// written (0 when none is): a host whose clock was ahead wrote them, or this clock
    /// is behind.
    pub records_ahead_secs: u64,
    /// `show` of a shared store: this host's local store, when it holds replay marks of
    /// the user (codes accepted here before the host moved, or through
    /// `state_fallback=local`) that logins on this host refuse as reused although the
    /// shared record lacks them, or cannot be read for the user (then those logins do
    /// not check it); null otherwise, and for a local store.
    pub local_marks: Option<LocalMarks>,
}

/// This host's local store as a shared store's `show` reports it.
#[derive(Serialize, Debug)]
pub struct LocalMarks {
    /// Its directory (list its marks with `show --state-dir` of it).
    pub state_dir: String,
    /// Why the user's record there cannot be read; null when it holds marks.
    pub error: Option<String>,
}

fn future(t: u64, now: u64) -> Option<String> {
    (t > now).then(|| format_utc(t))
}

impl Report {
    pub fn new(
        uid: Option<Uid>,
        user: Option<String>,
        state: Result<UserState, StoreError>,
        now: u64,
    ) -> Self {
        let mut r = Report {
            user,
            uid,
            error: None,
            store_fault: false,
            last_step: None,
            last_accepted: None,
            mark_ahead_of_clock: false,
            mark_ahead_secs: 0,
            hotp_mark: None,
            enrolments: 0,
            used_scratch_codes: 0,
            consecutive_failures: 0,
            blocked_until: None,
            origins: Vec::new(),
            known_origins: 0,
            ceiling_until: [None, None],
            grace: Vec::new(),
            records_ahead_secs: 0,
            local_marks: None,
        };
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                r.error = Some(e.to_string());
                return r;
            }
        };
        let policy = Policy::default();
        let step = u64::from(DEFAULT_STEP_SECS);
        let latest = state.latest();
        // A version-1 record's unbound marks until the first login after the upgrade.
        let legacy = state.legacy.unwrap_or_default();
        r.last_step = latest.map_or(legacy.last_step, |m| m.last_totp_step(step));
        r.last_accepted = r.last_step.map(|s| format_utc(s.saturating_mul(step)));
        // The reset's own test, so that the advice to reset is given exactly when a
        // reset would lower the mark (a phone ahead of the clock keeps its mark).
        let lowers_after = reset_mark_cap(now).map(reset_lowers_after);
        r.mark_ahead_of_clock = r.last_step.is_some_and(|s| {
            lowers_after.is_some_and(|l| s.saturating_add(1).saturating_mul(step) > l)
        });
        r.mark_ahead_secs = r
            .last_step
            .map_or(0, |s| s.saturating_mul(step).saturating_sub(now));
        r.hotp_mark = latest.map_or(legacy.hotp, |m| m.hotp);
        r.enrolments = state.marks.len();
        r.used_scratch_codes = latest.map_or(0, |m| m.scratch.len());
        let ledger = match Ledger::decode(&state.extra) {
            Ok(l) => l,
            Err(e) => {
                r.error = Some(e.to_string());
                return r;
            }
        };
        r.records_ahead_secs = records_lead(&ledger, &policy, now);
        r.consecutive_failures = ledger.consecutive;
        r.blocked_until = future(ledger.blocked_until, now);
        r.origins = ledger
            .origins
            .iter()
            .map(|o| OriginRecord {
                key: format!("{:016x}", o.key.0),
                last_rhost: o.host.map(|h| h.to_string()),
                failures: o.failures,
                last_failure: format_utc(o.last),
                backoff_until: future(o.last.saturating_add(policy.backoff_secs(o.failures)), now),
            })
            .collect();
        r.known_origins = ledger.known.len();
        let tolerance = policy.ceiling_tolerance_secs();
        r.ceiling_until = ledger
            .ceiling
            .map(|tat| future(tat.saturating_sub(tolerance), now));
        r.grace = ledger
            .grace
            .iter()
            .map(|g| Grace {
                host: g.host.to_string(),
                since: format_utc(g.when),
            })
            .collect();
        r
    }

    /// The human-readable form, one block per record. `store` names the store the way
    /// it was named on this command line (`--options '…'`, `--service …`, `--state-dir
    /// …`, or nothing for the default directory), for the reset command it suggests.
    pub fn text(&self, store: &str) -> String {
        let mut out = String::new();
        let who = match &self.user {
            Some(u) => crate::quote::name(u).into_owned(),
            None => "(no account)".to_owned(),
        };
        match self.uid {
            Some(uid) => out.push_str(&format!("{who} (uid {uid})\n")),
            None => out.push_str(&format!("{who} (no account of that name)\n")),
        }
        if let Some(e) = &self.error {
            // The same store as shown here: without its options the reset would go to
            // the default local directory, and a fleet's record would stay.
            // A name pasted into a shell must stay one word; one that cannot be
            // printed as a word is named by its uid, which reaches the same record.
            let account = self
                .user
                .as_deref()
                .and_then(crate::quote::shell_word)
                .map(|w| w.into_owned())
                .or_else(|| self.uid.map(|u| u.to_string()))
                .or_else(|| self.user.as_deref().map(|u| format!("{u:?}")))
                .unwrap_or_default();
            if self.store_fault {
                out.push_str(&format!(
                    "  UNUSABLE: {}\n  logins through this store are denied until that fault \
                     is fixed; `totp-state reset` is refused as well until then\n",
                    crate::quote::text(e)
                ));
                return out;
            }
            out.push_str(&format!(
                "  UNUSABLE: {}\n  logins are denied until `totp-state reset --user {account}{store}`\n",
                crate::quote::text(e)
            ));
            return out;
        }
        match (&self.last_step, &self.last_accepted) {
            (Some(s), Some(t)) => {
                out.push_str(&format!(
                    "  last accepted code: step {s} ({t} at 30-s steps)\n"
                ));
                if self.mark_ahead_of_clock {
                    out.push_str("  WARNING: that is after anything a login accepts (a clock that was far ahead): logins are refused as a clock fault; if the clock is right, reset this record\n");
                } else if self.mark_ahead_secs > CLOCK_SLACK_SECS {
                    out.push_str(&format!(
                        "  WARNING: that is {} s after this host's clock: no code is accepted until the clock passes it (a phone ahead of the clock with TIME_SKEW puts it there; otherwise check the clock; a reset keeps it)\n",
                        self.mark_ahead_secs
                    ));
                }
            }
            // An HOTP user's logins are told by the counter line below, not as "none".
            _ if self.hotp_mark.is_some() => {}
            _ => out.push_str("  last accepted code: none recorded\n"),
        }
        if let Some(h) = self.hotp_mark {
            // The file's HOTP_COUNTER may lag behind (read-only, restored, served by a
            // command): the window starts after the store's mark all the same.
            out.push_str(&format!(
                "  highest HOTP counter used: {h} (codes are accepted from counter {} on, \
                 whatever the file's HOTP_COUNTER says)\n",
                h.saturating_add(1)
            ));
        }
        if self.used_scratch_codes > 0 {
            out.push_str(&format!(
                "  scratch codes used: {}\n",
                self.used_scratch_codes
            ));
        }
        if self.enrolments > 1 {
            out.push_str(&format!(
                "  replay marks kept for {} secrets (the latest shown)\n",
                self.enrolments
            ));
        }
        out.push_str(&format!(
            "  consecutive failures: {}\n",
            self.consecutive_failures
        ));
        if let Some(b) = &self.blocked_until {
            out.push_str(&format!(
                "  blocked (earlier version's backoff) until {b}\n"
            ));
        }
        for o in &self.origins {
            out.push_str(&format!(
                "  origin {}{}: {} failure(s), last {}{}\n",
                o.key,
                o.last_rhost
                    .as_ref()
                    .map(|h| format!(" (last from {h})"))
                    .unwrap_or_default(),
                o.failures,
                o.last_failure,
                o.backoff_until
                    .as_ref()
                    .map(|b| format!(", backoff until {b}"))
                    .unwrap_or_default()
            ));
        }
        // Logins without PAM_RHOST (sudo, su) share the known origins' half: an admin
        // asked why sudo waits must find it here.
        for (class, until) in ["known origins and logins on this host", "other origins"]
            .iter()
            .zip(&self.ceiling_until)
        {
            if let Some(u) = until {
                out.push_str(&format!("  guess ceiling reached for {class} until {u}\n"));
            }
        }
        if self.records_ahead_secs > CLOCK_SLACK_SECS {
            out.push_str(&format!(
                "  WARNING: throttling records up to {} s after this host's clock: a host whose clock was ahead wrote them, or this clock is behind (check both)\n",
                self.records_ahead_secs
            ));
        }
        out.push_str(&format!(
            "  origins logged in from: {}\n",
            self.known_origins
        ));
        for g in &self.grace {
            out.push_str(&format!(
                "  grace period from {} since {}\n",
                g.host, g.since
            ));
        }
        out
    }
}
