//! How long the running kernel has been up, from `/proc/uptime`.
//!
//! The state store writes a used code without an fsync; a power loss or a kernel crash
//! can lose that write, and always ends in a reboot. Every time step up to the boot (plus
//! the window ahead) therefore counts as used, which the verification applies as a floor
//! on the replay mark. The boot time is `now − uptime` with the module's own clock, so
//! it stays consistent with the clock the codes are checked against. `None` when the
//! kernel does not say: the module then writes used codes durably instead.

use std::io::Read;

/// Seconds since boot, rounded down (so `now − uptime` is never before the real boot).
pub fn uptime() -> Option<u64> {
    let mut text = String::new();
    std::fs::File::open("/proc/uptime")
        .ok()?
        .take(256)
        .read_to_string(&mut text)
        .ok()?;
    parse_uptime(&text)
}

fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let whole = first.split('.').next()?;
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_read_and_parsed_strictly() {
        assert!(uptime().is_some(), "/proc/uptime readable");
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime("12 3\n"), Some(12));
        for bad in ["", "x 1", "-1.0 2", ".5 1"] {
            assert_eq!(parse_uptime(bad), None, "{bad:?}");
        }
    }
}
