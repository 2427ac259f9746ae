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
