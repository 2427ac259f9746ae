//! One `pam_sm_authenticate`, from module arguments to verdict.
//!
//! Order (docs/architecture.md): options → user → skip rules → pre-read (nullok) →
//! grace (state store, closed again) → answer → open the state store, read the secret,
//! compare, one atomic state-store update (admit, replay check, record) → secret-file write only for a used scratch code
//! or HOTP counter → verdict. Every path
//! that is not a verified code, a verified skip or `nullok` with no file denies.

use std::net::IpAddr;
use std::time::Duration;

use totp_core::addr::{RemoteHost, parse_rhost};
use totp_core::code::{Candidate, candidates};
use totp_core::gafile::{Carried, GaFile, KEY_DISALLOW_REUSE, KEY_RATE_LIMIT, Mode};
use totp_core::ledger::{EnrolmentRecord, OriginKey, StandIn, reserved_uid};
use totp_core::options::{ModuleOptions, PassMode, SharedFile};
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::policy::Policy;
use totp_core::secret::Secret;
use totp_core::state::{EARLIEST_CLOCK, Missing, StateStore, StoreError, Uid, UserState, Write};
use totp_core::user::UserName;
use totp_core::utc::format_utc;
use totp_core::verify::{self, Attempt, Decision, Method, Refusal, Verdict, Warning};
use totp_os::creds;
use totp_os::inspect::GaLinesKept;
use totp_os::safefile::{self, FileError, LockedFile, NullokAbsence, NullokUser};
use zeroize::Zeroizing;

use crate::error::{AuthError, Denial, Outcome};
use crate::fleet::CommandSecret;
use crate::log::{sanitize, shell_word};
use crate::pamio::{ItemKind, Level, PamIo, Style};
use crate::skip::{self, LoginItems};
use crate::store;
use crate::system::{Host, System};
use crate::target::{self, Doomed, LoginTarget, Resolved};

mod evaluate;
use evaluate::{burn_window, refusal_denial, switch_creds};

const PROMPT: &str = "Verification code: ";
const PROMPT_FORWARD: &str = "Password & verification code: ";
/// Inside a grace period with `forward_pass`: only the password is still needed.
const PROMPT_PASSWORD: &str = "Password: ";

/// Entry point used by the FFI layer: the real clock and NSS.
#[cfg(not(feature = "test-hmac-count"))]
pub fn authenticate(io: &mut dyn PamIo, args: &[&[u8]], _flags: u32) -> Result<Outcome, AuthError> {
    authenticate_with(io, args, &Host::default())
}

/// The entry point of the `test-hmac-count` build: the same flow, then one log line with
/// the HMACs it computed, for the test of the work per attempt (SECURITY.md I8).
#[cfg(feature = "test-hmac-count")]
pub fn authenticate(io: &mut dyn PamIo, args: &[&[u8]], _flags: u32) -> Result<Outcome, AuthError> {
    use totp_core::hmac_count;
    let before = (hmac_count::otp(), hmac_count::tags());
    let result = authenticate_with(io, args, &Host::default());
    io.log(
        Level::Info,
        &format!(
            "test build: {} OTP HMACs and {} store-key tags in this call",
            hmac_count::otp().saturating_sub(before.0),
            hmac_count::tags().saturating_sub(before.1)
        ),
    );
    result
}

/// A PAM line of another type than `auth` (`account`, `session`, `password`) that loads
/// the module. Such a line cannot ask for a code, and an export that quietly returned
/// `PAM_IGNORE` there let an admin believe the second factor was enforced while every
/// login went through without one. google-authenticator exports no such hook, so libpam
/// fails the line; this fails it too, and says why.
pub fn misplaced(io: &dyn PamIo, kind: &str) -> Result<Outcome, AuthError> {
    let msg = format!(
        "loaded on a PAM line of type {kind}, where no code can be asked for (only auth \
         lines check one); this line fails every time: move it to an auth line (see pam_totp(8))"
    );
    io.log(Level::Err, &msg);
    Err(AuthError::Config(msg))
}

/// Whether `PAM_AUTHTOK` (`try_first_pass`, `use_first_pass`) holds something to check
/// as a code: read as 6-digit codes and 8-digit scratch codes, whatever digit count the
/// account's file has. A name without an account has no file, and a different reading
/// for accounts would charge and count a token for one of the two only (R9); a token
/// that holds 6 digits for an account whose codes have 8 is then a wrong code.
fn authtok_holds_a_code(tok: &[u8]) -> bool {
    !candidates(tok, Digits::SIX, true).is_empty()
}

/// The whole flow with injectable host facilities (tests inject failures here).
pub fn authenticate_with(
    io: &mut dyn PamIo,
    args: &[&[u8]],
    sys: &dyn System,
) -> Result<Outcome, AuthError> {
    let opts = match ModuleOptions::parse(args) {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{e}; denying everybody until the configuration is fixed");
            io.log(Level::Err, &msg);
            return Err(AuthError::Config(e.to_string()));
        }
    };
    // A fact of the configuration, the same on every login: logged only with `debug`
    // (`totp-enroll check --service` reports it).
    if opts.debug {
        for w in opts.weakening() {
            io.log(
                Level::Warning,
                &format!("option {w} weakens security (see pam_totp(8))"),
            );
        }
        if opts.grace_period_clamped {
            io.log(
                Level::Warning,
                &format!(
                    "grace_period= is longer than {} seconds (366 days); that is used instead",
                    totp_core::options::MAX_GRACE_PERIOD_SECS
                ),
            );
        }
        if opts.redis_ttl_raised {
            io.log(
                Level::Warning,
                &format!(
                    "redis_ttl= is shorter than a record may still protect a used code or \
                     throttling; {} seconds is used instead",
                    opts.min_redis_ttl_secs()
                ),
            );
        }
    }
    // PAM_USER unset: libpam asked for it, and the conversation failed. There is no
    // name whose existence a missing prompt could tell, and an application that
    // aborted its conversation is not asked for a code on it.
    let raw_user = match io.user() {
        Ok(user) => user,
        Err(e) => {
            io.log(
                Level::Notice,
                "conversation failed while asking for the user name",
            );
            return Err(AuthError::Conversation(e));
        }
    };
    let rhost_raw = io.item(ItemKind::RHost);
    let tty = io.item(ItemKind::Tty);
    let service = io.item(ItemKind::Service);
    let ctx = Ctx {
        from: crate::log::host(rhost_raw.as_deref()),
        rhost_ip: match parse_rhost(rhost_raw.as_deref()) {
            RemoteHost::Address(ip) => Some(ip),
            _ => None,
        },
        local: parse_rhost(rhost_raw.as_deref()) == RemoteHost::Absent,
        origin: OriginKey::from_items(rhost_raw.as_deref(), tty.as_deref()),
        policy: opts.policy(),
        service: service.as_deref().map(sanitize),
        opts,
    };

    let resolved = target::resolve(&ctx.opts, sys, raw_user.as_deref())
        .inspect_err(|e| io.log(Level::Err, &format!("{e}; denying everybody")))?;
    let items = LoginItems {
        rhost: rhost_raw.as_deref(),
        tty: tty.as_deref(),
        service: service.as_deref(),
    };
    let (name, pw) = match &resolved {
        Resolved::Named(t) => (Some(&t.name), t.pw.as_ref()),
        Resolved::Doomed(d) => (d.name.as_ref(), None),
    };
    // A broken `accessfile=` requires the code for everybody: no grace either (R21).
    let mut no_skips = false;
    if let Some(name) = name {
        let mut log = |level: Level, msg: &str| io.log(level, msg);
        match skip::decide(&ctx.opts, sys, name.as_str(), pw, &items, &mut log) {
            skip::Decision::Skip(reason) => {
                let who = sanitize(name.as_str().as_bytes());
                io.log(
                    Level::Notice,
                    &format!("not asking {who} from {} for a code: {reason}", ctx.from),
                );
                return Ok(Outcome::Ignore);
            }
            skip::Decision::NoSkips => no_skips = true,
            skip::Decision::Ask => {}
        }
    }
    // The file-system identity (a group lookup) only now that no rule has skipped.
    let identified = match resolved {
        Resolved::Named(named) => named.with_identity(sys, ctx.opts.fleet.secret_command.is_none()),
        Resolved::Doomed(d) => Err(d),
    };
    let target = match identified {
        Ok(t) => t,
        Err(d) => {
            let to = d.name.clone().map(ChargeTo::StandIn);
            return ctx.doomed(io, sys, d, raw_user.as_deref(), to);
        }
    };
    let who = sanitize(target.name.as_str().as_bytes());

    // Whose record keeps this login's marks and throttling. Without an NSS entry the
    // target exists only with `user=` (GA's semantics: the validated PAM name selects a
    // file; an NSS error has already denied): its record is the one of the enrolment
    // its file holds, never of the typed name, so every name reaching one secret shares
    // it, and a name without a usable file creates none.
    let record = match target.pw.as_ref() {
        Some(pw) => Record::Account(pw.uid),
        // A shared store keys records by the account's canonical name, which such a
        // login does not have; keying it by the typed name would give each spelling of
        // one secret its own replay marks and budget, so it is denied (see pam_totp(8)).
        None if ctx.opts.state.is_shared() => {
            let d = Doomed {
                denial: Denial::UnknownUser,
                why: "no account for this name: with user=, a name without an account is \
                      verified only with a local state store (state_dir=), not a shared one"
                    .into(),
                name: Some(target.name.clone()),
            };
            let to = ChargeTo::StandIn(target.name.clone());
            return ctx.doomed(io, sys, d, raw_user.as_deref(), Some(to));
        }
        // Only where the typed name names the file (`secret=…${USER}…`, no secret
        // command): a fixed path or a command (whose backend may ignore case) lets an
        // account's name and a name without an account reach one secret, and the two
        // records would each accept the other's used code.
        None if !ctx.opts.secret.contains("${USER}") || ctx.opts.fleet.secret_command.is_some() => {
            let d = Doomed {
                denial: Denial::UnknownUser,
                why: "no account for this name: with user=, a name without an account is \
                      verified only where secret= names its file by ${USER} (no \
                      secret_command=), so that no other name reaches its secret"
                    .into(),
                name: Some(target.name.clone()),
            };
            let to = ChargeTo::StandIn(target.name.clone());
            return ctx.doomed(io, sys, d, raw_user.as_deref(), Some(to));
        }
        None => Record::Enrolment,
    };
    let pre = match ctx.preread(&*io, &target) {
        // google-authenticator named the file by the spelling typed at login; a file left
        // under that name means the user is enrolled, not that they have no file.
        Ok(PreRead::Absent(dir)) => {
            ctx.typed_spelling_file(&*io, &target)
                .map(|found| match found {
                    Some(why) => PreRead::Unusable(why),
                    None => PreRead::Absent(dir),
                })
        }
        other => other,
    };
    // The skips first: they read no state record, so an account whose own record
    // could not be used is skipped like any other (under nullok, a reserved uid of a
    // directory service's range must not lose every login of its unenrolled accounts).
    let pre = match pre {
        Ok(PreRead::Absent(dir)) if ctx.opts.nullok && target.nullok_applies() => {
            // Always logged: a stack copied from another setup can drop the second factor
            // through nullok, and that must leave a trace without `debug`.
            let line = match dir {
                None => format!(
                    "not asking {who} from {} for a code: no secret file (nullok)",
                    ctx.from
                ),
                Some(dir) => format!(
                    "not asking {who} from {} for a code: no secret file, the user's directory {dir} does not exist (nullok)",
                    ctx.from
                ),
            };
            io.log(Level::Notice, &line);
            return Ok(Outcome::Ignore);
        }
        Ok(PreRead::HomeMissing(home))
            if ctx.opts.nullok_missing_home && target.nullok_applies() =>
        {
            io.log(
                Level::Notice,
                &format!(
                    "not asking {who} from {} for a code: home directory {home} does not exist (nullok_missing_home)",
                    ctx.from
                ),
            );
            return Ok(Outcome::Ignore);
        }
        other => other,
    };
    // Only now would the account's own record be used. An account whose uid is one of
    // the synthetic keys of records of names without an account would share that record
    // with strangers' attempts (their wrong codes would throttle or lock it out): denied,
    // as an unusable record is, and charged like a name without an account, so the uid's
    // record is never read nor written for it.
    if let Some(why) = target.pw.as_ref().and_then(|pw| reserved_uid(pw.uid)) {
        let d = Doomed {
            denial: Denial::StateUnusable,
            why,
            name: Some(target.name.clone()),
        };
        let to = ChargeTo::StandIn(target.name.clone());
        return ctx.doomed(io, sys, d, raw_user.as_deref(), Some(to));
    }
    let (file, keep_ga_lines) = match pre {
        Ok(PreRead::Present(f, keep)) => (f, keep),
        Ok(PreRead::Absent(_)) => {
            let why = if ctx.opts.nullok {
                "no secret file, and nullok does not apply to a name NSS does not know; asking for a code anyway"
            } else {
                "no secret configured; asking for a code anyway"
            };
            let d = Doomed {
                denial: Denial::NoSecret,
                why: why.into(),
                name: Some(target.name.clone()),
            };
            return ctx.doomed(
                io,
                sys,
                d,
                raw_user.as_deref(),
                Some(record.charge(&target.name)),
            );
        }
        Ok(PreRead::HomeMissing(home)) => {
            let d = Doomed {
                denial: Denial::BadFile,
                why: format!(
                    "home directory {home} does not exist; asking for a code anyway (nullok_missing_home would skip)"
                ),
                name: Some(target.name.clone()),
            };
            return ctx.doomed(
                io,
                sys,
                d,
                raw_user.as_deref(),
                Some(record.charge(&target.name)),
            );
        }
        Ok(PreRead::Unusable(why)) => {
            let d = Doomed {
                denial: Denial::BadFile,
                why,
                name: Some(target.name.clone()),
            };
            return ctx.doomed(
                io,
                sys,
                d,
                raw_user.as_deref(),
                Some(record.charge(&target.name)),
            );
        }
        Err(e) => return Err(e),
    };
    // The state store is opened where it is used and closed before the prompt: nothing
    // is held while the user types, so a shared server's idle timeout, a restart or a
    // full client table during the prompt cannot deny a healthy login. A store that
    // cannot be opened denies after the prompt, like every other per-login fault.
    // A link-local peer never gets grace (`verify::grace_host`): no store read for it.
    // Nor does an enrolment's record: two enrolments can share one (28 bits), and a
    // grace entry of one must never let the other in without a code.
    let graced = record.account().filter(|_| {
        !no_skips
            && ctx.opts.grace_period_secs > 0
            && ctx.rhost_ip.and_then(verify::grace_host).is_some()
    });
    // Without a clock no grace: the login goes on to the prompt, as a name without an
    // account (never graced) does, rather than end here for accounts only (R9).
    let now = match graced.map(|_| sys.now()) {
        Some(Err(_)) => {
            io.log(
                Level::Err,
                "cannot read the clock; grace period not checked",
            );
            None
        }
        Some(Ok(now)) => Some(now),
        None => None,
    };
    if let (Some(uid), Some(now)) = (graced, now) {
        let user = Some((uid, target.name.as_str()));
        // A store without its key has no record a grace entry could be in.
        let read = store::open(&ctx.opts, sys, user, &mut |note| match note {
            store::OpenNote::FellBack(m) | store::OpenNote::Skipped(m) => {
                io.log(Level::Warning, m);
            }
        })
        .map_err(|why| format!("no usable state store: {why}"))
        .and_then(|mut store| {
            let key = store.context(Missing::Leave).map_err(|e| e.to_string())?;
            let state = store.read(uid).map_err(|e| e.to_string())?;
            Ok(key.map(|k| (k.key, state)))
        });
        match read {
            Ok(None) => {}
            Ok(Some((key, state))) => {
                let enrolment = verify::enrolment_of(&file, &key);
                if let Ok(true) = enrolment.and_then(|e| {
                    verify::grace_applies(&state, &ctx.policy, e, ctx.origin, ctx.rhost_ip, now)
                }) {
                    return ctx.grace_forward(io, &who, raw_user.as_deref());
                }
            }
            Err(e) => io.log(
                Level::Warning,
                &format!("grace period not checked for {who}: {e}"),
            ),
        }
    }
    let digits = file.config().ok().map(|c| c.digits).unwrap_or(Digits::SIX);
    let mut run = Run {
        target: &target,
        record,
        store: None,
        who: &who,
        preread: file,
        keep_ga_lines,
    };

    // First the answer PAM already has (try_first_pass/use_first_pass), then a prompt.
    // Each code-shaped answer is a guess: a failed PAM_AUTHTOK check under try_first_pass
    // is charged, and the prompted answer is admitted again against what that charge
    // wrote (the hard cap, backoff) and charged too. GA's file still sees one attempt
    // per authentication (one RATE_LIMIT entry, at most one HOTP counter move).
    let mut carried = None;
    if ctx.opts.pass_mode != PassMode::Prompt {
        let tok = io.authtok().unwrap_or_default();
        // Whether it holds a code at all is decided without the file's digit count,
        // as for a name without an account: a token of 6 digits is a guess (a wrong
        // code) for an account with 8-digit codes too, not "no code", or it would be
        // charged and counted for a name without an account only (R9).
        if authtok_holds_a_code(&tok) {
            let cands = candidates(&tok, digits, true);
            let phase = if ctx.opts.pass_mode == PassMode::UseFirstPass {
                Phase::Final
            } else {
                Phase::Tentative
            };
            match ctx.evaluate(io, sys, &mut run, &cands, phase)? {
                Continuation::Done(outcome) => return Ok(outcome),
                Continuation::Carry(c) => carried = Some(c),
            }
        } else if ctx.opts.pass_mode == PassMode::UseFirstPass {
            io.log(
                Level::Notice,
                &format!("no usable code in PAM_AUTHTOK for {who} from {}", ctx.from),
            );
            return Ok(Outcome::Deny(Denial::NoAnswer));
        }
    }
    // Closed (if a tentative check opened it) before waiting for the user.
    run.store = None;
    let answer = match ctx.prompt(io) {
        Ok(Some(a)) => a,
        no_answer => {
            // The failed check of PAM_AUTHTOK was the attempt (compared and charged, or
            // refused): it ends with its line whether or not a second answer comes, or a
            // guess sent as the password, then no code, would never reach fail2ban.
            if let Some(carried) = carried {
                let denial = carried.map_or(Denial::WrongCode, refusal_denial);
                ctx.log_end(io, &who, denial.log_text());
            }
            return no_answer.map(|_| Outcome::Deny(Denial::NoAnswer));
        }
    };
    // The conversation may have set PAM_USER (libpam lets it): a success now would
    // leave the later modules (account, session) acting for a user whose code was never
    // checked. Nothing is compared nor charged for this answer.
    if ctx.user_changed(io, raw_user.as_deref()) {
        if let Some(carried) = carried {
            let denial = carried.map_or(Denial::WrongCode, refusal_denial);
            ctx.log_end(io, &who, denial.log_text());
        }
        return Ok(ctx.denied(io, &who, Denial::UserChanged));
    }
    let cands = candidates(&answer, digits, ctx.opts.forward_pass);
    match carried {
        // Refused unevaluated by the tentative check: the prompt hid nothing, deny the same.
        Some(Some(refusal)) => Ok(ctx.refused(io, &who, refusal)),
        Some(None) => match ctx.evaluate(io, sys, &mut run, &cands, Phase::Continued)? {
            Continuation::Done(o) => Ok(o),
            Continuation::Carry(_) => Ok(Outcome::Deny(Denial::WrongCode)),
        },
        None => match ctx.evaluate(io, sys, &mut run, &cands, Phase::Final)? {
            Continuation::Done(o) => Ok(o),
            Continuation::Carry(_) => Ok(Outcome::Deny(Denial::WrongCode)),
        },
    }
}

/// The user being verified and their state store, for the evaluations of one login.
struct Run<'a> {
    target: &'a LoginTarget,
    record: Record,
    /// Open only while an evaluation uses it (never across the prompt).
    store: Option<Box<dyn StateStore>>,
    who: &'a str,
    /// The secret file as read before the prompt. A TOTP check uses it as it is (the
    /// file is configuration, as GA reads it once per login); an attempt that may
    /// rewrite the file reads it again under its lock.
    preread: GaFile,
    /// GA's `DISALLOW_REUSE` and `RATE_LIMIT` lines of the file are kept up to date
    /// (`shared_file=`, [`Ctx::keeps_ga_lines`]); read and obeyed either way.
    keep_ga_lines: bool,
}

/// The secret file for one evaluation, with its lock when it may be rewritten.
/// The secret file for one attempt, or a per-user denial (already logged).
enum SecretRead {
    /// The file to check; `locked` when the attempt may rewrite it.
    Ready {
        file: GaFile,
        locked: Option<LockedFile>,
    },
    Deny(Denial),
}

/// Whose record a login that can succeed is kept in.
#[derive(Clone, Copy)]
enum Record {
    /// The account's, keyed by its uid (and by its canonical name in a shared store).
    Account(Uid),
    /// With `user=` and a local store, a name NSS does not know whose secret file was
    /// found usable: the [`EnrolmentRecord`] of the enrolment the file holds, known only
    /// once the file is read under the store's key.
    Enrolment,
}

impl Record {
    /// The uid to hand the store when opening it, which an enrolment's record does not
    /// have yet.
    fn account(self) -> Option<Uid> {
        match self {
            Record::Account(uid) => Some(uid),
            Record::Enrolment => None,
        }
    }

    /// The record's key once the file was read: for an enrolment's record, from the
    /// enrolment `prepared` found (one tag of the secret under the store's key).
    fn uid(self, prepared: &verify::Prepared) -> Uid {
        match self {
            Record::Account(uid) => uid,
            Record::Enrolment => EnrolmentRecord::new(prepared.enrolment()).uid,
        }
    }

    /// Where an attempt that cannot succeed is charged: the account's record, or for a
    /// name without an account (no usable file, so no record of its own) a stand-in.
    fn charge(self, name: &UserName) -> ChargeTo {
        match self {
            Record::Account(uid) => ChargeTo::Account(uid),
            Record::Enrolment => ChargeTo::StandIn(name.clone()),
        }
    }
}

/// The record a doomed attempt is charged to.
#[derive(Clone)]
enum ChargeTo {
    /// The account's own record (no secret, or an unusable one).
    Account(Uid),
    /// No account for this name: a stand-in record chosen under the store's key, which
    /// is known only once the store is open ([`StandIn`]).
    StandIn(UserName),
}

/// What charging a doomed attempt to its record came to.
enum DoomedCharge {
    /// Counted (or not countable for want of a clock): deny as usual.
    Counted,
    /// Refused unevaluated, as an account's attempt would be.
    Refused(Refusal),
    /// The store could not be opened, read or written: told, logged and returned as
    /// for an account (R9).
    StoreFailed(StoreFault),
    /// The store record is missing and this host's clock may not recreate it: the
    /// account's clock-fault line, logged and returned as for an account (R9).
    ClockFault(String),
}

/// How a doomed attempt's store failed, as far as an account's attempt would tell it
/// apart (`Ctx::store_unusable`, `Ctx::store_failed`).
enum StoreFault {
    /// Not opened at all: an account's attempt is denied as the store being unusable.
    Unopened,
    /// The store as a whole (its key), with the store's words.
    Whole(String),
    /// Reading or writing the record.
    Record(StoreError),
}

/// What one evaluation leaves for the rest of the login.
enum Continuation {
    Done(Outcome),
    /// A tentative check failed: prompt, then either check the answer as a continued
    /// attempt (`None`) or repeat the refusal (`Some`).
    Carry(Option<Refusal>),
}

/// Which evaluation of one authentication this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The only one: admit, verify, record.
    Final,
    /// `PAM_AUTHTOK` under `try_first_pass`: admitted and charged like a final attempt,
    /// but a failure goes on to the prompt instead of denying.
    Tentative,
    /// The prompted answer after a failed tentative check: admitted again against the
    /// record that failure wrote and charged, but GA's `RATE_LIMIT` line is not counted
    /// again.
    Continued,
}

/// What the unlocked look before prompting found.
enum PreRead {
    /// The file, and whether its GA lines are kept up to date ([`Ctx::keeps_ga_lines`]).
    Present(GaFile, bool),
    /// The final component is missing in a directory that was reached and checked:
    /// what `nullok` is about. Or, only under `nullok`, a directory of the user's own on
    /// the way is (named here, escaped for logs).
    Absent(Option<String>),
    /// Exists but cannot be used; the reason is for the log.
    Unusable(String),
    /// The user's home directory itself does not exist (`ENOENT` on the home, nothing
    /// else): a skip only with `nullok_missing_home`, an outage otherwise.
    HomeMissing(String),
}

struct Ctx {
    opts: ModuleOptions,
    policy: Policy,
    /// `PAM_RHOST` escaped for logs.
    from: String,
    /// `PAM_RHOST` when it is a strict IP literal (grace period).
    rhost_ip: Option<IpAddr>,
    /// Where the attempt comes from, for per-origin throttling.
    origin: OriginKey,
    /// No `PAM_RHOST`: an attempt made on this host ([`Attempt::local`]).
    local: bool,
    /// `PAM_SERVICE` escaped for logs: where a log line sends the admin to reset a
    /// record, `totp-state --service` finds this line's store.
    service: Option<String>,
}

impl Ctx {
    fn prompt(&self, io: &mut dyn PamIo) -> Result<Option<Zeroizing<Vec<u8>>>, AuthError> {
        let text = self
            .opts
            .authtok_prompt
            .as_deref()
            .unwrap_or(if self.opts.forward_pass {
                PROMPT_FORWARD
            } else {
                PROMPT
            });
        let style = if self.opts.echo_verification_code {
            Style::PromptEchoOn
        } else {
            Style::PromptEchoOff
        };
        match io.converse(style, text) {
            Ok(Some(answer)) if !answer.is_empty() => {
                if answer.first() == Some(&0x08) {
                    // OpenSSH answers "\b\n\r\177INCORRECT" for invalid users and refused root.
                    io.log(
                        Level::Info,
                        "dummy password supplied by PAM; did OpenSSH 'PermitRootLogin' or another setting block this login?",
                    );
                }
                Ok(Some(answer))
            }
            Ok(_) => {
                io.log(
                    Level::Notice,
                    "did not receive a verification code from the user",
                );
                Ok(None)
            }
            Err(e) => {
                io.log(
                    Level::Notice,
                    "conversation failed while asking for the code",
                );
                Err(AuthError::Conversation(e))
            }
        }
    }

    /// A user who cannot succeed gets the same prompt as everyone else, and the same
    /// amount of code computation, then a denial.
    /// `key` is the record the attempt is throttled and charged in: the account's, a
    /// stand-in for a name without one, `None` for an invalid name.
    fn doomed(
        &self,
        io: &mut dyn PamIo,
        sys: &dyn System,
        d: Doomed,
        raw_user: Option<&[u8]>,
        to: Option<ChargeTo>,
    ) -> Result<Outcome, AuthError> {
        let who = match &d.name {
            Some(n) => sanitize(n.as_str().as_bytes()),
            None => sanitize(raw_user.unwrap_or(b"(none)")),
        };
        // A file or store an admin must fix is an error; a name or an enrollment that
        // is simply not there is routine.
        let level = match d.denial {
            Denial::BadFile | Denial::StateUnusable | Denial::NameService => Level::Err,
            _ => Level::Notice,
        };
        io.log(level, &format!("{who} from {}: {}", self.from, d.why));
        // No answer is no attempt, as for an account that can succeed: charging it here
        // alone would throttle a name without an account (and tell the client so) where
        // an account's empty answers never are, and log it as a failure fail2ban counts.
        if self.opts.pass_mode == PassMode::UseFirstPass {
            let tok = io.authtok().unwrap_or_default();
            if !authtok_holds_a_code(&tok) {
                io.log(
                    Level::Notice,
                    &format!("no usable code in PAM_AUTHTOK for {who} from {}", self.from),
                );
                return Ok(Outcome::Deny(Denial::NoAnswer));
            }
        }
        // The prompted answer after a charged PAM_AUTHTOK is continued, as an account's.
        let mut carried: Option<Option<Refusal>> = None;
        if self.opts.pass_mode != PassMode::UseFirstPass {
            // try_first_pass: a code in PAM_AUTHTOK is a guess an account's login checks
            // and charges before the prompt (its tentative check), the prompted answer
            // then charged too. Charged here the same way, or the hard cap and backoff
            // would come a guess later for a name without an account than for one with
            // (R9), and a client hanging up at the prompt would be counted for accounts
            // only.
            let tok = io.authtok().unwrap_or_default();
            if self.opts.pass_mode == PassMode::TryFirstPass && authtok_holds_a_code(&tok) {
                burn_window(&self.policy);
                match to.clone().map(|t| self.charge_doomed(sys, t, false)) {
                    Some(DoomedCharge::Refused(refusal)) => carried = Some(Some(refusal)),
                    Some(DoomedCharge::Counted) | None => carried = Some(None),
                    // As an account's tentative check ends on a fault: before the prompt.
                    fault => return self.end_doomed(io, &who, d.denial, fault),
                }
            }
            let answer = self.prompt(io);
            if !matches!(answer, Ok(Some(_))) {
                if let Some(carried) = carried {
                    let denial = carried.map_or(d.denial, refusal_denial);
                    self.log_end(io, &who, denial.log_text());
                }
                return answer.map(|_| Outcome::Deny(Denial::NoAnswer));
            }
            if let Some(Some(refusal)) = carried {
                return Ok(self.refused(io, &who, refusal));
            }
        }
        burn_window(&self.policy);
        let charged = to.map(|t| self.charge_doomed(sys, t, carried.is_some()));
        self.end_doomed(io, &who, d.denial, charged)
    }

    /// The end of a doomed attempt once charged (`charged`; `None`: nothing to charge).
    /// Ends as an account's attempt with the same lines and result: a denial, or a
    /// fault of the host (PAM_SYSTEM_ERR) where the account's is one, or the return
    /// code would tell the application which names have accounts (R9).
    fn end_doomed(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        denial: Denial,
        charged: Option<DoomedCharge>,
    ) -> Result<Outcome, AuthError> {
        let ended: Result<Denial, AuthError> = match charged {
            Some(DoomedCharge::Refused(refusal)) => return Ok(self.refused(io, who, refusal)),
            Some(DoomedCharge::ClockFault(line)) => {
                io.log(Level::Err, &line);
                Err(AuthError::Clock)
            }
            // Ends as an account's attempt ends when the store fails: with a host
            // fault's line, which the fail2ban filter does not count. Counting it for a
            // name without an account only would ban the addresses that guess names
            // and spare those that hit accounts, telling one from the other (R9); and
            // no code is compared for anybody while the store is down.
            Some(DoomedCharge::StoreFailed(fault)) => {
                evaluate::tell_store_fault(io);
                match fault {
                    StoreFault::Whole(m) => {
                        evaluate::log_store_unusable(io, who, &m);
                        Ok(Denial::StateUnusable)
                    }
                    StoreFault::Record(StoreError::Refused(_)) => Ok(Denial::NotPersisted),
                    StoreFault::Record(
                        StoreError::Unavailable(_) | StoreError::StoreChanged(_),
                    ) => Err(AuthError::StoreUnavailable),
                    StoreFault::Unopened
                    | StoreFault::Record(StoreError::Corrupt(_) | StoreError::Clock(_)) => {
                        Ok(Denial::StateUnusable)
                    }
                }
            }
            Some(DoomedCharge::Counted) | None => Ok(denial),
        };
        let text = match &ended {
            Ok(denial) => Some(denial.log_text()),
            Err(e) => e.log_text(),
        };
        if let Some(text) = text {
            self.log_end(io, who, text);
        }
        ended.map(Outcome::Deny)
    }

    /// Throttles and charges a doomed attempt like a wrong code. The login is denied
    /// whatever this returns; a refusal (backoff or `max_failures=`) and a store that
    /// cannot be opened or written are told as an account's would be, so the messages
    /// say nothing about whether the name has an account or a secret (R9). `continued`:
    /// the prompted answer after a charged `PAM_AUTHTOK`, admitted as an account's is
    /// (`Attempt::continued`).
    fn charge_doomed(&self, sys: &dyn System, to: ChargeTo, continued: bool) -> DoomedCharge {
        let Ok(now) = sys.now() else {
            return DoomedCharge::Counted;
        };
        // Best effort, like the rest of this charge: a fallback note is not repeated here.
        let Ok(mut store) = store::open(&self.opts, sys, None, &mut |_| {}) else {
            return DoomedCharge::StoreFailed(StoreFault::Unopened);
        };
        // An account's attempt reads the store's key first (creating the store record
        // where it would), and a damaged key or a clock that may not recreate a lost
        // record denies it: so does this one, although it needs no key.
        let Ok(now_secs) = u64::try_from(now) else {
            return DoomedCharge::Counted;
        };
        let context = match self.store_context(&mut *store, now_secs) {
            Ok(c) => c,
            Err(evaluate::ContextFault::Clock(line)) => return DoomedCharge::ClockFault(line),
            Err(evaluate::ContextFault::Store(StoreError::Corrupt(m))) => {
                return DoomedCharge::StoreFailed(StoreFault::Whole(m));
            }
            Err(evaluate::ContextFault::Store(e)) => {
                return DoomedCharge::StoreFailed(StoreFault::Record(e));
            }
        };
        // A name without an account: its stand-in record and its own origin entries in
        // it, both under the store's key (see `StandIn` for the probe this prevents).
        let (key, origin) = match to {
            ChargeTo::Account(uid) => (uid, self.origin),
            ChargeTo::StandIn(name) => {
                let stand_in = StandIn::new(&context.key, name.as_str().as_bytes());
                (stand_in.uid, stand_in.origin(self.origin))
            }
        };
        let Ok(prepared) = verify::Prepared::doomed(now) else {
            return DoomedCharge::Counted;
        };
        let attempt = Attempt {
            origin,
            rhost: None,
            local: self.local,
            now,
            continued,
            boot_time: None,
            store_complete_since: 0,
            // The stand-in has no file, nor GA's lines.
            keep_ga_lines: false,
        };
        let mut refusal = None;
        let updated = store.update(key, &mut |state| match prepared.decide(
            state,
            &self.policy,
            &attempt,
        ) {
            Ok(d) => {
                refusal = d.refusal();
                d.write
            }
            Err(_) => Write::Nothing,
        });
        if let Err(e) = updated {
            return DoomedCharge::StoreFailed(StoreFault::Record(e));
        }
        refusal.map_or(DoomedCharge::Counted, DoomedCharge::Refused)
    }

    fn preread(&self, io: &dyn PamIo, target: &LoginTarget) -> Result<PreRead, AuthError> {
        if self.opts.fleet.secret_command.is_some() {
            // Run as root's child, before any credential switch: the command is checked
            // and started by root, and runs as secret_command_user. A name without an
            // account never gets here (denied with the record it would be keyed on).
            let Some(pw) = target.pw.as_ref() else {
                return Ok(PreRead::Unusable(
                    "secret command: no account for this name".into(),
                ));
            };
            return Ok(match crate::fleet::secret_from_command(&self.opts, pw) {
                // No file to write (nor to lock).
                Ok(Some(CommandSecret::File(f))) => {
                    match self.without_mode_line(io, &f, "the secret command's file") {
                        Some(why) => PreRead::Unusable(why),
                        None => PreRead::Present(f, false),
                    }
                }
                Ok(Some(CommandSecret::NotEnrolled)) => PreRead::Absent(None),
                Ok(None) => PreRead::Unusable("no secret command configured".into()),
                Err(why) => PreRead::Unusable(format!("secret command: {why}")),
            });
        }
        // Not `?`: an account's login ending here, unprompted, while a name without one
        // is prompted would tell which names exist (R9). switch_creds logged the cause.
        let _creds = match switch_creds(io, target) {
            Ok(guard) => guard,
            Err(e) => return Ok(PreRead::Unusable(format!("{e}; asking for a code anyway"))),
        };
        let (e, absence) = match safefile::open_checked_noting(&target.path, &target.rules) {
            Ok(opened) => {
                return Ok(match GaFile::parse(&opened.contents) {
                    Ok(f) => {
                        let shown = format!("secret file {}", self.shown(target));
                        if let Some(why) = self.without_mode_line(io, &f, &shown) {
                            return Ok(PreRead::Unusable(why));
                        }
                        let keep = self.keeps_ga_lines(io, target, &f, &opened.file);
                        PreRead::Present(f, keep)
                    }
                    Err(e) => PreRead::Unusable(format!(
                        "secret file {} is invalid: {e}",
                        self.shown(target)
                    )),
                });
            }
            Err(refused) => refused,
        };
        // The one decision the audit takes too, made as the opener (the home's parent
        // is resolved again). A missing file means "not enrolled", and so, under nullok,
        // does a missing directory of this user's own (`PerUserDirs`) in a checked one,
        // where the user could not have caused the absence. A missing home, or a
        // directory every user shares (a home on a server that is down, a store that was
        // never created or did not mount), is an outage, not an opt-out.
        let user = NullokUser {
            uid: target.pw.as_ref().map(|pw| pw.uid),
            home: target.pw.as_ref().map(|pw| pw.dir.as_path()),
            owners: &target.rules.allowed_owners,
            per_user: &target.per_user,
        };
        let nullok = self.opts.nullok && target.nullok_applies();
        Ok(match safefile::nullok_absence(&e, &absence, &user) {
            Some(NullokAbsence::HomeMissing(home)) => {
                PreRead::HomeMissing(sanitize(home.as_os_str().as_encoded_bytes()))
            }
            // Without nullok (or for a user it does not apply to) nothing is skipped:
            // a missing file simply reads as none.
            _ if !nullok && e == FileError::NotFound => PreRead::Absent(None),
            Some(NullokAbsence::NotEnrolled(dir)) if nullok => {
                PreRead::Absent(dir.map(|d| sanitize(d.as_os_str().as_encoded_bytes())))
            }
            Some(NullokAbsence::Refused { missing, why }) if nullok => {
                let missing = missing.map_or_else(
                    || self.shown(target),
                    |m| sanitize(m.as_os_str().as_encoded_bytes()),
                );
                PreRead::Unusable(format!(
                    "secret file {} refused ({missing} does not exist, {why}); asking for a code anyway",
                    self.shown(target)
                ))
            }
            _ => PreRead::Unusable(format!(
                "secret file {} refused ({e}); asking for a code anyway",
                self.shown(target)
            )),
        })
    }

    /// A file without a mode line GA or this module recognises (`"  TOTP_AUTH`, a key in
    /// lower case): with no scratch code nothing can ever match, so the login is denied
    /// as the file's fault (the reason returned) rather than read as a wrong code; with
    /// scratch codes only they log in, which a warning says.
    fn without_mode_line(&self, io: &dyn PamIo, file: &GaFile, shown: &str) -> Option<String> {
        match totp_os::inspect::no_mode_line(file)? {
            (totp_os::inspect::Verdict::Refused, why) => Some(format!("{shown} {why}")),
            (_, why) => {
                io.log(Level::Warning, &format!("{shown} {why}"));
                None
            }
        }
    }

    /// Whether this login keeps GA's `DISALLOW_REUSE` and `RATE_LIMIT` lines of `file`
    /// up to date (`shared_file=`): only where hosts with another state store read the
    /// file, which `auto` takes to be any file not on a file system known to be local, asked
    /// of `fd`, the descriptor the file was just checked and read through, or on a local
    /// one this host's NFS server exports ([`totp_os::nfs_exports`]). Elsewhere
    /// this host's store alone refuses a replay and throttles, and a TOTP login neither
    /// locks nor rewrites the file (nor warns when it cannot). The lines are obeyed
    /// either way.
    fn keeps_ga_lines(
        &self,
        io: &dyn PamIo,
        target: &LoginTarget,
        file: &GaFile,
        fd: &std::fs::File,
    ) -> bool {
        // Only a file that has the lines is asked about (no system call otherwise).
        if self.opts.shared_file == SharedFile::Auto
            && !file.contains_key(KEY_DISALLOW_REUSE)
            && !file.contains_key(KEY_RATE_LIMIT)
        {
            return false;
        }
        let kept = GaLinesKept::of(self.opts.shared_file, fd);
        if let Some(doubt) = kept.doubt() {
            io.log(
                Level::Warning,
                &format!(
                    "{}: {doubt}; its DISALLOW_REUSE and RATE_LIMIT lines are kept up to \
                     date as on a shared home (shared_file=yes or no says which it is)",
                    self.shown(target)
                ),
            );
        }
        kept.kept()
    }

    /// When the canonical file is missing: whether something is at the path the typed
    /// spelling names ([`LoginTarget::typed_path`]). Looked at, never used: the login is
    /// denied, with a log line saying which file to rename.
    fn typed_spelling_file(
        &self,
        io: &dyn PamIo,
        target: &LoginTarget,
    ) -> Result<Option<String>, AuthError> {
        let Some(typed) = target.typed_path.as_ref() else {
            return Ok(None);
        };
        if self.opts.fleet.secret_command.is_some() {
            return Ok(None);
        }
        // As in `preread`: denied after the prompt, like a name without an account.
        let _creds = match switch_creds(io, target) {
            Ok(guard) => guard,
            Err(e) => return Ok(Some(format!("{e}; asking for a code anyway"))),
        };
        match safefile::open_checked(typed, &target.rules) {
            Err(FileError::NotFound | FileError::MissingDirectory { .. }) => Ok(None),
            _ => Ok(Some(format!(
                "no secret file {}, but {} exists: it is named by the spelling typed at login (as google-authenticator named files), not by the account name; rename it to the first name; asking for a code anyway",
                self.shown(target),
                sanitize(typed.as_os_str().as_encoded_bytes())
            ))),
        }
    }

    fn shown(&self, target: &LoginTarget) -> String {
        sanitize(target.path.as_os_str().as_encoded_bytes())
    }

    /// Whether `PAM_USER` differs from what it was before the prompt (`before`, as
    /// libpam gave it), logged with both names.
    fn user_changed(&self, io: &dyn PamIo, before: Option<&[u8]>) -> bool {
        let now = io.item(ItemKind::User);
        if now.as_deref() == before {
            return false;
        }
        let name = |n: Option<&[u8]>| n.map_or_else(|| "(unset)".to_owned(), sanitize);
        io.log(
            Level::Err,
            &format!(
                "PAM_USER changed from {} to {} during the prompt from {} (the \
                 application's conversation set it); denying without comparing the answer",
                name(before),
                name(now.as_deref()),
                self.from
            ),
        );
        true
    }

    /// Inside a grace period: success without a code, logged only once it is one. With
    /// `forward_pass` the next module still needs the password, so ask for it unless
    /// PAM already has one; without it the login is denied, and the log must not have
    /// called it accepted.
    fn grace_forward(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        raw_user: Option<&[u8]>,
    ) -> Result<Outcome, AuthError> {
        // `use_first_pass` never prompts (pam_totp(8)): without a PAM_AUTHTOK the grace
        // login stores nothing, as a skip does, and the next module decides.
        let asks = self.opts.forward_pass
            && match self.opts.pass_mode {
                PassMode::Prompt => true,
                PassMode::TryFirstPass => io.authtok().is_none(),
                PassMode::UseFirstPass => false,
            };
        if asks {
            match io.converse(Style::PromptEchoOff, PROMPT_PASSWORD) {
                Ok(Some(_)) if self.user_changed(io, raw_user) => {
                    return Ok(self.denied(io, who, Denial::UserChanged));
                }
                Ok(Some(pw)) => {
                    if io.set_authtok(&pw).is_err() {
                        io.log(Level::Err, "could not forward the password (PAM_AUTHTOK)");
                        return Ok(self.denied(io, who, Denial::NotForwarded));
                    }
                }
                Ok(None) => {
                    io.log(
                        Level::Notice,
                        "did not receive the password from the user (grace period)",
                    );
                    return Ok(Outcome::Deny(Denial::NoAnswer));
                }
                Err(e) => {
                    io.log(
                        Level::Notice,
                        "conversation failed while asking for the password (grace period)",
                    );
                    return Err(AuthError::Conversation(e));
                }
            }
        }
        io.log(
            Level::Notice,
            &format!("accepted {who} from {} within the grace period", self.from),
        );
        Ok(Outcome::Success)
    }
}
