//! How long the running kernel has been up (`CLOCK_BOOTTIME`).
//!
//! The state store writes a used code without an fsync; a power loss or a kernel crash
//! can lose that write, and always ends in a reboot. Every time step up to the boot (plus
//! the window ahead) therefore counts as used, which the verification applies as a floor
//! on the replay mark. The boot time is `now − uptime` with the module's own clock, so
//! it stays consistent with the clock the codes are checked against. `None` when the
//! kernel does not say: the module then writes used codes durably instead.

use nix::time::{ClockId, clock_gettime};

/// Seconds since boot, rounded down (so `now − uptime` is never before the real boot).
/// `CLOCK_BOOTTIME` counts suspended time too, as `/proc/uptime` does, and glibc reads
/// it from the vDSO: no system call and no file on the login path.
pub fn uptime() -> Option<u64> {
    let now = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
    u64::try_from(now.tv_sec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own account of the same clock: `/proc/uptime` prints boot time with
    /// two decimals. Read before and after, so the clock value must lie between them.
    #[test]
    fn uptime_agrees_with_proc_uptime() {
        let proc_seconds = || -> u64 {
            let text = std::fs::read_to_string("/proc/uptime").expect("/proc/uptime");
            let whole = text.split(['.', ' ']).next().expect("a number");
            whole.parse().expect("whole seconds")
        };
        let before = proc_seconds();
        let ours = uptime().expect("CLOCK_BOOTTIME");
        let after = proc_seconds();
        assert!(
            before <= ours && ours <= after,
            "{before} <= {ours} <= {after}"
        );
    }
}
