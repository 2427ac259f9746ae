//! Throttling against attackers who choose where their attempts come from (SECURITY.md
//! I10, I11, I13), through the real libpam with the clock frozen by libfaketime: which
//! origins become "known" (the half of the per-user ceiling a stranger cannot spend), and
//! which `PAM_RHOST` spellings are one origin for the backoff.

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

fn throttled(d: &Drive) -> bool {
    d.messages
        .iter()
        .any(|(s, t)| *s == 3 && t.starts_with("too many failed codes; try again in"))
}

/// `user` answering with no `PAM_RHOST` on terminal `tty` (sudo or su in a session).
fn local_login(stack: &Stack, user: &TestUser, answer: &str, tty: &str, at: u64) -> Drive {
    Driver::login(stack, user, answer).tty(tty).at(at).run()
}

/// I13: a user who runs sudo in several SSH sessions (each on a new pseudo-terminal,
/// sharing the record of their SSH logins) keeps their own address a known origin, so
/// strangers who used up the other half of the ceiling do not keep them out of SSH.
#[test]
fn sudo_in_new_sessions_leaves_the_users_address_known() {
    if !require_root("sudo_in_new_sessions_leaves_the_users_address_known") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tk");
    let stack = Stack::probe("svc", "ceiling_burst=2 ceiling_interval=600");
    let own = "192.0.2.10";
    let d = login_at(&stack, &u, &code_at(&secret, T0), own, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // More sudo sessions than the record keeps known origins, each with its own code.
    for k in 1..=5u64 {
        let at = T0 + 30 * k;
        let d = local_login(
            &stack,
            &u,
            &code_at(&secret, at),
            &format!("/dev/pts/{k}"),
            at,
        );
        assert_eq!(d.module_code(), "PAM_SUCCESS", "sudo {k}: {d:?}");
    }
    let at = T0 + 200;
    for i in 1..=2 {
        let stranger = format!("203.0.113.{i}");
        let d = login_at(&stack, &u, &wrong_totp(&secret, at), stranger.as_str(), at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert!(!throttled(&d), "guess {i} is evaluated: {d:?}");
    }
    // Control: the strangers' half is spent; a right code from a new address waits.
    let at = T0 + 240;
    let d = login_at(&stack, &u, &code_at(&secret, at), "203.0.113.3", at);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert!(throttled(&d), "the ceiling holds strangers: {d:?}");
    let d = login_at(&stack, &u, &code_at(&secret, at), own, at);
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "the user's own address: {d:?}"
    );
}

/// I13: strangers on the network who used up their half of the ceiling (a password
/// stack where everybody reaches the code prompt) do not keep a user who is already
/// logged in from sudo: an attempt without `PAM_RHOST` is made on this host and draws
/// from the half of the known origins.
#[test]
fn network_strangers_who_spent_their_half_do_not_keep_the_user_from_sudo() {
    if !require_root("network_strangers_who_spent_their_half_do_not_keep_the_user_from_sudo") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tt");
    let stack = Stack::probe("svc", "ceiling_burst=2 ceiling_interval=600");
    for i in 1..=2 {
        let stranger = format!("203.0.113.{i}");
        let d = login_at(
            &stack,
            &u,
            &wrong_totp(&secret, T0),
            stranger.as_str(),
            T0 + i,
        );
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert!(!throttled(&d), "guess {i} is evaluated: {d:?}");
    }
    // Control: the strangers' half is spent; a right code from a new address waits.
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, T0 + 30),
        "203.0.113.3",
        T0 + 30,
    );
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert!(throttled(&d), "the ceiling holds strangers: {d:?}");
    let d = local_login(
        &stack,
        &u,
        &code_at(&secret, T0 + 30),
        "/dev/pts/4",
        T0 + 31,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "sudo: {d:?}");
}

/// I11: sshd writes a link-local peer with its zone id (`fe80::1%eth0`); walking through
/// the /64 with it buys no fresh backoff, as it buys none without the zone id. Another
/// /64 is another origin (control).
#[test]
fn link_local_peers_with_a_zone_id_share_the_backoff_of_their_64() {
    if !require_root("link_local_peers_with_a_zone_id_share_the_backoff_of_their_64") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tz");
    let stack = Stack::probe("svc", "");
    for i in 0..3u64 {
        let peer = format!("fe80::{}%eth0", i + 1);
        let d = login_at(&stack, &u, &wrong_totp(&secret, T0), peer.as_str(), T0 + i);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert!(!throttled(&d), "guess {i} is evaluated: {d:?}");
    }
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, T0 + 10),
        "fe80::99%eth0",
        T0 + 10,
    );
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert!(
        d.messages
            .contains(&(3, "too many failed codes; try again in 22 s".to_string())),
        "{d:?}"
    );
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, T0 + 10),
        "fe80:0:0:1::99%eth0",
        T0 + 10,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "another /64: {d:?}");
}

/// I13 through a shared store: strangers spend their half on one host of the fleet; on
/// another, the user's sudo still gets in, while a new address there waits (the fleet
/// shares one ceiling).
#[test]
fn a_fleet_attacked_on_one_host_lets_the_user_sudo_on_another() {
    if !require_root("a_fleet_attacked_on_one_host_lets_the_user_sudo_on_another") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a =
        server.options("redis_prefix=to: redis_timeout=2000 ceiling_burst=2 ceiling_interval=600");
    init_store(&a);
    let attacked = Stack::probe("svc", &a);
    let other = Stack::probe("svc", &a);
    let (u, secret) = TestUser::enrolled("tf");
    for i in 1..=2 {
        let stranger = format!("203.0.113.{i}");
        let d = login_at(
            &attacked,
            &u,
            &wrong_totp(&secret, T0),
            stranger.as_str(),
            T0 + i,
        );
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
        assert!(!throttled(&d), "guess {i} is evaluated: {d:?}");
    }
    let d = login_at(
        &other,
        &u,
        &code_at(&secret, T0 + 30),
        "203.0.113.3",
        T0 + 30,
    );
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(throttled(&d), "the fleet's ceiling holds strangers: {d:?}");
    let d = local_login(
        &other,
        &u,
        &code_at(&secret, T0 + 30),
        "/dev/pts/2",
        T0 + 31,
    );
    assert_eq!(
        d.returned(),
        Returned::Success,
        "sudo on another host: {d:?}"
    );
}

/// `grace_period=` and link-local peers: `fe80::1%lo` and `fe80::1%eth0` are two hosts on
/// two links (the zone id names the link). A code accepted from one must not let the
/// other in without a code, with the password alone. The grace entry holds the address
/// and not the link, so no link-local peer gets a grace period (pam_totp(8)): the next
/// attempt from the other link is prompted and refused, as is one from the same link.
/// Control: an IPv4 peer's accepted code gives that peer its grace period.
#[test]
fn a_link_local_peer_on_another_link_is_asked_for_the_code_within_the_grace_period() {
    if !require_root(
        "a_link_local_peer_on_another_link_is_asked_for_the_code_within_the_grace_period",
    ) {
        return;
    }
    let (u, secret) = TestUser::enrolled("tg");
    let stack = Stack::probe("svc", "grace_period=3600");
    let d = login_at(&stack, &u, &code_at(&secret, T0), "fe80::1%lo", T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    for (peer, at) in [("fe80::1%eth0", T0 + 60), ("fe80::1%lo", T0 + 90)] {
        let d = login_at(&stack, &u, &wrong_totp(&secret, at), peer, at);
        assert_eq!(d.prompts, 1, "{peer}: {d:?}");
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{peer}: {d:?}");
    }
    let v4 = "192.0.2.20";
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 120), v4, T0 + 120);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 + 150), v4, T0 + 150);
    assert_eq!(
        (d.prompts, d.module_code().as_str()),
        (0, "PAM_SUCCESS"),
        "control: the IPv4 peer's grace period: {d:?}"
    );
}
