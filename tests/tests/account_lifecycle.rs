//! Day-2 events on an account, through the real libpam and the real account tools
//! (`userdel`, `useradd`): a lost phone re-enrolled, an account deleted and its uid
//! handed to someone else. Each ends with the new enrolment asked for its own code,
//! never let in on what the old one earned.

use std::process::Command;

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

/// `userdel -r` and `useradd -u` of the same uid in one shell, so no other test's
/// `useradd` takes the uid in between.
fn hand_uid_over(leaver: &TestUser, tag: &str) -> TestUser {
    let name = format!("ptt{}{}", std::process::id() % 100_000, tag);
    let script = format!(
        "userdel -r {l} 2>/dev/null; userdel -r {n} 2>/dev/null; \
         useradd -m -s /bin/sh -K UMASK=077 -u {uid} {n}",
        l = leaver.name,
        n = name,
        uid = leaver.uid
    );
    let mut ok = false;
    // useradd exits 10 while another test binary holds the passwd lock.
    for _ in 0..100 {
        let s = Command::new("sh")
            .args(["-c", &script])
            .status()
            .expect("sh");
        if s.code() != Some(10) {
            ok = s.success();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "useradd -u {} {name}", leaver.uid);
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
