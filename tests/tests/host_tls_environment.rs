//! The host's environment and the TLS library under the fleet plugins. native-tls (over
//! OpenSSL), which both plugins used, opened the file `SSL_CERT_FILE` names, as the host
//! and without a bound, before the plugin replaced its trust store with the configured
//! CA. A setuid host (su, sudo, polkit's helper) runs with its caller's environment, so a
//! user could make root open a FIFO (the login then hung past every timeout, until
//! someone wrote to it) or a device.
//!
//! Both plugins now set TLS up with OpenSSL directly (`pam_totp_tls`) and load no default
//! verify path, so the variable is never looked at: whatever it names (a FIFO, a device,
//! nothing, a CA file), the FIFO is not opened, the log does not mention it, and the
//! connection is tried as usual (and fails on the closed port, as the test wants no
//! server).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use system_tests::etcd::etcd_plugin;
use system_tests::fleet::{RedisServer, ServerConfig, TestCa, init_store, plugin, trusted_dir};
use system_tests::*;

/// One login with `SSL_CERT_FILE` set to `value` (unset for `None`), against a TLS store
/// on a closed port: the verdict, the log, and whether anything opened `fifo` to read
/// while it ran (a writer's non-blocking open succeeds only when a reader has it open).
fn login(
    stack: &Stack,
    u: &TestUser,
    value: Option<&std::path::Path>,
    fifo: &std::path::Path,
) -> (Returned, Vec<String>, bool) {
    login_with(stack, u, "123456", "SSL_CERT_FILE", value, fifo)
}

/// [`login`] with `answer`, and `value` in the variable `name`.
fn login_with(
    stack: &Stack,
    u: &TestUser,
    answer: &str,
    name: &str,
    value: Option<&std::path::Path>,
    fifo: &std::path::Path,
) -> (Returned, Vec<String>, bool) {
    let mut command = Driver::login(stack, u, answer).command();
    // Empty for "unset": the capture's wrappers pass on set variables only, and an empty
    // name is no file to the TLS library either.
    command.env(name, value.map_or(Default::default(), |v| v.as_os_str()));
    let ((out, lines), opened) = watched(fifo, || with_syslog_capture(&command));
    (Drive::ran(&out).returned(), lines, opened)
}

/// What `run` gives, and whether anything opened `fifo` to read while it ran.
fn watched<T>(fifo: &std::path::Path, run: impl FnOnce() -> T) -> (T, bool) {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || {
            let mut opened = false;
            while !done.load(Ordering::SeqCst) {
                // Our open ends the reader's wait at once: the login goes on either way.
                if OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo)
                    .is_ok()
                {
                    opened = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            opened
        })
    };
    let ran = run();
    done.store(true, Ordering::SeqCst);
    (ran, watcher.join().expect("watcher"))
}

#[test]
fn a_callers_ssl_cert_file_cannot_make_root_open_a_fifo_or_a_device() {
    let t = "a_callers_ssl_cert_file_cannot_make_root_open_a_fifo_or_a_device";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "mkfifo") {
        return;
    }
    let ca = TestCa::new("env");
    let dir = trusted_dir("tlsenv");
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let (u, _) = TestUser::enrolled("te");
    let etcd = Stack::probe(
        "svc",
        &format!(
            "state=etcds://127.0.0.1:1 etcd_plugin={} etcd_ca_file={}",
            etcd_plugin().display(),
            ca.ca_cert.display()
        ),
    );
    let redis = Stack::probe(
        "svc",
        &format!(
            "state=rediss://127.0.0.1:1 redis_plugin={} redis_ca_file={}",
            plugin().display(),
            ca.ca_cert.display()
        ),
    );
    let named = |lines: &[String]| lines.iter().any(|l| l.contains("SSL_CERT_FILE"));
    let tried = |lines: &[String]| lines.iter().any(|l| l.contains("127.0.0.1"));
    let denied = Returned::Failed("PAM_AUTH_ERR".into());
    let values = [
        Some(fifo.as_path()),
        Some(std::path::Path::new("/dev/zero")),
        None,
        Some(ca.ca_cert.as_path()),
    ];
    for (backend, stack) in [("etcd", &etcd), ("Redis", &redis)] {
        for value in values {
            let (r, lines, opened) = login(stack, &u, value, &fifo);
            assert!(
                !opened,
                "{backend}, {value:?}: the FIFO was opened: {lines:?}"
            );
            assert_eq!(r, denied, "{backend}, {value:?}: no server: {lines:?}");
            assert!(!named(&lines), "{backend}, {value:?}: {lines:?}");
            assert!(
                tried(&lines),
                "{backend}, {value:?}: the connection was tried: {lines:?}"
            );
        }
    }
}

/// A host on a plain `redis://` store never sets TLS up, and the random start of a
/// record it creates (`backend.rs::new_key_version`) comes from the kernel: nothing of
/// OpenSSL's configuration is read, so the `OPENSSL_CONF` of a host's environment (here
/// a FIFO, which held the login until someone wrote to it) is never opened. It was when
/// that start came from OpenSSL's generator, whose first use loads the configuration.
/// Control: OpenSSL's own tool, with the same variable, opens the FIFO (the watch sees
/// what it claims to see); the user's first login creates the record with a random
/// version, the path that used OpenSSL.
#[test]
fn a_plain_redis_store_reads_no_openssl_configuration_when_it_creates_a_record() {
    let t = "a_plain_redis_store_reads_no_openssl_configuration_when_it_creates_a_record";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "mkfifo") {
        return;
    }
    let dir = trusted_dir("sslconf");
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let (tool, opened) = watched(&fifo, || {
        Command::new("openssl")
            .args(["rand", "-hex", "4"])
            .env("OPENSSL_CONF", &fifo)
            .output()
            .expect("openssl rand")
    });
    assert!(opened, "control: OpenSSL reads OPENSSL_CONF: {tool:?}");

    let server = RedisServer::start(&ServerConfig::default());
    let args = format!(
        "state={} redis_plugin={} redis_prefix=sc:",
        server.url(false),
        plugin().display()
    );
    init_store(&args);
    let stack = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("tr");
    let (r, lines, opened) = login_with(
        &stack,
        &u,
        &code_at(&secret, now()),
        "OPENSSL_CONF",
        Some(&fifo),
        &fifo,
    );
    assert!(!opened, "the FIFO was opened: {lines:?}");
    assert_eq!(r, Returned::Success, "{lines:?}");
    let v = server.raw(
        None,
        &[b"HGET", format!("sc:user:{}", u.name).as_bytes(), b"v"],
    );
    let v = String::from_utf8_lossy(&v);
    let version: u64 = v
        .lines()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a version: {v}"));
    assert!(version >= 1 << 32, "created at a random version: {v}");
}

/// `rediss://` and `etcds://`: the plugins set OpenSSL up without its configuration
/// (`pam_totp_tls::init`), so the `OPENSSL_CONF` of a host's environment (a FIFO, which
/// held the login until someone wrote to it) is never opened, and the login goes on as
/// usual against real TLS servers. Control: OpenSSL's own tool opens the FIFO with the
/// same variable, and the logins succeed (the TLS set-up ran: it was not skipped).
#[test]
fn a_tls_store_reads_no_openssl_configuration_from_the_environment() {
    let t = "a_tls_store_reads_no_openssl_configuration_from_the_environment";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "mkfifo") {
        return;
    }
    let dir = trusted_dir("tlsconf");
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let (tool, opened) = watched(&fifo, || {
        Command::new("openssl")
            .args(["s_client", "-help"])
            .env("OPENSSL_CONF", &fifo)
            .output()
            .expect("openssl s_client")
    });
    assert!(opened, "control: OpenSSL reads OPENSSL_CONF: {tool:?}");

    let ca = TestCa::new("conf");
    let redis = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let etcd = system_tests::etcd::EtcdCluster::start(
        1,
        &system_tests::etcd::EtcdConfig {
            tls: Some(&ca),
            ..Default::default()
        },
    );
    let stores = [
        (
            "Redis",
            format!(
                "state={} redis_plugin={} redis_prefix=tc: redis_ca_file={}",
                redis.url(true),
                plugin().display(),
                ca.ca_cert.display()
            ),
        ),
        (
            "etcd",
            format!(
                "state={} etcd_plugin={} etcd_prefix=tc/ etcd_ca_file={}",
                etcd.url(),
                etcd_plugin().display(),
                ca.ca_cert.display()
            ),
        ),
    ];
    let (u, secret) = TestUser::enrolled("tc");
    for (backend, args) in &stores {
        init_store(args);
        let stack = Stack::probe("svc", args);
        let (r, lines, opened) = login_with(
            &stack,
            &u,
            &code_at(&secret, now()),
            "OPENSSL_CONF",
            Some(&fifo),
            &fifo,
        );
        assert!(!opened, "{backend}: the FIFO was opened: {lines:?}");
        assert_eq!(r, Returned::Success, "{backend}: {lines:?}");
    }
}
