//! The TLS client set-up of the shared-store plugins (Redis, etcd), written once.
//!
//! A context trusts exactly the CAs the module hands over: the configured CA file, or
//! the system bundle the module read from its fixed path. No default verify path is
//! loaded: OpenSSL's defaults follow `SSL_CERT_FILE` and `SSL_CERT_DIR` from the
//! environment, which a setuid host's caller sets (a FIFO there held a login past every
//! bound), and loading the whole system bundle only to replace it cost about 40 ms of
//! CPU per connection. A configured CA replaces the system bundle: trusting both would
//! let any public CA vouch for a host named like the server.

#![forbid(unsafe_code)]

use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::ssl::{MidHandshakeSslStream, Ssl, SslContext, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509, X509VerifyResult};

/// The client context: TLS 1.2 or later, the server verified against `ca_pem` (every
/// certificate in it), and the client certificate (leaf first, then its chain) with
/// its key when given. The error says which input was at fault.
pub fn client_context(ca_pem: &[u8], client: Option<(&[u8], &[u8])>) -> Result<SslContext, String> {
    let setup = |e: ErrorStack| format!("TLS set-up: {e}");
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(setup)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    b.set_verify(SslVerifyMode::PEER);
    let certs = X509::stack_from_pem(ca_pem).map_err(|e| format!("CA file: {e}"))?;
    if certs.is_empty() {
        return Err("CA file holds no certificate".to_owned());
    }
    let mut store = X509StoreBuilder::new().map_err(setup)?;
    for c in certs {
        store.add_cert(c).map_err(|e| format!("CA file: {e}"))?;
    }
    b.set_cert_store(store.build());
    if let Some((cert, key)) = client {
        let bad = |e: ErrorStack| format!("client certificate or key: {e}");
        let mut chain = X509::stack_from_pem(cert).map_err(bad)?.into_iter();
        let leaf = chain
            .next()
            .ok_or_else(|| "client certificate file holds no certificate".to_owned())?;
        let key = PKey::private_key_from_pem(key).map_err(bad)?;
        b.set_certificate(&leaf).map_err(bad)?;
        b.set_private_key(&key).map_err(bad)?;
        b.check_private_key().map_err(bad)?;
        for extra in chain {
            b.add_extra_chain_cert(extra).map_err(bad)?;
        }
    }
    Ok(b.build())
}

/// One connection's TLS state: the server must be named `name`, a DNS name (also sent
/// as SNI, no partial wildcards) or an IP literal.
pub fn session(ctx: &SslContext, name: &str) -> Result<Ssl, String> {
    let setup = |e: ErrorStack| format!("TLS set-up: {e}");
    let mut ssl = Ssl::new(ctx).map_err(setup)?;
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let param = ssl.param_mut();
    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => param.set_ip(ip).map_err(setup)?,
        Err(_) => {
            param.set_host(bare).map_err(setup)?;
            ssl.set_hostname(bare).map_err(setup)?;
        }
    }
    Ok(ssl)
}

/// Why a handshake failed, with the verification result when the server's certificate
/// was the cause (the log then says "certificate verify failed" and why).
pub fn handshake_failure<S>(mid: &MidHandshakeSslStream<S>) -> String {
    let verify = mid.ssl().verify_result();
    if verify == X509VerifyResult::OK {
        mid.error().to_string()
    } else {
        format!("{} (certificate verify failed: {verify})", mid.error())
    }
}
