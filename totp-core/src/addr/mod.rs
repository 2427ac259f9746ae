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
use std::net::{IpAddr, Ipv6Addr};

mod network;
#[cfg(test)]
mod tests;

pub(crate) use network::IpBits;
pub use network::{IpNetwork, NetworkError, parse_network};
pub(crate) use network::{NetworkReader, parse_network_bytes};

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
    /// Address items and `LOCAL` only "maybe" match it (see [`crate::access`]).
    Unknown,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Network(ip) => write!(f, "network address {ip}"),
            Origin::Local => f.write_str("local console or display"),
            Origin::Unknown => {
                f.write_str("unknown (address items and LOCAL can only require the code)")
            }
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
/// console (`console`, `/dev/console`) or the first local X display, `:0` / `:0.S`.
///
/// - A pseudo-terminal is never local: that is what sudo or su inside an SSH session have.
/// - su, sudo, runuser, doas and pkexec are never local whatever their terminal, because
///   they take `PAM_TTY` from descriptors the invoking (possibly remote) user chose, and
///   running them is not a console login.
/// - Only display 0 is local. VNC servers (TigerVNC's vncserver and vncsession, x11vnc's
///   own displays) number theirs from 1, and X11 forwarding and remote-desktop servers
///   from 10: a screen locker or display-manager login on such a display is a remote
///   user's, and `:1` and above are [`Origin::Unknown`] (which only ever asks for the
///   code). A second local seat on `:1` asks for the code too; that is the price.
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
    let number_ok = number == b"0";
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
