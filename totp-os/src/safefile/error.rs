//! Why a file could not be opened, locked or written.

use super::*;

/// Who could have renamed a directory on the checked chain down to the directory that
/// should hold a missing entry: from the top of the chain (the trusted root, or `/`)
/// down to that directory, the owners other than root and whether any of them is
/// writable by its group or others. Renaming a directory needs write permission on the
/// one holding it only, so any of them could have moved the entry away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    owners: Vec<uid_t>,
    shared: bool,
    /// The last directory noted is sticky and writable by group or others (`/tmp`):
    /// whoever owned the missing entry in it could have renamed it. Above the last one
    /// a sticky directory lets only the owner of the next directory (noted) rename it.
    sticky_last: bool,
    /// The chain could not be checked from its top (a directory above failed the
    /// checks, or was renamed meanwhile): nothing is known of who could rename.
    unchecked: bool,
}

impl Chain {
    /// A chain of directories with these owners besides root, `shared` when one is
    /// group or other writable.
    #[cfg(test)]
    pub(super) fn of(owners: &[uid_t], shared: bool) -> Self {
        Self {
            owners: owners.to_vec(),
            shared,
            sticky_last: false,
            unchecked: false,
        }
    }

    /// A chain that could not be checked from its top.
    pub(super) fn unchecked() -> Self {
        Self {
            unchecked: true,
            ..Self::default()
        }
    }

    /// Take the directory `st` describes into account.
    pub(super) fn note(&mut self, st: &FileStat) {
        if st.st_uid != 0 && !self.owners.contains(&st.st_uid) {
            self.owners.push(st.st_uid);
        }
        // Group write the user's private group excuses still lets that group (the
        // user) rename.
        let writable = st.st_mode & 0o022 != 0;
        let sticky = st.st_mode & libc::S_ISVTX != 0;
        self.shared |= writable && !sticky;
        self.sticky_last = writable && sticky;
    }

    /// Whether the user `uid` may rename an entry of one of the directories.
    pub fn movable_by(&self, uid: uid_t) -> bool {
        self.unchecked || self.shared || self.sticky_last || self.owners.contains(&uid)
    }
}

/// How far a missing file's or directory's absence is shown by the directories that
/// should hold it (`nullok` skips a user only where it is, [`Absence::for_user`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Absence {
    /// For a directory: the one that should hold it was reached and passed the checks
    /// the walk makes on a file's directories, is on a file system known to be local
    /// ([`super::shared_fs_type`]), and lists at least one other entry. For a file: its
    /// directory passed the checks. Either way the chain above was checked from its top
    /// down, and `chain` says who could have renamed the missing entry away.
    Proven {
        /// The checked chain down to the directory that should hold the missing entry.
        chain: Chain,
    },
    /// That directory was not checked (above the trusted root, or no checks asked
    /// for), failed the checks, or its file system could not be asked, or, for a file
    /// that need not be the user's, the chain above could not be checked from its top:
    /// anyone who can change it may have removed the entry.
    Unchecked,
    /// That directory is on a file system not known to be local: a network or FUSE
    /// file system whose server is down, or autofs whose map lookup failed, answers
    /// `ENOENT` too.
    NotLocal,
    /// That directory lists nothing else (or cannot be listed): the empty mount point
    /// of a store or home that did not mount looks the same.
    Empty,
    /// The user may rename a directory on the chain down to the missing entry and the
    /// file there may not be theirs: moving away a directory that holds a file someone
    /// else owns would opt out.
    UserMovable,
}

impl Absence {
    /// What the absence shows for the user `uid` whose file must be owned by one of
    /// `owners`: a [`Absence::Proven`] one stays proven only when the user could not
    /// have caused it: `owners` includes that user (who could delete their own file
    /// anyway, or, where the chain is theirs, put a file of their own in its place:
    /// `no_strict_owner` protects nothing there), or the user may rename in none of the
    /// chain's directories (owned by them, or writable by group or others, taken as
    /// writable for them whatever the group).
    pub fn for_user(self, uid: uid_t, owners: &[uid_t]) -> Absence {
        match self {
            Absence::Proven { chain } if !owners.contains(&uid) && chain.unchecked => {
                Absence::Unchecked
            }
            Absence::Proven { chain } if !owners.contains(&uid) && chain.movable_by(uid) => {
                Absence::UserMovable
            }
            other => other,
        }
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
        /// What the walk knew of the directory that should have held it.
        absence: Absence,
        /// That directory's `(st_dev, st_ino)`, when it could be taken: the entry may be
        /// the home under another spelling of its parent ([`super::nullok_absence`]).
        parent: Option<(u64, u64)>,
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
        /// Only root may own the directories checked (code or rules the module obeys,
        /// a root store), which the message then says.
        root_only: bool,
    },
    /// A directory whose group write the owner's private group excuses has a POSIX
    /// access ACL that lets someone else write (its group bits are then the ACL mask).
    AclWritable {
        /// The directory.
        path: PathBuf,
        /// Who the ACL lets write (`user 1001`, `group 50`), or why it could not be read.
        writer: String,
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
    #[cfg(test)]
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
            | Self::AclWritable { .. }
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

    pub(super) fn os(op: &'static str, errno: Errno) -> Self {
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
            Self::MissingDirectory { path, .. } => write!(f, "{} does not exist", path.display()),
            Self::NotADirectory { path } => write!(f, "{} is not a directory", path.display()),
            Self::UnsafeDirectory {
                path,
                uid,
                mode,
                root_only: true,
            } => {
                // Each fault named: an admin fixes what the message says and no more.
                let faults: Vec<&str> = [
                    (*uid != 0, "not owned by root"),
                    (mode & 0o020 != 0, "writable by its group"),
                    (mode & 0o002 != 0, "writable by others"),
                ]
                .into_iter()
                .filter_map(|(bad, what)| bad.then_some(what))
                .collect();
                write!(
                    f,
                    "directory {} is owned by uid {uid}{} with mode {:04o} ({}): every \
                     directory above the file must be owned by root and not writable by \
                     group or others",
                    path.display(),
                    crate::creds::unmapped_owner_note(*uid),
                    mode & 0o7777,
                    faults.join(", ")
                )
            }
            Self::UnsafeDirectory {
                path, uid, mode, ..
            } => write!(
                f,
                "{} is owned by uid {uid}{} with mode {:04o}: must be owned by root or the \
                 user and not group/other writable",
                path.display(),
                crate::creds::unmapped_owner_note(*uid),
                mode & 0o7777
            ),
            Self::AclWritable { path, writer } => write!(
                f,
                "directory {} is writable by its group, which would be the user's private \
                 group, but a POSIX ACL on it grants write to {writer} (see getfacl): remove \
                 that entry or its write permission; only the user may write there",
                path.display()
            ),
            Self::NotRegular { mode } => {
                let what = match mode & libc::S_IFMT {
                    libc::S_IFDIR => "a directory",
                    libc::S_IFIFO => "a FIFO",
                    libc::S_IFSOCK => "a socket",
                    libc::S_IFCHR => "a character device",
                    libc::S_IFBLK => "a block device",
                    libc::S_IFLNK => "a symbolic link",
                    _ => "of an unknown type",
                };
                write!(f, "not a regular file: it is {what}")
            }
            Self::BadOwner { uid } => write!(
                f,
                "owned by uid {uid}{}, which is not allowed",
                crate::creds::unmapped_owner_note(*uid)
            ),
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
