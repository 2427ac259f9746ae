//! One connection to Redis/Valkey and the three operations the module needs.
//!
//! A user's record is a hash `{v: version, r: record bytes}`. The version starts at a
//! random number ([`new_key_version`]: a key deleted and created again never repeats the
//! version a login read before) and grows by one on every write; `compare_and_set` is one Lua script, run atomically
//! by the server's single writer, that writes only when the stored version is still the
//! one the caller read. The same code sent to several hosts at once therefore consumes
//! the replay mark exactly once: every other host's script sees a newer version and the
//! module re-reads and decides again (now seeing the mark).

use std::time::{Duration, Instant};

use totp_core::fleet::PluginConfig;
use totp_core::state::{MAX_ENCODED_LEN, StoreContext};
use zeroize::Zeroizing;

use crate::bound::{self, StoreRecord};
use crate::resp::{Address, Conn, Limits, Reply, Tls, WireError};

/// Status codes of the C ABI: the one definition in the ABI crate.
pub use pam_totp_plugin_abi::Status;
use pam_totp_plugin_abi::{MESSAGE_ROOM, fitted, shown};

#[derive(Debug)]
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

    fn unavailable(m: String) -> Self {
        Self {
            status: Status::Unavailable,
            message: m,
        }
    }

    /// A failure on the wire during `what` (a command name or "connect").
    fn wire(what: &str, e: WireError, limit: Duration) -> Self {
        match e {
            // A plain server takes a TLS client's hello for the start of a command and
            // waits for the rest: the handshake times out.
            WireError::Timeout(m) if m.starts_with("TLS handshake") => Self::unavailable(format!(
                "{what}: {m} within {} ms (does this port serve TLS? rediss:// needs the \
                 server's tls-port, redis:// its plain port; or the server or the path \
                 sent its handshake too slowly)",
                limit.as_millis()
            )),
            // No connection made: the connect bound, and where it points.
            WireError::Timeout(m) if m.starts_with("no connection to ") => {
                Self::unavailable(format!(
                    "{what}: {m} within {} ms (the server is down, stopped, or too busy to \
                     accept: a local socket waits while its queue of unaccepted \
                     connections is full)",
                    limit.as_millis()
                ))
            }
            WireError::Timeout(_) => Self::unavailable(format!(
                "{what}: no complete reply within {} ms (the bound of the whole command)",
                limit.as_millis()
            )),
            WireError::Io(m) => Self::unavailable(format!("{what}: {m}")),
            // A failed handshake (wrong CA, wrong name, no client certificate) is a
            // refusal to trust, not an outage: an admin must act.
            WireError::Tls(m) => Self::refused(format!("{what}: {m}")),
            // A peer that breaks the protocol or a bound (R36): nothing of it was
            // trusted; the server, not the user's record, is at fault.
            WireError::Protocol(m) => Self::unavailable(format!("{what}: {m}")),
            // Another kind of server at the configured address (a wrong port): it will
            // not become Redis by itself, so no fallback hides it.
            WireError::Foreign(m) => {
                Self::refused(format!("{what}: {m}; check the port of state="))
            }
            WireError::Unresolvable(m) => Self::refused(format!("{what}: {m}")),
            // A record read whole that is larger than any record pam_totp writes: the
            // store's content, which `totp-state reset` deletes, not an outage.
            WireError::Oversized(m) if what == "HMGET" => {
                Self::corrupt(&format!("{what}: stored value too large: {m}"))
            }
            // Any other reply of that kind (INFO, a sentinel's): the server's state.
            WireError::Oversized(m) => Self::unavailable(format!("{what}: {m}")),
        }
    }

    /// An error reply of the server to `what`.
    fn server(what: &str, text: &str) -> Self {
        let shown = shown(&without_arguments(text), 300);
        let message = format!("{what}: {shown}");
        let code = text.split_whitespace().next().unwrap_or("");
        if code == "NOAUTH" {
            Self::refused(format!(
                "{message} (the server wants a password: redis_credentials= names the user \
                 and password)"
            ))
        } else if matches!(code, "WRONGPASS" | "NOPERM" | "DENIED")
            || text.contains("can't run this command")
        {
            // Our credentials or ACL (also as a script or function reports it), or a
            // server in protected mode: an admin must act.
            Self::refused(message)
        } else if matches!(code, "MOVED" | "ASK" | "CROSSSLOT" | "CLUSTERDOWN")
            || text.contains("not allowed in cluster mode")
        {
            Self::refused(format!("{message} ({NOT_CLUSTER})"))
        } else if text.contains("unknown command") {
            // Renamed or disabled on the server (`rename-command`), or a proxy that does
            // not pass it on: it stays so until an admin changes the server.
            Self::refused(format!(
                "{message} (the server does not know the command under its own name: \
                 renamed or disabled with rename-command?)"
            ))
        } else if text.contains("DB index is out of range") {
            Self::refused(format!(
                "{message} (the database number of state= is not below the server's \
                 `databases` setting)"
            ))
        } else if text.contains("WRONGTYPE") {
            // Our key holds something that is not our record (from a script the code
            // arrives inside the reply's text): corrupt, not an outage.
            Self::corrupt(&message)
        } else {
            // Any other error reply is the server's state, not our record: out of memory,
            // a busy script, still loading, a replica (READONLY, MASTERDOWN) during a
            // failover, too many clients. An outage: it passes without anybody's help.
            Self::unavailable(message)
        }
    }
}

/// Compare the version, then write record and version, then set or clear the TTL.
/// KEYS[1] = record key; ARGV = expected version ("0" = absent), record, TTL seconds,
/// the version a key created by this call starts at ([`new_key_version`]).
/// One text for the `EVAL` script and the function library's body.
///
/// A created key's version is the caller's random start, not 1: a key deleted while a
/// login decided (its TTL ran out, an admin's `DEL`) and created again by another host
/// must not repeat the version that login read, or its compare-and-set would overwrite
/// the newer record and roll back its marks (R34). The start is the caller's, not the
/// server's `TIME`: the hosts' ACL has no `+time`, the module must know the version it
/// wrote (the store record's is compared by every later write), and a script before
/// Redis 5 could not write after a non-deterministic command.
///
/// With KEYS[2] (the store record, `<prefix>store`) and ARGV[5], ARGV[6] (its version
/// `v` and binding `i` as the login read them), the store record is compared too, and a
/// store record changed since (a FLUSHALL or another lost data set, a recreation after
/// a failover or a restart) writes nothing and answers 2: the login decided with a floor
/// that no longer holds (R34). Called with one key it compares the user's record only.
///
/// Redis checks the commands a script or function runs against the caller's ACL only
/// when each runs: an ACL without `+expire` had the `HSET` done and the `EXPIRE`
/// refused, so a denied login left its code counted as used (and a record without the
/// TTL it should have, or, without `+persist`, a record holding an HOTP counter or a
/// used scratch code with a TTL that may expire it). So before anything else the body
/// asks the server (`redis.acl_check_cmd`, Redis 7 and Valkey) whether the caller may
/// run the writes it may run on this key: `HSET`; `PERSIST` always, since any user's
/// record may need it (a first scratch code turns a TOTP record into one that never
/// expires) and a host missing it should fail at its first login, not at a user's
/// scratch code; `EXPIRE` only where this call sets a TTL: where the TTL is always 0
/// (`redis_ttl=0`, `max_failures=`) no write runs it, and a host ACL without it, which
/// the previous `totp-state ping` passed, must not start denying every login when
/// `totp-state init` installs this body. A refusal names the command in the words of
/// Redis 7.2's own refusal (`denied_command` reads them) and writes nothing. A server
/// before Redis 7 has no such check and no functions: its `EVAL` runs without it, as
/// before.
///
/// A write never shortens a record's life: hosts of one fleet may work the TTL out from
/// different options (`max_failures=` keeps every record, `redis_ttl=` differs), and a
/// record a host with a shorter TTL wrote last would expire while it still held another
/// host's lockout or ceiling. So where this call sets a TTL it is `EXPIRE … GT` (Redis 7
/// and Valkey: set only where later than the key's own, a key without one counting as
/// never expiring), and a plain `EXPIRE` only on a key without a version before this
/// call, which `HSET` just created without a TTL (its `TTL` was -2, now -1, and `GT`
/// would keep it forever). `PERSIST` only lengthens. A server before Redis 7 knows no
/// `GT` (`redis.REDIS_VERSION_NUM`, which Valkey keeps too, came with it): there the
/// last writer's TTL still wins (SECURITY.md, M33).
macro_rules! cas_body {
    () => {
        r#"
if redis.acl_check_cmd then
  local writes = {{'hset', KEYS[1], 'v', '1', 'r', ''}, {'persist', KEYS[1]}}
  if tonumber(ARGV[3]) > 0 then writes[3] = {'expire', KEYS[1], ARGV[3]} end
  for _, c in ipairs(writes) do
    if not redis.acl_check_cmd(unpack(c)) then
      return redis.error_reply("NOPERM this user has no permissions to run the '" .. c[1] .. "' command (checked before writing: nothing was written)")
    end
  end
end
if KEYS[2] then
  local s = redis.call('HMGET', KEYS[2], 'v', 'i')
  if s[1] ~= ARGV[5] or s[2] ~= ARGV[6] then return 2 end
end
local v = redis.call('HGET', KEYS[1], 'v')
local fresh = v == false
if fresh then v = '0' end
if v ~= ARGV[1] then return 0 end
local n = ARGV[4]
if not fresh then n = string.format('%d', tonumber(v) + 1) end
redis.call('HSET', KEYS[1], 'v', n, 'r', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  if fresh or not redis.REDIS_VERSION_NUM then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[3], 'GT')
  end
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"#
    };
}

/// For servers without the function library (before Redis 7, or a store `totp-state
/// init` has not prepared): the same compare-and-set as a script.
const CAS_SCRIPT: &str = cas_body!();

/// The function name, versioned: a changed body gets a new name, so a host that calls
/// it knows what it runs (v2: nothing written unless the ACL allows every write; v3:
/// the store record compared as well; v4: a created key starts at the caller's random
/// version, the store record's fields one argument later). A host that finds only an
/// earlier library falls back to the script.
const CAS_FUNCTION: &str = "pam_totp_cas_v4";

/// The function library `totp-state init` installs (`FUNCTION LOAD REPLACE`): with it,
/// hosts need `+fcall` instead of `+eval` (no arbitrary scripts, which could stall the
/// server or rewrite any record the ACL reaches).
///
/// `init` runs before the hosts are upgraded, and `REPLACE` drops every function the
/// new text does not register: `pam_totp_cas_v3`, `pam_totp_cas_v2` and
/// `pam_totp_cas_v1`, which hosts of earlier releases call (v1, v2 with one key), stay
/// registered (with this body, their arguments moved to where it reads them: the same
/// replies as theirs, and the refusal before writing), or their logins would be refused
/// until upgraded. They can go once no such host is left. A key they create starts at
/// version 1, as those hosts expect (they take the store record they create to be at
/// 1): a record such a host creates again while another login decided can still repeat
/// the version that login read, until every host runs this release (docs/fleet.md).
///
/// Their writes, too, never shorten a record's life: a TTL is the store's, not the
/// caller's, and an earlier host with default options must not set one on a record a
/// `max_failures=` host keeps. No name changed for that: what protects a record is the
/// body every writer runs, not the name one host calls, so the fix holds once this
/// release's `init` has replaced the library, whichever hosts are upgraded.
const LIBRARY: &str = concat!(
    "#!lua name=pam_totp\n",
    "local function cas(KEYS, ARGV)",
    cas_body!(),
    "end\n",
    "local function earlier(KEYS, ARGV)\n",
    "  return cas(KEYS, {ARGV[1], ARGV[2], ARGV[3], '1', ARGV[4], ARGV[5]})\n",
    "end\n",
    "redis.register_function('pam_totp_cas_v4', cas)\n",
    "redis.register_function('pam_totp_cas_v3', earlier)\n",
    "redis.register_function('pam_totp_cas_v2', earlier)\n",
    "redis.register_function('pam_totp_cas_v1', earlier)\n"
);

/// Why a write is refused when the store record changed while the login decided
/// ([`Status::StoreChanged`]).
const STORE_CHANGED: &str = "the store record changed since this login read it (the data \
     set was lost or flushed, or the record was recreated after a restart or a failover): \
     nothing was written";

/// Why a Redis Cluster node is refused, in every message that finds one.
const NOT_CLUSTER: &str = "a Redis Cluster node: pam_totp keeps its records on one \
     primary and does not follow cluster redirections; use a standalone server or Sentinel";

/// The `INFO` fields the plugin reads (each begins with `c`, `m`, `r` or `s`:
/// [`Info::parse`] relies on it).
const INFO_FIELDS: [&str; 13] = [
    "redis_mode",
    "server_mode",
    "cluster_enabled",
    "role",
    "master_host",
    "master_port",
    "maxmemory",
    "maxmemory_policy",
    "server_time_usec",
    "connected_slaves",
    "master_replid",
    "master_replid2",
    "run_id",
];

/// The [`INFO_FIELDS`] of an `INFO` reply, taken in one pass over its lines (each
/// field's first line, its value trimmed). The reply is about 5 KB in over a hundred
/// lines: searching the whole text again for each field cost every login's open some
/// 25 µs of CPU (docs/performance.md). Read as bytes: only the lines a kept name could
/// begin must be text (a line that is not is passed over, as a field the server did
/// not send); converting the whole reply first, and splitting it as text, took more
/// instructions than the rest of the open's decoding.
struct Info<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Info<'a> {
    fn parse(reply: &'a [u8]) -> Self {
        let mut found: Vec<(&str, &str)> = Vec::with_capacity(INFO_FIELDS.len());
        for line in reply.split(|&b| b == b'\n') {
            // Most lines are passed over at their first byte: every kept name begins
            // with one of these.
            if !matches!(line.first(), Some(b'c' | b'm' | b'r' | b's')) {
                continue;
            }
            let Some((name, value)) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            if INFO_FIELDS.contains(&name) && !found.iter().any(|(n, _)| *n == name) {
                found.push((name, value.trim()));
            }
        }
        Info(found)
    }

    /// The value of `name` (one of [`INFO_FIELDS`]).
    fn get(&self, name: &str) -> Option<&'a str> {
        debug_assert!(INFO_FIELDS.contains(&name), "{name} is not kept from INFO");
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// What the open's `INFO` says about the server: it must be one writable primary (not a
/// sentinel, a cluster node or a replica, each a state= pointing at the wrong server,
/// which stays wrong until an admin fixes it) that evicts nothing.
fn check_server(info: &Info<'_>) -> Result<(), Failure> {
    // Valkey names the field `server_mode` as well.
    let mode = info.get("redis_mode").or_else(|| info.get("server_mode"));
    match mode {
        Some("sentinel") => {
            return Err(Failure::refused(
                "the server is a Redis Sentinel, not the server that holds the data; name \
                 the sentinels with state=redis+sentinel://HOST:PORT,…/NAME"
                    .to_owned(),
            ));
        }
        Some("cluster") => return Err(Failure::refused(format!("the server is {NOT_CLUSTER}"))),
        _ => {}
    }
    if info.get("cluster_enabled") == Some("1") {
        return Err(Failure::refused(format!("the server is {NOT_CLUSTER}")));
    }
    if matches!(info.get("role"), Some("slave" | "replica")) {
        let of = match (info.get("master_host"), info.get("master_port")) {
            (Some(h), Some(p)) => format!(" of {}:{}", shown(h, 253), shown(p, 5)),
            _ => String::new(),
        };
        return Err(Failure::refused(format!(
            "the server is a replica{of}, which takes no writes; point state= at the \
             primary, or at its sentinels (redis+sentinel://)"
        )));
    }
    check_eviction(info)
}

/// Refuses a server that may evict keys: an evicted record or store record is a lost
/// replay mark (R34). Evicting nothing takes `maxmemory-policy noeviction`, or no memory
/// limit at all (`maxmemory 0`).
fn check_eviction(info: &Info<'_>) -> Result<(), Failure> {
    let field = |name: &str| info.get(name);
    let (Some(limit), Some(policy)) = (field("maxmemory"), field("maxmemory_policy")) else {
        return Err(Failure::corrupt(
            "INFO names no maxmemory and maxmemory_policy",
        ));
    };
    if limit == "0" || policy == "noeviction" {
        return Ok(());
    }
    let shown = shown(policy, 40);
    Err(Failure::refused(format!(
        "the server may evict pam_totp's records (maxmemory-policy {shown} with a memory \
         limit), which would make used codes usable again; set maxmemory-policy noeviction"
    )))
}

/// Size bounds of the replies (R36), checked before anything is buffered.
/// A record and its version.
const RECORD_REPLY: Limits = Limits {
    total: MAX_ENCODED_LEN + 256,
    items: 2,
};
/// The store record, its version and the server instance it is bound to
/// ([`crate::bound`]).
const STORE_REPLY: Limits = Limits {
    total: MAX_ENCODED_LEN + 512,
    items: 3,
};
/// `INFO memory` is about a kilobyte on current servers.
const INFO_REPLY: Limits = Limits {
    total: 64 * 1024,
    items: 0,
};
/// A status, an integer or an error line.
const SHORT_REPLY: Limits = Limits {
    total: 2048,
    items: 0,
};
/// A sentinel's address reply (two strings).
const SHORT_REPLY_2: Limits = Limits {
    total: 2048,
    items: 2,
};
/// `ROLE`: a primary lists its replicas (three fields each).
const ROLE_REPLY: Limits = Limits {
    total: 16 * 1024,
    items: 4 + 4 * 64,
};

/// Where the module's URL points (the forms [`totp_core::fleet::RedisEndpoint::url`]
/// writes).
struct Target {
    tls: bool,
    host: String,
    port: u16,
    unix: Option<String>,
    db: u32,
    /// With a sentinel URL: the sentinels and the name of the primary they monitor
    /// (`host` and `port` are then found by asking them).
    sentinel: Option<(Vec<(String, u16)>, String)>,
}

fn host_port(v: &str) -> Option<(String, u16)> {
    let (host, port) = v.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

fn parse_url(url: &str) -> Result<Target, Failure> {
    let bad = || Failure::invalid("bad server URL in configuration");
    if let Some(rest) = url.strip_prefix("redis+unix://") {
        let (path, db) = rest.split_once("?db=").ok_or_else(bad)?;
        return Ok(Target {
            tls: false,
            host: String::new(),
            port: 0,
            unix: Some(path.to_owned()),
            db: db.parse().map_err(|_| bad())?,
            sentinel: None,
        });
    }
    let sentinel = url
        .strip_prefix("redis+sentinel://")
        .map(|r| (false, r))
        .or_else(|| url.strip_prefix("rediss+sentinel://").map(|r| (true, r)));
    if let Some((tls, rest)) = sentinel {
        let mut parts = rest.split('/');
        let (Some(hosts), Some(name), Some(db), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let nodes = hosts
            .split(',')
            .map(host_port)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        return Ok(Target {
            tls,
            host: String::new(),
            port: 0,
            unix: None,
            db: db.parse().map_err(|_| bad())?,
            sentinel: Some((nodes, name.to_owned())),
        });
    }
    let (tls, rest) = match (url.strip_prefix("rediss://"), url.strip_prefix("redis://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return Err(bad()),
    };
    let (hostport, db) = rest.split_once('/').ok_or_else(bad)?;
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    Ok(Target {
        tls,
        host: host.to_owned(),
        port: port.parse().map_err(|_| bad())?,
        unix: None,
        db: db.parse().map_err(|_| bad())?,
        sentinel: None,
    })
}

/// Asks the sentinels, in order, where the primary `name` is, all before `deadline`.
/// Each sentinel gets an equal share of the time left, so one that stalls cannot use up
/// the others' time. The first answer wins: the role check on the server itself (ROLE)
/// catches a sentinel that is behind. With the address, why each sentinel asked before
/// the one that answered was passed over (`None`: the first answered), for the module's
/// log: a sentinel that fails unnoticed leaves the others one failure from losing their
/// quorum.
fn discover(
    nodes: &[(String, u16)],
    name: &str,
    tls: Option<&Tls<'_>>,
    deadline: Instant,
    not_primaries: &[(String, u16)],
) -> Result<((String, u16), Option<String>), Failure> {
    let mut why = Vec::new();
    // Nodes that answered for certain that they cannot name the primary.
    let mut definite = 0;
    // Some node answered as no sentinel monitoring `name` does (not a sentinel, not a
    // Redis server at all, or no `sentinel monitor` line of that name): the hint about
    // state='s ports and name is on the point only then, not for a certificate fault.
    let mut misnamed = false;
    for (i, (host, port)) in nodes.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(nodes.len() - i).unwrap_or(1);
        let until = Instant::now() + share;
        let addr = Address::Tcp { host, port: *port };
        let asked = Conn::connect(&addr, tls, until).and_then(|mut con| {
            con.call(
                &[b"SENTINEL", b"get-master-addr-by-name", name.as_bytes()],
                until,
                SHORT_REPLY_2,
            )
        });
        let answer = match asked {
            Ok(Reply::Array(Some(items))) => match items.as_slice() {
                [Reply::Bulk(Some(h)), Reply::Bulk(Some(p))] => std::str::from_utf8(h)
                    .ok()
                    .filter(|h| {
                        !h.is_empty()
                            && h.len() <= 253
                            && h.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b))
                    })
                    .zip(
                        std::str::from_utf8(p)
                            .ok()
                            .and_then(|p| p.parse::<u16>().ok()),
                    )
                    .map(|(h, p)| (h.to_owned(), p))
                    .ok_or_else(|| "an address that is not one".to_owned()),
                _ => Err("an unexpected reply".to_owned()),
            },
            Ok(Reply::Array(None)) => {
                definite += 1;
                misnamed = true;
                Err(format!("does not monitor {name}"))
            }
            Ok(Reply::Error(e)) if e.contains("unknown command") => {
                definite += 1;
                misnamed = true;
                Err("not a sentinel (it does not know SENTINEL)".to_owned())
            }
            Ok(Reply::Error(e)) => Err(shown(&e, 120)),
            Ok(_) => Err("an unexpected reply".to_owned()),
            Err(WireError::Timeout(_)) => Err(format!("no answer within {} ms", share.as_millis())),
            Err(WireError::Foreign(m)) => {
                definite += 1;
                misnamed = true;
                Err(m.chars().take(120).collect())
            }
            // Its certificate (or ours) failed: it answered, and stays so until an admin
            // acts. Nothing was asked of it, so the next sentinel is; but where every one
            // fails so, that is a refusal (no `state_fallback=`), as for one server.
            Err(WireError::Tls(m)) => {
                definite += 1;
                Err(m.chars().take(200).collect())
            }
            Err(e) => Err(e.to_string().chars().take(120).collect()),
        };
        match answer {
            Ok(found) if not_primaries.contains(&found) => why.push(format!(
                "sentinel {host}:{port}: names {}:{}, which says it is not the primary (a \
                 sentinel behind the others, or a failover in progress?)",
                found.0, found.1
            )),
            Ok(found) => {
                let skipped = (!why.is_empty()).then(|| {
                    let head = format!(
                        "{} of {} sentinels skipped before sentinel {host}:{port} named the \
                         primary (fix it, or take it out of state=, before the sentinels \
                         lose their quorum): ",
                        why.len(),
                        nodes.len(),
                    );
                    let list = fitted(&why, MESSAGE_ROOM.saturating_sub(head.len()));
                    head + &list
                });
                return Ok((found, skipped));
            }
            Err(e) => why.push(format!("sentinel {host}:{port}: {e}")),
        }
    }
    let head = format!("no sentinel named the primary {name}: ");
    if definite == nodes.len() {
        // Every address answered, and none is a sentinel that monitors the name: a
        // state= naming the wrong ports or the wrong name, or certificates that fail,
        // not an outage.
        let hint = if misnamed {
            " (redis+sentinel:// names the sentinels' ports, 26379 by default, and the \
             name of their `sentinel monitor` line)"
        } else {
            ""
        };
        let list = fitted(&why, MESSAGE_ROOM.saturating_sub(head.len() + hint.len()));
        return Err(Failure::refused(format!("{head}{list}{hint}")));
    }
    let list = fitted(&why, MESSAGE_ROOM.saturating_sub(head.len()));
    Err(Failure::unavailable(head + &list))
}

/// After a refused `AUTH`: whether the server is a sentinel after all, which has no
/// users and so refuses any credentials, and still answers `INFO` (a server that wants
/// a password answers it `NOAUTH`). Reads the replies behind `AUTH` up to `INFO`'s,
/// before `deadline`; `None` when it is not a sentinel or cannot tell. Without this, a
/// sentinel's port named with the hosts' credentials reads as a wrong password.
fn sentinel_behind(
    con: &mut Conn,
    steps: &[(Step, Vec<&[u8]>)],
    deadline: Instant,
) -> Option<Failure> {
    for (step, _) in steps.iter().skip(1) {
        let limits = match step {
            Step::Info => INFO_REPLY,
            Step::Role => ROLE_REPLY,
            _ => SHORT_REPLY,
        };
        let reply = con.receive(deadline, limits).ok()?;
        if let Step::Info = step {
            let Reply::Bulk(Some(info)) = reply else {
                return None;
            };
            return check_server(&Info::parse(&info))
                .err()
                .filter(|f| f.message.contains("Sentinel"));
        }
    }
    None
}

/// Whether an error reply to `AUTH` is about the credentials (a wrong password or user,
/// a server without a password, a server too old for a user name), as opposed to the
/// server's state, which it reports to any first command (`ERR max number of clients
/// reached`, `LOADING`, `BUSY`).
fn is_password_refusal(error: &str) -> bool {
    // A copy of an error that may quote the password.
    let lower = Zeroizing::new(error.to_ascii_lowercase());
    if lower.contains("unknown command") {
        // `AUTH` renamed or disabled (`rename-command`): the server's configuration.
        return false;
    }
    error.starts_with("WRONGPASS") || lower.contains("password") || lower.contains("auth")
}

/// How Redis introduces the arguments it quotes in an error.
const ARGUMENTS: &str = ", with args beginning with:";

/// What an error reply says, without the arguments of the command it refuses: Redis
/// quotes them in `unknown command 'AUTH', with args beginning with: 'USER' 'PASSWORD'`
/// (a server where `AUTH` is renamed or disabled), and the password must never reach the
/// log or an admin tool's output.
fn without_arguments(error: &str) -> std::borrow::Cow<'_, str> {
    match error.split_once(ARGUMENTS) {
        Some((head, _)) => format!("{head} (its arguments not shown)").into(),
        None => error.into(),
    }
}

/// [`without_arguments`] in place, before anything else reads the text: a substring
/// search (`str::contains`) loads the text in 16-byte blocks whose copies stay on the
/// stack, so the password must be gone from it first. The text is shortened within its
/// own buffer (no copy); what was cut off stays in the buffer's spare capacity until
/// the caller's `Zeroizing` wipes the whole buffer.
fn cut_arguments(error: &mut String) {
    const NOTE: &str = " (its arguments not shown)";
    if let Some(at) = error.find(ARGUMENTS) {
        error.truncate(at);
        // Shorter than what was cut: fits in the buffer, so no copy is made.
        error.push_str(NOTE);
    }
}

/// An error reply saying the function library is not there (Redis 7 and Valkey say
/// "Function not found"; older servers do not know FCALL).
fn is_missing_function(message: &str) -> bool {
    message.contains("Function not found") || message.contains("unknown command")
}

/// The command an ACL refused inside our compare-and-set, from the server's error: the
/// body's own check before writing, and Redis 7.2 and later, name it (`… run the
/// 'expire' command …`); older servers name only the line of the script or function
/// (`… on @user_script:9.`, the `HGET` or, on a server without the check, a write),
/// which is read in `source`, the text the server ran. `None` when the error says
/// neither.
fn denied_command(error: &str, source: &str) -> Option<String> {
    let named = error
        .split_once("run the '")
        .and_then(|(_, rest)| rest.split_once("' command"))
        .map(|(name, _)| name.to_owned());
    let from_line = || {
        let (_, rest) = error
            .split_once("@user_function:")
            .or_else(|| error.split_once("@user_script:"))?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let line = source
            .lines()
            .nth(digits.parse::<usize>().ok()?.checked_sub(1)?)?;
        let (_, call) = line.split_once("redis.call('")?;
        let (name, _) = call.split_once('\'')?;
        Some(name.to_owned())
    };
    named
        .or_else(from_line)
        .map(|n| shown(&n.to_ascii_lowercase(), 40))
        .filter(|n| !n.is_empty())
}

/// A refusal of the compare-and-set that ran `source`: names the ACL permission the user
/// lacks where the error tells which (an ACL that allows `FCALL` but not a command the
/// function runs is refused only when that command runs, after the version compared).
fn name_denied(mut f: Failure, source: &str) -> Failure {
    if f.status == Status::Refused
        && let Some(cmd) = denied_command(&f.message, source)
    {
        f.message.push_str(&format!(
            " (the ACL user lacks +{cmd}, which the compare-and-set runs: see the hosts' \
             ACL in docs/fleet.md)"
        ));
    }
    f
}

/// One command of the open's pipeline, in the order sent.
#[derive(Clone, Copy)]
enum Step {
    Auth,
    Select,
    Role,
    Load,
    Info,
    /// The HMGET of `PluginConfig::prefetch[i]`.
    Read(usize),
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Auth => "AUTH",
            Step::Select => "SELECT",
            Step::Role => "ROLE",
            Step::Load => "FUNCTION LOAD",
            Step::Info => "INFO",
            Step::Read(_) => "HMGET",
        }
    }
}

/// A record and its version, or why it could not be read.
type Read = Result<(Vec<u8>, u64), Failure>;

/// What an `HMGET key v r` reply says: the record and its version, `(empty, 0)` when
/// there is none.
fn parse_record(reply: Reply) -> Read {
    let Reply::Array(Some(items)) = reply else {
        return Err(Failure::corrupt("unexpected HMGET reply"));
    };
    match items.as_slice() {
        [Reply::Bulk(None), Reply::Bulk(None)] => Ok((Vec::new(), 0)),
        [Reply::Bulk(Some(v)), Reply::Bulk(Some(r))] => {
            // Only the form the compare-and-set writes (`%d`: no sign, no leading zero),
            // which is also the form it compares, as a string, with the version the
            // module sends back: `01` read as 1 would conflict on every write, an endless
            // "concurrent update" that no reset could end.
            let version = std::str::from_utf8(v)
                .ok()
                .filter(|s| {
                    !s.is_empty()
                        && s.len() <= 20
                        && !s.starts_with('0')
                        && s.bytes().all(|b| b.is_ascii_digit())
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

/// The store record the module decided with: its version, binding and record.
type StoreSeen = (u64, Vec<u8>, Vec<u8>);

/// A store record as read: the record and its version (as [`parse_record`] gives them),
/// and the server instance its `i` field binds it to.
type StoreRead = Result<(Vec<u8>, u64, Option<Vec<u8>>), Failure>;

/// What an `HMGET key v r i` reply says about the store record.
fn parse_store(reply: Reply) -> StoreRead {
    let Reply::Array(Some(mut items)) = reply else {
        return Err(Failure::corrupt("unexpected HMGET reply"));
    };
    let bound = match items.pop() {
        Some(Reply::Bulk(b)) if items.len() == 2 => b,
        _ => return Err(Failure::corrupt("unexpected HMGET reply")),
    };
    let (record, version) = parse_record(Reply::Array(Some(items)))?;
    Ok((record, version, bound))
}

/// Where versions of a created key start: at random in [2^32, 2^52). Never 1 nor a
/// version a key reaches by counting (that takes 2^32 writes), and two creations of one
/// key pick the same start with a chance of 2^-52: a login that read a key deleted and
/// created again since finds another version (R34). Below 2^52, which the function's
/// Lua numbers (doubles) count up exactly for another 2^52 writes.
///
/// From the kernel (`getrandom(2)`), not OpenSSL's generator: OpenSSL's first use in a
/// process loads its configuration (`openssl.cnf`, or whatever file `OPENSSL_CONF`
/// names, read without a bound: a FIFO there held the login forever), which a host on
/// plain `redis://` never needed. No state of ours survives a fork, no thread is
/// started; a failure is an outage of this write (the login is denied, nothing written).
fn new_key_version() -> Result<u64, Failure> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| {
        Failure::unavailable(format!("no random start for a new record's version: {e}"))
    })?;
    Ok(start_version(u64::from_le_bytes(bytes)))
}

/// The start [`new_key_version`] takes for the random number `random`: the whole range
/// [2^32, 2^52) and nothing outside it, whatever `random` is.
fn start_version(random: u64) -> u64 {
    (1 << 32) + random % ((1 << 52) - (1 << 32))
}

pub struct Backend {
    con: Conn,
    /// Compare-and-set through the function library (until the server says it has none).
    use_function: bool,
    wait_replicas: u32,
    wait_timeout_ms: u64,
    command_timeout: Duration,
    /// The keys read while opening and what each read gave, until asked for (once) or
    /// anything is written.
    prefetched: Vec<(Vec<u8>, Read)>,
    /// The server's clock as the open's `INFO` gave it (`server_time_usec`, in
    /// microseconds) and when that reply was read here; `None` for a server whose `INFO`
    /// has no such field (before Redis 6.2), which is asked `TIME` instead.
    clock: Option<(u64, Instant)>,
    /// `connected_slaves` of the open's `INFO`: the replicas a `WAIT` could count on
    /// then, named when too few acknowledge.
    replicas: Option<u64>,
    /// `<prefix>store`: the one key bound to the server instance ([`crate::bound`]).
    store_key: Option<Vec<u8>>,
    /// The server instance the open's `INFO` describes ([`bound::instance_of`]).
    instance: Option<bound::Instance>,
    /// The store record as the module last read or wrote it: its version and binding
    /// (`v` and `i`), which every write of a user's record compares (R34), and the
    /// record itself; `None` until the module has one.
    store_seen: Option<StoreSeen>,
    /// The store record as the open read it, until asked for (once) or anything is
    /// written.
    prefetched_store: Option<StoreRead>,
    /// Why the sentinels asked before the one that named the primary were passed over,
    /// until taken (the module logs it).
    note: Option<String>,
}

/// `server_time_usec` of an `INFO` reply (Redis 6.2 and later, Valkey).
fn info_clock(info: &Info<'_>) -> Option<u64> {
    info.get("server_time_usec").and_then(|v| v.parse().ok())
}

/// The seconds of a `TIME` reply (`[seconds, microseconds]`, as bulk strings).
fn time_reply(reply: &Reply) -> Option<u64> {
    let Reply::Array(Some(items)) = reply else {
        return None;
    };
    match items.first() {
        Some(Reply::Bulk(Some(secs))) => std::str::from_utf8(secs).ok()?.parse().ok(),
        _ => None,
    }
}

impl Backend {
    /// Connects, authenticates and selects the database within the connect timeout,
    /// then checks the server's eviction policy and reads the prefetch keys within one
    /// command timeout: an open takes at most `redis_connect_timeout + redis_timeout`,
    /// and one round trip after the connect.
    ///
    /// Through Sentinel, a server a sentinel names that says it is not the primary (a
    /// sentinel behind the others, or one that disagrees with them) is not used, and the
    /// sentinels are asked again, that address no longer taken from any of them, within
    /// the same connect bound: one sentinel that is wrong does not deny the fleet's logins
    /// while the others name the primary.
    pub fn connect(config: PluginConfig) -> Result<Self, Failure> {
        let connect = Duration::from_millis(config.connect_timeout_ms.max(1));
        let deadline = Instant::now() + connect;
        let mut not_primaries: Vec<(String, u16)> = Vec::new();
        loop {
            let mut not_primary = None;
            match Self::connect_by(config.clone(), deadline, &not_primaries, &mut not_primary) {
                // Each round rules out one more address a sentinel named; a round in
                // which no sentinel names another one ends in `discover`'s failure.
                Err(_)
                    if not_primary.is_some()
                        && not_primaries.len() < totp_core::fleet::MAX_SENTINELS =>
                {
                    not_primaries.extend(not_primary);
                }
                done => return done,
            }
        }
    }

    fn connect_by(
        mut config: PluginConfig,
        deadline: Instant,
        not_primaries: &[(String, u16)],
        not_primary: &mut Option<(String, u16)>,
    ) -> Result<Self, Failure> {
        let target = parse_url(&config.url)?;
        let connect = Duration::from_millis(config.connect_timeout_ms.max(1));
        let command = Duration::from_millis(config.command_timeout_ms.max(1));
        let ca = config.ca_pem.take();
        let client_key: Option<Zeroizing<Vec<u8>>> = config.client_key.take();
        let client = match (&config.client_cert, &client_key) {
            (Some(c), Some(k)) => Some((c.as_slice(), k.as_slice())),
            _ => None,
        };
        let tls = Tls {
            ca_pem: ca.as_deref(),
            client,
        };
        let mut note = None;
        let primary = match &target.sentinel {
            Some((nodes, name)) => {
                let (found, skipped) = discover(
                    nodes,
                    name,
                    target.tls.then_some(&tls),
                    deadline,
                    not_primaries,
                )?;
                note = skipped;
                Some(found)
            }
            None => None,
        };
        let addr = match (&target.unix, &primary) {
            (Some(path), _) => Address::Unix { path },
            (None, Some((host, port))) => Address::Tcp { host, port: *port },
            (None, None) => Address::Tcp {
                host: &target.host,
                port: target.port,
            },
        };
        let mut con = Conn::connect(&addr, target.tls.then_some(&tls), deadline)
            .map_err(|e| Failure::wire("connect", e, connect))?;
        // A TLS 1.3 server checks the client certificate after the handshake: without
        // one, a server with `tls-auth-clients yes` ends the connection at the first
        // command with an alert (a refusal, also when it waits behind a reset of our
        // send: `Conn::send_failed`). A close without one stays an outage; the log
        // names the likely cause either way.
        let no_client_cert = target.tls && tls.client.is_none();
        let hint = |mut f: Failure| {
            // Only for a connection that broke (not a timeout, not an error reply).
            let broke = ["send:", "receive:", "connection closed"]
                .iter()
                .any(|w| f.message.contains(w));
            if no_client_cert && broke {
                f.message.push_str(
                    " (the server ended the TLS connection after the handshake: does it \
                     require a client certificate? see redis_client_cert=)",
                );
            } else if !target.tls && broke {
                // Indistinguishable from a proxy whose server is down, so still an outage;
                // but two misconfigurations look exactly like this.
                f.message.push_str(
                    " (the server ended the connection without a reply: a TLS port, which \
                     needs rediss://? a proxy such as twemproxy, which closes the \
                     connection at commands it does not support?)",
                );
            }
            f
        };
        let password: Option<Zeroizing<String>> = config.password.take();
        // The open is one round trip (the connect aside): every command below goes out
        // in one write, and the replies are read in order, each bounded as if it had
        // been sent alone. What a command must prove (the password, the primary's role,
        // an evicting server) still fails the open at its own reply, before any later
        // reply is used; a command the server refuses because an earlier one failed
        // (NOAUTH after a wrong password) is never read.
        let db = target.db.to_string();
        let mut steps: Vec<(Step, Vec<&[u8]>)> = Vec::new();
        if let Some(p) = password.as_ref() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &config.username {
                args.push(u.as_bytes());
            }
            args.push(p.as_bytes());
            steps.push((Step::Auth, args));
        }
        if target.db != 0 {
            steps.push((Step::Select, vec![b"SELECT", db.as_bytes()]));
        }
        if primary.is_some() {
            steps.push((Step::Role, vec![b"ROLE"]));
        }
        if config.install_functions {
            steps.push((
                Step::Load,
                vec![b"FUNCTION", b"LOAD", b"REPLACE", LIBRARY.as_bytes()],
            ));
        }
        // The open must prove the server answers (state_fallback=local acts on a failed
        // open only), that it is the kind of server that takes our writes (not a
        // sentinel, a cluster node or a replica) and that it will keep them: one INFO
        // (its default sections: server, replication, memory, cluster) does all three
        // (and shows a server that wants a password, NOAUTH).
        steps.push((Step::Info, vec![b"INFO"]));
        let store_key = config.store_key.take();
        for (i, key) in config.prefetch.iter().enumerate() {
            let mut args: Vec<&[u8]> = vec![b"HMGET", key.as_slice(), b"v", b"r"];
            if store_key.as_deref() == Some(key.as_slice()) {
                args.push(b"i");
            }
            steps.push((Step::Read(i), args));
        }
        // Sent within the connect bound when the first command belongs to it (as AUTH
        // alone was), within a command bound otherwise (as INFO alone was).
        let (first, send_by, send_limit) = match steps.first() {
            Some((Step::Info, _)) | None => ("INFO", Instant::now() + command, command),
            Some((step, _)) => (step.name(), deadline, connect),
        };
        let commands: Vec<&[&[u8]]> = steps.iter().map(|(_, a)| a.as_slice()).collect();
        con.send_all(&commands, send_by)
            .map_err(|e| hint(Failure::wire(first, e, send_limit)))?;
        let mut info_deadline = None;
        let mut clock = None;
        let mut replicas = None;
        let mut instance = None;
        let mut prefetched_store = None;
        let mut prefetched = Vec::with_capacity(config.prefetch.len());
        for (step, _) in &steps {
            match step {
                Step::Auth => match con.receive(deadline, SHORT_REPLY) {
                    Ok(Reply::Status(_)) => {}
                    Ok(Reply::Error(e)) => {
                        // A server that does not know AUTH quotes the password in it.
                        let mut e = Zeroizing::new(e);
                        cut_arguments(&mut e);
                        // Protected mode refuses the connection before any command is
                        // read: its reply is not about the password.
                        if e.starts_with("DENIED") {
                            return Err(Failure::server("AUTH", &e));
                        }
                        // A server at `maxclients` (or loading, or busy) answers the
                        // first command, whatever it is, with its own state: an outage,
                        // not a wrong password, and never the credentials file's fault.
                        if !is_password_refusal(&e) {
                            return Err(hint(Failure::server("AUTH", &e)));
                        }
                        let shown = shown(&without_arguments(&e), 200);
                        let failed =
                            Failure::refused(format!("Password authentication failed: {shown}"));
                        return Err(sentinel_behind(&mut con, &steps, deadline).unwrap_or(failed));
                    }
                    Ok(_) => return Err(Failure::corrupt("unexpected AUTH reply")),
                    Err(e) => return Err(hint(Failure::wire("AUTH", e, connect))),
                },
                Step::Select => match con.receive(deadline, SHORT_REPLY) {
                    Ok(Reply::Status(_)) => {}
                    Ok(Reply::Error(e)) => return Err(Failure::server("SELECT", &e)),
                    Ok(_) => return Err(Failure::corrupt("unexpected SELECT reply")),
                    Err(e) => return Err(Failure::wire("SELECT", e, connect)),
                },
                Step::Role => {
                    // What a sentinel said may be out of date (a failover in progress):
                    // only a server that says it is the primary takes writes.
                    let (host, port) = primary.as_ref().map_or(("", 0), |(h, p)| (h, *p));
                    match con.receive(deadline, ROLE_REPLY) {
                        Ok(Reply::Array(Some(items))) if matches!(items.first(), Some(Reply::Bulk(Some(r))) if r == b"master") =>
                            {}
                        Ok(Reply::Error(e)) => return Err(Failure::server("ROLE", &e)),
                        Ok(_) => {
                            *not_primary = primary.clone();
                            return Err(Failure::unavailable(format!(
                                "{host}:{port}, named the primary by a sentinel, is not the \
                                 primary (a failover in progress?)"
                            )));
                        }
                        Err(e) => return Err(Failure::wire("ROLE", e, connect)),
                    }
                }
                Step::Load => match con.receive(deadline, SHORT_REPLY) {
                    Ok(Reply::Bulk(Some(name))) if name == b"pam_totp" => {}
                    // A server before Redis 7 has no functions: hosts use the script.
                    Ok(Reply::Error(e)) if e.contains("unknown command") => {}
                    Ok(Reply::Error(e)) => return Err(Failure::server("FUNCTION LOAD", &e)),
                    Ok(_) => return Err(Failure::corrupt("unexpected FUNCTION LOAD reply")),
                    Err(e) => return Err(Failure::wire("FUNCTION LOAD", e, connect)),
                },
                Step::Info => {
                    // One command bound from here for INFO and the reads behind it:
                    // they arrive together.
                    let by = Instant::now() + command;
                    info_deadline = Some(by);
                    let info = match con.receive(by, INFO_REPLY) {
                        Ok(Reply::Bulk(Some(v))) => v,
                        Ok(Reply::Error(e)) => return Err(hint(Failure::server("INFO", &e))),
                        Ok(_) => return Err(Failure::corrupt("unexpected INFO reply")),
                        Err(e) => return Err(hint(Failure::wire("INFO", e, command))),
                    };
                    let info = Info::parse(&info);
                    check_server(&info)?;
                    clock = info_clock(&info).map(|usec| (usec, Instant::now()));
                    replicas = info.get("connected_slaves").and_then(|v| v.parse().ok());
                    instance = bound::instance_of(
                        info.get("master_replid"),
                        info.get("master_replid2"),
                        info.get("run_id"),
                    );
                }
                Step::Read(i) => {
                    let by = info_deadline.unwrap_or_else(|| Instant::now() + command);
                    let key = &config.prefetch[*i];
                    let is_store = store_key.as_deref() == Some(key.as_slice());
                    let limits = if is_store { STORE_REPLY } else { RECORD_REPLY };
                    // A record read here is reported where the module reads it, as if
                    // read then: a damaged record, an error reply, or a reply cut off
                    // (the connection is then unusable, and every later read with it).
                    let reply = match con.receive(by, limits) {
                        Ok(Reply::Error(e)) => Err(Failure::server("HMGET", &e)),
                        Ok(r) => Ok(r),
                        Err(e) => Err(Failure::wire("HMGET", e, command)),
                    };
                    if is_store {
                        prefetched_store = Some(reply.and_then(parse_store));
                    } else {
                        prefetched.push((key.clone(), reply.and_then(parse_record)));
                    }
                }
            }
        }
        Ok(Self {
            use_function: true,
            con,
            wait_replicas: config.wait_replicas,
            wait_timeout_ms: config.wait_timeout_ms,
            command_timeout: command,
            prefetched,
            clock,
            replicas,
            store_key,
            instance,
            store_seen: None,
            prefetched_store,
            note,
        })
    }

    /// The sentinels passed over before one named the primary, and why; once.
    pub fn take_note(&mut self) -> Option<String> {
        self.note.take()
    }

    /// The server's clock now, in unix seconds: the open's `INFO` time plus what elapsed
    /// here since (no round trip); `TIME` for a server whose `INFO` did not say.
    pub fn server_time(&mut self) -> Result<u64, Failure> {
        if let Some((usec, read_at)) = self.clock {
            let since = u64::try_from(read_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            return Ok(usec.saturating_add(since) / 1_000_000);
        }
        let reply = self.call("TIME", &[b"TIME"], SHORT_REPLY_2)?;
        time_reply(&reply).ok_or_else(|| Failure::corrupt("unexpected TIME reply"))
    }

    /// One command within the command timeout; an error reply becomes a [`Failure`].
    fn call(&mut self, what: &str, args: &[&[u8]], limits: Limits) -> Result<Reply, Failure> {
        self.call_within(what, args, limits, self.command_timeout)
    }

    fn call_within(
        &mut self,
        what: &str,
        args: &[&[u8]],
        limits: Limits,
        limit: Duration,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + limit;
        match self.con.call(args, deadline, limits) {
            Ok(Reply::Error(e)) => Err(Failure::server(what, &e)),
            Ok(r) => Ok(r),
            Err(e) => Err(Failure::wire(what, e, limit)),
        }
    }

    /// The record and its version; `(empty, 0)` when the user has none. A key read while
    /// opening is answered from that read, once.
    pub fn get(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        if self.is_store_key(key) {
            self.store_seen = None;
            let (record, bound_to) = self.read_store(key)?;
            return match record {
                StoreRecord::Absent | StoreRecord::Stale(..) => Ok((Vec::new(), 0)),
                StoreRecord::Current(record, version) => {
                    self.store_seen = bound_to.map(|i| (version, i, record.clone()));
                    Ok((record, version))
                }
                StoreRecord::Unbound(record, version) => {
                    let binding = self.bind(key)?;
                    self.store_seen = Some((version, binding, record.clone()));
                    Ok((record, version))
                }
            };
        }
        if let Some(i) = self
            .prefetched
            .iter()
            .position(|(k, _)| k.as_slice() == key)
        {
            return self.prefetched.swap_remove(i).1;
        }
        let reply = self.call("HMGET", &[b"HMGET", key, b"v", b"r"], RECORD_REPLY)?;
        parse_record(reply)
    }

    fn is_store_key(&self, key: &[u8]) -> bool {
        self.store_key.as_deref() == Some(key)
    }

    /// The store record and what it is on this server instance ([`crate::bound`]), and
    /// its binding (`i`) as stored.
    fn read_store(&mut self, key: &[u8]) -> Result<(StoreRecord, Option<Vec<u8>>), Failure> {
        let read = match self.prefetched_store.take() {
            Some(read) => read,
            None => {
                parse_store(self.call("HMGET", &[b"HMGET", key, b"v", b"r", b"i"], STORE_REPLY)?)
            }
        };
        let (record, version, bound_to) = read?;
        let instance = self.instance()?;
        let record = bound::classify(record, version, bound_to.as_deref(), &instance);
        Ok((record, bound_to))
    }

    /// The instance the open's `INFO` named. Without one a rolled-back data set could
    /// not be told apart (R34): the store record is not used.
    fn instance(&self) -> Result<bound::Instance, Failure> {
        self.instance.clone().ok_or_else(|| {
            Failure::corrupt(
                "the server's INFO names neither master_replid nor run_id: the store record \
                 cannot be bound to the server instance",
            )
        })
    }

    /// Binds the store record under `key` to this server instance (its `i` field), and
    /// returns the binding written.
    /// Unconditional: whatever record a host finds there on this instance was written or
    /// checked on it, or is the previous release's, which is bound on its first read.
    fn bind(&mut self, key: &[u8]) -> Result<Vec<u8>, Failure> {
        let binding = self.instance()?.binding().into_bytes();
        match self.call("HSET", &[b"HSET", key, b"i", &binding], SHORT_REPLY)? {
            Reply::Int(_) => Ok(binding),
            _ => Err(Failure::corrupt("unexpected HSET reply")),
        }
    }

    /// Writes `record` if the version is still `expected`; [`Status::Conflict`] if not.
    /// A durable write with `redis_wait=N` also waits for N replicas to acknowledge.
    ///
    /// The store record is bound to this server instance once written. Its create
    /// ("expected 0", after [`Backend::get`] reported a stale record absent) replaces a
    /// stale record by a compare-and-set on that record's version, keeping its store key
    /// ([`bound::replacement`]): of several hosts recreating it, one wins and the others
    /// read its record.
    pub fn compare_and_set(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        ttl_secs: u64,
        durable: bool,
    ) -> Result<Status, Failure> {
        // What was read while opening may be stale after any write.
        self.prefetched.clear();
        self.prefetched_store = None;
        if !self.is_store_key(key) {
            return Ok(self.cas_record(key, expected, record, ttl_secs, durable)?.0);
        }
        // Known again only once written here; the module reads it again otherwise.
        self.store_seen = None;
        let (expected, written, bound_first) = if expected == 0 {
            match self.read_store(key)?.0 {
                // Bound before it is created: a snapshot or a replica's stream cut between
                // the create and a later binding would carry an unbound record, which the
                // next instance would take for its own (R34). A hash holding only the
                // binding still reads as absent, and the create keeps the field.
                StoreRecord::Absent => {
                    self.bind(key)?;
                    (0, Zeroizing::new(record.to_vec()), true)
                }
                // Created or bound by another host since the module read: it reads again.
                StoreRecord::Current(..) | StoreRecord::Unbound(..) => {
                    return Ok(Status::Conflict);
                }
                StoreRecord::Stale(stale, version) => {
                    let now = self.server_time()?;
                    let merged = bound::replacement(record, &stale, now)?;
                    (version, Zeroizing::new(merged), false)
                }
            }
        } else {
            (expected, Zeroizing::new(record.to_vec()), false)
        };
        let (status, version) = self.cas_record(key, expected, &written, ttl_secs, durable)?;
        if status == Status::Ok {
            // A replaced stale record is bound only once replaced: bound first, its old
            // contents would read as this instance's.
            let binding = if bound_first {
                self.instance()?.binding().into_bytes()
            } else {
                self.bind(key)?
            };
            self.store_seen = Some((version, binding, written.to_vec()));
        }
        Ok(status)
    }

    /// [`Backend::compare_and_set`] of any record, the store record's binding aside; with
    /// the version the record has once written.
    fn cas_record(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        ttl_secs: u64,
        durable: bool,
    ) -> Result<(Status, u64), Failure> {
        if record.len() > MAX_ENCODED_LEN {
            return Err(Failure::invalid("record too large"));
        }
        // The function counts a version up by one, and starts a key it creates (only
        // where "0", absent, is expected) at `start`.
        let written = if expected == 0 {
            new_key_version()?
        } else {
            expected.saturating_add(1)
        };
        let start = written.to_string();
        let expected = expected.to_string();
        let ttl = ttl_secs.to_string();
        // A user's record is written only while the store record is the one the login
        // decided with (R34); the store record itself compares its own version.
        let store = match (&self.store_seen, &self.store_key) {
            (Some((version, binding, _)), Some(store_key)) if store_key.as_slice() != key => {
                Some((store_key.clone(), version.to_string(), binding.clone()))
            }
            _ => None,
        };
        let keys: &[u8] = if store.is_some() { b"2" } else { b"1" };
        let with_keys = |command: &'static [u8], body: &'static [u8]| {
            let mut args: Vec<&[u8]> = vec![command, body, keys, key];
            if let Some((store_key, _, _)) = &store {
                args.push(store_key);
            }
            args.extend([
                expected.as_bytes(),
                record,
                ttl.as_bytes(),
                start.as_bytes(),
            ]);
            if let Some((_, version, binding)) = &store {
                args.extend([version.as_bytes(), binding.as_slice()]);
            }
            args
        };
        let mut reply = None;
        if self.use_function {
            let args = with_keys(b"FCALL", CAS_FUNCTION.as_bytes());
            match self.call("FCALL", &args, SHORT_REPLY) {
                Ok(r) => reply = Some(r),
                // No library (not installed, or a server before Redis 7): the script,
                // for the rest of this connection.
                Err(f) if is_missing_function(&f.message) => self.use_function = false,
                Err(f) => return Err(name_denied(f, LIBRARY)),
            }
        }
        let reply = match reply {
            Some(r) => r,
            None => {
                let args = with_keys(b"EVAL", CAS_SCRIPT.as_bytes());
                self.call("EVAL", &args, SHORT_REPLY).map_err(|f| {
                    // Refused inside the script (not EVAL itself): the command it names.
                    if denied_command(&f.message, CAS_SCRIPT).is_some_and(|c| c != "eval") {
                        return name_denied(f, CAS_SCRIPT);
                    }
                    let mut f = f;
                    // A host ACL without EVAL needs the library: say how it comes back.
                    if f.status == Status::Refused {
                        f.message.push_str(&format!(
                            " (the function {CAS_FUNCTION} is not on the server: its \
                             library pam_totp was never installed, was installed by an \
                             earlier release, or was lost with the data set; run \
                             `totp-state init`, which after a data loss also recreates \
                             the store record without reopening a used code)"
                        ));
                    }
                    f
                })?
            }
        };
        match reply {
            Reply::Int(0) => return Ok((Status::Conflict, written)),
            Reply::Int(1) => {}
            // The store record changed since the login read it. Replaced again on this
            // instance with its store key kept, nothing was lost in between: a conflict,
            // and the module decides again. Otherwise its decision used the floor of a
            // store record that is gone, which reading the user's record again cannot
            // settle: nothing written, and the module reads the store record again
            // before it decides again.
            Reply::Int(2) if store.is_some() => {
                if self.store_kept()? {
                    return Ok((Status::Conflict, written));
                }
                self.store_seen = None;
                return Err(Failure {
                    status: Status::StoreChanged,
                    message: STORE_CHANGED.to_owned(),
                });
            }
            _ => return Err(Failure::corrupt("unexpected script reply")),
        }
        if durable && self.wait_replicas > 0 {
            // The server answers WAIT only when its own timeout runs out.
            let limit = Duration::from_millis(self.wait_timeout_ms) + self.command_timeout;
            let n = self.wait_replicas.to_string();
            let ms = self.wait_timeout_ms.to_string();
            let acked = match self.call_within(
                "WAIT",
                &[b"WAIT", n.as_bytes(), ms.as_bytes()],
                SHORT_REPLY,
                limit,
            )? {
                Reply::Int(a) => a,
                _ => return Err(Failure::corrupt("unexpected WAIT reply")),
            };
            if acked < i64::from(self.wait_replicas) {
                let connected = match self.replicas {
                    Some(n) => format!(
                        "; the server had {n} connected replicas when this connection opened"
                    ),
                    None => String::new(),
                };
                return Err(Failure::refused(format!(
                    "only {acked} of {n} replicas acknowledged the write within {ms} ms \
                     (redis_wait={n} redis_wait_timeout={ms}{connected})"
                )));
            }
        }
        Ok((Status::Ok, written))
    }

    /// After a write refused because the store record changed: whether it is still the
    /// one the login decided with in what matters (R34), and if so it is taken as the
    /// one to compare from now on. That is a record bound to the same instance as the
    /// one read, which this connection's instance holds, with the same store key: only
    /// another host replacing the stale record again before the first replacement was
    /// bound ([`crate::bound`]), a floor no lower on the same data set. A lost or
    /// flushed data set leaves no record or one with a new store key; a failover or a
    /// restart, one bound to another instance.
    fn store_kept(&mut self) -> Result<bool, Failure> {
        let (Some((_, binding, record)), Some(key)) =
            (self.store_seen.clone(), self.store_key.clone())
        else {
            return Ok(false);
        };
        let reply = self.call("HMGET", &[b"HMGET", &key, b"v", b"r", b"i"], STORE_REPLY)?;
        let (now, version, bound_to) = parse_store(reply)?;
        let same_key = match (StoreContext::decode(&record), StoreContext::decode(&now)) {
            (Ok(a), Ok(b)) => a.key == b.key,
            _ => false,
        };
        let kept = version != 0
            && same_key
            && bound_to.as_deref() == Some(binding.as_slice())
            && self.instance()?.holds(&binding);
        if kept {
            self.store_seen = Some((version, binding, now));
        }
        Ok(kept)
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<(), Failure> {
        self.prefetched.clear();
        self.prefetched_store = None;
        if self.is_store_key(key) {
            self.store_seen = None;
        }
        match self.call("DEL", &[b"DEL", key], SHORT_REPLY)? {
            Reply::Int(_) => Ok(()),
            _ => Err(Failure::corrupt("unexpected DEL reply")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server on a Unix socket that answers each chunk the client sends (a pipeline is
    /// one write) with the next scripted bytes, and returns the chunks it was sent.
    fn scripted(replies: Vec<&'static [u8]>) -> (PathBuf, std::thread::JoinHandle<Vec<String>>) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pam_totp_redis-test-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let Ok((mut s, _)) = listener.accept() else {
                return seen;
            };
            for reply in replies {
                let mut buf = vec![0u8; 65536];
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    _ => break,
                }
                if s.write_all(reply).is_err() {
                    break;
                }
            }
            seen
        });
        (path, server)
    }

    fn config(path: &std::path::Path, keys: &[&[u8]]) -> PluginConfig {
        PluginConfig {
            url: format!("redis+unix://{}?db=0", path.display()),
            connect_timeout_ms: 500,
            command_timeout_ms: 500,
            prefetch: keys.iter().map(|k| k.to_vec()).collect(),
            ..PluginConfig::default()
        }
    }

    /// `INFO memory` of a server without a memory limit.
    const INFO_OK: &[u8] = b"$43\r\n# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:x\r\n\r\n";

    /// Opens a connection to a server scripted with `replies` ([`scripted`]), with the
    /// configuration `configure` makes for its socket, and hands the open's result to
    /// `run`; once `run` is done (and the connection closed with it), returns what `run`
    /// returned and the chunks the server was sent.
    fn against<T>(
        replies: Vec<&'static [u8]>,
        configure: impl FnOnce(&std::path::Path) -> PluginConfig,
        run: impl FnOnce(Result<Backend, Failure>) -> T,
    ) -> (T, Vec<String>) {
        let (path, server) = scripted(replies);
        let out = run(Backend::connect(configure(&path)));
        let seen = server.join().expect("server");
        let _ = std::fs::remove_file(&path);
        (out, seen)
    }

    /// `configure` for [`against`]: the default test configuration reading `keys`.
    fn reading(keys: &'static [&'static [u8]]) -> impl FnOnce(&std::path::Path) -> PluginConfig {
        move |path| config(path, keys)
    }

    #[test]
    fn the_server_clock_comes_from_the_open_s_info_without_a_round_trip() {
        let info: &[u8] = b"$88\r\n# Server\r\nserver_time_usec:1700000025999999\r\n# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:x\r\n\r\n";
        let (t, seen) = against(vec![info], reading(&[]), |b| {
            b.expect("open").server_time().expect("clock")
        });
        // The microseconds and the time since the reply are carried, not cut twice.
        assert!((1_700_000_025..=1_700_000_027).contains(&t), "{t}");
        assert_eq!(seen.len(), 1, "no request beyond the open: {seen:?}");
    }

    #[test]
    fn a_server_whose_info_has_no_clock_is_asked_time() {
        let time: &[u8] = b"*2\r\n$10\r\n1700000025\r\n$6\r\n123456\r\n";
        let (t, seen) = against(vec![INFO_OK, time], reading(&[]), |b| {
            b.expect("open").server_time().ok()
        });
        assert_eq!(t, Some(1_700_000_025));
        assert!(seen.len() == 2 && seen[1].contains("TIME"), "{seen:?}");
        assert_eq!(time_reply(&Reply::Int(5)), None);
        assert_eq!(
            time_reply(&Reply::Array(Some(vec![Reply::Bulk(Some(b"x".to_vec()))]))),
            None
        );
    }

    #[test]
    fn the_open_reads_every_prefetch_key_in_one_write_and_each_answers_once() {
        let open: &[u8] = const_concat(&[
            INFO_OK,
            b"*2\r\n$1\r\n7\r\n$3\r\nabc\r\n*2\r\n$-1\r\n$-1\r\n",
        ]);
        let reread: &[u8] = b"*2\r\n$1\r\n8\r\n$3\r\nxyz\r\n";
        let ((), seen) = against(
            vec![open, reread],
            reading(&[b"p:store", b"p:user:a"]),
            |b| {
                let mut b = b.expect("open");
                assert_eq!(b.get(b"p:user:a").ok(), Some((Vec::new(), 0)));
                assert_eq!(b.get(b"p:store").ok(), Some((b"abc".to_vec(), 7)));
                // Used once: the same key again is asked of the server.
                assert_eq!(b.get(b"p:store").ok(), Some((b"xyz".to_vec(), 8)));
            },
        );
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].contains("INFO") && seen[0].contains("p:store") && seen[0].contains("p:user:a"),
            "INFO and both reads in one write: {seen:?}"
        );
        assert!(
            seen[1].contains("HMGET") && seen[1].contains("p:store"),
            "{seen:?}"
        );
    }

    /// An `INFO` reply of the instance `replid`/`run_id` (its clock at `T0`).
    fn info_of(replid: &str, run_id: &str) -> &'static [u8] {
        let text = format!(
            "# Server\r\nrun_id:{run_id}\r\nserver_time_usec:1700000025000000\r\n\
             # Replication\r\nrole:master\r\nmaster_replid:{replid}\r\n\
             master_replid2:{replid}\r\n\
             # Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n"
        );
        const_concat(&[format!("${}\r\n{text}\r\n", text.len()).as_bytes()])
    }

    /// `HMGET key v r i` of a store record `record` at version `v`, bound to `bound`.
    fn store_reply(v: &str, record: &[u8], bound: Option<&str>) -> Vec<u8> {
        let mut out = format!("*3\r\n${}\r\n{v}\r\n${}\r\n", v.len(), record.len()).into_bytes();
        out.extend_from_slice(record);
        out.extend_from_slice(b"\r\n");
        match bound {
            Some(b) => out.extend_from_slice(format!("${}\r\n{b}\r\n", b.len()).as_bytes()),
            None => out.extend_from_slice(b"$-1\r\n"),
        }
        out
    }

    fn store_config(path: &std::path::Path) -> PluginConfig {
        PluginConfig {
            store_key: Some(b"p:store".to_vec()),
            ..config(path, &[b"p:store"])
        }
    }

    /// A store record bound to another instance (a restart since) reads as absent, and
    /// the module's create replaces it on its own version, keeping its store key, then
    /// binds the new record here.
    #[test]
    fn a_store_record_of_another_instance_is_replaced_on_its_version() {
        use totp_core::state::{STORE_KEY_LEN, StoreKey};
        let old = StoreContext {
            key: StoreKey::new([7; STORE_KEY_LEN]),
            complete_since: 5,
        }
        .encode()
        .to_vec();
        let stale = store_reply("3", &old, Some("r1/a1"));
        let open = const_concat(&[info_of("r2", "a2"), &stale]);
        let again = const_concat(&[&stale]);
        let fresh = StoreContext {
            key: StoreKey::new([9; STORE_KEY_LEN]),
            complete_since: 1_700_000_020,
        };
        let ((), seen) = against(vec![open, again, b":1\r\n", b":1\r\n"], store_config, |b| {
            let mut b = b.expect("open");
            assert_eq!(b.get(b"p:store").ok(), Some((Vec::new(), 0)));
            assert_eq!(
                b.compare_and_set(b"p:store", 0, &fresh.encode(), 0, true)
                    .ok(),
                Some(Status::Ok)
            );
        });
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen[0].contains("HMGET") && seen[0].contains("\r\ni\r\n"),
            "{seen:?}"
        );
        assert!(
            seen[1].contains("HMGET"),
            "read again before replacing: {seen:?}"
        );
        // On the stale record's version, with its key and the later floor.
        assert!(
            seen[2].contains("FCALL") && seen[2].contains("\r\n$1\r\n3\r\n"),
            "{seen:?}"
        );
        let merged = StoreContext {
            key: StoreKey::new([7; STORE_KEY_LEN]),
            complete_since: 1_700_000_020,
        }
        .encode();
        assert!(
            seen[2].contains(&*String::from_utf8_lossy(&merged)),
            "the stale key and the module's floor: {seen:?}"
        );
        assert!(
            seen[3].contains("HSET") && seen[3].contains("r2/a2"),
            "{seen:?}"
        );
    }

    /// A store record created here is bound before it is written: never, even between
    /// two commands, a record without its instance (which the next instance, after a
    /// snapshot or a failover cut there, would take for its own).
    #[test]
    fn a_new_store_record_is_bound_before_it_is_created() {
        use totp_core::state::{STORE_KEY_LEN, StoreKey};
        const ABSENT: &[u8] = b"*3\r\n$-1\r\n$-1\r\n$-1\r\n";
        let open = const_concat(&[info_of("r2", "a2"), ABSENT]);
        let fresh = StoreContext {
            key: StoreKey::new([9; STORE_KEY_LEN]),
            complete_since: 1_700_000_020,
        };
        let ((), seen) = against(
            vec![open, ABSENT, b":1\r\n", b":1\r\n"],
            store_config,
            |b| {
                let mut b = b.expect("open");
                assert_eq!(b.get(b"p:store").ok(), Some((Vec::new(), 0)));
                assert_eq!(
                    b.compare_and_set(b"p:store", 0, &fresh.encode(), 0, true)
                        .ok(),
                    Some(Status::Ok)
                );
            },
        );
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen[1].contains("HMGET"), "{seen:?}");
        assert!(
            seen[2].contains("HSET") && seen[2].contains("r2/a2"),
            "bound first: {seen:?}"
        );
        assert!(seen[3].contains("FCALL"), "then created: {seen:?}");
    }

    /// A store record of the previous release (no binding) is kept and bound here on
    /// its first read; one bound here is read as it is; of two hosts recreating a stale
    /// one, the one that finds it replaced reports a conflict and writes nothing.
    #[test]
    fn an_unbound_store_record_is_bound_on_first_read_and_kept() {
        let open = const_concat(&[info_of("r2", "a2"), &store_reply("4", b"PTK1rec", None)]);
        let ((), seen) = against(vec![open, b":1\r\n"], store_config, |b| {
            let mut b = b.expect("open");
            assert_eq!(b.get(b"p:store").ok(), Some((b"PTK1rec".to_vec(), 4)));
        });
        assert!(
            seen.len() == 2 && seen[1].contains("HSET") && seen[1].contains("r2/a2"),
            "{seen:?}"
        );

        let current = store_reply("5", b"PTK1rec", Some("r2/a2"));
        let open = const_concat(&[info_of("r2", "a2"), &current]);
        let ((), seen) = against(vec![open, const_concat(&[&current])], store_config, |b| {
            let mut b = b.expect("open");
            assert_eq!(b.get(b"p:store").ok(), Some((b"PTK1rec".to_vec(), 5)));
            assert_eq!(
                b.compare_and_set(b"p:store", 0, b"PTK1new", 0, true).ok(),
                Some(Status::Conflict)
            );
        });
        assert_eq!(seen.len(), 2, "no write: {seen:?}");
    }

    /// A user's record is written only while the store record is the one the login
    /// read: the write carries its key, version and binding. Changed since with another
    /// store key (a flushed data set recreated by another host), the write is refused
    /// with nothing written; replaced again on this instance with the same key (two
    /// hosts replacing one stale record), it is a conflict the module settles by
    /// deciding again, and the next write compares the record as it is now.
    #[test]
    fn a_user_write_compares_the_store_record_the_login_read() {
        use totp_core::state::{STORE_KEY_LEN, StoreKey};
        let context = |key: u8, since: u64| {
            StoreContext {
                key: StoreKey::new([key; STORE_KEY_LEN]),
                complete_since: since,
            }
            .encode()
            .to_vec()
        };
        let read = store_reply("5", &context(7, 10), Some("r2/a2"));
        let open = const_concat(&[info_of("r2", "a2"), &read]);
        let recreated = const_concat(&[&store_reply("1", &context(8, 20), Some("r2/a2"))]);
        let (e, seen) = against(vec![open, b":2\r\n", recreated], store_config, |b| {
            let mut b = b.expect("open");
            assert!(b.get(b"p:store").is_ok());
            b.compare_and_set(b"p:user:a", 0, b"rec", 0, false)
                .expect_err("refused")
        });
        assert_eq!(e.status, Status::StoreChanged);
        assert_eq!(e.message, STORE_CHANGED);
        assert!(
            seen[1].contains("FCALL")
                && seen[1].contains(CAS_FUNCTION)
                && seen[1].contains("\r\n$1\r\n2\r\n$8\r\np:user:a\r\n$7\r\np:store\r\n")
                && seen[1].ends_with("\r\n$1\r\n5\r\n$5\r\nr2/a2\r\n"),
            "{seen:?}"
        );
        assert!(seen[2].contains("HMGET"), "{seen:?}");

        let open = const_concat(&[info_of("r2", "a2"), &read]);
        let replaced = const_concat(&[&store_reply("6", &context(7, 20), Some("r2/a2"))]);
        let (status, seen) = against(
            vec![open, b":2\r\n", replaced, b":1\r\n"],
            store_config,
            |b| {
                let mut b = b.expect("open");
                assert!(b.get(b"p:store").is_ok());
                assert_eq!(
                    b.compare_and_set(b"p:user:a", 0, b"rec", 0, false).ok(),
                    Some(Status::Conflict)
                );
                b.compare_and_set(b"p:user:a", 0, b"rec", 0, false).ok()
            },
        );
        assert_eq!(status, Some(Status::Ok));
        assert!(
            seen[3].ends_with("\r\n$1\r\n6\r\n$5\r\nr2/a2\r\n"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_server_that_names_no_instance_cannot_serve_the_store_record() {
        let info: &[u8] = b"$43\r\n# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:x\r\n\r\n";
        let open = const_concat(&[info, &store_reply("4", b"PTK1rec", None)]);
        let (e, _) = against(vec![open], store_config, |b| {
            b.expect("open").get(b"p:store").expect_err("no instance")
        });
        assert_eq!(e.status, Status::Corrupt);
        assert!(e.message.contains("run_id"), "{}", e.message);
    }

    #[test]
    fn a_write_drops_what_the_open_read() {
        let open: &[u8] = const_concat(&[INFO_OK, b"*2\r\n$1\r\n7\r\n$3\r\nabc\r\n"]);
        let replies = vec![open, b":0\r\n", b"*2\r\n$1\r\n9\r\n$3\r\nnew\r\n"];
        let ((), _) = against(replies, reading(&[b"p:user:a"]), |b| {
            let mut b = b.expect("open");
            // A conflict: the module reads again, and must see the server's record.
            assert_eq!(
                b.compare_and_set(b"p:user:a", 7, b"rec", 0, false).ok(),
                Some(Status::Conflict)
            );
            assert_eq!(b.get(b"p:user:a").ok(), Some((b"new".to_vec(), 9)));
        });
    }

    #[test]
    fn a_refused_password_fails_at_its_own_reply_not_at_the_ones_behind_it() {
        let replies = vec![
            &b"-WRONGPASS invalid username-password pair\r\n-NOAUTH Authentication required.\r\n\
              -NOAUTH Authentication required.\r\n"[..],
        ];
        let with_password = |path: &std::path::Path| PluginConfig {
            password: Some(Zeroizing::new("pw".to_owned())),
            ..config(path, &[b"p:store"])
        };
        let (e, _) = against(replies, with_password, |b| b.err().expect("refused"));
        assert_eq!(e.status, Status::Refused);
        assert!(
            e.message
                .starts_with("Password authentication failed: WRONGPASS"),
            "{}",
            e.message
        );
    }

    /// A server whose client table is full answers the first command, `AUTH` with the
    /// rest, with `ERR max number of clients reached` and closes: an outage, never a
    /// wrong password. Control: the same server refusing the password.
    #[test]
    fn a_full_client_table_answering_auth_is_an_outage_not_a_wrong_password() {
        let with_password = |path: &std::path::Path| PluginConfig {
            password: Some(Zeroizing::new("pw".to_owned())),
            ..config(path, &[b"p:store"])
        };
        let full = vec![&b"-ERR max number of clients reached\r\n"[..]];
        let (e, _) = against(full, with_password, |b| b.err().expect("refused"));
        assert_eq!(e.status, Status::Unavailable, "{}", e.message);
        assert!(
            e.message
                .starts_with("AUTH: ERR max number of clients reached"),
            "{}",
            e.message
        );
        let wrong = vec![&b"-ERR invalid password\r\n"[..]];
        let (e, _) = against(wrong, with_password, |b| b.err().expect("refused"));
        assert_eq!(e.status, Status::Refused, "{}", e.message);
        assert!(
            e.message.starts_with("Password authentication failed"),
            "{}",
            e.message
        );
    }

    /// A server where `AUTH` is renamed or disabled quotes the arguments it was sent,
    /// the password among them: the failure says the command is unknown (a refusal with
    /// the `rename-command` hint, not a wrong password) and shows none of them.
    #[test]
    fn an_unknown_auth_is_a_renamed_command_and_its_echoed_password_is_not_shown() {
        let with_password = |path: &std::path::Path| PluginConfig {
            username: Some("fleet".to_owned()),
            password: Some(Zeroizing::new("correct horse".to_owned())),
            ..config(path, &[b"p:store"])
        };
        let echo = vec![
            &b"-ERR unknown command 'AUTH', with args beginning with: 'fleet' 'correct horse' \r\n"
                [..],
        ];
        let (e, _) = against(echo, with_password, |b| b.err().expect("refused"));
        assert_eq!(e.status, Status::Refused, "{}", e.message);
        assert!(!e.message.contains("correct horse"), "{}", e.message);
        assert!(
            e.message.contains("unknown command 'AUTH'") && e.message.contains("rename-command"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_read_cut_off_at_the_open_is_reported_by_its_own_get() {
        let open: &[u8] = const_concat(&[INFO_OK, b"*2\r\n$1\r\n7\r\n$3\r\nabc\r\n$100000000\r\n"]);
        let keys: &[&[u8]] = &[b"p:store", b"p:user:a", b"p:uid:1"];
        let ((), _) = against(vec![open], reading(keys), |b| {
            let mut b = b.expect("the open itself was answered");
            assert_eq!(b.get(b"p:store").ok(), Some((b"abc".to_vec(), 7)));
            let e = b.get(b"p:user:a").expect_err("cut off");
            assert_eq!(e.status, Status::Unavailable);
            assert!(
                e.message.starts_with("HMGET:") && e.message.contains("reply too large"),
                "{}",
                e.message
            );
            // The connection is unusable behind a reply cut off: so is every later read.
            let e = b.get(b"p:uid:1").expect_err("unusable");
            assert_eq!(e.status, Status::Unavailable);
            assert!(e.message.starts_with("HMGET:"), "{}", e.message);
        });
    }

    #[test]
    fn only_a_primary_that_is_no_sentinel_or_cluster_node_is_accepted() {
        let memory = "maxmemory:0\r\nmaxmemory_policy:noeviction\r\n";
        let info = |head: &str| format!("# Server\r\n{head}\r\n{memory}");
        assert!(
            check_server(&Info::parse(
                info("redis_mode:standalone\r\nrole:master").as_bytes()
            ))
            .is_ok()
        );
        for (head, says) in [
            ("redis_mode:sentinel", "Sentinel"),
            ("server_mode:sentinel", "Sentinel"),
            ("redis_mode:cluster", "Cluster"),
            ("redis_mode:standalone\r\ncluster_enabled:1", "Cluster"),
            (
                "role:slave\r\nmaster_host:10.0.0.5\r\nmaster_port:6379",
                "a replica of 10.0.0.5:6379",
            ),
            ("role:replica", "a replica,"),
        ] {
            let e = check_server(&Info::parse(info(head).as_bytes())).expect_err(head);
            assert_eq!(e.status, Status::Refused, "{head}");
            assert!(e.message.contains(says), "{head}: {}", e.message);
        }
    }

    /// Redis in protected mode answers a client from another host with one error line
    /// longer than any other reply line (and closes): cut, it is read for what it says,
    /// a refusal, whichever command it answers first.
    #[test]
    fn a_server_in_protected_mode_is_refused_with_its_own_words() {
        let denied: &'static [u8] = const_concat(&[
            b"-DENIED Redis is running in protected mode because protected mode is enabled \
              and no password is set for the default user. ",
            "In this mode connections are only accepted from the loopback interface. "
                .repeat(16)
                .as_bytes(),
            b"\r\n",
        ]);
        assert!(denied.len() > MAX_LINE_FOR_TEST, "longer than a reply line");
        for password in [None, Some("pw")] {
            let configure = |path: &std::path::Path| PluginConfig {
                password: password.map(|p| Zeroizing::new(p.to_owned())),
                ..config(path, &[b"p:store"])
            };
            let (e, _) = against(vec![denied], configure, |b| b.err().expect("refused"));
            assert_eq!(e.status, Status::Refused, "{}", e.message);
            assert!(
                e.message
                    .contains("DENIED Redis is running in protected mode"),
                "{}",
                e.message
            );
            assert!(
                !e.message.contains("Password authentication"),
                "{}",
                e.message
            );
        }
    }

    /// The reply line bound of `resp` (1 KiB).
    const MAX_LINE_FOR_TEST: usize = 1024;

    /// The bytes of `parts`, leaked: test replies built from shared pieces.
    fn const_concat(parts: &[&[u8]]) -> &'static [u8] {
        Box::leak(parts.concat().into_boxed_slice())
    }

    /// The 1-based number of the line of `source` that holds `needle`.
    fn line_of(source: &str, needle: &str) -> usize {
        source
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .expect(needle)
    }

    /// The compare-and-set's own check names the command it refuses, before writing; a
    /// server without that check names it too (7.2 and later), or only the line of our
    /// function or script (7.0, 6). Every way, the log names the permission to add.
    #[test]
    fn a_command_refused_inside_the_compare_and_set_is_named() {
        for cmd in ["hset", "expire", "persist"] {
            let checked = format!(
                "NOPERM this user has no permissions to run the '{cmd}' command (checked \
                 before writing: nothing was written)"
            );
            assert_eq!(denied_command(&checked, LIBRARY).as_deref(), Some(cmd));
        }
        // What the body says is what is read: the command's name between the same words.
        assert!(
            CAS_SCRIPT.contains(
                "\"NOPERM this user has no permissions to run the '\" .. c[1] .. \"' command"
            ),
            "{CAS_SCRIPT}"
        );
        let v70 = "ERR The user executing the script can't run this command or subcommand \
                   script: pam_totp_cas_v2, on @user_function:";
        for cmd in ["HGET", "HSET", "EXPIRE", "PERSIST"] {
            let line = line_of(LIBRARY, &format!("redis.call('{cmd}'"));
            assert_eq!(
                denied_command(&format!("{v70}{line}."), LIBRARY).as_deref(),
                Some(cmd.to_ascii_lowercase().as_str()),
                "line {line}"
            );
        }
        let line = line_of(CAS_SCRIPT, "redis.call('EXPIRE'");
        let script = format!(
            "ERR The user executing the script can't run this command or subcommand \
             script: b6a1, on @user_script:{line}."
        );
        assert_eq!(
            denied_command(&script, CAS_SCRIPT).as_deref(),
            Some("expire")
        );
        let v72 = "NOPERM User host has no permissions to run the 'hset' command script: \
                   pam_totp_cas_v1, on @user_function:7.";
        assert_eq!(denied_command(v72, LIBRARY).as_deref(), Some("hset"));
        // A line that runs no command (the check's own), a line past the end, no line.
        let check = line_of(LIBRARY, "acl_check_cmd(unpack");
        assert_eq!(denied_command(&format!("{v70}{check}."), LIBRARY), None);
        assert_eq!(denied_command(&format!("{v70}1."), LIBRARY), None);
        assert_eq!(denied_command(&format!("{v70}99."), LIBRARY), None);
        assert_eq!(
            denied_command("NOPERM No permissions to access a key", LIBRARY),
            None
        );
        let expire = line_of(LIBRARY, "redis.call('EXPIRE'");
        let f = name_denied(Failure::refused(format!("FCALL: {v70}{expire}.")), LIBRARY);
        assert!(f.message.ends_with("(the ACL user lacks +expire, which the compare-and-set runs: see the hosts' ACL in docs/fleet.md)"), "{}", f.message);
    }

    /// The library registers the function this release calls and the ones earlier
    /// releases' hosts call, which `init` must not take from them during an upgrade.
    #[test]
    fn the_library_keeps_the_previous_release_s_function() {
        assert!(
            LIBRARY.contains(&format!("redis.register_function('{CAS_FUNCTION}', cas)")),
            "{LIBRARY}"
        );
        // Earlier releases' arguments, moved to where the body reads them; a key they
        // create starts at 1, the version those hosts take it to have.
        for name in ["pam_totp_cas_v3", "pam_totp_cas_v2", "pam_totp_cas_v1"] {
            assert!(
                LIBRARY.contains(&format!("redis.register_function('{name}', earlier)")),
                "{name}: {LIBRARY}"
            );
        }
        assert!(
            LIBRARY.contains("cas(KEYS, {ARGV[1], ARGV[2], ARGV[3], '1', ARGV[4], ARGV[5]})"),
            "{LIBRARY}"
        );
    }

    /// A created key's version starts where no counted version and, but for a chance of
    /// 2^-52, no other creation's start lies; within what the function counts exactly.
    #[test]
    fn a_created_key_starts_at_a_random_version() {
        let starts: Vec<u64> = (0..64)
            .map(|_| new_key_version().expect("random"))
            .collect();
        assert!(
            starts.iter().all(|&v| (1 << 32..1 << 52).contains(&v)),
            "{starts:?}"
        );
        let mut distinct = starts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), starts.len(), "{starts:?}");
        // The ends of the range, reached and never passed.
        let span = (1 << 52) - (1 << 32);
        assert_eq!(start_version(0), 1 << 32);
        assert_eq!(start_version(span - 1), (1 << 52) - 1);
        assert_eq!(start_version(span), 1 << 32);
        assert!((1 << 32..1 << 52).contains(&start_version(u64::MAX)));
    }

    /// The one pass over `INFO` finds what a search of the whole text for each field
    /// found: each field's first line, its value trimmed, a field never taken for
    /// another one its name begins (`maxmemory` for `maxmemory_policy` or
    /// `maxmemory_human`), nothing taken from a section title or a line without a
    /// colon, and a value holding a colon kept whole. Control: a field the reply does
    /// not have is absent.
    #[test]
    fn the_open_s_info_fields_are_read_in_one_pass_as_each_was_searched_for() {
        let text = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\
            run_id:0123abcd\r\nexecutable:/usr/bin/redis-server\r\n\
            server_time_usec: 1700000000123456 \r\n# Memory\r\nmaxmemory_human:0B\r\n\
            maxmemory_policy:noeviction\r\nmaxmemory:0\r\nrole\r\n\
            # Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            master_host:fd00::1\r\nrole:slave\r\n";
        // `Info::parse` passes over a line at its first byte.
        for name in INFO_FIELDS {
            assert!(
                matches!(name.as_bytes()[0], b'c' | b'm' | b'r' | b's'),
                "{name}"
            );
        }
        let info = Info::parse(text.as_bytes());
        let searched = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        for name in INFO_FIELDS {
            assert_eq!(info.get(name), searched(name), "{name}");
        }
        assert_eq!(info.get("maxmemory"), Some("0"));
        assert_eq!(info.get("maxmemory_policy"), Some("noeviction"));
        assert_eq!(info.get("role"), Some("master"));
        assert_eq!(info.get("server_time_usec"), Some("1700000000123456"));
        assert_eq!(info.get("master_host"), Some("fd00::1"));
        assert_eq!(info.get("connected_slaves"), Some("2"));
        assert_eq!(info.get("master_replid"), None);
        assert_eq!(info_clock(&info), Some(1_700_000_000_123_456));
        // A line that is not text is passed over, as a field the server did not send;
        // the lines around it are read.
        let info = Info::parse(b"maxmemory:0\r\nrole:\xffmaster\r\nrun_id:ab\r\n");
        assert_eq!(info.get("role"), None);
        assert_eq!(info.get("maxmemory"), Some("0"));
        assert_eq!(info.get("run_id"), Some("ab"));
    }

    #[test]
    fn only_servers_that_evict_nothing_are_accepted() {
        let info = |limit: &str, policy: &str| {
            format!(
                "# Memory\r\nused_memory:1\r\nmaxmemory:{limit}\r\nmaxmemory_policy:{policy}\r\n"
            )
        };
        assert!(check_eviction(&Info::parse(info("0", "allkeys-lru").as_bytes())).is_ok());
        assert!(check_eviction(&Info::parse(info("104857600", "noeviction").as_bytes())).is_ok());
        for policy in [
            "allkeys-lru",
            "volatile-ttl",
            "allkeys-random",
            "volatile-lfu",
        ] {
            let e = check_eviction(&Info::parse(info("104857600", policy).as_bytes()))
                .expect_err(policy);
            assert_eq!(e.status, Status::Refused);
            assert!(e.message.contains("noeviction"), "{}", e.message);
        }
        assert!(check_eviction(&Info::parse(b"# Memory\r\n")).is_err());
    }

    /// What each failure on the wire is to the module: an outage (which
    /// `state_fallback=` may take), a refusal an admin must fix, or the stored value at
    /// fault; and what the log says to check.
    #[test]
    fn wire_failures_are_outages_refusals_or_the_stored_value_s_fault() {
        use Status::{Corrupt, Refused, Unavailable};
        let cases = [
            (
                "connect",
                WireError::Timeout("TLS handshake not finished".into()),
                Unavailable,
                "connect: TLS handshake not finished within 750 ms (does this port serve TLS?",
            ),
            (
                "connect",
                WireError::Timeout("no connection to 192.0.2.1:6379".into()),
                Unavailable,
                "connect: no connection to 192.0.2.1:6379 within 750 ms (the server is down",
            ),
            (
                "INFO",
                WireError::Timeout(String::new()),
                Unavailable,
                "INFO: no complete reply within 750 ms (the bound of the whole command)",
            ),
            (
                "HMGET",
                WireError::Io("receive: reset".into()),
                Unavailable,
                "HMGET: receive: reset",
            ),
            (
                "connect",
                WireError::Tls("TLS handshake: certificate verify failed".into()),
                Refused,
                "connect: TLS handshake: certificate verify failed",
            ),
            (
                "INFO",
                WireError::Protocol("bad number in reply".into()),
                Unavailable,
                "INFO: bad number in reply",
            ),
            (
                "AUTH",
                WireError::Foreign("not a Redis server".into()),
                Refused,
                "AUTH: not a Redis server; check the port of state=",
            ),
            (
                "connect",
                WireError::Unresolvable("not a host name".into()),
                Refused,
                "connect: not a host name",
            ),
            (
                "HMGET",
                WireError::Oversized("a string of 5000 bytes".into()),
                Corrupt,
                "HMGET: stored value too large: a string of 5000 bytes",
            ),
            (
                "INFO",
                WireError::Oversized("a string of 70000 bytes".into()),
                Unavailable,
                "INFO: a string of 70000 bytes",
            ),
        ];
        for (what, e, status, text) in cases {
            let f = Failure::wire(what, e, Duration::from_millis(750));
            assert_eq!(f.status, status, "{}", f.message);
            assert!(f.message.starts_with(text), "{}", f.message);
        }
    }

    /// What each error reply is to the module: the credentials, the ACL, the kind of
    /// server or its configuration (a refusal), our key holding something else (the
    /// stored value at fault), or the server's passing state (an outage).
    #[test]
    fn error_replies_are_refusals_the_stored_value_s_fault_or_outages() {
        use Status::{Corrupt, Refused, Unavailable};
        let cases = [
            (
                "NOAUTH Authentication required.",
                Refused,
                "(the server wants a password",
            ),
            (
                "WRONGPASS invalid username-password pair or user is disabled.",
                Refused,
                "",
            ),
            (
                "NOPERM User hosts has no permissions to run the 'fcall' command",
                Refused,
                "",
            ),
            ("DENIED Redis is running in protected mode", Refused, ""),
            (
                "ERR The user executing the script can't run this command or subcommand",
                Refused,
                "",
            ),
            ("MOVED 3999 127.0.0.1:6381", Refused, NOT_CLUSTER),
            ("ASK 3999 127.0.0.1:6381", Refused, NOT_CLUSTER),
            ("CROSSSLOT Keys in request don't hash", Refused, NOT_CLUSTER),
            ("CLUSTERDOWN The cluster is down", Refused, NOT_CLUSTER),
            (
                "ERR SELECT is not allowed in cluster mode",
                Refused,
                NOT_CLUSTER,
            ),
            (
                "ERR unknown command 'FCALL', with args beginning with: 'secret'",
                Refused,
                "(its arguments not shown) (the server does not know the command",
            ),
            (
                "ERR DB index is out of range",
                Refused,
                "`databases` setting",
            ),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                Corrupt,
                "",
            ),
            (
                "ERR Error running script: @user_script:12: WRONGTYPE Operation against a key",
                Corrupt,
                "",
            ),
            (
                "OOM command not allowed when used memory > 'maxmemory'.",
                Unavailable,
                "",
            ),
            (
                "LOADING Redis is loading the dataset in memory",
                Unavailable,
                "",
            ),
            (
                "READONLY You can't write against a read only replica.",
                Unavailable,
                "",
            ),
            ("BUSY Redis is busy running a script.", Unavailable, ""),
            ("MASTERDOWN Link with MASTER is down", Unavailable, ""),
            ("ERR max number of clients reached", Unavailable, ""),
        ];
        for (text, status, hint) in cases {
            let f = Failure::server("EVAL", text);
            assert_eq!(f.status, status, "{}", f.message);
            assert!(f.message.starts_with("EVAL: "), "{}", f.message);
            assert!(f.message.contains(hint), "{}", f.message);
            assert!(!f.message.contains("secret"), "{}", f.message);
        }
    }

    /// An error reply to `AUTH` is about the credentials only when it says so; the
    /// server's state, which it reports to any first command, and an `AUTH` it does not
    /// know are not a wrong password.
    #[test]
    fn only_an_auth_error_about_the_credentials_is_a_password_refusal() {
        for credentials in [
            "WRONGPASS invalid username-password pair or user is disabled.",
            "ERR invalid password",
            "ERR AUTH <password> called without any password configured for the default user.",
            "ERR wrong number of arguments for 'auth' command",
        ] {
            assert!(is_password_refusal(credentials), "{credentials}");
        }
        for state in [
            "ERR unknown command 'AUTH', with args beginning with: 'u' 'p'",
            "ERR unknown command 'auth' (its arguments not shown)",
            "ERR max number of clients reached",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script.",
        ] {
            assert!(!is_password_refusal(state), "{state}");
        }
    }

    /// Only the version form the compare-and-set writes is a version (`%d` of a positive
    /// number: no sign, no leading zero, at most 20 digits, within 64 bits), and only a
    /// record the module could have written is a record; anything else is the stored
    /// value at fault, never an outage.
    #[test]
    fn a_stored_record_is_read_only_in_the_form_the_compare_and_set_writes() {
        let reply = |v: Option<&[u8]>, r: Option<&[u8]>| {
            Reply::Array(Some(vec![
                Reply::Bulk(v.map(<[u8]>::to_vec)),
                Reply::Bulk(r.map(<[u8]>::to_vec)),
            ]))
        };
        assert_eq!(parse_record(reply(None, None)).ok(), Some((Vec::new(), 0)));
        assert_eq!(
            parse_record(reply(Some(b"7"), Some(b"abc"))).ok(),
            Some((b"abc".to_vec(), 7))
        );
        assert_eq!(
            parse_record(reply(Some(b"18446744073709551615"), Some(b"r"))).ok(),
            Some((b"r".to_vec(), u64::MAX))
        );
        for v in [
            &b""[..],
            b"0",
            b"01",
            b"-1",
            b"+1",
            b"1a",
            b" 1",
            b"18446744073709551616",
            b"111111111111111111111",
        ] {
            let f = parse_record(reply(Some(v), Some(b"r"))).expect_err("a bad version");
            assert_eq!(f.status, Status::Corrupt, "{v:?}");
            assert!(f.message.contains("not a positive number"), "{v:?}");
        }
        let full = vec![b'r'; MAX_ENCODED_LEN];
        assert_eq!(
            parse_record(reply(Some(b"3"), Some(&full))).ok(),
            Some((full.clone(), 3))
        );
        let over = vec![b'r'; MAX_ENCODED_LEN + 1];
        let f = parse_record(reply(Some(b"3"), Some(&over))).expect_err("too large");
        assert_eq!(
            (f.status, f.message.as_str()),
            (Status::Corrupt, "stored record too large")
        );
        for shape in [
            reply(Some(b"3"), None),
            reply(None, Some(b"r")),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"3".to_vec()))])),
            Reply::Array(None),
            Reply::Int(3),
        ] {
            let f = parse_record(shape).expect_err("another shape");
            assert_eq!(f.status, Status::Corrupt);
        }
        // The store record's third field, its binding, bound or not.
        let store = |bound: Option<&[u8]>| {
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"5".to_vec())),
                Reply::Bulk(Some(b"s".to_vec())),
                Reply::Bulk(bound.map(<[u8]>::to_vec)),
            ]))
        };
        assert_eq!(
            parse_store(store(Some(b"i"))).ok(),
            Some((b"s".to_vec(), 5, Some(b"i".to_vec())))
        );
        assert_eq!(
            parse_store(store(None)).ok(),
            Some((b"s".to_vec(), 5, None))
        );
        for shape in [
            reply(Some(b"5"), Some(b"s")),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"5".to_vec())),
                Reply::Bulk(Some(b"s".to_vec())),
                Reply::Int(1),
            ])),
            Reply::Bulk(None),
        ] {
            let f = parse_store(shape).expect_err("another shape");
            assert_eq!(
                (f.status, f.message.as_str()),
                (Status::Corrupt, "unexpected HMGET reply")
            );
        }
    }

    /// The URL forms the module writes, and nothing else.
    #[test]
    fn server_urls_are_read_in_the_forms_the_module_writes() {
        let t = parse_url("redis+unix:///run/redis/redis.sock?db=3").expect("unix");
        assert_eq!(
            (t.tls, t.unix.as_deref(), t.db, t.sentinel.is_none()),
            (false, Some("/run/redis/redis.sock"), 3, true)
        );
        let t = parse_url("redis://192.0.2.1:6379/0").expect("tcp");
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.db, t.unix.is_none()),
            (false, "192.0.2.1", 6379, 0, true)
        );
        let t = parse_url("rediss://[2001:db8::1]:6380/15").expect("tls");
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.db),
            (true, "[2001:db8::1]", 6380, 15)
        );
        let t = parse_url("redis+sentinel://192.0.2.1:26379,[2001:db8::2]:26380/main/2")
            .expect("sentinel");
        assert_eq!(
            (t.tls, t.db, t.sentinel),
            (
                false,
                2,
                Some((
                    vec![
                        ("192.0.2.1".to_owned(), 26379),
                        ("[2001:db8::2]".to_owned(), 26380)
                    ],
                    "main".to_owned()
                ))
            )
        );
        let t = parse_url("rediss+sentinel://192.0.2.1:26379/main/0").expect("sentinel");
        assert!(t.tls && t.sentinel.is_some());
        for bad in [
            "redis+unix:///run/redis.sock",
            "redis+unix:///run/redis.sock?db=x",
            "redis://192.0.2.1:6379",
            "redis://192.0.2.1/0",
            "redis://192.0.2.1:99999/0",
            "redis://192.0.2.1:6379/x",
            "http://192.0.2.1:6379/0",
            "redis+sentinel://192.0.2.1:26379/main",
            "redis+sentinel://192.0.2.1:26379/main/0/1",
            "redis+sentinel://192.0.2.1/main/0",
            "redis+sentinel://192.0.2.1:26379/main/x",
        ] {
            let f = parse_url(bad).err().unwrap_or_else(|| panic!("{bad}"));
            assert_eq!(f.status, Status::Invalid, "{bad}");
        }
    }

    /// A sentinel on a loopback port that answers its one connection's first command
    /// with `reply` (`None`: never answers), and holds the connection until the client
    /// is done.
    fn sentinel(reply: Option<&'static [u8]>) -> ((String, u16), std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            if matches!(s.read(&mut buf), Ok(n) if n > 0)
                && let Some(r) = reply
            {
                let _ = s.write_all(r);
            }
            let _ = s.read(&mut buf);
        });
        (("127.0.0.1".to_owned(), port), server)
    }

    /// Ends the [`sentinel`]s once asked: one never asked is connected to (and left) here.
    fn done(nodes: &[(String, u16)], servers: Vec<std::thread::JoinHandle<()>>) {
        for (_, port) in nodes {
            drop(std::net::TcpStream::connect(("127.0.0.1", *port)));
        }
        for s in servers {
            s.join().expect("sentinel");
        }
    }

    /// The primary's address as a sentinel gives it.
    const NAMED: &[u8] = b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6390\r\n";
    /// A sentinel that does not monitor the name.
    const NOT_MONITORED: &[u8] = b"*-1\r\n";

    /// What [`discover`] found.
    type Discovered = Result<((String, u16), Option<String>), Failure>;

    /// Asks `sentinels` (each answering as [`sentinel`] does) for `main` within `ms`: what
    /// they said, and their ports.
    fn ask(
        sentinels: &[Option<&'static [u8]>],
        ms: u64,
        not_primaries: &[(String, u16)],
    ) -> (Discovered, Vec<u16>) {
        let (nodes, servers): (Vec<_>, Vec<_>) = sentinels.iter().map(|r| sentinel(*r)).unzip();
        let ports = nodes.iter().map(|(_, p)| *p).collect();
        let deadline = Instant::now() + Duration::from_millis(ms);
        let r = discover(&nodes, "main", None, deadline, not_primaries);
        done(&nodes, servers);
        (r, ports)
    }

    /// The first sentinel that names the primary wins; the ones asked before it, and
    /// why each was passed over, are noted for the log. Control: a first sentinel that
    /// answers leaves nothing to note.
    #[test]
    fn the_first_sentinel_naming_the_primary_wins_and_those_passed_over_are_noted() {
        let primary = ("127.0.0.1".to_owned(), 6390);
        let (r, _) = ask(&[Some(NAMED), Some(NOT_MONITORED)], 2000, &[]);
        assert_eq!(r.ok(), Some((primary.clone(), None)));

        let bad_address: &[u8] = b"*2\r\n$6\r\nbad!ho\r\n$4\r\n6390\r\n";
        let bad_port: &[u8] = b"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n";
        let error: &[u8] = b"-ERR something went wrong\r\n";
        let (r, ports) = ask(
            &[
                Some(NOT_MONITORED),
                Some(bad_address),
                Some(bad_port),
                Some(error),
                Some(NAMED),
            ],
            5000,
            &[],
        );
        let (found, note) = r.expect("found");
        assert_eq!(found, primary);
        let note = note.expect("a note");
        assert!(
            note.starts_with(&format!(
                "4 of 5 sentinels skipped before sentinel 127.0.0.1:{} named the primary",
                ports[4]
            )),
            "{note}"
        );
        for reason in [
            format!("sentinel 127.0.0.1:{}: does not monitor main", ports[0]),
            format!(
                "sentinel 127.0.0.1:{}: an address that is not one",
                ports[1]
            ),
            format!(
                "sentinel 127.0.0.1:{}: an address that is not one",
                ports[2]
            ),
            format!("sentinel 127.0.0.1:{}: ERR something went wrong", ports[3]),
        ] {
            assert!(note.contains(&reason), "{reason}: {note}");
        }

        // A sentinel naming an address known not to be the primary is passed over.
        let (r, ports) = ask(
            &[Some(NAMED), Some(NAMED)],
            2000,
            std::slice::from_ref(&primary),
        );
        let f = r.expect_err("no other primary");
        assert!(
            f.message.contains(&format!(
                "sentinel 127.0.0.1:{}: names 127.0.0.1:6390, which says it is not the primary",
                ports[0]
            )),
            "{}",
            f.message
        );
    }

    /// Where every sentinel answered and none can name the primary (it does not monitor
    /// the name, it is no sentinel, another kind of server), state= is wrong: a refusal.
    /// Where one could not be asked (down, or silent past its share of the time), the
    /// sentinels may yet answer: an outage. Each sentinel gets its share of the time
    /// left, so a silent one does not take the others' time.
    #[test]
    fn sentinels_that_all_answered_without_a_primary_are_a_refusal_and_a_silent_one_an_outage() {
        let unknown: &[u8] = b"-ERR unknown command 'SENTINEL', with args beginning with: \r\n";
        let http: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        let (r, _) = ask(&[Some(NOT_MONITORED), Some(unknown), Some(http)], 5000, &[]);
        let f = r.expect_err("no primary");
        assert_eq!(f.status, Status::Refused, "{}", f.message);
        assert!(
            f.message
                .starts_with("no sentinel named the primary main: ")
                && f.message
                    .contains("not a sentinel (it does not know SENTINEL)")
                && f.message.contains("(an HTTP server)")
                && f.message.contains("names the sentinels' ports"),
            "{}",
            f.message
        );

        let (r, _) = ask(&[Some(NOT_MONITORED), None], 600, &[]);
        let f = r.expect_err("no primary");
        assert_eq!(f.status, Status::Unavailable, "{}", f.message);
        assert!(f.message.contains("no answer within"), "{}", f.message);

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (nodes, servers): (Vec<_>, Vec<_>) =
            [Some(NOT_MONITORED)].iter().map(|r| sentinel(*r)).unzip();
        let mut nodes = nodes;
        nodes.push(("127.0.0.1".to_owned(), closed));
        let r = discover(
            &nodes,
            "main",
            None,
            Instant::now() + Duration::from_secs(5),
            &[],
        );
        done(&nodes[..1], servers);
        let f = r.expect_err("no primary");
        assert_eq!(f.status, Status::Unavailable, "{}", f.message);

        // A silent first sentinel keeps only its share: the second still answers.
        let (r, _) = ask(&[None, Some(NAMED)], 1200, &[]);
        let (found, note) = r.expect("the second answers");
        assert_eq!(found, ("127.0.0.1".to_owned(), 6390));
        assert!(note.is_some_and(|n| n.contains("no answer within")));
    }

    /// A connection the server ends without a reply gets the hint at what may be wrong
    /// with a plain connection (a TLS port, a proxy); one that times out does not, nor
    /// does it get the TLS hint.
    #[test]
    fn only_a_plain_connection_ended_without_a_reply_gets_the_plain_hint() {
        let plain = "(the server ended the connection without a reply: a TLS port";
        let (f, _) = against(vec![], reading(&[]), |b| b.err().expect("ended"));
        assert_eq!(f.status, Status::Unavailable, "{}", f.message);
        assert!(f.message.contains(plain), "{}", f.message);
        assert!(!f.message.contains("client certificate"), "{}", f.message);
        // The server reads the command and never answers.
        let (f, _) = against(vec![b"", b""], reading(&[]), |b| b.err().expect("timeout"));
        assert_eq!(f.status, Status::Unavailable, "{}", f.message);
        assert!(
            f.message
                .ends_with("no complete reply within 500 ms (the bound of the whole command)"),
            "{}",
            f.message
        );
    }

    /// A loopback server answering its connections in turn, each with its own replies,
    /// one per chunk the client sends; each connection is held until the client is done.
    fn tcp_server(
        listener: std::net::TcpListener,
        connections: Vec<Vec<Vec<u8>>>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for replies in connections {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                for reply in replies {
                    if !matches!(s.read(&mut buf), Ok(n) if n > 0) || s.write_all(&reply).is_err() {
                        break;
                    }
                }
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            }
        })
    }

    /// A sentinel that names a server which says it is not the primary (a sentinel
    /// behind the others) does not deny the open: the sentinels are asked again, that
    /// address no longer taken from any of them, and the primary another one names is
    /// used; the one passed over is noted for the log.
    #[test]
    fn a_sentinel_naming_a_replica_is_passed_over_for_one_naming_the_primary() {
        let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (a, b, replica, primary) = (bind(), bind(), bind(), bind());
        let port = |l: &std::net::TcpListener| l.local_addr().expect("addr").port();
        let (pa, pb, pr, pp) = (port(&a), port(&b), port(&replica), port(&primary));
        let names = |p: u16| {
            let p = p.to_string();
            format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{p}\r\n", p.len()).into_bytes()
        };
        let servers = [
            tcp_server(a, vec![vec![names(pr)], vec![names(pr)]]),
            tcp_server(b, vec![vec![names(pp)]]),
            tcp_server(replica, vec![vec![b"*1\r\n$5\r\nslave\r\n".to_vec()]]),
            tcp_server(
                primary,
                vec![vec![
                    const_concat(&[b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", INFO_OK]).to_vec(),
                ]],
            ),
        ];
        let config = PluginConfig {
            url: format!("redis+sentinel://127.0.0.1:{pa},127.0.0.1:{pb}/main/0"),
            connect_timeout_ms: 5000,
            command_timeout_ms: 5000,
            ..PluginConfig::default()
        };
        let mut backend = Backend::connect(config).unwrap_or_else(|f| panic!("{}", f.message));
        let note = backend.take_note().expect("a note");
        assert!(
            note.contains(&format!(
                "sentinel 127.0.0.1:{pa}: names 127.0.0.1:{pr}, which says it is not the primary"
            )),
            "{note}"
        );
        drop(backend);
        for s in servers {
            s.join().expect("server");
        }
    }

    /// `totp-state init` loads the function library in the open's pipeline: the
    /// library's name is the success, a server before Redis 7 (no `FUNCTION`) is left to
    /// the script, and any other answer fails the open with what it is.
    #[test]
    fn the_function_library_loads_or_is_left_to_the_script_on_an_older_server() {
        let installing = |path: &std::path::Path| PluginConfig {
            install_functions: true,
            ..config(path, &[])
        };
        let loaded = const_concat(&[b"$8\r\npam_totp\r\n", INFO_OK]);
        let (r, seen) = against(vec![loaded], installing, |b| b.map(|_| ()));
        assert!(r.is_ok(), "{:?}", r.err());
        assert!(
            seen[0].contains("FUNCTION") && seen[0].contains("LOAD"),
            "{seen:?}"
        );
        let older = const_concat(&[
            b"-ERR unknown command 'FUNCTION', with args beginning with: 'LOAD'\r\n",
            INFO_OK,
        ]);
        let (r, _) = against(vec![older], installing, |b| b.map(|_| ()));
        assert!(r.is_ok(), "{:?}", r.err());
        for (reply, status) in [
            (
                &b"-NOPERM this user has no permissions to run the 'function|load' command\r\n"[..],
                Status::Refused,
            ),
            (b"$5\r\nother\r\n", Status::Corrupt),
        ] {
            let reply = const_concat(&[reply, INFO_OK]);
            let (r, _) = against(vec![reply], installing, |b| b.map(|_| ()));
            let f = r.expect_err("not loaded");
            assert_eq!(f.status, status, "{}", f.message);
            assert!(f.message.contains("FUNCTION LOAD"), "{}", f.message);
        }
    }

    /// The open through one sentinel naming a primary that answers `ROLE` with `role`
    /// (and `INFO` as a server without a memory limit): whether it succeeded.
    fn open_via_sentinel(role: &[u8]) -> Result<(), Failure> {
        let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (sentinel, primary) = (bind(), bind());
        let ps = sentinel.local_addr().expect("addr").port();
        let pp = primary.local_addr().expect("addr").port().to_string();
        let names = format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{pp}\r\n", pp.len()).into_bytes();
        let servers = [
            tcp_server(sentinel, vec![vec![names]]),
            tcp_server(primary, vec![vec![[role, INFO_OK].concat()]]),
        ];
        let config = PluginConfig {
            url: format!("redis+sentinel://127.0.0.1:{ps}/main/0"),
            connect_timeout_ms: 5000,
            command_timeout_ms: 5000,
            ..PluginConfig::default()
        };
        // Closed before the servers are joined.
        let r = Backend::connect(config).map(drop);
        for s in servers {
            s.join().expect("server");
        }
        r
    }

    /// Each reply of the open is read within its own bounds (R36), sized for what the
    /// server sends: a primary's `ROLE` listing 64 replicas, an `INFO` of several KiB,
    /// a record and a store record of the largest size the module writes, all read; a
    /// `ROLE` listing more, or a stored value larger than a record, refused unread.
    #[test]
    fn each_reply_of_the_open_is_read_within_bounds_sized_for_it() {
        let role = |replicas: usize| {
            let mut r = format!("*3\r\n$6\r\nmaster\r\n:0\r\n*{replicas}\r\n").into_bytes();
            for _ in 0..replicas {
                r.extend_from_slice(b"*3\r\n$9\r\n192.0.2.1\r\n$4\r\n6379\r\n$1\r\n0\r\n");
            }
            r
        };
        open_via_sentinel(&role(64)).unwrap_or_else(|f| panic!("{}", f.message));
        let f = open_via_sentinel(&role(65)).expect_err("too many");
        assert!(
            f.message.starts_with("ROLE: reply too large"),
            "{}",
            f.message
        );

        let bulk = |v: &[u8]| {
            let mut out = format!("${}\r\n", v.len()).into_bytes();
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
            out
        };
        let padding = format!("# Padding\r\n{}\r\n", "x:1\r\n".repeat(1600));
        let text = format!("{padding}# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:x\r\n");
        let info = bulk(text.as_bytes());
        assert!(info.len() > 8000);
        let version = b"18446744073709551615";
        let full = vec![b'r'; MAX_ENCODED_LEN];
        let record = [&b"*2\r\n"[..], &bulk(version), &bulk(&full)].concat();
        let binding = vec![b'b'; 100];
        let store = [
            &b"*3\r\n"[..],
            &bulk(version),
            &bulk(&full),
            &bulk(&binding),
        ]
        .concat();
        let big = vec![b'r'; MAX_ENCODED_LEN + 256];
        let too_big = [&b"*2\r\n"[..], &bulk(b"1"), &bulk(&big)].concat();
        let open = const_concat(&[&info, &record, &store, &too_big]);
        let ((), _) = against(
            vec![open],
            |path| PluginConfig {
                store_key: Some(b"p:store".to_vec()),
                ..config(path, &[b"p:user:a", b"p:store", b"p:user:b"])
            },
            |b| {
                let mut b = b.unwrap_or_else(|f| panic!("{}", f.message));
                assert_eq!(
                    b.get(b"p:user:a").map(|(r, _)| r.len()).ok(),
                    Some(MAX_ENCODED_LEN)
                );
                assert_eq!(
                    b.prefetched_store
                        .take()
                        .and_then(Result::ok)
                        .map(|(r, v, _)| (r.len(), v)),
                    Some((MAX_ENCODED_LEN, u64::MAX))
                );
                let f = b.get(b"p:user:b").expect_err("too large");
                assert_eq!(f.status, Status::Corrupt);
                assert!(
                    f.message
                        .starts_with("HMGET: stored value too large: a string of"),
                    "{}",
                    f.message
                );
            },
        );
    }

    /// A sentinel's port named with the hosts' credentials refuses any password, and
    /// still answers `INFO` (its full size read): the open says it is a sentinel, not
    /// that the password is wrong.
    #[test]
    fn a_sentinel_refusing_the_password_is_named_a_sentinel() {
        let text = format!(
            "# Server\r\nredis_mode:sentinel\r\n{}\r\n",
            "x:1\r\n".repeat(600)
        );
        let reply = [
            &b"-WRONGPASS invalid username-password pair\r\n"[..],
            format!("${}\r\n{text}\r\n", text.len()).as_bytes(),
        ]
        .concat();
        assert!(reply.len() > 3000);
        let with_password = |path: &std::path::Path| PluginConfig {
            password: Some(Zeroizing::new("pw".to_owned())),
            ..config(path, &[])
        };
        let (e, _) = against(vec![const_concat(&[&reply])], with_password, |b| {
            b.err().expect("refused")
        });
        assert_eq!(e.status, Status::Refused);
        assert!(
            e.message.starts_with("the server is a Redis Sentinel"),
            "{}",
            e.message
        );
    }

    /// The compare-and-set falls back to the script where the server has no function
    /// library (not installed, or a server before Redis 7), for the rest of the
    /// connection; any other refusal of `FCALL` fails the write without the script.
    #[test]
    fn the_compare_and_set_falls_back_to_the_script_only_without_the_library() {
        for missing in [
            &b"-ERR Function not found\r\n"[..],
            b"-ERR unknown command 'FCALL', with args beginning with: 'pam_totp_cas_v4'\r\n",
        ] {
            let ((), seen) = against(
                vec![INFO_OK, missing, b":1\r\n", b":0\r\n"],
                reading(&[]),
                |b| {
                    let mut b = b.expect("open");
                    assert_eq!(
                        b.compare_and_set(b"p:user:a", 0, b"rec", 0, false).ok(),
                        Some(Status::Ok)
                    );
                    assert_eq!(
                        b.compare_and_set(b"p:user:a", 9, b"rec", 0, false).ok(),
                        Some(Status::Conflict)
                    );
                },
            );
            assert_eq!(seen.len(), 4, "{seen:?}");
            assert!(seen[1].contains("FCALL"), "{seen:?}");
            assert!(
                seen[2].contains("EVAL") && seen[3].contains("EVAL"),
                "{seen:?}"
            );
        }
        let refused: &[u8] = b"-NOPERM this user has no permissions to run the 'fcall' command\r\n";
        let (f, seen) = against(vec![INFO_OK, refused], reading(&[]), |b| {
            b.expect("open")
                .compare_and_set(b"p:user:a", 0, b"rec", 0, false)
                .expect_err("refused")
        });
        assert_eq!(f.status, Status::Refused, "{}", f.message);
        assert_eq!(seen.len(), 2, "no script after a refusal: {seen:?}");
    }

    /// A write sends the record, the version it expects and the version it writes: one
    /// more than the expected one, or for a key it creates a random start in
    /// [2^32, 2^52). A record larger than the module writes is refused unsent, the
    /// largest one is sent.
    #[test]
    fn a_write_sends_the_version_it_expects_and_the_one_it_writes() {
        let full = vec![b'r'; MAX_ENCODED_LEN];
        let ((), seen) = against(vec![INFO_OK, b":1\r\n", b":1\r\n"], reading(&[]), |b| {
            let mut b = b.expect("open");
            let f = b
                .compare_and_set(b"p:user:a", 5, &vec![b'r'; MAX_ENCODED_LEN + 1], 0, false)
                .expect_err("too large");
            assert_eq!(f.status, Status::Invalid);
            assert_eq!(
                b.compare_and_set(b"p:user:a", 5, &full, 0, false).ok(),
                Some(Status::Ok)
            );
            assert_eq!(
                b.compare_and_set(b"p:user:a", 0, b"rec", 0, false).ok(),
                Some(Status::Ok)
            );
        });
        assert_eq!(seen.len(), 3, "the large one unsent: {seen:?}");
        // FCALL, the function, 1 key, the key, expected, record, TTL, start.
        let args = |chunk: &str| -> Vec<String> {
            chunk
                .split("\r\n")
                .skip(2)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        let update = args(&seen[1]);
        assert_eq!(update[4], "5", "{update:?}");
        assert_eq!(update[5].len(), MAX_ENCODED_LEN);
        assert_eq!(update[7], "6", "{update:?}");
        let create = args(&seen[2]);
        assert_eq!(create[4], "0", "{create:?}");
        let start: u64 = create[7].parse().expect("a number");
        assert!((1 << 32..1 << 52).contains(&start), "{start}");
    }

    /// A reply the compare-and-set never gives is a damaged exchange, not a changed
    /// store record: 2 means that only where the store record was compared.
    #[test]
    fn a_script_reply_of_2_without_the_store_record_compared_is_corrupt() {
        let (f, _) = against(vec![INFO_OK, b":2\r\n"], reading(&[]), |b| {
            b.expect("open")
                .compare_and_set(b"p:user:a", 5, b"rec", 0, false)
                .expect_err("corrupt")
        });
        assert_eq!(
            (f.status, f.message.as_str()),
            (Status::Corrupt, "unexpected script reply")
        );
    }

    /// Where the script runs instead of the function, a command refused inside it is
    /// named, and `EVAL` itself refused says how the function comes back; an outage
    /// says neither.
    #[test]
    fn a_refusal_of_the_script_names_what_the_hosts_lack() {
        let missing: &[u8] = b"-ERR Function not found\r\n";
        let cases: [(&'static [u8], Status, &str); 3] = [
            (
                b"-NOPERM this user has no permissions to run the 'expire' command\r\n",
                Status::Refused,
                "(the ACL user lacks +expire",
            ),
            (
                b"-NOPERM this user has no permissions to run the 'eval' command\r\n",
                Status::Refused,
                "is not on the server",
            ),
            (
                b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
                Status::Unavailable,
                "",
            ),
        ];
        for (reply, status, says) in cases {
            let (f, _) = against(vec![INFO_OK, missing, reply], reading(&[]), |b| {
                b.expect("open")
                    .compare_and_set(b"p:user:a", 5, b"rec", 0, false)
                    .expect_err("refused")
            });
            assert_eq!(f.status, status, "{}", f.message);
            assert!(f.message.contains(says), "{}", f.message);
            if status == Status::Unavailable {
                assert!(
                    !f.message.contains("lacks") && !f.message.contains("not on the server"),
                    "{}",
                    f.message
                );
            }
        }
    }

    /// With `redis_wait=N`, a durable write waits for N replicas: fewer is a refusal
    /// naming how many answered; N is a success; a write that is not durable does not
    /// wait.
    #[test]
    fn a_durable_write_waits_for_its_replicas() {
        let waiting = |path: &std::path::Path| PluginConfig {
            wait_replicas: 2,
            wait_timeout_ms: 100,
            ..config(path, &[])
        };
        let ((), seen) = against(
            vec![
                INFO_OK, b":1\r\n", b":1\r\n", b":1\r\n", b":2\r\n", b":1\r\n",
            ],
            waiting,
            |b| {
                let mut b = b.expect("open");
                let f = b
                    .compare_and_set(b"p:user:a", 5, b"rec", 0, true)
                    .expect_err("one of two");
                assert_eq!(f.status, Status::Refused);
                assert!(
                    f.message
                        .starts_with("only 1 of 2 replicas acknowledged the write within 100 ms"),
                    "{}",
                    f.message
                );
                assert_eq!(
                    b.compare_and_set(b"p:user:a", 6, b"rec", 0, true).ok(),
                    Some(Status::Ok)
                );
                assert_eq!(
                    b.compare_and_set(b"p:user:a", 7, b"rec", 0, false).ok(),
                    Some(Status::Ok)
                );
            },
        );
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert!(
            seen[2].contains("WAIT") && seen[2].contains("\r\n2\r\n"),
            "{seen:?}"
        );
        assert!(seen[4].contains("WAIT"), "{seen:?}");
        assert!(seen[5].contains("FCALL"), "not durable, no WAIT: {seen:?}");
    }

    /// A delete is `DEL` of the key; its error reply is the server's, any other reply a
    /// damaged exchange.
    #[test]
    fn a_delete_is_del_of_the_key() {
        let ((), seen) = against(
            vec![
                INFO_OK,
                b":1\r\n",
                b"-READONLY You can't write against a read only replica.\r\n",
                b"+OK\r\n",
            ],
            reading(&[]),
            |b| {
                let mut b = b.expect("open");
                assert!(b.delete(b"p:user:a").is_ok());
                assert_eq!(
                    b.delete(b"p:user:a").map_err(|f| f.status).err(),
                    Some(Status::Unavailable)
                );
                assert_eq!(
                    b.delete(b"p:user:a").map_err(|f| f.status).err(),
                    Some(Status::Corrupt)
                );
            },
        );
        assert!(
            seen[1].contains("DEL") && seen[1].contains("p:user:a"),
            "{seen:?}"
        );
    }

    /// A store record larger than any the module writes is refused unread, not read
    /// whole and then found too large.
    #[test]
    fn a_store_record_larger_than_any_record_is_refused_unread() {
        let big = vec![b'r'; MAX_ENCODED_LEN + 512];
        let mut reply = format!("*3\r\n$1\r\n1\r\n${}\r\n", big.len()).into_bytes();
        reply.extend_from_slice(&big);
        reply.extend_from_slice(b"\r\n$-1\r\n");
        let open = const_concat(&[info_of("r2", "a2"), &reply]);
        let (f, _) = against(vec![open], store_config, |b| {
            b.expect("open").get(b"p:store").expect_err("too large")
        });
        assert_eq!(f.status, Status::Corrupt);
        assert!(
            f.message
                .starts_with("HMGET: stored value too large: a string of"),
            "{}",
            f.message
        );
    }

    /// A sentinel whose certificate this host does not trust answered, and stays so
    /// until an admin acts: where every sentinel fails so, a refusal (no
    /// `state_fallback=`), not an outage.
    #[test]
    fn sentinels_all_failing_verification_are_a_refusal() {
        let (sctx, _) = crate::resp::tests::server_context_and_ca();
        let sctx = sctx.build();
        let (_, other_ca) = crate::resp::tests::server_context_and_ca();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            if let Ok((tcp, _)) = listener.accept() {
                let _ = openssl::ssl::Ssl::new(&sctx).expect("ssl").accept(tcp);
            }
        });
        let tls = Tls {
            ca_pem: Some(&other_ca),
            client: None,
        };
        let r = discover(
            &[("127.0.0.1".to_owned(), port)],
            "main",
            Some(&tls),
            Instant::now() + Duration::from_secs(5),
            &[],
        );
        server.join().expect("server");
        let f = r.expect_err("untrusted");
        assert_eq!(f.status, Status::Refused, "{}", f.message);
        assert!(
            f.message.contains("certificate verify failed"),
            "{}",
            f.message
        );
    }
}
