//! The module's side of fleets: the shared store (`state=redis…`, `state=etcd…`) and secrets
//! served by a command (`secret_command=`). See docs/fleet.md.

use std::path::Path;
use std::time::Duration;

use totp_core::fleet::check_command_file;
use totp_core::gafile::GaFile;
use totp_core::options::ModuleOptions;
use totp_core::state::{StateStore, StoreError, Uid};
use totp_os::command::{SecretOutput, run_secret_command};
use totp_os::remote::open_shared;

/// Connects to the shared store `state=` names (after the plugin's ownership check), for
/// `user` (uid, canonical name) when the login has one: its records are keyed by that
/// name and read in the open's round trip. The error keeps its class: only an
/// unavailable store may be replaced by the local one (`state_fallback=local`).
pub fn open_remote(
    opts: &ModuleOptions,
    user: Option<(Uid, &str)>,
) -> Result<Box<dyn StateStore>, StoreError> {
    let shared = opts
        .fleet
        .shared()
        .ok_or_else(|| StoreError::Refused("a shared state= without a server".to_owned()))?;
    let store = open_shared(&shared, opts.max_failures.is_some(), user)?;
    Ok(Box::new(store))
}

/// What `secret_command=` said about a user.
pub enum CommandSecret {
    /// A secret file (checked: scratch codes and HOTP only with a shared store).
    File(GaFile),
    /// The documented "not enrolled" answer.
    NotEnrolled,
}

/// Runs the secret command for the canonical user name. `Ok(None)`: no command is
/// configured. `Err`: why its answer cannot be used (the login is denied).
pub fn secret_from_command(
    opts: &ModuleOptions,
    canonical: &str,
) -> Result<Option<CommandSecret>, String> {
    let Some(cmd) = opts.fleet.secret_command() else {
        return Ok(None);
    };
    let out = run_secret_command(
        Path::new(&cmd.path),
        &cmd.user,
        canonical,
        Duration::from_millis(cmd.timeout_ms),
    )
    .map_err(|e| e.to_string())?;
    match out {
        SecretOutput::NotEnrolled => Ok(Some(CommandSecret::NotEnrolled)),
        SecretOutput::Secret(bytes) => {
            let file = GaFile::parse(&bytes)
                .map_err(|e| format!("secret command output is not a secret file: {e}"))?;
            let shared = opts.state.is_shared();
            check_command_file(&file, shared).map_err(|e| e.to_string())?;
            Ok(Some(CommandSecret::File(file)))
        }
    }
}
