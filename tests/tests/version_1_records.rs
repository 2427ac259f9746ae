//! A state record of format 1 (before replay marks were bound to an enrolment) keeps
//! its marks: a wrong code's write and an admin's reset write the record back with them
//! (written as format 2 they were dropped, and the code of the last used step worked
//! again), and an enrolment that binds marks leaves them for the others (format 3).

use std::process::{Command, Output};
use std::time::Duration;

use system_tests::*;
use totp_core::state::{LegacyMarks, StateStore, UserState, Write};

#[test]
fn a_version_1_mark_survives_a_wrong_code_and_a_reset_until_a_code_binds_it() {
    if !require_root("a_version_1_mark_survives_a_wrong_code_and_a_reset_until_a_code_binds_it") {
        return;
    }
    let (u, secret) = TestUser::enrolled("v1m");
    let stack = Stack::probe("svc", "");
    // A first wrong code makes the store (its directory and key) and the record.
    make_the_record(&stack, &u, &secret, T0 - 300);
    // The record as a release before enrolment-bound marks left it: the code of T0's
    // step was used.
    let legacy = totp_mark(T0 / 30);
    seed_legacy(&stack, u.uid, legacy);
    assert_eq!(
        stored(&stack, u.uid).legacy,
        Some(legacy),
        "seeded as format 1"
    );

    // A wrong code writes the record (its throttling) and keeps the mark.
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 + 5), None, T0 + 5);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let after_wrong = stored(&stack, u.uid);
    assert_eq!(failures_of(&after_wrong), 1, "the wrong code was written");
    assert_eq!(after_wrong.legacy, Some(legacy), "and the mark kept");

    // So does an admin's reset (the throttling goes, the mark stays).
    let out = stack.state_tool(&["reset", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let after_reset = stored(&stack, u.uid);
    assert_eq!(failures_of(&after_reset), 0, "reset");
    assert_eq!(
        after_reset.legacy,
        Some(legacy),
        "the mark kept by the reset"
    );

    // The code of the marked step is refused as used; it worked again before the fix.
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 10);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "a replay: {d:?}");
    // Control: the next step's code logs in; its enrolment binds marks from the
    // version-1 ones, which stay for the others.
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let bound = stored(&stack, u.uid);
    assert_eq!(bound.legacy, Some(legacy));
    assert_eq!(last_step_of(&bound), Some(T0 / 30 + 1));
}

/// The 6-digit SHA-1 code of a file with 60-s steps at `unix`.
fn code_60(secret_b32: &str, unix: u64) -> String {
    let bytes = totp_core::base32::decode_lenient(secret_b32.as_bytes()).expect("base32");
    let secret = totp_core::secret::Secret::new(bytes);
    let digits = totp_core::otp::Digits::SIX;
    let at = i64::try_from(unix).expect("time");
    let v = totp_core::otp::totp(&secret, at, 60, totp_core::otp::Algorithm::Sha1, digits)
        .expect("totp");
    totp_core::otp::format_code(v, digits).to_string()
}

/// A version-1 mark is a step of the file's `STEP_SIZE`. `totp-state reset
/// --clock-fault` reads the account's file for it: a 60-s file's mark an hour ahead (a
/// login honours it: no code works until then) comes down to the first 60-s step after
/// the reset's clock, and the next code logs in. Control: without `--clock-fault` the
/// mark stays (it may be a phone's that is ahead).
#[test]
fn a_reset_lowers_a_version_1_mark_at_the_steps_of_the_accounts_file() {
    if !require_root("a_reset_lowers_a_version_1_mark_at_the_steps_of_the_accounts_file") {
        return;
    }
    let u = TestUser::create("v1s");
    let secret = random_secret_b32();
    u.write_secret(&format!("{secret}\n\" STEP_SIZE 60\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::probe("svc", "");
    let t = now();
    make_the_record(&stack, &u, &secret, t);
    let ahead = totp_mark((t + 3_600) / 60);
    seed_legacy(&stack, u.uid, ahead);
    // Honoured: the code of the clock's step counts as used.
    let d = login_at(&stack, &u, &code_60(&secret, t), None, t);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");

    let out = reset_through_the_service(&stack, &u, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_said_lowered(&out, false);
    assert_eq!(stored(&stack, u.uid).legacy, Some(ahead));

    // Told the clock was wrong: lowered at its 60-s steps, to just after the clock.
    let reset_at = now();
    let out = reset_through_the_service(&stack, &u, &["--clock-fault"]);
    assert!(out.status.success(), "{out:?}");
    assert_said_lowered(&out, true);
    let until = lowered_until(&stack, u.uid, 60, reset_at);
    // Codes up to it stay used; the first step after it logs in and binds the mark.
    let d = login_at(&stack, &u, &code_60(&secret, until - 30), None, until - 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "used: {d:?}");
    let d = login_at(&stack, &u, &code_60(&secret, until + 30), None, until + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert!(!stored(&stack, u.uid).marks.is_empty(), "bound");
}

/// Review finding (R35): a version-1 mark of a 30-s file, read at the 60-s steps of a
/// re-enrolment (`totp-enroll -S 60`), lands near twice the clock; every login was
/// refused as a clock fault until an admin's reset, which then lowered the mark into
/// the old secret's used codes. It is not that enrolment's: not applied to it, logged;
/// the right code logs in. Control: the old secret's marked step is still refused.
#[test]
fn a_version_1_mark_does_not_lock_out_a_re_enrolment_with_longer_steps() {
    if !require_root("a_version_1_mark_does_not_lock_out_a_re_enrolment_with_longer_steps") {
        return;
    }
    let (u, old) = TestUser::enrolled("v1r");
    let stack = Stack::probe("svc", "");
    let t = now();
    make_the_record(&stack, &u, &old, t - 300);
    let used = totp_mark(t / 30);
    seed_legacy(&stack, u.uid, used);
    let old_file = std::fs::read(u.secret_path()).expect("the old file");

    let out = Command::new(&built().enroll)
        .args(ENROLL_SCRIPTED)
        .args(["--json", "--user", &u.name, "-f", "-S", "60"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("totp-enroll");
    assert!(out.status.success(), "{out:?}");
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let new = said["secret"].as_str().expect("secret").to_owned();
    let text = std::fs::read_to_string(u.secret_path()).expect("the new file");
    assert!(text.contains("STEP_SIZE 60"), "{text}");
    let (d, lines) = login_logged(&stack, &u, &code_60(&new, t + 60), None, t + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("version-1") && l.contains("not applied")),
        "{lines:?}"
    );
    assert_eq!(
        stored(&stack, u.uid).legacy,
        Some(used),
        "kept for the others"
    );

    // The old secret back (a restored file): its marked step is still used.
    write_owned(&u.secret_path(), &old_file, u.uid, u.gid, 0o600);
    let d = login_at(&stack, &u, &code_at(&old, t), None, t + 5);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "a replay: {d:?}");
    let d = login_at(&stack, &u, &code_at(&old, t + 30), None, t + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the next step: {d:?}");
}

/// Review finding (R13): a version-1 mark ahead of the clock was set aside whatever its
/// step, so with the record still version 1, a clock set back three days (NTP spoofed,
/// a VM snapshot restored) let the same 30-s secret's code of three days ago in again.
/// No shorter step puts that mark near the clock: a clock fault, denied, the log line
/// naming the reset that forgets version-1 marks. Controls: after that reset the same
/// login gets in, and with the mark back, so does a login at the right clock.
#[test]
fn a_version_1_mark_ahead_at_the_same_step_is_a_clock_fault() {
    if !require_root("a_version_1_mark_ahead_at_the_same_step_is_a_clock_fault") {
        return;
    }
    let (u, secret) = TestUser::enrolled("v1c");
    let stack = Stack::probe("svc", "");
    let back = T0 - 3 * 86_400;
    make_the_record(&stack, &u, &secret, back - 300);
    let used = totp_mark(T0 / 30);
    seed_legacy(&stack, u.uid, used);

    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, back), None, back);
    assert_eq!(d.module_code(), "PAM_SYSTEM_ERR", "{d:?} {lines:?}");
    let fix = format!("totp-state reset --user {} ", u.name);
    assert!(
        lines.iter().any(|l| l.contains("clock fault for")
            && l.contains("version-1")
            && l.contains(&fix)
            && l.contains("--forget-version-1-marks`")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("not applied")),
        "{lines:?}"
    );
    assert_eq!(stored(&stack, u.uid).legacy, Some(used), "the mark kept");

    // The named reset: the admin says the mark may go, and the same login gets in.
    let out = stack.state_tool(&["reset", "--user", &u.name, "--forget-version-1-marks"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stored(&stack, u.uid).legacy, None);
    let d = login_at(&stack, &u, &code_at(&secret, back), None, back + 5);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // The mark back, as the record was: at the right clock the next code logs in.
    seed_legacy(&stack, u.uid, used);
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("clock fault")),
        "{lines:?}"
    );
}

/// An HOTP re-enrolment under a version-1 counter: a new token's first codes are refused
/// as used (they cannot be told from a restored old token's), and the log line names
/// the one command that lets it in. After `totp-state reset --forget-version-1-marks`
/// the same code logs in.
#[test]
fn an_hotp_re_enrolment_under_a_version_1_counter_is_let_in_by_the_named_reset() {
    if !require_root("an_hotp_re_enrolment_under_a_version_1_counter_is_let_in_by_the_named_reset")
    {
        return;
    }
    let (phone, token) = (random_secret_b32(), random_secret_b32());
    let u = TestUser::create("v1n");
    u.write_secret(&totp_file(&phone), 0o600);
    let stack = Stack::probe("svc", "");
    make_the_record(&stack, &u, &phone, T0 - 300);
    seed_legacy(
        &stack,
        u.uid,
        LegacyMarks {
            last_step: None,
            hotp: Some(500),
        },
    );
    u.write_secret(&format!("{token}\n\" HOTP_COUNTER 1\n"), 0o600);
    let (d, lines) = login_logged(&stack, &u, &oathtool_hotp(&token, 1), None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let fix = format!("totp-state reset --user {} ", u.name);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&fix) && l.contains("--forget-version-1-marks`")),
        "{lines:?}"
    );

    let out = stack.state_tool(&["reset", "--user", &u.name, "--forget-version-1-marks"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("version-1 replay marks forgotten"),
        "{out:?}"
    );
    assert_eq!(stored(&stack, u.uid).legacy, None);
    let d = login_at(&stack, &u, &oathtool_hotp(&token, 1), None, T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// Finding (R34, R35): a version-1 record's marks went to whichever enrolment logged in
/// first after the upgrade and were dropped. A user with a TOTP file for sudo and an
/// HOTP token whose file configuration management keeps at `HOTP_COUNTER 1`: the TOTP
/// login took the marks, and the token's recorded codes for counters 1-3 worked again.
/// Now the HOTP enrolment is held to the version-1 counter; control: counter 501 logs
/// in, once.
#[test]
fn a_version_1_hotp_mark_outlives_a_totp_login_for_the_hotp_token() {
    if !require_root("a_version_1_hotp_mark_outlives_a_totp_login_for_the_hotp_token") {
        return;
    }
    let (phone, token) = (random_secret_b32(), random_secret_b32());
    let u = TestUser::create("v1h");
    u.write_secret(&totp_file(&phone), 0o600);
    let stack = Stack::probe("svc", "");
    make_the_record(&stack, &u, &phone, T0 - 300);
    let legacy = LegacyMarks {
        last_step: Some(T0 / 30),
        hotp: Some(500),
    };
    seed_legacy(&stack, u.uid, legacy);

    // The sudo (TOTP) login comes first and binds marks.
    let d = login_at(&stack, &u, &code_at(&phone, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "phone: {d:?}");
    let after = stored(&stack, u.uid);
    assert_eq!(after.legacy, Some(legacy), "kept for the other enrolments");
    assert_eq!(last_step_of(&after), Some(T0 / 30 + 1));

    // The token's file, as configuration management puts it back every time.
    let hotp = format!("{token}\n\" HOTP_COUNTER 1\n");
    for counter in 1..=3u64 {
        u.write_secret(&hotp, 0o600);
        let at = T0 + 60 * (counter + 1);
        let d = login_at(&stack, &u, &oathtool_hotp(&token, counter), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "used {counter}: {d:?}");
    }
    u.write_secret(&hotp, 0o600);
    let d = login_at(&stack, &u, &oathtool_hotp(&token, 501), None, T0 + 600);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the next counter: {d:?}");
    u.write_secret(&hotp, 0o600);
    let d = login_at(&stack, &u, &oathtool_hotp(&token, 501), None, T0 + 660);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "once: {d:?}");
}

/// A version-1 mark of a used time step (no HOTP counter).
fn totp_mark(step: u64) -> LegacyMarks {
    LegacyMarks {
        last_step: Some(step),
        hotp: None,
    }
}

/// A first wrong code for `u` at `at`: it makes the store (its directory and key) and
/// the record a test then replaces.
fn make_the_record(stack: &Stack, u: &TestUser, secret: &str, at: u64) {
    let d = login_at(stack, u, &wrong_totp(secret, at), None, at);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
}

/// `totp-state reset --json` of `u`, told the service (`svc` in `stack`) whose file
/// the logins read.
fn reset_through_the_service(stack: &Stack, u: &TestUser, extra: &[&str]) -> Output {
    let pam_dir = stack.path().to_str().expect("a UTF-8 path");
    let mut args = vec![
        "reset",
        "--user",
        &u.name,
        "--json",
        "--service",
        "svc",
        "--pam-dir",
        pam_dir,
    ];
    args.extend(extra);
    state_tool(&args)
}

/// A `--json` reset said whether it lowered the version-1 mark.
fn assert_said_lowered(out: &Output, lowered: bool) {
    let said = String::from_utf8_lossy(&out.stdout);
    let field = format!("\"totp_mark_lowered\":{lowered}");
    assert!(said.contains(&field), "{said}");
}

/// The end of `uid`'s version-1 mark, lowered by a reset at `reset_at` at steps of
/// `step_size` seconds: after the reset's clock, within minutes.
fn lowered_until(stack: &Stack, uid: u32, step_size: u64, reset_at: u64) -> u64 {
    let last = stored(stack, uid)
        .legacy
        .and_then(|l| l.last_step)
        .expect("a mark");
    let until = (last + 1) * step_size;
    assert!(
        until >= reset_at && until <= now() + 600,
        "ends after the reset's clock, within minutes: {until} at {reset_at}"
    );
    until
}

/// Stores `legacy` as `uid`'s version-1 record in `stack`.
fn seed_legacy(stack: &Stack, uid: u32, legacy: LegacyMarks) {
    let mut store = totp_os::state_dir::StateDir::new(stack.state_dir(), Duration::from_secs(5));
    store
        .update(uid, &mut |_| {
            Write::Durable(UserState {
                legacy: Some(legacy),
                ..UserState::default()
            })
        })
        .expect("seeded");
}

/// Without `--service`/`--options` a reset does not know which file the logins read:
/// it never takes a version-1 mark's step from the file the module's defaults name.
/// Here the service reads `secret=${HOME}/.totp_real` (30-s steps) and a decoy in the
/// default place has 60-s steps; read at 60 s the normal mark of the code just used
/// looked far ahead and came down to half the clock, and the code worked again. Now the
/// mark stays and the code is refused as used. A mark far ahead is kept with an exit
/// status naming `--service`; control: with `--service` it is lowered at the real
/// file's 30-s steps and the next code logs in.
#[test]
fn a_reset_without_the_service_never_reads_the_step_of_another_file() {
    if !require_root("a_reset_without_the_service_never_reads_the_step_of_another_file") {
        return;
    }
    let u = TestUser::create("v1d");
    let secret = random_secret_b32();
    let real = u.home.join(".totp_real");
    write_owned(&real, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o600);
    let decoy = random_secret_b32();
    u.write_secret(&format!("{decoy}\n\" STEP_SIZE 60\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::probe("svc", "secret=${HOME}/.totp_real");
    let t = now();
    make_the_record(&stack, &u, &secret, t);

    // The code of t's step was used.
    let used = totp_mark(t / 30);
    seed_legacy(&stack, u.uid, used);
    let out = stack.state_tool(&["reset", "--user", &u.name, "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert_said_lowered(&out, false);
    assert_eq!(stored(&stack, u.uid).legacy, Some(used), "the mark kept");
    let d = login_at(&stack, &u, &code_at(&secret, t), None, t + 5);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "a replay: {d:?}");
    assert_eq!(stored(&stack, u.uid).legacy, Some(used), "still unbound");

    // A mark an hour ahead (logins honour it): a plain reset keeps it; --clock-fault,
    // with the step unknown, keeps it too and fails naming --service.
    let ahead = totp_mark((t + 3_600) / 30);
    seed_legacy(&stack, u.uid, ahead);
    let out = stack.state_tool(&["reset", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stored(&stack, u.uid).legacy, Some(ahead));
    let out = stack.state_tool(&["reset", "--user", &u.name, "--clock-fault"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version-1") && err.contains("--service"),
        "{err}"
    );
    assert_eq!(stored(&stack, u.uid).legacy, Some(ahead));
    let d = login_at(&stack, &u, &code_at(&secret, t + 60), None, t + 60);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "honoured: {d:?}");

    // Control: the service named, the real file's step read; lowered and the next code
    // after it logs in.
    let reset_at = now();
    let out = reset_through_the_service(&stack, &u, &["--clock-fault"]);
    assert!(out.status.success(), "{out:?}");
    assert_said_lowered(&out, true);
    let until = lowered_until(&stack, u.uid, 30, reset_at);
    let d = login_at(&stack, &u, &code_at(&secret, until + 30), None, until + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}
