//! Creating files crash-safely: temp name, fsync, rename, directory fsync.

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
pub(super) fn check_new_mode(mode: u32) -> Result<(), FileError> {
    if mode & !0o777 != 0 || mode & 0o022 != 0 {
        return Err(FileError::BadMode { perm: mode });
    }
    Ok(())
}

pub(super) fn write_in(
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
            // Filesystems without RENAME_NOREPLACE, or a seccomp filter without
            // renameat2 (EPERM): linkat also refuses an existing target (and fails on a
            // real permission problem too); the temp name is removed when `temp` drops.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EPERM) => {
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
