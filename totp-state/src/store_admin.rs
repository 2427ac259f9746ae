//! `totp-state ping` and `init`: the store as a whole, for monitoring and for a new
//! fleet's first day.

use std::path::PathBuf;
use std::time::Duration;

use totp_core::fleet::SharedStore;
use totp_core::options::ModuleOptions;
use totp_core::state::{Missing, StateStore, StoreError};
use totp_core::utc::format_utc;
use totp_os::remote::{open_configured_admin, open_shared};
use totp_os::state_dir::{DEFAULT_STATE_DIR, StateDir};

use crate::{Fatal, Stop, emit};

/// Exit status of `ping` for a store that answers but cannot be used.
const UNUSABLE: u8 = 1;
/// Exit status of `ping` for a store that does not answer.
const UNREACHABLE: u8 = 2;

/// The store the options name and a name for it in messages; `Err` when it cannot be
/// opened (for a shared store: not reached). `install`: install a Redis store's
/// function library while connecting (etcd has none).
fn open(opts: &ModuleOptions, install: bool) -> Result<(Box<dyn StateStore>, String), StoreError> {
    match opts.fleet.shared() {
        Some(shared) => {
            let hard_cap = opts.max_failures.is_some();
            let (url, prefix, store) = match &shared {
                SharedStore::Redis(r) => (
                    r.endpoint.url(),
                    &r.conn.prefix,
                    open_configured_admin(r, hard_cap, install)?,
                ),
                SharedStore::Etcd(e) => (
                    e.endpoints.url(),
                    &e.conn.prefix,
                    open_shared(&shared, hard_cap, None)?,
                ),
            };
            let shown = format!("shared store {url} (prefix {prefix})");
            Ok((Box::new(store), shown))
        }
        None => {
            let dir = opts
                .state_dir
                .as_ref()
                .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
            let shown = format!("state directory {}", dir.display());
            Ok((Box::new(StateDir::new(dir, Duration::from_secs(5))), shown))
        }
    }
}

fn status_of(e: &StoreError) -> u8 {
    match e {
        StoreError::Unavailable(_) => UNREACHABLE,
        StoreError::Corrupt(_) | StoreError::Refused(_) => UNUSABLE,
    }
}

pub(crate) fn ping(opts: &ModuleOptions) -> Result<(), Stop> {
    let (mut store, shown) =
        open(opts, false).map_err(|e| Stop::Status(status_of(&e), e.to_string()))?;
    match store.context(Missing::Leave) {
        Ok(Some(c)) if c.complete_since == 0 => {
            emit(&format!("ok: {shown}\n"))?;
            Ok(())
        }
        Ok(Some(c)) => {
            emit(&format!(
                "ok: {shown} (recreated at {}: codes of earlier steps count as used)\n",
                format_utc(c.complete_since)
            ))?;
            Ok(())
        }
        Ok(None) => Err(Stop::Status(
            UNUSABLE,
            format!(
                "{shown} has no store record: it was never used, or its data set was lost \
                 (the next login recreates it; `totp-state init` for a new store)"
            ),
        )),
        Err(e) => Err(Stop::Status(status_of(&e), format!("{shown}: {e}"))),
    }
}

pub(crate) fn init(opts: &ModuleOptions) -> Result<(), Stop> {
    // A shared store gets its function library (the compare-and-set hosts call with
    // FCALL) here, and again on every later `init`, which is how an upgrade installs a
    // new one.
    let shared = opts.fleet.redis().is_some();
    let (mut store, shown) = open(opts, shared).map_err(|e| Fatal(e.to_string()))?;
    let fail = |e: StoreError| Fatal(format!("{shown}: {e}"));
    if store.context(Missing::Leave).map_err(fail)?.is_some() {
        if shared {
            emit(&format!(
                "{shown} is already initialised; its function library is installed\n"
            ))?;
            return Ok(());
        }
        return Err(Fatal(format!(
            "{shown} is already initialised (init is for a store never used before)"
        ))
        .into());
    }
    store
        .context(Missing::Create { complete_since: 0 })
        .map_err(fail)?;
    emit(&format!("initialised {shown}\n"))?;
    Ok(())
}
