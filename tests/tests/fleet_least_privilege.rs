//! Least privilege for hosts, through the real libpam: `totp-state init` installs the
//! compare-and-set as a Redis function library, so a host's ACL user needs no `EVAL`
//! (arbitrary scripts) and no `DEL`.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use system_tests::fleet::{RedisServer, ServerConfig, documented_acl, init_store, trusted_dir};
use system_tests::*;

const RHOST: &str = "192.0.2.10";

/// Commands over plain RESP on one connection; the raw reply of each.
fn session(port: u16, commands: &[&[&str]]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    commands
        .iter()
        .map(|args| {
            let mut req = format!("*{}\r\n", args.len());
            for a in *args {
                req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            s.write_all(req.as_bytes()).expect("send");
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).expect("reply");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect()
}

/// The hosts' ACL user of docs/fleet.md on `prefix`, and a root-only credentials file
/// for it (in the returned directory).
fn host_acl_user(server: &RedisServer, prefix: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    set_host_acl(server, prefix);
    let dir = trusted_dir("acl");
    let cred = dir.path().join("host.cred");
    fs::write(&cred, "username=host\npassword=host pw\n").expect("write");
    fs::set_permissions(&cred, fs::Permissions::from_mode(0o600)).expect("chmod");
    (dir, cred)
}

/// The hosts' ACL user `host` of docs/fleet.md, on the keys of `prefix`.
fn set_host_acl(server: &RedisServer, prefix: &str) {
    let keys = format!("~{prefix}:*");
    let rules = documented_acl("pam_totp");
    let mut acl = vec!["ACL", "SETUSER", "host", "on", ">host pw", &keys];
    acl.extend(rules.iter().map(String::as_str));
    assert!(session(server.port, &[&acl])[0].starts_with("+OK"));
}

/// Hosts need `+fcall +hmget +ping +info` on the prefix, and the commands the function
/// runs (Redis checks them against the caller's ACL: `+hget +hset +expire +persist`),
/// but no `EVAL` and no `DEL` (SECURITY.md M18). The host's ACL user is the one
/// docs/fleet.md documents. Before `totp-state init` installed the library, the host
/// falls back to `EVAL`, which its ACL refuses: denied, `NOPERM` in
/// the log. After `init` (run as an admin user): the same host logs in (control), the
/// library is listed on the server, and the host user's `EVAL` and `DEL` are refused.
#[test]
fn hosts_need_no_eval_and_no_del_once_init_installed_the_library_through_libpam() {
    let t = "hosts_need_no_eval_and_no_del_once_init_installed_the_library_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (_dir, cred) = host_acl_user(&server, "lp");
    let common = server.options("redis_prefix=lp: redis_connect_timeout=1000 redis_timeout=1000");
    let host = Stack::probe(
        "svc",
        &format!("{common} redis_credentials={}", cred.display()),
    );
    let (u, secret) = TestUser::enrolled("lp");

    // No library yet: the script fallback is refused by the host's ACL.
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, now()), RHOST, None);
    assert_ne!(d.returned(), Returned::Success, "{lines:?}");
    assert!(
        lines.iter().any(|l| syslog_message(l).contains("NOPERM")),
        "the log names the refused command: {lines:?}"
    );

    // The admin (the default user here) initialises the store: the library is installed.
    init_store(&common);
    // This release's function, and the previous release's, which its hosts still call
    // while the fleet is upgraded.
    let listed = session(server.port, &[&["FUNCTION", "LIST"]]);
    assert!(
        listed[0].contains("pam_totp_cas_v2") && listed[0].contains("pam_totp_cas_v1"),
        "{listed:?}"
    );

    // Control: the same host logs in.
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, now()), RHOST, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");

    // And it could not run a script or delete a record.
    let key = format!("lp:user:{}", u.name);
    let replies = session(
        server.port,
        &[
            &["AUTH", "host", "host pw"],
            &["EVAL", "return 1", "0"],
            &["DEL", &key],
        ],
    );
    assert!(replies[0].starts_with("+OK"), "{replies:?}");
    assert!(replies[1].starts_with("-NOPERM"), "EVAL: {replies:?}");
    assert!(replies[2].starts_with("-NOPERM"), "DEL: {replies:?}");
}

/// R34 with the hosts' ACL of docs/fleet.md. A server restarted without persistence
/// loses the function library with the records: hosts (no `EVAL`) are then refused,
/// and the log says how the library comes back. `totp-state init` reinstalls it and
/// recreates the store record complete since now, so the code used before the restart
/// stays refused on another host, "lost its data" logged; a code of a later step logs
/// in (control). Before, a plain `init` recreated the record "complete since the
/// beginning" and the used code logged in again.
#[test]
fn a_restart_without_persistence_reopens_no_code_through_init_through_libpam() {
    let t = "a_restart_without_persistence_reopens_no_code_through_init_through_libpam";
    if !require_root(t) {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let (_dir, cred) = host_acl_user(&server, "rl");
    let common = server.options("redis_prefix=rl: redis_connect_timeout=1000 redis_timeout=1000");
    let host_args = format!("{common} redis_credentials={}", cred.display());
    let host_a = Stack::probe("svc", &host_args);
    let host_b = Stack::probe("svc", &host_args);
    let (u, secret) = TestUser::enrolled("rl");
    init_store(&common);

    let start = now();
    let code = code_at(&secret, start);
    let (d, lines) = login_logged(&host_a, &u, &code, RHOST, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");

    // The restart: records, store record and library gone; the ACL file's users are
    // back (here: set again, as the test made them at run time).
    server.restart();
    set_host_acl(&server, "rl");
    assert!(!session(server.port, &[&["FUNCTION", "LIST"]])[0].contains("pam_totp"));
    let (d, lines) = login_logged(&host_b, &u, &code, RHOST, None);
    assert_ne!(d.returned(), Returned::Success, "{lines:?}");
    assert!(
        lines.iter().any(|l| {
            let m = syslog_message(l);
            m.contains("NOPERM") && m.contains("which after a data loss also recreates")
        }),
        "the log says how the library comes back: {lines:?}"
    );
    let p = state_tool(&["ping", "--options", &common]);
    assert_eq!(p.status.code(), Some(1), "{p:?}");
    assert!(
        String::from_utf8_lossy(&p.stderr).contains("totp-state init"),
        "{p:?}"
    );

    // The admin's recovery.
    let out = state_tool(&["init", "--options", &common]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("count as used"),
        "{out:?}"
    );
    let p = state_tool(&["ping", "--options", &common]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        String::from_utf8_lossy(&p.stdout).contains("recreated at"),
        "{p:?}"
    );
    let (d, lines) = login_logged(&host_b, &u, &code, RHOST, None);
    assert_ne!(d.returned(), Returned::Success, "reopened: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("state store lost its data")),
        "refused as used before the loss: {lines:?}"
    );

    // Control: a code of a step after the recreation (and its window) logs in.
    let later = start + 120;
    let (d, lines) = login_logged(&host_b, &u, &code_at(&secret, later), RHOST, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
}

/// Rotating the hosts' password as docs/fleet.md says: the ACL user gets the new
/// password beside the old, the credentials file is replaced by a rename (never
/// rewritten in place), then the old password goes. Logins running meanwhile, with the
/// file renamed back and forth under them, all reach the store. Control: a file caught
/// half-written (empty, as `>` leaves it before the write) denies the login that reads
/// it, and the log says why.
#[test]
fn the_hosts_password_is_rotated_by_rename_while_logins_run_through_libpam() {
    let t = "the_hosts_password_is_rotated_by_rename_while_logins_run_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (dir, cred) = host_acl_user(&server, "rot");
    let common = server.options("redis_prefix=rot: redis_connect_timeout=1000 redis_timeout=1000");
    init_store(&common);
    let host = Stack::probe(
        "svc",
        &format!("{common} redis_credentials={}", cred.display()),
    );
    let (u, secret) = TestUser::enrolled("rot");
    let store_failed = |lines: &[String]| {
        lines
            .iter()
            .any(|l| syslog_message(l).contains("no usable state store"))
    };

    let acl = |arg: &str| {
        let r = session(server.port, &[&["ACL", "SETUSER", "host", arg]]);
        assert!(r[0].starts_with("+OK"), "{r:?}");
    };
    acl(">new pw");
    let root_only = |name: &str, text: &str| {
        let p = dir.path().join(name);
        fs::write(&p, text).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dir, cred) = (stop.clone(), dir.path().to_owned(), cred.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pw = if n.is_multiple_of(2) {
                    "new pw"
                } else {
                    "host pw"
                };
                let tmp = dir.join(format!("host.cred.{n}"));
                fs::write(&tmp, format!("username=host\npassword={pw}\n")).expect("write");
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).expect("chmod");
                fs::rename(&tmp, &cred).expect("rename");
                n += 1;
            }
            n
        })
    };
    // Wrong codes, each from its own address: no origin reaches its backoff.
    for i in 0..6u64 {
        let peer = format!("198.51.100.{}", i + 1);
        let (d, lines) = login_logged(&host, &u, &wrong_totp(&secret, now()), &*peer, None);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
        assert!(
            !store_failed(&lines),
            "login {i} during the renames: {lines:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        swapper.join().expect("swapper") > 12,
        "the file was replaced meanwhile"
    );
    fs::rename(
        root_only("final", "username=host\npassword=new pw\n"),
        &cred,
    )
    .expect("mv");
    acl("<host pw");
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, now()), RHOST, None);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "after the rotation: {d:?} {lines:?}"
    );

    // Control: the file as a shell redirection leaves it before writing.
    fs::write(&cred, "").expect("truncate");
    let (d, lines) = login_logged(&host, &u, &wrong_totp(&secret, now()), RHOST, None);
    assert_ne!(d.returned(), Returned::Success, "{d:?}");
    assert!(
        store_failed(&lines) && lines.iter().any(|l| l.contains("no password= line")),
        "{lines:?}"
    );
}

/// The library of the previous release as its `totp-state init` installed it: only
/// `pam_totp_cas_v1`, without the ACL check before writing.
const PREVIOUS_LIBRARY: &str = "#!lua name=pam_totp
redis.register_function('pam_totp_cas_v1', function(KEYS, ARGV)
local v = redis.call('HGET', KEYS[1], 'v')
if v == false then v = '0' end
if v ~= ARGV[1] then return 0 end
local n = string.format('%d', tonumber(v) + 1)
redis.call('HSET', KEYS[1], 'v', n, 'r', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
end)
";

/// An upgrade as docs/fleet.md orders it, with the hosts' ACL (no `EVAL`). On a store
/// whose library an earlier release installed, a host of this release finds no
/// `pam_totp_cas_v4`, falls back to the script and is refused, the log naming what is
/// missing and `totp-state init`. This release's `init` then installs a library that
/// still has `pam_totp_cas_v1`, `pam_totp_cas_v2` and `pam_totp_cas_v3`, which earlier
/// releases' hosts call (here with the commands they send, one key, and for
/// `pam_totp_cas_v3` the store record as a second key, as the hosts' ACL user): each
/// answers as before the upgrade, counting on from the version 1 the first gave, and
/// this release's host logs in (control).
#[test]
fn an_upgrade_keeps_the_previous_release_s_function_for_its_hosts_through_libpam() {
    let t = "an_upgrade_keeps_the_previous_release_s_function_for_its_hosts_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (_dir, cred) = host_acl_user(&server, "up");
    let common = server.options("redis_prefix=up: redis_connect_timeout=1000 redis_timeout=1000");
    let host = Stack::probe(
        "svc",
        &format!("{common} redis_credentials={}", cred.display()),
    );
    let (u, secret) = TestUser::enrolled("up");
    init_store(&common);
    let loaded = session(
        server.port,
        &[&["FUNCTION", "LOAD", "REPLACE", PREVIOUS_LIBRARY]],
    );
    assert!(loaded[0].contains("pam_totp"), "{loaded:?}");
    // What a host of the previous release sends for a key it writes first (version 0),
    // then again from the version that gave.
    let previous_host = |function: &str, expected: &str| {
        session(
            server.port,
            &[
                &["AUTH", "host", "host pw"],
                &["FCALL", function, "1", "up:previous", expected, "rec", "60"],
            ],
        )
    };
    assert_eq!(
        previous_host("pam_totp_cas_v1", "0")[1],
        ":1\r\n",
        "before the upgrade"
    );

    let start = now();
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, start), RHOST, None);
    assert_ne!(d.returned(), Returned::Success, "{lines:?}");
    assert!(
        lines.iter().any(|l| {
            let m = syslog_message(l);
            m.contains("pam_totp_cas_v4 is not on the server")
                && m.contains("earlier release")
                && m.contains("totp-state init")
        }),
        "the log says what is missing and how it comes: {lines:?}"
    );

    init_store(&common);
    assert_eq!(
        previous_host("pam_totp_cas_v1", "1")[1],
        ":1\r\n",
        "after the upgrade"
    );
    assert_eq!(
        previous_host("pam_totp_cas_v2", "2")[1],
        ":1\r\n",
        "an earlier release"
    );
    assert_eq!(
        previous_host("pam_totp_cas_v3", "3")[1],
        ":1\r\n",
        "the release before this one"
    );
    let counted = session(server.port, &[&["HGET", "up:previous", "v"]]);
    assert_eq!(counted[0], "$1\r\n4\r\n", "{counted:?}");
    // The previous release's hosts also pass the store record (a second key, its version
    // and binding after the TTL): compared where they put it.
    let store = session(server.port, &[&["HMGET", "up:store", "v", "i"]]);
    let fields: Vec<&str> = store[0].split("\r\n").collect();
    let (v, i) = (fields[2], fields[4]);
    let with_store = |binding: &str| {
        session(
            server.port,
            &[
                &["AUTH", "host", "host pw"],
                &[
                    "FCALL",
                    "pam_totp_cas_v3",
                    "2",
                    "up:previous",
                    "up:store",
                    "4",
                    "rec",
                    "60",
                    v,
                    binding,
                ],
            ],
        )
    };
    assert_eq!(with_store("another")[1], ":2\r\n", "{store:?}");
    assert_eq!(with_store(i)[1], ":1\r\n", "{store:?}");
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, start), RHOST, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
}
