//! Per-thread filesystem identity switch (rule R4).
//!
//! Before opening anything in a user-writable place, the calling thread takes the
//! target user's fsuid, fsgid **and** supplementary groups, so the kernel applies that
//! user's permissions (including on NFS with `root_squash`, where group access matters).
//! Only the calling thread changes: a PAM host such as sshd or a screen locker may run
//! other threads that must keep their credentials.
//!
//! `setfsuid(2)`/`setfsgid(2)` act on the calling thread and return the *previous* id
//! without reporting errors, so every change is confirmed by calling them again.
//! glibc's `setgroups(3)` broadcasts the change to every thread of the process, so the
//! raw syscall is used instead.

use std::fmt;
use std::marker::PhantomData;

use libc::{gid_t, uid_t};
use nix::unistd::{self, Gid, Uid};

use crate::fault::{self, FaultPoint};

/// A filesystem identity: the ids the kernel checks file access against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Filesystem user id.
    pub uid: uid_t,
    /// Filesystem group id.
    pub gid: gid_t,
    /// Supplementary groups (usually from `getgrouplist`, so including `gid`; for uid 0
    /// only `gid`, see [`switch_to`]).
    pub groups: Vec<gid_t>,
}

/// Why the calling thread's identity could not be switched. On every error the
/// previous identity is already back in place.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredError {
    /// The process is not root and its identity differs from the target: it has no
    /// privilege to switch, and continuing as someone else would be wrong.
    NotPermitted {
        /// Requested fsuid.
        uid: uid_t,
        /// Requested fsgid.
        gid: gid_t,
    },
    /// Reading or setting the supplementary group list failed.
    Groups {
        /// The errno of `getgroups`/`setgroups`.
        errno: i32,
    },
    /// `setgroups` reported success but the thread's groups differ from the request.
    GroupsNotApplied,
    /// The fsgid did not change to the requested value.
    FsGid {
        /// Requested fsgid.
        wanted: gid_t,
        /// fsgid in effect after the attempt.
        got: gid_t,
    },
    /// `setfsuid(2)` or `setfsgid(2)` itself is refused (it returns -1, which no id
    /// is): a seccomp filter in a container. Nothing was changed by it.
    FsRefused {
        /// The refused call.
        call: &'static str,
        /// The id it was asked to take.
        wanted: u32,
    },
    /// The fsuid did not change to the requested value.
    FsUid {
        /// Requested fsuid.
        wanted: uid_t,
        /// fsuid in effect after the attempt.
        got: uid_t,
    },
}

impl fmt::Display for CredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPermitted { uid, gid } => write!(
                f,
                "not running as root: cannot switch filesystem identity to uid {uid} gid {gid}"
            ),
            Self::Groups { errno } => {
                write!(
                    f,
                    "cannot set supplementary groups: {}",
                    std::io::Error::from_raw_os_error(*errno)
                )?;
                // The two causes a container gives, named so that the admin need not
                // know setgroups(2) by heart.
                match *errno {
                    libc::EPERM => f.write_str(
                        " (the process lacks CAP_SETGID, or runs in a user namespace \
                         that denies setgroups)",
                    ),
                    libc::EINVAL => f.write_str(
                        " (a group not mapped in this user namespace, or too many groups)",
                    ),
                    _ => Ok(()),
                }
            }
            Self::GroupsNotApplied => f.write_str("supplementary groups did not take effect"),
            Self::FsGid { wanted, got } => write!(
                f,
                "setfsgid({wanted}) did not take effect (fsgid is {got}): the process \
                 lacks CAP_SETGID, or gid {wanted} is not mapped in this user namespace"
            ),
            Self::FsRefused { call, wanted } => write!(
                f,
                "{call}({wanted}) is refused in this process (a seccomp filter?): the \
                 file-system identity cannot be switched"
            ),
            Self::FsUid { wanted, got } => write!(
                f,
                "setfsuid({wanted}) did not take effect (fsuid is {got}): the process \
                 lacks CAP_SETUID, or uid {wanted} is not mapped in this user namespace"
            ),
        }
    }
}

impl std::error::Error for CredError {}

/// The kernel's default overflow id (`/proc/sys/kernel/overflowuid`): what a user
/// namespace shows as the owner of a file whose real owner it does not map.
const OVERFLOW_ID: uid_t = 65534;

/// Words to add where an owner is refused: inside an unprivileged container, a home or
/// a store bind-mounted from the host shows up owned by the overflow id, and "owned by
/// uid 65534" alone sends the admin looking for a `nobody` who never touched the file.
/// Empty for any other owner.
pub(crate) fn unmapped_owner_note(uid: uid_t) -> &'static str {
    if uid == OVERFLOW_ID {
        " (65534 is nobody, and also how a user namespace shows an owner it does not \
         map: a host directory bind-mounted into a container)"
    } else {
        ""
    }
}

/// Restores the thread's previous fsuid, fsgid and groups when dropped.
///
/// If the restore fails the process aborts: continuing to serve other PAM calls (or
/// the host's own work) with a user's credentials is worse than crashing (test E3).
/// The guard is `!Send` because credentials belong to the thread that switched them.
#[must_use = "credentials are restored when the guard is dropped"]
pub struct CredGuard {
    saved: Option<Saved>,
    _not_send: PhantomData<*const ()>,
}

struct Saved {
    fsuid: uid_t,
    fsgid: gid_t,
    groups: Vec<gid_t>,
    /// Whether the switch may have changed the fs ids: only those are set back, so
    /// that a call the process may not make (a seccomp filter) and that changed
    /// nothing is not made again at the restore, where its failure aborts.
    fsgid_touched: bool,
    fsuid_touched: bool,
}

impl CredGuard {
    fn noop() -> Self {
        Self {
            saved: None,
            _not_send: PhantomData,
        }
    }

    /// True if this guard changed anything (false for the unprivileged no-op case).
    pub fn switched(&self) -> bool {
        self.saved.is_some()
    }
}

impl fmt::Debug for CredGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredGuard")
            .field("switched", &self.switched())
            .finish()
    }
}

impl Drop for CredGuard {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take()
            && restore(&saved).is_err()
        {
            // No logging here: the caller's logger may itself need the credentials we
            // failed to restore, and nothing after this point may run as the user.
            std::process::abort();
        }
    }
}

fn restore(saved: &Saved) -> Result<(), CredError> {
    fault::hit(FaultPoint::CredRestore).map_err(|errno| CredError::Groups { errno })?;
    // Reverse order of the switch: fsuid back to root first brings back the
    // capabilities that setfsgid and setgroups need.
    if saved.fsuid_touched {
        set_fsuid(saved.fsuid)?;
    }
    if saved.fsgid_touched {
        set_fsgid(saved.fsgid)?;
    }
    // A switch refused at setgroups (no CAP_SETGID in a container, or a user namespace
    // whose setgroups is "deny") left the groups as they were; setting them again would
    // need the very capability that was missing, and its failure would abort the host.
    let mut now = thread_groups()?;
    now.sort_unstable();
    let mut want = saved.groups.clone();
    want.sort_unstable();
    if now == want {
        return Ok(());
    }
    set_groups_checked(&saved.groups)
}

/// Switch the calling thread's filesystem identity to `id`.
///
/// Order: supplementary groups, then fsgid, then fsuid (changing fsuid away from root
/// drops the capabilities the other two need). Each step is verified. The returned
/// guard restores all three on drop.
///
/// When the process is not root (`euid != 0`, e.g. a screen locker running as the
/// user), nothing can be switched: if the current fsuid already equals the target's, a
/// no-op guard is returned, otherwise [`CredError::NotPermitted`]. The fsgid and the
/// supplementary groups are whatever the host has (a locker started after `newgrp`, or
/// installed setgid, runs with another group): it could not change them, it opens the
/// account's own files by their owner bits, and what it creates is the account's,
/// mode 0600, so denying the account its own login for a group would gain nothing.
/// A root thread asked to open as root (fsuid 0 and the same fsgid) is left as it is:
/// its capabilities, not its groups, decide what it may open.
pub fn switch_to(id: &Identity) -> Result<CredGuard, CredError> {
    // With setfsuid(2) refused (a seccomp filter), the fs ids are the effective ids:
    // every call that sets those sets them too, and nothing else could have.
    let fsuid = current_fsuid().unwrap_or_else(|| unistd::geteuid().as_raw());
    let fsgid = current_fsgid().unwrap_or_else(|| unistd::getegid().as_raw());
    if !unistd::geteuid().is_root() {
        if fsuid == id.uid {
            return Ok(CredGuard::noop());
        }
        return Err(CredError::NotPermitted {
            uid: id.uid,
            gid: id.gid,
        });
    }
    if id.uid == 0 && fsuid == 0 && fsgid == id.gid {
        // Root opening as root: fsuid 0 opens by its capabilities and the owner bits,
        // which supplementary groups do not change. Nothing to switch, and no group
        // list was looked up for it (nss::identity_of).
        return Ok(CredGuard::noop());
    }
    let groups = thread_groups()?;
    // From here on the guard owns the restore, so an error in any step below puts the
    // old identity back before the error reaches the caller.
    let mut guard = CredGuard {
        saved: Some(Saved {
            fsuid,
            fsgid,
            groups,
            fsgid_touched: false,
            fsuid_touched: false,
        }),
        _not_send: PhantomData,
    };
    set_groups_checked(&id.groups)?;
    let touched = |r: &Result<(), CredError>| !matches!(r, Err(CredError::FsRefused { .. }));
    let r = set_fsgid(id.gid);
    if let Some(saved) = guard.saved.as_mut() {
        saved.fsgid_touched = touched(&r);
    }
    r?;
    let r = set_fsuid(id.uid);
    if let Some(saved) = guard.saved.as_mut() {
        saved.fsuid_touched = touched(&r);
    }
    r?;
    Ok(guard)
}

/// The calling thread's fsuid, fsgid and supplementary groups, read from
/// `/proc/thread-self/status` (the 4th `Uid:`/`Gid:` field is the filesystem id).
///
/// Test-only (`cfg(test)` or the `test-support` feature): an independent view of what
/// the kernel really applies, not the syscalls this module itself uses.
#[cfg(any(test, feature = "test-support"))]
pub fn current_fs_ids() -> std::io::Result<Identity> {
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected status format");
    let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key));
    let fourth = |line: &str| -> std::io::Result<u32> {
        line.split_whitespace()
            .nth(3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)
    };
    let uid = fourth(field("Uid:").ok_or_else(bad)?)?;
    let gid = fourth(field("Gid:").ok_or_else(bad)?)?;
    let groups = field("Groups:")
        .ok_or_else(bad)?
        .split_whitespace()
        .map(|g| g.parse().map_err(|_| bad()))
        .collect::<std::io::Result<Vec<gid_t>>>()?;
    Ok(Identity { uid, gid, groups })
}

/// `None` when the call is refused: -1 is never a valid id, so the kernel changes
/// nothing and reports the current one, and -1 back means the call did not run.
fn current_fsuid() -> Option<uid_t> {
    let got = unistd::setfsuid(Uid::from_raw(uid_t::MAX)).as_raw();
    (got != uid_t::MAX).then_some(got)
}

fn current_fsgid() -> Option<gid_t> {
    let got = unistd::setfsgid(Gid::from_raw(gid_t::MAX)).as_raw();
    (got != gid_t::MAX).then_some(got)
}

fn set_fsuid(uid: uid_t) -> Result<(), CredError> {
    unistd::setfsuid(Uid::from_raw(uid));
    // The second call returns what the first one left in place.
    let got = unistd::setfsuid(Uid::from_raw(uid)).as_raw();
    if got == uid {
        Ok(())
    } else if got == uid_t::MAX {
        Err(CredError::FsRefused {
            call: "setfsuid",
            wanted: uid,
        })
    } else {
        Err(CredError::FsUid { wanted: uid, got })
    }
}

fn set_fsgid(gid: gid_t) -> Result<(), CredError> {
    unistd::setfsgid(Gid::from_raw(gid));
    let got = unistd::setfsgid(Gid::from_raw(gid)).as_raw();
    if got == gid {
        Ok(())
    } else if got == gid_t::MAX {
        Err(CredError::FsRefused {
            call: "setfsgid",
            wanted: gid,
        })
    } else {
        Err(CredError::FsGid { wanted: gid, got })
    }
}

fn thread_groups() -> Result<Vec<gid_t>, CredError> {
    // getgroups(2) has no process-wide emulation in glibc: it reads this thread's creds.
    // Not sized by sysconf(NGROUPS_MAX), which glibc answers by reading a file in /proc
    // on every call. One call into a small buffer answers the usual case (a few
    // groups); only a longer list costs the count-then-fetch below (issue 23: this runs
    // three times per credential switch).
    let mut small = [0 as gid_t; 32];
    // SAFETY: `small` has room for its length in gid_t values and outlives the call.
    let got = unsafe { libc::getgroups(small.len() as libc::c_int, small.as_mut_ptr()) };
    if let Ok(n) = usize::try_from(got)
        && n <= small.len()
    {
        return Ok(small[..n].to_vec());
    }
    loop {
        // SAFETY: a zero size with a null list only asks for the count; nothing is
        // written.
        let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let len = usize::try_from(count).map_err(|_| CredError::Groups {
            errno: nix::errno::Errno::last_raw(),
        })?;
        let mut groups: Vec<gid_t> = vec![0; len];
        // SAFETY: `groups` has room for `count` gid_t values and outlives the call.
        let got = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
        match usize::try_from(got) {
            Ok(n) if n <= len => {
                groups.truncate(n);
                return Ok(groups);
            }
            // The list grew between the two calls (another thread cannot change ours,
            // but be exact): ask again. With a size of 0 the call answers with the new
            // count instead of EINVAL.
            Ok(_) => continue,
            Err(_) if nix::errno::Errno::last() == nix::errno::Errno::EINVAL => continue,
            Err(_) => {
                return Err(CredError::Groups {
                    errno: nix::errno::Errno::last_raw(),
                });
            }
        }
    }
}

// On these 32-bit ABIs SYS_setgroups is the legacy 16-bit-gid call; glibc uses the
// 32-bit variant there, and so must we.
#[cfg(any(target_arch = "x86", target_arch = "arm"))]
const SETGROUPS_NR: libc::c_long = libc::SYS_setgroups32;
#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
const SETGROUPS_NR: libc::c_long = libc::SYS_setgroups;

fn set_thread_groups(groups: &[gid_t]) -> Result<(), CredError> {
    let len = libc::c_long::try_from(groups.len()).map_err(|_| CredError::Groups {
        errno: libc::EINVAL,
    })?;
    // SAFETY: `groups` is a live, initialised slice of `len` gid_t values for the whole
    // call and the kernel only reads it. The raw syscall changes this thread's
    // credentials only, which is the point (glibc's wrapper would change every thread);
    // glibc keeps no cached copy of the group list that this could desynchronise.
    let rc = unsafe { libc::syscall(SETGROUPS_NR, len, groups.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(CredError::Groups {
            errno: nix::errno::Errno::last_raw(),
        })
    }
}

fn set_groups_checked(groups: &[gid_t]) -> Result<(), CredError> {
    set_thread_groups(groups)?;
    let mut want = groups.to_vec();
    want.sort_unstable();
    let mut got = thread_groups()?;
    got.sort_unstable();
    if want == got {
        Ok(())
    } else {
        Err(CredError::GroupsNotApplied)
    }
}

#[cfg(test)]
mod tests;
