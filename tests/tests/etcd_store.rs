//! The etcd store used directly through `totp_os::remote` (the module's code path
//! without libpam), in a test binary of its own so that the threads of this process can
//! be counted: the plugin must leave no thread behind in the host (sshd).

use std::time::Duration;

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::require_root;
use totp_core::fleet::{ConnectionOptions, EtcdEndpoints, EtcdOptions, SharedStore};
use totp_core::state::{Missing, StateStore, UserState, Write};
use totp_os::remote::open_shared;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

#[test]
fn a_login_through_the_etcd_plugin_leaves_no_thread_behind() {
    if !require_root("a_login_through_the_etcd_plugin_leaves_no_thread_behind") {
        return;
    }
    let cluster = EtcdCluster::start(3, &EtcdConfig::default());
    // Host names, so that name resolution runs too (ureq's own resolver would do it on
    // a helper thread; the plugin's resolves on the calling thread).
    let url = cluster.url().replace("127.0.0.1", "localhost");
    let opts = EtcdOptions {
        endpoints: EtcdEndpoints::parse(&url).expect("endpoints"),
        conn: ConnectionOptions {
            connect_timeout_ms: 500,
            command_timeout_ms: 1000,
            prefix: "threads/".into(),
            credentials: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            plugin: Some(etcd_plugin().display().to_string()),
        },
    };
    let shared = SharedStore::Etcd(opts);
    // The first load maps the plugin (its initialisers may start nothing either).
    let before = threads();
    for round in 0..3 {
        let mut store = open_shared(&shared, false, None).expect("open");
        store
            .context(Missing::Create { complete_since: 0 })
            .expect("context");
        store
            .update(1000 + round, &mut |s: &UserState| Write::Durable(s.clone()))
            .expect("update");
        drop(store);
    }
    // Let anything that would linger show up.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(threads(), before, "threads left behind by the plugin");
}
