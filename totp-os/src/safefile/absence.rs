//! What `nullok` makes of a secret file that is not there: the one decision the module
//! and the audit (`totp-state audit`) both take.

use super::*;
use totp_core::placement::PerUserDirs;

/// Whose file was looked for, as `nullok` needs it.
#[derive(Clone, Copy, Debug)]
pub struct NullokUser<'a> {
    /// The user's uid, when the name service knows them.
    pub uid: Option<uid_t>,
    /// Their home as the name service spells it.
    pub home: Option<&'a Path>,
    /// Who may own the file ([`FileRules::allowed_owners`]).
    pub owners: &'a [uid_t],
    /// The directories on the way that are theirs alone.
    pub per_user: &'a PerUserDirs,
}

/// What an absence means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NullokAbsence {
    /// Not enrolled: no file, or (`Some`) the user's own directory `dir` is missing.
    NotEnrolled(Option<PathBuf>),
    /// The home is missing (under whatever spelling of its parent): an outage unless
    /// `nullok_missing_home`.
    HomeMissing(PathBuf),
    /// `missing` is not there, and that is not taken for "not enrolled" for the reason
    /// `why` (a clause that follows "does not exist, ").
    Refused {
        missing: Option<PathBuf>,
        why: &'static str,
    },
}

/// What `err`, from [`open_checked_noting`] with `absence`, means under `nullok` for
/// `user`; `None` when it is no absence at all. Must be called with the identity that
/// opened the file: the home's parent is resolved again as it.
pub fn nullok_absence(
    err: &FileError,
    absence: &Absence,
    user: &NullokUser<'_>,
) -> Option<NullokAbsence> {
    // A uid no file can have: a user the name service does not know owns nothing.
    let uid = user.uid.unwrap_or(uid_t::MAX);
    match err {
        FileError::NotFound => Some(match absence.clone().for_user(uid, user.owners) {
            Absence::Proven { .. } => NullokAbsence::NotEnrolled(None),
            other => NullokAbsence::Refused {
                missing: None,
                why: refusal(&other),
            },
        }),
        FileError::MissingDirectory {
            path,
            absence,
            parent,
        } => {
            let home = match user.home {
                Some(home) => missing_is_home(path, *parent, home),
                None => Some(false),
            };
            let refused = |why| NullokAbsence::Refused {
                missing: Some(path.clone()),
                why,
            };
            Some(match home {
                Some(true) => NullokAbsence::HomeMissing(path.clone()),
                None => refused(
                    "and whether it is the home under another spelling of its parent could not be told",
                ),
                Some(false) if !user.per_user.contains(path) => refused(
                    "not the user's own but shared by all users, or the home or above it, which nullok never takes for \"not enrolled\"",
                ),
                Some(false) => match user
                    .uid
                    .map(|uid| absence.clone().for_user(uid, user.owners))
                {
                    Some(Absence::Proven { .. }) => NullokAbsence::NotEnrolled(Some(path.clone())),
                    Some(other) => refused(refusal(&other)),
                    None => refused(refusal(&Absence::Unchecked)),
                },
            })
        }
        _ => None,
    }
}

/// Why an absence other than [`Absence::Proven`] is not "not enrolled".
fn refusal(absence: &Absence) -> &'static str {
    match absence {
        Absence::NotLocal => {
            "and the directory that should hold it is on a file system not known to be local, where a server or automounter that is down answers the same"
        }
        Absence::Empty => {
            "and the directory that should hold it lists nothing else or cannot be listed, as the empty mount point of a store that did not mount would"
        }
        Absence::UserMovable => {
            "and the user can rename a directory on the way to the file, and the file would not be theirs, so it may have been moved away"
        }
        Absence::Proven { .. } | Absence::Unchecked => {
            "and a directory on the way to it was not checked or fails the directory checks, so that shows nothing"
        }
    }
}

/// Whether the directory `missing`, missing in the directory `parent` (`(st_dev,
/// st_ino)`), is the home `home`: the same path, or the same name in the directory the
/// home's parent resolves to (a root-owned `/home -> var/home` makes `/var/home/alice`
/// the home `/home/alice`). `None` when that cannot be told.
pub(super) fn missing_is_home(
    missing: &Path,
    parent: Option<(u64, u64)>,
    home: &Path,
) -> Option<bool> {
    if missing == home {
        return Some(true);
    }
    let (Some(name), Some(home_parent)) = (home.file_name(), home.parent()) else {
        return Some(false);
    };
    if missing.file_name() != Some(name) {
        return Some(false);
    }
    let parent = parent?;
    let comps = dir_components(home_parent).ok()?;
    let walked = walk(&comps, None).ok()?;
    let st = stat::fstat(&walked.fd).ok()?;
    Some((st.st_dev, st.st_ino) == parent)
}
