//! Rotating the etcd credentials of a fleet without denying logins (docs/fleet.md,
//! "Credentials": etcd keeps one password per user, so a second user with the same
//! role takes over), through the real libpam against a real etcd member with
//! authentication on and TLS: while both users exist, hosts with either credentials file
//! log in; once the first user is deleted, a host still holding its file is denied with
//! "authentication failed" logged (the control that the deletion took effect), and the
//! hosts switched to the second user go on logging in. The `etcd_ca_file=` is a bundle
//! of another CA and the cluster's, as during a CA rotation.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{TestCa, init_store, trusted_dir};
use system_tests::*;

fn root_only(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

#[test]
fn a_second_user_with_the_same_role_takes_over_the_etcd_credentials() {
    let t = "a_second_user_with_the_same_role_takes_over_the_etcd_credentials";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let (ca, next_ca) = (TestCa::new("etcd-rot"), TestCa::new("etcd-rot-next"));
    let mut cluster = EtcdCluster::start(
        1,
        &EtcdConfig {
            tls: Some(&ca),
            ..EtcdConfig::default()
        },
    );
    cluster.enable_auth("pam_totp", "first-pw", "pam_totp/");
    let dir = trusted_dir("etcd-rot");
    let first = root_only(
        dir.path(),
        "first",
        b"username=pam_totp\npassword=first-pw\n",
    );
    let second = root_only(
        dir.path(),
        "second",
        b"username=pam_totp2\npassword=second-pw\n",
    );
    let bundle = dir.path().join("ca-bundle.pem");
    fs::write(&bundle, bundle_bytes(&ca, &next_ca)).expect("write bundle");
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o644)).expect("chmod");
    let opts = |cred: &Path| {
        format!(
            "state={} etcd_plugin={} etcd_prefix=pam_totp/ etcd_timeout=1000 \
             etcd_credentials={} etcd_ca_file={}",
            cluster.url(),
            etcd_plugin().display(),
            cred.display(),
            bundle.display()
        )
    };
    init_store(&opts(&first));
    let (u, secret) = TestUser::enrolled("erot");
    let (old_host, new_host) = (
        Stack::probe("svc", &opts(&first)),
        Stack::probe("svc", &opts(&second)),
    );
    let login = |host: &Stack, at: u64| login_logged(host, &u, &code_at(&secret, at), PEER, at);
    let t = now();
    let (d, logs) = login(&old_host, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // The second user does not exist yet.
    let (d, logs) = login(&new_host, t + 30);
    assert_ne!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("authentication failed")),
        "{logs:?}"
    );

    cluster.ctl(&["user", "add", "pam_totp2", "--new-user-password=second-pw"]);
    cluster.ctl(&["user", "grant-role", "pam_totp2", "pam_totp"]);
    let (d, logs) = login(&new_host, t + 60);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let (d, logs) = login(&old_host, t + 90);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "both users while hosts change over: {d:?} {logs:?}"
    );

    cluster.ctl(&["user", "delete", "pam_totp"]);
    let (d, logs) = login(&old_host, t + 120);
    assert_ne!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("authentication failed")),
        "{logs:?}"
    );
    let (d, logs) = login(&new_host, t + 150);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // A used code stays used.
    let (d, logs) = login_logged(&new_host, &u, &code_at(&secret, t + 150), PEER, t + 155);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
}

fn bundle_bytes(a: &TestCa, b: &TestCa) -> Vec<u8> {
    [&b.ca_cert, &a.ca_cert]
        .iter()
        .flat_map(|p| fs::read(p).expect("read CA"))
        .collect()
}
