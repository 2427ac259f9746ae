//! Defensive file access for secret and state files (rules R5–R7, R15–R17).
//!
//! - [`open_checked`]: fd-relative walk from `/` that never follows a symlink a user
//!   could have planted, checks on the opened fd (type, owner, mode, link count, size),
//!   an OpenSSH-StrictModes-style directory chain check, and a bounded read.
//! - [`lock_with_deadline`]: the same, plus an exclusive `flock` taken with a bounded
//!   wait and a check that the path still names the locked inode; [`open_refused_lock`]
//!   where the file system refuses that lock on a read-only descriptor (NFSv4).
//! - [`LockedFile::replace`] and [`write_new_file`]: crash-safe rewrite (random temp
//!   name, fsync, rename, directory fsync), keeping mode and SELinux label.
//!
//! Call these with the right filesystem identity in place (see [`crate::creds`]): files
//! are created as the calling identity and chowned only where root writes a store file
//! a login requires the user to own ([`NewFile::owner`]).
//!
//! Errors never carry file contents. [`FileError::NotFound`] is reserved for "the final
//! component does not exist", the only case `nullok` may turn into `PAM_IGNORE`.

// Every system call here goes through nix or rustix.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use libc::{gid_t, uid_t};
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::unistd::{self, UnlinkatFlags};
use totp_core::placement::{Opener, Placement};
use zeroize::Zeroizing;

use crate::fault::{self, FaultPoint};

// SELinux label preservation across a rewrite.
mod label;
use label::copy_selinux_label;

/// Default size cap, as GA's: a secret file is a few hundred bytes.
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;
/// Default `allowed_perm`, as GA's: owner read/write only.
pub const DEFAULT_ALLOWED_PERM: u32 = 0o600;

/// Symlink expansions allowed in one walk, like the kernel's own limit.
const MAX_SYMLINKS: u32 = 40;
/// How often [`lock_with_deadline`] reopens when the path keeps naming a new inode. Each
/// reopen means another login finished its rewrite, i.e. progress, so the deadline is
/// the real bound; this cap only guards against a clock that never advances. (A small
/// cap lost attempts when 32 logins raced: every loser had to reopen many times.)
const MAX_REOPENS: u32 = 100_000;
/// How often [`open_unread`] reopens a file that lost its last link while being opened
/// (each time, another writer replaced it: progress).
const MAX_REOPENS_UNLINKED: u32 = 64;
/// First and longest pause between lock attempts: short enough that an uncontended
/// handover costs little, long enough that 32 waiters do not spin a CPU.
const LOCK_PAUSE_MIN: Duration = Duration::from_millis(1);
const LOCK_PAUSE_MAX: Duration = Duration::from_millis(50);

/// What a file and its directories must look like to be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRules {
    /// Uids that may own the file; also allowed (besides root) to own the directories
    /// from the parent up to `trusted_root`. Root is *not* implied for the file: list
    /// `0` for store mode. Empty means nothing is accepted.
    pub allowed_owners: Vec<uid_t>,
    /// Permission bits the file may have (GA's `allowed_perm`, default `0o600`). Group
    /// or other write and setuid/setgid/sticky are refused whatever this says.
    pub allowed_perm: u32,
    /// Largest accepted file size in bytes.
    pub max_size: usize,
    /// Top of the directory chain check: the home directory for a file in it, `/` for
    /// a file anywhere else (a store, rule R7: whoever may rename a directory above the
    /// file's own can swap that directory for another). Must be an absolute prefix of
    /// the file's directory. `None` checks the parent directory only.
    pub trusted_root: Option<PathBuf>,
    /// Whose user-private group may have write access to the directories in the chain
    /// (Debian's OpenSSH user-group-modes rule; `None`: no group write at all), and on
    /// which of them. Asked of the name service only when a group-writable directory of
    /// that gid is met.
    pub private_group_of: Option<PrivateGroupOwner>,
    /// Directories must be root's whatever `allowed_owners` says: root writes as itself
    /// a file another account is to own (a store file outside the user's home).
    pub root_owned_dirs: bool,
}

/// The account whose user-private group (named like it, its primary group, no other
/// member) may write the directories of its own secret file's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateGroupOwner {
    pub user: String,
    pub primary_gid: gid_t,
    /// Excuse the group only on directories this uid owns (`None`: on every directory
    /// of the chain, which the home's chain is: the user may write it all anyway).
    /// Outside the home a directory someone else owns is theirs to change: giving the
    /// user's group write there is not the user's own doing.
    pub dirs_owned_by: Option<uid_t>,
}

impl FileRules {
    /// Rules with GA's defaults for a file owned by one of `allowed_owners`.
    pub fn new(allowed_owners: Vec<uid_t>) -> Self {
        Self {
            allowed_owners,
            allowed_perm: DEFAULT_ALLOWED_PERM,
            max_size: DEFAULT_MAX_SIZE,
            trusted_root: None,
            private_group_of: None,
            root_owned_dirs: false,
        }
    }

    /// Only root can change the file or any directory on its path: the file owned by
    /// root, every directory from `/` down root-owned and not group/other writable
    /// (root-owned directory symlinks such as `/lib -> usr/lib` are followed). For what
    /// the module runs, loads or obeys; see [`check_root_controlled`].
    pub fn root_controlled(allowed_perm: u32, max_size: usize) -> Self {
        Self {
            allowed_owners: vec![0],
            allowed_perm,
            max_size,
            trusted_root: Some(PathBuf::from("/")),
            private_group_of: None,
            root_owned_dirs: true,
        }
    }

    /// The access-rule file (`accessfile=`), which decides who may skip the code:
    /// [`FileRules::root_controlled`] (a user who can rename any directory above it can
    /// put another file in its place), readable by all (mode up to 0644), at most the
    /// parser's cap. The module and `totp-enroll` both open it with these rules.
    pub fn access_rules_file() -> Self {
        Self::root_controlled(0o644, totp_core::access::MAX_FILE_BYTES)
    }

    /// The checks for a secret file where `totp_core::placement` put it (owners,
    /// trusted root, permission bits), with the default size cap.
    pub fn for_placement(p: &Placement) -> Self {
        Self {
            allowed_owners: p.owners.clone(),
            allowed_perm: p.allowed_perm,
            max_size: DEFAULT_MAX_SIZE,
            trusted_root: p.trusted_root.clone(),
            private_group_of: None,
            // Root writing as itself: the user may own the file, never a directory.
            root_owned_dirs: p.opener == Opener::Root,
        }
    }

    /// The checks for `p` when it is `user`'s file, or with `user=` the file of `owner`
    /// (the account the placement lets own it). The module and the CLIs all build their
    /// rules here. In the user's home (the chain checked from it), a directory writable
    /// by the user's private group is accepted, as Debian's OpenSSH accepts it. Elsewhere
    /// on the chain (a store's, checked from `/`), group write by the file owner's
    /// private group is excused only on a directory that owner owns: it could make that
    /// directory writable by itself alone anyway (GA's per-user directories made under
    /// umask 002). A home of `/` is no home, and root's group is never excused outside
    /// the home: on some systems accounts have gid 0 as their primary group without
    /// being listed in it.
    pub fn for_placement_of(
        p: &Placement,
        user: &crate::nss::Passwd,
        owner: Option<&crate::nss::Passwd>,
    ) -> Self {
        let rules = Self::for_placement(p);
        let account = owner.unwrap_or(user);
        // The account must be the one the placement names first as the file's owner;
        // anything else (a mismatch between caller and core) excuses nothing.
        if p.owners.first() != Some(&account.uid) {
            return rules;
        }
        let in_home = owner.is_none()
            && user.dir != Path::new("/")
            && p.trusted_root.as_deref() == Some(user.dir.as_path());
        if in_home {
            rules.with_private_group_of(&user.name, user.gid)
        } else if account.uid != 0 && !rules.root_owned_dirs {
            rules
                .with_private_group_of(&account.name, account.gid)
                .on_dirs_owned_by(account.uid)
        } else {
            rules
        }
    }

    /// Also accept directories writable by `owner`'s user-private group (a home of mode
    /// 0775 or 2775 under user-private groups), as Debian's OpenSSH does.
    pub fn with_private_group_of(mut self, user: &str, primary_gid: gid_t) -> Self {
        self.private_group_of = Some(PrivateGroupOwner {
            user: user.to_owned(),
            primary_gid,
            dirs_owned_by: None,
        });
        self
    }

    /// Limit [`FileRules::with_private_group_of`] to directories `uid` owns.
    pub fn on_dirs_owned_by(mut self, uid: uid_t) -> Self {
        if let Some(p) = &mut self.private_group_of {
            p.dirs_owned_by = Some(uid);
        }
        self
    }

    /// Set [`FileRules::trusted_root`].
    #[cfg(test)]
    pub fn with_trusted_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.trusted_root = Some(root.into());
        self
    }
}

/// `fstat` facts about an opened file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Device of the inode.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: uid_t,
    /// Group.
    pub gid: gid_t,
    /// Hard link count.
    pub nlink: u64,
    /// Size when checked (the read itself ignores it).
    pub size: u64,
}

impl FileInfo {
    // The stat field widths differ between architectures; the conversions are only
    // no-ops on some of them.
    #[allow(clippy::useless_conversion)]
    fn from_stat(st: &FileStat) -> Self {
        Self {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: u64::from(st.st_nlink),
            size: u64::try_from(st.st_size).unwrap_or(0),
        }
    }

    /// The permission bits (`mode & 0o7777`).
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// A checked, read file.
pub struct OpenedFile {
    /// The open file (read-only, `O_CLOEXEC`).
    pub file: File,
    /// The parent directory the file was opened from (an `O_PATH` descriptor: enough to
    /// name entries in it, not to read or sync it).
    pub dir: OwnedFd,
    /// The final path component.
    pub name: OsString,
    /// `fstat` of `file` at check time.
    pub info: FileInfo,
    /// At most `max_size` bytes, wiped on drop.
    pub contents: Zeroizing<Vec<u8>>,
}

// Hand-written so that `{:?}` in a log line can never print the secret.
impl fmt::Debug for OpenedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedFile")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .finish_non_exhaustive()
    }
}

mod absence;
mod error;
mod lock;
mod read;
mod walk;
mod write;

pub use absence::{NullokAbsence, NullokUser, nullok_absence};
pub use error::{Absence, Chain, FileError};
// The tests reach the lock internals (the reopen counter, the single attempt).
#[cfg(test)]
use lock::*;
pub use lock::{LockedFile, is_refused_read_only_lock, lock_with_deadline, open_refused_lock};
pub(crate) use read::read_at_most;
use read::*;
pub use read::{
    check_root_controlled, check_root_controlled_interpreter, check_socket_path, on_network_fs,
    open_checked, open_checked_noting, shared_fs_type,
};
pub(crate) use walk::open_dir_readable;
use walk::*;
use write::*;
pub use write::{
    NewFile, PendingNewFile, entry_exists, entry_is_regular, prepare_new_file_in, write_new_file,
    write_new_file_checked,
};
pub(crate) use write::{remove_access_acl, remove_dir_acls};

#[cfg(test)]
mod checked_write_tests;
#[cfg(test)]
mod tests;
