//! TCP proxies the fleet tests put between a host and a real store server, to make a
//! fault happen exactly where a test claims it does: the accept loop they share, the
//! Redis (RESP) command reader, and an HTTP/1.1 proxy in front of an etcd member's v3
//! gateway that runs a hook before it forwards a compare-and-set of a user's record, and
//! one that serves a single request before it is gone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Listens on a free loopback port and serves each connection with `serve` on a thread
/// of its own (a login opens several at once); returns the port.
pub fn listen<F>(serve: F) -> u16
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let serve = serve.clone();
            std::thread::spawn(move || serve(client));
        }
    });
    port
}

/// One client command: its bytes as sent and its arguments.
pub type RespCommand = (Vec<u8>, Vec<Vec<u8>>);

/// The next RESP command of a client (an array of bulk strings, as every client sends
/// them); `None` at the end of the stream.
pub fn read_resp_command(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<RespCommand>> {
    let number = |line: &[u8]| -> std::io::Result<usize> {
        std::str::from_utf8(line.get(1..).unwrap_or_default())
            .ok()
            .and_then(|s| s.trim_end().parse().ok())
            .ok_or_else(|| std::io::Error::other("bad RESP header"))
    };
    let mut raw = Vec::new();
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.first() != Some(&b'*') {
        return Err(std::io::Error::other("not a RESP array"));
    }
    raw.extend_from_slice(&line);
    let n = number(&line)?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_until(b'\n', &mut line)?;
        raw.extend_from_slice(&line);
        let len = number(&line)?;
        let mut buf = vec![0u8; len + 2];
        r.read_exact(&mut buf)?;
        raw.extend_from_slice(&buf);
        buf.truncate(len);
        args.push(buf);
    }
    Ok(Some((raw, args)))
}

/// The key a Redis compare-and-set works on: the first key of a function call (`FCALL`)
/// or a script (`EVAL`), after the function or script and the key count.
pub fn compare_and_set_key(args: &[Vec<u8>]) -> Option<&[u8]> {
    let name = args.first()?.to_ascii_uppercase();
    (name == b"FCALL" || name == b"EVAL")
        .then(|| args.get(3).map(Vec::as_slice))
        .flatten()
}

/// What runs once, right before a held write is forwarded.
pub type Hook = Box<dyn FnOnce() + Send>;

/// An HTTP/1.1 proxy in front of one etcd member's client URL (plain HTTP). It forwards
/// each request of a connection as it comes (keep-alive: any number per connection) and
/// relays the member's replies unchanged. While a hook is armed, the next `/v3/kv/txn`
/// whose `success` branch puts a user's record (the compare-and-set of a login's write)
/// waits for the hook to run before it is forwarded; its body is kept.
pub struct EtcdHookProxy {
    pub port: u16,
    hook: Arc<Mutex<Option<Hook>>>,
    held: Arc<Mutex<Vec<Value>>>,
}

impl EtcdHookProxy {
    /// A proxy for the member at `member` (`127.0.0.1:PORT`).
    pub fn start(member: &str) -> EtcdHookProxy {
        let hook: Arc<Mutex<Option<Hook>>> = Arc::default();
        let held: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (h, k, member) = (hook.clone(), held.clone(), member.to_owned());
        let port = listen(move |client| {
            let _ = serve_http(client, &member, &h, &k);
        });
        EtcdHookProxy { port, hook, held }
    }

    /// `etcd://127.0.0.1:PORT`, for a `state=` line: the proxy as the only member.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.port)
    }

    /// Runs `hook` before the next write of a user's record is forwarded.
    pub fn arm(&self, hook: Hook) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// The bodies of the writes a hook ran before, in order.
    pub fn held(&self) -> Vec<Value> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Longest request head or body the proxy reads (the plugin's are a few KiB).
const MAX_REQUEST: usize = 1 << 20;

/// One request: its bytes as sent, its path and its body.
type Request = (Vec<u8>, String, Vec<u8>);

/// The next request of a client, with a `Content-Length` body (the plugin never sends
/// another kind); `None` at the end of the stream.
fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let bad = |what: &str| std::io::Error::other(format!("bad HTTP request: {what}"));
    let mut raw = Vec::new();
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    raw.extend_from_slice(&line);
    let path = String::from_utf8_lossy(&line)
        .split(' ')
        .nth(1)
        .ok_or_else(|| bad("no path"))?
        .to_owned();
    let mut length = 0usize;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(bad("the head ended early"));
        }
        raw.extend_from_slice(&line);
        if raw.len() > MAX_REQUEST {
            return Err(bad("head too long"));
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad("a header without a colon"));
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("a body without Content-Length"));
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|_| bad("Content-Length"))?;
        }
    }
    if length > MAX_REQUEST {
        return Err(bad("body too long"));
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    raw.extend_from_slice(&body);
    Ok(Some((raw, path, body)))
}

/// The body of a transaction that puts a user's record (`…user:…`), parsed.
fn user_write(path: &str, body: &[u8]) -> Option<Value> {
    if path != "/v3/kv/txn" {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let puts_user = v.get("success")?.as_array()?.iter().any(|op| {
        op.pointer("/request_put/key")
            .and_then(Value::as_str)
            .and_then(base64_decode)
            .is_some_and(|k| k.windows(5).any(|w| w == b"user:"))
    });
    puts_user.then_some(v)
}

fn serve_http(
    client: TcpStream,
    member: &str,
    hook: &Mutex<Option<Hook>>,
    held: &Mutex<Vec<Value>>,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(member)?;
    let mut from_server = server.try_clone()?;
    let mut to_client = client.try_clone()?;
    // The client waits for each reply before its next request, so the replies need no
    // parsing: they go back as they come.
    let replies = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let mut reader = BufReader::new(client);
    while let Some((raw, path, body)) = read_request(&mut reader)? {
        if let Some(write) = user_write(&path, &body) {
            let armed = hook.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(run) = armed {
                run();
                held.lock().unwrap_or_else(|e| e.into_inner()).push(write);
            }
        }
        server.write_all(&raw)?;
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = replies.join();
    Ok(())
}

/// A proxy in front of one etcd member that serves one request and is then gone, as a
/// member that went down right after answering it: it stops listening once the first
/// connection comes (every later connection is refused, so a request sent after it is
/// known not to have reached it), forwards that connection's first request and relays
/// the reply marked `Connection: close`, so the client sends nothing more on it.
pub struct OneRequestProxy {
    pub port: u16,
    served: std::thread::JoinHandle<Option<String>>,
}

impl OneRequestProxy {
    /// A proxy for the member at `member` (`127.0.0.1:PORT`).
    pub fn start(member: &str) -> OneRequestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let member = member.to_owned();
        let served = std::thread::spawn(move || {
            let (client, _) = listener.accept().ok()?;
            drop(listener);
            serve_one(client, &member).ok().flatten()
        });
        OneRequestProxy { port, served }
    }

    /// The path of the one request it served, once it is done; `None` if it served none.
    pub fn served(self) -> Option<String> {
        self.served.join().ok().flatten()
    }
}

fn serve_one(client: TcpStream, member: &str) -> std::io::Result<Option<String>> {
    let mut to_client = client.try_clone()?;
    let mut reader = BufReader::new(client);
    let Some((raw, path, _)) = read_request(&mut reader)? else {
        return Ok(None);
    };
    // The member closes after its reply: the reply is then read to its end, whatever
    // its framing.
    let mut server = TcpStream::connect(member)?;
    let line_end = raw.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    server.write_all(&raw[..line_end])?;
    server.write_all(b"Connection: close\r\n")?;
    server.write_all(&raw[line_end..])?;
    let mut reply = Vec::new();
    server.read_to_end(&mut reply)?;
    // The reply as it came, its head told that this connection ends.
    let line_end = reply.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out = reply[..line_end].to_vec();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(&reply[line_end..]);
    to_client.write_all(&out)?;
    let _ = to_client.shutdown(Shutdown::Both);
    Ok(Some(path))
}

/// Standard base64 with padding (the gateway's keys and values); `None` if it is not.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_every_padding() {
        assert_eq!(
            base64_decode("cC91c2VyOmE=").as_deref(),
            Some(&b"p/user:a"[..])
        );
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("Y!=="), None);
    }
}
