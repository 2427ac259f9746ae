//! Which file holds a user's secret, whose identity opens and writes it, who may own
//! it and from which directory down its chain is checked.
//!
//! One description for both shells: the module asks [`for_login`] (module options and
//! the canonical NSS entries) and `totp-enroll` asks [`for_enrollment`] (the CLI request,
//! the canonical NSS entry and the ids of the process). Both get a [`Placement`] and only
//! carry it out (`totp_os::safefile` checks, `totp_os::creds` switches); neither decides
//! paths, owners or trusted roots on its own.
//!
//! Pure: the callers look the accounts up and make relative CLI paths absolute.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::options::ModuleOptions;
use crate::user::{UserError, UserName, expand_secret_spec};

/// File name google-authenticator and both modules use by default.
pub const DEFAULT_FILE_NAME: &str = ".google_authenticator";

/// Permission bits of a secret file the CLI creates: owner read/write only, what
/// both modules accept by default.
pub const SECRET_FILE_MODE: u32 = 0o600;

/// GA's default `allowed_perm`, for files the CLI reads back.
const DEFAULT_ALLOWED_PERM: u32 = 0o600;

/// The parts of a canonical NSS entry placement depends on.
#[derive(Clone, Copy, Debug)]
pub struct Account<'a> {
    /// `pw_name`.
    pub name: &'a str,
    /// `pw_uid`.
    pub uid: u32,
    /// `pw_dir`.
    pub dir: &'a Path,
}

/// The real and effective uid of the process asking (`totp-enroll`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub euid: u32,
}

/// Whose filesystem identity opens, locks and (re)writes the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    /// The process as it runs: a user enrolling themselves.
    Caller,
    /// The user the file is for, by switching to their filesystem identity: every
    /// login in home mode, and root enrolling a user into their home (rule R4: never
    /// as root in a directory the user controls).
    User,
    /// GA's `user=` account, which owns every file of a store.
    Owner,
    /// Root itself, writing into a store whose whole directory chain only root can
    /// change (root enrolling a user outside their home).
    Root,
}

/// Where one user's secret file is and how it must be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Absolute path, without `..`, naming a file.
    pub path: PathBuf,
    /// Whose identity opens and writes it.
    pub opener: Opener,
    /// Uids that may own the file (and, besides root, the directories below
    /// `trusted_root`).
    pub owners: Vec<u32>,
    /// Top of the directory chain checked on every open: the home for a file in it,
    /// `/` for every other file (a store, `user=` or not: rule R7). `None` (the parent
    /// only) is never produced here.
    pub trusted_root: Option<PathBuf>,
    /// Permission bits the file may have.
    pub allowed_perm: u32,
    /// Whether a new file may only be created after its directories passed the checks
    /// a login makes on them (from `trusted_root`, or the parent alone). True for every
    /// enrolment: for root writing as itself it is the guard against writing where
    /// others can swap the file, and for a user's own file it keeps the CLI from
    /// writing a file every login then refuses. Logins create no file.
    pub check_dirs_on_create: bool,
    /// Which directories on the way to the file are this user's alone (`nullok`).
    pub per_user: PerUserDirs,
}

/// The directories on the way to one user's file that belong to that user alone, so
/// that one missing (under a checked directory) means the user has no file, as a missing
/// file does (`nullok`): those strictly below the home when `secret=` reaches the file
/// through it (a home of `/srv` does not make a `/srv/totp/${USER}/…` store's
/// `/srv/totp` the user's), and those at or below the first
/// component of `secret=` that names the user (`~`, `${HOME}`, `${USER}`), e.g.
/// `/var/unencrypted-home/alice` for `/var/unencrypted-home/${USER}/…`. Never the home
/// or a directory above it (an unmounted home looks the same, `nullok_missing_home`),
/// nor one above that component: a store directory shared by all users that was never
/// created or did not mount must not skip everybody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerUserDirs {
    /// The home, when it is an absolute path other than `/`: it and what is above it
    /// are never per-user.
    home: Option<PathBuf>,
    /// Whether `secret=` reaches the file through the home (`~`, `${HOME}`) and the
    /// file lies in it ([`lies_in_home`]), which makes what is below the home
    /// per-user.
    file_in_home: bool,
    /// `secret=` expanded up to and including its first component naming the user.
    from: Option<PathBuf>,
}

impl PerUserDirs {
    /// For `spec` (`secret=`) expanded for `name` with the home `home` to `path`.
    pub fn of(spec: &str, name: &UserName, home: Option<&str>, path: &Path) -> Self {
        let usable = |p: PathBuf| (p.is_absolute() && p != Path::new("/")).then_some(p);
        let home = home.map(PathBuf::from).and_then(usable);
        // `~` expands only at the start or after a `/`, i.e. at a component's start.
        let names_user =
            |c: &str| c.starts_with('~') || c.contains("${HOME}") || c.contains("${USER}");
        let mut end = None;
        let mut names_home = false;
        let mut at = 0;
        for c in spec.split('/') {
            at += c.len();
            if names_user(c) {
                end = Some(at);
                names_home = c.starts_with('~') || c.contains("${HOME}");
                break;
            }
            at += 1;
        }
        let from = end
            .and_then(|end| {
                expand_secret_spec(&spec[..end], name, home.as_deref().and_then(Path::to_str)).ok()
            })
            .map(PathBuf::from)
            .and_then(usable);
        // Only a file reached through the home: a home of `/srv` (or `/etc`) holding a
        // store every user shares, `secret=/srv/totp/${USER}/…`, makes `/srv/totp`
        // nobody's own.
        let file_in_home = names_home && home.as_deref().is_some_and(|h| lies_in_home(path, h));
        Self {
            home,
            from,
            file_in_home,
        }
    }

    /// Whether `dir` is one of them.
    pub fn contains(&self, dir: &Path) -> bool {
        if let Some(home) = &self.home {
            if home.starts_with(dir) {
                return false;
            }
            if self.file_in_home && dir.starts_with(home) {
                return true;
            }
        }
        self.from.as_ref().is_some_and(|from| dir.starts_with(from))
    }
}

impl Placement {
    /// The owner a new file must be given when root writes it as itself for someone
    /// else: a store file outside the user's home that a login (no `user=`) requires
    /// the user to own. Root creates it in the root-controlled store and hands it over
    /// before it takes its name. `None`: the file belongs to whoever writes it.
    pub fn new_file_owner(&self) -> Option<u32> {
        match (self.opener, self.owners.first()) {
            (Opener::Root, Some(&uid)) if uid != 0 => Some(uid),
            _ => None,
        }
    }

    /// The directory holding the file.
    pub fn dir(&self) -> &Path {
        // Construction guarantees an absolute path with a final name.
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// The file's name in [`Placement::dir`].
    pub fn file_name(&self) -> &OsStr {
        self.path.file_name().unwrap_or_default()
    }
}

/// Why no placement exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// Home mode for a name NSS does not know.
    UnknownUser,
    /// The home directory is needed but is not an absolute (UTF-8) path.
    HomeNotAbsolute { user: String },
    /// `secret=` does not expand to a usable path.
    Expand {
        /// With `user=` (no home available).
        fixed_owner: bool,
        err: UserError,
    },
    /// A CLI path that is relative or has a `..` component, which would make "is
    /// this inside the user's home" a lexical lie.
    NotNormal,
    /// A CLI path without a final file name.
    NoFileName,
    /// Someone other than root asked for another user's file.
    NotRoot { user: String },
    /// A store file named after a spelling of the account other than its canonical
    /// name: the module looks up the canonical name, so the file would never be read.
    AliasFileName { typed: String, canonical: String },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser => f.write_str("unknown user"),
            Self::HomeNotAbsolute { user } => {
                write!(
                    f,
                    "the home directory of \"{user}\" is not an absolute path"
                )
            }
            Self::Expand {
                fixed_owner: true,
                err,
            } => write!(f, "secret= cannot be expanded with user=: {err}"),
            Self::Expand {
                fixed_owner: false,
                err,
            } => write!(f, "secret= cannot be expanded: {err}"),
            Self::NotNormal => f.write_str("secret path must be absolute, without \"..\""),
            Self::NoFileName => f.write_str("secret path does not name a file"),
            Self::NotRoot { user } => {
                write!(f, "only root can enroll another user (\"{user}\")")
            }
            Self::AliasFileName { typed, canonical } => write!(
                f,
                "\"{typed}\" is \"{canonical}\" to the name service, and the module looks \
                 for a store file named \"{canonical}\"; name the file after it"
            ),
        }
    }
}

impl std::error::Error for PlacementError {}

/// Top of the directory chain a login checks for a file at `path` of the user whose
/// home is `home`: the home when the file is in it ([`lies_in_home`]), otherwise `/` (rule
/// R7). Outside a home, whoever can rename any directory from `/` down can put another
/// account's directory in the place of this one's, so the chain is checked as the
/// enrolment checks a store it writes into. Logins and enrolments for a user's own file
/// both take it from here, so that the CLI refuses exactly the directories a login would.
fn login_chain_root(path: &Path, home: &Path) -> PathBuf {
    if lies_in_home(path, home) {
        home.to_path_buf()
    } else {
        PathBuf::from("/")
    }
}

/// Whether `path` lies in the home `home` (by components: `/home/alicex` is not in
/// `/home/alice`).
fn lies_in_home(path: &Path, home: &Path) -> bool {
    path.starts_with(home)
}

/// GA's `no_strict_owner`: root may own the file too (files an admin copied in).
/// Root is otherwise never implied for the file.
fn allowed_owners(owner: u32, no_strict_owner: bool) -> Vec<u32> {
    let mut owners = vec![owner];
    if no_strict_owner && owner != 0 {
        owners.push(0);
    }
    owners
}

/// The file one login reads. `name` is the canonical name (NSS's `pw_name`, or in
/// store mode the validated PAM name NSS does not know), `user` its NSS entry, and
/// `owner` the `user=` account when the options name one.
pub fn for_login(
    opts: &ModuleOptions,
    name: &UserName,
    user: Option<Account<'_>>,
    owner: Option<Account<'_>>,
) -> Result<Placement, PlacementError> {
    if let Some(owner) = owner {
        // GA's `user=`: one fixed account owns every file (a root-owned store, or a
        // service account); the PAM name only selects the file.
        let path =
            expand_secret_spec(&opts.secret, name, None).map_err(|err| PlacementError::Expand {
                fixed_owner: true,
                err,
            })?;
        // `~` cannot be expanded here; the user's home, when NSS knows one, still
        // keeps the home and what is above it from counting as per-user.
        let path = PathBuf::from(path);
        let mut per_user = PerUserDirs::of(&opts.secret, name, None, &path);
        per_user.home = user
            .and_then(|u| u.dir.to_str())
            .map(PathBuf::from)
            .filter(|h| h.is_absolute() && h != Path::new("/"));
        return Ok(Placement {
            path,
            opener: Opener::Owner,
            owners: allowed_owners(owner.uid, opts.no_strict_owner),
            // A store: every directory from `/` down (R7), also where `secret=` runs
            // through the user's home, which the owner does not own.
            trusted_root: Some(PathBuf::from("/")),
            allowed_perm: opts.allowed_perm,
            check_dirs_on_create: false,
            per_user,
        });
    }
    let user = user.ok_or(PlacementError::UnknownUser)?;
    let home = user
        .dir
        .to_str()
        .filter(|h| h.starts_with('/'))
        .ok_or_else(|| PlacementError::HomeNotAbsolute {
            user: user.name.to_owned(),
        })?;
    let path = PathBuf::from(expand_secret_spec(&opts.secret, name, Some(home)).map_err(
        |err| PlacementError::Expand {
            fixed_owner: false,
            err,
        },
    )?);
    // The chain is checked from the home down when the file is in it; elsewhere
    // (an admin's `secret=/var/lib/...` with the user's own file) from `/` down.
    let trusted_root = Some(login_chain_root(&path, Path::new(home)));
    let per_user = PerUserDirs::of(&opts.secret, name, Some(home), &path);
    Ok(Placement {
        path,
        opener: Opener::User,
        owners: allowed_owners(user.uid, opts.no_strict_owner),
        trusted_root,
        allowed_perm: opts.allowed_perm,
        check_dirs_on_create: false,
        per_user,
    })
}

/// One `pam_totp` line of the service `totp-enroll --service` names: its options and,
/// with `user=`, that account's canonical entry.
#[derive(Clone, Copy, Debug)]
pub struct ServiceLine<'a> {
    pub opts: &'a ModuleOptions,
    pub owner: Option<Account<'a>>,
}

/// The file `totp-enroll` writes or updates for `user` (the canonical entry of
/// `typed`, the `--user` spelling, or of the caller's uid when `typed` is `None`).
/// `secret` is the `--secret` path already made absolute against the working
/// directory; `None` means the file `line` names, else the default file in the NSS
/// home (never `$HOME`).
///
/// With `line` (`--service`), the file gets the owners and permission bits the login
/// through that line requires ([`for_login`]): without `user=` the user owns it, also
/// in a store outside the home (root writes it there and hands it to the user); with
/// `user=` that account owns it. Without `line`, a file root writes for another user
/// outside their home is root's, as for a line with `user=root`.
pub fn for_enrollment(
    user: Account<'_>,
    typed: Option<&str>,
    secret: Option<&Path>,
    caller: Caller,
    line: Option<ServiceLine<'_>>,
) -> Result<Placement, PlacementError> {
    let for_other = user.uid != caller.uid;
    if for_other && caller.euid != 0 {
        return Err(PlacementError::NotRoot {
            user: user.name.to_owned(),
        });
    }
    let login = match line {
        Some(line) => {
            let name =
                UserName::parse(user.name.as_bytes()).map_err(|err| PlacementError::Expand {
                    fixed_owner: line.owner.is_some(),
                    err,
                })?;
            Some(for_login(line.opts, &name, Some(user), line.owner)?)
        }
        None => None,
    };
    let home = user.dir;
    let path = match (secret, &login) {
        (Some(p), _) => {
            let normal = p.has_root() && p.components().all(|c| c != Component::ParentDir);
            if !normal {
                return Err(PlacementError::NotNormal);
            }
            p.to_path_buf()
        }
        (None, Some(login)) => login.path.clone(),
        (None, None) if home.is_absolute() => home.join(DEFAULT_FILE_NAME),
        (None, None) => {
            return Err(PlacementError::HomeNotAbsolute {
                user: user.name.to_owned(),
            });
        }
    };
    let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
        return Err(PlacementError::NoFileName);
    };
    // A home of "/" (some service accounts) would make every path "in the home", so
    // it never counts as one.
    let in_home = home.is_absolute() && home != Path::new("/") && dir.starts_with(home);
    if let Some(login) = login {
        let owner_name = line.and_then(|l| l.owner).map_or(user.name, |o| o.name);
        return for_enrollment_as_login(user, caller, login, path, in_home, owner_name);
    }
    let opener = if !for_other {
        Opener::Caller
    } else if in_home {
        Opener::User
    } else {
        Opener::Root
    };
    if opener == Opener::Root
        && let Some(typed) = typed
        && typed != user.name
        && file == OsStr::new(typed)
    {
        return Err(PlacementError::AliasFileName {
            typed: typed.to_owned(),
            canonical: user.name.to_owned(),
        });
    }
    let (owners, trusted_root) = match opener {
        // Only root may change anything from `/` down to the store's file.
        Opener::Root => (vec![0], Some(PathBuf::from("/"))),
        // The user's own file, whoever writes it: the rules a login applies to it (a
        // home of mode 0777 would pass the kernel's checks here and fail every login).
        Opener::User | Opener::Caller => (vec![user.uid], Some(login_chain_root(&path, home))),
        Opener::Owner => (vec![user.uid], Some(PathBuf::from("/"))),
    };
    Ok(Placement {
        path,
        opener,
        owners,
        trusted_root,
        allowed_perm: DEFAULT_ALLOWED_PERM,
        check_dirs_on_create: true,
        // Enrolment creates files; it never turns an absence into a skip.
        per_user: PerUserDirs::default(),
    })
}

/// [`for_enrollment`] through a service line: the login's placement `login` (at
/// `path`, the `--secret` path when one was given), carried out by the caller.
fn for_enrollment_as_login(
    user: Account<'_>,
    caller: Caller,
    login: Placement,
    path: PathBuf,
    in_home: bool,
    owner_name: &str,
) -> Result<Placement, PlacementError> {
    let trusted_root = match login.opener {
        Opener::User => Some(login_chain_root(&path, user.dir)),
        _ => login.trusted_root.clone(),
    };
    let (opener, trusted_root) = match login.opener {
        // The file of a `user=` account: written by that account, or by root when it
        // is root's (a store only root may change, checked from `/`).
        Opener::Owner => {
            let owner = login.owners.first().copied().unwrap_or(0);
            match (owner == caller.uid, caller.euid == 0, owner == 0) {
                (true, true, _) | (false, true, true) => (Opener::Root, Some(PathBuf::from("/"))),
                (true, false, _) => (Opener::Caller, trusted_root),
                (false, true, false) => (Opener::Owner, trusted_root),
                // Someone enrolling themselves into a file another account owns.
                (false, false, _) => {
                    return Err(PlacementError::NotRoot {
                        user: owner_name.to_owned(),
                    });
                }
            }
        }
        _ if user.uid == caller.uid => (Opener::Caller, trusted_root),
        // Never as root in a directory the user controls (R4).
        _ if in_home => (Opener::User, trusted_root),
        // A store outside the home: root writes, the file goes to the user
        // (`Placement::new_file_owner`); only root may change the directories.
        _ => (Opener::Root, Some(PathBuf::from("/"))),
    };
    Ok(Placement {
        path,
        opener,
        owners: login.owners,
        trusted_root,
        allowed_perm: login.allowed_perm,
        check_dirs_on_create: true,
        // Enrolment creates files; it never turns an absence into a skip.
        per_user: PerUserDirs::default(),
    })
}

#[cfg(test)]
mod tests;
