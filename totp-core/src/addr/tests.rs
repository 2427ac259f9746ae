//! Unit tests of `addr`: literal syntax, origin classification, networks.

use super::*;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().expect("test literal"))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().expect("test literal"))
}

#[test]
fn strict_literals_accept_plain_addresses() {
    assert_eq!(parse_ip_literal("10.1.2.3"), Some(v4("10.1.2.3")));
    assert_eq!(parse_ip_literal("0.0.0.0"), Some(v4("0.0.0.0")));
    assert_eq!(parse_ip_literal("2001:db8::1"), Some(v6("2001:db8::1")));
    assert_eq!(parse_ip_literal("FE80::1"), Some(v6("fe80::1")));
    // Leading zeros inside an IPv6 group are ordinary IPv6 notation, not octal.
    assert_eq!(parse_ip_literal("2001:0db8::0001"), Some(v6("2001:db8::1")));
}

#[test]
fn strict_literals_reject_everything_inet_aton_would_guess_at() {
    for s in [
        "010.1.2.3",
        "10.01.2.3",
        "10.1.2.3 ",
        " 10.1.2.3",
        "10.1.2.3.",
        "0x0a.1.2.3",
        "0x0a010203",
        "167838211",
        "10.1.2",
        "10.1",
        "10.1.2.256",
        "+10.1.2.3",
        "10.1.2.3/32",
        "[::1]",
        "[10.1.2.3]",
        "fe80::1%eth0",
        "::ffff:010.1.2.3",
        "1::2::3",
        "1:2:3:4:5:6:7:8:9",
        "00000::1",
        "10.1.2.3\0",
        "",
        "localhost",
        "host.example.com",
    ] {
        assert_eq!(parse_ip_literal(s), None, "{s:?}");
    }
}

#[test]
fn mapped_ipv4_is_canonicalised_but_compatible_form_is_not() {
    assert_eq!(parse_ip_literal("::ffff:10.1.2.3"), Some(v4("10.1.2.3")));
    assert_eq!(parse_ip_literal("::ffff:a01:203"), Some(v4("10.1.2.3")));
    assert_eq!(parse_ip_literal("::FFFF:A01:203"), Some(v4("10.1.2.3")));
    assert_eq!(parse_ip_literal("::a01:203"), Some(v6("::a01:203")));
    assert_eq!(parse_ip_literal("::10.1.2.3"), Some(v6("::a01:203")));
}

#[test]
fn rhost_absent_empty_and_hostnames_are_not_addresses() {
    assert_eq!(parse_rhost(None), RemoteHost::Absent);
    assert_eq!(parse_rhost(Some(b"")), RemoteHost::Absent);
    for s in [
        &b"host.example.com"[..],
        b"localhost",
        b" ",
        b"10.1.2.3 ",
        b"010.1.2.3",
        b"10.1.2",
        b"0x0a.1.2.3",
        b"[::1]",
        b"\xff\xfe",
        b"10.1.2.3\n",
    ] {
        assert_eq!(parse_rhost(Some(s)), RemoteHost::NotAnAddress, "{s:?}");
    }
    assert_eq!(
        parse_rhost(Some(&[b'1'; 200])),
        RemoteHost::NotAnAddress,
        "over-long input"
    );
}

#[test]
fn rhost_addresses_are_canonical() {
    assert_eq!(
        parse_rhost(Some(b"10.1.2.3")),
        RemoteHost::Address(v4("10.1.2.3"))
    );
    assert_eq!(
        parse_rhost(Some(b"::ffff:10.1.2.3")),
        RemoteHost::Address(v4("10.1.2.3"))
    );
    assert_eq!(
        parse_rhost(Some(b"::ffff:a01:203")),
        RemoteHost::Address(v4("10.1.2.3"))
    );
    assert_eq!(
        parse_rhost(Some(b"::a01:203")),
        RemoteHost::Address(v6("::a01:203"))
    );
}

#[test]
fn zone_id_is_stripped_for_link_local_only() {
    assert_eq!(
        parse_rhost(Some(b"fe80::1%eth0")),
        RemoteHost::Address(v6("fe80::1"))
    );
    assert_eq!(
        parse_rhost(Some(b"fe80::1%2")),
        RemoteHost::Address(v6("fe80::1"))
    );
    assert_eq!(
        parse_rhost(Some(b"febf::1%enp0s31f6")),
        RemoteHost::Address(v6("febf::1"))
    );
    for s in [
        &b"fe80::1%"[..],
        b"fe80::1%eth0%eth1",
        b"fe80::1%eth 0",
        b"fe80::1%averyveryverylongifname",
        b"fe80::1%eth0/64",
        b"2001:db8::1%eth0",
        b"fec0::1%eth0",
        b"ff02::1%eth0",
        b"::1%lo",
        b"10.1.2.3%eth0",
        b"::ffff:10.1.2.3%eth0",
        b"%eth0",
    ] {
        assert_eq!(parse_rhost(Some(s)), RemoteHost::NotAnAddress, "{s:?}");
    }
}

#[test]
fn origin_network_comes_only_from_rhost() {
    assert_eq!(
        classify_origin(Some(b"192.0.2.7"), Some(b"/dev/tty1"), Some(b"login")),
        Origin::Network(v4("192.0.2.7"))
    );
    // A host name never turns into "local", whatever the terminal says.
    assert_eq!(
        classify_origin(Some(b"workstation"), Some(b"tty1"), Some(b"login")),
        Origin::Unknown
    );
}

#[test]
fn local_needs_no_rhost_and_a_console_or_display() {
    for tty in [
        &b"tty1"[..],
        b"/dev/tty1",
        b"tty0",
        b"tty63",
        b"console",
        b"/dev/console",
        b":0",
        b":0.0",
        b":0.1",
    ] {
        assert_eq!(
            classify_origin(None, Some(tty), Some(b"login")),
            Origin::Local,
            "{tty:?}"
        );
        assert_eq!(
            classify_origin(Some(b""), Some(tty), Some(b"gdm-password")),
            Origin::Local,
            "{tty:?}"
        );
    }
}

#[test]
fn pseudo_terminals_and_unknown_terminals_are_never_local() {
    for tty in [
        &b"/dev/pts/0"[..],
        b"pts/3",
        b"ssh",
        b"tty64",
        b"tty01",
        b"tty",
        b"ttyS0",
        b"/dev/ttyUSB0",
        b"/dev/../dev/tty1",
        b"dev/tty1",
        b"/dev/:0",
        b":1",
        b":1.0",
        b":2",
        b":9",
        b":9.1",
        b":10",
        b":01",
        b":00",
        b"localhost:0",
        b"remote:10.0",
        b":0.",
        b":",
        b"tty1 ",
    ] {
        assert_eq!(
            classify_origin(None, Some(tty), Some(b"login")),
            Origin::Unknown,
            "{tty:?}"
        );
    }
    assert_eq!(classify_origin(None, None, Some(b"login")), Origin::Unknown);
    assert_eq!(classify_origin(None, Some(b""), None), Origin::Unknown);
}

#[test]
fn su_and_sudo_are_never_local_even_on_a_console() {
    for service in [
        &b"sudo"[..],
        b"sudo-i",
        b"su",
        b"su-l",
        b"runuser",
        b"pkexec",
    ] {
        for tty in [&b"/dev/pts/1"[..], b"pts/1", b"/dev/tty1", b":0"] {
            let (origin, reason) = classify_origin_with_reason(None, Some(tty), Some(service));
            assert_eq!(origin, Origin::Unknown, "{service:?} {tty:?}");
            assert_eq!(reason, OriginReason::IdentitySwitchService);
        }
    }
}

#[test]
fn networks_parse_strictly() {
    let ok = |s: &str| parse_network(s, false).map(|n| n.to_string());
    assert_eq!(ok("10.0.0.0/8").as_deref(), Ok("10.0.0.0/8"));
    assert_eq!(ok("10.1.2.3").as_deref(), Ok("10.1.2.3/32"));
    assert_eq!(ok("10.1.2.3/32").as_deref(), Ok("10.1.2.3/32"));
    assert_eq!(ok("fd00::/8").as_deref(), Ok("fd00::/8"));
    assert_eq!(ok("2001:db8::1").as_deref(), Ok("2001:db8::1/128"));
    assert_eq!(ok("::ffff:10.0.0.0/104").as_deref(), Ok("10.0.0.0/8"));
    assert_eq!(ok("::ffff:a01:203").as_deref(), Ok("10.1.2.3/32"));
    assert_eq!(ok("::a01:203").as_deref(), Ok("::a01:203/128"));
    // The longest prefixes, upper-case hex, and a mapped host written with /128.
    assert_eq!(ok("2001:db8::1/128").as_deref(), Ok("2001:db8::1/128"));
    assert_eq!(ok("2001:DB8::/32").as_deref(), Ok("2001:db8::/32"));
    assert_eq!(ok("::1/128").as_deref(), Ok("::1/128"));
    assert_eq!(ok("::ffff:10.0.0.1/128").as_deref(), Ok("10.0.0.1/32"));
    assert_eq!(ok("::FFFF:A00:0/104").as_deref(), Ok("10.0.0.0/8"));

    let err = |s: &str| parse_network(s, false).err();
    assert_eq!(
        err("10.0.0.0/33"),
        Some(NetworkError::PrefixOutOfRange { max: 32 })
    );
    assert_eq!(
        err("::/129"),
        Some(NetworkError::PrefixOutOfRange { max: 128 })
    );
    assert_eq!(
        err("10.0.0.0/999"),
        Some(NetworkError::PrefixOutOfRange { max: 32 })
    );
    for s in [
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "1.2.3.4/",
        "10.0.0.0/8 ",
        "10.0.0.0/ 8",
        "10.0.0.0/8/8",
        "10.0.0.0/0x8",
        "10.0.0.0/1000",
        // pam_access's netmask form: one spelling here (the rule parser's error names
        // the prefix length).
        "10.0.0.0/255.0.0.0",
        "2001:db8::/ffff::",
    ] {
        assert_eq!(err(s), Some(NetworkError::InvalidPrefix), "{s:?}");
    }
    for s in [
        "010.0.0.0/8",
        "10.0.0/8",
        "/8",
        "host/8",
        "[::]/0",
        "0x0a.0.0.0/8",
        "",
    ] {
        assert_eq!(err(s), Some(NetworkError::InvalidAddress), "{s:?}");
    }
    assert_eq!(err("fe80::%eth0/64"), Some(NetworkError::ZoneId));
    assert_eq!(
        err("10.0.0.1/8").map(|e| e.to_string()),
        Some("host bits set after the prefix (did you mean 10.0.0.0/8?)".to_owned())
    );
    assert!(matches!(
        err("fd12::1/8"),
        Some(NetworkError::HostBitsSet { .. })
    ));
    assert!(matches!(
        err("::ffff:10.0.0.0/80"),
        Some(NetworkError::HostBitsSet { .. })
    ));
}

#[test]
fn zero_prefix_needs_the_opt_in() {
    for s in ["0.0.0.0/0", "::/0", "::ffff:0.0.0.0/96"] {
        assert_eq!(
            parse_network(s, false),
            Err(NetworkError::ZeroPrefix),
            "{s}"
        );
        let net = parse_network(s, true).expect("allowed with the opt-in");
        assert_eq!(net.prefix(), 0);
    }
    assert_eq!(parse_network("0.0.0.0/1", false).map(|n| n.prefix()), Ok(1));
}

#[test]
fn containment_is_per_family_after_canonicalisation() {
    struct Net(IpNetwork);
    impl Net {
        fn contains(&self, ip: IpAddr) -> bool {
            self.0.contains_bits(IpBits::of(ip))
        }
    }
    let net = |s: &str| Net(parse_network(s, true).expect("test network"));
    assert!(net("10.0.0.0/8").contains(v4("10.1.2.3")));
    assert!(net("10.0.0.0/8").contains(v6("::ffff:10.1.2.3")));
    assert!(!net("10.0.0.0/8").contains(v6("::a01:203")));
    assert!(!net("10.0.0.0/8").contains(v4("11.0.0.0")));
    assert!(net("fd00::/8").contains(v6("fd12::1")));
    assert!(!net("fd00::/8").contains(v6("fe80::1")));
    assert!(net("0.0.0.0/0").contains(v4("203.0.113.1")));
    assert!(!net("0.0.0.0/0").contains(v6("2001:db8::1")));
    assert!(net("::/0").contains(v6("2001:db8::1")));
    assert!(!net("::/0").contains(v4("203.0.113.1")));
    assert!(!net("::/0").contains(v6("::ffff:203.0.113.1")));
    assert!(net("10.0.0.0/31").contains(v4("10.0.0.1")));
    assert!(!net("10.0.0.0/31").contains(v4("10.0.0.2")));
    assert!(net("2001:db8::1/128").contains(v6("2001:db8::1")));
    assert!(!net("2001:db8::1/128").contains(v6("2001:db8::2")));
    assert!(net("fe80::/10").contains(v6("febf::1")));
    assert!(!net("fe80::/10").contains(v6("fec0::1")));
    assert!(net("192.0.2.1").contains(v4("192.0.2.1")));
    assert!(!net("192.0.2.1").contains(v4("192.0.2.2")));
}

/// The rule parser's own IPv4 reader takes every octet up to 255 and nothing past it,
/// and a dot only after an octet's digits: no empty octet is read as 0.
#[test]
fn ipv4_networks_take_octets_to_255_and_no_empty_octet() {
    let ok = |s: &str| parse_network(s, false).map(|n| n.to_string());
    assert_eq!(ok("255.255.255.255").as_deref(), Ok("255.255.255.255/32"));
    assert_eq!(ok("192.168.255.0/24").as_deref(), Ok("192.168.255.0/24"));
    for s in [
        "256.0.0.0/8",
        "1.2.3.256",
        "1.2.300.4",
        "1..2.3",
        ".1.2.3",
        "1.2.3.",
        "1.2..3/8",
        "1.2.3.4.",
        "1.2.3.4.5",
    ] {
        assert_eq!(
            parse_network(s, false),
            Err(NetworkError::InvalidAddress),
            "{s:?}"
        );
    }
}
