//! Per-user mutable security state and the one operation every state store offers.
//!
//! The secret file is configuration; what changes on logins (replay marks, throttling,
//! grace-period records) lives in a state store keyed on the canonical uid. A store is
//! anything that can run [`StateStore::update`] atomically for one user: the local store
//! (a root-owned directory, `totp-os`) and the shared Redis/Valkey backend both do.
//!
//! The decision logic is never in a store: the caller passes a pure function from the
//! current record to the record to write, so every backend runs the same rules and a
//! network backend may retry the function (optimistic concurrency) without changing what
//! it decides. Stores only move opaque [`UserState`] values (encoded with
//! [`UserState::encode`]) and guarantee that two concurrent updates of one user never
//! both see the same old record.
//!
//! Replay marks belong to one enrolment (R35): a record keeps [`Marks`] for the last
//! [`MAX_ENROLMENTS`] secrets it has seen, each named by an [`EnrolmentId`], a keyed
//! fingerprint of the secret and its parameters under the store's [`StoreKey`].
//! Throttling ([`UserState::extra`]) belongs to the account and survives re-enrolment.

use std::fmt;

use hmac::{KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The canonical uid (NSS `pw_uid`) that keys every record.
pub type Uid = u32;

/// Length of a [`StoreKey`].
pub const STORE_KEY_LEN: usize = 32;

/// The store's own random key: fingerprints of enrolments and used scratch codes are
/// HMACs under it, so a record read on its own (a backup, a dump of one key, the admin
/// tool's output) cannot be used to test guesses of a secret or a scratch code. Kept
/// beside the records by each store (created once, never changed).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct StoreKey([u8; STORE_KEY_LEN]);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

impl StoreKey {
    pub fn new(bytes: [u8; STORE_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key as stored; refuses anything of another length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, StoreError> {
        let b: [u8; STORE_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("store key of the wrong length".to_owned()))?;
        Ok(Self(b))
    }

    pub fn as_bytes(&self) -> &[u8; STORE_KEY_LEN] {
        &self.0
    }

    /// HMAC-SHA256 of the parts (each length-prefixed, so no two lists collide),
    /// truncated to 64 bits.
    pub fn tag(&self, parts: &[&[u8]]) -> u64 {
        #[cfg(feature = "test-hmac-count")]
        crate::hmac_count::count_tag();
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for p in parts {
            mac.update(&(p.len() as u64).to_le_bytes());
            mac.update(p);
        }
        let out = mac.finalize().into_bytes();
        let mut b = [0u8; 8];
        b.copy_from_slice(&out[..8]);
        u64::from_le_bytes(b)
    }
}

/// What a store says about itself before an attempt: its [`StoreKey`], and since when
/// it holds everything that was written to it (R34).
///
/// A store that can lose its data set (a Redis restart without persistence, a failover
/// to a replica that missed writes, a snapshot restore) keeps this beside the records,
/// written once. When it is missing the data set was lost (or never existed): the store
/// recreates it with `complete_since` = now, and every TOTP step up to then (plus what
/// the window reaches ahead) counts as used — the store's analogue of the boot floor.
/// A lost record then never reads as "nothing was used".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreContext {
    pub key: StoreKey,
    /// Unix time since which the store is complete; 0 for a store that has never lost
    /// anything (the local store, a shared store its admin initialised).
    pub complete_since: u64,
}

/// Encoded length of a [`StoreContext`].
pub const CONTEXT_LEN: usize = 4 + 8 + STORE_KEY_LEN;
const CONTEXT_MAGIC: &[u8; 4] = b"PTK1";

impl StoreContext {
    /// `PTK1`, `complete_since` (u64 LE), the key.
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(CONTEXT_LEN));
        out.extend_from_slice(CONTEXT_MAGIC);
        out.extend_from_slice(&self.complete_since.to_le_bytes());
        out.extend_from_slice(&self.key.0);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("the store's key record is damaged".to_owned());
        if bytes.len() != CONTEXT_LEN || &bytes[..4] != CONTEXT_MAGIC {
            return Err(bad());
        }
        let mut since = [0u8; 8];
        since.copy_from_slice(&bytes[4..12]);
        Ok(Self {
            key: StoreKey::from_slice(&bytes[12..]).map_err(|_| bad())?,
            complete_since: u64::from_le_bytes(since),
        })
    }
}

/// Names one enrolment (secret, mode, algorithm, digits, step) without revealing it:
/// a [`StoreKey::tag`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnrolmentId(pub u64);

/// Most enrolments a record keeps marks for (latest first); an older one is forgotten.
pub const MAX_ENROLMENTS: usize = 4;
/// Most used scratch codes recorded for one enrolment (GA writes at most 10).
pub const MAX_USED_SCRATCH: usize = 16;

/// The replay marks of one enrolment, in units that do not depend on the step size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// TOTP: unix time at which the last accepted code's step ended; a code of a step
    /// starting before it is used.
    pub totp_until: Option<u64>,
    /// HOTP: the highest counter accepted.
    pub hotp: Option<u64>,
    /// Used scratch codes, as [`StoreKey::tag`]s (never the code).
    pub scratch: Vec<u64>,
}

impl Marks {
    /// The last used TOTP step for a step size, if any.
    pub fn last_totp_step(&self, step_secs: u64) -> Option<u64> {
        let step = step_secs.max(1);
        self.totp_until.map(|u| (u / step).saturating_sub(1))
    }

    fn is_empty(&self) -> bool {
        self.totp_until.is_none() && self.hotp.is_none() && self.scratch.is_empty()
    }
}

/// Marks written by version 1 of the record, before marks were bound to an enrolment:
/// a TOTP step of whatever step size the file had, and an HOTP counter. They are the
/// marks of every enrolment that has none of its own: the first enrolment to bind marks
/// after the upgrade starts from them, and they are kept for the others (which may be
/// the enrolment that wrote them), so no enrolment's codes at or below them work again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegacyMarks {
    pub last_step: Option<u64>,
    pub hotp: Option<u64>,
}

/// Everything a store keeps for one user. Fields are filled in by the verification
/// logic; a store never interprets them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserState {
    /// Marks per enrolment, the latest first, at most [`MAX_ENROLMENTS`].
    pub marks: Vec<(EnrolmentId, Marks)>,
    /// Marks of a version-1 record, for every enrolment without marks of its own;
    /// kept for good (they only ever refuse codes at or below them).
    pub legacy: Option<LegacyMarks>,
    /// Opaque throttling and grace records owned by the verification logic
    /// (per-origin backoff, per-user ceiling, grace entries). Kept as one encoded
    /// blob so stores need not change when the throttling rules do.
    pub extra: Vec<u8>,
}

impl UserState {
    /// The marks of `id`, if the record has any.
    pub fn marks_of(&self, id: EnrolmentId) -> Option<&Marks> {
        self.marks.iter().find(|(e, _)| *e == id).map(|(_, m)| m)
    }

    /// The marks of the enrolment used last.
    pub fn latest(&self) -> Option<&Marks> {
        self.marks.first().map(|(_, m)| m)
    }

    /// The record with `id`'s marks replaced by `marks` and moved to the front; the
    /// oldest enrolment beyond [`MAX_ENROLMENTS`] is forgotten. Legacy marks stay: the
    /// enrolment that binds marks first need not be the one that wrote them, and an
    /// enrolment with none of its own (or forgotten) is still held to them (R34, R35).
    pub fn with_marks(&self, id: EnrolmentId, marks: Marks) -> Self {
        let mut next = self.clone();
        next.marks.retain(|(e, _)| *e != id);
        if !marks.is_empty() {
            next.marks.insert(0, (id, marks));
        }
        next.marks.truncate(MAX_ENROLMENTS);
        next
    }

    /// The record an admin's reset leaves ([`StateStore::reset`]): every throttling and
    /// grace record gone ([`UserState::extra`]: failures, backoff, lockout, the guess
    /// ceiling, known origins, grace entries), the replay marks of every enrolment kept,
    /// used scratch codes and HOTP counters as they are (R34, R35). A secret file
    /// served unchanged still lists the scratch codes it used, and only these marks say
    /// they were used: a reset that dropped them would reopen them on every host.
    ///
    /// The one exception is a TOTP mark no login would honour: later than
    /// [`reset_lowers_after`] gives for `cap`, beyond every `TIME_SKEW` lead the module
    /// accepts plus its clock-lag allowance. No code accepted at its own time sets one
    /// there, only a clock that was far ahead; the module refuses it as a clock fault,
    /// naming this reset. It is lowered to `cap` (see [`reset_mark_cap`]), so every step
    /// up to then still counts as used. A mark closer than that is kept whatever it is
    /// dated: a phone ahead of the clock (a `TIME_SKEW` the module honours) sets the mark
    /// that far ahead, and lowering it would make the codes just typed valid again.
    /// `None` (the clock cannot be trusted) lowers nothing. With `clock_fault` (the
    /// admin's `totp-state reset --clock-fault`, which the module's clock-fault log line
    /// names), every mark after `cap` is lowered to it: the admin says the clock was
    /// wrong when the mark was set, which the store cannot tell from a phone ahead.
    /// Also returns whether a mark was lowered.
    ///
    /// A version-1 mark is a step of the file's `STEP_SIZE`, which the record does not
    /// hold: read at [`ResetHow::legacy_step_secs`] when the admin tool found the file,
    /// else at the shortest step any file may have (see below).
    pub fn lifted(&self, cap: Option<u64>, how: ResetHow) -> (UserState, bool) {
        let clock_fault = how.clock_fault;
        let mut next = self.clone();
        next.extra.clear();
        let mut lowered = false;
        let Some(cap) = cap else {
            return (next, false);
        };
        let beyond = if clock_fault {
            cap
        } else {
            reset_lowers_after(cap)
        };
        for (_, m) in &mut next.marks {
            if m.totp_until.is_some_and(|u| u > beyond) {
                m.totp_until = Some(cap);
                lowered = true;
            }
        }
        // The first login reads a version-1 mark at the file's step. With that step
        // unknown it is lowered only when it lies beyond even at the shortest step
        // (every step size puts it later), and then to the cap at the shortest step:
        // any longer step reads the lowered mark later still, so no code used under it
        // ever counts as unused. Read at the default 30 s instead, a file of 10-s steps
        // had its mark lowered to a third of the clock, reopening every code it had
        // used. Lowered to the first step boundary at or after the cap, never before.
        //
        // Read at the file's step beyond anything a login honours, the mark may not be
        // that enrolment's (written at a shorter step; `Version1MarkNotApplied` in the
        // verify warnings), and lowering it would reopen, at its writer's step, the codes
        // it guards. It is kept: logins set it aside when a shorter step reads it near
        // the clock, and otherwise deny as a clock fault naming the reset that forgets it.
        if how.forget_version_1 {
            next.legacy = None;
        }
        if let Some(legacy) = &mut next.legacy {
            let known = how.legacy_step_secs.is_some();
            let step = how
                .legacy_step_secs
                .unwrap_or(crate::gafile::SHORTEST_STEP_SECS)
                .max(1);
            let until = |s: u64| s.saturating_add(1).saturating_mul(step);
            let honoured = |s: u64| !known || until(s) <= reset_lowers_after(cap);
            if legacy
                .last_step
                .is_some_and(|s| until(s) > beyond && honoured(s))
            {
                legacy.last_step = Some(cap.div_ceil(step).saturating_sub(1));
                lowered = true;
            }
        }
        (next, lowered)
    }

    /// After a reset at `cap` ([`UserState::lifted`]) that did not know the file's step
    /// ([`ResetHow::legacy_step_secs`] `None`): whether the version-1 TOTP mark it kept
    /// still lies beyond what the reset keeps (with `clock_fault`, beyond `cap`) when
    /// read at GA's default step, which most files have. A login at that step refuses it
    /// as a clock fault, and a mark lowered at the shortest step reads that far ahead at
    /// every longer one: only a reset that knows the step can settle it.
    pub fn legacy_mark_beyond(&self, cap: Option<u64>, clock_fault: bool) -> bool {
        let (Some(cap), Some(step)) = (cap, self.legacy.and_then(|l| l.last_step)) else {
            return false;
        };
        let beyond = if clock_fault {
            cap
        } else {
            reset_lowers_after(cap)
        };
        // Beyond what logins honour, a login at that step does not apply it (see
        // [`UserState::lifted`]): nothing to settle.
        let default_step = u64::from(crate::gafile::DEFAULT_STEP_SECS);
        let until = step.saturating_add(1).saturating_mul(default_step);
        until > beyond && until <= reset_lowers_after(cap)
    }

    /// Whether losing this record would lose something that is recorded nowhere else
    /// (an HOTP counter, a used scratch code): such records never expire.
    pub fn holds_counters(&self) -> bool {
        self.legacy.is_some_and(|l| l.hotp.is_some())
            || self
                .marks
                .iter()
                .any(|(_, m)| m.hotp.is_some() || !m.scratch.is_empty())
    }
}

/// What an admin's reset may lower ([`UserState::lifted`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetHow {
    /// `totp-state reset --clock-fault`: the admin says the clock was wrong.
    pub clock_fault: bool,
    /// The `STEP_SIZE` of the account's secret file as a login reads it, when the admin
    /// tool could read it: the unit of a version-1 record's unbound mark.
    pub legacy_step_secs: Option<u64>,
    /// `totp-state reset --forget-version-1-marks`: the admin says every enrolment
    /// since the upgrade is new (a new secret or HOTP token), so a version-1 record's
    /// marks, which no enrolment can be told apart by, guard nothing any more.
    pub forget_version_1: bool,
}

/// What the update function asks the store to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Leave the record as it is.
    Nothing,
    /// Write; losing it on power loss is acceptable (throttling counters).
    Lazy(UserState),
    /// Write and make it durable before returning (a consumed code).
    Durable(UserState),
}

/// Why a store could not do what was asked. The module denies on every variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached in time (server down, lock deadline, timeout).
    Unavailable(String),
    /// The stored record is corrupt, hostile or from an unknown version.
    Corrupt(String),
    /// The store refused the write or the connection (read-only or full file system,
    /// credentials, ACL, TLS, a file or socket that is not trusted, …).
    Refused(String),
    /// A shared store's record is missing and this host's clock and the server's differ
    /// too much to recreate it from either (R34): a clock fault, fixed by setting a clock.
    Clock(String),
    /// A user's write found the shared store's record (its key and floor) changed since
    /// [`StateStore::context`] read it (a data set lost, flushed or restored, the record
    /// recreated): nothing was written, and the decision used a floor that no longer
    /// holds. A login reads the context again and decides again with it (R34); anywhere
    /// else, and once a login may not decide again, the store counts as unavailable.
    StoreChanged(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "state store unavailable: {m}"),
            Self::Corrupt(m) => write!(f, "state record unusable: {m}"),
            Self::Refused(m) => write!(f, "state store refused: {m}"),
            Self::Clock(m) => write!(f, "clock fault: {m}"),
            // The store's own words, which say what changed: not a fault while the
            // login may decide again, so not "unavailable" either.
            Self::StoreChanged(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

/// The time bound of one answer ([`StateStore::answer_bound`]): every decision the
/// answer takes and every retry inside its updates start only while it [`fits`], so
/// deciding again cannot stretch a login past the store's documented bound (R36). The
/// store that made it implements it (the core reads no clock); a call already started
/// runs to its own bounds.
///
/// [`fits`]: AnswerBound::fits
pub trait AnswerBound {
    /// Whether one more decision (a read of the store record, then an update) or one
    /// more retry of an update may start.
    fn fits(&self) -> bool;
}

/// No bound beyond each call's own: a store without one (the local store, whose lock
/// deadline bounds every update), and every update outside an answer's decision (a
/// secret file's rewrite serialised through the store, the admin tool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unbounded;

impl AnswerBound for Unbounded {
    fn fits(&self) -> bool {
        true
    }
}

/// One small interface for every backend.
pub trait StateStore {
    /// Atomically: read `uid`'s record (default when absent), call `decide` on it and
    /// write what it returns. `decide` may be called more than once (a backend that
    /// retries after a concurrent change); only the result of the last call is written,
    /// and only if no other update of `uid` happened in between. A retry starts only
    /// while `bound` [`fits`](AnswerBound::fits) (and within the update's own bound).
    /// [`StoreError::StoreChanged`]: nothing was written because the store record
    /// changed.
    fn update_within(
        &mut self,
        uid: Uid,
        bound: &dyn AnswerBound,
        decide: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError>;

    /// [`StateStore::update_within`] with only the update's own bound.
    fn update(
        &mut self,
        uid: Uid,
        decide: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError> {
        self.update_within(uid, &Unbounded, decide)
    }

    /// The time bound of one answer, started now, before its first decision: every
    /// decision it takes ([`StoreError::StoreChanged`] asks for another) and every retry
    /// of their updates ([`StateStore::update_within`]) share it. What the login writes
    /// after its decision has each update's own bound ([`StateStore::update`]). A local
    /// store has no such bound.
    fn answer_bound(&self) -> Box<dyn AnswerBound> {
        Box::new(Unbounded)
    }

    /// The current record (default when absent), for read-only decisions such as the
    /// grace period and for the admin tool.
    fn read(&mut self, uid: Uid) -> Result<UserState, StoreError>;

    /// The admin tool's reset of `uid`'s record, as one atomic update: throttling and
    /// lockouts lifted, what was used kept ([`UserState::lifted`], with the cap
    /// [`reset_mark_cap`] gives for `now`, this host's clock; a shared store takes the
    /// later of it and its server's). A record that cannot be read (damaged, hostile, not
    /// a record) holds nothing that can be kept: it is removed, without being followed.
    /// Writes nothing when there is no record. `clock_fault`: see [`UserState::lifted`].
    fn reset(&mut self, uid: Uid, now: u64, clock_fault: bool) -> Result<Reset, StoreError> {
        let how = ResetHow {
            clock_fault,
            ..ResetHow::default()
        };
        self.reset_with(uid, now, how)
    }

    /// [`StateStore::reset`], told the file's step for a version-1 mark ([`ResetHow`]).
    fn reset_with(&mut self, uid: Uid, now: u64, how: ResetHow) -> Result<Reset, StoreError>;

    /// The store's key and completeness ([`StoreContext`]). When the store has none,
    /// `missing` says whether to create one (a random key) or to answer `None` (a
    /// probe). A store that cannot lose its data set without a reboot (the local one)
    /// is always complete since the beginning.
    fn context(&mut self, missing: Missing) -> Result<Option<StoreContext>, StoreError>;

    /// Tells the store the canonical user name of `uid`, before `update`, `read` or
    /// `reset` of it. A store shared by hosts keys records by that name (uids may
    /// differ between hosts; names are the fleet's identity); a host-local store keys
    /// by uid and ignores it.
    fn name_user(&mut self, _uid: Uid, _name: &str) {}

    /// Whether the last [`StateStore::context`] created the store record, and what it
    /// found about the clocks the floor was taken from (a shared store compares this
    /// host's with its server's), for the log. Taken once.
    fn take_recreation(&mut self) -> Option<Recreation> {
        None
    }

    /// A warning about calls that succeeded since last asked (a shared store passed over
    /// a server of its list before another served, and why), for the log. Taken once.
    fn take_note(&mut self) -> Option<String> {
        None
    }
}

/// What [`StateStore::reset`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reset {
    /// There was no record: nothing to lift.
    Absent,
    /// Throttling lifted, the replay marks kept; `lowered`: a TOTP mark ahead of the
    /// clock was lowered to it ([`UserState::lifted`]).
    Lifted { lowered: bool },
    /// The record could not be read (why): removed, and with it whatever it recorded as
    /// used, which nothing could read any more either.
    Removed(String),
}

impl Reset {
    /// The outcome of a reset that touched two records (a shared store's name record
    /// and the uid record of an earlier release): a removal is reported first, then a
    /// lift.
    pub fn and(self, other: Reset) -> Reset {
        match (self, other) {
            (Reset::Removed(why), _) | (_, Reset::Removed(why)) => Reset::Removed(why),
            (Reset::Lifted { lowered: a }, Reset::Lifted { lowered: b }) => {
                Reset::Lifted { lowered: a || b }
            }
            (l @ Reset::Lifted { .. }, Reset::Absent) | (Reset::Absent, l) => l,
        }
    }
}

/// Where a reset at `now` lowers a TOTP mark it lowers ([`UserState::lifted`]):
/// [`CLOCK_SLACK_SECS`] after `now`, which covers a code of the next step or two
/// accepted at `now` and the clocks of a fleet that NTP keeps together. `None` for a
/// clock before [`EARLIEST_CLOCK`] (a dead RTC): lowering marks to it would reopen every
/// code ever used.
///
/// [`CLOCK_SLACK_SECS`]: crate::policy::CLOCK_SLACK_SECS
pub fn reset_mark_cap(now: u64) -> Option<u64> {
    (now >= EARLIEST_CLOCK).then(|| now.saturating_add(crate::policy::CLOCK_SLACK_SECS))
}

/// The latest TOTP mark a reset whose [`reset_mark_cap`] is `cap` keeps: the latest any
/// login honours ([`crate::verify::latest_honoured_mark`]) at the reset's clock plus the
/// slack between a fleet's clocks, whatever the file's `TIME_SKEW` and step and the
/// module options (the longest lead any file gets), plus one step more: a mark is the
/// end of its step, the module judges the step's start.
pub fn reset_lowers_after(cap: u64) -> u64 {
    crate::verify::latest_honoured_mark(
        cap,
        crate::policy::DEFAULT_MAX_CLOCK_LAG_SECS,
        crate::verify::LONGEST_SKEW_LEAD_SECS,
    )
    .saturating_add(crate::verify::LONGEST_STEP_SECS)
}

/// A store record [`StateStore::context`] just created (see
/// [`StateStore::take_recreation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recreation {
    /// The clocks disagreed by more than [`crate::policy::CLOCK_SLACK_SECS`]: which was
    /// ahead, by how much, and which one the floor was taken from.
    pub clock_note: Option<String>,
}

/// The earliest clock reading from which a store record may be recreated (2023-01-01
/// UTC, before any release of this module). A host whose RTC battery died boots in 1970
/// and stays there until NTP syncs; a record "complete since 1970" written by it after a
/// loss would let every code used before the loss be used again, on every host (R34).
pub const EARLIEST_CLOCK: u64 = 1_672_531_200;

/// What [`StateStore::context`] does when the store has no context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Create it, complete since this unix time: `now` on a login (the data set may
    /// have been lost), 0 when an admin initialises a store never used before.
    Create { complete_since: u64 },
    /// Leave the store as it is (health probes, reports).
    Leave,
}

impl Missing {
    /// A missing record recreated complete since `now` (a login, `totp-state init`),
    /// or left missing when `now` is before [`EARLIEST_CLOCK`]: the caller then reports
    /// the clock instead of writing a floor that reopens used codes.
    pub fn recreate_at(now: u64) -> Missing {
        if now < EARLIEST_CLOCK {
            Missing::Leave
        } else {
            Missing::Create {
                complete_since: now,
            }
        }
    }
}

/// Format version of [`UserState::encode`]; version 1 (unbound marks) is still read.
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
/// Version 2 with a version-1 record's marks kept beside the bound ones.
const VERSION_3: u8 = 3;
/// Upper bound on an encoded record; anything larger is hostile.
pub const MAX_ENCODED_LEN: usize = 4096;

const HAS_TOTP: u8 = 1;
const HAS_HOTP: u8 = 2;

/// Reads an encoded record front to back, refusing a short one; shared by the
/// record's codec and the throttling ledger's (`crate::ledger`).
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    /// Names the record in the error ("state record", "throttling record").
    pub(crate) what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.b.len() < n {
            return Err(StoreError::Corrupt(format!("{}: truncated", self.what)));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

impl UserState {
    /// Compact binary form shared by every backend: version, the marks of each
    /// enrolment, extra.
    ///
    /// Legacy marks ([`LegacyMarks`]) choose the version: with no bound marks the
    /// record is written back as version 1 (readable by the release before, as
    /// before); beside bound marks as version 3 (version 2 with the legacy marks after
    /// the version byte), since version 2 has no place for them. Written as version 2
    /// they were lost, and codes under them worked again for every other enrolment.
    /// Only a record that holds legacy marks is ever written as version 3.
    pub fn encode(&self) -> Vec<u8> {
        let flags = |totp: bool, hotp: bool| {
            (if totp { HAS_TOTP } else { 0 }) | if hotp { HAS_HOTP } else { 0 }
        };
        let mut out = Vec::with_capacity(19 + 40 * self.marks.len() + self.extra.len());
        let legacy = self
            .legacy
            .filter(|l| l.last_step.is_some() || l.hotp.is_some());
        match legacy {
            Some(l) => {
                out.push(if self.marks.is_empty() {
                    VERSION_1
                } else {
                    VERSION_3
                });
                out.push(flags(l.last_step.is_some(), l.hotp.is_some()));
                out.extend_from_slice(&l.last_step.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&l.hotp.unwrap_or(0).to_le_bytes());
                if self.marks.is_empty() {
                    out.extend_from_slice(&self.extra);
                    return out;
                }
            }
            None => out.push(VERSION),
        }
        let marks = &self.marks[..self.marks.len().min(MAX_ENROLMENTS)];
        out.push(marks.len() as u8);
        for (id, m) in marks {
            out.extend_from_slice(&id.0.to_le_bytes());
            out.push(flags(m.totp_until.is_some(), m.hotp.is_some()));
            out.extend_from_slice(&m.totp_until.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&m.hotp.unwrap_or(0).to_le_bytes());
            let scratch = &m.scratch[..m.scratch.len().min(MAX_USED_SCRATCH)];
            out.push(scratch.len() as u8);
            for t in scratch {
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.extra);
        out
    }

    /// Inverse of [`UserState::encode`] (and of version 1's); refuses anything it did
    /// not write.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |m: &str| StoreError::Corrupt(m.to_owned());
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(corrupt("record too large"));
        }
        let mut r = Reader {
            b: bytes,
            what: "state record",
        };
        let version = r.u8().map_err(|_| corrupt("empty record"))?;
        let legacy = match version {
            VERSION_1 | VERSION_3 => {
                let flags = r.u8()?;
                if flags & !(HAS_TOTP | HAS_HOTP) != 0 {
                    return Err(corrupt("unknown record flags"));
                }
                let (step, hotp) = (r.u64()?, r.u64()?);
                let legacy = LegacyMarks {
                    last_step: (flags & HAS_TOTP != 0).then_some(step),
                    hotp: (flags & HAS_HOTP != 0).then_some(hotp),
                };
                if version == VERSION_1 {
                    return Ok(Self {
                        marks: Vec::new(),
                        legacy: (legacy != LegacyMarks::default()).then_some(legacy),
                        extra: r.b.to_vec(),
                    });
                }
                if legacy == LegacyMarks::default() {
                    return Err(corrupt("version 3 without legacy marks"));
                }
                Some(legacy)
            }
            VERSION => None,
            _ => return Err(corrupt("unknown record version")),
        };
        let n = usize::from(r.u8()?);
        if n > MAX_ENROLMENTS {
            return Err(corrupt("too many enrolments"));
        }
        if n == 0 && legacy.is_some() {
            return Err(corrupt("version 3 without bound marks"));
        }
        let mut marks = Vec::with_capacity(n);
        for _ in 0..n {
            let id = EnrolmentId(r.u64()?);
            let flags = r.u8()?;
            if flags & !(HAS_TOTP | HAS_HOTP) != 0 {
                return Err(corrupt("unknown record flags"));
            }
            let (until, hotp) = (r.u64()?, r.u64()?);
            let used = usize::from(r.u8()?);
            if used > MAX_USED_SCRATCH {
                return Err(corrupt("too many used scratch codes"));
            }
            let scratch = (0..used).map(|_| r.u64()).collect::<Result<_, _>>()?;
            if marks.iter().any(|(e, _)| *e == id) {
                return Err(corrupt("an enrolment recorded twice"));
            }
            marks.push((
                id,
                Marks {
                    totp_until: (flags & HAS_TOTP != 0).then_some(until),
                    hotp: (flags & HAS_HOTP != 0).then_some(hotp),
                    scratch,
                },
            ));
        }
        Ok(Self {
            marks,
            legacy,
            extra: r.b.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests;
