//! Host names of the shared stores (Redis hosts and sentinels, etcd members, the
//! primaries sentinels name), resolved within a time bound (R36).
//!
//! getaddrinfo has no deadline of its own: a name server that never answers holds the
//! caller for resolv.conf's timeout × attempts × servers, and a login with it. It cannot
//! be abandoned either: a thread left inside it would outlive the PAM call in sshd, and
//! glibc's `getaddrinfo_a` is such a thread (its helper threads run each lookup to the
//! end, `gai_cancel` cannot stop one in progress, and idle helpers linger after the
//! call). So the lookup runs in a child process, `getent ahosts NAME`, through the
//! secret command's runner ([`run_bounded`]: the program checked as root-controlled, an
//! empty environment, no descriptor of the host, its process group killed at the
//! deadline) and is reaped before the call returns. `getent` asks the same NSS `hosts`
//! sources getaddrinfo would have asked in the host. It runs as the host's own
//! identity, which is what getaddrinfo would have run as.
//!
//! The plugins reach this through the `ResolveFn` the module hands over when it loads
//! them (plugin ABI 5), so there is one resolver and one SIGCHLD bookkeeping per
//! process. IP literals never get here.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use pam_totp_plugin_abi::Status;

use crate::command::{CommandError, GETENT, run_bounded};

/// Most `getent ahosts` may print: every address three times (one line per socket
/// type), far below this for any real name.
const MAX_LISTING: usize = 64 << 10;
/// Most distinct addresses kept (the plugins try at most this many).
const MAX_ADDRESSES: usize = pam_totp_plugin_abi::resolve::MAX_ADDRESSES;
/// Longest name handed to `getent` (a DNS name in text form).
const MAX_NAME: usize = 253;

/// Why a name has no address; the message is the log line's text.
#[derive(Debug)]
pub struct ResolveError {
    pub status: Status,
    pub message: String,
}

/// `d` in seconds for a log line: whole seconds as such, otherwise to a tenth.
fn seconds(d: Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    if tenths.is_multiple_of(10) {
        format!("{} s", tenths / 10)
    } else {
        format!("{}.{} s", tenths / 10, tenths % 10)
    }
}

/// Whether `name` is a host name `getent` may be given: letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit (so it is never read as an option).
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The distinct addresses of a `getent ahosts` listing, in its order (getaddrinfo's
/// preference). Every line must be `ADDRESS SOCKTYPE [CANONICAL-NAME]`; anything else
/// refuses the whole listing.
fn parse_listing(out: &[u8]) -> Option<Vec<IpAddr>> {
    let text = std::str::from_utf8(out).ok()?;
    let mut found: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let (addr, kind) = match fields.as_slice() {
            [addr, kind] | [addr, kind, _] => (addr, kind),
            _ => return None,
        };
        if !matches!(*kind, "STREAM" | "DGRAM" | "RAW") {
            return None;
        }
        let ip: IpAddr = addr.parse().ok()?;
        if !found.contains(&ip) && found.len() < MAX_ADDRESSES {
            found.push(ip);
        }
    }
    Some(found)
}

/// The addresses of `name` found within `limit`, or why there are none (fail closed: a
/// lookup not finished in time, refused or garbled gives no address).
pub fn resolve_host(name: &str, limit: Duration) -> Result<Vec<IpAddr>, ResolveError> {
    resolve_with(Path::new(GETENT), name, limit)
}

fn resolve_with(getent: &Path, name: &str, limit: Duration) -> Result<Vec<IpAddr>, ResolveError> {
    let unavailable = |message: String| ResolveError {
        status: Status::Unavailable,
        message,
    };
    if !plausible(name) {
        return Err(ResolveError {
            status: Status::Invalid,
            message: format!("cannot resolve {name:?}: not a host name"),
        });
    }
    if limit.is_zero() {
        return Err(unavailable(format!(
            "cannot resolve {name}: no time left of the connect bound"
        )));
    }
    let (status, out) = match run_bounded(getent, &["ahosts", name], None, MAX_LISTING, limit) {
        Ok(r) => r,
        Err(CommandError::TimedOut | CommandError::OutputHeldOpen(_)) => {
            return Err(unavailable(format!(
                "cannot resolve {name} within {}",
                seconds(limit)
            )));
        }
        Err(CommandError::Untrusted(e)) => {
            return Err(ResolveError {
                status: Status::Refused,
                message: format!(
                    "cannot resolve {name}: {} is not a program only root can change ({e})",
                    getent.display()
                ),
            });
        }
        Err(e) => {
            return Err(unavailable(format!(
                "cannot resolve {name}: {} {}",
                getent.display(),
                e.to_string().trim_start_matches("secret command ")
            )));
        }
    };
    match status.code() {
        Some(0) => {}
        // getent's "key not found": every source answered, none knows the name.
        Some(2) => return Err(unavailable(format!("cannot resolve {name}: no such host"))),
        _ => {
            return Err(unavailable(format!(
                "cannot resolve {name}: {} ahosts failed ({status})",
                getent.display()
            )));
        }
    }
    match parse_listing(&out) {
        Some(found) if !found.is_empty() => Ok(found),
        Some(_) => Err(unavailable(format!("cannot resolve {name}: no address"))),
        None => Err(ResolveError {
            status: Status::Corrupt,
            message: format!(
                "cannot resolve {name}: {} ahosts printed something else than addresses",
                getent.display()
            ),
        }),
    }
}

/// The module's [`pam_totp_plugin_abi::ResolveFn`], handed to every plugin it loads.
///
/// # Safety
/// As `ResolveFn` describes: `name` holds `name_len` bytes, `out` holds `out_cap`
/// writable bytes, `out_len` is writable, `msg` is NULL or holds `msg_cap` writable bytes.
pub(crate) unsafe extern "C" fn resolve_for_plugin(
    name: *const u8,
    name_len: usize,
    limit_ms: u64,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    msg: *mut u8,
    msg_cap: usize,
) -> i32 {
    use pam_totp_plugin_abi::{Failure, support};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    // A panic must not unwind into the plugin's frames (nor abort the host). Caught
    // here without `support::guarded`, which would install a panic hook of its own in
    // the caller's process (the module has one; an admin tool keeps its default).
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded contract of this function.
        let name = unsafe { support::bytes(name, name_len) }?;
        let name =
            std::str::from_utf8(name).map_err(|_| Failure::invalid("host name not UTF-8"))?;
        if out_len.is_null() || out.is_null() {
            return Err(Failure::invalid("NULL output pointer"));
        }
        let found = resolve_host(name, Duration::from_millis(limit_ms))
            .map_err(|e| Failure::new(e.status, e.message))?;
        let mut listing = Vec::new();
        for ip in found {
            let line = format!("{ip}\n");
            if listing.len() + line.len() > out_cap {
                break;
            }
            listing.extend_from_slice(line.as_bytes());
        }
        // SAFETY: `out` holds `out_cap >= listing.len()` writable bytes and `out_len` is
        // writable (both checked non-NULL above).
        unsafe {
            std::ptr::copy_nonoverlapping(listing.as_ptr(), out, listing.len());
            *out_len = listing.len();
        }
        Ok(Status::Ok)
    }))
    .unwrap_or_else(|_| {
        Err(Failure::new(
            Status::Internal,
            "internal error in the module's resolver",
        ))
    });
    // SAFETY: `msg` is NULL or writable for `msg_cap` bytes (this function's contract).
    unsafe { support::finish(msg, msg_cap, result) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_its_distinct_addresses_in_order_and_nothing_else_passes() {
        let listing = b"192.0.2.7       STREAM db.example\n192.0.2.7       DGRAM  \n\
            192.0.2.7       RAW    \n2001:db8::7     STREAM \n2001:db8::7     DGRAM  \n";
        assert_eq!(
            parse_listing(listing),
            Some(vec![
                "192.0.2.7".parse().expect("ip"),
                "2001:db8::7".parse().expect("ip")
            ])
        );
        assert_eq!(parse_listing(b""), Some(vec![]));
        for bad in [
            &b"db.example STREAM\n"[..],
            b"192.0.2.7\n",
            b"192.0.2.7 SEQPACKET\n",
            b"192.0.2.7 STREAM a b\n",
            b"\xff STREAM\n",
        ] {
            assert_eq!(parse_listing(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_host_names_reach_getent() {
        for good in ["redis", "db-1.example.com", "etcd_0.internal", "1host"] {
            assert!(plausible(good), "{good}");
        }
        for bad in ["", "-n", ".x", "a b", "a;b", "x\n", &"a".repeat(254)] {
            assert!(!plausible(bad), "{bad:?}");
        }
        let e = resolve_host("--service=x", Duration::from_secs(1)).expect_err("refused");
        assert_eq!(e.status, Status::Invalid);
    }

    #[test]
    fn the_system_getent_answers_for_localhost() {
        let found = resolve_host("localhost", Duration::from_secs(10)).expect("resolved");
        assert!(found.iter().any(|ip| ip.is_loopback()), "{found:?}");
    }

    /// A stand-in for getent: a root-owned script in a root-only directory.
    fn fake_getent(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    #[test]
    fn a_lookup_past_its_bound_a_missing_name_and_garbage_fail_closed_and_say_why() {
        let t = "a_lookup_past_its_bound_a_missing_name_and_garbage_fail_closed_and_say_why";
        if !crate::testutil::require_root(t) {
            return;
        }
        let dir = crate::testutil::private_tempdir();
        let limit = Duration::from_millis(300);
        let run = |body: &str, file: &str| {
            resolve_with(&fake_getent(dir.path(), file, body), "db.example", limit)
                .expect_err("no address")
        };
        // Never answers (a name server that does not reply): killed at the bound.
        let started = std::time::Instant::now();
        let e = run("exec sleep 60", "hangs");
        assert!(started.elapsed() < Duration::from_secs(30), "hang guard");
        assert_eq!(e.status, Status::Unavailable);
        assert_eq!(e.message, "cannot resolve db.example within 0.3 s");
        let e = run("exit 2", "missing");
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                Status::Unavailable,
                "cannot resolve db.example: no such host"
            )
        );
        let e = run("echo evil.example STREAM", "garbage");
        assert_eq!(e.status, Status::Corrupt, "{}", e.message);
        // Control: a listing in getent's shape gives its addresses.
        let ok = resolve_with(
            &fake_getent(dir.path(), "good", "echo '192.0.2.9 STREAM db.example'"),
            "db.example",
            limit,
        )
        .expect("resolved");
        assert_eq!(ok, vec!["192.0.2.9".parse::<IpAddr>().expect("ip")]);
        // A getent others could replace is not run.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        crate::testutil::set_mode(&open, 0o777);
        let e = resolve_with(
            &fake_getent(&open, "getent", "echo '192.0.2.9 STREAM'"),
            "db.example",
            limit,
        )
        .expect_err("refused");
        assert_eq!(e.status, Status::Refused, "{}", e.message);
    }

    #[test]
    fn limits_are_said_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_millis(1999)), "2 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.3 s");
    }
}
