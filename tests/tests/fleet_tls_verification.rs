//! The certificate checks of both fleet plugins (`rediss://`, `etcds://`) through the real
//! libpam, against `openssl s_server` standing in for the store: the TLS handshake comes
//! before either protocol, so one stand-in serves both. Every host runs with
//! `state_fallback=local`, which makes the control exact: the stand-in with the right
//! certificate completes the handshake, then answers nothing, and the login goes on
//! through the local store (an outage); with a wrong certificate (another name, an IP
//! address the certificate does not list, expired, not yet valid, another CA, self-signed,
//! a 1024-bit key) or a server that speaks only TLS 1.1, the same login is denied as a
//! refusal (no
//! fallback: the server answered, and stays wrong until an admin acts) and one log line
//! says why. The files the module reads for TLS (CA, client certificate and key) are
//! refused when others could read the key, change a file, or make the read wait, and an
//! encrypted client key (or a certificate block marked encrypted) is refused without
//! OpenSSL asking the terminal for a passphrase. An etcd member listed first whose
//! certificate fails (or that is down) is passed over for the next, with a warning naming
//! it (in the log, and from `totp-state ping`); every member failing TLS is a refusal.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{
    RedisServer, ServerConfig, TestCa, init_store, plugin, signed, trusted_dir,
};
use system_tests::*;

const FALLBACK_USED: &str = "using this host's local store";

/// `openssl s_server` on a loopback port with one certificate; killed on drop.
struct StandIn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl StandIn {
    /// Serves `cert` and `key` (and `extra` arguments) until dropped; returns once it
    /// accepts connections.
    fn start(cert: &Path, key: &Path, extra: &[&str]) -> StandIn {
        for _ in 0..5 {
            if let Some(s) = Self::try_start(cert, key, extra) {
                return s;
            }
        }
        panic!("openssl s_server did not start");
    }

    fn try_start(cert: &Path, key: &Path, extra: &[&str]) -> Option<StandIn> {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let mut child = Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(extra)
            // Open and silent: at the end of its input s_server would end the connection.
            .stdin(Stdio::piped())
            .stdout(fs::File::create(&out).expect("out"))
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if fs::read_to_string(&out)
                .unwrap_or_default()
                .contains("ACCEPT")
            {
                return Some(StandIn {
                    child,
                    port,
                    _dir: dir,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh key prefix (both backends accept it).
fn prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "tv{}-{}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The module options of both backends for a TLS store at `host:port`, the local
/// fallback on, short bounds, and `files`: the TLS file options of each backend.
/// The connect bound (which covers resolving `localhost` in a child process and the
/// handshake) is loose: every fault in this file is answered at once, and a loaded
/// host must not turn a refusal into an outage.
fn stores(host: &str, port: u16, files: &TlsFiles) -> [(&'static str, String); 2] {
    let redis = format!(
        "state=rediss://{host}:{port} redis_plugin={} redis_prefix={} \
         redis_connect_timeout=3000 redis_timeout=500 state_fallback=local{}",
        plugin().display(),
        prefix(),
        files.options("redis_ca_file", "redis_client_cert", "redis_client_key")
    );
    let etcd = format!(
        "state=etcds://{host}:{port} etcd_plugin={} etcd_prefix={} \
         etcd_connect_timeout=3000 etcd_timeout=500 state_fallback=local{}",
        etcd_plugin().display(),
        prefix(),
        files.options("etcd_ca_file", "etcd_cert_file", "etcd_key_file")
    );
    [("Redis", redis), ("etcd", etcd)]
}

/// The TLS files a host names.
struct TlsFiles {
    ca: PathBuf,
    client: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    fn options(&self, ca: &str, cert: &str, key: &str) -> String {
        let mut s = format!(" {ca}={}", self.ca.display());
        if let Some((c, k)) = &self.client {
            s.push_str(&format!(" {cert}={} {key}={}", c.display(), k.display()));
        }
        s
    }
}

/// One login with the right code at the running clock through a probe stack with `args`.
fn login(args: &str, user: &TestUser, secret: &str) -> (Drive, Vec<String>) {
    let stack = Stack::probe("svc", args);
    login_logged(&stack, user, &code_at(secret, now()), PEER, None)
}

fn messages(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| syslog_message(l)).collect()
}

/// A login denied as a refusal whose log line names the server's TLS alert, and not
/// handed to the local store (`state_fallback=local`).
fn refused_naming_the_alert(what: &str, d: &Drive, lines: &[String]) {
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{what}: {d:?} {lines:?}"
    );
    let m = messages(lines);
    assert!(
        m.iter()
            .any(|l| l.contains("state store refused") && l.contains("alert")),
        "{what}: a refusal naming the alert: {lines:?}"
    );
    assert!(
        !m.iter().any(|l| l.contains(FALLBACK_USED)),
        "{what}: no fallback: {lines:?}"
    );
}

/// Kills `stand_in` (no alert, no `close_notify`) once what it received shows `marker`,
/// within 30 s; the thread answers whether it did.
fn kill_once_seen(stand_in: &StandIn, marker: &'static str) -> std::thread::JoinHandle<bool> {
    let out = stand_in._dir.path().join("out");
    let pid = stand_in.child.id().to_string();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if fs::read_to_string(&out)
                .unwrap_or_default()
                .contains(marker)
            {
                return Command::new("kill")
                    .args(["-KILL", &pid])
                    .status()
                    .is_ok_and(|s| s.success());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    })
}

/// The control: the handshake passed, the stand-in answered nothing, the login went on
/// through the local store (so nothing before the exchange refused the store).
fn assert_handshake_passed(what: &str, args: &str, user: &TestUser, secret: &str) {
    let (d, lines) = login(args, user, secret);
    assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
    let m = messages(&lines);
    assert!(
        m.iter().any(|l| l.contains(FALLBACK_USED)),
        "{what}: the local store after an outage: {lines:?}"
    );
    assert!(
        !m.iter()
            .any(|l| l.contains("certificate") || l.contains("TLS set-up")),
        "{what}: {lines:?}"
    );
}

/// The fault: denied, one line refuses the store (not an outage: no fallback) and
/// contains every part of `why`; no code was compared.
/// Returns the line that says it.
fn assert_refused(what: &str, args: &str, user: &TestUser, secret: &str, why: &[&str]) -> String {
    let (d, lines) = login(args, user, secret);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{what}: {d:?} {lines:?}"
    );
    let m = messages(&lines);
    let named: Vec<&&str> = m
        .iter()
        .filter(|l| why.iter().all(|w| l.contains(w)))
        .collect();
    assert_eq!(named.len(), 1, "{what}: one line says {why:?}: {lines:?}");
    assert!(
        named[0].contains("state store refused"),
        "{what}: a refusal, not an outage: {lines:?}"
    );
    assert!(
        !m.iter().any(|l| l.contains(FALLBACK_USED)),
        "{what}: no fallback: {lines:?}"
    );
    assert!(
        !m.iter().any(|l| l.contains("invalid verification code")),
        "{what}: no code was compared: {lines:?}"
    );
    named[0].to_string()
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test CA's server request signed again, valid from `start` to `end`
/// (`YYYYMMDDHHMMSSZ`): `openssl ca` sets both dates, `openssl x509` only a length.
fn signed_for(ca: &TestCa, name: &str, start: &str, end: &str) -> PathBuf {
    let d = ca.dir.path();
    let db = d.join(format!("{name}-db"));
    fs::create_dir(&db).expect("mkdir");
    fs::write(db.join("index.txt"), "").expect("index");
    let config = db.join("ca.cnf");
    fs::write(
        &config,
        format!(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = {0}/index.txt\n\
             new_certs_dir = {0}\nserial = {0}/serial\ndefault_md = sha256\npolicy = any\n\
             unique_subject = no\n[any]\ncommonName = supplied\n",
            db.display()
        ),
    )
    .expect("ca.cnf");
    let out = d.join(format!("{name}.pem"));
    run(
        d,
        "openssl",
        &[
            "ca",
            "-batch",
            "-notext",
            "-create_serial",
            "-config",
            &config.display().to_string(),
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "server.csr",
            "-extfile",
            "server-ext.cnf",
            "-startdate",
            start,
            "-enddate",
            end,
            "-out",
            &out.display().to_string(),
        ],
    );
    out
}

/// A wrong server: what it is, the host the URL names, its certificate and key, more
/// `s_server` arguments, and what the log line must say.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a Path,
    &'a Path,
    &'a [&'a str],
    &'a [&'a str],
);

/// Wrong server certificates, each refused by both plugins with the reason in the log;
/// the right one, from the same stand-in, passes.
#[test]
fn a_server_certificate_that_does_not_prove_the_store_is_refused_with_the_reason_through_libpam() {
    let t = "a_server_certificate_that_does_not_prove_the_store_is_refused_with_the_reason_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("verify");
    let other = TestCa::new("verify-other");
    let d = ca.dir.path();
    let server_ext = |san: &str| format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n");
    let (wrong_name, wrong_key) = signed(
        d,
        "wrongname",
        "other.example",
        &server_ext("DNS:other.example,IP:10.9.9.9"),
    );
    // The common name is the address: only the SAN may count.
    let (dns_only, dns_key) = signed(d, "dnsonly", "127.0.0.1", &server_ext("DNS:localhost"));
    let (ip_only, ip_key) = signed(d, "iponly", "localhost", &server_ext("IP:127.0.0.1"));
    let expired = signed_for(&ca, "expired", "20200101000000Z", "20200103000000Z");
    let not_yet = signed_for(&ca, "notyet", "20990101000000Z", "20990103000000Z");
    let self_signed = d.join("selfsigned.pem");
    run(
        d,
        "openssl",
        &[
            "req",
            "-x509",
            "-key",
            &ca.server_key.display().to_string(),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-days",
            "2",
            "-out",
            &self_signed.display().to_string(),
        ],
    );
    // A 1024-bit key: below the plugins' security level (2).
    let weak_key = d.join("weak.key");
    run(
        d,
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "weak.key",
            "-out",
            "weak.csr",
        ],
    );
    let weak = d.join("weak.pem");
    run(
        d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "weak.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server-ext.cnf",
            "-out",
            "weak.pem",
        ],
    );
    let files = TlsFiles {
        ca: ca.ca_cert.clone(),
        client: None,
    };
    let (u, secret) = TestUser::enrolled("tv");
    let good = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    for host in ["127.0.0.1", "localhost"] {
        for (backend, args) in stores(host, good.port, &files) {
            assert_handshake_passed(&format!("control, {backend}, {host}"), &args, &u, &secret);
        }
    }
    let legacy = [
        "-tls1_1",
        // OpenSSL's default security level refuses TLS 1.1 on the server side too.
        "-cipher",
        "DEFAULT@SECLEVEL=0",
    ];
    // The server's own security level refuses its weak key unless lowered.
    let weak_server = ["-cipher", "DEFAULT@SECLEVEL=0"];
    let cases: [Case; 9] = [
        (
            "a 1024-bit server key",
            "127.0.0.1",
            &weak,
            &weak_key,
            &weak_server,
            &["key too weak", "security level 2"],
        ),
        (
            "another name",
            "127.0.0.1",
            &wrong_name,
            &wrong_key,
            &[],
            &["IP address mismatch", "subjectAltName"],
        ),
        (
            "an address only a DNS name of the certificate matches",
            "127.0.0.1",
            &dns_only,
            &dns_key,
            &[],
            &["IP address mismatch", "subjectAltName"],
        ),
        (
            "a name only an IP address of the certificate matches",
            "localhost",
            &ip_only,
            &ip_key,
            &[],
            &["hostname mismatch", "subjectAltName"],
        ),
        (
            "expired",
            "127.0.0.1",
            &expired,
            &ca.server_key,
            &[],
            &["certificate has expired", "this host's clock"],
        ),
        (
            "not yet valid",
            "127.0.0.1",
            &not_yet,
            &ca.server_key,
            &[],
            &["certificate is not yet valid", "this host's clock"],
        ),
        (
            "another CA",
            "127.0.0.1",
            &other.server_cert,
            &other.server_key,
            &[],
            &[
                "unable to get local issuer certificate",
                "does not hold the CA",
            ],
        ),
        (
            "self-signed",
            "127.0.0.1",
            &self_signed,
            &ca.server_key,
            &[],
            &["self-signed certificate", "does not hold the CA"],
        ),
        (
            "a TLS 1.1 server",
            "127.0.0.1",
            &ca.server_cert,
            &ca.server_key,
            &legacy,
            // docs/fleet.md quotes the phrase.
            &[
                "protocol version",
                "no TLS version both sides accept",
                "TLS 1.2 or later",
            ],
        ),
    ];
    for (what, host, cert, key, extra, why) in cases {
        let server = StandIn::start(cert, key, extra);
        for (backend, args) in stores(host, server.port, &files) {
            let what = format!("{what}, {backend}");
            assert_refused(&what, &args, &u, &secret, why);
        }
    }
}

/// `path` made a copy of `from` with `mode`, owned by root.
fn copy_with_mode(from: &Path, path: &Path, mode: u32) -> PathBuf {
    fs::copy(from, path).expect("copy");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_path_buf()
}

/// The TLS files a host names, read by the module as root before the plugin sees them:
/// a client key others can read, a key or certificate another user owns or could
/// replace, a symbolic link, a CA file that is a FIFO (which would hold the login until
/// someone wrote to it) or larger than the cap, each refused for both plugins with the
/// file named in the log, promptly, without a fallback. Control: the same files with
/// the right owner and modes pass the handshake with the stand-in.
#[test]
fn tls_files_others_could_read_replace_or_stall_are_refused_through_libpam() {
    let t = "tls_files_others_could_read_replace_or_stall_are_refused_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "mkfifo") {
        return;
    }
    let ca = TestCa::new("files");
    let dir = trusted_dir("tlsfiles");
    let d = dir.path();
    let good = TlsFiles {
        ca: copy_with_mode(&ca.ca_cert, &d.join("ca.pem"), 0o644),
        client: Some((
            copy_with_mode(&ca.client_cert, &d.join("client.pem"), 0o644),
            copy_with_mode(&ca.client_key, &d.join("client.key"), 0o600),
        )),
    };
    let (u, secret) = TestUser::enrolled("tf");
    let server = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    for (backend, args) in stores("127.0.0.1", server.port, &good) {
        assert_handshake_passed(&format!("control, {backend}"), &args, &u, &secret);
    }

    let good_cert = good.client.as_ref().map(|c| c.0.clone()).expect("cert");
    let good_key = good.client.as_ref().map(|c| c.1.clone()).expect("key");
    let with_key = |key: PathBuf| TlsFiles {
        ca: good.ca.clone(),
        client: Some((good_cert.clone(), key)),
    };
    let with_cert = |cert: PathBuf| TlsFiles {
        ca: good.ca.clone(),
        client: Some((cert, good_key.clone())),
    };
    let with_ca = |ca: PathBuf| TlsFiles {
        ca,
        client: good.client.clone(),
    };
    let others_key = copy_with_mode(&ca.client_key, &d.join("others.key"), 0o600);
    std::os::unix::fs::chown(&others_key, Some(65534), None).expect("chown");
    let others_cert = copy_with_mode(&ca.client_cert, &d.join("others.pem"), 0o644);
    std::os::unix::fs::chown(&others_cert, Some(65534), None).expect("chown");
    let key_link = d.join("link.key");
    std::os::unix::fs::symlink(&good_key, &key_link).expect("symlink");
    let ca_link = d.join("link-ca.pem");
    std::os::unix::fs::symlink(&good.ca, &ca_link).expect("symlink");
    let fifo = d.join("fifo.pem");
    run(d, "mkfifo", &[&fifo.display().to_string()]);
    let huge = d.join("huge.pem");
    let pem = fs::read(&ca.ca_cert).expect("ca");
    let copies = (2 << 20) / pem.len() + 1;
    fs::write(&huge, pem.repeat(copies)).expect("huge");
    fs::set_permissions(&huge, fs::Permissions::from_mode(0o644)).expect("chmod");
    let (g_key, o_key, gw_cert) = (d.join("g.key"), d.join("o.key"), d.join("gw.pem"));
    let cases: Vec<(&str, TlsFiles, &Path)> = vec![
        (
            "a group-readable key",
            with_key(copy_with_mode(&ca.client_key, &g_key, 0o640)),
            &g_key,
        ),
        (
            "a world-readable key",
            with_key(copy_with_mode(&ca.client_key, &o_key, 0o604)),
            &o_key,
        ),
        (
            "a key another user owns",
            with_key(others_key.clone()),
            &others_key,
        ),
        (
            "a key named by a symbolic link",
            with_key(key_link.clone()),
            &key_link,
        ),
        (
            "a certificate another user owns",
            with_cert(others_cert.clone()),
            &others_cert,
        ),
        (
            "a group-writable certificate",
            with_cert(copy_with_mode(&ca.client_cert, &gw_cert, 0o664)),
            &gw_cert,
        ),
        (
            "a CA file named by a symbolic link",
            with_ca(ca_link.clone()),
            &ca_link,
        ),
        ("a CA file that is a FIFO", with_ca(fifo.clone()), &fifo),
        ("a CA file over the cap", with_ca(huge.clone()), &huge),
    ];
    for (what, files, path) in &cases {
        for (backend, args) in stores("127.0.0.1", server.port, files) {
            let what = format!("{what}, {backend}");
            assert_refused(&what, &args, &u, &secret, &[&path.display().to_string()]);
        }
    }
}

/// A client key encrypted with a passphrase: OpenSSL's default passphrase callback asks
/// on the controlling terminal (`/dev/tty`, else standard input and error), as root,
/// without a bound: under su the login would wait for whoever sits at the terminal. The
/// plugins never let OpenSSL ask; the key is refused, the log says it is encrypted, and
/// nothing was written to the host's terminal or standard error. Control: the same key
/// unencrypted passes the handshake.
#[test]
fn an_encrypted_client_key_is_refused_without_asking_the_terminal_through_libpam() {
    let t = "an_encrypted_client_key_is_refused_without_asking_the_terminal_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("enc");
    let d = ca.dir.path();
    let encrypted = d.join("encrypted.key");
    run(
        d,
        "openssl",
        &[
            "pkey",
            "-in",
            &ca.client_key.display().to_string(),
            "-aes256",
            "-passout",
            "pass:a passphrase",
            "-out",
            &encrypted.display().to_string(),
        ],
    );
    fs::set_permissions(&encrypted, fs::Permissions::from_mode(0o600)).expect("chmod");
    let (u, secret) = TestUser::enrolled("te");
    let server = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    let files = |key: &Path| TlsFiles {
        ca: ca.ca_cert.clone(),
        client: Some((ca.client_cert.clone(), key.to_path_buf())),
    };
    for (backend, args) in stores("127.0.0.1", server.port, &files(&ca.client_key)) {
        assert_handshake_passed(&format!("control, {backend}"), &args, &u, &secret);
    }
    // One file holding the certificate and the encrypted key, named by both options, as
    // docs/fleet.md advises for rotation: its certificate part is read too.
    let combined = d.join("combined.pem");
    let mut both = fs::read(&ca.client_cert).expect("cert");
    both.extend(fs::read(&encrypted).expect("key"));
    fs::write(&combined, both).expect("combined");
    fs::set_permissions(&combined, fs::Permissions::from_mode(0o600)).expect("chmod");
    let hosts = [
        stores("127.0.0.1", server.port, &files(&encrypted)),
        stores(
            "127.0.0.1",
            server.port,
            &TlsFiles {
                ca: ca.ca_cert.clone(),
                client: Some((combined.clone(), combined.clone())),
            },
        ),
    ];
    for (backend, args) in hosts.iter().flatten() {
        let (d, lines) = login(args, &u, &secret);
        assert!(
            !d.stderr.to_lowercase().contains("pass phrase"),
            "{backend}: OpenSSL asked for the passphrase: {d:?}"
        );
        assert_refused(
            &format!("an encrypted key, {backend}"),
            args,
            &u,
            &secret,
            &["client", "key is encrypted"],
        );
        assert!(
            !lines.iter().any(|l| l.contains("pass phrase")),
            "{backend}: {lines:?}"
        );
    }
}

/// A listener that accepts each connection and closes it, counting them: what a TCP load
/// balancer or proxy with no server behind it does. `read_first`: after reading what the
/// client sent (its hello), so the close is a clean end of the stream; else at once, so
/// the unread hello makes it a reset.
fn closing_listener(read_first: bool) -> (u16, std::sync::Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    // Lives as long as the test process: the listener closes with it.
    std::thread::spawn(move || {
        for c in l.incoming() {
            if read_first && let Ok(mut c) = c {
                use std::io::Read;
                let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                let mut hello = [0u8; 16384];
                let _ = c.read(&mut hello);
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted)
}

/// A connection the far end closes before the TLS handshake ends, without a word (a
/// proxy or load balancer with no server behind it, a server going down) is an outage,
/// like the same close on a plain connection: with `state_fallback=local` the login goes
/// on through the local store, logged as a weakening. It was a refusal, which denied
/// every login of a host configured to fall back. Control: the listener did accept the
/// connections (the close happened), and the stand-in with the right certificate passes
/// the handshake and falls back the same way.
#[test]
fn a_connection_closed_during_the_tls_handshake_is_an_outage_through_libpam() {
    let t = "a_connection_closed_during_the_tls_handshake_is_an_outage_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("closed");
    let files = TlsFiles {
        ca: ca.ca_cert.clone(),
        client: None,
    };
    let (u, secret) = TestUser::enrolled("tx");
    let server = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    for (backend, args) in stores("127.0.0.1", server.port, &files) {
        assert_handshake_passed(&format!("control, {backend}"), &args, &u, &secret);
    }
    for (kind, (port, accepted)) in [
        ("reset", closing_listener(false)),
        ("closed", closing_listener(true)),
    ] {
        for (backend, args) in stores("127.0.0.1", port, &files) {
            let what = format!("{kind}, {backend}");
            let before = accepted.load(Ordering::SeqCst);
            let (d, lines) = login(&args, &u, &secret);
            assert!(
                accepted.load(Ordering::SeqCst) > before,
                "{what}: the listener accepted: {lines:?}"
            );
            assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
            let m = messages(&lines);
            assert!(
                m.iter()
                    .any(|l| l.contains(FALLBACK_USED) && l.contains("state store unavailable")),
                "{what}: an outage, the local store used: {lines:?}"
            );
            // docs/fleet.md, "Failure is explicit": the cause an admin reads.
            assert!(
                m.iter().any(|l| l.contains("the connection ended")),
                "{what}: the log says the connection ended: {lines:?}"
            );
        }
    }
}

/// `pem` with the RFC 1421 headers of an encrypted block (`Proc-Type: 4,ENCRYPTED` and a
/// `DEK-Info:` naming a cipher OpenSSL knows) after each `BEGIN CERTIFICATE` line. The
/// body is left as it is: OpenSSL asks for the passphrase before it decrypts anything.
fn with_encryption_headers(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(pem.to_vec()).expect("PEM text");
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            out.push_str(
                "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n",
            );
        }
    }
    out.into_bytes()
}

/// A CA file or client certificate whose certificate block carries the headers of an
/// encrypted PEM block: OpenSSL's certificate reader has no passphrase callback of the
/// plugin's, so its default one asks on the controlling terminal (`/dev/tty`, else
/// standard input and error), as root and without a bound, as it did for an encrypted
/// key. The plugins refuse such a file without OpenSSL asking, and the log names the
/// file's fault; also when the header follows a key's `BEGIN` line OpenSSL does not read
/// as one. Control: the same files without the headers pass the handshake, and
/// OpenSSL's own reader does treat the block as encrypted (`openssl x509` wants a
/// passphrase for it).
#[test]
fn an_encrypted_certificate_block_is_refused_without_asking_the_terminal_through_libpam() {
    let t = "an_encrypted_certificate_block_is_refused_without_asking_the_terminal_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("encc");
    let d = ca.dir.path();
    let enc_ca = d.join("enc-ca.pem");
    fs::write(
        &enc_ca,
        with_encryption_headers(&fs::read(&ca.ca_cert).expect("ca")),
    )
    .expect("write");
    fs::set_permissions(&enc_ca, fs::Permissions::from_mode(0o644)).expect("chmod");
    let enc_cert = d.join("enc-client.pem");
    fs::write(
        &enc_cert,
        with_encryption_headers(&fs::read(&ca.client_cert).expect("cert")),
    )
    .expect("write");
    fs::set_permissions(&enc_cert, fs::Permissions::from_mode(0o644)).expect("chmod");
    // The same block behind a key's BEGIN line OpenSSL does not read as one (a leading
    // blank), its own BEGIN line the end of a line longer than the 254 bytes OpenSSL
    // reads at once: a scan that tracked blocks took the header for the key's.
    let hidden_ca = d.join("hidden-ca.pem");
    fs::write(
        &hidden_ca,
        [
            &b" -----BEGIN RSA PRIVATE KEY-----\n"[..],
            &[b'x'; 254],
            &fs::read(&enc_ca).expect("enc ca"),
        ]
        .concat(),
    )
    .expect("write");
    fs::set_permissions(&hidden_ca, fs::Permissions::from_mode(0o644)).expect("chmod");
    // Control of the shape: OpenSSL reads the block as an encrypted one.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-passin", "pass:x", "-in"])
        .arg(&enc_ca)
        .output()
        .expect("openssl x509");
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .to_lowercase()
                .contains("decrypt"),
        "control: an encrypted block to OpenSSL: {out:?}"
    );
    let (u, secret) = TestUser::enrolled("tk");
    let server = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    let good = TlsFiles {
        ca: ca.ca_cert.clone(),
        client: Some((ca.client_cert.clone(), ca.client_key.clone())),
    };
    for (backend, args) in stores("127.0.0.1", server.port, &good) {
        assert_handshake_passed(&format!("control, {backend}"), &args, &u, &secret);
    }
    let cases = [
        (
            "the CA file",
            TlsFiles {
                ca: enc_ca.clone(),
                client: good.client.clone(),
            },
            &["CA file", "a certificate block is marked encrypted"][..],
        ),
        (
            "the client certificate",
            TlsFiles {
                ca: ca.ca_cert.clone(),
                client: Some((enc_cert.clone(), ca.client_key.clone())),
            },
            &[
                "client certificate",
                "a certificate block is marked encrypted",
            ][..],
        ),
        (
            "the CA file, the header behind an unread key line",
            TlsFiles {
                ca: hidden_ca.clone(),
                client: good.client.clone(),
            },
            &["CA file", "a certificate block is marked encrypted"][..],
        ),
    ];
    for (what, files, why) in &cases {
        for (backend, args) in stores("127.0.0.1", server.port, files) {
            let what = format!("{what}, {backend}");
            let (d, lines) = login(&args, &u, &secret);
            assert!(
                !d.stderr.to_lowercase().contains("pass phrase"),
                "{what}: OpenSSL asked for a passphrase: {d:?}"
            );
            assert_refused(&what, &args, &u, &secret, why);
            assert!(
                !lines.iter().any(|l| l.contains("pass phrase")),
                "{what}: {lines:?}"
            );
        }
    }
}

/// A server that requires a client certificate and gets none: under TLS 1.3 it checks
/// the client's certificate after the client has finished its handshake, so its alert
/// ("certificate required") is what the client's first read returns. That is the
/// server refusing this host's TLS set-up, which stays wrong until an admin acts: a
/// refusal, never an outage (with `state_fallback=local` the host would otherwise run on
/// its local store for as long as the certificate is missing, expired or of another CA,
/// its log saying the store is unavailable). The etcd plugin read the alert as an
/// outage. Control: with the client certificate the handshake passes (the stand-in
/// answers nothing, so the login falls back, an outage).
#[test]
fn a_servers_alert_after_the_tls_13_handshake_is_a_refusal_through_libpam() {
    let t = "a_servers_alert_after_the_tls_13_handshake_is_a_refusal_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("cr");
    let ca_file = ca.ca_cert.display().to_string();
    let server = StandIn::start(
        &ca.server_cert,
        &ca.server_key,
        &["-tls1_3", "-Verify", "1", "-CAfile", &ca_file],
    );
    let (u, secret) = TestUser::enrolled("tq");
    let with_cert = TlsFiles {
        ca: ca.ca_cert.clone(),
        client: Some((ca.client_cert.clone(), ca.client_key.clone())),
    };
    for (backend, args) in stores("127.0.0.1", server.port, &with_cert) {
        assert_handshake_passed(&format!("control, {backend}"), &args, &u, &secret);
    }
    let without = TlsFiles {
        ca: ca.ca_cert.clone(),
        client: None,
    };
    for (backend, args) in stores("127.0.0.1", server.port, &without) {
        assert_refused(
            &format!("no client certificate, {backend}"),
            &args,
            &u,
            &secret,
            &["certificate required"],
        );
    }
}

/// Writes an OpenSSL configuration whose system-wide TLS settings are `settings`.
fn host_config(dir: &Path, name: &str, settings: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(
        &path,
        format!(
            "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n\
             [sys]\n{settings}\n"
        ),
    )
    .expect("config");
    path
}

/// A host that loaded OpenSSL's configuration before the module (sshd does; here a
/// preloaded library, `tests/openssl/host_init.c`, does it at start): the plugins' floor
/// (TLS 1.2, security level 2) only raises what that configuration sets. One that lowers
/// both (`MinProtocol = TLSv1`, `@SECLEVEL=0`) still gets a TLS 1.1 server and a 1024-bit
/// server key refused; one that asks for TLS 1.3 keeps it, and the refusal of a TLS 1.2
/// server says that this host needs TLS 1.3 (it said "TLS 1.2 or later", which the
/// server speaks, sending the admin to the server). Controls: the TLS 1.2 server passes
/// the handshake without the preload and with the lowering configuration (which is read:
/// the TLS 1.3 one refuses the same server).
#[test]
fn a_hosts_openssl_configuration_raises_the_floor_and_never_lowers_it_through_libpam() {
    let t = "a_hosts_openssl_configuration_raises_the_floor_and_never_lowers_it_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "cc") {
        return;
    }
    let ca = TestCa::new("hostconf");
    let d = ca.dir.path();
    let preload = d.join("host_init.so");
    compile_c(
        "tests/openssl/host_init.c",
        &preload,
        &["-shared".into(), "-fPIC".into()],
        &["-lssl".into(), "-lcrypto".into()],
    );
    let lowering = host_config(
        d,
        "low.cnf",
        "MinProtocol = TLSv1\nCipherString = DEFAULT@SECLEVEL=0",
    );
    let tls13 = host_config(d, "tls13.cnf", "MinProtocol = TLSv1.3");
    run(
        d,
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "weak.key",
            "-out",
            "weak.csr",
        ],
    );
    run(
        d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "weak.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server-ext.cnf",
            "-out",
            "weak.pem",
        ],
    );
    let files = TlsFiles {
        ca: ca.ca_cert.clone(),
        client: None,
    };
    let (u, secret) = TestUser::enrolled("th");
    let hosted = |args: &str, config: &Path| {
        let stack = Stack::probe("svc", args);
        let mut command = Driver::login(&stack, &u, &code_at(&secret, now()))
            .rhost(PEER)
            .command();
        command
            .env("LD_PRELOAD", &preload)
            .env("OPENSSL_CONF", config);
        let (out, lines) = with_syslog_capture(&command);
        (Drive::parse(&out), lines)
    };
    let tls12 = StandIn::start(&ca.server_cert, &ca.server_key, &["-tls1_2"]);
    let legacy = StandIn::start(
        &ca.server_cert,
        &ca.server_key,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    let weak = StandIn::start(
        &d.join("weak.pem"),
        &d.join("weak.key"),
        &["-cipher", "DEFAULT@SECLEVEL=0"],
    );
    for (backend, args) in stores("127.0.0.1", tls12.port, &files) {
        assert_handshake_passed(&format!("control, {backend}"), &args, &u, &secret);
        let (d, lines) = hosted(&args, &lowering);
        assert_eq!(
            d.returned(),
            Returned::Success,
            "{backend}: {d:?} {lines:?}"
        );
        assert!(
            messages(&lines).iter().any(|l| l.contains(FALLBACK_USED)),
            "control, {backend}: the lowering configuration, the handshake passed: {lines:?}"
        );
        let (d, lines) = hosted(&args, &tls13);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{backend}: {d:?} {lines:?}"
        );
        let m = messages(&lines);
        assert!(
            m.iter().any(|l| l.contains("state store refused")
                && l.contains("this host needs TLS 1.3 or later")),
            "{backend}: the host's TLS 1.3 kept and named: {lines:?}"
        );
        assert!(!m.iter().any(|l| l.contains(FALLBACK_USED)), "{lines:?}");
    }
    for (what, server, why) in [
        (
            "a TLS 1.1 server",
            &legacy,
            "this host needs TLS 1.2 or later",
        ),
        ("a 1024-bit server key", &weak, "security level 2"),
    ] {
        for (backend, args) in stores("127.0.0.1", server.port, &files) {
            let (d, lines) = hosted(&args, &lowering);
            assert_eq!(
                d.returned(),
                Returned::Failed("PAM_AUTH_ERR".into()),
                "{what}, {backend}: {d:?} {lines:?}"
            );
            let m = messages(&lines);
            assert!(
                m.iter()
                    .any(|l| l.contains("state store refused") && l.contains(why)),
                "{what}, {backend}: the floor held: {lines:?}"
            );
        }
    }
}

/// One etcd member whose certificate fails (expired, another name), or that is down,
/// listed first in `state=` before two members of a healthy three-member cluster: nothing
/// was sent to it, so the next member serves and the login succeeds, with one warning
/// naming the member and the reason (an admin must hear of it before the cluster loses
/// its majority). Control: every member good, no warning. Fault beyond: every member
/// listed fails TLS, and the login is denied as a refusal naming each reason (no
/// fallback, although `state_fallback=local` is set).
#[test]
fn an_etcd_member_failing_tls_is_skipped_with_a_warning_through_libpam() {
    let t = "an_etcd_member_failing_tls_is_skipped_with_a_warning_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("skip");
    let (wrong_name, wrong_key) = signed(
        ca.dir.path(),
        "wrongname",
        "other.example",
        "subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n",
    );
    let expired = signed_for(&ca, "expired", "20200101000000Z", "20200103000000Z");
    let cluster = EtcdCluster::start(
        3,
        &EtcdConfig {
            tls: Some(&ca),
            ..EtcdConfig::default()
        },
    );
    let expired_member = StandIn::start(&expired, &ca.server_key, &[]);
    let wrong_member = StandIn::start(&wrong_name, &wrong_key, &[]);
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let prefix = prefix();
    let args = |members: &[String]| {
        format!(
            "state=etcds://{} etcd_plugin={} etcd_prefix={prefix} etcd_ca_file={} \
             etcd_connect_timeout=3000 etcd_timeout=1000 state_fallback=local",
            members.join(","),
            etcd_plugin().display(),
            ca.ca_cert.display()
        )
    };
    let healthy: Vec<String> = (0..3).map(|i| cluster.client_address(i)).collect();
    init_store(&args(&healthy));
    let (u, secret) = TestUser::enrolled("tj");
    let mut at = (now() / 30 + 1) * 30 + 15;
    let login_at = |members: &[String], at: u64| {
        let stack = Stack::probe("svc", &args(members));
        login_logged(&stack, &u, &code_at(&secret, at), PEER, at)
    };
    let (d, lines) = login_at(&healthy, at);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(
        !messages(&lines).iter().any(|l| l.contains("skipped")),
        "control: no member skipped: {lines:?}"
    );
    let expired_at = format!("127.0.0.1:{}", expired_member.port);
    let wrong_at = format!("127.0.0.1:{}", wrong_member.port);
    let down_at = format!("127.0.0.1:{down}");
    for (what, first, why) in [
        ("expired", &expired_at, "certificate has expired"),
        ("another name", &wrong_at, "IP address mismatch"),
        ("down", &down_at, "connect"),
    ] {
        at += 30;
        let members = [first.clone(), healthy[1].clone(), healthy[2].clone()];
        let (d, lines) = login_at(&members, at);
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
        let m = messages(&lines);
        let warned: Vec<&&str> = m.iter().filter(|l| l.contains("skipped")).collect();
        assert_eq!(warned.len(), 1, "{what}: one warning: {lines:?}");
        for part in ["1 of 3 members skipped", first.as_str(), why] {
            assert!(
                warned[0].contains(part),
                "{what}: names {part:?}: {lines:?}"
            );
        }
        assert!(
            !m.iter().any(|l| l.contains(FALLBACK_USED)),
            "{what}: the cluster served: {lines:?}"
        );
        // The admin's check says it too, and passes: the cluster serves.
        let ping = state_tool(&["ping", "--options", &args(&members)]);
        let err = String::from_utf8_lossy(&ping.stderr);
        assert!(ping.status.success(), "{what}: ping: {err}");
        assert!(
            err.contains("totp-state: warning:") && err.contains(first.as_str()),
            "{what}: ping names the member: {err}"
        );
    }
    let ping = state_tool(&["ping", "--options", &args(&healthy)]);
    let err = String::from_utf8_lossy(&ping.stderr);
    assert!(
        ping.status.success() && !err.contains("skipped"),
        "control: ping: {err}"
    );
    // docs/fleet.md, "Failure is explicit": members failing TLS and the others
    // unreachable is an outage, which the fallback takes (the refusal below is the
    // control: every member failing TLS).
    at += 30;
    let (d, lines) = login_at(&[expired_at.clone(), down_at.clone()], at);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "TLS and down: {d:?} {lines:?}"
    );
    let m = messages(&lines);
    assert!(
        m.iter()
            .any(|l| l.contains(FALLBACK_USED) && l.contains("no majority reached")),
        "TLS and down: an outage, the local store used: {lines:?}"
    );
    at += 30;
    let (d, lines) = login_at(&[expired_at, wrong_at], at);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "every member failing TLS: {d:?} {lines:?}"
    );
    let m = messages(&lines);
    assert!(
        m.iter().any(|l| l.contains("state store refused")
            && l.contains("certificate has expired")
            && l.contains("IP address mismatch")),
        "a refusal naming each member's reason: {lines:?}"
    );
    assert!(
        !m.iter().any(|l| l.contains(FALLBACK_USED)),
        "no fallback: {lines:?}"
    );
}

/// A cluster that requires client certificates (`--client-cert-auth`) and a host that
/// sends none, or one of another CA: with TLS 1.3 the member checks the client's
/// certificate only after the client's side of the handshake is done, and its alert
/// arrives as the reply to the first request. That is the member refusing to trust the
/// host, an admin's fault like a server certificate that fails: denied as a refusal
/// naming the alert, with `state_fallback=local` set and not taken. Control: the CA's
/// client certificate logs in through the cluster; and a member killed after the request
/// came (the connection ends without an alert) is an outage still, the local store used.
/// Before the fix the alert was read as an I/O error (or a broken pipe on the request's
/// next write), the list as "no majority reached", and the host used its local store.
#[test]
fn an_etcd_member_refusing_the_client_certificate_is_a_refusal_through_libpam() {
    let t = "an_etcd_member_refusing_the_client_certificate_is_a_refusal_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("mtls-refused");
    let other = TestCa::new("mtls-other");
    let cluster = EtcdCluster::start(
        3,
        &EtcdConfig {
            tls: Some(&ca),
            client_cert_auth: true,
        },
    );
    let members: Vec<String> = (0..3).map(|i| cluster.client_address(i)).collect();
    let prefix = prefix();
    let args = |client: Option<(&Path, &Path)>| {
        let mut s = format!(
            "state=etcds://{} etcd_plugin={} etcd_prefix={prefix} etcd_ca_file={} \
             etcd_connect_timeout=3000 etcd_timeout=1000 state_fallback=local",
            members.join(","),
            etcd_plugin().display(),
            ca.ca_cert.display()
        );
        if let Some((c, k)) = client {
            s.push_str(&format!(
                " etcd_cert_file={} etcd_key_file={}",
                c.display(),
                k.display()
            ));
        }
        s
    };
    let good = args(Some((&ca.client_cert, &ca.client_key)));
    init_store(&good);
    let (u, secret) = TestUser::enrolled("tm");
    let mut at = (now() / 30 + 1) * 30 + 15;
    let (d, lines) = login_logged(
        &Stack::probe("svc", &good),
        &u,
        &code_at(&secret, at),
        PEER,
        at,
    );
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(
        !messages(&lines).iter().any(|l| l.contains(FALLBACK_USED)),
        "control: the cluster served: {lines:?}"
    );
    for (what, client) in [
        ("no client certificate", None),
        (
            "another CA's client certificate",
            Some((other.client_cert.as_path(), other.client_key.as_path())),
        ),
    ] {
        at += 30;
        let (d, lines) = login_logged(
            &Stack::probe("svc", &args(client)),
            &u,
            &code_at(&secret, at),
            PEER,
            at,
        );
        refused_naming_the_alert(what, &d, &lines);
    }
    // Control beyond: a member that passed the handshake and ends the connection without
    // an alert once the request came (killed: no `close_notify`, which OpenSSL 3 reports
    // as a TLS error too) is an outage still, as it was: the host falls back.
    let dying = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    let killer = kill_once_seen(&dying, "POST");
    at += 30;
    let lone = format!(
        "state=etcds://127.0.0.1:{} etcd_plugin={} etcd_prefix={prefix} etcd_ca_file={} \
         etcd_connect_timeout=3000 etcd_timeout=5000 state_fallback=local",
        dying.port,
        etcd_plugin().display(),
        ca.ca_cert.display()
    );
    let (d, lines) = login_logged(
        &Stack::probe("svc", &lone),
        &u,
        &code_at(&secret, at),
        PEER,
        at,
    );
    assert!(
        killer.join().expect("killer"),
        "the member was killed after the request"
    );
    assert_eq!(d.returned(), Returned::Success, "killed: {d:?} {lines:?}");
    let m = messages(&lines);
    assert!(
        m.iter().any(|l| l.contains(FALLBACK_USED)),
        "killed: an outage, the local store: {lines:?}"
    );
    assert!(
        !m.iter().any(|l| l.contains("after the handshake")),
        "killed: no refusal: {lines:?}"
    );
}

/// A Redis server that requires client certificates of its CA (`tls-auth-clients yes`)
/// and a host that sends none, or one of another CA: under TLS 1.3 the server checks the
/// client's certificate after the client's side of the handshake, and ends the
/// connection with an alert. Where its alert and close reach the host before the open's
/// first command is written, that write fails as a reset or a broken pipe, the alert
/// unread behind it; the plugin read that as an outage, and `state_fallback=local` ran
/// the host on its local store for as long as its certificate stayed missing or
/// wrong. Now the alert behind a failed write is read: denied as a refusal naming it,
/// no fallback (which of the two ways the alert arrives is the race's doing; both must
/// refuse, and the send path's own proof is `resp.rs`'s
/// `a_refused_client_certificate_behind_a_failed_send_is_a_tls_refusal`). Control: the
/// CA's client certificate logs in through the server; and a server killed once the
/// open's commands came (no alert) is an outage still, the local store used.
#[test]
fn a_redis_server_refusing_the_client_certificate_is_a_refusal_through_libpam() {
    let t = "a_redis_server_refusing_the_client_certificate_is_a_refusal_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "redis-server") {
        return;
    }
    let ca = TestCa::new("redis-mtls");
    let other = TestCa::new("redis-mtls-other");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        tls_auth_clients: true,
        ..ServerConfig::default()
    });
    let prefix = prefix();
    let args = |url: &str, client: Option<(&Path, &Path)>| {
        let mut s = format!(
            "state={url} redis_plugin={} redis_prefix={prefix} redis_ca_file={} \
             redis_connect_timeout=3000 redis_timeout=5000 state_fallback=local",
            plugin().display(),
            ca.ca_cert.display()
        );
        if let Some((c, k)) = client {
            s.push_str(&format!(
                " redis_client_cert={} redis_client_key={}",
                c.display(),
                k.display()
            ));
        }
        s
    };
    let url = server.url(true);
    let good = args(&url, Some((&ca.client_cert, &ca.client_key)));
    init_store(&good);
    let (u, secret) = TestUser::enrolled("rm");
    let mut at = (now() / 30 + 1) * 30 + 15;
    let (d, lines) = login_logged(
        &Stack::probe("svc", &good),
        &u,
        &code_at(&secret, at),
        PEER,
        at,
    );
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(
        !messages(&lines).iter().any(|l| l.contains(FALLBACK_USED)),
        "control: the server served: {lines:?}"
    );
    for (what, client) in [
        ("no client certificate", None),
        (
            "another CA's client certificate",
            Some((other.client_cert.as_path(), other.client_key.as_path())),
        ),
    ] {
        at += 30;
        let (d, lines) = login_logged(
            &Stack::probe("svc", &args(&url, client)),
            &u,
            &code_at(&secret, at),
            PEER,
            at,
        );
        refused_naming_the_alert(what, &d, &lines);
    }
    // Control beyond: a server that passed the handshake and dies once the open's
    // commands came (no alert, no `close_notify`) is an outage, as it was.
    let dying = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    let killer = kill_once_seen(&dying, "INFO");
    at += 30;
    let lone = args(&format!("rediss://127.0.0.1:{}", dying.port), None);
    let (d, lines) = login_logged(
        &Stack::probe("svc", &lone),
        &u,
        &code_at(&secret, at),
        PEER,
        at,
    );
    assert!(
        killer.join().expect("killer"),
        "the server was killed after the commands came"
    );
    assert_eq!(d.returned(), Returned::Success, "killed: {d:?} {lines:?}");
    let m = messages(&lines);
    assert!(
        m.iter().any(|l| l.contains(FALLBACK_USED)),
        "killed: an outage, the local store: {lines:?}"
    );
    assert!(
        !m.iter().any(|l| l.contains("state store refused")),
        "killed: no refusal: {lines:?}"
    );
}

/// docs/fleet.md, "Replicas, Sentinel and failover": `rediss+sentinel://` verifies each
/// sentinel as it would the server, and where every sentinel listed fails TLS (an
/// expired certificate, one for another name) none could name the primary: a refusal
/// naming each reason, with `state_fallback=local` set and not taken. Sentinels failing
/// TLS and the others unreachable are an outage, which the fallback takes (as for etcd
/// members). Control: a sentinel whose certificate passes (a stand-in that then answers
/// nothing) is an outage with no word of certificates. The refusal's hint about
/// sentinel ports and the `sentinel monitor` name is off the point for certificates
/// and left out; a TLS data server named with them, which says it is not a sentinel,
/// brings it back.
#[test]
fn sentinels_failing_tls_are_a_refusal_and_with_one_unreachable_an_outage_through_libpam() {
    let t = "sentinels_failing_tls_are_a_refusal_and_with_one_unreachable_an_outage_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("sentinels");
    let (wrong_name, wrong_key) = signed(
        ca.dir.path(),
        "wrongname",
        "other.example",
        "subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n",
    );
    let expired = signed_for(&ca, "expired", "20200101000000Z", "20200103000000Z");
    let good = StandIn::start(&ca.server_cert, &ca.server_key, &[]);
    let expired_sentinel = StandIn::start(&expired, &ca.server_key, &[]);
    let wrong_sentinel = StandIn::start(&wrong_name, &wrong_key, &[]);
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let args = |ports: &[u16]| {
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!(
            "state=rediss+sentinel://{}/fleet redis_plugin={} redis_prefix={} \
             redis_connect_timeout=3000 redis_timeout=500 state_fallback=local \
             redis_ca_file={}",
            nodes.join(","),
            plugin().display(),
            prefix(),
            ca.ca_cert.display()
        )
    };
    let (u, secret) = TestUser::enrolled("ts");
    assert_handshake_passed("control", &args(&[good.port]), &u, &secret);
    let said = assert_refused(
        "every sentinel failing TLS",
        &args(&[expired_sentinel.port, wrong_sentinel.port]),
        &u,
        &secret,
        &[
            "no sentinel named the primary",
            "certificate has expired",
            "IP address mismatch",
        ],
    );
    assert!(
        !said.contains("26379") && !said.contains("sentinel monitor"),
        "every sentinel failing TLS: no hint about ports or the name: {said}"
    );
    // Control: one of them a data server, not a sentinel: the hint is on the point.
    let data = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    assert_refused(
        "a sentinel failing TLS and a data server",
        &args(&[expired_sentinel.port, data.port]),
        &u,
        &secret,
        &[
            "no sentinel named the primary",
            "certificate has expired",
            "not a sentinel",
            "26379",
            "sentinel monitor",
        ],
    );
    let (d, lines) = login(&args(&[expired_sentinel.port, down]), &u, &secret);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "TLS and down: {d:?} {lines:?}"
    );
    assert!(
        messages(&lines)
            .iter()
            .any(|l| l.contains(FALLBACK_USED) && l.contains("state store unavailable")),
        "TLS and down: an outage, the local store used: {lines:?}"
    );
}
