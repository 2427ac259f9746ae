//! The access rules against naive references, through the public API only.
//!
//! - evaluation against a model that checks networks by shifting bits away, over random
//!   rule files and peers (many of them inside some rule's network);
//! - network parsing against `std`'s address parser plus the documented checks, written
//!   out plainly;
//! - `PAM_RHOST` parsing against `std`;
//! - arbitrary bytes and token soup never panic, and missing group facts never add a skip.
//!
//! The shipped parser has no second implementation to agree with: these references live
//! here, in tests only.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use SkipVerdict::{Require, Skip};
use totp_core::access::*;
use totp_core::addr::{self, Origin, classify_origin};

/// Reference model: (is_v4, value) after mapped-IPv4 canonicalisation.
type Key = (bool, u128);

fn key_of_v6(bits: u128) -> Key {
    if bits >> 32 == 0xffff {
        (true, bits & 0xffff_ffff)
    } else {
        (false, bits)
    }
}

#[derive(Clone, Debug)]
enum RefItem {
    All,
    Net { key: Key, prefix: u32 },
}

impl RefItem {
    /// Naive containment by shifting away the host bits.
    fn contains(&self, addr: Key) -> bool {
        match *self {
            RefItem::All => true,
            RefItem::Net { key, prefix } => {
                let width = if key.0 { 32 } else { 128 };
                key.0 == addr.0
                    && (prefix == 0 || key.1 >> (width - prefix) == addr.1 >> (width - prefix))
            }
        }
    }
}

fn mask(width: u32, prefix: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        let ones = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        ones & !ones.checked_shr(prefix).unwrap_or(0)
    }
}

fn v4_text(bits: u32) -> String {
    Ipv4Addr::from(bits).to_string()
}

fn v6_expanded(bits: u128) -> String {
    let a = Ipv6Addr::from(bits).segments();
    a.iter()
        .map(|s| format!("{s:04x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A random address biased toward mapped space and toward `near`.
fn v4_bits() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (0u32..4).prop_map(|x| 0x0a00_0000 | x << 8)]
}

fn v6_bits() -> impl Strategy<Value = u128> {
    prop_oneof![
        any::<u128>(),
        any::<u32>().prop_map(|x| 0xffff_0000_0000 | u128::from(x)),
        any::<u64>().prop_map(|x| 0xfd00u128 << 112 | u128::from(x)),
        any::<u32>().prop_map(u128::from),
    ]
}

/// An origin item: (text, reference).
fn item() -> impl Strategy<Value = (String, RefItem)> {
    let v4 = (v4_bits(), 0u32..=32, 0u8..4).prop_map(|(bits, prefix, form)| {
        let bits = (u128::from(bits) & mask(32, prefix)) as u32;
        let text = match form {
            0 if prefix == 32 => v4_text(bits),
            1 => format!("::ffff:{}/{}", v4_text(bits), prefix + 96),
            2 => format!(
                "::FFFF:{:x}:{:x}/{}",
                bits >> 16,
                bits & 0xffff,
                prefix + 96
            ),
            _ => format!("{}/{prefix}", v4_text(bits)),
        };
        (
            text,
            RefItem::Net {
                key: (true, u128::from(bits)),
                prefix,
            },
        )
    });
    let v6 = (v6_bits(), 0u32..=128, any::<bool>()).prop_map(|(bits, prefix, expanded)| {
        let bits = bits & mask(128, prefix);
        let addr = if expanded {
            v6_expanded(bits)
        } else {
            Ipv6Addr::from(bits).to_string()
        };
        let (is_v4, value) = key_of_v6(bits);
        let reference = if is_v4 && prefix >= 96 {
            RefItem::Net {
                key: (true, value),
                prefix: prefix - 96,
            }
        } else {
            RefItem::Net {
                key: (false, bits),
                prefix,
            }
        };
        (format!("{addr}/{prefix}"), reference)
    });
    prop_oneof![1 => Just(("ALL".to_owned(), RefItem::All)), 6 => v4, 6 => v6]
}

#[derive(Clone, Debug)]
struct RefRule {
    skip: bool,
    include: Vec<RefItem>,
    except: Vec<RefItem>,
}

fn rules() -> impl Strategy<Value = (String, Vec<RefRule>)> {
    let rule = (
        any::<bool>(),
        prop::collection::vec(item(), 1..4),
        prop::collection::vec(item(), 0..3),
    );
    prop::collection::vec(rule, 1..12).prop_map(|rules| {
        let mut text = String::new();
        let mut reference = Vec::new();
        for (skip, include, except) in rules {
            text.push_str(if skip { "+ : ALL :" } else { "- : ALL :" });
            for (t, _) in &include {
                text.push(' ');
                text.push_str(t);
            }
            if !except.is_empty() {
                text.push_str(" EXCEPT");
                for (t, _) in &except {
                    text.push(' ');
                    text.push_str(t);
                }
            }
            text.push('\n');
            reference.push(RefRule {
                skip,
                include: include.into_iter().map(|(_, r)| r).collect(),
                except: except.into_iter().map(|(_, r)| r).collect(),
            });
        }
        (text, reference)
    })
}

/// A peer: (PAM_RHOST text, reference key).
fn peer() -> impl Strategy<Value = (String, Key)> {
    let v4 = (v4_bits(), 0u8..3).prop_map(|(bits, form)| {
        let text = match form {
            0 => v4_text(bits),
            1 => format!("::ffff:{}", v4_text(bits)),
            _ => format!("::ffff:{:x}:{:x}", bits >> 16, bits & 0xffff),
        };
        (text, (true, u128::from(bits)))
    });
    let v6 = (v6_bits(), any::<bool>()).prop_map(|(bits, expanded)| {
        let text = if expanded {
            v6_expanded(bits)
        } else {
            Ipv6Addr::from(bits).to_string()
        };
        (text, key_of_v6(bits))
    });
    prop_oneof![v4, v6]
}

/// A peer inside a rule's network (host bits from `host`), so matches are common.
fn peer_inside(item: &RefItem, host: u128, form: u8) -> Option<(String, Key)> {
    let RefItem::Net { key, prefix } = *item else {
        return None;
    };
    if key.0 {
        let bits = (key.1 | (host & !mask(32, prefix) & 0xffff_ffff)) as u32;
        let text = match form % 3 {
            0 => v4_text(bits),
            1 => format!("::ffff:{}", v4_text(bits)),
            _ => format!("::ffff:{:x}:{:x}", bits >> 16, bits & 0xffff),
        };
        Some((text, (true, u128::from(bits))))
    } else {
        let bits = key.1 | (host & !mask(128, prefix));
        let text = if form.is_multiple_of(2) {
            v6_expanded(bits)
        } else {
            Ipv6Addr::from(bits).to_string()
        };
        Some((text, key_of_v6(bits)))
    }
}

fn reference(rules: &[RefRule], addr: Key) -> (SkipVerdict, Option<usize>) {
    for (i, r) in rules.iter().enumerate() {
        if r.include.iter().any(|n| n.contains(addr)) && !r.except.iter().any(|n| n.contains(addr))
        {
            return (if r.skip { Skip } else { Require }, Some(i + 1));
        }
    }
    (Require, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn evaluation_agrees_with_naive_mask_check(
        (text, model) in rules(),
        mut peers in prop::collection::vec(peer(), 1..6),
        inside in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u128>(), any::<u8>()),
            1..6,
        ),
    ) {
        let opts = ParseOptions { allow_any_network: true };
        let parsed = AccessRules::parse(text.as_bytes(), opts);
        prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
        let Ok(parsed) = parsed else { unreachable!() };
        for (rule, item, host, form) in inside {
            let rule = rule.get(&model);
            let items: Vec<RefItem> = rule.include.iter().chain(&rule.except).cloned().collect();
            peers.extend(peer_inside(item.get(&items), host, form));
        }
        for (rhost, key) in peers {
            let origin = classify_origin(Some(rhost.as_bytes()), None, None);
            prop_assert!(matches!(origin, Origin::Network(_)), "{rhost}");
            let subject = Subject { user: "u", groups: Groups::Complete(&[]), origin };
            let d = parsed.evaluate(&subject);
            prop_assert_eq!(
                (d.verdict, d.matched.map(|m| m.line)),
                reference(&model, key),
                "rules:\n{}peer {}", text, rhost
            );
        }
    }

    #[test]
    fn rhost_parsing_accepts_exactly_what_std_accepts(s in "[0-9a-fA-FxX:.%/ \\[\\]]{0,40}") {
        let ours = addr::parse_ip_literal(&s);
        let std_ok = s.parse::<std::net::IpAddr>().ok();
        prop_assert_eq!(ours.is_some(), std_ok.is_some());
        prop_assert_eq!(ours, std_ok.map(addr::canonical));
        if !s.contains('%') && !s.is_empty() {
            let origin = classify_origin(Some(s.as_bytes()), Some(b"tty1"), None);
            prop_assert_eq!(origin, ours.map_or(Origin::Unknown, Origin::Network));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(rules) = AccessRules::parse(&bytes, ParseOptions::default()) {
            let _ = rules.evaluate(&Subject { user: "u", groups: Groups::Unknown, origin: Origin::Unknown });
        }
        let _ = addr::parse_rhost(Some(&bytes));
    }

    #[test]
    fn token_soup_never_panics(
        lines in prop::collection::vec(
            prop::collection::vec(
                prop::sample::select(vec![
                    "+", "-", ":", " ", "\t", ",", "ALL", "EXCEPT", "LOCAL", "(g)", "(", ")",
                    "root", "10.0.0.0/8", "::/0", "0.0.0.0/0", "fe80::1%eth0", "#", "\r",
                    "::ffff:10.0.0.0/104", "1.2.3.4/", "/", "@", ".", "u$",
                ]),
                0..12,
            ),
            0..8,
        ),
        groups in prop::option::of(prop::collection::vec(prop::sample::select(vec!["g", "root", "x"]), 0..3)),
        rhost in prop::option::of(prop::sample::select(vec!["10.1.2.3", "::1", "host", "", "fe80::2%eth0"])),
    ) {
        let text: String = lines.iter().map(|l| l.concat() + "\n").collect();
        let parsed = AccessRules::parse(text.as_bytes(), ParseOptions::default());
        if let Ok(rules) = parsed {
            let groups: Option<Vec<String>> =
                groups.map(|g| g.into_iter().map(str::to_owned).collect());
            let items = RawSubject {
                user: "root",
                groups: groups.as_deref().map_or(Groups::Unknown, Groups::Complete),
                rhost: rhost.map(str::as_bytes),
                tty: Some(b"tty1"),
                service: Some(b"login"),
            };
            let explanation = rules.explain(&items);
            let subject = Subject {
                user: "root",
                groups: groups.as_deref().map_or(Groups::Unknown, Groups::Complete),
                origin: explanation.origin,
            };
            prop_assert_eq!(&rules.evaluate(&subject), &explanation.decision);
            // Missing groups can only remove skips, never add them.
            if explanation.decision.verdict == Skip && groups.is_none() {
                for known in [vec![], vec!["g".to_owned()], vec!["g".to_owned(), "x".to_owned()]] {
                    let s = Subject { groups: Groups::Complete(&known), ..subject };
                    prop_assert_eq!(rules.evaluate(&s).verdict, Skip);
                }
            }
        }
    }
}

/// What `parse_network` should say, written out plainly: `std`'s address parser, a
/// prefix of plain decimal digits, host bits found by shifting, mapped IPv4 rewritten,
/// `/0` refused without the opt-in. Errors by kind only.
fn naive_network(s: &str, allow_zero: bool) -> Result<(std::net::IpAddr, u8), &'static str> {
    use std::net::IpAddr;
    if s.contains('%') {
        return Err("zone");
    }
    let (addr_text, prefix_text) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| "address")?;
    let width: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => width,
        Some(p) => {
            let plain = !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if !plain {
                return Err("prefix syntax");
            }
            let v: u32 = p.parse().map_err(|_| "prefix syntax")?;
            if v > width {
                return Err("prefix range");
            }
            v
        }
    };
    let bits: u128 = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host = width - prefix;
    let host_bits = match host {
        0 => 0,
        128 => bits,
        _ => bits & ((1u128 << host) - 1),
    };
    if host_bits != 0 {
        return Err("host bits");
    }
    let (addr, prefix) = match addr {
        IpAddr::V6(a) if prefix >= 96 && a.to_ipv4_mapped().is_some() => (
            IpAddr::V4(
                a.to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            prefix - 96,
        ),
        other => (other, prefix),
    };
    if prefix == 0 && !allow_zero {
        return Err("zero prefix");
    }
    Ok((addr, u8::try_from(prefix).unwrap_or(u8::MAX)))
}

fn kind(e: &addr::NetworkError) -> &'static str {
    match e {
        addr::NetworkError::ZoneId => "zone",
        addr::NetworkError::InvalidAddress => "address",
        addr::NetworkError::InvalidPrefix => "prefix syntax",
        addr::NetworkError::PrefixOutOfRange { .. } => "prefix range",
        addr::NetworkError::HostBitsSet { .. } => "host bits",
        addr::NetworkError::ZeroPrefix => "zero prefix",
    }
}

/// Network candidates, good and bad: dotted quads with odd parts, IPv6, mapped forms,
/// prefixes with signs, leading zeros and junk.
fn network_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        4 => (0u16..=255).prop_map(|n| n.to_string()),
        2 => prop::sample::select(vec![
            "0", "00", "01", "010", "0255", "256", "300", "999", "+1", "-1", " 1", "", "a",
            "0x1", "1e1", "\u{661}",
        ])
        .prop_map(str::to_owned),
    ];
    let tail = prop_oneof![
        3 => Just(String::new()),
        4 => (0u16..=140).prop_map(|n| format!("/{n}")),
        2 => prop::sample::select(vec![
            "/", "/0", "/00", "/033", "/-1", "/+8", "/ 8", "/8/8", "%eth0", "/8%eth0", "/1000",
        ])
        .prop_map(str::to_owned),
    ];
    prop_oneof![
        4 => (prop::collection::vec(part, 1..6), tail.clone())
            .prop_map(|(parts, tail)| parts.join(".") + &tail),
        3 => (v6_bits(), 0u32..=130, any::<bool>()).prop_map(|(bits, prefix, expanded)| {
            let bits = bits & mask(128, prefix.min(128));
            let a = if expanded { v6_expanded(bits) } else { Ipv6Addr::from(bits).to_string() };
            format!("{a}/{prefix}")
        }),
        2 => (v4_bits(), 0u32..=33).prop_map(|(bits, prefix)| {
            format!("::ffff:{}/{}", v4_text(bits), prefix + 96)
        }),
        1 => "[0-9a-fA-F:./%]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn network_parsing_agrees_with_the_naive_reference(s in network_text()) {
        for allow in [false, true] {
            let ours = addr::parse_network(&s, allow)
                .map(|n| (n.addr(), n.prefix()))
                .map_err(|e| kind(&e));
            prop_assert_eq!(ours, naive_network(&s, allow), "{:?} allow_zero={}", s, allow);
        }
    }
}

/// The `make bench` rule file: `n` rules, only the last matching 192.0.2.10.
fn bench_rules(n: usize) -> String {
    let mut s = String::from("# only the last rule matches\n");
    for i in 0..n.saturating_sub(1) {
        let (a, b) = (i / 250 % 250 + 1, i % 250 + 1);
        s.push_str(&match i % 4 {
            0 => format!("+ : ALL : 10.{a}.{b}.0/24\n"),
            1 => format!("- : ALL : 172.16.{a}.{b}\n"),
            2 => format!("+ : ALL : 2001:db8:{a:x}:{b:x}::/64\n"),
            _ => format!("+ : ALL : 198.51.{a}.{b} 203.0.{a}.{b}/32\n"),
        });
    }
    s.push_str("+ : ALL : 192.0.2.0/24\n");
    s
}

/// Timings of `decide` (the login path) and of parse + evaluate, printed, never asserted: `cargo test --release -p
/// totp-core --test access_reference -- --ignored --nocapture access_rule_timings`.
#[test]
#[ignore = "timing report, run by hand in release mode"]
fn access_rule_timings() {
    use std::time::{Duration, Instant};
    let best_of = |runs: usize, f: &mut dyn FnMut()| -> Duration {
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let opts = ParseOptions::default();
    let subject = Subject {
        user: "root",
        groups: Groups::Complete(&[]),
        origin: Origin::Network("192.0.2.10".parse().expect("literal")),
    };
    let groups = ["staff".to_owned()];
    let mut with_users = String::new();
    for i in 0..10_000usize {
        let (hi, lo) = (i / 256, i % 256);
        with_users.push_str(&format!(
            "- : user{i} (grp{i}) EXCEPT root : 10.{hi}.{lo}.0/24, 10.{lo}.{hi}.7 LOCAL\n"
        ));
    }
    let users_subject = Subject {
        groups: Groups::Complete(&groups),
        ..subject
    };
    for (name, text, subject) in [
        ("bench file, 10 rules", bench_rules(10), subject),
        ("bench file, 10,000 rules", bench_rules(10_000), subject),
        ("users and groups, 10,000 rules", with_users, users_subject),
    ] {
        let text = text.as_bytes();
        let parse = best_of(200, &mut || {
            std::hint::black_box(AccessRules::parse(std::hint::black_box(text), opts)).ok();
        });
        let both = best_of(200, &mut || {
            let rules = AccessRules::parse(std::hint::black_box(text), opts);
            std::hint::black_box(rules.map(|r| r.evaluate(&subject))).ok();
        });
        let streamed = best_of(200, &mut || {
            std::hint::black_box(decide(std::hint::black_box(text), opts, &subject)).ok();
        });
        println!(
            "{name:32} decide {:>8.1} µs; parse {:>8.1} µs; parse + evaluate {:>8.1} µs",
            streamed.as_secs_f64() * 1e6,
            parse.as_secs_f64() * 1e6,
            both.as_secs_f64() * 1e6,
        );
    }
}
