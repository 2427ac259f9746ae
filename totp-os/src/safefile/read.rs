//! Checked opens and the bounded read: the entry points for reading a file.

use super::*;

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
    open_checked_noting(path, rules).map_err(|(e, _)| e)
}

/// [`open_checked`], which for a missing file ([`FileError::NotFound`]) also says what
/// its absence shows ([`Absence`]; `nullok` asks [`nullok_absence`]). With any other
/// error the absence is [`Absence::Unchecked`] (a missing directory carries its own).
pub fn open_checked_noting(
    path: &Path,
    rules: &FileRules,
) -> Result<OpenedFile, (FileError, Absence)> {
    let mut absence = Absence::Unchecked;
    let opened = match open_unread_noting(path, rules, &mut absence) {
        Ok(o) => o,
        Err(e) => return Err((e, absence)),
    };
    let contents = read_bounded(&opened.file, rules.max_size, opened.info.size)
        .map_err(|e| (e, Absence::Unchecked))?;
    Ok(OpenedFile {
        file: opened.file,
        dir: opened.dir,
        name: opened.name,
        info: opened.info,
        contents,
    })
}

/// Whether the file open at `fd` may be read by other hosts too (`shared_file=auto`):
/// `fstatfs` on the descriptor the file was checked and read through, so the answer is
/// about that very file, not whatever the path names by now. See [`shared_fs_type`].
pub fn on_network_fs(fd: impl AsFd) -> Result<bool, FileError> {
    let st = nix::sys::statfs::fstatfs(fd).map_err(|e| FileError::Os {
        op: "fstatfs",
        errno: e as i32,
    })?;
    // `f_type` is a signed word whose width depends on the architecture; every magic
    // fits in 32 bits, compared as such.
    Ok(shared_fs_type(st.filesystem_type().0 as u32))
}

/// Whether a file system of type `magic` (`statfs.f_type`) may be shared with other
/// hosts. Only types known to be local disks or memory answer no; everything else is
/// taken for shared, which costs a lock and a rewrite where it is wrong. The other way
/// round, a list of network types, would miss the ones it does not name (GPFS, BeeGFS,
/// OrangeFS, WekaFS, …) and the stacking ones, which report their own type whatever
/// lies below: overlayfs and eCryptfs over an NFS home are local by their type, and a
/// file wrongly taken for local lets hosts with their own stores accept its codes again.
pub fn shared_fs_type(magic: u32) -> bool {
    // As the kernel defines them (linux/magic.h; ZFS's own).
    const LOCAL: [u32; 22] = [
        0x0000_EF53, // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x0102_1994, // tmpfs (and devtmpfs)
        0x8584_58F6, // ramfs
        0x2FC1_2FC1, // ZFS
        0xF2F5_2010, // F2FS
        0xCA45_1A4E, // bcachefs
        0x3153_464A, // JFS
        0x5265_4973, // ReiserFS
        0x0000_3434, // NILFS2
        0x0000_4D44, // FAT (msdos, vfat)
        0x2011_BAB0, // exFAT
        0x5346_544E, // NTFS (ntfs3)
        0x0000_482B, // HFS+
        0x7371_7368, // SquashFS
        0xE0F5_E1E2, // EROFS
        0x0000_9660, // ISO 9660
        0x1501_3346, // UDF
        0x0000_9FA0, // proc
        0x6265_6572, // sysfs
        0x2820_7344, // cramfs
    ];
    !LOCAL.contains(&magic)
}

/// Check that only root can change the file at `path` and the directories leading to it,
/// for code the module runs or loads (the secret command, the Redis plugin): a regular
/// file owned by root, not group/other writable, one link, at most `max_size` bytes;
/// every directory from `/` down root-owned and not group/other writable; the final
/// component not a symlink (root-owned directory symlinks such as `/lib -> usr/lib` are
/// followed). Like OpenSSH's checks on `AuthorizedKeysCommand`.
pub fn check_root_controlled(path: &Path, max_size: usize) -> Result<FileInfo, FileError> {
    open_unread(path, &FileRules::root_controlled(0o755, max_size)).map(|opened| opened.info)
}

/// [`check_root_controlled`] for a program named by the `#!` line of one (a script's
/// interpreter, which runs the script and so decides its answer): the same directory
/// chain and file rules, but a final symlink is followed when root owns it and its
/// directory passes the chain check (`/usr/bin/python3 -> python3.11`), and any number
/// of hard links is accepted (distributions ship interpreters hard-linked: perl,
/// python3.x). Returns the path of the file the links lead to.
pub fn check_root_controlled_interpreter(
    path: &Path,
    max_size: usize,
) -> Result<PathBuf, FileError> {
    let rules = FileRules::root_controlled(0o755, max_size);
    let mut path = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        let (dirs, name) = split_file_path(&path)?;
        let walked = walk_checked(&dirs, &rules)?;
        let st = match stat::fstatat(&walked.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Err(FileError::NotFound),
            Err(e) => return Err(FileError::os("stat", e)),
        };
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFLNK {
            // Any link count: another name for a file only root can write lets nobody
            // else write it.
            let info = FileInfo {
                nlink: 1,
                ..FileInfo::from_stat(&st)
            };
            check_file(&info, &rules)?;
            return Ok(walked.shown.join(name));
        }
        let link_path = walked.shown.join(name);
        if st.st_uid != 0 {
            return Err(FileError::UntrustedSymlink { path: link_path });
        }
        let target = PathBuf::from(
            fcntl::readlinkat(&walked.fd, name).map_err(|e| FileError::os("readlink", e))?,
        );
        // `walked.shown` is the directory's own path (the walk resolved every symlink
        // above it), so leading `..` steps of a relative target pop from it exactly as
        // the kernel steps up; a `..` after a name could cross another link and is not
        // resolved here.
        let mut next = if target.is_absolute() {
            PathBuf::new()
        } else {
            walked.shown.clone()
        };
        let mut named = false;
        for c in target.components() {
            match c {
                Component::RootDir => next.push("/"),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir if !named => {
                    next.pop();
                }
                Component::ParentDir => {
                    return Err(FileError::UntrustedSymlink { path: link_path });
                }
                Component::Normal(n) => {
                    named = true;
                    next.push(n);
                }
            }
        }
        path = next;
    }
    Err(FileError::TooManySymlinks)
}

/// Read from offset 0 up to `max + 1` bytes, whatever `st_size` says (the file may grow,
/// or lie). The first buffer holds `size_hint + 1` bytes (the `st_size` just checked),
/// so a small file does not cost a `max`-sized buffer that must be wiped; the hint only
/// sizes the buffer. A file larger than its hint grows into a fresh buffer, and the old
/// one is wiped when dropped, so no copy of the contents is left in freed memory.
pub(super) fn read_bounded(
    file: &File,
    max: usize,
    size_hint: u64,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
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

/// Check that only root, or the account that serves it, can replace the Unix socket at
/// `path` (a Redis `state=unix:` socket): every directory from `/` down to the socket's
/// grandparent root-owned and not group/other writable (as for the plugin); the
/// socket's own directory not group/other writable and owned by root or by the
/// socket's owner (a server's runtime directory such as `/run/redis` belongs to its
/// account, which serves the data anyway); the socket a socket, not a symlink, owned by
/// root or by its directory's owner.
pub fn check_socket_path(path: &Path) -> Result<(), FileError> {
    let (dirs, name) = split_file_path(path)?;
    let rules = FileRules::root_controlled(0o755, 0);
    let Some((parent, upper)) = dirs.split_last() else {
        // A socket directly in `/`: the walk checks `/` itself.
        let walked = walk_checked(&dirs, &rules)?;
        return check_socket(&walked.fd, name, 0);
    };
    let walked = walk_checked(upper, &rules)?;
    let shown = Path::new("/")
        .join(upper.iter().collect::<PathBuf>())
        .join(parent);
    let st = stat::fstatat(&walked.fd, parent.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(
        |e| match e {
            Errno::ENOENT => FileError::MissingDirectory {
                path: shown.clone(),
                absence: Absence::Unchecked,
                parent: None,
            },
            e => FileError::os("stat", e),
        },
    )?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
        return Err(FileError::NotADirectory { path: shown });
    }
    if st.st_mode & 0o022 != 0 {
        return Err(FileError::UnsafeDirectory {
            path: shown,
            uid: st.st_uid,
            mode: st.st_mode,
            // The socket's own directory may belong to the server's account.
            root_only: false,
        });
    }
    let dir = fcntl::openat(
        &walked.fd,
        parent.as_os_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::os("open", e))?;
    // The directory opened is the one checked (not swapped since the stat).
    let again = stat::fstat(&dir).map_err(|e| FileError::os("fstat", e))?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(FileError::os("open", Errno::EAGAIN));
    }
    check_socket(&dir, name, st.st_uid)
}

fn check_socket(dir: &impl AsFd, name: &OsStr, dir_owner: uid_t) -> Result<(), FileError> {
    let st = match stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Err(FileError::NotFound),
        Err(e) => return Err(FileError::os("stat", e)),
    };
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFSOCK => {}
        SFlag::S_IFLNK => return Err(FileError::Symlink),
        _ => return Err(FileError::NotRegular { mode: st.st_mode }),
    }
    if st.st_uid != 0 && st.st_uid != dir_owner {
        return Err(FileError::BadOwner { uid: st.st_uid });
    }
    Ok(())
}

/// `buf` filled from offset `at` of `file`, or as much as the file holds there: the
/// number of bytes read (fewer than `buf.len()` only at the end of the file).
pub(crate) fn read_at_most(file: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at.saturating_add(filled as u64)) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
