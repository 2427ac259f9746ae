//! The shared Redis state store through `RemoteStore` and the real plugin, against a real
//! `redis-server` each test starts on a random loopback port: exactly-once across
//! processes, failure modes (wrong password, paused or stopped server, TLS with the
//! wrong CA, corrupt records) and the root-only checks on plugin and credentials.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use system_tests::fleet::{RedisServer, ServerConfig, TestCa, documented_acl, plugin, trusted_dir};
use system_tests::require_root;
use totp_core::fleet::{ConnectionOptions, RedisEndpoint, RedisOptions};
use totp_core::state::{
    AnswerBound, EnrolmentId, Marks, Reset, StateStore, StoreError, Unbounded, UserState, Write,
};
use totp_os::remote::{RemoteSettings, RemoteStore, plugin_config};

fn options(url: &str) -> RedisOptions {
    RedisOptions {
        endpoint: RedisEndpoint::parse(url).expect("endpoint"),
        conn: ConnectionOptions {
            connect_timeout_ms: 300,
            command_timeout_ms: 300,
            prefix: "t:".into(),
            credentials: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            plugin: None,
        },
        wait_replicas: 0,
        wait_timeout_ms: 100,
        ttl_secs: 3600,
    }
}

fn open(opts: &RedisOptions) -> Result<RemoteStore, StoreError> {
    let config = plugin_config(opts)?;
    RemoteStore::open(plugin(), &config, RemoteSettings::for_options(opts, false))
}

const ENROLMENT: EnrolmentId = EnrolmentId(1);

fn mark(until: u64) -> UserState {
    UserState {
        extra: b"throttle".to_vec(),
        ..UserState::default()
    }
    .with_marks(ENROLMENT, totp_until(until))
}

fn totp_until(until: u64) -> Marks {
    Marks {
        totp_until: Some(until),
        ..Marks::default()
    }
}

fn until_of(s: &UserState) -> Option<u64> {
    s.marks_of(ENROLMENT).and_then(|m| m.totp_until)
}

/// A credentials file in a trusted directory, with `mode`.
fn credentials(dir: &Path, body: &str, mode: u32) -> String {
    let path = dir.join("redis.cred");
    fs::write(&path, body).expect("write credentials");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    path.display().to_string()
}

#[test]
fn records_written_through_the_store_read_back_and_reset() {
    if !require_root("records_written_through_the_store_read_back_and_reset") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let mut store = open(&options(&server.url(false))).expect("open");
    assert_eq!(store.read(1001).expect("read"), UserState::default());
    store
        .update(1001, &mut |_| Write::Lazy(mark(7)))
        .expect("update");
    assert_eq!(store.read(1001).expect("read"), mark(7));
    assert_eq!(store.read(1002).expect("read"), UserState::default());
    let mut seen = None;
    store
        .update(1001, &mut |cur| {
            seen = Some(cur.clone());
            Write::Nothing
        })
        .expect("update");
    assert_eq!(seen, Some(mark(7)));
    // A reset clears the throttling and keeps the mark (R34); nothing to reset creates
    // nothing.
    let done = store
        .reset(1001, system_tests::now(), false)
        .expect("reset");
    assert_eq!(done, Reset::Lifted { lowered: false });
    let kept = store.read(1001).expect("read");
    assert_eq!((kept.marks, kept.extra), (mark(7).marks, Vec::new()));
    let done = store
        .reset(1002, system_tests::now(), false)
        .expect("reset");
    assert_eq!(done, Reset::Absent);
    assert_eq!(store.read(1002).expect("read"), UserState::default());
}

#[test]
fn the_unix_socket_spelling_reaches_the_same_server() {
    if !require_root("the_unix_socket_spelling_reaches_the_same_server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let mut tcp = open(&options(&server.url(false))).expect("open tcp");
    tcp.update(5, &mut |_| Write::Durable(mark(9)))
        .expect("update");
    let url = format!("unix:{}", server.socket.display());
    let mut unix = open(&options(&url)).expect("open unix");
    assert_eq!(unix.read(5).expect("read"), mark(9));
}

#[test]
fn same_step_from_32_processes_is_consumed_exactly_once() {
    if !require_root("same_step_from_32_processes_is_consumed_exactly_once") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 3000;
    let url = server.url(false);
    let racers: Vec<_> = (0..32)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_fleet-race"))
                .args([
                    plugin().to_str().expect("utf-8 path"),
                    &url,
                    "race:",
                    "4242",
                    "58000000",
                    &start.to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn fleet-race")
        })
        .collect::<Vec<_>>();
    // Spawned one after another but each waits for the common start instant; collect.
    let outputs: Vec<String> = racers
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("run fleet-race");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let won = outputs.iter().filter(|o| o.trim() == "won").count();
    let lost = outputs.iter().filter(|o| o.trim() == "lost").count();
    assert_eq!((won, lost), (1, 31), "{outputs:?}");
}

#[test]
fn concurrent_updates_lose_no_write() {
    if !require_root("concurrent_updates_lose_no_write") {
        return;
    }
    // 8 threads, separate connections, 25 increments each: every conflict is retried.
    // An update that loses more rounds than a login may take (MAX_ROUNDS, the update
    // budget) gives up with "too many concurrent updates" and writes nothing, which a
    // loaded machine can make happen to a starved thread; what must never happen is a
    // write lost or applied twice: the count equals the updates that said done.
    let server = RedisServer::start(&ServerConfig::default());
    let url = server.url(false);
    let done = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            let url = url.clone();
            let done = &done;
            s.spawn(move || {
                let mut opts = options(&url);
                opts.conn.command_timeout_ms = 2000;
                let mut store = open(&opts).expect("open");
                for _ in 0..25 {
                    let r = store.update(77, &mut |cur| {
                        Write::Lazy(
                            cur.with_marks(ENROLMENT, totp_until(until_of(cur).unwrap_or(0) + 1)),
                        )
                    });
                    match r {
                        Ok(_) => {
                            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(StoreError::Unavailable(m)) if m.contains("too many concurrent") => {}
                        Err(e) => panic!("update: {e:?}"),
                    }
                }
            });
        }
    });
    let done = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(done >= 100, "most updates went through: {done} of 200");
    let mut store = open(&options(&url)).expect("open");
    assert_eq!(until_of(&store.read(77).expect("read")), Some(done));
}

/// Another connection's write of the user's record inside the first call of `decide`:
/// the update's compare-and-set then finds a conflict. Returns how often `decide` ran.
fn update_under_a_conflict(
    store: &mut RemoteStore,
    other: &mut RemoteStore,
    uid: u32,
    bound: &dyn AnswerBound,
) -> (u32, Result<(), StoreError>) {
    let mut calls = 0;
    let r = store.update_within(uid, bound, &mut |cur| {
        calls += 1;
        if calls == 1 {
            other
                .update(uid, &mut |_| Write::Lazy(mark(5)))
                .expect("the other connection's write");
        }
        Write::Lazy(cur.with_marks(ENROLMENT, totp_until(until_of(cur).unwrap_or(0) + 1)))
    });
    (calls, r)
}

/// An answer's bound that is spent; counts how often it was asked.
struct Spent(std::cell::Cell<u32>);

impl AnswerBound for Spent {
    fn fits(&self) -> bool {
        self.0.set(self.0.get() + 1);
        false
    }
}

#[test]
fn an_updates_retries_stop_once_the_answers_bound_is_spent() {
    if !require_root("an_updates_retries_stop_once_the_answers_bound_is_spent") {
        return;
    }
    // A login's update takes its answer's bound (`StateStore::update_within`, R36): a
    // conflict is retried only while that bound fits, not only within the update's own.
    let server = RedisServer::start(&ServerConfig::default());
    let opts = options(&server.url(false));
    let mut store = open(&opts).expect("open");
    let mut other = open(&opts).expect("open");

    // Control: with only the update's own bound, the conflict is read again and the
    // decision retried on the other's record.
    let (calls, r) = update_under_a_conflict(&mut store, &mut other, 41, &Unbounded);
    r.expect("retried and written");
    assert_eq!(calls, 2, "the conflict happened and was retried");
    assert_eq!(until_of(&store.read(41).expect("read")), Some(6));

    // The fault: the answer's bound is spent; no retry starts after the conflict.
    let spent = Spent(std::cell::Cell::new(0));
    let (calls, r) = update_under_a_conflict(&mut store, &mut other, 42, &spent);
    let e = r.expect_err("not retried");
    assert_eq!(calls, 1, "one decision, no retry");
    assert_eq!(spent.0.get(), 1, "the bound was asked after the conflict");
    assert!(
        matches!(&e, StoreError::Unavailable(m) if m.contains("too many concurrent")),
        "{e:?}"
    );
    assert_eq!(
        until_of(&store.read(42).expect("read")),
        Some(5),
        "only the other connection's write"
    );
}

#[test]
fn records_expire_with_the_ttl_except_hotp_counters() {
    if !require_root("records_expire_with_the_ttl_except_hotp_counters") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let mut store = open(&options(&server.url(false))).expect("open");
    store
        .update(1, &mut |_| Write::Lazy(mark(1)))
        .expect("update");
    let ttl = server.raw(None, &[b"TTL", b"t:uid:1"]);
    let ttl: i64 = String::from_utf8_lossy(&ttl[1..])
        .trim()
        .parse()
        .expect("TTL reply");
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
    store
        .update(1, &mut |cur| {
            Write::Durable(cur.with_marks(
                ENROLMENT,
                Marks {
                    hotp: Some(12),
                    ..Marks::default()
                },
            ))
        })
        .expect("update");
    assert_eq!(server.raw(None, &[b"TTL", b"t:uid:1"]), b":-1\r\n");
}

#[test]
fn the_prefix_separates_fleets_on_one_server() {
    if !require_root("the_prefix_separates_fleets_on_one_server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let mut a = open(&options(&server.url(false))).expect("open");
    let mut other = options(&server.url(false));
    other.conn.prefix = "fleet2:".into();
    let mut b = open(&other).expect("open");
    a.update(3, &mut |_| Write::Lazy(mark(3))).expect("update");
    assert_eq!(b.read(3).expect("read"), UserState::default());
    assert_eq!(server.raw(None, &[b"EXISTS", b"t:uid:3"]), b":1\r\n");
}

#[test]
fn a_corrupt_record_is_refused_never_reset() {
    if !require_root("a_corrupt_record_is_refused_never_reset") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let mut store = open(&options(&server.url(false))).expect("open");
    for plant in [
        &[&b"HSET"[..], b"t:uid:9", b"v", b"1", b"r", b"\x07garbage"][..],
        &[b"HSET", b"t:uid:10", b"v", b"x", b"r", b""],
        &[b"HSET", b"t:uid:11", b"r", b"\x01\x00"],
        &[b"SET", b"t:uid:12", b"a string"],
    ] {
        server.raw(None, plant);
        let uid: u32 = String::from_utf8_lossy(&plant[1][6..])
            .parse()
            .expect("uid");
        let err = store
            .update(uid, &mut |_| Write::Lazy(mark(1)))
            .expect_err("corrupt record accepted");
        assert!(matches!(err, StoreError::Corrupt(_)), "{uid}: {err}");
        // The admin's reset removes it: nothing in it can be read, so nothing kept.
        let done = store.reset(uid, system_tests::now(), false).expect("reset");
        assert!(matches!(done, Reset::Removed(_)), "{uid}: {done:?}");
        assert_eq!(store.read(uid).expect("read"), UserState::default());
    }
}

#[test]
fn a_wrong_password_is_refused() {
    if !require_root("a_wrong_password_is_refused") {
        return;
    }
    let server = RedisServer::start(&ServerConfig {
        acl_password: Some("right horse battery"),
        ..ServerConfig::default()
    });
    let dir = trusted_dir("cred");
    let mut opts = options(&server.url(false));
    opts.conn.credentials = Some(credentials(
        dir.path(),
        "username=fleet\npassword=right horse battery\n",
        0o600,
    ));
    let mut store = open(&opts).expect("right password");
    store
        .update(1, &mut |_| Write::Lazy(mark(1)))
        .expect("update");

    opts.conn.credentials = Some(credentials(
        dir.path(),
        "username=fleet\npassword=wrong\n",
        0o600,
    ));
    let err = open(&opts).err().expect("wrong password accepted");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");

    opts.conn.credentials = None;
    let err = open(&opts).err().expect("no password accepted");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
}

#[test]
fn a_credentials_file_others_can_read_is_refused() {
    if !require_root("a_credentials_file_others_can_read_is_refused") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let dir = trusted_dir("cred");
    let mut opts = options(&server.url(false));
    for mode in [0o640, 0o604, 0o644] {
        opts.conn.credentials = Some(credentials(dir.path(), "password=x\n", mode));
        let err = open(&opts).err().expect("readable credentials accepted");
        assert!(err.to_string().contains("credentials file"), "{err}");
    }
    // Owned by someone other than root.
    opts.conn.credentials = Some(credentials(dir.path(), "password=x\n", 0o600));
    std::os::unix::fs::chown(
        opts.conn.credentials.as_deref().expect("path"),
        Some(65534),
        None,
    )
    .expect("chown");
    assert!(open(&opts).is_err());
}

#[test]
fn a_plugin_others_could_replace_is_never_loaded() {
    if !require_root("a_plugin_others_could_replace_is_never_loaded") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let opts = options(&server.url(false));
    let config = plugin_config(&opts).expect("config");
    let settings = RemoteSettings::for_options(&opts, false);
    // In a world-writable directory.
    let open_dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(open_dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let copy = open_dir.path().join("redis.so");
    fs::copy(plugin(), &copy).expect("copy");
    let err = RemoteStore::open(&copy, &config, settings.clone()).err();
    assert!(matches!(err, Some(StoreError::Refused(_))), "{err:?}");
    // Group-writable file in a trusted directory.
    let dir = trusted_dir("plugin-bad");
    let copy = dir.path().join("redis.so");
    fs::copy(plugin(), &copy).expect("copy");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o775)).expect("chmod");
    assert!(RemoteStore::open(&copy, &config, settings.clone()).is_err());
    // Owned by another user.
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&copy, Some(65534), None).expect("chown");
    assert!(RemoteStore::open(&copy, &config, settings).is_err());
}

#[test]
fn a_paused_server_gives_an_error_within_the_bounded_time() {
    if !require_root("a_paused_server_gives_an_error_within_the_bounded_time") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let opts = options(&server.url(false));
    let mut store = open(&opts).expect("open");
    server.pause();
    let started = Instant::now();
    let err = store
        .update(1, &mut |_| Write::Durable(mark(1)))
        .expect_err("paused server accepted a write");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    // The configured bound (300 ms) is what ended the wait.
    assert!(err.to_string().contains("within 300 ms"), "{err}");
    // A new connection: the kernel completes the handshake, the server never answers.
    let err = open(&opts).err().expect("paused server opened");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("within 300 ms"), "{err}");
    // Not a performance goal: a hang guard.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    server.resume();
    assert_eq!(
        open(&opts).expect("resumed").read(1).expect("read"),
        UserState::default()
    );
}

#[test]
fn a_stopped_server_is_unavailable() {
    if !require_root("a_stopped_server_is_unavailable") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let opts = options(&server.url(false));
    let mut store = open(&opts).expect("open");
    server.stop();
    let err = store.read(1).expect_err("read from a stopped server");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let err = open(&opts).err().expect("opened a stopped server");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

#[test]
fn tls_is_verified_against_the_configured_ca() {
    if !require_root("tls_is_verified_against_the_configured_ca")
        || !system_tests::require_tool("tls", "openssl")
    {
        return;
    }
    let ca = TestCa::new("right");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let mut opts = options(&server.url(true));
    opts.conn.connect_timeout_ms = 2000;
    opts.conn.ca_file = Some(ca.ca_cert.display().to_string());
    let mut store = open(&opts).expect("TLS with the right CA");
    store
        .update(1, &mut |_| Write::Durable(mark(5)))
        .expect("update");
    assert_eq!(store.read(1).expect("read"), mark(5));

    let wrong = TestCa::new("wrong");
    opts.conn.ca_file = Some(wrong.ca_cert.display().to_string());
    let err = open(&opts).err().expect("TLS with the wrong CA accepted");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );

    // Plain RESP to a TLS port is no way around it either.
    let plain = options(&server.url(false));
    assert!(open(&plain).is_err());

    // A TLS server that accepts and then stalls: the handshake never completes.
    opts.conn.ca_file = Some(ca.ca_cert.display().to_string());
    opts.conn.connect_timeout_ms = 300;
    server.pause();
    let started = Instant::now();
    let err = open(&opts).err().expect("paused TLS server opened");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    // The connect bound (300 ms) is what ended the handshake.
    assert!(
        err.to_string()
            .contains("TLS handshake not finished within 300 ms"),
        "{err}"
    );
    // Hang guard, not a performance goal.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    server.resume();
}

#[test]
fn wait_for_missing_replicas_refuses_a_durable_write_only() {
    if !require_root("wait_for_missing_replicas_refuses_a_durable_write_only") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let mut opts = options(&server.url(false));
    opts.wait_replicas = 1;
    let mut store = open(&opts).expect("open");
    // Throttling alone moves no replay mark: no replica needed.
    let throttle_only = UserState {
        extra: b"throttle".to_vec(),
        ..UserState::default()
    };
    store
        .update(1, &mut |_| Write::Lazy(throttle_only.clone()))
        .expect("a write that moves no mark needs no replica");
    // A mark moved, lazily (a login's right code) or durably: both wait (R34).
    for write in [Write::Lazy(mark(1)), Write::Durable(mark(2))] {
        let err = store
            .update(1, &mut |_| write.clone())
            .expect_err("a moved mark without a replica");
        assert!(matches!(err, StoreError::Refused(_)), "{err}");
    }
}

#[test]
fn the_minimal_acls_of_docs_fleet_md_are_enough() {
    if !require_root("the_minimal_acls_of_docs_fleet_md_are_enough") {
        return;
    }
    // The rule lists after "user NAME on >PASSWORD", with the test's prefix.
    let rules_of = |user: &str| format!("~t:* {}", documented_acl(user).join(" "));
    let server = RedisServer::start(&ServerConfig::default());
    for (user, rules) in [
        ("host", rules_of("pam_totp")),
        ("admin", rules_of("pam_totp_admin")),
    ] {
        server.add_acl_user(user, &rules);
    }
    let as_user = |user: &str| {
        let dir = trusted_dir("cred");
        let mut opts = options(&format!("{}/3", server.url(false)));
        opts.wait_replicas = 0;
        opts.conn.credentials = Some(credentials(
            dir.path(),
            &format!("username={user}\npassword=pw\n"),
            0o600,
        ));
        (opts, dir)
    };
    // The admin installs the function library (what `totp-state init` does).
    let (admin, _a) = as_user("admin");
    let mut config = plugin_config(&admin).expect("config");
    config.install_functions = true;
    RemoteStore::open(
        plugin(),
        &config,
        RemoteSettings::for_options(&admin, false),
    )
    .expect("open as the admin, installing the library");
    // The host records and reads.
    let (mut host, _h) = as_user("host");
    let mut store = open(&host).expect("open with the hosts' ACL");
    store
        .update(1, &mut |_| Write::Durable(mark(1)))
        .expect("update");
    assert_eq!(store.read(1).expect("read"), mark(1));
    // A reset of a readable record is a login's compare-and-set: the hosts' ACL allows
    // it as it allows any write of a record; the admin's too.
    let now = system_tests::now();
    let done = store
        .reset(1, now, false)
        .expect("a reset through the hosts' ACL");
    assert_eq!(done, Reset::Lifted { lowered: false });
    let done = open(&admin)
        .expect("open")
        .reset(1, now, false)
        .expect("reset");
    assert_eq!(done, Reset::Lifted { lowered: false });
    assert_eq!(store.read(1).expect("read").marks, mark(1).marks);
    // Keys outside the prefix stay out of reach.
    host.conn.prefix = "other:".into();
    let mut outside = open(&host).expect("open");
    let err = outside.read(1).expect_err("read outside the prefix");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
}
