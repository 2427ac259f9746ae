//! Migration from google-authenticator without lockouts or silent skips (issue 20):
//! `nullok_missing_home`, and every `nullok` skip logged without `debug`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use system_tests::*;

/// `totp-enroll`'s scripted flags: time-based, replay refused, minimal window, no rate
/// limit, overwrite, no confirmation, nothing shown.
const ENROLL_FLAGS: [&str; 8] = [
    "-t",
    "-d",
    "-W",
    "-u",
    "-f",
    "-C",
    "-q",
    "--non-interactive",
];

/// Runs `totp-enroll` with `args` and the scripted flags.
fn enroll(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(&built().enroll)
        .args(args)
        .args(ENROLL_FLAGS)
        .output()
        .expect("totp-enroll")
}

/// The secret (first line) of `u`'s home file.
fn secret_of(u: &TestUser) -> String {
    fs::read_to_string(u.secret_path())
        .expect("secret file")
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn messages(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| syslog_message(l).to_owned()).collect()
}

#[test]
fn nullok_missing_home_skips_only_a_home_that_does_not_exist() {
    let t = "nullok_missing_home_skips_only_a_home_that_does_not_exist";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let gone = TestUser::create("nh");
    let home = gone.secret_path().parent().expect("home").to_path_buf();
    fs::remove_dir_all(&home).expect("remove the home");
    let plain = Stack::probe("svc", "nullok");
    let weak = Stack::probe("svc", "nullok nullok_missing_home");

    // Default: a missing home is an outage, not an opt-out: asked, denied, logged.
    let (d, lines) = login_logged(&plain, &gone, "123456", None, None);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
    let m = messages(&lines);
    assert!(
        m.iter()
            .any(|l| l.contains("does not exist") && l.contains("nullok_missing_home")),
        "{m:#?}"
    );

    // With the option: skipped without a prompt, and the skip is logged at notice
    // (priority authpriv.notice = 85) without `debug`.
    let (d, lines) = capture_syslog(&Driver::new(&weak, "svc", &gone.name).rhost("192.0.2.5"));
    assert_eq!(d.module_code(), "PAM_IGNORE", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("<85>")
            && l.contains(&format!("not asking {} from 192.0.2.5", gone.name))
            && l.contains("nullok_missing_home")),
        "{lines:#?}"
    );

    // A home that exists but cannot be entered is not "missing": still asked.
    let locked = TestUser::create("nl");
    let lhome = locked.secret_path().parent().expect("home").to_path_buf();
    fs::set_permissions(&lhome, fs::Permissions::from_mode(0o000)).expect("chmod");
    std::os::unix::fs::chown(&lhome, Some(0), Some(0)).expect("chown");
    let d = Driver::login(&weak, &locked, "123456").run();
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");

    // An enrolled user with a home is unaffected by the option.
    let (u, secret) = TestUser::enrolled("ne");
    let d = login_at(&weak, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");

    // Without nullok the option means nothing: a configuration error, no prompt.
    let d = Driver::new(&Stack::probe("svc", "nullok_missing_home"), "svc", &u.name).run();
    assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
}

/// Issue 20: homes judged like Debian's OpenSSH (user-group-modes): a home of mode 0775
/// (or 2775) whose group is the user's private group (named like the user, no other
/// member) is accepted; group write for a group with another member is refused, by the
/// module and by `totp-enroll` alike (one rule).
#[test]
fn a_group_writable_home_is_accepted_only_under_a_private_group() {
    let t = "a_group_writable_home_is_accepted_only_under_a_private_group";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let stack = Stack::with_module("svc", "");
    let enroll_user = |u: &TestUser| enroll(&["--user".as_ref(), u.name.as_ref()]);

    // useradd made a user-private group named like the user, with no other member.
    let upg = TestUser::create("gu");
    let home = upg.secret_path().parent().expect("home").to_path_buf();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o2775)).expect("chmod");
    let out = enroll_user(&upg);
    assert!(
        out.status.success(),
        "enroll under a private group: {out:?}"
    );
    let secret = secret_of(&upg);
    let code = |at: u64| oathtool_totp(&secret, at, 30, 6, "sha1");
    let d = login_at(&stack, &upg, &code(T0), None, T0);
    assert_eq!(
        d.result, "PAM_SUCCESS",
        "0775 home under a private group: {d:?}"
    );

    // The same home, once another account joins the group: refused by both.
    let other = TestUser::create("go");
    let st = {
        let _g = user_database_lock();
        shadow_tool("usermod", &["-a", "-G", &upg.name, &other.name]).expect("usermod")
    };
    assert!(st.status.success(), "usermod -a -G: {st:?}");
    let d = login_at(&stack, &upg, &code(T0 + 30), None, T0 + 30);
    assert_eq!(d.result, "PAM_AUTH_ERR", "group with another member: {d:?}");
    let out = enroll_user(&upg);
    assert!(
        !out.status.success(),
        "totp-enroll refuses what the module would: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&home.display().to_string()), "{err}");

    // Control: closing the home again lets the user in.
    fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = login_at(&stack, &upg, &code(T0 + 60), None, T0 + 60);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
}

/// Issue 20: `sudo totp-enroll -s /home/alice/.google_authenticator` (GA's habit) would
/// leave a root-owned file the module refuses; it is refused with a pointer to `--user`,
/// which writes the file as alice, and the module then accepts that file.
#[test]
fn root_writing_into_another_users_home_is_refused_and_points_to_user() {
    let t = "root_writing_into_another_users_home_is_refused_and_points_to_user";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("gs");
    let path = u.secret_path();
    let out = enroll(&["-s".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("--user {}", u.name)), "{err}");
    assert!(!path.exists(), "nothing written");
    // What it points to works, and the module accepts the result.
    let out = enroll(&["--user".as_ref(), u.name.as_ref()]);
    assert!(out.status.success(), "{out:?}");
    let secret = secret_of(&u);
    let stack = Stack::with_module("svc", "");
    let code = oathtool_totp(&secret, T0, 30, 6, "sha1");
    let d = login_at(&stack, &u, &code, None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
}

/// Scratch codes the file lists (lines of eight digits).
fn scratch_of(u: &TestUser) -> Vec<String> {
    fs::read_to_string(u.secret_path())
        .expect("secret file")
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

/// Rolling back to GA: a file `totp-enroll` wrote, that the module then used (a TOTP
/// code, a scratch code), that `totp-enroll resync` moved (`TIME_SKEW`,
/// `PAM_TOTP_LAST_STEP`) and `--regenerate-scratch-codes` renewed, still works with GA's
/// own module: the skew is honoured, the scratch code pam_totp used stays used, new ones
/// work; and back again, pam_totp reads what GA rewrote (mode 0400, `DISALLOW_REUSE`).
#[test]
fn ga_reads_what_totp_enroll_and_the_module_wrote() {
    let t = "ga_reads_what_totp_enroll_and_the_module_wrote";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let Some(ga) = ga_module() else {
        skip(
            t,
            "google-authenticator's PAM module (libpam-google-authenticator)",
        );
        return;
    };
    let u = TestUser::create("rb");
    let out = enroll(&[
        "--user".as_ref(),
        u.name.as_ref(),
        "-e".as_ref(),
        "3".as_ref(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let secret = secret_of(&u);
    let codes = scratch_of(&u);
    assert_eq!(codes.len(), 3, "{codes:?}");
    let ga_stack = Stack::new();
    ga_stack.service("svc", &format!("auth required {}\n", ga.display()));
    let ours = Stack::with_module("svc", "");
    let pam_dir = ours.path().to_str().expect("utf-8").to_owned();
    let login = |stack: &Stack, answer: &str, at: u64| login_at(stack, &u, answer, None, at);
    let totp = |at: u64| oathtool_totp(&secret, at, 30, 6, "sha1");

    // pam_totp on the file totp-enroll wrote, then GA on the same file.
    assert_eq!(login(&ours, &totp(T0), T0).result, "PAM_SUCCESS");
    assert_eq!(login(&ours, &codes[0], T0 + 5).result, "PAM_SUCCESS");
    assert!(!scratch_of(&u).contains(&codes[0]), "used code removed");
    assert_eq!(
        login(&ga_stack, &totp(T0 + 30), T0 + 30).result,
        "PAM_SUCCESS"
    );
    assert_eq!(login(&ga_stack, &codes[0], T0 + 35).result, "PAM_AUTH_ERR");

    // The phone drifts 20 steps behind; totp-enroll resync records it for both modules.
    let phone = |at: u64| oathtool_totp(&secret, at - 600, 30, 6, "sha1");
    let at = T0 + 3_000;
    let out = output_guarded(
        std::process::Command::new(&built().enroll)
            .args(["resync", "--user", &u.name, "--service", "svc", "--pam-dir"])
            .arg(&pam_dir)
            .args([phone(at - 30), phone(at)])
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(at))
            .env("TZ", "UTC"),
        Input::Null,
    );
    assert!(out.status.success(), "{out:?}");
    let file = fs::read_to_string(u.secret_path()).expect("secret file");
    assert_eq!(
        file_value(&file, "TIME_SKEW").as_deref(),
        Some("-20"),
        "{file}"
    );
    assert_eq!(
        login(&ga_stack, &phone(at + 30), at + 30).result,
        "PAM_SUCCESS"
    );
    assert_eq!(login(&ours, &phone(at + 60), at + 60).result, "PAM_SUCCESS");

    // New scratch codes for the same secret: GA takes them; the used one stays used.
    let out = std::process::Command::new(&built().enroll)
        .args([
            "--user",
            &u.name,
            "--regenerate-scratch-codes",
            "-e",
            "3",
            "-q",
            "--non-interactive",
        ])
        .output()
        .expect("totp-enroll --regenerate-scratch-codes");
    assert!(out.status.success(), "{out:?}");
    let fresh = scratch_of(&u);
    assert_eq!(fresh.len(), 3, "{fresh:?}");
    assert!(!fresh.contains(&codes[0]));
    assert_eq!(login(&ga_stack, &fresh[0], at + 65).result, "PAM_SUCCESS");
    assert_eq!(login(&ours, &fresh[1], at + 70).result, "PAM_SUCCESS");
    assert_eq!(login(&ga_stack, &fresh[1], at + 75).result, "PAM_AUTH_ERR");
    assert_eq!(login(&ours, &phone(at + 90), at + 90).result, "PAM_SUCCESS");
}

/// GA's `secret=/var/unencrypted-home/${USER}/.google_authenticator` with the per-user
/// directory the user made under umask 002 (2775, the user's private group): accepted
/// on a store's chain checked from `/` as in the home, by the module and by
/// `totp-state audit`, also through `user=` the user's own account. Refused when the
/// group has another member, or when root owns the directory (root gave the write).
#[test]
fn a_per_user_store_directory_under_the_owners_private_group_is_accepted() {
    let t = "a_per_user_store_directory_under_the_owners_private_group_is_accepted";
    if !require_root(t) {
        return;
    }
    let u = TestUser::create("ga");
    // Precondition: useradd made a user-private group (named like the user, its gid).
    let group = std::process::Command::new("getent")
        .args(["group", &u.name])
        .output()
        .expect("getent");
    let entry = String::from_utf8_lossy(&group.stdout).trim().to_owned();
    assert_eq!(
        entry,
        format!("{}:x:{}:", u.name, u.gid),
        "a user-private group"
    );
    let top = tempfile::Builder::new()
        .prefix("pam_totp-unenc")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = top.path().join(&u.name);
    fs::create_dir(&dir).expect("mkdir");
    let own = |uid: u32| std::os::unix::fs::chown(&dir, Some(uid), Some(u.gid)).expect("chown");
    own(u.uid);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2775)).expect("chmod");
    let secret = random_secret_b32();
    write_owned(
        &dir.join(".google_authenticator"),
        totp_file(&secret).as_bytes(),
        u.uid,
        u.gid,
        0o600,
    );
    let spec = format!(
        "secret={}/${{USER}}/.google_authenticator",
        top.path().display()
    );
    let stack = Stack::probe("svc", &spec);
    let with_user = Stack::probe("svc", &format!("user={} {spec}", u.name));
    let mut step = 0;
    let mut login = |stack: &Stack| {
        step += 1;
        let at = T0 + 30 * step;
        login_logged(stack, &u, &code_at(&secret, at), None, at)
    };
    let audit = |stack: &Stack| {
        let out = audit_command(stack.path())
            .output()
            .expect("totp-state audit");
        audit_verdicts(&out.stdout)
            .remove(&u.name)
            .expect("the user audited")
    };
    let refused = |lines: &[String], what: &str| {
        let m: Vec<&str> = lines.iter().map(|l| syslog_message(l)).collect();
        assert!(
            m.iter().any(
                |l| l.contains(&format!("({} is owned by uid", dir.display()))
                    && l.contains("with mode 2775")
            ),
            "{what}: {m:#?}"
        );
    };

    for s in [&stack, &with_user] {
        let (d, lines) = login(s);
        assert_eq!(
            d.module_code(),
            "PAM_SUCCESS",
            "2775, private group: {d:?} {lines:#?}"
        );
        let verdict = audit(s);
        assert_ne!(verdict.0, "refused", "{verdict:?}");
    }

    // Root owns the directory: the group write is root's doing, not the user's.
    own(0);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2775)).expect("chmod");
    for s in [&stack, &with_user] {
        let (d, lines) = login(s);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "root-owned 2775: {d:?}");
        refused(&lines, "root-owned 2775");
        assert_eq!(audit(s).0, "refused");
    }
    own(u.uid);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2775)).expect("chmod");

    // The group gains a second member: no longer private.
    let other = TestUser::create("gm");
    let st = {
        let _g = user_database_lock();
        shadow_tool("usermod", &["-a", "-G", &u.name, &other.name]).expect("usermod")
    };
    assert!(st.status.success(), "usermod -a -G: {st:?}");
    for s in [&stack, &with_user] {
        let (d, lines) = login(s);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "shared group: {d:?}");
        refused(&lines, "shared group");
        assert_eq!(audit(s).0, "refused");
    }

    // Control: the same directory closed to the group lets the user in again.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let (d, lines) = login(&stack);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "0755: {d:?} {lines:#?}");
}

/// Rolling back to GA from the line an admin gets by changing only the module's name
/// (`shared_file=` left at `auto`, a home on a local file system): an HOTP counter
/// pam_totp advanced and a scratch code it used are in the file, so GA refuses them;
/// the token's next code works with GA (the control). A time-based code is the one
/// thing GA takes once more there (the README's rollback note): the file's
/// `DISALLOW_REUSE` is obeyed but not rewritten, which this pins; with
/// `shared_file=yes` GA refuses it too. The same holds for a host migrated one service
/// at a time, GA still on another service's line (the README and `shared_file=` in
/// pam_totp(8) advise `yes` there).
#[test]
fn rollback_to_ga_from_the_default_line_keeps_hotp_and_scratch_codes_used() {
    let t = "rollback_to_ga_from_the_default_line_keeps_hotp_and_scratch_codes_used";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let Some(ga) = ga_module() else {
        skip(
            t,
            "google-authenticator's PAM module (libpam-google-authenticator)",
        );
        return;
    };
    let u = TestUser::create("rd");
    let ga_stack = Stack::new();
    ga_stack.service("svc", &format!("auth required {}\n", ga.display()));
    let ours = Stack::with_module("svc", "");
    let yes = Stack::with_module("svc", "shared_file=yes");
    let login = |stack: &Stack, answer: &str, at: u64| login_at(stack, &u, answer, None, at);

    // HOTP and a scratch code, as GA's `google-authenticator -c` writes them.
    u.write_secret(
        &format!("{GA_SECRET}\n\" HOTP_COUNTER 5\n12345678\n87654321\n"),
        0o600,
    );
    assert_eq!(
        login(&ours, &oathtool_hotp(GA_SECRET, 5), T0).result,
        "PAM_SUCCESS"
    );
    assert_eq!(login(&ours, "12345678", T0 + 5).result, "PAM_SUCCESS");
    let file = fs::read_to_string(u.secret_path()).expect("secret file");
    assert_eq!(
        file_value(&file, "HOTP_COUNTER").as_deref(),
        Some("6"),
        "{file}"
    );
    assert_eq!(
        login(&ga_stack, &oathtool_hotp(GA_SECRET, 5), T0 + 10).result,
        "PAM_AUTH_ERR"
    );
    assert_eq!(login(&ga_stack, "12345678", T0 + 15).result, "PAM_AUTH_ERR");
    // The control: the token pressed on and an unused scratch code log in with GA (GA
    // moves its counter on for each failed attempt above, so the token's press is
    // counter 8, inside GA's look-ahead of 3 wherever those moves left it).
    assert_eq!(
        login(&ga_stack, &oathtool_hotp(GA_SECRET, 8), T0 + 20).result,
        "PAM_SUCCESS"
    );
    assert_eq!(login(&ga_stack, "87654321", T0 + 25).result, "PAM_SUCCESS");

    // Time-based, DISALLOW_REUSE in the file: the default line leaves the file as it is,
    // so GA takes the code pam_totp just took; shared_file=yes writes the step for GA.
    let totp = |at: u64| oathtool_totp(GA_SECRET, at, 30, 6, "sha1");
    let at = T0 + 3_000;
    for (stack, ga_verdict) in [(&ours, "PAM_SUCCESS"), (&yes, "PAM_AUTH_ERR")] {
        u.write_secret(
            &format!("{GA_SECRET}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
            0o600,
        );
        reset_state(stack, u.uid);
        assert_eq!(login(stack, &totp(at), at).result, "PAM_SUCCESS");
        assert_eq!(login(&ga_stack, &totp(at), at + 5).result, ga_verdict);
    }
}
