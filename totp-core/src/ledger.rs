//! Throttling and grace records kept in [`crate::state::UserState::extra`].
//!
//! A [`Ledger`] is what the verification logic remembers about a user besides the
//! replay marks: per-origin backoff, the per-user guess ceiling, GA's `RATE_LIMIT`
//! timestamps, the origins a user has logged in from, and grace-period entries. Stores
//! never look inside it; [`Ledger::encode`] / [`Ledger::decode`] are the only codec, and
//! decode refuses anything encode would not write (a corrupt ledger denies, it never
//! resets throttling).
//!
//! Every list is bounded, so a record stays far below
//! [`crate::state::MAX_ENCODED_LEN`] whatever an attacker does.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::addr::RemoteHost;
use crate::state::{Reader, StoreError, StoreKey};

/// Origins with a failure record; the one whose last failure is oldest is forgotten first.
pub const MAX_ORIGINS: usize = 16;
/// Origins remembered because a code was accepted from them ("known" origins).
pub const MAX_KNOWN: usize = 4;
/// GA's `RATE_LIMIT` allows at most 100 attempts.
pub const MAX_ATTEMPTS: usize = 100;
/// GA keeps ten grace slots (`LAST0`..`LAST9`).
pub const MAX_GRACE: usize = 10;

/// 2 added each origin's last remote address; records of version 1 are still read.
const VERSION: u8 = 2;
/// Version 1: origins without their remote address.
const VERSION_WITHOUT_HOSTS: u8 = 1;

/// Where an attempt comes from, reduced to 64 bits: `PAM_RHOST` (an IPv6 address by its
/// /64, since one client owns a whole /64), else the tty, else "unknown". Hashed so the
/// record has a fixed size and names no host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OriginKey(pub u64);

impl OriginKey {
    /// Builds the key from the raw PAM items (at most 256 bytes of each are used).
    pub fn from_items(rhost: Option<&[u8]>, tty: Option<&[u8]>) -> Self {
        let mut h = Sha256::new();
        h.update(b"pam_totp origin v1\0");
        match (
            rhost.filter(|r| !r.is_empty()),
            tty.filter(|t| !t.is_empty()),
        ) {
            (Some(r), _) => {
                h.update(b"rhost\0");
                // The reading access rules and grace use: a link-local peer as sshd
                // writes it (`fe80::1%eth0`) is an address too, so rotating through its
                // /64 buys no fresh backoff.
                //
                // The three kinds are told apart by length: an IPv4 address is 4 bytes, an
                // IPv6 /64 is 8, and a host name is tagged with a 9-byte prefix, so it is
                // at least 10 bytes. Without the tag the 4-byte name `a.io` hashed as the
                // address 97.46.105.111, and an 8-byte name as some /64, sharing their
                // backoff. Addresses keep the keys they always had: only the backoff of
                // host-name origins is forgotten once on upgrade (a host name is never a
                // known origin nor a grace entry).
                match crate::addr::parse_rhost(Some(r)) {
                    RemoteHost::Address(IpAddr::V6(v6)) => h.update(&v6.octets()[..8]),
                    RemoteHost::Address(IpAddr::V4(v4)) => h.update(v4.octets()),
                    RemoteHost::NotAnAddress | RemoteHost::Absent => {
                        h.update(HOST_NAME_TAG);
                        h.update(&r[..r.len().min(256)])
                    }
                }
            }
            (None, Some(t)) => {
                h.update(b"tty\0");
                h.update(&t[..t.len().min(256)]);
            }
            (None, None) => h.update(b"none\0"),
        }
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        Self(u64::from_le_bytes(b))
    }
}

/// Put before a host name in an origin key: longer than an IPv6 /64 (8 bytes), so no
/// name hashes as an address (see [`OriginKey::from_items`]).
const HOST_NAME_TAG: &[u8; 9] = b"hostname\0";

/// Where the attempts for a name without an account are charged, so that such a name is
/// throttled like an account (R9): one of 4096 stand-in records, keys from 2^31 up (a
/// range Linux distributions leave unused; systemd reserves it), so the records an
/// attacker can create by trying names stay bounded; and inside that record, origin
/// entries of this name only.
///
/// Both are chosen under the store's own key, which whoever only reaches the prompt does
/// not know. With an unkeyed choice anyone could compute, offline, a decoy name sharing
/// the probed name's record, give the decoy enough wrong codes to start its backoff, and
/// then see from the throttle message whether the probed name had no account. Now the
/// record cannot be computed, and the name's own origin entries are never another name's,
/// so a decoy's backoff is never this name's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandIn {
    /// The stand-in record's key, in [`STAND_IN_UIDS`].
    pub uid: crate::state::Uid,
    /// The 52 bits of the name's tag that did not pick the record.
    name_tag: u64,
}

impl StandIn {
    /// The stand-in for `name` (at most 256 bytes of it are used) under `key`. One
    /// store-key tag: an account's wrong code computes one too (its enrolment's).
    pub fn new(key: &StoreKey, name: &[u8]) -> Self {
        let t = key.tag(&[b"pam_totp stand-in v2", &name[..name.len().min(256)]]);
        Self {
            uid: STAND_IN_UIDS.start() | (t as u32 & 0x0fff),
            name_tag: t >> 12,
        }
    }

    /// The key `origin`'s failures for this name are counted under in the stand-in
    /// record. Derived from the keyed name tag, so it is as secret as the tag.
    pub fn origin(&self, origin: OriginKey) -> OriginKey {
        let d = Sha256::new()
            .chain_update(b"pam_totp stand-in origin v1\0")
            .chain_update(self.name_tag.to_le_bytes())
            .chain_update(origin.0.to_le_bytes())
            .finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        OriginKey(u64::from_le_bytes(b))
    }
}

/// Every uid a [`StandIn`] can have.
pub const STAND_IN_UIDS: std::ops::RangeInclusive<crate::state::Uid> = 0x8000_0000..=0x8000_0fff;

/// The record of a name the name service does not know, with GA's `user=` (where the
/// PAM name only selects a file: VPN and RADIUS users who are not system accounts), once
/// that name's secret file exists and passes the usual checks. It is chosen by the
/// enrolment the file holds ([`crate::verify::enrolment_id`], a tag of the secret under
/// the store's key), never by the typed name: every name that reaches one secret (a
/// `secret=` without `${USER}`, a case-insensitive directory or command) shares one
/// record, so one replay mark, one throttling and one `max_failures` count (R12, R14).
/// Records are created only for secrets an admin wrote, so trying names creates none
/// (R36).
///
/// The key is a synthetic uid in [`ENROLMENT_RECORD_UIDS`], 28 bits of the enrolment's
/// tag: nobody without the store's key can tell which secret a record belongs to. Two
/// enrolments share one with a chance of one in 2^28: they then share throttling, but
/// never a used code (marks are kept per enrolment in the record, R35), and never a
/// grace entry, because such records get no grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnrolmentRecord {
    /// The record's key, in [`ENROLMENT_RECORD_UIDS`].
    pub uid: crate::state::Uid,
}

impl EnrolmentRecord {
    /// The record of the enrolment `id` (stable for as long as the store keeps its key,
    /// under which `id` was derived).
    pub fn new(id: crate::state::EnrolmentId) -> Self {
        Self {
            uid: ENROLMENT_RECORD_UIDS.start() | (id.0 as u32 & 0x0fff_ffff),
        }
    }
}

/// Every uid an [`EnrolmentRecord`] can have: 0x9000_0000 to 0x9fff_ffff, in the upper
/// half of the 32-bit uid space, which systemd's uid documentation advises against using
/// for accounts (some tools mishandle uids of 2^31 and above) and which distributions do
/// not allocate; apart from [`STAND_IN_UIDS`], so such a record is never a stand-in, and
/// below `(uid_t)-2` and `(uid_t)-1`.
pub const ENROLMENT_RECORD_UIDS: std::ops::RangeInclusive<crate::state::Uid> =
    0x9000_0000..=0x9fff_ffff;

/// Why an account's uid cannot key its own record: it lies in [`STAND_IN_UIDS`] or
/// [`ENROLMENT_RECORD_UIDS`], where the local store keeps records of names without an
/// account. Such an account would share its record (failures, backoff, the
/// `max_failures=` count, replay marks' record) with strangers' wrong codes, so its
/// logins are denied instead, by the module and reported by `totp-state audit`. The
/// words name the range and the fix, for both. `None`: an ordinary uid.
pub fn reserved_uid(uid: crate::state::Uid) -> Option<String> {
    let (range, kind) = if STAND_IN_UIDS.contains(&uid) {
        (
            &STAND_IN_UIDS,
            "the stand-in records of names without an account",
        )
    } else if ENROLMENT_RECORD_UIDS.contains(&uid) {
        (
            &ENROLMENT_RECORD_UIDS,
            "the records of user= names without an account",
        )
    } else {
        return None;
    };
    Some(format!(
        "uid {uid} lies in {}..={}, the uids pam_totp reserves for {kind}: the account \
         would share that state record with other names' attempts, so its logins are \
         denied; give it a uid outside {}..={} and {}..={} (usermod -u)",
        range.start(),
        range.end(),
        STAND_IN_UIDS.start(),
        STAND_IN_UIDS.end(),
        ENROLMENT_RECORD_UIDS.start(),
        ENROLMENT_RECORD_UIDS.end(),
    ))
}

/// Consecutive failures from one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginFailures {
    pub key: OriginKey,
    pub failures: u32,
    /// Unix time of the last failure.
    pub last: u64,
    /// The numeric `PAM_RHOST` of the last failure, for the admin (`totp-state show`),
    /// as pam_faillock records it; the key stays the throttling identity.
    pub host: Option<IpAddr>,
}

/// An origin a code was accepted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownOrigin {
    pub key: OriginKey,
    pub last_success: u64,
}

/// A grace-period entry: a code was accepted from `host` at `when`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraceRecord {
    pub host: IpAddr,
    pub when: u64,
}

/// Everything throttling and grace remember about one user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub origins: Vec<OriginFailures>,
    pub known: Vec<KnownOrigin>,
    /// Theoretical arrival time of the per-user ceiling (GCRA), for attempts from known
    /// origins (`[0]`) and from all other origins (`[1]`). 0 = full budget.
    pub ceiling: [u64; 2],
    /// Consecutive failures from any origin (the optional `max_failures` hard cap).
    pub consecutive: u32,
    /// Backoff carried over from an earlier version's `PAM_TOTP_FAILURES` line: every
    /// origin waits until then.
    pub blocked_until: u64,
    /// GA `RATE_LIMIT` attempt times (only used when the secret file has the line).
    pub attempts: Vec<u64>,
    pub grace: Vec<GraceRecord>,
}

fn corrupt(m: &str) -> StoreError {
    StoreError::Corrupt(format!("throttling record: {m}"))
}

/// The ledger's own fields, on the record codec's reader.
impl Reader<'_> {
    fn ip(&mut self) -> Result<IpAddr, StoreError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        let v6 = std::net::Ipv6Addr::from(a);
        Ok(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
    }
    /// A presence byte (0 or 1), then 16 address bytes (zero when absent).
    fn host(&mut self) -> Result<Option<IpAddr>, StoreError> {
        match self.u8()? {
            0 => {
                if self.take(16)?.iter().any(|&b| b != 0) {
                    return Err(corrupt("absent host with an address"));
                }
                Ok(None)
            }
            1 => self.ip().map(Some),
            _ => Err(corrupt("bad host flag")),
        }
    }
    fn count(&mut self, max: usize) -> Result<usize, StoreError> {
        let n = usize::from(self.u8()?);
        if n > max {
            return Err(corrupt("list too long"));
        }
        Ok(n)
    }
}

/// An address as 16 bytes (IPv4 as IPv4-mapped IPv6).
fn ip_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl Ledger {
    /// Binary form: version, then each list as a one-byte count and fixed-size entries.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = vec![VERSION];
        o.push(self.origins.len().min(MAX_ORIGINS) as u8);
        for r in self.origins.iter().take(MAX_ORIGINS) {
            o.extend_from_slice(&r.key.0.to_le_bytes());
            o.extend_from_slice(&r.failures.to_le_bytes());
            o.extend_from_slice(&r.last.to_le_bytes());
            match r.host {
                Some(h) => {
                    o.push(1);
                    o.extend_from_slice(&ip_octets(h));
                }
                None => o.extend_from_slice(&[0; 17]),
            }
        }
        o.push(self.known.len().min(MAX_KNOWN) as u8);
        for k in self.known.iter().take(MAX_KNOWN) {
            o.extend_from_slice(&k.key.0.to_le_bytes());
            o.extend_from_slice(&k.last_success.to_le_bytes());
        }
        o.extend_from_slice(&self.ceiling[0].to_le_bytes());
        o.extend_from_slice(&self.ceiling[1].to_le_bytes());
        o.extend_from_slice(&self.consecutive.to_le_bytes());
        o.extend_from_slice(&self.blocked_until.to_le_bytes());
        o.push(self.attempts.len().min(MAX_ATTEMPTS) as u8);
        for t in self.attempts.iter().take(MAX_ATTEMPTS) {
            o.extend_from_slice(&t.to_le_bytes());
        }
        o.push(self.grace.len().min(MAX_GRACE) as u8);
        for g in self.grace.iter().take(MAX_GRACE) {
            o.extend_from_slice(&ip_octets(g.host));
            o.extend_from_slice(&g.when.to_le_bytes());
        }
        o
    }

    /// Inverse of [`Ledger::encode`]. An empty slice is "never written" (a record's first
    /// use); anything else must be exactly what encode writes.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader {
            b: bytes,
            what: "throttling record",
        };
        let with_hosts = match r.u8()? {
            VERSION => true,
            VERSION_WITHOUT_HOSTS => false,
            _ => return Err(corrupt("unknown version")),
        };
        let mut l = Self::default();
        for _ in 0..r.count(MAX_ORIGINS)? {
            let key = OriginKey(r.u64()?);
            let failures = r.u32()?;
            let last = r.u64()?;
            let host = if with_hosts { r.host()? } else { None };
            l.origins.push(OriginFailures {
                key,
                failures,
                last,
                host,
            });
        }
        for _ in 0..r.count(MAX_KNOWN)? {
            l.known.push(KnownOrigin {
                key: OriginKey(r.u64()?),
                last_success: r.u64()?,
            });
        }
        l.ceiling = [r.u64()?, r.u64()?];
        l.consecutive = r.u32()?;
        l.blocked_until = r.u64()?;
        for _ in 0..r.count(MAX_ATTEMPTS)? {
            l.attempts.push(r.u64()?);
        }
        for _ in 0..r.count(MAX_GRACE)? {
            let host = r.ip()?;
            l.grace.push(GraceRecord {
                host,
                when: r.u64()?,
            });
        }
        if !r.b.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(l)
    }

    /// The record an origin's failures are counted in.
    pub fn origin(&self, key: OriginKey) -> Option<&OriginFailures> {
        self.origins.iter().find(|r| r.key == key)
    }

    pub fn is_known(&self, key: OriginKey) -> bool {
        self.known.iter().any(|k| k.key == key)
    }

    /// Counts one failure from `key` (remote address `host`, when numeric) at `now`,
    /// forgetting the stalest origin when full.
    pub fn charge_origin(&mut self, key: OriginKey, host: Option<IpAddr>, now: u64) {
        let host = host.map(crate::addr::canonical);
        if let Some(r) = self.origins.iter_mut().find(|r| r.key == key) {
            r.failures = r.failures.saturating_add(1).min(1_000_000);
            r.last = now;
            r.host = host.or(r.host);
            return;
        }
        if self.origins.len() >= MAX_ORIGINS
            && let Some(i) = (0..self.origins.len()).min_by_key(|&i| self.origins[i].last)
        {
            self.origins.swap_remove(i);
        }
        self.origins.push(OriginFailures {
            key,
            failures: 1,
            last: now,
            host,
        });
    }

    pub fn clear_origin(&mut self, key: OriginKey) {
        self.origins.retain(|r| r.key != key);
    }

    /// Remembers `key` as an origin the user logged in from.
    pub fn remember_known(&mut self, key: OriginKey, now: u64) {
        if let Some(k) = self.known.iter_mut().find(|k| k.key == key) {
            k.last_success = now;
            return;
        }
        if self.known.len() >= MAX_KNOWN
            && let Some(i) = (0..self.known.len()).min_by_key(|&i| self.known[i].last_success)
        {
            self.known.swap_remove(i);
        }
        self.known.push(KnownOrigin {
            key,
            last_success: now,
        });
    }

    /// GA's grace slot update: the entry for this host, else a free slot, else the oldest.
    pub fn record_grace(&mut self, host: IpAddr, now: u64) {
        let host = crate::addr::canonical(host);
        if let Some(g) = self.grace.iter_mut().find(|g| g.host == host) {
            g.when = now;
            return;
        }
        if self.grace.len() >= MAX_GRACE
            && let Some(i) = (0..self.grace.len()).min_by_key(|&i| self.grace[i].when)
        {
            self.grace.swap_remove(i);
        }
        self.grace.push(GraceRecord { host, when: now });
    }

    /// The latest time stored anywhere in the throttling records.
    pub fn latest_time(&self) -> u64 {
        let o = self.origins.iter().map(|r| r.last);
        let k = self.known.iter().map(|k| k.last_success);
        let a = self.attempts.iter().copied();
        let g = self.grace.iter().map(|g| g.when);
        o.chain(k)
            .chain(a)
            .chain(g)
            .chain([self.blocked_until])
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Ledger {
        let mut l = Ledger::default();
        for i in 0..40u64 {
            l.charge_origin(
                OriginKey(i),
                Some(IpAddr::from([192, 0, 2, i as u8])),
                1000 + i,
            );
            l.remember_known(OriginKey(i), 2000 + i);
            l.record_grace(IpAddr::from([10, 0, 0, i as u8]), 3000 + i);
        }
        l.ceiling = [5, 6];
        l.consecutive = 7;
        l.blocked_until = 8;
        l.attempts = (0..MAX_ATTEMPTS as u64).collect();
        l.record_grace("2001:db8::1".parse().unwrap(), 9);
        l
    }

    fn store_key(b: u8) -> StoreKey {
        StoreKey::new([b; crate::state::STORE_KEY_LEN])
    }

    #[test]
    fn stand_in_uids_are_stable_and_bounded() {
        let k = store_key(1);
        assert_eq!(
            StandIn::new(&k, b"nosuchuser"),
            StandIn::new(&k, b"nosuchuser")
        );
        let all: std::collections::BTreeSet<u32> = (0..20_000)
            .map(|i| StandIn::new(&k, format!("n{i}").as_bytes()).uid)
            .collect();
        assert!(all.len() <= 4096 && all.len() > 4000);
        assert!(all.iter().all(|&u| STAND_IN_UIDS.contains(&u)));
    }

    /// An enrolment's record follows the enrolment's tag, so it is stable per store key
    /// and secret, differs between keys, and its range is apart from the stand-ins'.
    #[test]
    fn enrolment_records_follow_the_enrolment_and_are_apart_from_stand_ins() {
        use crate::gafile::GaFile;
        use crate::verify::enrolment_of;
        let (a, b) = (store_key(1), store_key(2));
        let file =
            GaFile::parse(b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n").expect("a GA file");
        let other =
            GaFile::parse(b"KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU\n\" TOTP_AUTH\n").expect("a GA file");
        let rec = |f: &GaFile, k: &StoreKey| {
            EnrolmentRecord::new(enrolment_of(f, k).expect("an enrolment"))
        };
        assert_eq!(rec(&file, &a), rec(&file, &a));
        assert_ne!(rec(&file, &a), rec(&file, &b));
        assert_ne!(rec(&file, &a), rec(&other, &a));
        assert!(
            ENROLMENT_RECORD_UIDS.end() < STAND_IN_UIDS.start()
                || ENROLMENT_RECORD_UIDS.start() > STAND_IN_UIDS.end()
        );
        // Neither `(uid_t)-1` (no uid) nor `(uid_t)-2` is in it.
        assert!(
            !ENROLMENT_RECORD_UIDS.contains(&u32::MAX)
                && !ENROLMENT_RECORD_UIDS.contains(&(u32::MAX - 1))
        );
        for id in [0, u64::MAX, 0x8000_0fff, 0x1234_5678_9abc_def0] {
            let uid = EnrolmentRecord::new(crate::state::EnrolmentId(id)).uid;
            assert!(ENROLMENT_RECORD_UIDS.contains(&uid), "{uid:#x}");
            assert!(!STAND_IN_UIDS.contains(&uid), "{uid:#x}");
        }
    }

    /// An account's uid in either reserved range is named, with the range and the fix;
    /// the uids either side of each range are ordinary.
    #[test]
    fn reserved_uids_are_the_synthetic_record_ranges_and_nothing_else() {
        for uid in [
            *STAND_IN_UIDS.start(),
            *STAND_IN_UIDS.end(),
            *ENROLMENT_RECORD_UIDS.start(),
            0x9abc_def0,
            *ENROLMENT_RECORD_UIDS.end(),
        ] {
            let why = reserved_uid(uid).expect("reserved");
            assert!(why.contains(&format!("uid {uid} ")), "{why}");
            assert!(why.contains("usermod -u"), "{why}");
        }
        assert!(reserved_uid(0x8000_0000).is_some_and(|w| w.contains("2147483648..=2147487743")));
        assert!(reserved_uid(0x9000_0001).is_some_and(|w| w.contains("user= names")));
        for uid in [
            0,
            1000,
            65534,
            STAND_IN_UIDS.start() - 1,
            STAND_IN_UIDS.end() + 1,
            ENROLMENT_RECORD_UIDS.start() - 1,
            ENROLMENT_RECORD_UIDS.end() + 1,
            u32::MAX - 1,
            u32::MAX,
        ] {
            assert_eq!(reserved_uid(uid), None, "{uid:#x}");
        }
        // Every record a name without an account can be kept in is reserved.
        let key = store_key(1);
        assert!(reserved_uid(StandIn::new(&key, b"ghost").uid).is_some());
        let id = crate::state::EnrolmentId(0x1234_5678_9abc_def0);
        assert!(reserved_uid(EnrolmentRecord::new(id).uid).is_some());
    }

    /// The record a name is charged to depends on the store's key: with another key
    /// most names land elsewhere, so no one without the key can pick a decoy that shares
    /// a name's record.
    #[test]
    fn the_stand_in_record_depends_on_the_store_key() {
        let (a, b) = (store_key(1), store_key(2));
        let names: Vec<String> = (0..256).map(|i| format!("ghost{i}")).collect();
        let moved = names
            .iter()
            .filter(|n| StandIn::new(&a, n.as_bytes()).uid != StandIn::new(&b, n.as_bytes()).uid)
            .count();
        // 256 names, each staying put with probability 1/4096.
        assert!(moved >= 250, "{moved}");
        let origin = OriginKey(7);
        let (na, nb) = (StandIn::new(&a, b"ghost"), StandIn::new(&b, b"ghost"));
        assert_ne!(na.origin(origin), nb.origin(origin));
    }

    /// Two names in one stand-in record never share an origin entry, so a decoy's
    /// backoff is not the probed name's; one name keeps its own entry per origin.
    #[test]
    fn names_sharing_a_stand_in_record_have_their_own_origin_entries() {
        let k = store_key(3);
        let probed = StandIn::new(&k, b"ghost");
        let decoy = (0..100_000)
            .map(|i| format!("decoy{i}"))
            .map(|n| StandIn::new(&k, n.as_bytes()))
            .find(|d| d.uid == probed.uid)
            .expect("a name in the same record");
        let (o1, o2) = (OriginKey(1), OriginKey(2));
        assert_ne!(decoy.origin(o1), probed.origin(o1));
        assert_eq!(probed.origin(o1), probed.origin(o1));
        assert_ne!(probed.origin(o1), probed.origin(o2));
        assert_ne!(probed.origin(o1), o1);
    }

    #[test]
    fn round_trips_and_stays_bounded() {
        for l in [Ledger::default(), full()] {
            let e = l.encode();
            assert!(e.len() < crate::state::MAX_ENCODED_LEN / 2, "{}", e.len());
            assert_eq!(Ledger::decode(&e), Ok(l));
        }
        assert_eq!(full().origins.len(), MAX_ORIGINS);
        assert_eq!(full().known.len(), MAX_KNOWN);
        assert_eq!(full().grace.len(), MAX_GRACE);
    }

    #[test]
    fn eviction_forgets_the_stalest() {
        let l = full();
        assert!(l.origin(OriginKey(0)).is_none());
        assert!(l.origin(OriginKey(39)).is_some());
        assert!(l.is_known(OriginKey(39)) && !l.is_known(OriginKey(0)));
    }

    #[test]
    fn decode_refuses_garbage() {
        let e = full().encode();
        for cut in [1, 2, e.len() / 2, e.len() - 1] {
            assert!(Ledger::decode(&e[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = e.clone();
        longer.push(0);
        assert!(Ledger::decode(&longer).is_err());
        assert!(Ledger::decode(&[2]).is_err());
        assert!(Ledger::decode(&[1, 200]).is_err());
    }

    #[test]
    fn origins_are_keyed_by_host_then_tty_and_ipv6_by_its_64() {
        let k = |r: Option<&str>, t: Option<&str>| {
            OriginKey::from_items(r.map(str::as_bytes), t.map(str::as_bytes))
        };
        assert_eq!(k(Some("192.0.2.1"), Some("a")), k(Some("192.0.2.1"), None));
        assert_ne!(k(Some("192.0.2.1"), None), k(Some("192.0.2.2"), None));
        assert_eq!(
            k(Some("2001:db8::1"), None),
            k(Some("2001:db8::ffff"), None)
        );
        assert_ne!(
            k(Some("2001:db8::1"), None),
            k(Some("2001:db8:0:1::1"), None)
        );
        // sshd writes a link-local peer with its zone id: still an address and its /64.
        assert_eq!(k(Some("fe80::1%eth0"), None), k(Some("fe80::2%eth0"), None));
        assert_eq!(k(Some("fe80::1%eth0"), None), k(Some("fe80::9"), None));
        assert_eq!(k(Some(""), Some("/dev/pts/1")), k(None, Some("/dev/pts/1")));
        assert_ne!(k(None, Some("/dev/pts/1")), k(None, Some("/dev/pts/2")));
        assert_ne!(k(None, None), k(None, Some("/dev/pts/2")));
        assert_eq!(
            k(Some("::ffff:192.0.2.1"), None),
            k(Some("192.0.2.1"), None)
        );
    }

    /// A host name is never the address its bytes spell: `a.io` is the bytes of
    /// 97.46.105.111, and `abcdefgh` those of the /64 6162:6364:6566:6768::/64.
    #[test]
    fn host_names_and_addresses_have_different_origin_keys() {
        let k = |r: &str| OriginKey::from_items(Some(r.as_bytes()), None);
        assert_ne!(k("97.46.105.111"), k("a.io"));
        assert_ne!(k("6162:6364:6566:6768::1"), k("abcdefgh"));
        // A tty of the same bytes is another origin too.
        assert_ne!(
            k("a.io"),
            OriginKey::from_items(None, Some(b"a.io".as_slice()))
        );
    }

    /// Addresses keep the keys earlier versions stored (no backoff or known origin of an
    /// address is forgotten on upgrade): the old formula, written out.
    #[test]
    fn address_origin_keys_are_unchanged_from_earlier_versions() {
        let old = |bytes: &[u8]| {
            let d = Sha256::new()
                .chain_update(b"pam_totp origin v1\0rhost\0")
                .chain_update(bytes)
                .finalize();
            OriginKey(u64::from_le_bytes([
                d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7],
            ]))
        };
        let k = |r: &str| OriginKey::from_items(Some(r.as_bytes()), None);
        assert_eq!(k("192.0.2.1"), old(&[192, 0, 2, 1]));
        assert_eq!(k("2001:db8::1"), old(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0]));
        assert_ne!(k("example.org"), old(b"example.org"));
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn an_origins_last_address_round_trips_and_version_1_records_still_read() {
        let mut l = Ledger::default();
        l.charge_origin(OriginKey(7), Some("192.0.2.9".parse().unwrap()), 100);
        l.charge_origin(OriginKey(8), None, 101);
        l.charge_origin(OriginKey(9), Some("2001:db8::5".parse().unwrap()), 102);
        // A later failure without a numeric address keeps the last one known.
        l.charge_origin(OriginKey(7), None, 103);
        let back = Ledger::decode(&l.encode()).expect("decode");
        assert_eq!(back, l);
        let hosts: Vec<Option<String>> = back
            .origins
            .iter()
            .map(|o| o.host.map(|h| h.to_string()))
            .collect();
        assert_eq!(
            hosts,
            [Some("192.0.2.9".into()), None, Some("2001:db8::5".into())]
        );
        // What version 1 wrote: one origin, no address, then empty lists and zeros.
        let mut v1 = vec![1u8, 1];
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&3u32.to_le_bytes());
        v1.extend_from_slice(&100u64.to_le_bytes());
        v1.push(0);
        v1.extend_from_slice(&[0; 8 + 8 + 4 + 8]);
        v1.extend_from_slice(&[0, 0]);
        let old = Ledger::decode(&v1).expect("version 1");
        assert_eq!(old.origins.len(), 1);
        assert_eq!((old.origins[0].failures, old.origins[0].host), (3, None));
        // A flag byte that is neither 0 nor 1 is corruption, not an address.
        let mut bad = l.encode();
        bad[2 + 8 + 4 + 8] = 2;
        assert!(Ledger::decode(&bad).is_err());
    }
}
