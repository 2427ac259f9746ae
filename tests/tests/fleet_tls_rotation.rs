//! Rotating a fleet's TLS certificates without denying logins (docs/fleet.md, "Rotating
//! certificates"), through the real libpam against a real `redis-server` whose
//! certificates change at run time (`CONFIG SET`, on its local socket): a
//! `redis_ca_file=` holding the old and the new CA keeps logging in while the server's
//! certificate moves to the new CA (controls: the old CA alone is refused afterwards,
//! the new one alone before), and a client certificate and its key kept in one file are
//! replaced together by one rename (control: the new certificate with the old key, what
//! two files renamed one after the other show for a moment, is denied).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use system_tests::fleet::{RedisServer, ServerConfig, TestCa, init_store, plugin, trusted_dir};
use system_tests::*;

fn options(server: &RedisServer, extra: &str) -> String {
    format!(
        "state={} redis_plugin={} redis_prefix=rot: redis_connect_timeout=2000 \
         redis_timeout=2000 {extra}",
        server.url(true),
        plugin().display()
    )
}

/// `CONFIG SET` on the server's local socket (its TCP port speaks TLS only).
fn config_set(server: &RedisServer, pairs: &[(&str, &Path)]) {
    let mut cmd = Command::new("redis-cli");
    cmd.arg("-s").arg(&server.socket).args(["CONFIG", "SET"]);
    for (k, v) in pairs {
        cmd.arg(k).arg(v);
    }
    let out = cmd.output().expect("run redis-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim() == "OK",
        "CONFIG SET {pairs:?}: {out:?}"
    );
}

/// The concatenation of `parts` written to `dir/name` with `mode`, by a rename (as
/// configuration management replaces a file).
fn write_renamed(dir: &Path, name: &str, parts: &[&Path], mode: u32) -> PathBuf {
    let text: Vec<u8> = parts
        .iter()
        .flat_map(|p| fs::read(p).expect("read a PEM file"))
        .collect();
    let tmp = dir.join(format!("{name}.new"));
    fs::write(&tmp, text).expect("write");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod");
    let path = dir.join(name);
    fs::rename(&tmp, &path).expect("rename");
    path
}

fn logs_in(host: &Stack, user: &TestUser, secret: &str, at: u64) {
    let (d, logs) = login_logged(host, user, &code_at(secret, at), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

fn denied_for(host: &Stack, user: &TestUser, secret: &str, at: u64, cause: &str) {
    let (d, logs) = login_logged(host, user, &code_at(secret, at), PEER, at);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("no usable state store") && l.contains(cause)),
        "{cause}: {logs:?}"
    );
}

#[test]
fn a_ca_file_with_the_old_and_the_new_ca_logs_in_across_a_server_certificate_change() {
    let t = "a_ca_file_with_the_old_and_the_new_ca_logs_in_across_a_server_certificate_change";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let (old, new) = (TestCa::new("rotation old"), TestCa::new("rotation new"));
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&old),
        ..ServerConfig::default()
    });
    let dir = trusted_dir("rot-ca");
    let both = write_renamed(
        dir.path(),
        "fleet-ca.pem",
        &[&old.ca_cert, &new.ca_cert],
        0o644,
    );
    let ca = |p: &Path| options(&server, &format!("redis_ca_file={}", p.display()));
    init_store(&ca(&both));
    let (u, secret) = TestUser::enrolled("rca");
    let (with_both, old_only, new_only) = (
        Stack::probe("svc", &ca(&both)),
        Stack::probe("svc", &ca(&old.ca_cert)),
        Stack::probe("svc", &ca(&new.ca_cert)),
    );
    // Each login a step of its own: the same user, no code used twice.
    let t = now();
    logs_in(&with_both, &u, &secret, t);
    logs_in(&old_only, &u, &secret, t + 30);
    denied_for(&new_only, &u, &secret, t + 60, "certificate verify failed");

    config_set(
        &server,
        &[
            ("tls-cert-file", &new.server_cert),
            ("tls-key-file", &new.server_key),
        ],
    );
    logs_in(&with_both, &u, &secret, t + 90);
    denied_for(&old_only, &u, &secret, t + 120, "certificate verify failed");
    logs_in(&new_only, &u, &secret, t + 150);
}

#[test]
fn a_client_certificate_and_its_key_in_one_file_are_replaced_together() {
    let t = "a_client_certificate_and_its_key_in_one_file_are_replaced_together";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let (old, new) = (TestCa::new("clients old"), TestCa::new("clients new"));
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&old),
        tls_auth_clients: true,
        ..ServerConfig::default()
    });
    let dir = trusted_dir("rot-client");
    let pair = write_renamed(
        dir.path(),
        "client.pem",
        &[&old.client_cert, &old.client_key],
        0o600,
    );
    let client = |cert: &Path, key: &Path| {
        options(
            &server,
            &format!(
                "redis_ca_file={} redis_client_cert={} redis_client_key={}",
                old.ca_cert.display(),
                cert.display(),
                key.display()
            ),
        )
    };
    init_store(&client(&pair, &pair));
    let (u, secret) = TestUser::enrolled("rcl");
    let host = Stack::probe("svc", &client(&pair, &pair));
    let t = now();
    logs_in(&host, &u, &secret, t);

    // The server accepts clients of both CAs while the hosts change over.
    let server_dir = trusted_dir("rot-server");
    let clients = write_renamed(
        server_dir.path(),
        "clients.pem",
        &[&old.ca_cert, &new.ca_cert],
        0o644,
    );
    config_set(&server, &[("tls-ca-cert-file", &clients)]);
    // Two files renamed one after the other: for a moment the new certificate with the
    // old key.
    let torn = Stack::probe("svc", &client(&new.client_cert, &old.client_key));
    denied_for(&torn, &u, &secret, t + 30, "client");
    // One file, one rename: the new pair whole.
    write_renamed(
        dir.path(),
        "client.pem",
        &[&new.client_cert, &new.client_key],
        0o600,
    );
    logs_in(&host, &u, &secret, t + 60);
    // The old CA dropped on the server: the new pair still logs in, the old is refused.
    config_set(&server, &[("tls-ca-cert-file", &new.ca_cert)]);
    logs_in(&host, &u, &secret, t + 90);
    let stale = Stack::probe("svc", &client(&old.client_cert, &old.client_key));
    let (d, logs) = login_logged(&stale, &u, &code_at(&secret, t + 120), PEER, t + 120);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("no usable state store")),
        "{logs:?}"
    );
}
