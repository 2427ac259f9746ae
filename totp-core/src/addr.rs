//! Strict IP literals for `PAM_RHOST` and access rules, and where a login comes from.
//!
//! Only numeric literals are understood. Nothing here resolves a name: a host name in
//! `PAM_RHOST` is "not an address", never something to look up, because a reverse-DNS
//! name is chosen by whoever controls the peer's address block (CVE-2024-10963).
//!
//! Address syntax is exactly what `std::net` accepts, so `010.1.2.3` (octal in inet_aton),
//! `0x0a.1.2.3`, `10.1.2`, `10.1.2.3.`, surrounding spaces and `[::1]` are all rejected
//! (CVE-2021-29922 is the reason leading zeros must not be read as anything).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, `::ffff:a01:203`) are the same peer as
//! `10.1.2.3` on a dual-stack socket, so they are canonicalised to IPv4 on both sides: in
//! `PAM_RHOST` and in rules. The deprecated IPv4-compatible form (`::a01:203`) is a plain
//! IPv6 address and is not mapped.
//!
//! Zone ids: `getnameinfo` (and so sshd) writes a link-local peer as `fe80::1%eth0`. The
//! zone id is stripped for unicast link-local addresses (`fe80::/10`) only, because that is
//! the only place a scope is meaningful; the stripped address then matches rules by address
//! alone, on whichever interface it arrived (rules cannot name an interface). A zone id on
//! any other address, an empty or malformed zone id, and any zone id inside a rule make the
//! text "not an address".

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses a strict IP literal and canonicalises IPv4-mapped IPv6 to IPv4.
///
/// No zone ids, no brackets, no whitespace: see the module documentation.
pub fn parse_ip_literal(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical)
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`; every other address is returned unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// What the `PAM_RHOST` item says, read strictly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteHost {
    /// The item is unset or empty: the application named no peer.
    Absent,
    /// A strict IP literal, canonical (mapped IPv4 as IPv4, link-local zone id stripped).
    Address(IpAddr),
    /// Something else: a host name, junk, non-UTF-8. Never looked up, never matched.
    NotAnAddress,
}

/// Longest text worth parsing: a full IPv6 literal with embedded IPv4 (45 bytes) plus
/// `%` and a 15-byte interface name. Anything longer cannot be an address, and
/// refusing early keeps hostile input from costing anything.
const MAX_RHOST_BYTES: usize = 64;

/// Linux interface names are at most `IFNAMSIZ - 1` bytes.
const MAX_ZONE_BYTES: usize = 15;

/// Reads the `PAM_RHOST` item. `None` and empty are [`RemoteHost::Absent`].
pub fn parse_rhost(rhost: Option<&[u8]>) -> RemoteHost {
    let bytes = match rhost {
        None | Some(b"") => return RemoteHost::Absent,
        Some(b) => b,
    };
    if bytes.len() > MAX_RHOST_BYTES {
        return RemoteHost::NotAnAddress;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return RemoteHost::NotAnAddress;
    };
    let parsed = match text.split_once('%') {
        None => parse_ip_literal(text),
        Some((addr, zone)) => parse_link_local_with_zone(addr, zone),
    };
    parsed.map_or(RemoteHost::NotAnAddress, RemoteHost::Address)
}

fn parse_link_local_with_zone(addr: &str, zone: &str) -> Option<IpAddr> {
    let valid_zone = !zone.is_empty()
        && zone.len() <= MAX_ZONE_BYTES
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid_zone {
        return None;
    }
    let v6: Ipv6Addr = addr.parse().ok()?;
    v6.is_unicast_link_local().then_some(IpAddr::V6(v6))
}

/// Where a login comes from, as far as the PAM items can tell without trusting anything
/// the user controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `PAM_RHOST` is a strict IP literal (canonical).
    Network(IpAddr),
    /// No `PAM_RHOST`, and the terminal is a local console or a local X display.
    Local,
    /// Anything else: a host name in `PAM_RHOST`, or no `PAM_RHOST` and no local terminal
    /// (sudo or su inside an SSH session, cron, a pseudo-terminal of unknown provenance).
    Unknown,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Network(ip) => write!(f, "network address {ip}"),
            Origin::Local => f.write_str("local console or display"),
            Origin::Unknown => f.write_str("unknown (matches no address rule and not LOCAL)"),
        }
    }
}

/// Why [`classify_origin_with_reason`] chose an [`Origin`]; for the explain mode and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginReason {
    /// `PAM_RHOST` parsed as a strict IP literal.
    RhostAddress,
    /// `PAM_RHOST` is set but is not a strict IP literal (host name, junk, zone id).
    RhostNotAnAddress,
    /// No `PAM_RHOST`, and the service switches identity (su, sudo, ...).
    IdentitySwitchService,
    /// No `PAM_RHOST`, and the terminal is a local console or X display.
    LocalTerminal,
    /// No `PAM_RHOST`, and the terminal is a pseudo-terminal or anything unrecognised.
    OtherTerminal,
    /// No `PAM_RHOST` and no `PAM_TTY`.
    NoTerminal,
}

impl fmt::Display for OriginReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OriginReason::RhostAddress => "PAM_RHOST is an IP literal",
            OriginReason::RhostNotAnAddress => {
                "PAM_RHOST is set but is not a strict IP literal (host names are never resolved)"
            }
            OriginReason::IdentitySwitchService => {
                "no PAM_RHOST, and su/sudo-style services are never local"
            }
            OriginReason::LocalTerminal => {
                "no PAM_RHOST, and PAM_TTY is a local console or display"
            }
            OriginReason::OtherTerminal => {
                "no PAM_RHOST, and PAM_TTY is not a local console (pseudo-terminals never are)"
            }
            OriginReason::NoTerminal => "no PAM_RHOST and no PAM_TTY",
        })
    }
}

/// Classifies a login from the `PAM_RHOST`, `PAM_TTY` and `PAM_SERVICE` items.
///
/// Deliberately takes nothing else: the environment (`SSH_CONNECTION`, PAM or process
/// environment) is user-controllable and is never consulted (CVE-2025-6018).
pub fn classify_origin(rhost: Option<&[u8]>, tty: Option<&[u8]>, service: Option<&[u8]>) -> Origin {
    classify_origin_with_reason(rhost, tty, service).0
}

/// [`classify_origin`] plus the reason, for explanations.
///
/// [`Origin::Local`] needs all of: no `PAM_RHOST`, a service that does not switch identity,
/// and a `PAM_TTY` naming a virtual console (`ttyN`, `/dev/ttyN`, N ≤ 63), the system
/// console (`console`, `/dev/console`) or a local X display `:N` / `:N.S` with N ≤ 9.
///
/// - A pseudo-terminal is never local: that is what sudo or su inside an SSH session have.
/// - su, sudo, runuser, doas and pkexec are never local whatever their terminal, because
///   they take `PAM_TTY` from descriptors the invoking (possibly remote) user chose, and
///   running them is not a console login.
/// - Displays 10 and above are left out because X11 forwarding and remote-desktop servers
///   number their displays from 10.
/// - Serial lines (`ttyS0`, `ttyUSB0`) are left out: they are often console servers
///   reached over a network.
pub fn classify_origin_with_reason(
    rhost: Option<&[u8]>,
    tty: Option<&[u8]>,
    service: Option<&[u8]>,
) -> (Origin, OriginReason) {
    match parse_rhost(rhost) {
        RemoteHost::Address(ip) => return (Origin::Network(ip), OriginReason::RhostAddress),
        RemoteHost::NotAnAddress => return (Origin::Unknown, OriginReason::RhostNotAnAddress),
        RemoteHost::Absent => {}
    }
    if service.is_some_and(is_identity_switch_service) {
        return (Origin::Unknown, OriginReason::IdentitySwitchService);
    }
    match tty {
        None | Some(b"") => (Origin::Unknown, OriginReason::NoTerminal),
        Some(t) if is_local_terminal(t) => (Origin::Local, OriginReason::LocalTerminal),
        Some(_) => (Origin::Unknown, OriginReason::OtherTerminal),
    }
}

fn is_identity_switch_service(service: &[u8]) -> bool {
    matches!(
        service,
        b"su"
            | b"su-l"
            | b"sudo"
            | b"sudo-i"
            | b"runuser"
            | b"runuser-l"
            | b"doas"
            | b"pkexec"
            | b"polkit-1"
    )
}

fn is_local_terminal(tty: &[u8]) -> bool {
    if let Some(display) = tty.strip_prefix(b":") {
        return is_local_display(display);
    }
    let name = tty.strip_prefix(b"/dev/").unwrap_or(tty);
    if name == b"console" {
        return true;
    }
    name.strip_prefix(b"tty")
        .and_then(small_decimal)
        .is_some_and(|n| n <= 63)
}

fn is_local_display(display: &[u8]) -> bool {
    let (number, screen) = match display.iter().position(|&b| b == b'.') {
        None => (display, None),
        Some(dot) => (&display[..dot], Some(&display[dot + 1..])),
    };
    let number_ok = small_decimal(number).is_some_and(|n| n <= 9);
    let screen_ok = screen.is_none_or(|s| small_decimal(s).is_some());
    number_ok && screen_ok
}

/// Plain decimal, at most three digits, no sign, no leading zero (so `tty01` is not `tty1`).
fn small_decimal(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')),
    )
}

/// An IP network whose host bits are zero, built only by [`parse_network`].
///
/// IPv4 networks written in IPv4-mapped form with a prefix of at least 96 are stored as
/// IPv4. Matching is per family: an IPv6 network never contains an IPv4 peer, so `::/0`
/// means "every IPv6 peer", not "everyone".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (canonicalised first) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask_u32(prefix: u8) -> u32 {
    // checked_shl yields None for a shift of 32, which is exactly the /0 case.
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

/// Why a network in a rule was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkError {
    /// The address part is not a strict IP literal.
    InvalidAddress,
    /// A zone id (`%eth0`) appeared; rules match addresses only.
    ZoneId,
    /// Text after `/` is not plain decimal without sign or leading zero.
    InvalidPrefix,
    /// The prefix exceeds 32 (IPv4) or 128 (IPv6).
    PrefixOutOfRange {
        /// The largest prefix for the address family.
        max: u8,
    },
    /// Bits beyond the prefix are set (`10.0.0.1/8`): almost always a typo.
    HostBitsSet {
        /// The network the admin probably meant.
        suggestion: IpNetwork,
    },
    /// A prefix of 0 matches every address of a family; it needs an explicit opt-in.
    ZeroPrefix,
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkError::InvalidAddress => f.write_str("not a strict IP address"),
            NetworkError::ZoneId => f.write_str("zone ids (%...) are not allowed in rules"),
            NetworkError::InvalidPrefix => {
                f.write_str("prefix length must be plain decimal without sign or leading zero")
            }
            NetworkError::PrefixOutOfRange { max } => {
                write!(f, "prefix length out of range (at most {max})")
            }
            NetworkError::HostBitsSet { suggestion } => {
                write!(
                    f,
                    "host bits set after the prefix (did you mean {suggestion}?)"
                )
            }
            NetworkError::ZeroPrefix => f.write_str(
                "a /0 network matches every address and is refused unless explicitly allowed",
            ),
        }
    }
}

impl std::error::Error for NetworkError {}

/// Parses `ADDR` or `ADDR/PREFIX` strictly.
///
/// A bare address is a host network (/32 or /128). The prefix is 1 to 3 decimal digits,
/// no sign, no leading zero (`/08` is refused rather than guessed at). Host bits must be
/// zero. A resulting prefix of 0 is refused unless `allow_zero_prefix`.
pub fn parse_network(s: &str, allow_zero_prefix: bool) -> Result<IpNetwork, NetworkError> {
    // Rule files are parsed on every authentication and most of their networks are
    // plain IPv4: those take one pass and no `std` parser. The rest (IPv6, and every
    // error, so that errors are reported exactly as before) takes the general path.
    match scan_ipv4_network(s.as_bytes(), allow_zero_prefix) {
        Some((net, end)) if end == s.len() => Ok(net),
        _ => parse_network_general(s, allow_zero_prefix),
    }
}

/// A valid IPv4 network at the start of `s`, in one pass: `a.b.c.d` or `a.b.c.d/N`, read
/// up to the first byte that is none of `0-9./`. Returns the network and where it ends.
///
/// `None` means "not this simple case, or not valid", never "refused": a caller falls
/// back to [`parse_network`], which has the final word. A caller must also fall back
/// when the byte at the returned end is not where its item ends (`10.0.0.0/8%eth0`).
// Inlined into the rule scanner: its result, returned through memory, stalls store
// forwarding there (perf).
#[inline(always)]
pub(crate) fn scan_ipv4_network(s: &[u8], allow_zero_prefix: bool) -> Option<(IpNetwork, usize)> {
    let (addr, mut end) = scan_ipv4(s)?;
    let prefix = if s.get(end) == Some(&b'/') {
        let digits = s.get(end + 1..)?;
        let len = digits
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        end += 1 + len;
        // A sign or a leading zero, empty or too long: the general path says which.
        let value = small_decimal(digits.get(..len)?)?;
        u8::try_from(value).ok().filter(|&v| v <= 32)?
    } else {
        32
    };
    let host_bits = u32::from(addr) & !mask_u32(prefix);
    if host_bits != 0 || (prefix == 0 && !allow_zero_prefix) {
        return None;
    }
    // An IPv4 network is already canonical: `canonical_network` only rewrites IPv6.
    let net = IpNetwork {
        addr: IpAddr::V4(addr),
        prefix,
    };
    Some((net, end))
}

/// A dotted-quad IPv4 address at the start of `s`, read up to the first byte that is
/// neither a digit nor a dot; returns it and where it ends.
///
/// What it reads is held to `Ipv4Addr::from_str` (see [`parse_ipv4`]): four parts of one
/// to three decimal digits, each at most 255, no leading zero (`010` would be octal to
/// inet_aton), no sign, nothing but the dots between them.
fn scan_ipv4(s: &[u8]) -> Option<(Ipv4Addr, usize)> {
    // Octets are shifted into one integer as they complete: writing bytes to an array
    // and reading it back as a word stalls store forwarding, measurably on a hot path.
    let mut addr = 0u32;
    let mut dots = 0u32;
    let mut value = 0u32;
    let mut digits = 0u32;
    let mut end = s.len();
    for (i, &b) in s.iter().enumerate() {
        if b.is_ascii_digit() {
            // A second digit after a leading 0 is the octal trap.
            if digits != 0 && value == 0 {
                return None;
            }
            // At most 255 before, so no overflow; past 255 it is no octet, which also
            // keeps out a fourth digit (no leading zero, so four digits are ≥ 1000).
            value = value * 10 + u32::from(b - b'0');
            if value > 255 {
                return None;
            }
            digits += 1;
        } else if b == b'.' {
            // An empty part, or a fourth dot.
            if digits == 0 || dots == 3 {
                return None;
            }
            addr = addr << 8 | value;
            dots += 1;
            value = 0;
            digits = 0;
        } else {
            end = i;
            break;
        }
    }
    // Exactly three dots, and digits after the last one.
    if dots != 3 || digits == 0 {
        return None;
    }
    Some((Ipv4Addr::from(addr << 8 | value), end))
}

/// A whole string as a dotted-quad IPv4 address: what `Ipv4Addr::from_str` accepts.
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    scan_ipv4(s).and_then(|(addr, end)| (end == s.len()).then_some(addr))
}

/// The general path of [`parse_network`]: every address family and every error.
fn parse_network_general(s: &str, allow_zero_prefix: bool) -> Result<IpNetwork, NetworkError> {
    // One short byte scan instead of two substring searches.
    let mut slash = None;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'%' => return Err(NetworkError::ZoneId),
            b'/' if slash.is_none() => slash = Some(i),
            _ => {}
        }
    }
    let (addr_text, prefix_text) = match slash {
        None => (s, None),
        Some(i) => (s.get(..i).unwrap_or(""), s.get(i + 1..)),
    };
    let addr = parse_rule_address(addr_text).ok_or(NetworkError::InvalidAddress)?;
    network_of(addr, prefix_text, allow_zero_prefix)
}

/// `IpAddr::from_str`, without its IPv4 attempt where that cannot succeed: an IPv4
/// literal has no colon and an IPv6 literal always has one, and the fast path has
/// usually just failed on the IPv4 reading.
fn parse_rule_address(text: &str) -> Option<IpAddr> {
    if text.contains(':') {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        parse_ipv4(text.as_bytes()).map(IpAddr::V4)
    }
}

/// The checks after the address: prefix syntax and range, host bits, canonical form and
/// the `/0` opt-in, in that order (the order decides which error is reported).
fn network_of(
    addr: IpAddr,
    prefix_text: Option<&str>,
    allow_zero_prefix: bool,
) -> Result<IpNetwork, NetworkError> {
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => {
            let value = small_decimal(p.as_bytes()).ok_or(NetworkError::InvalidPrefix)?;
            u8::try_from(value)
                .ok()
                .filter(|&v| v <= max)
                .ok_or(NetworkError::PrefixOutOfRange { max })?
        }
    };
    let net = truncate(addr, prefix);
    if net.addr != addr {
        return Err(NetworkError::HostBitsSet { suggestion: net });
    }
    let net = canonical_network(net);
    if net.prefix == 0 && !allow_zero_prefix {
        return Err(NetworkError::ZeroPrefix);
    }
    Ok(net)
}

/// [`parse_network`] with `std`'s parser for every address (as before the fast paths):
/// the reference the property tests hold the fast address parser to.
#[cfg(test)]
pub(crate) fn parse_network_reference(
    s: &str,
    allow_zero_prefix: bool,
) -> Result<IpNetwork, NetworkError> {
    let mut slash = None;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'%' => return Err(NetworkError::ZoneId),
            b'/' if slash.is_none() => slash = Some(i),
            _ => {}
        }
    }
    let (addr_text, prefix_text) = match slash {
        None => (s, None),
        Some(i) => (s.get(..i).unwrap_or(""), s.get(i + 1..)),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| NetworkError::InvalidAddress)?;
    // Only the address parsing changed; the checks after it are shared.
    network_of(addr, prefix_text, allow_zero_prefix)
}

fn truncate(addr: IpAddr, prefix: u8) -> IpNetwork {
    let addr = match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_u32(prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_u128(prefix))),
    };
    IpNetwork { addr, prefix }
}

/// Rewrites a network inside `::ffff:0:0/96` as the IPv4 network it stands for, so it
/// matches the canonicalised peer. With host bits zero, a mapped address always has a
/// prefix of at least 96, so nothing else can fall in that block.
fn canonical_network(net: IpNetwork) -> IpNetwork {
    match net.addr {
        IpAddr::V6(v6) if net.prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => IpNetwork {
                addr: IpAddr::V4(v4),
                prefix: net.prefix - 96,
            },
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
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
            b":1",
            b":0.0",
            b":9.1",
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
            b":10",
            b":01",
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
        let net = |s: &str| parse_network(s, true).expect("test network");
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
        assert!(net("192.0.2.1").contains(v4("192.0.2.1")));
        assert!(!net("192.0.2.1").contains(v4("192.0.2.2")));
    }

    mod fast_ipv4 {
        use proptest::prelude::*;

        use super::*;

        /// Parts of dotted quads, good and bad: leading zeros, 256, signs, blanks, empty
        /// parts, hex, non-ASCII digits.
        fn part() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => (0u16..=255).prop_map(|n| n.to_string()),
                2 => prop::sample::select(vec![
                    "0", "00", "000", "01", "010", "0255", "255", "256", "300", "999", "1000",
                    "+1", "-1", " 1", "1 ", "", "a", "0x1", "1e1", "\u{661}", "\u{ff11}",
                    "1\u{301}", "\u{0}", "9999999999999999999999",
                ])
                .prop_map(str::to_owned),
                1 => "[0-9]{1,5}",
            ]
        }

        fn tail() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => Just(String::new()),
                4 => (0u16..=140).prop_map(|n| format!("/{n}")),
                2 => prop::sample::select(vec![
                    "/", "/0", "/00", "/033", "/032", "/-1", "/+8", "/ 8", "/8 ", "/8/8", "//8",
                    "%eth0", "/8%eth0", "%", ".", "/1000", "/4294967304", "/\u{661}", ":", ",",
                ])
                .prop_map(str::to_owned),
            ]
        }

        fn candidate() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => (prop::collection::vec(part(), 1..7), tail())
                    .prop_map(|(parts, tail)| parts.join(".") + &tail),
                2 => "[0-9./%+ -]{0,24}",
                1 => "[0-9a-fA-F:./%]{0,40}",
                1 => any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]

            #[test]
            fn fast_ipv4_agrees_with_std(s in candidate()) {
                prop_assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{:?}", s);
            }

            #[test]
            fn parse_network_agrees_with_the_std_based_reference(s in candidate()) {
                for allow in [false, true] {
                    prop_assert_eq!(
                        parse_network(&s, allow),
                        parse_network_reference(&s, allow),
                        "{:?} allow_zero_prefix={}", s, allow
                    );
                }
            }

            /// What the access-rule scanner relies on: a network read from the start of
            /// an item is the network the whole item would be, whatever follows it.
            #[test]
            fn scanned_prefix_is_what_the_reference_reads(s in candidate(), rest in "[ ,\t%:/a-z0-9]{0,3}") {
                let text = s.clone() + &rest;
                for allow in [false, true] {
                    if let Some((net, end)) = scan_ipv4_network(text.as_bytes(), allow) {
                        let item = text.get(..end);
                        prop_assert!(item.is_some(), "{:?} {}", text, end);
                        prop_assert_eq!(
                            parse_network_reference(item.unwrap_or_default(), allow),
                            Ok(net),
                            "{:?}", text
                        );
                    }
                }
            }
        }
    }
}
