//! "Used" never rolls back when Redis rolls back part of its data set (R34), through the
//! real libpam against a real `redis-server`: a server killed between two RDB snapshots
//! reloads the last one, which holds the store record and older user records. The store
//! record is bound to the server instance (docs/fleet.md, "A lost data set never reopens
//! a code"), so a restart reads it as stale and the floor is raised; a store record of the
//! previous release (not bound) is kept and bound, not taken for a lost one.

use system_tests::fleet::{RedisServer, ServerConfig, after_recreation, init_store};
use system_tests::*;

fn args(server: &RedisServer, prefix: &str) -> String {
    server.options(&format!("redis_prefix={prefix}: redis_timeout=2000"))
}

fn reply(server: &RedisServer, args: &[&[u8]]) -> String {
    String::from_utf8_lossy(&server.raw(None, args)).into_owned()
}

/// The value of `field` in the server's `INFO`.
fn info(server: &RedisServer, field: &str) -> String {
    let text = reply(server, &[b"INFO"]);
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("INFO has no {field}: {text}"))
}

/// The version (`v`) of the hash `key`, as an admin connection reads it.
fn version(server: &RedisServer, key: &str) -> String {
    reply(server, &[b"HGET", key.as_bytes(), b"v"])
}

/// The store key inside the store record under `key` (its last 32 bytes: `PTK1`, the
/// floor, the key), as an admin connection reads it.
fn store_key(server: &RedisServer, key: &str) -> Vec<u8> {
    let raw = server.raw(None, &[b"HGET", key.as_bytes(), b"r"]);
    let body = raw.strip_suffix(b"\r\n").expect("a bulk reply");
    assert!(body.len() > 32, "{raw:?}");
    body[body.len() - 32..].to_vec()
}

fn refused(d: &Drive) {
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
}

#[test]
fn a_server_that_reloads_an_older_snapshot_never_reopens_a_used_code() {
    if !require_root("a_server_that_reloads_an_older_snapshot_never_reopens_a_used_code") {
        return;
    }
    // RDB only (no AOF), as with the stock `save` schedule: what a kill -9 leaves is the
    // last snapshot.
    let mut server = RedisServer::start(&ServerConfig::default());
    assert_eq!(info(&server, "aof_enabled"), "0");
    let (u, secret) = TestUser::enrolled("rb");
    let a = args(&server, "rb");
    init_store(&a);
    let hosts: Vec<Stack> = (0..3).map(|_| Stack::probe("svc", &a)).collect();
    let record = format!("rb:user:{}", u.name);
    // The real time: the server's clock, which a recreating host must agree with.
    let t = now();
    let (d, logs) = login_logged(&hosts[0], &u, &code_at(&secret, t), PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(reply(&server, &[b"SAVE"]).starts_with("+OK"));
    let saved = version(&server, &record);

    // Control, without a restart: another host takes the next step's code.
    let (d, logs) = login_logged(&hosts[2], &u, &code_at(&secret, t + 30), PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // The code the rollback would reopen, accepted on host 1 after the snapshot.
    let code = code_at(&secret, t + 60);
    let (d, logs) = login_logged(&hosts[1], &u, &code, PEER, t + 60);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert_ne!(version(&server, &record), saved);

    let key_before = store_key(&server, "rb:store");
    // kill -9 and start again on the same port and directory: the snapshot is loaded.
    let before = info(&server, "process_id");
    server.restart();
    assert_ne!(info(&server, "process_id"), before, "a new process");
    assert_eq!(
        version(&server, &record),
        saved,
        "the user's record is the snapshot's: the fault happened"
    );
    assert!(reply(&server, &[b"EXISTS", b"rb:store"]).contains(":1"));
    // The store record of the earlier instance is no store record: ping says so.
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(1), "{p:?}");

    // The same code on host 2: refused by the floor, the log naming the store loss.
    let (d, logs) = login_logged(&hosts[2], &u, &code, PEER, t + 65);
    refused(&d);
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    // The login that recreated it ran at t + 65, ahead of this clock by more than the
    // slack: until the clock is near, ping says no code is accepted before the floor.
    let p = state_tool(&["ping", "--options", &a]);
    if now() + 60 < t + 65 {
        assert_eq!(p.status.code(), Some(1), "{p:?}");
        assert!(
            String::from_utf8_lossy(&p.stderr).contains("no code is accepted before it"),
            "{p:?}"
        );
    }
    while now() + 50 < t + 65 {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        String::from_utf8_lossy(&p.stdout).contains("recreated at"),
        "{p:?}"
    );
    // The floor was raised, the store key kept: the users' surviving records (HOTP
    // counters, used scratch codes) still match their enrolments (R35).
    assert_eq!(store_key(&server, "rb:store"), key_before);
    // Host 1, which accepted it, refuses it too, without another recreation.
    let store = version(&server, "rb:store");
    let (d, _) = login_logged(&hosts[1], &u, &code, PEER, t + 66);
    refused(&d);
    assert_eq!(version(&server, "rb:store"), store, "one recreation");
    // Control: a later code logs in.
    let later = after_recreation(t + 66);
    let (d, logs) = login_logged(&hosts[0], &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// An upgrade: the previous release wrote the store record without binding it (no `i`
/// field). It is the store's record all the same: kept (no floor raised, the current
/// code logs in) and bound to the server instance on its first read.
#[test]
fn a_store_record_of_the_previous_release_is_kept_and_bound() {
    if !require_root("a_store_record_of_the_previous_release_is_kept_and_bound") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("ru");
    let a = args(&server, "ru");
    init_store(&a);
    let store_before = reply(&server, &[b"HMGET", b"ru:store", b"v", b"r"]);
    assert!(reply(&server, &[b"HDEL", b"ru:store", b"i"]).starts_with(":1"));
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        !String::from_utf8_lossy(&p.stdout).contains("recreated"),
        "{p:?}"
    );
    let bound = reply(&server, &[b"HGET", b"ru:store", b"i"]);
    let instance = format!(
        "{}/{}",
        info(&server, "master_replid"),
        info(&server, "run_id")
    );
    assert!(bound.contains(&instance), "{bound} {instance}");
    assert_eq!(
        reply(&server, &[b"HMGET", b"ru:store", b"v", b"r"]),
        store_before,
        "the record itself is unchanged"
    );
    // Unbound again (another host of the previous release could not have bound it):
    // a login keeps it too, and the current code logs in at once.
    assert!(reply(&server, &[b"HDEL", b"ru:store", b"i"]).starts_with(":1"));
    let host = Stack::probe("svc", &a);
    let t = now();
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, t), PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("lost its data")),
        "{logs:?}"
    );
    assert!(reply(&server, &[b"HGET", b"ru:store", b"i"]).contains(&instance));
}

/// Hosts that find the stale store record at once agree on one: sixteen logins over
/// four hosts after the restart are all denied by the floor (none for a store error),
/// the store key survives them, and a later code is accepted exactly once.
#[test]
fn hosts_racing_to_recreate_a_restarted_servers_store_record_agree_on_one() {
    if !require_root("hosts_racing_to_recreate_a_restarted_servers_store_record_agree_on_one") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("rr");
    let a = server.options("redis_prefix=rr: redis_timeout=3000 throttle_after=100");
    init_store(&a);
    let hosts: Vec<Stack> = (0..4).map(|_| Stack::probe("svc", &a)).collect();
    let t = now();
    let (d, logs) = login_logged(&hosts[0], &u, &code_at(&secret, t), PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(reply(&server, &[b"SAVE"]).starts_with("+OK"));
    let key_before = store_key(&server, "rr:store");
    server.restart();
    // Started together; their reads and writes overlap on the store.
    let race = |at: u64| {
        let code = code_at(&secret, at);
        let drivers = (0..16)
            .map(|i| Driver::login(&hosts[i % 4], &u, &code).at(at))
            .collect();
        spawn_all(drivers)
    };
    let results = race(t + 60);
    assert!(
        results
            .iter()
            .all(|d| d.returned() == Returned::Failed("PAM_AUTH_ERR".into())),
        "{results:?}"
    );
    assert_eq!(store_key(&server, "rr:store"), key_before);
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    // Sixteen failures lock the user out (the per-user ceiling): cleared by hand; the
    // store record is kept.
    let r = state_tool(&["reset", "--user", &u.name, "--options", &a]);
    assert!(r.status.success(), "{r:?}");
    assert_eq!(store_key(&server, "rr:store"), key_before);
    // One later code over all hosts: accepted exactly once.
    let results = race(after_recreation(t + 60));
    let ok = results
        .iter()
        .filter(|d| d.returned() == Returned::Success)
        .count();
    assert_eq!(ok, 1, "{results:?}");
}

/// `totp-state init --never-used` on a store record of another instance: that store has
/// served logins, so it is recorded complete since the server's clock, not since the
/// beginning, and its store key is kept.
#[test]
fn init_never_used_on_a_stale_store_record_still_raises_the_floor() {
    if !require_root("init_never_used_on_a_stale_store_record_still_raises_the_floor") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "rn");
    init_store(&a);
    let p = state_tool(&["ping", "--options", &a]);
    assert!(
        !String::from_utf8_lossy(&p.stdout).contains("recreated"),
        "{p:?}"
    );
    assert!(reply(&server, &[b"SAVE"]).starts_with("+OK"));
    let key_before = store_key(&server, "rn:store");
    server.restart();
    let out = state_tool(&["init", "--never-used", "--options", &a]);
    assert!(out.status.success(), "{out:?}");
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        String::from_utf8_lossy(&p.stdout).contains("recreated at"),
        "{p:?}"
    );
    assert_eq!(store_key(&server, "rn:store"), key_before);
}

/// A primary failed over away and back without a restart: its run ID stays, but while
/// it was a replica its data set was replaced by the other primary's, dropping a code
/// it had accepted meanwhile (a split brain). Its new replication ID names a
/// predecessor (`master_replid2`), which makes the store record stale: the code stays
/// refused.
#[test]
fn a_primary_that_was_a_replica_in_between_never_reopens_a_used_code() {
    if !require_root("a_primary_that_was_a_replica_in_between_never_reopens_a_used_code") {
        return;
    }
    let primary = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("rf");
    let a = args(&primary, "rf");
    init_store(&a);
    let hosts: Vec<Stack> = (0..3).map(|_| Stack::probe("svc", &a)).collect();
    let record = format!("rf:user:{}", u.name);
    let t = now();
    let (d, logs) = login_logged(&hosts[0], &u, &code_at(&secret, t), PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let other = primary.replica();
    let synced = version(&primary, &record);
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("the replica has the record", &|| {
        version(&other, &record) == synced
    });
    // The other server is promoted while the primary still takes writes.
    assert!(reply(&other, &[b"REPLICAOF", b"NO", b"ONE"]).starts_with("+OK"));
    let code = code_at(&secret, t + 30);
    let (d, logs) = login_logged(&hosts[1], &u, &code, PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert_ne!(version(&primary, &record), synced);
    // The primary rejoins as the other's replica (its own write dropped), then is
    // promoted again: the same process.
    let pid = info(&primary, "process_id");
    let port = other.port.to_string();
    assert!(reply(&primary, &[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]).starts_with("+OK"));
    wait_for("the primary resynced as a replica", &|| {
        let r = reply(&primary, &[b"INFO", b"replication"]);
        r.contains("master_link_status:up") && r.contains("master_sync_in_progress:0")
    });
    assert!(reply(&primary, &[b"REPLICAOF", b"NO", b"ONE"]).starts_with("+OK"));
    assert_eq!(info(&primary, "process_id"), pid, "no restart");
    assert_eq!(
        version(&primary, &record),
        synced,
        "the user's record is the other server's: the fault happened"
    );
    let (d, logs) = login_logged(&hosts[2], &u, &code, PEER, t + 35);
    refused(&d);
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    // Control: a later code logs in.
    let later = after_recreation(t + 35);
    let (d, logs) = login_logged(&hosts[0], &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}
