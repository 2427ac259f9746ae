//! The etcd backend of pam_totp, as a plugin the module `dlopen`s only when a pam.d line
//! says `state=etcd://…` or `etcds://…`.
//!
//! etcd commits every acknowledged write to a majority of its members (Raft), so a
//! compare-and-set on it stays exactly once when any minority of members dies. The
//! plugin talks to etcd 3.4's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/kv/deleterange`, base64 keys and values) over a synchronous HTTP client
//! (`client.rs`): no runtime and no thread stays in the host process.
//!
//! - `get`: a linearizable range read (the gateway's default: `serializable` is never
//!   set); the version is the key's `mod_revision` (0: absent).
//! - `cas`: one transaction comparing the key's `mod_revision` with the version the
//!   module read (0 matches an absent key), putting the record only when it still
//!   holds. A conflict is reported to the module, which reads and decides again.
//! - `del`: a delete range of exactly the key.
//!
//! TTLs are not used (etcd would need a lease per record): records stay until reset,
//! which is the stricter choice. `durable` needs nothing more: every acknowledged write
//! is already on a majority.

mod client;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use pam_totp_plugin_abi::{Backend, Failure, Status};
use serde_json::{Value, json};
use totp_core::fleet::PluginConfig;
use totp_core::state::MAX_ENCODED_LEN;

use client::{Client, Retry, number};

/// Longest key the module builds (prefix ≤ 64 bytes + `uid:` + a 10-digit uid).
const MAX_KEY_LEN: usize = 256;

/// A record and its `mod_revision`, or why it could not be read.
type Read = Result<(Vec<u8>, u64), Failure>;

/// One client of the cluster behind a plugin handle.
pub struct Etcd {
    client: Client,
    /// The probe key's record as read while opening, until it is asked for (once) or
    /// anything is written.
    prefetched: Option<(Vec<u8>, Read)>,
}

fn check_key(key: &[u8]) -> Result<(), Failure> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Failure::invalid("bad key length"));
    }
    Ok(())
}

/// The record and its `mod_revision` from a range reply.
fn parse_range(reply: &Value, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
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
            if v.len() > (MAX_ENCODED_LEN / 3 + 1) * 4 {
                return Err(Failure::corrupt("stored record too large"));
            }
            B64.decode(v)
                .map_err(|_| Failure::corrupt("stored value is not base64"))?
        }
        Some(_) => return Err(Failure::corrupt("stored value is not a string")),
    };
    if value.is_empty() || value.len() > MAX_ENCODED_LEN {
        return Err(Failure::corrupt("stored record is empty or too large"));
    }
    Ok((value, revision))
}

impl Etcd {
    /// A linearizable read of one key: the record and its `mod_revision`.
    fn read(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        check_key(key)?;
        let reply = self.client.call(
            "/v3/kv/range",
            &json!({ "key": B64.encode(key) }),
            Retry::Idempotent,
        )?;
        parse_range(&reply, key)
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
        client.connect(config.probe_key.is_none())?;
        let mut etcd = Self {
            client,
            prefetched: None,
        };
        // A linearizable read proves that a majority serves this login before the module
        // relies on the store (`state_fallback=local` acts on a failed open), and it is
        // the module's first read anyway.
        if let Some(key) = config.probe_key.take() {
            let record = match etcd.read(&key) {
                // A damaged record is the store's content, not an outage: it is reported
                // where the module reads it, as without the probe.
                Err(f) if f.status == Status::Corrupt => Err(f),
                other => Ok(other?),
            };
            etcd.prefetched = Some((key, record));
        }
        Ok(etcd)
    }

    fn get(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        if let Some((k, _)) = &self.prefetched
            && k.as_slice() == key
            && let Some((_, record)) = self.prefetched.take()
        {
            return record;
        }
        self.read(key)
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
        self.prefetched = None;
        if record.is_empty() || record.len() > MAX_ENCODED_LEN {
            return Err(Failure::invalid("bad record length"));
        }
        let k = B64.encode(key);
        let body = json!({
            "compare": [{
                "key": k,
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": expected.to_string(),
            }],
            "success": [{ "request_put": { "key": k, "value": B64.encode(record) } }],
        });
        let reply = self.client.call("/v3/kv/txn", &body, Retry::NotDelivered)?;
        // proto3 JSON leaves `false` out.
        match reply.get("succeeded") {
            Some(Value::Bool(true)) => Ok(Status::Ok),
            None | Some(Value::Bool(false)) => Ok(Status::Conflict),
            Some(_) => Err(Failure::corrupt("txn reply: succeeded is not a boolean")),
        }
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), Failure> {
        check_key(key)?;
        self.prefetched = None;
        self.client.call(
            "/v3/kv/deleterange",
            &json!({ "key": B64.encode(key) }),
            Retry::Idempotent,
        )?;
        Ok(())
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
            parse_range(&json!({"header": {}}), b"k").unwrap(),
            (vec![], 0)
        );
        assert_eq!(parse_range(&json!({"kvs": []}), b"k").unwrap(), (vec![], 0));
        assert_eq!(
            parse_range(&kv(b"k", b"rec", "42"), b"k").unwrap(),
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
            let e = parse_range(&reply, b"k").expect_err("corrupt");
            assert_eq!(e.status, Status::Corrupt, "{reply}");
        }
    }

    #[test]
    fn keys_are_bounded() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&[b'a'; MAX_KEY_LEN + 1]).is_err());
        assert!(check_key(b"pam_totp/uid:1000").is_ok());
    }
}
