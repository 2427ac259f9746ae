//! Time bounds of the Redis store's transport through the real libpam (R36, R31;
//! SECURITY.md M4): a `rediss://` connection whose bytes arrive one at a time, each well
//! inside the socket timeouts, and a `unix:` socket whose server never accepts. Each
//! fault is shown to happen (bytes were dripped and many were still undelivered when the
//! login gave up; a plain connect to the socket waits), and each has a control that
//! logs in.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use system_tests::fleet::{RedisServer, ServerConfig, TestCa, plugin, trusted_dir};
use system_tests::*;

/// A key prefix no other test of this binary uses.
fn fresh_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "b{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The module options for the Redis store at `url` with `extra` options.
fn options(url: &str, extra: &str) -> String {
    format!(
        "state={url} redis_plugin={} redis_prefix={} {extra}",
        plugin().display(),
        fresh_prefix()
    )
}

/// A probe stack using the Redis store at `url` with `extra` options, initialised as an
/// admin would.
fn host(url: &str, extra: &str) -> Stack {
    let args = options(url, extra);
    let _ = state_tool(&["init", "--never-used", "--options", &args]);
    Stack::probe("svc", &args)
}

/// One login with the running clock, its syslog lines and how long it took. The code is
/// always right: a wrong-code line would misreport a transport fault.
fn timed_login(stack: &Stack, user: &TestUser, code: &str) -> (Drive, Vec<String>, Duration) {
    let started = Instant::now();
    let (d, lines) = login_logged(stack, user, code, PEER, None);
    assert!(
        !logged(&lines, &["invalid verification code"]),
        "a fault logged as a wrong code: {lines:?}"
    );
    (d, lines, started.elapsed())
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
// A proxy that drips TLS bytes

/// What the proxy does with the server's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drip {
    /// Forwarded as they come.
    Off,
    /// One byte every [`PAUSE`] from the first: the handshake's certificate flight.
    All,
    /// Forwarded as they come until the client's first application-data record (TLS 1.3
    /// encrypts its Finished as one; under 1.2 it is the first command), then one byte
    /// every [`PAUSE`]: the handshake completes, the session tickets and replies drip.
    AfterHandshake,
}

/// Below the 300-ms command bound and the connect bound: every single socket read sees a
/// byte in time, so only a bound on the whole operation ends the wait.
const PAUSE: Duration = Duration::from_millis(200);

/// A TCP proxy in front of a real `redis-server --tls-port`. It sees only ciphertext; it
/// reads the record headers the client sends (plaintext in every TLS version) to know
/// where the handshake ends.
struct DripProxy {
    port: u16,
    mode: Arc<Mutex<Drip>>,
    /// Bytes sent one at a time.
    dripped: Arc<AtomicUsize>,
    /// The most bytes one dripped connection still held for its client when the client
    /// went away: what the login would have waited for.
    undelivered: Arc<AtomicUsize>,
}

/// Follows TLS record boundaries in one direction of a connection.
#[derive(Default)]
struct Records {
    head: Vec<u8>,
    body_left: usize,
}

impl Records {
    /// Consumes `bytes`; true when a record of content type `kind` began in them.
    fn feed(&mut self, mut bytes: &[u8], kind: u8) -> bool {
        let mut began = false;
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            if self.head.len() == 5 {
                began |= self.head[0] == kind;
                self.body_left = usize::from(u16::from_be_bytes([self.head[3], self.head[4]]));
                self.head.clear();
            }
        }
        began
    }
}

/// TLS content type of application data (and of every encrypted TLS 1.3 record).
const APPLICATION_DATA: u8 = 0x17;

impl DripProxy {
    fn start(server_port: u16) -> DripProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = DripProxy {
            port,
            mode: Arc::new(Mutex::new(Drip::Off)),
            dripped: Arc::new(AtomicUsize::new(0)),
            undelivered: Arc::new(AtomicUsize::new(0)),
        };
        let (mode, dripped, undelivered) = (
            proxy.mode.clone(),
            proxy.dripped.clone(),
            proxy.undelivered.clone(),
        );
        // Lives as long as the test process: the listener closes with it.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                let mode = *mode.lock().expect("lock");
                let (dripped, undelivered) = (dripped.clone(), undelivered.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, server, mode, &dripped, &undelivered);
                });
            }
        });
        proxy
    }

    fn set(&self, mode: Drip) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

/// Relays one connection in `mode` until either side ends it.
fn relay(
    client: TcpStream,
    server: TcpStream,
    mode: Drip,
    dripped: &AtomicUsize,
    undelivered: &AtomicUsize,
) -> std::io::Result<()> {
    let client_sent_data = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone()?, server.try_clone()?);
    let sent = client_sent_data.clone();
    let up = std::thread::spawn(move || {
        let mut records = Records::default();
        let mut buf = [0u8; 16384];
        loop {
            match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Marked before the bytes reach the server, so whatever it sends in
                    // answer is dripped.
                    if records.feed(&buf[..n], APPLICATION_DATA) {
                        sent.store(true, Ordering::SeqCst);
                    }
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    let mut buf = [0u8; 16384];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let drip = match mode {
            Drip::Off => false,
            Drip::All => true,
            Drip::AfterHandshake => client_sent_data.load(Ordering::SeqCst),
        };
        if !drip {
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            if c_out.write_all(&[*b]).is_err() {
                // The client gave up: what it would still have waited for is the rest of
                // this chunk and what the server sent behind it (it closes once the
                // client's side is shut, a guard bounds the count).
                let _ = c_out.shutdown(Shutdown::Both);
                let _ = up.join();
                let mut left = n - i;
                s_in.set_read_timeout(Some(Duration::from_secs(2)))?;
                while let Ok(m) = s_in.read(&mut buf) {
                    if m == 0 {
                        break;
                    }
                    left += m;
                }
                undelivered.fetch_max(left, Ordering::SeqCst);
                return Ok(());
            }
            dripped.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(PAUSE);
        }
    }
    let _ = c_out.shutdown(Shutdown::Both);
    let _ = up.join();
    Ok(())
}

/// R36 over TLS: every byte of a `rediss://` connection arrives within the socket
/// timeouts, one every 200 ms, through a proxy in front of a real TLS server; the
/// operation as a whole is still bounded.
/// - control: the same proxy forwarding at once logs in;
/// - the handshake dripped (the server's certificate flight): denied within the connect
///   bound, "TLS handshake not finished" logged;
/// - the handshake at once, then everything the server sends dripped (session tickets,
///   replies): denied within the connect and command bounds, "no complete reply" logged.
///
/// Each time, the proxy dripped bytes and still held more than the bound's worth when
/// the login gave up (before, one TLS read waited for a whole record, a byte at a time:
/// minutes for a certificate chain).
#[test]
fn a_dripping_tls_connection_is_cut_off_at_the_bound_through_libpam() {
    let t = "a_dripping_tls_connection_is_cut_off_at_the_bound_through_libpam";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let ca = TestCa::new("drip");
    let server = RedisServer::start(&ServerConfig {
        tls: Some(&ca),
        ..ServerConfig::default()
    });
    let proxy = DripProxy::start(server.port);
    let stack = host(
        &proxy.url(),
        &format!(
            "redis_ca_file={} redis_connect_timeout=1000 redis_timeout=300",
            ca.ca_cert.display()
        ),
    );
    let (u, secret) = TestUser::enrolled("td");
    let (d, lines, _) = timed_login(&stack, &u, &code_at(&secret, now()));
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    // More bytes than could arrive within 5 s at one per pause.
    let beyond_bound = (Duration::from_secs(5).as_millis() / PAUSE.as_millis()) as usize;
    let (v, secret_v) = TestUser::enrolled("te");
    for (mode, cause) in [
        (Drip::All, "TLS handshake not finished"),
        (Drip::AfterHandshake, "no complete reply within"),
    ] {
        proxy.set(mode);
        proxy.undelivered.store(0, Ordering::SeqCst);
        let before = proxy.dripped.load(Ordering::SeqCst);
        let (d, lines, took) = timed_login(&stack, &v, &code_at(&secret_v, now()));
        proxy.set(Drip::Off);
        assert!(denied(&d), "{mode:?}: {d:?}");
        // Cut off at the bound: the log names it, and the proxy sees the client leave
        // before its bytes ran out (below). The time only guards a hang.
        assert!(
            took < Duration::from_secs(60),
            "{mode:?}: hang guard: {took:?}"
        );
        assert!(
            logged(&lines, &["no usable state store", "Redis", cause]),
            "{mode:?}: the log names {cause:?}: {lines:?}"
        );
        // The proxy notices the client left at its next byte.
        let waited = Instant::now();
        while proxy.undelivered.load(Ordering::SeqCst) == 0
            && waited.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            proxy.dripped.load(Ordering::SeqCst) > before,
            "{mode:?}: nothing was dripped"
        );
        let left = proxy.undelivered.load(Ordering::SeqCst);
        assert!(
            left > beyond_bound,
            "{mode:?}: only {left} bytes were still to come: the fault did not outlast \
             the bound"
        );
    }

    // Forwarding again, the same user logs in: nothing was used by the cut-off logins.
    let (d, lines, _) = timed_login(&stack, &v, &code_at(&secret_v, now()));
    assert_eq!(
        d.returned(),
        Returned::Success,
        "afterwards: {d:?} {lines:?}"
    );
}

// ---------------------------------------------------------------------------------------
// A local socket that never accepts

/// R31 (bounded connect) on a `unix:` socket: a listener (in a root-only directory, as
/// the module requires) with a queue of one that never accepts, its queue filled by two
/// connections. A plain connect to it is shown to wait (still waiting after 1 s). The
/// login is denied within the 300-ms connect bound (a 5-s guard), the log naming the
/// unavailable store and the connect. Control: a real server's socket, the same way
/// named, logs in.
#[test]
fn a_local_socket_that_never_accepts_is_cut_off_at_the_connect_bound_through_libpam() {
    let t = "a_local_socket_that_never_accepts_is_cut_off_at_the_connect_bound_through_libpam";
    if !require_root(t) {
        return;
    }
    let timeouts = "redis_connect_timeout=300 redis_timeout=300";
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("uq");
    let url = |p: &std::path::Path| format!("redis+unix://{}", p.display());
    let (d, lines, _) = timed_login(
        &host(&url(&server.socket), timeouts),
        &u,
        &code_at(&secret, now()),
    );
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    let dir = trusted_dir("sock-full");
    let path = dir.path().join("full.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    // SAFETY: listen(2) on the listener's open descriptor, no pointers; on a listening
    // local socket it sets the queue length again.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 1) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    // Linux counts a queue of one full once it holds two connections.
    let held: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(&path).expect("fill the queue"))
        .collect();
    // The fault: a plain connect now waits (it ends with an error once the listener is
    // closed below).
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    let plain = std::thread::spawn(move || {
        let _ = tx.send(UnixStream::connect(&p).map(|_| ()));
    });
    assert!(
        matches!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ),
        "a plain connect to the full queue did not wait"
    );

    let (v, secret_v) = TestUser::enrolled("ur");
    // Not initialised: the login is the first to meet the full queue.
    let stack = Stack::probe("svc", &options(&url(&path), timeouts));
    let (d, lines, took) = timed_login(&stack, &v, &code_at(&secret_v, now()));
    assert!(denied(&d), "full queue: {d:?}");
    // Cut off at the connect bound: the log names it (below). The time only guards a
    // hang.
    assert!(
        took < Duration::from_secs(60),
        "full queue: hang guard: {took:?}"
    );
    assert!(
        logged(
            &lines,
            &["no usable state store", "Redis", "connect", "within 300 ms"]
        ),
        "full queue: the log names the connect bound: {lines:?}"
    );

    // Closing the listener ends the plain connect's wait (with an error); joined only
    // once it has, so a kernel that kept it waiting cannot hang the test.
    drop(listener);
    if rx.recv_timeout(Duration::from_secs(5)).is_ok() {
        let _ = plain.join();
    }
    drop(held);
}
