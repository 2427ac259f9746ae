//! Builds the state store the module options ask for (`state=`, `state_dir=`, and the
//! shared store of `state=redis…` or `state=etcd…`, see `crate::fleet`).
//!
//! Where the local store lives:
//!
//! - run as root (sshd, sudo, su, login): `state_dir=`, default
//!   [`totp_os::state_dir::DEFAULT_STATE_DIR`], root-owned and created on first use;
//! - run as another account (a screen locker authenticating its own user): that
//!   account cannot write a root-owned directory, so the default is
//!   `~/.local/state/pam_totp` in the *process owner's* home (from NSS, never from the
//!   environment). The trade-off, documented in pam_totp(8): that account can reset its
//!   own throttling and replay marks, which only the person already holding that
//!   account's session can do; an admin who wants more sets `state_dir=` to a directory
//!   the account owns but cannot be reached by the user, or runs the locker's check
//!   through a root helper.

use std::path::PathBuf;
use std::time::Duration;

use totp_core::fleet::Fallback;
use totp_core::options::{ModuleOptions, StateBackend};
use totp_core::state::{StateStore, StoreError, Uid};
use totp_os::state_dir::{DEFAULT_STATE_DIR, StateDir, effective_uid};

use crate::system::System;

/// Below the process owner's home when not running as root.
const UNPRIVILEGED_SUBDIR: &str = ".local/state/pam_totp";

/// What [`open`] tells its caller for the log, besides the store.
pub enum OpenNote<'a> {
    /// The weakening note: `state_fallback=local` replaced an unreachable shared store
    /// with the local one.
    FellBack(&'a str),
    /// The shared store opened, after its plugin passed over a server of its list (an
    /// etcd member, a sentinel), named with the reason.
    Skipped(&'a str),
}

/// The store for this configuration, or why none can be used (for the log), opened for
/// `user` (uid, canonical NSS name; `None` for a name NSS does not know, whose record
/// keeps the uid key). `warn` receives the [`OpenNote`]s. Only an unavailable store is
/// replaced: a refusal (credentials, ACL, TLS verification, an untrusted file, an
/// evicting server) or a damaged store record is a fault an admin must fix, and a
/// fallback there would let whoever can cause it (a forged certificate on the path)
/// turn the fleet's replay protection into one host's.
pub fn open(
    opts: &ModuleOptions,
    sys: &dyn System,
    user: Option<(Uid, &str)>,
    warn: &mut dyn FnMut(OpenNote<'_>),
) -> Result<Box<dyn StateStore>, String> {
    match opts.state {
        StateBackend::Local => open_local(opts, sys),
        StateBackend::Redis | StateBackend::Etcd => {
            match crate::fleet::open_remote(opts, user, &mut |m| {
                warn(OpenNote::Skipped(&format!("shared state store: {m}")))
            }) {
                Ok(store) => Ok(store),
                Err(why @ StoreError::Unavailable(_)) if opts.fleet.fallback == Fallback::Local => {
                    warn(OpenNote::FellBack(&format!(
                        "shared state store unusable ({why}); using this host's local store \
                     (state_fallback=local: codes used on other hosts are not refused here)"
                    )));
                    open_local(opts, sys)
                }
                Err(why) => Err(why.to_string()),
            }
        }
    }
}

pub(crate) fn open_local(
    opts: &ModuleOptions,
    sys: &dyn System,
) -> Result<Box<dyn StateStore>, String> {
    Ok(open_local_at(opts, local_dir(opts, sys)?))
}

/// [`open_local`] in `dir`, the [`local_dir`] the caller already has.
pub(crate) fn open_local_at(opts: &ModuleOptions, dir: PathBuf) -> Box<dyn StateStore> {
    let timeout = Duration::from_millis(opts.lock_timeout_ms);
    Box::new(StateDir::new(dir, timeout))
}

/// Why a process that is not root has no local store directory.
#[derive(Debug)]
pub(crate) struct NoLocalDir {
    pub(crate) why: String,
    /// The name service failed to answer for the process owner (rather than answering
    /// with no account or no usable home): the owner may have a store all the same.
    pub(crate) lookup_failed: bool,
}

impl From<NoLocalDir> for String {
    fn from(e: NoLocalDir) -> String {
        e.why
    }
}

/// The local store's directory: `state_dir=`, or the default for the process owner.
pub(crate) fn local_dir(opts: &ModuleOptions, sys: &dyn System) -> Result<PathBuf, NoLocalDir> {
    match &opts.state_dir {
        Some(d) => Ok(PathBuf::from(d)),
        None => default_dir(sys),
    }
}

fn default_dir(sys: &dyn System) -> Result<PathBuf, NoLocalDir> {
    let euid = effective_uid();
    if euid == 0 {
        return Ok(PathBuf::from(DEFAULT_STATE_DIR));
    }
    match sys.user_by_uid(euid) {
        Ok(Some(pw)) if pw.dir.is_absolute() => Ok(pw.dir.join(UNPRIVILEGED_SUBDIR)),
        Ok(_) => Err(NoLocalDir {
            why: format!("running as uid {euid} without a usable home directory; set state_dir="),
            lookup_failed: false,
        }),
        Err(e) => Err(NoLocalDir {
            why: format!(
                "cannot look up the process owner (uid {euid}): {e}; check the name \
                 service's passwd sources (nsswitch.conf), or set state_dir="
            ),
            lookup_failed: true,
        }),
    }
}
