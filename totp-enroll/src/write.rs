//! Writing the secret file and the QR files, with the right identity.
//!
//! The byte-level safety (random temp name, `O_EXCL|O_NOFOLLOW`, fsync, rename,
//! directory fsync, no symlink at the target, old file untouched on failure) is
//! `totp_os::safefile`'s, and *who* writes is the core's placement
//! ([`Opener`]): the caller for itself, the target user's filesystem identity when
//! root writes into that user's home (rule R4: never as root in a directory the user
//! controls), or root into a store whose whole directory chain root alone can modify,
//! checked on the descriptors the write itself uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use totp_core::gafile::{GaFile, Mode};
use totp_core::placement::{Opener, SECRET_FILE_MODE};
use totp_os::creds::{self, CredGuard};
use totp_os::nss;
use totp_os::safefile::{self, FileError, LockedFile, NewFile, PendingNewFile};

use crate::error::Error;
use crate::target::Target;

/// How long `--regenerate-scratch-codes` and `-f` wait for a login holding the lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` with the filesystem identity `target` must be written as.
pub fn as_writer<T>(target: &Target, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let _guard: Option<CredGuard> = match target.placed.opener {
        // Root in a store writes as itself; the directory checks guard it.
        Opener::Caller | Opener::Root => None,
        Opener::User => Some(switch_to(&target.user)?),
        // The `user=` account of the --service line owns the store: it writes there,
        // as every login opens the file as it.
        Opener::Owner => match &target.owner {
            Some(owner) => Some(switch_to(owner)?),
            None => {
                return Err(Error::failed(
                    "a user= placement without its account".to_owned(),
                ));
            }
        },
    };
    f()
}

fn switch_to(pw: &nss::Passwd) -> Result<CredGuard, Error> {
    let id = nss::identity_of(pw)
        .map_err(|e| Error::failed(format!("cannot look up the groups of \"{}\": {e}", pw.name)))?;
    creds::switch_to(&id)
        .map_err(|e| Error::failed(format!("cannot switch to \"{}\": {e}", pw.name)))
}

/// Is something already at the target? Checked early so that a user is not shown
/// a QR code for a file that will then not be written (a home or store whose
/// directories a login would refuse is refused here already: every enrolment
/// placement checks its directories, `check_dirs_on_create`). The write itself
/// decides again, race-free.
pub fn target_exists(target: &Target) -> Result<Option<bool>, Error> {
    as_writer(target, || {
        safefile::entry_is_regular(target.path(), Some(&target.rules()))
            .map_err(|e| store_error(target, e))
    })
}

/// Why no login could use the secret file already at the target, whatever the
/// module's options: GA's grammar refuses it, its secret is below the 80 bits no option
/// lowers, or it holds neither a mode line nor a scratch code (no code logs in). `None` when it reads as a secret file, or when it
/// cannot be read here: its mode and owner are judged by options this run may not know
/// (`allowed_perm=`, `no_strict_owner`), so they are not.
pub fn existing_unusable(target: &Target) -> Result<Option<String>, Error> {
    as_writer(target, || {
        let mut rules = target.rules();
        rules.allowed_perm = 0o777;
        rules.allowed_owners.push(0);
        let Ok(opened) = safefile::open_checked(target.path(), &rules) else {
            return Ok(None);
        };
        let file = match GaFile::parse(&opened.contents) {
            Ok(f) => f,
            Err(e) => return Ok(Some(e.to_string())),
        };
        // The floor no `min_secret_bits=` lowers.
        let floor = totp_core::policy::DEFAULT_MIN_SECRET_BITS as usize;
        match file.secret() {
            Err(e) => return Ok(Some(e.to_string())),
            Ok(secret) if secret.bits() < floor => {
                return Ok(Some(format!(
                    "its secret has {} bits, and the module requires at least {floor}",
                    secret.bits()
                )));
            }
            Ok(_) => {}
        }
        Ok(match file.config() {
            Err(e) => Some(e.to_string()),
            Ok(c) if c.mode == Mode::ScratchOnly && file.scratch_codes().is_empty() => Some(
                "it has no TOTP_AUTH or HOTP_COUNTER line (a double quote, one space, the \
                 key in capitals; a counter of 1 or more) and no scratch code, so no code \
                 logs in"
                    .to_owned(),
            ),
            Ok(_) => None,
        })
    })
}

/// Writes the secret file with permission bits `mode`, checking its directories as a
/// login checks them (one rule: never write a secret the module would then refuse).
///
/// `publish` hands the new secret to whoever asked for it (`--json`, `--uri`). It runs
/// once the new file is complete on disk under a temp name and before that replaces
/// anything, so that a failed print leaves the old file as it was instead of a secret
/// nobody received (rule R29). It runs with the writer's filesystem identity, which
/// writing to already open descriptors does not use. With `overwrite`, the rename
/// waits for a login holding the old file's lock, as `--regenerate-scratch-codes` does,
/// and the new file keeps a narrower mode of the file it replaces (GA's tool writes
/// 0400, and a line with `allowed_perm=0400` refuses 0600), read on the file locked
/// for the rename. Root writing a store file the login requires the user to own hands
/// it to the user before the rename ([`Target::new_file_owner`]), with the group of the
/// file it replaces, if any.
pub fn write_secret(
    target: &Target,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
    publish: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    let how = NewFile {
        keep_narrower_mode: true,
        owner: target.new_file_owner(),
        // The group root gave the file (a store's readers) stays, as it does when
        // --regenerate-scratch-codes or resync rewrite it (`lock_existing`).
        keep_group: target.new_file_owner().is_some(),
        ..NewFile::new(mode, overwrite, LOCK_TIMEOUT)
    };
    as_writer(target, || {
        target
            .rules()
            .write_new_file_then(target.path(), contents, how, publish)
            .map_err(|e| store_error(target, e))?
    })
}

/// Opens and locks the existing secret file for an in-place update, with the
/// owners and directory checks the placement names. Where the file system refuses the
/// lock on the read-only descriptor (an NFSv4 client answers EBADF, and GA leaves its
/// files 0400, so a shared home is where resync is needed), the file is read unlocked
/// instead, as a login reads it: [`replace_existing`] then writes only over what was
/// read.
pub fn lock_existing(target: &Target) -> Result<LockedFile, Error> {
    let rules = target.rules();
    let mut locked = match safefile::lock_with_deadline(target.path(), &rules, LOCK_TIMEOUT) {
        Ok(locked) => locked,
        Err(e) if safefile::is_refused_read_only_lock(&e) => {
            safefile::open_refused_lock(target.path(), &rules)
                .map_err(|e| store_error(target, e))?
        }
        Err(e) => return Err(store_error(target, e)),
    };
    // Root updating a store file the user owns: the rewrite stays the user's.
    if target.new_file_owner().is_some() {
        locked.keep_owner();
    }
    Ok(locked)
}

/// Replaces the file [`lock_existing`] returned with `new_contents`. A file it could
/// not lock is read again first and written only if it still holds what was read (GA's
/// own guard, for the same file systems): a login on this or another host that rewrote
/// it meanwhile (a used scratch code, a moved counter) is never undone; nothing is
/// written then, and the error says to run again.
pub fn replace_existing(
    target: &Target,
    locked: &mut LockedFile,
    new_contents: &[u8],
) -> Result<(), Error> {
    if !locked.is_locked() {
        let now = safefile::open_refused_lock(target.path(), &target.rules())
            .map_err(|e| store_error(target, e))?;
        if now.contents() != locked.contents() {
            return Err(Error::failed(format!(
                "\"{}\" changed while it was being updated (a login rewrote it, and its \
                 file system refuses the lock that would have kept the login waiting): \
                 nothing was written; run again",
                target.path().display()
            )));
        }
    }
    // The last check, on the name, right before the rename (`LockedFile::replace`):
    // another file renamed into place since the read is never replaced. Said as what it
    // is, with what to do; it was "kept being replaced while locking", which told an
    // admin neither that nothing was written nor to run again.
    locked.replace(new_contents).map_err(|e| match e {
        FileError::Unstable => Error::failed(format!(
            "\"{}\" was replaced while it was being updated ({}): nothing was written; \
             run again",
            target.path().display(),
            if locked.is_locked() {
                "by a writer that takes no lock, such as GA's module"
            } else {
                "a login rewrote it, and its file system refuses the lock that would have \
                 kept the login waiting"
            }
        )),
        e => file_error(target.path(), e),
    })
}

/// The existing secret file, read with the checks [`lock_existing`] makes, unlocked: to
/// refuse what the locked update would refuse before anything is shown.
pub fn read_existing(target: &Target) -> Result<safefile::OpenedFile, Error> {
    safefile::open_checked(target.path(), &target.rules()).map_err(|e| store_error(target, e))
}

/// A refused store directory says what a store must be.
fn store_error(target: &Target, e: FileError) -> Error {
    match e {
        FileError::UnsafeDirectory { .. } | FileError::UntrustedSymlink { .. }
            if target.placed.opener == Opener::Root =>
        {
            Error::failed(format!(
                "\"{}\": {e}; a secret for another user outside their home must go into \
                 a store whose every directory is root-owned and closed to group and \
                 other writes",
                target.path().display()
            ))
        }
        FileError::UnsafeDirectory { .. } => Error::failed(format!(
            "\"{}\": {e}; the module would refuse a secret file there at every login \
             (a directory others can write lets them replace the file). Remove group and \
             other write (chmod g-w,o-w), or keep group write only for the user's own \
             private group",
            target.path().display()
        )),
        e => file_error(target.path(), e),
    }
}

/// A QR image this run wrote under a temp name beside its path: it takes the path
/// ([`place_qr`]) only once the secret file is in place, so a failed run leaves an image
/// already there as it was ([`discard_qr`]).
pub struct PendingQr {
    pub path: PathBuf,
    pending: PendingNewFile,
}

/// Runs `f` with the identity QR images are written as. They go where the caller
/// says, not into the placement's directory, so the secret file's writer says nothing
/// about who controls that directory: root enrolling another user (into their home, a
/// store or a `user=` account's store) writes them as the user being enrolled, so a
/// directory the user controls is never written by root (rule R4: swapped for a
/// symlink to /etc during the lock wait, it would be root's write and root's unlink
/// there) and the image belongs to the person whose secret it shows. The caller
/// enrolling itself, or `--print-file` (no target), writes as itself.
fn as_qr_writer<T>(
    target: Option<&Target>,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let _guard: Option<CredGuard> = match target {
        Some(target) if target.placed.opener != Opener::Caller => Some(switch_to(&target.user)?),
        _ => None,
    };
    f()
}

/// Who may own the directory of a QR image: writing as itself, the caller keeps to
/// directories it or root owns (root enrolling itself with a path in another account's
/// directory would otherwise leave a root-owned file there, through a directory that
/// account can swap: rule R4); written as the enrolled user, anyone (empty).
fn qr_dir_owners(target: Option<&Target>) -> Vec<u32> {
    match target {
        Some(target) if target.placed.opener != Opener::Caller => Vec::new(),
        _ => vec![nix::unistd::geteuid().as_raw(), 0],
    }
}

fn foreign_qr_dir(path: &Path, uid: u32) -> Error {
    Error::usage(format!(
        "\"{}\": its directory is owned by uid {uid}, neither yours nor root's: a QR image \
         is written only into a directory you or root own (give another path; root \
         enrolling another user writes it as that user with --user)",
        path.display()
    ))
}

/// The QR directory's owner looked at before the secret is shown, so that a path the
/// write would refuse ([`qr_dir_owners`]) is refused first. Advisory: the write checks
/// again on the directory it opens.
pub fn check_qr_dir(target: Option<&Target>, path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let owners = qr_dir_owners(target);
    let Ok(abs) = std::path::absolute(path) else {
        return Ok(());
    };
    let Some(Ok(meta)) = abs.parent().map(std::fs::metadata) else {
        return Ok(());
    };
    if owners.is_empty() || owners.contains(&meta.uid()) {
        return Ok(());
    }
    Err(foreign_qr_dir(&abs, meta.uid()))
}

/// Writes a QR image ([`as_qr_writer`] says as whom) under a temp name beside `path`,
/// created without following a symlink; an existing file at `path` without `overwrite`
/// is refused now, before the secret file is written. The directory path is made absolute before the switch, as the
/// caller sees it.
pub fn write_qr_file(
    target: Option<&Target>,
    path: &Path,
    contents: &[u8],
    overwrite: bool,
) -> Result<PendingQr, Error> {
    let abs = std::path::absolute(path)
        .map_err(|e| Error::failed(format!("cannot resolve \"{}\": {e}", path.display())))?;
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(Error::usage(format!(
            "\"{}\" does not name a file",
            path.display()
        )));
    };
    let owners = qr_dir_owners(target);
    let pending = as_qr_writer(target, || {
        safefile::prepare_new_file_in(dir, name, contents, SECRET_FILE_MODE, overwrite, &owners)
            .map_err(|e| match e {
                // Not the secret file: --regenerate-scratch-codes is no way out here.
                FileError::AlreadyExists => Error::OtherExists(abs.clone()),
                FileError::UnsafeDirectory { uid, .. } => foreign_qr_dir(&abs, uid),
                e => file_error(&abs, e),
            })
    })?;
    Ok(PendingQr { path: abs, pending })
}

/// Renames a QR image into place, as the identity that wrote it.
pub fn place_qr(target: Option<&Target>, qr: PendingQr) -> Result<(), Error> {
    let PendingQr { path, pending } = qr;
    as_qr_writer(target, || {
        pending.commit().map_err(|e| match e {
            FileError::AlreadyExists => Error::OtherExists(path.clone()),
            e => file_error(&path, e),
        })
    })
}

/// Removes the temp file of a QR image that is not to be placed, as the identity that
/// wrote it; what is at its path stays.
pub fn discard_qr(target: Option<&Target>, qr: PendingQr) {
    let _ = as_qr_writer(target, || {
        drop(qr);
        Ok(())
    });
}

pub fn file_error(path: &Path, e: FileError) -> Error {
    match e {
        FileError::AlreadyExists => Error::Exists(path.to_path_buf()),
        FileError::NotFound => Error::failed(format!("\"{}\" does not exist", path.display())),
        e => Error::failed(format!("\"{}\": {e}", path.display())),
    }
}
