//! The local state store: one small record file per uid in a directory only its owner
//! (root, on a normal host) can write.
//!
//! ## Layout
//!
//! `<dir>/<uid>` holds four fixed slots of [`SLOT_LEN`] bytes. Each slot is a header
//! (magic, sequence number, payload length, SHA-256 of all three and the payload,
//! truncated to 16 bytes) and an encoded [`UserState`]. The valid slot with the highest
//! sequence number is the record; a slot that fails its check is ignored. Slots 0 and 1
//! take durable writes, slots 2 and 3 lazy ones, each pair in turn, so a write only
//! ever overwrites the *older* slot of its kind:
//!
//! - a process killed in the middle of a write leaves the previous record readable;
//! - a lazy write (no fsync) never overwrites the latest durable record, so after a
//!   power loss the newest record on disk carries at least the last durable replay
//!   mark (every record carries the marks forward).
//!
//! A lazy write is one `pwrite`, a durable one a `pwrite` and an `fdatasync` (the module
//! writes used TOTP codes lazily when it knows the boot time; see
//! `totp_core::verify::Attempt::boot_time`); a throttled attempt writes nothing.
//!
//! ## One name, one file
//!
//! The lock is `flock` on the record file itself, taken with a deadline, so it protects
//! the record only while the record's name leads to the locked file. A login never takes
//! a name away: a new record is built where no other login can open it (`O_TMPFILE`, or
//! a random temporary name where the file system has none), given mode 0600 and all its
//! blocks, and only then linked under its name without replacing one (a racing login's
//! record that took the name first is opened instead); a record that cannot be built is
//! dropped unnamed. Once locked, a login checks that the name still leads to the file it
//! locked (an admin may have removed it) and opens again if not, so a used code's mark
//! never goes into a file no later login opens (R12, R16).
//!
//! ## Hostile entries
//!
//! Nothing is followed: a symlink anywhere in the directory path or as the record is
//! refused, as are FIFOs, devices, directories, records owned by anyone but the
//! directory's owner, group/other permissions, hard links, and records larger than four
//! slots. A record whose slots all fail their check is corrupt. Each of these is a
//! [`StoreError`] the module turns into a denial and a log line; [`StateDir::reset`]
//! (the admin tool) removes such an entry without following it, and empties a corrupt
//! record (a readable one keeps its replay marks through a reset).
//!
//! The directory is created when missing (as `pam_faillock` does), mode 0700, with
//! missing parents 0755, all owned by the calling process's effective uid. A
//! directory of the owner's found without one of the owner's bits (a creator died
//! before its chmod) gets them back; see `StateDir::lacks_owner_bits`.
//!
//! ## The store key
//!
//! `<dir>/store.key` holds the store's random [`StoreKey`] (32 bytes, mode 0600, the
//! directory's owner, checked like a record). It is written once, completely and
//! fsynced under a temporary name and then linked into place (a racing login reads the
//! winner's), so no login ever sees half a key. Removing it unbinds every record's
//! marks from its enrolment, like a reset of the replay marks of every user.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use libc::uid_t;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag, OpenHow, RenameFlags, ResolveFlag};
use nix::sys::stat::{self, FchmodatFlags, FileStat, Mode, SFlag};
use nix::sys::statvfs::{self, FsFlags};
use nix::unistd::{self, UnlinkatFlags};
use sha2::{Digest, Sha256};
use totp_core::state::{
    AnswerBound, Missing, Reset, ResetHow, STORE_KEY_LEN, StateStore, StoreContext, StoreError,
    StoreKey, Uid, UserState, Write, reset_mark_cap,
};

use crate::fault::{self, FaultPoint};

/// Where root keeps the records unless `state_dir=` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pam_totp/state";
/// Bytes per slot; a record never needs more than a fraction of it.
pub const SLOT_LEN: usize = 4096;
const SLOTS: usize = 4;
/// Largest acceptable record file.
pub const MAX_FILE_LEN: usize = SLOT_LEN * SLOTS;
const MAGIC: &[u8; 4] = b"PTS1";
const HEADER_LEN: usize = 4 + 8 + 4 + 16;
/// The store key's file name (never a uid, so never a record's).
pub const KEY_FILE: &str = "store.key";
const LOCK_PAUSE_MIN: Duration = Duration::from_millis(1);
const LOCK_PAUSE_MAX: Duration = Duration::from_millis(20);
/// Opens of one record before a login gives up on a name that keeps changing.
const OPEN_TRIES: usize = 3;

/// A state directory; opened (and created if missing) on first use.
pub struct StateDir {
    path: PathBuf,
    owner: uid_t,
    lock_timeout: Duration,
    dir: Option<OwnedFd>,
}

fn errno_text(e: Errno) -> String {
    format!("{} ({e:?})", e.desc())
}

/// Maps an OS error to the store's error kinds: anything that says "this file system
/// will not take the write" is a refusal, the rest an unavailable store.
fn os_error(what: &str, e: Errno) -> StoreError {
    // The store's files are far below any file system's size limit: EFBIG is the
    // process's own RLIMIT_FSIZE, which every write checks first (crate::fsize).
    let m = if e == Errno::EFBIG {
        format!("{what}: {}", crate::fsize::REFUSED)
    } else {
        format!("{what}: {}", errno_text(e))
    };
    match e {
        Errno::EROFS
        | Errno::ENOSPC
        | Errno::EDQUOT
        | Errno::EACCES
        | Errno::EPERM
        | Errno::EIO
        | Errno::EFBIG => StoreError::Refused(m),
        _ => StoreError::Unavailable(m),
    }
}

fn io_error(what: &str, e: &std::io::Error) -> StoreError {
    os_error(what, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn kind_name(st: &FileStat) -> &'static str {
    match kind(st) {
        SFlag::S_IFLNK => "a symlink",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        // A file where the walk to the store wants a directory.
        SFlag::S_IFREG => "a regular file",
        _ => "not a regular file",
    }
}

/// A slot that passed its check: where it is and how new it is, which is what the
/// writer needs to pick the slot it may overwrite.
struct Slot {
    index: usize,
    seq: u64,
}

/// What a record file holds: its valid slots and the state of the newest one (the
/// default state for a file that was never written or was reset).
struct Record {
    slots: Vec<Slot>,
    state: UserState,
}

fn digest(seq: u64, payload: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(seq.to_le_bytes());
    h.update((payload.len() as u32).to_le_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// A slot whose header and checksum pass: where it is, how new it is, and what its
/// payload decodes to. `None` for a slot never written or caught half-written.
fn parse_slot(index: usize, bytes: &[u8]) -> Option<(Slot, Result<UserState, StoreError>)> {
    let start = index * SLOT_LEN;
    let slot = bytes.get(start..bytes.len().min(start + SLOT_LEN))?;
    if slot.len() < HEADER_LEN || &slot[..4] != MAGIC {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&slot[4..12]);
    let seq = u64::from_le_bytes(seq);
    let mut len = [0u8; 4];
    len.copy_from_slice(&slot[12..16]);
    let len = u32::from_le_bytes(len) as usize;
    let payload = slot.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
    if slot[16..32] != digest(seq, payload) {
        return None;
    }
    Some((Slot { index, seq }, UserState::decode(payload)))
}

/// The record in `bytes`, each slot checked once. Among slots with the same sequence
/// number the later one wins.
///
/// A slot that passes its checksum was written completely, so one whose payload does
/// not decode (a record of a newer release, after a downgrade) is never skipped for an
/// older slot when it is the newest: the older slot lacks the marks the newer release
/// recorded, and reading it would admit codes already used (R34). The record is refused
/// instead, as the shared stores refuse a record version they do not know.
fn parse_record(bytes: &[u8]) -> Result<Record, StoreError> {
    let mut slots = Vec::with_capacity(SLOTS);
    let mut newest: Option<(u64, Result<UserState, StoreError>)> = None;
    for (slot, state) in (0..SLOTS).filter_map(|i| parse_slot(i, bytes)) {
        if newest.as_ref().is_none_or(|(seq, _)| slot.seq >= *seq) {
            newest = Some((slot.seq, state));
        }
        // Kept for the writer even when undecodable: the next sequence number must
        // stay above every complete slot's.
        slots.push(slot);
    }
    let state = match newest {
        Some((_, Ok(state))) => state,
        Some((seq, Err(e))) => {
            return Err(StoreError::Corrupt(format!(
                "the newest slot of the state file (sequence {seq}) is complete but holds \
                 a record this release cannot read ({e}); written by a newer release? \
                 An older slot is not used instead, since it lacks the codes used since; \
                 run the release that wrote it, or reset the record (the scratch codes \
                 and HOTP counters it used since are forgotten)"
            )));
        }
        // No slot passes: fine for a file that was never written, corrupt otherwise.
        None if bytes.iter().any(|&b| b != 0) => {
            return Err(StoreError::Corrupt(
                "no slot of the state file passes its check".into(),
            ));
        }
        None => UserState::default(),
    };
    Ok(Record { slots, state })
}

/// For the reset of a record [`parse_record`] refuses: the newest slot this release
/// can decode, with every complete slot (so that the reset's write goes above them
/// all), and where that slot is. What a newer release recorded is lost either way; the
/// marks of the older slot (used scratch codes, HOTP counters) need not be lost with it.
fn readable_part(bytes: &[u8]) -> Option<(Record, usize)> {
    let mut slots = Vec::with_capacity(SLOTS);
    let mut best: Option<(u64, usize, UserState)> = None;
    for (slot, state) in (0..SLOTS).filter_map(|i| parse_slot(i, bytes)) {
        if let Ok(state) = state
            && best.as_ref().is_none_or(|(seq, _, _)| slot.seq >= *seq)
        {
            best = Some((slot.seq, slot.index, state));
        }
        slots.push(slot);
    }
    best.map(|(_, index, state)| (Record { slots, state }, index))
}

/// Where the reset of a record [`parse_record`] refuses writes: never over the slot
/// whose marks it keeps, which is the older of its durable pair when the slot it cannot
/// read is the other one. A write torn there by a crash would leave only the unreadable
/// slot, and the reset run again would find no marks left to keep.
fn reset_slot(slots: &[Slot], kept: usize) -> usize {
    match kept {
        0 | 1 => 1 - kept,
        _ => next_slot(slots, true),
    }
}

fn encode_slot(seq: u64, state: &UserState) -> Result<Vec<u8>, StoreError> {
    let payload = state.encode();
    if HEADER_LEN + payload.len() > SLOT_LEN {
        return Err(StoreError::Refused("record too large for a slot".into()));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&digest(seq, &payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The slot to write next: the older one of the pair for this kind of write.
fn next_slot(slots: &[Slot], durable: bool) -> usize {
    let pair = if durable { [0, 1] } else { [2, 3] };
    let seq_of = |i: usize| slots.iter().find(|s| s.index == i).map(|s| s.seq);
    match (seq_of(pair[0]), seq_of(pair[1])) {
        (None, _) => pair[0],
        (Some(_), None) => pair[1],
        (Some(a), Some(b)) => {
            if a <= b {
                pair[0]
            } else {
                pair[1]
            }
        }
    }
}

fn read_all(file: &File) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; MAX_FILE_LEN + 1];
    let filled = crate::safefile::read_at_most(file, &mut buf, 0)
        .map_err(|e| io_error("read state file", &e))?;
    if filled > MAX_FILE_LEN {
        return Err(StoreError::Corrupt("state file is too large".into()));
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Where [`StateDir::walk`] ended.
enum Walked {
    /// The store's directory.
    Dir(OwnedFd),
    /// A component is missing: the deepest directory reached.
    Missing(OwnedFd),
}

impl StateDir {
    /// A store in `path` (absolute, no `..`), owned by the calling process's effective
    /// uid; `lock_timeout` bounds the wait for another login of the same user.
    pub fn new(path: impl Into<PathBuf>, lock_timeout: Duration) -> Self {
        Self {
            path: path.into(),
            owner: unistd::geteuid().as_raw(),
            lock_timeout,
            dir: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self, uid: Uid) -> String {
        self.path.join(uid.to_string()).display().to_string()
    }

    /// Walks to the directory without following anything, creating what is missing
    /// when `create` (else `None` when a component is missing).
    fn open_dir(&self, create: bool) -> Result<Option<OwnedFd>, StoreError> {
        Ok(match self.walk(create, true)? {
            Walked::Dir(fd) => Some(fd),
            Walked::Missing(_) => None,
        })
    }

    /// [`StateDir::open_dir`], with the deepest directory the walk reached (and
    /// checked) when a component is missing. With `repair`, a directory of the owner's
    /// missing one of the owner's bits gets them ([`StateDir::lacks_owner_bits`]).
    fn walk(&self, create: bool, repair: bool) -> Result<Walked, StoreError> {
        let shown = self.path.display().to_string();
        let bad = |m: String| StoreError::Refused(format!("state directory {shown}: {m}"));
        if !self.path.is_absolute() {
            return Err(bad("not an absolute path".into()));
        }
        let comps: Vec<OsString> = self
            .path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Ok(n.to_owned())),
                Component::RootDir | Component::CurDir => None,
                _ => Some(Err(())),
            })
            .collect::<Result<_, _>>()
            .map_err(|()| bad("has a .. component".into()))?;
        if let Some(fd) = self.open_dir_fast(&comps) {
            return Ok(Walked::Dir(fd));
        }
        let path_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut cur =
            fcntl::open("/", path_flags, Mode::empty()).map_err(|e| os_error("open /", e))?;
        let last = comps.len().saturating_sub(1);
        for (i, name) in comps.iter().enumerate() {
            let is_last = i == last;
            // The open comes first (a directory is the common case); only a refusal costs
            // the lstat that names what is there instead.
            let not_followed = |cur: &OwnedFd| {
                let what = stat::fstatat(cur, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_or("not a directory", |st| kind_name(&st));
                bad(format!("component {name:?} is {what}; not followed"))
            };
            let open =
                |cur: &OwnedFd| fcntl::openat(cur, name.as_os_str(), path_flags, Mode::empty());
            let mut opened = open(&cur);
            if create && matches!(opened, Err(Errno::ENOENT)) {
                let mode = Mode::from_bits_truncate(if is_last { 0o700 } else { 0o755 });
                match stat::mkdirat(&cur, name.as_os_str(), mode) {
                    // The host's umask shaped the mode: a screen locker under umask 0277
                    // made a directory it could not enter again, denying every later
                    // login. Set on a descriptor opened without following anything,
                    // never by name: a symlink put at `name` since the mkdir would have
                    // the chmod (as root) land on whatever it points to.
                    Ok(()) => {
                        // Where a test replaces the new directory.
                        let _ = fault::hit(FaultPoint::DirCreated);
                        let dir = match open_new_dir(&cur, name, mode) {
                            Ok(dir) => dir,
                            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                                return Err(not_followed(&cur));
                            }
                            Err(e) => {
                                return Err(os_error(&format!("set the mode of {shown}"), e));
                            }
                        };
                        // The parent's default ACL was inherited: its named entries
                        // would reach the store as soon as a mask is recomputed.
                        crate::safefile::remove_dir_acls(&dir).map_err(|e| {
                            os_error(&format!("remove inherited ACL of {shown}"), e)
                        })?;
                    }
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(os_error(&format!("create {shown}"), e)),
                }
                opened = open(&cur);
            }
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if !create => return Ok(Walked::Missing(cur)),
                Err(Errno::ENOTDIR | Errno::ELOOP) => return Err(not_followed(&cur)),
                Err(e) => return Err(os_error(&format!("open {shown}"), e)),
            };
            let st = stat::fstat(&fd).map_err(|e| os_error(&format!("stat {shown}"), e))?;
            if kind(&st) != SFlag::S_IFDIR {
                return Err(bad(format!("component {name:?} changed while opened")));
            }
            let owner_ok = if is_last {
                st.st_uid == self.owner
            } else {
                st.st_uid == 0 || st.st_uid == self.owner
            };
            // A sticky world-writable directory (/tmp) is refused too: it keeps others
            // from replacing our entries, but not from creating the state directory
            // before the module does, which would deny every login.
            let writable = st.st_mode & 0o022 != 0;
            if owner_ok && writable && st.st_mode & 0o1000 != 0 {
                return Err(bad(format!(
                    "{name:?} can be written by others (mode {:o}, sticky): any user could create the state directory first; put state_dir= below directories only root can write",
                    st.st_mode & 0o7777
                )));
            }
            if !owner_ok || writable {
                return Err(bad(format!(
                    "{:?} is owned by uid {}{} with mode {:o}; it must be owned by uid {} (or root, above it) and not writable by others",
                    name,
                    st.st_uid,
                    crate::creds::unmapped_owner_note(st.st_uid),
                    st.st_mode & 0o7777,
                    self.owner
                )));
            }
            if repair && self.lacks_owner_bits(&st, is_last) {
                let mode = Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700);
                give_mode(&fd, mode)
                    .map_err(|e| os_error(&format!("set the mode of {shown}"), e))?;
            }
            cur = fd;
        }
        // An O_PATH descriptor names entries; `sync_dir` opens one that can be synced.
        Ok(Walked::Dir(cur))
    }

    /// Whether `st`, a directory of the store's path the walk accepted, is its owner's
    /// and misses one of the owner's permission bits, which the walk then adds. A
    /// creator that died between its `mkdirat` and its chmod (or a racing one that
    /// found the directory before that chmod) left what the umask gave: 0000 under a
    /// screen locker's 0777, and an unprivileged host could neither enter it nor
    /// create below it again, denying every later login of its user. The store's own
    /// directory always; a directory above it only for an owner other than root, whose
    /// override needs no bit, so that a root host never changes a system directory, and
    /// only when its owner cannot even pass through it: a home the user made 0500 on
    /// purpose still leads to the store and is left as it is.
    fn lacks_owner_bits(&self, st: &FileStat, is_last: bool) -> bool {
        let missing = if is_last {
            st.st_mode & 0o700 != 0o700
        } else {
            self.owner != 0 && st.st_mode & 0o100 == 0
        };
        st.st_uid == self.owner && missing
    }

    /// Whether a login could record its attempt here, without writing anything: the
    /// walk the module takes (its owner and mode checks), then the file system's
    /// read-only flag, which a container started with a read-only root sets and which
    /// denies every login at the write. A directory not there yet is judged where the
    /// module would create it, on its nearest existing ancestor. For `totp-state audit`.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let shown = self.path.display().to_string();
        // The descriptor the walk checked, never the path again: a name resolved anew
        // would follow a symlink put there since.
        // No repair: nothing is written here, and the login's walk makes the repair.
        let (Walked::Dir(fd) | Walked::Missing(fd)) = self.walk(false, false)?;
        let flags = statvfs::fstatvfs(&fd)
            .map_err(|e| os_error(&format!("statvfs {shown}"), e))?
            .flags();
        if flags.contains(FsFlags::ST_RDONLY) {
            return Err(StoreError::Refused(format!(
                "state directory {shown}: on a read-only file system, so every login \
                 would be denied; give state_dir= a writable volume"
            )));
        }
        Ok(())
    }

    /// Whether a login could record its attempt here, by doing what it does: the
    /// checks of [`StateDir::check_writable`], then a file created in the directory
    /// under a random temporary name, one byte written and synced, and the file removed.
    /// Only a write shows a read-only bind mount the flags miss, an immutable or
    /// append-only directory, a full or over-quota file system. For `totp-state ping`,
    /// which otherwise only reads (the store key) and said "ok" for a store every login
    /// would refuse. A directory not there yet is judged as `check_writable` judges it
    /// (the first login creates it); nothing else is created.
    pub fn probe_write(&mut self) -> Result<(), StoreError> {
        self.check_writable()?;
        let shown = self.path.display().to_string();
        let Some(dir) = self.dir(false)? else {
            return Ok(());
        };
        // Never a record's name (not digits) nor the key's, so no reader mistakes it.
        let temp = temp_name(".probe.tmp-")?;
        let fd = fcntl::openat(
            dir,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| os_error(&format!("create a file in {shown}"), e))?;
        let mut file = File::from(fd);
        let written = crate::fsize::allows(1)
            .map_err(std::io::Error::from)
            .and_then(|()| std::io::Write::write_all(&mut file, b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&format!("write a file in {shown}"), &e));
        drop(file);
        let removed = unistd::unlinkat(dir, temp.as_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| os_error(&format!("remove {shown}/{temp}"), e));
        written.and(removed)
    }

    /// The common case of [`StateDir::open_dir`] in fewer system calls (issue 23): one
    /// `openat2` that follows no symlink at all, then the same owner and mode checks on
    /// the directory and each of its parents, reached upwards through `..` from the
    /// opened descriptor (what is checked is where the directory really is, not a path
    /// resolved again), and a check that the parent chain ends at `/` after as many
    /// steps as the path has components. `None` on anything else, including a missing
    /// component, a symlink, a kernel without `openat2` and every refusal: the
    /// component walk then runs, creates what is missing and names the fault, so a
    /// directory this accepts is one the walk accepts.
    fn open_dir_fast(&self, comps: &[OsString]) -> Option<OwnedFd> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = fcntl::openat2(fcntl::AT_FDCWD, self.path.as_path(), how).ok()?;
        // Where a test moves the directory opened.
        let _ = fault::hit(FaultPoint::DirOpened);
        let last = comps.len().checked_sub(1)?;
        let mut up = PathBuf::new();
        for i in (0..=last).rev() {
            let st = if i == last {
                stat::fstat(&fd)
            } else {
                stat::fstatat(&fd, up.as_path(), AtFlags::AT_SYMLINK_NOFOLLOW)
            }
            .ok()?;
            let owner_ok = if i == last {
                st.st_uid == self.owner
            } else {
                st.st_uid == 0 || st.st_uid == self.owner
            };
            if kind(&st) != SFlag::S_IFDIR
                || !owner_ok
                || st.st_mode & 0o022 != 0
                || self.lacks_owner_bits(&st, i == last)
            {
                return None;
            }
            up.push("..");
        }
        let top = stat::fstatat(&fd, up.as_path(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        let root = stat::stat("/").ok()?;
        (top.st_dev == root.st_dev && top.st_ino == root.st_ino).then_some(fd)
    }

    /// The uids with a record here, sorted, listed through the directory the walk
    /// opened (no symlink followed, owner and mode checked, as every other use of the
    /// store); none when the directory does not exist.
    pub fn record_uids(&mut self) -> Result<Vec<Uid>, StoreError> {
        let shown = self.path.display().to_string();
        let Some(dir) = self.dir(false)? else {
            return Ok(Vec::new());
        };
        let fd = crate::safefile::open_dir_readable(dir)
            .map_err(|e| os_error(&format!("list {shown}"), e))?;
        let mut listing =
            nix::dir::Dir::from_fd(fd).map_err(|e| os_error(&format!("list {shown}"), e))?;
        let mut uids = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|e| os_error(&format!("list {shown}"), e))?;
            let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
            uids.extend(record_uid(name));
        }
        uids.sort_unstable();
        Ok(uids)
    }

    /// The open directory; `None` when it does not exist and `create` is false.
    fn dir(&mut self, create: bool) -> Result<Option<&OwnedFd>, StoreError> {
        if self.dir.is_none() {
            self.dir = self.open_dir(create)?;
        }
        Ok(self.dir.as_ref())
    }

    /// Opens `uid`'s record (read-write when `write`) and the identity of the file
    /// opened; `None` when absent and `create` is false. A missing record is built by
    /// [`create_record`] and only then given its name.
    fn open_record(
        &mut self,
        uid: Uid,
        create: bool,
        write: bool,
    ) -> Result<Option<(File, FileStat)>, StoreError> {
        let shown = self.shown(uid);
        let owner = self.owner;
        let dir_shown = self.path.display().to_string();
        let Some(dir) = self.dir(create)? else {
            return Ok(None);
        };
        let name = uid.to_string();
        // O_NOCTTY: a terminal put there since the lstat never becomes the host's
        // controlling terminal (sshd's session leader has none).
        let base = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let rw = if create || write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let mut opened = None;
        // Bounded: each turn either opens or finds that another login's record took the
        // name after the stat, which a record removed again at once could repeat.
        for _ in 0..OPEN_TRIES {
            match stat::fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if kind(&st) != SFlag::S_IFREG => {
                    return Err(StoreError::Corrupt(format!(
                        "{shown} is {}; not followed",
                        kind_name(&st)
                    )));
                }
                Ok(_) => {}
                Err(Errno::ENOENT) if !create => return Ok(None),
                Err(Errno::ENOENT) => {
                    if let Some(creation) = create_record(dir, &name, &shown)? {
                        // The entry must outlive a power loss before any durable record
                        // goes in it: a login that opened it by its name waits for the
                        // creation's lock until then (R12).
                        sync_dir(dir).map_err(|e| os_error(&format!("fsync {dir_shown}"), e))?;
                        // Released before this login locks the record by its name: the
                        // lock belongs to the creation's descriptor, and a second
                        // descriptor's lock would wait for it forever.
                        drop(creation);
                    }
                    // Opened by its name, ours or the record of another login that took
                    // the name first: a descriptor of the unnamed file keeps naming it
                    // `#INODE (deleted)` after the link (in /proc, lsof, strace).
                }
                Err(e) => return Err(os_error(&format!("stat {shown}"), e)),
            }
            // Where a test swaps the entry the lstat found a plain file for another.
            let _ = fault::hit(FaultPoint::OpenFile);
            let fd = match fcntl::openat(dir, name.as_str(), base | rw, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ELOOP) => {
                    return Err(StoreError::Corrupt(format!(
                        "{shown} is a symlink; not followed"
                    )));
                }
                // A directory put there since the lstat (opened for writing).
                Err(Errno::EISDIR) => {
                    return Err(StoreError::Corrupt(format!(
                        "{shown} is a directory; not followed"
                    )));
                }
                Err(Errno::ENOENT) if !create => return Ok(None),
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(os_error(&format!("open {shown}"), e)),
            };
            // Where a test replaces the entry just opened.
            let _ = fault::hit(FaultPoint::OpenedFile);
            let st = stat::fstat(&fd).map_err(|e| os_error(&format!("stat {shown}"), e))?;
            // Removed between the open and the fstat: what the name leads to now is
            // opened again, as for a name gone before the open (the file held has no
            // link left, which is no fault of the record's).
            if kind(&st) == SFlag::S_IFREG && st.st_nlink == 0 {
                continue;
            }
            opened = Some((fd, st));
            break;
        }
        let Some((fd, st)) = opened else {
            return Err(StoreError::Unavailable(format!(
                "{shown} appeared and vanished again {OPEN_TRIES} times while being opened"
            )));
        };
        let problem = if kind(&st) != SFlag::S_IFREG {
            Some(format!("is {}", kind_name(&st)))
        } else if st.st_uid != owner {
            Some(format!(
                "is owned by uid {}{}, not {owner}",
                st.st_uid,
                crate::creds::unmapped_owner_note(st.st_uid)
            ))
        } else if st.st_mode & 0o077 != 0 {
            Some(format!("has mode {:o}, not 600", st.st_mode & 0o7777))
        } else if st.st_nlink != 1 {
            Some(format!("has {} hard links", st.st_nlink))
        } else if st.st_size as u64 > MAX_FILE_LEN as u64 {
            Some(format!("is larger than {MAX_FILE_LEN} bytes"))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(StoreError::Corrupt(format!("{shown} {p}; refused")));
        }
        Ok(Some((File::from(fd), st)))
    }

    /// Opens `uid`'s record as [`StateDir::open_record`] does and locks it, then checks
    /// that its name still leads to the locked file: a record removed or replaced while
    /// this login waited for the lock (by hand, or by [`StateDir::reset`] of a hostile
    /// entry) is no longer the one the next login opens, and a mark written into it
    /// would be lost, so the open and the lock are taken again.
    fn open_locked(
        &mut self,
        uid: Uid,
        create: bool,
        write: bool,
    ) -> Result<Option<(File, FileStat)>, StoreError> {
        let shown = self.shown(uid);
        let name = uid.to_string();
        for _ in 0..OPEN_TRIES {
            let Some((file, st)) = self.open_record(uid, create, write)? else {
                return Ok(None);
            };
            self.lock(&file, uid)?;
            let dir = self
                .dir(false)?
                .ok_or_else(|| StoreError::Unavailable(format!("{shown}: directory vanished")))?;
            match stat::fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {
                    return Ok(Some((file, st)));
                }
                Ok(_) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(os_error(&format!("stat {shown}"), e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{shown} was removed or replaced {OPEN_TRIES} times while being locked"
        )))
    }

    /// Reads the key file; `None` when there is none yet. The directory is created
    /// only when `create`: a store that is only looked at (`Missing::Leave`: a shared
    /// store's login reading this host's local marks, `totp-state show`) stays absent.
    fn read_key(&mut self, create: bool) -> Result<Option<StoreKey>, StoreError> {
        let shown = self.path.join(KEY_FILE).display().to_string();
        let owner = self.owner;
        let Some(dir) = self.dir(create)? else {
            return Ok(None);
        };
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY;
        let fd = match fcntl::openat(dir, KEY_FILE, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(StoreError::Corrupt(format!(
                    "{shown} is a symlink; not followed"
                )));
            }
            Err(e) => return Err(os_error(&format!("open {shown}"), e)),
        };
        let st = stat::fstat(&fd).map_err(|e| os_error(&format!("stat {shown}"), e))?;
        if kind(&st) != SFlag::S_IFREG
            || st.st_uid != owner
            || st.st_mode & 0o077 != 0
            || st.st_nlink != 1
            || st.st_size != STORE_KEY_LEN as libc::off_t
        {
            return Err(StoreError::Corrupt(format!(
                "{shown} must be a regular file of {STORE_KEY_LEN} bytes, mode 600, owned by \
                 uid {owner}, with one link. If it cannot be restored, move it aside: the \
                 next login creates a new key, and every user's replay marks start afresh, \
                 as after `totp-state reset` of every user"
            )));
        }
        let mut key = zeroize::Zeroizing::new([0u8; STORE_KEY_LEN]);
        File::from(fd)
            .read_exact_at(&mut key[..], 0)
            .map_err(|e| io_error(&format!("read {shown}"), &e))?;
        Ok(Some(StoreKey::new(*key)))
    }

    /// Writes a new random key under a temporary name, fsynced, then renames it into
    /// place without replacing one; `false` when another login placed its key first.
    fn create_key(&mut self) -> Result<bool, StoreError> {
        let shown = self.path.display().to_string();
        let mut key = zeroize::Zeroizing::new([0u8; STORE_KEY_LEN]);
        getrandom::fill(&mut key[..]).map_err(|e| {
            StoreError::Unavailable(format!("no random numbers for a store key: {e}"))
        })?;
        let dir = self
            .dir(true)?
            .ok_or_else(|| StoreError::Unavailable(format!("{shown} vanished")))?;
        let temp = temp_name(&format!(".{KEY_FILE}.tmp-"))?;
        let fd = fcntl::openat(
            dir,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| os_error(&format!("create a store key in {shown}"), e))?;
        // 0600 exactly, not what the host's umask left of it (0400 under umask 0277),
        // and no entries a default ACL of the directory handed down.
        let chmodded = crate::safefile::remove_access_acl(&fd)
            .map_err(|e| {
                os_error(
                    &format!("remove inherited ACL of a store key in {shown}"),
                    e,
                )
            })
            .and_then(|()| {
                stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
                    .map_err(|e| os_error(&format!("chmod a store key in {shown}"), e))
            });
        let mut file = File::from(fd);
        // write(2), not pwrite: tests tell a record's write by its pwrite64.
        let written = chmodded.and_then(|()| {
            crate::fsize::allows(key.len() as u64)
                .map_err(std::io::Error::from)
                .and_then(|()| std::io::Write::write_all(&mut file, &key[..]))
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(&format!("write a store key in {shown}"), &e))
        });
        let linked = match written {
            Ok(()) => place_new(dir, &temp, KEY_FILE)
                .map_err(|e| os_error(&format!("place the store key in {shown}"), e)),
            Err(e) => {
                let _ = unistd::unlinkat(dir, temp.as_str(), UnlinkatFlags::NoRemoveDir);
                Err(e)
            }
        };
        // The key must outlive a power loss before any record is bound to it.
        sync_dir(dir).map_err(|e| os_error(&format!("fsync {shown}"), e))?;
        linked
    }

    fn lock(&self, file: &File, uid: Uid) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.lock_timeout;
        let mut pause = LOCK_PAUSE_MIN;
        loop {
            let injected = fault::hit(FaultPoint::Lock);
            let outcome = match injected {
                Err(e) if e == libc::EWOULDBLOCK => Err(TryLockError::WouldBlock),
                Err(e) => Err(TryLockError::Error(std::io::Error::from_raw_os_error(e))),
                Ok(()) => file.try_lock(),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(io_error(&format!("lock {}", self.shown(uid)), &e));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "timed out waiting for the lock on {}",
                    self.shown(uid)
                )));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LOCK_PAUSE_MAX);
        }
    }

    fn write_slot(
        &self,
        file: &File,
        uid: Uid,
        slots: &[Slot],
        state: &UserState,
        durable: bool,
    ) -> Result<(), StoreError> {
        let index = next_slot(slots, durable);
        self.write_slot_at(file, uid, slots, index, state, durable)
    }

    /// [`Self::write_slot`] into slot `index`, with a sequence number above every
    /// complete slot's.
    fn write_slot_at(
        &self,
        file: &File,
        uid: Uid,
        slots: &[Slot],
        index: usize,
        state: &UserState,
        durable: bool,
    ) -> Result<(), StoreError> {
        let seq = slots
            .iter()
            .map(|s| s.seq)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let bytes = encode_slot(seq, state)?;
        let offset = (index * SLOT_LEN) as u64;
        let shown = self.shown(uid);
        fault::hit(FaultPoint::Write)
            .map_err(|e| os_error(&format!("write {shown}"), Errno::from_raw(e)))?;
        crate::fsize::allows(offset + bytes.len() as u64)
            .map_err(|e| os_error(&format!("write {shown}"), e))?;
        file.write_all_at(&bytes, offset)
            .map_err(|e| io_error(&format!("write {shown}"), &e))?;
        if durable {
            fault::hit(FaultPoint::Fsync)
                .map_err(|e| os_error(&format!("fsync {shown}"), Errno::from_raw(e)))?;
            file.sync_data()
                .map_err(|e| io_error(&format!("fsync {shown}"), &e))?;
        }
        Ok(())
    }
}

impl StateStore for StateDir {
    /// The local store loses nothing a reboot's boot floor does not cover (records are
    /// fsynced or covered by it), so it is complete since the beginning.
    fn context(&mut self, missing: Missing) -> Result<Option<StoreContext>, StoreError> {
        let create = matches!(missing, Missing::Create { .. });
        let key = match (self.read_key(create)?, missing) {
            (Some(k), _) => k,
            (None, Missing::Leave) => return Ok(None),
            (None, Missing::Create { .. }) => {
                self.create_key()?;
                self.read_key(true)?.ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "{} vanished",
                        self.path.join(KEY_FILE).display()
                    ))
                })?
            }
        };
        Ok(Some(StoreContext {
            key,
            complete_since: 0,
        }))
    }

    /// No answer's bound: the lock's deadline bounds each update, and `decide` runs
    /// once under the lock (no retry to hold back).
    fn update_within(
        &mut self,
        uid: Uid,
        _bound: &dyn AnswerBound,
        decide: &mut dyn FnMut(&UserState) -> Write,
    ) -> Result<(), StoreError> {
        let (file, st) = self
            .open_locked(uid, true, true)?
            .ok_or_else(|| StoreError::Unavailable("state file vanished".into()))?;
        let bytes = read_all(&file)?;
        let record = parse_record(&bytes)?;
        allocate_holes(&file, &st);
        match decide(&record.state) {
            Write::Nothing => Ok(()),
            Write::Lazy(s) => self.write_slot(&file, uid, &record.slots, &s, false),
            Write::Durable(s) => self.write_slot(&file, uid, &record.slots, &s, true),
        }
        // The lock goes with the file descriptor.
    }

    fn read(&mut self, uid: Uid) -> Result<UserState, StoreError> {
        let Some((file, _)) = self.open_record(uid, false, false)? else {
            return Ok(UserState::default());
        };
        // No lock: a writer only ever rewrites the older slot of a pair, and a slot
        // caught half-written fails its check, so the newest complete record wins.
        let bytes = read_all(&file)?;
        Ok(parse_record(&bytes)?.state)
    }

    /// Under the record's lock, the record with its throttling lifted and its marks
    /// kept, written durably; nothing written when nothing changes. A record whose
    /// slots all fail their check is emptied (as a record never written), and a hostile
    /// entry in its place removed without being followed: neither holds marks anyone
    /// could read.
    fn reset_with(&mut self, uid: Uid, now: u64, how: ResetHow) -> Result<Reset, StoreError> {
        let shown = self.shown(uid);
        let name = uid.to_string();
        let st = {
            let Some(dir) = self.dir(false)? else {
                return Ok(Reset::Absent);
            };
            match stat::fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) => return Ok(Reset::Absent),
                Err(e) => return Err(os_error(&format!("stat {shown}"), e)),
            }
        };
        let opened = if kind(&st) == SFlag::S_IFREG && st.st_uid == self.owner && st.st_nlink == 1 {
            Some(self.open_locked(uid, false, true))
        } else {
            None
        };
        if let Some(Ok(Some((file, st)))) = opened {
            let bytes = read_all(&file)?;
            return match parse_record(&bytes) {
                Ok(record) => {
                    allocate_holes(&file, &st);
                    let (next, lowered) = record.state.lifted(reset_mark_cap(now), how);
                    if next != record.state {
                        self.write_slot(&file, uid, &record.slots, &next, true)?;
                    }
                    Ok(Reset::Lifted { lowered })
                }
                Err(e) => {
                    if let Some((record, kept)) = readable_part(&bytes) {
                        allocate_holes(&file, &st);
                        // The slot it cannot read may hold TOTP codes the newer release
                        // accepted after the kept slot was written; none can be of a
                        // step after the reset's clock plus the slack every reset
                        // allows, so every enrolment's TOTP mark is raised to that
                        // (R34). Without a clock to trust nothing could be raised, and
                        // the reset would reopen them: refused instead.
                        let Some(cap) = reset_mark_cap(now) else {
                            return Err(StoreError::Refused(format!(
                                "{shown}: {e}; the clock ({now}) is too early to tell which \
                                 codes the newer release used, so the record is not reset; \
                                 set the clock first"
                            )));
                        };
                        let (mut next, _) = record.state.lifted(Some(cap), how);
                        for (_, m) in &mut next.marks {
                            m.totp_until = Some(m.totp_until.map_or(cap, |u| u.max(cap)));
                        }
                        // Written even when nothing changes: it must supersede the
                        // slot this release cannot read.
                        let at = reset_slot(&record.slots, kept);
                        self.write_slot_at(&file, uid, &record.slots, at, &next, true)?;
                        return Ok(Reset::Removed(format!(
                            "{shown}: {e}; the marks of its newest slot this release \
                             reads are kept, and every TOTP code up to now counts as used"
                        )));
                    }
                    file.set_len(0)
                        .map_err(|e| io_error(&format!("truncate {shown}"), &e))?;
                    // The truncation freed the record's blocks: taken again, zeroed (a
                    // record never written), so that the next login's write needs none.
                    if let Ok(emptied) = stat::fstat(&file) {
                        allocate_holes(&file, &emptied);
                    }
                    file.sync_all()
                        .map_err(|e| io_error(&format!("fsync {shown}"), &e))?;
                    Ok(Reset::Removed(format!("{shown}: {e}")))
                }
            };
        }
        match opened {
            // Removed since the stat: nothing left to reset.
            Some(Ok(None)) => return Ok(Reset::Absent),
            // A record that could not be opened for another reason than what it is (an
            // I/O error, no descriptor left) may be a good one: kept, and the error said.
            Some(Err(e)) if !matches!(e, StoreError::Corrupt(_)) => return Err(e),
            _ => {}
        }
        if kind(&st) == SFlag::S_IFDIR {
            return Err(StoreError::Refused(format!(
                "{shown} is a directory; remove it by hand"
            )));
        }
        // Judged by its links alone, so a second link may be a new record's (below).
        let extra_links =
            opened.is_none() && kind(&st) == SFlag::S_IFREG && st.st_uid == self.owner;
        let why = match opened {
            Some(Err(e)) => e.to_string(),
            _ if kind(&st) != SFlag::S_IFREG => format!("{shown} is {}", kind_name(&st)),
            _ if st.st_uid != self.owner => {
                format!("{shown} is owned by uid {}, not {}", st.st_uid, self.owner)
            }
            _ => format!("{shown} has {} hard links", st.st_nlink),
        };
        // Anything else (symlink, FIFO, foreign or oversized file) is removed, never followed.
        let Some(dir) = self.dir(false)? else {
            return Ok(Reset::Absent);
        };
        // Where a test replaces the entry judged.
        let _ = fault::hit(FaultPoint::ResetRemoval);
        // Looked at again just before the removal, which goes by name: what was judged
        // must still be what the name leads to. Its change time too: the inode number
        // of an entry removed meanwhile may already be a new record's (ext4 and tmpfs
        // hand a freed number out again at once), one a login may have written a used
        // code into.
        let again = match stat::fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(again) => again,
            Err(Errno::ENOENT) => return Ok(Reset::Absent),
            Err(e) => return Err(os_error(&format!("stat {shown}"), e)),
        };
        if again.st_dev != st.st_dev
            || again.st_ino != st.st_ino
            || kind(&again) != kind(&st)
            || (again.st_ctime, again.st_ctime_nsec) != (st.st_ctime, st.st_ctime_nsec)
            || (extra_links && again.st_nlink == 1)
        {
            return Err(StoreError::Unavailable(format!(
                "{shown} changed while being reset; try again"
            )));
        }
        // A new record placed by link-then-unlink (see `place_new`) has its temporary
        // name as a second link for a moment: a good record, which a login may be about
        // to write a used code into, never a hostile one.
        if extra_links && again.st_nlink == 2 && being_created(dir, &name, &again) {
            return Err(StoreError::Unavailable(format!(
                "{shown} is being created by a login (its temporary name .{name}.tmp-* is \
                 a second link to it); try again. If this persists, a login stopped while \
                 creating it: remove that temporary name (not {shown}) and reset again"
            )));
        }
        unistd::unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| os_error(&format!("remove {shown}"), e))?;
        sync_dir(dir).map_err(|e| os_error(&format!("fsync {shown}"), e))?;
        Ok(Reset::Removed(why))
    }
}

/// The directory `name` of `cur`, just created, opened without following anything and
/// given `mode` through that descriptor (never by name); readable, for the removal of
/// its inherited ACL.
fn open_new_dir(cur: &OwnedFd, name: &OsStr, mode: Mode) -> Result<OwnedFd, Errno> {
    let no_follow = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match fcntl::openat(cur, name, OFlag::O_RDONLY | no_follow, Mode::empty()) {
        Ok(dir) => {
            stat::fchmod(&dir, mode)?;
            Ok(dir)
        }
        // The umask took the owner's read bit (0777, 0477) from a host without a
        // capability that overrides it (a screen locker): no read descriptor until the
        // mode is set, and the directory left 0000 would deny every later login. An
        // O_PATH descriptor needs no permission, and its /proc link leads to that very
        // directory, for the chmod and then the readable descriptor.
        Err(Errno::EACCES) => {
            let held = fcntl::openat(cur, name, OFlag::O_PATH | no_follow, Mode::empty())?;
            give_mode(&held, mode)?;
            fcntl::open(
                format!("/proc/self/fd/{}", held.as_raw_fd()).as_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        }
        Err(e) => Err(e),
    }
}

/// `mode` given to the directory `dir` (an `O_PATH` descriptor, which `fchmod` refuses)
/// through its /proc link, which leads to that very directory whatever its name leads
/// to now; no permission on the directory is needed, so one left 0000 is reached.
fn give_mode(dir: &OwnedFd, mode: Mode) -> Result<(), Errno> {
    let link = format!("/proc/self/fd/{}", dir.as_raw_fd());
    stat::fchmodat(
        fcntl::AT_FDCWD,
        link.as_str(),
        mode,
        FchmodatFlags::FollowSymlink,
    )
}

/// A record an earlier version created with holes, allocated now while there is room
/// (best effort: a full file system leaves it as it was), so that no later write needs
/// a block. Only a file that passed the checks and then read as a record: before the
/// checks, a hard link to another file or a file of another owner at the name grew to
/// 16 KiB; before the read, so did any root-owned 0600 file bind-mounted over it.
fn allocate_holes(file: &File, st: &FileStat) {
    if (st.st_blocks as u64) * 512 < MAX_FILE_LEN as u64
        && crate::fsize::allows(MAX_FILE_LEN as u64).is_ok()
    {
        let _ = fcntl::posix_fallocate(file, 0, MAX_FILE_LEN as libc::off_t);
    }
}

/// `prefix` and 16 random hex digits: a temporary name no other login will pick. It
/// starts with a dot, so it is never a record's name (see [`record_uid`]).
fn temp_name(prefix: &str) -> Result<String, StoreError> {
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd)
        .map_err(|e| StoreError::Unavailable(format!("no random numbers: {e}")))?;
    Ok(rnd
        .iter()
        .fold(prefix.to_owned(), |t, b| t + &format!("{b:02x}")))
}

/// Whether `dir` holds a temporary name of a new record for `name` (as
/// [`create_record`] makes them) that is a link to the file `st`: the record is between
/// the link and the unlink of [`place_new`]'s fallback. A directory that cannot be
/// listed shows none.
fn being_created(dir: &OwnedFd, name: &str, st: &FileStat) -> bool {
    let prefix = format!(".{name}.tmp-");
    let Ok(fd) = crate::safefile::open_dir_readable(dir) else {
        return false;
    };
    let Ok(mut listing) = nix::dir::Dir::from_fd(fd) else {
        return false;
    };
    let temps: Vec<std::ffi::CString> = listing
        .iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_bytes().starts_with(prefix.as_bytes()))
        .map(|e| e.file_name().to_owned())
        .collect();
    temps.iter().any(|temp| {
        stat::fstatat(dir, temp.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|t| t.st_dev == st.st_dev && t.st_ino == st.st_ino)
    })
}

/// Gives the file named `temp` in `dir` the name `name`, never replacing an existing
/// one (`false` then); the temporary name is gone afterwards either way.
fn place_new(dir: &OwnedFd, temp: &str, name: &str) -> Result<bool, Errno> {
    // RENAME_NOREPLACE, not link-then-unlink: between those two calls the file has two
    // links, and a racing login's check (one link) would refuse it as tampered with.
    // A test stands in a seccomp filter refusing renameat2 (EPERM) by failing it here.
    let renamed = fault::hit(FaultPoint::RecordRename)
        .map_err(Errno::from_raw)
        .and_then(|()| fcntl::renameat2(dir, temp, dir, name, RenameFlags::RENAME_NOREPLACE));
    let placed = match renamed {
        Ok(()) => return Ok(true),
        Err(Errno::EEXIST) => Ok(false),
        // File systems without RENAME_NOREPLACE, or a container's seccomp filter without
        // renameat2 (EPERM): linkat also refuses an existing name, and a real permission
        // problem fails it as well. Only here can a racing login see two links.
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EPERM) => {
            match unistd::linkat(dir, temp, dir, name, AtFlags::empty()) {
                Ok(()) => {
                    // Where a test runs `totp-state reset` while the file has two links.
                    let _ = fault::hit(FaultPoint::RecordTwoLinks);
                    Ok(true)
                }
                Err(Errno::EEXIST) => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let _ = unistd::unlinkat(dir, temp, UnlinkatFlags::NoRemoveDir);
    placed
}

/// A new record for `name`, built completely where no other login can open it and only
/// then linked into place: `None` when another login's record took the name first.
/// Placed, it comes back still locked (taken before it had a name), so that a login
/// opening it by its name can write nothing into it before the caller has made the
/// name durable and dropped the descriptor.
///
/// A record is never created under its own name and removed again when its mode or
/// allocation fails: a login racing the creator could open and lock that file by its
/// name, record a used code in it, and lose the mark with the name, so that the code was
/// admitted again (R12). Nothing here ever removes a name another login may have
/// opened: a file that cannot be built is dropped unnamed (`O_TMPFILE`), or under its
/// own random temporary name on file systems without `O_TMPFILE`.
fn create_record(dir: &OwnedFd, name: &str, shown: &str) -> Result<Option<File>, StoreError> {
    let mode = Mode::from_bits_truncate(0o600);
    // A test stands in a file system without O_TMPFILE by failing this open.
    let unnamed = fault::hit(FaultPoint::CreateUnnamed)
        .map_err(Errno::from_raw)
        .and_then(|()| {
            fcntl::openat(
                dir,
                ".",
                OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
                mode,
            )
        });
    match unnamed {
        Ok(fd) => {
            let file = build_record(fd, shown)?;
            match link_unnamed(dir, file.as_fd(), name) {
                Ok(()) => return Ok(Some(file)),
                Err(Errno::EEXIST) => return Ok(None),
                // No way to name it here (no /proc, or refused by a filter): built again
                // under a temporary name below; this one vanishes when dropped.
                Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES | Errno::ENOSYS) => {}
                Err(e) => return Err(os_error(&format!("link {shown}"), e)),
            }
        }
        // File systems without O_TMPFILE (NFS, many FUSE and older ones).
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL | Errno::ENOSYS) => {}
        Err(e) => return Err(os_error(&format!("create {shown}"), e)),
    }
    let temp = temp_name(&format!(".{name}.tmp-"))?;
    let fd = fcntl::openat(
        dir,
        temp.as_str(),
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(|e| os_error(&format!("create {shown}"), e))?;
    let file = match build_record(fd, shown) {
        Ok(file) => file,
        Err(e) => {
            // Our own random name, which no other login opens.
            let _ = unistd::unlinkat(dir, temp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
    };
    match place_new(dir, &temp, name) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Ok(None),
        Err(e) => Err(os_error(&format!("link {shown}"), e)),
    }
}

/// Mode, blocks and lock of a new record, before it has a name.
fn build_record(fd: OwnedFd, shown: &str) -> Result<File, StoreError> {
    // A default ACL of the state directory (one in a home, for a host running as the
    // user) gave the record its named entries: only the mode bits say who may read it.
    crate::safefile::remove_access_acl(&fd)
        .map_err(|e| os_error(&format!("remove inherited ACL of {shown}"), e))?;
    // Exactly 0600 whatever the host's umask: a record created 0400 or 0000 could not
    // be opened for writing by an unprivileged owner again (a lockout).
    stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
        .map_err(|e| os_error(&format!("chmod {shown}"), e))?;
    // Every slot's blocks now, so that no later write needs a new block: a full file
    // system then never locks out a user who already has a record. A record that cannot
    // be allocated is never named, and the login is denied with why.
    crate::fsize::allows(MAX_FILE_LEN as u64)
        .and_then(|()| fcntl::posix_fallocate(&fd, 0, MAX_FILE_LEN as libc::off_t))
        .map_err(|e| {
            os_error(
                &format!("allocate a new record {shown} (the state directory's file system)"),
                e,
            )
        })?;
    // No other descriptor of the file exists yet, so only a file system without locks
    // (ENOLCK) refuses this, as it would refuse every login's lock.
    let file = File::from(fd);
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "lock a new record {shown}: held by another descriptor"
        ))),
        Err(TryLockError::Error(e)) => Err(io_error(&format!("lock a new record {shown}"), &e)),
    }
}

/// Links the unnamed (`O_TMPFILE`) file `fd` into `dir` as `name`; `EEXIST` when taken.
fn link_unnamed(dir: &OwnedFd, fd: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    match unistd::linkat(fd, "", dir, name, AtFlags::AT_EMPTY_PATH) {
        // Before Linux 6.10, AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (ENOENT without it,
        // as for a host not running as root); the descriptor's /proc link needs none.
        Err(Errno::ENOENT) => {
            let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
            unistd::linkat(
                fcntl::AT_FDCWD,
                link.as_str(),
                dir,
                name,
                AtFlags::AT_SYMLINK_FOLLOW,
            )
        }
        other => other,
    }
}

/// `fsync` of the directory `dir` names (an `O_PATH` descriptor cannot be synced).
fn sync_dir(dir: &OwnedFd) -> Result<(), Errno> {
    unistd::fsync(crate::safefile::open_dir_readable(dir)?)
}

/// The calling process's effective uid: the owner the store's files must have.
pub fn effective_uid() -> Uid {
    unistd::geteuid().as_raw()
}

/// The memory-backed file system (`tmpfs`, `ramfs`) the directory `dir` is on, if it
/// is on one: its records are gone after a reboot, and with them the used scratch codes
/// and HOTP counters recorded only there (a read-only secret file, `secret_command=`),
/// which then work again. `fstatfs` on the directory opened without following a final
/// symlink; `None` also when it cannot be opened (the store's own checks say why). For
/// the tools' warnings only: an admin may have chosen it knowingly, so nothing refuses.
pub fn volatile_fs(dir: &Path) -> Option<&'static str> {
    // As the kernel defines them (linux/magic.h); devtmpfs reports tmpfs's.
    const TMPFS_MAGIC: u32 = 0x0102_1994;
    const RAMFS_MAGIC: u32 = 0x8584_58F6;
    let fd = fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = nix::sys::statfs::fstatfs(&fd).ok()?;
    // `f_type`'s width depends on the architecture; every magic fits in 32 bits.
    match st.filesystem_type().0 as u32 {
        TMPFS_MAGIC => Some("tmpfs"),
        RAMFS_MAGIC => Some("ramfs"),
        _ => None,
    }
}

/// The tools' warning for a state directory on a memory-backed file system
/// ([`volatile_fs`]), `None` for any other.
pub fn volatile_warning(dir: &Path) -> Option<String> {
    let kind = volatile_fs(dir)?;
    Some(format!(
        "the state directory {} is on {kind}: its records are lost at every reboot, and \
         with them the used scratch codes and HOTP counters recorded only there (a \
         secret file that cannot be rewritten, secret_command=), which then work again; \
         put state_dir= on a disk-backed file system unless that was chosen knowingly",
        dir.display()
    ))
}

/// Whether `name` is a record file name (a decimal uid), for listing a directory.
pub fn record_uid(name: &std::ffi::OsStr) -> Option<Uid> {
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() > 10
        || !b.iter().all(u8::is_ascii_digit)
        || (b[0] == b'0' && b.len() > 1)
    {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
