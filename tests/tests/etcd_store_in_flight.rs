//! "Used" never rolls back while a write is in flight (R34), against a real etcd through
//! the etcd plugin: the etcd counterpart of `fleet_store_in_flight.rs`.
//!
//! Through the real libpam: an HTTP proxy in front of the etcd member
//! (`system_tests::proxy::EtcdHookProxy`) holds one host's compare-and-set of a user's
//! record (the `/v3/kv/txn` that puts it), after that host read the store record and the
//! user's record and decided. Meanwhile another host accepts the same code and the whole
//! prefix is deleted (a data set lost). The user's record is then absent, as the first
//! host read it, so a comparison of its `mod_revision` alone would let the write through
//! under a store record that no longer exists: the code accepted twice. The transaction
//! also compares the store record's, so nothing is written; the plugin reports the store
//! record changed, and the module reads it again (recreated at now) and decides again
//! with its floor, which refuses the code as used.
//!
//! Through the module's store code (`totp_os::remote`, as a login runs it): the same
//! deletion inside the decision, where the test can show that the held write wrote
//! nothing at all (the prefix still empty after it) and that the report is taken once.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use serde_json::Value;
use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{
    accepted_elsewhere_then, assert_a_later_code_logs_in, assert_decided_again_and_refused_as_used,
    assert_still_refused_after_the_loss, init_store,
};
use system_tests::proxy::{EtcdHookProxy, base64_decode};
use system_tests::*;
use totp_core::fleet::{ConnectionOptions, EtcdEndpoints, EtcdOptions, SharedStore};
use totp_core::state::{Missing, StateStore, StoreError, UserState, Write};
use totp_os::remote::open_shared;

const PREFIX: &str = "inflight/";

/// How many keys the prefix holds, as an admin's `etcdctl` reads them.
fn count(cluster: &EtcdCluster) -> String {
    count_under(cluster, PREFIX)
}

fn count_under(cluster: &EtcdCluster, prefix: &str) -> String {
    cluster
        .ctl(&["get", "--prefix", prefix, "--keys-only"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
        .to_string()
}

#[test]
fn a_prefix_deleted_while_a_write_is_in_flight_writes_nothing() {
    if !require_root("a_prefix_deleted_while_a_write_is_in_flight_writes_nothing") {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let shared = SharedStore::Etcd(EtcdOptions {
        endpoints: EtcdEndpoints::parse(&cluster.url()).expect("endpoints"),
        conn: ConnectionOptions {
            connect_timeout_ms: 500,
            command_timeout_ms: 2000,
            prefix: PREFIX.into(),
            credentials: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            plugin: Some(etcd_plugin().display().to_string()),
        },
    });
    let now = now();
    let open = || open_shared(&shared, false, None).expect("open");
    open()
        .context(Missing::Create { complete_since: 0 })
        .expect("init");

    // Control: the hook runs inside the decision and deletes nothing; the write goes
    // through.
    let mut store = open();
    store
        .context(Missing::Create {
            complete_since: now,
        })
        .expect("context");
    let hooked = Cell::new(0);
    store
        .update(5001, &mut |s: &UserState| {
            hooked.set(hooked.get() + 1);
            Write::Durable(s.clone())
        })
        .expect("control: written");
    assert_eq!(hooked.get(), 1);
    assert_eq!(count(&cluster), "2", "the store record and the user's");
    drop(store);

    // The fault: the prefix deleted between the reads and the write.
    let mut store = open();
    store
        .context(Missing::Create {
            complete_since: now,
        })
        .expect("context");
    let deleted: RefCell<Option<String>> = RefCell::new(None);
    let e = store
        .update(5002, &mut |s: &UserState| {
            if deleted.borrow().is_none() {
                // Read as absent: the write expects no record, which still holds after.
                assert_eq!(s, &UserState::default(), "a user without a record");
                cluster.ctl(&["del", "--prefix", PREFIX]);
                *deleted.borrow_mut() = Some(count(&cluster));
            }
            Write::Durable(s.clone())
        })
        .expect_err("nothing written");
    assert_eq!(
        deleted.borrow().as_deref(),
        Some("0"),
        "the fault happened: the prefix was empty before the write"
    );
    assert!(
        matches!(&e, StoreError::StoreChanged(m)
            if m.contains("the store record changed since this login read it")),
        "reported as the store record changed, for the module to decide again: {e:?}"
    );
    assert!(
        !e.to_string().contains("unavailable"),
        "in the store's own words: {e}"
    );
    assert_eq!(count(&cluster), "0", "nothing written");

    // What the module then does in the same login: reads the store record again (gone:
    // recreated, with the floor at now) and decides again, and that write goes through.
    store
        .context(Missing::Create {
            complete_since: now,
        })
        .expect("recreated");
    assert!(store.take_recreation().is_some(), "recreated");
    store
        .update(5002, &mut |s: &UserState| Write::Durable(s.clone()))
        .expect("written");
    assert_eq!(count(&cluster), "2");
}

/// The comparisons of a held transaction: each key (decoded) with the `mod_revision` it
/// expected.
fn compared(body: &Value) -> Vec<(String, String)> {
    body.get("compare")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let key = c
                .get("key")
                .and_then(Value::as_str)
                .and_then(base64_decode)
                .expect("a base64 key");
            let revision = c
                .get("mod_revision")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (
                String::from_utf8_lossy(&key).into_owned(),
                revision.to_owned(),
            )
        })
        .collect()
}

/// The held write expected `user`'s record absent and the store record at a revision.
fn expects_absent_under_store_record(body: &Value, prefix: &str, user: &str) {
    let compared = compared(body);
    let user_key = format!("{prefix}user:{user}");
    let store_key = format!("{prefix}store");
    assert!(
        compared.iter().any(|(k, r)| *k == user_key && r == "0"),
        "the user's record expected absent: {compared:?}"
    );
    assert!(
        compared
            .iter()
            .any(|(k, r)| *k == store_key && !r.is_empty() && r != "0"),
        "the store record compared too: {compared:?}"
    );
}

#[test]
fn a_prefix_deleted_while_a_login_write_is_in_flight_never_reopens_a_used_code() {
    let t = "a_prefix_deleted_while_a_login_write_is_in_flight_never_reopens_a_used_code";
    if !require_root(t) {
        return;
    }
    let cluster = Arc::new(EtcdCluster::start(1, &EtcdConfig::default()));
    let proxy = EtcdHookProxy::start(&cluster.client_address(0));
    let prefix = "inflight-pam/";
    // A command timeout that outlasts the hook (another host's login and an etcdctl).
    let options = format!(
        "etcd_plugin={} etcd_prefix={prefix} etcd_timeout=5000",
        etcd_plugin().display()
    );
    let direct = format!("state={} {options}", cluster.url());
    init_store(&direct);
    let other = Arc::new(Stack::probe("svc", &direct));
    let host = Stack::probe("svc", &format!("state={} {options}", proxy.url()));

    // Control: the hook runs and does nothing; the first login of a user (no record
    // yet) logs in through the proxy. Real time: the login waits on a real hook.
    let (c, secret_c) = TestUser::enrolled("ec");
    proxy.arm(Box::new(|| {}));
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, now()), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");
    let held = proxy.held();
    assert_eq!(held.len(), 1, "control: the hook ran before the write");
    expects_absent_under_store_record(&held[0], prefix, &c.name);

    // The fault: while this host's write is held, another host accepts the same code,
    // then the prefix is deleted.
    let (u, secret) = TestUser::enrolled("eu");
    let u = Arc::new(u);
    let code = code_at(&secret, now());
    let record = format!("{prefix}user:{}", u.name);
    let (hook, elsewhere) = accepted_elsewhere_then(&other, &u, &code, {
        let (cluster, record) = (cluster.clone(), record.clone());
        move || {
            let written = cluster.ctl(&["get", &record, "--keys-only"]);
            let deleted = cluster.ctl(&["del", "--prefix", prefix]);
            let left = count_under(&cluster, prefix);
            (written, deleted, left)
        }
    });
    proxy.arm(hook);
    let (d, logs) = login_logged(&host, &u, &code, PEER, None);
    // The fault happened where claimed: the other host accepted the code and wrote the
    // user's record, then the prefix was deleted, all before this host's write, which
    // expected the user's record absent (so it alone would have matched again).
    let (written, deleted, left) = elsewhere.accepted();
    assert!(written.contains(&record), "{written}");
    assert_ne!(deleted.trim(), "0", "{deleted}");
    assert_eq!(left, "0", "the prefix was empty before the held write");
    let held = proxy.held();
    assert_eq!(held.len(), 2, "{held:?}");
    expects_absent_under_store_record(&held[1], prefix, &u.name);
    assert_decided_again_and_refused_as_used(&d, &logs);
    for h in [&host, &*other] {
        assert_still_refused_after_the_loss(h, &u, &code);
    }
    assert_a_later_code_logs_in(&host, &u, &secret);
}

/// A user's record alone deleted while a login's write is held, and created again by
/// another host with the same code accepted: the held transaction compares the
/// `mod_revision` the login read, which the deletion and the creation both raised (etcd
/// never repeats a revision), so it writes nothing and the login decides again with the
/// other host's record, refusing the code as used. The counterpart of
/// `fleet_store_in_flight.rs::a_user_record_recreated_while_a_write_is_in_flight_never_takes_that_write`
/// (docs/fleet.md, "A record deleted while a write is in flight"). Control: the held
/// write on an unchanged record logs in.
#[test]
fn a_user_record_recreated_while_a_login_write_is_in_flight_never_takes_that_write() {
    let t = "a_user_record_recreated_while_a_login_write_is_in_flight_never_takes_that_write";
    if !require_root(t) {
        return;
    }
    let cluster = Arc::new(EtcdCluster::start(1, &EtcdConfig::default()));
    let proxy = EtcdHookProxy::start(&cluster.client_address(0));
    let prefix = "recreated/";
    let options = format!(
        "etcd_plugin={} etcd_prefix={prefix} etcd_timeout=5000",
        etcd_plugin().display()
    );
    let direct = format!("state={} {options}", cluster.url());
    init_store(&direct);
    let other = Arc::new(Stack::probe("svc", &direct));
    let host = Stack::probe("svc", &format!("state={} {options}", proxy.url()));
    let start = now();
    let expected_of = |body: &Value, user: &str| {
        let key = format!("{prefix}user:{user}");
        compared(body)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r)
    };

    // Control: a record the other host wrote; the hook does nothing; the held write,
    // on the revision read, logs in.
    let (c, secret_c) = TestUser::enrolled("er");
    let (d, logs) = login_logged(&other, &c, &code_at(&secret_c, start), PEER, start);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    proxy.arm(Box::new(|| {}));
    let at = start + 30;
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, at), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");
    let held = proxy.held();
    assert_eq!(held.len(), 1, "control: the hook ran before the write");
    let read = expected_of(&held[0], &c.name);
    assert!(read.as_deref().is_some_and(|r| r != "0"), "{held:?}");

    // The fault: the record deleted, the same code accepted by the other host (which
    // creates it again), all while this host's write is held.
    let (u, secret) = TestUser::enrolled("ex");
    let u = Arc::new(u);
    let record = format!("{prefix}user:{}", u.name);
    let (d, logs) = login_logged(&other, &u, &code_at(&secret, start), PEER, start);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let code = code_at(&secret, at);
    let slot = Arc::new(std::sync::Mutex::new(None));
    let hook = {
        let (cluster, other, u, code, slot, record) = (
            cluster.clone(),
            other.clone(),
            u.clone(),
            code.clone(),
            slot.clone(),
            record.clone(),
        );
        Box::new(move || {
            let deleted = cluster.ctl(&["del", &record]);
            let (d, logs) = login_logged(&other, &u, &code, PEER, at);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((deleted, d, logs));
        })
    };
    proxy.arm(hook);
    let (d, logs) = login_logged(&host, &u, &code, PEER, at);
    let (deleted, d_other, logs_other) = slot
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("the hook ran");
    assert_eq!(deleted.trim(), "1", "{deleted}");
    assert_eq!(
        d_other.returned(),
        Returned::Success,
        "{d_other:?} {logs_other:?}"
    );
    let held = proxy.held();
    assert_eq!(held.len(), 2, "{held:?}");
    let expected = expected_of(&held[1], &u.name);
    assert!(
        expected.as_deref().is_some_and(|r| r != "0"),
        "the held write expected the record as read: {held:?}"
    );
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the code accepted twice: {d:?} {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("already used")),
        "refused as used: {logs:?}"
    );
    let later = start + 60;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}
