//! The process's file size limit (`RLIMIT_FSIZE`, `ulimit -f`). A write or allocation
//! past it is answered with `SIGXFSZ`, whose default action kills the process: a user
//! who lowers the limit before `su` or a polkit helper (setuid programs keep the
//! caller's limits) would have the module kill its host in the middle of a login.
//! Every write checks its end against the limit first and fails with `EFBIG`, so the
//! login is denied (or a rewrite skipped) with the cause in the log instead.

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit};

/// `Err(EFBIG)` when writing up to byte `end` of a file would pass the soft limit.
pub fn allows(end: u64) -> Result<(), Errno> {
    // A limit that cannot be read is no limit we know of: the write itself decides.
    match getrlimit(Resource::RLIMIT_FSIZE) {
        Ok((soft, _)) if soft != libc::RLIM_INFINITY && end > soft => Err(Errno::EFBIG),
        _ => Ok(()),
    }
}

/// What a log line says when [`allows`] refused.
pub const REFUSED: &str = "past the process's file size limit (RLIMIT_FSIZE, ulimit -f): \
                           not written, so that SIGXFSZ does not kill the host";
