//! Certificates for the plugins' unit tests: one self-signed certificate (P-256, valid
//! for a day) that is its own CA, and a TLS server context that presents it.

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslContext, SslContextBuilder, SslMethod};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder};

/// A self-signed certificate called `cn`, with a subjectAltName of the `dns` names and
/// `ips` addresses when there are any, and its key.
pub fn self_signed(cn: &str, dns: &[&str], ips: &[&str]) -> (PKey<Private>, X509) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version 3");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(1).expect("time"))
        .expect("not after");
    if !dns.is_empty() || !ips.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for d in dns {
            san.dns(d);
        }
        for ip in ips {
            san.ip(ip);
        }
        let san = san
            .build(&b.x509v3_context(None, None))
            .expect("subjectAltName");
        b.append_extension(san).expect("extension");
    }
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (key, b.build())
}

/// A TLS server context presenting `cert` with `key`, to be set up further by the test.
pub fn server_context(key: &PKey<Private>, cert: &X509) -> SslContextBuilder {
    let mut sctx = SslContext::builder(SslMethod::tls_server()).expect("server context");
    sctx.set_private_key(key).expect("key");
    sctx.set_certificate(cert).expect("cert");
    sctx
}
