//! Home directories shared by many hosts (NFS or CIFS homes) migrating from GA. Two
//! hosts are two PAM services, each with its own local state directory, reading one
//! secret file. GA keeps `DISALLOW_REUSE` and `RATE_LIMIT` in that file, so a code
//! used on one host is refused on the others and the rate limit counts every host's
//! attempts; GA's own module on the same kind of file is the control. pam_totp keeps
//! those lines up to date when the file carries them, so the swap keeps GA's
//! protection; a file without them is never written on a TOTP login, and one that
//! cannot be written still logs in.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use system_tests::*;

const SVC: &str = "sshd";

/// GA's module as a one-line service, or `None` (skipped, failing under CI=true).
fn ga_host(test: &str) -> Option<Stack> {
    let Some(ga) = ga_module() else {
        skip(
            test,
            "google-authenticator's PAM module (libpam-google-authenticator)",
        );
        return None;
    };
    let stack = Stack::new();
    stack.service(SVC, &format!("auth required {}\n", ga.display()));
    Some(stack)
}

/// Two hosts: the same module line, separate local state directories.
fn two_hosts() -> (Stack, Stack) {
    (Stack::with_module(SVC, ""), Stack::with_module(SVC, ""))
}

fn login(stack: &Stack, u: &TestUser, answer: &str, at: u64) -> Drive {
    Driver::new(stack, SVC, &u.name).answer(answer).at(at).run()
}

fn told_already_used(d: &Drive) -> bool {
    d.messages.iter().any(|(_, m)| m.contains("already used"))
}

#[test]
fn a_code_used_on_one_host_is_refused_on_another_as_with_ga() {
    let t = "a_code_used_on_one_host_is_refused_on_another_as_with_ga";
    if !require_root(t) {
        return;
    }
    let Some(ga) = ga_host(t) else { return };
    let secret = random_secret_b32();
    let text = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let step = T0 / 30;

    // Control: GA refuses the code on the second host, from the file alone.
    let g = TestUser::create("shg");
    g.write_secret(&text, 0o600);
    let code = code_at(&secret, T0);
    assert_eq!(login(&ga, &g, &code, T0).result, "PAM_SUCCESS");
    assert_eq!(login(&ga, &g, &code, T0 + 5).result, "PAM_AUTH_ERR");
    let ga_file = read(&g.secret_path());
    assert_eq!(
        file_value(&ga_file, "DISALLOW_REUSE").as_deref(),
        Some(step.to_string().as_str()),
        "{ga_file}"
    );

    // pam_totp: host A accepts; host B, whose own store has never seen the code,
    // refuses it because A recorded the step in the shared file as GA does.
    let u = TestUser::create("shr");
    let p = u.write_secret(&text, 0o600);
    let (a, b) = two_hosts();
    assert_eq!(login(&a, &u, &code, T0).result, "PAM_SUCCESS");
    let d = login(&b, &u, &code, T0 + 5);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    let after = read(&p);
    assert_eq!(
        file_value(&after, "DISALLOW_REUSE"),
        file_value(&ga_file, "DISALLOW_REUSE"),
        "{after}"
    );
    // The mode is kept (GA would force 0400).
    assert_eq!(
        fs::metadata(&p).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    // Host B itself works with the next code, which A then refuses in turn.
    let next = code_at(&secret, T0 + 30);
    assert_eq!(login(&b, &u, &next, T0 + 30).result, "PAM_SUCCESS");
    let d = login(&a, &u, &next, T0 + 31);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    let listed = file_value(&read(&p), "DISALLOW_REUSE").unwrap_or_default();
    assert_eq!(listed, format!("{step} {}", step + 1));

    // A file without GA's lines stays configuration: never written on a TOTP login.
    let plain = TestUser::create("shp");
    let text = totp_file(&secret);
    let pp = plain.write_secret(&text, 0o600);
    assert_eq!(login(&a, &plain, &code, T0).result, "PAM_SUCCESS");
    assert_eq!(read(&pp), text);
}

#[test]
fn a_shared_rate_limit_counts_the_attempts_of_every_host_as_with_ga() {
    let t = "a_shared_rate_limit_counts_the_attempts_of_every_host_as_with_ga";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let Some(ga) = ga_host(t) else { return };
    let secret = random_secret_b32();
    let text = format!("{secret}\n\" RATE_LIMIT 3 30\n\" TOTP_AUTH\n");
    let wrong = |at: u64| wrong_totp(&secret, at);

    // Control: GA counts three attempts, then refuses a right code within 30 s.
    let g = TestUser::create("slg");
    g.write_secret(&text, 0o600);
    for at in [T0, T0 + 1, T0 + 2] {
        assert_eq!(login(&ga, &g, &wrong(at), at).result, "PAM_AUTH_ERR");
    }
    let d = login(&ga, &g, &code_at(&secret, T0 + 3), T0 + 3);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 0, "GA refuses without a prompt: {d:?}");
    let ga_line = file_value(&read(&g.secret_path()), "RATE_LIMIT");

    // pam_totp: two failures on host A, one on host B (each host's own backoff is far
    // from its threshold), then the right code on host B is refused by the shared limit.
    let u = TestUser::create("slr");
    let p = u.write_secret(&text, 0o600);
    let (a, b) = two_hosts();
    assert_eq!(login(&a, &u, &wrong(T0), T0).result, "PAM_AUTH_ERR");
    assert_eq!(login(&a, &u, &wrong(T0 + 1), T0 + 1).result, "PAM_AUTH_ERR");
    assert_eq!(login(&b, &u, &wrong(T0 + 2), T0 + 2).result, "PAM_AUTH_ERR");
    let d = login(&b, &u, &code_at(&secret, T0 + 3), T0 + 3);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    // The file says what GA's says after the same four attempts.
    assert_eq!(file_value(&read(&p), "RATE_LIMIT"), ga_line);
    // Control: once the interval is over, the right code works on either host.
    let d = login(&a, &u, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
}

/// A shared file that carries GA's lines but cannot be written (a read-only export,
/// configuration management): logins work, each host still refuses its own replays.
#[test]
fn a_read_only_file_with_ga_lines_still_logs_in() {
    let t = "a_read_only_file_with_ga_lines_still_logs_in";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("sho");
    let ro = u.home.join("ro");
    fs::create_dir(&ro).expect("mkdir");
    std::os::unix::fs::chown(&ro, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).expect("chmod");
    let text = format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let f = ro.join("ga");
    write_owned(&f, text.as_bytes(), u.uid, u.gid, 0o600);
    let stack = Stack::with_module(SVC, "secret=~/ro/ga");
    let dir = ro.to_str().expect("a UTF-8 path");
    let setup = format!("mount --bind '{dir}' '{dir}'\nmount -o remount,bind,ro '{dir}'");
    let run_ro = |answer: &str, at: u64| {
        let cmd = Driver::new(&stack, SVC, &u.name)
            .answer(answer)
            .at(at)
            .command();
        let (out, lines) = with_syslog_capture_after(&setup, &cmd);
        (Drive::ran(&out), lines)
    };
    let code = code_at(&secret, T0);
    let (d, lines) = run_ro(&code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    // The rewrite was tried and failed (the control, a writable file, is rewritten:
    // a_code_used_on_one_host_is_refused_on_another_as_with_ga).
    assert!(
        lines.iter().any(|l| l.contains("not rewritten")
            && l.contains("Read-only file system")
            && l.contains("DISALLOW_REUSE")),
        "{lines:#?}"
    );
    let (d, _) = run_ro(&code, T0 + 1);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    assert_eq!(read(&f), text);
}
