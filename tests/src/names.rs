//! A name service of the test's own for one login: `/etc/hosts`, `/etc/nsswitch.conf`
//! (`hosts: files dns`) and `/etc/resolv.conf` bind-mounted in a private mount
//! namespace, the resolver pointed at a DNS server that never answers. The host's files
//! are untouched.

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;

use std::time::{Duration, Instant};

use crate::{Drive, Driver, Returned, with_syslog_capture_after};

/// A DNS server that never answers: a UDP socket on port 53 (the only port resolv.conf
/// can name) of a loopback address of its own, held open so that queries are neither
/// answered nor refused (an ICMP "port unreachable" would end them at once). Every
/// query stays queued, for [`SilentNameServer::asked_for`].
pub struct SilentNameServer {
    sock: UdpSocket,
    pub addr: Ipv4Addr,
}

impl SilentNameServer {
    pub fn start() -> SilentNameServer {
        // An address per process and try: test binaries run side by side.
        let base = (std::process::id() % 200) as u8;
        for i in 0..250u8 {
            let addr = Ipv4Addr::new(127, 53, base, i.wrapping_add(1));
            if let Ok(sock) = UdpSocket::bind((addr, 53)) {
                sock.set_nonblocking(true).expect("nonblocking");
                return SilentNameServer { sock, addr };
            }
        }
        panic!("no loopback address with port 53 free");
    }

    /// Whether a query for `name` arrived since the last call (the queue is drained).
    pub fn asked_for(&self, name: &str) -> bool {
        let mut wire = Vec::new();
        for label in name.split('.') {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        let mut buf = [0u8; 2048];
        let mut seen = false;
        while let Ok(n) = self.sock.recv(&mut buf) {
            seen |= buf[..n]
                .windows(wire.len())
                .any(|w| w.eq_ignore_ascii_case(&wire));
        }
        seen
    }
}

/// `driver`'s login with the host's name service replaced: `hosts: files dns` (the rest
/// of nsswitch.conf as the host has it), a hosts file with `localhost` (unless that is
/// `name`) and, when
/// `in_hosts` is given, `name` at that address, and `dns` as the only name server with
/// glibc's longest timeout and most attempts (a lookup left to run would take minutes).
/// Syslog is captured.
pub fn login_resolving(
    driver: &Driver,
    dns: &SilentNameServer,
    name: &str,
    in_hosts: Option<&str>,
) -> (Drive, Vec<String>) {
    let dir = tempfile::Builder::new()
        .prefix("pam_totp-names")
        .tempdir()
        .expect("tempdir");
    // `localhost` itself may be the name under test (a sentinel announcing it).
    let mut hosts = if name == "localhost" {
        String::new()
    } else {
        "127.0.0.1 localhost\n::1 localhost\n".to_owned()
    };
    if let Some(ip) = in_hosts {
        hosts.push_str(&format!("{ip} {name}\n"));
    }
    let nsswitch: String = fs::read_to_string("/etc/nsswitch.conf")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("hosts:"))
        .map(|l| format!("{l}\n"))
        .chain(std::iter::once("hosts: files dns\n".to_owned()))
        .collect();
    let resolv = format!("nameserver {}\noptions timeout:30 attempts:5\n", dns.addr);
    let mut mounts = Vec::new();
    for (file, text, over) in [
        ("hosts", hosts, "/etc/hosts"),
        ("nsswitch.conf", nsswitch, "/etc/nsswitch.conf"),
        ("resolv.conf", resolv, "/etc/resolv.conf"),
    ] {
        let p = dir.path().join(file);
        fs::write(&p, text).expect("write name-service file");
        mounts.push(format!("mount --bind '{}' '{over}'", path_str(&p)));
    }
    let (out, lines) = with_syslog_capture_after(&mounts.join("\n"), &driver.command());
    (Drive::ran(&out), lines)
}

/// The seconds named in the line `cannot resolve NAME within N s`, if one was logged.
pub fn resolve_bound(lines: &[String], name: &str) -> Option<f64> {
    let needle = format!("cannot resolve {name} within ");
    lines.iter().find_map(|l| {
        let rest = &l[l.find(&needle)? + needle.len()..];
        rest.split(" s").next()?.parse().ok()
    })
}

/// The login `login` makes, with `name` resolvable only through `dns` (which never
/// answers): denied with `PAM_AUTH_ERR` once its lookup reached `dns`, the line naming a
/// bound of at most the 1-s connect timeout the tests set, no code compared; within a
/// 60-s hang guard, not a timing assertion. Control: with `name` in the hosts file the
/// same login logs in, and no such line.
pub fn assert_resolution_bounded(login: impl Fn() -> Driver, dns: &SilentNameServer, name: &str) {
    let started = Instant::now();
    let (d, lines) = login_resolving(&login(), dns, name, None);
    let took = started.elapsed();
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {lines:?}"
    );
    assert!(took < Duration::from_secs(60), "hang guard: took {took:?}");
    assert!(dns.asked_for(name), "the lookup went to the silent server");
    assert!(
        resolve_bound(&lines, name).is_some_and(|s| s > 0.0 && s <= 1.0),
        "the line names the connect bound: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("invalid verification code")),
        "{lines:?}"
    );

    // Control: the same login, the name in the hosts file.
    let (d, lines) = login_resolving(&login(), dns, name, Some("127.0.0.1"));
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_eq!(resolve_bound(&lines, name), None, "{lines:?}");
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
