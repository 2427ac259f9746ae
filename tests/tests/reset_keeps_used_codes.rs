//! `totp-state reset` lifts a lockout and keeps what was used (R34), through the real
//! CLI and the real libpam: a scratch code used before a `max_failures=` lockout stays
//! refused after the reset that ends the lockout, on a shared store (Redis, etcd) from
//! another host, and on the local store. Each case shows the lockout first (a right
//! code refused, the user told why) and its end after the reset (the next right code
//! logs in); an unused scratch code still logs in, so the refusal is the mark's.
//!
//! The files keep listing the used scratch code, as a `secret_command=` serves the same
//! file every time, or a secret file restored from a backup lists it again: only the
//! state store says it was used, and a reset that forgot the record reopened it.
//!
//! The same for a TOTP code of a phone ahead of the clock: its replay mark is as far
//! ahead as the phone, and a reset keeps every mark a login still honours.

use std::process::Output;

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{RedisServer, ServerConfig, init_store, secret_command, trusted_dir};
use system_tests::*;

const USED: &str = "12345678";
const UNUSED: &str = "87654321";
/// Where the failing attempts come from: three origins, so no origin's backoff (after
/// `throttle_after=3`) refuses the logins this test makes before the hard cap does.
const GUESSERS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
const DISABLED: &str =
    "too many failed codes; the second factor is disabled until an administrator resets it";

fn denied(d: &Drive) -> bool {
    d.returned() == Returned::Failed("PAM_AUTH_ERR".into())
}

fn told_disabled(d: &Drive) -> bool {
    d.messages.iter().any(|(_, m)| m == DISABLED)
}

/// What `totp-state reset` printed says the marks were kept, and `show --json` of the
/// record then finds one used scratch code and no failures.
fn reset_keeps_the_marks(reset: Output, show: impl Fn() -> Output) {
    assert!(reset.status.success(), "totp-state reset: {reset:?}");
    let said = String::from_utf8_lossy(&reset.stdout);
    assert!(
        said.contains("throttling and lockout cleared; used codes stay used"),
        "{said}"
    );
    let shown = show();
    assert!(shown.status.success(), "totp-state show: {shown:?}");
    let json = String::from_utf8_lossy(&shown.stdout);
    assert!(
        json.contains("\"used_scratch_codes\":1") && json.contains("\"consecutive_failures\":0"),
        "{json}"
    );
}

/// The shared-store case on `args` (a fleet's module options, store initialised): the
/// scratch code used on host 0, the lockout on host 1, the reset, then host 1 lets the
/// next right code in and refuses the used scratch code.
fn shared_store_case(args: &str, tag: &str) {
    let u = TestUser::create(tag);
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd");
    let served = format!("{}{USED}\n{UNUSED}\n", totp_file(&secret));
    let cmd = secret_command(dir.path(), &u.name, &served);
    let module = format!(
        "{args} max_failures=3 secret_command={} secret_command_user=nobody",
        cmd.display()
    );
    let hosts: Vec<Stack> = (0..2).map(|_| Stack::probe("svc", &module)).collect();

    let d = login_at(&hosts[0], &u, USED, PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "the scratch code: {d:?}");
    for (i, peer) in GUESSERS.iter().enumerate() {
        let d = login_at(
            &hosts[1],
            &u,
            &wrong_totp(&secret, T0),
            *peer,
            T0 + 1 + i as u64,
        );
        assert!(denied(&d), "wrong code {i}: {d:?}");
    }
    let d = login_at(&hosts[1], &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert!(
        denied(&d) && told_disabled(&d),
        "locked out: a right code refused: {d:?}"
    );

    let tool = |cmd: &str| state_tool(&[cmd, "--user", &u.name, "--options", &module]);
    let show = || state_tool(&["show", "--json", "--user", &u.name, "--options", &module]);
    reset_keeps_the_marks(tool("reset"), show);

    let d = login_at(&hosts[1], &u, &code_at(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the lockout is lifted: {d:?}"
    );
    let d = login_at(&hosts[1], &u, USED, PEER, T0 + 61);
    assert!(
        denied(&d) && !told_disabled(&d),
        "the used scratch code stays used on the other host: {d:?}"
    );
    let d = login_at(&hosts[1], &u, UNUSED, PEER, T0 + 62);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control: an unused one: {d:?}"
    );
}

#[test]
fn a_reset_on_redis_lifts_the_lockout_and_keeps_a_used_scratch_code_used() {
    let t = "a_reset_on_redis_lifts_the_lockout_and_keeps_a_used_scratch_code_used";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=rk: redis_timeout=2000");
    init_store(&args);
    shared_store_case(&args, "rr");
}

#[test]
fn a_reset_on_etcd_lifts_the_lockout_and_keeps_a_used_scratch_code_used() {
    let t = "a_reset_on_etcd_lifts_the_lockout_and_keeps_a_used_scratch_code_used";
    if !require_root(t) {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let args = format!(
        "state={} etcd_plugin={} etcd_prefix=rk/ etcd_timeout=2000",
        cluster.url(),
        etcd_plugin().display(),
    );
    init_store(&args);
    shared_store_case(&args, "re");
}

/// The local store: the module takes the used scratch code out of the file, and a
/// backup restored over the file lists it again; the store's mark alone refuses it.
#[test]
fn a_reset_of_the_local_store_lifts_the_lockout_and_keeps_a_used_scratch_code_used() {
    let t = "a_reset_of_the_local_store_lifts_the_lockout_and_keeps_a_used_scratch_code_used";
    if !require_root(t) {
        return;
    }
    let u = TestUser::create("rl");
    let secret = random_secret_b32();
    let backup = format!("{}{USED}\n{UNUSED}\n", totp_file(&secret));
    u.write_secret(&backup, 0o600);
    let stack = Stack::probe("svc", "max_failures=3");

    let d = login_at(&stack, &u, USED, PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "the scratch code: {d:?}");
    u.write_secret(&backup, 0o600);
    for (i, peer) in GUESSERS.iter().enumerate() {
        let d = login_at(
            &stack,
            &u,
            &wrong_totp(&secret, T0),
            *peer,
            T0 + 1 + i as u64,
        );
        assert!(denied(&d), "wrong code {i}: {d:?}");
    }
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), PEER, T0 + 30);
    assert!(
        denied(&d) && told_disabled(&d),
        "locked out: a right code refused: {d:?}"
    );

    let show = || stack.state_tool(&["show", "--json", "--user", &u.name]);
    reset_keeps_the_marks(stack.state_tool(&["reset", "--user", &u.name]), show);

    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the lockout is lifted: {d:?}"
    );
    let d = login_at(&stack, &u, USED, PEER, T0 + 61);
    assert!(
        denied(&d) && !told_disabled(&d),
        "the used scratch code stays used: {d:?}"
    );
    let d = login_at(&stack, &u, UNUSED, PEER, T0 + 62);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control: an unused one: {d:?}"
    );
}

/// `totp-state reset --user` at `at` (its clock frozen there) on `stack`'s state
/// directory, with `--json`: whether it lowered the TOTP mark.
fn reset_at(stack: &Stack, u: &TestUser, at: u64) -> bool {
    let out = output_guarded(
        std::process::Command::new(&built().state_tool)
            .args(["reset", "--json", "--user", &u.name, "--state-dir"])
            .arg(stack.state_dir())
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(at)),
        Input::Null,
    );
    assert!(out.status.success(), "totp-state reset: {out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("\"marks_kept\":true"), "{said}");
    said.contains("\"totp_mark_lowered\":true")
}

/// A phone 20 steps ahead of the clock (`TIME_SKEW 20`, as `totp-enroll resync` writes
/// it) logs in; an admin's reset 20 s later (to lift a backoff) keeps the replay mark,
/// which is 10 minutes ahead, so the code just typed (phished, shoulder-surfed) is
/// still refused, through libpam and the real CLI. A reset lowered every mark more than
/// a minute ahead, and the same code logged in again. Controls: the phone's next code
/// logs in; a mark beyond anything a login accepts (a login while the clock said 2100)
/// is still lowered by the reset, and the user logs in after it.
#[test]
fn a_reset_keeps_the_mark_of_a_phone_ahead_of_the_clock() {
    let t = "a_reset_keeps_the_mark_of_a_phone_ahead_of_the_clock";
    if !require_root(t) {
        return;
    }
    let u = TestUser::create("rs");
    let secret = random_secret_b32();
    u.write_secret(&format!("{secret}\n\" TIME_SKEW 20\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::probe("svc", "");
    let phone = |at: u64| code_at(&secret, at + 600);

    let typed = phone(T0);
    let d = login_at(&stack, &u, &typed, PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "the phone's code: {d:?}");
    let d = login_at(&stack, &u, &typed, PEER, T0 + 10);
    assert!(denied(&d), "control: a replay before the reset: {d:?}");

    assert!(
        !reset_at(&stack, &u, T0 + 20),
        "the mark is one a login honours"
    );
    let d = login_at(&stack, &u, &typed, PEER, T0 + 20);
    assert!(denied(&d), "the same code after the reset: {d:?}");
    let d = login_at(&stack, &u, &phone(T0 + 30), PEER, T0 + 30);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control: the phone's next code: {d:?}"
    );

    // Control: a clock that said 2100 for one login left a mark no login accepts.
    let future = 4_102_444_800 + 15;
    let d = login_at(&stack, &u, &phone(future), PEER, future);
    assert_eq!(d.returned(), Returned::Success, "the login in 2100: {d:?}");
    let d = login_at(&stack, &u, &phone(T0 + 60), PEER, T0 + 60);
    assert!(
        d.returned() != Returned::Success && d.returned() != Returned::Ignore,
        "a clock fault: {d:?}"
    );
    assert!(reset_at(&stack, &u, T0 + 60), "that mark is lowered");
    let d = login_at(&stack, &u, &phone(T0 + 150), PEER, T0 + 150);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "after the reset, the next code: {d:?}"
    );
}

/// The same on Redis, where the reset's clock is the later of the admin host's and the
/// server's: at the real time, so the server's clock does not hide the lowering. A
/// phone 20 steps ahead logs in, the admin resets the user, and the code just typed is
/// still refused; the phone's next code logs in.
#[test]
fn a_reset_on_redis_keeps_the_mark_of_a_phone_ahead_of_the_clock() {
    let t = "a_reset_on_redis_keeps_the_mark_of_a_phone_ahead_of_the_clock";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=rq: redis_timeout=2000");
    init_store(&args);
    let u = TestUser::create("rq");
    let secret = random_secret_b32();
    u.write_secret(&format!("{secret}\n\" TIME_SKEW 20\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::probe("svc", &args);
    let phone = |at: u64| code_at(&secret, at + 600);
    let at = now();

    let typed = phone(at);
    let d = login_at(&stack, &u, &typed, PEER, at);
    assert_eq!(d.returned(), Returned::Success, "the phone's code: {d:?}");
    let out = state_tool(&["reset", "--json", "--user", &u.name, "--options", &args]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("\"totp_mark_lowered\":false"), "{said}");
    let d = login_at(&stack, &u, &typed, PEER, at + 20);
    assert!(denied(&d), "the same code after the reset: {d:?}");
    let d = login_at(&stack, &u, &phone(at + 30), PEER, at + 30);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control: the phone's next code: {d:?}"
    );
}

/// R34 under a race: resets run back to back, from before 32 logins start at one
/// instant until after they end (half the right code, half a wrong one, whose failures
/// give every reset something to write), and each reset rewrites the record under the
/// lock the logins take. The right code is accepted exactly once, and refused after;
/// the replay mark is its step. A reset that wrote back a record read before a login's
/// write would reopen the code (two successes) or drop the mark.
#[test]
fn resets_racing_logins_never_reopen_the_code_they_used() {
    if !require_root("resets_racing_logins_never_reopen_the_code_they_used") {
        return;
    }
    let u = TestUser::create("rz");
    let stack = Stack::probe(
        "svc",
        "lock_timeout=5000 throttle_after=100 ceiling_burst=1000",
    );
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    let start = start_time();
    let code = code_at(&secret, start / 1000);
    let wrong = wrong_totp(&secret, start / 1000);
    // A record to reset from the start: one failure.
    let d = Driver::login(&stack, &u, &wrong).run();
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (results, resets) = std::thread::scope(|s| {
        let resetter = s.spawn(|| {
            let mut runs = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                runs.push(stack.state_tool(&["reset", "--user", &u.name]));
            }
            runs
        });
        let drivers = (0..32)
            .map(|i| {
                let answer = if i % 2 == 0 { &code } else { &wrong };
                Driver::login(&stack, &u, answer).start_at(start)
            })
            .collect();
        let results = spawn_all(drivers);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (results, resetter.join().expect("reset thread"))
    });
    assert!(!resets.is_empty());
    for r in &resets {
        assert_eq!(r.status.code(), Some(0), "{r:?}");
    }
    let ok = results
        .iter()
        .filter(|d| d.module_code() == "PAM_SUCCESS")
        .count();
    assert_eq!(ok, 1, "{results:?}");
    let step = start / 1000 / 30;
    assert_eq!(stored_last_step(&stack, u.uid), Some(step));
    // After the race: one more reset, and the code is still used.
    let r = stack.state_tool(&["reset", "--user", &u.name]);
    assert_eq!(r.status.code(), Some(0), "{r:?}");
    let d = Driver::login(&stack, &u, &code).run();
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "the used code stays used: {d:?}"
    );
    // Control: the next step's code logs in.
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, (step + 1) * 30),
        None,
        (step + 1) * 30,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}
