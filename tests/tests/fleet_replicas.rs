//! Adding a replica to a fleet's primary, through the real libpam against real
//! `redis-server` processes (docs/fleet.md, "A data set rolled back to an older
//! state"): the primary's first replica makes it start a replication backlog under a
//! new replication ID with no predecessor, which is the same data set. The store record
//! stays bound, no floor is raised (the next step's code logs in at once, which a
//! raised floor would refuse), and a code used before stays refused as a replay. The
//! ID is shown to change, so the case is the one the docs describe.

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

fn info(server: &RedisServer, field: &str) -> String {
    let text = String::from_utf8_lossy(&server.raw(None, &[b"INFO", b"replication"])).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("INFO has no {field}: {text}"))
}

#[test]
fn a_first_replica_raises_no_floor_and_a_used_code_stays_used() {
    if !require_root("a_first_replica_raises_no_floor_and_a_used_code_stays_used") {
        return;
    }
    let primary = RedisServer::start(&ServerConfig::default());
    let a = primary.options("redis_prefix=rep: redis_timeout=2000");
    init_store(&a);
    let hosts: Vec<Stack> = (0..2).map(|_| Stack::probe("svc", &a)).collect();
    let (u, secret) = TestUser::enrolled("rep");
    let t = now();
    let code = code_at(&secret, t);
    let (d, logs) = login_logged(&hosts[0], &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");

    let before = info(&primary, "master_replid");
    let _replica = primary.replica();
    assert_ne!(
        info(&primary, "master_replid"),
        before,
        "the first replica starts a new replication ID"
    );
    assert!(
        info(&primary, "master_replid2").chars().all(|c| c == '0'),
        "with no predecessor"
    );

    let (d, logs) = login_logged(&hosts[1], &u, &code, PEER, t + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("lost its data")),
        "a replay, not a lost data set: {logs:?}"
    );
    // The next step's code, which a floor raised now would still count as used.
    let (d, logs) = login_logged(&hosts[1], &u, &code_at(&secret, t + 30), PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let p = state_tool(&["ping", "--options", &a]);
    assert_eq!(p.status.code(), Some(0), "{p:?}");
    assert!(
        !String::from_utf8_lossy(&p.stdout).contains("recreated"),
        "{p:?}"
    );
}
