//! `totp-state ping` proves what a login's write needs, through the real CLI against a
//! real `redis-server`, checked against real logins through libpam: an ACL that lets
//! `FCALL` through but not a command the function runs, and a `redis_wait=` the
//! replicas cannot meet, fail ping (exit 1) as they fail every login that uses a code.
//! Before, ping ran a compare-and-set that stopped at its version compare: neither was
//! seen (exit 0). The key it writes is one key and no record. A compare-and-set
//! the ACL refuses writes nothing: the user's record is read before and after with the
//! server's own (admin) connection.

use system_tests::fleet::{
    RedisServer, ServerConfig, documented_acl, init_store, secret_command, trusted_dir,
};
use system_tests::*;

/// A root-only credentials file for the ACL user `user` (password `pw`) in `dir`.
fn credentials(dir: &std::path::Path, user: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{user}.cred"));
    std::fs::write(&path, format!("username={user}\npassword=pw\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.display().to_string()
}

/// `totp-state ping --options ARGS`: exit status, standard output and standard error.
fn ping(args: &str) -> (Option<i32>, String) {
    let out = state_tool(&["ping", "--options", args]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

fn redis_reply(server: &RedisServer, args: &[&[u8]]) -> String {
    String::from_utf8_lossy(&server.raw(None, args)).into_owned()
}

/// Options of a host whose ACL user `user` (on the prefix `prefix`) has the hosts'
/// rules of docs/fleet.md but `leave_out` ("" for none): `admin`'s options with its
/// credentials.
fn host_options(
    server: &RedisServer,
    dir: &std::path::Path,
    admin: &str,
    prefix: &str,
    user: &str,
    leave_out: &str,
) -> String {
    let documented = documented_acl("pam_totp");
    let rules: Vec<&str> = documented
        .iter()
        .map(String::as_str)
        .filter(|r| *r != leave_out)
        .collect();
    // add_acl_user gives it the password `pw`, as the credentials file says.
    server.add_acl_user(user, &format!("~{prefix}* {}", rules.join(" ")));
    format!("{admin} redis_credentials={}", credentials(dir, user))
}

/// A record as the server holds it, read with its own (admin) connection: the version,
/// the whole `HMGET v r` reply, and whether it expires ("TTL", "no TTL", "absent").
#[derive(Debug, PartialEq)]
struct Held {
    version: String,
    reply: String,
    ttl: &'static str,
}

fn held(server: &RedisServer, key: &str) -> Held {
    let ttl = redis_reply(server, &[b"TTL", key.as_bytes()]);
    Held {
        version: redis_reply(server, &[b"HGET", key.as_bytes(), b"v"]),
        reply: redis_reply(server, &[b"HMGET", key.as_bytes(), b"v", b"r"]),
        ttl: match ttl.trim() {
            ":-2" => "absent",
            ":-1" => "no TTL",
            _ => "TTL",
        },
    }
}

/// A host ACL without `+hset`, or without `+expire`, lets `FCALL` (and its `HGET`)
/// through, so a compare-and-set that stops at its version compare passed ping (exit
/// 0) while every login is refused at the command. Now ping writes as a login writes:
/// exit 1, naming the permission the ACL lacks. And the login's compare-and-set writes
/// nothing: without `+expire` it ran its `HSET` and was refused the `EXPIRE`, so the
/// code of the denied login counted as used; now the record is as it was (version,
/// contents, TTL) and the same code logs in on a host with the full ACL. Control: the
/// documented host ACL, ping 0 and a login that moves the record's version.
#[test]
fn a_host_acl_without_a_command_the_function_runs_fails_ping_as_it_fails_logins_through_libpam() {
    let t = "a_host_acl_without_a_command_the_function_runs_fails_ping_as_it_fails_logins_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let dir = trusted_dir("ppacl");
    let admin = server.options("redis_prefix=pa: redis_connect_timeout=1000 redis_timeout=1000");
    init_store(&admin);
    let as_user = |user: &str, leave_out: &str| {
        host_options(&server, dir.path(), &admin, "pa:", user, leave_out)
    };
    let (u, secret) = TestUser::enrolled("ppacl");
    let key = format!("pa:user:{}", u.name);

    let control = as_user("host", "");
    let (status, said) = ping(&control);
    assert_eq!(status, Some(0), "control: ping: {said}");
    let full = Stack::probe("svc", &control);
    let before = held(&server, &key);
    let (d, lines) = login_logged(&full, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let after = held(&server, &key);
    assert!(
        after.version != before.version && after.ttl == "TTL",
        "control: the login wrote: {before:?} {after:?}"
    );

    for (i, missing) in ["+hset", "+expire"].into_iter().enumerate() {
        let args = as_user(&format!("no{}", &missing[1..]), missing);
        let (status, said) = ping(&args);
        assert_eq!(status, Some(1), "without {missing}: ping: {said}");
        assert!(
            said.contains("the compare-and-set every login runs")
                && said.contains(&format!("lacks {missing}")),
            "without {missing}: ping: {said}"
        );
        let at = T0 + 60 * (i as u64 + 1);
        let host = Stack::probe("svc", &args);
        let before = held(&server, &key);
        let (d, lines) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "without {missing}: {d:?} {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| syslog_message(l).contains(&format!("lacks {missing}"))),
            "the log names the permission: {lines:?}"
        );
        assert_eq!(
            held(&server, &key),
            before,
            "without {missing}: the denied login wrote nothing"
        );
        // So its code was not used up: the full ACL takes it.
        let (d, lines) = login_logged(&full, &u, &code_at(&secret, at), PEER, at);
        assert_eq!(
            d.returned(),
            Returned::Success,
            "after a denial without {missing}, the same code: {d:?} {lines:?}"
        );
    }
}

/// Where records never expire (`redis_ttl=0`; `max_failures=` forces it) no write runs
/// `EXPIRE`, and the compare-and-set asks the ACL only for the writes this call may run:
/// a host ACL without `+expire` passes ping and logs in, and its record has no TTL. Had
/// the check asked for `EXPIRE` there too, installing it (`totp-state init`) would have
/// denied every login of such a fleet at once, hosts not yet upgraded included, though
/// the earlier ping passed their ACL. Control: the same ACL with `redis_ttl=` above 0
/// is refused naming `+expire`, and writes nothing.
#[test]
fn a_host_acl_without_expire_serves_records_that_never_expire_through_libpam() {
    let t = "a_host_acl_without_expire_serves_records_that_never_expire_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let dir = trusted_dir("ppttl");
    let common = "redis_prefix=pt: redis_connect_timeout=1000 redis_timeout=1000";
    let forever = server.options(&format!("{common} redis_ttl=0"));
    init_store(&forever);
    let (u, secret) = TestUser::enrolled("ppttl");
    let key = format!("pt:user:{}", u.name);

    let args = host_options(&server, dir.path(), &forever, "pt:", "noexpire", "+expire");
    let (status, said) = ping(&args);
    assert_eq!(status, Some(0), "redis_ttl=0 without +expire: ping: {said}");
    let host = Stack::probe("svc", &args);
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_eq!(held(&server, &key).ttl, "no TTL");

    // Control: the same ACL user where records expire.
    let expiring = format!(
        "{} redis_credentials={}",
        server.options(common),
        dir.path().join("noexpire.cred").display()
    );
    let (status, said) = ping(&expiring);
    assert_eq!(status, Some(1), "with a TTL, without +expire: ping: {said}");
    let before = held(&server, &key);
    let host = Stack::probe("svc", &expiring);
    let at = T0 + 60;
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("lacks +expire")),
        "{lines:?}"
    );
    assert_eq!(
        held(&server, &key),
        before,
        "the denied login wrote nothing"
    );
}

/// `+persist` clears the TTL of a record that must not expire: one holding an HOTP
/// counter or a used scratch code (fleet.md, "Expiry"). A host ACL without it: ping
/// exits 1 naming it (ping's first write clears its key's TTL); a scratch code is
/// denied naming it and writes nothing (before, its `HSET` was done and the `PERSIST`
/// refused: the code used, on a record that still expired); and, since the
/// compare-and-set checks every write it may run before the first, a TOTP code, whose
/// write sets a TTL and needs no `PERSIST`, is denied the same way, so a host missing
/// it fails at its first login rather than at a user's scratch code. Control: both codes
/// then log in with the full ACL (nothing of them was used), the scratch code's record
/// without a TTL.
#[test]
fn a_host_acl_without_persist_writes_nothing_and_fails_ping_through_libpam() {
    let t = "a_host_acl_without_persist_writes_nothing_and_fails_ping_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let dir = trusted_dir("pppst");
    let u = TestUser::create("pppst");
    let secret = random_secret_b32();
    let scratch = "12345678";
    // The served file keeps listing the scratch code: only the store records its use.
    let command = secret_command(
        dir.path(),
        &u.name,
        &format!("{}{scratch}\n", totp_file(&secret)),
    );
    let admin = server.options(&format!(
        "redis_prefix=pp: redis_connect_timeout=1000 redis_timeout=1000 \
         secret_command={} secret_command_user=nobody",
        command.display()
    ));
    init_store(&admin);
    let key = format!("pp:user:{}", u.name);
    let full = Stack::probe(
        "svc",
        &host_options(&server, dir.path(), &admin, "pp:", "host", ""),
    );
    let args = host_options(&server, dir.path(), &admin, "pp:", "nopersist", "+persist");
    let host = Stack::probe("svc", &args);

    let (d, lines) = login_logged(&full, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let before = held(&server, &key);
    assert_eq!(before.ttl, "TTL", "{before:?}");

    let (status, said) = ping(&args);
    assert_eq!(status, Some(1), "without +persist: ping: {said}");
    assert!(
        said.contains("the compare-and-set every login runs") && said.contains("lacks +persist"),
        "without +persist: ping: {said}"
    );

    let totp = code_at(&secret, T0 + 60);
    for (answer, at, what) in [
        (scratch, T0 + 30, "scratch code"),
        (&totp, T0 + 60, "TOTP code"),
    ] {
        let (d, lines) = login_logged(&host, &u, answer, PEER, at);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{what} without +persist: {d:?} {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| syslog_message(l).contains("lacks +persist")),
            "{what}: the log names the permission: {lines:?}"
        );
        assert_eq!(
            held(&server, &key),
            before,
            "{what} without +persist: the denied login wrote nothing"
        );
    }

    let (d, lines) = login_logged(&full, &u, &totp, PEER, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the TOTP code: {d:?} {lines:?}"
    );
    let (d, lines) = login_logged(&full, &u, scratch, PEER, T0 + 90);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the scratch code: {d:?} {lines:?}"
    );
    let after = held(&server, &key);
    assert_eq!(
        after.ttl, "no TTL",
        "a used scratch code's record: {after:?}"
    );
}

/// `redis_wait=1` with no replica: ping's write waited for nothing (it was not durable,
/// and it stopped at its compare), so ping said 0 while every login that uses a code is
/// denied for too few acknowledgements. Now ping's write waits as a used code's does:
/// exit 1, naming `redis_wait=` and the replicas the server has. Control: with one
/// replica attached and synced, ping 0 and the login.
#[test]
fn a_redis_wait_the_replicas_cannot_meet_fails_ping_as_it_fails_logins_through_libpam() {
    let t = "a_redis_wait_the_replicas_cannot_meet_fails_ping_as_it_fails_logins_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let primary = RedisServer::start(&ServerConfig::default());
    let plain = primary.options("redis_prefix=pw: redis_timeout=2000");
    init_store(&plain);
    let (u, secret) = TestUser::enrolled("ppwait");
    let waiting = format!("{plain} redis_wait=1 redis_wait_timeout=300");

    let (status, said) = ping(&waiting);
    assert_eq!(status, Some(1), "no replica: ping: {said}");
    assert!(
        said.contains("redis_wait=1") && said.contains("0 connected replicas"),
        "no replica: ping: {said}"
    );
    let host = Stack::probe("svc", &waiting);
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "no replica: {d:?} {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("0 of 1 replicas")),
        "{lines:?}"
    );

    // Control: a replica, online on the primary's side and synced on its own.
    let _replica = primary.replica();
    let waiting = format!("{plain} redis_wait=1 redis_wait_timeout=5000");
    let (status, said) = ping(&waiting);
    assert_eq!(status, Some(0), "one replica: ping: {said}");
    let host = Stack::probe("svc", &waiting);
    let at = T0 + 60;
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "one replica: {d:?} {lines:?}"
    );
}

/// What ping writes on Redis: one key, `<prefix>probe`. Its first write clears the TTL
/// (`PERSIST`), and a write never shortens a key's life, so on Redis 7 and Valkey (this
/// server) the key stays, without a TTL, a few bytes each ping overwrites; only before
/// Redis 7 does its second write give it 30 s. Pings of many hosts at once all pass
/// (a conflict with another ping's write is read again, not taken for proof or
/// failure). It is no record:
/// `totp-state show` of a user and `audit` of the service report the user's record
/// and nothing of the probe, and nothing else under the prefix appeared.
#[test]
fn the_key_ping_writes_is_one_key_and_no_record() {
    let t = "the_key_ping_writes_is_one_key_and_no_record";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=pk: redis_timeout=2000");
    init_store(&args);
    let (u, secret) = TestUser::enrolled("ppkey");
    let host = Stack::with_module("svc", &args);
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");

    let pings: Vec<_> = (0..8)
        .map(|_| {
            let args = args.clone();
            std::thread::spawn(move || ping(&args))
        })
        .collect();
    for p in pings {
        let (status, said) = p.join().expect("ping thread");
        assert_eq!(status, Some(0), "concurrent pings: {said}");
    }
    assert_eq!(redis_reply(&server, &[b"EXISTS", b"pk:probe"]), ":1\r\n");
    assert_eq!(
        redis_reply(&server, &[b"TTL", b"pk:probe"]),
        ":-1\r\n",
        "the probe key stays without a TTL"
    );
    let mut keys: Vec<String> = redis_reply(&server, &[b"KEYS", b"pk:*"])
        .lines()
        .filter(|l| l.starts_with("pk:"))
        .map(str::to_owned)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["pk:probe", "pk:store", &format!("pk:user:{}", u.name)],
        "nothing else written"
    );

    let show = state_tool(&["show", "--json", "--user", &u.name, "--options", &args]);
    assert!(show.status.success(), "{show:?}");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert_eq!(shown.lines().count(), 1, "{shown}");
    assert!(!shown.contains("probe"), "{shown}");

    let out = audit_command(host.path())
        .output()
        .expect("totp-state audit");
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(
        seen.get(&u.name).map(|(v, _)| v.as_str()),
        Some("ok"),
        "{seen:?}"
    );
    assert!(
        !seen.keys().any(|k| k.contains("probe")),
        "no account named after the probe: {seen:?}"
    );
}
