//! Records in the shared store are keyed by the canonical user name (uids may differ
//! between hosts), and records a release keyed by uid are carried over: through the
//! real libpam against a real `redis-server`.

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

const RHOST: &str = "192.0.2.11";

/// SECURITY.md M19. A login writes `PREFIX user:NAME`, not `PREFIX uid:UID`. The
/// migration: the record renamed to the uid key (as the previous release left it), the
/// code it used is refused on another host ("code already used" logged), the mark
/// carried over from the uid record. Control: with both keys deleted, the same code
/// logs in, so the refusal came from the uid record.
#[test]
fn records_are_keyed_by_name_and_uid_records_are_carried_over_through_libpam() {
    let t = "records_are_keyed_by_name_and_uid_records_are_carried_over_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=uk: redis_connect_timeout=1000 redis_timeout=1000");
    init_store(&args);
    let host_a = Stack::probe("svc", &args);
    let host_b = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("uk");
    let by_name = format!("uk:user:{}", u.name);
    let by_uid = format!("uk:uid:{}", u.uid);
    let exists = |k: &str| server.raw(None, &[b"EXISTS", k.as_bytes()]) == b":1\r\n";

    let code = code_at(&secret, now());
    let (d, lines) = login_logged(&host_a, &u, &code, RHOST, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(exists(&by_name), "the record is keyed by name");
    assert!(!exists(&by_uid), "and not by uid");

    // As the previous release would have left it.
    let r = server.raw(None, &[b"RENAME", by_name.as_bytes(), by_uid.as_bytes()]);
    assert!(r.starts_with(b"+OK"), "{}", String::from_utf8_lossy(&r));
    let (d, lines) = login_logged(&host_b, &u, &code, RHOST, None);
    assert_ne!(d.returned(), Returned::Success, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("code already used")),
        "refused as used: {lines:?}"
    );

    // Control: nothing remembers the code once both records are gone.
    server.raw(None, &[b"DEL", by_name.as_bytes(), by_uid.as_bytes()]);
    let (d, lines) = login_logged(&host_b, &u, &code, RHOST, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
}

/// Host B: `pam-drive` in a private mount namespace whose `/etc/passwd` is `passwd` (the
/// user on another uid, the user's uid on host A given to somebody else, as two hosts
/// with unsynchronised local accounts have it).
fn login_on_host_with_passwd(
    stack: &Stack,
    passwd: &std::path::Path,
    user: &TestUser,
    code: &str,
) -> (Drive, Vec<String>) {
    // A useradd of another test renames a new /etc/passwd into place, which would slip
    // out from under the bind mount: the login would then see host A's uids.
    let _g = user_database_frozen();
    capture_syslog_with_bind(
        passwd,
        std::path::Path::new("/etc/passwd"),
        &Driver::login(stack, user, code).rhost("192.0.2.12"),
    )
}

/// SECURITY.md M19 with uids that really differ. Store mode (root-owned secrets named by
/// user, as fleets keep them), one Redis. On host A the user has its real uid; on host
/// B (its own `/etc/passwd`) the same name has another uid, and the real uid belongs to
/// a second user. The code used on A is refused on B ("code already used" logged),
/// although the uid differs; the second user, who has A's uid on B, logs in with its own
/// code (no shared record); control: the user's next code logs in on B.
#[test]
fn a_code_used_on_one_host_is_refused_where_the_same_name_has_another_uid() {
    let t = "a_code_used_on_one_host_is_refused_where_the_same_name_has_another_uid";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let secrets = tempfile::Builder::new()
        .prefix("pam_totp-uidsecrets")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    let args = format!(
        "user=root secret={}/${{USER}} {}",
        secrets.path().display(),
        server.options("redis_prefix=ud: redis_connect_timeout=1000 redis_timeout=1000")
    );
    init_store(&args);
    let host_a = Stack::probe("svc", &args);
    let host_b = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("ud");
    let (other, other_secret) = TestUser::enrolled("ue");
    for (who, s) in [(&u, &secret), (&other, &other_secret)] {
        write_owned(
            &secrets.path().join(&who.name),
            format!("{s}\n\" TOTP_AUTH\n").as_bytes(),
            0,
            0,
            0o600,
        );
    }
    // Host B's accounts: the user moved to an unused uid, the other user on the user's
    // uid on host A.
    let moved_uid = 64_000 + (u.uid % 1000);
    let passwd: String = std::fs::read_to_string("/etc/passwd")
        .expect("read /etc/passwd")
        .lines()
        .filter(|l| {
            let name = l.split(':').next().unwrap_or("");
            name != u.name && name != other.name
        })
        .map(|l| format!("{l}\n"))
        .chain([
            format!("{}:x:{moved_uid}:{}::/nonexistent:/bin/sh\n", u.name, u.gid),
            format!(
                "{}:x:{}:{}::/nonexistent:/bin/sh\n",
                other.name, u.uid, other.gid
            ),
        ])
        .collect();
    let b_passwd = tempfile::NamedTempFile::new().expect("passwd copy");
    std::fs::write(b_passwd.path(), passwd).expect("write passwd copy");

    let code = code_at(&secret, now());
    let (d, lines) = login_logged(&host_a, &u, &code, RHOST, None);
    assert_eq!(d.returned(), Returned::Success, "host A: {d:?} {lines:?}");
    let (d, lines) = login_on_host_with_passwd(&host_b, b_passwd.path(), &u, &code);
    assert_ne!(d.returned(), Returned::Success, "replayed on B: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("code already used")),
        "refused as used on B: {lines:?}"
    );
    let (d, lines) = login_on_host_with_passwd(
        &host_b,
        b_passwd.path(),
        &other,
        &code_at(&other_secret, now()),
    );
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the other user on A's uid: {d:?} {lines:?}"
    );
    let (d, lines) =
        login_on_host_with_passwd(&host_b, b_passwd.path(), &u, &code_at(&secret, now() + 30));
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control on B: {d:?} {lines:?}"
    );
}

/// fleet.md, "Keys": the uid record a previous release left is not deleted by hosts,
/// and `totp-state reset` keeps both records and what they recorded as used (R34): after
/// the reset the code the uid record marked as used is still refused on another host,
/// and the next one logs in.
#[test]
fn totp_state_reset_keeps_the_uid_records_marks_too() {
    let t = "totp_state_reset_keeps_the_uid_records_marks_too";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=ur: redis_connect_timeout=1000 redis_timeout=1000");
    init_store(&args);
    let host_a = Stack::probe("svc", &args);
    let host_b = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("ur");
    let by_name = format!("ur:user:{}", u.name);
    let by_uid = format!("ur:uid:{}", u.uid);
    let exists = |k: &str| server.raw(None, &[b"EXISTS", k.as_bytes()]) == b":1\r\n";

    let code = code_at(&secret, T0);
    assert_eq!(
        login_at(&host_a, &u, &code, RHOST, T0).returned(),
        Returned::Success
    );
    // As the previous release would have left it; a host carries it over and keeps it.
    let r = server.raw(None, &[b"RENAME", by_name.as_bytes(), by_uid.as_bytes()]);
    assert!(r.starts_with(b"+OK"), "{}", String::from_utf8_lossy(&r));
    let d = login_at(&host_b, &u, &code, RHOST, T0 + 5);
    assert_ne!(d.returned(), Returned::Success, "{d:?}");
    assert!(exists(&by_name) && exists(&by_uid), "both records now");

    let out = state_tool(&["reset", "--user", &u.name, "--options", &args]);
    assert!(out.status.success(), "{out:?}");
    assert!(exists(&by_name) && exists(&by_uid), "both records kept");
    let d = login_at(&host_b, &u, &code, RHOST, T0 + 10);
    assert_ne!(d.returned(), Returned::Success, "the used code: {d:?}");
    let d = login_at(&host_b, &u, &code_at(&secret, T0 + 30), RHOST, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "the next one: {d:?}");
}
