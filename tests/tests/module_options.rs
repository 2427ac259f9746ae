//! Every module option of `pam_totp.so`, through the real libpam and the built module
//! (SECURITY.md cases R2, R3, R6, R13, R14, R28; GA's option list).
//!
//! Runs as root with real throwaway users; the clock is frozen with libfaketime so every
//! code is for a known step.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::time::{Duration, Instant};

use system_tests::*;

/// Prepares one bad secret file.
type Setup<'a> = Box<dyn Fn() + 'a>;

fn run(stack: &Stack, user: &str, answer: &str, at: u64) -> Drive {
    Driver::new(stack, "svc", user).answer(answer).at(at).run()
}

fn mkdir_owned(path: &Path, uid: u32, gid: u32, mode: u32) {
    fs::create_dir_all(path).expect("mkdir");
    chown(path, Some(uid), Some(gid)).expect("chown dir");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod dir");
}

#[test]
fn secret_expands_tilde_home_and_user() {
    if !require_root("secret_expands_tilde_home_and_user") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("sx");
    let sub = u.home.join("cfg");
    mkdir_owned(&sub, u.uid, u.gid, 0o700);
    let f1 = sub.join(format!("{}.ga", u.name));
    write_owned(&f1, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o600);
    let f2 = sub.join(format!("two-{}", u.name));
    write_owned(&f2, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o600);
    // No file at the default path: success can only come from the expanded path.
    assert!(!u.secret_path().exists());

    let s1 = Stack::probe("svc", "secret=~/cfg/${USER}.ga");
    let d = run(&s1, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(stored_last_step(&s1, u.uid), Some(T0 / 30));
    assert_eq!(
        read(&f1),
        totp_file(&secret),
        "the secret file is configuration"
    );

    let s2 = Stack::probe("svc", "secret=${HOME}/cfg/two-${USER}");
    let d = run(&s2, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(stored_last_step(&s2, u.uid), Some(T0 / 30));

    // The default spec is ~/.google_authenticator: absent here → prompt, then deny.
    let s3 = Stack::probe("svc", "");
    let d = run(&s3, &u.name, &code_at(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(d.prompts, 1);
}

#[test]
fn user_root_store_mode_reads_and_writes_state_in_the_store() {
    if !require_root("user_root_store_mode_reads_and_writes_state_in_the_store") {
        return;
    }
    let store = root_store();
    let secret = random_secret_b32();
    let u = TestUser::create("st");
    let f = store.path().join(&u.name);
    write_owned(&f, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    let spec = format!("user=root secret={}/${{USER}}", store.path().display());
    let stack = Stack::probe("svc", &spec);

    let d = run(&stack, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(
        stored_last_step(&stack, u.uid),
        Some(T0 / 30),
        "replay mark written in the state store"
    );
    assert_eq!(
        read(&f),
        totp_file(&secret),
        "the secret file is configuration"
    );
    assert_eq!(mode_owner(&f), (0o600, 0, 0), "still root-owned 0600");
    // The state lives in the state store, keyed on the uid: replay is refused and
    // counted there.
    let d = run(&stack, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(stored_failures(&stack, u.uid), 1);
    assert!(
        !u.secret_path().exists(),
        "nothing written in the home directory"
    );

    // A name NSS does not know selects its file as in GA, and is kept in the record of
    // the enrolment the file holds (tests/user_option_unknown_names.rs has the rest).
    let ghost = format!("ghost{}", std::process::id());
    let g = store.path().join(&ghost);
    write_owned(&g, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    let d = run(&stack, &ghost, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 1);

    // A store file owned by the user (not by user=) is refused.
    write_owned(&f, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o600);
    let d = run(&stack, &u.name, &code_at(&secret, T0 + 90), T0 + 90);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(d.prompts, 1);
}

#[test]
fn authtok_prompt_replaces_the_prompt() {
    if !require_root("authtok_prompt_replaces_the_prompt") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ap");
    let stack = Stack::new();
    stack.service(
        "svc",
        "auth required @MODULE@ [authtok_prompt=Your token, please: ]\n",
    );
    let d = run(&stack, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(
        d.prompt_list(),
        vec![(1, "Your token, please: ".to_string())]
    );

    let stack = Stack::probe("svc", "authtok_prompt=Code?");
    let d = run(&stack, &u.name, "000000", T0 + 30);
    assert_eq!(d.prompt_list(), vec![(1, "Code?".to_string())]);
    // The default prompt, for comparison.
    let stack = Stack::probe("svc", "");
    let d = run(&stack, &u.name, "000000", T0 + 60);
    assert_eq!(
        d.prompt_list(),
        vec![(1, "Verification code: ".to_string())]
    );
}

#[test]
fn nullok_ignores_only_a_missing_file() {
    if !require_root("nullok_ignores_only_a_missing_file") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("nu");
    let with = Stack::probe("svc", "nullok");
    let without = Stack::probe("svc", "");

    // Missing file: PAM_IGNORE without a prompt, only with nullok.
    let d = run(&with, &u.name, "123456", T0);
    assert_eq!(d.module_code(), "PAM_IGNORE", "{d:?}");
    assert_eq!(d.prompts, 0);
    let d = run(&without, &u.name, "123456", T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(d.prompts, 1);

    // Any other problem: prompted, then denied, with or without nullok.
    let p = u.secret_path();
    let cases: Vec<(&str, Setup)> = vec![
        (
            "mode 0644",
            Box::new(|| {
                write_owned(&p, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o644);
            }),
        ),
        (
            "empty",
            Box::new(|| write_owned(&p, b"", u.uid, u.gid, 0o600)),
        ),
        (
            "unparsable",
            Box::new(|| write_owned(&p, b"!!!!\n\" TOTP_AUTH\n", u.uid, u.gid, 0o600)),
        ),
        (
            "root-owned",
            Box::new(|| write_owned(&p, totp_file(&secret).as_bytes(), 0, 0, 0o600)),
        ),
        (
            "directory",
            Box::new(|| {
                let _ = fs::remove_file(&p);
                mkdir_owned(&p, u.uid, u.gid, 0o700);
            }),
        ),
    ];
    for (i, (what, setup)) in cases.iter().enumerate() {
        setup();
        let at = T0 + 30 * i as u64;
        for stack in [&with, &without] {
            let d = run(stack, &u.name, &code_at(&secret, at), at);
            assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{what}: {d:?}");
            assert_eq!(d.prompts, 1, "{what}: prompted");
        }
        if p.is_dir() {
            fs::remove_dir(&p).expect("rmdir");
        }
    }
}

#[test]
fn no_strict_owner_never_admits_another_users_file() {
    if !require_root("no_strict_owner_never_admits_another_users_file") {
        return;
    }
    let (u, secret) = TestUser::enrolled("no");
    let other = TestUser::create("nx");
    let lax = Stack::probe("svc", "no_strict_owner allowed_perm=0644");
    // Accepted: a normal file still works.
    let d = run(&lax, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // Deviation from GA: an owner other than the user, user= or root stays refused.
    let p = u.secret_path();
    write_owned(
        &p,
        totp_file(&secret).as_bytes(),
        other.uid,
        other.gid,
        0o644,
    );
    let before = fs::read(&p).expect("read");
    let d = run(&lax, &u.name, &code_at(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1);
    assert_eq!(fs::read(&p).expect("read"), before, "file untouched");
    // Root-owned in home mode without no_strict_owner: refused, untouched.
    write_owned(&p, totp_file(&secret).as_bytes(), 0, 0, 0o644);
    let strict = Stack::probe("svc", "allowed_perm=0644");
    let d = run(&strict, &u.name, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(fs::read(&p).expect("read"), before);
}

#[test]
fn allowed_perm_relaxes_read_bits_only() {
    if !require_root("allowed_perm_relaxes_read_bits_only") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("pm");
    let p = u.secret_path();
    write_owned(&p, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o640);
    let default = Stack::probe("svc", "");
    let d = run(&default, &u.name, &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "0640 refused by default");
    let relaxed = Stack::probe("svc", "allowed_perm=0640");
    let d = run(&relaxed, &u.name, &code_at(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(mode_owner(&p).0, 0o640, "mode kept on rewrite");
    // The bracketed form libpam takes for an argument with blanks passes the value as
    // it is (the control of the blank refused below).
    let bracketed = Stack::probe("svc", "[allowed_perm=0640]");
    let d = run(&bracketed, &u.name, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // Write bits for group/other are refused whatever allowed_perm says.
    for (mode, arg) in [(0o660, "allowed_perm=0660"), (0o606, "allowed_perm=0666")] {
        write_owned(&p, totp_file(&secret).as_bytes(), u.uid, u.gid, mode);
        let at = T0 + 60 + u64::from(mode);
        let d = run(
            &Stack::probe("svc", arg),
            &u.name,
            &code_at(&secret, at),
            at,
        );
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{mode:o} with {arg}");
        assert_eq!(d.prompts, 1);
    }
    // Malformed values are configuration errors.
    for arg in [
        "allowed_perm=0",
        "allowed_perm=0x1a4",
        "allowed_perm=",
        "allowed_perm=0999",
        // pam_totp(8): octal digits only; GA's strtol takes a sign or leading blanks.
        "allowed_perm=+0600",
        "allowed_perm=-600",
        "[allowed_perm= 0600]",
    ] {
        let d = run(&Stack::probe("svc", arg), &u.name, "123456", T0);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{arg}");
        assert_eq!(d.prompts, 0, "{arg}");
    }
}

#[test]
fn debug_noskewadj_and_flags_are_accepted() {
    if !require_root("debug_noskewadj_and_flags_are_accepted") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dg");
    for (i, args) in ["debug", "noskewadj", "debug noskewadj allow_readonly"]
        .iter()
        .enumerate()
    {
        let at = T0 + 30 * i as u64;
        let d = run(
            &Stack::probe("svc", args),
            &u.name,
            &code_at(&secret, at),
            at,
        );
        assert_eq!(d.module_code(), "PAM_SUCCESS", "{args}: {d:?}");
        assert_eq!(d.prompts, 1);
    }
}

/// GA's skew-learning scenario (GA's unit test): codes for step 11000+i entered at
/// T = 12000+i. GA learns the skew and accepts the third; pam_totp never learns,
/// with or without `noskewadj`, and writes no skew state.
#[test]
fn noskewadj_has_no_effect_because_skew_is_never_learned() {
    if !require_root("noskewadj_has_no_effect_because_skew_is_never_learned") {
        return;
    }
    let u = TestUser::create("sk");
    for args in ["", "noskewadj"] {
        u.write_secret(&totp_file(GA_SECRET), 0o600);
        let stack = Stack::probe("svc", &format!("throttle_after=100 {args}"));
        for i in 0..4u64 {
            let code = oathtool_totp(GA_SECRET, (11_000 + i) * 30, 30, 6, "sha1");
            let d = run(&stack, &u.name, &code, (12_000 + i) * 30);
            assert_eq!(d.module_code(), "PAM_AUTH_ERR", "[{args}] attempt {i}");
        }
        let after = read(&u.secret_path());
        assert_eq!(after, totp_file(GA_SECRET), "[{args}] no skew written");
        assert_eq!(stored_failures(&stack, u.uid), 4);
        // A current code still works.
        let t = 12_010 * 30;
        let code = oathtool_totp(GA_SECRET, t, 30, 6, "sha1");
        let d = run(&stack, &u.name, &code, t);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "[{args}] {d:?}");
    }
}

#[test]
fn no_increment_hotp_keeps_the_counter_on_failure() {
    if !require_root("no_increment_hotp_keeps_the_counter_on_failure") {
        return;
    }
    let u = TestUser::create("ho");
    let hotp = format!("{GA_SECRET}\n\" HOTP_COUNTER 1\n");
    // GA vector: 293240 is counter 1.
    assert_eq!(oathtool_hotp(GA_SECRET, 1), "293240");
    for (args, after_fail) in [("", "2"), ("no_increment_hotp", "1")] {
        u.write_secret(&hotp, 0o600);
        let stack = Stack::probe("svc", args);
        let d = run(&stack, &u.name, "000001", T0);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert_eq!(
            file_value(&read(&u.secret_path()), "HOTP_COUNTER").as_deref(),
            Some(after_fail),
            "[{args}]"
        );
        let code = oathtool_hotp(GA_SECRET, after_fail.parse().expect("n"));
        let d = run(&stack, &u.name, &code, T0);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "[{args}] {d:?}");
        let next = after_fail.parse::<u64>().expect("n") + 1;
        assert_eq!(
            file_value(&read(&u.secret_path()), "HOTP_COUNTER"),
            Some(next.to_string())
        );
    }
}

/// The code just accepted, typed again (no press of the token): refused and logged as
/// a replay, the user told to press the token, and the counter left where it is, so
/// the token's next press logs in. A wrong code still moves the counter (above).
#[test]
fn an_hotp_code_typed_twice_is_a_replay_and_the_next_press_logs_in() {
    if !require_root("an_hotp_code_typed_twice_is_a_replay_and_the_next_press_logs_in") {
        return;
    }
    let u = TestUser::create("hr");
    let secret = random_secret_b32();
    u.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let stack = Stack::probe("svc", "");
    let counter = || file_value(&read(&u.secret_path()), "HOTP_COUNTER");
    let (d, _) = login_logged(&stack, &u, &oathtool_hotp(&secret, 1), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(counter().as_deref(), Some("2"));

    let (d, log) = login_logged(&stack, &u, &oathtool_hotp(&secret, 1), None, T0 + 60);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("reused an already accepted code")),
        "{log:?}"
    );
    assert!(
        d.messages
            .iter()
            .any(|(_, m)| m == "that code was already used; press the token for a new code"),
        "{d:?}"
    );
    assert_eq!(counter().as_deref(), Some("2"), "a replay moves no counter");

    let (d, _) = login_logged(&stack, &u, &oathtool_hotp(&secret, 2), None, T0 + 120);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the next press: {d:?}");
    assert_eq!(counter().as_deref(), Some("3"));
}

#[test]
fn echo_verification_code_prompts_with_echo_on() {
    if !require_root("echo_verification_code_prompts_with_echo_on") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ec");
    for (i, args) in ["echo_verification_code", "echo-verification-code"]
        .iter()
        .enumerate()
    {
        let at = T0 + 30 * i as u64;
        let d = run(
            &Stack::probe("svc", args),
            &u.name,
            &code_at(&secret, at),
            at,
        );
        assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
        assert_eq!(
            d.prompt_list(),
            vec![(2, "Verification code: ".to_string())]
        );
    }
    let d = run(&Stack::probe("svc", ""), &u.name, "000000", T0 + 90);
    assert_eq!(d.prompt_list()[0].0, 1, "echo off by default");
}

#[test]
fn grace_period_matches_numeric_rhost_only() {
    if !require_root("grace_period_matches_numeric_rhost_only") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gp");
    let stack = Stack::probe("svc", "grace_period=3600 ceiling_burst=100");
    let login =
        |rhost: Option<&str>, answer: &str, at: u64| login_at(&stack, &u, answer, rhost, at);

    let d = login(Some("192.0.2.7"), &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(
        read(&u.secret_path()),
        totp_file(&secret),
        "grace is kept in the store"
    );
    // Same address within the period: success without a prompt; nothing evaluated.
    let d = login(Some("192.0.2.7"), "000000", T0 + 100);
    assert_eq!(d.module_code(), "PAM_SUCCESS");
    assert_eq!(d.prompts, 0);
    // IPv4-mapped spelling of the same address: normalised, also matches.
    let d = login(Some("::ffff:192.0.2.7"), "000000", T0 + 110);
    assert_eq!(d.module_code(), "PAM_SUCCESS");
    assert_eq!(d.prompts, 0);
    // Other address, no address, after the period: prompted.
    for (rhost, at) in [
        (Some("192.0.2.8"), T0 + 120),
        (None, T0 + 150),
        (Some("192.0.2.7"), T0 + 3601),
    ] {
        let d = login(rhost, "000000", at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{rhost:?} at {at}");
        assert_eq!(d.prompts, 1, "{rhost:?} at {at}");
    }

    // Host names never get a grace entry nor match one.
    reset_state(&stack, u.uid);
    let d = login(Some("client.example"), &code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS");
    let d = login(Some("client.example"), "000000", T0 + 10);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(d.prompts, 1);
    // GA's LASTn lines in the file grant nothing: grace records live in the store.
    reset_state(&stack, u.uid);
    u.write_secret(
        &format!("{secret}\n\" TOTP_AUTH\n\" LAST0 192.0.2.7 {T0}\n"),
        0o600,
    );
    let d = login(Some("192.0.2.7"), "000000", T0 + 10);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(d.prompts, 1);
}

/// `grace_period=` never skips the code of an account past `max_failures=` (pam_totp(8),
/// docs/file-format.md): the cap is reached from another address, and the address that
/// earned the grace is then asked for the code and refused, its right code included, and
/// told why. Control: before the cap, the same address within the same period logs in
/// without a prompt; with the record cleared the right code logs in again.
#[test]
fn a_hard_capped_account_gets_no_grace_period() {
    if !require_root("a_hard_capped_account_gets_no_grace_period") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gc");
    let stack = Stack::probe(
        "svc",
        "grace_period=3600 max_failures=2 throttle_after=100 ceiling_burst=100",
    );
    let graced_from = "192.0.2.7";
    let d = login_at(&stack, &u, &code_at(&secret, T0), graced_from, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // Control: the grace period applies.
    let d = login_at(&stack, &u, "000000", graced_from, T0 + 10);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
    for i in 0..2u64 {
        let at = T0 + 20 + i;
        let d = login_at(&stack, &u, &wrong_totp(&secret, at), "198.51.100.9", at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    }
    assert_eq!(stored_failures(&stack, u.uid), 2);
    let at = T0 + 60;
    let d = login_at(&stack, &u, &code_at(&secret, at), graced_from, at);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "asked for the code, not skipped: {d:?}");
    assert!(d.messages.contains(&mf_message()), "{d:?}");
    // Control: with the record cleared (the cap gone), the next code logs in.
    reset_state(&stack, u.uid);
    let at = T0 + 90;
    let d = login_at(&stack, &u, &code_at(&secret, at), graced_from, at);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// Issue 13: a secret in a directory the user cannot write logs in (GA does), with or
/// without `allow_readonly`, which is no longer needed: TOTP logins never write the
/// secret file. The replay mark still holds, in the state store.
#[test]
fn a_secret_in_an_unwritable_directory_logs_in_and_replay_still_fails() {
    if !require_root("a_secret_in_an_unwritable_directory_logs_in_and_replay_still_fails") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("ro");
    let dir = u.home.join("ro");
    mkdir_owned(&dir, u.uid, u.gid, 0o700);
    let p = dir.join("ga");
    write_owned(&p, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o400);
    // The user cannot create a temp file next to the secret.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).expect("chmod");
    let before = fs::read(&p).expect("read");
    for (i, args) in ["", "allow_readonly", "allow_readonly grace_period=60"]
        .iter()
        .enumerate()
    {
        let at = T0 + 30 * i as u64;
        let stack = Stack::probe("svc", &format!("secret=~/ro/ga {args}"));
        let login = || login_at(&stack, &u, &code_at(&secret, at), "192.0.2.1", at);
        let d = login();
        assert_eq!(d.module_code(), "PAM_SUCCESS", "[{args}] {d:?}");
        let d = login();
        if args.contains("grace_period") {
            assert_eq!(d.module_code(), "PAM_SUCCESS", "[{args}] grace");
            assert_eq!(d.prompts, 0);
        } else {
            assert_eq!(d.module_code(), "PAM_AUTH_ERR", "[{args}] replay");
        }
        assert_eq!(fs::read(&p).expect("read"), before);
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
}

#[test]
fn max_window_caps_the_files_window() {
    if !require_root("max_window_caps_the_files_window") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("mw");
    let file = format!("{secret}\n\" WINDOW_SIZE 17\n\" TOTP_AUTH\n");
    // A code 5 steps ahead: inside WINDOW_SIZE 17 (±8), outside a cap of 3 (±1).
    let ahead = code_at(&secret, T0 + 150);
    for (args, expect) in [
        ("", "PAM_SUCCESS"),
        ("max_window=11", "PAM_SUCCESS"),
        ("max_window=9", "PAM_AUTH_ERR"),
        ("max_window=3", "PAM_AUTH_ERR"),
    ] {
        u.write_secret(&file, 0o600);
        let d = run(&Stack::probe("svc", args), &u.name, &ahead, T0);
        assert_eq!(d.module_code(), expect, "[{args}]");
    }
    for bad in ["max_window=0", "max_window=101", "max_window=x"] {
        let d = run(&Stack::probe("svc", bad), &u.name, &ahead, T0);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{bad}");
    }
}

#[test]
fn max_time_skew_caps_the_files_skew() {
    if !require_root("max_time_skew_caps_the_files_skew") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("ms");
    let file = format!("{secret}\n\" TIME_SKEW 5\n\" TOTP_AUTH\n");
    let skewed = code_at(&secret, T0 + 5 * 30);
    let current = code_at(&secret, T0);
    for (args, answer, expect) in [
        ("max_time_skew=5", &skewed, "PAM_SUCCESS"),
        // The default cap is GA's range (1500 steps): the file's skew is used as written.
        ("", &skewed, "PAM_SUCCESS"),
        ("max_time_skew=3", &skewed, "PAM_AUTH_ERR"),
        ("max_time_skew=0", &skewed, "PAM_AUTH_ERR"),
        ("max_time_skew=0", &current, "PAM_SUCCESS"),
    ] {
        u.write_secret(&file, 0o600);
        let d = run(&Stack::probe("svc", args), &u.name, answer, T0);
        assert_eq!(d.module_code(), expect, "[{args}] {d:?}");
    }
    let d = run(
        &Stack::probe("svc", "max_time_skew=1501"),
        &u.name,
        &current,
        T0,
    );
    assert_eq!(d.module_code(), "PAM_SERVICE_ERR");
}

#[test]
fn min_secret_bits_refuses_short_secrets() {
    if !require_root("min_secret_bits_refuses_short_secrets") {
        return;
    }
    let u = TestUser::create("mb");
    // GA's test vector: 80-bit secret, 050548 at t = 300000.
    assert_eq!(oathtool_totp(GA_SECRET, 300_000, 30, 6, "sha1"), "050548");
    for (args, expect, prompts) in [
        ("", "PAM_SUCCESS", 1),
        ("min_secret_bits=80", "PAM_SUCCESS", 1),
        ("min_secret_bits=128", "PAM_AUTH_ERR", 1),
        ("min_secret_bits=79", "PAM_SERVICE_ERR", 0),
    ] {
        u.write_secret(&totp_file(GA_SECRET), 0o600);
        let d = run(&Stack::probe("svc", args), &u.name, "050548", 300_000);
        assert_eq!(d.module_code(), expect, "[{args}] {d:?}");
        assert_eq!(d.prompts, prompts, "[{args}]");
    }
    // A 160-bit secret passes min_secret_bits=160.
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    let d = run(
        &Stack::probe("svc", "min_secret_bits=160"),
        &u.name,
        &code_at(&secret, T0),
        T0,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS");
}

/// What one attempt returned and told the user.
type Shape = (String, Vec<(i32, String)>);

/// What a user past `max_failures=` is told (PAM_ERROR_MSG).
fn mf_message() -> (i32, String) {
    (
        3,
        "too many failed codes; the second factor is disabled until an administrator resets it"
            .to_string(),
    )
}

#[test]
fn max_failures_disables_after_the_cap() {
    if !require_root("max_failures_disables_after_the_cap") {
        return;
    }
    let (u, secret) = TestUser::enrolled("mf");
    let stack = Stack::probe("svc", "max_failures=2 throttle_after=100");
    for i in 0..2u64 {
        let d = run(&stack, &u.name, &wrong_totp(&secret, T0 + i), T0 + i);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    }
    // A correct code, even much later, is refused (still prompted), and not counted;
    // the user is told why, or a right code refused reads as a broken phone.
    for at in [T0 + 30, T0 + 86_000] {
        let d = run(&stack, &u.name, &code_at(&secret, at), at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "at {at}");
        assert_eq!(d.prompts, 1);
        assert!(d.messages.contains(&mf_message()), "at {at}: {d:?}");
    }
    assert_eq!(stored_failures(&stack, u.uid), 2);
    // R9: a name without an account meets the same cap with the same words, so the
    // message tells nothing about which names are accounts. Control: before the cap,
    // neither is told anything.
    let ghost = format!("ghostmf{}", std::process::id());
    let shapes: Vec<Vec<Shape>> = [u.name.as_str(), ghost.as_str()]
        .iter()
        .map(|name| {
            let stack = Stack::probe("svc", "max_failures=2 throttle_after=100");
            (0..3u64)
                .map(|i| {
                    let d = run(&stack, name, &wrong_totp(&secret, T0), T0 + 200 + i);
                    (d.module_code(), d.messages)
                })
                .collect()
        })
        .collect();
    assert_eq!(shapes[0], shapes[1], "an account and a name without one");
    assert!(!shapes[1][1].1.contains(&mf_message()), "{shapes:?}");
    assert!(shapes[1][2].1.contains(&mf_message()), "{shapes:?}");
    // Without the cap, the same record lets the user in.
    let d = run(
        &Stack::probe(
            "svc",
            &format!(
                "throttle_after=100 state_dir={}",
                stack.state_dir().display()
            ),
        ),
        &u.name,
        &code_at(&secret, T0 + 86_030),
        T0 + 86_030,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    for bad in ["max_failures=0", "max_failures=101"] {
        let d = run(&Stack::probe("svc", bad), &u.name, "123456", T0);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{bad}");
    }
}

#[test]
fn throttle_after_and_throttle_max_set_the_backoff() {
    if !require_root("throttle_after_and_throttle_max_set_the_backoff") {
        return;
    }
    let (u, secret) = TestUser::enrolled("th");
    // throttle_after=2: after two failures a 30-s backoff (base) runs.
    let stack = Stack::probe("svc", "throttle_after=2");
    for i in 0..2u64 {
        let d = run(&stack, &u.name, &wrong_totp(&secret, T0), T0 + i);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    }
    let before = stored(&stack, u.uid);
    let d = run(&stack, &u.name, &code_at(&secret, T0 + 10), T0 + 10);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "throttled");
    assert_eq!(d.prompts, 1, "a throttled attempt is still prompted");
    assert!(
        d.messages
            .contains(&(3, "too many failed codes; try again in 21 s".to_string())),
        "the user is told: {d:?}"
    );
    assert_eq!(stored(&stack, u.uid), before, "not charged");
    let d = run(&stack, &u.name, &code_at(&secret, T0 + 32), T0 + 32);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "backoff over: {d:?}");

    // throttle_max=5 shortens the backoff to 5 s.
    u.write_secret(&totp_file(&secret), 0o600);
    let stack = Stack::probe("svc", "throttle_after=2 throttle_max=5");
    for i in 0..2u64 {
        run(&stack, &u.name, &wrong_totp(&secret, T0), T0 + i);
    }
    let d = run(&stack, &u.name, &code_at(&secret, T0 + 3), T0 + 3);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "still within 5 s");
    let d = run(&stack, &u.name, &code_at(&secret, T0 + 7), T0 + 7);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // Default threshold 3: two failures do not throttle.
    u.write_secret(&totp_file(&secret), 0o600);
    let stack = Stack::probe("svc", "");
    for i in 0..2u64 {
        run(&stack, &u.name, &wrong_totp(&secret, T0), T0 + i);
    }
    let d = run(&stack, &u.name, &code_at(&secret, T0 + 3), T0 + 3);
    assert_eq!(d.module_code(), "PAM_SUCCESS");
    for bad in [
        "throttle_after=0",
        "throttle_after=101",
        "throttle_max=0",
        "throttle_max=86401",
    ] {
        let d = run(&Stack::probe("svc", bad), &u.name, "123456", T0);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{bad}");
    }
}

/// pam_totp(8), throttle_max=: the backoff starts at 30 s and doubles with each further
/// failure, up to the default 600 s (README: "at most `throttle_max`, default 10
/// minutes"), and an attempt refused during it is not charged and does not extend it.
/// Each failure is made as the backoff before it ends; the attempt a second after it
/// is refused unevaluated, its right code included, with the wait told. Control: once
/// the last 600 s are over, the right code logs in.
#[test]
fn the_backoff_doubles_from_30_s_up_to_the_default_600_s() {
    if !require_root("the_backoff_doubles_from_30_s_up_to_the_default_600_s") {
        return;
    }
    let (u, secret) = TestUser::enrolled("td");
    // The per-user ceiling set aside: only the origin's backoff is measured.
    let stack = Stack::probe("svc", "ceiling_burst=100");
    let from = "192.0.2.60";
    let mut last = T0;
    for i in 0..3u64 {
        last = T0 + i;
        let d = login_at(&stack, &u, &wrong_totp(&secret, last), from, last);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    }
    for (n, wait) in [30u64, 60, 120, 240, 480, 600, 600].into_iter().enumerate() {
        let failures = stored_failures(&stack, u.uid);
        assert_eq!(failures, 3 + n as u32);
        let at = last + 1;
        let d = login_at(&stack, &u, &code_at(&secret, at), from, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "[{wait}] {d:?}");
        let told = format!("too many failed codes; try again in {} s", wait - 1);
        assert!(d.messages.contains(&(3, told)), "[{wait}] {d:?}");
        assert_eq!(stored_failures(&stack, u.uid), failures, "[{wait}] charged");
        let at = last + wait;
        let d = login_at(&stack, &u, &wrong_totp(&secret, at), from, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "[{wait}] {d:?}");
        assert_eq!(
            stored_failures(&stack, u.uid),
            failures + 1,
            "[{wait}] evaluated once the backoff ended"
        );
        last = at;
    }
    let at = last + 600;
    let d = login_at(&stack, &u, &code_at(&secret, at), from, at);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

#[test]
fn lock_timeout_bounds_the_wait_for_a_held_lock() {
    if !require_root("lock_timeout_bounds_the_wait_for_a_held_lock") {
        return;
    }
    let (u, secret) = TestUser::enrolled("lt");
    // Real clock here: a frozen monotonic clock would never reach the deadline.
    let stack = Stack::probe("svc", "lock_timeout=500");
    // One failed login creates the state record; another login then holds its lock.
    let d = run(&stack, &u.name, &wrong_totp(&secret, now()), now());
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    let holder = fs::File::open(stack.state_file(u.uid)).expect("open");
    holder.lock().expect("flock");
    let started = Instant::now();
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, now()), None, None);
    let took = started.elapsed();
    assert_eq!(d.module_code(), "PAM_SYSTEM_ERR", "{d:?}");
    // The login gave up on the held lock, in the module's words.
    let record = stack.state_file(u.uid).display().to_string();
    assert!(
        lines.iter().any(|l| {
            let m = syslog_message(l);
            m.contains("timed out waiting for the lock on") && m.contains(&record)
        }),
        "the log names the record's lock: {lines:?}"
    );
    // The claim of the man page is this bound, lock_timeout=: 500 ms. A missed option
    // would wait the 4000-ms default, and never less, so the check sits just below it:
    // it always catches that, and leaves the run around the login all the slack a
    // loaded machine may need (how close to 500 ms is a speed goal, `make bench`).
    assert!(took < Duration::from_millis(3900), "waited {took:?}");
    drop(holder);
    let d = Driver::login(&stack, &u, &code_at(&secret, now())).run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // A name without an account is charged in a stand-in record: with that record's
    // lock held, its attempt ends as the account's did, as a fault of the host, or the
    // return code would tell the application which names have accounts (R9).
    let ghost = format!("ghostlt{}", std::process::id());
    let d = run(&stack, &ghost, "123456", now());
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let stand_in = stack.state_file(stack.stand_in_uid(&ghost));
    let holder = fs::File::open(&stand_in).expect("the stand-in record");
    holder.lock().expect("flock");
    let d = Driver::new(&stack, "svc", &ghost).answer("123456").run();
    assert_eq!(d.module_code(), "PAM_SYSTEM_ERR", "{d:?}");
    drop(holder);
    for bad in ["lock_timeout=5001", "lock_timeout=-1", "lock_timeout="] {
        let d = run(&Stack::probe("svc", bad), &u.name, "123456", T0);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{bad}");
    }
}

#[test]
fn unknown_or_malformed_option_is_a_service_error_for_everybody() {
    if !require_root("unknown_or_malformed_option_is_a_service_error_for_everybody") {
        return;
    }
    let (u, secret) = TestUser::enrolled("uo");
    let bare = TestUser::create("ub");
    let users = [
        u.name.clone(),
        bare.name.clone(),
        "root".to_string(),
        "nosuchuser-pt".to_string(),
        "../x".to_string(),
    ];
    for args in [
        "bogus",
        "nullok bogus",
        "debug=1",
        "secret",
        "nullok=yes",
        "grace_period=-1",
        "grace_period=10s",
        "user=123abc",
        "secret=",
        "Nullok",
    ] {
        let stack = Stack::probe("svc", args);
        for name in &users {
            let d = run(&stack, name, &code_at(&secret, T0), T0);
            assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "[{args}] {name}: {d:?}");
            assert_eq!(d.prompts, 0, "[{args}] {name}");
        }
    }
    assert!(!u.secret_path().with_file_name("never").exists());
    assert_eq!(
        read(&u.secret_path()),
        totp_file(&secret),
        "nothing evaluated"
    );
}

/// `user=` naming an account NSS does not know is a configuration error (GA: the option
/// parse fails for everybody). It must not depend on the name logging in: an invalid
/// `PAM_USER` must not turn it into a prompt and `PAM_AUTH_ERR`.
#[test]
fn user_option_naming_no_account_is_a_service_error_for_every_name() {
    if !require_root("user_option_naming_no_account_is_a_service_error_for_every_name") {
        return;
    }
    let store = root_store();
    let u = TestUser::create("un");
    let stack = Stack::probe(
        "svc",
        &format!(
            "user=nosuchaccount-pt secret={}/${{USER}}",
            store.path().display()
        ),
    );
    for name in [u.name.as_str(), "root", "nosuchuser-pt", "../x", "-rf", ""] {
        let d = run(&stack, name, "123456", T0);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{name:?}: {d:?}");
        assert_eq!(d.prompts, 0, "{name:?}");
    }
}

/// The ranges pam_totp(8) states for `grace_period=` (0–31622400, empty is off) and
/// `min_secret_bits=` (80–8192): the bounds load, one past them is a service error for
/// everybody, without a prompt.
#[test]
fn grace_period_and_min_secret_bits_take_the_ranges_the_page_states() {
    if !require_root("grace_period_and_min_secret_bits_take_the_ranges_the_page_states") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gr");
    for (i, (args, expect, prompts)) in [
        ("grace_period=", "PAM_SUCCESS", 1),
        ("grace_period=0", "PAM_SUCCESS", 1),
        ("grace_period=31622400", "PAM_SUCCESS", 1),
        // Longer periods, which GA runs with, are clamped to 366 days.
        ("grace_period=31622401", "PAM_SUCCESS", 1),
        ("grace_period=99999999999", "PAM_SUCCESS", 1),
        ("grace_period=1x", "PAM_SERVICE_ERR", 0),
        ("min_secret_bits=8192", "PAM_AUTH_ERR", 1),
        ("min_secret_bits=8193", "PAM_SERVICE_ERR", 0),
    ]
    .into_iter()
    .enumerate()
    {
        // A new step for every login, so no code is a replay of the one before.
        let at = T0 + 60 * i as u64;
        let d = Driver::login(&Stack::probe("svc", args), &u, &code_at(&secret, at))
            .rhost("192.0.2.40")
            .at(at)
            .run();
        assert_eq!(d.module_code(), expect, "[{args}] {d:?}");
        assert_eq!(d.prompts, prompts, "[{args}]");
    }
}
