//! Day-2 events on an account, through the real libpam and the real account tools
//! (`userdel`, `useradd`): a lost phone re-enrolled, an account deleted and its uid
//! handed to someone else. Each ends with the new enrolment asked for its own code,
//! never let in on what the old one earned.

use std::process::Command;

use system_tests::fleet::{RedisServer, ServerConfig, init_store};
use system_tests::*;

/// The address the old phone's holder logged in from, and the user's own.
const OLD_PEER: &str = "198.51.100.23";
const NEW_PEER: &str = "203.0.113.5";
const GRACE: &str = "grace_period=3600";

#[test]
fn a_re_enrolled_phone_is_not_skipped_by_the_old_phones_grace_period() {
    if !require_root("a_re_enrolled_phone_is_not_skipped_by_the_old_phones_grace_period") {
        return;
    }
    let (u, old) = TestUser::enrolled("gr");
    let stack = Stack::probe("svc", GRACE);
    let d = login_at(&stack, &u, &code_at(&old, T0), OLD_PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    // Control: within the grace period that address needs no code.
    let d = login_at(&stack, &u, &wrong_totp(&old, T0 + 60), OLD_PEER, T0 + 60);
    assert_eq!(d.returned(), Returned::Success, "grace applies: {d:?}");

    // The phone is lost; the user gets a new secret.
    let new = random_secret_b32();
    u.write_secret(&totp_file(&new), 0o600);
    let d = login_at(&stack, &u, &wrong_totp(&new, T0 + 120), OLD_PEER, T0 + 120);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the old phone's grace entry skipped the new secret's code: {d:?}"
    );
    // The new phone logs in from elsewhere; the old entry stays dead, the new one works.
    let d = login_at(&stack, &u, &code_at(&new, T0 + 150), NEW_PEER, T0 + 150);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    let d = login_at(&stack, &u, &wrong_totp(&new, T0 + 180), OLD_PEER, T0 + 180);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the old entry came back with the new secret's first login: {d:?}"
    );
    let d = login_at(&stack, &u, &wrong_totp(&new, T0 + 210), NEW_PEER, T0 + 210);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the new grace entry: {d:?}"
    );
}

/// `useradd -u` of the leaver's uid and `userdel -r` of the leaver while this binary's
/// other tests are kept out of the user database. The newcomer is added first (`-o`:
/// for that moment both accounts hold the uid), so the uid is never free: another
/// process's useradd (another test binary, or anything else on the host) takes the
/// highest uid plus one, which the leaver's often is, and once took it between a
/// `userdel` and the `useradd -u` ("UID 21035 is not unique"). The end state is the
/// same: the leaver gone with its home and group, the uid the newcomer's alone. Each
/// tool waits for another process's shadow tool to release the database
/// ([`shadow_tool`]).
fn hand_uid_over(leaver: &TestUser, tag: &str) -> TestUser {
    let _g = user_database_lock();
    let name = format!("ptt{}{}", std::process::id() % 100_000, tag);
    let userdel = |gone: &str| {
        let out = shadow_tool("userdel", &["-r", gone]).expect("userdel");
        // 6: no such account (the newcomer's name, on a clean host).
        assert!(
            out.status.success() || out.status.code() == Some(6),
            "userdel -r {gone}: {out:?}"
        );
    };
    userdel(&name);
    let uid = leaver.uid.to_string();
    let out = shadow_tool(
        "useradd",
        &[
            "-m",
            "-s",
            "/bin/sh",
            "-K",
            "UMASK=077",
            "-o",
            "-u",
            &uid,
            &name,
        ],
    )
    .expect("useradd");
    assert!(out.status.success(), "useradd -o -u {uid} {name}: {out:?}");
    userdel(&leaver.name);
    let out = Command::new("id").args(["-g", &name]).output().expect("id");
    TestUser {
        name: name.clone(),
        uid: leaver.uid,
        gid: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("gid"),
        home: format!("/home/{name}").into(),
    }
}

#[test]
fn a_reused_uid_does_not_inherit_the_leavers_grace_period() {
    if !require_root("a_reused_uid_does_not_inherit_the_leavers_grace_period") {
        return;
    }
    let (leaver, old) = TestUser::enrolled("lv");
    let stack = Stack::probe("svc", GRACE);
    let d = login_at(&stack, &leaver, &code_at(&old, T0), OLD_PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    let d = login_at(
        &stack,
        &leaver,
        &wrong_totp(&old, T0 + 30),
        OLD_PEER,
        T0 + 30,
    );
    assert_eq!(d.returned(), Returned::Success, "control: grace: {d:?}");

    // The leaver's account is deleted and the uid goes to a newcomer, who enrols
    // from the same office address.
    let newcomer = hand_uid_over(&leaver, "nc");
    let secret = random_secret_b32();
    newcomer.write_secret(&totp_file(&secret), 0o600);
    let d = login_at(
        &stack,
        &newcomer,
        &wrong_totp(&secret, T0 + 60),
        OLD_PEER,
        T0 + 60,
    );
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the newcomer was let in on the leaver's grace entry: {d:?}"
    );
    let d = login_at(
        &stack,
        &newcomer,
        &code_at(&secret, T0 + 90),
        OLD_PEER,
        T0 + 90,
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
}

/// The local store keys records by uid, and nothing in a record says which account
/// earned it (SECURITY.md R35 says why): a uid handed to a newcomer after `userdel`
/// meets the leaver's `max_failures=` cap until `totp-state reset --user UID`, which
/// reaches the record although no account has the uid meanwhile. Control: the leaver
/// hard-capped (the log names the cap), the newcomer refused by it before the reset,
/// let in with a right code after it; a wrong code then is one failure, not the cap.
#[test]
fn a_reused_uid_meets_the_leavers_cap_until_the_record_is_reset_by_uid() {
    let t = "a_reused_uid_meets_the_leavers_cap_until_the_record_is_reset_by_uid";
    if !require_root(t) {
        return;
    }
    let stack = Stack::probe("svc", "max_failures=3");
    let (leaver, old) = TestUser::enrolled("lc");
    for (i, peer) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .into_iter()
        .enumerate()
    {
        let at = T0 + 30 * i as u64;
        let d = login_at(&stack, &leaver, &wrong_totp(&old, at), peer, at);
        assert_ne!(d.returned(), Returned::Success, "{d:?}");
    }
    let capped = |lines: &[String]| {
        lines.iter().any(|l| {
            syslog_message(l)
                .contains("second factor disabled after too many failures (max_failures)")
        })
    };
    let (d, lines) = login_logged(&stack, &leaver, &code_at(&old, T0 + 600), PEER, T0 + 600);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "control: hard-capped: {lines:?}"
    );
    assert!(capped(&lines), "the hard cap is the cause: {lines:?}");

    let uid = leaver.uid;
    let newcomer = hand_uid_over(&leaver, "lw");
    let secret = random_secret_b32();
    newcomer.write_secret(&totp_file(&secret), 0o600);
    let (d, lines) = login_logged(
        &stack,
        &newcomer,
        &code_at(&secret, T0 + 660),
        PEER,
        T0 + 660,
    );
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "before the reset, the leaver's cap: {d:?} {lines:?}"
    );
    assert!(capped(&lines), "before the reset: {lines:?}");

    let out = stack.state_tool(&["reset", "--user", &uid.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let (d, lines) = login_logged(
        &stack,
        &newcomer,
        &code_at(&secret, T0 + 720),
        PEER,
        T0 + 720,
    );
    assert_eq!(
        d.returned(),
        Returned::Success,
        "after the reset: {d:?} {lines:?}"
    );
    let (d, lines) = login_logged(
        &stack,
        &newcomer,
        &wrong_totp(&secret, T0 + 780),
        PEER,
        T0 + 780,
    );
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(!capped(&lines), "one failure, not the cap: {lines:?}");
}

/// A fleet keys records by name, so a name handed to a newcomer meets the leaver's
/// record. The leaver's account is usually gone from the name service before anyone
/// thinks of the record: `totp-state reset --user NAME` must still reach it. Control:
/// the leaver was hard-capped (`max_failures=`, the log names the cap), and the newcomer
/// given the name is refused by that cap before the reset and logs in after it.
#[test]
fn a_deleted_accounts_fleet_record_is_reset_by_name_before_the_name_is_reused() {
    let t = "a_deleted_accounts_fleet_record_is_reset_by_name_before_the_name_is_reused";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=lc: max_failures=3 redis_timeout=2000");
    init_store(&args);
    let stack = Stack::probe("svc", &args);
    let (leaver, old) = TestUser::enrolled("fl");
    for peer in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let (d, lines) = login_logged(&stack, &leaver, &wrong_totp(&old, now()), peer, None);
        assert_ne!(d.returned(), Returned::Success, "{lines:?}");
    }
    let capped = |lines: &[String]| {
        lines.iter().any(|l| {
            syslog_message(l)
                .contains("second factor disabled after too many failures (max_failures)")
        })
    };
    let (d, lines) = login_logged(&stack, &leaver, &code_at(&old, now()), PEER, None);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "control: hard-capped: {lines:?}"
    );
    assert!(capped(&lines), "the hard cap is the cause: {lines:?}");

    let name = leaver.name.clone();
    let userdel = |name: &str| {
        let _g = user_database_lock();
        let out = shadow_tool("userdel", &["-r", name]).expect("userdel");
        assert!(out.status.success(), "{out:?}");
    };
    userdel(&name);
    // Control: before the reset, the name given to somebody else meets the leaver's cap,
    // whatever code they answer.
    {
        let (newcomer, secret) = TestUser::enrolled("fl");
        assert_eq!(newcomer.name, name);
        let (d, lines) = login_logged(&stack, &newcomer, &code_at(&secret, now()), PEER, None);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "before the reset: {d:?} {lines:?}"
        );
        assert!(
            capped(&lines),
            "before the reset, the leaver's cap: {lines:?}"
        );
        // Dropped here: the name is again an account the name service does not know.
    }
    let out = state_tool(&["reset", "--user", &name, "--options", &args]);
    assert!(
        out.status.success(),
        "reset of a deleted name: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no account of that name"),
        "{out:?}"
    );

    // The same name for somebody else.
    let (newcomer, secret) = TestUser::enrolled("fl");
    assert_eq!(newcomer.name, name);
    let (d, lines) = login_logged(&stack, &newcomer, &code_at(&secret, now()), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(!capped(&lines), "{lines:?}");
}

/// A uid nobody has, for `usermod -u`.
fn free_uid(from: u32) -> u32 {
    (from + 20_000..from + 30_000)
        .find(|u| {
            !Command::new("getent")
                .args(["passwd", &u.to_string()])
                .status()
                .expect("getent")
                .success()
        })
        .expect("a free uid")
}

fn change_uid(user: &mut TestUser) {
    let _g = user_database_lock();
    let uid = free_uid(user.uid);
    let out = shadow_tool("usermod", &["-u", &uid.to_string(), &user.name]).expect("usermod");
    assert!(out.status.success(), "{out:?}");
    user.uid = uid;
}

/// `usermod -u`: the local store keys records by uid, so a code used just before the
/// change would be taken once more under the new uid. pam_totp(8) tells the admin to
/// move the record with the account; this is that procedure, and the control without it.
#[test]
fn a_changed_uid_keeps_its_used_codes_used_once_its_record_is_moved() {
    if !require_root("a_changed_uid_keeps_its_used_codes_used_once_its_record_is_moved") {
        return;
    }
    let stack = Stack::probe("svc", "");
    for mv in [true, false] {
        let (mut u, secret) = TestUser::enrolled(if mv { "um" } else { "uc" });
        let code = code_at(&secret, T0);
        let d = login_at(&stack, &u, &code, None, T0);
        assert_eq!(d.returned(), Returned::Success, "{d:?}");
        let old = stack.state_file(u.uid);
        change_uid(&mut u);
        if mv {
            std::fs::rename(&old, stack.state_file(u.uid)).expect("mv the record");
        }
        let d = login_at(&stack, &u, &code, None, T0 + 5);
        if mv {
            assert_eq!(
                d.returned(),
                Returned::Failed("PAM_AUTH_ERR".into()),
                "{d:?}"
            );
            let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
            assert_eq!(d.returned(), Returned::Success, "the next code: {d:?}");
        } else {
            assert_eq!(d.returned(), Returned::Success, "control: {d:?}");
        }
    }
}

/// `totp-enroll --json ARGS` (a new enrolment also needs `ENROLL_SCRIPTED`).
fn enroll(args: &[&str]) -> serde_json::Value {
    let out = Command::new(&built().enroll)
        .arg("--json")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run totp-enroll");
    assert!(out.status.success(), "totp-enroll {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The lost-phone procedure of README and pam_totp(8), with the real `totp-enroll`: a
/// scratch code gets the user in, root re-enrolls with `--user NAME -f`, and the lost
/// phone's codes are refused from then on. `--regenerate-scratch-codes`, which the
/// README used to offer for a lost phone, keeps the secret: the control shows the lost
/// phone still logging in after it.
#[test]
fn the_lost_phone_procedure_refuses_the_old_phone_at_once() {
    if !require_root("the_lost_phone_procedure_refuses_the_old_phone_at_once") {
        return;
    }
    let u = TestUser::create("lp");
    let stack = Stack::probe("svc", "");
    let first = enroll(&[&ENROLL_SCRIPTED[..], &["--user", &u.name]].concat());
    let old = first["secret"].as_str().expect("secret").to_owned();
    let scratch = first["scratch_codes"][0].to_string().replace('"', "");
    let d = login_at(&stack, &u, &code_at(&old, T0), None, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    // The phone is gone: a scratch code, once.
    let d = login_at(&stack, &u, &scratch, None, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "scratch code: {d:?}");
    let d = login_at(&stack, &u, &scratch, None, T0 + 31);
    assert_ne!(
        d.returned(),
        Returned::Success,
        "scratch code used twice: {d:?}"
    );

    // Control: new scratch codes leave the secret, and so the lost phone, in place.
    enroll(&[
        "--user",
        &u.name,
        "--regenerate-scratch-codes",
        "--non-interactive",
    ]);
    let d = login_at(&stack, &u, &code_at(&old, T0 + 60), None, T0 + 60);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?}");

    let second = enroll(&[&ENROLL_SCRIPTED[..], &["--user", &u.name, "-f"]].concat());
    let new = second["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    let d = login_at(&stack, &u, &code_at(&old, T0 + 90), None, T0 + 90);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the lost phone: {d:?}"
    );
    let d = login_at(&stack, &u, &code_at(&new, T0 + 120), None, T0 + 120);
    assert_eq!(d.returned(), Returned::Success, "the new phone: {d:?}");
}

/// The same through a fleet's shared store (the grace check reads the store's key
/// there before the prompt): grace works for the secret that earned it, and a name
/// re-enrolled on another host gets none.
#[test]
fn a_fleets_grace_period_belongs_to_the_secret_that_earned_it() {
    if !require_root("a_fleets_grace_period_belongs_to_the_secret_that_earned_it") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options(&format!("redis_prefix=lg: redis_timeout=2000 {GRACE}"));
    init_store(&args);
    let (host_a, host_b) = (Stack::probe("svc", &args), Stack::probe("svc", &args));
    let (u, old) = TestUser::enrolled("fg");
    let (d, lines) = login_logged(&host_a, &u, &code_at(&old, now()), OLD_PEER, None);
    assert_eq!(d.returned(), Returned::Success, "{lines:?}");
    let (d, lines) = login_logged(&host_b, &u, &wrong_totp(&old, now()), OLD_PEER, None);
    assert_eq!(d.returned(), Returned::Success, "control: grace: {lines:?}");

    let new = random_secret_b32();
    u.write_secret(&totp_file(&new), 0o600);
    let (d, lines) = login_logged(&host_b, &u, &wrong_totp(&new, now()), OLD_PEER, None);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the old secret's grace: {lines:?}"
    );
}

/// README's layout for one user: a home-mode secret for SSH (with a grace period) and a
/// store-mode secret for sudo, one state record. The first sudo code is a secret new to
/// the record and drops the grace entries once (as a re-enrolment would); from then on
/// sudo codes leave the SSH address its grace. Control: a new SSH secret loses it.
#[test]
fn a_second_secret_in_use_for_sudo_keeps_the_ssh_grace_period() {
    if !require_root("a_second_secret_in_use_for_sudo_keeps_the_ssh_grace_period") {
        return;
    }
    let (u, ssh) = TestUser::enrolled("ss");
    let store = root_store();
    let sudo = random_secret_b32();
    write_owned(
        &store.path().join(&u.name),
        totp_file(&sudo).as_bytes(),
        0,
        0,
        0o600,
    );
    let stack = Stack::probe("svc", GRACE);
    stack.service(
        "sudo",
        &format!(
            "auth required @MODULE@ user=root secret={}/${{USER}}\n",
            store.path().display()
        ),
    );
    let sudo_at = |at: u64| {
        let d = Driver::new(&stack, "sudo", &u.name)
            .answer(&code_at(&sudo, at))
            .at(at)
            .run();
        assert_eq!(d.result, "PAM_SUCCESS", "sudo: {d:?}");
    };
    let ssh_at = |at: u64, answer: &str| login_at(&stack, &u, answer, NEW_PEER, at).returned();
    assert_eq!(ssh_at(T0, &code_at(&ssh, T0)), Returned::Success);
    sudo_at(T0 + 30);
    assert_eq!(ssh_at(T0 + 60, &code_at(&ssh, T0 + 60)), Returned::Success);
    sudo_at(T0 + 90);
    assert_eq!(
        ssh_at(T0 + 120, &wrong_totp(&ssh, T0 + 120)),
        Returned::Success,
        "the SSH address's grace after a sudo code"
    );

    u.write_secret(&totp_file(&random_secret_b32()), 0o600);
    assert_eq!(
        ssh_at(T0 + 150, &wrong_totp(&ssh, T0 + 150)),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "control: a new SSH secret"
    );
}

/// The harness's own cleanup: `TestUser`'s drop waits while another process's shadow
/// tool holds the user database's lock (here `/etc/group.lock`, as shadow writes it:
/// the holder's pid), instead of leaving the account behind for a later test to meet.
/// Control: a plain `userdel` meanwhile is refused and the account stays.
#[test]
fn a_test_account_is_deleted_although_another_tool_held_the_lock() {
    if !require_root("a_test_account_is_deleted_although_another_tool_held_the_lock") {
        return;
    }
    let known = |name: &str| run("getent", ["passwd", name]).status.success();
    let u = TestUser::create("dl");
    let name = u.name.clone();
    let held = hold_as_another_tool("/etc/group.lock");
    let plain = Command::new("userdel")
        .args(["-f", &name])
        .env("LC_ALL", "C")
        .output()
        .expect("userdel");
    let release = held.release_in_a_second();
    drop(u);
    release.join().expect("release");
    let left = known(&name);
    if left {
        let _ = Command::new("userdel").args(["-r", "-f", &name]).output();
    }
    // 10: the group file's lock (ours); 1: the password file's, which another test's
    // shadow tool may hold at that moment. Either way the plain userdel was refused.
    assert!(
        matches!(plain.status.code(), Some(10) | Some(1)),
        "control: {plain:?}"
    );
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("lock"),
        "control refused for its lock: {plain:?}"
    );
    assert!(!left, "{name} left behind by the drop");
}

/// A shadow-suite lock file (such as `/etc/group.lock`) taken as another process's tool
/// takes it, with this process's pid in it. Removed on drop, so that a failing test
/// never leaves the host's user database locked.
struct HeldLock(Option<&'static str>);

/// Takes `lock` once no other tool holds it.
fn hold_as_another_tool(lock: &'static str) -> HeldLock {
    // Another tool of the host may hold it right now: wait for our turn.
    for _ in 0..300 {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(lock);
        if let Ok(mut f) = file {
            let held = HeldLock(Some(lock));
            use std::io::Write;
            f.write_all(std::process::id().to_string().as_bytes())
                .expect("write the lock");
            return held;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{lock} stayed held");
}

impl HeldLock {
    /// Releases the lock a second from now, while the caller runs what must wait for it.
    fn release_in_a_second(mut self) -> std::thread::JoinHandle<()> {
        let lock = self.0.take();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(1));
            if let Some(lock) = lock {
                std::fs::remove_file(lock).expect("release the lock");
            }
        })
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(lock) = self.0.take() {
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// `add_to_group`, which tests of `skip_group=`/`require_group=` call while other tests
/// of their binary create and delete accounts, waits while another tool holds the group
/// file's lock instead of failing the test. Control: a plain `usermod -a -G` meanwhile
/// is refused for the lock.
#[test]
fn a_group_membership_is_added_although_another_tool_held_the_lock() {
    if !require_root("a_group_membership_is_added_although_another_tool_held_the_lock") {
        return;
    }
    let u = TestUser::create("ag");
    let group = format!("{}g", u.name);
    let member = || {
        String::from_utf8_lossy(&run("id", ["-nG", u.name.as_str()]).stdout)
            .split_whitespace()
            .any(|g| g == group)
    };
    {
        let _g = user_database_lock();
        let out = shadow_tool("groupadd", &[&group]).expect("groupadd");
        assert!(out.status.success(), "groupadd {group}: {out:?}");
    }
    let held = hold_as_another_tool("/etc/group.lock");
    let plain = Command::new("usermod")
        .args(["-a", "-G", &group, &u.name])
        .env("LC_ALL", "C")
        .output()
        .expect("usermod");
    let refused_member = member();
    let release = held.release_in_a_second();
    u.add_to_group(&group);
    release.join().expect("release");
    let added = member();
    {
        let _g = user_database_lock();
        let _ = shadow_tool("groupdel", &[&group]);
    }
    // 10: the group file's lock (ours); 1: the password file's, which another test's
    // shadow tool may hold at that moment. Either way the plain usermod was refused.
    assert!(
        matches!(plain.status.code(), Some(10) | Some(1)),
        "control: {plain:?}"
    );
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("lock"),
        "control refused for its lock: {plain:?}"
    );
    assert!(!refused_member, "control: no member after the refusal");
    assert!(added, "{} is not in {group}", u.name);
}

/// `passwd` says the password files are busy with its own exit status (5, not the 1
/// or 10 of the other tools): `shadow_tool` waits for that lock as well. Control: the
/// same `passwd -d` run once meanwhile is refused for the lock, the password unchanged.
#[test]
fn a_password_is_emptied_although_another_tool_held_the_lock() {
    if !require_root("a_password_is_emptied_although_another_tool_held_the_lock") {
        return;
    }
    let u = TestUser::create("pe");
    let hash = || {
        std::fs::read_to_string("/etc/shadow")
            .expect("read /etc/shadow")
            .lines()
            .find_map(|l| {
                let mut f = l.split(':');
                (f.next() == Some(u.name.as_str())).then(|| f.next().unwrap_or("").to_owned())
            })
            .expect("the user's shadow line")
    };
    let before = hash();
    assert!(!before.is_empty(), "useradd left no password hash");
    // Taken first, so that the run below starts while the lock is held; and before the
    // lock, or a `TestUser` of another test would wait on it with this binary's mutex.
    let in_process = user_database_lock();
    let held = hold_as_another_tool("/etc/shadow.lock");
    let plain = Command::new("passwd")
        .args(["-d", &u.name])
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("passwd");
    let after_refusal = hash();
    let release = held.release_in_a_second();
    let out = shadow_tool("passwd", &["-d", &u.name]).expect("passwd");
    drop(in_process);
    release.join().expect("release");
    assert_eq!(plain.status.code(), Some(5), "control: {plain:?}");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("try again later"),
        "control refused for its lock: {plain:?}"
    );
    assert_eq!(after_refusal, before, "control: the password unchanged");
    assert!(out.status.success(), "passwd -d: {out:?}");
    assert_eq!(hash(), "", "passwd -d emptied the password");
}

/// A test account goes with its group, also where `userdel` keeps the group: when
/// another account still has it as a supplementary group (userdel: "has other
/// members"), or when the account's own primary group was changed to another one
/// (its group is then no primary group). Such groups were left behind by every run of
/// directory_services (ptt<pid>dt0, ptt<pid>dt3), and a later run given the same
/// process id could not create the account again (useradd: "group exists"). Control:
/// each group exists, with the setup in place, before the accounts are dropped.
#[test]
fn a_test_accounts_group_goes_with_it_where_userdel_keeps_it() {
    if !require_root("a_test_accounts_group_goes_with_it_where_userdel_keeps_it") {
        return;
    }
    let group_exists = |name: &str| {
        Command::new("getent")
            .args(["group", name])
            .output()
            .expect("getent")
            .status
            .success()
    };
    let named = TestUser::create("gk");
    let member = TestUser::create("gm");
    let moved = TestUser::create("gv");
    member.add_to_group(&named.name);
    {
        let _g = user_database_lock();
        let out =
            shadow_tool("usermod", &["-g", &named.gid.to_string(), &moved.name]).expect("usermod");
        assert!(out.status.success(), "usermod: {out:?}");
    }
    let groups = [named.name.clone(), moved.name.clone()];
    for g in &groups {
        assert!(group_exists(g), "control: group {g} exists");
    }
    // `moved` first (no account may have the group of `named` as its primary one when
    // that goes, as in directory_services), then `named`, while `member` still lists
    // its group.
    drop(moved);
    drop(named);
    drop(member);
    for g in &groups {
        assert!(!group_exists(g), "group {g} was left behind");
    }
}
