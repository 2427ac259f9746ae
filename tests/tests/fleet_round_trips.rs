//! How many round trips a right-code login makes to the shared store, through the real
//! libpam (issues 21 and 22; docs/performance.md): the open reads every record the
//! update needs in the round trip that proves the store answers, so what follows is the
//! compare-and-set alone.
//!
//! - Redis: a proxy in front of a real `redis-server` forwards what the module sends in
//!   batches, one batch per silence of the client (a client waiting for a reply falls
//!   silent; a pipeline is one write). Each batch is one round trip.
//! - etcd: the member's own count of the gRPC calls its gateway made for the login
//!   (`grpc_server_handled_total` in `/metrics`), one per HTTP request.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{RedisServer, ServerConfig, init_store, plugin};
use system_tests::*;

/// A key prefix no other test of this binary uses.
fn fresh_prefix(sep: char) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rt{}-{}{sep}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------
// Redis

/// How long the client must be silent for what it sent to count as one batch. A
/// pipeline is one `send`; a client that waits for a reply stays silent for as long as
/// the proxy holds its batch, so the gap only has to exceed the time between the
/// segments of one write on loopback.
const SILENCE: Duration = Duration::from_millis(50);

/// The commands of complete RESP arrays in `bytes`, each as its name and its first
/// key (`FCALL`'s key is its third argument).
fn commands(mut bytes: &[u8]) -> Vec<String> {
    fn line(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let end = b.windows(2).position(|w| w == b"\r\n")?;
        Some((&b[..end], &b[end + 2..]))
    }
    fn number(l: &[u8]) -> Option<usize> {
        std::str::from_utf8(l.get(1..)?).ok()?.parse().ok()
    }
    let mut out = Vec::new();
    while let Some((head, mut rest)) = line(bytes) {
        let Some(n) = number(head) else { break };
        let mut args = Vec::new();
        for _ in 0..n {
            let Some((len, r)) = line(rest) else { break };
            let Some(len) = number(len) else { break };
            let Some(arg) = r.get(..len) else { break };
            args.push(String::from_utf8_lossy(arg).into_owned());
            rest = r.get(len + 2..).unwrap_or_default();
        }
        let name = args.first().cloned().unwrap_or_default().to_uppercase();
        let key = match name.as_str() {
            "FCALL" | "EVAL" => args.get(3),
            "INFO" => None,
            _ => args.get(1),
        };
        out.push(match key {
            Some(k) => format!("{name} {k}"),
            None => name,
        });
        bytes = rest;
    }
    out
}

/// A TCP proxy in front of a real server that records what the client sends, one entry
/// per batch.
struct BatchProxy {
    port: u16,
    batches: Arc<Mutex<Vec<Vec<String>>>>,
}

impl BatchProxy {
    fn start(server_port: u16) -> BatchProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let batches: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let record = batches.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, server_port, &record);
                });
            }
        });
        BatchProxy { port, batches }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn take(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.batches.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn relay(
    mut client: TcpStream,
    server_port: u16,
    record: &Mutex<Vec<Vec<String>>>,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", server_port))?;
    let mut back_from = server.try_clone()?;
    let mut back_to = client.try_clone()?;
    let replies = std::thread::spawn(move || {
        let _ = std::io::copy(&mut back_from, &mut back_to);
        let _ = back_to.shutdown(Shutdown::Both);
    });
    client.set_read_timeout(Some(SILENCE))?;
    let mut batch = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => batch.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !batch.is_empty() {
                    record
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(commands(&batch));
                    server.write_all(&batch)?;
                    batch.clear();
                }
            }
            Err(e) => return Err(e),
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = replies.join();
    Ok(())
}

/// A right-code login through Redis is two round trips after the connect: INFO (which
/// proves the server answers and keeps what it is given) with the reads of the store
/// record, the user's record and the record an earlier release keyed by uid, in one
/// write; then the compare-and-set alone. The same for the user's next login, when the
/// record under the name exists.
#[test]
fn a_redis_login_reads_everything_in_the_round_trip_that_opens_the_store() {
    if !require_root("a_redis_login_reads_everything_in_the_round_trip_that_opens_the_store") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let proxy = BatchProxy::start(server.port);
    let prefix = fresh_prefix(':');
    let args = format!(
        "state={} redis_plugin={} redis_prefix={prefix}",
        proxy.url(),
        plugin().display()
    );
    init_store(&args);
    let host = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("rr");
    proxy.take();
    let open = vec![
        "INFO".to_owned(),
        format!("HMGET {prefix}store"),
        format!("HMGET {prefix}user:{}", u.name),
        format!("HMGET {prefix}uid:{}", u.uid),
    ];
    let cas = vec![format!("FCALL {prefix}user:{}", u.name)];
    for (i, at) in [T0, T0 + 30].into_iter().enumerate() {
        let (d, logs) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "login {i}: {d:?} {logs:?}");
        assert_eq!(
            proxy.take(),
            [open.clone(), cas.clone()],
            "login {i}: one round trip opens and reads, one writes"
        );
    }
}

// ---------------------------------------------------------------------------------------
// etcd

/// The member's gRPC calls so far, by method (`grpc_server_handled_total`).
fn grpc_calls(member: &str) -> Vec<(String, u64)> {
    let mut s = TcpStream::connect(member).expect("connect to the member");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .expect("ask for the metrics");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("metrics");
    let mut out: Vec<(String, u64)> = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("grpc_server_handled_total{") else {
            continue;
        };
        let method = rest
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|m| m.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let n: u64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64);
        match out.iter_mut().find(|(m, _)| *m == method) {
            Some((_, total)) => *total += n,
            None => out.push((method, n)),
        }
    }
    out
}

/// What changed between two [`grpc_calls`], without the methods that did not move.
fn delta(before: &[(String, u64)], after: &[(String, u64)]) -> Vec<(String, u64)> {
    after
        .iter()
        .filter_map(|(m, n)| {
            let was = before.iter().find(|(b, _)| b == m).map_or(0, |(_, v)| *v);
            (*n > was).then(|| (m.clone(), n - was))
        })
        .collect()
}

/// A right-code login through etcd is two requests: one read-only transaction reading
/// the store record and the user's records (linearizable: it also proves a majority
/// serves), then the compare-and-set transaction. No separate range, no status probe.
#[test]
fn an_etcd_login_reads_everything_in_the_request_that_opens_the_store() {
    if !require_root("an_etcd_login_reads_everything_in_the_request_that_opens_the_store") {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let member = cluster
        .url()
        .strip_prefix("etcd://")
        .expect("an etcd:// URL")
        .to_owned();
    let args = format!(
        "state={} etcd_plugin={} etcd_prefix={} etcd_timeout=1000",
        cluster.url(),
        etcd_plugin().display(),
        fresh_prefix('/')
    );
    init_store(&args);
    let host = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("re");
    for (i, at) in [T0, T0 + 30].into_iter().enumerate() {
        let before = grpc_calls(&member);
        let (d, logs) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "login {i}: {d:?} {logs:?}");
        assert_eq!(
            delta(&before, &grpc_calls(&member)),
            [("Txn".to_owned(), 2)],
            "login {i}: the reading transaction and the compare-and-set, nothing else"
        );
    }
}
