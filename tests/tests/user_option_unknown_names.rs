//! GA's `user=` with PAM names the name service does not know (OpenVPN, FreeRADIUS: VPN
//! users who are not system accounts, one service account owning every secret file):
//! the validated PAM name selects the file, as in GA, and the login is kept in the
//! record of the enrolment that file holds, never of the typed name. So a code logs in
//! once, a replay is refused under any name reaching the same secret, wrong codes under
//! all those names count in one budget, such a record gets no grace period, and a name
//! without a file is prompted, denied and creates no record. A shared store denies them.

use std::collections::BTreeSet;
use std::process::Command;

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;
use totp_core::ledger::{ENROLMENT_RECORD_UIDS, STAND_IN_UIDS};

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

/// A stack whose secret file is `<service account's home>/<file>`, owned by it, with
/// `extra` options.
fn service_stack(owner: &TestUser, file: &str, extra: &str) -> Stack {
    Stack::probe(
        "svc",
        &format!(
            "user={} secret={}/{file} {extra}",
            owner.name,
            owner.home.display()
        ),
    )
}

/// Writes `secret`'s GA file as `<owner's home>/<name>`, owned by `owner`; its bytes.
fn enrol(owner: &TestUser, name: &str, secret: &str) -> Vec<u8> {
    let bytes = totp_file(secret).into_bytes();
    write_owned(&owner.home.join(name), &bytes, owner.uid, owner.gid, 0o600);
    bytes
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
    let file = enrol(&owner, &vpn, &secret);
    let stack = service_stack(&owner, "${USER}", "");

    // The right code logs in (earlier releases prompted, then always denied).
    let d = run(&stack, &vpn, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 1);
    let uid = stack.enrolment_record_uid(&file);
    assert!(ENROLMENT_RECORD_UIDS.contains(&uid) && !STAND_IN_UIDS.contains(&uid));
    assert_eq!(
        stored_last_step(&stack, uid),
        Some(T0 / 30),
        "the enrolment's record"
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
    let capped = service_stack(&owner, "${USER}", "max_failures=2 throttle_after=100");
    for i in 0..2 {
        let d = run(&capped, &vpn, &wrong_totp(&secret, T0 + 60), T0 + 60 + i);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    }
    let d = run(&capped, &vpn, &code_at(&secret, T0 + 90), T0 + 90);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "capped: {d:?}");
    let capped_uid = capped.enrolment_record_uid(&file);
    assert_eq!(stored_failures(&capped, capped_uid), 2);
    // The admin reaches the record by the uid `show` lists (pam_totp(8), totp-state(8));
    // `reset` lifts the cap and keeps the used step used.
    let shown = capped.state_tool(&["show"]);
    assert!(shown.status.success(), "{shown:?}");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&capped_uid.to_string()),
        "{shown:?}"
    );
    // `audit` does not take it for a deleted account's record (no account by design),
    // as it would any other uid the name service does not know.
    let audit = audit_command(capped.path())
        .output()
        .expect("totp-state audit");
    assert!(!audit.stdout.is_empty(), "{audit:?}");
    assert!(
        !audit_verdicts(&audit.stdout).contains_key(&format!("uid {capped_uid}")),
        "{audit:?}"
    );
    let reset = capped.state_tool(&["reset", "--user", &capped_uid.to_string()]);
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

    // Records are per store: another state directory has not seen the code used.
    let other = service_stack(&owner, "${USER}", "");
    let d = run(&other, &vpn, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// One secret reached by several names (a `secret=` without `${USER}`: the account
/// that owns it and any name without an account): two records would each accept the
/// other's used code, so a name without an account is denied there, and the account's
/// code is not accepted again under another name.
#[test]
fn a_secret_not_named_by_the_user_is_not_reached_by_names_without_an_account() {
    if !require_root("a_secret_not_named_by_the_user_is_not_reached_by_names_without_an_account") {
        return;
    }
    let owner = TestUser::create("gsh");
    let a = format!("vpna{}", std::process::id());
    assert!(!known_to_nss(&a), "test name taken");
    let secret = random_secret_b32();
    enrol(&owner, "shared", &secret);
    let stack = service_stack(&owner, "shared", "");

    // The account that owns the file logs in with it (its own record) ...
    let d = run(&stack, &owner.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // ... and the same code under a name without an account is refused, as is that
    // name's own right code: such names are verified only where ${USER} names the file.
    let driver = Driver::new(&stack, "svc", &a)
        .answer(&code_at(&secret, T0))
        .at(T0 + 5);
    let (d, lines) = capture_syslog(&driver);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "asked as any name is: {d:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("names its file by ${USER}")),
        "{lines:?}"
    );
    let d = run(&stack, &a, &code_at(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    // Control: the same name with a file named by ${USER} logs in.
    enrol(&owner, &a, &secret);
    let named = service_stack(&owner, "${USER}", "");
    let d = run(&named, &a, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// grace_period= never applies to an enrolment's record (two enrolments can share one):
/// a second login from the same address is asked the code, while an account's is not.
#[test]
fn an_enrolments_record_gets_no_grace_period() {
    if !require_root("an_enrolments_record_gets_no_grace_period") {
        return;
    }
    let owner = TestUser::create("gsg");
    let account = TestUser::create("gsk");
    let vpn = format!("vpngrace{}", std::process::id());
    assert!(!known_to_nss(&vpn), "test name taken");
    let secret = random_secret_b32();
    enrol(&owner, &vpn, &secret);
    enrol(&owner, &account.name, &secret);
    let stack = service_stack(&owner, "${USER}", "grace_period=3600");
    let from = |user: &str, answer: &str, at: u64| {
        Driver::new(&stack, "svc", user)
            .answer(answer)
            .rhost(PEER)
            .at(at)
            .run()
    };

    // The account: its second login within the grace period needs no code.
    let d = from(&account.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let d = from(&account.name, "", T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the account's grace: {d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");

    // The name without an account: asked again, and a wrong code is refused.
    let d = from(&vpn, &code_at(&secret, T0 + 120), T0 + 120);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let d = from(&vpn, &wrong_totp(&secret, T0 + 180), T0 + 180);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "graced: {d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
}

/// A shared store keys records by the account's canonical name, which such a name does
/// not have: it is denied after the prompt, with a log line saying why, and nothing is
/// written under its name.
#[test]
fn a_shared_store_denies_a_name_without_an_account() {
    let t = "a_shared_store_denies_a_name_without_an_account";
    if !require_root(t) || !require_tool(t, "redis-server") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let owner = TestUser::create("gsr");
    let vpn = format!("vpnshared{}", std::process::id());
    assert!(!known_to_nss(&vpn), "test name taken");
    let secret = random_secret_b32();
    enrol(&owner, &vpn, &secret);
    let args = server.options(&format!(
        "redis_prefix=un: redis_connect_timeout=1000 redis_timeout=1000 user={} secret={}/${{USER}}",
        owner.name,
        owner.home.display()
    ));
    init_store(&args);
    let host = Stack::probe("svc", &args);
    let driver = Driver::new(&host, "svc", &vpn).answer(&code_at(&secret, now()));
    let (d, lines) = capture_syslog(&driver);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("only with a local state store")),
        "{lines:?}"
    );
    let by_name = format!("un:user:{vpn}");
    assert_eq!(
        server.raw(None, &[b"EXISTS", by_name.as_bytes()]),
        b":0\r\n",
        "nothing under the name"
    );
}
