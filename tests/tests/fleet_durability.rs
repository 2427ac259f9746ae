//! "Used" never rolls back through the shared store's faults (R34, issue 21), through
//! the real libpam against real `redis-server` processes: every login that uses a code
//! waits for `redis_wait=` replicas, a store that lost its data set counts every earlier
//! step as used, a server that may evict records is refused, and `totp-state ping` /
//! `init` tell a monitoring system and a new fleet's admin where the store stands.

use system_tests::fleet::{RedisServer, ServerConfig, after_recreation, init_store, plugin};
use system_tests::*;

fn args(server: &RedisServer, prefix: &str, extra: &str) -> String {
    server.options(&format!(
        "redis_prefix={prefix}: redis_timeout=2000 {extra}"
    ))
}

fn redis_reply(server: &RedisServer, args: &[&[u8]]) -> String {
    String::from_utf8_lossy(&server.raw(None, args)).into_owned()
}

#[test]
fn redis_wait_holds_for_every_login_that_uses_a_code() {
    if !require_root("redis_wait_holds_for_every_login_that_uses_a_code") {
        return;
    }
    let primary = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("dw");
    // (init itself waits for the replica it is told about: initialised without.)
    init_store(&args(&primary, "dw", ""));
    let a = args(&primary, "dw", "redis_wait=1 redis_wait_timeout=300");
    let host = Stack::probe("svc", &a);
    // No replica: a right code (a lazy write locally) must still wait, and is denied.
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("0 of 1 replicas")),
        "{logs:?}"
    );
    // Control: with a replica attached, the next code logs in.
    let replica = primary.replica();
    // A timeout that a healthy loopback replica always meets.
    let host = Stack::probe(
        "svc",
        &args(&primary, "dw", "redis_wait=1 redis_wait_timeout=5000"),
    );
    // The denied login's mark stayed written on the primary: with the replica
    // acknowledging now, its code is still refused (fleet.md's fault table).
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0 + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("code already used")),
        "{logs:?}"
    );
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // The replica holds the mark: what a failover would promote.
    let record = format!("dw:user:{}", u.name);
    assert_eq!(
        redis_reply(&replica, &[b"EXISTS", record.as_bytes()]),
        ":1\r\n"
    );
}

#[test]
fn a_store_that_lost_its_data_never_reopens_a_used_code() {
    if !require_root("a_store_that_lost_its_data_never_reopens_a_used_code") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("dl");
    let a = args(&server, "dl", "");
    // A store never used: ping says so (exit 1), init makes it usable (exit 0).
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(1), "{p:?}");
    assert!(String::from_utf8_lossy(&p.stderr).contains("no store record"));
    init_store(&a);
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    // A second init only (re)installs the function library: the store record stays.
    let again = state_tool(&["init", "--options", &a]);
    assert!(again.status.success(), "init twice: {again:?}");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already initialised"),
        "{again:?}"
    );
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        !String::from_utf8_lossy(&p.stdout).contains("recreated"),
        "{p:?}"
    );

    let hosts: Vec<Stack> = (0..2).map(|_| Stack::probe("svc", &a)).collect();
    // The real time: the server's clock, which a recreating host must agree with
    // within a day.
    let t = now();
    let code = code_at(&secret, t);
    assert_eq!(
        login_logged(&hosts[0], &u, &code, PEER, t).0.returned(),
        Returned::Success
    );
    // The data set is lost (a restart without persistence, a failover to a replica
    // that missed everything, FLUSHALL): shown gone, record and store record alike.
    assert!(redis_reply(&server, &[b"FLUSHALL"]).starts_with("+OK"));
    assert_eq!(redis_reply(&server, &[b"DBSIZE"]), ":0\r\n");
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(
        p.status.code(),
        Some(1),
        "a lost data set is reported: {p:?}"
    );
    // The used code on another host: refused although no record says it was used.
    let (d, logs) = login_logged(&hosts[1], &u, &code, PEER, t + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        String::from_utf8_lossy(&p.stdout).contains("recreated at"),
        "{p:?}"
    );
    // The window reaches one step ahead of the recreation; the step after works.
    let later = after_recreation(t + 5);
    let (d, logs) = login_logged(&hosts[1], &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// An admin who finds the store empty after a restart and runs the `totp-state init` a
/// new fleet runs, not knowing the data set was lost: before, a plain init recorded the
/// store as complete since the beginning, and a code accepted before the loss logged in
/// again on another host. Now init counts every step up to now as used, as a login that
/// finds the record missing does, so the code stays refused and the next one logs in;
/// only `--never-used` records a store as complete since the beginning (control: on a
/// new store the current code logs in at once).
#[test]
fn a_plain_init_after_a_loss_reopens_no_code() {
    if !require_root("a_plain_init_after_a_loss_reopens_no_code") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("di");
    let a = args(&server, "di", "");
    init_store(&a);
    let hosts: Vec<Stack> = (0..2).map(|_| Stack::probe("svc", &a)).collect();
    let t = now();
    let code = code_at(&secret, t);
    let (d, logs) = login_logged(&hosts[0], &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");

    assert!(redis_reply(&server, &[b"FLUSHALL"]).starts_with("+OK"));
    let init = state_tool(&["init", "--options", &a]);
    assert!(init.status.success(), "{init:?}");
    assert!(
        String::from_utf8_lossy(&init.stdout).contains("count as used"),
        "{init:?}"
    );
    let (d, logs) = login_logged(&hosts[1], &u, &code, PEER, t + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the code used before the loss: {d:?} {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "refused as used before the loss: {logs:?}"
    );
    let later = after_recreation(now());
    let (d, logs) = login_logged(&hosts[1], &u, &code_at(&secret, later), PEER, later);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the next code: {d:?} {logs:?}"
    );

    // Control: --never-used on a store that never served a login waits for nothing.
    let (v, secret_v) = TestUser::enrolled("dv");
    let fresh = args(&server, "dv", "");
    init_store(&fresh);
    let host = Stack::probe("svc", &fresh);
    let t = now();
    let (d, logs) = login_logged(&host, &v, &code_at(&secret_v, t), PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

#[test]
fn a_new_store_without_init_makes_its_first_login_wait_one_code() {
    if !require_root("a_new_store_without_init_makes_its_first_login_wait_one_code") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("dn");
    let host = Stack::probe("svc", &args(&server, "dn", ""));
    // The module cannot tell a new store from one that lost its data. The real time:
    // a host more than a day off the server's clock would not create it at all.
    let t = now();
    let (d, _) = login_logged(&host, &u, &code_at(&secret, t), PEER, t);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    let later = after_recreation(t);
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

#[test]
fn a_server_that_may_evict_records_is_refused() {
    if !require_root("a_server_that_may_evict_records_is_refused") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("de");
    let a = args(&server, "de", "");
    init_store(&a);
    let host = Stack::probe("svc", &a);
    let set = |k: &[u8], v: &[u8]| {
        assert!(redis_reply(&server, &[b"CONFIG", b"SET", k, v]).starts_with("+OK"));
    };
    // An eviction policy with a memory limit: denied, and the log says how to fix it.
    set(b"maxmemory", b"1gb");
    for policy in [&b"allkeys-lru"[..], b"volatile-ttl"] {
        set(b"maxmemory-policy", policy);
        let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.contains("maxmemory-policy") && l.contains("noeviction")),
            "{logs:?}"
        );
    }
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(1), "{p:?}");
    // Control: noeviction (or no limit) logs in.
    set(b"maxmemory-policy", b"noeviction");
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

#[test]
fn ping_reports_an_unreachable_store_with_its_own_status() {
    if !require_root("ping_reports_an_unreachable_store_with_its_own_status") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "dp", "redis_connect_timeout=300");
    init_store(&a);
    assert_eq!(
        state_tool(&["ping", "--options", &a]).status.code(),
        Some(0)
    );
    server.stop();
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(2), "{p:?}");
}

/// A server behind a `unix:` socket that shut down cleanly has removed its socket: that
/// is a stopped server, not a refusal. `ping` says "not reachable" (2) and a login is
/// denied with the store logged as unavailable. Control: the same options while the
/// server runs, 0 and a login.
#[test]
fn a_removed_unix_socket_is_an_unreachable_store() {
    if !require_root("a_removed_unix_socket_is_an_unreachable_store") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let a = format!(
        "state=unix:{} redis_plugin={} redis_prefix=ds: redis_timeout=2000",
        server.socket.display(),
        plugin().display()
    );
    init_store(&a);
    let (u, secret) = TestUser::enrolled("ds");
    let host = Stack::probe("svc", &a);
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "control: {p:?}");
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");

    server.stop();
    std::fs::remove_file(&server.socket).expect("remove the socket, as a clean shutdown does");
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(2), "{p:?}");
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert!(
        !matches!(d.returned(), Returned::Success | Returned::Ignore),
        "{d:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("unavailable") && l.contains("is the server running?")),
        "{logs:?}"
    );
}
