//! Creating files crash-safely: temp name, fsync, rename, directory fsync.

use super::lock::{acquire_lock, check_still_named};
use super::*;

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
    prepare_new_file_in(dir_path, name, contents, mode, overwrite, &[])?.commit()
}

/// [`write_new_file`] in two steps: the file complete and synced under a temp name
/// now, at its name only at [`PendingNewFile::commit`]. Dropped uncommitted, only the
/// temp file goes, with the identity current at the drop; whatever is at the name stays
/// as it was. An existing file at the name without `overwrite` is refused here already.
/// For a file that must not replace another until a later step succeeded (the
/// enrolment tool's QR images, put in place only once the secret file is).
/// `dir_owners`: when not empty, the directory reached must be owned by one of them
/// (checked on the descriptor written through), else [`FileError::UnsafeDirectory`]
/// and nothing is written: root writing as itself keeps out of a directory another
/// account controls (rule R4).
pub fn prepare_new_file_in(
    dir_path: &Path,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
    dir_owners: &[uid_t],
) -> Result<PendingNewFile, FileError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(FileError::InvalidPath);
    }
    check_new_mode(mode)?;
    let walked = walk(&dir_components(dir_path)?, None)?;
    if !dir_owners.is_empty() {
        let st = stat::fstat(&walked.fd).map_err(|e| FileError::os("fstat directory", e))?;
        if !dir_owners.contains(&st.st_uid) {
            return Err(FileError::UnsafeDirectory {
                path: dir_path.to_path_buf(),
                uid: st.st_uid,
                mode: st.st_mode,
                root_only: false,
            });
        }
    }
    let how = NewFile::new(mode, overwrite, REPLACE_WAIT);
    prepare_in(walked, name, contents, &how).map(PendingNewFile)
}

/// A file [`prepare_new_file_in`] wrote under a temp name.
#[derive(Debug)]
pub struct PendingNewFile(PendingFile);

impl PendingNewFile {
    /// Renames the file into place (without `overwrite`, refusing a file that appeared
    /// there since, race-free) and syncs the directory.
    pub fn commit(self) -> Result<(), FileError> {
        self.0.commit(REPLACE_WAIT)
    }
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
    Ok(entry_is_regular(path, rules)?.is_some())
}

/// What [`entry_exists`] finds, told apart: `None` nothing, `Some(true)` a regular
/// file, `Some(false)` anything else (a symlink, not followed; a directory; a FIFO).
/// An enrolment is only ever in a regular file: a caller that reports "already there"
/// does not say so of an entry no login reads.
pub fn entry_is_regular(path: &Path, rules: Option<&FileRules>) -> Result<Option<bool>, FileError> {
    let (dirs, name) = split_file_path(path)?;
    let walked = match rules {
        Some(rules) => walk_checked(&dirs, rules)?,
        None => walk(&dirs, None)?,
    };
    match stat::fstatat(&walked.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st.st_mode & libc::S_IFMT == libc::S_IFREG)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(FileError::os("stat", e)),
    }
}

/// A new file never gets group/other write or special bits.
pub(super) fn check_new_mode(mode: u32) -> Result<(), FileError> {
    if mode & !0o777 != 0 || mode & 0o022 != 0 {
        return Err(FileError::BadMode { perm: mode });
    }
    Ok(())
}

/// How long [`write_new_file`] and [`write_new_file_checked`] wait, when replacing a
/// file, for a login that holds its lock (rule R16's bound).
const REPLACE_WAIT: Duration = Duration::from_secs(5);

pub(super) fn write_in(
    walked: Walked,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), FileError> {
    let how = NewFile::new(mode, overwrite, REPLACE_WAIT);
    prepare_in(walked, name, contents, &how)?.commit(REPLACE_WAIT)
}

/// How [`FileRules::write_new_file_then`] writes a file and replaces one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewFile {
    /// Permission bits of the new file.
    pub mode: u32,
    /// Replace a file at the path (else [`FileError::AlreadyExists`]).
    pub overwrite: bool,
    /// How long to wait for a login holding the replaced file's lock.
    pub lock_wait: Duration,
    /// Narrow `mode` to the bits of the file being replaced, read on the file locked
    /// for the rename, as long as the owner can still read it (GA's tool writes 0400,
    /// and a line with `allowed_perm=0400` refuses 0600).
    pub keep_narrower_mode: bool,
    /// Owner and group the new file is given before it takes its name (root writing a
    /// store file a login requires the user to own); `None`: the writer's.
    pub owner: Option<(uid_t, gid_t)>,
    /// Give the new file the group of the file being replaced, read on the file locked
    /// for the rename (root replacing a store file, as its in-place rewrites keep it,
    /// [`LockedFile::keep_owner`]); without a file to replace, `owner`'s or the writer's.
    pub keep_group: bool,
}

impl NewFile {
    /// A file with bits `mode`, owned by the writer, keeping no old mode.
    pub fn new(mode: u32, overwrite: bool, lock_wait: Duration) -> Self {
        Self {
            mode,
            overwrite,
            lock_wait,
            keep_narrower_mode: false,
            owner: None,
            keep_group: false,
        }
    }
}

impl FileRules {
    /// [`write_new_file_checked`] with a step between writing and renaming: the new
    /// file is complete and fsynced under its temp name when `before_rename` runs, and
    /// takes its place at `path` only if that returns `Ok`. Otherwise the temp file is
    /// removed, `path` is left as it was, and the step's error is returned as
    /// `Ok(Err(_))`. Lets the enrolment tool hand a new secret to whoever asked for it
    /// before the old file is gone, and give up with the old file intact when that
    /// fails (rule R29).
    ///
    /// With `how.overwrite`, the file being replaced is `flock`ed first, as a login
    /// locks it to rewrite it, waiting at most `how.lock_wait` (see [`LockedFile`]); the
    /// rename happens under that lock, and the new file gets the old one's SELinux
    /// label (and, with `how.keep_narrower_mode`, its narrower bits).
    pub fn write_new_file_then<E>(
        &self,
        path: &Path,
        contents: &[u8],
        how: NewFile,
        before_rename: impl FnOnce() -> Result<(), E>,
    ) -> Result<Result<(), E>, FileError> {
        check_new_mode(how.mode)?;
        let (dirs, name) = split_file_path(path)?;
        let walked = walk_checked(&dirs, self)?;
        let pending = prepare_in(walked, name, contents, &how)?;
        if let Err(e) = before_rename() {
            // Dropping the pending file removes it.
            return Ok(Err(e));
        }
        pending.commit(how.lock_wait).map(Ok)
    }
}

fn prepare_in(
    walked: Walked,
    name: &OsStr,
    contents: &[u8],
    how: &NewFile,
) -> Result<PendingFile, FileError> {
    let NewFile {
        mode, overwrite, ..
    } = *how;
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
    if let Some((uid, gid)) = how.owner {
        // Before the bits and the contents: the file never holds the secret under an
        // owner the login would refuse, and a chown leaves the bits set after it alone.
        unistd::fchown(
            &file,
            Some(unistd::Uid::from_raw(uid)),
            Some(unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| FileError::os("fchown temp file", e))?;
    }
    set_perm(&file, mode)?;
    write_all(&file, contents)?;
    sync_file(&file, FaultPoint::Fsync, "fsync temp file")?;
    let temp_name = temp.name.clone();
    // From here the pending file removes the temp name itself.
    temp.disarm();
    Ok(PendingFile {
        dir,
        name: name.to_owned(),
        temp: temp_name,
        file,
        overwrite,
        mode,
        keep_narrower_mode: how.keep_narrower_mode,
        keep_group: how.keep_group,
        armed: true,
    })
}

/// A new file complete on disk under a temp name in its directory, waiting to take its
/// path. Dropped without [`PendingFile::commit`], the temp file is removed and whatever
/// is at the path stays as it was.
#[derive(Debug)]
pub(super) struct PendingFile {
    dir: OwnedFd,
    name: OsString,
    temp: OsString,
    file: File,
    overwrite: bool,
    /// The bits the new file was written with.
    mode: u32,
    /// See [`NewFile::keep_narrower_mode`].
    keep_narrower_mode: bool,
    /// See [`NewFile::keep_group`].
    keep_group: bool,
    armed: bool,
}

impl PendingFile {
    /// Renames the new file into place and fsyncs the directory.
    ///
    /// Without `overwrite` an existing file is refused ([`FileError::AlreadyExists`]),
    /// race-free. With it, the file being replaced is first opened and `flock`ed, as a
    /// login locks it to rewrite it (a HOTP counter, a used scratch code), waiting at
    /// most `lock_wait`: a login's rewrite renamed in after ours would bring the old
    /// secret back. The rename happens while the lock is held and the path still names
    /// the locked file, and the new file gets the old one's SELinux label (rule R17).
    pub(super) fn commit(mut self, lock_wait: Duration) -> Result<(), FileError> {
        let dir = self.dir.as_fd();
        if self.overwrite {
            let held = lock_named(dir, &self.name, Instant::now() + lock_wait)?;
            if let Some((old, info)) = &held {
                // A rename gives the new file the directory's default label, which a
                // policy written for the old one may refuse.
                copy_selinux_label(old, &self.file)?;
                // The bits of the file this rename replaces, read on the descriptor
                // locked for it: no second look by path that a swap could fool.
                if self.keep_narrower_mode || self.keep_group {
                    let now = stat::fstat(old).map_err(|e| FileError::os("fstat", e))?;
                    if self.keep_group {
                        // Before the narrowing below: a chown leaves bits set after it
                        // alone.
                        unistd::fchown(&self.file, None, Some(unistd::Gid::from_raw(now.st_gid)))
                            .map_err(|e| FileError::os("fchown temp file", e))?;
                    }
                    let narrowed = narrower_mode(self.mode, now.st_mode);
                    if self.keep_narrower_mode && narrowed != self.mode {
                        set_perm(&self.file, narrowed)?;
                    }
                }
                sync_file(&self.file, FaultPoint::Fsync, "fsync temp file")?;
                check_still_named(dir, &self.name, info)?;
            }
            fault::hit(FaultPoint::Rename).map_err(|e| FileError::Os {
                op: "rename",
                errno: e,
            })?;
            fcntl::renameat(dir, self.temp.as_os_str(), dir, self.name.as_os_str())
                .map_err(|e| FileError::os("rename", e))?;
            self.armed = false;
            // Only now may a waiting login go on: it then finds the new file at the path.
            drop(held);
        } else {
            fault::hit(FaultPoint::Rename).map_err(|e| FileError::Os {
                op: "rename",
                errno: e,
            })?;
            match fcntl::renameat2(
                dir,
                self.temp.as_os_str(),
                dir,
                self.name.as_os_str(),
                RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => self.armed = false,
                Err(Errno::EEXIST) => return Err(FileError::AlreadyExists),
                // Filesystems without RENAME_NOREPLACE, or a seccomp filter without
                // renameat2 (EPERM): linkat also refuses an existing target (and fails on
                // a real permission problem too); the temp name is removed on drop.
                Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EPERM) => {
                    match unistd::linkat(
                        dir,
                        self.temp.as_os_str(),
                        dir,
                        self.name.as_os_str(),
                        AtFlags::empty(),
                    ) {
                        Ok(()) => {}
                        Err(Errno::EEXIST) => return Err(FileError::AlreadyExists),
                        Err(e) => return Err(FileError::os("link", e)),
                    }
                }
                Err(e) => return Err(FileError::os("rename", e)),
            }
        }
        sync_dir(self.dir.as_fd())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort, as for TempName: a leftover temp is never read.
            let _ = unistd::unlinkat(&self.dir, self.temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// The regular file `name` in `dir` opened and `flock`ed (waiting until `deadline`),
/// checked after locking to still be the one the name points to; `None` when nothing
/// is there.
///
/// Also `None` when this identity may not open the file: every login that could
/// rewrite it opens it as this same identity (the user in home mode, root in a store),
/// so none can. Where the file system refuses the lock on a read-only descriptor
/// (NFSv4, see [`is_refused_read_only_lock`]) the file is returned unlocked, as the
/// module then reads it unlocked too.
fn lock_named(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    deadline: Instant,
) -> Result<Option<(File, FileInfo)>, FileError> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    for attempt in 0..MAX_REOPENS {
        if attempt > 0 && Instant::now() >= deadline {
            return Err(FileError::LockTimeout);
        }
        // The lstat first, so that a FIFO or device put there is never opened.
        match stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
                SFlag::S_IFREG => {}
                SFlag::S_IFLNK => return Err(FileError::Symlink),
                _ => return Err(FileError::NotRegular { mode: st.st_mode }),
            },
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(FileError::os("stat target", e)),
        }
        let file = match fcntl::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            // Gone since the lstat: look again.
            Err(Errno::ENOENT) => continue,
            Err(Errno::ELOOP) => return Err(FileError::Symlink),
            Err(Errno::EACCES) => return Ok(None),
            Err(e) => return Err(FileError::os("open", e)),
        };
        let st = stat::fstat(&file).map_err(|e| FileError::os("fstat", e))?;
        let info = FileInfo::from_stat(&st);
        if info.mode & libc::S_IFMT != libc::S_IFREG {
            return Err(FileError::NotRegular { mode: info.mode });
        }
        match acquire_lock(&file, deadline) {
            Ok(()) => {}
            Err(e) if is_refused_read_only_lock(&e) => return Ok(Some((file, info))),
            Err(e) => return Err(e),
        }
        match check_still_named(dir, name, &info) {
            Ok(()) => return Ok(Some((file, info))),
            // A login replaced it while we waited: lock the file it left instead.
            Err(FileError::Unstable) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(FileError::Unstable)
}

/// `mode` narrowed to the permission bits of `old_mode` (a full `st_mode`), as long as
/// the owner can still read the result; `mode` itself otherwise.
pub(super) fn narrower_mode(mode: u32, old_mode: u32) -> u32 {
    let narrowed = mode & old_mode & 0o777;
    if narrowed & 0o400 != 0 {
        narrowed
    } else {
        mode
    }
}

/// The name of a temp file in the target's directory, unlinked on drop unless the
/// rewrite committed it.
pub(super) struct TempName<'a> {
    pub(super) dir: BorrowedFd<'a>,
    pub(super) name: OsString,
    pub(super) armed: bool,
}

impl<'a> TempName<'a> {
    /// Create a fresh temp file next to `target`: `(guard, open file)`.
    pub(super) fn create(
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
                    let guard = Self {
                        dir,
                        name,
                        armed: true,
                    };
                    let file = File::from(fd);
                    drop_inherited_acl(&file)?;
                    return Ok((guard, file));
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(FileError::os("create temp file", e)),
            }
        }
        Err(FileError::os("create temp file", Errno::EEXIST))
    }

    /// The temp name now is the target: nothing to clean up.
    pub(super) fn disarm(mut self) {
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

pub(super) fn temp_name(target: &OsStr) -> Result<OsString, FileError> {
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

/// A directory with a default POSIX ACL (`setfacl -d -m u:backup:r ~`) hands its named
/// entries to every file created in it, and the `fchmod` that follows sets the ACL mask
/// from the group bits: under `allowed_perm=0640` those named users and groups could
/// read the secret, and even under 0600 the entries stay, one `chmod g+r` away. The
/// mode checks see only the mask, so the new file gets no access ACL at all: what its
/// mode bits say is all the access there is. Before the owner changes (`fchown` to the
/// user in `keep_owner`), while the writer still owns the file and may remove it.
fn drop_inherited_acl(file: &File) -> Result<(), FileError> {
    remove_access_acl(file).map_err(|e| FileError::os("remove inherited ACL", e))
}

/// The POSIX access ACL of `file` removed (the state store's new records too); none,
/// or a file system without POSIX ACLs, is not an error.
pub(crate) fn remove_access_acl(file: impl AsFd) -> Result<(), Errno> {
    remove_acl(file.as_fd(), ACL_ACCESS_XATTR)
}

/// Both POSIX ACLs of a directory the state store created removed: the access ACL it
/// inherited, and the default ACL it would hand on (a named user in it, whose entry the
/// 0700 mode only masks, gets the search and listing of the store back from the first
/// `setfacl -m` that recomputes the mask). None, or no POSIX ACLs, is not an error.
/// `dir` must not be an `O_PATH` descriptor.
pub(crate) fn remove_dir_acls(dir: impl AsFd) -> Result<(), Errno> {
    remove_acl(dir.as_fd(), ACL_ACCESS_XATTR)?;
    remove_acl(dir.as_fd(), ACL_DEFAULT_XATTR)
}

fn remove_acl(fd: std::os::fd::BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    use rustix::io::Errno as E;
    match rustix::fs::fremovexattr(fd, name) {
        Ok(()) | Err(E::NODATA | E::OPNOTSUPP) => Ok(()),
        // A network or FUSE file system may refuse the removal with another error even
        // where there is nothing to remove: only an ACL still there fails the write,
        // not the refusal (which would fail every rewrite there, a lockout).
        Err(e) => match rustix::fs::fgetxattr(fd, name, &mut [0u8; 0][..]) {
            Err(E::NODATA | E::OPNOTSUPP) => Ok(()),
            _ => Err(Errno::from_raw(e.raw_os_error())),
        },
    }
}

/// Where the kernel keeps a file's POSIX access ACL.
const ACL_ACCESS_XATTR: &str = "system.posix_acl_access";
/// Where the kernel keeps a directory's default ACL (what new entries inherit).
const ACL_DEFAULT_XATTR: &str = "system.posix_acl_default";

pub(super) fn set_perm(file: &File, perm: u32) -> Result<(), FileError> {
    // umask shaped the create mode; the rewrite must end with exactly the old bits.
    stat::fchmod(file, Mode::from_bits_truncate(perm)).map_err(|e| FileError::os("fchmod", e))
}

/// Writes `data` to a new, empty file.
pub(super) fn write_all(file: &File, mut data: &[u8]) -> Result<(), FileError> {
    crate::fsize::allows(data.len() as u64).map_err(|e| FileError::os(crate::fsize::REFUSED, e))?;
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

pub(super) fn sync_file(
    fd: impl AsFd,
    point: FaultPoint,
    op: &'static str,
) -> Result<(), FileError> {
    fault::hit(point).map_err(|e| FileError::Os { op, errno: e })?;
    unistd::fsync(fd).map_err(|e| FileError::os(op, e))
}

pub(super) fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), FileError> {
    sync_file(dir, FaultPoint::DirFsync, "fsync directory")
}
