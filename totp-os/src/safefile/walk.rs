//! The no-follow walk from `/` and the checks on the descriptors it opens.

use std::os::fd::AsRawFd;

use super::*;

pub(super) struct Unread {
    pub(super) file: File,
    pub(super) dir: OwnedFd,
    pub(super) name: OsString,
    pub(super) info: FileInfo,
}

/// Directory checks for the chain from the trusted root (or just the parent) down.
pub(super) struct DirChecks<'a> {
    pub(super) owners: &'a [uid_t],
    pub(super) private_group_of: Option<&'a PrivateGroupOwner>,
    /// Number of directory components that make up the trusted root; `None` checks the
    /// parent only.
    pub(super) trusted_depth: Option<usize>,
    /// Only note each directory in the walk's [`Chain`], without [`check_dir`]: who
    /// could rename is all [`chain_from_root`] asks.
    pub(super) note_only: bool,
}

impl DirChecks<'_> {
    /// [`check_dir`], unless only noting.
    fn check(&self, st: &FileStat, dir: BorrowedFd<'_>, shown: &Path) -> Result<(), FileError> {
        if self.note_only {
            return Ok(());
        }
        check_dir(st, dir, shown, self)
    }
}

pub(super) struct Walked {
    pub(super) fd: OwnedFd,
    /// `fstat` of `fd` when the walk needed it (a checked directory); `None` above the
    /// trusted root, where nothing about the directory is checked.
    pub(super) stat: Option<FileStat>,
    pub(super) shown: PathBuf,
    pub(super) checked: bool,
    /// The directories checked so far ([`Chain`]).
    pub(super) chain: Chain,
}

pub(super) enum WalkStep {
    Name(OsString),
    Parent,
    TrustedRoot,
}

pub(super) fn open_unread(path: &Path, rules: &FileRules) -> Result<Unread, FileError> {
    open_unread_noting(path, rules, &mut Absence::Unchecked)
}

/// [`open_unread`], which for a missing file ([`FileError::NotFound`]) sets `absence` to
/// what the walk showed about it: [`Absence::Proven`] (its directory was checked) with
/// the chain checked from its top (the trusted root, or `/` when there is none, walked
/// again for this; [`Chain::unchecked`] when that fails).
pub(super) fn open_unread_noting(
    path: &Path,
    rules: &FileRules,
    absence: &mut Absence,
) -> Result<Unread, FileError> {
    let (dirs, name) = split_file_path(path)?;
    let walked = walk_checked(&dirs, rules)?;
    let missing = |walked: &Walked, absence: &mut Absence| {
        let chain = if rules.trusted_root.is_some() {
            Some(walked.chain.clone())
        } else {
            stat::fstat(&walked.fd)
                .ok()
                .and_then(|st| chain_from_root(&st, &walked.shown, &dir_checks(rules, None)))
        };
        *absence = Absence::Proven {
            chain: chain.unwrap_or_else(Chain::unchecked),
        };
        FileError::NotFound
    };
    // The lstat first keeps FIFOs and devices from being opened at all (opening some
    // devices has side effects); the fd checks below remain the authoritative ones.
    let pre = match stat::fstatat(&walked.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Err(missing(&walked, absence)),
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
        let _ = fault::hit(FaultPoint::OpenFile);
        let fd = match fcntl::openat(&walked.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(missing(&walked, absence)),
            Err(Errno::ELOOP) => return Err(FileError::Symlink),
            Err(e) => return Err(FileError::os("open", e)),
        };
        let file = File::from(fd);
        let _ = fault::hit(FaultPoint::OpenedFile);
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
    Ok(Unread {
        file,
        dir: walked.fd,
        name: name.to_owned(),
        info,
    })
}

/// Walk to the directory `dirs` names, checking every directory from the trusted root
/// down (the last one alone without a trusted root).
pub(super) fn walk_checked(dirs: &[OsString], rules: &FileRules) -> Result<Walked, FileError> {
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
    let checks = dir_checks(rules, trusted_depth);
    let mut walked = walk(dirs, Some(&checks))?;
    if !walked.checked {
        let st = match walked.stat {
            Some(st) => st,
            None => stat::fstat(&walked.fd).map_err(|e| FileError::os("fstat directory", e))?,
        };
        check_dir(&st, walked.fd.as_fd(), &walked.shown, &checks)?;
        walked.chain.note(&st);
    }
    Ok(walked)
}

/// The directory checks `rules` ask for, from the trusted root `trusted_depth`
/// components deep (`None`: the parent only).
fn dir_checks(rules: &FileRules, trusted_depth: Option<usize>) -> DirChecks<'_> {
    DirChecks {
        owners: if rules.root_owned_dirs {
            &[0]
        } else {
            &rules.allowed_owners
        },
        private_group_of: rules.private_group_of.as_ref(),
        trusted_depth,
        note_only: false,
    }
}

/// The chain from `/` down to the directory `st` describes (at `shown`), walked again
/// noting every directory from `/` (their owners and modes, not the checks a file's
/// directories must pass: a sticky `/tmp` above a root-owned store lets nobody rename
/// the store): without a trusted root a walk checks the parent alone, which says
/// nothing about who could rename a directory above. `None` when the walk fails or
/// reaches another directory than `st` (something was renamed meanwhile).
fn chain_from_root(st: &FileStat, shown: &Path, checks: &DirChecks<'_>) -> Option<Chain> {
    let comps = dir_components(shown).ok()?;
    let from_root = DirChecks {
        owners: checks.owners,
        private_group_of: checks.private_group_of,
        trusted_depth: Some(0),
        note_only: true,
    };
    let walked = walk(&comps, Some(&from_root)).ok()?;
    let again = match walked.stat {
        Some(st) => st,
        None => stat::fstat(&walked.fd).ok()?,
    };
    ((again.st_dev, again.st_ino) == (st.st_dev, st.st_ino)).then_some(walked.chain)
}

/// Split an absolute file path into its directory components and final name.
pub(super) fn split_file_path(path: &Path) -> Result<(Vec<OsString>, &OsStr), FileError> {
    let name = match path.components().next_back() {
        Some(Component::Normal(n)) => n,
        _ => return Err(FileError::InvalidPath),
    };
    let parent = path.parent().ok_or(FileError::InvalidPath)?;
    Ok((dir_components(parent)?, name))
}

/// Components of an absolute directory path; `..` is refused because the walk must not
/// depend on how the caller spelled the path.
pub(super) fn dir_components(path: &Path) -> Result<Vec<OsString>, FileError> {
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

pub(super) fn open_root() -> Result<(OwnedFd, Option<FileStat>), FileError> {
    let fd = fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::os("open /", e))?;
    Ok((fd, None))
}

/// The directories `prefix` names from `/`, in one `openat2` with
/// `RESOLVE_NO_SYMLINKS` (issue 23: one system call instead of two per directory). It
/// succeeds only where the component walk would have gone through the same plain
/// directories without following anything; `None` for everything else, which the walk
/// then handles (and names).
fn open_unchecked_prefix(prefix: &[OsString]) -> Option<(OwnedFd, PathBuf)> {
    if prefix.is_empty() {
        return None;
    }
    let mut path = PathBuf::from("/");
    path.extend(prefix);
    let how = fcntl::OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS | fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let fd = fcntl::openat2(fcntl::AT_FDCWD, path.as_path(), how).ok()?;
    Some((fd, path))
}

/// The `fstat` of the directory `fd`, taken now if the walk has not needed it yet.
fn stat_of(fd: &OwnedFd, known: &mut Option<FileStat>) -> Result<FileStat, FileError> {
    if let Some(st) = known {
        return Ok(*st);
    }
    let st = stat::fstat(fd).map_err(|e| FileError::os("fstat directory", e))?;
    *known = Some(st);
    Ok(st)
}

/// Walk `comps` from `/`, one `O_PATH|O_NOFOLLOW` directory at a time.
///
/// With `checks`, every directory from the trusted root down (or none, when only the
/// parent is checked by the caller) must pass [`check_dir`]; `Walked::checked` says
/// whether the last directory has been checked already.
///
/// A directory above the trusted root is opened with `O_DIRECTORY | O_NOFOLLOW` (so it
/// is a directory and no link was followed) and not `fstat`ed: nothing about it is
/// checked unless the next component is a symlink, whose trust depends on the
/// directory holding it, and then it is `fstat`ed at that point (issue 23: one system
/// call per ancestor, the same checks).
///
/// Those unchecked directories are first tried in one `openat2` that follows no
/// symlink at all ([`open_unchecked_prefix`]); only when that fails (a symlink, even a
/// root-owned one, a missing directory, a kernel without `openat2`) does the walk go
/// through them one by one, with the symlink rules and error messages above.
pub(super) fn walk(
    comps: &[OsString],
    checks: Option<&DirChecks<'_>>,
) -> Result<Walked, FileError> {
    let trusted_depth = checks.and_then(|c| c.trusted_depth);
    // Everything above the trusted root is unchecked; without one, every directory is
    // (the caller checks the last one).
    let unchecked = trusted_depth.unwrap_or(comps.len()).min(comps.len());
    let (mut cur, mut cur_stat, mut shown, start) = match open_unchecked_prefix(&comps[..unchecked])
    {
        Some((fd, path)) => (fd, None, path, unchecked),
        None => {
            let (fd, st) = open_root()?;
            (fd, st, PathBuf::from("/"), 0)
        }
    };
    let mut steps: VecDeque<WalkStep> =
        comps[start..].iter().cloned().map(WalkStep::Name).collect();
    if let Some(depth) = trusted_depth {
        steps.insert(depth.saturating_sub(start), WalkStep::TrustedRoot);
    }
    let mut checking = false;
    let mut chain = Chain::default();
    let mut links = 0u32;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;

    while let Some(step) = steps.pop_front() {
        let name = match step {
            WalkStep::TrustedRoot => {
                checking = true;
                if let Some(c) = checks {
                    let st = stat_of(&cur, &mut cur_stat)?;
                    c.check(&st, cur.as_fd(), &shown)?;
                    chain.note(&st);
                }
                continue;
            }
            WalkStep::Parent => OsString::from(".."),
            WalkStep::Name(n) => n,
        };
        // The open comes first: it succeeds for a directory, the common case, and only
        // a refusal (a symlink, which O_NOFOLLOW with O_DIRECTORY will not open, or not
        // a directory) costs the lstat that tells the two apart.
        // `name` missing, seen by the open or by the lstat after it.
        let missing = || {
            missing_directory(
                &cur,
                cur_stat,
                &shown,
                &name,
                checking.then_some(&chain),
                checks,
            )
        };
        let fd = match fcntl::openat(&cur, name.as_os_str(), dir_flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(missing()),
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                let st = match stat::fstatat(&cur, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::ENOENT) => return Err(missing()),
                    Err(e) => return Err(FileError::os("stat directory", e)),
                };
                let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
                // Anything but a symlink here (a file, or a directory swapped in since
                // the open) is refused, never retried.
                if kind != SFlag::S_IFLNK {
                    return Err(FileError::NotADirectory {
                        path: shown.join(&name),
                    });
                }
                let link_path = shown.join(&name);
                // Only root can have created a root-owned symlink, and only root can move
                // things in a root-owned directory nobody else may write: such a link
                // (e.g. /home -> /var/home) is the administrator's decision.
                let holder = stat_of(&cur, &mut cur_stat)?;
                let trusted = st.st_uid == 0 && holder.st_uid == 0 && holder.st_mode & 0o022 == 0;
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
                                let st = stat_of(&cur, &mut cur_stat)?;
                                c.check(&st, cur.as_fd(), &shown)?;
                                chain.note(&st);
                            }
                        }
                        Component::CurDir | Component::Prefix(_) => {}
                        Component::ParentDir => expansion.push(WalkStep::Parent),
                        Component::Normal(n) => expansion.push(WalkStep::Name(n.to_owned())),
                    }
                }
                if target.as_os_str().is_empty() {
                    // A link to nothing shows nothing about a directory.
                    return Err(FileError::MissingDirectory {
                        path: link_path,
                        absence: Absence::Unchecked,
                        parent: None,
                    });
                }
                for s in expansion.into_iter().rev() {
                    steps.push_front(s);
                }
                continue;
            }
            Err(e) => return Err(FileError::os("open directory", e)),
        };
        if name == ".." {
            shown.pop();
        } else {
            shown.push(&name);
        }
        cur_stat = None;
        if checking && let Some(c) = checks {
            let fst = stat_of(&fd, &mut cur_stat)?;
            // O_DIRECTORY already guarantees this; the check stays next to the others.
            if SFlag::from_bits_truncate(fst.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
                return Err(FileError::NotADirectory {
                    path: shown.clone(),
                });
            }
            c.check(&fst, fd.as_fd(), &shown)?;
            chain.note(&fst);
        }
        cur = fd;
    }
    Ok(Walked {
        fd: cur,
        stat: cur_stat,
        shown,
        checked: checking,
        chain,
    })
}

/// The error for the entry `missing` found missing in the directory `cur` (at `shown`,
/// `cur_stat` its `fstat` if the walk took one), with what that directory shows about
/// the absence ([`Absence`]). A directory the walk has checked already counts, with
/// `chain`, the directories checked from the trusted root down to it; without a trusted
/// root, where only a file's parent is checked, the directory that should have held the
/// missing one is checked as that parent would have been, and the chain above it is
/// walked again from `/` ([`chain_from_root`]). Above a trusted root nothing is checked,
/// and nothing is shown. Then the directory must be on a file system known to be local
/// (a network or FUSE one whose server is down, or autofs, answers `ENOENT` as well) and
/// must list another entry (the empty mount point of a store that did not mount holds
/// nothing).
fn missing_directory(
    cur: &OwnedFd,
    cur_stat: Option<FileStat>,
    shown: &Path,
    missing: &OsStr,
    chain: Option<&Chain>,
    checks: Option<&DirChecks<'_>>,
) -> FileError {
    let st = cur_stat.or_else(|| stat::fstat(cur).ok());
    let error = |absence| FileError::MissingDirectory {
        path: shown.join(missing),
        absence,
        parent: st.map(|st| (st.st_dev, st.st_ino)),
    };
    let Some(st) = st else {
        return error(Absence::Unchecked);
    };
    let chain = match (chain, checks) {
        (Some(chain), _) => chain.clone(),
        (None, Some(c))
            if c.trusted_depth.is_none() && check_dir(&st, cur.as_fd(), shown, c).is_ok() =>
        {
            // Still proven for the user's own file ([`Absence::for_user`]).
            chain_from_root(&st, shown, c).unwrap_or_else(Chain::unchecked)
        }
        _ => return error(Absence::Unchecked),
    };
    match nix::sys::statfs::fstatfs(cur) {
        // `f_type`'s width depends on the architecture; every magic fits in 32 bits.
        Ok(fs) if shared_fs_type(fs.filesystem_type().0 as u32) => {
            return error(Absence::NotLocal);
        }
        Ok(_) => {}
        Err(_) => return error(Absence::Unchecked),
    }
    if !lists_another_entry(cur, missing) {
        return error(Absence::Empty);
    }
    error(Absence::Proven { chain })
}

/// Whether the directory `dir` lists an entry other than `.`, `..` and `missing`,
/// read through the descriptor the walk holds (never the path, which may name
/// another directory by now). Stops at the first such entry. A directory that
/// cannot be listed shows nothing either.
fn lists_another_entry(dir: &OwnedFd, missing: &OsStr) -> bool {
    let Ok(fd) = open_dir_readable(dir) else {
        return false;
    };
    let Ok(mut listing) = nix::dir::Dir::from_fd(fd) else {
        return false;
    };
    for entry in listing.iter() {
        let Ok(entry) = entry else {
            return false;
        };
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." && name != missing.as_bytes() {
            return true;
        }
    }
    false
}

/// Reopen a walked `O_PATH` directory for reading, which `fsync` needs. An identity
/// that may search but not list the directory keeps the `O_PATH` fd (enough to open
/// the file; a later directory fsync then fails and the write is denied).
pub(super) fn reopen_readable(fd: OwnedFd, op: &'static str) -> Result<OwnedFd, FileError> {
    match open_dir_readable(&fd) {
        Ok(ro) => Ok(ro),
        Err(Errno::EACCES) => Ok(fd),
        Err(e) => Err(FileError::os(op, e)),
    }
}

/// A readable descriptor for the directory `dir` names (which may be `O_PATH`).
pub(crate) fn open_dir_readable(dir: impl AsFd) -> Result<OwnedFd, Errno> {
    fcntl::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

pub(super) fn same_inode(a: &FileInfo, b: &FileInfo) -> bool {
    a.dev == b.dev && a.ino == b.ino
}

/// OpenSSH StrictModes: owned by root or an allowed owner, not group/other writable;
/// group write only for the owner's user-private group (Debian's user-group-modes), on
/// a directory the file's owner owns where the rules ask that, and then only when no POSIX ACL on the directory lets anyone else write ([`acl_writer`]).
/// `dir` is the directory `st` describes.
pub(super) fn check_dir(
    st: &FileStat,
    dir: BorrowedFd<'_>,
    shown: &Path,
    c: &DirChecks<'_>,
) -> Result<(), FileError> {
    let owner_ok = st.st_uid == 0 || c.owners.contains(&st.st_uid);
    let private_group = || {
        c.private_group_of.and_then(|p| {
            (st.st_gid == p.primary_gid && p.dirs_owned_by.is_none_or(|u| st.st_uid == u) && {
                let group = crate::nss::lookup_group_by_name(&p.user).ok().flatten();
                let entry = group.as_ref().map(|g| totp_core::membership::GroupEntry {
                    gid: g.gid,
                    members: g.members.clone(),
                });
                totp_core::membership::is_private_group(
                    &p.user,
                    p.primary_gid,
                    st.st_gid,
                    entry.as_ref(),
                    group.as_ref().map_or(0, |g| g.undecodable_members),
                )
            })
            .then_some(p.primary_gid)
        })
    };
    let other_write = st.st_mode & 0o002 != 0;
    let group_write = st.st_mode & 0o020 != 0;
    // The group whose write is excused, looked up only for a group-writable directory.
    let excused_gid = if group_write && !other_write {
        private_group()
    } else {
        None
    };
    let writable = other_write || (group_write && excused_gid.is_none());
    if !owner_ok || writable {
        return Err(FileError::UnsafeDirectory {
            path: shown.to_owned(),
            uid: st.st_uid,
            mode: st.st_mode,
            root_only: c.owners.iter().all(|&o| o == 0),
        });
    }
    // Only where group write was excused: the common directory (no group write) costs
    // no extra system call.
    if let Some(gid) = excused_gid
        && let Some(writer) = acl_writer(dir, st, gid, c.owners)
    {
        return Err(FileError::AclWritable {
            path: shown.to_owned(),
            writer,
        });
    }
    Ok(())
}

/// The extended attribute that holds a file's POSIX access ACL.
const ACL_ACCESS: &str = "system.posix_acl_access";
/// Entries read at most; an ACL with more (a file system allows a few hundred) is
/// refused as unreadable.
const ACL_MAX_ENTRIES: usize = 1024;
/// Tags and the write bit of the kernel's ACL xattr format (`posix_acl_xattr.h`):
/// a little-endian version 2 header, then (tag u16, perm u16, id u32) entries.
const ACL_VERSION: u32 = 2;
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;
const ACL_WRITE: u16 = 0x02;

/// Who a POSIX access ACL on the directory lets write besides root, the allowed owners
/// and the owner's private group `private_gid`: `None` when nobody (or there is no
/// ACL). On a directory with an ACL the group bits of the mode are the ACL's mask, not
/// the owning group's permission, so `setfacl -m u:bob:rwx` shows as group write, which
/// the private-group rule would excuse. An ACL that cannot be read counts as granting.
pub(super) fn acl_writer(
    dir: BorrowedFd<'_>,
    st: &FileStat,
    private_gid: gid_t,
    owners: &[uid_t],
) -> Option<String> {
    let mut buf = vec![0u8; 4 + 8 * ACL_MAX_ENTRIES];
    // The walk's descriptors are O_PATH, which fgetxattr refuses (EBADF); the path of
    // the descriptor in /proc reaches the same inode without a name lookup of our own.
    // Without /proc, a readable descriptor is opened (the user may read their home).
    let by_proc = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let read = match rustix::fs::getxattr(by_proc.as_str(), ACL_ACCESS, &mut buf[..]) {
        Err(e)
            if !matches!(
                e,
                rustix::io::Errno::NODATA | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::RANGE
            ) =>
        {
            match open_dir_readable(dir) {
                Ok(ro) => rustix::fs::fgetxattr(&ro, ACL_ACCESS, &mut buf[..]),
                Err(_) => Err(e),
            }
        }
        other => other,
    };
    let len = match read {
        Ok(len) => len,
        // No ACL, or a file system without ACLs: the mode is the whole truth.
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::OPNOTSUPP) => return None,
        Err(e) => {
            return Some(format!(
                "anyone it names (it could not be read: {})",
                io::Error::from_raw_os_error(e.raw_os_error())
            ));
        }
    };
    let acl = buf.get(..len).unwrap_or_default();
    let unreadable = || Some("anyone it names (it is not in the kernel's format)".to_owned());
    let Some((version, entries)) = acl.split_first_chunk::<4>() else {
        return unreadable();
    };
    if u32::from_le_bytes(*version) != ACL_VERSION || entries.len() % 8 != 0 {
        return unreadable();
    }
    entries.chunks_exact(8).find_map(|e| {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        if perm & ACL_WRITE == 0 {
            return None;
        }
        match tag {
            ACL_USER if id != 0 && id != st.st_uid && !owners.contains(&id) => {
                Some(format!("user {id}"))
            }
            ACL_GROUP if id != private_gid => Some(format!("group {id}")),
            // The owner, the owning group, the mask and others are the mode's own bits,
            // checked above.
            _ => None,
        }
    })
}

pub(super) fn check_file(info: &FileInfo, rules: &FileRules) -> Result<(), FileError> {
    if info.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(FileError::NotRegular { mode: info.mode });
    }
    if !rules.allowed_owners.contains(&info.uid) {
        return Err(FileError::BadOwner { uid: info.uid });
    }
    let perm = info.perm();
    // allowed_perm may relax read and execute bits only: write by others or special
    // bits would let someone else change the secret or state, whatever the admin
    // configured.
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
