//! Records in the shared store are keyed by the canonical user name (uids may differ
//! between hosts), and records a release keyed by uid are carried over: through the
//! real libpam against a real `redis-server`.

use system_tests::fleet::{RedisServer, ServerConfig, init_store, plugin};
use system_tests::*;

fn login(stack: &Stack, user: &TestUser, code: &str) -> (Drive, Vec<String>) {
    capture_syslog(
        &Driver::new(stack, "svc", &user.name)
            .answer(code)
            .rhost("192.0.2.11"),
    )
}

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
    let args = format!(
        "state={} redis_plugin={} redis_prefix=uk: redis_connect_timeout=1000 \
         redis_timeout=1000",
        server.url(false),
        plugin().display()
    );
    init_store(&args);
    let host_a = Stack::probe("svc", &args);
    let host_b = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("uk");
    let by_name = format!("uk:user:{}", u.name);
    let by_uid = format!("uk:uid:{}", u.uid);
    let exists = |k: &str| server.raw(None, &[b"EXISTS", k.as_bytes()]) == b":1\r\n";

    let code = code_at(&secret, now());
    let (d, lines) = login(&host_a, &u, &code);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(exists(&by_name), "the record is keyed by name");
    assert!(!exists(&by_uid), "and not by uid");

    // As the previous release would have left it.
    let r = server.raw(None, &[b"RENAME", by_name.as_bytes(), by_uid.as_bytes()]);
    assert!(r.starts_with(b"+OK"), "{}", String::from_utf8_lossy(&r));
    let (d, lines) = login(&host_b, &u, &code);
    assert_ne!(d.returned(), Returned::Success, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("code already used")),
        "refused as used: {lines:?}"
    );

    // Control: nothing remembers the code once both records are gone.
    server.raw(None, &[b"DEL", by_name.as_bytes(), by_uid.as_bytes()]);
    let (d, lines) = login(&host_b, &u, &code);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
}
