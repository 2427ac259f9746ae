//! `totp-state`: show and reset the per-user state pam_totp keeps in its state
//! directory (replay mark, throttling, grace records), as `faillock` does for
//! pam_faillock. Root only: the directory and its records belong to root.

mod audit;
mod audit_names;
mod audit_skips;
mod audit_stack;
mod quote;
mod report;
mod store_admin;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use totp_core::options::ModuleOptions;
use totp_core::state::{Missing, Reset, ResetHow, StateStore, Uid, UserState};
use totp_core::user::UserName;
use totp_os::remote::open_shared;
use totp_os::state_dir::{DEFAULT_STATE_DIR, KEY_FILE, StateDir, effective_uid};
use totp_os::{nss, pam_stack};

use crate::report::{LocalMarks, Report};

#[derive(Parser, Debug)]
#[command(
    name = "totp-state",
    version,
    about = "Show or reset pam_totp's per-user state (replay mark, throttling, grace records)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show one user's record, or every record in the directory. Exit status 1 when a
    /// record is unusable, 2 when nothing could be shown (not root, an unknown account,
    /// a store that cannot be read).
    Show(RecordQuery),
    /// Lift one user's throttling and lockout (failures, backoff, max_failures=, the
    /// guess ceiling, grace entries); what was used stays used: the TOTP replay mark,
    /// used scratch codes and HOTP counters of every enrolment. A TOTP mark after
    /// anything a login accepts (a clock fault: over a day plus the widest TIME_SKEW
    /// lead ahead) is lowered to a minute after the clock; a closer one (a phone ahead
    /// of the clock) is kept. An unusable record
    /// (damaged, hostile) is removed without being followed.
    Reset(ResetArgs),
    /// Before changing pam.d: what the module of a PAM service would do for every
    /// account the name service lists, or each one named (read only). Exit status 1
    /// when any is refused or a named one is unknown, 2 when the audit could not be
    /// made (not root, a service or name service that cannot be read, a bad list).
    Audit(AuditArgs),
    /// Health probe of the store: 0 usable, 1 reachable but not usable (no store
    /// record: never initialised or its data set was lost; damaged; refused), 2 not
    /// reachable. Makes the write a login makes: on Redis to the key PREFIXprobe, a few
    /// bytes each ping overwrites; in a local state directory a file created, written,
    /// synced and removed; changes nothing else.
    Ping(StoreArgs),
    /// Initialise a store: its key record, every code of a step up to now counted as
    /// used, as a login does when the record is missing (neither can tell a new store
    /// from one that lost its data, and only this way does a lost one reopen no used
    /// code). With --never-used, for a store that never served a login: nothing counted
    /// as used, so nobody waits for their next code. On a store that already has its
    /// record it changes nothing but the Redis function library, which it installs
    /// again (etcd: refused).
    Init(InitArgs),
}

#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// The module's arguments, as on its pam.d line (state=redis…, redis_…, state_dir=).
    #[arg(long, value_name = "ARGS", conflicts_with = "service")]
    options: Option<String>,
    /// Use the store of this PAM service's pam_totp lines.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// The directory of PAM service files for --service (default /etc/pam.d).
    #[arg(long, value_name = "DIR", requires = "service")]
    pam_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The store lost its data set (a restart without persistence, FLUSHALL, a
    /// failover to an empty replica, an old snapshot restored). What init does anyway;
    /// accepted so that runbooks which say it keep working.
    #[arg(long, conflicts_with = "never_used")]
    after_loss: bool,
    /// The store never served a login (a new server, prefix or cluster): record it
    /// complete since the beginning, nothing counted as used. Never after a data loss:
    /// every code used before the loss would work again.
    #[arg(long)]
    never_used: bool,
}

#[derive(clap::Args, Debug)]
struct AuditArgs {
    /// The PAM service whose pam_totp options are audited.
    #[arg(long, value_name = "NAME")]
    service: String,
    /// The directory of PAM service files (default /etc/pam.d).
    #[arg(long, value_name = "DIR")]
    pam_dir: Option<PathBuf>,
    /// One JSON object per account: user, verdict, reasons.
    #[arg(long)]
    json: bool,
    /// Audit this account only, looked up by name as a login looks it up (repeatable):
    /// for directory accounts (SSSD, LDAP, AD) the name service does not list.
    #[arg(long = "user", value_name = "NAME")]
    user: Vec<String>,
    /// Audit the accounts named in FILE only, one a line ('#' comments and blank lines
    /// ignored; - for standard input); with --user, both.
    #[arg(long, value_name = "FILE")]
    users_from: Option<PathBuf>,
    /// Count warnings as problems (exit 1): a stack line that lets a login past the
    /// code, a google-authenticator line on the same files, a skip an origin gets, a
    /// record of a deleted account, a volatile state directory.
    #[arg(long)]
    strict: bool,
}

#[derive(clap::Args, Debug)]
struct RecordQuery {
    /// The account (a name NSS knows, or a numeric uid).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The module's state_dir= (default /var/lib/pam_totp/state).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The module's arguments, as on its pam.d line; with state=redis… (and its
    /// redis_… options) the shared store of the fleet is used instead of a directory.
    #[arg(long, value_name = "ARGS", conflicts_with_all = ["state_dir", "service"])]
    options: Option<String>,
    /// Use the store of this PAM service's pam_totp lines (state_dir=, state=…), read
    /// from /etc/pam.d or --pam-dir.
    #[arg(long, value_name = "NAME", conflicts_with = "state_dir")]
    service: Option<String>,
    /// The directory of PAM service files for --service (default /etc/pam.d).
    #[arg(long, value_name = "DIR", requires = "service")]
    pam_dir: Option<PathBuf>,
    /// One JSON object per record on standard output.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ResetArgs {
    #[command(flatten)]
    query: RecordQuery,
    /// Also lower a TOTP replay mark that lies ahead of this clock by more than a minute
    /// but within what a login honours (a phone ahead with a TIME_SKEW sets one there),
    /// to a minute after the clock: only after a clock fault the module logged, when
    /// the clock was wrong as the mark was set. For a phone that really is ahead, the
    /// codes it showed would work a second time.
    #[arg(long)]
    clock_fault: bool,
    /// Also drop a version-1 record's replay marks (its TOTP step and HOTP counter),
    /// which no enrolment can be told apart by: only for a user given a new secret or
    /// token since the upgrade to record format 2, whose first codes a kept HOTP counter
    /// refuses (the module's log line names this option). The old token's or secret's
    /// used codes work again where it is still in use.
    #[arg(long)]
    forget_version_1_marks: bool,
}

/// A failure with the message for standard error.
struct Fatal(String);

/// Why `run` stopped early.
enum Stop {
    Fatal(Fatal),
    /// A probe's verdict other than success: exit status and message.
    Status(u8, String),
    /// The reader of standard output went away (`| head`): stop without a word.
    ClosedOutput,
}

impl From<Fatal> for Stop {
    fn from(f: Fatal) -> Stop {
        Stop::Fatal(f)
    }
}

/// Exit status for a closed standard output: what a shell reports for a tool killed by
/// SIGPIPE, without the signal or a backtrace.
const EXIT_CLOSED_OUTPUT: u8 = 128 + 13;

/// Exit status of a check (`show`, `audit`) that found a problem. (`ping` has its own
/// three, where options the module refuses are a store that cannot be used.)
const EXIT_PROBLEM: u8 = 1;
/// Exit status of a check that could not be made (not root, a store or service that
/// cannot be read, an unknown account to show): the status of a usage error too, so
/// that monitoring never takes "could not look" for "looked and found a problem" (or
/// for nothing wrong).
const EXIT_UNCHECKED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An action (reset, init) either did its work or failed; a check has a third
    // outcome, and its failures to look get their own status.
    let check = matches!(cli.command, Command::Show(_) | Command::Audit(_));
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::ClosedOutput) => ExitCode::from(EXIT_CLOSED_OUTPUT),
        Err(Stop::Fatal(Fatal(m))) => {
            warn(&m);
            if check {
                ExitCode::from(EXIT_UNCHECKED)
            } else {
                ExitCode::FAILURE
            }
        }
        Err(Stop::Status(code, m)) => {
            warn(&m);
            ExitCode::from(code)
        }
    }
}

/// One line on standard error. A reader of it that went away (`2>&1 | head`) neither
/// changes the exit status the run chose nor ends it in a panic (as `eprintln!` would,
/// exit 101): the message is lost, the status is not.
fn warn(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "totp-state: {text}");
}

/// Writes `text` to standard output; a closed pipe ends the run quietly.
fn emit(text: &str) -> Result<(), Stop> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Stop::ClosedOutput,
            _ => Stop::Fatal(Fatal(format!("cannot write to standard output: {e}"))),
        })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The uid a `--user` value names: an NSS name first, else a decimal uid. For a shared
/// store (`shared`), whose records are keyed by name, a valid name the name service no
/// longer knows (a deleted account) names its record too, under [`NO_UID`].
fn resolve(user: &str, shared: bool) -> Result<(Uid, Option<String>), Fatal> {
    // As the module resolves a login (R8): an alias whose entry carries another
    // account's name would name that account's record as this one's.
    match nss::lookup_login_user(user) {
        Ok(Some(pw)) => return Ok((pw.uid, Some(pw.name))),
        Ok(None) => {}
        Err(e @ nss::LoginUserError::AnotherAccount { .. }) => {
            return Err(Fatal(format!("{user:?}: {e}; name the record by its uid")));
        }
        Err(e) => return Err(Fatal(format!("cannot look up {user:?}: {e}"))),
    }
    match user.parse::<Uid>() {
        Ok(uid) if !user.starts_with('+') => {
            let name = nss::lookup_user_by_uid(uid).ok().flatten().map(|p| p.name);
            Ok((uid, name))
        }
        _ if shared && UserName::parse(user.as_bytes()).is_ok() => {
            Ok((NO_UID, Some(user.to_owned())))
        }
        _ if shared => Err(Fatal(format!("not a user name: {user:?}"))),
        // The local store keys records by uid: a deleted account's is reached by its uid.
        _ => Err(Fatal(format!(
            "no such user: {user:?} (the record of a deleted account is named by its uid: totp-state show lists them)"
        ))),
    }
}

/// The uid under which a name without an account is handed to a shared store:
/// `(uid_t)-1`, which no account has, so the legacy `uid:` key a reset also deletes is
/// nobody's.
const NO_UID: Uid = Uid::MAX;

fn run(cmd: Command) -> Result<(), Stop> {
    if effective_uid() != 0 {
        return Err(Fatal(
            "must be run as root: the state directory and its records belong to root".into(),
        )
        .into());
    }
    let (target, reset, clock_fault, forget_version_1) = match cmd {
        Command::Show(t) => (t, false, false, false),
        Command::Reset(r) => (r.query, true, r.clock_fault, r.forget_version_1_marks),
        Command::Audit(a) => {
            let lines = service_lines(&a.service, a.pam_dir.as_deref())?;
            let bypasses = service_bypasses(&a.service, a.pam_dir.as_deref())?;
            let named = audit_names::requested(&a.user, a.users_from.as_deref())?;
            return audit::run(&a.service, &lines, &bypasses, a.json, named, a.strict);
        }
        Command::Ping(a) => return store_admin::ping(&store_options(&a)?),
        Command::Init(a) => return store_admin::init(&store_options(&a.store)?, a.never_used),
    };
    let opts = match (target.options.as_deref(), target.service.as_deref()) {
        (Some(args), _) => Some(module_options(args)?),
        (None, Some(service)) => Some(service_options(service, target.pam_dir.as_deref())?),
        (None, None) => None,
    };
    let dir = target
        .state_dir
        .clone()
        .or_else(|| opts.as_ref()?.state_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let shared = match &opts {
        Some(o) => fleet_store(o)?,
        None => None,
    };
    let shared_store = shared.is_some();
    if shared.is_some() && target.user.is_none() {
        return Err(
            Fatal("a shared store is not listed: name the account with --user".into()).into(),
        );
    }
    // A directory someone named must exist (a typo would otherwise read as "nothing
    // recorded"); the default one appears with the first login, so its absence is not
    // an error.
    let named = target.state_dir.is_some() || opts.as_ref().is_some_and(|o| o.state_dir.is_some());
    if shared.is_none() && named {
        require_dir(&dir)?;
    }
    let mut store: Box<dyn StateStore> = match shared {
        Some(s) => s,
        None => Box::new(StateDir::new(&dir, Duration::from_secs(5))),
    };
    // Nothing named the store: the default directory, which may not be the one the
    // module's lines use (state_dir=, state=redis…). There "nothing recorded" would
    // read as success in a runbook, so it is said only where logins have been.
    let implicit = target.state_dir.is_none() && opts.is_none();
    if reset {
        let user = target
            .user
            .as_deref()
            .ok_or_else(|| Fatal("reset needs --user NAME".into()))?;
        let (uid, name) = resolve(user, shared_store)?;
        refuse_reserved(uid, name.as_deref())?;
        if let Some(n) = &name {
            store.name_user(uid, n);
        }
        let how = ResetHow {
            clock_fault,
            legacy_step_secs: legacy_step(store.as_mut(), uid, opts.as_ref()),
            forget_version_1,
        };
        let at = now();
        let done = store
            .reset_with(uid, at, how)
            .map_err(|e| Fatal(format!("reset of uid {uid} failed: {e}")))?;
        if implicit && done == Reset::Absent {
            unused_default_store(store.as_mut(), &dir, &quote::name(user))?;
        }
        let shown = name.unwrap_or_else(|| uid.to_string());
        let known = (uid != NO_UID).then_some(uid);
        if target.json {
            emit(&format!("{}\n", reset_json(&shown, known, &done)))?;
        } else {
            let quoted = quote::name(&shown);
            let who = match known {
                Some(uid) => format!("{quoted} (uid {uid})"),
                None => format!("{quoted} (no account of that name)"),
            };
            emit(&format!(
                "reset the state of {who}: {}\n",
                quote::text(&reset_text(&done))
            ))?;
            if forget_version_1 && matches!(done, Reset::Lifted { .. }) {
                emit("version-1 replay marks forgotten\n")?;
            } else if store.read(uid).is_ok_and(|s| s.legacy.is_some()) {
                // Kept on purpose; said, so that an admin who re-enrolled the user
                // finds the option the module's log line names.
                emit(
                    "version-1 replay marks kept (they guard every enrolment without marks \
                     of its own); if the user was given a new HOTP token since the upgrade, \
                     add --forget-version-1-marks\n",
                )?;
            }
        }
        if how.legacy_step_secs.is_none() && matches!(done, Reset::Lifted { .. }) {
            unsettled_legacy_mark(store.as_mut(), uid, at, clock_fault)?;
        }
        return Ok(());
    }
    let uids: Vec<(Uid, Option<String>)> = match target.user.as_deref() {
        Some(user) => {
            let (uid, name) = resolve(user, shared_store)?;
            refuse_reserved(uid, name.as_deref())?;
            vec![(uid, name)]
        }
        None => list(&dir)?
            .into_iter()
            .map(|uid| {
                let name = nss::lookup_user_by_uid(uid).ok().flatten().map(|p| p.name);
                (uid, name)
            })
            .collect(),
    };
    let now = now();
    if implicit && uids.is_empty() {
        unused_default_store(store.as_mut(), &dir, "any account")?;
    }
    let mut failed = false;
    for (uid, name) in uids {
        if let Some(n) = &name {
            store.name_user(uid, n);
        }
        let read = store.read(uid);
        if implicit && read.as_ref().is_ok_and(|r| *r == UserState::default()) {
            let shown = name.clone().unwrap_or_else(|| uid.to_string());
            unused_default_store(store.as_mut(), &dir, &quote::name(&shown))?;
        }
        let local = if shared_store {
            local_marks(&dir, uid)
        } else {
            None
        };
        let local_note = local
            .as_ref()
            .map(|l| local_marks_note(l, uid, name.as_deref()));
        // A record unreadable because the store itself is refused (a symlinked or
        // world-writable --state-dir, a server down): the reset the text would suggest
        // is refused for the same reason.
        let store_fault = read.is_err() && store.context(Missing::Leave).is_err();
        let mut r = Report::new((uid != NO_UID).then_some(uid), name, read, now);
        r.store_fault = store_fault;
        r.local_marks = local;
        failed |= r.error.is_some();
        if target.json {
            emit(&format!(
                "{}\n",
                serde_json::to_string(&r).unwrap_or_default()
            ))?;
        } else {
            emit(&r.text(&store_words(&target)))?;
            if let Some(note) = local_note {
                emit(&note)?;
            }
        }
    }
    if failed {
        return Err(Stop::Status(
            EXIT_PROBLEM,
            "some records are unusable (see above)".into(),
        ));
    }
    Ok(())
}

/// For `show` of a shared store: what this host's local store (the line's `state_dir=`,
/// or the default) holds for `uid`. Every login on this host through the shared store
/// carries those marks into its decision (codes the host accepted before it moved, or
/// through `state_fallback=local`), so a code refused there as reused may be one the
/// shared record alone does not explain. `None` when the local store was never used
/// or holds no mark of `uid`; it is only read (the directory is not created).
fn local_marks(dir: &Path, uid: Uid) -> Option<LocalMarks> {
    let mut local = StateDir::new(dir, Duration::from_secs(5));
    let read = match local.context(Missing::Leave) {
        Ok(None) => return None,
        Ok(Some(_)) => local.read(uid),
        Err(e) => Err(e),
    };
    let state_dir = dir.to_string_lossy().into_owned();
    match read {
        Ok(state) => {
            let held =
                state.marks.iter().any(|(_, m)| {
                    m.totp_until.is_some() || m.hotp.is_some() || !m.scratch.is_empty()
                }) || state
                    .legacy
                    .is_some_and(|l| l.last_step.is_some() || l.hotp.is_some());
            held.then_some(LocalMarks {
                state_dir,
                error: None,
            })
        }
        Err(e) => Some(LocalMarks {
            state_dir,
            error: Some(e.to_string()),
        }),
    }
}

/// The text form's line about [`local_marks`]' finding.
fn local_marks_note(local: &LocalMarks, uid: Uid, name: Option<&str>) -> String {
    let shown = Path::new(&local.state_dir).display();
    let path = quote::name(&local.state_dir);
    let who = name.map_or_else(|| uid.to_string(), str::to_owned);
    let who = quote::name(&who);
    match &local.error {
        None => format!(
            "this host's local store {shown} also holds replay marks of uid {uid} \
             (codes accepted on this host before it moved to the shared store, or \
             through state_fallback=local): logins on this host refuse those codes \
             as reused, which the shared record above does not show; list them \
             with `totp-state show --user {who} --state-dir {path}`\n"
        ),
        Some(e) => format!(
            "this host's local store {shown} could not be read for uid {uid}: {}; logins \
             on this host through the shared store do not check the codes it may hold \
             (their log says so)\n",
            quote::text(e)
        ),
    }
}

/// For `show` and `reset` of the default state directory, which nothing named, when
/// they found no record of `who`: an error if no login ever used that directory (it
/// has no store key), since the module's lines then most likely name another store
/// and "nothing recorded" would be read as success; nothing when logins have used it.
fn unused_default_store(store: &mut dyn StateStore, dir: &Path, who: &str) -> Result<(), Fatal> {
    let used = store
        .context(Missing::Leave)
        .map_err(|e| Fatal(format!("state directory {}: {e}", dir.display())))?
        .is_some();
    if used {
        return Ok(());
    }
    Err(Fatal(format!(
        "no record of {who} in the default state directory {}, which no login has used \
         (it has no {KEY_FILE}): the module's lines likely name another store (state_dir=, \
         state=redis…, state=etcd…); name it with --service NAME or --options '…'",
        dir.display()
    )))
}

/// `show`/`reset --user` of an account whose uid lies in a range the local store keys
/// records of names without an account by: that record is strangers' too (the module
/// never uses it for the account), so it is neither shown nor cleared as the account's.
/// A uid without an account names such a record itself and passes.
fn refuse_reserved(uid: Uid, name: Option<&str>) -> Result<(), Fatal> {
    match (name, totp_core::ledger::reserved_uid(uid)) {
        (Some(name), Some(why)) if uid != NO_UID => Err(Fatal(format!(
            "{name}: {why}; the record of uid {uid} is not this account's"
        ))),
        _ => Ok(()),
    }
}

/// The `STEP_SIZE` a login of `uid` reads from its secret file, asked only when its
/// record still holds a version-1 mark (counted in the file's steps, which the record
/// does not say): the file is read as the module reads it, with the options of the
/// service (or `--options`) named. Without them it is not known: the module's defaults
/// may name another file than the service's `secret=` (with another step), and a
/// mark read at a longer step than the logins' would be lowered into codes they used.
/// `None` (nothing named, no account, no readable file): the reset lowers such a mark
/// only where every step size allows ([`totp_core::state::UserState::lifted`]).
fn legacy_step(store: &mut dyn StateStore, uid: Uid, opts: Option<&ModuleOptions>) -> Option<u64> {
    let opts = opts?;
    let legacy = store.read(uid).ok()?.legacy?;
    legacy.last_step?;
    let pw = nss::lookup_user_by_uid(uid).ok().flatten()?;
    totp_os::inspect::file_step_secs(opts, &pw)
}

/// After a `--clock-fault` reset that did not know the file's step: a version-1 mark it
/// had to keep that logins at the usual step honour (refusing every code until the
/// clock passes it) is an error naming the way to settle it, so a runbook does not read
/// the reset as done. One beyond what logins honour is not applied by them (it was
/// written at a shorter step) and needs nothing.
fn unsettled_legacy_mark(
    store: &mut dyn StateStore,
    uid: Uid,
    at: u64,
    clock_fault: bool,
) -> Result<(), Fatal> {
    let Ok(state) = store.read(uid) else {
        return Ok(());
    };
    if !state.legacy_mark_beyond(totp_core::state::reset_mark_cap(at), clock_fault) {
        return Ok(());
    }
    Err(Fatal(
        "the record's version-1 TOTP replay mark lies ahead of the clock, and it is \
         counted in the STEP_SIZE of the secret file, which this reset did not read: \
         logins refuse every code until the clock passes it; run the reset again \
         with --service NAME (or --options '…') naming the module's line, so that the \
         file the logins read gives the step"
            .into(),
    ))
}

/// What a reset did, in words: what it cleared, what it kept.
fn reset_text(done: &Reset) -> String {
    match done {
        Reset::Absent => "no record, nothing to clear".to_owned(),
        Reset::Lifted { lowered } => {
            let mut text = "throttling and lockout cleared; used codes stay used (TOTP \
                            replay mark, scratch codes, HOTP counter)"
                .to_owned();
            if *lowered {
                text.push_str(
                    "; the TOTP replay mark was ahead of the clock, beyond anything a login \
                     accepts, and now ends a minute after it",
                );
            }
            text
        }
        Reset::Removed(why) => format!(
            "the record was unusable ({why}) and was removed; what it recorded as used could \
             not be read and is forgotten: if a scratch code may have been used, enrol the \
             user again"
        ),
    }
}

/// What a reset did, as one JSON object: `record` is `absent`, `lifted` or `removed`.
fn reset_json(shown: &str, uid: Option<Uid>, done: &Reset) -> serde_json::Value {
    let (record, lowered, removed) = match done {
        Reset::Absent => ("absent", false, None),
        Reset::Lifted { lowered } => ("lifted", *lowered, None),
        Reset::Removed(why) => ("removed", false, Some(why.as_str())),
    };
    serde_json::json!({
        "user": shown,
        "uid": uid,
        "reset": true,
        "record": record,
        "marks_kept": record == "lifted",
        "totp_mark_lowered": lowered,
        "removed_because": removed,
    })
}

/// How `target` named its store, as command-line words (each after a space) to repeat
/// in a suggested command.
fn store_words(target: &RecordQuery) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let mut words = String::new();
    if let Some(o) = &target.options {
        words.push_str(&format!(" --options {}", quote(o)));
    }
    if let Some(s) = &target.service {
        words.push_str(&format!(" --service {}", quote(s)));
    }
    if let Some(d) = &target.pam_dir {
        words.push_str(&format!(" --pam-dir {}", quote(&d.to_string_lossy())));
    }
    if let Some(d) = &target.state_dir {
        words.push_str(&format!(" --state-dir {}", quote(&d.to_string_lossy())));
    }
    words
}

/// The module options `ping` and `init` work on.
fn store_options(a: &StoreArgs) -> Result<ModuleOptions, Stop> {
    match (a.options.as_deref(), a.service.as_deref()) {
        (Some(args), _) => Ok(module_options(args)?),
        (None, Some(service)) => service_options(service, a.pam_dir.as_deref()),
        (None, None) => Err(Fatal("name the store with --options or --service".into()).into()),
    }
}

/// `--options`: the module's arguments, parsed as the module parses them.
fn module_options(args: &str) -> Result<ModuleOptions, Fatal> {
    let words: Vec<&[u8]> = args.split_whitespace().map(str::as_bytes).collect();
    ModuleOptions::parse(&words).map_err(|e| Fatal(format!("--options: {e}")))
}

/// `--service`: the options of the service's pam_totp lines. Lines that disagree on
/// the store would make "the service's store" ambiguous: the admin names one instead.
fn service_options(service: &str, pam_dir: Option<&Path>) -> Result<ModuleOptions, Stop> {
    let lines = service_lines(service, pam_dir)?;
    lines
        .first()
        .and_then(|l| l.options.clone())
        .ok_or_else(|| Fatal(format!("service \"{service}\" has no auth line to read")).into())
}

/// `--service`'s pam_totp auth lines, in stack order, each with its options (at least
/// one; they name one store). A line with an option the module refuses is a problem
/// found (every login fails), not a service that could not be read.
fn service_lines(
    service: &str,
    pam_dir: Option<&Path>,
) -> Result<Vec<pam_stack::ModuleLine>, Stop> {
    let dir = pam_stack::pam_dir_or_default(pam_dir);
    let lines: Vec<pam_stack::ModuleLine> = pam_stack::module_lines(&dir, service)
        .map_err(|e| match e {
            pam_stack::StackError::Refused(m) => Stop::Status(EXIT_PROBLEM, m),
            e => Stop::Fatal(Fatal(e.to_string())),
        })?
        .into_iter()
        .filter(|l| l.options.is_some())
        .collect();
    let found: Vec<&ModuleOptions> = lines.iter().filter_map(|l| l.options.as_ref()).collect();
    let Some(first) = found.first() else {
        return Err(Fatal(format!(
            "service \"{service}\" in \"{}\" has no auth line for {}",
            dir.display(),
            pam_stack::MODULE_FILE
        ))
        .into());
    };
    if found
        .iter()
        .any(|o| o.state_dir != first.state_dir || o.fleet != first.fleet)
    {
        return Err(Fatal(format!(
            "the {} lines of service \"{service}\" name different stores: use --options",
            pam_stack::MODULE_FILE
        ))
        .into());
    }
    Ok(lines)
}

/// The lines of `--service` before a pam_totp auth line that end the stack, or jump
/// over that line, when they succeed (`pam_stack::bypass_warnings`), a stack whose
/// only auth module is pam_totp (`pam_stack::code_only_warning`), and google-authenticator
/// lines of the PAM directory on the same secret files (`pam_stack::ga_lines_warnings`).
fn service_bypasses(service: &str, pam_dir: Option<&Path>) -> Result<Vec<String>, Fatal> {
    let dir = pam_stack::pam_dir_or_default(pam_dir);
    let (modules, others) =
        pam_stack::auth_stack(&dir, service).map_err(|e| Fatal(e.to_string()))?;
    let mut out = pam_stack::bypass_warnings(&modules, &others);
    out.extend(pam_stack::code_only_warning(&modules, &others));
    // A file of the directory not read would hide a google-authenticator line: the
    // audit could not look, rather than found none.
    out.extend(pam_stack::ga_lines_warnings(&dir, &modules).map_err(|e| Fatal(e.to_string()))?);
    Ok(out)
}

/// A local store directory that does not exist holds nothing, and most likely the name
/// is wrong: say so rather than report "none recorded".
fn require_dir(dir: &Path) -> Result<(), Fatal> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Fatal(format!("\"{}\" is not a directory", dir.display()))),
        Err(e) => Err(Fatal(format!(
            "no state directory \"{}\": {e} (the module's state_dir=, default {DEFAULT_STATE_DIR})",
            dir.display()
        ))),
    }
}

/// The fleet's shared store when the module arguments name one (`state=redis…`,
/// `state=etcd…`).
fn fleet_store(opts: &ModuleOptions) -> Result<Option<Box<dyn StateStore>>, Fatal> {
    let Some(shared) = opts.fleet.shared() else {
        return Ok(None);
    };
    let store = open_shared(&shared, opts.max_failures.is_some(), None)
        .map_err(|e| Fatal(format!("shared store: {e}")))?;
    Ok(Some(Box::new(store)))
}

/// The uids that have a record in `dir`, sorted, listed through the store's own walk
/// (no symlink followed, owner and mode checked), so a store path every other command
/// refuses is refused here too rather than listed. A missing directory holds none.
fn list(dir: &Path) -> Result<Vec<Uid>, Fatal> {
    StateDir::new(dir, Duration::from_secs(5))
        .record_uids()
        .map_err(|e| Fatal(format!("cannot list {}: {e}", dir.display())))
}
