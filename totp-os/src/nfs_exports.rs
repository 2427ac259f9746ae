//! Whether this host's kernel NFS server exports the file system a file lies on, from
//! the export table `exportfs` keeps ([`ETAB`]), for `shared_file=auto`: on the NFS
//! server that exports the homes, a home is on a local file system, yet NFS clients
//! read the same file.
//!
//! A file counts as exported when an exported directory is on the same file system
//! (`st_dev`), not only when the file lies below it: that errs toward "shared", which
//! only costs a lock and a rewrite, where the other way round would let a client accept
//! a code this host accepted.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use totp_core::nfs_etab::{self, LineError};

/// The table of current exports `exportfs` writes and `rpc.mountd` serves.
pub const ETAB: &str = "/var/lib/nfs/etab";

/// Largest export table read (R36): a line per export and client, a few dozen bytes
/// each, so a megabyte is thousands of exports; anything larger is taken for garbled.
pub const ETAB_MAX: usize = 1 << 20;

/// Why the export table gives no answer; the caller takes the file for exported.
#[derive(Debug)]
pub enum ExportsError {
    /// The table could not be opened or read (other than missing), or one of its paths
    /// not looked at (other than missing).
    Os { what: PathBuf, error: io::Error },
    /// Not a regular file (a FIFO, a device, a directory).
    NotRegular,
    /// Larger than [`ETAB_MAX`].
    TooLarge,
    /// A line that is not one `exportfs` writes.
    Garbled(LineError),
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
        match self {
            ExportsError::Os { what, error } => {
                write!(f, "{}: {error}", what.as_os_str().as_bytes().escape_ascii())
            }
            ExportsError::NotRegular => write!(f, "{ETAB}: not a regular file"),
            ExportsError::TooLarge => write!(f, "{ETAB}: larger than {ETAB_MAX} bytes"),
            ExportsError::Garbled(e) => write!(f, "{ETAB}: {e}"),
        }
    }
}

/// The exported directory (of [`ETAB`]) that lies on the file system of the file open
/// at `fd`, or `None`: no table (no NFS server), or no export on it.
pub fn export_of(fd: &File) -> Result<Option<PathBuf>, ExportsError> {
    export_of_in(Path::new(ETAB), fd)
}

/// [`export_of`] with the table at `etab`.
pub fn export_of_in(etab: &Path, fd: &File) -> Result<Option<PathBuf>, ExportsError> {
    let Some(contents) = read_table(etab)? else {
        return Ok(None);
    };
    let paths = nfs_etab::export_paths(&contents).map_err(ExportsError::Garbled)?;
    if paths.is_empty() {
        return Ok(None);
    }
    let dev = fd
        .metadata()
        .map_err(|e| ExportsError::os(Path::new("the secret file"), e))?
        .dev();
    for p in paths {
        let path = Path::new(OsStr::from_bytes(&p));
        // Not following a final symlink: exportfs resolves them before writing the table.
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.dev() == dev => return Ok(Some(path.to_path_buf())),
            Ok(_) => {}
            // An export whose directory is gone serves nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
            // Unseen (a directory this login's identity cannot search): it may be here.
            Err(e) => return Err(ExportsError::os(path, e)),
        }
    }
    Ok(None)
}

/// The table's bytes, or `None` when it does not exist. Opened without blocking (a FIFO
/// put there must not hang a login), and read once, at most [`ETAB_MAX`] + 1 bytes.
fn read_table(etab: &Path) -> Result<Option<Vec<u8>>, ExportsError> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(etab)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExportsError::os(etab, e)),
    };
    let meta = file.metadata().map_err(|e| ExportsError::os(etab, e))?;
    if !meta.file_type().is_file() {
        return Err(ExportsError::NotRegular);
    }
    let cap = ETAB_MAX + 1;
    let hint = usize::try_from(meta.len()).unwrap_or(cap).saturating_add(1);
    let mut contents = Vec::with_capacity(hint.min(cap));
    (&mut file)
        .take(cap as u64)
        .read_to_end(&mut contents)
        .map_err(|e| ExportsError::os(etab, e))?;
    if contents.len() > ETAB_MAX {
        return Err(ExportsError::TooLarge);
    }
    Ok(Some(contents))
}

#[cfg(test)]
mod tests;
