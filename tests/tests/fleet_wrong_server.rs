//! A shared store URL pointing at the wrong kind of server, or at a server configured
//! differently than docs/fleet.md assumes, through the real libpam against real daemons
//! the tests start (a replica, a sentinel, a cluster node, a server with fewer
//! databases or a renamed command, an HTTP server on the port, twemproxy, a TLS port):
//! the login is denied with one log line that says what to fix, never as a wrong code,
//! never through `state_fallback=local` where the server answered what it is, and
//! `totp-state ping` exits with the documented status and says the same thing.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use system_tests::etcd::{EtcdCluster, EtcdConfig};
use system_tests::fleet::{
    RedisServer, Sentinel, ServerConfig, TestCa, documented_acl, init_store, plugin,
};
use system_tests::*;

const FALLBACK_USED: &str = "using this host's local store";

/// Module options for the store at `url` (a fresh prefix), short bounds, and `extra`.
fn options(url: &str, extra: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "state={url} redis_plugin={} redis_prefix=ws{}-{}: redis_connect_timeout=1000 \
         redis_timeout=1000 {extra}",
        plugin().display(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The module's log lines (their messages) that contain every needle.
fn lines_with<'a>(lines: &'a [String], needles: &[&str]) -> Vec<&'a str> {
    lines
        .iter()
        .map(|l| syslog_message(l))
        .filter(|m| needles.iter().all(|n| m.contains(n)))
        .collect()
}

/// One login with the right code at the running clock (the servers are real), through
/// a probe stack with `args`: its result and log lines.
fn login(args: &str, user: &TestUser, secret: &str) -> (Drive, Vec<String>) {
    let stack = Stack::probe("svc", args);
    login_logged(&stack, user, &code_at(secret, now()), PEER, None)
}

/// A store the module refuses, with `fix` as what to do (`what` names the case): the
/// login with `args` is denied, one log line refuses the store and contains every part
/// of `fix`, nothing used the local store and no code was compared, and `ping` exits 1
/// with the same words.
fn assert_refused_with_the_fix(
    what: &str,
    args: &str,
    user: &TestUser,
    secret: &str,
    fix: &[&str],
) {
    let (d, lines) = login(args, user, secret);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{what}: {d:?} {lines:?}"
    );
    let named = lines_with(&lines, fix);
    assert_eq!(named.len(), 1, "{what}: one line names {fix:?}: {lines:?}");
    assert!(
        named[0].contains("state store refused"),
        "{what}: a refusal, not an outage: {lines:?}"
    );
    assert!(
        lines_with(&lines, &[FALLBACK_USED]).is_empty(),
        "{what}: no fallback: {lines:?}"
    );
    assert!(
        lines_with(&lines, &["invalid verification code"]).is_empty(),
        "{what}: no code was compared: {lines:?}"
    );
    let (status, said) = ping(args);
    assert_eq!(status, Some(1), "{what}: ping: {said}");
    assert!(fix.iter().all(|f| said.contains(f)), "{what}: ping: {said}");
}

/// `totp-state ping --options ARGS`: exit status and standard error.
fn ping(args: &str) -> (Option<i32>, String) {
    let out = state_tool(&["ping", "--options", args]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A store URL naming a server that says what it is (a replica, a sentinel, a cluster
/// node, a server with four databases asked for the fifth, one whose `INFO` was renamed
/// away, an HTTP server, a data server named as a sentinel): with `state_fallback=local`
/// on, the right code is denied (the local store is not used: these servers answered,
/// and stay wrong until an admin acts), one log line refuses the store and names the
/// fix, no wrong code is logged, and `ping` exits 1 with the same words. Control: the
/// primary, with the same options, logs in.
#[test]
fn a_server_that_is_not_a_writable_primary_is_refused_with_the_fix_through_libpam() {
    let t = "a_server_that_is_not_a_writable_primary_is_refused_with_the_fix_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let primary = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("wsrv");
    let control = options(&primary.url(false), "state_fallback=local");
    init_store(&control);
    let (d, lines) = login(&control, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(lines_with(&lines, &[FALLBACK_USED]).is_empty(), "{lines:?}");

    let replica = RedisServer::start(&ServerConfig {
        replica_of: Some(primary.port),
        ..ServerConfig::default()
    });
    let sentinel = Sentinel::start(primary.port, "wsm", 1);
    let cluster_node = RedisServer::start(&ServerConfig {
        extra: &["--cluster-enabled", "yes"],
        ..ServerConfig::default()
    });
    let four_dbs = RedisServer::start(&ServerConfig {
        extra: &["--databases", "4"],
        ..ServerConfig::default()
    });
    let no_info = RedisServer::start(&ServerConfig {
        extra: &["--rename-command", "INFO", ""],
        ..ServerConfig::default()
    });
    let with_password = RedisServer::start(&ServerConfig {
        acl_password: Some("pw"),
        ..ServerConfig::default()
    });
    let etcd = EtcdCluster::start(1, &EtcdConfig::default());
    let http = format!("redis://{}", etcd.peer_address(0));
    let primary_as_sentinel = format!("redis+sentinel://127.0.0.1:{}/wsm", primary.port);
    let of_primary = format!("a replica of 127.0.0.1:{}", primary.port);
    let cred_dir = system_tests::fleet::trusted_dir("wscred");
    let sentinel_with_credentials = format!(
        "redis://127.0.0.1:{} redis_credentials={}",
        sentinel.port,
        credentials(cred_dir.path(), "fleet")
    );
    let cases: [(&str, String, &[&str]); 10] = [
        ("a replica", replica.url(false), &[&of_primary, "primary"]),
        (
            "a server that wants a password, without credentials",
            with_password.url(false),
            &["NOAUTH", "redis_credentials="],
        ),
        (
            "a sentinel's port",
            format!("redis://127.0.0.1:{}", sentinel.port),
            &["Redis Sentinel", "redis+sentinel://"],
        ),
        (
            "a sentinel's port, with the hosts' credentials",
            sentinel_with_credentials,
            &["Redis Sentinel", "redis+sentinel://"],
        ),
        (
            "a cluster node",
            cluster_node.url(false),
            &["Redis Cluster node", "Sentinel"],
        ),
        (
            "a cluster node with a database number",
            format!("{}/1", cluster_node.url(false)),
            &["SELECT", "cluster mode", "Redis Cluster node"],
        ),
        (
            "a database beyond the server's `databases`",
            format!("{}/5", four_dbs.url(false)),
            &["SELECT", "DB index is out of range", "`databases`"],
        ),
        (
            "INFO renamed away",
            no_info.url(false),
            &["INFO", "unknown command", "rename-command"],
        ),
        (
            "an HTTP server's port",
            http,
            &["not a Redis server", "HTTP/1.1 400", "an HTTP server"],
        ),
        (
            "a data server named as a sentinel",
            primary_as_sentinel,
            &["not a sentinel", "26379"],
        ),
    ];
    for (what, url, fix) in &cases {
        let args = options(url, "state_fallback=local");
        assert_refused_with_the_fix(what, &args, &u, &secret, fix);
    }
}

/// A loopback port no one listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Waits (up to 10 s) until `name`, just started, accepts connections on loopback `port`.
fn wait_until_listening(port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{name} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// twemproxy (nutcracker) in front of the primary, as its own process.
struct Twemproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Twemproxy {
    fn start(server_port: u16) -> Twemproxy {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-twemproxy")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("nutcracker.yml");
        std::fs::write(
            &conf,
            format!(
                "fleet:\n  listen: 127.0.0.1:{port}\n  redis: true\n  \
                 servers:\n   - 127.0.0.1:{server_port}:1\n"
            ),
        )
        .expect("write nutcracker.yml");
        // Its statistics port too: the default (22222) may be taken.
        let stats = free_port();
        let child = Command::new("nutcracker")
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-s"])
            .arg(stats.to_string())
            .arg("-o")
            .arg(dir.path().join("nutcracker.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nutcracker");
        wait_until_listening(port, "nutcracker");
        Twemproxy {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Twemproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Servers that end the connection without a word (twemproxy, which closes it at a
/// command it does not support; a TLS port spoken to in plain text) or never finish a
/// handshake (a plain port spoken to in TLS) look exactly like a server that is down or
/// a proxy whose server is: an outage (`ping` exits 2), but the log line and `ping` say
/// which misconfigurations look like this. Control: the same server through its right
/// URL logs in.
#[test]
fn a_proxy_or_a_tls_mismatch_that_ends_the_connection_names_the_likely_cause_through_libpam() {
    let t =
        "a_proxy_or_a_tls_mismatch_that_ends_the_connection_names_the_likely_cause_through_libpam";
    if !require_root(t) || !require_tool(t, "nutcracker") || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("wstls");
    let primary = RedisServer::start(&ServerConfig::default());
    let tls_server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let proxy = Twemproxy::start(primary.port);
    let (u, secret) = TestUser::enrolled("wsprx");
    let ca_file = format!("redis_ca_file={}", ca.ca_cert.display());
    for (what, url, extra) in [
        ("the plain server", primary.url(false), String::new()),
        ("the TLS server", tls_server.url(true), ca_file.clone()),
    ] {
        let args = options(&url, &extra);
        init_store(&args);
        let (d, lines) = login(&args, &u, &secret);
        assert_eq!(
            d.returned(),
            Returned::Success,
            "control, {what}: {d:?} {lines:?}"
        );
    }
    const CLOSED: &[&str] = &[
        "ended the connection without a reply",
        "rediss://",
        "twemproxy",
    ];
    const NO_HANDSHAKE: &[&str] = &["TLS handshake not finished", "does this port serve TLS"];
    let cases: [(&str, String, String, &[&str]); 3] = [
        (
            "twemproxy",
            format!("redis://127.0.0.1:{}", proxy.port),
            String::new(),
            CLOSED,
        ),
        (
            "a TLS port in plain text",
            tls_server.url(false),
            String::new(),
            CLOSED,
        ),
        (
            "a plain port in TLS",
            primary.url(true),
            ca_file,
            NO_HANDSHAKE,
        ),
    ];
    for (what, url, extra, cause) in &cases {
        let args = options(url, extra);
        let (d, lines) = login(&args, &u, &secret);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{what}: {d:?} {lines:?}"
        );
        let named = lines_with(&lines, cause);
        assert_eq!(
            named.len(),
            1,
            "{what}: one line names {cause:?}: {lines:?}"
        );
        assert!(
            named[0].contains("state store unavailable"),
            "{what}: {lines:?}"
        );
        assert!(
            lines_with(&lines, &["invalid verification code"]).is_empty(),
            "{what}: no code was compared: {lines:?}"
        );
        let (status, said) = ping(&args);
        assert_eq!(status, Some(2), "{what}: ping: {said}");
        assert!(
            cause.iter().all(|c| said.contains(c)),
            "{what}: ping: {said}"
        );
    }
}

/// An etcd endpoint list naming no voting member: only a learner (it serves no
/// linearizable read until promoted), or an HTTP server that is no v3 gateway (a
/// member's peer port, as an etcd without `/v3/` or a wrong port would answer), or an
/// SSH server, which greets in its own protocol: the login is denied, one line refuses the store and names the fix, no
/// fallback and no wrong code, and `ping` exits 1 with the same words. Control: the
/// voting member with the same options logs in, and a learner listed after it does not
/// stop that.
#[test]
fn an_etcd_list_without_a_voting_member_or_gateway_is_refused_with_the_fix_through_libpam() {
    let t =
        "an_etcd_list_without_a_voting_member_or_gateway_is_refused_with_the_fix_through_libpam";
    if !require_root(t) || !require_tool(t, "etcd") || !require_tool(t, "ssh-keygen") {
        return;
    }
    let mut cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let voting = cluster.url().replace("etcd://", "");
    let learner = cluster.add_learner();
    let (u, secret) = TestUser::enrolled("wsetc");
    let options = |members: &str| {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!(
            "state=etcd://{members} etcd_plugin={} etcd_prefix=ws{}-{}/ etcd_timeout=1000 \
             state_fallback=local",
            system_tests::etcd::etcd_plugin().display(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    };
    let control = options(&format!("{voting},{learner}"));
    init_store(&control);
    let (d, lines) = login(&control, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(lines_with(&lines, &[FALLBACK_USED]).is_empty(), "{lines:?}");

    let sshd = Sshd::start();
    let cases: [(&str, String, &[&str]); 3] = [
        (
            "a learner",
            learner.clone(),
            &["rpc not supported for learner", "etcdctl member promote"],
        ),
        (
            "a peer port",
            cluster.peer_address(0),
            &["not an etcd v3 gateway", "HTTP 404", "/v3/"],
        ),
        (
            "an SSH server's port",
            format!("127.0.0.1:{}", sshd.port),
            &["not an etcd member", "check the ports of state="],
        ),
    ];
    for (what, members, fix) in &cases {
        assert_refused_with_the_fix(what, &options(members), &u, &secret, fix);
    }
}

/// A real sshd on a loopback port (a fresh host key, no configuration file): a server
/// that speaks first, and not HTTP. Killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-sshd")
            .tempdir()
            .expect("tempdir");
        let key = dir.path().join("host_key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .expect("run ssh-keygen");
        assert!(out.status.success(), "ssh-keygen: {out:?}");
        // sshd refuses to start without its privilege separation directory, which the
        // service's unit creates at boot.
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let port = free_port();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f", "/dev/null", "-o", "PidFile=none", "-o"])
            .arg(format!("ListenAddress=127.0.0.1:{port}"))
            .arg("-h")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        wait_until_listening(port, "sshd");
        Sshd {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A credentials file for `user` (password `pw`) in a root-only directory.
fn credentials(dir: &std::path::Path, user: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{user}.cred"));
    std::fs::write(&path, format!("username={user}\npassword=pw\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.display().to_string()
}

/// A host ACL that lets the store be read but not written as a login writes it: the
/// key pattern read-only (`%R~`), or neither `FCALL` nor `EVAL`; on etcd, a role that
/// may only read the prefix. Every login is denied with `NOPERM` or "permission denied"
/// in its one line, and `totp-state ping`, which used to read and say "ok" (exit 0),
/// now runs the compare-and-set a login runs (on Redis a real write of its probe key,
/// on etcd against a version no record has), is refused before anything is written
/// (the server's keys are the same before and after), and exits 1 naming it. An etcd cluster with authentication on, asked without credentials, is refused
/// with the option to set. Control: the hosts' ACL of docs/fleet.md (Redis) and the
/// read-write role (etcd) log in and pass `ping`.
#[test]
fn an_acl_or_role_that_cannot_write_fails_ping_as_it_fails_logins_through_libpam() {
    let t = "an_acl_or_role_that_cannot_write_fails_ping_as_it_fails_logins_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") || !require_tool(t, "etcd") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let dir = system_tests::fleet::trusted_dir("wsacl");
    let (u, secret) = TestUser::enrolled("wsacl");
    let documented = documented_acl("pam_totp");
    let host_rules = documented.join(" ");
    let nocas: Vec<&str> = documented
        .iter()
        .map(String::as_str)
        .filter(|r| *r != "+fcall")
        .collect();
    let nocas = nocas.join(" ");
    for (user, keys, commands) in [
        ("host", "~ws*", host_rules.as_str()),
        ("readonly", "%R~ws*", host_rules.as_str()),
        ("nocas", "~ws*", nocas.as_str()),
    ] {
        server.add_acl_user(user, &format!("{keys} {commands}"));
    }
    // The store is initialised by its admin (here the default user, under the same
    // prefix): the function library and the store record are there.
    let as_user = |user: &str| {
        let admin = options(&server.url(false), "");
        init_store(&admin);
        format!(
            "{admin} redis_credentials={}",
            credentials(dir.path(), user)
        )
    };
    let keys = || String::from_utf8_lossy(&server.raw(None, &[b"KEYS", b"*"])).into_owned();

    let control = as_user("host");
    let (d, lines) = login(&control, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let (status, said) = ping(&control);
    assert_eq!(status, Some(0), "control: ping: {said}");

    for (what, user) in [
        ("a read-only key pattern", "readonly"),
        ("no FCALL and no EVAL", "nocas"),
    ] {
        let args = as_user(user);
        let (d, lines) = login(&args, &u, &secret);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{what}: {d:?} {lines:?}"
        );
        assert_eq!(
            lines_with(&lines, &["NOPERM"]).len(),
            1,
            "{what}: {lines:?}"
        );
        assert!(
            lines_with(&lines, &["invalid verification code"]).is_empty(),
            "{what}: {lines:?}"
        );
        let before = keys();
        let (status, said) = ping(&args);
        assert_eq!(status, Some(1), "{what}: ping: {said}");
        assert!(
            said.contains("the compare-and-set every login runs") && said.contains("NOPERM"),
            "{what}: ping: {said}"
        );
        assert_eq!(keys(), before, "{what}: ping wrote nothing");
    }

    let mut cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let prefix = format!("ws{}/", std::process::id());
    cluster.enable_auth("writer", "pw", &prefix);
    cluster.ctl(&["role", "add", "reader"]);
    cluster.ctl(&[
        "role",
        "grant-permission",
        "reader",
        "--prefix=true",
        "read",
        &prefix,
    ]);
    cluster.ctl(&["user", "add", "reader", "--new-user-password=pw"]);
    cluster.ctl(&["user", "grant-role", "reader", "reader"]);
    let etcd_as = |user: &str| {
        format!(
            "state={} etcd_plugin={} etcd_prefix={prefix} etcd_timeout=1000 \
             etcd_credentials={}",
            cluster.url(),
            system_tests::etcd::etcd_plugin().display(),
            credentials(dir.path(), user)
        )
    };
    let writer = etcd_as("writer");
    init_store(&writer);
    let (d, lines) = login(&writer, &u, &secret);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "etcd control: {d:?} {lines:?}"
    );
    let (status, said) = ping(&writer);
    assert_eq!(status, Some(0), "etcd control: ping: {said}");
    let reader = etcd_as("reader");
    let (d, lines) = login(&reader, &u, &secret);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "etcd, a read-only role: {d:?} {lines:?}"
    );
    assert_eq!(
        lines_with(&lines, &["permission denied"]).len(),
        1,
        "{lines:?}"
    );
    // Authentication on, no credentials: etcd's "user name is empty", with the option.
    let anonymous = writer.replace(
        &format!(
            "etcd_credentials={}",
            dir.path().join("writer.cred").display()
        ),
        "",
    );
    let (d, lines) = login(&anonymous, &u, &secret);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "etcd without credentials: {d:?} {lines:?}"
    );
    const NO_USER: &[&str] = &[
        "state store refused",
        "user name is empty",
        "etcd_credentials=",
    ];
    assert_eq!(lines_with(&lines, NO_USER).len(), 1, "{lines:?}");
    let (status, said) = ping(&anonymous);
    assert_eq!(status, Some(1), "etcd without credentials: ping: {said}");
    assert!(
        NO_USER[1..].iter().all(|n| said.contains(n)),
        "ping: {said}"
    );

    let before = cluster.ctl(&["get", "--prefix", &prefix, "--keys-only"]);
    let (status, said) = ping(&reader);
    assert_eq!(status, Some(1), "etcd, a read-only role: ping: {said}");
    assert!(
        said.contains("the compare-and-set every login runs") && said.contains("permission denied"),
        "{said}"
    );
    assert_eq!(
        cluster.ctl(&["get", "--prefix", &prefix, "--keys-only"]),
        before,
        "ping wrote nothing"
    );
}

/// Where the protected-mode server listens, inside a network namespace of the test's
/// own: an address (RFC 2544's benchmarking range) that is not 127.x, so Redis takes the
/// module's connection for one from another host.
const NOT_LOOPBACK: &str = "198.18.0.1";

/// `inner` run in a new network namespace where the loopback device also carries
/// [`NOT_LOOPBACK`] and a `redis-server` listens there (port 6379, in `dir`), in
/// protected mode or not; `init` (module options), when not empty, is given to
/// `totp-state init` first. The server is stopped when `inner` ends; the command exits
/// with `inner`'s status.
fn beside_a_server_elsewhere(
    dir: &std::path::Path,
    protected: bool,
    init: &str,
    inner: &Command,
) -> Command {
    const SCRIPT: &str = r#"set -e
ip link set lo up
ip addr add "$NOT_LOOPBACK/32" dev lo
redis-server --port 6379 --bind "$NOT_LOOPBACK" --protected-mode "$2" --save '' \
  --dir "$1" --logfile "$1/redis.log" &
server=$!
for _ in $(seq 200); do
  grep -q 'Ready to accept connections' "$1/redis.log" 2>/dev/null && break
  sleep 0.05
done
if [ -n "$3" ]; then "$4" init --never-used --options "$3" >/dev/null; fi
shift 4
set +e
"$@"
status=$?
kill "$server"
wait "$server"
exit "$status""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "sh", "-c", SCRIPT, "sh"])
        .arg(dir)
        .arg(if protected { "yes" } else { "no" })
        .arg(init)
        .arg(&system_tests::built().state_tool)
        .arg("env")
        .env("NOT_LOOPBACK", NOT_LOOPBACK);
    append_env_exec(&mut cmd, inner);
    cmd.stdin(Stdio::null());
    cmd
}

/// Redis in protected mode (no password, the client not on 127.x) refuses the
/// connection with one error line longer than any other reply line, then closes it. It
/// was read as "reply line too long", an outage, so `state_fallback=local` used the
/// local store; now the server's own words are logged as a refusal, the login is denied
/// and `ping` exits 1 with them. Control: the same server without protected mode logs
/// in. Each run has its own network namespace and server.
#[test]
fn a_server_in_protected_mode_is_refused_in_its_own_words_through_libpam() {
    let t = "a_server_in_protected_mode_is_refused_in_its_own_words_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") || !require_tool(t, "ip") {
        return;
    }
    let (u, secret) = TestUser::enrolled("wsprot");
    let args = options(
        &format!("redis://{NOT_LOOPBACK}:6379"),
        "state_fallback=local",
    );
    let run = |protected: bool, init: &str, inner: &Command| {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-protected")
            .tempdir()
            .expect("tempdir");
        with_syslog_capture(&beside_a_server_elsewhere(
            dir.path(),
            protected,
            init,
            inner,
        ))
    };
    let stack = Stack::probe("svc", &args);
    let driver = Driver::login(&stack, &u, &code_at(&secret, now())).rhost(PEER);

    let (out, lines) = run(false, &args, &driver.command());
    let d = Drive::ran(&out);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(lines_with(&lines, &[FALLBACK_USED]).is_empty(), "{lines:?}");

    const DENIED: &[&str] = &[
        "state store refused",
        "DENIED Redis is running in protected mode",
    ];
    let (out, lines) = run(true, "", &driver.command());
    let d = Drive::ran(&out);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {lines:?}"
    );
    assert_eq!(lines_with(&lines, DENIED).len(), 1, "{lines:?}");
    assert!(lines_with(&lines, &[FALLBACK_USED]).is_empty(), "{lines:?}");
    assert!(
        lines_with(&lines, &["invalid verification code"]).is_empty(),
        "{lines:?}"
    );

    let mut ping = Command::new(&system_tests::built().state_tool);
    ping.args(["ping", "--options", &args]);
    let (out, _) = run(true, "", &ping);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ping: {said}");
    assert!(DENIED[1..].iter().all(|n| said.contains(n)), "ping: {said}");
}

/// One host whose `redis_prefix=` differs from the fleet's (a typo) finds no store
/// record under it: its first login creates one, and it would keep a store of its own
/// (the fleet's replay marks not seen there) with nothing in the log but a code counted
/// as used. That login now logs the creation with what to check, and `ping` of the
/// host's options names the other prefix as one cause. Control: a host of the
/// initialised fleet logs in without that line; the typo'd host's next code logs in
/// (the store it created is a working store, which is why the line matters).
#[test]
fn a_host_whose_prefix_is_not_the_fleets_says_so_when_it_creates_a_store_through_libpam() {
    let t = "a_host_whose_prefix_is_not_the_fleets_says_so_when_it_creates_a_store_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    const CREATED: &[&str] = &["had no store record", "redis_prefix="];
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("wspfx");
    let fleet = options(&server.url(false), "");
    init_store(&fleet);
    let (d, lines) = login(&fleet, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(lines_with(&lines, CREATED).is_empty(), "control: {lines:?}");

    // The same server, another prefix: `options` gives every call its own.
    let typo = options(&server.url(false), "");
    let (status, said) = ping(&typo);
    assert_eq!(status, Some(1), "ping: {said}");
    assert!(
        said.contains("another server, prefix or database"),
        "ping: {said}"
    );
    let (d, lines) = login(&typo, &u, &secret);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the first login waits a code: {d:?} {lines:?}"
    );
    assert_eq!(lines_with(&lines, CREATED).len(), 1, "{lines:?}");
    // Past the window ahead of the moment of creation, which counts as used too.
    let next = now() + 90;
    let stack = Stack::probe("svc", &typo);
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, next), PEER, next);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(lines_with(&lines, CREATED).is_empty(), "once: {lines:?}");
}
