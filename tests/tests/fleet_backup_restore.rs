//! Restoring a Redis backup into a running server, key by key (`DUMP` then `RESTORE …
//! REPLACE`, as key-copying tools and `--pipe` imports do), through the real libpam
//! against a real `redis-server` (docs/fleet.md, "Restoring a backup"): the server is
//! the same instance, so the store record comes back bound to it and nothing can tell
//! the restored data set from the live one; a code used since the backup logs in again
//! on another host (the control, which shows the restore happened). Deleting
//! `PREFIX store` after such a restore, the documented step, makes the next login
//! recreate it complete since then: the code is refused and a later one logs in.
//! (A restart on the backup's `dump.rdb` is a new instance and needs no step:
//! `fleet_rollback.rs`.)

use system_tests::fleet::{RedisServer, ServerConfig, after_recreation, init_store};
use system_tests::*;

/// The payload of a RESP bulk reply.
fn bulk(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    let (head, _) = text.split_once("\r\n").expect("a bulk reply");
    let n: usize = head
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a bulk reply: {text}"));
    let start = head.len() + 2;
    assert!(reply.len() >= start + n, "a whole reply: {text}");
    reply[start..start + n].to_vec()
}

/// `DUMP` of every key in `keys`: the backup.
fn backup(server: &RedisServer, keys: &[&str]) -> Vec<(String, Vec<u8>)> {
    keys.iter()
        .map(|k| {
            (
                (*k).to_owned(),
                bulk(&server.raw(None, &[b"DUMP", k.as_bytes()])),
            )
        })
        .collect()
}

/// `RESTORE key 0 payload REPLACE` of every key of the backup.
fn restore(server: &RedisServer, dump: &[(String, Vec<u8>)]) {
    for (k, payload) in dump {
        let r = server.raw(None, &[b"RESTORE", k.as_bytes(), b"0", payload, b"REPLACE"]);
        assert_eq!(
            r,
            b"+OK\r\n",
            "RESTORE {k}: {}",
            String::from_utf8_lossy(&r)
        );
    }
}

#[test]
fn a_backup_restored_into_the_running_server_needs_its_store_record_deleted() {
    if !require_root("a_backup_restored_into_the_running_server_needs_its_store_record_deleted") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=bk: redis_timeout=2000");
    init_store(&a);
    let hosts: Vec<Stack> = (0..2).map(|_| Stack::probe("svc", &a)).collect();
    let (u, secret) = TestUser::enrolled("bku");
    let user_key = format!("bk:user:{}", u.name);
    let login = |host: &Stack, step_at: u64, at: u64| {
        login_logged(host, &u, &code_at(&secret, step_at), PEER, at)
    };
    let t = now();
    let (d, logs) = login(&hosts[0], t, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let dump = backup(&server, &["bk:store", &user_key]);

    // Control: a code used since the backup, the backup restored, the code again.
    let (d, logs) = login(&hosts[0], t + 30, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    restore(&server, &dump);
    let (d, logs) = login(&hosts[1], t + 30, t + 35);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "a restore into the same instance is not seen: {d:?} {logs:?}"
    );

    // The same, with the store record deleted after the restore.
    let (d, logs) = login(&hosts[0], t + 60, t + 60);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    restore(&server, &dump);
    assert_eq!(server.raw(None, &[b"DEL", b"bk:store"]), b":1\r\n");
    let (d, logs) = login(&hosts[1], t + 60, t + 65);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    let later = after_recreation(t + 65);
    let (d, logs) = login(&hosts[1], later, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}
