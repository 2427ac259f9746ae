//! Replay marks belong to the enrolment, throttling to the account (R35, issue 20),
//! through the real libpam: re-enrolling with a new secret, a new step size or a new
//! HOTP token needs no admin, and failures charged before it still count after it.

use std::fs;
use std::os::unix::fs::MetadataExt;

use system_tests::*;

#[test]
fn a_new_secret_logs_in_in_the_same_step_and_the_old_one_stays_used() {
    if !require_root("a_new_secret_logs_in_in_the_same_step_and_the_old_one_stays_used") {
        return;
    }
    let (old, new) = (random_secret_b32(), random_secret_b32());
    let u = TestUser::create("em");
    u.write_secret(&totp_file(&old), 0o600);
    let stack = Stack::probe("svc", "");
    assert_eq!(
        login_at(&stack, &u, &code_at(&old, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    // Re-enrolled within the same 30-s step: the new secret's code of this step was
    // never used, so it works (the old marks would have refused it).
    u.write_secret(&totp_file(&new), 0o600);
    let d = login_at(&stack, &u, &code_at(&new, T0 + 1), None, T0 + 1);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(
        login_at(&stack, &u, &code_at(&new, T0 + 1), None, T0 + 2).module_code(),
        "PAM_AUTH_ERR",
        "the new secret's marks hold"
    );
    // The old file restored from a backup: its used code is still refused, its next
    // one works.
    u.write_secret(&totp_file(&old), 0o600);
    assert_eq!(
        login_at(&stack, &u, &code_at(&old, T0), None, T0 + 3).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        login_at(&stack, &u, &code_at(&old, T0 + 30), None, T0 + 30).module_code(),
        "PAM_SUCCESS"
    );
    let record = stored(&stack, u.uid);
    assert_eq!(record.marks.len(), 2, "{record:?}");
}

#[test]
fn a_new_step_size_logs_in_without_an_admin() {
    if !require_root("a_new_step_size_logs_in_without_an_admin") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("es");
    u.write_secret(&totp_file(&secret), 0o600);
    let stack = Stack::probe("svc", "");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    // The same secret re-enrolled with 60-s steps (step numbers halve), then with 10-s
    // steps (they triple): neither is a clock fault nor a lockout.
    for (step, at) in [(60u64, T0 + 40), (10, T0 + 100)] {
        u.write_secret(
            &format!("{secret}\n\" STEP_SIZE {step}\n\" TOTP_AUTH\n"),
            0o600,
        );
        let code = oathtool_totp(&secret, at, step, 6, "sha1");
        let d = login_at(&stack, &u, &code, None, at);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "step {step}: {d:?}");
        assert_eq!(
            login_at(&stack, &u, &code, None, at + 1).module_code(),
            "PAM_AUTH_ERR",
            "step {step}: replayed"
        );
    }
}

#[test]
fn a_new_hotp_token_starts_at_its_own_counter() {
    if !require_root("a_new_hotp_token_starts_at_its_own_counter") {
        return;
    }
    let (old, new) = (random_secret_b32(), random_secret_b32());
    let u = TestUser::create("eh");
    let stack = Stack::probe("svc", "");
    u.write_secret(&format!("{old}\n\" HOTP_COUNTER 1\n"), 0o600);
    for counter in 1..=8u64 {
        let d = login_at(
            &stack,
            &u,
            &oathtool_hotp(&old, counter),
            None,
            T0 + counter,
        );
        assert_eq!(d.module_code(), "PAM_SUCCESS", "old token {counter}: {d:?}");
    }
    // A new token whose counter starts again at 1.
    u.write_secret(&format!("{new}\n\" HOTP_COUNTER 1\n"), 0o600);
    let d = login_at(&stack, &u, &oathtool_hotp(&new, 1), None, T0 + 20);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "new token: {d:?}");
    assert_eq!(
        login_at(&stack, &u, &oathtool_hotp(&new, 1), None, T0 + 21).module_code(),
        "PAM_AUTH_ERR"
    );
}

/// A user moved from an HOTP token to a phone (TOTP) and back to the same token, whose
/// file comes back from configuration management with its old `HOTP_COUNTER 1`: the
/// phone starts fresh, and the token's used counters stay used (its marks were kept
/// with its enrolment), refused as reused; its next press logs in.
#[test]
fn an_hotp_token_given_back_keeps_its_used_counters() {
    if !require_root("an_hotp_token_given_back_keeps_its_used_counters") {
        return;
    }
    let (token, phone) = (random_secret_b32(), random_secret_b32());
    let u = TestUser::create("eb");
    let stack = Stack::probe("svc", "");
    let hotp = format!("{token}\n\" HOTP_COUNTER 1\n");
    u.write_secret(&hotp, 0o600);
    for counter in 1..=3u64 {
        let d = login_at(
            &stack,
            &u,
            &oathtool_hotp(&token, counter),
            None,
            T0 + counter,
        );
        assert_eq!(d.module_code(), "PAM_SUCCESS", "token {counter}: {d:?}");
    }
    u.write_secret(&totp_file(&phone), 0o600);
    let d = login_at(&stack, &u, &code_at(&phone, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "phone: {d:?}");

    u.write_secret(&hotp, 0o600);
    for counter in 1..=3u64 {
        let at = T0 + 60 * (counter + 1);
        let (d, log) = login_logged(&stack, &u, &oathtool_hotp(&token, counter), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "used {counter}: {d:?}");
        // The counter accepted last is a replay; the ones below it are refused as
        // older than it (the store keeps only the high-water mark).
        let said = if counter == 3 {
            "reused an already accepted code"
        } else {
            "expired code (older than the last accepted one)"
        };
        assert!(log.iter().any(|l| l.contains(said)), "{counter}: {log:?}");
    }
    let d = login_at(&stack, &u, &oathtool_hotp(&token, 4), None, T0 + 600);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the next press: {d:?}");
}

#[test]
fn throttling_stays_with_the_account_across_re_enrolment() {
    if !require_root("throttling_stays_with_the_account_across_re_enrolment") {
        return;
    }
    let (old, new) = (random_secret_b32(), random_secret_b32());
    let u = TestUser::create("et");
    u.write_secret(&totp_file(&old), 0o600);
    let stack = Stack::probe("svc", "");
    for i in 1..=3 {
        assert_eq!(
            login_at(&stack, &u, &wrong_totp(&old, T0 + i), None, T0 + i).module_code(),
            "PAM_AUTH_ERR"
        );
    }
    assert_eq!(stored_failures(&stack, u.uid), 3);
    u.write_secret(&totp_file(&new), 0o600);
    // Within the backoff the new secret's right code is refused unevaluated ...
    assert_eq!(
        login_at(&stack, &u, &code_at(&new, T0 + 4), None, T0 + 4).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        stored_failures(&stack, u.uid),
        3,
        "a refusal is not charged"
    );
    // ... and after it, accepted (control: nothing else kept it out).
    let d = login_at(&stack, &u, &code_at(&new, T0 + 40), None, T0 + 40);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(stored_failures(&stack, u.uid), 0);
}

#[test]
fn records_name_enrolments_by_a_keyed_tag_and_keep_no_secret() {
    if !require_root("records_name_enrolments_by_a_keyed_tag_and_keep_no_secret") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("ek");
    u.write_secret(&format!("{}12345678\n", totp_file(&secret)), 0o600);
    let stack = Stack::probe("svc", "");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    assert_eq!(
        login_at(&stack, &u, "12345678", None, T0 + 40).module_code(),
        "PAM_SUCCESS"
    );
    let key = stack.state_dir().join("store.key");
    let m = fs::symlink_metadata(&key).expect("store.key");
    assert!(m.file_type().is_file());
    assert_eq!((m.mode() & 0o7777, m.uid(), m.len()), (0o600, 0, 32));
    // The record holds neither the secret nor the scratch code, in any encoding.
    let record = fs::read(stack.state_file(u.uid)).expect("record");
    let raw = totp_core::base32::decode_lenient(secret.as_bytes()).expect("base32");
    for needle in [
        raw.as_slice(),
        secret.as_bytes(),
        b"12345678",
        &12_345_678u32.to_le_bytes(),
        &12_345_678u32.to_be_bytes(),
    ] {
        assert!(
            !record.windows(needle.len()).any(|w| w == needle),
            "record contains {needle:?}"
        );
    }
    // Another store (another key) names the same enrolment differently.
    let other = Stack::probe("svc", "");
    assert_eq!(
        login_at(&other, &u, &code_at(&secret, T0 + 60), None, T0 + 60).module_code(),
        "PAM_SUCCESS"
    );
    let (a, b) = (stored(&stack, u.uid), stored(&other, u.uid));
    assert_ne!(a.marks[0].0, b.marks[0].0);
}
