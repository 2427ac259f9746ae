//! GA's `user=` with PAM names the name service does not know (OpenVPN, FreeRADIUS: VPN
//! users who are not system accounts, one service account owning every secret file):
//! the validated PAM name selects the file, as in GA, and a name with a usable file gets
//! a state record of its own, so its code logs in, a replay is refused and wrong codes
//! are throttled; a name without a file is still prompted, denied and gets no record.

use std::collections::BTreeSet;
use std::process::Command;

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;
use totp_core::ledger::{NAMED_RECORD_UIDS, STAND_IN_UIDS};

fn run(stack: &Stack, user: &str, answer: &str, at: u64) -> Drive {
    Driver::new(stack, "svc", user).answer(answer).at(at).run()
}

/// Whether the name service knows `name` (`getent` exits 2 for "not found").
fn known_to_nss(name: &str) -> bool {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .expect("getent");
    out.status.code() != Some(2)
}

/// A stack whose secret files are `<service account's home>/${USER}`, owned by it.
fn service_stack(owner: &TestUser) -> Stack {
    Stack::probe(
        "svc",
        &format!(
            "user={} secret={}/${{USER}}",
            owner.name,
            owner.home.display()
        ),
    )
}

/// Record names (uids) in a listing, with the other files (the store's key) left out.
fn records(listing: &BTreeSet<String>) -> BTreeSet<u32> {
    listing.iter().filter_map(|n| n.parse().ok()).collect()
}

#[test]
fn a_name_without_an_account_but_with_a_file_logs_in_under_user() {
    if !require_root("a_name_without_an_account_but_with_a_file_logs_in_under_user") {
        return;
    }
    let owner = TestUser::create("gsa");
    let vpn = format!("vpnuser{}", std::process::id());
    let nofile = format!("vpnnofile{}", std::process::id());
    assert!(
        !known_to_nss(&vpn) && !known_to_nss(&nofile),
        "test names taken"
    );
    let secret = random_secret_b32();
    write_owned(
        &owner.home.join(&vpn),
        totp_file(&secret).as_bytes(),
        owner.uid,
        owner.gid,
        0o600,
    );
    let stack = service_stack(&owner);

    // The right code logs in (earlier releases prompted, then always denied).
    let d = run(&stack, &vpn, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 1);
    let uid = stack.named_record_uid(&vpn);
    assert!(NAMED_RECORD_UIDS.contains(&uid) && !STAND_IN_UIDS.contains(&uid));
    assert_eq!(
        stored_last_step(&stack, uid),
        Some(T0 / 30),
        "its own record"
    );

    // The same code again is a replay: refused and counted in that record.
    let d = run(&stack, &vpn, &code_at(&secret, T0), T0 + 5);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(stored_failures(&stack, uid), 1);

    // A wrong code is denied and charged as an account's is.
    let d = run(&stack, &vpn, &wrong_totp(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(stored_failures(&stack, uid), 2);
    // Throttled as an account: with max_failures=2 reached, even the right code of a
    // later step is refused until an admin resets the record.
    let capped = Stack::probe(
        "svc",
        &format!(
            "user={} secret={}/${{USER}} max_failures=2 throttle_after=100",
            owner.name,
            owner.home.display()
        ),
    );
    for i in 0..2 {
        let d = run(&capped, &vpn, &wrong_totp(&secret, T0 + 60), T0 + 60 + i);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    }
    let d = run(&capped, &vpn, &code_at(&secret, T0 + 90), T0 + 90);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "capped: {d:?}");
    let capped_uid = capped.named_record_uid(&vpn);
    assert_eq!(stored_failures(&capped, capped_uid), 2);
    // The admin reaches the record by the name, as the module line names it (user=):
    // `show` lists it, `reset` lifts the cap and keeps the used step used.
    let pam_dir = capped.path().to_str().expect("a UTF-8 path");
    let admin = |verb: &str| {
        state_tool(&[
            verb,
            "--user",
            &vpn,
            "--service",
            "svc",
            "--pam-dir",
            pam_dir,
        ])
    };
    let shown = admin("show");
    assert!(shown.status.success(), "{shown:?}");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&vpn),
        "{shown:?}"
    );
    let reset = admin("reset");
    assert!(reset.status.success(), "{reset:?}");
    assert_eq!(stored_failures(&capped, capped_uid), 0);
    let d = run(&capped, &vpn, &code_at(&secret, T0 + 90), T0 + 91);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "after the reset: {d:?}");
    let d = run(&capped, &vpn, &code_at(&secret, T0 + 90), T0 + 92);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "its replay after the reset: {d:?}"
    );

    // A name without a file: one prompt, denied, and no record of its own (only a
    // stand-in, from the bounded set every unknown name shares).
    let before = records(&stack.state_listing());
    let d = run(&stack, &nofile, &code_at(&secret, T0 + 120), T0 + 120);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1);
    let after = records(&stack.state_listing());
    let added: Vec<u32> = after.difference(&before).copied().collect();
    assert!(
        added.iter().all(|u| STAND_IN_UIDS.contains(u)),
        "a record for a name without a file: {added:?}"
    );
    assert!(!after.contains(&stack.named_record_uid(&nofile)));

    // Records are per store: another state directory has not seen the code used.
    let other = service_stack(&owner);
    let d = run(&other, &vpn, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// A shared store keys such a name's record by the validated PAM name, as it keys an
/// account's by its canonical name, and writes no uid key for it: a code used on one
/// host is refused on another.
#[test]
fn a_shared_store_keys_a_name_without_an_account_by_the_name() {
    let t = "a_shared_store_keys_a_name_without_an_account_by_the_name";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let owner = TestUser::create("gsr");
    let vpn = format!("vpnshared{}", std::process::id());
    assert!(!known_to_nss(&vpn), "test name taken");
    let secret = random_secret_b32();
    write_owned(
        &owner.home.join(&vpn),
        totp_file(&secret).as_bytes(),
        owner.uid,
        owner.gid,
        0o600,
    );
    let args = server.options(&format!(
        "redis_prefix=un: redis_connect_timeout=1000 redis_timeout=1000 user={} secret={}/${{USER}}",
        owner.name,
        owner.home.display()
    ));
    init_store(&args);
    let host_a = Stack::probe("svc", &args);
    let host_b = Stack::probe("svc", &args);
    let code = code_at(&secret, now());
    let d = Driver::new(&host_a, "svc", &vpn).answer(&code).run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let by_name = format!("un:user:{vpn}");
    assert_eq!(
        server.raw(None, &[b"EXISTS", by_name.as_bytes()]),
        b":1\r\n",
        "keyed by the name"
    );
    assert_eq!(
        server.raw(None, &[b"KEYS", b"un:uid:*"]),
        b"*0\r\n",
        "no uid key"
    );
    let d = Driver::new(&host_b, "svc", &vpn).answer(&code).run();
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "replayed on another host: {d:?}"
    );
}
