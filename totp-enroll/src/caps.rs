//! The admin's caps on a secret file, as the module will apply them.
//!
//! The module cuts a file's `WINDOW_SIZE` to `max_window=` and its `TIME_SKEW` to
//! `max_time_skew=` (defaults in `totp_core::policy`). The CLI must not write what
//! the module would cut, so it reads the same setting from the same place: with
//! `--service NAME` the service's `pam_totp` lines (`totp_os::pam_stack`); without
//! it, the module's defaults. Several `pam_totp` lines give the tightest cap, which
//! every one of them accepts.
//!
//! The same lines' `allowed_perm=` decides the permission bits of a new secret file:
//! 0600 where every line allows it, else 0400 (GA's tool writes 0400, so an admin may
//! allow only that), else the enrolment is refused, since every login would refuse the
//! file.
//!
//! Nothing here is a security boundary: the module enforces its caps whatever the
//! file says. This only keeps the CLI from promising what a login will not honour.

use std::path::Path;

use totp_core::placement::SECRET_FILE_MODE;
use totp_core::policy::{DEFAULT_MAX_TIME_SKEW, DEFAULT_MAX_WINDOW};
use totp_os::pam_stack::{self, MODULE_FILE, StackError};

use crate::error::Error;

/// What GA's own tool writes, and what `allowed_perm=0400` allows alone.
const READ_ONLY_FILE_MODE: u32 = 0o400;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max_window: u32,
    pub max_time_skew: u32,
    /// Permission bits of a new secret file: ones every `allowed_perm=` accepts.
    pub file_mode: u32,
    /// Where the caps come from, for messages.
    pub source: String,
}

impl Caps {
    pub fn module_defaults() -> Caps {
        Caps {
            max_window: DEFAULT_MAX_WINDOW,
            max_time_skew: DEFAULT_MAX_TIME_SKEW,
            file_mode: SECRET_FILE_MODE,
            source: "the module's defaults; pass --service NAME to use a PAM service's options"
                .into(),
        }
    }
}

impl From<StackError> for Error {
    fn from(e: StackError) -> Error {
        match e {
            StackError::BadName(m) => Error::usage(m),
            StackError::Unusable(m) | StackError::Denied(m) | StackError::Refused(m) => {
                Error::failed(m)
            }
        }
    }
}

/// The caps for `service` (read from `pam_dir`, default /etc/pam.d), or the
/// module's defaults when no service is named.
pub fn load(service: Option<&str>, pam_dir: Option<&Path>) -> Result<Caps, Error> {
    let Some(service) = service else {
        return Ok(Caps::module_defaults());
    };
    let dir = pam_stack::pam_dir_or_default(pam_dir);
    let found = pam_stack::module_options(&dir, service)?;
    let where_ = format!("service \"{service}\" in \"{}\"", dir.display());
    if found.is_empty() {
        return Err(Error::failed(format!(
            "{where_} has no auth line for {MODULE_FILE}"
        )));
    }
    let allowed: Vec<u32> = found.iter().map(|o| o.allowed_perm).collect();
    let file_mode = file_mode_for(&allowed).ok_or_else(|| {
        let shown: Vec<String> = allowed.iter().map(|p| format!("{p:04o}")).collect();
        Error::failed(format!(
            "{where_} allows secret files with the permission bits {} \
             (allowed_perm=), which admit neither 0600 nor 0400: every login would \
             refuse a file written here",
            shown.join(" and ")
        ))
    })?;
    Ok(Caps {
        max_window: found.iter().map(|o| o.max_window).min().unwrap_or(1),
        max_time_skew: found.iter().map(|o| o.max_time_skew).min().unwrap_or(0),
        file_mode,
        source: format!("the max_window/max_time_skew options of {where_}"),
    })
}

/// The bits of a new secret file that every `allowed_perm` in `allowed` accepts
/// (a file's bits must be a subset of it): 0600, as the module's default, else 0400.
fn file_mode_for(allowed: &[u32]) -> Option<u32> {
    [SECRET_FILE_MODE, READ_ONLY_FILE_MODE]
        .into_iter()
        .find(|mode| allowed.iter().all(|a| mode & !a == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn no_service_means_the_module_defaults() {
        let c = load(None, None).expect("defaults");
        assert_eq!(
            (c.max_window, c.max_time_skew),
            (DEFAULT_MAX_WINDOW, DEFAULT_MAX_TIME_SKEW)
        );
    }

    #[test]
    fn the_tightest_cap_of_the_services_lines_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "svc",
            "auth required pam_totp.so max_time_skew=40 max_window=9\n\
             -auth optional pam_totp.so max_time_skew=60\n",
        );
        let c = load(Some("svc"), Some(dir.path())).expect("caps");
        assert_eq!((c.max_window, c.max_time_skew), (9, 40));
        assert_eq!(c.file_mode, 0o600);
        write(dir.path(), "plain", "auth required pam_unix.so\n");
        assert!(load(Some("plain"), Some(dir.path())).is_err());
        assert_eq!(
            load(Some("a/b"), Some(dir.path())).unwrap_err().exit_code(),
            crate::error::EXIT_USAGE
        );
    }

    // GA's tool writes 0400 and an admin may allow only that; a file the module's
    // allowed_perm refuses would lock the user out at every login.
    #[test]
    fn allowed_perm_decides_the_mode_of_the_new_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let mode = |line: &str| {
            write(dir.path(), "svc", line);
            load(Some("svc"), Some(dir.path())).map(|c| c.file_mode)
        };
        assert_eq!(mode("auth required pam_totp.so\n").expect("default"), 0o600);
        assert_eq!(
            mode("auth required pam_totp.so allowed_perm=0640\n").expect("wider"),
            0o600
        );
        assert_eq!(
            mode("auth required pam_totp.so allowed_perm=0400\n").expect("0400"),
            0o400
        );
        assert_eq!(
            mode("auth required pam_totp.so\nauth optional pam_totp.so allowed_perm=0444\n")
                .expect("both lines"),
            0o400
        );
        assert_eq!(file_mode_for(&[0o600, 0o200]), None);
        assert_eq!(file_mode_for(&[0o044]), None);
    }
}
