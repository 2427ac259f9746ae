//! One connection to Redis/Valkey and the three operations the module needs.
//!
//! A user's record is a hash `{v: version, r: record bytes}`. The version starts at 1
//! and grows by one on every write; `compare_and_set` is one Lua script, run atomically
//! by the server's single writer, that writes only when the stored version is still the
//! one the caller read. The same code sent to several hosts at once therefore consumes
//! the replay mark exactly once: every other host's script sees a newer version and the
//! module re-reads and decides again (now seeing the mark).

use std::time::Duration;

use redis::{Client, Connection, ErrorKind, RedisError, TlsCertificates, Value};
use totp_core::fleet::PluginConfig;
use totp_core::state::MAX_ENCODED_LEN;
use zeroize::Zeroizing;

/// Status codes of the C ABI: the one definition in the ABI crate.
pub use pam_totp_plugin_abi::Status;

pub struct Failure {
    pub status: Status,
    pub message: String,
}

impl Failure {
    pub fn invalid(m: &str) -> Self {
        Self {
            status: Status::Invalid,
            message: m.to_owned(),
        }
    }

    pub fn corrupt(m: &str) -> Self {
        Self {
            status: Status::Corrupt,
            message: m.to_owned(),
        }
    }

    fn refused(m: String) -> Self {
        Self {
            status: Status::Refused,
            message: m,
        }
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        let text = e.to_string();
        // A failed TLS handshake (wrong CA, wrong name) reaches us as an I/O error; it is
        // a refusal to trust the server, not an outage.
        let tls_refusal = ["SSL", "TLS", "certificate"]
            .iter()
            .any(|w| text.contains(w));
        let status = if tls_refusal {
            Status::Refused
        } else if e.is_timeout()
            || e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
        {
            Status::Unavailable
        } else if e.kind() == ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        {
            // Our credentials or ACL: an admin must act.
            Status::Refused
        } else if e.code() == Some("WRONGTYPE") || text.contains("WRONGTYPE") {
            // Our key holds something that is not our record (from a script the code
            // arrives inside the reply's text): corrupt, not an outage.
            Status::Corrupt
        } else if e.code().is_some()
            || e.kind() == ErrorKind::Server(redis::ServerErrorKind::ResponseError)
        {
            // Any other error reply is the server's state, not our record: out of memory,
            // a busy script, still loading, a replica (READONLY, MASTERDOWN) during a
            // failover, too many clients. An outage: it passes without anybody's help.
            Status::Unavailable
        } else {
            Status::Corrupt
        };
        let message: String = text.chars().take(300).collect();
        Self { status, message }
    }
}

/// Compare the version, then write record and version, then set or clear the TTL.
/// KEYS[1] = record key; ARGV = expected version ("0" = absent), record, TTL seconds.
const CAS_SCRIPT: &str = r#"
local v = redis.call('HGET', KEYS[1], 'v')
if v == false then v = '0' end
if v ~= ARGV[1] then return 0 end
local n = string.format('%d', tonumber(v) + 1)
redis.call('HSET', KEYS[1], 'v', n, 'r', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"#;

/// Connects over TLS (TCP, handshake, AUTH, SELECT) within `limit` of wall-clock time.
/// The client library bounds the TCP connect and the setup commands, but its native-tls
/// path does the TLS handshake on a socket without a read timeout, so a server that
/// accepts and then stalls (paused, overloaded, a middlebox) would hang the login
/// forever. The attempt therefore runs on its own thread; when the limit passes the
/// login is denied and the thread is left to finish or fail on its own (it holds one
/// socket until the server answers or the process exits).
fn connect_bounded(client: Client, limit: Duration) -> Result<Connection, Failure> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("pam_totp_redis-connect".into())
        .spawn(move || {
            let _ = tx.send(client.get_connection_with_timeout(limit));
        });
    if spawned.is_err() {
        return Err(Failure {
            status: Status::Unavailable,
            message: "cannot start the connect thread".to_owned(),
        });
    }
    match rx.recv_timeout(limit) {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure {
            status: Status::Unavailable,
            message: format!(
                "no connection within {} ms (connect, TLS handshake or authentication)",
                limit.as_millis()
            ),
        }),
    }
}

/// Refuses a server that may evict keys: an evicted record or store record is a lost
/// replay mark (R34). Evicting nothing takes `maxmemory-policy noeviction`, or no memory
/// limit at all (`maxmemory 0`).
fn check_eviction(info: &str) -> Result<(), Failure> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let (Some(limit), Some(policy)) = (field("maxmemory"), field("maxmemory_policy")) else {
        return Err(Failure::corrupt(
            "INFO memory names no maxmemory and maxmemory_policy",
        ));
    };
    if limit == "0" || policy == "noeviction" {
        return Ok(());
    }
    let shown: String = policy
        .chars()
        .take(40)
        .filter(|c| c.is_ascii_graphic())
        .collect();
    Err(Failure::refused(format!(
        "the server may evict pam_totp's records (maxmemory-policy {shown} with a memory \
         limit), which would make used codes usable again; set maxmemory-policy noeviction"
    )))
}

pub struct Backend {
    con: Connection,
    wait_replicas: u32,
    wait_timeout_ms: u64,
    command_timeout: Duration,
}

impl Backend {
    pub fn connect(mut config: PluginConfig) -> Result<Self, Failure> {
        use redis::IntoConnectionInfo;
        let info = config.url.as_str().into_connection_info()?;
        let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
        if let Some(u) = &config.username {
            settings = settings.set_username(u);
        }
        let password: Option<Zeroizing<String>> = config.password.take();
        if let Some(p) = password.as_ref() {
            settings = settings.set_password(p.as_str());
        }
        let info = info.set_redis_settings(settings);
        let client = match config.ca_pem.take() {
            Some(ca) => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            )?,
            None => Client::open(info)?,
        };
        let connect = Duration::from_millis(config.connect_timeout_ms.max(1));
        let command = Duration::from_millis(config.command_timeout_ms.max(1));
        let con = if config.url.starts_with("rediss://") {
            connect_bounded(client, connect)?
        } else {
            // TCP and socket connects, AUTH and SELECT are bounded by the library itself.
            client.get_connection_with_timeout(connect)?
        };
        con.set_read_timeout(Some(command))?;
        con.set_write_timeout(Some(command))?;
        let mut backend = Self {
            con,
            wait_replicas: config.wait_replicas,
            wait_timeout_ms: config.wait_timeout_ms,
            command_timeout: command,
        };
        // The open must prove the server answers (state_fallback=local acts on a failed
        // open only), and that it will keep what we write: one INFO does both (and
        // shows a server that wants a password, NOAUTH).
        let info: String = redis::cmd("INFO").arg("memory").query(&mut backend.con)?;
        check_eviction(&info)?;
        Ok(backend)
    }

    /// The record and its version; `(empty, 0)` when the user has none.
    pub fn get(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        let reply: Value = redis::cmd("HMGET")
            .arg(key)
            .arg("v")
            .arg("r")
            .query(&mut self.con)?;
        let Value::Array(items) = reply else {
            return Err(Failure::corrupt("unexpected HMGET reply"));
        };
        match items.as_slice() {
            [Value::Nil, Value::Nil] => Ok((Vec::new(), 0)),
            [Value::BulkString(v), Value::BulkString(r)] => {
                let version = std::str::from_utf8(v)
                    .ok()
                    .filter(|s| {
                        !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Failure::corrupt("stored version is not a positive number"))?;
                if r.len() > MAX_ENCODED_LEN {
                    return Err(Failure::corrupt("stored record too large"));
                }
                Ok((r.clone(), version))
            }
            _ => Err(Failure::corrupt("stored record is incomplete")),
        }
    }

    /// Writes `record` if the version is still `expected`; [`Status::Conflict`] if not.
    /// A durable write with `redis_wait=N` also waits for N replicas to acknowledge.
    pub fn compare_and_set(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        ttl_secs: u64,
        durable: bool,
    ) -> Result<Status, Failure> {
        if record.len() > MAX_ENCODED_LEN {
            return Err(Failure::invalid("record too large"));
        }
        let written: i64 = redis::cmd("EVAL")
            .arg(CAS_SCRIPT)
            .arg(1)
            .arg(key)
            .arg(expected.to_string())
            .arg(record)
            .arg(ttl_secs.to_string())
            .query(&mut self.con)?;
        match written {
            0 => return Ok(Status::Conflict),
            1 => {}
            _ => return Err(Failure::corrupt("unexpected script reply")),
        }
        if durable && self.wait_replicas > 0 {
            // The server answers WAIT only when its own timeout runs out.
            let wait = Duration::from_millis(self.wait_timeout_ms) + self.command_timeout;
            self.con.set_read_timeout(Some(wait))?;
            let acked: Result<i64, RedisError> = redis::cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.wait_timeout_ms)
                .query(&mut self.con);
            self.con.set_read_timeout(Some(self.command_timeout))?;
            let acked = acked?;
            if acked < i64::from(self.wait_replicas) {
                return Err(Failure::refused(format!(
                    "only {acked} of {} replicas acknowledged the write",
                    self.wait_replicas
                )));
            }
        }
        Ok(Status::Ok)
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<(), Failure> {
        let _: i64 = redis::cmd("DEL").arg(key).query(&mut self.con)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servers_that_evict_nothing_are_accepted() {
        let info = |limit: &str, policy: &str| {
            format!(
                "# Memory\r\nused_memory:1\r\nmaxmemory:{limit}\r\nmaxmemory_policy:{policy}\r\n"
            )
        };
        assert!(check_eviction(&info("0", "allkeys-lru")).is_ok());
        assert!(check_eviction(&info("104857600", "noeviction")).is_ok());
        for policy in [
            "allkeys-lru",
            "volatile-ttl",
            "allkeys-random",
            "volatile-lfu",
        ] {
            let e = check_eviction(&info("104857600", policy)).expect_err(policy);
            assert_eq!(e.status, Status::Refused);
            assert!(e.message.contains("noeviction"), "{}", e.message);
        }
        assert!(check_eviction("# Memory\r\n").is_err());
    }
}
