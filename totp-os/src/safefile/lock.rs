//! The locked file: `flock` with a deadline, the inode re-check, the rewrite under the lock.

use super::*;

/// A file opened with [`lock_with_deadline`]: exclusively `flock`ed until dropped; or
/// with [`open_refused_lock`], where the file system refused the lock and the caller
/// serialises by other means ([`LockedFile::is_locked`] tells which).
///
/// Fields are private so the lock cannot be separated from the file it protects.
pub struct LockedFile {
    file: File,
    locked: bool,
    dir: OwnedFd,
    name: OsString,
    info: FileInfo,
    contents: Zeroizing<Vec<u8>>,
    max_size: usize,
    /// A rewrite gives its new file the old one's owner and group
    /// ([`LockedFile::keep_owner`]).
    keep_owner: bool,
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
            locked: true,
            // Readable, for the directory fsync of a rewrite.
            dir: reopen_readable(opened.dir, "open directory")?,
            name: opened.name,
            info,
            contents,
            max_size: rules.max_size,
            keep_owner: false,
        });
    }
    Err(FileError::Unstable)
}

/// Whether `e` is the lock refusal of an NFSv4 client: an exclusive `flock` on a
/// descriptor opened read-only fails with EBADF (flock(2)). Only this refusal is known
/// to come from the file system's lock semantics rather than a missing lock service
/// (ENOLCK) or a fault.
pub fn is_refused_read_only_lock(e: &FileError) -> bool {
    matches!(e, FileError::Os { op: "flock", errno } if *errno == libc::EBADF)
}

/// Open, check and read `path` like [`lock_with_deadline`], without the lock, for a
/// file system whose refusal [`is_refused_read_only_lock`] says so. The caller must
/// serialise its read-compare-rewrite on this host by other means and re-read (with
/// this function) right before a rewrite; hosts sharing the file are not excluded.
pub fn open_refused_lock(path: &Path, rules: &FileRules) -> Result<LockedFile, FileError> {
    let opened = open_unread(path, rules)?;
    let st = stat::fstat(&opened.file).map_err(|e| FileError::os("fstat", e))?;
    let info = FileInfo::from_stat(&st);
    check_file(&info, rules)?;
    let contents = read_bounded(&opened.file, rules.max_size, info.size)?;
    Ok(LockedFile {
        file: opened.file,
        locked: false,
        dir: reopen_readable(opened.dir, "open directory")?,
        name: opened.name,
        info,
        contents,
        max_size: rules.max_size,
        keep_owner: false,
    })
}

impl LockedFile {
    /// Whether the file is `flock`ed ([`lock_with_deadline`]) or was opened after the
    /// file system refused the lock ([`open_refused_lock`]).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

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
        self.replace_contents(new_contents)?;
        sync_dir(self.dir.as_fd())
    }

    /// [`LockedFile::replace`] without the final directory fsync: the new contents are
    /// complete on disk before the rename, but after a power loss the old file may be
    /// back. For a copy whose authority is elsewhere (the state store records used
    /// scratch codes and HOTP counters; the file is rewritten so that GA agrees).
    pub fn replace_unsynced(&mut self, new_contents: &[u8]) -> Result<(), FileError> {
        self.replace_contents(new_contents)
    }

    /// Rewrites give the new file the owner and group of the one they replace, where
    /// the writer is another identity: root updating a store file a login requires the
    /// user to own (`totp-enroll`). Without it such a rewrite is refused
    /// ([`FileError::WrongIdentity`]): the module never writes as anyone but the owner.
    pub fn keep_owner(&mut self) {
        self.keep_owner = true;
    }

    fn replace_contents(&mut self, new_contents: &[u8]) -> Result<(), FileError> {
        if new_contents.len() > self.max_size {
            return Err(FileError::TooLarge {
                limit: self.max_size,
            });
        }
        let mut perm = self.info.perm();
        let dir = self.dir.as_fd();
        let (temp, new_file) = TempName::create(dir, &self.name, perm & 0o600)?;
        if self.keep_owner {
            // Before the bits: a chown leaves the bits set after it alone.
            unistd::fchown(
                &new_file,
                Some(unistd::Uid::from_raw(self.info.uid)),
                Some(unistd::Gid::from_raw(self.info.gid)),
            )
            .map_err(|e| FileError::os("fchown temp file", e))?;
        } else if perm & 0o070 != 0 {
            perm = group_kept_or_shut(&new_file, self.info.gid, perm)?;
        }
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
        // The lock protects the file, not its name: whoever renamed another file over
        // it meanwhile (an enrolment, or a writer that does not lock) put contents there
        // that this rewrite of the old ones would silently undo.
        check_still_named(dir, &self.name, &self.info)?;
        fcntl::renameat(dir, temp.name.as_os_str(), dir, self.name.as_os_str())
            .map_err(|e| FileError::os("rename", e))?;
        temp.disarm();
        // Dropping the old fd releases the old inode's lock; waiters on it will see the
        // path now names the new (already locked) inode and retry.
        self.file = new_file;
        self.info = FileInfo::from_stat(&st);
        self.info.size = new_contents.len() as u64;
        self.contents = Zeroizing::new(new_contents.to_vec());
        Ok(())
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

/// The bits a rewrite may give its new file, whose group is the writer's fsgid (or the
/// directory's, if setgid), not necessarily the old file's: a host running as the user
/// with another group in effect (after `newgrp`, or installed setgid) would otherwise
/// hand a group-readable secret (`allowed_perm=0640`) to that group. The old group is
/// put back where the writer may (it is among the writer's groups); where it may not,
/// the group bits are dropped, which a login accepts under any `allowed_perm=`.
fn group_kept_or_shut(file: &File, old_gid: u32, perm: u32) -> Result<u32, FileError> {
    let st = stat::fstat(file).map_err(|e| FileError::os("fstat temp file", e))?;
    if st.st_gid == old_gid {
        return Ok(perm);
    }
    match unistd::fchown(file, None, Some(unistd::Gid::from_raw(old_gid))) {
        Ok(()) => Ok(perm),
        Err(Errno::EPERM) => Ok(perm & !0o070),
        Err(e) => Err(FileError::os("fchown temp file", e)),
    }
}

/// Whether `name` in `dir` still names the file `info` describes (device and inode);
/// [`FileError::Unstable`] when another file (or none) is there now.
pub(super) fn check_still_named(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    info: &FileInfo,
) -> Result<(), FileError> {
    match stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if same_inode(&FileInfo::from_stat(&st), info) => Ok(()),
        Ok(_) | Err(Errno::ENOENT) => Err(FileError::Unstable),
        Err(e) => Err(FileError::os("stat before rename", e)),
    }
}

// Lets tests see that the inode re-check really sent a waiter round again.
#[cfg(test)]
thread_local! {
    pub(super) static REOPENS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One non-blocking attempt: Ok(true) locked, Ok(false) held by someone else.
pub(super) fn try_lock_once(file: &File) -> Result<bool, FileError> {
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

pub(super) fn acquire_lock(file: &File, deadline: Instant) -> Result<(), FileError> {
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

#[cfg(test)]
mod refused_lock_tests {
    use super::*;

    // Only the NFSv4 refusal opens the unlocked path; a missing lock service does not.
    #[test]
    fn only_ebadf_from_flock_is_the_read_only_refusal() {
        let os = |op, errno| FileError::Os { op, errno };
        assert!(is_refused_read_only_lock(&os("flock", libc::EBADF)));
        assert!(!is_refused_read_only_lock(&os("flock", libc::ENOLCK)));
        assert!(!is_refused_read_only_lock(&os("open", libc::EBADF)));
        assert!(!is_refused_read_only_lock(&FileError::LockTimeout));
    }
}
