//! The store record (`<prefix>store`) bound to the server instance that holds it (R34).
//!
//! Redis can roll back part of its data set while the store record survives: a server
//! killed between two RDB snapshots reloads the last `dump.rdb`, which holds the store
//! record and older user records; a failover promotes a replica that missed the last
//! writes. Both keep the store record, so the module's "a missing store record means a
//! lost data set" alone does not catch them, and a code used since the snapshot would be
//! accepted again on another host.
//!
//! Both come with a new server instance: a started `redis-server` process has a new
//! `run_id`, and a primary that was a replica since (a failover away and back without a
//! restart, its unreplicated writes dropped) has a new replication ID (`master_replid`)
//! with the one before it as `master_replid2`. The store record's hash gets a third
//! field, `i`, naming the instance (both IDs, from the open's `INFO`) on which its floor
//! was last known good. Read on another instance the record is stale: the module is
//! told it is absent and recreates it complete since now, as after a lost data set. The
//! plugin turns that create into a compare-and-set on the stale record's own version,
//! so of several hosts one replaces it, and keeps the stale record's store key (R35):
//! records that survived keep their HOTP counters and used scratch codes, which a new
//! key would orphan on every restart. Binding the new record is a plain `HSET` of `i`
//! after the compare-and-set (the hosts' ACL has no command that would do both at once
//! but the compare-and-set function, whose body a new field would change): a host that
//! finds the record replaced but not yet bound replaces it again, with a floor no lower
//! and the same key, and a host that dies between the two leaves a record that the next
//! login finds stale, which only raises the floor again.
//!
//! The field lives beside `v` and `r`, not inside `r`: hosts of the previous release
//! read `v` and `r` only and keep working during a rolling upgrade. A record without
//! `i` (written by them) is bound to the instance of its first read here.
//!
//! A restart that lost nothing (`appendfsync always`) reads as stale too: users then
//! wait for their next code, which no `INFO` field lets the plugin avoid (it does not
//! show the fsync policy).

use totp_core::state::StoreContext;

use crate::backend::Failure;

/// The longest ID of each kind taken from `INFO` (both are 40 hex digits today).
const MAX_ID_LEN: usize = 64;

/// What the store record is on the instance that served it.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreRecord {
    /// None stored.
    Absent,
    /// Bound to this instance: the module's record and its version.
    Current(Vec<u8>, u64),
    /// Bound to another instance (a restart or a failover since): absent to the module;
    /// its record (whose store key a recreation keeps) and the version a recreation
    /// must replace.
    Stale(Vec<u8>, u64),
    /// Written before records were bound (the previous release), or by a host that died
    /// before binding it: the module's record and its version, to be bound here.
    Unbound(Vec<u8>, u64),
}

/// The server instance an `INFO` reply describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `master_replid` and `run_id`, each as given when it is a plausible one (ASCII
    /// letters and digits, at most [`MAX_ID_LEN`]), empty otherwise.
    replid: String,
    run_id: String,
    /// `master_replid2` is all zeros: the replication ID has no predecessor since the
    /// process started, so it was not a replica in between (a promotion keeps the ID
    /// before it there; a new replication backlog, which a primary starts when its first
    /// replica attaches, clears it).
    no_history: bool,
}

impl Instance {
    /// What the `i` field holds.
    pub fn binding(&self) -> String {
        format!("{}/{}", self.replid, self.run_id)
    }

    /// Whether a store record bound to `bound` (its `i` field) was bound on this
    /// instance: the same process (run ID), and the same replication history. A new
    /// replication ID with no predecessor is the same data set (a primary that started a
    /// replication backlog: raising the floor for it would make users wait a code each
    /// time a first replica attaches); one with a predecessor may be a primary that was
    /// a replica since, whose data set was replaced by another primary's.
    pub fn holds(&self, bound: &[u8]) -> bool {
        let Some((replid, run_id)) = std::str::from_utf8(bound)
            .ok()
            .and_then(|b| b.rsplit_once('/'))
        else {
            return false;
        };
        if run_id != self.run_id {
            return false;
        }
        replid == self.replid || (self.no_history && !self.replid.is_empty())
    }
}

/// The instance an `INFO` reply describes from its `master_replid`, `master_replid2` and
/// `run_id`. Either ID alone still tells processes apart (a server before Redis 4 has no
/// replication ID); `None` when `INFO` names neither.
pub fn instance_of(
    replid: Option<&str>,
    replid2: Option<&str>,
    run_id: Option<&str>,
) -> Option<Instance> {
    fn usable(id: Option<&str>) -> &str {
        id.filter(|v| {
            !v.is_empty() && v.len() <= MAX_ID_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .unwrap_or("")
    }
    let (replid, run_id) = (usable(replid), usable(run_id));
    if replid.is_empty() && run_id.is_empty() {
        return None;
    }
    Some(Instance {
        replid: replid.to_owned(),
        run_id: run_id.to_owned(),
        no_history: replid2.is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b == b'0')),
    })
}

/// What a stored record (`record` and `version`, version 0 when none) bound to `bound_to`
/// (the `i` field, if any) is on `instance`.
pub fn classify(
    record: Vec<u8>,
    version: u64,
    bound_to: Option<&[u8]>,
    instance: &Instance,
) -> StoreRecord {
    if version == 0 {
        return StoreRecord::Absent;
    }
    match bound_to {
        None => StoreRecord::Unbound(record, version),
        Some(i) if instance.holds(i) => StoreRecord::Current(record, version),
        Some(_) => StoreRecord::Stale(record, version),
    }
}

/// The record that replaces a stale one: the module's new record's floor, at least the
/// stale record's and at least the server's `now` (a create "complete since the
/// beginning", `totp-state init --never-used`, is wrong for a store that holds a record
/// of another instance: it was used), with the stale record's store key.
pub fn replacement(new: &[u8], stale: &[u8], now: u64) -> Result<Vec<u8>, Failure> {
    let new = StoreContext::decode(new)
        .map_err(|_| Failure::invalid("the store record to write is not one"))?;
    let old = StoreContext::decode(stale).map_err(|_| {
        Failure::corrupt(
            "the store record of an earlier server instance is damaged; if the data set was \
             lost, delete it (the next login recreates it)",
        )
    })?;
    let floor = if new.complete_since == 0 {
        now
    } else {
        new.complete_since
    };
    let merged = StoreContext {
        key: old.key,
        complete_since: floor.max(old.complete_since),
    };
    Ok(merged.encode().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use totp_core::state::{STORE_KEY_LEN, StoreKey};

    const REPLID: &str = "8f2a4c1e9b7d3a6f0c5e2b8d4a1f7c3e9b6d0a2f";
    const RUN_ID: &str = "2b1c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c";

    const ZEROS: &str = "0000000000000000000000000000000000000000";

    fn at(replid: &str, replid2: &str, run_id: &str) -> Instance {
        instance_of(Some(replid), Some(replid2), Some(run_id)).expect("an instance")
    }

    #[test]
    fn the_instance_is_the_replication_id_and_the_run_id() {
        let here = at(REPLID, ZEROS, RUN_ID);
        assert_eq!(here.binding(), format!("{REPLID}/{RUN_ID}"));
        assert!(here.holds(here.binding().as_bytes()));
        // Either alone still names an instance; a value that is no ID is left out.
        let run_only = instance_of(None, None, Some(RUN_ID)).expect("run ID");
        assert_eq!(run_only.binding(), format!("/{RUN_ID}"));
        assert_eq!(
            instance_of(Some("x y"), None, Some(RUN_ID)),
            Some(run_only.clone())
        );
        let long = "a".repeat(MAX_ID_LEN + 1);
        let replid_only = instance_of(Some(REPLID), None, Some(&long)).expect("replid");
        assert_eq!(replid_only.binding(), format!("{REPLID}/"));
        assert_eq!(instance_of(None, Some(ZEROS), None), None);
        assert_eq!(instance_of(Some(""), None, Some("\u{e9}")), None);
        // A restart (another run ID) is another instance, whatever the replication ID.
        let other_run = RUN_ID.replace('2', "3");
        assert!(!at(REPLID, ZEROS, &other_run).holds(here.binding().as_bytes()));
        // The same process with a new replication ID: a new backlog (no predecessor) is
        // the same data set; a promotion (the ID before it kept) may not be.
        let new_replid = REPLID.replace('8', "9");
        assert!(at(&new_replid, ZEROS, RUN_ID).holds(here.binding().as_bytes()));
        assert!(!at(&new_replid, REPLID, RUN_ID).holds(here.binding().as_bytes()));
        assert!(at(REPLID, REPLID, RUN_ID).holds(here.binding().as_bytes()));
        // Without `master_replid2` (a server before Redis 4) nothing is assumed.
        let unknown = instance_of(Some(&new_replid), None, Some(RUN_ID)).expect("ids");
        assert!(!unknown.holds(here.binding().as_bytes()));
        // Malformed bindings are another instance's.
        for bad in [&b""[..], b"no-slash", b"\xff/x"] {
            assert!(!here.holds(bad), "{bad:?}");
        }
        assert!(!run_only.holds(format!("/{other_run}").as_bytes()));
    }

    #[test]
    fn a_record_of_another_instance_is_stale_and_an_unbound_one_is_kept() {
        let here = at("r", "q", "a");
        assert_eq!(classify(Vec::new(), 0, None, &here), StoreRecord::Absent);
        // A hash holding only a binding has no record.
        assert_eq!(
            classify(Vec::new(), 0, Some(b"r/a"), &here),
            StoreRecord::Absent
        );
        assert_eq!(
            classify(b"rec".to_vec(), 4, Some(b"r/a"), &here),
            StoreRecord::Current(b"rec".to_vec(), 4)
        );
        for other in [&b"r/b"[..], b"q/a", b"", b"r/a "] {
            assert_eq!(
                classify(b"rec".to_vec(), 4, Some(other), &here),
                StoreRecord::Stale(b"rec".to_vec(), 4),
                "{other:?}"
            );
        }
        assert_eq!(
            classify(b"rec".to_vec(), 4, None, &here),
            StoreRecord::Unbound(b"rec".to_vec(), 4)
        );
    }

    fn context(key: u8, since: u64) -> Vec<u8> {
        StoreContext {
            key: StoreKey::new([key; STORE_KEY_LEN]),
            complete_since: since,
        }
        .encode()
        .to_vec()
    }

    #[test]
    fn a_replacement_keeps_the_stale_key_and_never_lowers_the_floor() {
        let got = |new: &[u8], stale: &[u8], now| {
            StoreContext::decode(&replacement(new, stale, now).expect("merged")).expect("decodes")
        };
        let r = got(&context(2, 1_000), &context(1, 10), 990);
        assert_eq!(r.key, StoreKey::new([1; STORE_KEY_LEN]));
        assert_eq!(r.complete_since, 1_000);
        // A stale floor later than the new one (a host whose clock was ahead) stays.
        assert_eq!(
            got(&context(2, 1_000), &context(1, 2_000), 990).complete_since,
            2_000
        );
        // "Never used" is not what a store holding a record is: the server's now.
        assert_eq!(got(&context(2, 0), &context(1, 0), 990).complete_since, 990);
        let e = replacement(&context(2, 1_000), b"PTK1short", 990).expect_err("damaged");
        assert_eq!(e.status, crate::backend::Status::Corrupt);
        assert!(replacement(b"nope", &context(1, 0), 990).is_err());
    }
}
