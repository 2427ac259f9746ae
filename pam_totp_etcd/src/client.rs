//! The HTTP side: one `ureq` agent, the member list, failover, authentication.
//!
//! Every request is bounded as a whole (`timeout_global`: connect, TLS, send, the whole
//! reply) and its body is capped before it is buffered (R36). No proxy, no redirect, no
//! setting from the environment. Host names are resolved by [`BoundedResolver`]: the
//! module's resolver, a child process reaped within the connect bound, so the plugin
//! never leaves a thread behind in sshd (ureq's own resolver runs a lookup on a helper
//! thread that outlives its timeout).

use std::time::{Duration, Instant};

use pam_totp_plugin_abi::{Failure, MESSAGE_ROOM, Status, fitted};
use serde_json::{Value, json};
use ureq::Agent;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};

use crate::tls::{OpensslConnector, TlsAfterHandshake, TlsFailure};
use bytes::Bytes;
use ureq::http::HeaderValue;
use zeroize::{Zeroize, Zeroizing};

/// Largest reply body read (a record is at most `MAX_ENCODED_LEN` bytes, base64 and JSON
/// around it stay far below this).
const MAX_BODY: u64 = 64 * 1024;
/// Largest reply header block.
const MAX_HEADER: usize = 16 * 1024;
/// Each connection's buffers (the TLS link's too). ureq's defaults, 128 KiB each way,
/// were zero-filled at every login's connection: a fifth of the instructions of a login
/// through etcd (docs/performance.md). The input buffer holds a whole reply header block
/// with room to spare; the body streams through it. The output holds a request's head
/// (the token is its longest line); the body streams through it.
const INPUT_BUFFER: usize = 2 * MAX_HEADER;
const OUTPUT_BUFFER: usize = 16 * 1024;

/// A member's host name without an address: nothing was sent to it.
#[derive(Debug)]
struct Unresolved(pam_totp_plugin_abi::resolve::Unresolved);

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Unresolved {}

/// Resolves through the module's bounded resolver (`pam_totp_plugin_abi::resolve`, the
/// same as the Redis plugin's), within the request's resolve bound: the connect bound
/// (`timeout_resolve`), or less when less is left of the whole request. IP literals,
/// the usual case for etcd members, are not looked up at all.
#[derive(Debug)]
struct BoundedResolver {
    /// `etcd_connect_timeout=`, should ureq hand over no bound at all.
    connect: Duration,
}

impl Resolver for BoundedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().ok_or(ureq::Error::HostNotFound)?;
        let limit = match timeout.after {
            ureq::unversioned::transport::time::Duration::Exact(d) => d.min(self.connect),
            ureq::unversioned::transport::time::Duration::NotHappening => self.connect,
        };
        let found = pam_totp_plugin_abi::resolve::socket_addrs(host, port, limit)
            .map_err(|e| ureq::Error::Other(Box::new(Unresolved(e))))?;
        let mut out = self.empty();
        for a in found {
            // Room for 16 addresses; the rest are not needed.
            if out.try_push(a).is_err() {
                break;
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

/// How a failed request is retried.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A read: any member may answer it, so any failure moves on to the next member.
    Idempotent,
    /// A write: moved on only when the request cannot have reached a member (no
    /// connection). After a timeout it may have been committed; the caller then denies
    /// rather than guess.
    NotDelivered,
}

/// What went wrong on one member.
enum Attempt {
    /// Move on to the next member (with this failure if none is left).
    Next(Failure, bool),
    /// Stop here.
    Fatal(Failure),
}

pub struct Client {
    agent: Agent,
    /// `http(s)://host:port` of each member.
    members: Vec<String>,
    /// The member that answered last; tried first.
    current: usize,
    credentials: Option<(String, Zeroizing<String>)>,
    token: Option<Zeroizing<String>>,
    /// Bound of one whole call, failovers included (R36): no member's request runs past
    /// it, however much of its own bounds is left.
    call_budget: Duration,
    /// `etcd_connect_timeout=` and `etcd_timeout=`: each request's own bounds.
    connect: Duration,
    command: Duration,
    /// The cluster's clock: the `Date` of the last reply read (unix seconds) and when
    /// it was read here.
    clock: Option<(u64, Instant)>,
    /// Why each member passed over before another served (once per member), until
    /// taken: a member that fails unnoticed while the others serve leaves the cluster
    /// one failure further from losing its majority.
    skipped: Vec<String>,
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, the only form a
/// server may send: RFC 9110 §5.6.7) in unix seconds.
pub fn http_date(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split(' ').collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let num = |s: &str, len: usize| -> Option<u64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let (day, year) = (num(day, 2)?, num(year, 4)?);
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let (h, m, s) = (num(h, 2)?, num(m, 2)?, num(s, 2)?);
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from 1970-01-01 to the date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

fn unavailable(m: String) -> Failure {
    Failure::new(Status::Unavailable, m)
}

fn refused(m: String) -> Failure {
    Failure::new(Status::Refused, m)
}

impl Client {
    /// The agent and the member list; nothing is sent yet.
    pub fn new(
        endpoints: &str,
        ca_pem: Option<&[u8]>,
        client_cert: Option<(&[u8], &[u8])>,
        credentials: Option<(String, Zeroizing<String>)>,
        connect: Duration,
        command: Duration,
    ) -> Result<Self, Failure> {
        let (tls, list) = if let Some(l) = endpoints.strip_prefix("etcds://") {
            (true, l)
        } else if let Some(l) = endpoints.strip_prefix("etcd://") {
            (false, l)
        } else {
            return Err(Failure::invalid("not an etcd endpoint list"));
        };
        let scheme = if tls { "https" } else { "http" };
        let members: Vec<String> = list
            .split(',')
            .filter(|m| !m.is_empty())
            .map(|m| format!("{scheme}://{m}"))
            .collect();
        if members.is_empty() || members.len() > totp_core::fleet::etcd::MAX_ETCD_ENDPOINTS {
            return Err(Failure::invalid("bad etcd endpoint list"));
        }
        // One TLS context for the login's connections: only the CAs the module handed
        // over (the CA file, or the system bundle it read from its fixed path).
        let tls_context = if tls {
            let ca = ca_pem.ok_or_else(|| Failure::invalid("no CA to verify the members with"))?;
            Some(pam_totp_tls::client_context(ca, client_cert).map_err(|e| Failure::invalid(&e))?)
        } else {
            None
        };
        let config = Agent::config_builder()
            // Status codes are read, not turned into errors: etcd's gateway explains a
            // refusal in the body.
            .http_status_as_error(false)
            .max_redirects(0)
            // Never from the environment (HTTP_PROXY and friends): R36 and "no
            // configuration from the environment".
            .proxy(None)
            .timeout_connect(Some(connect))
            // A host name's lookup gets the connect bound too (`BoundedResolver`).
            .timeout_resolve(Some(connect))
            .timeout_global(Some(command))
            .max_response_header_size(MAX_HEADER)
            .input_buffer_size(INPUT_BUFFER)
            .output_buffer_size(OUTPUT_BUFFER)
            .user_agent("pam_totp")
            .build();
        let tcp = ().chain(TcpConnector::default());
        let agent = match tls_context {
            Some(ctx) => Agent::with_parts(
                config,
                tcp.chain(OpensslConnector::new(ctx)),
                BoundedResolver { connect },
            ),
            None => Agent::with_parts(config, tcp, BoundedResolver { connect }),
        };
        Ok(Self {
            agent,
            members,
            current: 0,
            credentials,
            token: None,
            call_budget: connect + command,
            connect,
            command,
            clock: None,
            skipped: Vec::new(),
        })
    }

    /// The members passed over before another served, and why, since last taken; `None`
    /// when every call was served by the first member it asked.
    pub fn take_skipped(&mut self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let each = std::mem::take(&mut self.skipped);
        let head = format!(
            "{} of {} members skipped while another served (fix it, or take it out of \
             state=, before the cluster loses its majority): ",
            each.len(),
            self.members.len(),
        );
        let list = fitted(&each, MESSAGE_ROOM.saturating_sub(head.len()));
        Some(head + &list)
    }

    /// The cluster's clock now, in unix seconds, from the last reply's `Date` (whole
    /// seconds) and the time elapsed here since; `None` before any reply had one.
    pub fn server_time(&self) -> Option<u64> {
        self.clock
            .map(|(date, read_at)| date.saturating_add(read_at.elapsed().as_secs()))
    }

    /// With credentials, gets a token (etcd checks the password through Raft, which
    /// needs a majority). `probe`: without credentials, also ask a member whether it
    /// knows a leader (when the caller has no read of its own to prove the cluster
    /// serves).
    pub fn connect(&mut self, probe: bool) -> Result<(), Failure> {
        if self.credentials.is_some() {
            return self.authenticate(Instant::now() + self.call_budget);
        }
        if !probe {
            return Ok(());
        }
        let status = self.call("/v3/maintenance/status", &json!({}), Retry::Idempotent)?;
        // A member cut off from the majority still answers; it reports no leader.
        if status.get("leader").and_then(number).unwrap_or(0) == 0 {
            return Err(unavailable(
                "the etcd member answering knows no leader (no majority)".to_owned(),
            ));
        }
        Ok(())
    }

    /// A token, asked of the members until `deadline`.
    fn authenticate(&mut self, deadline: Instant) -> Result<(), Failure> {
        let Some((name, password)) = &self.credentials else {
            return Ok(());
        };
        let body = auth_body(name, password);
        self.token = None;
        let mut reply =
            self.post_any("/v3/auth/authenticate", &body, Retry::Idempotent, deadline)?;
        // Moved out of the parsed reply, not copied, so the one copy is wiped on drop.
        let token = match reply.get_mut("token").map(Value::take) {
            Some(Value::String(t)) => Zeroizing::new(t),
            _ => Zeroizing::new(String::new()),
        };
        if token.is_empty() || token.len() > 4096 {
            return Err(Failure::corrupt("etcd authentication reply has no token"));
        }
        self.token = Some(token);
        Ok(())
    }

    /// One gateway call, on the first member that answers; a token that expired (etcd's
    /// simple tokens live five minutes) is renewed once. The renewal and the second try
    /// share the call's one budget, so a call never takes more than it.
    pub fn call(&mut self, path: &str, body: &Value, retry: Retry) -> Result<Value, Failure> {
        let deadline = Instant::now() + self.call_budget;
        let text = Zeroizing::new(body.to_string().into_bytes());
        match self.post_any(path, &text, retry, deadline) {
            Err(f) if f.message.contains("invalid auth token") && self.credentials.is_some() => {
                self.authenticate(deadline)?;
                self.post_any(path, &text, retry, deadline)
            }
            other => other,
        }
    }

    fn post_any(
        &mut self,
        path: &str,
        body: &[u8],
        retry: Retry,
        deadline: Instant,
    ) -> Result<Value, Failure> {
        let mut failures: Vec<Failure> = Vec::new();
        for i in 0..self.members.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            // Out of the call's budget (a renewal took it): no member is asked with none.
            if left.is_zero() {
                break;
            }
            let m = (self.current + i) % self.members.len();
            match self.post_one(m, path, body, left) {
                Ok((v, date)) => {
                    self.current = m;
                    if let Some(d) = date {
                        self.clock = Some((d, Instant::now()));
                    }
                    for f in failures {
                        if !self.skipped.contains(&f.message) {
                            self.skipped.push(f.message);
                        }
                    }
                    return Ok(v);
                }
                Err(Attempt::Fatal(f)) => return Err(f),
                Err(Attempt::Next(f, delivered)) => {
                    failures.push(f);
                    // A write that may have reached a member is not sent again.
                    if delivered && retry == Retry::NotDelivered {
                        break;
                    }
                }
            }
        }
        // Start with the next member next time: this one failed.
        self.current = (self.current + 1) % self.members.len();
        Err(summarise(failures))
    }

    /// The reply of one member and the time its `Date` header gave, within `left` of the
    /// call's budget: a member tried after another timed out gets only what remains, so
    /// the call ends within the budget, not one request timeout past it.
    fn post_one(
        &self,
        member: usize,
        path: &str,
        body: &[u8],
        left: Duration,
    ) -> Result<(Value, Option<u64>), Attempt> {
        let base = &self.members[member];
        let url = format!("{base}{path}");
        let mut req = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(self.command.min(left)))
            .timeout_connect(Some(self.connect.min(left)))
            .build()
            .content_type("application/json");
        // The header value shares this buffer instead of copying the token: once ureq
        // has dropped the request, the buffer is ours alone and is wiped (`wipe_shared`).
        let auth = self
            .token
            .as_ref()
            .map(|t| Bytes::copy_from_slice(t.as_bytes()));
        if let Some(b) = &auth {
            let value = HeaderValue::from_maybe_shared(b.clone()).map_err(|_| {
                Attempt::Fatal(Failure::corrupt("the etcd token is no HTTP header value"))
            })?;
            req = req.header("Authorization", value);
        }
        let result = Self::exchange(req, base, body);
        if let Some(b) = auth {
            let _wiped = wipe_shared(b);
            #[cfg(test)]
            tests::LAST_WIPE.with(|w| w.set(Some(_wiped)));
        }
        result
    }

    /// Sends `req` and reads its reply (see [`Client::post_one`]).
    fn exchange(
        req: ureq::RequestBuilder<ureq::typestate::WithBody>,
        base: &str,
        body: &[u8],
    ) -> Result<(Value, Option<u64>), Attempt> {
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return Err(transport_error(base, e)),
        };
        let code = resp.status().as_u16();
        let date = resp
            .headers()
            .get("date")
            .and_then(|d| d.to_str().ok())
            .and_then(http_date);
        // The authentication reply holds the token.
        let bytes = Zeroizing::new(
            resp.body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| transport_error(base, e))?,
        );
        // Not the gateway (another HTTP server on the port, or an etcd that serves its
        // gateway elsewhere): it stays so until an admin changes state=, and no record
        // was read, so it is no damaged record either.
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            Attempt::Next(
                refused(format!(
                    "{base}: not an etcd v3 gateway: HTTP {code} with a reply that is not \
                     JSON (a wrong port? pam_totp needs etcd 3.4 or later, which serves \
                     /v3/ on its client URLs)"
                )),
                true,
            )
        })?;
        if code == 200 {
            return Ok((value, date));
        }
        Err(gateway_error(base, code, &value))
    }
}

/// Wipes a buffer the HTTP client was lent (the token's header value), if no other
/// handle to it is left; `false`: one is (the client kept a copy), and it is not wiped.
fn wipe_shared(b: Bytes) -> bool {
    match b.try_into_mut() {
        Ok(mut m) => {
            m.as_mut().zeroize();
            true
        }
        Err(_) => false,
    }
}

/// The body of `/v3/auth/authenticate`, written straight into wiped storage: a JSON
/// value (`serde_json::Value`, its `to_string`) would leave copies of the password that
/// are freed unwiped. Capacity is reserved for the worst case (every character a
/// six-byte `\u00XX` escape), so the buffer never reallocates and leaves no copy behind.
pub(crate) fn auth_body(name: &str, password: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(32 + 6 * (name.len() + password.len())));
    out.extend_from_slice(b"{\"name\":");
    json_string(&mut out, name);
    out.extend_from_slice(b",\"password\":");
    json_string(&mut out, password);
    out.push(b'}');
    out
}

/// `s` as a JSON string (RFC 8259 §7): quotes, backslashes and control characters
/// escaped, anything else (non-ASCII included) as its UTF-8 bytes.
fn json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x00..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// One failure for the module's log: alone as it is; several (one per member tried)
/// joined under the cause they share, a cluster that cannot serve (no majority reached).
fn summarise(mut failures: Vec<Failure>) -> Failure {
    match failures.len() {
        0 => unavailable("no etcd member answered in time".to_owned()),
        1 => failures.remove(0),
        n => {
            // A member that could not be reached may serve once it is back: only members
            // that all answered, and could not serve, are the configuration's fault.
            let outage = failures.iter().any(|f| f.status == Status::Unavailable);
            let status = if outage {
                Status::Unavailable
            } else {
                failures[n - 1].status
            };
            // Every member answered, and none usably (each a record too large, a
            // refusal): that answer, not a majority out of reach.
            let cause = if outage { "no majority reached: " } else { "" };
            let each: Vec<String> = failures.into_iter().map(|f| f.message).collect();
            let head = format!("{cause}{n} members tried, none could serve (");
            // The closing parenthesis.
            let list = fitted(&each, MESSAGE_ROOM.saturating_sub(head.len() + 1));
            Failure::new(status, format!("{head}{list})"))
        }
    }
}

/// A JSON number or a decimal string (the gateway writes 64-bit integers as strings).
pub fn number(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= 20 => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn transport_error(base: &str, e: ureq::Error) -> Attempt {
    use ureq::Error as E;
    match e {
        // Never reached the member: safe to send elsewhere.
        E::ConnectionFailed | E::HostNotFound | E::Timeout(ureq::Timeout::Connect) => {
            Attempt::Next(unavailable(format!("{base}: cannot connect")), false)
        }
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Attempt::Next(unavailable(format!("{base}: connection refused")), false)
        }
        E::Timeout(t) => Attempt::Next(
            unavailable(format!("{base}: no complete reply in time ({t})")),
            true,
        ),
        E::Io(io) => Attempt::Next(unavailable(format!("{base}: {io}")), true),
        // Not sent anywhere: safe to send elsewhere. A name the resolver will not look up
        // (not a host name, an untrusted getent) is the configuration's fault.
        E::Other(u) if u.is::<Unresolved>() => {
            let status = u
                .downcast_ref::<Unresolved>()
                .map_or(Status::Unavailable, |u| match u.0.status {
                    Status::Unavailable => Status::Unavailable,
                    _ => Status::Refused,
                });
            Attempt::Next(Failure::new(status, format!("{base}: {u}")), false)
        }
        // A TLS failure is the member's certificate or ours: a refusal an admin fixes. The
        // handshake comes before any request, so nothing was sent and the next member,
        // verified the same way, may serve: one member with an expired or wrong
        // certificate must not deny every login while the others serve. Where every
        // member fails so, the summary is a refusal still (no `state_fallback=`).
        E::Other(t) if t.is::<TlsFailure>() => {
            Attempt::Next(refused(format!("{base}: TLS: {t}")), false)
        }
        E::Tls(t) => Attempt::Next(refused(format!("{base}: TLS: {t}")), false),
        // The member's alert after the handshake (it refused this host's client
        // certificate) is a refusal as well, not an outage `state_fallback=` would take;
        // but the request may have reached it, so a write is not sent again.
        E::Other(t) if t.is::<TlsAfterHandshake>() => {
            Attempt::Next(refused(format!("{base}: TLS: {t}")), true)
        }
        // What answered does not speak HTTP (an SSH or Redis port).
        E::Protocol(p) => {
            let text = pam_totp_plugin_abi::shown(&p.to_string(), 200);
            Attempt::Next(
                refused(format!(
                    "{base}: not an etcd member ({text}); check the ports of state="
                )),
                true,
            )
        }
        E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) => Attempt::Next(
            Failure::corrupt(&format!(
                "{base}: reply larger than pam_totp reads (a stored value too large?)"
            )),
            true,
        ),
        other => {
            let text = pam_totp_plugin_abi::shown(&other.to_string(), 200);
            Attempt::Next(Failure::corrupt(&format!("{base}: {text}")), true)
        }
    }
}

/// An error reply of the gateway: `{"error": "...", "code": N}` (gRPC codes).
fn gateway_error(base: &str, http: u16, v: &Value) -> Attempt {
    let grpc = v.get("code").and_then(Value::as_u64).unwrap_or(0);
    let text = pam_totp_plugin_abi::shown(
        v.get("error")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or(""),
        200,
    );
    let message = format!("{base}: HTTP {http}: {text}");
    match grpc {
        // UNAUTHENTICATED, PERMISSION_DENIED: our credentials or role.
        16 | 7 => Attempt::Fatal(refused(message)),
        // A learner serves no linearizable read and no write until it is promoted:
        // another member may serve, but a list of learners never will.
        14 if text.contains("not supported for learner") => Attempt::Next(
            refused(format!(
                "{message} (a learner: name the cluster's voting members in state=, or \
                 promote it with `etcdctl member promote`)"
            )),
            false,
        ),
        // A cluster with authentication on, asked without a token.
        3 if text.contains("user name is empty") => Attempt::Fatal(refused(format!(
            "{message} (authentication is on: etcd_credentials= names the user)"
        ))),
        // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE: what we sent.
        3 | 9 | 11 => Attempt::Fatal(Failure::invalid(&message)),
        // UNAVAILABLE, DEADLINE_EXCEEDED and the rest: this member cannot serve now (no
        // leader, no majority, shutting down); another may. A write may have been
        // proposed, so `Retry::NotDelivered` stops here.
        _ => Attempt::Next(unavailable(message), true),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pam_totp_plugin_abi::CUT;

    thread_local! {
        /// Whether the last request's token buffer was wiped (`None`: no token sent).
        pub(super) static LAST_WIPE: std::cell::Cell<Option<bool>> =
            const { std::cell::Cell::new(None) };
    }

    /// A plain HTTP gateway on loopback answering `n` requests (one connection each),
    /// returning the `Authorization` values it was sent.
    fn gateway(n: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..n {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut len = 0usize;
                let mut request_line = String::new();
                reader.read_line(&mut request_line).expect("request line");
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("read");
                    let (name, value) = line.trim_end().split_once(':').unwrap_or(("", ""));
                    match name.to_ascii_lowercase().as_str() {
                        "" => break,
                        "content-length" => len = value.trim().parse().expect("length"),
                        "authorization" => seen.push(value.trim().to_owned()),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).expect("body");
                let reply = b"{\"count\":\"0\"}";
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                )
                .expect("head");
                stream.write_all(reply).expect("reply");
            }
            seen
        });
        (port, server)
    }

    /// The token's header value is the plugin's own buffer lent to ureq: after each
    /// request ureq holds no handle to it, so it is wiped, and the token reached the
    /// gateway intact. Control: a buffer another handle still shares is not wiped (and
    /// says so), so the check can fail.
    #[test]
    fn the_token_header_buffer_is_wiped_after_each_request() {
        let (port, server) = gateway(2);
        let d = Duration::from_secs(5);
        let mut c = Client::new(&format!("etcd://127.0.0.1:{port}"), None, None, None, d, d)
            .expect("client");
        c.token = Some(Zeroizing::new("t0ken.42".to_owned()));
        for i in 0..2 {
            LAST_WIPE.with(|w| w.set(None));
            c.call("/v3/kv/range", &json!({ "key": "a" }), Retry::Idempotent)
                .unwrap_or_else(|f| panic!("call {i}: {}", f.message));
            assert_eq!(LAST_WIPE.with(std::cell::Cell::get), Some(true), "call {i}");
        }
        assert_eq!(server.join().expect("gateway"), ["t0ken.42", "t0ken.42"]);
        let b = Bytes::copy_from_slice(b"t0ken.42");
        let other = b.clone();
        assert!(!wipe_shared(b), "a shared buffer is not wiped");
        let mut m = other.try_into_mut().expect("unique now");
        assert_eq!(&m[..], b"t0ken.42", "and left intact");
        m.as_mut().zeroize();
        assert!(m.iter().all(|&x| x == 0));
    }

    /// The hand-written authentication body is the JSON a parser reads back as the
    /// same name and password, for the characters JSON must escape and for non-ASCII;
    /// it is wiped storage that never grew past its first allocation (a reallocation
    /// would free a copy unwiped). Control: the plain case.
    #[test]
    fn the_authentication_body_escapes_every_password_and_never_reallocates() {
        let cases = [
            ("pam", "plain"),
            ("pa\"m", "quo\"te"),
            ("back\\slash", "\\\\\"\\"),
            ("ctl", "\u{0}\u{1}\t\n\r\u{1f}\u{7f}"),
            ("nön-ascii", "pässwörd ключ 密码 🔑"),
            ("", ""),
        ];
        for (name, password) in cases {
            let body: Zeroizing<Vec<u8>> = auth_body(name, password);
            let capacity = 32 + 6 * (name.len() + password.len());
            assert_eq!(body.capacity(), capacity, "reallocated for {name:?}");
            let v: Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(v, json!({ "name": name, "password": password }), "{name:?}");
        }
        // Every byte a control character: the worst case fits the reservation.
        let worst = "\u{1}".repeat(100);
        assert_eq!(auth_body(&worst, &worst).capacity(), 32 + 6 * 200);
    }

    fn status_of(a: Attempt) -> (Status, bool) {
        match a {
            Attempt::Next(f, delivered) => (f.status, delivered),
            Attempt::Fatal(f) => (f.status, true),
        }
    }

    #[test]
    fn gateway_errors_are_classified_by_their_grpc_code() {
        let e = |code: u64, text: &str| json!({ "error": text, "code": code });
        let fatal = |a: Attempt| matches!(a, Attempt::Fatal(_));
        assert!(fatal(gateway_error(
            "m",
            401,
            &e(16, "etcdserver: invalid auth token")
        )));
        let denied = gateway_error("m", 403, &e(7, "etcdserver: permission denied"));
        assert_eq!(status_of(denied).0, Status::Refused);
        let bad = gateway_error("m", 400, &e(3, "etcdserver: key is not provided"));
        assert_eq!(status_of(bad).0, Status::Invalid);
        // No leader, request timed out: the next member may serve; a write may have
        // been proposed, so it counts as delivered.
        let busy = gateway_error("m", 503, &e(14, "etcdserver: no leader"));
        assert!(!fatal(gateway_error("m", 503, &e(14, "x"))));
        assert_eq!(status_of(busy), (Status::Unavailable, true));
        // A learner: the next member may serve (nothing was proposed), but a list of
        // learners never will: a refusal.
        let learner = gateway_error(
            "m",
            503,
            &e(14, "etcdserver: rpc not supported for learner"),
        );
        assert_eq!(status_of(learner), (Status::Refused, false));
        // Authentication on, no token sent: the credentials are missing, not our request.
        let anonymous = gateway_error("m", 400, &e(3, "etcdserver: user name is empty"));
        assert!(matches!(&anonymous, Attempt::Fatal(f) if f.message.contains("etcd_credentials=")));
        assert_eq!(status_of(anonymous).0, Status::Refused);
    }

    #[test]
    fn messages_from_the_wire_are_cut_and_stripped_of_control_characters() {
        let long = format!("a\nb{}", "x".repeat(1000));
        let Attempt::Next(f, _) = gateway_error("m", 500, &json!({ "error": long, "code": 2 }))
        else {
            panic!("not fatal");
        };
        assert!(f.message.len() < 300, "{}", f.message);
        assert!(!f.message.contains('\n'));
    }

    #[test]
    fn failures_on_every_member_are_one_no_majority_message() {
        let one = summarise(vec![unavailable("m1: connection refused".into())]);
        assert_eq!(one.message, "m1: connection refused");
        let all = summarise(vec![
            unavailable("m1: connection refused".into()),
            unavailable("m2: no complete reply in time".into()),
        ]);
        assert_eq!(all.status, Status::Unavailable);
        assert!(
            all.message.contains("no majority reached"),
            "{}",
            all.message
        );
        assert!(all.message.contains("m1") && all.message.contains("m2"));
        assert_eq!(summarise(Vec::new()).status, Status::Unavailable);
        // A learner (refused) and a member that could not be reached, in either order:
        // the member may serve once it is back, so an outage.
        let learner = || refused("m1: rpc not supported for learner".into());
        let down = || unavailable("m2: connection refused".into());
        assert_eq!(
            summarise(vec![learner(), down()]).status,
            Status::Unavailable
        );
        assert_eq!(
            summarise(vec![down(), learner()]).status,
            Status::Unavailable
        );
        let learners = summarise(vec![learner(), learner()]);
        assert_eq!(learners.status, Status::Refused);
        // Every member answered: no majority was out of reach.
        assert!(
            !learners.message.contains("no majority") && learners.message.contains("2 members"),
            "{}",
            learners.message
        );
    }

    /// Five members, each failing with a long reason (a TLS verification failure runs to
    /// about 200 bytes): every member's address and the start of its reason fit the
    /// plugin's message, in the note of members skipped and in the failure of all.
    /// Before, the list was cut at the end of the buffer, and the third member on lost
    /// its address and reason.
    #[test]
    fn five_members_with_long_reasons_each_keep_their_address_and_a_reason() {
        let member = |i: usize| format!("http://etcd-member-{i}.cluster.example.net:2379");
        let why = |i: usize| {
            format!(
                "{}: TLS handshake: certificate verify failed (reason {i}: the server's \
                 certificate expired on 2026-11-30 00:00:00 UTC; renew it, or check this \
                 host's clock){}",
                member(i),
                " and more".repeat(8)
            )
        };
        let reasons: Vec<String> = (1..=5).map(why).collect();
        assert!(
            reasons.iter().map(String::len).sum::<usize>() > MESSAGE_ROOM,
            "the fault: they do not fit whole"
        );
        let all = summarise(reasons.iter().cloned().map(refused).collect());
        let list: Vec<String> = (1..=5)
            .map(|i| format!("etcd-member-{i}.cluster.example.net:2379"))
            .collect();
        let d = Duration::from_secs(1);
        let mut client = Client::new(
            &format!("etcd://{}", list.join(",")),
            None,
            None,
            None,
            d,
            d,
        )
        .expect("client");
        client.skipped = reasons.clone();
        let note = client.take_skipped().expect("a note");
        for (what, text) in [("failure", all.message.as_str()), ("note", note.as_str())] {
            assert!(text.len() <= MESSAGE_ROOM, "{what}: {} bytes", text.len());
            for i in 1..=5 {
                assert!(
                    text.contains(&format!("{}: TLS handshake", member(i))),
                    "{what}: member {i} and the start of its reason: {text}"
                );
            }
            assert!(text.contains(CUT), "{what}: {text}");
        }
        assert!(all.message.ends_with(')'), "{}", all.message);
        // Control: messages that fit are left whole.
        let short = summarise(vec![
            refused(format!("{}: a learner", member(1))),
            refused(format!("{}: a learner", member(2))),
        ]);
        assert!(!short.message.contains(CUT), "{}", short.message);
        assert!(short.message.ends_with(": a learner)"), "{}", short.message);
    }

    /// Twelve members with long names, all refusing: their addresses alone overflowed the
    /// plugin's message, whose buffer then cut the last members and the closing
    /// parenthesis. Now the failure fits, ends the list with a count of the members it
    /// leaves out and closes it. Control: three such members are each shown.
    #[test]
    fn twelve_long_member_names_fit_the_message_with_a_count_of_the_rest() {
        let member =
            |i: usize| format!("https://etcd-member-{i:02}.datacenter-frankfurt.corp.example:2379");
        let all = |n: usize| {
            summarise(
                (1..=n)
                    .map(|i| refused(format!("{}: TLS: certificate verify failed", member(i))))
                    .collect(),
            )
        };
        let twelve = all(12);
        assert!(
            twelve.message.len() <= MESSAGE_ROOM,
            "{} bytes",
            twelve.message.len()
        );
        assert!(
            twelve.message.ends_with(" more not shown)"),
            "{}",
            twelve.message
        );
        assert!(twelve.message.contains(&member(1)), "{}", twelve.message);
        let three = all(3);
        assert!(
            !three.message.contains("more not shown"),
            "{}",
            three.message
        );
        for i in 1..=3 {
            assert!(three.message.contains(&member(i)), "{}", three.message);
        }
        assert!(three.message.ends_with(')'), "{}", three.message);
    }

    #[test]
    fn http_dates_are_read_as_unix_seconds_and_anything_else_is_none() {
        assert_eq!(
            http_date("Tue, 14 Nov 2023 22:13:45 GMT"),
            Some(1_700_000_025)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        for bad in [
            "",
            "Tue, 14 Nov 2023 22:13:45 UTC",
            "Tue, 14 Nov 2023 22:13 GMT",
            "Tue, 4 Nov 2023 22:13:45 GMT",
            "Tue, 14 Foo 2023 22:13:45 GMT",
            "Tuesday, 14-Nov-23 22:13:45 GMT",
            "Tue, 14 Nov 2023 25:13:45 GMT",
            "Tue, 14 Nov +023 22:13:45 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_come_as_strings_or_numbers() {
        assert_eq!(number(&json!("42")), Some(42));
        assert_eq!(number(&json!(7)), Some(7));
        assert_eq!(number(&json!("-1")), None);
        assert_eq!(number(&json!("123456789012345678901")), None);
        assert_eq!(number(&json!(null)), None);
    }

    /// A throwaway self-signed CA certificate (PEM).
    fn self_signed_pem() -> Vec<u8> {
        let (_, cert) = pam_totp_tls::test_support::self_signed("test CA", &[], &[]);
        cert.to_pem().expect("pem")
    }

    #[test]
    fn endpoint_lists_become_member_urls_and_nothing_else() {
        let d = Duration::from_millis(100);
        let c = Client::new("etcd://127.0.0.1:1,[::1]:2", None, None, None, d, d).unwrap();
        assert_eq!(c.members, ["http://127.0.0.1:1", "http://[::1]:2"]);
        let ca = self_signed_pem();
        let c = Client::new("etcds://h:3", Some(&ca), None, None, d, d).unwrap();
        assert_eq!(c.members, ["https://h:3"]);
        // TLS without a CA is refused: the module always hands one over.
        assert!(Client::new("etcds://h:3", None, None, None, d, d).is_err());
        for bad in ["redis://h:1", "etcd://", "http://h:1"] {
            assert!(Client::new(bad, None, None, None, d, d).is_err(), "{bad}");
        }
        assert!(Client::new("etcds://h:3", Some(b"not pem"), None, None, d, d).is_err());
    }

    /// One scripted reply of [`scripted`]: status, extra header lines, body.
    pub(crate) type Scripted = (u16, String, String);

    /// The path and `Authorization` value of each request a [`scripted`] gateway read.
    pub(crate) type Seen = Vec<(String, Option<String>)>;

    /// A plain HTTP gateway on loopback answering each request (one connection each)
    /// with the next of `replies`, until they run out or a connection brings no request;
    /// returns each request's path and `Authorization` value.
    pub(crate) fn scripted(replies: Vec<Scripted>) -> (u16, std::thread::JoinHandle<Seen>) {
        scripted_with_bodies(replies, None)
    }

    /// [`scripted`], also keeping each request's body in `bodies`.
    pub(crate) fn scripted_with_bodies(
        replies: Vec<Scripted>,
        bodies: Option<std::sync::Arc<std::sync::Mutex<Vec<Value>>>>,
    ) -> (u16, std::thread::JoinHandle<Seen>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, headers, body) in replies {
                let Ok((mut stream, _)) = listener.accept() else {
                    break;
                };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    break;
                }
                let path = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let (mut len, mut auth) = (0usize, None);
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("read");
                    let (name, value) = line.trim_end().split_once(':').unwrap_or(("", ""));
                    match name.to_ascii_lowercase().as_str() {
                        "" => break,
                        "content-length" => len = value.trim().parse().expect("length"),
                        "authorization" => auth = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
                let mut request = vec![0; len];
                reader.read_exact(&mut request).expect("body");
                if let Some(b) = &bodies {
                    let body = serde_json::from_slice(&request).unwrap_or(Value::Null);
                    b.lock().expect("bodies").push(body);
                }
                seen.push((path, auth));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            seen
        });
        (port, server)
    }

    /// Ends a [`scripted`] gateway that may still wait for a request: a connection
    /// without one.
    pub(crate) fn finish(port: u16, server: std::thread::JoinHandle<Seen>) -> Seen {
        drop(std::net::TcpStream::connect(("127.0.0.1", port)));
        server.join().expect("gateway")
    }

    pub(crate) fn ok(body: &str) -> Scripted {
        (200, String::new(), body.to_owned())
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    }

    pub(crate) fn client(ports: &[u16], credentials: Option<(&str, &str)>) -> Client {
        let list: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let d = Duration::from_secs(5);
        Client::new(
            &format!("etcd://{}", list.join(",")),
            None,
            None,
            credentials.map(|(u, p)| (u.to_owned(), Zeroizing::new(p.to_owned()))),
            d,
            d,
        )
        .expect("client")
    }

    const RANGE: &str = "/v3/kv/range";

    /// A call goes to the member that served last, moving past those that cannot serve
    /// (each noted once, whatever the number of calls it was passed over in); after a
    /// call no member served, the next starts one member further. The cluster's clock
    /// is the last reply's `Date`.
    #[test]
    fn calls_move_past_members_that_cannot_serve_and_stay_with_the_one_that_did() {
        let dated = (
            200,
            "Date: Tue, 14 Nov 2023 22:13:45 GMT\r\n".to_owned(),
            "{}".to_owned(),
        );
        let (port, server) = scripted(vec![dated.clone(), dated]);
        let down = closed_port();
        let mut c = client(&[down, port], None);
        assert_eq!(c.server_time(), None, "no reply yet");
        for i in 0..2 {
            c.call(RANGE, &json!({}), Retry::Idempotent)
                .unwrap_or_else(|f| panic!("call {i}: {}", f.message));
            assert_eq!(c.current, 1, "call {i}");
        }
        assert_eq!(finish(port, server).len(), 2);
        let t = c.server_time().expect("a clock");
        assert!((1_700_000_025..=1_700_000_027).contains(&t), "{t}");
        let note = c.take_skipped().expect("a note");
        assert!(
            note.starts_with("1 of 2 members skipped while another served")
                && note.contains(&format!("http://127.0.0.1:{down}: ")),
            "{note}"
        );
        assert_eq!(c.take_skipped(), None, "taken once");

        let mut c = client(&[closed_port(), closed_port()], None);
        let f = c
            .call(RANGE, &json!({}), Retry::Idempotent)
            .expect_err("none serves");
        assert_eq!(f.status, Status::Unavailable);
        assert_eq!(c.current, 1, "the next call starts one member further");
        assert_eq!(c.take_skipped(), None, "nobody served");
    }

    /// A write goes on to the next member only when it cannot have reached the one
    /// that failed (no connection); a read goes on after any failure.
    #[test]
    fn a_write_that_may_have_reached_a_member_is_not_sent_to_another() {
        let no_leader = (
            503,
            String::new(),
            r#"{"error":"etcdserver: no leader","code":14}"#.to_owned(),
        );
        let (busy, busy_server) = scripted(vec![no_leader.clone()]);
        let (other, other_server) = scripted(vec![ok("{}")]);
        let mut c = client(&[busy, other], None);
        let f = c
            .call("/v3/kv/txn", &json!({}), Retry::NotDelivered)
            .expect_err("not sent again");
        assert_eq!(f.status, Status::Unavailable, "{}", f.message);
        assert_eq!(finish(busy, busy_server).len(), 1);
        assert!(finish(other, other_server).is_empty(), "nothing sent on");

        // Not delivered (no connection): sent on, a write included.
        let (port, server) = scripted(vec![ok("{}")]);
        let mut c = client(&[closed_port(), port], None);
        assert!(
            c.call("/v3/kv/txn", &json!({}), Retry::NotDelivered)
                .is_ok()
        );
        assert_eq!(finish(port, server).len(), 1);

        // A read after a failure that reached the member: sent on.
        let (busy, busy_server) = scripted(vec![no_leader]);
        let (other, other_server) = scripted(vec![ok("{}")]);
        let mut c = client(&[busy, other], None);
        assert!(c.call(RANGE, &json!({}), Retry::Idempotent).is_ok());
        assert_eq!(finish(busy, busy_server).len(), 1);
        assert_eq!(finish(other, other_server).len(), 1);
    }

    /// Without credentials, the open asks whether the member knows a leader, only when
    /// it has no read of its own to prove it; with credentials the token proves it (etcd
    /// checks a password through Raft), and it is sent with every request.
    #[test]
    fn the_open_proves_a_leader_or_gets_a_token() {
        let (port, server) = scripted(vec![ok(r#"{"leader":"0"}"#), ok(r#"{"leader":"42"}"#)]);
        let mut c = client(&[port], None);
        let f = c.connect(true).expect_err("no leader");
        assert_eq!(f.status, Status::Unavailable);
        assert!(f.message.contains("knows no leader"), "{}", f.message);
        assert!(c.connect(true).is_ok());
        assert!(c.connect(false).is_ok(), "not asked");
        let seen = finish(port, server);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.iter().all(|(p, _)| p == "/v3/maintenance/status"));

        let (port, server) = scripted(vec![ok(r#"{"token":"t0k.1"}"#), ok("{}")]);
        let mut c = client(&[port], Some(("hosts", "pw")));
        c.connect(false).expect("token");
        c.call(RANGE, &json!({}), Retry::Idempotent).expect("call");
        assert_eq!(
            finish(port, server),
            [
                ("/v3/auth/authenticate".to_owned(), None),
                (RANGE.to_owned(), Some("t0k.1".to_owned()))
            ]
        );

        let longest = "t".repeat(4096);
        let (port, server) = scripted(vec![ok(&format!(r#"{{"token":"{longest}"}}"#))]);
        assert!(
            client(&[port], Some(("hosts", "pw")))
                .connect(false)
                .is_ok()
        );
        finish(port, server);
        for bad in [
            "{}".to_owned(),
            r#"{"token":""}"#.to_owned(),
            r#"{"token":7}"#.to_owned(),
            format!(r#"{{"token":"{longest}t"}}"#),
        ] {
            let (port, server) = scripted(vec![ok(&bad)]);
            let f = client(&[port], Some(("hosts", "pw")))
                .connect(false)
                .expect_err(&bad);
            assert_eq!(f.status, Status::Corrupt, "{bad}");
            finish(port, server);
        }
    }

    /// A token that expired is renewed once and the call made again with the new one;
    /// a client without credentials has none to renew.
    #[test]
    fn an_expired_token_is_renewed_once() {
        let expired = (
            401,
            String::new(),
            r#"{"error":"etcdserver: invalid auth token","code":16}"#.to_owned(),
        );
        let (port, server) = scripted(vec![
            ok(r#"{"token":"old"}"#),
            expired.clone(),
            ok(r#"{"token":"new"}"#),
            ok("{}"),
        ]);
        let mut c = client(&[port], Some(("hosts", "pw")));
        c.connect(false).expect("token");
        c.call(RANGE, &json!({}), Retry::Idempotent)
            .expect("renewed");
        let seen = finish(port, server);
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[1], (RANGE.to_owned(), Some("old".to_owned())));
        assert_eq!(seen[3], (RANGE.to_owned(), Some("new".to_owned())));

        let (port, server) = scripted(vec![expired.clone(), expired]);
        let f = client(&[port], None)
            .call(RANGE, &json!({}), Retry::Idempotent)
            .expect_err("refused");
        assert_eq!(f.status, Status::Refused);
        assert_eq!(finish(port, server).len(), 1, "asked once");
    }

    /// Replies up to the caps are read (a full record's base64 in JSON fits with room);
    /// a larger body or header block is refused unread.
    #[test]
    fn replies_are_read_up_to_their_caps() {
        let body = |n: usize| format!(r#"{{"v":"{}"}}"#, "x".repeat(n - 8));
        let header = |n: usize| format!("X-Pad: {}\r\n", "x".repeat(n));
        let (port, server) = scripted(vec![
            ok(&body(60 * 1024)),
            (200, header(12 * 1024), "{}".to_owned()),
            ok(&body(64 * 1024 + 1)),
            (200, header(17 * 1024), "{}".to_owned()),
        ]);
        let mut c = client(&[port], None);
        assert!(c.call(RANGE, &json!({}), Retry::Idempotent).is_ok());
        assert!(c.call(RANGE, &json!({}), Retry::Idempotent).is_ok());
        for what in ["body", "header"] {
            let f = c
                .call(RANGE, &json!({}), Retry::Idempotent)
                .expect_err(what);
            assert_eq!(f.status, Status::Corrupt, "{what}: {}", f.message);
        }
        finish(port, server);
        // The buffers are smaller than ureq's defaults: a request body larger than the
        // output buffer, and a reply larger than the input buffer, pass through whole.
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (port, server) =
            scripted_with_bodies(vec![ok(&body(2 * INPUT_BUFFER))], Some(bodies.clone()));
        let mut c = client(&[port], None);
        let pad = "y".repeat(3 * OUTPUT_BUFFER);
        let reply = c
            .call(RANGE, &json!({ "pad": pad }), Retry::Idempotent)
            .expect("both larger than their buffers");
        assert_eq!(
            reply["v"].as_str().map(str::len),
            Some(2 * INPUT_BUFFER - 8)
        );
        finish(port, server);
        assert_eq!(*bodies.lock().expect("bodies"), [json!({ "pad": pad })]);
    }

    /// A member's name the module's resolver could not look up in time is an outage
    /// (the name service may come back); one it refuses to look up is the
    /// configuration's fault. The log says why either way.
    #[test]
    fn a_member_name_not_resolved_in_time_is_an_outage_and_one_refused_is_not() {
        pam_totp_plugin_abi::resolve::install(pam_totp_plugin_abi::test_support::slow_or_refusing);
        let d = Duration::from_secs(1);
        for (host, status, why) in [
            (
                "slow.example",
                Status::Unavailable,
                "cannot resolve slow.example in time",
            ),
            ("bad.example", Status::Refused, "not a host name"),
        ] {
            let mut c = Client::new(&format!("etcd://{host}:2379"), None, None, None, d, d)
                .expect("client");
            let f = c
                .call(RANGE, &json!({}), Retry::Idempotent)
                .expect_err("no address");
            assert_eq!(f.status, status, "{}", f.message);
            assert_eq!(f.message, format!("http://{host}:2379: {why}"));
        }
    }

    /// The list of members' reasons fits the room to the byte: left whole when it fits
    /// exactly, shortened when one byte over. The failure of all fits the plugin's
    /// message with its NUL.
    #[test]
    fn member_lists_fit_their_room_to_the_byte() {
        let each: Vec<String> = (1..=3)
            .map(|i| format!("http://m{i}:2379: {}", "r".repeat(40)))
            .collect();
        let whole = each.join("; ");
        assert_eq!(fitted(&each, whole.len()), whole);
        let cut = fitted(&each, whole.len() - 1);
        assert!(cut.len() < whole.len() && cut.contains(CUT), "{cut}");
        let long: Vec<Failure> = (1..=5)
            .map(|i| unavailable(format!("http://m{i}:2379: {}", "r".repeat(400))))
            .collect();
        let all = summarise(long);
        assert!(
            all.message.len() < pam_totp_plugin_abi::MESSAGE_CAP,
            "{}",
            all.message.len()
        );
        assert!(
            all.message.len() + 10 > pam_totp_plugin_abi::MESSAGE_CAP,
            "room used"
        );
    }

    /// An HTTP date's fields at their limits are read, one past them is not a date.
    #[test]
    fn http_date_fields_are_bounded_at_their_limits() {
        assert!(http_date("Sat, 31 Dec 2016 23:59:60 GMT").is_some());
        assert!(http_date("Wed, 01 Jan 1970 00:00:00 GMT").is_some());
        for bad in [
            "Sat, 32 Dec 2016 23:59:59 GMT",
            "Sat, 00 Dec 2016 23:59:59 GMT",
            "Sat, 31 Dec 1969 23:59:59 GMT",
            "Sat, 31 Dec 2016 24:00:00 GMT",
            "Sat, 31 Dec 2016 23:60:00 GMT",
            "Sat, 31 Dec 2016 23:59:61 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }

    /// A client of the one `etcds://` member on `port`, trusting a CA of its own: the
    /// member's certificate (if it gets as far as showing one) is not trusted.
    fn tls_client(port: u16) -> Client {
        let d = Duration::from_secs(5);
        Client::new(
            &format!("etcds://127.0.0.1:{port}"),
            Some(&self_signed_pem()),
            None,
            None,
            d,
            d,
        )
        .expect("client")
    }

    /// A member whose certificate this host does not trust is a refusal to trust (no
    /// `state_fallback=`), not an outage.
    #[test]
    fn a_member_with_an_untrusted_certificate_is_a_refusal() {
        use openssl::ssl::Ssl;
        use pam_totp_tls::test_support::{self_signed, server_context};
        let (key, cert) = self_signed("member", &[], &[]);
        let sctx = server_context(&key, &cert).build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            if let Ok((tcp, _)) = listener.accept() {
                let _ = Ssl::new(&sctx).expect("ssl").accept(tcp);
            }
        });
        let f = tls_client(port)
            .call(RANGE, &json!({}), Retry::NotDelivered)
            .expect_err("untrusted");
        assert_eq!(f.status, Status::Refused, "{}", f.message);
        assert!(
            f.message
                .starts_with(&format!("https://127.0.0.1:{port}: TLS: ")),
            "{}",
            f.message
        );
        server.join().expect("server");
    }

    /// A decimal string longer than any 64-bit number is no number, even one that
    /// parses (leading zeros).
    #[test]
    fn a_number_string_is_bounded_before_it_is_parsed() {
        assert_eq!(number(&json!("18446744073709551615")), Some(u64::MAX));
        assert_eq!(number(&json!("000000000000000000042")), None);
        assert_eq!(number(&json!("")), None);
    }

    /// A member that refuses this host's (missing) client certificate after the
    /// handshake (TLS 1.3) is a refusal, and since the request may have reached it, a
    /// write is not sent to another member.
    #[test]
    fn a_member_refusing_the_client_after_the_handshake_gets_no_write_sent_on() {
        use openssl::ssl::{Ssl, SslVerifyMode, SslVersion};
        use pam_totp_tls::test_support::{self_signed, server_context};
        let (key, cert) = self_signed("member", &[], &["127.0.0.1"]);
        let mut sctx = server_context(&key, &cert);
        sctx.set_min_proto_version(Some(SslVersion::TLS1_3))
            .expect("TLS 1.3");
        sctx.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        let sctx = sctx.build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let mut raw = tcp.try_clone().expect("clone");
            // The refusal: the alert goes out; the socket stays open (no reset under the
            // client's request) until the client is done.
            assert!(Ssl::new(&sctx).expect("ssl").accept(tcp).is_err());
            let mut buf = [0u8; 4096];
            while matches!(std::io::Read::read(&mut raw, &mut buf), Ok(n) if n > 0) {}
        });
        let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let other_port = other.local_addr().expect("addr").port();
        let d = Duration::from_secs(2);
        let ca = cert.to_pem().expect("pem");
        let mut c = Client::new(
            &format!("etcds://127.0.0.1:{port},127.0.0.1:{other_port}"),
            Some(&ca),
            None,
            None,
            d,
            d,
        )
        .expect("client");
        let f = c
            .call("/v3/kv/txn", &json!({}), Retry::NotDelivered)
            .expect_err("refused");
        assert_eq!(f.status, Status::Refused, "{}", f.message);
        assert!(f.message.contains("certificate required"), "{}", f.message);
        drop(c);
        server.join().expect("server");
        other.set_nonblocking(true).expect("nonblocking");
        assert!(other.accept().is_err(), "the write went to another member");
    }

    /// A member that ends the connection during the TLS handshake is an outage, logged as
    /// the connection ending whether it closes (all of the client's hello read) or resets
    /// (part of the hello left unread, so the close sends a reset): which of the two a
    /// member going down gives depends on timing, and docs/fleet.md names both the same.
    #[test]
    fn a_member_ending_the_connection_during_the_handshake_is_an_outage_said_so() {
        use std::io::Read;
        for reset in [false, true] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = std::thread::spawn(move || {
                let Ok((mut tcp, _)) = listener.accept() else {
                    return 0;
                };
                if reset {
                    tcp.read(&mut [0u8; 8]).unwrap_or(0)
                } else {
                    // The hello's record header gives its length: read exactly all of it.
                    let mut head = [0u8; 5];
                    tcp.read_exact(&mut head).expect("record header");
                    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
                    tcp.read_exact(&mut rest).expect("hello");
                    5 + rest.len()
                }
            });
            let f = tls_client(port)
                .call(RANGE, &json!({}), Retry::Idempotent)
                .expect_err("ended");
            assert!(
                server.join().expect("server") > 0,
                "the hello reached the member"
            );
            assert_eq!(
                f.status,
                Status::Unavailable,
                "reset {reset}: {}",
                f.message
            );
            assert!(
                f.message.contains("TLS handshake: the connection ended ("),
                "reset {reset}: {}",
                f.message
            );
            // The reason below TLS is kept in the parentheses: a reset says so.
            assert_eq!(
                f.message.to_ascii_lowercase().contains("reset"),
                reset,
                "{}",
                f.message
            );
        }
    }

    /// A member that resets the connection once the request reached it may have taken
    /// the write: an outage, and the write is not sent to another member (only a
    /// connection never made is). Control: a read goes on to the next member.
    #[test]
    fn a_connection_reset_under_a_request_keeps_a_write_from_another_member() {
        use std::io::Read;
        let resetting = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = std::thread::spawn(move || {
                if let Ok((mut tcp, _)) = listener.accept() {
                    // Part of the request read, the rest left unread: the close resets.
                    let _ = tcp.read(&mut [0u8; 8]);
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            (port, server)
        };
        let (port, server) = resetting();
        let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let other_port = other.local_addr().expect("addr").port();
        let mut c = client(&[port, other_port], None);
        let f = c
            .call(
                "/v3/kv/txn",
                &json!({ "pad": "x".repeat(4096) }),
                Retry::NotDelivered,
            )
            .expect_err("reset");
        assert_eq!(f.status, Status::Unavailable, "{}", f.message);
        server.join().expect("server");
        other.set_nonblocking(true).expect("nonblocking");
        assert!(other.accept().is_err(), "the write went to another member");

        let (port, server) = resetting();
        let (next, next_server) = scripted(vec![ok("{}")]);
        let mut c = client(&[port, next], None);
        assert!(
            c.call(
                RANGE,
                &json!({ "pad": "x".repeat(4096) }),
                Retry::Idempotent
            )
            .is_ok()
        );
        server.join().expect("server");
        assert_eq!(finish(next, next_server).len(), 1);
    }
}
