//! The etcd backend of pam_totp, as a plugin the module `dlopen`s only when a pam.d line
//! says `state=etcd://…` or `etcds://…`.
//!
//! etcd commits every acknowledged write to a majority of its members (Raft), so a
//! compare-and-set on it stays exactly once when any minority of members dies. The
//! plugin talks to etcd 3.4's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/kv/deleterange`, base64 keys and values) over a synchronous HTTP client
//! (`client.rs`): no runtime and no thread stays in the host process.
//!
//! - `open`: the keys the module will read first (`PluginConfig::prefetch`: the store
//!   record, the user's records) in one linearizable read-only transaction, one range
//!   per key, which also proves a majority serves; each `get` of such a key is answered
//!   from it once.
//! - `get`: a linearizable range read (the gateway's default: `serializable` is never
//!   set); the version is the key's `mod_revision` (0: absent).
//! - `cas`: one transaction comparing the key's `mod_revision` with the version the
//!   module read (0 matches an absent key), and the store record's with the one the
//!   module read (R34), putting the record only when both still hold. A conflict is
//!   reported to the module, which reads and decides again; a store record changed
//!   since (the data set lost or restored meanwhile) is reported as
//!   `Status::StoreChanged`, and the module reads the store record again too.
//! - `del`: a delete range of exactly the key.
//!
//! TTLs are not used (etcd would need a lease per record): records stay until reset,
//! which is the stricter choice. `durable` needs nothing more: every acknowledged write
//! is already on a majority.
//!
//! The store record (`PluginConfig::store_key`, `<prefix>store`) is bound to the cluster it was
//! written on: its value is `PTE1` + the cluster ID (from the reply header) + the
//! module's record. A cluster restored from a snapshot with a new cluster ID serves an
//! old store record whose replay marks miss every code used after the snapshot; read
//! there, the record is reported absent, so the module recreates it complete since now
//! (R34), and the plugin turns that create ("expected version 0") into a compare-and-set
//! on the stale record's real `mod_revision`, so racing hosts still agree on one winner.
//! etcd derives the cluster ID from the peer URLs and the cluster token: a restore that
//! keeps both keeps the ID and is not detected (docs/fleet.md: delete the prefix).

mod client;
mod tls;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use pam_totp_plugin_abi::{Backend, Failure, Status};
use serde_json::{Value, json};
use totp_core::fleet::PluginConfig;
use totp_core::state::MAX_ENCODED_LEN;

use client::{Client, Retry, number};

/// Longest key the module builds (prefix ≤ 64 bytes + `user:` + a name of ≤ 256 bytes),
/// with room to spare: the bound on a prefetch key.
const MAX_KEY_LEN: usize = totp_core::fleet::MAX_PREFETCH_KEY_LEN;

/// A record and its `mod_revision`, or why it could not be read.
type Read = Result<(Vec<u8>, u64), Failure>;

/// Marks a store record bound to a cluster (the module's own records start `PTK1`).
const BOUND_MAGIC: &[u8; 4] = b"PTE1";
/// The magic and the cluster ID in front of the module's store record.
const BOUND_HEADER: usize = BOUND_MAGIC.len() + 8;

/// The store record as etcd holds it: bound to `cluster`.
fn bind(cluster: u64, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BOUND_HEADER + record.len());
    out.extend_from_slice(BOUND_MAGIC);
    out.extend_from_slice(&cluster.to_be_bytes());
    out.extend_from_slice(record);
    out
}

/// What a stored store record is on the cluster `cluster` that served it.
#[derive(Debug, PartialEq, Eq)]
enum StoreRecord {
    /// None stored.
    Absent,
    /// Written on this cluster: the module's record and its `mod_revision`.
    Current(Vec<u8>, u64),
    /// Written on another cluster (a restore from a snapshot): absent to the module;
    /// its `mod_revision` is what a create must replace.
    Stale(u64),
    /// Written before records were bound (an earlier release): the module's record as
    /// it is and its `mod_revision`, to be bound to this cluster.
    Unbound(Vec<u8>, u64),
}

fn classify(value: Vec<u8>, revision: u64, cluster: u64) -> Result<StoreRecord, Failure> {
    if revision == 0 {
        return Ok(StoreRecord::Absent);
    }
    let Some(rest) = value.strip_prefix(BOUND_MAGIC) else {
        // Read with room for the binding header: without one, the record alone must
        // fit (binding it must not make it unreadable).
        if value.len() > MAX_ENCODED_LEN {
            return Err(Failure::corrupt("stored record too large"));
        }
        return Ok(StoreRecord::Unbound(value, revision));
    };
    let (id, record) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| Failure::corrupt("bound store record too short"))?;
    if record.is_empty() {
        return Err(Failure::corrupt("bound store record too short"));
    }
    if u64::from_be_bytes(*id) != cluster {
        return Ok(StoreRecord::Stale(revision));
    }
    Ok(StoreRecord::Current(record.to_vec(), revision))
}

/// The cluster ID every gateway reply carries in its header. Needed wherever the store
/// record is read or written: without it a restored cluster could not be told apart.
fn cluster_of(reply: &Value) -> Result<u64, Failure> {
    reply
        .get("header")
        .and_then(|h| h.get("cluster_id"))
        .and_then(number)
        .filter(|&c| c != 0)
        .ok_or_else(|| Failure::corrupt("etcd reply header has no cluster ID"))
}

/// The store record's `mod_revision` (0: absent) from the failure branch of a user
/// record's transaction, one keys-only range of the store key.
fn store_revision_after(reply: &Value) -> Result<u64, Failure> {
    let range = reply
        .get("responses")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("response_range"))
        .ok_or_else(|| Failure::corrupt("txn reply: no read of the store record"))?;
    match range.get("kvs") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Array(kvs)) => match kvs.as_slice() {
            [] => Ok(0),
            [kv] => kv
                .get("mod_revision")
                .and_then(number)
                .filter(|&r| r > 0)
                .ok_or_else(|| Failure::corrupt("store record has no modification revision")),
            _ => Err(Failure::corrupt("range reply: more than one key")),
        },
        Some(_) => Err(Failure::corrupt("range reply: kvs is not a list")),
    }
}

/// Whether a txn reply says its comparisons held (proto3 JSON leaves `false` out).
fn succeeded(reply: &Value) -> Result<bool, Failure> {
    match reply.get("succeeded") {
        Some(Value::Bool(b)) => Ok(*b),
        None => Ok(false),
        Some(_) => Err(Failure::corrupt("txn reply: succeeded is not a boolean")),
    }
}

/// What a read-only transaction of one range per key says about each key: the record and
/// its `mod_revision` (the store record `store_key` as the module sees it, see
/// [`classify`]), or why it is unusable. A damaged record is the store's content, not an
/// outage: it is kept for the key, and reported where the module reads it. A store record
/// still unbound (an earlier release's) is left out, for its first `get` to bind.
fn parse_reads(
    reply: &Value,
    keys: Vec<Vec<u8>>,
    store_key: Option<&[u8]>,
) -> Result<Vec<(Vec<u8>, Read)>, Failure> {
    let cluster = cluster_of(reply)?;
    if !succeeded(reply)? {
        return Err(Failure::corrupt("txn without comparisons did not succeed"));
    }
    let responses = match reply.get("responses") {
        Some(Value::Array(r)) if r.len() == keys.len() => r,
        _ => {
            return Err(Failure::corrupt(
                "txn reply: not one response per range requested",
            ));
        }
    };
    let mut out = Vec::with_capacity(keys.len());
    for (key, response) in keys.into_iter().zip(responses) {
        let Some(range) = response.get("response_range") else {
            return Err(Failure::corrupt("txn reply: a response is not a range"));
        };
        let read = if store_key == Some(key.as_slice()) {
            let bound = parse_range(range, &key, MAX_ENCODED_LEN + BOUND_HEADER)
                .and_then(|(v, r)| classify(v, r, cluster));
            match bound {
                Ok(StoreRecord::Absent | StoreRecord::Stale(_)) => Ok((Vec::new(), 0)),
                Ok(StoreRecord::Current(v, r)) => Ok((v, r)),
                Ok(StoreRecord::Unbound(..)) => continue,
                Err(f) => Err(f),
            }
        } else {
            parse_range(range, &key, MAX_ENCODED_LEN)
        };
        out.push((key, read));
    }
    Ok(out)
}

/// One client of the cluster behind a plugin handle.
pub struct Etcd {
    client: Client,
    /// The records read while opening, each until it is asked for (once) or anything is
    /// written.
    prefetched: Vec<(Vec<u8>, Read)>,
    /// `<prefix>store`: the one key bound to its cluster.
    store_key: Option<Vec<u8>>,
    /// The `mod_revision` of the store record as the module last read or wrote it,
    /// which every write of a user's record compares too (R34); `None` until the
    /// module has one.
    store_seen: Option<u64>,
}

/// Why a write is refused when the store record changed while the login decided
/// ([`Status::StoreChanged`]).
const STORE_CHANGED: &str = "the store record changed since this login read it (the data \
     set was lost or restored, or the record was recreated): nothing was written";

/// The `mod_revision` a txn reply's header gives the put it made (its new version).
fn put_revision(reply: &Value) -> Result<u64, Failure> {
    reply
        .get("header")
        .and_then(|h| h.get("revision"))
        .and_then(number)
        .filter(|&r| r > 0)
        .ok_or_else(|| Failure::corrupt("txn reply header has no revision"))
}

fn check_key(key: &[u8]) -> Result<(), Failure> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Failure::invalid("bad key length"));
    }
    Ok(())
}

/// The record and its `mod_revision` from a range reply; values up to `max` bytes.
fn parse_range(reply: &Value, key: &[u8], max: usize) -> Result<(Vec<u8>, u64), Failure> {
    let kvs = match reply.get("kvs") {
        // proto3 JSON leaves empty lists out: no key.
        None | Some(Value::Null) => return Ok((Vec::new(), 0)),
        Some(Value::Array(kvs)) => kvs,
        Some(_) => return Err(Failure::corrupt("range reply: kvs is not a list")),
    };
    let [kv] = kvs.as_slice() else {
        if kvs.is_empty() {
            return Ok((Vec::new(), 0));
        }
        return Err(Failure::corrupt("range reply: more than one key"));
    };
    let stored_key = kv
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| B64.decode(k).ok());
    if stored_key.as_deref() != Some(key) {
        return Err(Failure::corrupt("range reply names another key"));
    }
    let revision = kv
        .get("mod_revision")
        .and_then(number)
        .filter(|&r| r > 0)
        .ok_or_else(|| Failure::corrupt("stored record has no modification revision"))?;
    let value = match kv.get("value") {
        // An empty value is left out too; it is not a record of ours.
        None => Vec::new(),
        Some(Value::String(v)) => {
            // Checked before decoding: base64 grows by a third.
            if v.len() > (max / 3 + 1) * 4 {
                return Err(Failure::corrupt("stored record too large"));
            }
            B64.decode(v)
                .map_err(|_| Failure::corrupt("stored value is not base64"))?
        }
        Some(_) => return Err(Failure::corrupt("stored value is not a string")),
    };
    if value.is_empty() || value.len() > max {
        return Err(Failure::corrupt("stored record is empty or too large"));
    }
    Ok((value, revision))
}

impl Etcd {
    fn is_store_key(&self, key: &[u8]) -> bool {
        self.store_key.as_deref() == Some(key)
    }

    /// A linearizable read of one key: the record and its `mod_revision`.
    fn read(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        check_key(key)?;
        if self.is_store_key(key) {
            return self.read_store(key);
        }
        let reply = self.client.call(
            "/v3/kv/range",
            &json!({ "key": B64.encode(key) }),
            Retry::Idempotent,
        )?;
        parse_range(&reply, key, MAX_ENCODED_LEN)
    }

    /// Every key of `keys` in one request: a transaction without comparisons whose
    /// `success` branch is one range per key. A read-only transaction is served
    /// linearizably (the gateway never sets `serializable` here), like a single range,
    /// and costs one request instead of one per key. A store record found unbound (an
    /// earlier release's) is left out: its first `get` binds it.
    fn read_all(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<(Vec<u8>, Read)>, Failure> {
        let ranges: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "request_range": { "key": B64.encode(k) } }))
            .collect();
        let reply = self.client.call(
            "/v3/kv/txn",
            &json!({ "success": ranges }),
            Retry::Idempotent,
        )?;
        parse_reads(&reply, keys, self.store_key.as_deref())
    }

    /// The store record and the cluster that served it.
    fn read_bound(&mut self, key: &[u8]) -> Result<(StoreRecord, u64), Failure> {
        let reply = self.client.call(
            "/v3/kv/range",
            &json!({ "key": B64.encode(key) }),
            Retry::Idempotent,
        )?;
        let cluster = cluster_of(&reply)?;
        let (value, revision) = parse_range(&reply, key, MAX_ENCODED_LEN + BOUND_HEADER)?;
        Ok((classify(value, revision, cluster)?, cluster))
    }

    /// Puts `value` under `key` if its `mod_revision` is still `revision` (0: absent),
    /// in one transaction: whether it was put, and the reply (its header's revision is
    /// the new version).
    fn put_if_revision(
        &mut self,
        key: &[u8],
        revision: u64,
        value: &[u8],
    ) -> Result<(bool, Value), Failure> {
        let k = B64.encode(key);
        let body = json!({
            "compare": [{
                "key": k,
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": revision.to_string(),
            }],
            "success": [{ "request_put": { "key": k, "value": B64.encode(value) } }],
        });
        let reply = self.client.call("/v3/kv/txn", &body, Retry::NotDelivered)?;
        Ok((succeeded(&reply)?, reply))
    }

    /// Puts a user's record if its `mod_revision` is still `expected` and, once the
    /// module has read the store record, the store record's is still the one read: a
    /// data set lost or restored while the login decided (the store record gone or
    /// recreated) writes nothing and is reported as [`Status::StoreChanged`]: the
    /// module decided with that record's floor and reads it again before it decides
    /// again (R34). A transaction that fails reads the store record back, which tells
    /// the two comparisons apart.
    fn put_record(&mut self, key: &[u8], expected: u64, record: &[u8]) -> Result<Status, Failure> {
        let k = B64.encode(key);
        let mut compare = vec![json!({
            "key": k,
            "target": "MOD",
            "result": "EQUAL",
            "mod_revision": expected.to_string(),
        })];
        let mut failure = Vec::new();
        let store = self.store_seen.zip(self.store_key.clone());
        if let Some((revision, store_key)) = &store {
            let s = B64.encode(store_key);
            compare.push(json!({
                "key": s,
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": revision.to_string(),
            }));
            failure.push(json!({ "request_range": { "key": s, "keys_only": true } }));
        }
        let body = json!({
            "compare": compare,
            "success": [{ "request_put": { "key": k, "value": B64.encode(record) } }],
            "failure": failure,
        });
        let reply = self.client.call("/v3/kv/txn", &body, Retry::NotDelivered)?;
        if succeeded(&reply)? {
            return Ok(Status::Ok);
        }
        let Some((revision, _)) = store else {
            return Ok(Status::Conflict);
        };
        if store_revision_after(&reply)? == revision {
            return Ok(Status::Conflict);
        }
        self.store_seen = None;
        Err(Failure::new(Status::StoreChanged, STORE_CHANGED))
    }

    /// The store record as the module sees it: one written on another cluster is absent
    /// (the module then recreates it at now, R34). One from an earlier release is bound
    /// to this cluster first (once per store), so a later restore is caught too.
    fn read_store(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        // Two rounds: a bind that lost a race reads again; bounded either way.
        for _ in 0..2 {
            let (record, cluster) = self.read_bound(key)?;
            let (value, revision) = match record {
                StoreRecord::Absent | StoreRecord::Stale(_) => return Ok((Vec::new(), 0)),
                StoreRecord::Current(v, r) => return Ok((v, r)),
                StoreRecord::Unbound(v, r) => (v, r),
            };
            let (put, reply) = self.put_if_revision(key, revision, &bind(cluster, &value))?;
            if put {
                // The put's revision is the reply's: the version the module compares.
                return Ok((value, put_revision(&reply)?));
            }
        }
        Err(Failure::new(
            Status::Unavailable,
            "the etcd store record kept changing while it was bound to its cluster".to_owned(),
        ))
    }

    /// A compare-and-set of the store record. A create ("expected 0") also replaces a
    /// record written on another cluster, which the module was told is absent: on its
    /// real `mod_revision`, so of two hosts recreating it only one wins.
    fn cas_store(&mut self, key: &[u8], expected: u64, record: &[u8]) -> Result<Status, Failure> {
        let mut compare = expected;
        // Two rounds: the create, then the replacement of a stale record.
        for _ in 0..2 {
            let (record_now, cluster) = self.read_bound(key)?;
            if expected == 0 {
                compare = match record_now {
                    StoreRecord::Absent => 0,
                    StoreRecord::Stale(r) => r,
                    // Someone else created or bound it: the module reads again.
                    StoreRecord::Current(..) | StoreRecord::Unbound(..) => {
                        return Ok(Status::Conflict);
                    }
                };
            }
            let (put, reply) = self.put_if_revision(key, compare, &bind(cluster, record))?;
            if put {
                self.store_seen = Some(put_revision(&reply)?);
                return Ok(Status::Ok);
            }
            if expected != 0 {
                return Ok(Status::Conflict);
            }
        }
        Ok(Status::Conflict)
    }
}

impl Backend for Etcd {
    fn open(config: &[u8]) -> Result<Self, Failure> {
        let mut config = PluginConfig::decode(config).map_err(Failure::invalid)?;
        let credentials = match (config.username.take(), config.password.take()) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, Some(_)) => {
                return Err(Failure::invalid(
                    "etcd needs a username= line in the credentials file",
                ));
            }
            _ => None,
        };
        let client_cert = match (&config.client_cert, &config.client_key) {
            (Some(c), Some(k)) => Some((c.as_slice(), k.as_slice())),
            (None, None) => None,
            _ => return Err(Failure::invalid("a client certificate needs its key")),
        };
        let mut client = Client::new(
            &config.url,
            config.ca_pem.as_deref(),
            client_cert,
            credentials,
            Duration::from_millis(config.connect_timeout_ms.max(1)),
            Duration::from_millis(config.command_timeout_ms.max(1)),
        )?;
        let keys: Vec<Vec<u8>> = std::mem::take(&mut config.prefetch)
            .into_iter()
            .filter(|k| check_key(k).is_ok())
            .collect();
        client.connect(keys.is_empty())?;
        let mut etcd = Self {
            client,
            prefetched: Vec::new(),
            store_key: config.store_key.take(),
            store_seen: None,
        };
        // A linearizable read proves that a majority serves this login before the module
        // relies on the store (`state_fallback=local` acts on a failed open), and these
        // are the module's first reads anyway.
        if !keys.is_empty() {
            etcd.prefetched = match etcd.read_all(keys) {
                Ok(read) => read,
                // Answered, but not usably as a whole (a user's record too large for
                // the reply's cap fails the one transaction that reads every key):
                // each key is read on its own when asked, so the failure is reported
                // for the record at fault, as the user's record unusable, not as the
                // whole store's. An outage or a refusal still fails the open.
                Err(f) if f.status == Status::Corrupt => Vec::new(),
                Err(f) => return Err(f),
            };
        }
        Ok(etcd)
    }

    fn get(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        let read = match self
            .prefetched
            .iter()
            .position(|(k, _)| k.as_slice() == key)
        {
            Some(i) => self.prefetched.swap_remove(i).1,
            None => self.read(key),
        };
        if self.is_store_key(key) {
            self.store_seen = match &read {
                Ok((_, revision)) if *revision != 0 => Some(*revision),
                _ => None,
            };
        }
        read
    }

    fn cas(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        _ttl_secs: u64,
        _durable: bool,
    ) -> Result<Status, Failure> {
        check_key(key)?;
        // Whatever was read while opening may be stale after any write.
        self.prefetched.clear();
        if record.is_empty() || record.len() > MAX_ENCODED_LEN {
            return Err(Failure::invalid("bad record length"));
        }
        if self.is_store_key(key) {
            // Known again only once written here; the module reads it again otherwise.
            self.store_seen = None;
            return self.cas_store(key, expected, record);
        }
        self.put_record(key, expected, record)
    }

    /// The cluster has no clock of its own in its replies' bodies; the gateway's `Date`
    /// header is the member's, to the second, which is finer than a TOTP step. The module
    /// asks only after it read the store record, so a reply is at hand; otherwise one
    /// read of the store record brings one.
    fn server_time(&mut self) -> Result<u64, Failure> {
        if let Some(t) = self.client.server_time() {
            return Ok(t);
        }
        if let Some(key) = self.store_key.clone() {
            self.read_bound(&key)?;
        }
        self.client
            .server_time()
            .ok_or_else(|| Failure::corrupt("the etcd gateway's replies carry no Date header"))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), Failure> {
        check_key(key)?;
        self.prefetched.clear();
        self.client.call(
            "/v3/kv/deleterange",
            &json!({ "key": B64.encode(key) }),
            Retry::Idempotent,
        )?;
        Ok(())
    }

    /// The members the open passed over before one served: a broken member goes
    /// unnoticed otherwise until the cluster loses its majority.
    fn take_note(&mut self) -> Option<String> {
        self.client.take_skipped()
    }
}

pam_totp_plugin_abi::export_backend!(Etcd, "etcd");

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &[u8], value: &[u8], rev: &str) -> Value {
        json!({ "kvs": [{ "key": B64.encode(key), "value": B64.encode(value), "mod_revision": rev }] })
    }

    #[test]
    fn range_replies_give_record_and_revision() {
        assert_eq!(
            parse_range(&json!({"header": {}}), b"k", MAX_ENCODED_LEN).unwrap(),
            (vec![], 0)
        );
        assert_eq!(
            parse_range(&json!({"kvs": []}), b"k", MAX_ENCODED_LEN).unwrap(),
            (vec![], 0)
        );
        assert_eq!(
            parse_range(&kv(b"k", b"rec", "42"), b"k", MAX_ENCODED_LEN).unwrap(),
            (b"rec".to_vec(), 42)
        );
    }

    #[test]
    fn hostile_range_replies_are_corrupt() {
        for reply in [
            kv(b"other", b"rec", "4"),
            kv(b"k", b"rec", "0"),
            kv(b"k", b"rec", "x"),
            kv(b"k", b"", "4"),
            kv(b"k", &vec![0u8; MAX_ENCODED_LEN + 1], "4"),
            json!({"kvs": "nope"}),
            json!({"kvs": [{}, {}]}),
            json!({"kvs": [{"key": B64.encode(b"k"), "value": "%%%", "mod_revision": "3"}]}),
        ] {
            let e = parse_range(&reply, b"k", MAX_ENCODED_LEN).expect_err("corrupt");
            assert_eq!(e.status, Status::Corrupt, "{reply}");
        }
    }

    #[test]
    fn store_records_are_bound_to_the_cluster_that_wrote_them() {
        let bound = bind(7, b"PTK1rec");
        assert_eq!(
            classify(bound.clone(), 5, 7).unwrap(),
            StoreRecord::Current(b"PTK1rec".to_vec(), 5)
        );
        // Read on a cluster restored with a new ID: absent to the module, and the
        // revision a create must replace.
        assert_eq!(classify(bound, 5, 8).unwrap(), StoreRecord::Stale(5));
        assert_eq!(classify(Vec::new(), 0, 7).unwrap(), StoreRecord::Absent);
        // An earlier release's record: kept, to be bound.
        assert_eq!(
            classify(b"PTK1rec".to_vec(), 3, 7).unwrap(),
            StoreRecord::Unbound(b"PTK1rec".to_vec(), 3)
        );
        // A bound header with nothing (or not all of the ID) behind it is damage.
        let too_large = vec![b'P'; MAX_ENCODED_LEN + 1];
        assert_eq!(
            classify(too_large, 3, 7).unwrap_err().status,
            Status::Corrupt
        );
        for short in [b"PTE1".to_vec(), bind(7, b""), b"PTE1\0\0\0".to_vec()] {
            let e = classify(short, 3, 7).expect_err("corrupt");
            assert_eq!(e.status, Status::Corrupt);
        }
    }

    #[test]
    fn a_bound_store_record_of_full_size_is_read() {
        let big = bind(7, &vec![1u8; MAX_ENCODED_LEN]);
        let reply = kv(b"s", &big, "9");
        assert_eq!(
            parse_range(&reply, b"s", MAX_ENCODED_LEN + BOUND_HEADER)
                .unwrap()
                .0,
            big
        );
        assert!(parse_range(&reply, b"s", MAX_ENCODED_LEN).is_err());
    }

    #[test]
    fn replies_without_a_cluster_id_are_corrupt() {
        assert_eq!(
            cluster_of(&json!({"header": {"cluster_id": "12724201897254889653"}})).unwrap(),
            12_724_201_897_254_889_653
        );
        for reply in [
            json!({}),
            json!({"header": {}}),
            json!({"header": {"cluster_id": "0"}}),
            json!({"header": {"cluster_id": "x"}}),
        ] {
            assert_eq!(cluster_of(&reply).unwrap_err().status, Status::Corrupt);
        }
        assert!(succeeded(&json!({"succeeded": true})).unwrap());
        assert!(!succeeded(&json!({})).unwrap());
        assert!(succeeded(&json!({"succeeded": "yes"})).is_err());
    }

    #[test]
    fn one_read_only_transaction_answers_every_prefetch_key() {
        let header = json!({ "cluster_id": "7", "revision": "12" });
        let range = |kvs: Value| json!({ "response_range": { "header": {}, "kvs": kvs } });
        let kv = |k: &[u8], v: &[u8], rev: &str| json!([{ "key": B64.encode(k), "value": B64.encode(v), "mod_revision": rev }]);
        let keys = || {
            vec![
                b"p/store".to_vec(),
                b"p/user:a".to_vec(),
                b"p/uid:1".to_vec(),
            ]
        };
        let reply = json!({
            "header": header,
            "succeeded": true,
            "responses": [
                range(kv(b"p/store", &bind(7, b"PTK1ctx"), "3")),
                range(kv(b"p/user:a", b"rec", "11")),
                { "response_range": { "header": {} } },
            ],
        });
        let reads = parse_reads(&reply, keys(), Some(b"p/store")).unwrap();
        let got: Vec<_> = reads.into_iter().map(|(k, r)| (k, r.unwrap())).collect();
        assert_eq!(
            got,
            [
                (b"p/store".to_vec(), (b"PTK1ctx".to_vec(), 3)),
                (b"p/user:a".to_vec(), (b"rec".to_vec(), 11)),
                (b"p/uid:1".to_vec(), (Vec::new(), 0)),
            ]
        );
        // A store record of another cluster reads as absent; an unbound one is left for
        // its first `get` to bind; a damaged user record is kept for its own `get`.
        let reply = json!({
            "header": { "cluster_id": "8" },
            "succeeded": true,
            "responses": [range(kv(b"p/store", &bind(7, b"PTK1ctx"), "3")), range(kv(b"p/user:a", b"", "4")), range(json!([]))],
        });
        let reads = parse_reads(&reply, keys(), Some(b"p/store")).unwrap();
        assert_eq!(reads[0].1.as_ref().ok(), Some(&(Vec::new(), 0)));
        assert_eq!(reads[1].1.as_ref().unwrap_err().status, Status::Corrupt);
        let reply = json!({
            "header": header,
            "succeeded": true,
            "responses": [range(kv(b"p/store", b"PTK1old", "2")), range(json!([])), range(json!([]))],
        });
        let reads = parse_reads(&reply, keys(), Some(b"p/store")).unwrap();
        assert_eq!(reads.len(), 2);
        assert!(reads.iter().all(|(k, _)| k.as_slice() != b"p/store"));
    }

    #[test]
    fn a_reading_transaction_of_another_shape_is_corrupt() {
        let ok = json!({ "response_range": { "header": {} } });
        let keys = || vec![b"p/a".to_vec(), b"p/b".to_vec()];
        for reply in [
            json!({ "succeeded": true, "responses": [ok, ok] }),
            json!({ "header": { "cluster_id": "7" }, "responses": [ok, ok] }),
            json!({ "header": { "cluster_id": "7" }, "succeeded": true, "responses": [ok] }),
            json!({ "header": { "cluster_id": "7" }, "succeeded": true }),
            json!({ "header": { "cluster_id": "7" }, "succeeded": true, "responses": [ok, { "response_put": {} }] }),
        ] {
            let e = parse_reads(&reply, keys(), None).expect_err("corrupt");
            assert_eq!(e.status, Status::Corrupt, "{reply}");
        }
    }

    /// A user record's transaction that failed reads the store record back: its
    /// `mod_revision`, 0 when gone; anything else is a reply of another shape.
    #[test]
    fn the_store_record_read_back_after_a_failed_write_gives_its_revision() {
        let reply = |range: Value| json!({ "responses": [{ "response_range": range }] });
        let kv = json!({ "kvs": [{ "key": B64.encode(b"p/store"), "mod_revision": "9" }] });
        assert_eq!(store_revision_after(&reply(kv)).ok(), Some(9));
        assert_eq!(store_revision_after(&reply(json!({}))).ok(), Some(0));
        assert_eq!(
            store_revision_after(&reply(json!({ "kvs": [] }))).ok(),
            Some(0)
        );
        for bad in [
            json!({}),
            json!({ "responses": [] }),
            reply(json!({ "kvs": "x" })),
            reply(json!({ "kvs": [{}, {}] })),
            reply(json!({ "kvs": [{ "mod_revision": "0" }] })),
        ] {
            assert!(store_revision_after(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_bounded() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&[b'a'; MAX_KEY_LEN + 1]).is_err());
        assert!(check_key(&[b'a'; MAX_KEY_LEN]).is_ok());
        assert!(check_key(b"pam_totp/uid:1000").is_ok());
    }

    use client::tests::{Scripted, finish, ok, scripted_with_bodies};
    use std::sync::{Arc, Mutex};

    /// An [`Etcd`] on one scripted gateway ([`client::tests::scripted`]) answering with
    /// `replies`; the store key is `p/store`. With the handle, the gateway and the
    /// bodies of the requests it read.
    fn gateway_etcd(
        replies: Vec<Scripted>,
    ) -> (
        Etcd,
        u16,
        std::thread::JoinHandle<client::tests::Seen>,
        Arc<Mutex<Vec<Value>>>,
    ) {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (port, server) = scripted_with_bodies(replies, Some(bodies.clone()));
        let etcd = Etcd {
            client: client::tests::client(&[port], None),
            prefetched: Vec::new(),
            store_key: Some(b"p/store".to_vec()),
            store_seen: None,
        };
        (etcd, port, server, bodies)
    }

    /// A range reply of cluster 5 holding `value` at `rev` under `key` (none for `None`).
    fn range_of(key: &[u8], value: Option<(&[u8], u64)>) -> Scripted {
        let kvs = match value {
            Some((v, rev)) => json!([{
                "key": B64.encode(key),
                "value": B64.encode(v),
                "mod_revision": rev.to_string(),
            }]),
            None => json!([]),
        };
        ok(&json!({ "header": { "cluster_id": "5", "revision": "20" }, "kvs": kvs }).to_string())
    }

    /// A txn reply: put or not, the header's revision, and the store record's revision
    /// as the failure branch read it.
    fn txn(put: bool, revision: u64, store_after: Option<u64>) -> Scripted {
        let mut reply =
            json!({ "header": { "cluster_id": "5", "revision": revision.to_string() } });
        if put {
            reply["succeeded"] = json!(true);
        }
        if let Some(r) = store_after {
            reply["responses"] = json!([{ "response_range": { "kvs": [{
                "key": B64.encode(b"p/store"), "mod_revision": r.to_string() }] } }]);
        }
        ok(&reply.to_string())
    }

    /// A user's write compares its own revision and, once the module read the store
    /// record, the store record's: the store record unchanged since is a conflict (the
    /// module reads and decides again); changed is `StoreChanged` (nothing written; it
    /// reads the store record again too).
    #[test]
    fn a_user_write_compares_the_store_record_the_module_read() {
        let (mut e, port, server, bodies) = gateway_etcd(vec![
            range_of(b"p/store", Some((&bind(5, b"PTK1ctx"), 7))),
            txn(true, 21, None),
            txn(false, 21, Some(7)),
            txn(false, 22, Some(8)),
            txn(false, 22, None),
        ]);
        assert_eq!(e.get(b"p/store").ok(), Some((b"PTK1ctx".to_vec(), 7)));
        assert_eq!(e.store_seen, Some(7));
        assert_eq!(
            e.cas(b"p/user:a", 3, b"rec", 0, false).ok(),
            Some(Status::Ok)
        );
        assert_eq!(
            e.cas(b"p/user:a", 3, b"rec", 0, false).ok(),
            Some(Status::Conflict)
        );
        assert_eq!(e.store_seen, Some(7), "still the one read");
        let f = e
            .cas(b"p/user:a", 3, b"rec", 0, false)
            .expect_err("changed");
        assert_eq!(f.status, Status::StoreChanged);
        assert_eq!(e.store_seen, None, "read again before the next write");
        // Not known now: the user's revision alone, a failure is a conflict.
        assert_eq!(
            e.cas(b"p/user:a", 3, b"rec", 0, false).ok(),
            Some(Status::Conflict)
        );
        finish(port, server);
        let bodies = bodies.lock().expect("bodies");
        let compares = |i: usize| {
            bodies[i]["compare"]
                .as_array()
                .expect("compare")
                .iter()
                .map(|c| {
                    (
                        c["key"].as_str().unwrap_or_default().to_owned(),
                        c["mod_revision"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let user = B64.encode(b"p/user:a");
        let store = B64.encode(b"p/store");
        assert_eq!(
            compares(1),
            [
                (user.clone(), "3".to_owned()),
                (store.clone(), "7".to_owned())
            ]
        );
        assert_eq!(
            bodies[1]["failure"][0]["request_range"]["key"].as_str(),
            Some(store.as_str())
        );
        assert_eq!(
            bodies[1]["success"][0]["request_put"]["value"].as_str(),
            Some(B64.encode(b"rec").as_str())
        );
        assert_eq!(compares(4), [(user, "3".to_owned())]);
    }

    /// The store record's create ("expected 0") puts it where none is, replaces one of
    /// another cluster on that one's revision, and is a conflict where another host
    /// created or bound it since; what it writes is bound to the cluster that served.
    /// An update compares the revision the module read, once.
    #[test]
    fn the_store_record_is_created_replaced_or_found_taken() {
        let (mut e, port, server, bodies) = gateway_etcd(vec![
            // Absent: created on revision 0.
            range_of(b"p/store", None),
            txn(true, 12, None),
            // Of another cluster at 4: replaced on 4.
            range_of(b"p/store", Some((&bind(6, b"PTK1old"), 4))),
            txn(true, 13, None),
            // Created by another host since.
            range_of(b"p/store", Some((&bind(5, b"PTK1new"), 14))),
            // A create that lost the race: read again, taken.
            range_of(b"p/store", None),
            txn(false, 15, None),
            range_of(b"p/store", Some((&bind(5, b"PTK1new"), 15))),
            // An update whose revision moved on: a conflict at once.
            range_of(b"p/store", Some((&bind(5, b"PTK1new"), 15))),
            txn(false, 16, None),
        ]);
        assert_eq!(
            e.cas(b"p/store", 0, b"PTK1ctx", 0, true).ok(),
            Some(Status::Ok)
        );
        assert_eq!(e.store_seen, Some(12));
        assert_eq!(
            e.cas(b"p/store", 0, b"PTK1ctx", 0, true).ok(),
            Some(Status::Ok)
        );
        assert_eq!(e.store_seen, Some(13));
        assert_eq!(
            e.cas(b"p/store", 0, b"PTK1ctx", 0, true).ok(),
            Some(Status::Conflict)
        );
        assert_eq!(e.store_seen, None);
        assert_eq!(
            e.cas(b"p/store", 0, b"PTK1ctx", 0, true).ok(),
            Some(Status::Conflict)
        );
        assert_eq!(
            e.cas(b"p/store", 14, b"PTK1ctx", 0, true).ok(),
            Some(Status::Conflict)
        );
        let seen = finish(port, server);
        assert_eq!(seen.len(), 10, "{seen:?}");
        let bodies = bodies.lock().expect("bodies");
        let put = |i: usize| {
            (
                bodies[i]["compare"][0]["mod_revision"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                B64.decode(
                    bodies[i]["success"][0]["request_put"]["value"]
                        .as_str()
                        .unwrap_or_default(),
                )
                .unwrap_or_default(),
            )
        };
        assert_eq!(put(1), ("0".to_owned(), bind(5, b"PTK1ctx")));
        assert_eq!(put(3), ("4".to_owned(), bind(5, b"PTK1ctx")));
        assert_eq!(put(9).0, "14");
    }

    /// An earlier release's store record (unbound) is bound to the cluster on its first
    /// read, and the module gets the revision of that write; a bind that lost a race
    /// reads again.
    #[test]
    fn an_unbound_store_record_is_bound_on_its_first_read() {
        let (mut e, port, server, bodies) = gateway_etcd(vec![
            range_of(b"p/store", Some((b"PTK1ctx", 3))),
            txn(true, 10, None),
            range_of(b"p/store", Some((b"PTK1ctx", 3))),
            txn(false, 11, None),
            range_of(b"p/store", Some((&bind(5, b"PTK1ctx"), 11))),
        ]);
        assert_eq!(e.get(b"p/store").ok(), Some((b"PTK1ctx".to_vec(), 10)));
        assert_eq!(e.store_seen, Some(10));
        assert_eq!(e.get(b"p/store").ok(), Some((b"PTK1ctx".to_vec(), 11)));
        assert_eq!(e.store_seen, Some(11));
        finish(port, server);
        let bodies = bodies.lock().expect("bodies");
        assert_eq!(bodies[1]["compare"][0]["mod_revision"].as_str(), Some("3"));
        assert_eq!(
            bodies[1]["success"][0]["request_put"]["value"].as_str(),
            Some(B64.encode(bind(5, b"PTK1ctx")).as_str())
        );
    }

    /// Sizes at the bound: an unbound store record of the largest record size is read,
    /// a bound one whose record is one byte larger is not.
    #[test]
    fn store_records_are_read_up_to_the_record_size_and_no_further() {
        let full = vec![b'P'; MAX_ENCODED_LEN];
        assert_eq!(
            classify(full.clone(), 3, 7).ok(),
            Some(StoreRecord::Unbound(full, 3))
        );
        let over = bind(7, &vec![1u8; MAX_ENCODED_LEN + 1]);
        assert!(parse_range(&kv(b"s", &over, "9"), b"s", MAX_ENCODED_LEN + BOUND_HEADER).is_err());
    }

    /// A put's new version is the header's revision, a positive number, nothing else.
    #[test]
    fn a_put_s_revision_is_a_positive_number_of_the_header() {
        let header = |r: &str| json!({ "header": { "revision": r } });
        assert_eq!(put_revision(&header("1")).ok(), Some(1));
        assert_eq!(put_revision(&header("31")).ok(), Some(31));
        for bad in [header("0"), header("x"), json!({})] {
            assert_eq!(
                put_revision(&bad).map_err(|f| f.status).err(),
                Some(Status::Corrupt),
                "{bad}"
            );
        }
    }

    /// The open's read of the store record takes a bound record of the largest record
    /// size, and no larger.
    #[test]
    fn the_open_s_read_of_the_store_record_is_bounded_at_the_record_size() {
        let reads = |record: &[u8]| {
            let reply = json!({
                "header": { "cluster_id": "7" },
                "succeeded": true,
                "responses": [{ "response_range": { "kvs": [{
                    "key": B64.encode(b"p/store"),
                    "value": B64.encode(bind(7, record)),
                    "mod_revision": "3",
                }] } }],
            });
            parse_reads(&reply, vec![b"p/store".to_vec()], Some(b"p/store"))
                .expect("a reply of the right shape")
                .remove(0)
                .1
        };
        let full = vec![1u8; MAX_ENCODED_LEN];
        assert_eq!(reads(&full).ok(), Some((full, 3)));
        let f = reads(&vec![1u8; MAX_ENCODED_LEN + 1]).expect_err("too large");
        assert_eq!(f.status, Status::Corrupt);
    }

    /// A stored value whose base64 text is longer than any record's is refused before it
    /// is decoded; one of the largest record's size is decoded and read.
    #[test]
    fn a_value_too_long_is_refused_before_it_is_decoded() {
        let full = vec![7u8; MAX_ENCODED_LEN];
        assert_eq!(
            parse_range(&kv(b"k", &full, "4"), b"k", MAX_ENCODED_LEN).ok(),
            Some((full, 4))
        );
        let text = "A".repeat((MAX_ENCODED_LEN / 3 + 2) * 4);
        let reply =
            json!({ "kvs": [{ "key": B64.encode(b"k"), "value": text, "mod_revision": "4" }] });
        let f = parse_range(&reply, b"k", MAX_ENCODED_LEN).expect_err("too long");
        assert_eq!(
            (f.status, f.message.as_str()),
            (Status::Corrupt, "stored record too large")
        );
    }

    /// The plugin configuration of an open on the scripted gateway at `port`.
    fn opening(port: u16, prefetch: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        PluginConfig {
            url: format!("etcd://127.0.0.1:{port}"),
            connect_timeout_ms: 5000,
            command_timeout_ms: 5000,
            store_key: Some(b"p/store".to_vec()),
            prefetch: prefetch.iter().map(|k| k.to_vec()).collect(),
            ..PluginConfig::default()
        }
        .encode()
    }

    use zeroize::Zeroizing;

    /// The open reads every prefetch key in one transaction, and the first `get` of
    /// each is answered from it; a reply that is not usable as a whole (corrupt) leaves
    /// each key to its own read, an outage fails the open. Without prefetch keys the open
    /// asks whether a leader is known.
    #[test]
    fn the_open_reads_the_prefetch_keys_or_proves_a_leader() {
        let reads = json!({
            "header": { "cluster_id": "5" },
            "succeeded": true,
            "responses": [
                { "response_range": { "kvs": [{ "key": B64.encode(b"p/user:a"),
                    "value": B64.encode(b"rec"), "mod_revision": "4" }] } },
            ],
        })
        .to_string();
        let (port, server) =
            client::tests::scripted(vec![ok(&reads), range_of(b"p/user:a", Some((b"rec2", 6)))]);
        let mut e =
            Etcd::open(&opening(port, &[b"p/user:a"])).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(e.get(b"p/user:a").ok(), Some((b"rec".to_vec(), 4)));
        assert_eq!(e.get(b"p/user:a").ok(), Some((b"rec2".to_vec(), 6)), "once");
        let seen = finish(port, server);
        assert_eq!(
            seen.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["/v3/kv/txn", "/v3/kv/range"]
        );

        let (port, server) = client::tests::scripted(vec![
            ok(r#"{"succeeded":true,"responses":[]}"#),
            range_of(b"p/user:a", Some((b"rec", 4))),
        ]);
        let mut e =
            Etcd::open(&opening(port, &[b"p/user:a"])).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(e.get(b"p/user:a").ok(), Some((b"rec".to_vec(), 4)));
        finish(port, server);

        let (port, server) = client::tests::scripted(vec![(
            503,
            String::new(),
            r#"{"error":"etcdserver: no leader","code":14}"#.to_owned(),
        )]);
        let f = Etcd::open(&opening(port, &[b"p/user:a"]))
            .err()
            .expect("an outage");
        assert_eq!(f.status, Status::Unavailable);
        finish(port, server);

        let (port, server) = client::tests::scripted(vec![ok(r#"{"leader":"9"}"#)]);
        assert!(Etcd::open(&opening(port, &[])).is_ok());
        let seen = finish(port, server);
        assert_eq!(seen[0].0, "/v3/maintenance/status");
    }

    /// What an open refuses before anything is sent: a password without a user name, a
    /// client certificate without its key.
    #[test]
    fn an_incomplete_configuration_is_refused_before_anything_is_sent() {
        let port = 9; // Nothing is sent.
        let base = || PluginConfig {
            url: format!("etcd://127.0.0.1:{port}"),
            connect_timeout_ms: 100,
            command_timeout_ms: 100,
            ..PluginConfig::default()
        };
        let no_user = PluginConfig {
            password: Some(Zeroizing::new("pw".to_owned())),
            ..base()
        };
        let no_key = PluginConfig {
            client_cert: Some(b"cert".to_vec()),
            ..base()
        };
        for config in [no_user, no_key] {
            let f = Etcd::open(&config.encode()).err().expect("refused");
            assert_eq!(f.status, Status::Invalid, "{}", f.message);
        }
    }

    /// A user's key is read with a linearizable range of that key; deleted with a
    /// delete range of it; a write of an empty or too large record is refused unsent.
    /// The cluster's clock is a reply's `Date`; without one so far, a read of the store
    /// record brings one; a gateway without `Date` has no clock to give.
    #[test]
    fn reads_deletes_and_the_clock_go_to_the_gateway_as_such() {
        let dated = |body: &str| {
            (
                200,
                "Date: Tue, 14 Nov 2023 22:13:45 GMT\r\n".to_owned(),
                body.to_owned(),
            )
        };
        let (mut e, port, server, bodies) = gateway_etcd(vec![
            range_of(b"p/user:a", Some((b"rec", 4))),
            ok("{}"),
            dated(&json!({ "header": { "cluster_id": "5" } }).to_string()),
        ]);
        assert_eq!(e.get(b"p/user:a").ok(), Some((b"rec".to_vec(), 4)));
        assert!(e.delete(b"p/user:a").is_ok());
        for bad in [&b""[..], &vec![b'r'; MAX_ENCODED_LEN + 1]] {
            let f = e.cas(b"p/user:a", 4, bad, 0, false).expect_err("refused");
            assert_eq!(f.status, Status::Invalid);
        }
        let t = e.server_time().expect("a clock");
        assert!((1_700_000_025..=1_700_000_027).contains(&t), "{t}");
        let seen = finish(port, server);
        assert_eq!(
            seen.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["/v3/kv/range", "/v3/kv/deleterange", "/v3/kv/range"]
        );
        let bodies = bodies.lock().expect("bodies");
        assert_eq!(bodies[0], json!({ "key": B64.encode(b"p/user:a") }));
        assert_eq!(bodies[1], json!({ "key": B64.encode(b"p/user:a") }));
        assert_eq!(bodies[2], json!({ "key": B64.encode(b"p/store") }));

        let (mut e, port, server, _) = gateway_etcd(vec![range_of(b"p/store", None)]);
        let f = e.server_time().expect_err("no Date");
        assert_eq!(f.status, Status::Corrupt);
        finish(port, server);
    }

    /// A store record read on its own (not by the open) is read up to the largest
    /// record bound to its cluster, and no larger.
    #[test]
    fn a_store_record_read_on_its_own_is_bounded_at_the_record_size() {
        let full = vec![1u8; MAX_ENCODED_LEN];
        let (mut e, port, server, _) = gateway_etcd(vec![
            range_of(b"p/store", Some((&bind(5, &full), 3))),
            range_of(b"p/store", Some((&bind(5, &[&full[..], b"x"].concat()), 4))),
        ]);
        assert_eq!(e.get(b"p/store").ok(), Some((full, 3)));
        let f = e.get(b"p/store").expect_err("too large");
        assert_eq!(f.status, Status::Corrupt);
        finish(port, server);
    }

    /// With credentials, the open gets a token first, and sends it with its reads.
    #[test]
    fn an_open_with_credentials_authenticates_first() {
        let (port, server) = client::tests::scripted(vec![
            ok(r#"{"token":"t0k"}"#),
            ok(
                r#"{"header":{"cluster_id":"5"},"succeeded":true,"responses":[{"response_range":{}}]}"#,
            ),
        ]);
        let config = PluginConfig {
            username: Some("hosts".to_owned()),
            password: Some(Zeroizing::new("pw".to_owned())),
            url: format!("etcd://127.0.0.1:{port}"),
            connect_timeout_ms: 5000,
            command_timeout_ms: 5000,
            prefetch: vec![b"p/user:a".to_vec()],
            ..PluginConfig::default()
        };
        assert!(Etcd::open(&config.encode()).is_ok());
        assert_eq!(
            finish(port, server),
            [
                ("/v3/auth/authenticate".to_owned(), None),
                ("/v3/kv/txn".to_owned(), Some("t0k".to_owned()))
            ]
        );
    }

    /// An absent store record gives the module nothing to compare: a user's write then
    /// compares its own revision only. A record of the largest size is sent.
    #[test]
    fn an_absent_store_record_is_not_compared_and_a_full_record_is_sent() {
        let (mut e, port, server, bodies) =
            gateway_etcd(vec![range_of(b"p/store", None), txn(true, 21, None)]);
        assert_eq!(e.get(b"p/store").ok(), Some((Vec::new(), 0)));
        assert_eq!(e.store_seen, None);
        let full = vec![b'r'; MAX_ENCODED_LEN];
        assert_eq!(
            e.cas(b"p/user:a", 3, &full, 0, false).ok(),
            Some(Status::Ok)
        );
        finish(port, server);
        let bodies = bodies.lock().expect("bodies");
        assert_eq!(bodies[1]["compare"].as_array().map(Vec::len), Some(1));
    }

    /// The members passed over before another served are noted for the module's log.
    #[test]
    fn members_passed_over_are_noted_for_the_log() {
        let (port, server) = client::tests::scripted(vec![range_of(b"p/user:a", None)]);
        let down = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut e = Etcd {
            client: client::tests::client(&[down, port], None),
            prefetched: Vec::new(),
            store_key: None,
            store_seen: None,
        };
        assert_eq!(e.take_note(), None);
        assert!(e.get(b"p/user:a").is_ok());
        let note = e.take_note().expect("a note");
        assert!(
            note.contains(&format!("http://127.0.0.1:{down}: ")),
            "{note}"
        );
        finish(port, server);
    }
}
