//! Fleet faults through the real libpam, each shown to happen where it is claimed and
//! each with a control (the same set-up without the fault logs in); every denial's log
//! line names its cause (SECURITY.md M4–M8, M10; R31, R32).
//!
//! - A server that stalls mid-update: a proxy between the module and a real
//!   `redis-server` forwards the read of the user's record, then holds back the
//!   compare-and-set (counted), so the stall is exactly between read and write.
//! - Credentials: a server that requires a password, so the root-owned 0600 file is what
//!   makes the control log in, and a file not root's (or readable by others) fails for
//!   that reason.
//! - TLS verification, plugin trust, corrupt records on the server, and a hostile or
//!   failing secret command.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use system_tests::fleet::{RedisServer, ServerConfig, TestCa, plugin, trusted_dir};
use system_tests::proxy::{compare_and_set_key, listen, read_resp_command};
use system_tests::*;

/// A key prefix no other test of this binary uses.
fn fresh_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "p{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A probe stack using the Redis store at `url` with `extra` options.
/// The store is initialised as an admin would (`totp-state init`) where these options
/// reach it; hosts built to fail cannot, and each test's control login shows that the
/// working ones did.
fn host(url: &str, extra: &str) -> Stack {
    let args = format!(
        "state={url} redis_plugin={} redis_prefix={} redis_connect_timeout=300 \
         redis_timeout=300 {extra}",
        plugin().display(),
        fresh_prefix()
    );
    initialised(&args)
}

/// A probe stack with `args`, after `totp-state init` with the same options (which
/// fails harmlessly where the options are built to fail).
fn initialised(args: &str) -> Stack {
    let _ = state_tool(&["init", "--never-used", "--options", args]);
    Stack::probe("svc", args)
}

/// One login with real time (a stalled server must meet a running clock), its syslog
/// lines and how long it took. Every login of this file answers with the right code, so
/// "invalid verification code" in the log would misreport a fault: it is asserted
/// absent (a store or command failure compares no code).
fn timed_login(stack: &Stack, user: &TestUser, code: &str) -> (Drive, Vec<String>, Duration) {
    let started = Instant::now();
    let (d, lines) = login_logged(stack, user, code, PEER, None);
    no_wrong_code_line(&lines);
    (d, lines, started.elapsed())
}

/// Control: `user` logs in on `stack` with a code of now; the login's syslog lines.
fn control_logs_in(stack: &Stack, user: &TestUser, secret: &str) -> Vec<String> {
    let (d, lines, _) = timed_login(stack, user, &code_at(secret, now()));
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    lines
}

fn no_wrong_code_line(lines: &[String]) {
    assert!(
        !logged(lines, &["invalid verification code"]),
        "a fault logged as a wrong code: {lines:?}"
    );
}

/// True when one log line contains every needle.
fn logged(lines: &[String], needles: &[&str]) -> bool {
    lines.iter().any(|l| {
        let m = syslog_message(l);
        needles.iter().all(|n| m.contains(n))
    })
}

fn denied(d: &Drive) -> bool {
    !matches!(d.returned(), Returned::Success | Returned::Ignore)
}

// ---------------------------------------------------------------------------------------
// A proxy that stalls the compare-and-set

/// A TCP proxy in front of a real server. It parses the client's RESP commands and
/// forwards them, except, while `stall` is set, the compare-and-set of a user's record
/// (`FCALL` or `EVAL` on a `…user:…` key): that one is held back, the connection left open and
/// silent, as a server that stopped answering mid-update would leave it.
struct StallProxy {
    port: u16,
    /// Its switches and counters, read and set through the proxy itself.
    shared: Shared,
}

/// The proxy's switches and counters, shared by its connections.
#[derive(Clone, Default)]
struct Shared {
    stall: Arc<AtomicBool>,
    /// Compare-and-sets held back.
    stalled: Arc<AtomicUsize>,
    /// Of those, how many came after the same connection's read of that record
    /// (`HMGET` of the same key) had been forwarded and answered.
    stalled_after_read: Arc<AtomicUsize>,
    /// Compare-and-sets forwarded.
    forwarded_cas: Arc<AtomicUsize>,
    /// While set, the read of a user's record (`HMGET` on a `…user:…` key) is not
    /// forwarded: the proxy answers it with these bytes itself.
    answer_read: Arc<Mutex<Option<Vec<u8>>>>,
    /// Reads answered that way.
    answered: Arc<AtomicUsize>,
    /// While set, those answers are dripped: one byte, then this pause, and so on.
    drip: Arc<Mutex<Option<Duration>>>,
}

impl std::ops::Deref for StallProxy {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl StallProxy {
    fn start(server_port: u16) -> StallProxy {
        let shared = Shared::default();
        let serving = shared.clone();
        let port = listen(move |client| {
            let _ = serve(client, server_port, &serving);
        });
        StallProxy { port, shared }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Appends one whole RESP reply from `r` to `out`; false at the end of the stream.
fn read_reply(r: &mut BufReader<TcpStream>, out: &mut Vec<u8>) -> std::io::Result<bool> {
    let start = out.len();
    if r.read_until(b'\n', out)? == 0 {
        return Ok(false);
    }
    let line = out[start..].to_vec();
    let number = || -> std::io::Result<i64> {
        std::str::from_utf8(&line[1..])
            .ok()
            .and_then(|s| s.trim_end().parse().ok())
            .ok_or_else(|| std::io::Error::other("bad RESP reply header"))
    };
    match line.first() {
        Some(b'$') => {
            if let Ok(n) = usize::try_from(number()?) {
                let mut body = vec![0u8; n + 2];
                r.read_exact(&mut body)?;
                out.extend_from_slice(&body);
            }
        }
        Some(b'*') => {
            for _ in 0..number()?.max(0) {
                if !read_reply(r, out)? {
                    return Ok(false);
                }
            }
        }
        _ => {}
    }
    Ok(true)
}

/// What the proxy does with the server's next reply.
enum Action {
    Forward,
    /// Send these bytes instead (dripped with this pause between bytes).
    Replace(Vec<u8>, Option<Duration>),
}

fn serve(client: TcpStream, server_port: u16, shared: &Shared) -> std::io::Result<()> {
    let (stall, stalled, after_read, forwarded) = (
        &shared.stall,
        &shared.stalled,
        &shared.stalled_after_read,
        &shared.forwarded_cas,
    );
    let mut server = TcpStream::connect(("127.0.0.1", server_port))?;
    let mut back_from = BufReader::new(server.try_clone()?);
    let mut back_to = client.try_clone()?;
    // The module pipelines its commands (the open sends INFO and every read at once), so
    // a reply the proxy makes up must take the place of the server's reply in order: the
    // command it replaces goes to the server as a PING, whose reply it then replaces. A
    // command held back is never sent, so no reply of it is awaited.
    let actions: Arc<Mutex<std::collections::VecDeque<Action>>> = Arc::default();
    let pending = actions.clone();
    let replies = std::thread::spawn(move || {
        let mut reply = Vec::new();
        while let Ok(true) = read_reply(&mut back_from, &mut reply) {
            let action = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let sent = match action {
                Some(Action::Replace(bytes, Some(pause))) => bytes.iter().try_for_each(|b| {
                    back_to.write_all(&[*b])?;
                    std::thread::sleep(pause);
                    Ok::<(), std::io::Error>(())
                }),
                Some(Action::Replace(bytes, None)) => back_to.write_all(&bytes),
                _ => back_to.write_all(&reply),
            };
            if sent.is_err() {
                break;
            }
            reply.clear();
        }
        let _ = back_to.shutdown(Shutdown::Both);
    });
    let mut reader = BufReader::new(client.try_clone()?);
    let mut read_keys: Vec<Vec<u8>> = Vec::new();
    while let Some((raw, args)) = read_resp_command(&mut reader)? {
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        let is_record =
            |k: &[u8]| k.windows(4).any(|w| w == b"uid:") || k.windows(5).any(|w| w == b"user:");
        if let Some(key) = compare_and_set_key(&args).filter(|k| is_record(k)) {
            if stall.load(Ordering::SeqCst) {
                stalled.fetch_add(1, Ordering::SeqCst);
                if read_keys.iter().any(|k| k == key) {
                    after_read.fetch_add(1, Ordering::SeqCst);
                }
                // Silent from here on: read and drop whatever else comes, until the
                // module gives up and closes the connection.
                let mut sink = [0u8; 4096];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                break;
            }
            forwarded.fetch_add(1, Ordering::SeqCst);
        }
        if name == b"HMGET"
            && let Some(k) = args.get(1)
        {
            let answer = shared
                .answer_read
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(bytes) = answer.filter(|_| is_record(k)) {
                shared.answered.fetch_add(1, Ordering::SeqCst);
                let drip = *shared.drip.lock().unwrap_or_else(|e| e.into_inner());
                actions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(Action::Replace(bytes, drip));
                server.write_all(b"*1\r\n$4\r\nPING\r\n")?;
                continue;
            }
            read_keys.push(k.clone());
        }
        actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Action::Forward);
        server.write_all(&raw)?;
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = replies.join();
    Ok(())
}

/// M4 / R31: the server stalls after the module has read the user's record and before
/// its compare-and-set (the proxy holds the compare-and-set back, shown by its counters): the
/// login is denied within the documented bound (connect timeout plus a bounded number
/// of command timeouts; here a 10-s hang guard, and at least one command timeout), the
/// log names the unavailable store, and the code was not used (the write never reached
/// the server). Control: the same proxy forwarding everything logs in.
#[test]
fn a_server_stalling_between_read_and_compare_and_set_denies_in_bounded_time() {
    let t = "a_server_stalling_between_read_and_compare_and_set_denies_in_bounded_time";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let proxy = StallProxy::start(server.port);
    let stack = host(&proxy.url(), "");

    // Control: through the proxy, nothing held back.
    let (u, secret) = TestUser::enrolled("sc");
    control_logs_in(&stack, &u, &secret);
    assert!(
        proxy.forwarded_cas.load(Ordering::SeqCst) >= 1,
        "control: the compare-and-set went through the proxy"
    );

    // The stall.
    let (v, secret_v) = TestUser::enrolled("sd");
    let code = code_at(&secret_v, now());
    proxy.stall.store(true, Ordering::SeqCst);
    let (d, lines, took) = timed_login(&stack, &v, &code);
    proxy.stall.store(false, Ordering::SeqCst);
    assert!(denied(&d), "stalled mid-update: {d:?}");
    let stalled = proxy.stalled.load(Ordering::SeqCst);
    let after_read = proxy.stalled_after_read.load(Ordering::SeqCst);
    assert!(stalled >= 1, "no compare-and-set was held back");
    assert_eq!(
        after_read, stalled,
        "every held-back compare-and-set followed the read of the same record"
    );
    assert!(
        took >= Duration::from_millis(300),
        "denied before a command timeout could run out: {took:?}"
    );
    // The bound is proven by the log line naming it; the time only guards a hang.
    assert!(took < Duration::from_secs(60), "hang guard: {took:?}");
    assert!(
        logged(
            &lines,
            &[
                "state store unavailable for",
                &v.name,
                "Redis",
                "within 300 ms"
            ]
        ),
        "the log names the cause and the bound: {lines:?}"
    );
    // The write never reached the server: the same code logs in once the server
    // answers again (within its step).
    let (d, lines, _) = timed_login(&stack, &v, &code);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the stalled write was not applied: {d:?} {lines:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Credentials

/// A credentials file `dir/name` for the server's `fleet` user, of `mode`, owned by
/// `owner`.
fn credentials_file(dir: &Path, name: &str, password: &str, mode: u32, owner: u32) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("username=fleet\npassword={password}\n")).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    std::os::unix::fs::chown(&p, Some(owner), None).expect("chown");
    p
}

/// M5 / R31: the server requires a password, so the control (a root-owned 0600
/// credentials file) logs in only because of that file; the same file owned by another
/// user, or readable by group or others, is refused for that reason (the log names the
/// credentials file), and so are no credentials and a wrong password.
#[test]
fn credentials_must_be_roots_and_private_and_right() {
    if !require_root("credentials_must_be_roots_and_private_and_right") {
        return;
    }
    let server = RedisServer::start(&ServerConfig {
        acl_password: Some("correct horse"),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("cr");
    let dir = trusted_dir("cred");
    let cred = |name: &str, password: &str, mode: u32, owner: u32| {
        credentials_file(dir.path(), name, password, mode, owner)
    };
    let with = |p: &Path| {
        host(
            &server.url(false),
            &format!("redis_credentials={}", p.display()),
        )
    };
    let url = server.url(false);

    // Control: root's, 0600, the right password.
    let good = cred("good", "correct horse", 0o600, 0);
    control_logs_in(&with(&good), &u, &secret);

    let other_owner = cred("nobodys", "correct horse", 0o600, 65534);
    let readable = cred("readable", "correct horse", 0o640, 0);
    let wrong = cred("wrong", "not the password", 0o600, 0);
    let cases: Vec<(&str, Stack, &[&str])> = vec![
        (
            "owned by another user",
            with(&other_owner),
            &["credentials file", "owned by uid 65534"],
        ),
        (
            "readable by the group",
            with(&readable),
            &["credentials file", "mode 0640 is too permissive"],
        ),
        ("no credentials", host(&url, ""), &["NOAUTH"]),
        (
            "wrong password",
            with(&wrong),
            &["Password authentication failed"],
        ),
    ];
    for (what, stack, cause) in cases {
        let (d, lines, _) = timed_login(&stack, &u, &code_at(&secret, now()));
        assert!(denied(&d), "{what}: {d:?}");
        assert!(
            logged(&lines, cause),
            "{what}: log names {cause:?}: {lines:?}"
        );
    }
}

/// R31, issue 21 item 7: a server with a password whose client table is full answers the
/// module's `AUTH` with `ERR max number of clients reached`. That is the server's state,
/// logged as the store being unavailable (so `state_fallback=local` applies), never as
/// "Password authentication failed", which sent the admin to a credentials file that was
/// right. Controls: the same host logs in before the table fills and after it has room.
#[test]
fn a_full_client_table_is_an_outage_not_a_wrong_password_through_libpam() {
    let t = "a_full_client_table_is_an_outage_not_a_wrong_password_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig {
        acl_password: Some("correct horse"),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("mc");
    let dir = trusted_dir("cred");
    let good = credentials_file(dir.path(), "good", "correct horse", 0o600, 0);
    let stack = host(
        &server.url(false),
        &format!("redis_credentials={}", good.display()),
    );
    control_logs_in(&stack, &u, &secret);

    // One client allowed, and this connection is it.
    let mut filler = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    filler
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut send = |args: &[&str]| {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        filler.write_all(req.as_bytes()).expect("send");
        let mut buf = [0u8; 512];
        let n = filler.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(send(&["AUTH", "fleet", "correct horse"]).starts_with("+OK"));
    assert!(send(&["CONFIG", "SET", "maxclients", "1"]).starts_with("+OK"));
    let (v, secret_v) = TestUser::enrolled("md");
    let (d, lines, _) = timed_login(&stack, &v, &code_at(&secret_v, now()));
    assert!(denied(&d), "{d:?}");
    assert!(
        logged(
            &lines,
            &["state store unavailable", "AUTH", "max number of clients"]
        ),
        "{lines:?}"
    );
    assert!(
        !logged(&lines, &["Password authentication failed"]),
        "{lines:?}"
    );
    assert!(send(&["CONFIG", "SET", "maxclients", "10000"]).starts_with("+OK"));
    drop(filler);
    control_logs_in(&stack, &v, &secret_v);
}

/// Never log a password: a server where `AUTH` is disabled (`rename-command AUTH ""`)
/// answers it `unknown command 'AUTH', with args beginning with: 'fleet' 'PASSWORD'`, and
/// the module logged that reply, the password in it, as "Password authentication
/// failed" (and `totp-state ping` printed it). Now neither the log nor `ping` shows it;
/// the log names the unknown command and `rename-command`. Control: the same credentials
/// file against a server whose `AUTH` works logs in.
#[test]
fn a_server_echoing_the_password_of_an_unknown_auth_never_gets_it_logged_through_libpam() {
    let t = "a_server_echoing_the_password_of_an_unknown_auth_never_gets_it_logged_through_libpam";
    if !require_root(t) {
        return;
    }
    const PASSWORD: &str = "correct horse battery";
    let dir = trusted_dir("cred");
    let file = credentials_file(dir.path(), "good", PASSWORD, 0o600, 0);
    let options = format!("redis_credentials={}", file.display());
    let (u, secret) = TestUser::enrolled("pe");
    let working = RedisServer::start(&ServerConfig {
        acl_password: Some(PASSWORD),
        ..ServerConfig::default()
    });
    control_logs_in(&host(&working.url(false), &options), &u, &secret);

    let renamed = RedisServer::start(&ServerConfig {
        acl_password: Some(PASSWORD),
        extra: &["--rename-command", "AUTH", ""],
        ..ServerConfig::default()
    });
    let stack = host(&renamed.url(false), &options);
    let (d, lines, _) = timed_login(&stack, &u, &code_at(&secret, now()));
    assert!(denied(&d), "{d:?}");
    assert!(
        logged(&lines, &["unknown command 'AUTH'", "rename-command"]),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("horse")),
        "the password was logged: {lines:?}"
    );
    let args = format!(
        "state={} redis_plugin={} {options}",
        renamed.url(false),
        plugin().display()
    );
    let ping = state_tool(&["ping", "--options", &args]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    assert!(!ping.status.success(), "{said}");
    assert!(said.contains("unknown command 'AUTH'"), "{said}");
    assert!(!said.contains("horse"), "ping printed the password: {said}");
}

// ---------------------------------------------------------------------------------------
// TLS

/// [`host`] for a TLS `url` verified against `ca_file`, with a connect timeout a TLS
/// handshake on a busy machine fits in, and `extra` options.
fn verifying_host(url: &str, ca_file: &Path, extra: &str) -> Stack {
    host(
        url,
        &format!(
            "redis_ca_file={} redis_connect_timeout=2000 {extra}",
            ca_file.display()
        ),
    )
}

/// A directory `parent/open` anyone may write.
fn world_writable_dir(parent: &Path) -> PathBuf {
    let open = parent.join("open");
    fs::create_dir(&open).expect("mkdir");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
    open
}

/// M6 / R31: TLS is verified against `redis_ca_file=`. Control: the right CA logs in;
/// another CA and plain RESP to the TLS port are denied, the log naming the failed
/// verification.
#[test]
fn tls_is_verified_through_libpam() {
    let t = "tls_is_verified_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("right");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("tl");
    let tls = |ca_file: &Path| verifying_host(&server.url(true), ca_file, "");
    control_logs_in(&tls(&ca.ca_cert), &u, &secret);

    let wrong = TestCa::new("wrong");
    let (d, lines, _) = timed_login(&tls(&wrong.ca_cert), &u, &code_at(&secret, now()));
    assert!(denied(&d), "another CA: {d:?}");
    assert!(
        logged(&lines, &["certificate verify failed"]),
        "another CA: {lines:?}"
    );

    let (d, lines, _) = timed_login(&host(&server.url(false), ""), &u, &code_at(&secret, now()));
    assert!(denied(&d), "plain RESP to the TLS port: {d:?}");
    assert!(
        logged(&lines, &["no usable state store", "Redis"]),
        "plain RESP to the TLS port: {lines:?}"
    );
}

/// R31: the server's certificate must name the host the URL names. The test CA's
/// server certificate names `localhost` and 127.0.0.1. In a private mount namespace
/// whose `/etc/hosts` also gives 127.0.0.1 the name `wrongname`, `rediss://wrongname`
/// reaches the same server with the same CA and is denied ("certificate verify failed",
/// a host-name mismatch); `rediss://localhost` (a DNS name, sent as SNI) logs in.
#[test]
fn the_server_certificate_must_name_the_host_through_libpam() {
    let t = "the_server_certificate_must_name_the_host_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("names");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("hn");
    let hosts = tempfile::NamedTempFile::new().expect("hosts file");
    fs::write(hosts.path(), "127.0.0.1 localhost\n127.0.0.1 wrongname\n").expect("write");
    let login = |name: &str| {
        let stack = verifying_host(&format!("rediss://{name}:{}", server.port), &ca.ca_cert, "");
        let driver = Driver::login(&stack, &u, &code_at(&secret, now())).rhost(PEER);
        capture_syslog_with_bind(hosts.path(), Path::new("/etc/hosts"), &driver)
    };
    let (d, lines) = login("localhost");
    assert_eq!(
        d.returned(),
        Returned::Success,
        "localhost: {d:?} {lines:?}"
    );
    let (d, lines) = login("wrongname");
    assert!(denied(&d), "wrongname: {d:?}");
    assert!(
        logged(&lines, &["certificate verify failed"]),
        "wrongname: {lines:?}"
    );
}

/// Issue 21, item 3: with `redis_ca_file=` only that CA is loaded. Under strace, a TLS
/// login opens the configured CA file and no file of the system bundle (native-tls,
/// which the plugin used before, loaded the bundle on every connection, about 40 ms of
/// CPU, before dropping it for the configured CA). Control: without `redis_ca_file=`,
/// the same trace shows the bundle read (by the module, from its fixed path), so the
/// check sees a bundle opened when one is.
#[test]
fn only_the_configured_ca_is_loaded_through_libpam() {
    let t = "only_the_configured_ca_is_loaded_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") || !require_tool(t, "strace") {
        return;
    }
    let ca = TestCa::new("only");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("oc");
    let traced_login = |stack: &Stack| {
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let cmd = Driver::login(stack, &u, &code_at(&secret, now()))
            .rhost(PEER)
            .command();
        let mut strace = std::process::Command::new("strace");
        strace
            .args([
                "-f",
                "-qq",
                "-s",
                "0",
                "-e",
                "trace=open,openat,openat2",
                "-o",
            ])
            .arg(trace.path())
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                strace.env(k, v);
            }
        }
        let (out, lines) = with_syslog_capture(&strace);
        (
            Drive::ran(&out),
            lines,
            fs::read_to_string(trace.path()).expect("read the trace"),
        )
    };
    let bundle = |trace: &str| {
        trace.lines().any(|l| {
            l.contains("ca-certificates.crt")
                || l.contains("ssl/cert.pem")
                || l.contains("ca-bundle")
                || l.contains("/etc/ssl/certs\"")
        })
    };
    let with_ca = verifying_host(&server.url(true), &ca.ca_cert, "");
    let (d, lines, trace) = traced_login(&with_ca);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    // Opened by name in its checked directory (the walk holds the directory open).
    let ca_name = ca.ca_cert.file_name().expect("file name").to_string_lossy();
    assert!(
        trace.contains(&format!("\"{ca_name}\"")),
        "the configured CA was read:\n{trace}"
    );
    assert!(!bundle(&trace), "no file of the system bundle:\n{trace}");

    // Control: the system bundle, read when no CA file is configured.
    let (_, _, trace) = traced_login(&host(&server.url(true), "redis_connect_timeout=2000"));
    assert!(bundle(&trace), "control: the bundle was read:\n{trace}");
}

/// R31: `state_fallback=local` replaces only a store that cannot be reached. One that
/// refuses (TLS verified against another CA, a wrong password, credentials readable by
/// the group) or that may evict records denies exactly as without the option, with its
/// cause in the log, and the local store is not used: whoever can forge a certificate on
/// the path must not be able to turn the fleet's replay protection into one host's.
/// Control: the same options with the right credentials log in through the server, and
/// with the server stopped through the local store, the weakening logged.
#[test]
fn the_local_fallback_never_replaces_a_refusing_store_through_libpam() {
    let t = "the_local_fallback_never_replaces_a_refusing_store_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    const FALLBACK: &str = "state_fallback=local";
    const LOCAL: &[&str] = &["using this host's local store"];
    let ca = TestCa::new("fbright");
    let other_ca = TestCa::new("fbwrong");
    let tls_server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let mut server = RedisServer::start(&ServerConfig {
        acl_password: Some("correct horse"),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("fb");
    let dir = trusted_dir("fbcred");
    let cred = |name: &str, password: &str, mode: u32| {
        credentials_file(dir.path(), name, password, mode, 0)
    };
    let with = |p: &Path| {
        host(
            &server.url(false),
            &format!("redis_credentials={} {FALLBACK}", p.display()),
        )
    };
    let good = with(&cred("good", "correct horse", 0o600));
    let refusing: Vec<(&str, Stack, &[&str])> = vec![
        (
            "TLS verified against another CA",
            verifying_host(&tls_server.url(true), &other_ca.ca_cert, FALLBACK),
            &["certificate verify failed"],
        ),
        (
            "wrong password",
            with(&cred("wrong", "not the password", 0o600)),
            &["Password authentication failed"],
        ),
        (
            "credentials readable by the group",
            with(&cred("readable", "correct horse", 0o640)),
            &["credentials file", "mode 0640 is too permissive"],
        ),
    ];
    for (what, stack, cause) in &refusing {
        let (d, lines, _) = timed_login(stack, &u, &code_at(&secret, now()));
        assert!(denied(&d), "{what}: {d:?} {lines:?}");
        assert!(
            logged(&lines, cause),
            "{what}: log names {cause:?}: {lines:?}"
        );
        assert!(!logged(&lines, LOCAL), "{what}: no fallback: {lines:?}");
    }

    let config = |k: &[u8], v: &[u8]| {
        let r = server.raw(Some("correct horse"), &[b"CONFIG", b"SET", k, v]);
        assert!(r.starts_with(b"+OK"), "{}", String::from_utf8_lossy(&r));
    };
    config(b"maxmemory", b"1gb");
    config(b"maxmemory-policy", b"allkeys-lru");
    let (d, lines, _) = timed_login(&good, &u, &code_at(&secret, now()));
    assert!(denied(&d), "an evicting server: {d:?} {lines:?}");
    assert!(logged(&lines, &["maxmemory-policy"]), "{lines:?}");
    assert!(
        !logged(&lines, LOCAL),
        "an evicting server: no fallback: {lines:?}"
    );
    config(b"maxmemory-policy", b"noeviction");

    // Control: the server answers with the right credentials; then it is stopped.
    let lines = control_logs_in(&good, &u, &secret);
    assert!(!logged(&lines, LOCAL), "control: {lines:?}");
    server.stop();
    let (d, lines, _) = timed_login(&good, &u, &code_at(&secret, now() + 30));
    assert_eq!(
        d.returned(),
        Returned::Success,
        "server stopped: {d:?} {lines:?}"
    );
    assert!(logged(&lines, LOCAL), "server stopped: {lines:?}");
}

/// M6 / R31: client certificates, and only the configured CA. The server requires
/// client certificates of its CA (`tls-auth-clients yes`). Control: the CA, the client
/// certificate and its root-only 0600 key log in. Denied, each with its cause in the
/// log: no client certificate (the server's alert, read behind the reset of a send
/// when it loses the race with the module's first command; whether that is a refusal
/// or an outage is `fleet_tls_verification.rs`'s, with `state_fallback=local`); the
/// key readable by
/// the group; the CA file in a world-writable directory (R31, a whole root-only chain);
/// no `redis_ca_file=` while the environment's `SSL_CERT_FILE` names the right CA (the
/// environment is not read: only the system bundle, which does not hold the test CA);
/// `redis_ca_file=` naming another CA while `SSL_CERT_FILE` names the right one.
#[test]
fn tls_client_certificates_and_only_the_configured_ca_through_libpam() {
    let t = "tls_client_certificates_and_only_the_configured_ca_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("clients");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        tls_auth_clients: true,
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("tc");
    let url = server.url(true);
    let with = |extra: &str| host(&url, &format!("redis_connect_timeout=2000 {extra}"));
    let client = format!(
        "redis_client_cert={} redis_client_key={}",
        ca.client_cert.display(),
        ca.client_key.display()
    );
    let ca_opt = |p: &Path| format!("redis_ca_file={}", p.display());
    let login_env = |stack: &Stack, env: Option<&Path>| {
        let mut cmd = Driver::login(stack, &u, &code_at(&secret, now()))
            .rhost(PEER)
            .command();
        if let Some(p) = env {
            cmd.env("SSL_CERT_FILE", p);
        }
        let (out, lines) = with_syslog_capture(&cmd);
        no_wrong_code_line(&lines);
        (Drive::parse(&out), lines)
    };

    // Control.
    let good = with(&format!("{} {client}", ca_opt(&ca.ca_cert)));
    let (d, lines) = login_env(&good, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    // The key readable by the group.
    let dir = trusted_dir("tls-bad");
    let readable_key = dir.path().join("client.key");
    fs::copy(&ca.client_key, &readable_key).expect("copy");
    fs::set_permissions(&readable_key, fs::Permissions::from_mode(0o640)).expect("chmod");
    // The CA in a world-writable directory (the file itself root's and 0644).
    let open = world_writable_dir(dir.path());
    let open_ca = open.join("ca.pem");
    fs::copy(&ca.ca_cert, &open_ca).expect("copy");
    fs::set_permissions(&open_ca, fs::Permissions::from_mode(0o644)).expect("chmod");
    let wrong = TestCa::new("other");

    let cases: Vec<(&str, Stack, Option<&Path>, Vec<String>)> = vec![
        (
            "no client certificate",
            with(&ca_opt(&ca.ca_cert)),
            None,
            vec![
                "no usable state store".into(),
                "Redis".into(),
                "require a client certificate".into(),
            ],
        ),
        (
            "a group-readable key",
            with(&format!(
                "{} redis_client_cert={} redis_client_key={}",
                ca_opt(&ca.ca_cert),
                ca.client_cert.display(),
                readable_key.display()
            )),
            None,
            vec!["client key".into(), "mode 0640 is too permissive".into()],
        ),
        (
            "the CA in a world-writable directory",
            with(&format!("{} {client}", ca_opt(&open_ca))),
            None,
            vec![
                "CA file".into(),
                open_ca.display().to_string(),
                "mode 0777".into(),
            ],
        ),
        (
            "no CA file, SSL_CERT_FILE naming the right CA",
            with(&client),
            Some(&ca.ca_cert),
            vec!["certificate verify failed".into()],
        ),
        (
            "another CA file, SSL_CERT_FILE naming the right CA",
            with(&format!("{} {client}", ca_opt(&wrong.ca_cert))),
            Some(&ca.ca_cert),
            vec!["certificate verify failed".into()],
        ),
    ];
    for (what, stack, env, cause) in cases {
        let (d, lines) = login_env(&stack, env);
        assert!(denied(&d), "{what}: {d:?}");
        let needles: Vec<&str> = cause.iter().map(String::as_str).collect();
        assert!(
            logged(&lines, &needles),
            "{what}: the log names {cause:?}: {lines:?}"
        );
    }
}

/// R31 (paths): a `state=unix:` socket others could replace is refused before
/// connecting. Control: the server's socket, in a root-only directory chain, logs in.
/// Denied, the log naming the socket and the cause: a link to the same socket in a
/// world-writable directory, and a symbolic link to it in a root-only directory.
#[test]
fn a_socket_others_could_replace_is_refused_through_libpam() {
    if !require_root("a_socket_others_could_replace_is_refused_through_libpam") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("us");
    let unix = |p: &Path| host(&format!("unix:{}", p.display()), "");
    control_logs_in(&unix(&server.socket), &u, &secret);

    let dir = trusted_dir("sock-bad");
    let open = world_writable_dir(dir.path());
    let in_open = open.join("redis.sock");
    fs::hard_link(&server.socket, &in_open).expect("link");
    let symlink = dir.path().join("redis.sock");
    std::os::unix::fs::symlink(&server.socket, &symlink).expect("symlink");
    for (what, path, cause) in [
        ("in a world-writable directory", &in_open, "mode 0777"),
        ("a symbolic link", &symlink, "symbolic link"),
    ] {
        let (d, lines, _) = timed_login(&unix(path), &u, &code_at(&secret, now()));
        assert!(denied(&d), "{what}: {d:?}");
        assert!(
            logged(&lines, &["socket", &path.display().to_string(), cause]),
            "{what}: the log names the socket and {cause:?}: {lines:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Plugin trust

/// M8 / R31: a plugin others could replace is never loaded. Control: the root-owned
/// plugin in a root-only directory logs in; a copy in a world-writable directory, a
/// group-writable copy and a copy owned by another user are refused before loading, the
/// log naming the plugin.
#[test]
fn a_plugin_others_could_replace_is_never_loaded_through_libpam() {
    if !require_root("a_plugin_others_could_replace_is_never_loaded_through_libpam") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("pl");
    let with_plugin = |p: &Path| {
        initialised(&format!(
            "state={} redis_plugin={} redis_prefix={} redis_connect_timeout=300",
            server.url(false),
            p.display(),
            fresh_prefix()
        ))
    };
    control_logs_in(&with_plugin(plugin()), &u, &secret);

    let open_dir = tempfile::Builder::new()
        .prefix("pam_totp-open")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(open_dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let in_open_dir = open_dir.path().join("redis.so");
    fs::copy(plugin(), &in_open_dir).expect("copy");
    fs::set_permissions(&in_open_dir, fs::Permissions::from_mode(0o755)).expect("chmod");

    let dir = trusted_dir("plugin-bad");
    let group_writable = dir.path().join("gw.so");
    fs::copy(plugin(), &group_writable).expect("copy");
    fs::set_permissions(&group_writable, fs::Permissions::from_mode(0o775)).expect("chmod");
    let not_roots = dir.path().join("nobody.so");
    fs::copy(plugin(), &not_roots).expect("copy");
    fs::set_permissions(&not_roots, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&not_roots, Some(65534), None).expect("chown");

    for (what, path, cause) in [
        ("in a world-writable directory", &in_open_dir, "mode 0777"),
        (
            "group-writable",
            &group_writable,
            "mode 0775 is too permissive",
        ),
        ("owned by another user", &not_roots, "owned by uid 65534"),
    ] {
        let (d, lines, _) = timed_login(&with_plugin(path), &u, &code_at(&secret, now()));
        assert!(denied(&d), "{what}: {d:?}");
        assert!(
            logged(
                &lines,
                &["Redis plugin", &path.display().to_string(), cause]
            ),
            "{what}: the log names the plugin and {cause:?}: {lines:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Corrupt records on the server

/// M7 / R31: a corrupt or foreign record on the server is refused, never reset: the
/// login is denied, the log names the unusable record, and the server's bytes are left
/// as they were. Control: the same user with no record (deleted) logs in.
#[test]
fn a_corrupt_remote_record_is_refused_never_reset_through_libpam() {
    if !require_root("a_corrupt_remote_record_is_refused_never_reset_through_libpam") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("cq");
    let prefix = fresh_prefix();
    let stack = initialised(&server.options(&format!(
        "redis_prefix={prefix} redis_connect_timeout=300 redis_timeout=300"
    )));
    let key = format!("{prefix}user:{}", u.name);
    control_logs_in(&stack, &u, &secret);

    let plants: [(&str, Vec<&[u8]>, &str); 4] = [
        (
            "garbage record",
            vec![b"HSET", key.as_bytes(), b"v", b"1", b"r", b"\x07garbage"],
            "unknown record version",
        ),
        (
            "version not a number",
            vec![b"HSET", key.as_bytes(), b"v", b"x", b"r", b""],
            "not a positive number",
        ),
        (
            "no version",
            vec![b"HSET", key.as_bytes(), b"r", b"\x01\x00"],
            "incomplete",
        ),
        (
            "a string",
            vec![b"SET", key.as_bytes(), b"a string"],
            "WRONGTYPE",
        ),
    ];
    for (what, plant, cause) in plants {
        server.raw(None, &[b"DEL", key.as_bytes()]);
        server.raw(None, &plant);
        let dump = || server.raw(None, &[b"DUMP", key.as_bytes()]);
        let before = dump();
        let (d, lines, _) = timed_login(&stack, &u, &code_at(&secret, now()));
        assert!(denied(&d), "{what}: {d:?}");
        assert!(
            logged(&lines, &["state record of", &u.name, "unusable", cause]),
            "{what}: the log names the unusable record and {cause:?}: {lines:?}"
        );
        assert_eq!(dump(), before, "{what}: the record was changed");
    }
    server.raw(None, &[b"DEL", key.as_bytes()]);
    std::thread::sleep(Duration::from_millis(1100));
    let step = now() / 30;
    while now() / 30 == step {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (d, lines, _) = timed_login(&stack, &u, &code_at(&secret, now()));
    assert_eq!(
        d.returned(),
        Returned::Success,
        "after the delete: {d:?} {lines:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The secret command

/// M10 / R32: a hostile or failing secret command denies, the user prompted like anyone
/// else, and the log names the cause. Control: the same file from a trusted, working
/// command logs in.
#[test]
fn a_hostile_or_failing_secret_command_denies_and_the_log_names_why() {
    if !require_root("a_hostile_or_failing_secret_command_denies_and_the_log_names_why") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let u = TestUser::create("sx");
    let secret = random_secret_b32();
    let file = totp_file(&secret);
    let dir = trusted_dir("cmd");
    let make = |name: &str, body: &str, mode: u32, owner: u32| {
        let path = dir.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::chown(&path, Some(owner), None).expect("chown");
        path
    };
    let stack_for = |cmd: &Path| {
        host(
            &server.url(false),
            &format!(
                "throttle_after=100 secret_command={} secret_command_user=nobody \
                 secret_command_timeout=2500",
                cmd.display()
            ),
        )
    };
    let serve = format!("cat <<'EOF'\n{file}EOF");
    let working = make("working", &serve, 0o755, 0);
    control_logs_in(&stack_for(&working), &u, &secret);

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&working, &link).expect("symlink");
    let cases: Vec<(&str, std::path::PathBuf, &str)> = vec![
        (
            "exits 1",
            make("exit1", "exit 1", 0o755, 0),
            "exited with status 1",
        ),
        (
            "slow",
            make("slow", &format!("sleep 5\n{serve}"), 0o755, 0),
            "timed out",
        ),
        (
            "killed by a signal",
            make("signal", "kill -9 $$", 0o755, 0),
            "killed by signal",
        ),
        (
            "empty output",
            make("empty", "exit 0", 0o755, 0),
            "printed nothing",
        ),
        (
            "not enrolled but talks",
            make("talks", "echo hi; exit 10", 0o755, 0),
            "not-enrolled status but printed",
        ),
        (
            "huge output",
            make("huge", "head -c 1000000 /dev/zero | tr '\\0' A", 0o755, 0),
            "printed more than",
        ),
        (
            "group-writable",
            make("gw", &serve, 0o775, 0),
            "not trusted",
        ),
        (
            "owned by another user",
            make("nobodys", &serve, 0o755, 65534),
            "not trusted",
        ),
        ("a symlink", link.clone(), "not trusted"),
    ];
    for (what, cmd, cause) in cases {
        let (d, lines, _) = timed_login(&stack_for(&cmd), &u, &code_at(&secret, now()));
        assert!(denied(&d), "{what}: {d:?}");
        assert_eq!(d.prompts, 1, "{what}: prompted like everybody else");
        assert!(
            logged(&lines, &[cause]),
            "{what}: the log names {cause:?}: {lines:?}"
        );
    }
}

/// M11 / R32, R33: through the module, the secret command runs as the named user with
/// no supplementary groups, an empty environment (only `PATH` the module sets and what
/// `sh` adds itself) and no terminal on stdin: a command that serves the file only when
/// all of that holds logs in. Control: the same command run by the test as root
/// refuses, so its checks can fail.
#[test]
fn the_secret_command_runs_as_the_named_user_with_nothing_inherited_through_libpam() {
    let t = "the_secret_command_runs_as_the_named_user_with_nothing_inherited_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let u = TestUser::create("si");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-id");
    let path = dir.path().join("checked");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             [ \"$(id -u)\" = \"$(id -u nobody)\" ] || {{ echo uid >&2; exit 1; }}\n\
             [ \"$(id -G)\" = \"$(id -g)\" ] || {{ echo groups >&2; exit 1; }}\n\
             [ -z \"$(env | grep -v -e '^PATH=' -e '^PWD=' -e '^SHLVL=' -e '^_=')\" ] || \
             {{ echo env >&2; exit 1; }}\n\
             [ -t 0 ] && {{ echo tty >&2; exit 1; }}\n\
             [ -z \"$(cat)\" ] || {{ echo stdin >&2; exit 1; }}\n\
             cat <<'EOF'\n{}EOF\n",
            totp_file(&secret)
        ),
    )
    .expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    // Control: as root, with this test's environment, the checks refuse.
    let out = std::process::Command::new(&path)
        .arg(&u.name)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success(), "the checks can fail: {out:?}");
    let stack = host(
        &server.url(false),
        &format!(
            "secret_command={} secret_command_user=nobody",
            path.display()
        ),
    );
    let (d, lines, _) = timed_login(&stack, &u, &code_at(&secret, now()));
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
}

/// M4 / R31, R36: a server that answers the read of a user's record with garbage (a
/// status line where an array belongs, an array of the wrong shape) or announces a
/// huge reply and then stays silent: the proxy answers the read itself (counted); the
/// login is denied within the bound (a 10-s guard), the log names the cause (a huge
/// announcement: "reply too large", refused before its bytes are awaited), and no
/// record is written. Control: the same proxy forwarding everything logs in.
#[test]
fn a_server_answering_garbage_or_a_huge_reply_denies_in_bounded_time() {
    if !require_root("a_server_answering_garbage_or_a_huge_reply_denies_in_bounded_time") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let proxy = StallProxy::start(server.port);
    let stack = host(&proxy.url(), "");
    let (u, secret) = TestUser::enrolled("gb");
    control_logs_in(&stack, &u, &secret);

    let (v, secret_v) = TestUser::enrolled("gc");
    let cases: [(&str, &[u8], &[&str]); 4] = [
        (
            "a status line",
            b"+garbage\r\n",
            &["unexpected HMGET reply"],
        ),
        (
            "an array of the wrong shape",
            b"*1\r\n$1\r\n1\r\n",
            &["stored record is incomplete"],
        ),
        (
            "a huge string announced, then silence",
            b"$2147483647\r\nxx",
            &["state store unavailable for", "Redis", "reply too large"],
        ),
        (
            "a huge record announced, then silence",
            b"*2\r\n$1\r\n1\r\n$100000000\r\nxx",
            &["state store unavailable for", "Redis", "reply too large"],
        ),
    ];
    for (what, bytes, cause) in cases {
        *proxy.answer_read.lock().expect("lock") = Some(bytes.to_vec());
        let before = proxy.answered.load(Ordering::SeqCst);
        let (d, lines, took) = timed_login(&stack, &v, &code_at(&secret_v, now()));
        *proxy.answer_read.lock().expect("lock") = None;
        assert!(
            proxy.answered.load(Ordering::SeqCst) > before,
            "{what}: the proxy answered the read"
        );
        assert!(denied(&d), "{what}: {d:?}");
        // A hang guard, not a speed goal: the cause below is the proof of the bound.
        assert!(
            took < Duration::from_secs(60),
            "{what}: hang guard: {took:?}"
        );
        assert!(
            logged(&lines, cause),
            "{what}: the log names {cause:?}: {lines:?}"
        );
    }
    // Nothing was written for the user: the same proxy, forwarding again, logs them in
    // with a code of this step.
    let (d, lines, _) = timed_login(&stack, &v, &code_at(&secret_v, now()));
    assert_eq!(
        d.returned(),
        Returned::Success,
        "afterwards: {d:?} {lines:?}"
    );
}

/// One login under an address-space limit of `limit` bytes (`prlimit --as`), real time:
/// a module that tried to buffer more would fail to allocate and abort.
fn login_limited(
    stack: &Stack,
    user: &TestUser,
    code: &str,
    limit: u64,
) -> (Drive, Vec<String>, Duration) {
    let inner = Driver::login(stack, user, code).rhost(PEER).command();
    let mut limited = std::process::Command::new("prlimit");
    limited
        .arg(format!("--as={limit}"))
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args());
    let started = Instant::now();
    let (out, lines) = with_syslog_capture(&limited);
    no_wrong_code_line(&lines);
    let d = Drive::parse(&out);
    assert!(
        !out.stdout.is_empty(),
        "pam-drive did not finish (killed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, lines, started.elapsed())
}

/// M4 / R36: bounds hold per command, not per read. The proxy answers the read of a
/// user's record itself (counted) with a valid "no record" reply (14 bytes):
/// - control: sent at once, the login succeeds (the write goes to the real server);
/// - dripped one byte every 150 ms (2.1 s in all, every byte well within the 300-ms
///   `redis_timeout=`): denied once 300 ms have passed since the command was sent, long
///   before the drip ends, the log naming the whole-command bound;
/// - a 1.5-GB string announced, the login running under a 512-MiB address-space limit:
///   denied on the header (the log names the announced size), cleanly (the driver
///   finishes and reports: no failed allocation). The control runs under the same
///   limit.
#[test]
fn every_reply_is_bounded_in_total_time_and_size_through_libpam() {
    let t = "every_reply_is_bounded_in_total_time_and_size_through_libpam";
    if !require_root(t) || !require_tool(t, "prlimit") {
        return;
    }
    const LIMIT: u64 = 512 << 20;
    let server = RedisServer::start(&ServerConfig::default());
    let proxy = StallProxy::start(server.port);
    let stack = host(&proxy.url(), "");
    let no_record: &[u8] = b"*2\r\n$-1\r\n$-1\r\n";
    let answer = |bytes: Option<&[u8]>, drip: Option<Duration>| {
        *proxy.answer_read.lock().expect("lock") = bytes.map(<[u8]>::to_vec);
        *proxy.drip.lock().expect("lock") = drip;
    };

    // Control: the same reply, at once, under the same memory limit.
    let (u, secret) = TestUser::enrolled("dc");
    answer(Some(no_record), None);
    let before = proxy.answered.load(Ordering::SeqCst);
    let (d, lines, _) = login_limited(&stack, &u, &code_at(&secret, now()), LIMIT);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(
        proxy.answered.load(Ordering::SeqCst) > before,
        "control: answered by the proxy"
    );

    // Dripped.
    let (v, secret_v) = TestUser::enrolled("dd");
    answer(Some(no_record), Some(Duration::from_millis(150)));
    let before = proxy.answered.load(Ordering::SeqCst);
    let (d, lines, took) = timed_login(&stack, &v, &code_at(&secret_v, now()));
    answer(None, None);
    assert!(
        proxy.answered.load(Ordering::SeqCst) > before,
        "drip: answered by the proxy"
    );
    assert!(denied(&d), "drip: {d:?}");
    assert!(
        took >= Duration::from_millis(300),
        "drip: denied before the command's bound: {took:?}"
    );
    // Cut off before the drip ended: denied (the whole reply, had it been awaited, is
    // a valid "no record" and the login would succeed) with the whole-command bound
    // logged below. The time only guards a hang.
    assert!(took < Duration::from_secs(60), "drip: hang guard: {took:?}");
    assert!(
        logged(
            &lines,
            &[
                "state store unavailable for",
                &v.name,
                "HMGET",
                "no complete reply within 300 ms"
            ]
        ),
        "drip: the log names the bound: {lines:?}"
    );

    // 1.5 GB announced.
    answer(Some(b"$1500000000\r\n"), None);
    let before = proxy.answered.load(Ordering::SeqCst);
    let (d, lines, took) = login_limited(&stack, &v, &code_at(&secret_v, now()), LIMIT);
    answer(None, None);
    assert!(
        proxy.answered.load(Ordering::SeqCst) > before,
        "huge: answered by the proxy"
    );
    assert!(denied(&d), "huge: {d:?}");
    assert!(
        logged(
            &lines,
            &[
                "state store unavailable for",
                &v.name,
                "reply too large",
                "1500000000"
            ]
        ),
        "huge: the log names the announced size: {lines:?}"
    );
    assert!(took < Duration::from_secs(10), "huge: hang guard: {took:?}");

    // Nothing was written for v: forwarding again, a code of this step logs in.
    let (d, lines, _) = timed_login(&stack, &v, &code_at(&secret_v, now()));
    assert_eq!(
        d.returned(),
        Returned::Success,
        "afterwards: {d:?} {lines:?}"
    );
}

/// Connect after the prompt: nothing is held while the user types. The server closes
/// connections idle for a second (`CONFIG SET timeout 1`), and the user answers only
/// once the server has closed a connection the test opened when the prompt appeared
/// (pam-drive's answer gate): the fault is shown to act while the user types. The login succeeds: the module connected after the answer. Before, the
/// connection opened before the prompt was gone by then and the login was denied.
#[test]
fn a_server_idle_timeout_while_the_user_types_does_not_deny_through_libpam() {
    let t = "a_server_idle_timeout_while_the_user_types_does_not_deny_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let stack = host(&server.url(false), "");
    let reply = server.raw(None, &[b"CONFIG", b"SET", b"timeout", b"1"]);
    assert!(
        reply.starts_with(b"+OK"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let (u, secret) = TestUser::enrolled("ty");
    let gates = gates();
    let gate = gates.path().join("go");
    let login = gated_login(&stack, &u, &code_at(&secret, now()), &gate);
    // The user "types" until the server has closed an idle connection opened now
    // (its end of file), however long a busy server takes to get to it.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 16];
    loop {
        match idle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => panic!("the server sent {n} bytes on an idle connection"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < deadline,
                    "the server never closed an idle connection during the prompt"
                );
            }
            Err(e) => panic!("reading the idle connection: {e}"),
        }
    }
    fs::write(&gate, b"").expect("open the gate");
    let (d, lines) = login.join().expect("login thread");
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(
        !logged(&lines, &["unavailable"]),
        "no store fault logged: {lines:?}"
    );
}

/// A private directory for the gates of [`gated_login`], removed on drop.
fn gates() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pam_totp-gate")
        .tempdir_in(private_tmp())
        .expect("tempdir")
}

/// A login whose answer waits for `gate` (`--answer-gate`): started on a thread, with
/// its run and syslog lines returned by the handle; returns once the prompt is shown.
fn gated_login(
    stack: &Stack,
    user: &TestUser,
    code: &str,
    gate: &std::path::Path,
) -> std::thread::JoinHandle<(Drive, Vec<String>)> {
    let driver = Driver::login(stack, user, code)
        .rhost(PEER)
        .arg("--answer-gate", &gate.display().to_string());
    let asked = gate.with_extension("asked");
    let login = std::thread::spawn(move || capture_syslog(&driver));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !asked.exists() {
        assert!(Instant::now() < deadline, "the prompt never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    login
}

/// The rest of fleet.md's fault-table row "closes idle connections, restarts or is
/// full while the user types": a server restarted (with its data) during the prompt,
/// and one whose client table is full during the prompt and has room again by the
/// answer. Neither is logged as a store fault: the module connects once the answer is
/// in. The full table's login succeeds; the restarted server is a new instance, whose
/// first login raises the store's floor (R34, `fleet_rollback.rs`), so that login is
/// refused as a code before the floor, the users' one wait for their next code.
#[test]
fn a_server_restart_or_a_full_client_table_while_the_user_types_does_not_deny_through_libpam() {
    let t =
        "a_server_restart_or_a_full_client_table_while_the_user_types_does_not_deny_through_libpam";
    if !require_root(t) {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig {
        persistent: true,
        ..ServerConfig::default()
    });
    let stack = host(&server.url(false), "");
    let (u, secret) = TestUser::enrolled("tf");
    let gates = gates();

    // Full while the user types: one client allowed, and it is taken.
    let gate = gates.path().join("full");
    let login = gated_login(&stack, &u, &code_at(&secret, now()), &gate);
    let mut filler = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    filler
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let send = |s: &mut TcpStream, args: &[&str]| {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("send");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(send(&mut filler, &["CONFIG", "SET", "maxclients", "1"]).starts_with("+OK"));
    let mut refused = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    refused
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let reply = send(&mut refused, &["PING"]);
    assert!(
        reply.contains("max number of clients"),
        "the table is full during the prompt: {reply:?}"
    );
    drop(refused);
    assert!(send(&mut filler, &["CONFIG", "SET", "maxclients", "10000"]).starts_with("+OK"));
    drop(filler);
    fs::write(&gate, b"").expect("open the gate");
    let (d, lines) = login.join().expect("login thread");
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(!logged(&lines, &["unavailable"]), "{lines:?}");

    // Restarted while the user types (last: the restart raises the floor for every
    // user).
    let (u, secret) = TestUser::enrolled("tr");
    let gate = gates.path().join("restart");
    let login = gated_login(&stack, &u, &code_at(&secret, now()), &gate);
    server.restart();
    fs::write(&gate, b"").expect("open the gate");
    let (d, lines) = login.join().expect("login thread");
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {lines:?}"
    );
    assert!(logged(&lines, &["lost its data"]), "{lines:?}");
    assert!(!logged(&lines, &["unavailable"]), "{lines:?}");
}
