//! `totp-state ping` and `init`: the store as a whole, for monitoring and for a new
//! fleet's first day.

use std::path::PathBuf;
use std::time::Duration;

use totp_core::fleet::SharedStore;
use totp_core::options::ModuleOptions;
use totp_core::policy::CLOCK_SLACK_SECS;
use totp_core::state::{EARLIEST_CLOCK, Missing, StateStore, StoreError};
use totp_core::utc::format_utc;
use totp_os::remote::{MAX_CLOCK_OFFSET_SECS, RemoteStore, open_configured_admin, open_shared};
use totp_os::state_dir::{DEFAULT_STATE_DIR, StateDir};

use crate::{Fatal, Stop, emit};

/// Exit status of `ping` for a store that answers but cannot be used.
const UNUSABLE: u8 = 1;
/// Exit status of `ping` for a store that does not answer.
const UNREACHABLE: u8 = 2;

/// The local store the options name (`state_dir=`, else the default) and its name in
/// messages.
fn local(opts: &ModuleOptions) -> (StateDir, String) {
    let dir = opts
        .state_dir
        .as_ref()
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
    let shown = format!("state directory {}", dir.display());
    (StateDir::new(dir, Duration::from_secs(5)), shown)
}

/// The shared store the options name (`None` for the local one) and its name in
/// messages.
fn open_remote(
    opts: &ModuleOptions,
    install: bool,
) -> Result<Option<(RemoteStore, String)>, StoreError> {
    let Some(shared) = opts.fleet.shared() else {
        return Ok(None);
    };
    let hard_cap = opts.max_failures.is_some();
    let (url, prefix, mut store) = match &shared {
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
    // A member or sentinel passed over while another served: the admin checking the
    // store is the one to hear of it.
    if let Some(note) = store.take_open_note() {
        eprintln!("totp-state: warning: {note}");
    }
    Ok(Some((
        store,
        format!("shared store {url} (prefix {prefix})"),
    )))
}

fn status_of(e: &StoreError) -> u8 {
    match e {
        // Outside a login nothing decides again: a store record that changed under the
        // write is the store not answering as it must, as before this variant existed.
        StoreError::Unavailable(_) | StoreError::StoreChanged(_) => UNREACHABLE,
        StoreError::Corrupt(_) | StoreError::Refused(_) | StoreError::Clock(_) => UNUSABLE,
    }
}

pub(crate) fn ping(opts: &ModuleOptions) -> Result<(), Stop> {
    let stop = |e: StoreError| Stop::Status(status_of(&e), e.to_string());
    let (mut store, shown): (Box<dyn StateStore>, String) = match open_remote(opts, false) {
        Ok(Some((mut remote, shown))) => {
            // Reading proves less than a login needs: a host ACL without the
            // compare-and-set or a command it runs (or a server without its function
            // library, for an ACL without EVAL), a key pattern or role that only reads,
            // or replicas too few for `redis_wait=`, fails every login at its write.
            let what = if opts.fleet.redis().is_some() {
                format!(
                    "the compare-and-set every login runs (a write of {})",
                    String::from_utf8_lossy(&remote.probe_key())
                )
            } else {
                "the compare-and-set every login runs".to_owned()
            };
            remote
                .probe_write()
                .map_err(|e| Stop::Status(status_of(&e), format!("{shown}: {what}: {e}")))?;
            (Box::new(remote), shown)
        }
        Ok(None) => {
            // Reading the key proves less than a login needs: its write (a read-only
            // mount, a full file system) would fail every login.
            let (mut dir, shown) = local(opts);
            // Said whatever the probe finds: the store works until the next reboot.
            if let Some(w) = totp_os::state_dir::volatile_warning(dir.path()) {
                eprintln!("totp-state: warning: {w}");
            }
            dir.probe_write().map_err(|e| {
                Stop::Status(
                    status_of(&e),
                    format!("{shown}: the write every login makes: {e}"),
                )
            })?;
            (Box::new(dir), shown)
        }
        Err(e) => return Err(stop(e)),
    };
    let found = store.context(Missing::Leave);
    // A member passed over at a call after the open (the probe's write, this read): as
    // the open's, the admin checking the store is the one to hear of it.
    if let Some(note) = store.take_note() {
        eprintln!("totp-state: warning: {note}");
    }
    match found {
        Ok(Some(c)) if c.complete_since == 0 => {
            emit(&format!("ok: {shown}\n"))?;
            Ok(())
        }
        Ok(Some(c)) => {
            let now = crate::now();
            // A floor ahead of this clock by more than the fleet's slack refuses every
            // code until then: the store answers, and no login can succeed.
            if c.complete_since > now.saturating_add(CLOCK_SLACK_SECS) {
                return Err(Stop::Status(
                    UNUSABLE,
                    format!(
                        "{shown} was recreated at {}, {} s after this host's clock, and no code is \
                         accepted before it: a host whose clock was ahead recreated it, or this \
                         clock is behind",
                        format_utc(c.complete_since),
                        c.complete_since - now
                    ),
                ));
            }
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
                 (`totp-state init`, which also reinstalls a lost function library; \
                 `--never-used` only for a store that never served a login), or these \
                 options name \
                 another server, prefix or database than the fleet's hosts use"
            ),
        )),
        Err(e) => Err(Stop::Status(status_of(&e), format!("{shown}: {e}"))),
    }
}

/// The store `init` works on: a shared store stays a [`RemoteStore`], whose server clock
/// `init` compares with this host's before it writes a floor.
enum Opened {
    Remote(RemoteStore),
    Local(StateDir),
}

impl Opened {
    fn store(&mut self) -> &mut dyn StateStore {
        match self {
            Opened::Remote(r) => r,
            Opened::Local(d) => d,
        }
    }
}

pub(crate) fn init(opts: &ModuleOptions, never_used: bool) -> Result<(), Stop> {
    // A shared store gets its function library (the compare-and-set hosts call with
    // FCALL) here, and again on every later `init`, which is how an upgrade installs a
    // new one, and how a store that lost it with its data set gets it back.
    let shared = opts.fleet.redis().is_some();
    let (mut opened, shown) = match open_remote(opts, shared).map_err(|e| Fatal(e.to_string()))? {
        Some((remote, shown)) => (Opened::Remote(remote), shown),
        None => {
            let (dir, shown) = local(opts);
            (Opened::Local(dir), shown)
        }
    };
    let fail = |e: StoreError| Fatal(format!("{shown}: {e}"));
    if opened
        .store()
        .context(Missing::Leave)
        .map_err(fail)?
        .is_some()
    {
        if shared {
            let library = if shared {
                "; its function library is installed"
            } else {
                ""
            };
            emit(&format!("{shown} is already initialised{library}\n"))?;
            return Ok(());
        }
        return Err(Fatal(format!(
            "{shown} already has its store record (an earlier init or a login created it): \
             nothing to do"
        ))
        .into());
    }
    // A floor taken from this host's clock while it is ahead of the server's would make
    // every host refuse every code until then (the server's clock is the fleet's);
    // behind, the server's clock is the floor, as for a login. Refused before anything
    // is written: the admin's host has no better clock than the module's.
    if let Opened::Remote(remote) = &mut opened
        && !never_used
    {
        let server = remote.server_clock().map_err(fail)?;
        let host = crate::now();
        // More than a day apart is the store's own clock fault, named as a login names it.
        if host > server.saturating_add(CLOCK_SLACK_SECS) && host - server <= MAX_CLOCK_OFFSET_SECS
        {
            return Err(Fatal(format!(
                "{shown}: this host's clock says {}, {} s ahead of the server's ({}), more \
                 than {CLOCK_SLACK_SECS} s: a store record complete since this host's clock \
                 would make every host refuse codes until then; nothing was written: set the \
                 wrong clock right, or run `totp-state init` on a host whose clock agrees \
                 with the server's",
                format_utc(host),
                host - server,
                format_utc(server)
            ))
            .into());
        }
    }
    // A store that lost its data set looks like a new one, and an admin who runs init
    // after a loss may not know it lost anything: "since now", as when a login
    // recreates the record, so that every code used before a loss still counts as used
    // (R34). "Since the beginning" only when the admin says the store never served a
    // login; all it saves is one code's wait. The local store keeps no floor in its key
    // record (its floor is the boot time): there init creates the record as a login
    // does, whatever the clock says.
    let local = opts.fleet.shared().is_none();
    let missing = if never_used {
        Missing::Create { complete_since: 0 }
    } else if local {
        Missing::Create {
            complete_since: crate::now(),
        }
    } else {
        Missing::recreate_at(crate::now())
    };
    let Missing::Create { complete_since } = missing else {
        return Err(Fatal(format!(
            "this host's clock says {}, before {}: a store record complete since then would \
             let codes used before the loss be used again; set the clock first",
            format_utc(crate::now()),
            format_utc(EARLIEST_CLOCK)
        ))
        .into());
    };
    // The floor is the later of this host's clock and the server's (R34): what was
    // written is what is reported. Clocks more than a day apart write nothing (a clock
    // fault, as for a login): the admin's host has no better clock than the module's.
    let store = opened.store();
    let written = store.context(missing).map_err(fail)?;
    let note = store.take_recreation().and_then(|r| r.clock_note);
    if never_used {
        emit(&format!("initialised {shown}, as never used\n"))?;
    } else if local {
        emit(&format!("initialised {shown}\n"))?;
    } else {
        let since = written.map_or(complete_since, |c| c.complete_since);
        emit(&format!(
            "recreated the store record of {shown}: codes of steps up to {} count as used\n",
            format_utc(since)
        ))?;
        if let Some(note) = note {
            emit(&format!("WARNING: {note}\n"))?;
        }
    }
    Ok(())
}
