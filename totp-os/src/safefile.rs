//! Defensive file access for secret and state files (rules R5–R7, R15–R17).
//!
//! - [`open_checked`]: fd-relative walk from `/` that never follows a symlink a user
//!   could have planted, checks on the opened fd (type, owner, mode, link count, size),
//!   an OpenSSH-StrictModes-style directory chain check, and a bounded read.
//! - [`lock_with_deadline`]: the same, plus an exclusive `flock` taken with a bounded
//!   wait and a check that the path still names the locked inode.
//! - [`LockedFile::replace`] and [`write_new_file`]: crash-safe rewrite (random temp
//!   name, fsync, rename, directory fsync), keeping mode and SELinux label.
//!
//! Call these with the right filesystem identity in place (see [`crate::creds`]): files
//! are created as the calling identity and never chowned.
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
use totp_core::placement::Placement;
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
    /// Top of the directory chain check (the home directory in home mode, the store
    /// root in store mode). Must be an absolute prefix of the file's directory. `None`
    /// checks the parent directory only.
    pub trusted_root: Option<PathBuf>,
}

impl FileRules {
    /// Rules with GA's defaults for a file owned by one of `allowed_owners`.
    pub fn new(allowed_owners: Vec<uid_t>) -> Self {
        Self {
            allowed_owners,
            allowed_perm: DEFAULT_ALLOWED_PERM,
            max_size: DEFAULT_MAX_SIZE,
            trusted_root: None,
        }
    }

    /// The checks for a secret file where `totp_core::placement` put it (owners,
    /// trusted root, permission bits), with the default size cap.
    pub fn for_placement(p: &Placement) -> Self {
        Self {
            allowed_owners: p.owners.clone(),
            allowed_perm: p.allowed_perm,
            max_size: DEFAULT_MAX_SIZE,
            trusted_root: p.trusted_root.clone(),
        }
    }

    /// Set [`FileRules::trusted_root`].
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
    /// The parent directory the file was opened from (read-only when the identity may
    /// list it, else `O_PATH`).
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

impl fmt::Debug for LockedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedFile")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .finish_non_exhaustive()
    }
}

/// Why a file could not be opened, locked or written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileError {
    /// The final component does not exist (`ENOENT` there, and only there).
    NotFound,
    /// The path is not absolute, has a `..` component, or has no file name.
    InvalidPath,
    /// The file's directory is not below [`FileRules::trusted_root`].
    NotUnderTrustedRoot,
    /// The final component is a symlink (`ELOOP`); it was not followed.
    Symlink,
    /// A directory component is a symlink that root did not place in a root-owned,
    /// non-writable directory; it was not followed.
    UntrustedSymlink {
        /// The symlink.
        path: PathBuf,
    },
    /// More than 40 symlinks on the way.
    TooManySymlinks,
    /// A directory component does not exist.
    MissingDirectory {
        /// The missing directory.
        path: PathBuf,
    },
    /// A directory component is not a directory.
    NotADirectory {
        /// The offending component.
        path: PathBuf,
    },
    /// A directory in the checked chain has a bad owner or is group/other writable.
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        uid: uid_t,
        /// Its full `st_mode`.
        mode: u32,
    },
    /// The file is not a regular file (directory, FIFO, device, socket).
    NotRegular {
        /// Full `st_mode`.
        mode: u32,
    },
    /// The owner is not in [`FileRules::allowed_owners`].
    BadOwner {
        /// The file's owner.
        uid: uid_t,
    },
    /// Permission bits outside what is allowed.
    BadMode {
        /// The permission bits (`mode & 0o7777`).
        perm: u32,
    },
    /// The file has more than one hard link.
    HardLinked {
        /// `st_nlink`.
        nlink: u64,
    },
    /// More than the size limit.
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// [`write_new_file`] without `overwrite` found the target present.
    AlreadyExists,
    /// The temp file would be owned by someone other than the file it replaces
    /// (credentials were not switched to the owner).
    WrongIdentity {
        /// The original owner.
        expected: uid_t,
        /// The owner the temp file got.
        got: uid_t,
    },
    /// Nobody released the lock before the deadline.
    LockTimeout,
    /// The path kept naming a different inode after each lock.
    Unstable,
    /// A system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The errno.
        errno: i32,
    },
}

impl FileError {
    /// True only for a missing final component.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound)
    }

    /// The closest errno, for callers that map errors to return codes or messages.
    pub fn errno(&self) -> i32 {
        match self {
            Self::NotFound | Self::MissingDirectory { .. } => libc::ENOENT,
            Self::InvalidPath => libc::EINVAL,
            Self::Symlink | Self::UntrustedSymlink { .. } | Self::TooManySymlinks => libc::ELOOP,
            Self::NotADirectory { .. } => libc::ENOTDIR,
            Self::NotUnderTrustedRoot
            | Self::UnsafeDirectory { .. }
            | Self::NotRegular { .. }
            | Self::BadOwner { .. }
            | Self::BadMode { .. }
            | Self::HardLinked { .. }
            | Self::WrongIdentity { .. } => libc::EPERM,
            Self::TooLarge { .. } => libc::EFBIG,
            Self::AlreadyExists => libc::EEXIST,
            Self::LockTimeout | Self::Unstable => libc::EAGAIN,
            Self::Os { errno, .. } => *errno,
        }
    }

    fn os(op: &'static str, errno: Errno) -> Self {
        Self::Os {
            op,
            errno: errno as i32,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("file does not exist"),
            Self::InvalidPath => f.write_str("path must be absolute, without '..', naming a file"),
            Self::NotUnderTrustedRoot => f.write_str("file is outside its trusted directory"),
            Self::Symlink => f.write_str("file is a symbolic link (not followed)"),
            Self::UntrustedSymlink { path } => {
                write!(
                    f,
                    "{} is a symbolic link not owned by root (not followed)",
                    path.display()
                )
            }
            Self::TooManySymlinks => f.write_str("too many symbolic links"),
            Self::MissingDirectory { path } => write!(f, "{} does not exist", path.display()),
            Self::NotADirectory { path } => write!(f, "{} is not a directory", path.display()),
            Self::UnsafeDirectory { path, uid, mode } => write!(
                f,
                "{} is owned by uid {uid} with mode {:04o}: must be owned by root or the \
                 user and not group/other writable",
                path.display(),
                mode & 0o7777
            ),
            Self::NotRegular { mode } => {
                write!(f, "not a regular file (type {:o})", mode & libc::S_IFMT)
            }
            Self::BadOwner { uid } => write!(f, "owned by uid {uid}, which is not allowed"),
            Self::BadMode { perm } => write!(f, "mode {perm:04o} is too permissive"),
            Self::HardLinked { nlink } => write!(f, "file has {nlink} hard links"),
            Self::TooLarge { limit } => write!(f, "file is larger than {limit} bytes"),
            Self::AlreadyExists => f.write_str("file already exists"),
            Self::WrongIdentity { expected, got } => write!(
                f,
                "new file would be owned by uid {got} instead of {expected}; wrong credentials"
            ),
            Self::LockTimeout => f.write_str("timed out waiting for the file lock"),
            Self::Unstable => f.write_str("file kept being replaced while locking"),
            Self::Os { op, errno } => {
                write!(f, "{op}: {}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

impl std::error::Error for FileError {}

/// Open `path` safely, check it against `rules` and read it (at most `max_size` bytes).
///
/// The walk starts at `/` and opens one component at a time with `O_NOFOLLOW`. A
/// symlink among the directories is followed only when root owns it and the directory
/// holding it (which must not be group/other writable), e.g. `/home -> /var/home`. The
/// final component is never followed. The file itself is opened with
/// `O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_NOCTTY|O_CLOEXEC` after an `lstat`-style check, so
/// FIFOs and devices are refused without blocking. Then, on the fd: regular file, owner
/// in `allowed_owners`, permission bits within `allowed_perm` (never group/other write,
/// never setuid/setgid/sticky), exactly one link, and not larger than `max_size`. The
/// read ignores `st_size` and stops at `max_size + 1` bytes.
pub fn open_checked(path: &Path, rules: &FileRules) -> Result<OpenedFile, FileError> {
    let opened = open_unread(path, rules)?;
    let contents = read_bounded(&opened.file, rules.max_size, opened.info.size)?;
    Ok(OpenedFile {
        file: opened.file,
        dir: opened.dir,
        name: opened.name,
        info: opened.info,
        contents,
    })
}

/// Check that only root can change the file at `path` and the directories leading to it,
/// for code the module runs or loads (the secret command, the Redis plugin): a regular
/// file owned by root, not group/other writable, one link, at most `max_size` bytes;
/// every directory from `/` down root-owned and not group/other writable; the final
/// component not a symlink (root-owned directory symlinks such as `/lib -> usr/lib` are
/// followed). Like OpenSSH's checks on `AuthorizedKeysCommand`.
pub fn check_root_controlled(path: &Path, max_size: usize) -> Result<FileInfo, FileError> {
    let rules = FileRules {
        allowed_owners: vec![0],
        allowed_perm: 0o755,
        max_size,
        trusted_root: Some(PathBuf::from("/")),
    };
    open_unread(path, &rules).map(|opened| opened.info)
}

/// A file opened with [`lock_with_deadline`]: exclusively `flock`ed until dropped.
///
/// Fields are private so the lock cannot be separated from the file it protects.
pub struct LockedFile {
    file: File,
    dir: OwnedFd,
    name: OsString,
    info: FileInfo,
    contents: Zeroizing<Vec<u8>>,
    max_size: usize,
}

/// Open and check `path` like [`open_checked`], then take an exclusive `flock`,
/// polling with short growing pauses until `timeout` runs out
/// ([`FileError::LockTimeout`]).
///
/// Once locked, the path is checked to still name the locked inode; if a writer
/// renamed a new file in meanwhile, the lock is dropped and the new file opened and
/// locked instead (bounded, [`FileError::Unstable`]). The contents are read from the
/// locked fd, so they are current for the whole critical section.
pub fn lock_with_deadline(
    path: &Path,
    rules: &FileRules,
    timeout: Duration,
) -> Result<LockedFile, FileError> {
    let deadline = Instant::now() + timeout;
    for attempt in 0..MAX_REOPENS {
        if attempt > 0 && Instant::now() >= deadline {
            return Err(FileError::LockTimeout);
        }
        let opened = open_unread(path, rules)?;
        acquire_lock(&opened.file, deadline)?;
        match stat::fstatat(
            &opened.dir,
            opened.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if same_inode(&FileInfo::from_stat(&st), &opened.info) => {}
            // Replaced or removed while we waited: the lock we hold protects nothing.
            Ok(_) | Err(Errno::ENOENT) => {
                #[cfg(test)]
                REOPENS.with(|r| r.set(r.get() + 1));
                continue;
            }
            Err(e) => return Err(FileError::os("stat after lock", e)),
        }
        // The holder we waited for may also have changed mode or owner in place.
        let st = stat::fstat(&opened.file).map_err(|e| FileError::os("fstat", e))?;
        let info = FileInfo::from_stat(&st);
        check_file(&info, rules)?;
        let contents = read_bounded(&opened.file, rules.max_size, info.size)?;
        return Ok(LockedFile {
            file: opened.file,
            dir: opened.dir,
            name: opened.name,
            info,
            contents,
            max_size: rules.max_size,
        });
    }
    Err(FileError::Unstable)
}

impl LockedFile {
    /// The contents read under the lock, or the last ones written by [`Self::replace`].
    pub fn contents(&self) -> &[u8] {
        &self.contents
    }

    /// `fstat` facts about the file currently locked.
    pub fn info(&self) -> FileInfo {
        self.info
    }

    /// The final path component.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The parent directory.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Atomically replace the file with `new_contents`, keeping the lock.
    ///
    /// A temp file `.<name>.tmp-<random hex>` is created in the same directory as the
    /// calling identity (never chowned; it must match the current owner, else
    /// [`FileError::WrongIdentity`]), given the original permission bits and SELinux
    /// label, locked, written, fsynced and renamed over the original; then the directory
    /// is fsynced. On any error before the rename the temp file is removed and the old
    /// file is untouched. The new file is locked *before* it becomes visible, so a
    /// waiter that wins the old inode's lock sees the path moved and queues on the new
    /// one; this also lets the caller call `replace` again in the same critical section.
    ///
    /// An error from the final directory fsync is returned although the new contents
    /// are in place (and locked): the caller cannot know they are durable.
    pub fn replace(&mut self, new_contents: &[u8]) -> Result<(), FileError> {
        if new_contents.len() > self.max_size {
            return Err(FileError::TooLarge {
                limit: self.max_size,
            });
        }
        let perm = self.info.perm();
        let dir = self.dir.as_fd();
        let (temp, new_file) = TempName::create(dir, &self.name, perm & 0o600)?;
        set_perm(&new_file, perm)?;
        let st = stat::fstat(&new_file).map_err(|e| FileError::os("fstat temp file", e))?;
        if st.st_uid != self.info.uid {
            return Err(FileError::WrongIdentity {
                expected: self.info.uid,
                got: st.st_uid,
            });
        }
        copy_selinux_label(&self.file, &new_file)?;
        // Nobody else knows the random name yet, so this cannot be contended.
        if !try_lock_once(&new_file)? {
            return Err(FileError::os("lock temp file", Errno::EWOULDBLOCK));
        }
        write_all(&new_file, new_contents)?;
        sync_file(&new_file, FaultPoint::Fsync, "fsync temp file")?;
        fault::hit(FaultPoint::Rename).map_err(|e| FileError::Os {
            op: "rename",
            errno: e,
        })?;
        fcntl::renameat(dir, temp.name.as_os_str(), dir, self.name.as_os_str())
            .map_err(|e| FileError::os("rename", e))?;
        temp.disarm();
        // Dropping the old fd releases the old inode's lock; waiters on it will see the
        // path now names the new (already locked) inode and retry.
        self.file = new_file;
        self.info = FileInfo::from_stat(&st);
        self.info.size = new_contents.len() as u64;
        self.contents = Zeroizing::new(new_contents.to_vec());
        sync_dir(dir)
    }
}

/// Create or replace `dir_path/name` with `contents` and permission bits `mode`,
/// crash-safely (for the enrollment tool).
///
/// The directory is reached with the same symlink rules as [`open_checked`] (no owner
/// checks: run with the identity that should own the file). A symlink or non-regular
/// file at the target is refused. With `overwrite == false` an existing target gives
/// [`FileError::AlreadyExists`], race-free (`renameat2(RENAME_NOREPLACE)`, or `linkat`
/// where the filesystem lacks it). Temp names are random, so stale temp files from a
/// crash never block. On error the target is untouched and no temp file remains.
pub fn write_new_file(
    dir_path: &Path,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), FileError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(FileError::InvalidPath);
    }
    check_new_mode(mode)?;
    let walked = walk(&dir_components(dir_path)?, None)?;
    write_in(walked, name, contents, mode, overwrite)
}

/// [`write_new_file`] for `path`, creating it only after every directory from
/// `rules.trusted_root` down to its parent (the parent alone without one) passed the
/// checks [`open_checked`] makes: owned by root or one of `rules.allowed_owners`, not
/// group/other writable. The checks are made on the descriptors the write then uses, so
/// nothing can be swapped in between. For root writing as itself into a store.
pub fn write_new_file_checked(
    path: &Path,
    rules: &FileRules,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), FileError> {
    check_new_mode(mode)?;
    let (dirs, name) = split_file_path(path)?;
    let walked = walk_checked(&dirs, rules)?;
    write_in(walked, name, contents, mode, overwrite)
}

/// Whether anything (a symlink included, which is not followed) is at `path`. The
/// directories are reached as [`open_checked`] reaches them; with `rules` they are also
/// checked as [`write_new_file_checked`] checks them, so a caller can refuse early
/// what the write would refuse.
pub fn entry_exists(path: &Path, rules: Option<&FileRules>) -> Result<bool, FileError> {
    let (dirs, name) = split_file_path(path)?;
    let walked = match rules {
        Some(rules) => walk_checked(&dirs, rules)?,
        None => walk(&dirs, None)?,
    };
    match stat::fstatat(&walked.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(FileError::os("stat", e)),
    }
}

/// A new file never gets group/other write or special bits.
fn check_new_mode(mode: u32) -> Result<(), FileError> {
    if mode & !0o777 != 0 || mode & 0o022 != 0 {
        return Err(FileError::BadMode { perm: mode });
    }
    Ok(())
}

fn write_in(
    walked: Walked,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), FileError> {
    let dir = reopen_readable(walked.fd, "open directory for writing")?;
    match stat::fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
            if kind == SFlag::S_IFLNK {
                return Err(FileError::Symlink);
            }
            if kind != SFlag::S_IFREG {
                return Err(FileError::NotRegular { mode: st.st_mode });
            }
            if !overwrite {
                return Err(FileError::AlreadyExists);
            }
        }
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(FileError::os("stat target", e)),
    }
    let (temp, file) = TempName::create(dir.as_fd(), name, mode & 0o600)?;
    set_perm(&file, mode)?;
    write_all(&file, contents)?;
    sync_file(&file, FaultPoint::Fsync, "fsync temp file")?;
    drop(file);
    fault::hit(FaultPoint::Rename).map_err(|e| FileError::Os {
        op: "rename",
        errno: e,
    })?;
    if overwrite {
        fcntl::renameat(&dir, temp.name.as_os_str(), &dir, name)
            .map_err(|e| FileError::os("rename", e))?;
        temp.disarm();
    } else {
        match fcntl::renameat2(
            &dir,
            temp.name.as_os_str(),
            &dir,
            name,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => temp.disarm(),
            Err(Errno::EEXIST) => return Err(FileError::AlreadyExists),
            // Filesystems without RENAME_NOREPLACE: linkat also refuses an existing
            // target; the temp name is then removed when `temp` drops.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                match unistd::linkat(&dir, temp.name.as_os_str(), &dir, name, AtFlags::empty()) {
                    Ok(()) => drop(temp),
                    Err(Errno::EEXIST) => return Err(FileError::AlreadyExists),
                    Err(e) => return Err(FileError::os("link", e)),
                }
            }
            Err(e) => return Err(FileError::os("rename", e)),
        }
    }
    sync_dir(dir.as_fd())
}

// ---------------------------------------------------------------------------------------
// Walk

struct Unread {
    file: File,
    dir: OwnedFd,
    name: OsString,
    info: FileInfo,
}

/// Directory checks for the chain from the trusted root (or just the parent) down.
struct DirChecks<'a> {
    owners: &'a [uid_t],
    /// Number of directory components that make up the trusted root; `None` checks the
    /// parent only.
    trusted_depth: Option<usize>,
}

struct Walked {
    fd: OwnedFd,
    stat: FileStat,
    shown: PathBuf,
    checked: bool,
}

enum Step {
    Name(OsString),
    Parent,
    TrustedRoot,
}

fn open_unread(path: &Path, rules: &FileRules) -> Result<Unread, FileError> {
    let (dirs, name) = split_file_path(path)?;
    let walked = walk_checked(&dirs, rules)?;
    // The lstat first keeps FIFOs and devices from being opened at all (opening some
    // devices has side effects); the fd checks below remain the authoritative ones.
    let pre = match stat::fstatat(&walked.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Err(FileError::NotFound),
        Err(e) => return Err(FileError::os("stat", e)),
    };
    match SFlag::from_bits_truncate(pre.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => {}
        SFlag::S_IFLNK => return Err(FileError::Symlink),
        _ => return Err(FileError::NotRegular { mode: pre.st_mode }),
    }
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let mut reopens = 0;
    let (file, info) = loop {
        let fd = match fcntl::openat(&walked.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(FileError::NotFound),
            Err(Errno::ELOOP) => return Err(FileError::Symlink),
            Err(e) => return Err(FileError::os("open", e)),
        };
        let file = File::from(fd);
        let st = stat::fstat(&file).map_err(|e| FileError::os("fstat", e))?;
        let info = FileInfo::from_stat(&st);
        // No links left: a concurrent rewrite renamed its new file over this one between
        // our open and fstat (found by 32 parallel logins). The current file is at the
        // path now, so open that one; anything else with no links fails the checks below.
        if info.nlink == 0 && reopens < MAX_REOPENS_UNLINKED {
            reopens += 1;
            continue;
        }
        break (file, info);
    };
    check_file(&info, rules)?;
    let dir = reopen_readable(walked.fd, "open directory")?;
    Ok(Unread {
        file,
        dir,
        name: name.to_owned(),
        info,
    })
}

/// Walk to the directory `dirs` names, checking every directory from the trusted root
/// down (the last one alone without a trusted root).
fn walk_checked(dirs: &[OsString], rules: &FileRules) -> Result<Walked, FileError> {
    let trusted_depth = match &rules.trusted_root {
        None => None,
        Some(root) => {
            let root = dir_components(root)?;
            if root.len() > dirs.len() || root.iter().zip(dirs).any(|(a, b)| a != b) {
                return Err(FileError::NotUnderTrustedRoot);
            }
            Some(root.len())
        }
    };
    let checks = DirChecks {
        owners: &rules.allowed_owners,
        trusted_depth,
    };
    let walked = walk(dirs, Some(&checks))?;
    if !walked.checked {
        check_dir(&walked.stat, &walked.shown, checks.owners)?;
    }
    Ok(walked)
}

/// Split an absolute file path into its directory components and final name.
fn split_file_path(path: &Path) -> Result<(Vec<OsString>, &OsStr), FileError> {
    let name = match path.components().next_back() {
        Some(Component::Normal(n)) => n,
        _ => return Err(FileError::InvalidPath),
    };
    let parent = path.parent().ok_or(FileError::InvalidPath)?;
    Ok((dir_components(parent)?, name))
}

/// Components of an absolute directory path; `..` is refused because the walk must not
/// depend on how the caller spelled the path.
fn dir_components(path: &Path) -> Result<Vec<OsString>, FileError> {
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return Err(FileError::InvalidPath);
    }
    comps
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(n) => Ok(n.to_owned()),
            _ => Err(FileError::InvalidPath),
        })
        .collect()
}

fn open_root() -> Result<(OwnedFd, FileStat), FileError> {
    let fd = fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::os("open /", e))?;
    let st = stat::fstat(&fd).map_err(|e| FileError::os("fstat /", e))?;
    Ok((fd, st))
}

/// Walk `comps` from `/`, one `O_PATH|O_NOFOLLOW` directory at a time.
///
/// With `checks`, every directory from the trusted root down (or none, when only the
/// parent is checked by the caller) must pass [`check_dir`]; `Walked::checked` says
/// whether the last directory has been checked already.
fn walk(comps: &[OsString], checks: Option<&DirChecks<'_>>) -> Result<Walked, FileError> {
    let mut steps: VecDeque<Step> = comps.iter().cloned().map(Step::Name).collect();
    if let Some(depth) = checks.and_then(|c| c.trusted_depth) {
        steps.insert(depth, Step::TrustedRoot);
    }
    let (mut cur, mut cur_stat) = open_root()?;
    let mut shown = PathBuf::from("/");
    let mut checking = false;
    let mut links = 0u32;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;

    while let Some(step) = steps.pop_front() {
        let name = match step {
            Step::TrustedRoot => {
                checking = true;
                if let Some(c) = checks {
                    check_dir(&cur_stat, &shown, c.owners)?;
                }
                continue;
            }
            Step::Parent => OsString::from(".."),
            Step::Name(n) => n,
        };
        let st = match stat::fstatat(&cur, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                return Err(FileError::MissingDirectory {
                    path: shown.join(&name),
                });
            }
            Err(e) => return Err(FileError::os("stat directory", e)),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            let link_path = shown.join(&name);
            // Only root can have created a root-owned symlink, and only root can move
            // things in a root-owned directory nobody else may write: such a link
            // (e.g. /home -> /var/home) is the administrator's decision.
            let trusted = st.st_uid == 0 && cur_stat.st_uid == 0 && cur_stat.st_mode & 0o022 == 0;
            if !trusted {
                return Err(FileError::UntrustedSymlink { path: link_path });
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(FileError::TooManySymlinks);
            }
            let target = fcntl::readlinkat(&cur, name.as_os_str())
                .map_err(|e| FileError::os("readlink", e))?;
            let target = PathBuf::from(target);
            let mut expansion = Vec::new();
            for c in target.components() {
                match c {
                    Component::RootDir => {
                        (cur, cur_stat) = open_root()?;
                        shown = PathBuf::from("/");
                        if checking && let Some(c) = checks {
                            check_dir(&cur_stat, &shown, c.owners)?;
                        }
                    }
                    Component::CurDir | Component::Prefix(_) => {}
                    Component::ParentDir => expansion.push(Step::Parent),
                    Component::Normal(n) => expansion.push(Step::Name(n.to_owned())),
                }
            }
            if target.as_os_str().is_empty() {
                return Err(FileError::MissingDirectory { path: link_path });
            }
            for s in expansion.into_iter().rev() {
                steps.push_front(s);
            }
            continue;
        }
        if kind != SFlag::S_IFDIR {
            return Err(FileError::NotADirectory {
                path: shown.join(&name),
            });
        }
        let fd =
            fcntl::openat(&cur, name.as_os_str(), dir_flags, Mode::empty()).map_err(
                |e| match e {
                    Errno::ENOENT => FileError::MissingDirectory {
                        path: shown.join(&name),
                    },
                    // Swapped for a symlink or a file since the stat: refuse, never follow.
                    Errno::ENOTDIR | Errno::ELOOP => FileError::NotADirectory {
                        path: shown.join(&name),
                    },
                    e => FileError::os("open directory", e),
                },
            )?;
        let fst = stat::fstat(&fd).map_err(|e| FileError::os("fstat directory", e))?;
        if SFlag::from_bits_truncate(fst.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
            return Err(FileError::NotADirectory {
                path: shown.join(&name),
            });
        }
        if name == ".." {
            shown.pop();
        } else {
            shown.push(&name);
        }
        if checking && let Some(c) = checks {
            check_dir(&fst, &shown, c.owners)?;
        }
        cur = fd;
        cur_stat = fst;
    }
    Ok(Walked {
        fd: cur,
        stat: cur_stat,
        shown,
        checked: checking,
    })
}

/// Reopen a walked `O_PATH` directory for reading, which `fsync` needs. An identity
/// that may search but not list the directory keeps the `O_PATH` fd (enough to open
/// the file; a later directory fsync then fails and the write is denied).
fn reopen_readable(fd: OwnedFd, op: &'static str) -> Result<OwnedFd, FileError> {
    match fcntl::openat(
        &fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(ro) => Ok(ro),
        Err(Errno::EACCES) => Ok(fd),
        Err(e) => Err(FileError::os(op, e)),
    }
}

fn same_inode(a: &FileInfo, b: &FileInfo) -> bool {
    a.dev == b.dev && a.ino == b.ino
}

/// OpenSSH StrictModes: owned by root or an allowed owner, not group/other writable.
fn check_dir(st: &FileStat, shown: &Path, owners: &[uid_t]) -> Result<(), FileError> {
    let owner_ok = st.st_uid == 0 || owners.contains(&st.st_uid);
    if !owner_ok || st.st_mode & 0o022 != 0 {
        return Err(FileError::UnsafeDirectory {
            path: shown.to_owned(),
            uid: st.st_uid,
            mode: st.st_mode,
        });
    }
    Ok(())
}

fn check_file(info: &FileInfo, rules: &FileRules) -> Result<(), FileError> {
    if info.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(FileError::NotRegular { mode: info.mode });
    }
    if !rules.allowed_owners.contains(&info.uid) {
        return Err(FileError::BadOwner { uid: info.uid });
    }
    let perm = info.perm();
    // allowed_perm may relax read bits only: write by others or special bits would let
    // someone else change the secret or state, whatever the admin configured.
    if perm & !rules.allowed_perm != 0 || perm & 0o7022 != 0 {
        return Err(FileError::BadMode { perm });
    }
    if info.nlink != 1 {
        return Err(FileError::HardLinked { nlink: info.nlink });
    }
    if info.size > rules.max_size as u64 {
        return Err(FileError::TooLarge {
            limit: rules.max_size,
        });
    }
    Ok(())
}

/// Read from offset 0 up to `max + 1` bytes, whatever `st_size` says (the file may grow,
/// or lie). The first buffer holds `size_hint + 1` bytes (the `st_size` just checked),
/// so a small file does not cost a `max`-sized buffer that must be wiped; the hint only
/// sizes the buffer. A file larger than its hint grows into a fresh buffer, and the old
/// one is wiped when dropped, so no copy of the contents is left in freed memory.
fn read_bounded(file: &File, max: usize, size_hint: u64) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let cap = max
        .checked_add(1)
        .ok_or(FileError::TooLarge { limit: max })?;
    // At least a page, so a file that grows a little after fstat needs no second buffer.
    let first = usize::try_from(size_hint)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .max(4096)
        .min(cap);
    let mut buf = Zeroizing::new(vec![0u8; first]);
    let mut filled = 0usize;
    while filled < cap {
        if filled == buf.len() {
            let mut bigger = Zeroizing::new(vec![0u8; buf.len().saturating_mul(2).min(cap)]);
            bigger[..filled].copy_from_slice(&buf[..filled]);
            buf = bigger;
        }
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(FileError::Os {
                    op: "read",
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                });
            }
        }
    }
    if filled > max {
        return Err(FileError::TooLarge { limit: max });
    }
    buf.truncate(filled);
    Ok(buf)
}

// ---------------------------------------------------------------------------------------
// Lock

// Lets tests see that the inode re-check really sent a waiter round again.
#[cfg(test)]
thread_local! {
    static REOPENS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One non-blocking attempt: Ok(true) locked, Ok(false) held by someone else.
fn try_lock_once(file: &File) -> Result<bool, FileError> {
    match fault::hit(FaultPoint::Lock) {
        Ok(()) => {}
        Err(e) if e == libc::EWOULDBLOCK => return Ok(false),
        Err(e) => {
            return Err(FileError::Os {
                op: "flock",
                errno: e,
            });
        }
    }
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(FileError::Os {
            op: "flock",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }),
    }
}

fn acquire_lock(file: &File, deadline: Instant) -> Result<(), FileError> {
    let mut pause = LOCK_PAUSE_MIN;
    loop {
        if try_lock_once(file)? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(FileError::LockTimeout);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(LOCK_PAUSE_MAX);
    }
}

// ---------------------------------------------------------------------------------------
// Write

/// The name of a temp file in the target's directory, unlinked on drop unless the
/// rewrite committed it.
struct TempName<'a> {
    dir: BorrowedFd<'a>,
    name: OsString,
    armed: bool,
}

impl<'a> TempName<'a> {
    /// Create a fresh temp file next to `target`: `(guard, open file)`.
    fn create(
        dir: BorrowedFd<'a>,
        target: &OsStr,
        create_mode: u32,
    ) -> Result<(Self, File), FileError> {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        // A collision of 64 random bits means the RNG is broken or predictable; a few
        // tries, then give up.
        for _ in 0..4 {
            let name = temp_name(target)?;
            fault::hit(FaultPoint::CreateTemp).map_err(|e| FileError::Os {
                op: "create temp file",
                errno: e,
            })?;
            match fcntl::openat(
                dir,
                name.as_os_str(),
                flags,
                Mode::from_bits_truncate(create_mode),
            ) {
                Ok(fd) => {
                    return Ok((
                        Self {
                            dir,
                            name,
                            armed: true,
                        },
                        File::from(fd),
                    ));
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(FileError::os("create temp file", e)),
            }
        }
        Err(FileError::os("create temp file", Errno::EEXIST))
    }

    /// The temp name now is the target: nothing to clean up.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempName<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover temp is harmless (random names are never reused or
            // read), and the original error is what the caller needs.
            let _ = unistd::unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

fn temp_name(target: &OsStr) -> Result<OsString, FileError> {
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).map_err(|e| FileError::Os {
        op: "getrandom",
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    })?;
    let mut name = Vec::with_capacity(target.len() + 22);
    name.push(b'.');
    name.extend_from_slice(target.as_bytes());
    name.extend_from_slice(b".tmp-");
    for b in rnd {
        name.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    Ok(OsString::from_vec(name))
}

fn set_perm(file: &File, perm: u32) -> Result<(), FileError> {
    // umask shaped the create mode; the rewrite must end with exactly the old bits.
    stat::fchmod(file, Mode::from_bits_truncate(perm)).map_err(|e| FileError::os("fchmod", e))
}

fn write_all(file: &File, mut data: &[u8]) -> Result<(), FileError> {
    let mut out = file;
    while !data.is_empty() {
        fault::hit(FaultPoint::Write).map_err(|e| FileError::Os {
            op: "write",
            errno: e,
        })?;
        match out.write(data) {
            Ok(0) => {
                return Err(FileError::Os {
                    op: "write",
                    errno: libc::EIO,
                });
            }
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(FileError::Os {
                    op: "write",
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                });
            }
        }
    }
    Ok(())
}

fn sync_file(fd: impl AsFd, point: FaultPoint, op: &'static str) -> Result<(), FileError> {
    fault::hit(point).map_err(|e| FileError::Os { op, errno: e })?;
    unistd::fsync(fd).map_err(|e| FileError::os(op, e))
}

fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), FileError> {
    sync_file(dir, FaultPoint::DirFsync, "fsync directory")
}

#[cfg(test)]
mod checked_write_tests;
#[cfg(test)]
mod tests;
