//! What `state_fallback=local` gives up when the server comes back (docs/fleet.md,
//! "Failure is explicit"), through the real libpam against a real `redis-server`: a code
//! accepted through the fallback is recorded in the host's local store only, and a host
//! back on the shared store reads only that store; the server, paused and resumed (the
//! same instance, so no floor is raised), never saw the code, which then logs in once
//! more within its window, on the host that accepted it too. Control: with the server
//! up throughout, the same replay on the same host is refused. This pins the weakening
//! the docs and SECURITY.md describe; a fix (the local marks consulted on the way back)
//! turns the second assertion round.

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

fn denied() -> Returned {
    Returned::Failed("PAM_AUTH_ERR".into())
}

#[test]
fn a_code_accepted_by_the_fallback_logs_in_once_more_when_the_server_is_back() {
    if !require_root("a_code_accepted_by_the_fallback_logs_in_once_more_when_the_server_is_back") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=fb: redis_connect_timeout=300 state_fallback=local");
    init_store(&a);
    let host = Stack::probe("svc", &a);

    // Control: the server up throughout; the replay on the same host is refused.
    let (v, secret_v) = TestUser::enrolled("fbc");
    let code = code_at(&secret_v, now());
    let (d, logs) = login_logged(&host, &v, &code, PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let (d, logs) = login_logged(&host, &v, &code, PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");

    // The running clock throughout: a paused server is waited for, which a frozen
    // clock would never end.
    let (u, secret) = TestUser::enrolled("fbr");
    let code = code_at(&secret, now());
    server.pause();
    let (d, logs) = login_logged(&host, &u, &code, PEER, None);
    server.resume();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("using this host's local store")),
        "accepted through the fallback: {logs:?}"
    );
    let (d, logs) = login_logged(&host, &u, &code, PEER, None);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the weakening: the server never saw the code: {d:?} {logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("local store")),
        "through the shared store: {logs:?}"
    );
}
