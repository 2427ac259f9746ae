//! What `state_fallback=local` keeps when the server comes back (docs/fleet.md,
//! "Failure is explicit"), through the real libpam against a real `redis-server`: a code
//! accepted through the fallback is marked in the host's local store only, and the
//! server, paused and resumed (the same instance, so no floor is raised), never saw it.
//! A host back on the shared store carries its local mark into the decision: the code is
//! refused there as used (before, it logged in once more), and the mark reaches the
//! shared store, where another host refuses it too. Controls: with the server up
//! throughout, the same replay is refused; a later code logs in on both hosts.

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

fn denied() -> Returned {
    Returned::Failed("PAM_AUTH_ERR".into())
}

#[test]
fn a_code_accepted_by_the_fallback_stays_used_when_the_server_is_back() {
    if !require_root("a_code_accepted_by_the_fallback_stays_used_when_the_server_is_back") {
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
        denied(),
        "the code accepted through the fallback, on the shared store: {d:?} {logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("using this host's local store")),
        "through the shared store: {logs:?}"
    );
    // The refusal wrote the local mark to the shared store: another host, which never
    // fell back, refuses the code as well.
    let other = Stack::probe("svc", &a);
    let (d, logs) = login_logged(&other, &u, &code, PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    // A later code logs in through the shared store.
    let later = now() + 60;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// A local mark from a clock fault (this host two hours ahead while it fell back) is not
/// carried into the shared store's decision: carried, it would be written there and
/// hold the user's logins on every host for two hours. Control: the mark of a code
/// accepted at the right time is carried (the test above).
#[test]
fn a_local_mark_from_a_clock_two_hours_ahead_is_not_carried_to_the_shared_store() {
    if !require_root("a_local_mark_from_a_clock_two_hours_ahead_is_not_carried_to_the_shared_store")
    {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let live = server.options("redis_prefix=fh: redis_connect_timeout=300 state_fallback=local");
    init_store(&live);
    // A port nothing listens on: refused at once, the fallback's case.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let down = live.replace(&server.url(false), &format!("redis://127.0.0.1:{dead}"));
    assert_ne!(down, live);
    let host = Stack::probe("svc", &down);
    let (u, secret) = TestUser::enrolled("fha");
    let ahead = now() + 7200;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, ahead), PEER, ahead);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("using this host's local store")),
        "{logs:?}"
    );
    // Back on the live server with the clock right (the same state directory): the
    // current code logs in, on this host and then the next one on another.
    host.service(
        "svc",
        &format!(
            "auth [success=2 ignore=ignore default=die] @MODULE@ {live}\n\
             auth required pam_echo.so pam_totp-returned-ignore\n\
             auth [success=done default=die] pam_permit.so\n\
             auth required pam_echo.so pam_totp-returned-success\n"
        ),
    );
    let t = now();
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, t), PEER, t);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the mark two hours ahead is not carried: {d:?} {logs:?}"
    );
    let other = Stack::probe("svc", &live);
    let (d, logs) = login_logged(&other, &u, &code_at(&secret, t + 30), PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}
