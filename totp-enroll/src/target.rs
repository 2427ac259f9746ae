//! Whose secret file: the account from NSS (the invoking uid, or `--user`), and
//! the core's placement of its file (`totp_core::placement`), which also decides as
//! whom it is written and which owners and directories are trusted.
//!
//! The default path comes from the NSS home directory, never from `$HOME`: a root
//! shell with an inherited `HOME` must not write another user's file into root's
//! home, nor root's secret into a directory someone else named.

use std::path::Path;

use totp_core::placement::{self, Account, Caller, Placement, PlacementError};
use totp_os::nss::{self, Passwd};
use totp_os::safefile::FileRules;

use crate::error::Error;

#[derive(Debug)]
pub struct Target {
    /// The canonical NSS entry of the account the file is for.
    pub user: Passwd,
    /// Where the file is, as whom it is written, and what it and its directories
    /// must look like.
    pub placed: Placement,
}

impl Target {
    /// Absolute path of the secret file.
    pub fn path(&self) -> &Path {
        &self.placed.path
    }

    /// The checks `totp_os::safefile` makes for this placement.
    pub fn rules(&self) -> FileRules {
        FileRules::for_placement_of(&self.placed, &self.user)
    }
}

pub fn resolve(caller: Caller, user: Option<&str>, secret: Option<&Path>) -> Result<Target, Error> {
    let pw = match user {
        Some(name) => nss::lookup_user_by_name(name)
            .map_err(|e| Error::failed(format!("cannot look up user \"{name}\": {e}")))?
            .ok_or_else(|| Error::failed(format!("no such user \"{name}\"")))?,
        None => nss::lookup_user_by_uid(caller.uid)
            .map_err(|e| Error::failed(format!("cannot look up uid {}: {e}", caller.uid)))?
            .ok_or_else(|| {
                Error::failed(format!(
                    "uid {} has no entry in the password database; pass --user",
                    caller.uid
                ))
            })?,
    };
    // Relative to the working directory: the one piece of I/O the placement needs.
    let absolute = match secret {
        Some(p) => Some(
            std::path::absolute(p)
                .map_err(|e| Error::failed(format!("cannot resolve \"{}\": {e}", p.display())))?,
        ),
        None => None,
    };
    if let (0, None, Some(path)) = (caller.uid, user, absolute.as_deref()) {
        refuse_another_users_directory(path)?;
    }
    let account = Account {
        name: &pw.name,
        uid: pw.uid,
        dir: &pw.dir,
    };
    let shown = || secret.unwrap_or(Path::new("")).display();
    let placed = placement::for_enrollment(account, user, absolute.as_deref(), caller).map_err(
        |e| match e {
            PlacementError::NotNormal => Error::usage(format!(
                "secret path \"{}\" must not contain \"..\"",
                shown()
            )),
            PlacementError::NoFileName => {
                Error::usage(format!("secret path \"{}\" does not name a file", shown()))
            }
            PlacementError::HomeNotAbsolute { .. } => {
                Error::failed(format!("{e}; pass -s/--secret"))
            }
            PlacementError::AliasFileName { .. } => Error::usage(e.to_string()),
            e => Error::failed(e.to_string()),
        },
    )?;
    Ok(Target { user: pw, placed })
}

/// Root with `-s` into a directory another account owns (GA's habit, `sudo
/// google-authenticator -s /home/alice/.google_authenticator`) would write a root-owned
/// file the module refuses in alice's home. Refuse and name `--user`, which writes the
/// file as alice. (Not a security check: `--user` and the module decide that.)
fn refuse_another_users_directory(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let owner = nss::lookup_user_by_uid(meta.uid())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", meta.uid()), |p| p.name);
    Err(Error::usage(format!(
        "\"{}\" belongs to {owner}: root writing it would leave a root-owned file the \
         module refuses; run totp-enroll --user {owner} (it writes the file as {owner})",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use totp_core::placement::{DEFAULT_FILE_NAME, Opener};

    use super::*;

    fn me() -> Caller {
        crate::host::caller()
    }

    #[test]
    fn default_path_is_the_nss_home_not_the_environment() {
        let t = resolve(me(), None, None).expect("current user resolves");
        assert_eq!(t.path(), t.user.dir.join(DEFAULT_FILE_NAME));
        assert_eq!(t.placed.opener, Opener::Caller);
    }

    #[test]
    fn relative_secret_paths_become_absolute_and_dotdot_is_refused() {
        let t = resolve(me(), None, Some(Path::new("x/y"))).expect("ok");
        assert!(t.path().is_absolute() && t.path().ends_with("x/y"));
        assert_eq!(t.placed.file_name(), "y");
        let err = resolve(me(), None, Some(Path::new("/srv/../etc/x"))).unwrap_err();
        assert!(err.to_string().contains("\"/srv/../etc/x\""), "{err}");
        assert!(resolve(me(), None, Some(Path::new("/"))).is_err());
    }

    #[test]
    fn unknown_user_is_an_error() {
        let err = resolve(me(), Some("no-such-user-totp-enroll"), None).unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }

    #[test]
    fn non_root_cannot_enroll_someone_else() {
        let caller = Caller {
            uid: 4242,
            euid: 4242,
        };
        let err = resolve(caller, Some("root"), None).unwrap_err();
        assert!(err.to_string().contains("only root"), "{err}");
    }

    #[test]
    fn root_for_another_user_picks_home_or_store_mode() {
        let root = Caller { uid: 0, euid: 0 };
        let Ok(Some(nobody)) = nss::lookup_user_by_name("nobody") else {
            eprintln!("note: no user \"nobody\"; skipping");
            return;
        };
        let home = resolve(
            root,
            Some("nobody"),
            Some(&nobody.dir.join(DEFAULT_FILE_NAME)),
        )
        .expect("ok");
        if nobody.dir.is_absolute() && nobody.dir != Path::new("/") {
            assert_eq!(home.placed.opener, Opener::User);
        }
        let store =
            resolve(root, Some("nobody"), Some(Path::new("/var/lib/x/nobody"))).expect("ok");
        assert_eq!(store.placed.opener, Opener::Root);
        assert_eq!(store.rules().allowed_owners, vec![0]);
    }
}
