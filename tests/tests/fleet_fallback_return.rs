//! What `state_fallback=local` keeps when the server comes back (docs/fleet.md,
//! "Failure is explicit"), through the real libpam against a real `redis-server`: a code
//! accepted through the fallback is marked in the host's local store only, and the
//! server, paused and resumed (the same instance, so no floor is raised), never saw it.
//! A host back on the shared store carries its local mark into the decision: the code is
//! refused there as used (before, it logged in once more), and the mark reaches the
//! shared store, where another host refuses it too. Controls: with the server up
//! throughout, the same replay is refused; a later code logs in on both hosts.

use std::time::Duration;

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

fn denied() -> Returned {
    Returned::Failed("PAM_AUTH_ERR".into())
}

/// `live`'s options with a port nothing listens on instead of the server: refused at
/// once, the fallback's case (and no wait, so a frozen clock is safe).
fn unreachable(server: &RedisServer, live: &str) -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let down = live.replace(&server.url(false), &format!("redis://127.0.0.1:{dead}"));
    assert_ne!(down, live);
    down
}

/// `host`'s probe service with the module options `args` (its state directory kept).
fn reconfigure(host: &Stack, args: &str) {
    host.service(
        "svc",
        &format!(
            "auth [success=2 ignore=ignore default=die] @MODULE@ {args}\n\
             auth required pam_echo.so pam_totp-returned-ignore\n\
             auth [success=done default=die] pam_permit.so\n\
             auth required pam_echo.so pam_totp-returned-success\n"
        ),
    );
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
    let host = Stack::probe("svc", &unreachable(&server, &live));
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
    reconfigure(&host, &live);
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

/// The bound on a carried local mark is what a code accepted at this clock can be marked
/// (the window's lead with the file's TIME_SKEW) plus the clock slack: with the default
/// window of 3 at 30-s steps, a login at step `s` reaches the end of step `s + 1`, so a
/// mark up to 60 s later (the end of step `s + 3`) is carried and the end of step `s + 4`
/// is not. Before, anything up to an hour ahead was carried, and a host whose clock ran
/// 2 minutes to an hour fast during an outage held the user's codes on every host.
/// Control: the mark just within the bound is carried (the current code refused there
/// and, through the shared store, on another host), and a file's `TIME_SKEW` of 2 steps
/// carries a mark 2 steps further (a phone that far ahead is no clock fault).
#[test]
fn a_local_mark_past_the_window_lead_is_not_carried_and_one_within_it_is() {
    if !require_root("a_local_mark_past_the_window_lead_is_not_carried_and_one_within_it_is") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let live = server.options("redis_prefix=fw: redis_connect_timeout=300 state_fallback=local");
    init_store(&live);
    let host = Stack::probe("svc", &unreachable(&server, &live));
    // The middle of a step, so that every time below names the step it means.
    let t = now() / 30 * 30 + 15;
    let (past, past_secret) = TestUser::enrolled("fwp");
    let (within, within_secret) = TestUser::enrolled("fwi");
    let skewed = TestUser::create("fws");
    let skewed_secret = random_secret_b32();
    skewed.write_secret(
        &format!("{}\" TIME_SKEW 2\n", totp_file(&skewed_secret)),
        0o600,
    );
    // Accepted through the fallback by a clock 4 (3) steps ahead: marked used until the
    // end of step s + 4 (s + 3).
    for (u, secret, steps) in [(&past, &past_secret, 4), (&within, &within_secret, 3)] {
        let at = t + steps * 30;
        let (d, logs) = login_logged(&host, u, &code_at(secret, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("using this host's local store")),
            "{logs:?}"
        );
    }
    // The skewed phone's code of step s + 5, accepted by a clock 3 steps ahead: marked
    // until the end of step s + 5, 2 steps past the unskewed bound, at it with the skew.
    let at = t + 3 * 30;
    let (d, logs) = login_logged(&host, &skewed, &code_at(&skewed_secret, at + 60), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    reconfigure(&host, &live);
    let (d, logs) = login_logged(&host, &past, &code_at(&past_secret, t), PEER, t);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "a mark 4 steps ahead is not carried: {d:?} {logs:?}"
    );
    let (d, logs) = login_logged(&host, &within, &code_at(&within_secret, t), PEER, t);
    assert_eq!(
        d.returned(),
        denied(),
        "a mark 3 steps ahead is carried: {d:?} {logs:?}"
    );
    // The refusal wrote it to the shared store: another host refuses the code too.
    let other = Stack::probe("svc", &live);
    let (d, logs) = login_logged(&other, &within, &code_at(&within_secret, t), PEER, t);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    // The skewed phone's current code at t (step s + 2) is refused: its mark was carried.
    let code = code_at(&skewed_secret, t + 60);
    let (d, logs) = login_logged(&host, &skewed, &code, PEER, t);
    assert_eq!(
        d.returned(),
        denied(),
        "a mark within the skewed window's lead is carried: {d:?} {logs:?}"
    );
}

/// The harness guard: a login with the clock frozen by libfaketime against a paused
/// server can never end (no timeout expires under a frozen clock); the harness kills it
/// after its wall-clock limit and fails the test with the reason, instead of hanging the
/// test run. Control: the same frozen-clock login with the server running ends within
/// the same limit.
#[test]
fn a_frozen_clock_login_against_a_paused_server_fails_loudly_instead_of_hanging() {
    if !require_root("a_frozen_clock_login_against_a_paused_server_fails_loudly_instead_of_hanging")
    {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=fz: redis_connect_timeout=300 redis_timeout=300");
    init_store(&a);
    let host = Stack::probe("svc", &a);
    let (u, secret) = TestUser::enrolled("fzh");
    let limit = Duration::from_secs(30);
    let frozen = |at: u64| {
        Driver::login(&host, &u, &code_at(&secret, at))
            .rhost(PEER)
            .at(at)
            .frozen_limit(limit)
    };
    let t = now();
    let (d, logs) = capture_syslog(&frozen(t));
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");

    server.pause();
    let hung = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        capture_syslog(&frozen(t + 30))
    }));
    server.resume();
    let why = match hung {
        Ok(ended) => panic!("the frozen login against a paused server ended: {ended:?}"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a panic without text".into()),
    };
    assert!(
        why.contains("frozen") && why.contains("was killed") && why.contains("running clock"),
        "{why}"
    );
    // The killed login held nothing: with the running clock the next code logs in.
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, now()), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// `chattr +i` on `path` until dropped (a failed assertion included), so that the
/// account's removal can delete it.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &std::path::Path) -> Immutable {
        let out = run("chattr", [std::ffi::OsStr::new("+i"), path.as_os_str()]);
        assert!(out.status.success(), "chattr +i: {out:?}");
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = run("chattr", [std::ffi::OsStr::new("-i"), self.0.as_os_str()]);
    }
}

/// Where the secret file cannot be rewritten (immutable here; a read-only mount alike),
/// only the store says that a scratch code was used. One the fallback accepted was
/// marked in the local store alone, and once the server was back the shared store let
/// it log in again (R34); so did an HOTP code. The host now carries its local used
/// scratch codes and HOTP counter into the decision too, and the refusal writes them to
/// the shared store, where another host refuses the code as well. Controls: with the
/// server up, the same replays are refused.
#[test]
fn scratch_and_hotp_codes_the_fallback_accepted_from_a_file_kept_as_it_was_stay_used() {
    let t = "scratch_and_hotp_codes_the_fallback_accepted_from_a_file_kept_as_it_was_stay_used";
    if !require_root(t) || !require_tool(t, "chattr") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=fs: redis_connect_timeout=300 state_fallback=local");
    init_store(&a);
    let host = Stack::probe("svc", &a);
    let u = TestUser::create("fsc");
    let secret = random_secret_b32();
    let codes = ["31000000", "31000001"];
    let path = u.write_secret(
        &format!("{}{}\n{}\n", totp_file(&secret), codes[0], codes[1]),
        0o600,
    );
    let _immutable = Immutable::set(&path);

    // Control: the server up throughout.
    let (d, logs) = login_logged(&host, &u, codes[0], PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(read(&path).contains(codes[0]), "the file was not rewritten");
    let (d, logs) = login_logged(&host, &u, codes[0], PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");

    server.pause();
    let (d, logs) = login_logged(&host, &u, codes[1], PEER, None);
    server.resume();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("using this host's local store")),
        "accepted through the fallback: {logs:?}"
    );
    assert!(read(&path).contains(codes[1]), "the file was not rewritten");
    let (d, logs) = login_logged(&host, &u, codes[1], PEER, None);
    assert_eq!(
        d.returned(),
        denied(),
        "the scratch code accepted through the fallback, on the shared store: {d:?} {logs:?}"
    );
    let other = Stack::probe("svc", &a);
    let (d, logs) = login_logged(&other, &u, codes[1], PEER, None);
    assert_eq!(d.returned(), denied(), "another host: {d:?} {logs:?}");

    // An HOTP counter alike: the file's HOTP_COUNTER stays 1, the store holds the rest.
    let h = TestUser::create("fho");
    let hsecret = random_secret_b32();
    let hpath = h.write_secret(&format!("{hsecret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let _immutable = Immutable::set(&hpath);
    let token = |counter: u64| oathtool_hotp(&hsecret, counter);
    // Control: the server up throughout.
    let (d, logs) = login_logged(&host, &h, &token(1), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        read(&hpath).contains("HOTP_COUNTER 1"),
        "the file was not rewritten"
    );
    let (d, logs) = login_logged(&host, &h, &token(1), PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");

    server.pause();
    let (d, logs) = login_logged(&host, &h, &token(2), PEER, None);
    server.resume();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("using this host's local store")),
        "accepted through the fallback: {logs:?}"
    );
    let (d, logs) = login_logged(&host, &h, &token(2), PEER, None);
    assert_eq!(
        d.returned(),
        denied(),
        "the HOTP code accepted through the fallback, on the shared store: {d:?} {logs:?}"
    );
    let (d, logs) = login_logged(&other, &h, &token(2), PEER, None);
    assert_eq!(d.returned(), denied(), "another host: {d:?} {logs:?}");
}

/// A scratch code the fallback accepted from a file kept as it was, carried into a shared
/// record that already holds as many used scratch codes as a record keeps (sixteen used
/// through the server and removed from the file): the oldest of those makes room, and
/// the carried code reaches the shared store. Before, the record written dropped it
/// (the newest beyond the cap), and another host logged in with it (R34). Control: on
/// that host, a listed code never used logs in, so its refusal is the store's.
#[test]
fn a_carried_scratch_code_is_kept_when_the_shared_record_is_full() {
    let t = "a_carried_scratch_code_is_kept_when_the_shared_record_is_full";
    if !require_root(t) || !require_tool(t, "chattr") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=ff: redis_connect_timeout=300 state_fallback=local");
    init_store(&a);
    let host = Stack::probe("svc", &a);
    let u = TestUser::create("ffu");
    let secret = random_secret_b32();
    let used: Vec<String> = (0..16).map(|i| format!("{}", 32_000_000 + i)).collect();
    let path = u.write_secret(
        &format!("{}{}\n", totp_file(&secret), used.join("\n")),
        0o600,
    );
    for c in &used {
        let (d, logs) = login_logged(&host, &u, c, PEER, None);
        assert_eq!(d.returned(), Returned::Success, "{c}: {d:?} {logs:?}");
    }
    assert!(!read(&path).contains(&used[15]), "the file was rewritten");
    let (carried, spare) = ("33000000", "33000001");
    u.write_secret(
        &format!("{}{carried}\n{spare}\n", totp_file(&secret)),
        0o600,
    );
    let _immutable = Immutable::set(&path);

    server.pause();
    let (d, logs) = login_logged(&host, &u, carried, PEER, None);
    server.resume();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("using this host's local store")),
        "accepted through the fallback: {logs:?}"
    );
    // Back on the shared store: refused, and the refusal writes the carried use there.
    let (d, logs) = login_logged(&host, &u, carried, PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    let other = Stack::probe("svc", &a);
    let (d, logs) = login_logged(&other, &u, carried, PEER, None);
    assert_eq!(
        d.returned(),
        denied(),
        "another host, the carried code: {d:?} {logs:?}"
    );
    let (d, logs) = login_logged(&other, &u, spare, PEER, None);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control: another host, a code never used: {d:?} {logs:?}"
    );
}

/// Seventeen scratch codes in a file kept as it was (and an eighteenth never used):
/// sixteen used through the server fill the shared record, the seventeenth is used
/// through the fallback. Back on the shared store nothing can make room (every used
/// code is still listed). Before, every login of the user on this host was refused from
/// then on, TOTP included, until the file changed: a lockout. Now a TOTP code logs in,
/// with the log line that says why the carried use is not written and what gives room;
/// no use is forgotten: the carried code stays refused here (the local record) and on
/// another host, and so is the code never used (the record is full). Control: the same
/// host, before the fallback, logs in with a TOTP code.
#[test]
fn seventeen_used_scratch_codes_in_a_file_kept_as_it_was_still_let_totp_in() {
    let t = "seventeen_used_scratch_codes_in_a_file_kept_as_it_was_still_let_totp_in";
    if !require_root(t) || !require_tool(t, "chattr") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=fs17: redis_connect_timeout=300 state_fallback=local");
    init_store(&a);
    let host = Stack::probe("svc", &a);
    let u = TestUser::create("f17");
    let secret = random_secret_b32();
    let codes: Vec<String> = (0..18).map(|i| format!("{}", 34_000_000 + i)).collect();
    let path = u.write_secret(
        &format!("{}{}\n", totp_file(&secret), codes.join("\n")),
        0o600,
    );
    let _immutable = Immutable::set(&path);
    for c in &codes[..16] {
        let (d, logs) = login_logged(&host, &u, c, PEER, None);
        assert_eq!(d.returned(), Returned::Success, "{c}: {d:?} {logs:?}");
    }
    let start = now();
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, start), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");

    server.pause();
    let (d, logs) = login_logged(&host, &u, &codes[16], PEER, None);
    server.resume();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("using this host's local store")),
        "accepted through the fallback: {logs:?}"
    );
    let later = start + 60;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains(
            "more scratch codes of this secret are recorded as used than a record keeps (16)"
        ) && l.contains("1 used through the local store are not written")
            && l.contains("totp-enroll --regenerate-scratch-codes")),
        "{logs:?}"
    );
    let (d, logs) = login_logged(&host, &u, &codes[16], PEER, later);
    assert_eq!(d.returned(), denied(), "the carried code: {d:?} {logs:?}");
    // Refused as the full record refuses any code it lacks.
    let other = Stack::probe("svc", &a);
    for c in &codes[16..] {
        let (d, logs) = login_logged(&other, &u, c, PEER, later);
        assert_eq!(d.returned(), denied(), "another host, {c}: {d:?} {logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("16 scratch codes of this secret are recorded as used")),
            "{c}: {logs:?}"
        );
    }
}

/// The verdict words of an HOTP code offered again across two stores (docs/logging.md):
/// the counter the fallback accepted last, typed again once the shared store is back,
/// is that counter's exact replay (the man-in-the-middle line and "code already
/// used"), although the shared store itself never saw it; the counter accepted before
/// it through the shared store is older than the last accepted one: "expired", no
/// alarm. Both denied. Control: the next counter logs in.
#[test]
fn an_hotp_replay_across_the_two_stores_is_worded_by_the_last_counter_of_either() {
    let t = "an_hotp_replay_across_the_two_stores_is_worded_by_the_last_counter_of_either";
    if !require_root(t) || !require_tool(t, "chattr") || !require_tool(t, "oathtool") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = server.options("redis_prefix=fw: redis_connect_timeout=300 state_fallback=local");
    init_store(&a);
    let host = Stack::probe("svc", &a);
    let h = TestUser::create("fwh");
    let secret = random_secret_b32();
    let path = h.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let _immutable = Immutable::set(&path);
    let token = |counter: u64| oathtool_hotp(&secret, counter);
    let has = |logs: &[String], what: &str| logs.iter().any(|l| l.contains(what));
    let alarm = "reused an already accepted code; this might mean a man-in-the-middle attack";

    let (d, logs) = login_logged(&host, &h, &token(2), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    server.pause();
    let (d, logs) = login_logged(&host, &h, &token(3), PEER, None);
    server.resume();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(has(&logs, "using this host's local store"), "{logs:?}");

    let (d, logs) = login_logged(&host, &h, &token(3), PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(has(&logs, alarm), "the exact replay: {logs:?}");
    assert!(has(&logs, "code already used for"), "{logs:?}");
    assert!(!has(&logs, "expired code"), "{logs:?}");

    let (d, logs) = login_logged(&host, &h, &token(2), PEER, None);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        has(&logs, "expired code (older than the last accepted one) for"),
        "an older counter: {logs:?}"
    );
    assert!(!has(&logs, alarm), "{logs:?}");

    let (d, logs) = login_logged(&host, &h, &token(4), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");
}

/// A maintenance window (docs/fleet.md, "Taking the store down for maintenance"): the
/// admin adds `state_fallback=local` to the line while the server is away, and takes it
/// off again once the server (the same instance: no floor raised) is back. A code the
/// host accepted through the fallback stays refused on it after the option is gone
/// (before, the local store was read only while the option stayed on the line, and the
/// code logged in once more). Control: a code of another user accepted through the
/// fallback logs in on a host that never fell back, which has no local marks to read
/// (until the first host's refusal writes them: the test above).
#[test]
fn a_code_the_fallback_accepted_stays_used_after_the_option_is_taken_off_the_line() {
    let t = "a_code_the_fallback_accepted_stays_used_after_the_option_is_taken_off_the_line";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let live = server.options("redis_prefix=fm: redis_connect_timeout=300");
    init_store(&live);
    let window = format!("{} state_fallback=local", unreachable(&server, &live));
    let host = Stack::probe("svc", &window);
    let (u, secret_u) = TestUser::enrolled("fmu");
    let (v, secret_v) = TestUser::enrolled("fmv");
    let at = now() + 60;
    let code_u = code_at(&secret_u, at);
    let code_v = code_at(&secret_v, at);
    for (user, code) in [(&u, &code_u), (&v, &code_v)] {
        let (d, logs) = login_logged(&host, user, code, PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("using this host's local store")),
            "accepted through the fallback: {logs:?}"
        );
    }
    // The window ends: the line is the fleet's again, without the option.
    reconfigure(&host, &live);
    let (d, logs) = login_logged(&host, &u, &code_u, PEER, at + 5);
    assert_eq!(
        d.returned(),
        denied(),
        "a code the fallback accepted, after the option is gone: {d:?} {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("reused an already accepted code")),
        "{logs:?}"
    );
    // Control: a host that never fell back has no local mark of it.
    let other = Stack::probe("svc", &live);
    let (d, logs) = login_logged(&other, &v, &code_v, PEER, at + 5);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // A later code logs in on the host through the shared store.
    let later = at + 65;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret_u, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}
