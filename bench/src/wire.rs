//! The shared stores alone: a minimal client in the bench's own process doing one
//! login's wire work per iteration, with no module, plugin, checks or decoding beyond
//! the framing. What it takes is a floor no plugin can go below on this machine, so
//! the goals' ratios can be read against it (issues 21 and 22).
//!
//! Redis: a connect, `INFO` and the two `HMGET`s of the open in one write, an `EVAL`
//! doing what the compare-and-set function does on the server (the store record's and
//! the user's reads, one `HSET`), and the close. etcd: a connect to the member the
//! plugin asks first, the open's linearizable read of the two records (one read-only
//! transaction), a compare-and-put transaction, and the close. The writes go to a key
//! of their own, so the rows' records are left as they were.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Fewest iterations of a floor, however short the budget.
const MIN_ITERATIONS: usize = 50;

/// Runs `one` until `budget` has passed (at least [`MIN_ITERATIONS`] times) and returns
/// each run's time; the first run (a cold server path) is left out. `before` runs
/// untimed ahead of each, as the row's flush runs ahead of each login: the server is
/// then as busy, or as idle, when the floor's requests arrive as when a login's do.
pub fn measure(
    budget: Duration,
    mut before: impl FnMut() -> Result<(), String>,
    mut one: impl FnMut() -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    before()?;
    one()?;
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < MIN_ITERATIONS || started.elapsed() < budget {
        before()?;
        let t = Instant::now();
        one()?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

pub fn connect(port: u16) -> Result<TcpStream, String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// A RESP command.
fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out
}

/// Reads one RESP reply whole; an error reply is an error.
fn read_reply(r: &mut impl BufRead) -> Result<(), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
    let body = line.trim_end();
    let count = || -> Result<i64, String> {
        body[1..]
            .parse::<i64>()
            .map_err(|_| format!("bad reply {body:?}"))
    };
    match body.as_bytes().first() {
        Some(b'+' | b':') => Ok(()),
        Some(b'-') => Err(format!("server error: {body}")),
        Some(b'$') => {
            let n = count()?;
            if n >= 0 {
                let mut data = vec![0u8; n as usize + 2];
                r.read_exact(&mut data).map_err(|e| format!("read: {e}"))?;
            }
            Ok(())
        }
        Some(b'*') => {
            for _ in 0..count()?.max(0) {
                read_reply(r)?;
            }
            Ok(())
        }
        _ => Err(format!("bad reply {body:?}")),
    }
}

/// What the compare-and-set function reads and writes on the server, as a script.
const REDIS_CAS: &str = "local s = redis.call('HMGET', KEYS[2], 'v', 'i') \
     local v = redis.call('HGET', KEYS[1], 'v') \
     redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', ARGV[2]) return 1";

/// How many round trips a floor takes: the two of today's read, decide, compare-and-set,
/// or the one an optimistic compare-and-set against a record the host kept would take
/// when the record has not changed since (issues 21 and 22: "one round trip per
/// attempt"), which this measures so that its gain is known before it is built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Trips {
    Two,
    One,
}

/// A record of the size a real one has (a few hundred bytes of text).
const RECORD_BYTES: usize = 200;

/// One login's Redis wire work against the server on `port`, its commands built once
/// (keys under `prefix`), so that an iteration times the wire alone.
pub struct RedisWire {
    port: u16,
    /// `INFO` and the two `HMGET`s of the open.
    open: String,
    cas: String,
    /// Both in one write, for one round trip.
    together: String,
}

impl RedisWire {
    pub fn new(port: u16, prefix: &str, user: &str) -> RedisWire {
        let store = format!("{prefix}store");
        let record = format!("{prefix}user:{user}");
        let scratch = format!("{prefix}bench-wire");
        let value = "x".repeat(RECORD_BYTES);
        let open = [
            resp(&["INFO"]),
            resp(&["HMGET", &store, "v", "i", "f"]),
            resp(&["HMGET", &record, "v", "r"]),
        ]
        .concat();
        let cas = resp(&["EVAL", REDIS_CAS, "2", &scratch, &store, "1", &value]);
        RedisWire {
            port,
            together: [open.as_str(), cas.as_str()].concat(),
            open,
            cas,
        }
    }

    pub fn once(&self, trips: Trips) -> Result<(), String> {
        let mut s = connect(self.port)?;
        let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
        let writes: &[(&str, usize)] = match trips {
            Trips::Two => &[(&self.open, 3), (&self.cas, 1)],
            Trips::One => &[(&self.together, 4)],
        };
        for (commands, replies) in writes {
            s.write_all(commands.as_bytes())
                .map_err(|e| format!("write: {e}"))?;
            for _ in 0..*replies {
                read_reply(&mut r)?;
            }
        }
        Ok(())
    }
}

/// One HTTP/1.1 POST on a kept-alive connection; the reply's status must be 200. The
/// reply's body (the chunks joined).
pub fn post(
    s: &mut TcpStream,
    r: &mut impl BufRead,
    port: u16,
    path: &str,
    body: &str,
) -> Result<Vec<u8>, String> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut status = String::new();
    r.read_line(&mut status).map_err(|e| format!("read: {e}"))?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("{path}: {}", status.trim_end()));
    }
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut header = String::new();
        r.read_line(&mut header).map_err(|e| format!("read: {e}"))?;
        let header = header.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if header.starts_with("transfer-encoding:") && header.contains("chunked") {
            chunked = true;
        }
    }
    let mut reply = Vec::new();
    let mut take = |n: usize, r: &mut dyn BufRead| -> Result<(), String> {
        let start = reply.len();
        reply.resize(start + n, 0);
        r.read_exact(&mut reply[start..])
            .map_err(|e| format!("read: {e}"))
    };
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|e| format!("read: {e}"))?;
            let n = usize::from_str_radix(size.trim_end(), 16)
                .map_err(|_| format!("{path}: bad chunk size {size:?}"))?;
            take(n, r)?;
            let mut end = [0u8; 2];
            r.read_exact(&mut end).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Ok(reply);
            }
        }
    }
    take(length.ok_or_else(|| format!("{path}: no length"))?, r)?;
    Ok(reply)
}

/// One login's etcd wire work against the member on `port`, its request bodies built
/// once (keys under `prefix`); with one trip, the compare-and-put alone (the records
/// read in its failure branch).
pub struct EtcdWire {
    port: u16,
    /// The open's linearizable read of both records.
    read: String,
    cas: String,
}

impl EtcdWire {
    pub fn new(port: u16, prefix: &str, user: &str) -> EtcdWire {
        let key = |name: &str| B64.encode(format!("{prefix}{name}"));
        let (store, record, scratch) = (
            key("store"),
            key(&format!("user:{user}")),
            key("bench-wire"),
        );
        let ranges = format!(
            r#"[{{"request_range":{{"key":"{store}"}}}},{{"request_range":{{"key":"{record}"}}}}]"#
        );
        // Compared as the plugin compares (a record's mod_revision), but with a
        // comparison that always holds, so that every iteration writes.
        let value = B64.encode("x".repeat(RECORD_BYTES));
        EtcdWire {
            port,
            read: format!(r#"{{"success":{ranges}}}"#),
            cas: format!(
                r#"{{"compare":[{{"key":"{scratch}","target":"MOD","result":"LESS","mod_revision":"4611686018427387904"}}],"success":[{{"request_put":{{"key":"{scratch}","value":"{value}"}}}}],"failure":{ranges}}}"#
            ),
        }
    }

    pub fn once(&self, trips: Trips) -> Result<(), String> {
        let mut s = connect(self.port)?;
        let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
        if trips == Trips::Two {
            post(&mut s, &mut r, self.port, "/v3/kv/txn", &self.read)?;
        }
        post(&mut s, &mut r, self.port, "/v3/kv/txn", &self.cas).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_whole_and_errors_refused() {
        let mut ok = BufReader::new(&b"*2\r\n$3\r\nabc\r\n$-1\r\n+OK\r\n"[..]);
        read_reply(&mut ok).expect("array");
        read_reply(&mut ok).expect("status");
        let mut err = BufReader::new(&b"-ERR no\r\n"[..]);
        assert!(read_reply(&mut err).is_err());
    }
}
