//! Whether this host's kernel NFS server exports the file a file descriptor is open on,
//! from the export table `exportfs` keeps ([`ETAB`]) and this process's mount list
//! ([`MOUNTINFO`]), for `shared_file=auto`: on the NFS server that exports the homes, a
//! home is on a local file system, yet NFS clients read the same file.
//!
//! Decided by mount, never by looking at an exported path (no stat, no open): each
//! export's mount is found in the list by its path, and compared with the file's mount
//! (its mount ID from `statx`). A file counts as exported when an export lies on its
//! file system (the same mount, or a bind mount of it), whether or not the file lies
//! below the export, or when any mount of that file system lies below an export with
//! `crossmnt` or `nohide`: that errs toward "shared", which only costs a lock and a rewrite, where the
//! other way round would let a client accept a code this host accepted. The decision
//! itself is [`totp_core::mountinfo::export_covering`].

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxFlags};
use totp_core::mountinfo::{self, CoverError, FileMount};
use totp_core::nfs_etab;

/// The table of current exports `exportfs` writes and `rpc.mountd` serves.
pub const ETAB: &str = "/var/lib/nfs/etab";

/// Largest export table read (R36): a line per export and client, a few dozen bytes
/// each, so a megabyte is thousands of exports; anything larger is taken for garbled.
pub const ETAB_MAX: usize = 1 << 20;

/// The mounts this process sees, with their IDs and device numbers.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Largest mount list read (R36): a line of one or two hundred bytes per mount, so tens
/// of thousands of mounts (a container host's); anything larger is taken for garbled.
pub const MOUNTINFO_MAX: usize = 8 << 20;

/// The kernel NFS server's thread count, read only where [`ETAB`] is missing: above 0,
/// a server runs with its table elsewhere.
pub const NFSD_THREADS: &str = "/proc/fs/nfsd/threads";

/// Largest thread count read: a number and a newline.
const NFSD_THREADS_MAX: usize = 64;

/// Why the export table and the mount list give no answer; the caller takes the file
/// for exported.
#[derive(Debug)]
pub enum ExportsError {
    /// A file could not be opened or read (other than a missing table), or the secret
    /// file's mount not asked.
    Os { what: PathBuf, error: io::Error },
    /// Not a regular file (a FIFO, a device, a directory).
    NotRegular(PathBuf),
    /// Larger than its cap.
    TooLarge(PathBuf, usize),
    /// A line of the table that is not one `exportfs` writes.
    Garbled(nfs_etab::LineError),
    /// A line of the mount list that is not one the kernel writes.
    GarbledMounts(mountinfo::LineError),
    /// The mount list cannot answer for the file.
    Mounts(CoverError),
    /// No table, yet the kernel NFS server runs ([`NFSD_THREADS`] above 0): its table
    /// is elsewhere (`nfs.conf` moved the state directory).
    NfsdWithoutTable,
    /// No table, and [`NFSD_THREADS`] holds no number.
    NfsdThreadsGarbled,
    /// No table, and [`NFSD_THREADS`] is there (the kernel NFS server is loaded) but
    /// cannot be read (a process other than root's: the file is root's alone).
    NfsdUnknown(Box<ExportsError>),
}

impl ExportsError {
    fn os(what: &Path, error: io::Error) -> ExportsError {
        ExportsError::Os {
            what: what.to_path_buf(),
            error,
        }
    }
}

impl fmt::Display for ExportsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |p: &Path| p.as_os_str().as_bytes().escape_ascii().to_string();
        match self {
            ExportsError::Os { what, error } => write!(f, "{}: {error}", shown(what)),
            ExportsError::NotRegular(p) => write!(f, "{}: not a regular file", shown(p)),
            ExportsError::TooLarge(p, max) => write!(f, "{}: larger than {max} bytes", shown(p)),
            ExportsError::Garbled(e) => write!(f, "{ETAB}: {e}"),
            ExportsError::GarbledMounts(e) => write!(f, "{MOUNTINFO}: {e}"),
            ExportsError::Mounts(e) => write!(f, "{MOUNTINFO}: {e}"),
            ExportsError::NfsdWithoutTable => write!(
                f,
                "no {ETAB}, yet the kernel NFS server runs ({NFSD_THREADS} above 0): its \
                 export table is elsewhere"
            ),
            ExportsError::NfsdThreadsGarbled => {
                write!(f, "no {ETAB}, and {NFSD_THREADS} holds no number")
            }
            ExportsError::NfsdUnknown(e) => write!(
                f,
                "no {ETAB}, and whether the kernel NFS server runs is unknown ({e})"
            ),
        }
    }
}

/// What the table and the mount list say of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportOf {
    /// No table, and no kernel NFS server running.
    NoTable,
    /// No export of the table covers the file's mount. `by_device`: the kernel gave no
    /// mount ID (before Linux 5.8), so the file's mounts are the ones with its device
    /// number (a number no mount has, as a Btrfs subvolume's, is an error, not this).
    NotExported { by_device: bool },
    /// The first export that covers it (its path), `by_device` as above.
    Exported { export: PathBuf, by_device: bool },
}

/// Whether an export of [`ETAB`] covers the file open at `fd`. On a host without the
/// table this costs one failed open, and one more of [`NFSD_THREADS`].
pub fn export_of(fd: &File) -> Result<ExportOf, ExportsError> {
    export_of_in(Path::new(ETAB), Path::new(NFSD_THREADS), fd)
}

/// [`export_of`] with the table at `etab` and the thread count at `threads`.
pub fn export_of_in(etab: &Path, threads: &Path, fd: &File) -> Result<ExportOf, ExportsError> {
    let Some(table) = read_bounded(etab, ETAB_MAX)? else {
        return no_table(read_as_root(threads).map_err(|e| ExportsError::NfsdUnknown(Box::new(e))));
    };
    let exports = nfs_etab::exports(&table).map_err(ExportsError::Garbled)?;
    if exports.is_empty() {
        return Ok(ExportOf::NotExported { by_device: false });
    }
    let file = file_mount(fd)?;
    let list = read_bounded(Path::new(MOUNTINFO), MOUNTINFO_MAX)?
        .ok_or_else(|| ExportsError::os(Path::new(MOUNTINFO), io::ErrorKind::NotFound.into()))?;
    decide(&list, &exports, file)
}

/// The decision once the table is read: `mountinfo` is the mount list's contents,
/// `file` the secret file's mount.
pub fn decide(
    mountinfo: &[u8],
    exports: &[nfs_etab::Export],
    file: FileMount,
) -> Result<ExportOf, ExportsError> {
    let mounts = mountinfo::parse(mountinfo).map_err(ExportsError::GarbledMounts)?;
    let by_device = matches!(file, FileMount::Device { .. });
    Ok(
        match mountinfo::export_covering(&mounts, exports, file).map_err(ExportsError::Mounts)? {
            Some(path) => ExportOf::Exported {
                export: PathBuf::from(std::ffi::OsStr::from_bytes(path)),
                by_device,
            },
            None => ExportOf::NotExported { by_device },
        },
    )
}

/// The decision where the table is missing, from the reading of [`NFSD_THREADS`]:
/// missing (the nfsd module not loaded) or 0 is no NFS server; anything else, a server
/// that may have its table elsewhere. A file there but unreadable is a loaded nfsd
/// whose state is unknown, never "no exports".
pub fn no_table(threads: Result<Option<Vec<u8>>, ExportsError>) -> Result<ExportOf, ExportsError> {
    match threads? {
        None => Ok(ExportOf::NoTable),
        Some(t) => match mountinfo::nfsd_running(&t) {
            Some(false) => Ok(ExportOf::NoTable),
            Some(true) => Err(ExportsError::NfsdWithoutTable),
            None => Err(ExportsError::NfsdThreadsGarbled),
        },
    }
}

/// [`read_bounded`] of the thread count `path` with root's file-system identity where
/// the process is root: a login runs with the user's, and the file is root's alone
/// (0600), so a host with nfsd loaded would otherwise leave every login unsure whether
/// it runs, with a warning each time. Reading it as root gives the user nothing: the
/// path is fixed, the kernel's own file under `/proc`, not one a user names, creates or
/// can put something else at, and all that comes of it is whether the file's lines are
/// kept. Where the identity cannot be switched the
/// file is read as it is, and a refusal leaves the server's state unknown.
fn read_as_root(path: &Path) -> Result<Option<Vec<u8>>, ExportsError> {
    let egid = nix::unistd::getegid().as_raw();
    let root = crate::creds::Identity {
        uid: 0,
        gid: egid,
        groups: vec![egid],
    };
    let _root = nix::unistd::geteuid()
        .is_root()
        .then(|| crate::creds::switch_to(&root).ok())
        .flatten();
    read_bounded(path, NFSD_THREADS_MAX)
}

/// The mount of the file open at `fd`: its mount ID, or where the kernel gives none,
/// its device number.
fn file_mount(fd: &File) -> Result<FileMount, ExportsError> {
    let what = Path::new("the secret file");
    match rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID) {
        Ok(s) if StatxFlags::from_bits_retain(s.stx_mask).contains(StatxFlags::MNT_ID) => {
            Ok(FileMount::Id(s.stx_mnt_id))
        }
        Ok(s) => Ok(FileMount::Device {
            major: s.stx_dev_major,
            minor: s.stx_dev_minor,
        }),
        Err(rustix::io::Errno::NOSYS) => {
            let dev = fd.metadata().map_err(|e| ExportsError::os(what, e))?.dev();
            Ok(FileMount::Device {
                major: rustix::fs::major(dev),
                minor: rustix::fs::minor(dev),
            })
        }
        Err(e) => Err(ExportsError::os(what, e.into())),
    }
}

/// The bytes of the file at `path`, or `None` when it does not exist. Opened without
/// blocking (a FIFO put there must not hang a login), and read once, at most `max` + 1
/// bytes.
fn read_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>, ExportsError> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExportsError::os(path, e)),
    };
    let meta = file.metadata().map_err(|e| ExportsError::os(path, e))?;
    if !meta.file_type().is_file() {
        return Err(ExportsError::NotRegular(path.to_path_buf()));
    }
    let cap = max + 1;
    // The kernel's files say 0 bytes: the hint is for the table.
    let hint = usize::try_from(meta.len()).unwrap_or(cap).saturating_add(1);
    let mut contents = Vec::with_capacity(hint.min(cap));
    (&mut file)
        .take(cap as u64)
        .read_to_end(&mut contents)
        .map_err(|e| ExportsError::os(path, e))?;
    if contents.len() > max {
        return Err(ExportsError::TooLarge(path.to_path_buf(), max));
    }
    Ok(Some(contents))
}

#[cfg(test)]
mod tests;
