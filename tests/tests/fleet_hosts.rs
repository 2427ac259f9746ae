//! Fleets through the real libpam: several "hosts" (separate PAM stacks, each with its
//! own local state directory) share one real `redis-server` the test starts on a random
//! loopback port. Exactly once across hosts, one guessing budget per user across hosts,
//! bounded denial when the server is paused or stopped, the opt-in fallback, a wrong
//! password, and the secret command end to end. Each fleet case also runs once on
//! local-only stacks, to show the case would have passed without the shared store.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use system_tests::fleet::{RedisServer, ServerConfig, init_store, secret_command, trusted_dir};
use system_tests::*;

/// A key prefix no other fleet of this test binary uses (a user deleted and created
/// again may get the same uid, so records must not carry over).
fn fresh_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the user was told the code was already used: a refusal by the replay mark,
/// not by any other fault of the host.
fn told_already_used(d: &Drive) -> bool {
    d.messages
        .iter()
        .any(|(_, m)| m.starts_with("that code was already used"))
}

/// `n` hosts sharing `server` under one fresh key prefix; `extra` module options on each.
fn fleet(server: &RedisServer, n: usize, extra: &str) -> Vec<Stack> {
    fleet_with_prefix(server, n, extra, &fresh_prefix())
}

fn fleet_with_prefix(server: &RedisServer, n: usize, extra: &str, prefix: &str) -> Vec<Stack> {
    let args = server.options(&format!("redis_prefix={prefix} redis_timeout=2000 {extra}"));
    // Once per prefix: a later call (another option set on the same fleet) finds it.
    if !state_tool(&["ping", "--options", &args]).status.success() {
        init_store(&args);
    }
    (0..n).map(|_| Stack::probe("svc", &args)).collect()
}

/// `n` hosts that each keep their state locally (the situation fleets fix).
fn islands(n: usize, extra: &str) -> Vec<Stack> {
    (0..n).map(|_| Stack::probe("svc", extra)).collect()
}

#[test]
fn same_code_from_32_processes_over_4_hosts_succeeds_exactly_once() {
    if !require_root("same_code_from_32_processes_over_4_hosts_succeeds_exactly_once") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    for round in 0..2 {
        let hosts = fleet(&server, 4, "throttle_after=100");
        let (u, secret) = TestUser::enrolled("fx");
        let (results, _) = same_code_at_once(&hosts, &u, &secret, 32);
        let ok = results
            .iter()
            .filter(|d| d.returned() == Returned::Success)
            .count();
        let denied = results
            .iter()
            .filter(|d| d.returned() == Returned::Failed("PAM_AUTH_ERR".into()))
            .count();
        assert_eq!((ok, denied), (1, 31), "round {round}: {results:?}");
    }
}

#[test]
fn a_code_accepted_on_host_1_is_refused_on_host_2() {
    if !require_root("a_code_accepted_on_host_1_is_refused_on_host_2") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("fr");
    let code = code_at(&secret, T0);

    let hosts = fleet(&server, 2, "");
    assert_eq!(
        login_at(&hosts[0], &u, &code, PEER, T0).returned(),
        Returned::Success
    );
    let d = login_at(&hosts[1], &u, &code, PEER, T0 + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    // Refused as a replay, not for any other fault of the second host.
    assert!(told_already_used(&d), "{d:?}");

    // Without the shared store the second host knows nothing and accepts the replay.
    let local = islands(2, "");
    let code = code_at(&secret, T0 + 60);
    assert_eq!(
        login_at(&local[0], &u, &code, PEER, T0 + 60).returned(),
        Returned::Success
    );
    assert_eq!(
        login_at(&local[1], &u, &code, PEER, T0 + 65).returned(),
        Returned::Success
    );
}

#[test]
fn the_wrong_code_budget_is_shared_across_hosts() {
    if !require_root("the_wrong_code_budget_is_shared_across_hosts") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("fb");
    let wrong = wrong_totp(&secret, T0);
    let right = code_at(&secret, T0);

    // throttle_after=3: three failures from one origin, one on each of three hosts; the
    // fourth attempt, on a fourth host and with the right code, is held back.
    let hosts = fleet(&server, 4, "throttle_after=3");
    for h in &hosts[..3] {
        let d = login_at(h, &u, &wrong, PEER, T0);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
    }
    let d = login_at(&hosts[3], &u, &right, PEER, T0 + 1);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        d.messages.iter().any(|(_, m)| m.contains("try again")),
        "throttled users are told: {d:?}"
    );

    // Per-host budgets: each host has seen one failure only, so the code works.
    let local = islands(4, "throttle_after=3");
    for h in &local[..3] {
        login_at(h, &u, &wrong, PEER, T0);
    }
    assert_eq!(
        login_at(&local[3], &u, &right, PEER, T0 + 1).returned(),
        Returned::Success
    );
}

/// A login against a server that cannot answer is denied, within the configured
/// bounds (real time: a paused server must not be met with a frozen clock).
fn denied_within_bounds(host: &Stack, u: &TestUser, secret: &str) {
    let started = Instant::now();
    let d = Driver::login(host, u, &code_at(secret, now())).run();
    assert_ne!(d.returned(), Returned::Success, "{d:?}");
    assert_ne!(d.returned(), Returned::Ignore, "{d:?}");
    // Told it is the host, not the code (an admin then takes the way in that needs no
    // code: README, "Before you enable it").
    assert!(
        d.messages
            .iter()
            .any(|(_, m)| m
                .starts_with("the code could not be checked: the login state store failed")),
        "{d:?}"
    );
    // Hang guard, not a performance goal: connect 300 ms + commands 300 ms.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_paused_or_stopped_server_denies_in_bounded_time() {
    if !require_root("a_paused_or_stopped_server_denies_in_bounded_time") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("fp");
    let args = server.options("redis_connect_timeout=300 redis_timeout=300");
    let host = Stack::probe("svc", &args);
    server.pause();
    denied_within_bounds(&host, &u, &secret);
    server.resume();
    server.stop();
    denied_within_bounds(&host, &u, &secret);
    // R9: a name without an account is told the same, and its attempt ends with the
    // same line, a host fault's, which fail2ban does not count (a ban for names
    // without an account alone would tell them from accounts).
    let ghost = format!("ghostfp{}", std::process::id());
    let (g, glog) = capture_syslog(
        &Driver::new(&host, "svc", &ghost)
            .answer(&code_at(&secret, now()))
            .rhost("192.0.2.61"),
    );
    let (d, dlog) =
        capture_syslog(&Driver::login(&host, &u, &code_at(&secret, now())).rhost("192.0.2.62"));
    assert_eq!(g.messages, d.messages, "{g:?} {d:?}");
    for (log, who, host) in [
        (&glog, ghost.as_str(), "192.0.2.61"),
        (&dlog, u.name.as_str(), "192.0.2.62"),
    ] {
        let closing = format!("code not verified (state store unusable) for {who} from {host}");
        assert!(log.iter().any(|l| l.ends_with(&closing)), "{who}: {log:#?}");
        assert!(
            !log.iter().any(|l| l.contains("(unknown user) for")),
            "{who}: {log:#?}"
        );
    }
}

#[test]
fn the_local_fallback_is_opt_in_and_logged_as_a_weakening() {
    if !require_root("the_local_fallback_is_opt_in_and_logged_as_a_weakening") {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("ff");
    let args = server.options("redis_connect_timeout=300 state_fallback=local");
    let host = Stack::probe("svc", &args);
    // Opt-in: the same store without the option denies the same code once the server is
    // down, with no weakening logged (the fallback below is the option's doing).
    let strict = Stack::probe("svc", &server.options("redis_connect_timeout=300"));
    server.stop();
    let (d, log) = login_logged(&strict, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("local store")), "{log:?}");
    let (d, log) = login_logged(&host, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("state_fallback=local") && l.contains("not refused here")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("using this host's local store")),
        "{log:?}"
    );
    // The local store has the mark now: the same code is refused on this host.
    let d = login_at(&host, &u, &code_at(&secret, T0), PEER, T0 + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
}

#[test]
fn a_wrong_redis_password_denies() {
    if !require_root("a_wrong_redis_password_denies") {
        return;
    }
    let server = RedisServer::start(&ServerConfig {
        acl_password: Some("correct"),
        ..ServerConfig::default()
    });
    let (u, secret) = TestUser::enrolled("fw");
    let dir = trusted_dir("cred");
    let cred = |pw: &str| {
        let p = dir.path().join(format!("cred-{pw}"));
        fs::write(&p, format!("username=fleet\npassword={pw}\n")).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    };
    let args = |c: &Path| server.options(&format!("redis_credentials={}", c.display()));
    let host = |c: &Path| Stack::probe("svc", &args(c));
    init_store(&args(&cred("correct")));
    let good = host(&cred("correct"));
    assert_eq!(
        login_at(&good, &u, &code_at(&secret, T0), PEER, T0).returned(),
        Returned::Success
    );
    let bad = host(&cred("wrong"));
    let (d, log) = login_logged(&bad, &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    // Denied for the password, not for the code: the server said so, and the same code
    // logs in with the right password (the denial recorded no use of it).
    assert!(
        log.iter()
            .any(|l| l.contains("Password authentication failed")),
        "{log:?}"
    );
    let d = login_at(&good, &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

#[test]
fn secrets_from_a_command_work_across_hosts() {
    if !require_root("secrets_from_a_command_work_across_hosts") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let u = TestUser::create("fc");
    let other = TestUser::create("fo");
    // No file anywhere: the secret exists only in the command's answer.
    let secret = random_secret_b32();
    assert!(!u.secret_path().exists());
    let dir = trusted_dir("cmd");
    let cmd = secret_command(dir.path(), &u.name, &totp_file(&secret));
    let extra = format!(
        "nullok secret_command={} secret_command_user=nobody",
        cmd.display()
    );
    let hosts = fleet(&server, 2, &extra);
    let code = code_at(&secret, T0);
    assert_eq!(
        login_at(&hosts[0], &u, &code, PEER, T0).returned(),
        Returned::Success
    );
    let d = login_at(&hosts[1], &u, &code, PEER, T0 + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(told_already_used(&d), "{d:?}");
    assert_eq!(
        login_at(&hosts[1], &u, &code_at(&secret, T0 + 30), PEER, T0 + 30).returned(),
        Returned::Success
    );
    // Exit status 10, no output: not enrolled, and nullok skips.
    let d = login_at(&hosts[0], &other, "123456", PEER, T0);
    assert_eq!(d.returned(), Returned::Ignore, "{d:?}");
}

#[test]
fn re_enrolment_starts_fresh_marks_fleet_wide() {
    if !require_root("re_enrolment_starts_fresh_marks_fleet_wide") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 2, "", &prefix);
    let u = TestUser::create("fe");
    let (old, new) = (random_secret_b32(), random_secret_b32());
    u.write_secret(&totp_file(&old), 0o600);
    assert_eq!(
        login_at(&hosts[0], &u, &code_at(&old, T0), PEER, T0).returned(),
        Returned::Success
    );
    // Re-enrolled in the same step: the new secret's code works on the other host, and
    // only once fleet-wide.
    u.write_secret(&totp_file(&new), 0o600);
    let d = login_at(&hosts[1], &u, &code_at(&new, T0 + 1), PEER, T0 + 1);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    let d = login_at(&hosts[0], &u, &code_at(&new, T0 + 1), PEER, T0 + 2);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(told_already_used(&d), "{d:?}");
    // The old secret restored: its used code stays used on every host.
    u.write_secret(&totp_file(&old), 0o600);
    let d = login_at(&hosts[1], &u, &code_at(&old, T0), PEER, T0 + 3);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(told_already_used(&d), "{d:?}");
    // The fleet's one store record (key and completeness), beside the user records.
    let store = format!("{prefix}store");
    assert_eq!(server.raw(None, &[b"EXISTS", store.as_bytes()]), b":1\r\n");
}

#[test]
fn scratch_codes_and_hotp_from_a_command_are_used_once_fleet_wide() {
    if !require_root("scratch_codes_and_hotp_from_a_command_are_used_once_fleet_wide") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let u = TestUser::create("fs");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd");
    let serve = |file: &str| {
        let cmd = secret_command(dir.path(), &u.name, file);
        format!(
            "secret_command={} secret_command_user=nobody",
            cmd.display()
        )
    };
    // A scratch code the served file keeps listing: once on host 0, then refused on
    // host 1 (the store recorded it for the fleet); another one still works there.
    let extra = serve(&format!("{}12345678\n87654321\n", totp_file(&secret)));
    let hosts = fleet(&server, 2, &extra);
    assert_eq!(
        login_at(&hosts[0], &u, "12345678", PEER, T0).returned(),
        Returned::Success
    );
    let d = login_at(&hosts[1], &u, "12345678", PEER, T0 + 1);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert_eq!(
        login_at(&hosts[1], &u, "87654321", PEER, T0 + 2).returned(),
        Returned::Success
    );
    // HOTP: the window follows the fleet's high-water mark, the served counter stays 1.
    let extra = serve(&format!("{secret}\n\" HOTP_COUNTER 1\n"));
    let hosts = fleet(&server, 2, &extra);
    for counter in 1..=6u64 {
        let host = &hosts[counter as usize % 2];
        let d = login_at(
            host,
            &u,
            &oathtool_hotp(&secret, counter),
            PEER,
            T0 + 10 + counter,
        );
        assert_eq!(d.returned(), Returned::Success, "counter {counter}: {d:?}");
    }
    let d = login_at(&hosts[0], &u, &oathtool_hotp(&secret, 5), PEER, T0 + 30);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    // With host-local stores, each host would accept a used code once more: refused,
    // with the reason logged (control: the same command serving TOTP only logs in).
    let scratch = serve(&format!("{}12345678\n", totp_file(&secret)));
    let island = &islands(1, &scratch)[0];
    let (d, logs) = login_logged(island, &u, &code_at(&secret, T0 + 60), None, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("shared state store")),
        "{logs:?}"
    );
    let island = &islands(1, &serve(&totp_file(&secret)))[0];
    assert_eq!(
        login_at(island, &u, &code_at(&secret, T0 + 90), PEER, T0 + 90).returned(),
        Returned::Success
    );
}

/// HOTP with a copy of the file on each host (configuration management writes the same
/// `HOTP_COUNTER 1` everywhere) and one shared store: a counter used on one host is
/// refused on the other as a reused code, and that refusal does not push the other
/// host's counter past the token, so the token's next press logs in there.
#[test]
fn hotp_with_a_file_copy_on_each_host_uses_each_counter_once_fleet_wide() {
    if !require_root("hotp_with_a_file_copy_on_each_host_uses_each_counter_once_fleet_wide") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let u = TestUser::create("fq");
    let secret = random_secret_b32();
    let prefix = fresh_prefix();
    let hosts: Vec<Stack> = ["ga_host0", "ga_host1"]
        .iter()
        .map(|copy| {
            let text = format!("{secret}\n\" HOTP_COUNTER 1\n");
            write_owned(&u.home.join(copy), text.as_bytes(), u.uid, u.gid, 0o600);
            let extra = format!("secret=${{HOME}}/{copy}");
            fleet_with_prefix(&server, 1, &extra, &prefix).remove(0)
        })
        .collect();
    let token = |counter: u64| oathtool_hotp(&secret, counter);
    let reused = |logs: &[String]| {
        logs.iter()
            .any(|l| l.contains("reused an already accepted code"))
    };

    let d = login_at(&hosts[0], &u, &token(1), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    let (d, logs) = login_logged(&hosts[1], &u, &token(1), PEER, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(reused(&logs), "{logs:?}");
    let d = login_at(&hosts[1], &u, &token(2), PEER, T0 + 120);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the next press on host 1: {d:?}"
    );
    let (d, logs) = login_logged(&hosts[0], &u, &token(2), PEER, T0 + 180);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(reused(&logs), "{logs:?}");
    let d = login_at(&hosts[0], &u, &token(3), PEER, T0 + 240);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the next press on host 0: {d:?}"
    );
}

#[test]
fn a_failing_or_untrusted_secret_command_denies() {
    if !require_root("a_failing_or_untrusted_secret_command_denies") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let u = TestUser::create("fd");
    let secret = random_secret_b32();
    let code = code_at(&secret, T0);
    let dir = trusted_dir("cmd");
    let run = |body: &str, mode: u32| {
        let path = dir.path().join("cmd");
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let extra = format!(
            // throttle_after=100: every refusal below is charged as a failed attempt, and
            // the last case must not be held back by them.
            "nullok throttle_after=100 secret_command={} secret_command_user=nobody \
             secret_command_timeout=2500",
            path.display()
        );
        login_at(&fleet(&server, 1, &extra)[0], &u, &code, PEER, T0)
    };
    let file = totp_file(&secret);
    for (name, body, mode) in [
        ("crashes", "exit 1".to_owned(), 0o755),
        ("slow", format!("sleep 5\ncat <<'EOF'\n{file}EOF"), 0o755),
        ("garbage", "echo '{\"error\": \"ldap\"}'".to_owned(), 0o755),
        ("empty", "exit 0".to_owned(), 0o755),
        ("group-writable", format!("cat <<'EOF'\n{file}EOF"), 0o775),
        (
            "not enrolled but talks",
            "echo hi; exit 10".to_owned(),
            0o755,
        ),
    ] {
        let d = run(&body, mode);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{name}: {d:?}"
        );
        assert_eq!(d.prompts, 1, "{name}: prompted like everybody else");
    }
    // The same file from a trusted, working command: accepted.
    let d = run(&format!("cat <<'EOF'\n{file}EOF"), 0o755);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

#[test]
fn totp_state_shows_and_resets_a_user_fleet_wide() {
    if !require_root("totp_state_shows_and_resets_a_user_fleet_wide") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("fz");
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 2, "", &prefix);
    let code = code_at(&secret, T0);
    assert_eq!(
        login_at(&hosts[0], &u, &code, PEER, T0).returned(),
        Returned::Success
    );

    // The same options the hosts use name the shared store.
    let options = server.options(&format!("redis_prefix={prefix}"));
    let tool = |cmd: &str| state_tool(&[cmd, "--user", &u.name, "--json", "--options", &options]);
    let shown = tool("show");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{shown:?}");
    assert!(
        text.contains(&(T0 / 30).to_string()),
        "the mark host 1 wrote: {text}"
    );

    // Failures from one origin on host 2 hold it back for the whole fleet ...
    for i in 0..3 {
        let d = login_at(&hosts[1], &u, &wrong_totp(&secret, T0), PEER, T0 + 1 + i);
        assert_eq!(d.returned(), Returned::Failed("PAM_AUTH_ERR".into()));
    }
    let next = code_at(&secret, T0 + 30);
    let d = login_at(&hosts[0], &u, &next, PEER, T0 + 30);
    assert_ne!(d.returned(), Returned::Success, "backoff first: {d:?}");

    let reset = tool("reset");
    assert!(reset.status.success(), "{reset:?}");
    let said = String::from_utf8_lossy(&reset.stdout);
    assert!(said.contains("\"record\":\"lifted\""), "{said}");
    // Reset fleet-wide: the backoff ends on host 1, and the code host 1 consumed stays
    // used on host 2 (R34).
    assert_eq!(
        login_at(&hosts[1], &u, &code, PEER, T0 + 31).returned(),
        Returned::Failed("PAM_AUTH_ERR".into())
    );
    assert_eq!(
        login_at(&hosts[0], &u, &next, PEER, T0 + 32).returned(),
        Returned::Success
    );

    // Listing every record is a directory operation; the shared store needs --user.
    let all = state_tool(&["show", "--options", &options]);
    assert!(!all.status.success());
}

/// The severity of a syslog datagram (`<PRI>…`), if it has one.
fn severity(datagram: &str) -> Option<i32> {
    let pri: i32 = datagram
        .strip_prefix('<')?
        .split_once('>')?
        .0
        .parse()
        .ok()?;
    Some(pri & libc::LOG_PRIMASK)
}

/// The row "server down" of fleet.md's fault table, both columns. While the server is
/// down a login on another host is denied within the connect bound, its cause logged
/// once at error level and no "invalid verification code" line (no code was compared).
/// Once the server is back (with its data: `appendfsync always`), the user's record is
/// back and the code used before it went down is refused on every host, "already used"
/// logged. The restarted server is a new instance, so the first login after it also
/// raises the store's floor (R34: it cannot tell this restart from one that reloaded an
/// older snapshot, `fleet_rollback.rs`); a code after the floor logs in (control).
#[test]
fn a_code_used_before_the_server_went_down_is_refused_everywhere_once_it_is_back() {
    let t = "a_code_used_before_the_server_went_down_is_refused_everywhere_once_it_is_back";
    if !require_root(t) {
        return;
    }
    let mut server = RedisServer::start(&ServerConfig {
        persistent: true,
        ..ServerConfig::default()
    });
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 3, "redis_connect_timeout=300", &prefix);
    let (u, secret) = TestUser::enrolled("fk");
    // The real time: after the restart a login recreates the store record, which needs
    // this host's clock and the server's within a day of each other.
    let start = now();
    let code = code_at(&secret, start);
    assert_eq!(
        login_at(&hosts[0], &u, &code, PEER, start).returned(),
        Returned::Success
    );
    let key = format!("{prefix}user:{}", u.name);
    let record = |server: &RedisServer| server.raw(None, &[b"HMGET", key.as_bytes(), b"v", b"r"]);
    let before = record(&server);

    server.stop();
    let started = Instant::now();
    let (d, lines) = login_logged(
        &hosts[1],
        &u,
        &code_at(&secret, start + 30),
        PEER,
        start + 30,
    );
    let took = started.elapsed();
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    // Hang guard (connect 300 ms), not a performance goal.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| severity(l) == Some(libc::LOG_ERR))
        .collect();
    assert_eq!(errors.len(), 1, "the cause once, at error level: {lines:?}");
    assert!(
        errors[0].contains("Connection refused"),
        "it names the cause: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("invalid verification code")),
        "no code was compared: {lines:?}"
    );

    server.restart();
    assert_eq!(
        record(&server),
        before,
        "the record came back with the server"
    );
    for h in &hosts[1..] {
        let (d, lines) = login_logged(h, &u, &code, PEER, start + 5);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("code already used")),
            "refused as used: {lines:?}"
        );
    }
    // Control: a code after the floor the restart raised logs in.
    let later = system_tests::fleet::after_recreation(start + 5);
    let (d, lines) = login_logged(&hosts[2], &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
}

/// fleet.md, "Expiry (TTL)", through libpam: a login's write gives the user's record
/// the `redis_ttl=` lifetime (90 days by default); with `max_failures=` (an expiring
/// record would re-enable a locked account) and with `redis_ttl=0` it never expires.
#[test]
fn records_get_the_ttl_except_with_max_failures_or_ttl_0_through_libpam() {
    let t = "records_get_the_ttl_except_with_max_failures_or_ttl_0_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("fl");
    let wrong = wrong_totp(&secret, T0);
    // Module options, and the TTL range the record must then have (-1: none).
    let cases: [(&str, i64, i64); 4] = [
        ("", 7_775_000, 7_776_000),
        ("max_failures=50", -1, -1),
        ("redis_ttl=272460", 272_000, 272_460),
        ("redis_ttl=0", -1, -1),
    ];
    for (extra, low, high) in cases {
        // A record of its own for each: a write never shortens the life of one written
        // before (`a_write_never_shortens_a_record_s_life_through_libpam`).
        let prefix = fresh_prefix();
        let host =
            &fleet_with_prefix(&server, 1, &format!("throttle_after=100 {extra}"), &prefix)[0];
        let d = login_at(host, &u, &wrong, PEER, T0);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
        let got = ttl_of(&server, &format!("{prefix}user:{}", u.name));
        assert!((low..=high).contains(&got), "{extra:?}: TTL {got}");
    }
}

/// A `redis_ttl=` shorter than a record may still protect something (R3, R12, R14): with
/// `redis_ttl=3` a used code's record expired 3 s after the login, and the same code then
/// logged in again (the expired record read as no record, no mark). Such a value is now
/// raised to the minimum, said with `debug`, never refused: 86400 was the documented
/// example, and a refusal would deny every login after an upgrade. The record gets the
/// minimum and the replay after the 3 s is refused as used; one second short of the
/// minimum is raised too, the minimum itself is used as it is and says nothing.
/// Control: the default TTL gives the record 90 days.
#[test]
fn a_redis_ttl_shorter_than_a_record_protects_is_raised_through_libpam() {
    let t = "a_redis_ttl_shorter_than_a_record_protects_is_raised_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("ft");
    let raised = |logs: &[String]| {
        logs.iter().any(|l| {
            l.contains("redis_ttl= is shorter than a record may still protect")
                && l.contains("272460 seconds is used instead")
        })
    };
    // Control: the default TTL.
    let prefix = fresh_prefix();
    let host = &fleet_with_prefix(&server, 1, "debug", &prefix)[0];
    let (d, logs) = login_logged(host, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(!raised(&logs), "{logs:?}");
    let got = ttl_of(&server, &format!("{prefix}user:{}", u.name));
    assert!((7_775_000..=7_776_000).contains(&got), "default: TTL {got}");

    for (short, at) in [("redis_ttl=3", T0 + 30), ("redis_ttl=272459", T0 + 60)] {
        // A store of its own, so that the record is this line's first write.
        let own = fresh_prefix();
        let host = &fleet_with_prefix(&server, 1, &format!("debug {short}"), &own)[0];
        let code = code_at(&secret, at);
        let (d, logs) = login_logged(host, &u, &code, PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{short}: {d:?} {logs:?}");
        assert!(raised(&logs), "{short}: {logs:?}");
        let got = ttl_of(&server, &format!("{own}user:{}", u.name));
        assert!((272_000..=272_460).contains(&got), "{short}: TTL {got}");
        if short == "redis_ttl=3" {
            // Past the TTL asked for: the record is still there, and so is the mark.
            std::thread::sleep(Duration::from_secs(4));
        }
        let (d, logs) = login_logged(host, &u, &code, PEER, at + 5);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{short}: a replay: {d:?}"
        );
        assert!(
            logs.iter().any(|l| l.contains("code already used")),
            "{short}: {logs:?}"
        );
    }

    // The minimum is used as it is, and says nothing.
    let own = fresh_prefix();
    let host = &fleet_with_prefix(&server, 1, "debug redis_ttl=272460", &own)[0];
    let (d, logs) = login_logged(host, &u, &code_at(&secret, T0 + 90), PEER, T0 + 90);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(!raised(&logs), "{logs:?}");
    let got = ttl_of(&server, &format!("{own}user:{}", u.name));
    assert!((272_000..=272_460).contains(&got), "minimum: TTL {got}");
}

/// `TTL key` on `server`: seconds left, -1 without a TTL, -2 without the key.
fn ttl_of(server: &RedisServer, key: &str) -> i64 {
    let r = server.raw(None, &[b"TTL", key.as_bytes()]);
    String::from_utf8_lossy(&r)
        .trim()
        .trim_start_matches(':')
        .parse::<i64>()
        .expect("TTL reply")
}

/// fleet.md, "Expiry (TTL)": a write never shortens a record's life, so hosts whose
/// options differ cannot undo each other's protection. Host B (`max_failures=3`) locks
/// the user, its record never expiring; one failure on host A (default options, 90
/// days) used to put A's TTL on that record, and once it expired B's lockout and
/// ceiling were gone with nobody's reset. Now the record stays without a TTL and B
/// still refuses the right code. Control: a record written only by A gets A's 90 days.
#[test]
fn a_host_with_default_options_puts_no_ttl_on_a_max_failures_record_through_libpam() {
    let t = "a_host_with_default_options_puts_no_ttl_on_a_max_failures_record_through_libpam";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = fresh_prefix();
    let b = &fleet_with_prefix(&server, 1, "max_failures=3 throttle_after=100", &prefix)[0];
    let a = &fleet_with_prefix(&server, 1, "throttle_after=100", &prefix)[0];
    let (u, secret) = TestUser::enrolled("fy");
    let key = format!("{prefix}user:{}", u.name);
    let wrong = wrong_totp(&secret, T0);
    for i in 0..3 {
        let d = login_at(b, &u, &wrong, PEER, T0 + i);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
    }
    assert_eq!(ttl_of(&server, &key), -1, "B's record never expires");
    let version = || server.raw(None, &[b"HGET", key.as_bytes(), b"v"]);
    let before = version();

    let d = login_at(a, &u, &wrong, PEER, T0 + 10);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert_ne!(version(), before, "A wrote the record");
    assert_eq!(ttl_of(&server, &key), -1, "A's write put no TTL on it");

    let (d, logs) = login_logged(b, &u, &code_at(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("disabled after too many failures")),
        "B still refuses by the hard cap: {logs:?}"
    );

    // Control: A alone gives its records its TTL.
    let (c, secret_c) = TestUser::enrolled("fv");
    let d = login_at(a, &c, &wrong_totp(&secret_c, T0), PEER, T0);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    let got = ttl_of(&server, &format!("{prefix}user:{}", c.name));
    assert!(
        (7_775_000..=7_776_000).contains(&got),
        "A's own record: TTL {got}"
    );
}

/// A longer TTL already on a record is kept by a host whose (valid) `redis_ttl=` is
/// shorter: a host with 180 days writes first, then one with the default 90 days and
/// one with the minimum each write a failure, and the record keeps 180 days. Control:
/// the other way round a write still lengthens it (90 days, then 180 days).
#[test]
fn a_longer_ttl_is_not_shortened_by_a_host_with_a_shorter_one_through_libpam() {
    let t = "a_longer_ttl_is_not_shortened_by_a_host_with_a_shorter_one_through_libpam";
    if !require_root(t) {
        return;
    }
    const LONG: &str = "throttle_after=100 redis_ttl=15552000";
    let server = RedisServer::start(&ServerConfig::default());
    let (u, secret) = TestUser::enrolled("fg");
    let wrong = wrong_totp(&secret, T0);
    let fail = |host: &Stack, at: u64| {
        let d = login_at(host, &u, &wrong, PEER, at);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{d:?}"
        );
    };

    let prefix = fresh_prefix();
    let key = format!("{prefix}user:{}", u.name);
    let long = &fleet_with_prefix(&server, 1, LONG, &prefix)[0];
    let default = &fleet_with_prefix(&server, 1, "throttle_after=100", &prefix)[0];
    let minimum = &fleet_with_prefix(&server, 1, "throttle_after=100 redis_ttl=272460", &prefix)[0];
    fail(long, T0);
    let got = ttl_of(&server, &key);
    assert!(
        (15_551_000..=15_552_000).contains(&got),
        "180 days: TTL {got}"
    );
    let version = || server.raw(None, &[b"HGET", key.as_bytes(), b"v"]);
    for (host, at) in [(default, T0 + 1), (minimum, T0 + 2)] {
        let before = version();
        fail(host, at);
        assert_ne!(version(), before, "the shorter host wrote the record");
        let got = ttl_of(&server, &key);
        assert!((15_551_000..=15_552_000).contains(&got), "kept: TTL {got}");
    }

    // Control: a longer TTL still replaces a shorter one.
    let prefix = fresh_prefix();
    let key = format!("{prefix}user:{}", u.name);
    let default = &fleet_with_prefix(&server, 1, "throttle_after=100", &prefix)[0];
    let long = &fleet_with_prefix(&server, 1, LONG, &prefix)[0];
    fail(default, T0);
    let got = ttl_of(&server, &key);
    assert!((7_775_000..=7_776_000).contains(&got), "90 days: TTL {got}");
    fail(long, T0 + 1);
    let got = ttl_of(&server, &key);
    assert!(
        (15_551_000..=15_552_000).contains(&got),
        "lengthened: TTL {got}"
    );
}

/// `totp-state show` of a shared store's unusable record suggests the reset that
/// clears it: on the same store. Run through a shell as printed, it resets the fleet's
/// record and the user logs in again. Before, it suggested `totp-state reset --user
/// UID`, which resets the default local directory and leaves the fleet's record.
#[test]
fn the_reset_show_suggests_for_an_unusable_shared_record_clears_it() {
    let t = "the_reset_show_suggests_for_an_unusable_shared_record_clears_it";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 1, "", &prefix);
    let options = server.options(&format!("redis_prefix={prefix} redis_timeout=2000"));
    let (u, secret) = TestUser::enrolled("fu");
    let key = format!("{prefix}user:{}", u.name);
    let r = server.raw(
        None,
        &[b"HSET", key.as_bytes(), b"v", b"3", b"r", b"garbage"],
    );
    assert!(r.starts_with(b":"), "{}", String::from_utf8_lossy(&r));
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );

    let shown = state_tool(&["show", "--user", &u.name, "--options", &options]);
    assert_eq!(shown.status.code(), Some(1), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    let suggested = text
        .split('`')
        .nth(1)
        .filter(|c| c.starts_with("totp-state reset "))
        .unwrap_or_else(|| panic!("no reset suggested: {text}"));
    assert!(suggested.contains(&options), "{suggested}");
    let tool = built().state_tool.display().to_string();
    let command = suggested.replacen("totp-state", &tool, 1);
    let out = std::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{command}: {out:?}");
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// The module's own log line for an unusable shared record names the reset that
/// clears it: through the PAM service's lines (`--service`), which lead to the fleet's
/// store. Run as logged (with `--pam-dir` standing in for /etc/pam.d), it resets the
/// fleet's record and the user logs in again. A plain `reset --user` would have reset
/// the default local directory.
#[test]
fn the_reset_the_module_logs_for_an_unusable_shared_record_clears_it() {
    let t = "the_reset_the_module_logs_for_an_unusable_shared_record_clears_it";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 1, "", &prefix);
    let (u, secret) = TestUser::enrolled("fm");
    let key = format!("{prefix}user:{}", u.name);
    let r = server.raw(
        None,
        &[b"HSET", key.as_bytes(), b"v", b"3", b"r", b"garbage"],
    );
    assert!(r.starts_with(b":"), "{}", String::from_utf8_lossy(&r));
    let (d, lines) = login_logged(&hosts[0], &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    let suggested = lines
        .iter()
        .find_map(|l| {
            l.split('`')
                .nth(1)
                .filter(|c| c.starts_with("totp-state reset "))
        })
        .unwrap_or_else(|| panic!("no reset logged: {lines:?}"));
    assert_eq!(
        suggested,
        format!("totp-state reset --user {} --service svc", u.name),
        "{lines:?}"
    );
    let mut args: Vec<&str> = suggested.split(' ').skip(1).collect();
    let pam_dir = hosts[0].path().to_string_lossy().into_owned();
    args.extend(["--pam-dir", &pam_dir]);
    let out = state_tool(&args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// A record too large for pam_totp on a real server (planted: a host's root can call the
/// compare-and-set function with any bytes) is the record's fault, not the server's:
/// the login is denied with the record named unusable and its size (before, "state
/// store unavailable": the reply was taken for a broken server's, the connection
/// dropped), and the reset the log suggests deletes it (before, the reset failed on the
/// same "unavailable" and only `redis-cli` could clear it), after which the user logs
/// in again. Control: the same user logs in before the plant.
#[test]
fn an_oversized_record_is_unusable_not_an_outage_and_its_reset_clears_it() {
    let t = "an_oversized_record_is_unusable_not_an_outage_and_its_reset_clears_it";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 1, "", &prefix);
    let (u, secret) = TestUser::enrolled("fh");
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?}");

    let key = format!("{prefix}user:{}", u.name);
    let huge = vec![b'x'; 9000];
    let r = server.raw(None, &[b"HSET", key.as_bytes(), b"r", &huge]);
    assert!(r.starts_with(b":0"), "{}", String::from_utf8_lossy(&r));
    let (d, lines) = login_logged(&hosts[0], &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {lines:?}"
    );
    let said = |needles: &[&str]| {
        lines
            .iter()
            .any(|l| needles.iter().all(|n| syslog_message(l).contains(n)))
    };
    assert!(
        said(&["state record of", &u.name, "unusable", "9000 bytes"]),
        "{lines:?}"
    );
    assert!(!said(&["unavailable"]), "{lines:?}");
    let suggested = lines
        .iter()
        .find_map(|l| {
            l.split('`')
                .nth(1)
                .filter(|c| c.starts_with("totp-state reset "))
        })
        .unwrap_or_else(|| panic!("no reset logged: {lines:?}"));
    let mut args: Vec<&str> = suggested.split(' ').skip(1).collect();
    let pam_dir = hosts[0].path().to_string_lossy().into_owned();
    args.extend(["--pam-dir", &pam_dir]);
    let out = state_tool(&args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    let gone = server.raw(None, &[b"EXISTS", key.as_bytes()]);
    assert!(
        gone.starts_with(b":0"),
        "{}",
        String::from_utf8_lossy(&gone)
    );
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// A record whose version is not in the form the compare-and-set writes and compares
/// (`01` for 1, a leading zero: planted by hand, or by another tool) is unusable, not an endless
/// conflict: before, it was read as version 1, every write's comparison with "1" failed,
/// the login retried until its bound and logged "state store unavailable … too many
/// concurrent updates", and `totp-state reset` failed the same way. Now the login logs the
/// record unusable and the reset deletes it. Control: the same record with its version
/// as written logs in.
#[test]
fn a_record_whose_version_is_not_canonical_is_unusable_and_its_reset_clears_it() {
    let t = "a_record_whose_version_is_not_canonical_is_unusable_and_its_reset_clears_it";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = fresh_prefix();
    let hosts = fleet_with_prefix(&server, 1, "", &prefix);
    let (u, secret) = TestUser::enrolled("fi");
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?}");
    let key = format!("{prefix}user:{}", u.name);
    let v =
        String::from_utf8_lossy(&server.raw(None, &[b"HGET", key.as_bytes(), b"v"])).into_owned();
    let written = v
        .strip_prefix('$')
        .and_then(|r| r.split('\n').nth(1))
        .map(str::trim_end)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("a version: {v}"))
        .to_owned();

    // The version as written, with a leading zero.
    let planted = format!("0{written}");
    let r = server.raw(None, &[b"HSET", key.as_bytes(), b"v", planted.as_bytes()]);
    assert!(r.starts_with(b":0"), "{}", String::from_utf8_lossy(&r));
    let (d, lines) = login_logged(&hosts[0], &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {lines:?}"
    );
    let said = |needles: &[&str]| {
        lines
            .iter()
            .any(|l| needles.iter().all(|n| syslog_message(l).contains(n)))
    };
    assert!(
        said(&[
            "state record of",
            &u.name,
            "unusable",
            "not a positive number"
        ]),
        "{lines:?}"
    );
    assert!(!said(&["unavailable"]), "{lines:?}");
    let out = state_tool(&[
        "reset",
        "--user",
        &u.name,
        "--service",
        "svc",
        "--pam-dir",
        &hosts[0].path().to_string_lossy(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let gone = server.raw(None, &[b"EXISTS", key.as_bytes()]);
    assert!(
        gone.starts_with(b":0"),
        "{}",
        String::from_utf8_lossy(&gone)
    );
    let d = login_at(&hosts[0], &u, &code_at(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}
