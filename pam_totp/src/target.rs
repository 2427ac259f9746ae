//! Who is logging in, and the core's placement of their file (`totp_core::placement`:
//! which path, as whom, which owners and trusted root) carried out with NSS data.

use std::path::PathBuf;

use totp_core::options::{ModuleOptions, UserSpec};
use totp_core::placement::{self, Account, Opener, PerUserDirs, Placement, PlacementError};
use totp_core::user::UserName;
use totp_os::creds::Identity;
use totp_os::nss::{self, LoginUserError, Passwd};
use totp_os::safefile::FileRules;

use crate::error::{AuthError, Denial};
use crate::system::System;

/// Who logs in and which file is theirs: what the skip rules need. The file-system
/// identity (which costs a group lookup) is added by [`Named::with_identity`] only once
/// no rule has skipped the code.
///
/// One canonical identity: when NSS knows the user, `name` is NSS's `pw_name` and every
/// path, lock, state key, log line and rule subject derives from it, never from the
/// spelling typed at the prompt (`ALICE`, `AD\alice` and `alice@AD` are one account to
/// a directory service, so they must be one account here).
#[derive(Debug)]
pub struct Named {
    /// NSS's `pw_name` when NSS knows the user, else (store mode only) the validated
    /// `PAM_USER`.
    pub name: UserName,
    /// The NSS entry of the user logging in (absent with `user=` for names NSS does not
    /// know, which GA allows: the name only selects a file).
    pub pw: Option<Passwd>,
    path: PathBuf,
    /// See [`LoginTarget::typed_path`].
    typed_path: Option<PathBuf>,
    rules: FileRules,
    per_user: PerUserDirs,
    /// The account the file is opened as: the user, or the `user=` account.
    opener: Passwd,
}

impl Named {
    /// Adds the identity the file is opened as (uid, gid and the opener's groups), where
    /// a file is opened (`opens_files`): a secret served by `secret_command=` opens
    /// none, and the opener's group list (whose source may be down) is not asked for.
    pub fn with_identity(self, sys: &dyn System, opens_files: bool) -> Result<LoginTarget, Doomed> {
        let identity = match opens_files.then(|| sys.identity(&self.opener)) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => {
                return Err(doomed(
                    Denial::NameService,
                    format!(
                        "name service error (groups of uid {}): {e}",
                        self.opener.uid
                    ),
                    Some(&self.name),
                ));
            }
        };
        Ok(LoginTarget {
            name: self.name,
            pw: self.pw,
            path: self.path,
            typed_path: self.typed_path,
            identity,
            rules: self.rules,
            per_user: self.per_user,
        })
    }
}

/// Everything needed to read and update one user's secret file (see [`Named`]).
#[derive(Debug)]
pub struct LoginTarget {
    /// As [`Named::name`].
    pub name: UserName,
    /// As [`Named::pw`].
    pub pw: Option<Passwd>,
    /// The expanded `secret=` path.
    pub path: PathBuf,
    /// The path `secret=` names for the spelling typed at login, when that is not the
    /// canonical name and gives another path (`${USER}`): where google-authenticator,
    /// which pastes the typed name, kept this user's file. Only ever checked for
    /// existence, so that a file left under that name is not mistaken for "not
    /// enrolled" (with `nullok`, a skip); never read or used.
    pub typed_path: Option<PathBuf>,
    /// The identity the file is opened and rewritten as; `None` where no file is opened
    /// (a secret command), and switching to it then fails.
    pub identity: Option<Identity>,
    /// Owner, mode and directory rules for the file.
    pub rules: FileRules,
    /// Which missing directories on the way mean "no file" to `nullok`.
    pub per_user: PerUserDirs,
}

impl LoginTarget {
    /// Whether `nullok` may turn a missing file into `PAM_IGNORE`. Not for a name NSS
    /// does not know (store mode): a directory service may accept a spelling NSS cannot
    /// resolve, and the file for that spelling is then naturally missing.
    pub fn nullok_applies(&self) -> bool {
        self.pw.is_some()
    }
}

/// A user for whom no code can ever succeed. They are still prompted (no oracle).
#[derive(Debug)]
pub struct Doomed {
    pub denial: Denial,
    /// For the log only.
    pub why: String,
    /// The validated name, for log lines and skip rules. `None` when there is none, and
    /// after a name-service error for the user (found before the skip rules run): a user
    /// NSS could not look up is never excused from the code, not even by an `ALL` rule.
    pub name: Option<UserName>,
}

fn doomed(denial: Denial, why: impl Into<String>, name: Option<&UserName>) -> Doomed {
    Doomed {
        denial,
        why: why.into(),
        name: name.cloned(),
    }
}

/// Who a login is for, once the PAM name has been looked at.
#[derive(Debug)]
pub enum Resolved {
    /// A name whose file can be placed: the login goes on to the skip rules and the code.
    Named(Box<Named>),
    /// A user who is prompted as usual and then denied (see [`Doomed`]).
    Doomed(Doomed),
}

impl From<Result<Named, Doomed>> for Resolved {
    fn from(r: Result<Named, Doomed>) -> Self {
        match r {
            Ok(n) => Resolved::Named(Box::new(n)),
            Err(d) => Resolved::Doomed(d),
        }
    }
}

/// Resolves the target. `Err` is a module-wide fault (everybody is denied).
pub fn resolve(
    opts: &ModuleOptions,
    sys: &dyn System,
    raw_user: Option<&[u8]>,
) -> Result<Resolved, AuthError> {
    // A `user=` naming no account is a configuration error for everybody, decided before
    // the PAM name is looked at, so the answer never depends on the name.
    let owner = match &opts.user {
        Some(spec) => Some(resolve_owner(sys, spec)?),
        None => None,
    };
    let Some(raw) = raw_user else {
        return Ok(Resolved::Doomed(doomed(
            Denial::InvalidUserName,
            "no user name",
            None,
        )));
    };
    let name = match UserName::parse(raw) {
        Ok(n) => n,
        Err(e) => {
            return Ok(Resolved::Doomed(doomed(
                Denial::InvalidUserName,
                format!("invalid user name: {e}"),
                None,
            )));
        }
    };
    match owner {
        Some(owner) => Ok(resolve_fixed_owner(opts, sys, name, owner).into()),
        None => Ok(resolve_own_file(opts, sys, name).into()),
    }
}

/// The `user=` account.
fn resolve_owner(sys: &dyn System, spec: &UserSpec) -> Result<Passwd, AuthError> {
    let owner = match spec {
        UserSpec::Uid(uid) => sys.user_by_uid(*uid),
        UserSpec::Name(n) => sys.user_by_name(n.as_str()),
    };
    let owner = match owner {
        Ok(Some(pw)) => pw,
        Ok(None) => return Err(AuthError::Config("user= names no known account".into())),
        Err(e) => return Err(AuthError::Nss(format!("user= lookup: {e}"))),
    };
    Ok(owner)
}

/// GA's `user=`: every file is owned by one fixed account (a root-owned store, or a
/// service account); the PAM name only selects the file, after validation.
fn resolve_fixed_owner(
    opts: &ModuleOptions,
    sys: &dyn System,
    name: UserName,
    owner: Passwd,
) -> Result<Named, Doomed> {
    // GA does not require an NSS entry here, and neither do we (see
    // `LoginTarget::nullok_applies` for what an unknown name loses). But a name NSS knows is
    // replaced by its canonical spelling, and an NSS error denies.
    // `user=` naming the account logging in (root with `user=root`): NSS has just
    // answered this very query for the owner, and that entry is the login's when it
    // bears the typed name. A `user=` written as an alias (`user=ALICE` for `alice`)
    // typed at login goes through the canonical lookup like any other spelling, or the
    // alias would name the file (under `nullok`, a missing one skipped the code).
    let same_query = matches!(&opts.user, Some(UserSpec::Name(n)) if n.as_str() == name.as_str())
        && owner.name == name.as_str();
    let found = if same_query {
        Ok(Some((name.clone(), owner.clone())))
    } else {
        canonical(sys, &name)
    };
    let typed = name.clone();
    let (name, pw) = match found {
        Ok(Some((canonical, pw))) => (canonical, Some(pw)),
        Ok(None) => (name, None),
        Err(d) => return Err(d),
    };
    let place = |n: &UserName| {
        placement::for_login(opts, n, pw.as_ref().map(account), Some(account(&owner)))
    };
    let placed = place(&name);
    let typed_path = typed_path(&typed, &name, &placed, place);
    placed_named(placed, name, pw, Some(owner), typed_path)
}

/// The default: the user's own file, opened with the user's credentials.
fn resolve_own_file(
    opts: &ModuleOptions,
    sys: &dyn System,
    name: UserName,
) -> Result<Named, Doomed> {
    let typed = name;
    let (name, pw) = match canonical(sys, &typed) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(doomed(Denial::UnknownUser, "unknown user", Some(&typed))),
        Err(d) => return Err(d),
    };
    let place = |n: &UserName| placement::for_login(opts, n, Some(account(&pw)), None);
    let placed = place(&name);
    let typed_path = typed_path(&typed, &name, &placed, place);
    placed_named(placed, name, Some(pw), None, typed_path)
}

/// [`LoginTarget::typed_path`]: the placement of the typed spelling, when it differs
/// from the canonical name and leads to another path.
fn typed_path(
    typed: &UserName,
    canonical: &UserName,
    placed: &Result<Placement, PlacementError>,
    place: impl Fn(&UserName) -> Result<Placement, PlacementError>,
) -> Option<PathBuf> {
    let canonical_path = &placed.as_ref().ok()?.path;
    if typed == canonical {
        return None;
    }
    place(typed)
        .ok()
        .map(|p| p.path)
        .filter(|p| p != canonical_path)
}

/// The core's placement as the module carries it out: the [`Opener`] it names is the
/// user's entry `pw` or the `user=` account `owner`.
fn placed_named(
    placed: Result<Placement, PlacementError>,
    name: UserName,
    pw: Option<Passwd>,
    owner: Option<Passwd>,
    typed_path: Option<PathBuf>,
) -> Result<Named, Doomed> {
    let placed = match placed {
        Ok(p) => p,
        Err(e) => {
            let denial = match e {
                PlacementError::UnknownUser => Denial::UnknownUser,
                _ => Denial::NoSecret,
            };
            return Err(doomed(denial, e.to_string(), Some(&name)));
        }
    };
    let rules = match &pw {
        Some(user) => FileRules::for_placement_of(&placed, user, owner.as_ref()),
        None => FileRules::for_placement(&placed),
    };
    let opener = match placed.opener {
        Opener::User => pw.clone(),
        Opener::Owner => owner,
        // Enrollment openers: a login never runs as the process is, nor as root
        // on its own account.
        Opener::Caller | Opener::Root => None,
    };
    let Some(opener) = opener else {
        return Err(doomed(
            Denial::NoSecret,
            "no account to open the secret file as",
            Some(&name),
        ));
    };
    Ok(Named {
        name,
        pw,
        rules,
        path: placed.path,
        typed_path,
        per_user: placed.per_user,
        opener,
    })
}

fn account(pw: &Passwd) -> Account<'_> {
    Account {
        name: &pw.name,
        uid: pw.uid,
        dir: &pw.dir,
    }
}

/// The NSS entry for a typed name and its canonical `pw_name`; `Ok(None)` when NSS has
/// no such user. A lookup error is a doomed user whose name skip rules must not see.
fn canonical(sys: &dyn System, typed: &UserName) -> Result<Option<(UserName, Passwd)>, Doomed> {
    // R8: the one check the tools make too (`totp_os::nss::lookup_login_user`): the
    // canonical name must lead back to this account.
    let name_service = |why: String| Doomed {
        denial: Denial::NameService,
        why,
        name: None,
    };
    let pw = match nss::login_user_with(typed.as_str(), |n| sys.user_by_name(n)) {
        Ok(Some(pw)) => pw,
        Ok(None) => return Ok(None),
        Err(LoginUserError::AnotherAccount {
            uid,
            name,
            other_uid,
        }) => {
            return Err(name_service(format!(
                "the name service calls this account (uid {uid}) {}, the name of uid \
                 {other_uid}; asking for a code anyway",
                crate::log::sanitize(name.as_bytes()),
            )));
        }
        Err(e) => return Err(name_service(format!("{e}; asking for a code anyway"))),
    };
    match UserName::parse(pw.name.as_bytes()) {
        Ok(n) => Ok(Some((n, pw))),
        Err(e) => Err(doomed(
            Denial::InvalidUserName,
            format!("NSS name is unusable: {e}"),
            Some(typed),
        )),
    }
}
