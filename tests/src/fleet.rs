//! Fleet test helpers: a real `redis-server` started by the test on a random loopback
//! port in its own directory (stopped on drop), a test CA made with `openssl`, and the
//! Redis plugin built from this tree and installed where its ownership check passes.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::proxy::Hook;
use crate::{Drive, PEER, Returned, Stack, TestUser, login_logged, workspace};

/// Where files the module's root-only checks must accept live: root-owned and not
/// group/other writable along the whole chain. The checkout may be anywhere (under a
/// world-writable `/tmp`, which the checks rightly refuse), so this is a directory of the
/// tests' own under `/run` (root-owned 0755 on every Linux system).
fn trusted_base() -> PathBuf {
    let base = PathBuf::from("/run/pam_totp-tests");
    fs::create_dir_all(&base).expect("create /run/pam_totp-tests");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
    base
}

/// A fresh directory under `/run/pam_totp-tests`, removed on drop, for the plugin, secret
/// commands and credentials.
pub fn trusted_dir(prefix: &str) -> tempfile::TempDir {
    let base = trusted_base();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A root-owned 0755 secret command in `dir` (a [`trusted_dir`]): prints `file` for
/// `user`, exits 10 (not enrolled) for everybody else.
pub fn secret_command(dir: &Path, user: &str, file: &str) -> PathBuf {
    let path = dir.join("secret-command");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = '{user}' ]; then\ncat <<'EOF'\n{file}EOF\nexit 0\nfi\nexit 10\n"
        ),
    )
    .expect("write command");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// The module options of a root-owned 0755 secret command in `dir` (a [`trusted_dir`])
/// that runs the shell lines `checks` first (each exits non-zero when what it checks
/// about its own process is wrong) and then prints `file`; it runs as nobody.
pub fn checking_secret_command(dir: &Path, checks: &str, file: &str) -> String {
    let path = dir.join("secret-command");
    fs::write(
        &path,
        format!("#!/bin/sh\n{checks}\ncat <<'EOF'\n{file}EOF\n"),
    )
    .expect("write command");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    format!(
        "secret_command={} secret_command_user=nobody",
        path.display()
    )
}

/// `totp-state init --never-used --options ARGS`: the admin's one-time initialisation
/// of a new shared store, so that its first login need not wait for the next code (R34:
/// a store without its record is taken to have lost its data, by a login and by a
/// plain init). Panics when it fails.
pub fn init_store(module_args: &str) {
    let out = crate::state_tool(&["init", "--never-used", "--options", module_args]);
    assert!(
        out.status.success(),
        "totp-state init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Redis plugin built from this tree, installed by [`install_plugin`].
pub fn plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| install_plugin("pam_totp_redis", "redis"))
}

/// Builds the plugin crate `package` of this tree and copies it (cargo hard-links its
/// outputs, and the ownership check wants one link) to
/// `/run/pam_totp-tests/<name>-<checkout>.so`. The copy is renamed into place, so a test
/// process that loaded the previous copy is not disturbed.
pub fn install_plugin(package: &str, name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", package])
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let built = workspace()
        .join("target")
        .join("debug")
        .join(format!("lib{package}.so"));
    let dir = trusted_dir(&format!("{name}-plugin"));
    let tmp = dir.path().join(format!("{name}.so"));
    fs::copy(&built, &tmp).expect("copy plugin");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod");
    // Named after this checkout: two checkouts testing at once (another branch's
    // plugin may export other symbols) must not load each other's build.
    let tag = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        workspace().hash(&mut h);
        h.finish()
    };
    let path = trusted_base().join(format!("{name}-{tag:016x}.so"));
    fs::rename(&tmp, &path).expect("rename plugin into place");
    path
}

/// A test CA, a server certificate for 127.0.0.1 / localhost and a client certificate
/// (`clientAuth`, key root's and 0600), made with `openssl`.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A fresh CA (`name` goes into its subject) and a server certificate it signed.
    pub fn new(name: &str) -> TestCa {
        let dir = trusted_dir("ca");
        let d = dir.path();
        let subj = format!("/CN=pam_totp test CA {name}");
        openssl(
            d,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subj,
                "-keyout", "ca.key", "-out", "ca.pem",
            ],
        );
        let (server_cert, server_key) = signed(
            d,
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        let (client_cert, client_key) = signed(
            d,
            "client",
            "pam_totp test client",
            "extendedKeyUsage=clientAuth\n",
        );
        for f in [&d.join("ca.pem"), &server_key] {
            fs::set_permissions(f, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        TestCa {
            ca_cert: d.join("ca.pem"),
            server_cert,
            server_key,
            client_cert,
            client_key,
            dir,
        }
    }
}

/// A key and a certificate for `cn` with the openssl `extensions`, signed by the CA in
/// `d` (`NAME.key`, root-only, and `NAME.pem` there).
pub fn signed(d: &Path, name: &str, cn: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let key = d.join(format!("{name}.key"));
    let csr = d.join(format!("{name}.csr"));
    let cert = d.join(format!("{name}.pem"));
    let ext = d.join(format!("{name}-ext.cnf"));
    fs::write(&ext, extensions).expect("write ext");
    let subj = format!("/CN={cn}");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subj,
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ],
    );
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    (cert, key)
}

/// How to start a server.
#[derive(Default)]
pub struct ServerConfig<'a> {
    /// An ACL user `fleet` with this password, and the `default` user switched off.
    pub acl_password: Option<&'a str>,
    /// Serve TLS only, with this CA's server certificate.
    pub tls: Option<&'a TestCa>,
    /// With `tls`: require client certificates of that CA (`tls-auth-clients yes`).
    pub tls_auth_clients: bool,
    /// Start as a replica of the server on this loopback port.
    pub replica_of: Option<u16>,
    /// Key patterns and command rules of the `fleet` user (default `~* +@all`).
    pub acl_rules: Option<&'a str>,
    /// Persist every write (`appendonly yes`, `appendfsync always`): a
    /// [`RedisServer::restart`] keeps the data set. Without it a restart loses it.
    pub persistent: bool,
    /// More `redis-server` arguments, after the rest (`--databases 4`, `--cluster-enabled
    /// yes`): a server configured differently than the fleet expects.
    pub extra: &'a [&'a str],
}

/// A `redis-server` owned by the test: random loopback port, its own directory and
/// socket, no persistence unless asked for; killed (after SIGCONT, if paused) on drop.
pub struct RedisServer {
    child: Option<Child>,
    /// What it was started with, for [`RedisServer::restart`].
    args: Vec<String>,
    pub port: u16,
    /// In a [`trusted_dir`]: the module checks a socket's directory chain.
    pub socket: PathBuf,
    dir: tempfile::TempDir,
    _socket_dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

impl RedisServer {
    pub fn start(config: &ServerConfig<'_>) -> RedisServer {
        assert!(
            crate::require_tool("redis", "redis-server"),
            "redis-server is missing"
        );
        // The port is free when picked; another process may take it before the server
        // binds, so a failed start is retried on another port.
        for _ in 0..5 {
            if let Some(s) = Self::try_start(config) {
                return s;
            }
        }
        panic!("redis-server did not start");
    }

    fn try_start(config: &ServerConfig<'_>) -> Option<RedisServer> {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-redis")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let socket_dir = trusted_dir("sock");
        let socket = socket_dir.path().join("redis.sock");
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            if config.persistent { "yes" } else { "no" }.into(),
            "--appendfsync".into(),
            "always".into(),
            "--unixsocket".into(),
            socket.display().to_string(),
            "--unixsocketperm".into(),
            "700".into(),
            "--logfile".into(),
            dir.path().join("redis.log").display().to_string(),
        ];
        match config.tls {
            None => args.extend(["--port".into(), port.to_string()]),
            Some(ca) => args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                ca.server_cert.display().to_string(),
                "--tls-key-file".into(),
                ca.server_key.display().to_string(),
                "--tls-ca-cert-file".into(),
                ca.ca_cert.display().to_string(),
                "--tls-auth-clients".into(),
                if config.tls_auth_clients { "yes" } else { "no" }.into(),
            ]),
        }
        if let Some(p) = config.replica_of {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        }
        if let Some(pw) = config.acl_password {
            args.extend([
                "--user".into(),
                "default".into(),
                "off".into(),
                "--user".into(),
                "fleet".into(),
                "on".into(),
                format!(">{pw}"),
            ]);
            let rules = config.acl_rules.unwrap_or("~* +@all");
            args.extend(rules.split_whitespace().map(str::to_owned));
        }
        args.extend(config.extra.iter().map(|a| (*a).to_owned()));
        let child = spawn_redis(&args);
        let mut server = RedisServer {
            child: Some(child),
            args,
            port,
            socket,
            dir,
            _socket_dir: socket_dir,
        };
        server.ready(0).then_some(server)
    }

    /// Waits until the log says "Ready to accept connections" more than `before` times;
    /// false when the server exited or took longer than 10 s.
    fn ready(&mut self, before: usize) -> bool {
        let log = self.dir.path().join("redis.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.matches("Ready to accept connections").count() > before {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                eprintln!("redis-server exited: {text}");
                self.child = None;
                return false;
            }
            sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server and starts it again with the same configuration, on the same
    /// port and in the same directory: without [`ServerConfig::persistent`] it comes
    /// back empty (no records, no function library, no ACL user added at run time), as
    /// a server restarted without persistence does.
    pub fn restart(&mut self) {
        self.stop();
        let log = self.dir.path().join("redis.log");
        let before = fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("Ready to accept connections")
            .count();
        self.child = Some(spawn_redis(&self.args));
        assert!(self.ready(before), "redis-server did not start again");
    }

    /// `redis://127.0.0.1:PORT` (or `rediss://`).
    pub fn url(&self, tls: bool) -> String {
        let scheme = if tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Module options naming this server (plain, not TLS) and the plugin built from this
    /// tree, then `extra`.
    pub fn options(&self, extra: &str) -> String {
        format!(
            "state={} redis_plugin={} {extra}",
            self.url(false),
            plugin().display()
        )
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid();
        assert!(pid > 0, "server not running");
        // SAFETY: kill(2) on the pid of our own unreaped child.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// SIGSTOP: the server keeps its sockets open but answers nothing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server now (connections then fail at once).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as in `signal`; SIGCONT first so a paused server can die.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Adds (or resets) the ACL user `user`, enabled with password `pw` and `rules`
    /// (whitespace-separated ACL rules), as the default user; asserts the server said OK.
    pub fn add_acl_user(&self, user: &str, rules: &str) {
        let mut cmd: Vec<&[u8]> = vec![b"ACL", b"SETUSER", user.as_bytes(), b"on", b">pw"];
        cmd.extend(rules.split_whitespace().map(str::as_bytes));
        let reply = self.raw(None, &cmd);
        assert!(
            reply.starts_with(b"+OK"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }

    /// A new server (default configuration) replicating this one, returned once it is
    /// online on this side and synced on its own: it has loaded the data set and
    /// acknowledges `WAIT` from here on.
    pub fn replica(&self) -> RedisServer {
        let reply = |server: &RedisServer, args: &[&[u8]]| {
            String::from_utf8_lossy(&server.raw(None, args)).into_owned()
        };
        let replica = RedisServer::start(&ServerConfig::default());
        let port = self.port.to_string();
        assert!(reply(&replica, &[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]).starts_with("+OK"));
        let synced = || {
            reply(self, &[b"INFO", b"replication"]).contains("state=online")
                && reply(&replica, &[b"INFO", b"replication"]).contains("master_sync_in_progress:0")
                && reply(&replica, &[b"INFO", b"replication"]).contains("master_link_status:up")
        };
        // A hang guard, not a speed goal: a loaded machine may take long to sync.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !synced() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        assert!(synced(), "the replica never synced");
        replica
    }

    /// Runs one command over plain RESP on the TCP port (not for TLS servers) and
    /// returns the raw reply, for checks the store interface does not offer (TTL,
    /// planting a corrupt record).
    pub fn raw(&self, password: Option<&str>, args: &[&[u8]]) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut send = |args: &[&[u8]]| {
            let mut req = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a);
                req.extend_from_slice(b"\r\n");
            }
            s.write_all(&req).expect("send");
            let mut buf = vec![0u8; 65536];
            // A signal (a child of another test thread exiting) may interrupt the wait.
            let n = loop {
                match s.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r.expect("read reply"),
                }
            };
            buf.truncate(n);
            buf
        };
        if let Some(pw) = password {
            let r = send(&[b"AUTH", b"fleet", pw.as_bytes()]);
            assert!(
                r.starts_with(b"+OK"),
                "AUTH: {}",
                String::from_utf8_lossy(&r)
            );
        }
        send(args)
    }
}

fn spawn_redis(args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Sentinel (`redis-server CONF --sentinel`) owned by the test, monitoring the
/// primary on `primary_port` as `name` with a quorum of `quorum`; quick to act
/// (`down-after-milliseconds 1000`, `failover-timeout 5000`). Killed on drop.
pub struct Sentinel {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sentinel {
    pub fn start(primary_port: u16, name: &str, quorum: u32) -> Sentinel {
        Self::monitoring("127.0.0.1", primary_port, name, quorum)
    }

    /// [`Sentinel::start`] with the primary given as `host`: a host name is resolved by
    /// the sentinel and announced as it is (`resolve-hostnames`, `announce-hostnames`),
    /// so its replies name the primary by `host`.
    pub fn monitoring(host: &str, primary_port: u16, name: &str, quorum: u32) -> Sentinel {
        let by_name = if host.parse::<std::net::IpAddr>().is_ok() {
            ""
        } else {
            "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"
        };
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("pam_totp-sentinel")
                .tempdir()
                .expect("tempdir");
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            let log = dir.path().join("sentinel.log");
            fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n{by_name}\
                     sentinel monitor {name} {host} {primary_port} {quorum}\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n\
                     sentinel parallel-syncs {name} 1\n",
                    dir = dir.path().display(),
                    log = log.display(),
                ),
            )
            .expect("write sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server --sentinel");
            let mut s = Sentinel {
                child: Some(child),
                port,
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains("+monitor") {
                    return s;
                }
                if let Some(c) = s.child.as_mut()
                    && let Ok(Some(_)) = c.try_wait()
                {
                    s.child = None;
                    break;
                }
                sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server --sentinel did not start");
    }

    /// The sentinel's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The time of a code that logs in after a login at host time `recreated_at` recreated a
/// lost shared store. The store record is complete since the later of that host's clock
/// and the server's (the real clock, no later than now), and the window reaches one step
/// past it: a code two steps after both is the first one outside.
pub fn after_recreation(recreated_at: u64) -> u64 {
    crate::now().max(recreated_at) + 65
}

/// The rules of the ACL user `user` that docs/fleet.md documents (`pam_totp` for the
/// hosts, `pam_totp_admin` for the admin), after its key pattern: the tests grant what
/// the docs tell admins to grant, so the two cannot drift apart.
pub fn documented_acl(user: &str) -> Vec<String> {
    let doc = fs::read_to_string(workspace().join("docs/fleet.md")).expect("read docs/fleet.md");
    let line = doc
        .split(&format!("`user {user} on >PASSWORD "))
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or_else(|| panic!("no ACL of `{user}` in docs/fleet.md"));
    let mut words = line.split_whitespace();
    let keys = words.next().unwrap_or_default();
    assert!(
        keys.starts_with('~'),
        "{user}'s ACL starts with its keys: {line}"
    );
    words.map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------
// A write in flight (R34): what the Redis and etcd tests of docs/fleet.md's "A write in
// flight" share. A proxy holds one host's compare-and-set while another host accepts the
// same code and the data set is lost; the held write must write nothing, and the login
// decide again with the store record as it is now.

/// Another host's login (its run and log lines) and what the loss that followed it
/// returned.
type LoginThenLoss<T> = (Drive, Vec<String>, T);

/// What another host's login left while a held write waited: that login's run and log
/// lines, and what the loss of the data set that followed it returned.
pub struct Elsewhere<T>(Arc<Mutex<Option<LoginThenLoss<T>>>>);

impl<T> Elsewhere<T> {
    /// What the loss returned, once the other host is shown to have accepted the code
    /// (the fault happened where the test claims it did).
    pub fn accepted(&self) -> T {
        let (d, logs, lost) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the hook ran");
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
        lost
    }
}

/// A hook for a proxy holding this host's write: `other` logs `user` in with `code` (the
/// code this host is deciding on), then `lose` loses the data set; both are kept for
/// [`Elsewhere::accepted`].
pub fn accepted_elsewhere_then<T: Send + 'static>(
    other: &Arc<Stack>,
    user: &Arc<TestUser>,
    code: &str,
    lose: impl FnOnce() -> T + Send + 'static,
) -> (Hook, Elsewhere<T>) {
    let slot = Arc::new(Mutex::new(None));
    let (other, user, code, kept) = (other.clone(), user.clone(), code.to_owned(), slot.clone());
    let hook: Hook = Box::new(move || {
        let (d, logs) = login_logged(&other, &user, &code, PEER, None);
        let lost = lose();
        *kept.lock().unwrap_or_else(|e| e.into_inner()) = Some((d, logs, lost));
    });
    (hook, Elsewhere(slot))
}

/// The login whose held write met a lost data set: the write was refused for the changed
/// store record, and the login decided again with the store record as it is now
/// (recreated at now), whose floor refuses the code as used: a wrong code, not a store
/// fault.
pub fn assert_decided_again_and_refused_as_used(d: &Drive, logs: &[String]) {
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    let line = |needle: &str| logs.iter().position(|l| l.contains(needle));
    let changed = line("the store record changed since this login read it");
    let again = line("deciding again with the store record as it is now");
    let recreated = line("had no store record, so it was created now");
    let refused = line("before the state store lost its data");
    assert!(
        changed.is_some() && changed == again,
        "the changed store record reported, and decided again: {logs:?}"
    );
    assert!(
        again < recreated && recreated < refused,
        "recreated, then the code refused by its floor: {logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("state store unavailable")),
        "not denied as a store fault: {logs:?}"
    );
}

/// The same code again after the loss, on `host`: the recreated store record's floor
/// keeps refusing it.
pub fn assert_still_refused_after_the_loss(host: &Stack, user: &TestUser, code: &str) {
    let (d, logs) = login_logged(host, user, code, PEER, None);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
}

/// Control: a code after the recreation logs in on `host`.
pub fn assert_a_later_code_logs_in(host: &Stack, user: &TestUser, secret: &str) {
    let later = after_recreation(crate::now());
    let (d, logs) = login_logged(host, user, &crate::code_at(secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}
