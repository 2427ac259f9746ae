//! Fleet options: a shared Redis/Valkey state store and secrets served by a command.
//!
//! Parsing only (pure, bounded, fail closed like the rest of [`crate::options`]): where
//! the server is (`state=redis://…`, `rediss://…`, `unix:/path`), how long to wait for
//! it, which key prefix to use, where the credentials file is, and the secret command.
//! Also the two small byte formats the fleet code needs: the plugin configuration the
//! module hands to the Redis plugin ([`PluginConfig`]) and the credentials file
//! ([`Credentials`]). Credentials never come from the pam.d line, which is
//! world-readable: a URL carrying `user:password@` is refused.

use std::fmt;

use zeroize::Zeroizing;

use crate::options::{OptionError, absolute_path as absolute, bad, decimal};

pub mod etcd;
pub use etcd::{EtcdEndpoints, EtcdOptions};

/// Redis connect timeout default (per attempt), milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 500;
/// Redis command (reply) timeout default, milliseconds.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 500;
/// Longest accepted connect or command timeout: PAM callers wait for us.
pub const MAX_REDIS_TIMEOUT_MS: u64 = 5000;
/// Default key prefix, so several fleets (or other software) can share a server.
pub const DEFAULT_PREFIX: &str = "pam_totp:";
/// Default time-to-live of a user's record, refreshed on every write: 90 days.
pub const DEFAULT_TTL_SECS: u64 = 90 * 86_400;
/// `redis_wait=` default timeout for the replica acknowledgement, milliseconds.
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 500;
/// Secret command time limit default, milliseconds.
pub const DEFAULT_COMMAND_LIMIT_MS: u64 = 2000;
/// Longest accepted secret command time limit.
pub const MAX_COMMAND_LIMIT_MS: u64 = 10_000;
/// The exit status a secret command uses for "this user has no secret" (with empty
/// output). Deliberately not 1 or 2, which shells and crashing scripts produce.
pub const NOT_ENROLLED_EXIT_STATUS: i32 = 10;

/// Where the shared state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://HOST:PORT` or `rediss://HOST:PORT` (TLS).
    Tcp { host: String, port: u16, tls: bool },
    /// `unix:/path` or `redis+unix:///path`.
    Unix { path: String },
    /// `redis+sentinel://H1:P1,H2:P2/NAME` or `rediss+sentinel://…` (TLS to the sentinels
    /// and the primary): the primary named NAME, as any reachable sentinel reports it.
    Sentinel {
        nodes: Vec<(String, u16)>,
        name: String,
        tls: bool,
    },
}

/// Most sentinels one `state=` may list.
pub const MAX_SENTINELS: usize = 8;
/// The sentinel port when none is given.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A parsed `state=` value naming a Redis/Valkey server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisEndpoint {
    pub target: RedisTarget,
    /// Logical database (`/DB` or `?db=DB`).
    pub db: u32,
}

impl RedisEndpoint {
    /// Whether a `state=` value names a Redis server rather than the local store.
    pub fn is_remote(v: &str) -> bool {
        [
            "redis://",
            "rediss://",
            "redis+unix://",
            "unix:",
            "redis+sentinel://",
            "rediss+sentinel://",
        ]
        .iter()
        .any(|s| v.starts_with(s))
    }

    /// Parses `redis://HOST[:PORT][/DB]`, `rediss://…`, `unix:/path[?db=N]` and
    /// `redis+unix:///path[?db=N]`. Hosts are IP literals or DNS names; no user info,
    /// no other query parameters.
    pub fn parse(v: &str) -> Result<Self, OptionError> {
        let bad = |r| bad("state", r);
        if v.len() > 1024 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("not a valid server address"));
        }
        if let Some(rest) = v
            .strip_prefix("redis+unix://")
            .or_else(|| v.strip_prefix("unix:"))
        {
            let (path, db) = match rest.split_once('?') {
                None => (rest, 0),
                Some((p, q)) => {
                    let n = q
                        .strip_prefix("db=")
                        .ok_or_else(|| bad("only ?db= may follow a socket path"))?;
                    (p, decimal_u32(n).ok_or_else(|| bad("bad database number"))?)
                }
            };
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return Err(bad("socket path must be absolute, without .."));
            }
            return Ok(Self {
                target: RedisTarget::Unix {
                    path: path.to_owned(),
                },
                db,
            });
        }
        let sentinel = v
            .strip_prefix("redis+sentinel://")
            .map(|r| (false, r))
            .or_else(|| v.strip_prefix("rediss+sentinel://").map(|r| (true, r)));
        if let Some((tls, rest)) = sentinel {
            return Self::parse_sentinel(rest, tls);
        }
        let (tls, rest) = if let Some(r) = v.strip_prefix("rediss://") {
            (true, r)
        } else if let Some(r) = v.strip_prefix("redis://") {
            (false, r)
        } else {
            return Err(bad("unknown scheme"));
        };
        if rest.contains('@') {
            return Err(bad(
                "credentials are not allowed on the pam.d line (use redis_credentials=)",
            ));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("query strings are not supported"));
        }
        let (hostport, db) = match rest.split_once('/') {
            None => (rest, 0),
            Some((h, "")) => (h, 0),
            Some((h, d)) => (h, decimal_u32(d).ok_or_else(|| bad("bad database number"))?),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("bad host or port"))?;
        Ok(Self {
            target: RedisTarget::Tcp { host, port, tls },
            db,
        })
    }

    /// `H1:P1,H2:P2/NAME[/DB]` after a sentinel scheme.
    fn parse_sentinel(rest: &str, tls: bool) -> Result<Self, OptionError> {
        let bad = |r| bad("state", r);
        if rest.contains('@') {
            return Err(bad(
                "credentials are not allowed on the pam.d line (use redis_credentials=)",
            ));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("query strings are not supported"));
        }
        let mut parts = rest.split('/');
        let hosts = parts.next().unwrap_or("");
        let name = parts
            .next()
            .filter(|n| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            })
            .ok_or_else(|| bad("a sentinel address needs /NAME (the monitored primary)"))?;
        let db = match parts.next() {
            None | Some("") => 0,
            Some(d) => decimal_u32(d).ok_or_else(|| bad("bad database number"))?,
        };
        if parts.next().is_some() {
            return Err(bad("expected SENTINELS/NAME[/DB]"));
        }
        let nodes = hosts
            .split(',')
            .map(|h| {
                let (host, port) = if h.contains(':') || h.starts_with('[') {
                    split_host_port(h)?
                } else {
                    (split_host_port(h)?.0, DEFAULT_SENTINEL_PORT)
                };
                Some((host, port))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("bad sentinel host or port"))?;
        if nodes.is_empty() || nodes.len() > MAX_SENTINELS {
            return Err(bad("1 to 8 sentinels"));
        }
        Ok(Self {
            target: RedisTarget::Sentinel {
                nodes,
                name: name.to_owned(),
                tls,
            },
            db,
        })
    }

    /// The URL handed to the client library (never carries credentials).
    pub fn url(&self) -> String {
        match &self.target {
            RedisTarget::Sentinel { nodes, name, tls } => {
                let scheme = if *tls { "rediss" } else { "redis" };
                let hosts: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                format!("{scheme}+sentinel://{}/{name}/{}", hosts.join(","), self.db)
            }
            RedisTarget::Tcp { host, port, tls } => {
                let scheme = if *tls { "rediss" } else { "redis" };
                format!("{scheme}://{host}:{port}/{}", self.db)
            }
            RedisTarget::Unix { path } => format!("redis+unix://{path}?db={}", self.db),
        }
    }

    /// Whether the connection is TLS.
    pub fn tls(&self) -> bool {
        matches!(
            self.target,
            RedisTarget::Tcp { tls: true, .. } | RedisTarget::Sentinel { tls: true, .. }
        )
    }
}

fn decimal_u32(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn split_host_port(v: &str) -> Option<(String, u16)> {
    split_host_port_default(v, 6379)
}

/// `HOST[:PORT]` with `default` for a missing port (shared with the etcd endpoints).
fn split_host_port_default(v: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{h}]"), port)
    } else {
        let (h, p) = match v.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        };
        let ok = !h.is_empty()
            && h.len() <= 253
            && !h.starts_with(['-', '.'])
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return None;
        }
        (h.to_owned(), p)
    };
    let port = match port {
        None => default,
        Some(p) => {
            let n = decimal_u32(p)?;
            u16::try_from(n).ok().filter(|&n| n != 0)?
        }
    };
    Some((host, port))
}

/// What happens when the shared store cannot be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Deny (the default: fail closed).
    #[default]
    Deny,
    /// `state_fallback=local`: use the host's local store instead, logged as a weakening
    /// every time (codes replayed on another host are then not caught).
    Local,
}

/// What a shared store's connection is made of, whatever the backend, with defaults
/// filled in. Each backend keeps its own option names (`redis_client_cert=` and
/// `etcd_cert_file=` both set `client_cert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Bound on the connect (and TLS handshake; with Redis also `AUTH`), milliseconds.
    pub connect_timeout_ms: u64,
    /// Bound on each whole command or request, its reply included, milliseconds.
    pub command_timeout_ms: u64,
    pub prefix: String,
    /// Root-only file with `username=` / `password=` lines.
    pub credentials: Option<String>,
    /// CA bundle (PEM) that verifies a TLS server: only it is trusted.
    pub ca_file: Option<String>,
    /// Client certificate (PEM) and its root-only key, for servers that require one.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// Plugin path override (absolute); the module's own default otherwise.
    pub plugin: Option<String>,
}

/// A backend's connection options as a module line gave them (each backend has its
/// own option names), before defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInput {
    pub connect_timeout_ms: Option<u64>,
    pub command_timeout_ms: Option<u64>,
    pub prefix: Option<String>,
    pub credentials: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub plugin: Option<String>,
}

impl ConnectionInput {
    /// The connection with the shared defaults and the backend's own key prefix.
    pub fn with_defaults(&self, default_prefix: &str) -> ConnectionOptions {
        ConnectionOptions {
            connect_timeout_ms: self
                .connect_timeout_ms
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
            command_timeout_ms: self
                .command_timeout_ms
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS),
            prefix: self
                .prefix
                .clone()
                .unwrap_or_else(|| default_prefix.to_owned()),
            credentials: self.credentials.clone(),
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            plugin: self.plugin.clone(),
        }
    }
}

/// The Redis backend settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    pub endpoint: RedisEndpoint,
    /// The connection; without `redis_ca_file=`, a `rediss://` server is verified
    /// against the system bundle.
    pub conn: ConnectionOptions,
    /// Replicas that must acknowledge a consumed code (`WAIT`); 0 = do not wait.
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
    /// Record time-to-live; 0 = never expire.
    pub ttl_secs: u64,
}

/// The secret command (`secret_command=`), OpenSSH `AuthorizedKeysCommand` style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretCommand {
    pub path: String,
    /// The unprivileged user it runs as (required).
    pub user: String,
    pub timeout_ms: u64,
}

/// Every fleet option as given; [`FleetOptions::check`] turns it into a consistent set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetOptions {
    pub redis: Option<RedisEndpoint>,
    pub fallback: Fallback,
    /// The `redis_*` connection options as given.
    pub conn: ConnectionInput,
    pub wait_replicas: Option<u32>,
    pub wait_timeout_ms: Option<u64>,
    pub ttl_secs: Option<u64>,
    pub secret_command: Option<String>,
    pub secret_command_user: Option<String>,
    pub secret_command_timeout_ms: Option<u64>,
    /// `state=etcd…` and the `etcd_*` options (`fleet/etcd.rs`).
    pub etcd: etcd::EtcdFleet,
}

/// The shared store a module line names, whichever backend it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedStore {
    Redis(RedisOptions),
    Etcd(EtcdOptions),
}

/// A key prefix (`redis_prefix=`, `etcd_prefix=`): 1-64 printable ASCII characters
/// other than `=` (the plugin configuration's separator).
fn key_prefix(option: &'static str, v: &str) -> Result<String, OptionError> {
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
    if !ok {
        return Err(bad(option, "1-64 printable characters"));
    }
    Ok(v.to_owned())
}

impl FleetOptions {
    /// Applies `state=<remote>` or one of the fleet options (the "Fleets" part of
    /// [`crate::options::OPTION_NAMES`]). `Ok(false)`: not ours.
    pub fn apply(&mut self, name: &str, v: &str) -> Result<bool, OptionError> {
        if self.etcd.apply(name, v)? {
            return Ok(true);
        }
        match name {
            "state" if RedisEndpoint::is_remote(v) => self.redis = Some(RedisEndpoint::parse(v)?),
            "state_fallback" => {
                self.fallback = match v {
                    "local" => Fallback::Local,
                    "deny" => Fallback::Deny,
                    _ => return Err(bad("state_fallback", "expected local or deny")),
                }
            }
            "redis_connect_timeout" => {
                self.conn.connect_timeout_ms = Some(decimal(
                    "redis_connect_timeout",
                    v,
                    1,
                    MAX_REDIS_TIMEOUT_MS,
                )?)
            }
            "redis_timeout" => {
                self.conn.command_timeout_ms =
                    Some(decimal("redis_timeout", v, 1, MAX_REDIS_TIMEOUT_MS)?)
            }
            "redis_prefix" => self.conn.prefix = Some(key_prefix("redis_prefix", v)?),
            "redis_credentials" => {
                self.conn.credentials = Some(absolute("redis_credentials", v)?);
            }
            "redis_ca_file" => self.conn.ca_file = Some(absolute("redis_ca_file", v)?),
            "redis_client_cert" => {
                self.conn.client_cert = Some(absolute("redis_client_cert", v)?);
            }
            "redis_client_key" => self.conn.client_key = Some(absolute("redis_client_key", v)?),
            "redis_wait" => self.wait_replicas = Some(decimal("redis_wait", v, 0, 64)? as u32),
            "redis_wait_timeout" => {
                self.wait_timeout_ms =
                    Some(decimal("redis_wait_timeout", v, 1, MAX_REDIS_TIMEOUT_MS)?)
            }
            "redis_ttl" => self.ttl_secs = Some(decimal("redis_ttl", v, 0, 10 * 366 * 86_400)?),
            "redis_plugin" => self.conn.plugin = Some(absolute("redis_plugin", v)?),
            "secret_command" => self.secret_command = Some(absolute("secret_command", v)?),
            "secret_command_user" => {
                let ok = !v.is_empty()
                    && v.len() <= 32
                    && !v.starts_with('-')
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
                if !ok {
                    return Err(bad("secret_command_user", "not a valid user name"));
                }
                self.secret_command_user = Some(v.to_owned());
            }
            "secret_command_timeout" => {
                self.secret_command_timeout_ms = Some(decimal(
                    "secret_command_timeout",
                    v,
                    1,
                    MAX_COMMAND_LIMIT_MS,
                )?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses combinations that would not do what the admin meant: Redis settings
    /// without a Redis `state=`, a CA file without TLS, a command without its user.
    pub fn check(&self) -> Result<(), OptionError> {
        let redis_only = [
            (
                "redis_connect_timeout",
                self.conn.connect_timeout_ms.is_some(),
            ),
            ("redis_timeout", self.conn.command_timeout_ms.is_some()),
            ("redis_prefix", self.conn.prefix.is_some()),
            ("redis_credentials", self.conn.credentials.is_some()),
            ("redis_ca_file", self.conn.ca_file.is_some()),
            ("redis_client_cert", self.conn.client_cert.is_some()),
            ("redis_client_key", self.conn.client_key.is_some()),
            ("redis_wait", self.wait_replicas.is_some()),
            ("redis_wait_timeout", self.wait_timeout_ms.is_some()),
            ("redis_ttl", self.ttl_secs.is_some()),
            ("redis_plugin", self.conn.plugin.is_some()),
        ];
        self.etcd.check()?;
        if self.fallback != Fallback::Deny && self.redis.is_none() && self.etcd.endpoints.is_none()
        {
            return Err(bad(
                "state_fallback",
                "needs a shared state= store (redis…, unix:, etcd://, etcds://)",
            ));
        }
        if self.redis.is_none()
            && let Some((name, _)) = redis_only.iter().find(|(_, set)| *set)
        {
            return Err(bad(
                name,
                "needs a Redis state= (redis://, rediss://, unix:, redis+sentinel://, rediss+sentinel://)",
            ));
        }
        if self.conn.ca_file.is_some() && !self.redis.as_ref().is_some_and(RedisEndpoint::tls) {
            return Err(bad(
                "redis_ca_file",
                "needs a TLS server (rediss://, rediss+sentinel://)",
            ));
        }
        match (&self.conn.client_cert, &self.conn.client_key) {
            (Some(_), None) => return Err(bad("redis_client_cert", "needs redis_client_key=")),
            (None, Some(_)) => return Err(bad("redis_client_key", "needs redis_client_cert=")),
            (Some(_), Some(_)) if !self.redis.as_ref().is_some_and(RedisEndpoint::tls) => {
                return Err(bad(
                    "redis_client_cert",
                    "needs a TLS server (rediss://, rediss+sentinel://)",
                ));
            }
            _ => {}
        }
        match (&self.secret_command, &self.secret_command_user) {
            (Some(_), None) => Err(bad("secret_command", "needs secret_command_user=")),
            (None, Some(_)) => Err(bad("secret_command_user", "needs secret_command=")),
            (None, None) if self.secret_command_timeout_ms.is_some() => {
                Err(bad("secret_command_timeout", "needs secret_command="))
            }
            _ => Ok(()),
        }
    }

    /// The Redis settings with defaults filled in, when `state=` names a server.
    pub fn redis(&self) -> Option<RedisOptions> {
        let endpoint = self.redis.clone()?;
        Some(RedisOptions {
            endpoint,
            conn: self.conn.with_defaults(DEFAULT_PREFIX),
            wait_replicas: self.wait_replicas.unwrap_or(0),
            wait_timeout_ms: self.wait_timeout_ms.unwrap_or(DEFAULT_WAIT_TIMEOUT_MS),
            ttl_secs: self.ttl_secs.unwrap_or(DEFAULT_TTL_SECS),
        })
    }

    /// The shared store `state=` names, if any (etcd or Redis).
    pub fn shared(&self) -> Option<SharedStore> {
        if let Some(e) = self.etcd.options() {
            return Some(SharedStore::Etcd(e));
        }
        self.redis().map(SharedStore::Redis)
    }

    /// The secret command, when configured (after [`FleetOptions::check`]).
    pub fn secret_command(&self) -> Option<SecretCommand> {
        Some(SecretCommand {
            path: self.secret_command.clone()?,
            user: self.secret_command_user.clone()?,
            timeout_ms: self
                .secret_command_timeout_ms
                .unwrap_or(DEFAULT_COMMAND_LIMIT_MS),
        })
    }
}

/// Why a secret file served by the secret command is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandFileError {
    /// It lists scratch codes, and a host-local store would let each host accept a
    /// used one once more.
    ScratchCodes,
    /// It is an HOTP file, and with a host-local store each host would keep its own
    /// counter.
    Hotp,
    /// No code can ever be right: neither `" TOTP_AUTH` nor `HOTP_COUNTER` (so, as in
    /// google-authenticator, only scratch codes count) and no scratch code. A script
    /// printing just the secret from its vault gives exactly this; every right code
    /// would be logged and throttled as a wrong one.
    NoCode,
}

impl fmt::Display for CommandFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::ScratchCodes => "lists scratch codes",
            Self::Hotp => "is an HOTP file",
            Self::NoCode => {
                return f.write_str(
                    "secret command output has no \" TOTP_AUTH (or HOTP_COUNTER) line and no \
                     scratch code, so no code could be right; print the whole secret file \
                     (as totp-enroll --print-file writes it), not just the secret",
                );
            }
        };
        write!(
            f,
            "secret command output {what}: refused without a shared state store (state=redis…), \
             where a used code is recorded for every host"
        )
    }
}

/// The extra rule for files that come from `secret_command=`: there is no file to
/// rewrite, so a used scratch code or HOTP counter lives only in the state store. Every
/// host must see it: allowed with a shared store (`shared`), refused with a local one.
/// A file no code can match is refused with any store, so the log says why instead of
/// calling every right code wrong.
pub fn check_command_file(
    file: &crate::gafile::GaFile,
    shared: bool,
) -> Result<(), CommandFileError> {
    if file
        .config()
        .is_ok_and(|c| c.mode == crate::gafile::Mode::ScratchOnly)
        && file.scratch_codes().is_empty()
    {
        return Err(CommandFileError::NoCode);
    }
    if shared {
        return Ok(());
    }
    if file.contains_key(crate::gafile::KEY_HOTP_COUNTER) {
        return Err(CommandFileError::Hotp);
    }
    if !file.scratch_codes().is_empty() {
        return Err(CommandFileError::ScratchCodes);
    }
    Ok(())
}

/// The Redis ACL user and password, from a root-only file (`redis_credentials=`).
///
/// Format: `username=NAME` (optional; Redis' `default` user otherwise) and
/// `password=SECRET`, one per line; blank lines and `#` comments are ignored; anything
/// else is an error. The password is the rest of its line, taken verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a credentials file was refused (never quotes the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsError {
    NotUtf8,
    UnknownLine(usize),
    Duplicate(&'static str),
    NoPassword,
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("not UTF-8"),
            Self::UnknownLine(n) => write!(f, "line {n} is not username= or password="),
            Self::Duplicate(k) => write!(f, "{k}= given twice"),
            Self::NoPassword => f.write_str("no password= line"),
        }
    }
}

impl Credentials {
    pub fn parse(bytes: &[u8]) -> Result<Self, CredentialsError> {
        let text = std::str::from_utf8(bytes).map_err(|_| CredentialsError::NotUtf8)?;
        let mut username = None;
        let mut password: Option<Zeroizing<String>> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            if let Some(u) = line.strip_prefix("username=") {
                if username.replace(u.trim().to_owned()).is_some() {
                    return Err(CredentialsError::Duplicate("username"));
                }
            } else if let Some(p) = line.strip_prefix("password=") {
                if password.replace(Zeroizing::new(p.to_owned())).is_some() {
                    return Err(CredentialsError::Duplicate("password"));
                }
            } else {
                return Err(CredentialsError::UnknownLine(i + 1));
            }
        }
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or(CredentialsError::NoPassword)?;
        Ok(Self {
            username: username.filter(|u| !u.is_empty()),
            password,
        })
    }
}

/// What the module hands to the plugin's `open`: everything it needs to connect, in a
/// tag-length-value byte string (the plugin ABI carries bytes, never Rust types).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    /// A URL from [`RedisEndpoint::url`] (no credentials in it).
    pub url: String,
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and its key (PEM), for servers with `tls-auth-clients yes`.
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Zeroizing<Vec<u8>>>,
    pub username: Option<String>,
    pub password: Option<Zeroizing<String>>,
    pub connect_timeout_ms: u64,
    pub command_timeout_ms: u64,
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
    /// Install (or replace) the compare-and-set function library at open: for the
    /// admin tool (`totp-state init`), never for a login.
    pub install_functions: bool,
    /// The store record's key (`<prefix>store`). The etcd plugin binds the record under
    /// it to the cluster ID it was written on (a cluster restored from a snapshot then
    /// reads it as absent, R34); the Redis plugin binds it to the server instance (its
    /// run and replication IDs), so a restart or a failover reads it as stale.
    pub store_key: Option<Vec<u8>>,
    /// Keys the plugin reads while opening, in the open's one round trip (at most
    /// [`MAX_PREFETCH_KEYS`], each at most [`MAX_PREFETCH_KEY_LEN`] bytes): the store
    /// record and the login's user records. The first `get` of each is answered from
    /// that read, once; a later `get`, or any `get` after a write, asks the server.
    pub prefetch: Vec<Vec<u8>>,
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginConfig")
            .field("url", &self.url)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("client_cert", &self.client_cert.as_ref().map(Vec::len))
            .field(
                "client_key",
                &self.client_key.as_ref().map(|_| "<redacted>"),
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout_ms", &self.wait_timeout_ms)
            .field("install_functions", &self.install_functions)
            .field("store_key", &self.store_key)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

const TAG_URL: u8 = 1;
const TAG_CA: u8 = 2;
const TAG_USER: u8 = 3;
const TAG_PASSWORD: u8 = 4;
const TAG_CONNECT_MS: u8 = 5;
const TAG_COMMAND_MS: u8 = 6;
const TAG_WAIT_REPLICAS: u8 = 7;
const TAG_WAIT_MS: u8 = 8;
const TAG_CLIENT_CERT: u8 = 9;
const TAG_CLIENT_KEY: u8 = 10;
const TAG_INSTALL_FUNCTIONS: u8 = 11;
/// Was the etcd plugin's `probe_key` (read at open and bound to the cluster); now the
/// store key only, the reads at open being [`TAG_PREFETCH`]'s.
const TAG_STORE_KEY: u8 = 12;
/// Repeated, one key each.
const TAG_PREFETCH: u8 = 13;
/// Most keys read at open: the store record, the user's record under its name and
/// under its uid (the record an earlier release left), and one spare.
pub const MAX_PREFETCH_KEYS: usize = 4;
/// Longest prefetched key (a prefix, `user:` and a user name the module keys by).
pub const MAX_PREFETCH_KEY_LEN: usize = 512;
/// Largest encoded configuration (a CA bundle included).
pub const MAX_PLUGIN_CONFIG_LEN: usize = 1 << 20;

impl PluginConfig {
    /// Tag (1 byte), length (4 bytes LE), value; wiped on drop (it holds the password).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        let mut put = |tag: u8, v: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        };
        put(TAG_URL, self.url.as_bytes());
        if let Some(ca) = &self.ca_pem {
            put(TAG_CA, ca);
        }
        if let Some(c) = &self.client_cert {
            put(TAG_CLIENT_CERT, c);
        }
        if let Some(k) = &self.client_key {
            put(TAG_CLIENT_KEY, k);
        }
        if let Some(u) = &self.username {
            put(TAG_USER, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put(TAG_PASSWORD, p.as_bytes());
        }
        put(TAG_CONNECT_MS, &self.connect_timeout_ms.to_le_bytes());
        put(TAG_COMMAND_MS, &self.command_timeout_ms.to_le_bytes());
        put(TAG_WAIT_REPLICAS, &self.wait_replicas.to_le_bytes());
        put(TAG_WAIT_MS, &self.wait_timeout_ms.to_le_bytes());
        if self.install_functions {
            put(TAG_INSTALL_FUNCTIONS, &[1]);
        }
        if let Some(k) = &self.store_key {
            put(TAG_STORE_KEY, k);
        }
        for k in &self.prefetch {
            put(TAG_PREFETCH, k);
        }
        out
    }

    /// Inverse of [`PluginConfig::encode`]; refuses unknown tags, short values and prefetch
    /// keys beyond their bounds.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, &'static str> {
        if bytes.len() > MAX_PLUGIN_CONFIG_LEN {
            return Err("configuration too large");
        }
        let mut c = PluginConfig::default();
        let mut have_url = false;
        while let Some((&tag, rest)) = bytes.split_first() {
            if rest.len() < 4 {
                return Err("truncated configuration");
            }
            let (len, rest) = rest.split_at(4);
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if rest.len() < len {
                return Err("truncated configuration");
            }
            let (v, rest) = rest.split_at(len);
            bytes = rest;
            let text = || std::str::from_utf8(v).map_err(|_| "configuration text is not UTF-8");
            let u64_of = || {
                <[u8; 8]>::try_from(v)
                    .map(u64::from_le_bytes)
                    .map_err(|_| "bad number in configuration")
            };
            match tag {
                TAG_URL => {
                    c.url = text()?.to_owned();
                    have_url = true;
                }
                TAG_CA => c.ca_pem = Some(v.to_vec()),
                TAG_CLIENT_CERT => c.client_cert = Some(v.to_vec()),
                TAG_CLIENT_KEY => c.client_key = Some(Zeroizing::new(v.to_vec())),
                TAG_USER => c.username = Some(text()?.to_owned()),
                TAG_PASSWORD => c.password = Some(Zeroizing::new(text()?.to_owned())),
                TAG_CONNECT_MS => c.connect_timeout_ms = u64_of()?,
                TAG_COMMAND_MS => c.command_timeout_ms = u64_of()?,
                TAG_WAIT_REPLICAS => {
                    c.wait_replicas = <[u8; 4]>::try_from(v)
                        .map(u32::from_le_bytes)
                        .map_err(|_| "bad number in configuration")?
                }
                TAG_WAIT_MS => c.wait_timeout_ms = u64_of()?,
                TAG_INSTALL_FUNCTIONS => c.install_functions = v == [1],
                TAG_STORE_KEY => c.store_key = Some(v.to_vec()),
                TAG_PREFETCH => {
                    if v.is_empty() || v.len() > MAX_PREFETCH_KEY_LEN {
                        return Err("bad prefetch key length in configuration");
                    }
                    if c.prefetch.len() == MAX_PREFETCH_KEYS {
                        return Err("too many prefetch keys in configuration");
                    }
                    c.prefetch.push(v.to_vec());
                }
                _ => return Err("unknown configuration tag"),
            }
        }
        if !have_url {
            return Err("no server URL in configuration");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests;

/// Values for the option-list test in `crate::options`.
#[cfg(test)]
pub(crate) mod tests_support {
    pub fn companions() -> [&'static str; 3] {
        [
            "state=rediss://127.0.0.1",
            "secret_command=/usr/lib/pam_totp/secret-command",
            "secret_command_user=nobody",
        ]
    }

    pub fn example_value(name: &str) -> Option<&'static str> {
        Some(match name {
            "state" => "rediss://127.0.0.1:6380/1",
            "state_fallback" => "local",
            "redis_connect_timeout" | "redis_timeout" | "redis_wait_timeout" => "200",
            "redis_prefix" => "fleet1:",
            "redis_credentials" => "/etc/security/pam_totp_redis.cred",
            "redis_ca_file" => "/etc/ssl/certs/redis-ca.pem",
            "redis_client_cert" => "/etc/security/pam_totp_redis.crt",
            "redis_client_key" => "/etc/security/pam_totp_redis.key",
            "redis_wait" => "1",
            "redis_ttl" => "604800",
            "redis_plugin" => "/usr/lib/pam_totp/redis.so",
            "secret_command" => "/usr/lib/pam_totp/secret-command",
            "secret_command_user" => "nobody",
            "secret_command_timeout" => "1500",
            _ => return None,
        })
    }
}
