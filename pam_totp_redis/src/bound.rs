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
//! `run_id` and a new replication ID (`master_replid`), and a replica promoted to
//! primary (Sentinel, `REPLICAOF NO ONE`) takes a new replication ID without a restart.
//! The store record's hash gets a third field, `i`, naming the instance (both IDs, from
//! the open's `INFO`) on which its floor was last known good. Read on another instance
//! the record is stale: the module is told it is absent and recreates it complete since
//! now, as after a lost data set. The plugin turns that create into a compare-and-set on
//! the stale record's own version, so of several hosts only one replaces it, and keeps
//! the stale record's store key (R35): records that survived keep their HOTP counters
//! and used scratch codes, which a new key would orphan on every restart. Binding the
//! new record is a plain `HSET` of `i` after the compare-and-set: a host that dies
//! between the two leaves a record that reads as stale once more, and its next
//! recreation only raises the floor again.
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

/// The server instance an `INFO` reply describes: its replication ID and its run ID,
/// each as given when it is a plausible one (ASCII letters and digits, at most
/// [`MAX_ID_LEN`]). Either alone still tells instances apart (a server before Redis 4
/// has no replication ID); `None` when `INFO` names neither.
pub fn instance_of(replid: Option<&str>, run_id: Option<&str>) -> Option<String> {
    fn usable(id: Option<&str>) -> Option<&str> {
        id.filter(|v| {
            !v.is_empty() && v.len() <= MAX_ID_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    }
    match (usable(replid), usable(run_id)) {
        (None, None) => None,
        (r, i) => Some(format!("{}/{}", r.unwrap_or(""), i.unwrap_or(""))),
    }
}

/// What a stored record (`record` and `version`, version 0 when none) bound to `bound_to`
/// (the `i` field, if any) is on `instance`.
pub fn classify(
    record: Vec<u8>,
    version: u64,
    bound_to: Option<&[u8]>,
    instance: &str,
) -> StoreRecord {
    if version == 0 {
        return StoreRecord::Absent;
    }
    match bound_to {
        None => StoreRecord::Unbound(record, version),
        Some(i) if i == instance.as_bytes() => StoreRecord::Current(record, version),
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

    #[test]
    fn the_instance_is_the_replication_id_and_the_run_id() {
        assert_eq!(
            instance_of(Some(REPLID), Some(RUN_ID)).as_deref(),
            Some(format!("{REPLID}/{RUN_ID}").as_str())
        );
        // Either alone still names an instance; a value that is no ID is left out.
        assert_eq!(
            instance_of(None, Some(RUN_ID)).as_deref(),
            Some(format!("/{RUN_ID}").as_str())
        );
        assert_eq!(
            instance_of(Some("x y"), Some(RUN_ID)),
            instance_of(None, Some(RUN_ID))
        );
        assert_eq!(
            instance_of(Some(REPLID), Some(&"a".repeat(MAX_ID_LEN + 1))).as_deref(),
            Some(format!("{REPLID}/").as_str())
        );
        assert_eq!(instance_of(None, None), None);
        assert_eq!(instance_of(Some(""), Some("\u{e9}")), None);
        // A restart changes the run ID, a promotion the replication ID: either is
        // another instance.
        let here = instance_of(Some(REPLID), Some(RUN_ID));
        assert_ne!(
            here,
            instance_of(Some(REPLID), Some(&RUN_ID.replace('2', "3")))
        );
        assert_ne!(
            here,
            instance_of(Some(&REPLID.replace('8', "9")), Some(RUN_ID))
        );
    }

    #[test]
    fn a_record_of_another_instance_is_stale_and_an_unbound_one_is_kept() {
        let here = "r/a";
        assert_eq!(classify(Vec::new(), 0, None, here), StoreRecord::Absent);
        // A hash holding only a binding has no record.
        assert_eq!(
            classify(Vec::new(), 0, Some(b"r/a"), here),
            StoreRecord::Absent
        );
        assert_eq!(
            classify(b"rec".to_vec(), 4, Some(b"r/a"), here),
            StoreRecord::Current(b"rec".to_vec(), 4)
        );
        for other in [&b"r/b"[..], b"q/a", b"", b"r/a "] {
            assert_eq!(
                classify(b"rec".to_vec(), 4, Some(other), here),
                StoreRecord::Stale(b"rec".to_vec(), 4),
                "{other:?}"
            );
        }
        assert_eq!(
            classify(b"rec".to_vec(), 4, None, here),
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
