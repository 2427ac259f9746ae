//! Logins through the real libpam, in this process, with `state=etcd://…`: the plugin
//! must leave no thread behind in the host (sshd). A test binary of its own, so that the
//! threads of this process can be counted.

use std::time::{Duration, Instant};

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::init_store;
use system_tests::pamapp::{Scripted, Transaction, codes};
use system_tests::*;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// The thread count once it is back to `before`, or what it still is after 10 s: a
/// thread that only takes its time to end is waited for, one that stays is reported.
fn threads_back_to(before: usize) -> usize {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let n = threads();
        if n == before || Instant::now() >= until {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let args = format!(
        "state={url} etcd_plugin={} etcd_prefix=threads/ etcd_connect_timeout=500 \
         etcd_timeout=1000",
        etcd_plugin().display()
    );
    init_store(&args);
    let (u, secret) = TestUser::enrolled("et");
    let stack = Stack::with_module("svc", &args);
    let code = code_at(&secret, now());
    // Counted before the first pam_start: libpam's load of the module, and the module's
    // of the plugin (whose initialisers may start nothing either), are counted too.
    let before = threads();
    for round in 0..3 {
        let conv = Box::new(Scripted::texts([code.clone()]));
        let mut tx =
            Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
        let rc = tx.authenticate(0);
        // The first login uses the code; the store refuses it after that: each login
        // read and wrote the user's record in etcd.
        let expected = if round == 0 {
            codes::SUCCESS
        } else {
            codes::AUTH_ERR
        };
        assert_eq!(rc, expected, "round {round}");
        drop(tx);
        assert_eq!(
            threads_back_to(before),
            before,
            "threads left behind by the plugin after pam_end (round {round})"
        );
    }
    // Control: the logins went through etcd (the user's record is there).
    let keys = cluster.ctl(&["get", "--prefix", "--keys-only", "threads/user:"]);
    assert!(
        keys.contains(&u.name),
        "no record of {} in etcd: {keys}",
        u.name
    );
}
