//! Accounts whose uid lies in a range the local store keys records of names without an
//! account by (`STAND_IN_UIDS`, `ENROLMENT_RECORD_UIDS`): such an account would share its
//! record (failures, backoff, the `max_failures=` count) with strangers' attempts, so its
//! logins are denied with a line naming the range and the fix, the record of its uid is
//! never written, and `totp-state audit` refuses it. A skip reads no record, so under
//! `nullok` such an account without a secret file is skipped as any other is (a directory
//! service's uids can lie in these ranges). `totp-state show`/`reset --user` refuse such
//! an account: the record of its uid is strangers'. Accounts are made with `useradd -u`.

use std::process::Command;

use std::time::Duration;

use system_tests::*;
use totp_core::ledger::{ENROLMENT_RECORD_UIDS, STAND_IN_UIDS};
use totp_core::state::{StateStore, UserState, Write};

/// `ptt<pid><tag>` with the uid `uid`, enrolled with a fresh secret in the default place.
fn enrolled_with_uid(tag: &str, uid: u32) -> (TestUser, String) {
    let user = account_with_uid(tag, uid);
    let secret = random_secret_b32();
    user.write_secret(&totp_file(&secret), 0o600);
    (user, secret)
}

/// `ptt<pid><tag>` with the uid `uid` and no secret file.
fn account_with_uid(tag: &str, uid: u32) -> TestUser {
    let _g = user_database_lock();
    let name = format!("ptt{}{}", std::process::id() % 100_000, tag);
    let _ = shadow_tool("userdel", &["-r", &name]);
    let uid_arg = uid.to_string();
    // -l: no lastlog or faillog entry, which sits at an offset of uid × its size.
    let out = shadow_tool(
        "useradd",
        &[
            "-m",
            "-l",
            "-s",
            "/bin/sh",
            "-K",
            "UMASK=077",
            "-u",
            &uid_arg,
            &name,
        ],
    )
    .expect("useradd");
    assert!(out.status.success(), "useradd -u {uid} {name}: {out:?}");
    let out = Command::new("getent")
        .args(["passwd", &name])
        .output()
        .expect("getent");
    let entry = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fields: Vec<&str> = entry.split(':').collect();
    assert_eq!(fields.get(2), Some(&uid_arg.as_str()), "{entry}");
    TestUser {
        name,
        uid,
        gid: fields.get(3).and_then(|g| g.parse().ok()).expect("a gid"),
        home: fields.get(5).expect("a home").into(),
    }
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

/// A stack where the module is `requisite` and `pam_permit` follows: the login succeeds
/// without a prompt only when the module steps aside.
fn requisite_then_permit(args: &str) -> Stack {
    let s = Stack::new();
    s.service(
        "svc",
        &format!("auth requisite @MODULE@ {args}\nauth required pam_permit.so\n"),
    );
    s
}

fn denied_line(lines: &[String], user: &TestUser) -> bool {
    lines.iter().any(|l| {
        l.contains(&user.name)
            && l.contains(&format!("uid {} lies in", user.uid))
            && l.contains("usermod -u")
    })
}

#[test]
fn under_nullok_a_reserved_uid_account_without_a_secret_file_is_skipped() {
    let t = "under_nullok_a_reserved_uid_account_without_a_secret_file_is_skipped";
    if !require_root(t) {
        return;
    }
    // Control: an ordinary account without a file is skipped under nullok.
    let plain = TestUser::create("rnc");
    let probe = Stack::probe("svc", "nullok");
    let d = Driver::login(&probe, &plain, "123456").run();
    assert_eq!(d.module_code(), "PAM_IGNORE", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");

    // Apart from the uids of the other tests of this file.
    let spread = std::process::id() % 0x800;
    let reserved = [
        ("rns", STAND_IN_UIDS.start() + 0x800 + spread),
        ("rne", ENROLMENT_RECORD_UIDS.start() + 0x20_0000 + spread),
    ];
    for (tag, uid) in reserved {
        assert!(STAND_IN_UIDS.contains(&uid) || ENROLMENT_RECORD_UIDS.contains(&uid));
        let user = account_with_uid(tag, uid);
        // Skipped without a prompt, as the control is; before, denied after one.
        let d = Driver::login(&probe, &user, "123456").run();
        assert_eq!(d.module_code(), "PAM_IGNORE", "{uid:#x}: {d:?}");
        assert_eq!(d.prompts, 0, "{uid:#x}: {d:?}");
        let stack = requisite_then_permit("nullok");
        let d = Driver::login(&stack, &user, "123456").run();
        assert_eq!(d.result, "PAM_SUCCESS", "{uid:#x}: {d:?}");
        assert_eq!(d.prompts, 0, "{uid:#x}: {d:?}");
        assert!(!probe.state_file(uid).exists(), "{uid:#x}: no record");
        // The audit agrees: not enrolled, nullok skips.
        let out = audit_command(probe.path()).output().expect("audit");
        let verdicts = audit_verdicts(&out.stdout);
        let (verdict, reasons) = verdicts.get(&user.name).expect("listed");
        assert_eq!(verdict, "not-enrolled", "{uid:#x}: {reasons}");
        assert!(reasons.contains("nullok skips"), "{reasons}");

        // Without nullok no skip: denied with the reason, and the audit refuses it.
        let strict = Stack::probe("svc", "");
        let (d, lines) = capture_syslog(&Driver::login(&strict, &user, "123456"));
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{uid:#x}: {d:?}");
        assert!(denied_line(&lines, &user), "{uid:#x}: {lines:?}");
        let out = audit_command(strict.path()).output().expect("audit");
        let (verdict, reasons) = audit_verdicts(&out.stdout)
            .remove(&user.name)
            .expect("listed");
        assert_eq!(verdict, "refused", "{uid:#x}: {reasons}");
        assert!(reasons.contains("usermod -u"), "{reasons}");

        // Enrolled, nullok does not apply: denied with the reason, refused by the audit.
        let secret = random_secret_b32();
        user.write_secret(&totp_file(&secret), 0o600);
        let (d, lines) = capture_syslog(&Driver::login(&probe, &user, &code_at(&secret, now())));
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{uid:#x}: {d:?}");
        assert_eq!(d.prompts, 1, "{uid:#x}");
        assert!(denied_line(&lines, &user), "{uid:#x}: {lines:?}");
        assert!(!probe.state_file(uid).exists(), "{uid:#x}: no record");
        let out = audit_command(probe.path()).output().expect("audit");
        let (verdict, reasons) = audit_verdicts(&out.stdout)
            .remove(&user.name)
            .expect("listed");
        assert_eq!(verdict, "refused", "{uid:#x}: {reasons}");
        assert!(
            reasons.contains(&format!("uid {uid} lies in")) && reasons.contains("usermod -u"),
            "{reasons}"
        );
    }
}

/// `totp-state show`/`reset --user` of a reserved-uid account: refused, naming the range
/// and the fix, and the record of its uid (strangers' attempts) is left as it is.
/// Control: an ordinary account's record is shown and reset.
#[test]
fn the_state_tool_refuses_the_record_of_a_reserved_uid_account() {
    let t = "the_state_tool_refuses_the_record_of_a_reserved_uid_account";
    if !require_root(t) {
        return;
    }
    let stack = Stack::probe("svc", "");
    let (control, control_secret) = TestUser::enrolled("rtc");
    let wrong = wrong_totp(&control_secret, now());
    let d = Driver::login(&stack, &control, &wrong).run();
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(stored_failures(&stack, control.uid), 1);
    let out = stack.state_tool(&["show", "--user", &control.name]);
    assert!(out.status.success(), "{out:?}");
    let out = stack.state_tool(&["reset", "--user", &control.name]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stored_failures(&stack, control.uid),
        0,
        "the control was reset"
    );

    let spread = std::process::id() % 0x400;
    let uid = STAND_IN_UIDS.start() + 0xc00 + spread;
    let user = account_with_uid("rts", uid);
    // The record of that uid, as strangers' attempts leave it.
    let seeded = UserState {
        extra: b"strangers' throttling".to_vec(),
        ..UserState::default()
    };
    let mut store = totp_os::state_dir::StateDir::new(stack.state_dir(), Duration::from_secs(5));
    store
        .update(uid, &mut |_| Write::Durable(seeded.clone()))
        .expect("seeded");
    let before = std::fs::read(stack.state_file(uid)).expect("the record");
    for args in [
        vec!["reset", "--user", &user.name],
        vec!["reset", "--user", &user.name, "--clock-fault"],
        vec!["show", "--user", &user.name],
        vec!["show", "--user", &user.name, "--json"],
    ] {
        let out = stack.state_tool(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(
            err.contains(&format!("uid {uid} lies in")) && err.contains("usermod -u"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing shown: {out:?}");
    }
    assert_eq!(
        std::fs::read(stack.state_file(uid)).expect("the record"),
        before,
        "left as it was"
    );
}
