//! The fuzzing properties (the fuzz targets of docs/fuzzing.md), run as proptest tests on stable Rust.
//!
//! The property functions are the very ones the libFuzzer targets call
//! (`fuzz/props.rs`); here they get proptest inputs: raw bytes, and inputs shaped like
//! the real thing (file lines, rule lines, option names, codes, URIs) so that the
//! interesting paths are reached without coverage guidance. Regression inputs found by
//! fuzzing go into `regressions()` below.

#[path = "../../fuzz/props.rs"]
mod props;

use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Lines a `~/.google_authenticator` file is made of, good and bad.
fn ga_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\" TOTP_AUTH".to_string()),
        Just("\" HOTP_COUNTER 1".to_string()),
        Just("\" DISALLOW_REUSE".to_string()),
        (1u32..200, 0u64..2_000_000_000).prop_map(|(a, b)| format!("\" DISALLOW_REUSE {a} {b}")),
        (0u32..200, 0u32..200).prop_map(|(a, b)| format!("\" RATE_LIMIT {a} {b}")),
        (0u32..200, 0u32..200, 0u64..2_000_000_000)
            .prop_map(|(a, b, c)| format!("\" RATE_LIMIT {a} {b} {c}")),
        (0u32..120).prop_map(|n| format!("\" WINDOW_SIZE {n}")),
        (0u32..70).prop_map(|n| format!("\" STEP_SIZE {n}")),
        (-2000i64..2000).prop_map(|n| format!("\" TIME_SKEW {n}")),
        Just("\" RESETTING_TIME_SKEW 1 2 3".to_string()),
        prop::sample::select(vec!["SHA1", "SHA256", "SHA512", "MD5", ""])
            .prop_map(|a| format!("\" PAM_TOTP_ALGORITHM {a}")),
        (5u32..10).prop_map(|n| format!("\" PAM_TOTP_DIGITS {n}")),
        (0u64..u64::MAX).prop_map(|n| format!("\" PAM_TOTP_LAST_STEP {n}")),
        (0u32..2_000_000, 0u64..4_000_000_000)
            .prop_map(|(a, b)| format!("\" PAM_TOTP_FAILURES {a} {b}")),
        (10_000_000u32..99_999_999).prop_map(|n| n.to_string()),
        "[0-9]{1,9}",
        "\" [A-Z_]{1,12}( [0-9]{1,4})?",
        "[ -~]{0,20}",
    ]
}

fn ga_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "2SH3V3GDW7ZNMGYE",
            "2sh3 v3gd-w7zn mgye",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "AAAA",
            "ABC=",
        ]),
        prop::collection::vec(ga_line(), 0..10),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(secret, lines, nl, trailing)| {
            let mut s = String::from(secret);
            for l in lines {
                s.push_str(nl);
                s.push_str(&l);
            }
            if trailing {
                s.push_str(nl);
            }
            s.into_bytes()
        })
}

fn access_file() -> impl Strategy<Value = Vec<u8>> {
    let users = prop::sample::select(vec![
        "ALL",
        "alice",
        "bob",
        "(wheel)",
        "(nobody)",
        "ALL EXCEPT alice",
        "root",
        "all",
    ]);
    let origins = prop::sample::select(vec![
        "ALL",
        "LOCAL",
        "10.0.0.0/8",
        "10.1.2.3",
        "192.168.0.0/16",
        "fd00::/8",
        "::1",
        "0.0.0.0/0",
        "::/0",
        "10.0.0.1/8",
        "010.0.0.0/8",
        "1.2.3.4/",
        "/33",
        "host.example",
        "ALL EXCEPT 10.0.0.0/8",
        "fe80::/10",
        "::ffff:10.0.0.0/104",
    ]);
    let rhost = prop::sample::select(vec![
        "",
        "10.1.2.3",
        "::ffff:10.1.2.3",
        "::ffff:a01:203",
        "::a01:203",
        "010.1.2.3",
        "10.1.2.3 ",
        "host.example",
        "fe80::1%eth0",
        "[::1]",
        "fd12::1",
        "192.168.1.1",
    ]);
    (
        rhost,
        prop::collection::vec(
            (
                prop::sample::select(vec!["+", "-", "x", ""]),
                users,
                origins,
            ),
            0..8,
        ),
    )
        .prop_map(|(rhost, rules)| {
            let mut s = format!("{rhost}\n");
            for (p, u, o) in rules {
                s.push_str(&format!("{p} : {u} : {o}\n"));
            }
            s.into_bytes()
        })
}

fn module_args() -> impl Strategy<Value = Vec<u8>> {
    let arg = prop_oneof![
        prop::sample::select(totp_core::options::OPTION_NAMES.to_vec()).prop_map(String::from),
        (
            prop::sample::select(totp_core::options::OPTION_NAMES.to_vec()),
            prop::sample::select(vec![
                "",
                "0",
                "1",
                "3",
                "17",
                "100",
                "101",
                "5000",
                "5001",
                "0600",
                "0644",
                "0777",
                "18446744073709551616",
                "-1",
                "root",
                "0",
                "/etc/x",
                "~/.ga",
                "${HOME}/x",
                "${USER}",
                "/var/lib/t/${USER}",
                "/a/../b",
                "~/../x",
                "wheel,staff",
                ",",
            ]),
        )
            .prop_map(|(n, v)| format!("{n}={v}")),
        "[ -~]{0,16}",
    ];
    prop::collection::vec(arg, 0..6).prop_map(|v| v.join("\0").into_bytes())
}

fn code_answer() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop_oneof![
            "[0-9]{0,10}",
            "[a-z]{0,6}[0-9]{6,8}",
            Just("１２３４５６".to_string()),
            Just("+123456".to_string()),
            Just(" 123456".to_string()),
            Just("123 456".to_string()),
            Just("\u{8}\n\r\u{7f}INCORRECT".to_string()),
        ],
    )
        .prop_map(|(sel, a)| {
            let mut v = vec![sel];
            v.extend_from_slice(a.as_bytes());
            v
        })
}

fn uri() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec!["otpauth://", "OTPAUTH://", "http://", ""]),
        prop::sample::select(vec!["totp", "hotp", "TOTP", "x"]),
        "[A-Za-z0-9%:@ ]{0,12}",
        prop::collection::vec(
            prop::sample::select(vec![
                "secret=JBSWY3DPEHPK3PXP",
                "secret=jbswy3dpehpk3pxp",
                "secret=",
                "secret=ABC=",
                "issuer=Ex%20ample",
                "issuer=%zz",
                "algorithm=SHA256",
                "algorithm=MD5",
                "digits=8",
                "digits=9",
                "period=60",
                "period=0",
                "counter=5",
                "image=x",
            ]),
            0..6,
        ),
    )
        .prop_map(|(scheme, kind, label, params)| {
            format!("{scheme}{kind}/{label}?{}", params.join("&")).into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn secret_file_raw(data in bytes(300)) { props::secret_file(&data); }
    #[test]
    fn secret_file_shaped(data in ga_file()) { props::secret_file(&data); }

    #[test]
    fn access_rules_raw(data in bytes(400)) { props::access_rules(&data); }
    #[test]
    fn access_rules_shaped(data in access_file()) { props::access_rules(&data); }

    #[test]
    fn module_args_raw(data in bytes(200)) { props::module_args(&data); }
    #[test]
    fn module_args_shaped(data in module_args()) { props::module_args(&data); }

    #[test]
    fn code_input_raw(data in bytes(40)) { props::code_input(&data); }
    #[test]
    fn code_input_shaped(data in code_answer()) { props::code_input(&data); }

    #[test]
    fn base32_raw(data in bytes(120)) { props::base32(&data); }
    #[test]
    fn base32_alphabet(s in "[A-Za-z2-7018 \t\r\n=-]{0,64}") { props::base32(s.as_bytes()); }

    #[test]
    fn otpauth_uri_raw(data in bytes(200)) { props::otpauth_uri(&data); }
    #[test]
    fn otpauth_uri_shaped(data in uri()) { props::otpauth_uri(&data); }

    #[test]
    fn rhost_parse_raw(s in "[0-9a-fA-FxX:.%/ \\[\\]a-z]{0,48}") { props::rhost_parse(s.as_bytes()); }
}

/// Inputs that once broke a property (from fuzzing or review) stay here for good, and
/// the hostile cases of SECURITY.md cases that these parsers see.
#[test]
fn regressions() {
    type Property = fn(&[u8]);
    let cases: &[(&str, Property, &[u8])] = &[
        (
            "secret_file",
            props::secret_file,
            b"JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" WINDOW_SIZE 100\n\" TIME_SKEW 100000\n",
        ),
        (
            "secret_file",
            props::secret_file,
            b"JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30 x\n",
        ),
        (
            "secret_file",
            props::secret_file,
            b"\xef\xbb\xbfJBSWY3DPEHPK3PXP\n",
        ),
        ("secret_file", props::secret_file, b"JBSWY3DPEHPK3PXP\n\0\n"),
        ("secret_file", props::secret_file, b""),
        (
            "access_rules",
            props::access_rules,
            b"10.1.2.3\n+ : ALL : 0.0.0.0/0\n",
        ),
        (
            "access_rules",
            props::access_rules,
            b"::ffff:10.1.2.3\n+ : ALL : 10.0.0.0/8\n",
        ),
        (
            "access_rules",
            props::access_rules,
            b"010.1.2.3\n+ : ALL : 10.0.0.0/8\n",
        ),
        (
            "access_rules",
            props::access_rules,
            b"fe80::1%eth0\n+ : ALL : fe80::/10\n",
        ),
        ("module_args", props::module_args, b"secret=~/../x"),
        (
            "module_args",
            props::module_args,
            b"secret=${HOME}/..\0user=root",
        ),
        ("code_input", props::code_input, "\0１２３４５６".as_bytes()),
        ("code_input", props::code_input, b"\x80password123456"),
        ("base32", props::base32, b"ABC="),
        (
            "otpauth_uri",
            props::otpauth_uri,
            b"otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&period=0",
        ),
    ];
    for (name, f, input) in cases {
        let r = std::panic::catch_unwind(|| f(input));
        assert!(r.is_ok(), "{name} on {input:?}");
    }
}

/// Found by the `secret_file` fuzz target: a bare CR let a rewrite insert a line inside
/// line 1 (or where the reader does not see it), so one recorded attempt made the file
/// unreadable. Such files are now refused when read, before anything is written; LF and
/// CRLF files still record attempts and read back.
#[test]
fn bare_cr_files_are_refused_and_crlf_files_survive_a_rewrite() {
    use totp_core::gafile::{GaFile, GaFileError};
    for bad in [
        &b"JBSWY3DPEHPK3PXP\rJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n"[..],
        b"JBSWY3DPEHPK3PXP\n\rJUNK\n\" TOTP_AUTH\n",
        b"JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\r",
    ] {
        assert_eq!(
            GaFile::parse(bad).err(),
            Some(GaFileError::BareCarriageReturn),
            "{bad:?}"
        );
    }
    for good in [
        &b"JBSWY3DPEHPK3PXP\r\n\" TOTP_AUTH\r\n"[..],
        b"JBSWY3DPEHPK3PXP\n\r\n\" TOTP_AUTH\n",
    ] {
        let f = GaFile::parse(good).expect("LF/CRLF accepted");
        let secret = f.secret().expect("secret");
        // A HOTP file is rewritten on every attempt; the rewrite must keep it readable.
        let mut hotp = f.clone();
        hotp.set("HOTP_COUNTER", "7").expect("set counter");
        let again = GaFile::parse(hotp.as_bytes())
            .unwrap_or_else(|e| panic!("rewrite made the file unreadable: {e:?}"));
        assert_eq!(
            again.secret().expect("secret").as_bytes(),
            secret.as_bytes()
        );
        assert_eq!(
            again.config().map(|c| c.mode).ok(),
            Some(totp_core::gafile::Mode::Hotp { counter: 7 })
        );
    }
}

/// Found by the `otpauth_uri` fuzz target: the parser accepts raw control bytes (NUL
/// included) in the label, which RFC 3986 does not allow in a URI, and `to_uri` then
/// percent-encoded each as three bytes; a URI under `MAX_URI_LEN` thus rebuilt into one
/// the parser refused as too long. Now raw control bytes are refused and an accepted URI
/// is one whose canonical form fits the limit.
#[test]
fn a_parsed_uri_rebuilds_into_a_uri_that_parses() {
    let label = "\0".repeat(1400);
    let uri = format!("otpauth://totp/{label}?secret=JBSWY3DPEHPK3PXP");
    assert!(uri.len() < totp_core::uri::MAX_URI_LEN);
    if let Ok(k) = totp_core::uri::KeyUri::parse(&uri) {
        let rebuilt = k.to_uri();
        assert_eq!(
            totp_core::uri::KeyUri::parse(&rebuilt).as_ref(),
            Ok(&k),
            "rebuilt URI ({} bytes) refused",
            rebuilt.len()
        );
    }
}
