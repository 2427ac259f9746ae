//! The shared state store (Redis/Valkey, etcd), as seen from the module: [`RemoteStore`]
//! runs the optimistic update loop (read record and version → decide → compare-and-set,
//! again on a conflict) over the one narrow C ABI every backend plugin exports
//! (`pam_totp_plugin_abi`); the plugin is `dlopen`ed only when a pam.d line asks for its
//! backend. Adding a backend adds its options and its default path here, nothing else.
//!
//! The plugin is code loaded into sshd: it must pass [`check_root_controlled`] (root-owned
//! along its whole path) before it is loaded, and it is never unloaded (a Rust shared
//! object with thread-local destructors cannot be `dlclose`d safely).

use std::ffi::c_void;

use pam_totp_plugin_abi::{
    ABI_VERSION, AbiFn, CasFn, CloseFn, DelFn, GetFn, MESSAGE_CAP, OpenFn, ResolverFn, Status,
    TimeFn, symbol,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use totp_core::fleet::{
    ConnectionOptions, Credentials, EtcdOptions, MAX_PREFETCH_KEY_LEN, MAX_PREFETCH_KEYS,
    PluginConfig, RedisOptions, RedisTarget, SharedStore,
};
use totp_core::policy::{CLOCK_SLACK_SECS, DEFAULT_MAX_CLOCK_LAG_SECS};
use totp_core::state::{
    AnswerBound, MAX_ENCODED_LEN, Missing, Recreation, Reset, ResetHow, STORE_KEY_LEN, StateStore,
    StoreContext, StoreError, StoreKey, Uid, Unbounded, UserState, Write, reset_mark_cap,
};
use totp_core::utc::format_utc;
use zeroize::Zeroizing;

use crate::safefile::{
    FileError, FileInfo, FileRules, check_root_controlled, check_root_controlled_interpreter,
    check_socket_path, open_checked,
};

/// Where the plugin is installed unless `redis_plugin=` says otherwise: beside the
/// module's `security/` directory on Debian multiarch (`/usr/lib/<triplet>/pam_totp/`).
/// A package with another layout (e.g. `/usr/lib64`) sets `PAM_TOTP_REDIS_PLUGIN` when
/// building; nothing is read from the environment at run time.
pub const DEFAULT_PLUGIN_PATH: &str = match option_env!("PAM_TOTP_REDIS_PLUGIN") {
    Some(p) => p,
    None => MULTIARCH_PLUGIN_PATH,
};

#[cfg(target_arch = "x86_64")]
const MULTIARCH_PLUGIN_PATH: &str = "/usr/lib/x86_64-linux-gnu/pam_totp/redis.so";
#[cfg(target_arch = "aarch64")]
const MULTIARCH_PLUGIN_PATH: &str = "/usr/lib/aarch64-linux-gnu/pam_totp/redis.so";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MULTIARCH_PLUGIN_PATH: &str = "/usr/lib/pam_totp/redis.so";

/// Where the etcd plugin is installed unless `etcd_plugin=` says otherwise (beside the
/// Redis plugin); `PAM_TOTP_ETCD_PLUGIN` at build time for another layout.
pub const DEFAULT_ETCD_PLUGIN_PATH: &str = match option_env!("PAM_TOTP_ETCD_PLUGIN") {
    Some(p) => p,
    None => MULTIARCH_ETCD_PLUGIN_PATH,
};

#[cfg(target_arch = "x86_64")]
const MULTIARCH_ETCD_PLUGIN_PATH: &str = "/usr/lib/x86_64-linux-gnu/pam_totp/etcd.so";
#[cfg(target_arch = "aarch64")]
const MULTIARCH_ETCD_PLUGIN_PATH: &str = "/usr/lib/aarch64-linux-gnu/pam_totp/etcd.so";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MULTIARCH_ETCD_PLUGIN_PATH: &str = "/usr/lib/pam_totp/etcd.so";

/// Largest plugin file accepted by the ownership check.
const MAX_PLUGIN_SIZE: usize = 256 << 20;
/// Largest credentials file and CA bundle.
const MAX_CREDENTIALS_SIZE: usize = 4096;
const MAX_CA_SIZE: usize = 1 << 20;
/// Conflicts tolerated in one update; each one means another login made progress.
const MAX_ROUNDS: u32 = 64;
/// How long the key `totp-state ping` writes on a Redis server before 7 outlives the
/// last ping: long enough for an admin to see what a ping wrote (`TTL PREFIXprobe`),
/// short enough that nothing of it stays behind a fleet that stopped pinging. Redis 7
/// and Valkey keep the key ([`RemoteStore::probe_write`]).
pub const PROBE_TTL_SECS: u64 = 30;
/// What the probe key holds: neither a user record (those start with their format
/// version, 1 or 2) nor a store record (`PTK1`), should anything ever read it.
const PROBE_VALUE: &[u8] = b"pam_totp ping probe";

/// The plugin's entry points (valid for the life of the process: never unloaded).
struct Plugin {
    open: OpenFn,
    get: GetFn,
    cas: CasFn,
    del: DelFn,
    close: CloseFn,
    time: TimeFn,
}

/// Plugins loaded so far, by path (normally one).
static LOADED: Mutex<Vec<(PathBuf, &'static Plugin)>> = Mutex::new(Vec::new());

fn load_plugin(path: &Path, backend: &str) -> Result<&'static Plugin, StoreError> {
    let refused =
        |m: String| StoreError::Refused(format!("{backend} plugin {}: {m}", path.display()));
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = loaded.iter().find(|(p, _)| p == path) {
        return Ok(p);
    }
    let checked =
        check_root_controlled(path, MAX_PLUGIN_SIZE).map_err(|e| refused(e.to_string()))?;
    // Past the ownership check, a file that does not load or speaks another ABI is
    // nearly always an upgrade caught half-way: a process that loaded the module before
    // the package was replaced (the module stays mapped, the plugin is loaded later,
    // from the new files), or an unpack that did not finish. The line says so.
    let refused = |m: String| {
        refused(format!(
            "{m}; the module and its plugins must come from one build: restart a process \
             started before an upgrade, or reinstall the package"
        ))
    };
    segments_in_file(path, &checked).map_err(refused)?;
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
    // SAFETY: loading runs the plugin's initialisers; the file passed the root-only
    // ownership check above, so it is as trusted as the module itself.
    let lib = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
        .map_err(|e| refused(e.to_string()))?;
    // libloading's error may be a bare "dlsym failed": the export is named, so a plugin
    // of the right version with a function missing says which one.
    let missing = |name: &[u8], e: libloading::Error| {
        let name = String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name)).into_owned();
        refused(format!("no {name} export ({e})"))
    };
    // SAFETY: each symbol is looked up with the type the one ABI definition gives it
    // (`pam_totp_plugin_abi`, which every plugin's exports are checked against when it
    // is built); the version check comes before any other call, so a plugin built for
    // another ABI is refused before its functions are used.
    let plugin = unsafe {
        let abi: AbiFn = *lib
            .get::<AbiFn>(symbol::ABI)
            .map_err(|e| missing(symbol::ABI, e))?;
        let version = abi();
        if version != ABI_VERSION {
            return Err(refused(format!(
                "plugin ABI version {version}, this module speaks {ABI_VERSION}"
            )));
        }
        let plugin = Plugin {
            open: *lib
                .get::<OpenFn>(symbol::OPEN)
                .map_err(|e| missing(symbol::OPEN, e))?,
            get: *lib
                .get::<GetFn>(symbol::GET)
                .map_err(|e| missing(symbol::GET, e))?,
            cas: *lib
                .get::<CasFn>(symbol::CAS)
                .map_err(|e| missing(symbol::CAS, e))?,
            del: *lib
                .get::<DelFn>(symbol::DEL)
                .map_err(|e| missing(symbol::DEL, e))?,
            close: *lib
                .get::<CloseFn>(symbol::CLOSE)
                .map_err(|e| missing(symbol::CLOSE, e))?,
            time: *lib
                .get::<TimeFn>(symbol::TIME)
                .map_err(|e| missing(symbol::TIME, e))?,
        };
        // Before any open: the plugin resolves host names only through this, within
        // the time it has left (R36).
        let resolver: ResolverFn = *lib
            .get::<ResolverFn>(symbol::RESOLVER)
            .map_err(|e| missing(symbol::RESOLVER, e))?;
        resolver(crate::resolve::resolve_for_plugin);
        plugin
    };
    // Never unloaded: the function pointers above stay valid for the process.
    std::mem::forget(lib);
    let plugin: &'static Plugin = Box::leak(Box::new(plugin));
    loaded.push((path.to_owned(), plugin));
    Ok(plugin)
}

/// Largest program header table read, in bytes (entries × entry size): 64 KiB, about
/// 1170 entries of 56 bytes (ELF64) or 2048 of 32 (ELF32). ELF allows 65535 entries; a
/// shared object has a dozen, so a larger table is no plugin this module loads.
const MAX_PROGRAM_HEADERS: usize = 64 << 10;

/// Whether every loadable segment of the shared object at `path` (the file `checked`
/// describes) lies inside the file. glibc's `dlopen` maps a segment that reaches past the
/// end of the file without looking, and the first touch of the missing pages kills the
/// process with `SIGBUS`: a plugin cut short (a full disk during an upgrade, a copy over
/// it that did not finish) would crash sshd's session or unlock a screen locker instead
/// of denying. Read with `pread` on a descriptor of the file checked (same inode).
fn segments_in_file(path: &Path, checked: &FileInfo) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(path).map_err(|e| format!("open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("fstat: {e}"))?;
    if (meta.dev(), meta.ino()) != (checked.dev, checked.ino) {
        return Err("the file was replaced while it was checked".to_owned());
    }
    let mut header = [0u8; 64];
    let n = read_full(&file, &mut header, 0)?;
    let table = program_header_table(&header[..n]).map_err(str::to_owned)?;
    let mut headers = vec![0u8; table.len];
    let read = read_full(&file, &mut headers, table.offset)?;
    check_segments(&table, &headers[..read], meta.size())
}

/// `buf` filled from offset `at` of `file`, or as much as is there.
fn read_full(file: &std::fs::File, buf: &mut [u8], at: u64) -> Result<usize, String> {
    crate::safefile::read_at_most(file, buf, at).map_err(|e| format!("read: {e}"))
}

/// Where an ELF file's program header table is, and how to read its entries.
#[derive(Debug)]
struct ProgramHeaders {
    offset: u64,
    len: usize,
    entry: usize,
    wide: bool,
    big_endian: bool,
}

/// The program header table an ELF header (the file's first bytes) names.
fn program_header_table(h: &[u8]) -> Result<ProgramHeaders, &'static str> {
    if h.len() < 52 || h[..4] != *b"\x7fELF" {
        return Err("not an ELF shared object (cut short, or another file)");
    }
    let wide = match h[4] {
        1 => false,
        2 if h.len() >= 64 => true,
        _ => return Err("an ELF header of an unknown class, or cut short"),
    };
    let big_endian = match h[5] {
        1 => false,
        2 => true,
        _ => return Err("an ELF header of an unknown byte order"),
    };
    let num = |at: usize, width: usize| read_uint(&h[at..at + width], big_endian);
    let (offset, entry, count) = if wide {
        (num(0x20, 8), num(0x36, 2), num(0x38, 2))
    } else {
        (num(0x1c, 4), num(0x2a, 2), num(0x2c, 2))
    };
    let min_entry = if wide { 56 } else { 32 };
    let entry = usize::try_from(entry).map_err(|_| "bad program header size")?;
    let len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(entry))
        .filter(|&l| entry >= min_entry && l <= MAX_PROGRAM_HEADERS)
        .ok_or("an ELF program header table the module does not read")?;
    Ok(ProgramHeaders {
        offset,
        len,
        entry,
        wide,
        big_endian,
    })
}

/// Every `PT_LOAD` entry of `headers` (the table `table` names, as read) ends within
/// `size` bytes; a table cut short is itself a file cut short.
fn check_segments(table: &ProgramHeaders, headers: &[u8], size: u64) -> Result<(), String> {
    const PT_LOAD: u64 = 1;
    let short = |what: String| format!("{what}: the file is {size} bytes, cut short");
    if headers.len() < table.len {
        return Err(short(format!(
            "program headers end at byte {}",
            table.offset.saturating_add(table.len as u64)
        )));
    }
    for ph in headers.chunks_exact(table.entry) {
        let num = |at: usize, width: usize| read_uint(&ph[at..at + width], table.big_endian);
        if num(0, 4) != PT_LOAD {
            continue;
        }
        let (offset, filesz) = if table.wide {
            (num(8, 8), num(0x20, 8))
        } else {
            (num(4, 4), num(0x10, 4))
        };
        let end = offset.saturating_add(filesz);
        if end > size {
            return Err(short(format!("a loadable segment ends at byte {end}")));
        }
    }
    Ok(())
}

fn read_uint(bytes: &[u8], big_endian: bool) -> u64 {
    let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
    if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

/// Where distributions keep the system's CA bundle, first found wins (Debian, Ubuntu,
/// Alpine, and Arch, where it is a symlink into `/etc/ca-certificates/extracted/`; Fedora
/// and RHEL; openSUSE; others).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system's CA bundle, for `rediss://` and `etcds://` without a CA file option. Read
/// here, from fixed paths, rather than left to OpenSSL's defaults, which follow
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` from the environment: `su` keeps its caller's
/// environment, and no setting may come from there.
fn system_bundle(rules: &FileRules) -> Result<Vec<u8>, StoreError> {
    system_bundle_from(&SYSTEM_BUNDLES, rules)
}

/// The first of `candidates` that exists, read after the checks of `rules`. The bundle
/// is the system's configuration, which distributions ship as a symlink as often as
/// not (Arch's `/etc/ssl/certs/ca-certificates.crt`): a symlink is followed when root
/// owns it and every directory on the way, to it and to the file it leads to, is
/// root-owned and closed to group and other writes, as for the `#!` interpreter of the
/// secret command; then the file itself must pass `rules`. A candidate missing (or a
/// link leading nowhere) is passed over; one that exists but fails a check is refused
/// with the reason, not passed over for another: the admin must learn that what the
/// system calls its bundle could be changed by someone other than root.
fn system_bundle_from(candidates: &[&str], rules: &FileRules) -> Result<Vec<u8>, StoreError> {
    for candidate in candidates {
        let resolved = match check_root_controlled_interpreter(Path::new(candidate), rules.max_size)
        {
            Ok(p) => p,
            Err(FileError::NotFound | FileError::MissingDirectory { .. }) => continue,
            Err(e) => {
                return Err(StoreError::Refused(format!(
                    "system CA bundle {candidate}: {e}"
                )));
            }
        };
        let shown = if resolved == Path::new(candidate) {
            (*candidate).to_owned()
        } else {
            format!("{candidate} (a symlink to {})", resolved.display())
        };
        return open_checked(&resolved, rules)
            .map(|f| f.contents.to_vec())
            .map_err(|e| StoreError::Refused(format!("system CA bundle {shown}: {e}")));
    }
    Err(StoreError::Refused(
        "no system CA bundle found; set redis_ca_file= for rediss://, etcd_ca_file= for \
         etcds://"
            .to_owned(),
    ))
}

/// `path` read after the checks of `rules`; the error names `what` and the path.
fn read_root_file(
    what: &str,
    path: &str,
    rules: &FileRules,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    open_checked(Path::new(path), rules)
        .map(|f| f.contents)
        .map_err(|e| StoreError::Refused(format!("{what} {path}: {e}")))
}

type UserPassword = (Option<String>, Option<Zeroizing<String>>);

/// The user name and password of a root-only credentials file (`redis_credentials=`,
/// `etcd_credentials=`).
fn credentials(path: Option<&str>, rules: &FileRules) -> Result<UserPassword, StoreError> {
    let Some(path) = path else {
        return Ok((None, None));
    };
    let bytes = read_root_file("credentials file", path, rules)?;
    let c = Credentials::parse(&bytes)
        .map_err(|e| StoreError::Refused(format!("credentials file {path}: {e}")))?;
    Ok((c.username, Some(c.password)))
}

/// What the plugin's `open` receives for a connection to `url`: the root-only
/// credentials file, the CA bundle, the client certificate and its key, read after their
/// checks, and the bounds. `system_ca`: without a CA file, send the system bundle (the
/// Redis plugin trusts only the CAs it is given).
fn connection_config(
    url: String,
    conn: &ConnectionOptions,
    system_ca: bool,
) -> Result<PluginConfig, StoreError> {
    // Not group/other readable (0600 or 0400): a readable password lets any local user
    // reset every replay mark and throttle counter of the fleet, and a readable client
    // key lets them connect as the fleet.
    // Whoever could replace a CA or credentials file, or a directory on its path, could
    // put their own server in the fleet's place: root-controlled from `/`, as the plugin.
    let secret_rules = FileRules::root_controlled(0o600, MAX_CREDENTIALS_SIZE);
    let public_rules = FileRules::root_controlled(0o644, MAX_CA_SIZE);
    let (username, password) = credentials(conn.credentials.as_deref(), &secret_rules)?;
    let ca_pem = match &conn.ca_file {
        None if system_ca => Some(system_bundle(&public_rules)?),
        None => None,
        Some(path) => Some(read_root_file("CA file", path, &public_rules)?.to_vec()),
    };
    let client_cert = conn
        .client_cert
        .as_deref()
        .map(|p| read_root_file("client certificate", p, &public_rules).map(|c| c.to_vec()))
        .transpose()?;
    let client_key = conn
        .client_key
        .as_deref()
        .map(|p| {
            read_root_file(
                "client key",
                p,
                &FileRules::root_controlled(0o600, MAX_CA_SIZE),
            )
        })
        .transpose()?;
    Ok(PluginConfig {
        url,
        ca_pem,
        client_cert,
        client_key,
        username,
        password,
        connect_timeout_ms: conn.connect_timeout_ms,
        command_timeout_ms: conn.command_timeout_ms,
        wait_replicas: 0,
        wait_timeout_ms: 0,
        install_functions: false,
        // Both plugins bind this key's record: etcd to the cluster's ID (a restored
        // snapshot reads as a lost one), Redis to the server instance (a restart or a
        // failover does).
        store_key: Some(format!("{}store", conn.prefix).into_bytes()),
        // Set by `RemoteStore::open_for`, which knows the login's user.
        prefetch: Vec::new(),
    })
}

/// The Redis plugin's configuration: the socket checked (for `unix:`), the connection's
/// files read, the `WAIT` settings.
pub fn plugin_config(opts: &RedisOptions) -> Result<PluginConfig, StoreError> {
    if let RedisTarget::Unix { path } = &opts.endpoint.target {
        // Whoever could replace the socket, or a directory on its path, could put their
        // own server in the fleet's place.
        check_socket_path(Path::new(path)).map_err(|e| match e {
            // A server that shut down cleanly removes its socket (and systemd its
            // runtime directory): a stopped server, not a refusal.
            FileError::NotFound | FileError::MissingDirectory { .. } => {
                StoreError::Unavailable(format!("socket {path}: {e} (is the server running?)"))
            }
            e => StoreError::Refused(format!("socket {path}: {e}")),
        })?;
    }
    Ok(PluginConfig {
        wait_replicas: opts.wait_replicas,
        wait_timeout_ms: opts.wait_timeout_ms,
        ..connection_config(opts.endpoint.url(), &opts.conn, opts.endpoint.tls())?
    })
}

/// The etcd plugin's configuration: the endpoint list and the connection's files.
pub fn etcd_plugin_config(opts: &EtcdOptions) -> Result<PluginConfig, StoreError> {
    // As for Redis: without `etcd_ca_file=`, the system bundle from its fixed path.
    connection_config(opts.endpoints.url(), &opts.conn, opts.endpoints.tls)
}

/// The shared store a module line names (`state=redis…` or `state=etcd…`), opened.
/// `user`: the uid and canonical name of the login the store is opened for (the module
/// knows them before it opens); their records are keyed by that name and read in the
/// open's round trip, with the store record. Without one (the admin tool), only the store
/// record is read there and names come from [`StateStore::name_user`].
pub fn open_shared(
    shared: &SharedStore,
    hard_cap: bool,
    user: Option<(Uid, &str)>,
) -> Result<RemoteStore, StoreError> {
    match shared {
        SharedStore::Redis(r) => {
            let plugin = r.conn.plugin.as_deref().unwrap_or(DEFAULT_PLUGIN_PATH);
            let config = plugin_config(r)?;
            let settings = RemoteSettings::for_options(r, hard_cap);
            RemoteStore::open_for(Path::new(plugin), &config, settings, user)
        }
        SharedStore::Etcd(e) => {
            let plugin = e.conn.plugin.as_deref().unwrap_or(DEFAULT_ETCD_PLUGIN_PATH);
            let config = etcd_plugin_config(e)?;
            RemoteStore::open_for(
                Path::new(plugin),
                &config,
                RemoteSettings::for_etcd(e),
                user,
            )
        }
    }
}

/// The Redis store the options describe, for the admin tool: `install_functions`
/// installs (or replaces) the compare-and-set function library on the server
/// (`totp-state init`). `hard_cap`: `max_failures=` is set (records then never expire).
pub fn open_configured_admin(
    opts: &RedisOptions,
    hard_cap: bool,
    install_functions: bool,
) -> Result<RemoteStore, StoreError> {
    let plugin = opts.conn.plugin.as_deref().unwrap_or(DEFAULT_PLUGIN_PATH);
    let mut config = plugin_config(opts)?;
    config.install_functions = install_functions;
    RemoteStore::open(
        Path::new(plugin),
        &config,
        RemoteSettings::for_options(opts, hard_cap),
    )
}

/// How a [`RemoteStore`] names and keeps records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSettings {
    /// The backend's name in messages ("Redis", "etcd").
    pub backend: &'static str,
    /// Key prefix (`redis_prefix=`, `etcd_prefix=`); the key is `<prefix>user:<name>`
    /// (or `<prefix>uid:<uid>` where no name is known).
    pub prefix: String,
    /// Record time-to-live in seconds, refreshed on every write; 0 = never expire.
    /// Records holding an HOTP counter never expire whatever this says.
    pub ttl_secs: u64,
    /// Bound on one whole update, retries included; also on when one answer may start
    /// a decision or a retry ([`StateStore::answer_bound`]).
    pub update_budget: Duration,
    /// Whether [`RemoteStore::probe_write`] must really write to prove what a login's
    /// write needs (Redis: an ACL checks the commands a function runs only when they
    /// run); etcd checks a transaction's put against the role whatever its comparison
    /// gives, so a write that cannot happen proves as much there.
    pub probe_writes: bool,
}

impl RemoteSettings {
    /// The settings the module uses for `opts`. With a hard failure cap
    /// (`max_failures=`), records never expire: an expiring record would re-enable an
    /// account an admin must reset.
    pub fn for_options(opts: &RedisOptions, hard_cap: bool) -> Self {
        let ttl_secs = if hard_cap { 0 } else { opts.ttl_secs };
        Self {
            probe_writes: true,
            ..Self::for_connection("Redis", &opts.conn, ttl_secs)
        }
    }

    /// The settings for an etcd cluster. Records never expire there (a TTL would cost a
    /// lease per record; keeping them is the stricter choice), so the TTL is 0.
    pub fn for_etcd(opts: &EtcdOptions) -> Self {
        Self::for_connection("etcd", &opts.conn, 0)
    }

    fn for_connection(backend: &'static str, conn: &ConnectionOptions, ttl_secs: u64) -> Self {
        let per_round = Duration::from_millis(conn.command_timeout_ms);
        Self {
            backend,
            prefix: conn.prefix.clone(),
            ttl_secs,
            update_budget: Duration::from_millis(conn.connect_timeout_ms) + 4 * per_round,
            probe_writes: false,
        }
    }
}

/// A connection to the shared store; one per authentication.
pub struct RemoteStore {
    plugin: &'static Plugin,
    handle: *mut c_void,
    settings: RemoteSettings,
    /// Canonical names of the uids this store was told about ([`StateStore::name_user`]):
    /// their records are keyed by name.
    names: Vec<(Uid, String)>,
    /// Set when `context` created the store record, until taken.
    recreated: Option<Recreation>,
    /// The plugin's warnings about its calls that succeeded (a server of the list
    /// skipped before another served), the open's and every later call's, until taken.
    notes: Vec<String>,
}

/// When one answer's time is up ([`StateStore::answer_bound`]).
struct AnswerDeadline(Instant);

impl AnswerBound for AnswerDeadline {
    fn fits(&self) -> bool {
        Instant::now() < self.0
    }
}

/// How far this host's clock and the server's may differ for a login (or `totp-state
/// init`) to recreate a lost store record: the lag beyond which a time in
/// the store counts as a clock fault rather than drift (the throttling records' bound).
/// Within it, a wrong clock can make every host refuse codes for at most this long, each
/// saying until when. Beyond it neither clock can be trusted for the floor: from the one
/// behind, codes the other hosts accepted shortly before the loss would be accepted
/// again (and anybody who knows an account name can trigger the recreation); from the
/// one ahead, every host would refuse every code until that time (R34).
pub const MAX_CLOCK_OFFSET_SECS: u64 = DEFAULT_MAX_CLOCK_LAG_SECS;

/// The floor of a store record recreated by a host whose clock says `host` while the
/// server's says `server` (both unix seconds), and what to log about the two clocks; or,
/// when they differ by more than [`MAX_CLOCK_OFFSET_SECS`], why it must not be
/// recreated (both clocks, the offset and the fix): a clock fault, not a floor.
///
/// The later of the two (R34: a host whose clock lags must not recreate it below codes
/// the other hosts accepted just before the loss). Any disagreement beyond
/// [`CLOCK_SLACK_SECS`] is named, with the offset and its direction, so the admin sees
/// which clock to check. The one rule for logins and the admin tool alike.
pub fn recreation_floor(
    host: u64,
    server: u64,
    backend: &str,
) -> Result<(u64, Option<String>), String> {
    let clocks = format!(
        "this host's clock says {}, the {backend} server's {}",
        format_utc(host),
        format_utc(server)
    );
    let (offset, behind) = if server >= host {
        (
            server - host,
            "this host's clock is behind the server's, or the server's ahead",
        )
    } else {
        (
            host - server,
            "this host's clock is ahead of the server's, or the server's behind",
        )
    };
    if offset > MAX_CLOCK_OFFSET_SECS {
        return Err(format!(
            "{clocks}: {offset} s apart, more than {MAX_CLOCK_OFFSET_SECS} s ({behind}), so \
             the store record is not recreated from either (from the one behind, codes \
             accepted shortly before the loss could be used again; from the one ahead, every \
             host would refuse codes until its time): set the wrong clock right, or have an \
             admin run `totp-state init` on a host whose clock agrees with the \
             server's"
        ));
    }
    if server > host.saturating_add(CLOCK_SLACK_SECS) {
        let note = format!(
            "clock: the store record was recreated complete since the {backend} server's \
             clock, {offset} s ahead of this host's ({clocks}): this host's clock is behind, \
             or the server's is ahead, and then every host refuses codes until {} (check both)",
            format_utc(server)
        );
        Ok((server, Some(note)))
    } else if host > server.saturating_add(CLOCK_SLACK_SECS) {
        let note = format!(
            "clock: the store record was recreated complete since this host's clock, {offset} \
             s ahead of the {backend} server's ({clocks}): this host's clock is ahead, and \
             then every host refuses codes until {}, or the server's is behind (check both)",
            format_utc(host)
        );
        Ok((host, Some(note)))
    } else {
        Ok((host.max(server), None))
    }
}

/// Longest user name that keys a record (longer ones keep the uid key).
const MAX_KEY_NAME: usize = 256;

/// Whether `name` can key a record (other names keep the uid key).
fn usable_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_KEY_NAME && !name.chars().any(char::is_control)
}

fn store_error(backend: &str, status: i32, msg: &[u8]) -> StoreError {
    let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
    let text = format!("{backend}: {}", String::from_utf8_lossy(&msg[..end]));
    match Status::from_raw(status) {
        Status::Unavailable => StoreError::Unavailable(text),
        Status::StoreChanged => StoreError::StoreChanged(text),
        Status::Corrupt => StoreError::Corrupt(text),
        _ => StoreError::Refused(text),
    }
}

impl RemoteStore {
    /// Loads the plugin at `plugin_path` (after its ownership check), connects and
    /// authenticates within the connect timeout; the store record is read on the way.
    pub fn open(
        plugin_path: &Path,
        config: &PluginConfig,
        settings: RemoteSettings,
    ) -> Result<Self, StoreError> {
        Self::open_for(plugin_path, config, settings, None)
    }

    /// As [`RemoteStore::open`], for one login's `user` (uid, canonical name): the
    /// plugin reads, in the round trip that proves the store answers, every record the
    /// login's first update reads (the store record, the user's record under the name,
    /// and under the uid for a user an earlier release keyed by uid). Each is served
    /// once; a re-read after a conflict goes to the server.
    pub fn open_for(
        plugin_path: &Path,
        config: &PluginConfig,
        settings: RemoteSettings,
        user: Option<(Uid, &str)>,
    ) -> Result<Self, StoreError> {
        let plugin = load_plugin(plugin_path, settings.backend)?;
        let mut store = Self {
            plugin,
            handle: std::ptr::null_mut(),
            settings,
            names: Vec::new(),
            recreated: None,
            notes: Vec::new(),
        };
        let mut prefetch = vec![store.store_key_name()];
        if let Some((uid, name)) = user {
            store.name_user(uid, name);
            let key = store.record_key(uid);
            let legacy = store.uid_key(uid);
            if key != legacy {
                prefetch.push(key);
            }
            prefetch.push(legacy);
        }
        // Bounds the plugin would refuse the whole configuration for; the module's keys
        // stay far inside them, and a key left out is only read later.
        prefetch.retain(|k| k.len() <= MAX_PREFETCH_KEY_LEN);
        prefetch.truncate(MAX_PREFETCH_KEYS);
        let config = PluginConfig {
            prefetch,
            ..config.clone()
        };
        let encoded: Zeroizing<Vec<u8>> = config.encode();
        let mut msg = [0u8; MESSAGE_CAP];
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: `encoded` and `msg` are live buffers of the lengths passed; `handle`
        // is writable.
        let status = unsafe {
            (plugin.open)(
                encoded.as_ptr(),
                encoded.len(),
                &mut handle,
                msg.as_mut_ptr(),
                msg.len(),
            )
        };
        if status != Status::Ok as i32 || handle.is_null() {
            return Err(store_error(store.settings.backend, status, &msg));
        }
        store.handle = handle;
        store.keep_note(&msg);
        Ok(store)
    }

    /// A successful call may leave a warning where a failure's message goes (the plugin
    /// passed over a server of its list before another served): kept for the log.
    fn keep_note(&mut self, msg: &[u8]) {
        let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
        if end > 0 {
            let text = String::from_utf8_lossy(&msg[..end]);
            let note = format!("{}: {text}", self.settings.backend);
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }

    /// What the plugin warned about since last asked (a server of the list skipped, and
    /// why, before another served), once: for the log, or the admin's terminal. Right
    /// after the open, the open's warning.
    pub fn take_open_note(&mut self) -> Option<String> {
        if self.notes.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.notes).join("; "))
    }

    /// `<prefix>user:<name>` for a uid whose canonical name the store was told,
    /// `<prefix>uid:<uid>` otherwise (and for stores written before names were used).
    fn record_key(&self, uid: Uid) -> Vec<u8> {
        match self.names.iter().find(|(u, _)| *u == uid) {
            Some((_, name)) => {
                let mut key = format!("{}user:", self.settings.prefix).into_bytes();
                key.extend_from_slice(name.as_bytes());
                key
            }
            None => self.uid_key(uid),
        }
    }

    fn uid_key(&self, uid: Uid) -> Vec<u8> {
        format!("{}uid:{uid}", self.settings.prefix).into_bytes()
    }

    /// The record under `key` and its version; for a name key with no record yet, the
    /// record a release keyed by uid left (`<prefix>uid:<uid>`), with version 0, so the
    /// first write under the name carries it over (the migration: marks and counters
    /// written before the upgrade still count). The uid record is left in place.
    fn get_migrating(&mut self, key: &[u8], uid: Uid) -> Result<(UserState, u64), StoreError> {
        let (state, version) = self.get(key)?;
        let legacy = self.uid_key(uid);
        if version != 0 || key == legacy.as_slice() {
            return Ok((state, version));
        }
        let (old, old_version) = self.get(&legacy)?;
        Ok(if old_version != 0 {
            (old, 0)
        } else {
            (state, 0)
        })
    }

    /// Where the store's context lives: `<prefix>store`, beside the records.
    fn store_key_name(&self) -> Vec<u8> {
        format!("{}store", self.settings.prefix).into_bytes()
    }

    fn get(&mut self, key: &[u8]) -> Result<(UserState, u64), StoreError> {
        let (bytes, version) = self.get_bytes(key)?;
        if version == 0 {
            return Ok((UserState::default(), 0));
        }
        Ok((UserState::decode(&bytes)?, version))
    }

    /// The value under `key` and its version (0: absent).
    fn get_bytes(&mut self, key: &[u8]) -> Result<(Zeroizing<Vec<u8>>, u64), StoreError> {
        let mut out = Zeroizing::new(vec![0u8; MAX_ENCODED_LEN]);
        let mut len = 0usize;
        let mut version = 0u64;
        let mut msg = [0u8; MESSAGE_CAP];
        // SAFETY: the handle is live (closed only in Drop); every buffer is live and of
        // the length passed; `len` and `version` are writable.
        let status = unsafe {
            (self.plugin.get)(
                self.handle,
                key.as_ptr(),
                key.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut len,
                &mut version,
                msg.as_mut_ptr(),
                msg.len(),
            )
        };
        if status != Status::Ok as i32 {
            return Err(store_error(self.settings.backend, status, &msg));
        }
        self.keep_note(&msg);
        out.truncate(len.min(MAX_ENCODED_LEN));
        Ok((out, version))
    }

    /// The server's clock (unix seconds), as the plugin last heard it.
    fn server_time(&mut self) -> Result<u64, StoreError> {
        let mut secs = 0u64;
        let mut msg = [0u8; MESSAGE_CAP];
        // SAFETY: as in `get`; `secs` is writable.
        let status =
            unsafe { (self.plugin.time)(self.handle, &mut secs, msg.as_mut_ptr(), msg.len()) };
        if status == Status::Ok as i32 {
            self.keep_note(&msg);
            Ok(secs)
        } else {
            Err(store_error(self.settings.backend, status, &msg))
        }
    }

    /// The server's clock (unix seconds), for an admin tool that must compare it with
    /// its own before it writes a floor (`totp-state init`).
    pub fn server_clock(&mut self) -> Result<u64, StoreError> {
        self.server_time()
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let mut msg = [0u8; MESSAGE_CAP];
        // SAFETY: as in `get`.
        let status = unsafe {
            (self.plugin.del)(
                self.handle,
                key.as_ptr(),
                key.len(),
                msg.as_mut_ptr(),
                msg.len(),
            )
        };
        if status == Status::Ok as i32 {
            self.keep_note(&msg);
            Ok(())
        } else {
            Err(store_error(self.settings.backend, status, &msg))
        }
    }

    fn compare_and_set(
        &mut self,
        key: &[u8],
        expected: u64,
        state: &UserState,
        durable: bool,
    ) -> Result<bool, StoreError> {
        // A record holding a counter or a used scratch code is the only record of it.
        // Any other record outlives what it protects: the option parser refuses a TTL
        // shorter than that (`ModuleOptions::min_redis_ttl_secs`).
        let ttl = if state.holds_counters() {
            0
        } else {
            self.settings.ttl_secs
        };
        self.compare_and_set_bytes(key, expected, &state.encode(), ttl, durable)
    }

    /// `<prefix>probe`: the key [`RemoteStore::probe_write`] writes. No record is read
    /// from it (records are `<prefix>user:…`, `<prefix>uid:…` and `<prefix>store`, each
    /// read by its own name, never listed), and what it holds is no record.
    pub fn probe_key(&self) -> Vec<u8> {
        format!("{}probe", self.settings.prefix).into_bytes()
    }

    /// Whether this connection may make the write a login that uses a code makes, for
    /// `totp-state ping`, which otherwise only reads.
    ///
    /// Redis: a real compare-and-set on [`RemoteStore::probe_key`], through the plugin
    /// call a login's write goes through, durable (so `redis_wait=` must be met, as for
    /// a used code). Redis checks `FCALL`'s keys when it is called; the compare-and-set
    /// asks the ACL for the writes that call may run (`HSET`, `PERSIST`, and `EXPIRE`
    /// where it sets a TTL) before the first on Redis 7 and Valkey, but a server before
    /// Redis 7 checks each only when it runs, and one that stops at a version compare
    /// proves none of them. So the first
    /// write clears a TTL as a record holding a counter does (`PERSIST`); with
    /// `redis_ttl=` above 0 the second sets [`PROBE_TTL_SECS`] as every other record's
    /// write does (`EXPIRE`). Before Redis 7 the key then expires by itself (a ping
    /// refused half-way may leave it without a TTL until a ping succeeds). On Redis 7
    /// and Valkey a write never shortens a key's life, so after the first write the
    /// second changes no TTL (its `EXPIRE` is still asked of the ACL) and the key stays,
    /// a few bytes each ping overwrites: the proof is worth more than the key.
    ///
    /// etcd ([`RemoteSettings::probe_writes`] false): a transaction against a version
    /// no record has, which the server answers "conflict" and writes nothing; its put
    /// is still checked against the role.
    pub fn probe_write(&mut self) -> Result<(), StoreError> {
        if !self.settings.probe_writes {
            return self.probe_compare();
        }
        let key = self.probe_key();
        self.probe_once(&key, 0, self.settings.ttl_secs == 0)?;
        if self.settings.ttl_secs > 0 {
            self.probe_once(&key, PROBE_TTL_SECS, true)?;
        }
        Ok(())
    }

    /// One write of the probe key from the version it has. A conflict means another
    /// host's ping wrote between the read and the write; it proves nothing of this
    /// connection's permissions (the function returns before its first write), so the
    /// key is read and written again, within the bound of a login's update.
    fn probe_once(&mut self, key: &[u8], ttl: u64, durable: bool) -> Result<(), StoreError> {
        let what = format!("writes of {}", String::from_utf8_lossy(key));
        self.until_set(&what, &Unbounded, |s| {
            let (_, version) = s.get_bytes(key)?;
            s.compare_and_set_bytes(key, version, PROBE_VALUE, ttl, durable)
        })
    }

    /// Runs `round` (a read, then a compare-and-set against what it read) until it is
    /// done (true: set, or nothing to write; false: a conflict), within `MAX_ROUNDS`
    /// and the update budget, or the answer's `bound` if that ends first: racing
    /// writers (other hosts, other logins of the user) each get a fresh read.
    fn until_set(
        &mut self,
        what: &str,
        bound: &dyn AnswerBound,
        mut round: impl FnMut(&mut Self) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let own = Instant::now() + self.settings.update_budget;
        for _ in 0..MAX_ROUNDS {
            if round(self)? {
                return Ok(());
            }
            if Instant::now() >= own || !bound.fits() {
                break;
            }
        }
        Err(StoreError::Unavailable(format!(
            "{}: too many concurrent {what}",
            self.settings.backend
        )))
    }

    /// The compare-and-set a login runs, on a key no record uses, against a version no
    /// record has: a server that lets the write through answers "conflict"; one that
    /// would refuse a login's write refuses this one.
    fn probe_compare(&mut self) -> Result<(), StoreError> {
        let key = format!("{}uid:probe", self.settings.prefix).into_bytes();
        // i64::MAX: a version no record reaches, in the range both backends accept.
        let never = i64::MAX.unsigned_abs();
        match self.compare_and_set_bytes(&key, never, PROBE_VALUE, 0, false) {
            Ok(false) => Ok(()),
            Ok(true) => Err(StoreError::Corrupt(format!(
                "{}: a write against version {never} of a key no record uses went through",
                self.settings.backend
            ))),
            Err(e) => Err(e),
        }
    }

    fn compare_and_set_bytes(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        ttl: u64,
        durable: bool,
    ) -> Result<bool, StoreError> {
        let mut msg = [0u8; MESSAGE_CAP];
        // SAFETY: as in `get`.
        let status = unsafe {
            (self.plugin.cas)(
                self.handle,
                key.as_ptr(),
                key.len(),
                expected,
                record.as_ptr(),
                record.len(),
                ttl,
                u32::from(durable),
                msg.as_mut_ptr(),
                msg.len(),
            )
        };
        match Status::from_raw(status) {
            Status::Ok => {
                self.keep_note(&msg);
                Ok(true)
            }
            Status::Conflict => {
                self.keep_note(&msg);
                Ok(false)
            }
            _ => Err(store_error(self.settings.backend, status, &msg)),
        }
    }
}

impl StateStore for RemoteStore {
    /// The fleet's one context (key and completeness), under `<prefix>store`. Missing
    /// means the data set was lost (a restart without persistence, a failover, an
    /// eviction, FLUSHALL) or never existed: a login creates it complete since now, so
    /// every code of a step up to now counts as used (R34). "Now" is the later of this
    /// host's clock and the server's ([`recreation_floor`]): one host whose clock lags
    /// cannot put the floor below codes the others accepted before the loss; clocks more
    /// than a day apart create nothing ([`StoreError::Clock`]). A
    /// compare-and-set against "absent" lets racing hosts agree on the winner's; the
    /// write waits for `redis_wait=` replicas like a used code.
    fn context(&mut self, missing: Missing) -> Result<Option<StoreContext>, StoreError> {
        let name = self.store_key_name();
        self.recreated = None;
        for _ in 0..2 {
            let (bytes, version) = self.get_bytes(&name)?;
            if version != 0 {
                return StoreContext::decode(&bytes).map(Some).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "{}: {} is not a pam_totp store record; if the data set was \
                         lost, delete it (the next login recreates it)",
                        self.settings.backend,
                        String::from_utf8_lossy(&name)
                    ))
                });
            }
            let Missing::Create { complete_since } = missing else {
                return Ok(None);
            };
            // 0: an admin's `init` of a store never used, complete since the beginning.
            let (complete_since, clock_note) = if complete_since == 0 {
                (0, None)
            } else {
                let server = self.server_time()?;
                recreation_floor(complete_since, server, self.settings.backend)
                    .map_err(StoreError::Clock)?
            };
            let mut fresh = Zeroizing::new([0u8; STORE_KEY_LEN]);
            getrandom::fill(&mut fresh[..]).map_err(|e| {
                StoreError::Unavailable(format!("no random numbers for a store key: {e}"))
            })?;
            let context = StoreContext {
                key: StoreKey::new(*fresh),
                complete_since,
            };
            if self.compare_and_set_bytes(&name, 0, &context.encode(), 0, true)? {
                self.recreated = Some(Recreation { clock_note });
            }
        }
        Err(StoreError::Unavailable(format!(
            "{}: {} vanished after it was created",
            self.settings.backend,
            String::from_utf8_lossy(&name)
        )))
    }

    fn update_within(
        &mut self,
        uid: Uid,
        bound: &dyn AnswerBound,
        decide: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError> {
        let key = self.record_key(uid);
        self.until_set("updates of this user", bound, |s| {
            let (current, version) = s.get_migrating(&key, uid)?;
            let (next, durable) = match decide(&current) {
                Write::Nothing => return Ok(true),
                Write::Lazy(next) => (next, false),
                Write::Durable(next) => (next, true),
            };
            // A write that moves a replay mark waits for `redis_wait=` replicas (R34),
            // lazy or not: locally a lazy mark is covered by the boot floor, but a
            // failover to a replica that missed it is not a reboot.
            let durable = durable || next.marks != current.marks || next.legacy != current.legacy;
            s.compare_and_set(&key, version, &next, durable)
        })
    }

    fn read(&mut self, uid: Uid) -> Result<UserState, StoreError> {
        let key = self.record_key(uid);
        self.get_migrating(&key, uid).map(|(s, _)| s)
    }

    fn take_recreation(&mut self) -> Option<Recreation> {
        self.recreated.take()
    }

    fn take_note(&mut self) -> Option<String> {
        self.take_open_note()
    }

    /// One update's budget, from now. The plugin ABI carries no time limit, so a call
    /// cannot be given only what is left: decisions and retries start only before the
    /// deadline, and the one started last ends within its calls' own bounds after it
    /// (docs/fleet.md, "Exactly once").
    fn answer_bound(&self) -> Box<dyn AnswerBound> {
        Box::new(AnswerDeadline(Instant::now() + self.settings.update_budget))
    }

    fn name_user(&mut self, uid: Uid, name: &str) {
        if usable_name(name) && !self.names.iter().any(|(u, _)| *u == uid) {
            self.names.push((uid, name.to_owned()));
        }
    }

    /// The name record and the one a release keyed by uid left, each lifted in place
    /// (read, then compare-and-set against what was read, again on a conflict): a
    /// carried-over uid record brings marks, never a lockout. The cap for TOTP marks is
    /// taken from the later of this host's clock and the server's, so an admin's
    /// clock that lags cannot lower a mark the fleet's hosts set at their own time (a
    /// server too old to tell its clock leaves this host's).
    fn reset_with(&mut self, uid: Uid, now: u64, how: ResetHow) -> Result<Reset, StoreError> {
        let cap = reset_mark_cap(self.server_time().map_or(now, |server| now.max(server)));
        let legacy = self.uid_key(uid);
        let key = self.record_key(uid);
        let earlier = if key != legacy {
            self.reset_key(&legacy, cap, how)?
        } else {
            Reset::Absent
        };
        Ok(earlier.and(self.reset_key(&key, cap, how)?))
    }
}

impl RemoteStore {
    /// [`StateStore::reset`] of the record under `key`. A record that cannot be read
    /// (not a record, a damaged one) is deleted, which only the admin's ACL allows; no
    /// login ever writes over one, so no login's write is lost with it.
    fn reset_key(
        &mut self,
        key: &[u8],
        cap: Option<u64>,
        how: ResetHow,
    ) -> Result<Reset, StoreError> {
        let mut outcome = Reset::Absent;
        self.until_set("updates of this user", &Unbounded, |s| {
            let read = s.get_bytes(key).and_then(|(bytes, version)| match version {
                0 => Ok(None),
                _ => UserState::decode(&bytes).map(|state| Some((state, version))),
            });
            let (state, version) = match read {
                Ok(Some(found)) => found,
                Ok(None) => {
                    outcome = Reset::Absent;
                    return Ok(true);
                }
                Err(StoreError::Corrupt(why)) => {
                    s.delete(key)?;
                    outcome = Reset::Removed(format!("{}: {why}", String::from_utf8_lossy(key)));
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            let (next, lowered) = state.lifted(cap, how);
            outcome = Reset::Lifted { lowered };
            if next == state {
                return Ok(true);
            }
            // Durable like a login's write of a used code: the reset is reported done
            // only once it is where a login would read it after a failover.
            s.compare_and_set(key, version, &next, true)
        })?;
        Ok(outcome)
    }
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        if self.handle.is_null() {
            return;
        }
        // SAFETY: the handle came from the plugin's `open` and is closed exactly once.
        unsafe { (self.plugin.close)(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{private_tempdir, require_root};

    /// The system CA bundle where a distribution ships it as a symlink (Arch's
    /// `/etc/ssl/certs/ca-certificates.crt -> ../../ca-certificates/extracted/…`), in a
    /// layout below a root-only directory: root's symlink in root's directories is
    /// followed and the file it leads to read; a candidate that does not exist, or a link
    /// leading nowhere, is passed over. Controls, each refused with the reason (and the
    /// later candidate, a plain file, not used in its place): the link owned by another
    /// account, the link in a directory others can write, the file it leads to owned by
    /// another account. Before, the first existing candidate was opened without following
    /// any link, and a symlink was refused.
    #[test]
    fn a_system_bundle_behind_root_s_symlinks_is_read_and_any_other_refused() {
        let t = "a_system_bundle_behind_root_s_symlinks_is_read_and_any_other_refused";
        if !require_root(t) {
            return;
        }
        use std::os::unix::fs::{PermissionsExt, lchown, symlink};
        let dir = private_tempdir();
        let etc = dir.path().join("etc");
        let certs = etc.join("ssl/certs");
        let extracted = etc.join("ca-certificates/extracted");
        for d in [&certs, &extracted] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let bundle = extracted.join("tls-ca-bundle.pem");
        std::fs::write(&bundle, b"arch bundle\n").expect("bundle");
        let plain = etc.join("ssl/cert.pem");
        std::fs::write(&plain, b"plain bundle\n").expect("plain");
        for f in [&bundle, &plain] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let link = certs.join("ca-certificates.crt");
        symlink("../../ca-certificates/extracted/tls-ca-bundle.pem", &link).expect("symlink");
        let dangling = certs.join("dangling.crt");
        symlink("../nowhere.pem", &dangling).expect("symlink");
        let missing = etc.join("pki/ca-trust/extracted/pem/tls-ca-bundle.pem");
        let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
        let (link_s, plain_s) = (path(&link), path(&plain));
        let candidates = [
            path(&missing),
            path(&dangling),
            link_s.clone(),
            plain_s.clone(),
        ];
        let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let rules = FileRules::root_controlled(0o644, MAX_CA_SIZE);
        let read = |c: &[&str]| system_bundle_from(c, &rules);
        assert_eq!(read(&candidates).expect("root's link"), b"arch bundle\n");
        assert_eq!(read(&[&plain_s]).expect("a plain file"), b"plain bundle\n");
        let refused = |what: &str, c: &[&str], why: &str| match read(c) {
            Err(StoreError::Refused(m)) => {
                assert!(m.contains(&link_s) && m.contains(why), "{what}: {m}");
            }
            other => panic!("{what}: not refused: {other:?}"),
        };
        // Not passed over for the plain file behind it.
        lchown(&link, Some(4242), None).expect("lchown");
        refused("another's link", &[&link_s, &plain_s], "not owned by root");
        lchown(&link, Some(0), None).expect("lchown");
        std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        refused(
            "a writable directory",
            &[&link_s, &plain_s],
            "writable by others",
        );
        std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::chown(&bundle, Some(4242), None).expect("chown");
        refused("another's file", &[&link_s, &plain_s], "uid 4242");
        std::os::unix::fs::chown(&bundle, Some(0), None).expect("chown");
        assert_eq!(read(&candidates).expect("root's again"), b"arch bundle\n");
        match read(&candidates[..2]) {
            Err(StoreError::Refused(m)) => assert!(m.contains("no system CA bundle"), "{m}"),
            other => panic!("nothing found: {other:?}"),
        }
    }

    /// A plugin built against another ABI is refused by its version, before any other
    /// symbol is looked up or called, and a plugin that claims this version but lacks
    /// the server clock's export is refused too: neither may open a store whose lost
    /// record would then be recreated from this host's clock alone (R34).
    #[test]
    fn a_plugin_of_another_abi_or_without_the_clock_is_refused_with_a_clear_line() {
        let t = "a_plugin_of_another_abi_or_without_the_clock_is_refused_with_a_clear_line";
        if !require_root(t) {
            return;
        }
        let dir = private_tempdir();
        let build = |name: &str, source: &str| {
            let c = dir.path().join(format!("{name}.c"));
            let so = dir.path().join(format!("{name}.so"));
            std::fs::write(&c, source).expect("write source");
            let status = std::process::Command::new("cc")
                .args(["-shared", "-fPIC", "-o"])
                .arg(&so)
                .arg(&c)
                .status()
                .expect("cc");
            assert!(status.success(), "cc {name}");
            so
        };
        let v2 = build("v2", "unsigned pam_totp_plugin_abi(void) { return 2; }\n");
        let refused = |path: &Path| match load_plugin(path, "Redis") {
            Err(StoreError::Refused(m)) => m,
            Err(e) => panic!("not refused: {e:?}"),
            Ok(_) => panic!("loaded"),
        };
        let m = refused(&v2);
        assert!(
            m.contains(&format!(
                "plugin ABI version 2, this module speaks {ABI_VERSION}"
            )),
            "{m}"
        );
        let stubs = ["open", "get", "cas", "del", "close"]
            .map(|f| format!("int pam_totp_plugin_{f}(void) {{ return 1; }}\n"))
            .concat();
        let no_clock = build(
            "noclock",
            &format!("unsigned pam_totp_plugin_abi(void) {{ return {ABI_VERSION}; }}\n{stubs}"),
        );
        let m = refused(&no_clock);
        assert!(m.contains("pam_totp_plugin_time"), "{m}");
    }

    /// The checks `dlopen` skips: a shared object cut anywhere past its program headers
    /// is refused by its size (the cut named), the whole file passes, and neither a
    /// file that is not ELF nor a header cut short is read past its end.
    #[test]
    fn a_plugin_cut_short_is_found_by_its_segments() {
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read exe");
        let table = program_header_table(&exe[..64]).expect("an ELF header");
        let start = usize::try_from(table.offset).expect("offset");
        let headers = &exe[start..start + table.len];
        let whole = exe.len() as u64;
        assert_eq!(check_segments(&table, headers, whole), Ok(()));
        // The last loaded byte: the smallest size that passes (what follows it, such as
        // section headers and symbols, is not mapped).
        let (mut low, mut needed) = (0, whole);
        while low + 1 < needed {
            let mid = low + (needed - low) / 2;
            if check_segments(&table, headers, mid).is_ok() {
                needed = mid;
            } else {
                low = mid;
            }
        }
        assert!(needed > 64, "{needed}");
        let cut = check_segments(&table, headers, needed - 1).expect_err("cut short");
        assert!(
            cut.contains("cut short") && cut.contains("loadable segment"),
            "{cut}"
        );
        let none = check_segments(&table, &headers[..table.len - 1], whole).expect_err("short");
        assert!(none.contains("program headers end"), "{none}");
        for bad in [&b"#!/bin/sh\n"[..], &exe[..40], &[0u8; 64][..]] {
            assert!(program_header_table(bad).is_err());
        }
        // A 32-bit big-endian header: one PT_LOAD of 0x100 bytes at 0x40.
        let mut h = vec![0u8; 52];
        h[..6].copy_from_slice(b"\x7fELF\x01\x02");
        h[0x1c..0x20].copy_from_slice(&52u32.to_be_bytes());
        h[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes());
        h[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        let table = program_header_table(&h).expect("32-bit header");
        let mut ph = vec![0u8; 32];
        ph[..4].copy_from_slice(&1u32.to_be_bytes());
        ph[4..8].copy_from_slice(&0x40u32.to_be_bytes());
        ph[0x10..0x14].copy_from_slice(&0x100u32.to_be_bytes());
        assert_eq!(check_segments(&table, &ph, 0x140), Ok(()));
        assert!(check_segments(&table, &ph, 0x13f).is_err());
    }

    /// A 64-bit little-endian ELF header naming `count` program headers of `entry`
    /// bytes at `offset`.
    fn elf64_header(offset: u64, entry: u16, count: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[0x20..0x28].copy_from_slice(&offset.to_le_bytes());
        h[0x36..0x38].copy_from_slice(&entry.to_le_bytes());
        h[0x38..0x3a].copy_from_slice(&count.to_le_bytes());
        h
    }

    /// One 64-bit `PT_LOAD` entry of the file's `offset` and `filesz`.
    fn load64(offset: u64, filesz: u64) -> Vec<u8> {
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&1u32.to_le_bytes());
        ph[8..16].copy_from_slice(&offset.to_le_bytes());
        ph[0x20..0x28].copy_from_slice(&filesz.to_le_bytes());
        ph
    }

    /// Headers no linker writes, as a damaged file could hold them: every one is
    /// refused or passed without a panic, an overflow or a read beyond the bounded
    /// table, and nothing that reaches past the file passes.
    #[test]
    fn hostile_program_headers_are_refused_without_a_panic_or_a_large_read() {
        // The most entries of the largest size: more than the module reads.
        assert!(program_header_table(&elf64_header(64, u16::MAX, u16::MAX)).is_err());
        // PN_XNUM (the count kept in section 0), which glibc does not read either.
        assert!(program_header_table(&elf64_header(64, 56, u16::MAX)).is_err());
        // Entries shorter than the fields read from them.
        assert!(program_header_table(&elf64_header(64, 55, 1)).is_err());
        assert!(program_header_table(&elf64_header(64, 0, 0)).is_err());
        // A larger entry than ELF's is read by its own stride.
        let table = program_header_table(&elf64_header(64, 64, 2)).expect("wide entries");
        let mut headers = load64(0, 0x100);
        headers.resize(64, 0xff);
        headers.extend(load64(0x100, 0x80));
        headers.resize(128, 0);
        assert_eq!(check_segments(&table, &headers, 0x180), Ok(()));
        assert!(check_segments(&table, &headers, 0x17f).is_err());
        // Offsets and sizes whose sum overflows are past any file.
        let table = program_header_table(&elf64_header(64, 56, 1)).expect("one entry");
        for (offset, filesz) in [(u64::MAX, 1), (1, u64::MAX), (u64::MAX, u64::MAX)] {
            let m = check_segments(&table, &load64(offset, filesz), u64::MAX - 1)
                .expect_err("past the end");
            assert!(m.contains(&format!("ends at byte {}", u64::MAX)), "{m}");
        }
        // A table that starts past the end of the file, or at an offset pread refuses.
        let dir = tempfile::tempdir().expect("tempdir");
        for offset in [1 << 20, u64::MAX - 8] {
            let path = dir.path().join(format!("at-{offset}.so"));
            std::fs::write(&path, elf64_header(offset, 56, 4)).expect("write");
            let meta = std::fs::metadata(&path).expect("stat");
            let checked = {
                use std::os::unix::fs::MetadataExt;
                FileInfo {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    nlink: meta.nlink(),
                    size: meta.size(),
                }
            };
            assert!(segments_in_file(&path, &checked).is_err(), "{offset}");
            // Control: the same header naming no entries passes (glibc then refuses
            // a file without loadable segments).
            std::fs::write(&path, elf64_header(offset, 56, 0)).expect("write");
            assert_eq!(segments_in_file(&path, &checked), Ok(()), "{offset}");
        }
    }

    /// No plugin a linker writes is refused by the check: shared objects linked by
    /// GNU ld (with and without `-z separate-code`, RELRO or not, debug information,
    /// stripped), gold where installed, and LLVM's lld (the one Rust links with), each
    /// with thread-local data, a large `.bss` and a note, pass it and load: the refusal
    /// names their ABI version, which only a loaded plugin reports. Control: each one
    /// cut at its last loaded byte is refused before `dlopen`, naming the cut.
    #[test]
    fn plugins_of_every_linker_pass_the_segment_check_and_load() {
        let t = "plugins_of_every_linker_pass_the_segment_check_and_load";
        if !require_root(t) {
            return;
        }
        let dir = private_tempdir();
        let c = dir.path().join("p.c");
        std::fs::write(
            &c,
            "__thread int tls_data = 3;\n__thread int tls_bss;\nstatic char bss[1 << 20];\n\
             __attribute__((section(\".note.pam_totp\"), used)) static const int note[4] \
             = {4, 4, 1, 0};\n\
             unsigned pam_totp_plugin_abi(void) { bss[9] = 1; return 2 + tls_data * tls_bss \
             + bss[0]; }\n",
        )
        .expect("write source");
        let output = |cmd: &mut std::process::Command| {
            let out = cmd.output().expect("run");
            assert!(out.status.success(), "{cmd:?}: {out:?}");
            String::from_utf8(out.stdout).expect("utf-8")
        };
        // lld as Rust ships it, run by cc through its gcc-ld directory.
        let sysroot = output(std::process::Command::new("rustc").args(["--print", "sysroot"]));
        let host = output(std::process::Command::new("rustc").args(["--print", "host-tuple"]));
        let gcc_ld = Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(host.trim())
            .join("bin/gcc-ld");
        let lld = format!("-B{}", gcc_ld.display());
        let gold = std::process::Command::new("ld.gold")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let mut variants: Vec<(&str, Vec<&str>)> = vec![
            ("bfd", vec!["-fuse-ld=bfd"]),
            ("bfd-separate", vec!["-fuse-ld=bfd", "-Wl,-z,separate-code"]),
            (
                "bfd-noseparate",
                vec!["-fuse-ld=bfd", "-Wl,-z,noseparate-code"],
            ),
            ("bfd-norelro", vec!["-fuse-ld=bfd", "-Wl,-z,norelro"]),
            ("bfd-debug", vec!["-fuse-ld=bfd", "-g"]),
            ("bfd-stripped", vec!["-fuse-ld=bfd", "-s"]),
            ("lld", vec![&lld, "-fuse-ld=lld"]),
            ("lld-stripped", vec![&lld, "-fuse-ld=lld", "-s"]),
            (
                "lld-separate",
                vec![&lld, "-fuse-ld=lld", "-Wl,-z,separate-loadable-segments"],
            ),
            ("lld-debug", vec![&lld, "-fuse-ld=lld", "-g", "-Wl,-z,now"]),
        ];
        if gold {
            variants.push(("gold", vec!["-fuse-ld=gold"]));
            variants.push(("gold-stripped", vec!["-fuse-ld=gold", "-s"]));
        }
        for (name, flags) in variants {
            let so = dir.path().join(format!("{name}.so"));
            output(
                std::process::Command::new("cc")
                    .args(["-shared", "-fPIC", "-o"])
                    .arg(&so)
                    .args(&flags)
                    .arg(&c),
            );
            let refused = |path: &Path| match load_plugin(path, "Redis") {
                Err(StoreError::Refused(m)) => m,
                Err(e) => panic!("{name}: not refused: {e:?}"),
                Ok(_) => panic!("{name}: loaded"),
            };
            let m = refused(&so);
            assert!(m.contains("plugin ABI version 2,"), "{name}: {m}");
            // The smallest size the check passes, then one byte less.
            let whole = std::fs::read(&so).expect("read");
            let table = program_header_table(&whole[..64]).expect("an ELF header");
            let start = usize::try_from(table.offset).expect("offset");
            let headers = &whole[start..start + table.len];
            let (mut low, mut needed) = (0, whole.len() as u64);
            while low + 1 < needed {
                let mid = low + (needed - low) / 2;
                if check_segments(&table, headers, mid).is_ok() {
                    needed = mid;
                } else {
                    low = mid;
                }
            }
            let cut = dir.path().join(format!("{name}-cut.so"));
            let len = usize::try_from(needed - 1).expect("size");
            std::fs::write(&cut, &whole[..len]).expect("write cut");
            let m = refused(&cut);
            assert!(
                m.contains(&format!("the file is {len} bytes, cut short")),
                "{name}: {m}"
            );
        }
    }

    const NOW: u64 = 1_700_000_025;

    #[test]
    fn a_recreated_floor_is_the_later_clock_within_a_day_and_none_beyond() {
        let floor = |h, s, b| recreation_floor(h, s, b).expect("a floor");
        // Agreeing clocks: the later, nothing to say.
        assert_eq!(floor(NOW, NOW + 2, "Redis"), (NOW + 2, None));
        assert_eq!(floor(NOW + 2, NOW, "Redis"), (NOW + 2, None));
        // This host ten minutes behind: the server's time, the offset named.
        let (at, note) = floor(NOW - 600, NOW, "Redis");
        assert_eq!(at, NOW);
        let note = note.expect("a note");
        assert!(
            note.contains("600 s ahead of this host's") && note.contains("server's clock"),
            "{note}"
        );
        // This host an hour ahead: its own time (the server cannot lower it), named.
        let (at, note) = floor(NOW + 3600, NOW, "etcd");
        assert_eq!(at, NOW + 3600);
        assert!(
            note.is_some_and(|n| n.contains("3600 s ahead of the etcd server's")),
            "named"
        );
        // At the bound, either way, still the later clock.
        let edge = NOW + MAX_CLOCK_OFFSET_SECS;
        assert_eq!(floor(NOW, edge, "Redis").0, edge);
        assert_eq!(floor(edge, NOW, "Redis").0, edge);
        // Beyond it, either way: no floor, both clocks, the offset and the fix named.
        let far = NOW + MAX_CLOCK_OFFSET_SECS + 1;
        for (host, server, side) in [(NOW, far, "behind"), (far, NOW, "ahead")] {
            let why = recreation_floor(host, server, "Redis").expect_err("refused");
            assert!(
                why.contains(&format_utc(host))
                    && why.contains(&format_utc(server))
                    && why.contains("86401 s apart")
                    && why.contains(&format!("this host's clock is {side}"))
                    && why.contains("run `totp-state init` on a host"),
                "{why}"
            );
        }
        // No overflow at the ends of the range.
        assert!(recreation_floor(u64::MAX, 0, "Redis").is_err());
        assert!(recreation_floor(0, u64::MAX, "Redis").is_err());
        assert_eq!(floor(u64::MAX, u64::MAX, "Redis").0, u64::MAX);
    }
}
