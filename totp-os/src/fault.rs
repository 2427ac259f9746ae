//! Fault injection for tests: make the next write, fsync, rename, lock or credential
//! restore on *this thread* fail with a chosen errno.
//!
//! Only compiled into the public API with `cfg(test)` or the `fault-injection` feature.
//! Plans are thread-local so parallel tests (and parallel PAM transactions in a test
//! harness) do not trip each other's failpoints.

/// A place in the OS layer where a failure can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultPoint {
    /// Creating the temp file (`openat(O_CREAT|O_EXCL)`).
    CreateTemp,
    /// Opening a new state record's unnamed file (`openat(O_TMPFILE)`): a point of its
    /// own, so that a test failing a rewrite's temp file still gets its record.
    CreateUnnamed,
    /// The `renameat2(RENAME_NOREPLACE)` naming a new state record (or store key) built
    /// under a temporary name: `EPERM` stands in a seccomp filter without `renameat2`.
    RecordRename,
    /// A new state record (or store key) just linked under its name by the fallback of a
    /// refused `renameat2`, its temporary name not yet removed (two links). Never fails:
    /// a test runs code there with [`run_at`].
    RecordTwoLinks,
    /// A file about to be opened for reading, or a state record for reading or
    /// writing, after the `lstat` that found it a plain file (swapped for a symlink, a
    /// FIFO, a directory, a hard link or another owner's file there, the open must
    /// still refuse it, and touch nothing). Never fails: a test runs code there with
    /// [`run_at`].
    OpenFile,
    /// A file (or a state record) just opened, before its `fstat` (replaced there, the
    /// open holds a file without links). Never fails: a test runs code there with
    /// [`run_at`].
    OpenedFile,
    /// A directory of the state store's path just created (`mkdirat`), before its mode
    /// is set (replaced by a symlink there, nothing may follow it). Never fails: a test
    /// runs code there with [`run_at`].
    DirCreated,
    /// The state directory just opened by the one `openat2` of its fast path, before
    /// the checks of it and of its parents reached through `..` (moved there, what is
    /// checked must be where it is now). Never fails: a test runs code there with
    /// [`run_at`].
    DirOpened,
    /// An entry at a state record's name that `totp-state reset` judged hostile, before
    /// it is looked at again and removed by name (replaced there by a new record, that
    /// record must stay). Never fails: a test runs code there with [`run_at`].
    ResetRemoval,
    /// One `write(2)` call on the temp file.
    Write,
    /// `fsync(2)` of the temp file.
    Fsync,
    /// The `renameat`/`renameat2`/`linkat` that commits a rewrite.
    Rename,
    /// `fsync(2)` of the directory after the rename.
    DirFsync,
    /// One `flock(LOCK_EX|LOCK_NB)` attempt. `EWOULDBLOCK` simulates contention.
    Lock,
    /// Restoring credentials in [`crate::creds::CredGuard`]'s drop: the process aborts.
    CredRestore,
}

#[cfg(any(test, feature = "fault-injection"))]
mod plan {
    use std::cell::RefCell;

    use super::FaultPoint;

    struct Plan {
        point: FaultPoint,
        skip: u32,
        errno: i32,
    }

    type Hook = Box<dyn FnOnce()>;

    thread_local! {
        static PLANS: RefCell<Vec<Plan>> = const { RefCell::new(Vec::new()) };
        static HOOKS: RefCell<Vec<(FaultPoint, Hook)>> = const { RefCell::new(Vec::new()) };
    }

    /// Run `f` at the next hit of `point` on this thread, before any failure planned
    /// there: how a test acts at a moment between two system calls.
    pub fn run_at(point: FaultPoint, f: impl FnOnce() + 'static) {
        HOOKS.with(|h| h.borrow_mut().push((point, Box::new(f))));
    }

    /// Make the next hit of `point` on this thread fail with `errno`.
    pub fn fail_next(point: FaultPoint, errno: i32) {
        fail_nth(point, 0, errno);
    }

    /// Let `skip` hits of `point` pass on this thread, then fail the next one with `errno`.
    pub fn fail_nth(point: FaultPoint, skip: u32, errno: i32) {
        PLANS.with(|p| p.borrow_mut().push(Plan { point, skip, errno }));
    }

    /// Whether a plan for `point` is still waiting on this thread (its fault has not
    /// happened yet): how a test shows that the fault it injected was reached.
    pub fn pending(point: FaultPoint) -> bool {
        PLANS.with(|p| p.borrow().iter().any(|plan| plan.point == point))
            || HOOKS.with(|h| h.borrow().iter().any(|(at, _)| *at == point))
    }

    /// Forget every pending plan of this thread.
    pub fn clear() {
        PLANS.with(|p| p.borrow_mut().clear());
        HOOKS.with(|h| h.borrow_mut().clear());
    }

    pub(crate) fn hit(point: FaultPoint) -> Result<(), i32> {
        // Taken out before it runs: it may reach fault points itself.
        let hook = HOOKS.with(|h| {
            let mut hooks = h.borrow_mut();
            let idx = hooks.iter().position(|(at, _)| *at == point)?;
            Some(hooks.remove(idx).1)
        });
        if let Some(f) = hook {
            f();
        }
        PLANS.with(|p| {
            let mut plans = p.borrow_mut();
            let Some(idx) = plans.iter().position(|plan| plan.point == point) else {
                return Ok(());
            };
            if plans[idx].skip > 0 {
                plans[idx].skip -= 1;
                return Ok(());
            }
            Err(plans.remove(idx).errno)
        })
    }
}

#[cfg(any(test, feature = "fault-injection"))]
pub use plan::{clear, fail_next, fail_nth, pending, run_at};

#[cfg(any(test, feature = "fault-injection"))]
pub(crate) use plan::hit;

#[cfg(not(any(test, feature = "fault-injection")))]
#[inline(always)]
pub(crate) fn hit(_point: FaultPoint) -> Result<(), i32> {
    Ok(())
}
