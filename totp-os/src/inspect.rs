//! What the module would make of one account's secret file, for the admin tools
//! (`totp-state audit`, `totp-enroll check`): the module's own placement, file checks
//! (read as the account that opens the file at login), parser and caps, so a tool never
//! disagrees with a login.

use std::fmt;
use std::path::PathBuf;

use totp_core::gafile::{GaFile, KEY_DISALLOW_REUSE, KEY_RATE_LIMIT, Mode};
use totp_core::options::{ModuleOptions, SharedFile, UserSpec};
use totp_core::placement::{self, Account};
use totp_core::user::UserName;
use totp_core::verify;

use crate::command::CommandSecret;
use crate::nfs_exports::{self, ExportOf, ExportsError};
use crate::nss::{self, Passwd};
use crate::safefile::{self, FileError, FileRules, NullokAbsence, NullokUser, nullok_absence};

/// The verdict `totp-state audit` prints, one word each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A usable secret; the code is asked for and can be right.
    Ok,
    /// No secret file: with `nullok` no code is asked, without it the login is denied.
    NotEnrolled,
    /// The module refuses the file (or cannot reach it): every login is denied.
    Refused,
    /// Usable, with something the admin should know (a legacy secret, a clamp, a skip).
    Warning,
    /// Not known either way (the name service did not answer, or may not list every
    /// account): nothing to act on until the admin has looked.
    Unverified,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::NotEnrolled => "not-enrolled",
            Verdict::Refused => "refused",
            Verdict::Warning => "warning",
            Verdict::Unverified => "unverified",
        })
    }
}

/// One account's verdict and the reasons, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

impl Finding {
    fn new(verdict: Verdict, reason: impl Into<String>) -> Finding {
        Finding {
            verdict,
            reasons: vec![reason.into()],
        }
    }
}

fn account(p: &Passwd) -> Account<'_> {
    Account {
        name: &p.name,
        uid: p.uid,
        dir: &p.dir,
    }
}

/// The account `user=` names, as the module looks it up.
fn fixed_owner(spec: &UserSpec) -> Result<Option<Passwd>, nss::NssError> {
    match spec {
        UserSpec::Uid(uid) => nss::lookup_user_by_uid(*uid),
        UserSpec::Name(name) => nss::lookup_user_by_name(name.as_str()),
    }
}

/// A secret file as a login reads it, before its caps are judged: what it says
/// (`shown`, for the reasons) and, for a file, the descriptor it was read through and
/// the account that opened it (whether logins write GA's lines is asked of those).
struct Loaded {
    file: GaFile,
    shown: String,
    opened: Option<(std::fs::File, Passwd)>,
}

/// What the secret command answers for `pw`, run exactly as a login runs it (so it
/// needs root, like the module), checked like the module checks it.
fn from_command(opts: &ModuleOptions, pw: &Passwd) -> Result<Loaded, Finding> {
    let shown = "secret_command=";
    let file = match crate::command::secret_from_command(opts, pw) {
        Ok(Some(CommandSecret::File(f))) => f,
        Ok(Some(CommandSecret::NotEnrolled)) => {
            return Err(Finding::new(
                Verdict::NotEnrolled,
                if opts.nullok {
                    format!("{shown} answers \"not enrolled\"; nullok skips the code")
                } else {
                    format!(
                        "{shown} answers \"not enrolled\"; the code is asked for and every login denied"
                    )
                },
            ));
        }
        Ok(None) => {
            return Err(Finding::new(
                Verdict::Refused,
                "no secret command configured",
            ));
        }
        Err(e) => return Err(Finding::new(Verdict::Refused, e)),
    };
    Ok(Loaded {
        file,
        shown: shown.to_owned(),
        opened: None,
    })
}

/// The verdict on a secret file the module would accept as it is read.
fn usable(file: &GaFile, opts: &ModuleOptions, shown: &str) -> Finding {
    let warnings = verify::configuration_warnings(file, &opts.policy());
    // What refuses the file outright comes first; then a file no app code opens.
    if let (Ok(ws), Some(mut finding)) = (&warnings, scratch_only(file, shown)) {
        if finding.verdict == Verdict::Warning {
            finding
                .reasons
                .extend(ws.iter().map(|w| format!("{shown}: {w}")));
        }
        return finding;
    }
    match warnings {
        Err(e) => Finding::new(Verdict::Refused, format!("{shown}: {e}")),
        Ok(ws) if ws.is_empty() => Finding::new(Verdict::Ok, format!("{shown}: usable")),
        Ok(ws) => Finding {
            verdict: Verdict::Warning,
            reasons: ws.iter().map(|w| format!("{shown}: {w}")).collect(),
        },
    }
}

/// A file with neither a `TOTP_AUTH` nor an `HOTP_COUNTER` line, which the module (as
/// GA) reads as valid: no code from an app or token is ever accepted, only the scratch
/// codes, each once. The usual cause is a mode line GA does not recognise either (`"`
/// and one space before the key, in capitals), so the user is locked out once the
/// scratch codes are gone (at once, without any): never "usable".
fn scratch_only(file: &GaFile, shown: &str) -> Option<Finding> {
    no_mode_line(file).map(|(verdict, why)| Finding::new(verdict, format!("{shown} {why}")))
}

/// [`Verdict::Refused`] or [`Verdict::Warning`] and why (the words after the file's
/// name) for a file with no `TOTP_AUTH` or `HOTP_COUNTER` line, refused when it holds
/// no scratch code either; `None` for a file with a mode line. The one wording of it for
/// totp-state audit, totp-enroll check and the module's log.
pub fn no_mode_line(file: &GaFile) -> Option<(Verdict, String)> {
    if !matches!(file.config().map(|c| c.mode), Ok(Mode::ScratchOnly)) {
        return None;
    }
    // A counter below 1 is no counter for GA (nor for the parser): a file whose only
    // mode line is `" HOTP_COUNTER 0` is spelled right and still has none.
    let why = "has no TOTP_AUTH or HOTP_COUNTER line (a mode line must read \
               '\" TOTP_AUTH', or '\" HOTP_COUNTER n' with n of 1 or more: a double quote, \
               one space, the key in capitals; GA does not recognise another spelling, nor \
               a counter of 0, either), so no code from an app or token is accepted";
    Some(match file.scratch_codes().len() {
        0 => (
            Verdict::Refused,
            format!("{why}, and it holds no scratch code: every login is denied"),
        ),
        n => (
            Verdict::Warning,
            format!(
                "{why}: only its {n} scratch {}, and then every login is denied",
                if n == 1 {
                    "code logs in, once"
                } else {
                    "codes log in, each once"
                }
            ),
        ),
    })
}

/// What a login of `pw` with the module options `opts` would find. Must run as root to
/// read other accounts' files (it takes the opener's file-system identity to read).
pub fn inspect(opts: &ModuleOptions, pw: &Passwd) -> Finding {
    let loaded = load(opts, pw);
    // As at login: a skip (nullok, no file) reads no state record and passes; anything
    // else would use the account's own record, which a reserved uid cannot have.
    if let Some(why) = totp_core::ledger::reserved_uid(pw.uid) {
        return match loaded {
            Err(f) if f.verdict == Verdict::NotEnrolled && opts.nullok => f,
            _ => Finding::new(Verdict::Refused, why),
        };
    }
    let loaded = match loaded {
        Ok(l) => l,
        Err(finding) => return finding,
    };
    let shown = &loaded.shown;
    let mut finding = usable(&loaded.file, opts, shown);
    if let (true, Some((fd, opener))) = (finding.verdict != Verdict::Refused, &loaded.opened) {
        // As the module decides it: with the identity that read the file (the tables
        // are read as that account, so what a login cannot read the audit cannot either).
        match as_account(opener, || ga_lines(opts, &loaded.file, fd)) {
            Ok(None) => {}
            Ok(Some(r)) => finding.reasons.push(format!("{shown}: {r}")),
            Err(e) => finding.reasons.push(format!(
                "{shown}: whether logins write GA's lines not known: cannot act as {}: {e}",
                opener.name
            )),
        }
    }
    finding
}

/// The `STEP_SIZE` a login of `pw` reads from its secret file (or secret command)
/// with the module options `opts`, if the file is there and parses; for `totp-state
/// reset`, whose version-1 marks are counted in it. Must run as root, as [`inspect`].
pub fn file_step_secs(opts: &ModuleOptions, pw: &Passwd) -> Option<u64> {
    let loaded = load(opts, pw).ok()?;
    loaded.file.config().ok().map(|c| c.step_secs())
}

/// The secret file a login of `pw` would read, read the same way; `Err`: the finding
/// that says why there is none to judge.
fn load(opts: &ModuleOptions, pw: &Passwd) -> Result<Loaded, Finding> {
    if opts.fleet.secret_command.is_some() {
        return from_command(opts, pw);
    }
    let Ok(name) = UserName::parse(pw.name.as_bytes()) else {
        return Err(Finding::new(
            Verdict::Refused,
            "the name is not a valid PAM user name",
        ));
    };
    let owner = match &opts.user {
        None => None,
        Some(spec) => match fixed_owner(spec) {
            Ok(Some(o)) => Some(o),
            Ok(None) => return Err(Finding::new(Verdict::Refused, "user= names no account")),
            Err(e) => return Err(Finding::new(Verdict::Refused, format!("user= lookup: {e}"))),
        },
    };
    let placed =
        match placement::for_login(opts, &name, Some(account(pw)), owner.as_ref().map(account)) {
            Ok(p) => p,
            Err(e) => return Err(Finding::new(Verdict::Refused, e.to_string())),
        };
    let opener = owner.as_ref().unwrap_or(pw);
    let shown = placed.path.display().to_string();
    let rules = FileRules::for_placement_of(&placed, pw, owner.as_ref());
    let nullok_user = NullokUser {
        uid: Some(pw.uid),
        home: Some(&pw.dir),
        owners: &rules.allowed_owners,
        per_user: &placed.per_user,
    };
    // As the module decides it (`safefile::nullok_absence`), as the opener: the home's
    // parent is resolved again as it.
    let read = as_account(opener, || {
        safefile::open_checked_noting(&placed.path, &rules)
            .map_err(|(e, absence)| (nullok_absence(&e, &absence, &nullok_user), e))
    });
    let opened = match read {
        Err(e) => {
            return Err(Finding::new(
                Verdict::Refused,
                format!("cannot read as {}: {e}", opener.name),
            ));
        }
        Ok(Err((Some(NullokAbsence::NotEnrolled(dir)), _))) => {
            let missing = match dir {
                None => String::new(),
                Some(dir) => format!(" ({} does not exist)", dir.display()),
            };
            return Err(Finding::new(
                Verdict::NotEnrolled,
                if opts.nullok {
                    format!("no secret file at {shown}{missing}; nullok skips the code")
                } else {
                    format!(
                        "no secret file at {shown}{missing}; the code is asked for and every login denied"
                    )
                },
            ));
        }
        Ok(Err((Some(NullokAbsence::HomeMissing(path)), _))) => {
            let home = path.display();
            return Err(if opts.nullok && opts.nullok_missing_home {
                Finding::new(
                    Verdict::NotEnrolled,
                    format!(
                        "home directory {home} does not exist; nullok_missing_home skips the code"
                    ),
                )
            } else {
                // Under nullok the admin may want GA's skip (homes pam_mkhomedir makes
                // only after a login): name the option, as the module's log line does.
                let hint = if opts.nullok {
                    " (nullok_missing_home would skip)"
                } else {
                    ""
                };
                Finding::new(
                    Verdict::Refused,
                    format!(
                        "home directory {home} does not exist; the code is asked for and every login denied{hint}"
                    ),
                )
            });
        }
        Ok(Err((Some(NullokAbsence::Refused { missing, why }), _))) => {
            let missing = missing.map_or_else(|| shown.clone(), |m| m.display().to_string());
            return Err(Finding::new(
                Verdict::Refused,
                format!(
                    "no secret file at {shown} ({missing} does not exist, {why}); the code is asked for and every login denied"
                ),
            ));
        }
        Ok(Err((None, e))) => return Err(Finding::new(Verdict::Refused, format!("{shown}: {e}"))),
        Ok(Ok(o)) => o,
    };
    let file = match GaFile::parse(&opened.contents) {
        Ok(f) => f,
        Err(e) => {
            return Err(Finding::new(
                Verdict::Refused,
                format!("{shown} is invalid: {e}"),
            ));
        }
    };
    Ok(Loaded {
        file,
        shown,
        opened: Some((opened.file, opener.clone())),
    })
}

/// `f` run with `pw`'s file-system identity, which is restored after it.
fn as_account<T>(pw: &Passwd, f: impl FnOnce() -> T) -> Result<T, String> {
    let id = nss::identity_of(pw).map_err(|e| e.to_string())?;
    let _as_account = crate::creds::switch_to(&id).map_err(|e| e.to_string())?;
    Ok(f())
}

/// Whether logins keep GA's `DISALLOW_REUSE` and `RATE_LIMIT` lines of a secret file up
/// to date (`shared_file=`), and why: one decision for the module and the admin tools.
#[derive(Debug)]
pub enum GaLinesKept {
    /// `shared_file=yes` (true) or `no` (false).
    ByOption(bool),
    /// `shared_file=auto`, not a file system known to be local: kept.
    NotLocal,
    /// `shared_file=auto`, a local file system; no export table and no kernel NFS
    /// server running: not kept.
    NoExports,
    /// `shared_file=auto`, a local file system, and no export of the table covers the
    /// file's mount: not kept. `by_device`: matched by device number, the kernel giving
    /// no mount ID.
    NotExported { by_device: bool },
    /// `shared_file=auto`, a local file system an export of this host's NFS server
    /// covers (the export's path): kept, since NFS clients read the file.
    Exported { export: PathBuf, by_device: bool },
    /// `shared_file=auto`, the file system's type unknown: kept, as on a shared home.
    Unknown(FileError),
    /// `shared_file=auto`, a local file system, and whether it is exported unknown (the
    /// export table or mount list unreadable or garbled, or an NFS server running
    /// without the table): kept, as on a shared home.
    ExportsUnknown(ExportsError),
}

impl GaLinesKept {
    /// The decision for the file read through `fd`; the file system is asked only
    /// under `auto`, and the export table ([`nfs_exports::ETAB`]) only then for a local
    /// one (then the mount list, or where the table is missing the NFS server's thread
    /// count). No exported path is looked at. Called with the identity that read the
    /// file, as the module does.
    pub fn of(shared: SharedFile, fd: &std::fs::File) -> Self {
        match shared {
            SharedFile::Yes => GaLinesKept::ByOption(true),
            SharedFile::No => GaLinesKept::ByOption(false),
            SharedFile::Auto => match safefile::on_network_fs(fd) {
                Ok(true) => GaLinesKept::NotLocal,
                Ok(false) => match nfs_exports::export_of(fd) {
                    Ok(ExportOf::NoTable) => GaLinesKept::NoExports,
                    Ok(ExportOf::NotExported { by_device }) => {
                        GaLinesKept::NotExported { by_device }
                    }
                    Ok(ExportOf::Exported { export, by_device }) => {
                        GaLinesKept::Exported { export, by_device }
                    }
                    Err(e) => GaLinesKept::ExportsUnknown(e),
                },
                Err(e) => GaLinesKept::Unknown(e),
            },
        }
    }

    pub fn kept(&self) -> bool {
        match self {
            GaLinesKept::ByOption(kept) => *kept,
            GaLinesKept::NoExports | GaLinesKept::NotExported { .. } => false,
            GaLinesKept::NotLocal
            | GaLinesKept::Exported { .. }
            | GaLinesKept::Unknown(_)
            | GaLinesKept::ExportsUnknown(_) => true,
        }
    }

    /// What could not be found out, for a decision taken by default (kept, as on a
    /// shared home), in words; `None` when the decision was made on what was seen.
    pub fn doubt(&self) -> Option<String> {
        match self {
            GaLinesKept::Unknown(e) => Some(format!("file system type unknown ({e})")),
            GaLinesKept::ExportsUnknown(e) => Some(format!(
                "whether this host's NFS server exports its file system is unknown ({e})"
            )),
            _ => None,
        }
    }
}

/// Said of a decision where the kernel gave no mount ID for the file.
const BY_DEVICE: &str = " (mounts matched by device number: this kernel gives no mount ID)";

/// [`GaLinesKept`] for a file that has GA's lines, in words; `None` for a file without
/// them. An admin on the NFS server that exports the homes reads here that its own
/// logins write them (an export of the table is on the file's mount, or covers it with
/// `crossmnt`), and elsewhere, on a local file system, that they do not, with what was
/// looked at (`shared_file=yes` changes that).
fn ga_lines(opts: &ModuleOptions, file: &GaFile, fd: &std::fs::File) -> Option<String> {
    if !file.contains_key(KEY_DISALLOW_REUSE) && !file.contains_key(KEY_RATE_LIMIT) {
        return None;
    }
    let lines = "GA's DISALLOW_REUSE/RATE_LIMIT lines";
    Some(match GaLinesKept::of(opts.shared_file, fd) {
        GaLinesKept::ByOption(true) => {
            format!("{lines} kept up to date on logins (shared_file=yes)")
        }
        GaLinesKept::ByOption(false) => format!("{lines} obeyed, never written (shared_file=no)"),
        GaLinesKept::NotLocal => format!(
            "{lines} kept up to date on logins (not a file system known to be local, \
             shared_file=auto)"
        ),
        GaLinesKept::Exported { export, by_device } => format!(
            "{lines} kept up to date on logins (a local file system this host's NFS \
             server exports: {} in {} covers its mount{}; shared_file=auto)",
            export.as_os_str().as_encoded_bytes().escape_ascii(),
            nfs_exports::ETAB,
            if by_device { BY_DEVICE } else { "" }
        ),
        GaLinesKept::NotExported { by_device } => format!(
            "{lines} obeyed, not written on time-based logins (a local file system, \
             shared_file=auto; no export of its mount in {}{}; shared_file=yes if hosts \
             with another state store read this file otherwise)",
            nfs_exports::ETAB,
            if by_device { BY_DEVICE } else { "" }
        ),
        GaLinesKept::NoExports => format!(
            "{lines} obeyed, not written on time-based logins (a local file system, \
             shared_file=auto; no {} and no kernel NFS server running; shared_file=yes if \
             hosts with another state store read this file otherwise)",
            nfs_exports::ETAB
        ),
        GaLinesKept::Unknown(e) => {
            format!("{lines} kept up to date on logins (file system type unknown: {e})")
        }
        GaLinesKept::ExportsUnknown(e) => format!(
            "{lines} kept up to date on logins (a local file system; whether this host's \
             NFS server exports it is unknown: {e}; shared_file=yes or no says which)"
        ),
    })
}
