//! IP networks in access rules: parsed strictly once, then matched as integers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{canonical, small_decimal};

/// An IP network whose host bits are zero, built only by [`parse_network`].
///
/// IPv4 networks written in IPv4-mapped form with a prefix of at least 96 are stored as
/// IPv4. Matching is per family: an IPv6 network never contains an IPv4 peer, so `::/0`
/// means "every IPv6 peer", not "everyone".
///
/// The network is kept as the integers a match needs (address and mask), so a rule file
/// is matched with one AND and one compare per item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    bits: NetBits,
    prefix: u8,
}

/// IPv6 as bytes rather than `u128`: byte alignment keeps an item at 24 bytes instead of
/// 48, which a 10,000-rule file feels (fewer pages to fault in on every login).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NetBits {
    V4 { net: u32, mask: u32 },
    V6 { net: [u8; 16] },
}

/// An address as the integer a network is compared with. Built from a canonical address
/// (mapped IPv4 as IPv4), once per login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IpBits {
    V4(u32),
    V6(u128),
}

impl IpBits {
    pub(crate) fn of(ip: IpAddr) -> IpBits {
        match canonical(ip) {
            IpAddr::V4(a) => IpBits::V4(u32::from(a)),
            IpAddr::V6(a) => IpBits::V6(u128::from(a)),
        }
    }
}

impl IpNetwork {
    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        match self.bits {
            NetBits::V4 { net, .. } => IpAddr::V4(Ipv4Addr::from(net)),
            NetBits::V6 { net } => IpAddr::V6(Ipv6Addr::from(net)),
        }
    }

    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether an address (turned into an integer once per login, canonical) lies in
    /// this network.
    #[inline]
    pub(crate) fn contains_bits(&self, ip: IpBits) -> bool {
        match (self.bits, ip) {
            (NetBits::V4 { net, mask }, IpBits::V4(a)) => a & mask == net,
            (NetBits::V6 { net }, IpBits::V6(a)) => {
                a & mask_u128(self.prefix) == u128::from_be_bytes(net)
            }
            _ => false,
        }
    }

    /// The network of `addr` with `prefix` bits kept; host bits are cleared.
    fn truncated(addr: IpAddr, prefix: u8) -> IpNetwork {
        let bits = match addr {
            IpAddr::V4(a) => {
                let mask = mask_u32(prefix);
                NetBits::V4 {
                    net: u32::from(a) & mask,
                    mask,
                }
            }
            IpAddr::V6(a) => NetBits::V6 {
                net: (u128::from(a) & mask_u128(prefix)).to_be_bytes(),
            },
        };
        IpNetwork { bits, prefix }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
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
/// A bare address is a host network (/32 or /128). The address is a strict literal (see
/// the module documentation for what that refuses). The prefix is 1 to 3 decimal
/// digits, no sign, no leading zero (`/08` is refused rather than guessed at). Host bits
/// must be zero. A resulting prefix of 0 is refused unless `allow_zero_prefix`.
///
/// The checks run in a fixed order, which decides the error reported: zone id, address,
/// prefix syntax, prefix range, host bits, `/0`.
pub fn parse_network(s: &str, allow_zero_prefix: bool) -> Result<IpNetwork, NetworkError> {
    parse_network_bytes(s.as_bytes(), allow_zero_prefix)
}

/// [`parse_network`] on bytes: rule files are read as bytes, and an IPv4 network (the
/// usual item) is read straight into integers.
pub(crate) fn parse_network_bytes(
    s: &[u8],
    allow_zero_prefix: bool,
) -> Result<IpNetwork, NetworkError> {
    let mut reader = NetworkReader::default();
    for &b in s {
        reader.push(b);
    }
    reader.finish(s, allow_zero_prefix)
}

/// [`parse_network`] fed one byte at a time, so that a caller that is looking for the
/// end of an item reads the network in the same pass. Everything is decided in
/// [`NetworkReader::finish`], in the documented order.
#[derive(Default)]
pub(crate) struct NetworkReader {
    at: usize,
    slash: Option<usize>,
    /// A colon before the slash: an IPv6 literal.
    colon: bool,
    zone: bool,
    v4: Ipv4Reader,
}

impl NetworkReader {
    #[inline(always)]
    pub(crate) fn push(&mut self, b: u8) {
        if self.slash.is_none() && (b.is_ascii_digit() || b == b'.') {
            self.v4.push(b);
        } else {
            self.other(b);
        }
        self.at += 1;
    }

    /// Any byte but the digits and dots of an IPv4 address.
    fn other(&mut self, b: u8) {
        match b {
            b'%' => self.zone = true,
            // What follows the slash is read as the prefix by `finish`.
            _ if self.slash.is_some() => {}
            b'/' => self.slash = Some(self.at),
            b':' => self.colon = true,
            _ => self.v4.bad = true,
        }
    }

    /// `s` is every byte pushed, in order.
    #[inline(always)]
    pub(crate) fn finish(
        &self,
        s: &[u8],
        allow_zero_prefix: bool,
    ) -> Result<IpNetwork, NetworkError> {
        if self.zone {
            return Err(NetworkError::ZoneId);
        }
        let (addr_text, prefix_text) = match self.slash {
            None => (s, None),
            Some(i) => (s.get(..i).unwrap_or(&[]), s.get(i + 1..)),
        };
        // An IPv6 literal always has a colon and an IPv4 literal never does: one
        // attempt, with the reader of the right family.
        if self.colon {
            return ipv6_network(addr_text, prefix_text, allow_zero_prefix);
        }
        let bits = self.v4.finish().ok_or(NetworkError::InvalidAddress)?;
        let prefix = prefix_of(prefix_text, 32)?;
        let mask = mask_u32(prefix);
        let net = IpNetwork {
            bits: NetBits::V4 {
                net: bits & mask,
                mask,
            },
            prefix,
        };
        if bits & !mask != 0 {
            return Err(NetworkError::HostBitsSet { suggestion: net });
        }
        checked_zero(net, allow_zero_prefix)
    }
}

/// IPv6 (and mapped IPv4) networks: the address is read by `std`.
fn ipv6_network(
    addr_text: &[u8],
    prefix_text: Option<&[u8]>,
    allow_zero_prefix: bool,
) -> Result<IpNetwork, NetworkError> {
    let addr = std::str::from_utf8(addr_text)
        .ok()
        .and_then(|t| t.parse::<Ipv6Addr>().ok())
        .ok_or(NetworkError::InvalidAddress)?;
    let prefix = prefix_of(prefix_text, 128)?;
    let net = IpNetwork::truncated(IpAddr::V6(addr), prefix);
    if net.addr() != IpAddr::V6(addr) {
        return Err(NetworkError::HostBitsSet { suggestion: net });
    }
    checked_zero(canonical_network(net), allow_zero_prefix)
}

/// The prefix after `/`, or the full length `max` without one.
fn prefix_of(text: Option<&[u8]>, max: u8) -> Result<u8, NetworkError> {
    match text {
        None => Ok(max),
        Some(p) => {
            let value = small_decimal(p).ok_or(NetworkError::InvalidPrefix)?;
            u8::try_from(value)
                .ok()
                .filter(|&v| v <= max)
                .ok_or(NetworkError::PrefixOutOfRange { max })
        }
    }
}

/// The `/0` opt-in, checked last.
fn checked_zero(net: IpNetwork, allow_zero_prefix: bool) -> Result<IpNetwork, NetworkError> {
    if net.prefix == 0 && !allow_zero_prefix {
        return Err(NetworkError::ZeroPrefix);
    }
    Ok(net)
}

/// Reads a dotted-quad IPv4 address one byte at a time, exactly the syntax
/// `Ipv4Addr::from_str` accepts: four parts of one to three decimal digits, each at most
/// 255, no leading zero (`010` would be octal to inet_aton), no sign, nothing but the dots
/// between them. Read here rather than by `std` because rule files are mostly IPv4 and
/// this is their hottest loop; the tests hold it to `std`
/// (`totp-core/tests/access_reference.rs`).
#[derive(Default)]
struct Ipv4Reader {
    /// Completed octets, shifted in as they complete.
    addr: u32,
    dots: u32,
    /// The octet being read.
    value: u32,
    digits: u32,
    bad: bool,
}

impl Ipv4Reader {
    #[inline(always)]
    fn push(&mut self, b: u8) {
        if b.is_ascii_digit() {
            // A second digit after a leading 0 is the octal trap. Past 255 it is no
            // octet, which also keeps out a fourth digit (no leading zero, so four
            // digits are at least 1000); `bad` stops the value from growing further.
            self.bad |= self.digits != 0 && self.value == 0;
            self.value = (self.value * 10 + u32::from(b - b'0')).min(256);
            self.bad |= self.value > 255;
            self.digits += 1;
        } else if b == b'.' && self.digits != 0 && self.dots < 3 {
            self.addr = self.addr << 8 | self.value;
            self.dots += 1;
            self.value = 0;
            self.digits = 0;
        } else {
            self.bad = true;
        }
    }

    /// Exactly three dots, and digits after the last one.
    fn finish(&self) -> Option<u32> {
        (!self.bad && self.dots == 3 && self.digits != 0).then_some(self.addr << 8 | self.value)
    }
}

/// Rewrites a network inside `::ffff:0:0/96` as the IPv4 network it stands for, so it
/// matches the canonicalised peer. With host bits zero, a mapped address always has a
/// prefix of at least 96, so nothing else can fall in that block.
fn canonical_network(net: IpNetwork) -> IpNetwork {
    match net.addr() {
        IpAddr::V6(v6) if net.prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => IpNetwork::truncated(IpAddr::V4(v4), net.prefix - 96),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod size {
    /// The layout note on `NetBits` holds.
    #[test]
    fn a_network_item_stays_small() {
        assert!(std::mem::size_of::<super::IpNetwork>() <= 24);
    }
}
