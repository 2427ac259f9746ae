//! `totp-enroll resync` through the real libpam: a phone whose clock drifted is denied,
//! resynchronised with two consecutive codes, and then accepted; the two codes typed
//! for the resync never log in. The clock is frozen with libfaketime for the module
//! and for `totp-enroll` alike, and every code comes from `oathtool`.

use std::path::PathBuf;
use std::process::{Command, Output};

use system_tests::*;

const SERVICE: &str = "svc";
/// The phone's clock is 10 minutes behind this machine: 20 steps of 30 s.
const DRIFT_SECS: u64 = 600;

/// The code the drifted phone shows at machine time `t`.
fn phone_code(secret: &str, t: u64) -> String {
    oathtool_totp(secret, t - DRIFT_SECS, 30, 6, "sha1")
}

/// Runs `totp-enroll` with the clock frozen at `at`, feeding `stdin`.
/// Killed after a wall-clock limit if it hangs (`output_guarded`): under the frozen
/// clock no timeout of its own can expire.
fn enroll_at(at: u64, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(&built().enroll);
    cmd.args(args)
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME", faketime_date(at))
        .env("TZ", "UTC");
    output_guarded(
        &mut cmd,
        Input::Bytes(stdin.map(str::as_bytes).unwrap_or_default()),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The standard output of a `totp-enroll` run that must have succeeded.
fn stdout_of_success(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    stdout
}

fn login(stack: &Stack, user: &TestUser, code: &str, at: u64) -> String {
    login_at(stack, user, code, None, at).module_code()
}

fn ready(test: &str) -> bool {
    require_root(test) && require_tool(test, "oathtool")
}

#[test]
fn resync_turns_a_denied_drifted_phone_into_an_accepted_one() {
    if !ready("resync_turns_a_denied_drifted_phone_into_an_accepted_one") {
        return;
    }
    let secret = random_secret_b32();
    let user = TestUser::create("rs");
    let path = user.write_secret(&totp_file(&secret), 0o600);
    // The admin allows 30 steps of skew for this service; the CLI reads the same line.
    let stack = Stack::with_module(SERVICE, "max_time_skew=30");
    let stack_dir = stack.path().to_str().expect("utf-8").to_owned();

    // Before: the phone's current code is 20 steps off, outside the window.
    assert_eq!(
        login(&stack, &user, &phone_code(&secret, T0 - 60), T0 - 60),
        "PAM_AUTH_ERR"
    );

    // Two consecutive codes: the one shown a step ago and the one shown now.
    let first = phone_code(&secret, T0 - 30);
    let second = phone_code(&secret, T0);
    let out = enroll_at(
        T0,
        &[
            "resync",
            "--user",
            &user.name,
            "--service",
            SERVICE,
            "--pam-dir",
            &stack_dir,
            &first,
            &second,
        ],
        None,
    );
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("about 10 minutes behind this machine's (20 steps of 30 s)"),
        "{stdout}"
    );
    // The other suspect is named: a host whose clock is off would record an offset
    // that refuses the phone wherever the clock is right.
    assert!(
        stdout.contains("this machine's clock is the one that is off"),
        "{stdout}"
    );
    let file = read(&path);
    assert_eq!(file_value(&file, "TIME_SKEW").as_deref(), Some("-20"));
    let phone_step = (T0 - DRIFT_SECS) / 30;
    assert_eq!(
        file_value(&file, "PAM_TOTP_LAST_STEP"),
        Some(phone_step.to_string())
    );
    assert_eq!(mode_owner(&path), (0o600, user.uid, user.gid));

    // After: the two codes typed for the resync are refused ...
    assert_eq!(login(&stack, &user, &second, T0), "PAM_AUTH_ERR");
    assert_eq!(login(&stack, &user, &first, T0), "PAM_AUTH_ERR");
    // ... and the phone's next codes are accepted (after the short backoff the
    // three failures above started).
    let later = T0 + 60;
    assert_eq!(
        login(&stack, &user, &phone_code(&secret, later), later),
        "PAM_SUCCESS"
    );
}

#[test]
fn resync_beyond_the_cap_is_refused_and_changes_nothing() {
    if !ready("resync_beyond_the_cap_is_refused_and_changes_nothing") {
        return;
    }
    let secret = random_secret_b32();
    let user = TestUser::create("rc");
    let path = user.write_secret(&totp_file(&secret), 0o600);
    let before = read(&path);
    // The service's admin lowered the cap to 3 steps; the CLI reads it, and 20 is refused.
    let stack = Stack::with_module(SERVICE, "max_time_skew=3");
    let stack_dir = stack.path().to_str().expect("utf-8").to_owned();
    let out = enroll_at(
        T0,
        &[
            "resync",
            "--user",
            &user.name,
            "--service",
            SERVICE,
            "--pam-dir",
            &stack_dir,
            &phone_code(&secret, T0 - 30),
            &phone_code(&secret, T0),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("20 steps off") && stderr.contains("max_time_skew"),
        "{stderr}"
    );
    assert_eq!(read(&path), before, "file untouched");

    // And the module with that cap keeps denying, as the CLI said it would.
    assert_eq!(
        login(&stack, &user, &phone_code(&secret, T0), T0),
        "PAM_AUTH_ERR"
    );
}

#[test]
fn interactive_resync_reads_two_codes_and_reports_json() {
    if !ready("interactive_resync_reads_two_codes_and_reports_json") {
        return;
    }
    let secret = random_secret_b32();
    let user = TestUser::create("ri");
    // A phone 2 steps ahead: within the default cap.
    let ahead = |t: u64| oathtool_totp(&secret, t + 60, 30, 6, "sha1");
    let path = user.write_secret(&totp_file(&secret), 0o600);
    let input = format!("{}\n{}\n", ahead(T0 - 30), ahead(T0));
    let out = enroll_at(
        T0,
        &["resync", "--user", &user.name, "--json"],
        Some(&input),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["action"], "resync");
    assert_eq!(v["skew_steps"], 2);
    assert_eq!(v["drift_secs"], 60);
    // The default cap is GA's own range, ±1500 steps.
    assert_eq!(v["max_time_skew"], 1500);
    assert!(text(&out.stderr).contains("Next code: "));
    assert_eq!(file_value(&read(&path), "TIME_SKEW").as_deref(), Some("2"));

    let stack = Stack::with_module(SERVICE, "");
    let later = T0 + 30;
    assert_eq!(login(&stack, &user, &ahead(later), later), "PAM_SUCCESS");

    // Non-consecutive codes are refused and change nothing.
    let before = read(&path);
    let out = enroll_at(
        later,
        &[
            "resync",
            "--user",
            &user.name,
            &ahead(later + 60),
            &ahead(later + 120),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not consecutive"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(&path), before);
}

/// Issue 20: the default cap is GA's own range, so a phone 20 minutes off (40 steps) is
/// fixed by the user alone: `totp-enroll resync` without `--service` accepts it, and the
/// module with its default options then accepts the phone's codes.
#[test]
fn resync_without_an_admin_fixes_a_phone_twenty_minutes_off() {
    if !ready("resync_without_an_admin_fixes_a_phone_twenty_minutes_off") {
        return;
    }
    let secret = random_secret_b32();
    let user = TestUser::create("r2");
    let path = user.write_secret(&totp_file(&secret), 0o600);
    let off = |t: u64| oathtool_totp(&secret, t - 1200, 30, 6, "sha1");
    let stack = Stack::with_module(SERVICE, "");
    assert_eq!(login(&stack, &user, &off(T0 - 60), T0 - 60), "PAM_AUTH_ERR");
    let out = enroll_at(
        T0,
        &["resync", "--user", &user.name, &off(T0 - 30), &off(T0)],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        file_value(&read(&path), "TIME_SKEW").as_deref(),
        Some("-40")
    );
    let later = T0 + 60;
    assert_eq!(login(&stack, &user, &off(later), later), "PAM_SUCCESS");
}

/// Issue 20: a skew GA learned (here -1000 steps, about 8 hours) is used as written by
/// default, so its user is not locked out by the switch; `max_time_skew=` lowers the cap.
#[test]
fn a_skew_ga_learned_far_beyond_three_steps_logs_in() {
    if !ready("a_skew_ga_learned_far_beyond_three_steps_logs_in") {
        return;
    }
    let secret = random_secret_b32();
    let user = TestUser::create("r3");
    user.write_secret(
        &format!("{secret}\n\" TIME_SKEW -1000\n\" TOTP_AUTH\n"),
        0o600,
    );
    let phone = |t: u64| oathtool_totp(&secret, t - 30_000, 30, 6, "sha1");
    // Control first: an admin's cap of 3 steps refuses it (with a warning logged).
    let capped = Stack::with_module(SERVICE, "max_time_skew=3");
    assert_eq!(login(&capped, &user, &phone(T0), T0), "PAM_AUTH_ERR");
    let stack = Stack::with_module(SERVICE, "");
    assert_eq!(
        login(&stack, &user, &phone(T0 + 30), T0 + 30),
        "PAM_SUCCESS"
    );
    // The clock's own code is not what this phone shows: refused.
    let clock = oathtool_totp(&secret, T0 + 90, 30, 6, "sha1");
    assert_eq!(login(&stack, &user, &clock, T0 + 90), "PAM_AUTH_ERR");
}

/// A phone GA had learned to be 100 steps ahead gets its clock fixed. A code accepted
/// with the old offset left the state store's replay mark 100 steps ahead of the phone's
/// codes now, so after the resync they are refused as used. The resync says so, with how
/// long at most; through libpam, the phone's code is refused, `totp-state reset` keeps
/// the mark (lowering it would let the code accepted with the old offset in a second
/// time when its time comes), and the phone's code logs in once the mark has passed.
#[test]
fn a_lowered_offset_names_the_replay_mark_that_may_hold_codes_back() {
    if !ready("a_lowered_offset_names_the_replay_mark_that_may_hold_codes_back") {
        return;
    }
    let secret = random_secret_b32();
    let user = TestUser::create("rl");
    user.write_secret(
        &format!("{secret}\n\" TIME_SKEW 100\n\" TOTP_AUTH\n"),
        0o600,
    );
    let stack = Stack::with_module(SERVICE, "");
    let stack_dir = stack.path().to_str().expect("utf-8").to_owned();
    let ahead = |t: u64| oathtool_totp(&secret, t + 3000, 30, 6, "sha1");
    let fixed = |t: u64| oathtool_totp(&secret, t, 30, 6, "sha1");
    assert_eq!(login(&stack, &user, &ahead(T0), T0), "PAM_SUCCESS");

    // The phone's two consecutive codes at `at - 30` and `at`, resynced at `at`.
    let resync = |at: u64, json: bool| {
        let (first, second) = (fixed(at - 30), fixed(at));
        let mut args = vec!["resync", "--user", &user.name, "--service", SERVICE];
        args.extend(["--pam-dir", &stack_dir, &first, &second]);
        if json {
            args.push("--json");
        }
        let out = enroll_at(at, &args, None);
        stdout_of_success(&out)
    };
    let stdout = resync(T0 + 60, false);
    assert!(
        stdout.contains("The offset went down by 100 steps")
            && stdout.contains("at most 50 minutes")
            && stdout.contains("a scratch code logs in meanwhile"),
        "{stdout}"
    );

    // The claim, through libpam: the phone's code is held back by the store's mark ...
    assert_eq!(
        login(&stack, &user, &fixed(T0 + 90), T0 + 90),
        "PAM_AUTH_ERR"
    );
    // ... a reset keeps it (the code accepted at T0 shows again at T0 + 3000) ...
    let reset = output_guarded(
        Command::new(&built().state_tool)
            .args(["reset", "--user", &user.name, "--state-dir"])
            .arg(stack.state_dir())
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(T0 + 90)),
        Input::Null,
    );
    assert!(reset.status.success(), "{reset:?}");
    assert_eq!(
        login(&stack, &user, &fixed(T0 + 180), T0 + 180),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        login(&stack, &user, &fixed(T0 + 3000), T0 + 3000),
        "PAM_AUTH_ERR",
        "the code accepted with the old offset, at its own time"
    );
    // ... and once the clock has passed the mark, the phone's code logs in.
    assert_eq!(
        login(&stack, &user, &fixed(T0 + 3060), T0 + 3060),
        "PAM_SUCCESS"
    );

    // JSON: the same wait, in seconds; a resync that does not lower it says 0.
    let stdout = resync(T0 + 3120, true);
    assert!(stdout.contains("\"store_wait_up_to_secs\":0"), "{stdout}");
}

/// A user whose file holds a new HOTP secret at `HOTP_COUNTER 1`, and a home-mode stack:
/// the secret (base32), the user, the file and the stack.
fn hotp_user(tag: &str) -> (String, TestUser, PathBuf, Stack) {
    let secret = random_secret_b32();
    let user = TestUser::create(tag);
    let path = user.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let stack = Stack::with_module(SERVICE, "");
    (secret, user, path, stack)
}

/// `totp-enroll resync --user NAME` with two codes, the clock frozen at `at`.
fn resync_user(user: &TestUser, stack: &Stack, first: &str, second: &str, at: u64) -> Output {
    let dir = stack.path().to_str().expect("utf-8").to_owned();
    let args = [
        "resync",
        "--user",
        &user.name,
        "--service",
        SERVICE,
        "--pam-dir",
        &dir,
        first,
        second,
    ];
    enroll_at(at, &args, None)
}

#[test]
fn an_hotp_token_pressed_past_its_window_is_resynchronised_by_two_presses() {
    if !ready("an_hotp_token_pressed_past_its_window_is_resynchronised_by_two_presses") {
        return;
    }
    let (secret, user, path, stack) = hotp_user("rh");
    let token = |counter: u64| oathtool_hotp(&secret, counter);

    // The key fob was pressed 39 times in a pocket: its code for counter 40 is far
    // past the look-ahead (WINDOW_SIZE 3) and is denied.
    assert_eq!(login(&stack, &user, &token(40), T0), "PAM_AUTH_ERR");

    // Two more presses, typed to resync.
    let out = resync_user(&user, &stack, &token(41), &token(42), T0 + 10);
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("next code is for counter 43, 41 ahead of the file's counter 2"),
        "{stdout}"
    );
    assert_eq!(
        file_value(&read(&path), "HOTP_COUNTER").as_deref(),
        Some("43")
    );
    assert_eq!(mode_owner(&path), (0o600, user.uid, user.gid));

    // The next press logs in; the two codes typed for the resync never do.
    assert_eq!(login(&stack, &user, &token(43), T0 + 300), "PAM_SUCCESS");
    assert_eq!(login(&stack, &user, &token(42), T0 + 600), "PAM_AUTH_ERR");
    assert_eq!(login(&stack, &user, &token(41), T0 + 900), "PAM_AUTH_ERR");
}

#[test]
fn resync_brings_back_a_token_the_file_counter_overtook() {
    if !ready("resync_brings_back_a_token_the_file_counter_overtook") {
        return;
    }
    let (secret, user, path, stack) = hotp_user("rb");
    let token = |counter: u64| oathtool_hotp(&secret, counter);

    // A typo, then the right code typed again (no press): as in GA each failure moves
    // the file's counter on, so it is now one ahead of the token. From then on each
    // press fails and moves the counter on again: the token stays one behind.
    let near: Vec<String> = (1..=4).map(token).collect();
    let typo = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .expect("a code no press shows");
    assert_eq!(login(&stack, &user, &typo, T0), "PAM_AUTH_ERR");
    assert_eq!(login(&stack, &user, &token(1), T0 + 300), "PAM_AUTH_ERR");
    assert_eq!(login(&stack, &user, &token(2), T0 + 600), "PAM_AUTH_ERR");
    assert_eq!(login(&stack, &user, &token(3), T0 + 900), "PAM_AUTH_ERR");
    assert_eq!(
        file_value(&read(&path), "HOTP_COUNTER").as_deref(),
        Some("5")
    );

    // Resync with the next two presses, the first of them behind the file's counter.
    let out = resync_user(&user, &stack, &token(4), &token(5), T0 + 1000);
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("next code is for counter 6, 1 ahead of the file's counter 5"),
        "{stdout}"
    );
    assert_eq!(login(&stack, &user, &token(6), T0 + 1300), "PAM_SUCCESS");
    // What a login accepted stays refused whatever the file says (the store's mark).
    assert_eq!(login(&stack, &user, &token(6), T0 + 1600), "PAM_AUTH_ERR");
}

/// The documented set-up of a hardware token whose seed comes with it: the file written
/// by hand (the seed, `HOTP_COUNTER 1`), then aligned with the token's first two
/// presses. A token counting from 0 (RFC 4226) would otherwise start one behind.
#[test]
fn a_hand_written_hardware_token_file_is_aligned_by_its_first_two_presses() {
    if !ready("a_hand_written_hardware_token_file_is_aligned_by_its_first_two_presses") {
        return;
    }
    let (seed, user, path, stack) = hotp_user("rz");
    let token = |counter: u64| oathtool_hotp(&seed, counter);

    let (first, second) = (token(0), token(1));
    let args = ["resync", "--json", "--user", &user.name, &first, &second];
    let out = enroll_at(T0, &args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["action"], "resync", "{v}");
    assert_eq!(v["counter"], 2, "{v}");
    assert_eq!(v["previous_counter"], 1, "{v}");
    assert_eq!(
        file_value(&read(&path), "HOTP_COUNTER").as_deref(),
        Some("2")
    );
    assert_eq!(login(&stack, &user, &token(2), T0 + 10), "PAM_SUCCESS");
    assert_eq!(login(&stack, &user, &token(3), T0 + 20), "PAM_SUCCESS");
}

/// `secret`'s TOTP file with `DISALLOW_REUSE`, padded with an unknown line (GA keeps
/// such lines) to `len` bytes.
fn padded_file(secret: &str, len: usize) -> String {
    let mut text = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n\" X_PAD ");
    while text.len() < len - 1 {
        text.push('a');
    }
    text.push('\n');
    text
}

/// A file a few bytes under GA's 64 KiB cap, which logins keep working with (their
/// bookkeeping lines left as they are): resync failed "file is larger than 65536
/// bytes", so a user who still logs in with a good clock could not be resynchronised.
/// Now the offset is written where its line fits, the bookkeeping lines are left as a
/// login leaves them (and the warning says what that means), and the drifted phone
/// logs in. Controls: one byte less room refuses with the cause named and the file
/// untouched; with room, every line is written and no warning given.
#[test]
fn resync_of_a_file_at_the_size_cap_writes_the_offset_a_login_needs() {
    if !ready("resync_of_a_file_at_the_size_cap_writes_the_offset_a_login_needs") {
        return;
    }
    // What a resync may fill: GA's next login needs the rest
    // (`a_resync_near_the_cap_leaves_room_for_ga_s_next_login`).
    let cap = totp_core::gafile::MAX_FILE_LEN - totp_core::resync::GA_LOGIN_RESERVE;
    let skew_line = "\" TIME_SKEW -20\n".len();
    let secret = random_secret_b32();
    let user = TestUser::create("rsz");
    let stack = Stack::with_module(SERVICE, "max_time_skew=30");
    let stack_dir = stack.path().to_str().expect("utf-8").to_owned();
    let resync = |at: u64| {
        enroll_at(
            at,
            &[
                "resync",
                "--user",
                &user.name,
                "--service",
                SERVICE,
                "--pam-dir",
                &stack_dir,
                &phone_code(&secret, at - 30),
                &phone_code(&secret, at),
            ],
            None,
        )
    };

    // Control: one byte short of room for the offset's line.
    let path = user.write_secret(&padded_file(&secret, cap - skew_line + 1), 0o600);
    let before = read(&path);
    let out = resync(T0);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no room for its TIME_SKEW line") && !stderr.contains("is larger than"),
        "{stderr}"
    );
    assert_eq!(read(&path), before, "file untouched");

    // Room for the offset only: written, the rest left as a login leaves it.
    let path = user.write_secret(&padded_file(&secret, cap - skew_line), 0o600);
    let out = resync(T0);
    let stdout = stdout_of_success(&out);
    assert!(!stdout.contains("used up"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("PAM_TOTP_LAST_STEP and DISALLOW_REUSE lines were left as they were")
            && stderr.contains("may log in once"),
        "{stderr}"
    );
    let file = read(&path);
    assert_eq!(file.len(), cap);
    assert_eq!(file_value(&file, "TIME_SKEW").as_deref(), Some("-20"));
    assert_eq!(file_value(&file, "PAM_TOTP_LAST_STEP"), None);
    let later = T0 + 60;
    assert_eq!(
        login(&stack, &user, &phone_code(&secret, later), later),
        "PAM_SUCCESS"
    );

    // Control: room for every line.
    let path = user.write_secret(&padded_file(&secret, cap - 1000), 0o600);
    let at = T0 + 600;
    let out = resync(at);
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("used up"), "{stdout}");
    assert!(
        !text(&out.stderr).contains("left as"),
        "{}",
        text(&out.stderr)
    );
    let file = read(&path);
    assert_eq!(file_value(&file, "TIME_SKEW").as_deref(), Some("-20"));
    assert!(file_value(&file, "PAM_TOTP_LAST_STEP").is_some(), "{file}");
}

/// GA checks a secret file's size when it reads it, never when it writes: a resync
/// that filled a file to the last byte GA reads (the offset's line written into the 16
/// bytes left) had GA's next login append its `DISALLOW_REUSE` step, and every login
/// after it, GA's and the module's, refused the file as too large: the user was locked
/// out on every host. Now such a resync is refused, the file untouched and still
/// logging in with GA; control: the same file with GA's reserve left free is
/// resynchronised, and GA logs the drifted phone in twice (the file still readable).
#[test]
fn a_resync_near_the_cap_leaves_room_for_ga_s_next_login() {
    let test = "a_resync_near_the_cap_leaves_room_for_ga_s_next_login";
    if !ready(test) {
        return;
    }
    let Some(ga) = system_tests::ga_module() else {
        system_tests::skip(test, "GA's pam_google_authenticator.so");
        return;
    };
    let cap = totp_core::gafile::MAX_FILE_LEN;
    let reserve = totp_core::resync::GA_LOGIN_RESERVE;
    let skew_line = "\" TIME_SKEW -20\n".len();
    let user = TestUser::create("rzg");
    let ga_stack = Stack::new();
    ga_stack.service(SERVICE, &format!("auth required {}\n", ga.display()));
    let resync = |secret: &str| {
        enroll_at(
            T0,
            &[
                "resync",
                "--user",
                &user.name,
                &phone_code(secret, T0 - 30),
                &phone_code(secret, T0),
            ],
            None,
        )
    };

    // Room for the offset's line under the cap, none for GA's next login.
    let secret = random_secret_b32();
    let path = user.write_secret(&padded_file(&secret, cap - skew_line), 0o600);
    let before = read(&path);
    let out = resync(&secret);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no room for its TIME_SKEW line"),
        "{stderr}"
    );
    assert_eq!(read(&path), before, "file untouched");
    // GA still reads the file: a code of the machine's clock logs in.
    let code = oathtool_totp(&secret, T0 + 30, 30, 6, "sha1");
    assert_eq!(login(&ga_stack, &user, &code, T0 + 30), "PAM_SUCCESS");

    // Control: GA's reserve free.
    let secret = random_secret_b32();
    let path = user.write_secret(&padded_file(&secret, cap - reserve - skew_line), 0o600);
    let out = resync(&secret);
    stdout_of_success(&out);
    assert_eq!(
        file_value(&read(&path), "TIME_SKEW").as_deref(),
        Some("-20")
    );
    for at in [T0 + 60, T0 + 120] {
        assert_eq!(
            login(&ga_stack, &user, &phone_code(&secret, at), at),
            "PAM_SUCCESS",
            "GA at {at}"
        );
        let len = read(&path).len();
        assert!(len <= cap, "{len}");
    }
}

/// The same cap for `--regenerate-scratch-codes`: five new codes (45 bytes) written
/// into a file 50 bytes under the cap left GA's next login 5 bytes, and its
/// `DISALLOW_REUSE` step took the file past the cap, refused from then on by GA and the
/// module. Now the run is refused before any code is shown, the file untouched; control:
/// with GA's reserve free the codes are written and GA logs in twice.
#[test]
fn new_scratch_codes_near_the_cap_leave_room_for_ga_s_next_login() {
    let test = "new_scratch_codes_near_the_cap_leave_room_for_ga_s_next_login";
    if !ready(test) {
        return;
    }
    let Some(ga) = system_tests::ga_module() else {
        system_tests::skip(test, "GA's pam_google_authenticator.so");
        return;
    };
    let cap = totp_core::gafile::MAX_FILE_LEN;
    let five_codes = 5 * "12345678\n".len();
    let user = TestUser::create("rzs");
    let ga_stack = Stack::new();
    ga_stack.service(SERVICE, &format!("auth required {}\n", ga.display()));
    let regenerate_as = |how: &str| {
        enroll_at(
            T0,
            &[
                "--regenerate-scratch-codes",
                "--user",
                &user.name,
                "-e",
                "5",
                how,
                "--non-interactive",
            ],
            None,
        )
    };
    let regenerate = || regenerate_as("-q");
    let code = |secret: &str, at: u64| oathtool_totp(secret, at, 30, 6, "sha1");

    let secret = random_secret_b32();
    let path = user.write_secret(&padded_file(&secret, cap - five_codes - 5), 0o600);
    let before = read(&path);
    let out = regenerate();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot replace the scratch codes"),
        "{stderr}"
    );
    assert_eq!(read(&path), before, "file untouched");
    // Refused before the codes are shown (totp-enroll(1)): `--json` prints none.
    let out = regenerate_as("--json");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        !text(&out.stdout).contains("scratch_codes"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(read(&path), before, "file untouched");
    assert_eq!(
        login(&ga_stack, &user, &code(&secret, T0), T0),
        "PAM_SUCCESS"
    );

    // Control: GA's reserve free.
    let secret = random_secret_b32();
    let reserve = totp_core::resync::GA_LOGIN_RESERVE;
    let path = user.write_secret(&padded_file(&secret, cap - reserve - five_codes), 0o600);
    let out = regenerate_as("--json");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"scratch_codes\""),
        "{}",
        text(&out.stdout)
    );
    let file = read(&path);
    assert_eq!(file.len(), cap - reserve, "five codes written");
    for at in [T0 + 60, T0 + 120] {
        assert_eq!(
            login(&ga_stack, &user, &code(&secret, at), at),
            "PAM_SUCCESS",
            "GA at {at}"
        );
        let len = read(&path).len();
        assert!(len <= cap, "{len}");
    }
}

/// `--regenerate-scratch-codes -e N` on a file with no room for N more code lines said
/// "file is larger than 65536 bytes" of a file within the cap: it now says there is no
/// room for the N codes (the cap named), and leaves the file untouched. Control: with
/// room for them and for GA's next login, the codes are written.
#[test]
fn regenerated_scratch_codes_without_room_are_refused_with_the_cause() {
    if !ready("regenerated_scratch_codes_without_room_are_refused_with_the_cause") {
        return;
    }
    let cap = totp_core::gafile::MAX_FILE_LEN;
    let lines = 5 * "12345678\n".len();
    let secret = random_secret_b32();
    let user = TestUser::create("rgz");
    let regenerate = || {
        enroll_at(
            T0,
            &[
                "--regenerate-scratch-codes",
                "-q",
                "-e",
                "5",
                "--user",
                &user.name,
            ],
            None,
        )
    };
    let path = user.write_secret(&padded_file(&secret, cap - lines + 1), 0o600);
    let before = read(&path);
    let out = regenerate();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("has no room for 5 scratch codes") && !stderr.contains("is larger than"),
        "{stderr}"
    );
    assert_eq!(read(&path), before, "file untouched");

    // Control: room for them and for GA's next login.
    let reserve = totp_core::resync::GA_LOGIN_RESERVE;
    let path = user.write_secret(&padded_file(&secret, cap - reserve - lines), 0o600);
    let out = regenerate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = read(&path);
    assert_eq!(file.len(), cap - reserve);
    let codes = file
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .count();
    assert_eq!(codes, 5, "{}", &file[file.len() - 60..]);
}

/// `--json` names the bookkeeping lines a resync near the size cap left as they were
/// (totp-enroll(1): `lines_not_updated`), as the warning on standard error does, so a
/// configuration tool that reads only the JSON knows the two codes typed are not marked
/// used in the file; the phone's next code logs in. Control: with room for every line,
/// the field is empty and nothing is warned.
#[test]
fn resync_json_names_the_lines_left_near_the_size_cap() {
    if !ready("resync_json_names_the_lines_left_near_the_size_cap") {
        return;
    }
    let cap = totp_core::gafile::MAX_FILE_LEN - totp_core::resync::GA_LOGIN_RESERVE;
    let skew_line = "\" TIME_SKEW -20\n".len();
    let secret = random_secret_b32();
    let user = TestUser::create("rjz");
    let stack = Stack::with_module(SERVICE, "max_time_skew=30");
    let stack_dir = stack.path().to_str().expect("utf-8").to_owned();
    let resync = |at: u64| {
        let out = enroll_at(
            at,
            &[
                "resync",
                "--user",
                &user.name,
                "--service",
                SERVICE,
                "--pam-dir",
                &stack_dir,
                "--json",
                &phone_code(&secret, at - 30),
                &phone_code(&secret, at),
            ],
            None,
        );
        let v: serde_json::Value =
            serde_json::from_str(&stdout_of_success(&out)).expect("one JSON object");
        let left: Vec<String> = v["lines_not_updated"]
            .as_array()
            .expect("lines_not_updated is a list")
            .iter()
            .map(|l| l.as_str().expect("a line's key").to_owned())
            .collect();
        (v, left, text(&out.stderr))
    };

    let path = user.write_secret(&padded_file(&secret, cap - skew_line), 0o600);
    let (v, left, stderr) = resync(T0);
    assert_eq!(v["skew_steps"], -20, "{v}");
    assert_eq!(left, ["PAM_TOTP_LAST_STEP", "DISALLOW_REUSE"], "{v}");
    assert!(stderr.contains("left as they were"), "{stderr}");
    assert_eq!(read(&path).len(), cap);
    let later = T0 + 60;
    assert_eq!(
        login(&stack, &user, &phone_code(&secret, later), later),
        "PAM_SUCCESS"
    );

    // Control: room for every line.
    user.write_secret(&padded_file(&secret, cap - 1000), 0o600);
    let (v, left, stderr) = resync(T0 + 600);
    assert_eq!(v["skew_steps"], -20, "{v}");
    assert!(left.is_empty(), "{v}");
    assert!(!stderr.contains("left as"), "{stderr}");
}
