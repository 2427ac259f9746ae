//! Accounts whose uid lies in a range the local store keys records of names without an
//! account by (`STAND_IN_UIDS`, `ENROLMENT_RECORD_UIDS`): such an account would share its
//! record (failures, backoff, the `max_failures=` count) with strangers' attempts, so its
//! logins are denied with a line naming the range and the fix, the record of its uid is
//! never written, and `totp-state audit` refuses it. Accounts are made with `useradd -u`.

use std::process::Command;

use system_tests::*;
use totp_core::ledger::{ENROLMENT_RECORD_UIDS, STAND_IN_UIDS};

/// `ptt<pid><tag>` with the uid `uid`, enrolled with a fresh secret in the default place.
fn enrolled_with_uid(tag: &str, uid: u32) -> (TestUser, String) {
    let _g = user_database_lock();
    let name = format!("ptt{}{}", std::process::id() % 100_000, tag);
    let _ = Command::new("userdel").args(["-r", &name]).output();
    let uid_arg = uid.to_string();
    // -l: no lastlog or faillog entry, which sits at an offset of uid × its size.
    let mut status = None;
    for _ in 0..100 {
        let s = Command::new("useradd")
            .args(["-m", "-l", "-s", "/bin/sh", "-K", "UMASK=077"])
            .args(["-u", &uid_arg, &name])
            .output()
            .expect("useradd");
        // Exit 10: another test binary holds the passwd lock.
        if s.status.code() != Some(10) {
            status = Some(s.status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "useradd -u {uid} {name}"
    );
    let out = Command::new("getent")
        .args(["passwd", &name])
        .output()
        .expect("getent");
    let entry = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fields: Vec<&str> = entry.split(':').collect();
    assert_eq!(fields.get(2), Some(&uid_arg.as_str()), "{entry}");
    let user = TestUser {
        name,
        uid,
        gid: fields.get(3).and_then(|g| g.parse().ok()).expect("a gid"),
        home: fields.get(5).expect("a home").into(),
    };
    let secret = random_secret_b32();
    user.write_secret(&totp_file(&secret), 0o600);
    (user, secret)
}

#[test]
fn an_account_with_a_reserved_uid_is_denied_and_its_uids_record_is_never_used() {
    let t = "an_account_with_a_reserved_uid_is_denied_and_its_uids_record_is_never_used";
    if !require_root(t) {
        return;
    }
    let stack = Stack::probe("svc", "");
    // Control: an ordinary account logs in, into the record of its uid.
    let (control, control_secret) = TestUser::enrolled("rsc");
    let d = Driver::login(&stack, &control, &code_at(&control_secret, now())).run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert!(
        stack.state_file(control.uid).exists(),
        "the control's record"
    );

    // One uid from each range, apart per test process.
    let spread = std::process::id() % 0x800;
    let reserved = [
        ("rss", STAND_IN_UIDS.start() + spread),
        ("rse", ENROLMENT_RECORD_UIDS.start() + 0x10_0000 + spread),
    ];
    let mut accounts = Vec::new();
    for (tag, uid) in reserved {
        assert!(STAND_IN_UIDS.contains(&uid) || ENROLMENT_RECORD_UIDS.contains(&uid));
        let (user, secret) = enrolled_with_uid(tag, uid);
        // The right code: prompted as anyone is, then denied with the reason and the fix.
        let driver = Driver::login(&stack, &user, &code_at(&secret, now()));
        let (d, lines) = capture_syslog(&driver);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{uid:#x}: {d:?}");
        assert_eq!(d.prompts, 1, "{uid:#x}");
        assert!(
            lines.iter().any(|l| l.contains(&user.name)
                && l.contains(&format!("uid {uid} lies in"))
                && l.contains("usermod -u")),
            "{uid:#x}: {lines:?}"
        );
        assert!(
            !stack.state_file(uid).exists(),
            "{uid:#x}: the record of the account's uid is neither read into being nor written"
        );
        accounts.push(user);
    }

    // The audit refuses them and passes the control.
    let out = audit_command(stack.path()).output().expect("audit");
    let verdicts = audit_verdicts(&out.stdout);
    assert_eq!(
        verdicts.get(&control.name).map(|v| v.0.as_str()),
        Some("ok"),
        "{verdicts:?}"
    );
    for user in &accounts {
        let (verdict, reasons) = verdicts.get(&user.name).expect("listed");
        assert_eq!(verdict, "refused", "{}", user.name);
        assert!(
            reasons.contains(&format!("uid {} lies in", user.uid))
                && reasons.contains("usermod -u"),
            "{reasons}"
        );
    }
    assert!(!out.status.success(), "refused accounts fail the audit");
}
