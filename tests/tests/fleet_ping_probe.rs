//! `totp-state ping` proves what a login's write needs, through the real CLI against a
//! real `redis-server`, checked against real logins through libpam: an ACL that lets
//! `FCALL` through but not a command the function runs, and a `redis_wait=` the
//! replicas cannot meet, fail ping (exit 1) as they fail every login that uses a code.
//! Before, ping ran a compare-and-set that stopped at its version compare: neither was
//! seen (exit 0). The key it writes expires by itself and is no record.

use system_tests::fleet::{RedisServer, ServerConfig, init_store, trusted_dir};
use system_tests::*;

/// The hosts' commands of docs/fleet.md (no `redis_wait=` here, so no `+wait`).
const HOST_ACL: [&str; 8] = [
    "+fcall", "+hmget", "+hget", "+hset", "+expire", "+persist", "+ping", "+info",
];

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

/// A host ACL without `+hset`, or without `+expire`, lets `FCALL` (and its `HGET`)
/// through, so a compare-and-set that stops at its version compare passed ping (exit
/// 0) while every login is refused at the command. Now ping writes as a login writes:
/// exit 1, naming the permission the ACL lacks. Control: the documented host ACL, ping
/// 0 and a login.
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
        let rules: Vec<&str> = HOST_ACL
            .iter()
            .copied()
            .filter(|r| *r != leave_out)
            .collect();
        // add_acl_user gives it the password `pw`, as the credentials file says.
        server.add_acl_user(
            user,
            &format!("~pa:* resetchannels -@all {}", rules.join(" ")),
        );
        format!(
            "{admin} redis_credentials={}",
            credentials(dir.path(), user)
        )
    };
    let (u, secret) = TestUser::enrolled("ppacl");

    // Control first: a refused EXPIRE leaves the HSET before it done, so a code tried
    // there counts as used.
    let control = as_user("host", "");
    let (status, said) = ping(&control);
    assert_eq!(status, Some(0), "control: ping: {said}");
    let host = Stack::probe("svc", &control);
    let (d, lines) = login_logged(&host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

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
    }
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

/// What ping writes on Redis: one key, `<prefix>probe`, with a TTL of at most 30 s, so
/// it expires by itself; pings of many hosts at once all pass (a conflict with another
/// ping's write is read again, not taken for proof or failure). It is no record:
/// `totp-state show` of a user and `audit` of the service report the user's record
/// and nothing of the probe, and nothing else under the prefix appeared.
#[test]
fn the_key_ping_writes_expires_and_is_no_record() {
    let t = "the_key_ping_writes_expires_and_is_no_record";
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
    let ttl = redis_reply(&server, &[b"TTL", b"pk:probe"]);
    let secs: i64 = ttl
        .trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or(-3);
    assert!(
        (1..=30).contains(&secs),
        "the probe key expires: TTL {ttl:?}"
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
