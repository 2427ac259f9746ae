//! Hosts whose clocks disagree (docs/fleet.md, "Clocks"), through the real libpam: each
//! "host" is a PAM stack whose `pam-drive` process runs with its own frozen clock
//! (libfaketime), sharing one real `redis-server` (or etcd cluster), whose clock is the
//! real one; the single-host case uses the local store. A host days ahead cannot erase a
//! `max_failures=` lockout; a store record recreated by a host hours ahead, a replay
//! mark ahead of a clock that went back and throttling records written ahead are refused
//! as before (R34, R14) with a log line that names the clock and how far off it is; a
//! host minutes behind recreates a lost store record at the server's time, so codes
//! accepted before the loss stay used; a host more than a day off the server's clock
//! (behind or ahead) recreates nothing: denied as a clock fault.

use std::process::Command;
use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{RedisServer, ServerConfig, after_recreation, init_store};

use system_tests::*;

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn args(server: &RedisServer, prefix: &str, extra: &str) -> String {
    server.options(&format!(
        "redis_prefix={prefix}: redis_timeout=2000 {extra}"
    ))
}

/// `totp-state` with the clock frozen at `unix`, as an admin on that host runs it.
fn state_tool_at(unix: u64, args: &[&str]) -> std::process::Output {
    output_guarded(
        Command::new(&built().state_tool)
            .args(args)
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(unix))
            .env("TZ", "UTC"),
        Input::Null,
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn denied(d: &Drive) {
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
}

#[test]
fn a_host_days_ahead_cannot_erase_a_max_failures_lockout_fleet_wide() {
    let t = "a_host_days_ahead_cannot_erase_a_max_failures_lockout_fleet_wide";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "ck", "max_failures=3 throttle_after=50");
    init_store(&a);
    let right = Stack::probe("svc", &a);
    let ahead = Stack::probe("svc", &a);
    let (u, secret) = TestUser::enrolled("ck");
    let wrong = wrong_totp(&secret, T0);

    // Two failures on a host with the right clock, the third on one two days ahead.
    denied(&login_at(&right, &u, &wrong, PEER, T0));
    denied(&login_at(&right, &u, &wrong, PEER, T0 + 1));
    denied(&login_at(&ahead, &u, &wrong, PEER, T0 + 2 * DAY));

    // The account is locked on the host with the right clock too, and its log says why
    // the other host's records look odd.
    let (d, logs) = login_logged(&right, &u, &code_at(&secret, T0 + 60), PEER, T0 + 60);
    denied(&d);
    assert!(
        logs.iter()
            .any(|l| l.contains("disabled after too many failures")),
        "refused by the hard cap: {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("clock: throttling records dated")
                && l.contains(&format!("{} s ahead", 2 * DAY - 60))),
        "the clock is named, with how far off: {logs:?}"
    );

    // Control: two failures alone do not lock; the right code logs in.
    let b = args(&server, "ck2", "max_failures=3 throttle_after=50");
    init_store(&b);
    let host = Stack::probe("svc", &b);
    let (u2, secret2) = TestUser::enrolled("ck2");
    let wrong2 = wrong_totp(&secret2, T0);
    denied(&login_at(&host, &u2, &wrong2, PEER, T0));
    denied(&login_at(&host, &u2, &wrong2, PEER, T0 + 1));
    let d = login_at(&host, &u2, &code_at(&secret2, T0 + 60), PEER, T0 + 60);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

#[test]
fn a_store_recreated_by_a_host_hours_ahead_is_obeyed_and_names_the_clock() {
    let t = "a_store_recreated_by_a_host_hours_ahead_is_obeyed_and_names_the_clock";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    // Never initialised: the first login recreates the store record, as after a loss.
    let a = args(&server, "cs", "");
    let right = Stack::probe("svc", &a);
    let ahead = Stack::probe("svc", &a);
    let (u, secret) = TestUser::enrolled("cs");
    // The server keeps its real clock: the hosts' are set from it.
    let base = now();

    let (d, logs) = login_logged(&ahead, &u, &code_at(&secret, base), PEER, base + 2 * HOUR);
    denied(&d);
    // The host ahead sees it against the server's clock; its own time is the floor
    // (the server's, behind, cannot lower it).
    assert!(
        logs.iter()
            .any(|l| l.contains("recreated complete since this host's clock")
                && l.contains("s ahead of the Redis server's")),
        "the host ahead is named: {logs:?}"
    );

    // R34 stands: every code up to the host's "now" counts as used, on every host...
    let (d, logs) = login_logged(&right, &u, &code_at(&secret, base), PEER, base);
    denied(&d);
    let until = format!(
        "codes are refused until {}",
        totp_core::utc::format_utc(base + 2 * HOUR)
    );
    assert!(
        d.messages.iter().any(|(_, m)| m.contains(&until)),
        "the user is told until when, not to wait for the next code: {d:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("clock: the state store was recreated")
                && l.contains("7200 s after this host's clock")),
        "the clock is named, with how far off: {logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("man-in-the-middle") || l.contains("the next code works")),
        "no replay and no promise the next code cannot keep: {logs:?}"
    );
    // The monitoring probe on a host with the right clock says so too, and fails: every
    // code of the fleet is refused.
    let ping = state_tool_at(base, &["ping", "--options", &a]);
    assert_eq!(ping.status.code(), Some(1), "{ping:?}");
    assert!(
        String::from_utf8_lossy(&ping.stderr).contains("7200 s after this host's clock"),
        "{ping:?}"
    );
    // ...until the clocks pass the time it was recreated at.
    let later = base + 2 * HOUR + 60;
    let d = login_at(&right, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    // Control: the same probe at that time passes.
    let ping = state_tool_at(later, &["ping", "--options", &a]);
    assert!(ping.status.success(), "{ping:?}");
}

#[test]
fn a_clock_that_went_back_an_hour_is_named_and_the_mark_holds() {
    let t = "a_clock_that_went_back_an_hour_is_named_and_the_mark_holds";
    if !require_root(t) {
        return;
    }
    let host = Stack::probe("svc", "");
    let (u, secret) = TestUser::enrolled("cb");
    let d = login_at(&host, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");

    // The accepted code's step began at:
    let mark = T0 / 30 * 30;
    // The clock steps back an hour; the phone still shows the right code.
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0 + 30), None, T0 - HOUR);
    denied(&d);
    assert!(
        logs.iter()
            .any(|l| l.contains("clock: the last accepted code is dated")
                && l.contains(&format!("{} s after this host's clock", mark - (T0 - HOUR)))),
        "the clock is named, with how far off: {logs:?}"
    );
    let dir = host.state_dir();
    let dir = dir.to_str().expect("a UTF-8 state directory");
    let shown = state_tool_at(T0 - HOUR, &["show", "--user", &u.name, "--state-dir", dir]);
    assert!(
        stdout(&shown).contains(&format!(
            "WARNING: that is {} s after this host's clock",
            mark - (T0 - HOUR)
        )),
        "{shown:?}"
    );
    // Control: the clock set right again, the same code logs in (the mark never rolled
    // back, and nothing was locked).
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    assert!(!logs.iter().any(|l| l.contains("clock:")), "{logs:?}");
}

#[test]
fn failures_charged_on_a_host_hours_ahead_hold_the_fleet_and_name_the_clock() {
    let t = "failures_charged_on_a_host_hours_ahead_hold_the_fleet_and_name_the_clock";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "cf", "throttle_after=50");
    init_store(&a);
    let right = Stack::probe("svc", &a);
    let ahead = Stack::probe("svc", &a);
    let (u, secret) = TestUser::enrolled("cf");
    // The user logs in from PEER: an origin the per-user ceiling then counts as known.
    let d = login_at(&right, &u, &code_at(&secret, T0 - 120), PEER, T0 - 120);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");

    // One wrong code from there on a host six hours ahead draws the known origins' half
    // of the per-user ceiling (10 guesses, then one per 30 min) from six hours ahead.
    denied(&login_at(
        &ahead,
        &u,
        &wrong_totp(&secret, T0),
        PEER,
        T0 + 6 * HOUR,
    ));
    // Obeyed on the host with the right clock (a host whose clock is behind must not
    // be able to lower it for the fleet), and its log names the clock.
    let (d, logs) = login_logged(&right, &u, &code_at(&secret, T0), PEER, T0);
    denied(&d);
    assert!(
        d.messages.iter().any(|(_, m)| m.contains("try again")),
        "{d:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("clock: throttling records dated")
                && l.contains(&format!("{} s ahead of this host's clock", 6 * HOUR))),
        "the clock is named, with how far off: {logs:?}"
    );
    let shown = state_tool_at(T0, &["show", "--user", &u.name, "--options", &a]);
    assert!(
        stdout(&shown).contains(&format!(
            "WARNING: throttling records up to {} s after this host's clock",
            6 * HOUR
        )),
        "{shown:?}"
    );
    // Control: the other half of the ceiling (origins the user never logged in from)
    // was not charged; the user gets in from one.
    let d = login_at(
        &right,
        &u,
        &code_at(&secret, T0 + 30),
        "198.51.100.9",
        T0 + 30,
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

#[test]
fn a_host_an_hour_behind_obeys_the_fleet_s_backoff() {
    let t = "a_host_an_hour_behind_obeys_the_fleet_s_backoff";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "cl", "throttle_after=3");
    init_store(&a);
    let right = Stack::probe("svc", &a);
    let behind = Stack::probe("svc", &a);
    let behind_now = T0 - HOUR;
    let (u, secret) = TestUser::enrolled("cl");
    for i in 0..3 {
        denied(&login_at(
            &right,
            &u,
            &wrong_totp(&secret, T0),
            PEER,
            T0 + i,
        ));
    }
    // To the host behind, the failures are an hour in its future: the backoff they
    // started holds there (each refusal says at most the backoff from its "now") until
    // its own clock passes it; the host that is off fails closed.
    let (d, logs) = login_logged(&behind, &u, &code_at(&secret, behind_now), PEER, behind_now);
    denied(&d);
    assert!(
        d.messages
            .iter()
            .any(|(_, m)| m.contains("try again in 30 s")),
        "{d:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("clock: throttling records dated")),
        "{logs:?}"
    );
    // Control: on the same host, a user nobody failed for logs in with its clock.
    let (v, secret_v) = TestUser::enrolled("cl2");
    let d = login_at(
        &behind,
        &v,
        &code_at(&secret_v, behind_now),
        PEER,
        behind_now,
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// A host whose RTC battery died boots in 1970 and stays there until NTP syncs.
const BOOTED_IN_1970: u64 = 1_000;

#[test]
fn a_host_booted_in_1970_cannot_recreate_a_lost_store_and_reopen_used_codes() {
    let t = "a_host_booted_in_1970_cannot_recreate_a_lost_store_and_reopen_used_codes";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "c70", "");
    booted_in_1970_after_a_loss(&a, "c70", &|| {
        assert!(String::from_utf8_lossy(&server.raw(None, &[b"FLUSHALL"])).starts_with("+OK"));
    });
}

#[test]
fn an_etcd_host_booted_in_1970_cannot_recreate_a_lost_store_and_reopen_used_codes() {
    let t = "an_etcd_host_booted_in_1970_cannot_recreate_a_lost_store_and_reopen_used_codes";
    if !require_root(t) {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let prefix = "c70e/";
    let a = format!(
        "state={} etcd_plugin={} etcd_prefix={prefix} etcd_timeout=1000",
        cluster.url(),
        etcd_plugin().display(),
    );
    booted_in_1970_after_a_loss(&a, "c70e", &|| {
        cluster.ctl(&["del", "--prefix", prefix]);
    });
}

/// A code used on one host, the store's data set lost (`lose`), the first login after
/// it on a host whose clock says 1970: denied as a clock fault, the store record left
/// missing (and `totp-state init` there refuses too), so the host with the right clock
/// recreates it and the used code stays used.
fn booted_in_1970_after_a_loss(a: &str, tag: &str, lose: &dyn Fn()) {
    init_store(a);
    let right = Stack::probe("svc", a);
    let in_1970 = Stack::probe("svc", a);
    let (u, secret) = TestUser::enrolled(tag);
    // The right clock is the server's (real) one: a host a day off it recreates nothing.
    let t = now();
    let code = code_at(&secret, t);
    let d = login_at(&right, &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");

    lose();
    let (d, logs) = login_logged(&in_1970, &u, &code, PEER, BOOTED_IN_1970);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_SYSTEM_ERR".into()),
        "{d:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("clock fault")
            && l.contains("1970-01-01 00:16:40 UTC")
            && l.contains("no store record")),
        "the clock is named: {logs:?}"
    );
    let ping = state_tool(&["ping", "--options", a]);
    assert_eq!(
        ping.status.code(),
        Some(1),
        "still no store record: {ping:?}"
    );

    // Nor can an admin on such a host recreate it by hand.
    let init = state_tool_at(BOOTED_IN_1970, &["init", "--options", a]);
    assert_eq!(init.status.code(), Some(1), "{init:?}");
    assert!(
        String::from_utf8_lossy(&init.stderr).contains("set the clock first"),
        "{init:?}"
    );
    assert_eq!(state_tool(&["ping", "--options", a]).status.code(), Some(1));

    // A host with the right clock recreates it: the code used before the loss stays
    // used (R34), and the next code works (control).
    let (d, logs) = login_logged(&right, &u, &code, PEER, t + 5);
    denied(&d);
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    let later = after_recreation(t + 5);
    let d = login_at(&right, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// How far host B's clock lags in the tests of a store recreated after a loss: more
/// than the window (three 30-s steps), less than the server's bound (a day).
const LAG: u64 = 600;

#[test]
fn a_host_ten_minutes_behind_recreates_a_lost_store_at_the_server_s_time() {
    let t = "a_host_ten_minutes_behind_recreates_a_lost_store_at_the_server_s_time";
    if !require_root(t) {
        return;
    }
    for lag in [LAG, 0] {
        let server = RedisServer::start(&ServerConfig::default());
        let tag = format!("csl{lag}");
        let a = args(&server, &tag, "");
        recreated_by_a_host_behind(&a, &tag, lag, "Redis", &|| {
            assert!(String::from_utf8_lossy(&server.raw(None, &[b"FLUSHALL"])).starts_with("+OK"));
        });
    }
}

#[test]
fn an_etcd_host_ten_minutes_behind_recreates_a_lost_store_at_the_cluster_s_time() {
    let t = "an_etcd_host_ten_minutes_behind_recreates_a_lost_store_at_the_cluster_s_time";
    if !require_root(t) {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    for lag in [LAG, 0] {
        let prefix = format!("csle{lag}/");
        let a = format!(
            "state={} etcd_plugin={} etcd_prefix={prefix} etcd_timeout=1000",
            cluster.url(),
            etcd_plugin().display(),
        );
        recreated_by_a_host_behind(&a, &format!("csle{lag}"), lag, "etcd", &|| {
            cluster.ctl(&["del", "--prefix", &prefix]);
        });
    }
}

/// Host A accepts a code at the true time; the store's data set is lost (`lose`: the
/// store record and the user's record with it); host B, whose clock lags by `lag`
/// seconds, logs in first and recreates the store record; then A's code is tried on
/// host C, whose clock is right. The record is complete since the server's clock, not
/// B's, so the code stays used (R34), and B's log names its clock and how far behind it
/// is. With `lag` 0 (the control) nothing is said about clocks. Either way the next code
/// works on C: the refusal is the floor, not a lockout. The servers keep their real
/// clocks, so the hosts' clocks are set from the real time.
fn recreated_by_a_host_behind(a: &str, tag: &str, lag: u64, backend: &str, lose: &dyn Fn()) {
    init_store(a);
    let host_a = Stack::probe("svc", a);
    let host_b = Stack::probe("svc", a);
    let host_c = Stack::probe("svc", a);
    let (u, secret) = TestUser::enrolled(tag);
    let t = now();
    let code = code_at(&secret, t);
    let (d, logs) = login_logged(&host_a, &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");

    lose();
    let b_now = now() - lag;
    let (d, b_logs) = login_logged(&host_b, &u, &code_at(&secret, b_now), PEER, b_now);
    denied(&d);
    // A's code on C, with the right clock: still used.
    let c_now = now();
    let (d, logs) = login_logged(&host_c, &u, &code, PEER, c_now);
    denied(&d);
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "refused as used before the loss: {logs:?}"
    );
    // B's log names its clock, and how far behind it is.
    let named = |l: &String| {
        l.contains(&format!(
            "recreated complete since the {backend} server's clock"
        )) && l.contains("s ahead of this host's")
    };
    if lag > 0 {
        let line = b_logs.iter().find(|l| named(l));
        let line = line.unwrap_or_else(|| panic!("B's clock is named: {b_logs:?}"));
        // The offset as measured: the lag, and the seconds the test took since.
        let offset: u64 = line
            .split("server's clock, ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("an offset in {line}"));
        assert!((lag..lag + 30).contains(&offset), "{line}");
        // B's own login fails closed, its user told until when (the floor is in its
        // future), not to wait for the next code.
        assert!(
            b_logs
                .iter()
                .any(|l| l.contains("clock: the state store was recreated")),
            "{b_logs:?}"
        );
    } else {
        assert!(!b_logs.iter().any(|l| l.contains("clock:")), "{b_logs:?}");
    }
    assert!(
        b_logs.iter().any(|l| l.contains("had no store record")),
        "B recreated it: {b_logs:?}"
    );

    // Control: a code of a step after the recreation's window logs in on C.
    let later = after_recreation(b_now);
    let (d, logs) = login_logged(&host_c, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// [`two_days_behind_after_a_loss`] on Redis. Control: a host a day behind at most
/// recreates the record at the server's time.
#[test]
fn a_host_two_days_behind_cannot_recreate_a_lost_store_and_reopen_used_codes() {
    let t = "a_host_two_days_behind_cannot_recreate_a_lost_store_and_reopen_used_codes";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "csd", "");
    two_days_behind_after_a_loss(&a, "csd", "Redis", &|| {
        assert!(String::from_utf8_lossy(&server.raw(None, &[b"FLUSHALL"])).starts_with("+OK"));
    });

    // Control: a day behind at most, the server's time is the floor.
    let b = args(&server, "csd2", "");
    let host = Stack::probe("svc", &b);
    let (v, secret_v) = TestUser::enrolled("csd2");
    let behind = now() - DAY + 600;
    let (d, logs) = login_logged(&host, &v, &code_at(&secret_v, behind), PEER, behind);
    denied(&d);
    assert!(
        logs.iter()
            .any(|l| l.contains("recreated complete since the Redis server's clock")),
        "{logs:?}"
    );
    let next = behind + 65;
    let (d, _) = login_logged(&host, &v, &code_at(&secret_v, next), PEER, next);
    denied(&d);
}

#[test]
fn an_etcd_host_two_days_behind_cannot_recreate_a_lost_store_and_reopen_used_codes() {
    let t = "an_etcd_host_two_days_behind_cannot_recreate_a_lost_store_and_reopen_used_codes";
    if !require_root(t) {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let prefix = "csde/";
    let a = format!(
        "state={} etcd_plugin={} etcd_prefix={prefix} etcd_timeout=1000",
        cluster.url(),
        etcd_plugin().display(),
    );
    two_days_behind_after_a_loss(&a, "csde", "etcd", &|| {
        cluster.ctl(&["del", "--prefix", prefix]);
    });
}

/// [`far_clock_after_a_loss`] with a host two days behind: recreating the record from
/// its clock would make the code used before the loss usable again.
fn two_days_behind_after_a_loss(a: &str, tag: &str, backend: &str, lose: &dyn Fn()) {
    far_clock_after_a_loss(a, tag, backend, lose, ClockOff::Behind(2 * DAY));
}

/// How far a host's clock is off the real time.
#[derive(Clone, Copy)]
enum ClockOff {
    Behind(u64),
    Ahead(u64),
}

/// A code used on a host with the right clock, the store's data set lost (`lose`), the
/// first login after it on a host whose clock is `off` by more than a day: the login is
/// denied as a clock fault naming both clocks, the offset and the fix, and nothing is
/// written, for a name without an account alike; `totp-state init` there refuses
/// too. A host with the right clock then recreates it and the code stays used there;
/// the next code works.
fn far_clock_after_a_loss(a: &str, tag: &str, backend: &str, lose: &dyn Fn(), off: ClockOff) {
    init_store(a);
    let right = Stack::probe("svc", a);
    let far_host = Stack::probe("svc", a);
    let (u, secret) = TestUser::enrolled(tag);
    let t = now();
    let code = code_at(&secret, t);
    let d = login_at(&right, &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");

    lose();
    let (far, side) = match off {
        ClockOff::Behind(by) => (now() - by, "behind"),
        ClockOff::Ahead(by) => (now() + by, "ahead"),
    };
    let (d, logs) = login_logged(&far_host, &u, &code_at(&secret, far), PEER, far);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_SYSTEM_ERR".into()),
        "{d:?}"
    );
    let host_clock = totp_core::utc::format_utc(far);
    assert!(
        logs.iter().any(|l| l.contains("clock fault")
            && l.contains("no store record")
            && l.contains(&format!("this host's clock says {host_clock}"))
            && l.contains(&format!("the {backend} server's"))
            && l.contains("more than 86400 s")
            && l.contains(&format!("this host's clock is {side}"))
            && l.contains("set the wrong clock right")
            && l.contains("run `totp-state init` on a host")),
        "both clocks, the offset and the fix: {logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("had no store record")),
        "nothing recreated: {logs:?}"
    );
    // A name without an account meets the same refusal, return code included, or the
    // reply would tell it from an account (R9); it recreates nothing either.
    let ghost = format!("ghost{tag}{}", std::process::id());
    let (g, glog) = capture_syslog(
        &Driver::new(&far_host, "svc", &ghost)
            .answer(&code_at(&secret, far))
            .rhost(PEER)
            .at(far),
    );
    assert_eq!(g.returned(), d.returned(), "{g:?} {glog:?}");
    assert_eq!(g.messages, d.messages, "{g:?} {d:?}");
    assert!(
        glog.iter()
            .any(|l| l.contains("clock fault") && l.contains("more than 86400 s")),
        "{glog:?}"
    );
    assert!(
        glog.iter().any(|l| l.ends_with(&format!(
            "code not verified (clock fault) for {ghost} from {PEER}"
        ))),
        "{glog:?}"
    );
    let ping = state_tool(&["ping", "--options", a]);
    assert_eq!(ping.status.code(), Some(1), "still missing: {ping:?}");
    // Nor by an admin on that host.
    let init = state_tool_at(far, &["init", "--options", a]);
    assert_eq!(init.status.code(), Some(1), "{init:?}");
    let err = String::from_utf8_lossy(&init.stderr);
    assert!(
        err.contains("clock fault") && err.contains(&host_clock) && err.contains("s apart"),
        "{init:?}"
    );
    assert_eq!(state_tool(&["ping", "--options", a]).status.code(), Some(1));

    // A host with the right clock recreates it: the code stays used; the next works.
    let at = now();
    let (d, logs) = login_logged(&right, &u, &code, PEER, at);
    denied(&d);
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    let later = after_recreation(at);
    let (d, logs) = login_logged(&right, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// A host a year ahead finds the store's data set lost: recreating the record from its
/// clock would make every host refuse every code for a year, so the login is denied as
/// a clock fault and nothing is written. The fleet's hosts with the right clock
/// recreate it at their time and keep working. Control: a host hours ahead (within the
/// day) recreates it at its own time.
#[test]
fn a_host_a_year_ahead_cannot_recreate_a_lost_store_and_lock_the_fleet_out() {
    let t = "a_host_a_year_ahead_cannot_recreate_a_lost_store_and_lock_the_fleet_out";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "csy", "");
    far_clock_after_a_loss(
        &a,
        "csy",
        "Redis",
        &|| {
            assert!(String::from_utf8_lossy(&server.raw(None, &[b"FLUSHALL"])).starts_with("+OK"));
        },
        ClockOff::Ahead(365 * DAY),
    );
    // The hosts with the right clock recreated it at their time, not a year ahead.
    let ping = state_tool(&["ping", "--options", &a]);
    assert!(
        ping.status.success() && !stdout(&ping).contains("WARNING"),
        "the floor is the right clock's: {ping:?}"
    );

    // Control: hours ahead, within the day, its own clock is the floor (and named).
    let b = args(&server, "csy2", "");
    let host = Stack::probe("svc", &b);
    let (v, secret_v) = TestUser::enrolled("csy2");
    let ahead = now() + 3 * HOUR;
    let (d, logs) = login_logged(&host, &v, &code_at(&secret_v, ahead), PEER, ahead);
    denied(&d);
    assert!(
        logs.iter()
            .any(|l| l.contains("recreated complete since this host's clock")),
        "{logs:?}"
    );
    let next = ahead + 65;
    let (d, logs) = login_logged(&host, &v, &code_at(&secret_v, next), PEER, next);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// `totp-state init` run by an admin on a host ten minutes behind takes the
/// server's time for the floor as a login does, prints it and names the clocks: the code
/// another host accepted before the loss stays refused on a host with the right clock.
/// Control: the next code logs in there.
#[test]
fn init_on_a_host_ten_minutes_behind_takes_the_server_s_time() {
    let t = "init_on_a_host_ten_minutes_behind_takes_the_server_s_time";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "csi", "");
    init_store(&a);
    let host_a = Stack::probe("svc", &a);
    let host_c = Stack::probe("svc", &a);
    let (u, secret) = TestUser::enrolled("csi");
    let t = now();
    let code = code_at(&secret, t);
    let d = login_at(&host_a, &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");

    assert!(String::from_utf8_lossy(&server.raw(None, &[b"FLUSHALL"])).starts_with("+OK"));
    let at = now() - LAG;
    let out = state_tool_at(at, &["init", "--options", &a]);
    assert!(out.status.success(), "{out:?}");
    let (d, logs) = login_logged(&host_c, &u, &code, PEER, now());
    denied(&d);
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "{logs:?}"
    );
    // What it printed: the clocks named.
    const NAMED: &str =
        "WARNING: clock: the store record was recreated complete since the Redis server's clock";
    assert!(stdout(&out).contains(NAMED), "{out:?}");
    let later = after_recreation(at);
    let d = login_at(&host_c, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// Finding: `totp-state init` on a host 12 hours ahead exited 0 after writing a store
/// record complete since its clock, so every host refused every code for 12 hours, and
/// `ping` then exited 0 too. Now init refuses past the clocks' slack and writes
/// nothing (`ping` still finds no store record). Control: init with the real clock
/// passes, and so does ping.
#[test]
fn init_on_a_host_hours_ahead_is_refused_and_writes_nothing() {
    let t = "init_on_a_host_hours_ahead_is_refused_and_writes_nothing";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = args(&server, "csa", "");
    let ahead = now() + 12 * HOUR;
    let out = state_tool_at(ahead, &["init", "--options", &a]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ahead of the server's") && err.contains("nothing was written"),
        "{out:?}"
    );
    let ping = state_tool(&["ping", "--options", &a]);
    assert_eq!(ping.status.code(), Some(1), "{ping:?}");
    assert!(
        String::from_utf8_lossy(&ping.stderr).contains("has no store record"),
        "nothing was written: {ping:?}"
    );

    let out = state_tool(&["init", "--options", &a]);
    assert!(out.status.success(), "{out:?}");
    let ping = state_tool(&["ping", "--options", &a]);
    assert!(ping.status.success(), "{ping:?}");
}
