//! The TLS client set-up of the shared-store plugins (Redis, etcd), written once.
//!
//! A context trusts exactly the CAs the module hands over: the configured CA file, or
//! the system bundle the module read from its fixed path. No default verify path is
//! loaded: OpenSSL's defaults follow `SSL_CERT_FILE` and `SSL_CERT_DIR` from the
//! environment, which a setuid host's caller sets (a FIFO there held a login past every
//! bound), and loading the whole system bundle only to replace it cost about 40 ms of
//! CPU per connection. A configured CA replaces the system bundle: trusting both would
//! let any public CA vouch for a host named like the server.
//!
//! Nor is OpenSSL's configuration read ([`init`]): its first use in a process would
//! load `openssl.cnf`, or the file `OPENSSL_CONF` names, without a bound. The plugin
//! sets its own floor instead (TLS 1.2, security level 2, OpenSSL's default ciphers),
//! which a configuration the host loaded before can raise but not lower.

// One call into OpenSSL the bindings do not wrap ([`init`]); everything else is safe.
#![deny(unsafe_code)]

use std::sync::OnceLock;

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::pkey::PKey;
use openssl::ssl::{
    ErrorCode, MidHandshakeSslStream, Ssl, SslContext, SslMethod, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509, X509VerifyResult};
use openssl_sys::{
    X509_V_ERR_CA_KEY_TOO_SMALL, X509_V_ERR_CA_MD_TOO_WEAK, X509_V_ERR_CERT_HAS_EXPIRED,
    X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
    X509_V_ERR_EE_KEY_TOO_SMALL, X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH,
    X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
};

/// `OPENSSL_INIT_NO_LOAD_CONFIG` of `<openssl/crypto.h>` (OpenSSL 1.1.0 on), which the
/// bindings do not name.
const OPENSSL_INIT_NO_LOAD_CONFIG: u64 = 0x0000_0080;

/// The least security level a session runs at: 112 bits of security (RSA and DH keys of
/// 2048 bits or more), the level Debian builds OpenSSL with and RHEL's DEFAULT crypto
/// policy sets.
const SECURITY_LEVEL: u32 = 2;

/// Initialises OpenSSL without its configuration, before anything else of OpenSSL runs
/// in the plugin. Its first initialisation in a process loads `openssl.cnf`, or
/// whatever `OPENSSL_CONF` names, unbounded and as root: a caller's environment must
/// not be read (a FIFO there held the login forever, and a configuration can load a
/// provider or an engine, code, into the host). OpenSSL initialises once per process:
/// where the host already did (sshd, with its own configuration), this changes nothing
/// and the host's settings stay in force under the floor `client_context` sets.
/// The same flags as the bindings' own initialisation otherwise, so theirs (which asks
/// for the configuration) finds the work done.
#[allow(unsafe_code)]
pub fn init() -> Result<(), String> {
    let opts = OPENSSL_INIT_NO_LOAD_CONFIG
        | openssl_sys::OPENSSL_INIT_LOAD_SSL_STRINGS
        | openssl_sys::OPENSSL_INIT_NO_ATEXIT;
    // SAFETY: OPENSSL_init_ssl takes option bits and an optional settings pointer (null:
    // none); it is thread-safe and may be called any number of times.
    let ok = unsafe { openssl_sys::OPENSSL_init_ssl(opts, std::ptr::null()) };
    if ok == 1 {
        Ok(())
    } else {
        Err(format!(
            "TLS set-up: OpenSSL did not initialise: {}",
            ErrorStack::get()
        ))
    }
}

/// The client context: TLS 1.2 or later, the server verified against `ca_pem` (every
/// certificate in it), and the client certificate (leaf first, then its chain) with
/// its key when given. The error says which input was at fault.
pub fn client_context(ca_pem: &[u8], client: Option<(&[u8], &[u8])>) -> Result<SslContext, String> {
    init()?;
    let setup = |e: ErrorStack| format!("TLS set-up: {e}");
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(setup)?;
    // A floor: a host's configuration (loaded before the plugin, as sshd's is) that asks
    // for TLS 1.3 only keeps it.
    let floor = [
        None,
        Some(SslVersion::SSL3),
        Some(SslVersion::TLS1),
        Some(SslVersion::TLS1_1),
    ];
    if floor.contains(&b.min_proto_version()) {
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(setup)?;
    }
    // Remembered for the log line of a server that speaks only TLS 1.2.
    if let Some(i) = tls13_floor_index() {
        let tls13 = b.min_proto_version() == Some(SslVersion::TLS1_3);
        b.set_ex_data(i, tls13);
    }
    b.set_verify(SslVerifyMode::PEER);
    unprompted_certificates(ca_pem).map_err(|e| format!("CA file: {e}"))?;
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
        unprompted_certificates(cert).map_err(|e| format!("client certificate file: {e}"))?;
        let mut chain = X509::stack_from_pem(cert).map_err(bad)?.into_iter();
        let leaf = chain
            .next()
            .ok_or_else(|| "client certificate file holds no certificate".to_owned())?;
        // With no callback OpenSSL asks for an encrypted key's passphrase on the
        // controlling terminal (or standard input), unbounded: under su the login waited
        // for whoever sat at it. Ours supplies none, and says why the key was refused.
        let mut encrypted = false;
        let key = PKey::private_key_from_pem_callback(key, |_| {
            encrypted = true;
            Ok(0)
        })
        .map_err(|e| {
            if encrypted {
                "client key is encrypted (a passphrase cannot be given): store it \
                 unencrypted, readable by root only"
                    .to_owned()
            } else {
                bad(e)
            }
        })?;
        b.set_certificate(&leaf).map_err(bad)?;
        b.set_private_key(&key).map_err(bad)?;
        b.check_private_key().map_err(bad)?;
        for extra in chain {
            b.add_extra_chain_cert(extra).map_err(bad)?;
        }
    }
    Ok(b.build())
}

/// The context's slot saying whether the host's OpenSSL configuration raised the minimum
/// version to TLS 1.3 (`handshake_failure` names the version this host asked for).
fn tls13_floor_index() -> Option<Index<SslContext, bool>> {
    static INDEX: OnceLock<Option<Index<SslContext, bool>>> = OnceLock::new();
    *INDEX.get_or_init(|| SslContext::new_ex_index().ok())
}

/// Refuses certificate blocks marked as encrypted (an RFC 1421 `Proc-Type:` header). The
/// bindings read certificates without a passphrase callback, so for such a block
/// OpenSSL's default one asks on the controlling terminal (or standard input), as root and
/// without a bound, as it would for an encrypted key. A certificate is never encrypted:
/// the file is refused before OpenSSL reads it. Private-key blocks are left to the key's
/// reader (the certificate reader skips them unread, and the key's has a callback).
///
/// OpenSSL reads a header only on the line right after a `BEGIN` line, and reads lines in
/// pieces of at most 254 bytes (the end of a longer line is a line of its own, which may
/// be a `BEGIN` line). So a `Proc-Type:` line passes only right after a line OpenSSL
/// reads whole as a private key's `BEGIN` (from its first byte, short enough); any other
/// is refused, wherever the scan thinks it is (a ` -----BEGIN RSA PRIVATE KEY-----` with a
/// leading blank is no `BEGIN` to OpenSSL, and hid a certificate's header from a scan
/// that tracked blocks).
fn unprompted_certificates(pem: &[u8]) -> Result<(), String> {
    let mut after_key_begin = false;
    for line in pem.split(|&b| b == b'\n') {
        if line.trim_ascii().starts_with(b"Proc-Type:") && !after_key_begin {
            return Err(
                "a certificate block is marked encrypted (a Proc-Type header): \
                        certificates are never encrypted, and no passphrase can be given; \
                        write the certificate without the header"
                    .to_owned(),
            );
        }
        let whole = line.trim_ascii_end();
        after_key_begin = line.len() < 254
            && whole.starts_with(b"-----BEGIN ")
            && whole.ends_with(b" PRIVATE KEY-----");
    }
    Ok(())
}

/// One connection's TLS state: the server must be named `name`, a DNS name (also sent
/// as SNI, no partial wildcards) or an IP literal, by its certificate's subjectAltName.
/// The subject's common name never counts (RFC 9525): OpenSSL would fall back to it for
/// a certificate listing no DNS name, so one listing only the store's address, or any
/// other certificate of the same CA whose common name happens to be the store's host
/// name, would pass for it.
pub fn session(ctx: &SslContext, name: &str) -> Result<Ssl, String> {
    let setup = |e: ErrorStack| format!("TLS set-up: {e}");
    let mut ssl = Ssl::new(ctx).map_err(setup)?;
    if ssl.security_level() < SECURITY_LEVEL {
        ssl.set_security_level(SECURITY_LEVEL);
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let param = ssl.param_mut();
    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS | X509CheckFlags::NEVER_CHECK_SUBJECT);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => param.set_ip(ip).map_err(setup)?,
        Err(_) => {
            param.set_host(bare).map_err(setup)?;
            ssl.set_hostname(bare).map_err(setup)?;
        }
    }
    Ok(ssl)
}

/// `ERR_LIB_SSL` of `<openssl/err.h>`.
const ERR_LIB_SSL: i32 = 20;

/// The reasons of `<openssl/sslerr.h>` (stable since OpenSSL 1.1.0) that mean the server
/// and this host share no protocol version: the server's alert, or ours on its hello.
/// Not `SSL_R_WRONG_VERSION_NUMBER`: that is also what a plain-text reply (a port that
/// serves no TLS) reads as.
const NO_COMMON_VERSION: [i32; 3] = [
    1070, // SSL_R_TLSV1_ALERT_PROTOCOL_VERSION
    258,  // SSL_R_UNSUPPORTED_PROTOCOL
    191,  // SSL_R_NO_PROTOCOLS_AVAILABLE
];

/// `SSL_R_UNEXPECTED_EOF_WHILE_READING` of `<openssl/sslerr.h>` (OpenSSL 3).
const UNEXPECTED_EOF: i32 = 294;

/// True when the handshake failed because the connection ended under it, without a TLS
/// alert: reset, or closed (a proxy or load balancer with no server behind it, a server
/// going down). An outage, as the same close of a plain connection is, not a refusal to
/// trust: the host's `state_fallback=` applies.
pub fn connection_ended<S>(mid: &MidHandshakeSslStream<S>) -> bool {
    ended(mid.error())
}

/// True when `e` (of a handshake, or of a read or write after it) is the connection
/// ending under TLS, without an alert: reset, or closed without `close_notify`
/// (OpenSSL 3 reports the latter as a TLS error, "unexpected eof while reading"). An
/// outage, not a refusal to trust.
pub fn ended(e: &openssl::ssl::Error) -> bool {
    e.io_error().is_some()
        || (e.code() == ErrorCode::SYSCALL && e.ssl_error().is_none())
        || e.ssl_error().is_some_and(|stack| {
            stack
                .errors()
                .iter()
                .any(|r| r.library_code() == ERR_LIB_SSL && r.reason_code() == UNEXPECTED_EOF)
        })
}

/// True when `e`, an error of an established TLS connection's read or write, is the
/// server's refusal (its alert: a TLS 1.3 server checks the client certificate only
/// after the client has finished the handshake, so "certificate required" or "unknown
/// CA" arrives at the first read) or a record this host could not accept, not the
/// connection ending under it (reset, or closed with or without an alert): a refusal an
/// admin fixes, as the same alert during the handshake is, never an outage that
/// `state_fallback=` would paper over.
pub fn refused_after_handshake(e: &std::io::Error) -> bool {
    let Some(ssl) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<openssl::ssl::Error>())
    else {
        return false;
    };
    ssl.code() == ErrorCode::SSL
        && ssl.ssl_error().is_some_and(|stack| {
            !stack.errors().is_empty()
                && !stack
                    .errors()
                    .iter()
                    .any(|r| r.library_code() == ERR_LIB_SSL && r.reason_code() == UNEXPECTED_EOF)
        })
}

/// The server's alert waiting unread behind `failed`, a write on `stream` that failed
/// as a reset or a broken pipe: a TLS 1.3 server that refused this host's client
/// certificate after the handshake sends its alert and closes, and the next write
/// fails before anything reads the alert. One read (within whatever bound the caller
/// armed) picks it up; `None` when `failed` is another error or nothing of
/// [`refused_after_handshake`] waits there (the connection just ended: an outage).
pub fn alert_behind_failed_write<S: std::io::Read + std::io::Write>(
    stream: &mut openssl::ssl::SslStream<S>,
    failed: &std::io::Error,
) -> Option<std::io::Error> {
    use std::io::{ErrorKind, Read};
    if !matches!(
        failed.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
    ) {
        return None;
    }
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(alert) if refused_after_handshake(&alert) => Some(alert),
        _ => None,
    }
}

/// Why a handshake failed, with the verification result when the server's certificate
/// was the cause (the log then says "certificate verify failed" and why).
pub fn handshake_failure<S>(mid: &MidHandshakeSslStream<S>) -> String {
    let verify = mid.ssl().verify_result();
    let version = mid.error().ssl_error().is_some_and(|stack| {
        stack.errors().iter().any(|e| {
            e.library_code() == ERR_LIB_SSL && NO_COMMON_VERSION.contains(&e.reason_code())
        })
    });
    if version {
        // The host's own OpenSSL configuration (loaded before the plugin, as sshd's is)
        // may have raised the floor: the version this host asked for, not ours.
        let raised = tls13_floor_index()
            .and_then(|i| mid.ssl().ssl_context().ex_data(i).copied())
            .unwrap_or(false);
        let floor = if raised {
            "TLS 1.3 or later (raised from the plugins' TLS 1.2 by this host's OpenSSL \
             configuration, loaded by the program before the module)"
        } else {
            "TLS 1.2 or later"
        };
        format!(
            "{} (no TLS version both sides accept: this host needs {floor})",
            mid.error()
        )
    } else if verify == X509VerifyResult::OK {
        mid.error().to_string()
    } else {
        // OpenSSL's own line says only "certificate verify failed", with its source file
        // and line: the result says why, in the room a message has (several members'
        // reasons share one).
        format!(
            "certificate verify failed: {verify}{}",
            verify_hint(verify.as_raw())
        )
    }
}

/// What an admin checks for the verification results a misconfiguration gives.
fn verify_hint(result: i32) -> &'static str {
    match result {
        X509_V_ERR_HOSTNAME_MISMATCH | X509_V_ERR_IP_ADDRESS_MISMATCH => {
            ": the certificate's subjectAltName must list the host as the URL writes it, a \
             DNS name as DNS, an address as IP; its common name is not used"
        }
        X509_V_ERR_CERT_HAS_EXPIRED | X509_V_ERR_CERT_NOT_YET_VALID => {
            ": check the server certificate's dates and this host's clock"
        }
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN => {
            ": the CA file (or, without one, the system bundle) does not hold the CA that \
             issued the server's certificate"
        }
        X509_V_ERR_EE_KEY_TOO_SMALL | X509_V_ERR_CA_KEY_TOO_SMALL | X509_V_ERR_CA_MD_TOO_WEAK => {
            ": below security level 2 (RSA and DH keys of 2048 bits or more, no MD5 or \
             SHA-1 signature): give the server a stronger certificate"
        }
        _ => "",
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

#[cfg(test)]
mod tests {
    use super::unprompted_certificates;

    #[test]
    fn encrypted_certificate_blocks_are_refused_and_key_blocks_left_alone() {
        let cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(unprompted_certificates(cert).is_ok());
        let enc = b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\
                    DEK-Info: AES-128-CBC,00\n\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(unprompted_certificates(enc).is_err());
        let crlf = b"-----BEGIN CERTIFICATE-----\r\n Proc-Type: 4,ENCRYPTED\r\n";
        assert!(unprompted_certificates(crlf).is_err());
        // A legacy encrypted key in a file holding the certificate too.
        let key = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\
                    -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                    DEK-Info: AES-128-CBC,00\n\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        assert!(unprompted_certificates(key).is_ok());
        let key_crlf = b"-----BEGIN EC PRIVATE KEY-----\r\nProc-Type: 4,ENCRYPTED\r\n";
        assert!(unprompted_certificates(key_crlf).is_ok());
        // A key's BEGIN line OpenSSL does not read as one (a leading blank) before a
        // certificate's BEGIN line OpenSSL reads as the end of a line longer than 254
        // bytes: OpenSSL asks for the certificate's passphrase (`openssl crl2pkcs7
        // -certfile` does, reading as the bindings read).
        let hidden = [
            &b" -----BEGIN RSA PRIVATE KEY-----\n"[..],
            &[b'x'; 254],
            &enc[..],
        ]
        .concat();
        assert!(unprompted_certificates(&hidden).is_err());
        // A key's BEGIN at the end of a line OpenSSL reads in pieces is not taken for
        // one (refused: the safe side of an odd file).
        let long_key = [
            &[b'x'; 254][..],
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4",
        ]
        .concat();
        assert!(unprompted_certificates(&long_key).is_err());
        // Control: a bundle with comment text between blocks (as some distributions ship
        // it) and `openssl x509 -text` output is read.
        let bundle = b"# ACME Root CA\nCertificate:\n    Data:\n        Version: 3 (0x2)\n\
                       -----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n\
                       # Another\n-----BEGIN TRUSTED CERTIFICATE-----\nMIIB\n\
                       -----END TRUSTED CERTIFICATE-----\n";
        assert!(unprompted_certificates(bundle).is_ok());
    }
}
