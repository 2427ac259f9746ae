//! Whose secret file, and where.
//!
//! The user comes from NSS (the invoking uid, or `--user`), and the default
//! path from that entry's home directory, never from `$HOME`: a root shell with
//! an inherited `HOME` must not write another user's file into root's home, nor
//! root's secret into a directory someone else named.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use totp_os::nss::{self, Passwd};

use crate::error::Error;

/// File name google-authenticator and both modules use by default.
pub const DEFAULT_FILE_NAME: &str = ".google_authenticator";

/// How the file must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// The caller writes for itself with its own credentials.
    Caller,
    /// Root writes into the target user's home: switch the thread's filesystem
    /// identity to that user, so the kernel applies the user's permissions and
    /// the file is created owned by the user.
    TargetUser,
    /// Root writes into a root-owned store outside the user's home.
    RootStore,
}

#[derive(Debug)]
pub struct Target {
    pub user: Passwd,
    /// Absolute path of the secret file.
    pub path: PathBuf,
    pub dir: PathBuf,
    pub name: OsString,
    pub mode: WriteMode,
}

/// Ids of the running process.
pub struct Caller {
    pub uid: libc::uid_t,
    pub euid: libc::uid_t,
}

impl Caller {
    pub fn current() -> Caller {
        // SAFETY: getuid and geteuid have no preconditions and cannot fail.
        let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
        Caller { uid, euid }
    }
}

pub fn resolve(
    caller: &Caller,
    user: Option<&str>,
    secret: Option<&Path>,
) -> Result<Target, Error> {
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
    let for_other = pw.uid != caller.uid;
    if for_other && caller.euid != 0 {
        return Err(Error::failed(format!(
            "only root can enroll another user (\"{}\")",
            pw.name
        )));
    }

    let home = pw.dir.clone();
    let path = match secret {
        Some(p) => absolute(p)?,
        None => {
            if !home.is_absolute() {
                return Err(Error::failed(format!(
                    "the home directory of \"{}\" is not an absolute path; pass -s/--secret",
                    pw.name
                )));
            }
            home.join(DEFAULT_FILE_NAME)
        }
    };
    let (dir, name) = split(&path)?;

    let mode = if !for_other {
        WriteMode::Caller
    } else if home.is_absolute() && home != Path::new("/") && dir.starts_with(&home) {
        // A home of "/" (some service accounts) would make every path "in the
        // home", so it never counts as one.
        WriteMode::TargetUser
    } else {
        WriteMode::RootStore
    };
    if mode == WriteMode::RootStore
        && let Some(typed) = user
        && let Some(msg) = alias_file_name(typed, &pw.name, &name)
    {
        return Err(Error::usage(msg));
    }
    Ok(Target {
        user: pw,
        path,
        dir,
        name,
        mode,
    })
}

/// The module keys a store on the canonical (NSS) name, whatever spelling is typed at
/// login (`ALICE`, `AD\alice`): a store file named after another spelling would never be
/// read, so the account would stay unenrolled (and, with `nullok`, unprotected).
fn alias_file_name(typed: &str, canonical: &str, file: &OsStr) -> Option<String> {
    (typed != canonical && file == OsStr::new(typed)).then(|| {
        format!(
            "\"{typed}\" is \"{canonical}\" to the name service, and the module looks \
             for a store file named \"{canonical}\"; name the file after it"
        )
    })
}

/// Makes `p` absolute against the working directory and refuses `..`, which
/// would make "is this inside the user's home" a lexical lie.
fn absolute(p: &Path) -> Result<PathBuf, Error> {
    let abs = std::path::absolute(p)
        .map_err(|e| Error::failed(format!("cannot resolve \"{}\": {e}", p.display())))?;
    if abs.components().any(|c| c == Component::ParentDir) {
        return Err(Error::usage(format!(
            "secret path \"{}\" must not contain \"..\"",
            p.display()
        )));
    }
    Ok(abs)
}

fn split(path: &Path) -> Result<(PathBuf, OsString), Error> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_os_string())),
        _ => Err(Error::usage(format!(
            "secret path \"{}\" does not name a file",
            path.display()
        ))),
    }
}

/// The machine name for the default label and issuer, or `unix` as
/// google-authenticator falls back to.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call;
    // gethostname writes at most `len` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unix".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_owned(),
        _ => "unix".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Caller {
        Caller::current()
    }

    #[test]
    fn default_path_is_the_nss_home_not_the_environment() {
        let t = resolve(&me(), None, None).expect("current user resolves");
        assert_eq!(t.path, t.user.dir.join(DEFAULT_FILE_NAME));
        assert_eq!(t.mode, WriteMode::Caller);
    }

    #[test]
    fn relative_secret_paths_become_absolute_and_dotdot_is_refused() {
        let t = resolve(&me(), None, Some(Path::new("x/y"))).expect("ok");
        assert!(t.path.is_absolute() && t.path.ends_with("x/y"));
        assert_eq!(t.name, "y");
        assert!(resolve(&me(), None, Some(Path::new("/srv/../etc/x"))).is_err());
        assert!(resolve(&me(), None, Some(Path::new("/"))).is_err());
    }

    #[test]
    fn unknown_user_is_an_error() {
        let err = resolve(&me(), Some("no-such-user-totp-enroll"), None).unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }

    #[test]
    fn non_root_cannot_enroll_someone_else() {
        let caller = Caller {
            uid: 4242,
            euid: 4242,
        };
        let err = resolve(&caller, Some("root"), None).unwrap_err();
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
            &root,
            Some("nobody"),
            Some(&nobody.dir.join(DEFAULT_FILE_NAME)),
        )
        .expect("ok");
        if nobody.dir.is_absolute() && nobody.dir != Path::new("/") {
            assert_eq!(home.mode, WriteMode::TargetUser);
        }
        let store =
            resolve(&root, Some("nobody"), Some(Path::new("/var/lib/x/nobody"))).expect("ok");
        assert_eq!(store.mode, WriteMode::RootStore);
    }

    #[test]
    fn store_files_are_named_after_the_canonical_name() {
        let alias = |typed, file: &str| alias_file_name(typed, "alice", OsStr::new(file));
        assert!(alias("ALICE", "ALICE").is_some_and(|m| m.contains("\"alice\"")));
        assert!(alias("AD\\alice", "AD\\alice").is_some());
        assert_eq!(alias("ALICE", "alice"), None);
        assert_eq!(alias("alice", "alice"), None);
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
