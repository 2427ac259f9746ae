//! A small RESP2 client with bounds per operation (R36): every command, its reply
//! included, finishes before one deadline, and every reply is bounded in size before a
//! byte of it is buffered. Commands may be pipelined (sent in one write, the replies
//! read in order), each reply keeping its own deadline and bounds.
//!
//! Why not a general client library: socket timeouts bound one `read`, not a reply, so a
//! peer dripping one byte per timeout holds a login for as long as it likes; and a bulk
//! header announcing gigabytes is trusted for the allocation. The module sends a handful
//! of commands (AUTH, SELECT, INFO, HMGET, FCALL, EVAL, WAIT, DEL, ROLE, SENTINEL), so a reader
//! for the five RESP2 types with explicit limits is less code to audit than a wrapper
//! around a library's reader.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, Ssl, SslStream};

use crate::deadline::{Timed, unix_connect};

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    /// `None`: the nil bulk string (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `None`: the nil array (`*-1`).
    Array(Option<Vec<Reply>>),
}

/// Why a command got no usable reply.
#[derive(Debug)]
pub enum WireError {
    /// The deadline passed (connect, handshake, write or read).
    Timeout(String),
    /// The connection failed or closed.
    Io(String),
    /// The TLS handshake failed: the server was not trusted (or did not trust us).
    Tls(String),
    /// The peer broke the protocol or a bound (size, nesting, line length).
    Protocol(String),
    /// The very first bytes the peer sent are no Redis reply at all: another kind of
    /// server (SSH, HTTP, TLS) listens there. The text says what they look like.
    Foreign(String),
    /// A host name the module's resolver will not look up (not a host name, `getent`
    /// not root-controlled, its answer garbled): an admin must act.
    Unresolvable(String),
    /// A complete, well-formed reply holding a string larger than the reply's bound: its
    /// bytes were read past, not buffered, so the connection is still in step with the
    /// server. What the server stores is at fault (a planted or damaged value), not the
    /// server, whose next reply can still be read.
    Oversized(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout(m)
            | Self::Io(m)
            | Self::Tls(m)
            | Self::Protocol(m)
            | Self::Foreign(m)
            | Self::Unresolvable(m)
            | Self::Oversized(m) => f.write_str(m),
        }
    }
}

/// Size bounds of one reply.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of the whole reply, headers included.
    pub total: usize,
    /// Elements of one array.
    pub items: usize,
}

/// Longest status, error or number line (a server's error text is cut there).
const MAX_LINE: usize = 1024;
/// Deepest nesting of arrays (ROLE's replica list is three deep).
const MAX_DEPTH: usize = 4;

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// OpenSSL may make many socket calls for one read or write (a whole record):
    /// [`Timed`] gives each of them only what is left of the deadline.
    Tls(Box<SslStream<Timed>>),
}

impl Stream {
    /// Sets the socket's timeout for the next `read` or `write` (`way`) to what is left
    /// of the deadline, so no single system call outlives it; the loops above re-check
    /// the deadline after every call. Only the timeout of the call that follows is set:
    /// every plain read and every plain write arms its own first, so the other one's is
    /// never relied on (one `setsockopt` per call instead of two). Under TLS the deadline
    /// itself is handed down, since one TLS read or write is many system calls of either
    /// kind.
    fn arm(&mut self, deadline: Instant, way: Way) -> Result<(), WireError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WireError::Timeout(String::new()));
        }
        let t = Some(left.max(Duration::from_millis(1)));
        let r = match (self, way) {
            (Stream::Tcp(s), Way::Read) => s.set_read_timeout(t),
            (Stream::Tcp(s), Way::Write) => s.set_write_timeout(t),
            (Stream::Unix(s), Way::Read) => s.set_read_timeout(t),
            (Stream::Unix(s), Way::Write) => s.set_write_timeout(t),
            (Stream::Tls(s), _) => {
                s.get_mut().set_deadline(deadline);
                Ok(())
            }
        };
        r.map_err(|e| WireError::Io(format!("socket: {e}")))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// Which system call [`Stream::arm`] bounds.
#[derive(Clone, Copy)]
enum Way {
    Read,
    Write,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// How to reach a server.
pub enum Address<'a> {
    Tcp { host: &'a str, port: u16 },
    Unix { path: &'a str },
}

/// TLS settings: the CA (only it is trusted, never the system bundle alongside) and an
/// optional client certificate and key (PEM).
pub struct Tls<'a> {
    pub ca_pem: Option<&'a [u8]>,
    pub client: Option<(&'a [u8], &'a [u8])>,
}

/// One connection and its read buffer.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A command failed part-way: what the stream holds next is not the next reply.
    broken: bool,
    /// Replies of commands sent and not read yet.
    pending: usize,
    /// A whole reply has been read on this connection: from then on, bytes that are no
    /// reply are a broken server, not another kind of server.
    answered: bool,
}

const BUF: usize = 4096;

/// Connects to one of `host`'s addresses before `deadline`: a host name is resolved by
/// the module's bounded resolver within the same deadline, an IP literal (the
/// documented advice) is used as it is.
fn tcp_connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, WireError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    let addrs =
        pam_totp_plugin_abi::resolve::socket_addrs(host, port, budget).map_err(|e| {
            match e.status {
                pam_totp_plugin_abi::Status::Unavailable => WireError::Io(e.message),
                _ => WireError::Unresolvable(e.message),
            }
        })?;
    let mut last = format!("{host} has no address");
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WireError::Timeout(format!(
                "no connection to {host}:{port}"
            )));
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if is_timeout(&e) => {
                return Err(WireError::Timeout(format!("no connection to {a}")));
            }
            Err(e) => last = format!("connect to {a}: {e}"),
        }
    }
    Err(WireError::Io(last))
}

/// The TLS state for one connection to `name` (see `pam_totp_tls`: only the CAs the
/// module hands over are trusted, nothing is read from the environment).
fn tls_session(tls: &Tls<'_>, name: &str) -> Result<Ssl, WireError> {
    let ca = tls
        .ca_pem
        .ok_or_else(|| WireError::Tls("no CA to verify the server with".to_owned()))?;
    let ctx = pam_totp_tls::client_context(ca, tls.client).map_err(WireError::Tls)?;
    pam_totp_tls::session(&ctx, name).map_err(WireError::Tls)
}

/// The time left before `deadline`, as a socket timeout; an error once it has passed.
fn left(deadline: Instant) -> Result<Duration, WireError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(WireError::Timeout(String::new()));
    }
    Ok(left.max(Duration::from_millis(1)))
}

/// The TLS handshake on `tcp`, before `deadline`. Every socket call of the handshake
/// gets only the time left ([`Timed`]), so a server (or anything on the path) that drips
/// its certificate chain is cut off at the deadline like a dripped reply, not after the
/// chain's last byte.
fn handshake(ssl: Ssl, tcp: TcpStream, deadline: Instant) -> Result<SslStream<Timed>, WireError> {
    let not_finished = || WireError::Timeout("TLS handshake not finished".to_owned());
    left(deadline).map_err(|_| not_finished())?;
    let mut attempt = ssl.connect(Timed::new(tcp, deadline));
    loop {
        match attempt {
            Ok(s) => return Ok(s),
            // The deadline passed inside OpenSSL: an outage (or a plain port), not a
            // refusal to trust.
            Err(HandshakeError::Failure(mid)) if mid.error().io_error().is_some_and(is_timeout) => {
                return Err(not_finished());
            }
            // Reset or closed without an alert: an outage, as on a plain connection.
            Err(HandshakeError::Failure(mid)) if pam_totp_tls::connection_ended(&mid) => {
                return Err(WireError::Io(format!(
                    "TLS handshake: the connection ended ({}) (the server going down, or a \
                     proxy with no server behind it)",
                    mid.error()
                )));
            }
            Err(HandshakeError::Failure(mid)) => {
                let why = pam_totp_tls::handshake_failure(&mid);
                return Err(WireError::Tls(format!("TLS handshake: {why}")));
            }
            Err(HandshakeError::SetupFailure(e)) => {
                return Err(WireError::Tls(format!("TLS set-up: {e}")));
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                left(deadline).map_err(|_| not_finished())?;
                attempt = mid.handshake();
            }
        }
    }
}

impl Conn {
    /// Connects (TCP or socket, then the TLS handshake when `tls` is given), all before
    /// `deadline`.
    pub fn connect(
        addr: &Address<'_>,
        tls: Option<&Tls<'_>>,
        deadline: Instant,
    ) -> Result<Conn, WireError> {
        let stream = match (addr, tls) {
            (Address::Unix { path }, _) => {
                // connect(2) on a local socket waits while the server's accept queue is
                // full: bounded by the same deadline as a TCP connect.
                let s = unix_connect(path, deadline).map_err(|e| {
                    if is_timeout(&e) {
                        WireError::Timeout(format!("no connection to {path}"))
                    } else {
                        WireError::Io(format!("connect to {path}: {e}"))
                    }
                })?;
                Stream::Unix(s)
            }
            (Address::Tcp { host, port }, None) => Stream::Tcp(tcp_connect(host, *port, deadline)?),
            (Address::Tcp { host, port }, Some(tls)) => {
                let name = host.trim_start_matches('[').trim_end_matches(']');
                let ssl = tls_session(tls, name)?;
                let tcp = tcp_connect(host, *port, deadline)?;
                Stream::Tls(Box::new(handshake(ssl, tcp, deadline)?))
            }
        };
        Ok(Conn {
            stream,
            buf: vec![0; BUF],
            start: 0,
            end: 0,
            broken: false,
            pending: 0,
            answered: false,
        })
    }

    /// Sends one command and reads its reply, both before `deadline`, the reply within
    /// `limits`. An error reply is `Ok(Reply::Error)`: the caller decides what it means.
    pub fn call(
        &mut self,
        args: &[&[u8]],
        deadline: Instant,
        limits: Limits,
    ) -> Result<Reply, WireError> {
        self.send_all(&[args], deadline)?;
        self.receive(deadline, limits)
    }

    /// Sends `commands` in one write before `deadline` (a pipeline: one round trip for
    /// all of them); their replies are then read in order with [`Conn::receive`], each
    /// with its own deadline and bounds.
    pub fn send_all(&mut self, commands: &[&[&[u8]]], deadline: Instant) -> Result<(), WireError> {
        if self.broken {
            return Err(WireError::Io(
                "connection unusable after an earlier failure".to_owned(),
            ));
        }
        if self.pending != 0 {
            // A caller that sends before reading every reply would take an old reply
            // for the new command's.
            self.broken = true;
            return Err(WireError::Io(
                "replies of earlier commands unread".to_owned(),
            ));
        }
        self.send(commands, deadline)
            .inspect_err(|_| self.broken = true)?;
        self.pending = commands.len();
        Ok(())
    }

    /// The next reply of the commands [`Conn::send_all`] sent, before `deadline` and
    /// within `limits`. An error reply is `Ok(Reply::Error)`: the caller decides what it
    /// means.
    pub fn receive(&mut self, deadline: Instant, limits: Limits) -> Result<Reply, WireError> {
        if self.broken {
            return Err(WireError::Io(
                "connection unusable after an earlier failure".to_owned(),
            ));
        }
        if self.pending == 0 {
            return Err(WireError::Io("no reply awaited".to_owned()));
        }
        let mut budget = Budget {
            deadline,
            left: limits.total,
            items: limits.items,
            oversized: None,
        };
        let reply = self
            .reply(&mut budget, 0)
            .inspect_err(|_| self.broken = true)?;
        self.pending -= 1;
        self.answered = true;
        if self.pending == 0 && self.start != self.end {
            // More replies than commands: not a server we understand.
            self.broken = true;
            return Err(WireError::Protocol(
                "unsolicited bytes after a reply".to_owned(),
            ));
        }
        if let Some((announced, accepted)) = budget.oversized {
            return Err(WireError::Oversized(format!(
                "a string of {announced} bytes, more than pam_totp reads here (at most \
                 {accepted})"
            )));
        }
        Ok(reply)
    }

    fn send(&mut self, commands: &[&[&[u8]]], deadline: Instant) -> Result<(), WireError> {
        let size = commands
            .iter()
            .map(|args| 16 + args.iter().map(|a| a.len() + 16).sum::<usize>())
            .sum::<usize>();
        // Sized for the whole request, so it never reallocates (which would free a copy
        // of the password unwiped); wiped however this returns, a panic included.
        let mut req = zeroize::Zeroizing::new(Vec::with_capacity(size));
        for args in commands {
            req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args.iter() {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a);
                req.extend_from_slice(b"\r\n");
            }
        }
        let mut sent = 0;
        let result = loop {
            if sent == req.len() {
                break self
                    .stream
                    .flush()
                    .map_err(|e| WireError::Io(format!("send: {e}")));
            }
            if let Err(e) = self.stream.arm(deadline, Way::Write) {
                break Err(e);
            }
            match self.stream.write(&req[sent..]) {
                Ok(0) => break Err(WireError::Io("connection closed while sending".to_owned())),
                Ok(n) => sent += n,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(self.send_failed(e, deadline)),
            }
        };
        // The request may hold a password (AUTH) or a record: wiped here, on drop.
        drop(req);
        result.map_err(|e| match e {
            WireError::Timeout(_) => WireError::Timeout("command not sent in time".to_owned()),
            e => e,
        })
    }

    /// What a failed write means. A TLS 1.3 server checks the client certificate only
    /// once the client's side of the handshake is done: where it refused this host's
    /// (none, expired, another CA's), its alert and its close may reach the socket before
    /// the first command does, and the write fails as a reset or a broken pipe, the
    /// alert unread behind it. That is a refusal an admin fixes, never an outage
    /// `state_fallback=` would take, so the alert is read once, within the same deadline;
    /// anything else it finds (nothing, a plain end) leaves the outage the write said.
    fn send_failed(&mut self, e: io::Error, deadline: Instant) -> WireError {
        let alert = match &mut self.stream {
            Stream::Tls(tls) => {
                tls.get_mut().set_deadline(deadline);
                pam_totp_tls::alert_behind_failed_write(tls, &e)
            }
            _ => None,
        };
        match alert {
            Some(r) => WireError::Tls(format!("send: {e}; the server's alert behind it: {r}")),
            None => WireError::Io(format!("send: {e}")),
        }
    }

    /// Refills the buffer with at least one byte, before the deadline.
    fn fill(&mut self, deadline: Instant) -> Result<(), WireError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        loop {
            self.stream.arm(deadline, Way::Read)?;
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(WireError::Io("connection closed by the server".to_owned())),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                // An alert after the handshake (TLS 1.3 servers check the client
                // certificate then: "certificate required") is a refusal to trust.
                // A reset connection, or one closed under TLS, stays an outage.
                Err(e)
                    if matches!(self.stream, Stream::Tls(_))
                        && pam_totp_tls::refused_after_handshake(&e) =>
                {
                    return Err(WireError::Tls(format!("receive: {e}")));
                }
                Err(e) => return Err(WireError::Io(format!("receive: {e}"))),
            }
        }
    }

    /// One byte of the reply, charged to the budget.
    fn byte(&mut self, b: &mut Budget) -> Result<u8, WireError> {
        if b.left == 0 {
            return Err(WireError::Protocol(
                "reply too large: more bytes than allowed".to_owned(),
            ));
        }
        if self.start == self.end {
            self.fill(b.deadline)?;
        }
        let c = self.buf[self.start];
        self.start += 1;
        b.left -= 1;
        Ok(c)
    }

    /// One CRLF-terminated line (without the CRLF), at most [`MAX_LINE`] bytes; with
    /// `cut`, a longer line is cut there and the rest skipped (still within the reply's
    /// budget): an error text is read for what it begins with (Redis's protected-mode
    /// refusal is longer than a line).
    /// Sized once and wiped: an error line may quote the password of the `AUTH` it
    /// answers, and a growing vector would leave each buffer it outgrew unwiped.
    fn line(
        &mut self,
        b: &mut Budget,
        cut: bool,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, WireError> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(MAX_LINE));
        loop {
            match self.byte(b)? {
                b'\r' => {
                    return if self.byte(b)? == b'\n' {
                        Ok(out)
                    } else {
                        Err(WireError::Protocol("bad line end in reply".to_owned()))
                    };
                }
                c if out.len() < MAX_LINE => out.push(c),
                _ if cut => {}
                _ => return Err(WireError::Protocol("reply line too long".to_owned())),
            }
        }
    }

    /// What a peer whose first bytes are no reply sent (`first` and what the buffer
    /// holds behind it), for the log: printable ASCII as it is, the rest escaped, and a
    /// guess at the kind of server.
    fn foreign(&self, first: u8) -> WireError {
        let mut seen = vec![first];
        seen.extend(self.buf[self.start..self.end].iter().take(31));
        let shown: String = seen
            .iter()
            .map(|&c| match c {
                b' '..=b'~' if c != b'"' && c != b'\\' => char::from(c).to_string(),
                _ => format!("\\x{c:02x}"),
            })
            .collect();
        let kind = if seen.starts_with(b"SSH-") {
            " (an SSH server)"
        } else if seen.starts_with(b"HTTP/") || first == b'<' {
            " (an HTTP server)"
        } else if matches!(seen.as_slice(), [0x15 | 0x16, 0x03, ..]) {
            " (TLS: rediss:// for a TLS port)"
        } else {
            ""
        };
        WireError::Foreign(format!("not a Redis server: it sent \"{shown}\"{kind}"))
    }

    /// Reads past `n` bytes of a string and its CRLF before `deadline`, buffering none
    /// of them beyond the connection's fixed read buffer.
    fn skip(&mut self, n: usize, deadline: Instant) -> Result<(), WireError> {
        let mut left = n;
        while left > 0 {
            if self.start == self.end {
                self.fill(deadline)?;
            }
            let take = left.min(self.end - self.start);
            self.start += take;
            left -= take;
        }
        let mut end = [0u8; 2];
        for c in &mut end {
            if self.start == self.end {
                self.fill(deadline)?;
            }
            *c = self.buf[self.start];
            self.start += 1;
        }
        if end != *b"\r\n" {
            return Err(WireError::Protocol("bad string end in reply".to_owned()));
        }
        Ok(())
    }

    fn number(&mut self, b: &mut Budget) -> Result<i64, WireError> {
        let line = self.line(b, false)?;
        std::str::from_utf8(&line)
            .ok()
            .filter(|s| s.len() <= 20)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| WireError::Protocol("bad number in reply".to_owned()))
    }

    fn reply(&mut self, b: &mut Budget, depth: usize) -> Result<Reply, WireError> {
        let text = |l: zeroize::Zeroizing<Vec<u8>>| String::from_utf8_lossy(&l).into_owned();
        match self.byte(b)? {
            b'+' => Ok(Reply::Status(text(self.line(b, false)?))),
            b'-' => Ok(Reply::Error(text(self.line(b, true)?))),
            b':' => Ok(Reply::Int(self.number(b)?)),
            b'$' => {
                let n = self.number(b)?;
                if n == -1 {
                    return Ok(Reply::Bulk(None));
                }
                let n = usize::try_from(n)
                    .map_err(|_| WireError::Protocol("negative length in reply".to_owned()))?;
                // Checked before anything is allocated or read: a header may announce
                // gigabytes. Such a string is read past within the deadline, never
                // buffered: a server that stores one (a planted or damaged record) sends
                // it whole, and the reply is then reported as holding a value too large,
                // the connection still in step; a peer that announces it and stalls, or
                // drips it, is cut off at the deadline like any other reply.
                if n.saturating_add(2) > b.left {
                    let accepted = b.left.saturating_sub(2);
                    // A TLS failure while reading past it (an alert, a record that
                    // does not authenticate) is the TLS failure `fill` found, not an
                    // outage of the store.
                    self.skip(n, b.deadline).map_err(|e| match e {
                        e @ (WireError::Protocol(_) | WireError::Tls(_)) => e,
                        _ => WireError::Protocol(format!(
                            "reply too large: a string of {n} bytes announced, at most \
                             {accepted} accepted, and not sent whole in time"
                        )),
                    })?;
                    b.oversized.get_or_insert((n, accepted));
                    return Ok(Reply::Bulk(None));
                }
                let mut v = Vec::with_capacity(n);
                while v.len() < n {
                    if self.start == self.end {
                        self.fill(b.deadline)?;
                    }
                    let take = (n - v.len()).min(self.end - self.start);
                    v.extend_from_slice(&self.buf[self.start..self.start + take]);
                    self.start += take;
                    b.left -= take;
                }
                if self.byte(b)? != b'\r' || self.byte(b)? != b'\n' {
                    return Err(WireError::Protocol("bad string end in reply".to_owned()));
                }
                Ok(Reply::Bulk(Some(v)))
            }
            b'*' => {
                let n = self.number(b)?;
                if n == -1 {
                    return Ok(Reply::Array(None));
                }
                let n = usize::try_from(n)
                    .map_err(|_| WireError::Protocol("negative length in reply".to_owned()))?;
                if n > b.items || depth >= MAX_DEPTH {
                    return Err(WireError::Protocol(format!(
                        "reply too large: an array of {n} elements announced, at most {} \
                         accepted",
                        b.items
                    )));
                }
                b.items -= n;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.reply(b, depth + 1)?);
                }
                Ok(Reply::Array(Some(v)))
            }
            c if !self.answered && depth == 0 => Err(self.foreign(c)),
            c => Err(WireError::Protocol(format!(
                "unexpected reply type byte 0x{c:02x}"
            ))),
        }
    }
}

/// What one reply may still use.
struct Budget {
    deadline: Instant,
    left: usize,
    items: usize,
    /// The first string read past as too large: its announced size and what the reply
    /// had room for then.
    oversized: Option<(usize, usize)>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The buffer may have held a record.
        self.buf.fill(0);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        total: 1000,
        items: 8,
    };

    /// A connection whose server side is a socket pair end the test writes to.
    fn pair() -> (Conn, UnixStream) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let conn = Conn {
            stream: Stream::Unix(a),
            buf: vec![0; BUF],
            start: 0,
            end: 0,
            broken: false,
            pending: 0,
            answered: false,
        };
        (conn, b)
    }

    fn parse(bytes: &[u8]) -> Result<Reply, WireError> {
        parse_within(bytes, LIMITS)
    }

    fn parse_within(bytes: &[u8], limits: Limits) -> Result<Reply, WireError> {
        let (mut c, mut s) = pair();
        s.write_all(bytes).expect("write");
        let deadline = Instant::now() + Duration::from_millis(200);
        c.call(&[b"PING"], deadline, limits)
    }

    #[test]
    fn the_five_types_are_read() {
        assert_eq!(parse(b"+OK\r\n").ok(), Some(Reply::Status("OK".into())));
        assert_eq!(
            parse(b"-ERR x\r\n").ok(),
            Some(Reply::Error("ERR x".into()))
        );
        assert_eq!(parse(b":-12\r\n").ok(), Some(Reply::Int(-12)));
        assert_eq!(parse(b"$-1\r\n").ok(), Some(Reply::Bulk(None)));
        assert_eq!(parse(b"*-1\r\n").ok(), Some(Reply::Array(None)));
        assert_eq!(
            parse(b"*2\r\n$2\r\nab\r\n*1\r\n:1\r\n").ok(),
            Some(Reply::Array(Some(vec![
                Reply::Bulk(Some(b"ab".to_vec())),
                Reply::Array(Some(vec![Reply::Int(1)])),
            ])))
        );
    }

    #[test]
    fn huge_announcements_are_refused_before_anything_is_buffered() {
        for bytes in [
            &b"$1500000000\r\n"[..],
            b"*2\r\n$1\r\n1\r\n$999\r\n",
            b"*100000000\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            match parse(bytes) {
                Err(WireError::Protocol(m)) => assert!(m.contains("too large"), "{m}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        match parse(
            b"-ERR "
                .iter()
                .chain(&[b'x'; 2000])
                .copied()
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            Err(WireError::Protocol(m)) => assert!(m.contains("too large"), "{m}"),
            other => panic!("{other:?}"),
        }
        for bytes in [&b"$2\r\nabc\r\n"[..], b":x\r\n", b"$-5\r\n"] {
            assert!(
                matches!(parse(bytes), Err(WireError::Protocol(_))),
                "{bytes:?}"
            );
        }
        // A first byte that starts no reply: another kind of server, shown as it spoke.
        match parse(b"SSH-2.0-OpenSSH_9.2p1\r\n") {
            Err(WireError::Foreign(m)) => {
                assert!(
                    m.contains("\"SSH-2.0-OpenSSH_9.2p1\\x0d\\x0a\" (an SSH server)"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// A stored value larger than the bound, sent whole by the server: read past without
    /// being buffered, reported as such (not as a broken server), and the next reply on
    /// the same connection is read as its own. Control: the same reply with a value
    /// inside the bound is returned as it is.
    #[test]
    fn an_oversized_value_sent_whole_is_reported_and_the_connection_stays_in_step() {
        let big = vec![b'x'; 5000];
        let mut reply = b"*2\r\n$1\r\n7\r\n$5000\r\n".to_vec();
        reply.extend_from_slice(&big);
        reply.extend_from_slice(b"\r\n");
        let (mut c, mut s) = pair();
        let deadline = Instant::now() + Duration::from_millis(500);
        c.send_all(&[&[b"HMGET", b"k", b"v", b"r"], &[b"PING"]], deadline)
            .expect("send");
        s.write_all(&reply).expect("write");
        s.write_all(b"+PONG\r\n").expect("write");
        match c.receive(deadline, LIMITS) {
            Err(WireError::Oversized(m)) => {
                assert!(m.contains("5000 bytes"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.receive(deadline, LIMITS).ok(),
            Some(Reply::Status("PONG".into())),
            "still in step"
        );
        // Control: a value inside the bound.
        let (mut c, mut s) = pair();
        c.send_all(&[&[b"HMGET", b"k", b"v", b"r"]], deadline)
            .expect("send");
        s.write_all(b"*2\r\n$1\r\n7\r\n$3\r\nabc\r\n")
            .expect("write");
        assert_eq!(
            c.receive(deadline, LIMITS).ok(),
            Some(Reply::Array(Some(vec![
                Reply::Bulk(Some(b"7".to_vec())),
                Reply::Bulk(Some(b"abc".to_vec())),
            ])))
        );
    }

    /// Every reply type, delivered in two reads split at every byte: the same reply.
    #[test]
    fn a_reply_split_across_reads_at_any_byte_is_read_whole() {
        let whole: &[u8] = b"*3\r\n$2\r\nab\r\n*2\r\n:-12\r\n$-1\r\n-ERR x\r\n";
        let expected = Reply::Array(Some(vec![
            Reply::Bulk(Some(b"ab".to_vec())),
            Reply::Array(Some(vec![Reply::Int(-12), Reply::Bulk(None)])),
            Reply::Error("ERR x".into()),
        ]));
        for cut in 1..whole.len() {
            let (mut c, mut s) = pair();
            let deadline = Instant::now() + Duration::from_millis(500);
            c.send_all(&[&[b"PING"]], deadline).expect("send");
            let (a, b) = whole.split_at(cut);
            let rest = b.to_vec();
            s.write_all(a).expect("write");
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                s.write_all(&rest).expect("write");
                s
            });
            assert_eq!(
                c.receive(deadline, LIMITS).ok(),
                Some(expected.clone()),
                "cut at {cut}"
            );
            drop(writer.join());
        }
    }

    #[test]
    fn pipelined_replies_are_read_in_order_each_within_its_bounds() {
        let (mut c, mut s) = pair();
        let deadline = Instant::now() + Duration::from_millis(200);
        c.send_all(&[&[b"PING"], &[b"GET", b"k"]], deadline)
            .expect("send");
        let mut sent = vec![0u8; 64];
        let n = s.read(&mut sent).expect("read");
        assert_eq!(
            &sent[..n],
            b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            "one write for both"
        );
        s.write_all(b"+PONG\r\n$2\r\nab\r\n").expect("write");
        assert_eq!(
            c.receive(deadline, LIMITS).ok(),
            Some(Reply::Status("PONG".into()))
        );
        assert_eq!(
            c.receive(deadline, LIMITS).ok(),
            Some(Reply::Bulk(Some(b"ab".to_vec())))
        );
        // Nothing more is awaited; a further read is refused, not taken from the wire.
        assert!(c.receive(deadline, LIMITS).is_err());

        // More bytes than the replies awaited: unsolicited, the connection unusable.
        let (mut c, mut s) = pair();
        c.send_all(&[&[b"PING"], &[b"PING"]], deadline)
            .expect("send");
        s.write_all(b"+PONG\r\n+PONG\r\n+PONG\r\n").expect("write");
        assert!(c.receive(deadline, LIMITS).is_ok());
        assert!(matches!(
            c.receive(deadline, LIMITS),
            Err(WireError::Protocol(_))
        ));
        assert!(c.call(&[b"PING"], deadline, LIMITS).is_err());

        // A new pipeline before the replies of the last were read would misattribute
        // them: refused.
        let (mut c, _s) = pair();
        c.send_all(&[&[b"PING"]], deadline).expect("send");
        assert!(c.send_all(&[&[b"PING"]], deadline).is_err());
    }

    #[test]
    fn a_dripping_peer_is_cut_off_at_the_deadline_of_the_whole_reply() {
        let (mut c, mut s) = pair();
        let dripper = std::thread::spawn(move || {
            for b in b"$10\r\n0123456789\r\n" {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        // The whole reply arrives in about 720 ms, each byte well inside a read
        // timeout: only a deadline over the whole reply ends the call with a timeout
        // (a bound per read would return the reply), whatever the machine's speed.
        let deadline = Instant::now() + Duration::from_millis(300);
        let r = c.call(&[b"PING"], deadline, LIMITS);
        assert!(matches!(r, Err(WireError::Timeout(_))), "{r:?}");
        drop(c);
        let _ = dripper.join();
    }

    /// A TLS server's context with a self-signed certificate for `localhost`.
    fn server_context() -> openssl::ssl::SslContextBuilder {
        server_context_and_ca().0
    }

    /// [`server_context`] and its certificate in PEM, a CA that verifies it: its
    /// subjectAltName names `localhost` and `127.0.0.1`.
    pub(crate) fn server_context_and_ca() -> (openssl::ssl::SslContextBuilder, Vec<u8>) {
        use pam_totp_tls::test_support::{self_signed, server_context};
        let (key, cert) = self_signed("localhost", &["localhost"], &["127.0.0.1"]);
        (server_context(&key, &cert), cert.to_pem().expect("pem"))
    }

    /// A client connection to a TLS server on a loopback port that, after the
    /// handshake, announces a string of `n` bytes, sends `sent` of them, then `tail` raw
    /// on the socket, under the record layer (nothing verified: the test is about what
    /// comes after the handshake).
    fn tls_peer(n: usize, sent: usize, tail: &'static [u8]) -> (Conn, std::thread::JoinHandle<()>) {
        use openssl::ssl::{SslContext, SslMethod};
        use std::net::TcpListener;
        let sctx = server_context().build();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let Ok(mut s) = Ssl::new(&sctx).expect("ssl").accept(tcp) else {
                return;
            };
            let mut req = [0u8; 512];
            let _ = s.read(&mut req);
            let mut out = format!("${n}\r\n").into_bytes();
            out.resize(out.len() + sent, b'x');
            if s.write_all(&out).and_then(|()| s.flush()).is_err() {
                return;
            }
            let _ = s.get_mut().write_all(tail);
            // Held open until the client is done: a close would be another error.
            let _ = s.get_mut().read(&mut req);
        });
        let cctx = SslContext::builder(SslMethod::tls_client())
            .expect("client context")
            .build();
        let tcp = TcpStream::connect(addr).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = handshake(Ssl::new(&cctx).expect("ssl"), tcp, deadline).expect("handshake");
        (over_tls(stream), server)
    }

    /// A record that does not authenticate in the middle of an oversized value read
    /// past: the TLS failure it is (as anywhere else in a reply), not a reply too
    /// large. Before, the skip turned every error but a protocol one into "not sent
    /// whole in time", and a TLS trust failure was logged as an outage.
    #[test]
    fn a_tls_failure_while_skipping_an_oversized_value_stays_a_tls_failure() {
        // Application data with a MAC of zeros.
        const FORGED: &[u8] = &[
            0x17, 0x03, 0x03, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let (mut c, server) = tls_peer(5000, 100, FORGED);
        let r = c.call(
            &[b"GET", b"k"],
            Instant::now() + Duration::from_secs(10),
            LIMITS,
        );
        match r {
            Err(WireError::Tls(m)) => assert!(m.starts_with("receive:"), "{m}"),
            other => panic!("{other:?}"),
        }
        drop(c);
        let _ = server.join();
    }

    /// The control: a plain end of the connection in the same place is still reported
    /// as the oversized value not sent whole, as before.
    #[test]
    fn a_plain_io_error_while_skipping_an_oversized_value_is_reported_as_before() {
        let (mut c, mut s) = pair();
        let mut out = b"$5000\r\n".to_vec();
        out.resize(out.len() + 100, b'x');
        s.write_all(&out).expect("write");
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let r = c.call(
            &[b"GET", b"k"],
            Instant::now() + Duration::from_secs(10),
            LIMITS,
        );
        match r {
            Err(WireError::Protocol(m)) => assert!(m.contains("not sent whole in time"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// Closes `s` with a reset (`SO_LINGER` of zero): the peer's next write fails at
    /// once, whatever it left unread.
    fn reset(s: &TcpStream) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: `s` is an open socket for the call, and the option value is a `linger`
        // of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_LINGER");
    }

    /// A TLS 1.3 client connection to a server that requires a client certificate
    /// (`demand`) or not, where the server, once its side of the handshake has ended,
    /// resets the connection (after its alert, when it refused the client): the server
    /// is gone before the client's first command, so that command's write fails.
    fn reset_after_handshake(demand: bool) -> Conn {
        use openssl::ssl::{SslContext, SslMethod, SslVerifyMode, SslVersion};
        use std::net::TcpListener;
        let mut sctx = server_context();
        sctx.set_min_proto_version(Some(SslVersion::TLS1_3))
            .expect("TLS 1.3");
        if demand {
            sctx.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let sctx = sctx.build();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().expect("accept");
            match Ssl::new(&sctx).expect("ssl").accept(tcp) {
                Ok(s) => {
                    assert!(
                        !demand,
                        "the server accepted a client without a certificate"
                    );
                    reset(s.get_ref());
                }
                Err(HandshakeError::Failure(mid)) => {
                    assert!(demand, "handshake: {}", mid.error());
                    reset(mid.get_ref());
                }
                Err(e) => panic!("server handshake: {e}"),
            }
        });
        let mut cctx = SslContext::builder(SslMethod::tls_client()).expect("client context");
        cctx.set_min_proto_version(Some(SslVersion::TLS1_3))
            .expect("TLS 1.3");
        let tcp = TcpStream::connect(addr).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = handshake(Ssl::new(&cctx.build()).expect("ssl"), tcp, deadline)
            .expect("the client's side of the handshake");
        server.join().expect("server");
        over_tls(stream)
    }

    /// A connection of the plugin's over an established TLS stream.
    fn over_tls(stream: SslStream<Timed>) -> Conn {
        Conn {
            stream: Stream::Tls(Box::new(stream)),
            buf: vec![0; BUF],
            start: 0,
            end: 0,
            broken: false,
            pending: 0,
            answered: false,
        }
    }

    /// A TLS 1.3 server that refused this host's client certificate after the handshake
    /// and closed before the first command: the write fails (a reset), the alert waits
    /// unread behind it. A refusal naming the alert, not the outage `state_fallback=`
    /// would take. Before, the send loop reported the reset as an I/O error.
    #[test]
    fn a_refused_client_certificate_behind_a_failed_send_is_a_tls_refusal() {
        let mut c = reset_after_handshake(true);
        let r = c.call(&[b"PING"], Instant::now() + Duration::from_secs(10), LIMITS);
        match r {
            Err(WireError::Tls(m)) => {
                // The fault: the write failed (not the read of a reply)...
                assert!(m.starts_with("send: "), "{m}");
                // ...and the alert read behind it says why.
                assert!(m.contains("certificate required"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The control: the same reset without an alert (a server killed after the
    /// handshake) stays an outage.
    #[test]
    fn a_reset_without_an_alert_behind_a_failed_send_stays_an_outage() {
        let mut c = reset_after_handshake(false);
        let r = c.call(&[b"PING"], Instant::now() + Duration::from_secs(10), LIMITS);
        match r {
            Err(WireError::Io(m)) => assert!(m.starts_with("send: "), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// A TLS peer that announces a 16-KiB handshake record and drips it one byte every
    /// 20 ms (each byte well inside the time left): OpenSSL waits for the whole record
    /// inside one call, and the handshake still ends at its deadline, as a timeout.
    #[test]
    fn a_dripped_tls_handshake_is_cut_off_at_the_deadline() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let dripper = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut hello = [0u8; 4096];
            let _ = s.read(&mut hello);
            // A handshake record of 0x4000 bytes announced, then its body a byte at a
            // time for up to 4 s.
            if s.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00, 0x02]).is_err() {
                return;
            }
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(20));
                if s.write_all(&[0]).is_err() {
                    return;
                }
            }
        });
        let ctx = openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::tls_client())
            .expect("context")
            .build();
        let ssl = Ssl::new(&ctx).expect("ssl");
        let tcp = TcpStream::connect(addr).expect("connect");
        // The dripper gives up after 4 s and closes, which ends a handshake waiting
        // past its deadline with another error: a timeout is the deadline's doing.
        let r = handshake(ssl, tcp, Instant::now() + Duration::from_millis(300));
        match r {
            Err(WireError::Timeout(m)) => assert!(m.starts_with("TLS handshake"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("handshake finished"),
        }
        let _ = dripper.join();
    }

    /// The reply's bounds are of the whole reply, not of each part: strings that each
    /// fit, but not together, make it too large (the first string the budget has no
    /// room left for is read past and reported), and so do arrays whose elements
    /// together pass the element bound. Controls: the same shapes within the bounds are
    /// read, a string that fills the budget to its last byte included.
    #[test]
    fn a_reply_s_bounds_hold_for_all_of_its_parts_together() {
        let string = |n: usize| {
            let mut v = format!("${n}\r\n").into_bytes();
            v.resize(v.len() + n, b'x');
            v.extend_from_slice(b"\r\n");
            v
        };
        let two = |n: usize| [&b"*2\r\n"[..], &string(n), &string(n)].concat();
        // 4 + 2 * (6 + 400 + 2) = 820 bytes in 1000; 4 + 2 * (6 + 600 + 2) = 1220.
        match parse(&two(400)) {
            Ok(Reply::Array(Some(items))) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
        match parse(&two(600)) {
            Err(WireError::Oversized(m)) => assert!(m.contains("600 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        // 2 + 3 + 3 elements in 8, then 2 + 4 + 4.
        let nested = |n: usize| {
            let inner = [format!("*{n}\r\n").as_bytes(), &b":1\r\n".repeat(n)].concat();
            [&b"*2\r\n"[..], &inner, &inner].concat()
        };
        assert!(parse(&nested(3)).is_ok());
        match parse(&nested(4)) {
            Err(WireError::Protocol(m)) => assert!(m.contains("too large"), "{m}"),
            other => panic!("{other:?}"),
        }
        // "$9\r\n" + 9 + "\r\n": 15 bytes, read in a budget of 15, oversized in 14.
        let exact = Limits {
            total: 15,
            items: 0,
        };
        assert_eq!(
            parse_within(&string(9), exact).ok(),
            Some(Reply::Bulk(Some(b"xxxxxxxxx".to_vec())))
        );
        let short = Limits {
            total: 14,
            items: 0,
        };
        assert!(matches!(
            parse_within(&string(9), short),
            Err(WireError::Oversized(_))
        ));
    }

    /// A status line of more than [`MAX_LINE`] bytes is refused, even inside the reply's
    /// budget; an error line is cut there and read for what it begins with. Control: a
    /// status line of exactly [`MAX_LINE`] bytes is read whole.
    #[test]
    fn a_long_status_line_is_refused_and_a_long_error_line_cut() {
        let roomy = Limits {
            total: 4 * MAX_LINE,
            items: 0,
        };
        let line = |lead: u8, n: usize| {
            let mut v = vec![lead];
            v.resize(1 + n, b'x');
            v.extend_from_slice(b"\r\n");
            v
        };
        let full = "x".repeat(MAX_LINE);
        assert_eq!(
            parse_within(&line(b'+', MAX_LINE), roomy).ok(),
            Some(Reply::Status(full.clone()))
        );
        match parse_within(&line(b'+', MAX_LINE + 1), roomy) {
            Err(WireError::Protocol(m)) => assert_eq!(m, "reply line too long"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_within(&line(b'-', MAX_LINE + 100), roomy).ok(),
            Some(Reply::Error(full))
        );
    }

    /// The first bytes of a peer that is no Redis server are shown (quotes and
    /// backslashes escaped, so the log line stays one quoted string) with a guess at
    /// what answers. Once a reply was read, or inside a reply, a byte that starts no
    /// reply is a broken server (an outage), not another kind of server (a refusal).
    #[test]
    fn another_kind_of_server_is_named_only_at_the_first_byte_of_the_first_reply() {
        match parse(b"<html>\r\n") {
            Err(WireError::Foreign(m)) => {
                assert!(m.contains("\"<html>\\x0d\\x0a\" (an HTTP server)"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match parse(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]) {
            Err(WireError::Foreign(m)) => {
                assert!(m.ends_with("(TLS: rediss:// for a TLS port)"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match parse(b"hi \"x\" \\\r\n") {
            Err(WireError::Foreign(m)) => assert_eq!(
                m,
                "not a Redis server: it sent \"hi \\x22x\\x22 \\x5c\\x0d\\x0a\""
            ),
            other => panic!("{other:?}"),
        }
        // Inside the first reply.
        match parse(b"*1\r\n?\r\n") {
            Err(WireError::Protocol(m)) => assert!(m.contains("0x3f"), "{m}"),
            other => panic!("{other:?}"),
        }
        // After a whole reply.
        let (mut c, mut s) = pair();
        let deadline = Instant::now() + Duration::from_millis(500);
        c.send_all(&[&[b"PING"], &[b"PING"]], deadline)
            .expect("send");
        s.write_all(b"+PONG\r\n<html>\r\n").expect("write");
        assert_eq!(
            c.receive(deadline, LIMITS).ok(),
            Some(Reply::Status("PONG".into()))
        );
        match c.receive(deadline, LIMITS) {
            Err(WireError::Protocol(m)) => assert!(m.contains("0x3c"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// A peer that takes none of a command: the send fills the socket's buffers and is
    /// cut off at the deadline, a timeout like a reply not read in time (not an I/O
    /// error of the socket's own timeout). Control: the same command to a peer that
    /// reads it is sent and answered.
    #[test]
    fn a_command_the_peer_does_not_take_is_cut_off_at_the_deadline() {
        let value = vec![b'x'; 4 << 20];
        let command: [&[u8]; 3] = [b"SET", b"k", &value];
        let (mut c, _s) = pair();
        let r = c.call(
            &command,
            Instant::now() + Duration::from_millis(300),
            LIMITS,
        );
        match r {
            Err(WireError::Timeout(m)) => assert_eq!(m, "command not sent in time"),
            other => panic!("{other:?}"),
        }
        // The socket's buffers already full: the send's one write takes nothing before
        // the socket timeout, which is the deadline's, not a failed socket.
        let (mut c, _s) = pair();
        if let Stream::Unix(u) = &mut c.stream {
            u.set_nonblocking(true).expect("nonblocking");
            while u.write(&[0u8; 65536]).is_ok() {}
            u.set_nonblocking(false).expect("blocking");
        }
        let r = c.call(
            &[b"PING"],
            Instant::now() + Duration::from_millis(300),
            LIMITS,
        );
        match r {
            Err(WireError::Timeout(m)) => assert_eq!(m, "command not sent in time"),
            other => panic!("{other:?}"),
        }

        let (mut c, mut s) = pair();
        let size =
            format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n\r\n", value.len()).len() + value.len();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut got = 0;
            while got < size {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
            let _ = s.write_all(b"+OK\r\n");
        });
        let r = c.call(&command, Instant::now() + Duration::from_secs(10), LIMITS);
        assert_eq!(r.ok(), Some(Reply::Status("OK".into())));
        reader.join().expect("reader");
    }

    /// Each read and each write of a plain connection is bounded by its own call's
    /// deadline, set just before it (`Stream::arm` sets only the timeout of the system
    /// call that follows): after a first call answered under a deadline ten minutes
    /// away (control), a second call with a short one is cut off at its own, whether
    /// the peer stops taking commands (the write) or stops answering (the read). Were
    /// either left with the first call's socket timeout, the call would outlive the
    /// 30 seconds the test waits for it.
    #[test]
    fn every_read_and_write_is_bounded_by_its_own_call_s_deadline() {
        fn two_calls(peer_stops_reading: bool) -> Result<Reply, WireError> {
            let (mut c, mut s) = pair();
            let (done, held) = std::sync::mpsc::channel::<()>();
            let server = std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                // The first command (PING), answered.
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"+PONG\r\n");
                if !peer_stops_reading {
                    // Takes the second command, never answers.
                    let _ = s.read(&mut buf);
                }
                // Holds the connection, reading nothing more, until the test is done.
                let _ = held.recv();
            });
            let far = Instant::now() + Duration::from_secs(600);
            let first = c.call(&[b"PING"], far, LIMITS);
            assert_eq!(first.ok(), Some(Reply::Status("PONG".into())));
            let (tx, rx) = std::sync::mpsc::channel();
            let client = std::thread::spawn(move || {
                let value = vec![b'x'; 4 << 20];
                let command: [&[u8]; 3] = if peer_stops_reading {
                    [b"SET", b"k", &value]
                } else {
                    [b"GET", b"k", b""]
                };
                let near = Instant::now() + Duration::from_millis(300);
                let _ = tx.send(c.call(&command, near, LIMITS));
            });
            let r = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the call outlived its deadline by far");
            let _ = done.send(());
            client.join().expect("client");
            server.join().expect("server");
            r
        }
        match two_calls(true) {
            Err(WireError::Timeout(m)) => assert_eq!(m, "command not sent in time"),
            other => panic!("{other:?}"),
        }
        match two_calls(false) {
            Err(WireError::Timeout(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    /// A connection reset under a reply, plain or under TLS without an alert, is the
    /// server going away: an outage, not a refusal to trust. (The refusal, an alert
    /// after the handshake, is `a_tls_failure_while_skipping_an_oversized_value_stays_a_tls_failure`.)
    #[test]
    fn a_reset_under_a_reply_is_an_outage_on_plain_and_tls_connections() {
        // Plain: the server closes with the command unread, which resets the stream.
        let (mut c, s) = pair();
        let deadline = Instant::now() + Duration::from_secs(10);
        c.send_all(&[&[b"PING"]], deadline).expect("send");
        drop(s);
        match c.receive(deadline, LIMITS) {
            Err(WireError::Io(m)) => assert!(m.starts_with("receive: "), "{m}"),
            other => panic!("{other:?}"),
        }

        // TLS: the server reads the command, then resets the connection.
        use openssl::ssl::{SslContext, SslMethod};
        use std::net::TcpListener;
        let sctx = server_context().build();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().expect("accept");
            let mut s = Ssl::new(&sctx)
                .expect("ssl")
                .accept(tcp)
                .expect("handshake");
            let mut req = [0u8; 512];
            let _ = s.read(&mut req);
            reset(s.get_ref());
        });
        let cctx = SslContext::builder(SslMethod::tls_client())
            .expect("client context")
            .build();
        let tcp = TcpStream::connect(addr).expect("connect");
        let stream = handshake(Ssl::new(&cctx).expect("ssl"), tcp, deadline).expect("handshake");
        let mut c = over_tls(stream);
        match c.call(&[b"PING"], deadline, LIMITS) {
            Err(WireError::Io(m)) => assert!(m.starts_with("receive: "), "{m}"),
            other => panic!("{other:?}"),
        }
        server.join().expect("server");
    }

    /// A loopback TLS listener for one connection, handed to `serve` as accepted.
    fn one_connection(
        serve: impl FnOnce(TcpStream) + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            if let Ok((tcp, _)) = listener.accept() {
                serve(tcp);
            }
        });
        (port, server)
    }

    /// A handshake that fails verification (the server's certificate from another CA)
    /// is a refusal to trust; one the server cuts off (a proxy with nothing behind it)
    /// is an outage, as a plain connection closed is. Control: the same server verified
    /// with its own CA is connected.
    #[test]
    fn a_handshake_refused_for_trust_is_tls_and_one_cut_off_is_an_outage() {
        let connect = |port: u16, ca: &[u8]| {
            let tls = Tls {
                ca_pem: Some(ca),
                client: None,
            };
            let addr = Address::Tcp {
                host: "127.0.0.1",
                port,
            };
            Conn::connect(&addr, Some(&tls), Instant::now() + Duration::from_secs(10))
        };
        let serve_tls = |sctx: openssl::ssl::SslContext| {
            move |tcp: TcpStream| {
                if let Ok(mut s) = Ssl::new(&sctx).expect("ssl").accept(tcp) {
                    // Until the client is done.
                    let _ = s.read(&mut [0u8; 16]);
                }
            }
        };
        let (sctx, ca) = server_context_and_ca();
        let sctx = sctx.build();

        let (port, server) = one_connection(serve_tls(sctx.clone()));
        assert!(connect(port, &ca).is_ok(), "control: its own CA");
        server.join().expect("server");

        let (_, other_ca) = server_context_and_ca();
        let (port, server) = one_connection(serve_tls(sctx));
        match connect(port, &other_ca).err() {
            Some(WireError::Tls(m)) => assert!(m.contains("certificate verify failed"), "{m}"),
            Some(e) => panic!("{e:?}"),
            None => panic!("connected"),
        }
        server.join().expect("server");

        let (port, server) = one_connection(|mut tcp| {
            let _ = tcp.read(&mut [0u8; 4096]);
        });
        match connect(port, &ca).err() {
            Some(WireError::Io(m)) => assert!(m.contains("the connection ended"), "{m}"),
            Some(e) => panic!("{e:?}"),
            None => panic!("connected"),
        }
        server.join().expect("server");
    }

    /// A port nobody listens on refuses at once: an I/O error with the kernel's words.
    /// A listener whose accept queue is full drops the connection request, and the
    /// connect waits until the deadline: a timeout naming the address. Control: the
    /// same listener with room in its queue takes the connection.
    #[test]
    fn a_refused_connect_is_an_io_error_and_one_left_waiting_a_timeout() {
        use std::os::fd::AsRawFd;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        match tcp_connect("127.0.0.1", closed, Instant::now() + Duration::from_secs(5)) {
            Err(e @ WireError::Io(_)) => assert!(e.to_string().contains("refused"), "{e}"),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("connected"),
        }

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        // SAFETY: listen(2) on the listener's own open socket, to shrink its queue to
        // one connection.
        let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
        assert_eq!(rc, 0, "listen");
        let port = listener.local_addr().expect("addr").port();
        let queued = TcpStream::connect(("127.0.0.1", port)).expect("the one queued");
        let r = tcp_connect(
            "127.0.0.1",
            port,
            Instant::now() + Duration::from_millis(300),
        );
        match r {
            Err(e @ WireError::Timeout(_)) => {
                assert_eq!(e.to_string(), format!("no connection to 127.0.0.1:{port}"));
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("connected"),
        }
        drop(listener.accept().expect("accept"));
        drop(queued);
        assert!(
            tcp_connect("127.0.0.1", port, Instant::now() + Duration::from_secs(5)).is_ok(),
            "control: room in the queue"
        );
    }

    /// A name the module's resolver could not look up in time is an outage (the name
    /// service may come back); one it refuses to look up is the configuration's fault.
    #[test]
    fn a_name_not_resolved_in_time_is_an_outage_and_one_refused_is_not() {
        pam_totp_plugin_abi::resolve::install(pam_totp_plugin_abi::test_support::slow_or_refusing);
        let deadline = Instant::now() + Duration::from_secs(5);
        match tcp_connect("slow.example", 6379, deadline) {
            Err(WireError::Io(m)) => assert!(m.contains("slow.example"), "{m}"),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("connected"),
        }
        match tcp_connect("bad_name.example", 6379, deadline) {
            Err(WireError::Unresolvable(m)) => assert_eq!(m, "not a host name"),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("connected"),
        }
    }
}
