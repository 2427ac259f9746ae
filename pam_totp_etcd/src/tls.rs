//! TLS to the members: `pam_totp_tls`'s OpenSSL context (only the CAs the module hands
//! over, nothing from the environment) as a link of ureq's connector chain, after its
//! TCP connector. ureq's own native-tls link loaded the default verify paths (the system
//! bundle, or what `SSL_CERT_FILE` names) on every agent, about 40 ms of CPU per login,
//! before it was told to trust only the configured CA.

use std::error::Error;
use std::fmt;
use std::io::{ErrorKind, Read, Write};

use openssl::ssl::{HandshakeError, SslContext, SslStream};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Why TLS could not be set up or verified: a refusal an admin fixes. Nothing was sent
/// to that member, so the next one is tried; where none serves, the login is refused
/// (not an outage: `state_fallback=` does not apply).
#[derive(Debug)]
pub struct TlsFailure(pub String);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for TlsFailure {}

fn failure(m: String) -> ureq::Error {
    ureq::Error::Other(Box::new(TlsFailure(m)))
}

/// A TLS failure after the handshake: the member's alert (a TLS 1.3 server checks the
/// client certificate only once the client's side of the handshake is done, and its
/// refusal is the reply to the first request) or a record that fails its check. A
/// refusal too, but the request may have reached the member.
#[derive(Debug)]
pub struct TlsAfterHandshake(pub String);

impl fmt::Display for TlsAfterHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for TlsAfterHandshake {}

/// OpenSSL's reasons when `e` is a failure of TLS itself (`SSL_ERROR_SSL`: an alert, a
/// record that fails its check), not of the connection below it (a reset, a timeout, a
/// close without `close_notify`: a member going down, an outage).
fn tls_reason(e: &std::io::Error) -> Option<String> {
    // The one rule both plugins use for what is a refusal after the handshake.
    if !pam_totp_tls::refused_after_handshake(e) {
        return None;
    }
    let ssl = e.get_ref()?.downcast_ref::<openssl::ssl::Error>()?;
    let reasons: Vec<&str> = ssl
        .ssl_error()
        .map(|s| s.errors().iter().filter_map(|e| e.reason()).collect())
        .unwrap_or_default();
    let why = if reasons.is_empty() {
        ssl.to_string()
    } else {
        reasons.join(", ")
    };
    let hint = if why.contains("certificate") {
        " (a client certificate it trusts: etcd_cert_file=, etcd_key_file=)"
    } else {
        ""
    };
    Some(format!("after the handshake: {why}{hint}"))
}

fn after_handshake(e: std::io::Error) -> ureq::Error {
    match tls_reason(&e) {
        Some(why) => ureq::Error::Other(Box::new(TlsAfterHandshake(why))),
        None => ureq::Error::from(e),
    }
}

/// Wraps an `https` connection in TLS with one context for the whole login.
pub struct OpensslConnector {
    ctx: SslContext,
}

impl OpensslConnector {
    pub fn new(ctx: SslContext) -> Self {
        Self { ctx }
    }
}

impl fmt::Debug for OpensslConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpensslConnector")
    }
}

impl<In: Transport> Connector<In> for OpensslConnector {
    type Out = Either<In, OpensslTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().ok_or(ureq::Error::HostNotFound)?;
        let ssl = pam_totp_tls::session(&self.ctx, host).map_err(failure)?;
        let mut adapter = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        // The handshake's reads and writes end with the connection's own deadline.
        adapter.set_timeout(details.timeout);
        let stream = match ssl.connect(adapter) {
            Ok(s) => s,
            Err(HandshakeError::Failure(mid)) => {
                let why = pam_totp_tls::handshake_failure(&mid);
                let ended = pam_totp_tls::connection_ended(&mid);
                // A timeout or a reset below TLS stays what it was (an outage), and so
                // does a close without an alert (a server going down, a proxy with none
                // behind it). A reset is named as the close is, and as the Redis plugin
                // names both: which of the two a peer closing at once gives depends on
                // whether the hello was read.
                return Err(match mid.into_error().into_io_error() {
                    Ok(io) if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                        ureq::Error::from(io)
                    }
                    Ok(io) => ureq::Error::from(std::io::Error::new(
                        io.kind(),
                        format!("TLS handshake: the connection ended ({io})"),
                    )),
                    Err(_) if ended => ureq::Error::from(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("TLS handshake: the connection ended ({why})"),
                    )),
                    Err(_) => failure(format!("TLS handshake: {why}")),
                });
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                return Err(match mid.into_error().into_io_error() {
                    Ok(io) => ureq::Error::from(io),
                    Err(e) => failure(format!("TLS handshake: {e}")),
                });
            }
            Err(HandshakeError::SetupFailure(e)) => {
                return Err(failure(format!("TLS set-up: {e}")));
            }
        };
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(OpensslTransport { buffers, stream })))
    }
}

/// An established TLS connection to a member.
pub struct OpensslTransport {
    buffers: LazyBuffers,
    stream: SslStream<TransportAdapter>,
}

impl fmt::Debug for OpensslTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpensslTransport")
    }
}

/// The plaintext replies (the authentication reply holds the token) are wiped with the
/// connection: ureq's buffers are freed without it.
impl Drop for OpensslTransport {
    fn drop(&mut self) {
        let unread = self.buffers.input().len();
        self.buffers.input_consume(unread);
        // All consumed, the free part is the whole input buffer.
        zeroize::Zeroize::zeroize(self.buffers.input_append_buf());
        zeroize::Zeroize::zeroize(self.buffers.output());
    }
}

impl Transport for OpensslTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &mut self.buffers.output()[..amount];
        let sent = self.stream.write_all(output);
        // The plaintext request holds the password (authentication) or the token (the
        // `Authorization` header): gone once handed to TLS, sent or not.
        zeroize::Zeroize::zeroize(output);
        match sent {
            Ok(()) => Ok(()),
            // A member that refused this host's certificate after the handshake sent its
            // alert and closed: the write after that fails, and the alert waits unread
            // behind it. Read, within the same bound, to say why.
            Err(e) => match pam_totp_tls::alert_behind_failed_write(&mut self.stream, &e) {
                Some(alert) => Err(after_handshake(alert)),
                None => Err(after_handshake(e)),
            },
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input).map_err(after_handshake)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
