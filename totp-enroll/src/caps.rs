//! The admin's caps on a secret file, as the module will apply them.
//!
//! The module cuts a file's `WINDOW_SIZE` to `max_window=` and its `TIME_SKEW` to
//! `max_time_skew=` (defaults in `totp_core::policy`). The CLI must not write what
//! the module would cut, so it reads the same setting from the same place: with
//! `--service NAME` the service's `pam_totp` lines (`totp_os::pam_stack`); without
//! it, the module's defaults. Several `pam_totp` lines give the tightest cap, which
//! every one of them accepts.
//!
//! Nothing here is a security boundary: the module enforces its caps whatever the
//! file says. This only keeps the CLI from promising what a login will not honour.

use std::path::Path;

use totp_core::policy::{DEFAULT_MAX_TIME_SKEW, DEFAULT_MAX_WINDOW};
use totp_os::pam_stack::{self, MODULE_FILE, StackError};

use crate::error::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max_window: u32,
    pub max_time_skew: u32,
    /// Where the caps come from, for messages.
    pub source: String,
}

impl Caps {
    pub fn module_defaults() -> Caps {
        Caps {
            max_window: DEFAULT_MAX_WINDOW,
            max_time_skew: DEFAULT_MAX_TIME_SKEW,
            source: "the module's defaults; pass --service NAME to use a PAM service's options"
                .into(),
        }
    }
}

impl From<StackError> for Error {
    fn from(e: StackError) -> Error {
        match e {
            StackError::BadName(m) => Error::usage(m),
            StackError::Unusable(m) => Error::failed(m),
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
    Ok(Caps {
        max_window: found.iter().map(|o| o.max_window).min().unwrap_or(1),
        max_time_skew: found.iter().map(|o| o.max_time_skew).min().unwrap_or(0),
        source: format!("the max_window/max_time_skew options of {where_}"),
    })
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
        write(dir.path(), "plain", "auth required pam_unix.so\n");
        assert!(load(Some("plain"), Some(dir.path())).is_err());
        assert_eq!(
            load(Some("a/b"), Some(dir.path())).unwrap_err().exit_code(),
            crate::error::EXIT_USAGE
        );
    }
}
