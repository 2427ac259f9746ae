//! The module's side of fleets: the shared store (`state=redis…`, `state=etcd…`) and secrets
//! served by a command (`secret_command=`). See docs/fleet.md.

use totp_core::options::ModuleOptions;
use totp_core::state::{StateStore, StoreError, Uid};
pub use totp_os::command::{CommandSecret, secret_from_command};
use totp_os::remote::open_shared;

/// Connects to the shared store `state=` names (after the plugin's ownership check), for
/// `user` (uid, canonical name) when the login has one: its records are keyed by that
/// name and read in the open's round trip. The error keeps its class: only an
/// unavailable store may be replaced by the local one (`state_fallback=local`).
/// `skipped` receives the plugin's warning about a server of the list it passed over
/// before another served.
pub fn open_remote(
    opts: &ModuleOptions,
    user: Option<(Uid, &str)>,
    skipped: &mut dyn FnMut(&str),
) -> Result<Box<dyn StateStore>, StoreError> {
    let shared = opts
        .fleet
        .shared()
        .ok_or_else(|| StoreError::Refused("a shared state= without a server".to_owned()))?;
    let mut store = open_shared(&shared, opts.max_failures.is_some(), user)?;
    if let Some(note) = store.take_open_note() {
        skipped(&note);
    }
    Ok(Box::new(store))
}
