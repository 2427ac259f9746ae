//! Writing the secret file and the QR files, with the right identity.
//!
//! The byte-level safety (random temp name, `O_EXCL|O_NOFOLLOW`, fsync, rename,
//! directory fsync, no symlink at the target, old file untouched on failure) is
//! `totp_os::safefile`'s; this module decides *who* writes: the caller for
//! itself, the target user's filesystem identity when root writes into that
//! user's home (rule R4: never as root in a directory the user controls), or
//! root into a store whose whole directory chain root alone can modify.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use totp_os::creds::{self, CredGuard};
use totp_os::nss;
use totp_os::safefile::{self, FileError, FileRules, LockedFile};

use crate::error::Error;
use crate::target::{Target, WriteMode};

/// Secret files are readable by their owner only, as both modules require.
pub const SECRET_MODE: u32 = 0o600;

/// How long `--regenerate-scratch-codes` waits for a login holding the lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` with the filesystem identity `target` must be written as.
pub fn as_writer<T>(target: &Target, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let _guard: Option<CredGuard> = match target.mode {
        WriteMode::Caller => None,
        WriteMode::TargetUser => {
            let id = nss::identity_of(&target.user).map_err(|e| {
                Error::failed(format!(
                    "cannot look up the groups of \"{}\": {e}",
                    target.user.name
                ))
            })?;
            Some(creds::switch_to(&id).map_err(|e| {
                Error::failed(format!("cannot switch to \"{}\": {e}", target.user.name))
            })?)
        }
        WriteMode::RootStore => {
            check_root_store(&target.dir)?;
            None
        }
    };
    f()
}

/// Refuses a store directory unless it and every directory above it are owned
/// by root and not group- or other-writable: only then can nobody but root
/// swap what the path names between this check and the write.
pub fn check_root_store(dir: &Path) -> Result<(), Error> {
    let real = std::fs::canonicalize(dir).map_err(|e| {
        Error::failed(format!(
            "cannot use store directory \"{}\": {e}",
            dir.display()
        ))
    })?;
    for d in real.ancestors() {
        let md = std::fs::metadata(d)
            .map_err(|e| Error::failed(format!("cannot inspect \"{}\": {e}", d.display())))?;
        if !md.is_dir() || md.uid() != 0 || md.mode() & 0o022 != 0 {
            return Err(Error::failed(format!(
                "\"{}\" is not a root-owned directory closed to group and other writes; \
                 a secret for another user outside their home must go into such a store",
                d.display()
            )));
        }
    }
    Ok(())
}

/// Is something already at the target? Checked early so that a user is not shown
/// a QR code for a file that will then not be written. The write itself decides
/// again, race-free.
pub fn target_exists(target: &Target) -> Result<bool, Error> {
    as_writer(target, || match std::fs::symlink_metadata(&target.path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::failed(format!(
            "cannot check \"{}\": {e}",
            target.path.display()
        ))),
    })
}

pub fn write_secret(target: &Target, contents: &[u8], overwrite: bool) -> Result<(), Error> {
    as_writer(target, || {
        safefile::write_new_file(&target.dir, &target.name, contents, SECRET_MODE, overwrite)
            .map_err(|e| file_error(&target.path, e))
    })
}

/// Opens and locks the existing secret file for an in-place update.
pub fn lock_existing(target: &Target) -> Result<LockedFile, Error> {
    let owner = match target.mode {
        WriteMode::RootStore => 0,
        WriteMode::Caller | WriteMode::TargetUser => target.user.uid,
    };
    let mut rules = FileRules::new(vec![owner]);
    if matches!(target.mode, WriteMode::TargetUser) {
        rules = rules.with_trusted_root(&target.user.dir);
    }
    safefile::lock_with_deadline(&target.path, &rules, LOCK_TIMEOUT)
        .map_err(|e| file_error(&target.path, e))
}

/// Writes a QR image as the caller: it is the caller who asked for the file.
pub fn write_caller_file(path: &Path, contents: &[u8], overwrite: bool) -> Result<PathBuf, Error> {
    let abs = std::path::absolute(path)
        .map_err(|e| Error::failed(format!("cannot resolve \"{}\": {e}", path.display())))?;
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(Error::usage(format!(
            "\"{}\" does not name a file",
            path.display()
        )));
    };
    safefile::write_new_file(dir, name, contents, SECRET_MODE, overwrite)
        .map_err(|e| file_error(&abs, e))?;
    Ok(abs)
}

/// Best-effort removal of a file this run created, when a later step failed.
pub fn remove_created(path: &Path) {
    let _ = std::fs::remove_file(path);
}

pub fn file_error(path: &Path, e: FileError) -> Error {
    match e {
        FileError::AlreadyExists => Error::Exists(path.to_path_buf()),
        FileError::NotFound => Error::failed(format!("\"{}\" does not exist", path.display())),
        e => Error::failed(format!("\"{}\": {e}", path.display())),
    }
}
