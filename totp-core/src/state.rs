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

use std::fmt;

/// The canonical uid (NSS `pw_uid`) that keys every record.
pub type Uid = u32;

/// Everything a store keeps for one user. Fields are filled in by the verification
/// logic; a store never interprets them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserState {
    /// Replay high-water mark: the highest TOTP step accepted so far.
    pub last_step: Option<u64>,
    /// The highest HOTP counter accepted so far.
    pub hotp_mark: Option<u64>,
    /// Opaque throttling and grace records owned by the verification logic
    /// (per-origin backoff, per-user ceiling, grace entries). Kept as one encoded
    /// blob so stores need not change when the throttling rules do.
    pub extra: Vec<u8>,
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
    /// The store refused the write (read-only or full file system, auth failure, …).
    Refused(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "state store unavailable: {m}"),
            Self::Corrupt(m) => write!(f, "state record unusable: {m}"),
            Self::Refused(m) => write!(f, "state store refused the write: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// One small interface for every backend.
pub trait StateStore {
    /// Atomically: read `uid`'s record (default when absent), call `decide` on it and
    /// write what it returns. `decide` may be called more than once (a backend that
    /// retries after a concurrent change); only the result of the last call is written,
    /// and only if no other update of `uid` happened in between.
    fn update(
        &mut self,
        uid: Uid,
        decide: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError>;

    /// The current record (default when absent), for read-only decisions such as the
    /// grace period and for the admin tool.
    fn read(&mut self, uid: Uid) -> Result<UserState, StoreError>;

    /// Forget everything about `uid` (the admin tool's reset).
    fn reset(&mut self, uid: Uid) -> Result<(), StoreError>;
}

/// Format version of [`UserState::encode`].
const VERSION: u8 = 1;
/// Upper bound on an encoded record; anything larger is hostile.
pub const MAX_ENCODED_LEN: usize = 4096;

impl UserState {
    /// Compact binary form shared by every backend: version, flags, marks, extra.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.extra.len());
        out.push(VERSION);
        let flags = u8::from(self.last_step.is_some()) | (u8::from(self.hotp_mark.is_some()) << 1);
        out.push(flags);
        out.extend_from_slice(&self.last_step.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.hotp_mark.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.extra);
        out
    }

    /// Inverse of [`UserState::encode`]; refuses anything it did not write.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |m: &str| StoreError::Corrupt(m.to_owned());
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(corrupt("record too large"));
        }
        let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
        if version != VERSION {
            return Err(corrupt("unknown record version"));
        }
        let (&flags, rest) = rest
            .split_first()
            .ok_or_else(|| corrupt("truncated record"))?;
        if flags & !0b11 != 0 {
            return Err(corrupt("unknown record flags"));
        }
        if rest.len() < 16 {
            return Err(corrupt("truncated record"));
        }
        let (marks, extra) = rest.split_at(16);
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&marks[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Ok(Self {
            last_step: (flags & 1 != 0).then(|| word(0)),
            hotp_mark: (flags & 2 != 0).then(|| word(1)),
            extra: extra.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        for s in [
            UserState::default(),
            UserState {
                last_step: Some(58_000_000),
                hotp_mark: None,
                extra: vec![1, 2, 3],
            },
            UserState {
                last_step: Some(0),
                hotp_mark: Some(u64::MAX),
                extra: Vec::new(),
            },
        ] {
            assert_eq!(UserState::decode(&s.encode()), Ok(s));
        }
    }

    #[test]
    fn decode_refuses_what_encode_never_writes() {
        assert!(UserState::decode(b"").is_err());
        assert!(UserState::decode(&[2, 0]).is_err());
        assert!(UserState::decode(&[1, 4]).is_err());
        assert!(UserState::decode(&[1, 0, 0]).is_err());
        assert!(UserState::decode(&vec![1; MAX_ENCODED_LEN + 1]).is_err());
    }
}
