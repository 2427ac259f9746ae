//! "Used" never rolls back while a write is in flight (R34), against a real etcd through
//! the etcd plugin and the module's store code (`totp_os::remote`, as a login runs it):
//! the hook runs inside the login's decision, after the store record and the user's
//! record were read and before the write, and deletes the whole prefix (a data set
//! lost). The user's record is then absent as it was read, so a comparison of its
//! `mod_revision` alone would let the write through under a store record that no longer
//! exists; the transaction also compares the store record's, so nothing is written, and
//! the store reports the store record changed: the module reads it again (recreated at
//! now) and decides again with its floor.

use std::cell::{Cell, RefCell};

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::require_root;
use totp_core::fleet::{ConnectionOptions, EtcdEndpoints, EtcdOptions, SharedStore};
use totp_core::state::{Missing, StateStore, UserState, Write};
use totp_os::remote::open_shared;

const PREFIX: &str = "inflight/";

/// How many keys the prefix holds, as an admin's `etcdctl` reads them.
fn count(cluster: &EtcdCluster) -> String {
    cluster
        .ctl(&["get", "--prefix", PREFIX, "--keys-only"])
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
    let now = system_tests::now();
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
        e.to_string()
            .contains("the store record changed since this login read it"),
        "{e}"
    );
    assert!(
        store.take_store_changed(),
        "reported as the store record changed, for the module to decide again"
    );
    assert!(!store.take_store_changed(), "taken once");
    assert_eq!(count(&cluster), "0", "the write went through");

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
    assert!(!store.take_store_changed(), "a write that went through");
    assert_eq!(count(&cluster), "2");
}
