//! The admin CLIs as commands (issue "operations"): a closed pipe ends them quietly,
//! a state directory that does not exist is an error, `totp-state --service` reads the
//! store from the PAM service, `explain` without `--rhost` is a console login, and
//! `check` warns about a missing service and names the store it used, and `totp-state`
//! with no store named fails where the default one was never used.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use system_tests::*;

/// Runs `cmd` with standard output on a pipe whose reader is already closed: every
/// write fails with EPIPE, as with `| head` once head has exited.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    cmd.stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run")
}

/// A stack with one recorded login, so `show` has something to print; `tag` is the
/// calling test's own.
fn recorded(tag: &str) -> (Stack, TestUser) {
    let (u, secret) = TestUser::enrolled(tag);
    let stack = Stack::with_module("svc", "");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    (stack, u)
}

#[test]
fn a_closed_pipe_ends_the_tools_quietly() {
    if !require_root("a_closed_pipe_ends_the_tools_quietly") {
        return;
    }
    let (stack, u) = recorded("co");
    // Control: with a reader, the record is printed.
    let out = stack.state_tool(&["show", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&u.name));
    for args in [vec!["show", "--json"], vec!["show"]] {
        let out = with_closed_stdout(
            Command::new(&built().state_tool)
                .args(&args)
                .arg("--state-dir")
                .arg(stack.state_dir()),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(
            stderr.is_empty(),
            "{args:?}: no panic, no message: {stderr}"
        );
    }
    // In a directory the module accepts (root-controlled from `/`): explain then prints
    // no warning first, and the closed pipe is met by the explanation itself.
    let dir = system_tests::fleet::trusted_dir("co-rules");
    let rules = dir.path().join("access.conf");
    fs::write(&rules, "+ : ALL : 10.0.0.0/8\n").expect("rules");
    fs::set_permissions(&rules, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let out = with_closed_stdout(
        Command::new(&built().enroll)
            .args(["explain", "--user", "root", "--accessfile"])
            .arg(&rules),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn a_state_directory_that_does_not_exist_is_an_error() {
    if !require_root("a_state_directory_that_does_not_exist_is_an_error") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("nonexistent");
    let out = Command::new(&built().state_tool)
        .args(["show", "--state-dir"])
        .arg(&missing)
        .output()
        .expect("totp-state");
    // Nothing could be looked at: the status of a check that could not be made.
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no state directory"),
        "{out:?}"
    );
    // Control: an existing, empty directory the module would accept (not below the
    // sticky, world-writable /tmp) lists nothing and succeeds.
    let trusted = system_tests::fleet::trusted_dir("sd-empty");
    let out = Command::new(&built().state_tool)
        .args(["show", "--state-dir"])
        .arg(trusted.path())
        .output()
        .expect("totp-state");
    assert!(out.status.success(), "{out:?}");
}

/// `totp-state show` without `--user` listed the store's directory by a path that
/// follows symlinks, while reading, resetting and the module walk to it following none:
/// a symlinked store path was listed (and each record then failed to read, or an empty
/// target read as "nothing recorded"). It is now listed through the store's own walk and
/// refused as `show --user` refuses it, naming the symlink. Controls: `show --user` on
/// the same path is refused the same way, and the real directory lists the user.
#[test]
fn a_symlinked_state_directory_is_refused_by_the_listing_too() {
    if !require_root("a_symlinked_state_directory_is_refused_by_the_listing_too") {
        return;
    }
    let (stack, u) = recorded("sy");
    let base = system_tests::fleet::trusted_dir("sy-link");
    let link = base.path().join("state");
    std::os::unix::fs::symlink(stack.state_dir(), &link).expect("symlink");
    let show = |extra: &[&str]| {
        Command::new(&built().state_tool)
            .arg("show")
            .args(extra)
            .arg("--state-dir")
            .arg(&link)
            .output()
            .expect("totp-state")
    };
    let refused = "component \"state\" is a symlink; not followed";
    let out = show(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains(refused), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&u.name),
        "{out:?}"
    );
    // Control: the read every other command makes is refused alike (the record shown
    // as unusable).
    let out = show(&["--user", &u.name]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(refused),
        "{out:?}"
    );
    // Control: the real directory lists the user.
    let out = stack.state_tool(&["show"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&u.name),
        "{out:?}"
    );
}

#[test]
fn totp_state_service_uses_the_services_store() {
    if !require_root("totp_state_service_uses_the_services_store") {
        return;
    }
    let (stack, u) = recorded("cs");
    // The stack's service line names its own state_dir=: --service finds it.
    let out = Command::new(&built().state_tool)
        .args([
            "show",
            "--json",
            "--user",
            &u.name,
            "--service",
            "svc",
            "--pam-dir",
        ])
        .arg(stack.path())
        .output()
        .expect("totp-state");
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains(&format!("\"last_step\":{}", T0 / 30)),
        "{json}"
    );
    // A service without the module, and two lines naming different stores: errors.
    fs::write(stack.path().join("plain"), "auth required pam_permit.so\n").expect("write");
    stack.service(
        "two",
        "auth required @MODULE@\nauth required @MODULE@ state_dir=/var/lib/other-store\n",
    );
    for (service, why) in [("plain", "no auth line"), ("two", "different stores")] {
        let out = Command::new(&built().state_tool)
            .args(["show", "--service", service, "--pam-dir"])
            .arg(stack.path())
            .output()
            .expect("totp-state");
        assert_eq!(out.status.code(), Some(2), "{service}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{service}: {out:?}"
        );
    }
}

fn explain(rules: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(&built().enroll)
        .args(["explain", "--json", "--user", "root", "--accessfile"])
        .arg(rules)
        .args(extra)
        .output()
        .expect("totp-enroll explain");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn explain_without_rhost_is_a_console_login() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("access.conf");
    fs::write(&rules, "+ : ALL : LOCAL\n- : ALL : ALL\n").expect("rules");
    fs::set_permissions(&rules, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let console = explain(&rules, &["--tty", "tty1"]);
    let remote = explain(&rules, &["--rhost", "192.0.2.7", "--tty", "pts/0"]);
    assert_ne!(
        console.to_string(),
        remote.to_string(),
        "a console login and a remote one are told apart"
    );
    assert!(console.to_string().contains("LOCAL"), "{console}");
}

fn check(dir: &Path, service: &str) -> Output {
    Command::new(&built().enroll)
        .args(["check", "--user", "root", "--service", service, "--pam-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("totp-enroll check")
}

#[test]
fn check_warns_about_a_missing_service_and_names_the_store() {
    if !require_root("check_warns_about_a_missing_service_and_names_the_store") {
        return;
    }
    let stack = Stack::new();
    stack.service("svc", "auth required @MODULE@ allowed_perm=0640\n");
    // A misspelt service: libpam runs "other", and the tool says so.
    let out = check(stack.path(), "scv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no service \"scv\"") && stderr.contains("\"other\""),
        "{stderr}"
    );
    // The real one: its store and its weakening option are named.
    let out = check(stack.path(), "svc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "state store: the directory {}",
            stack.state_dir().display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("option allowed_perm weakens security"),
        "{stderr}"
    );
    assert!(!stderr.contains("no service"), "{stderr}");
}

/// Stacks copied from guides: `totp-enroll check` says what the line's control value or
/// type does to a wrong code; the stacks of the examples get no such warning.
#[test]
fn check_warns_about_lines_that_let_a_wrong_code_through() {
    if !require_root("check_warns_about_lines_that_let_a_wrong_code_through") {
        return;
    }
    let unix = "auth required pam_unix.so\n";
    let cases = [
        (
            format!("{unix}auth optional @MODULE@\n"),
            "auth line is optional: a wrong or missing code does not fail the login",
        ),
        (
            format!("auth sufficient @MODULE@\n{unix}"),
            "auth line is sufficient: a right code ends the stack",
        ),
        (
            format!(
                "{unix}auth [success=1 default=ignore] @MODULE@\nauth requisite pam_deny.so\n\
                 auth required pam_permit.so\n"
            ),
            "auth line [success=1 default=ignore] a wrong code is ignored",
        ),
        (
            format!("{unix}auth [success=done auth_err=ok default=die] @MODULE@\n"),
            "a wrong code counts as a success",
        ),
        (
            format!("{unix}account required @MODULE@\n"),
            "line of type account fails every time",
        ),
        // libpam takes no jump of 0 and makes every result of the line bad
        // (audit_stack_differential.rs proves it through libpam).
        (
            format!("{unix}auth [success=0 default=die] @MODULE@\n"),
            "libpam cannot read the control value [success=0 default=die]",
        ),
    ];
    for (lines, want) in &cases {
        let stack = Stack::new();
        stack.service("svc", lines);
        let out = check(stack.path(), "svc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{lines}: {stderr}");
    }
    // Control: the examples' forms draw none of these warnings.
    for lines in [
        "auth required @MODULE@\n".to_owned(),
        format!("{unix}auth [success=ok ignore=ignore default=die] @MODULE@\n"),
        format!("{unix}auth requisite @MODULE@\n"),
    ] {
        let stack = Stack::new();
        stack.service("svc", &lines);
        let out = check(stack.path(), "svc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("CONTROL VALUES"), "{lines}: {stderr}");
        assert!(!stderr.contains("PAM LINE TYPES"), "{lines}: {stderr}");
        assert!(stderr.contains("state store:"), "{lines}: {stderr}");
    }
}

#[test]
fn totp_state_show_names_each_origins_last_remote_address() {
    if !require_root("totp_state_show_names_each_origins_last_remote_address") {
        return;
    }
    let (u, secret) = TestUser::enrolled("rh");
    let stack = Stack::with_module("svc", "");
    for (host, at) in [("192.0.2.44", T0), ("2001:db8::44", T0 + 30)] {
        let d = login_at(&stack, &u, &wrong_totp(&secret, at), host, at);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    }
    // A console failure: an origin without an address.
    let d = Driver::login(&stack, &u, &wrong_totp(&secret, T0 + 60))
        .tty("tty3")
        .at(T0 + 60)
        .run();
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    let out = stack.state_tool(&["show", "--json", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut hosts: Vec<String> = v["origins"]
        .as_array()
        .expect("origins")
        .iter()
        .map(|o| o["last_rhost"].as_str().unwrap_or("-").to_owned())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["-", "192.0.2.44", "2001:db8::44"], "{v}");
    let out = stack.state_tool(&["show", "--user", &u.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(last from 192.0.2.44)"), "{text}");
}

/// An HOTP user's record: `show` names the highest counter used and where the next
/// login's codes start, even when the file (restored from a backup here) says less,
/// and does not call the user's logins "none recorded".
#[test]
fn totp_state_show_tells_an_hotp_users_counter() {
    if !require_root("totp_state_show_tells_an_hotp_users_counter") {
        return;
    }
    let u = TestUser::create("hs");
    let secret = random_secret_b32();
    let backup = format!("{secret}\n\" HOTP_COUNTER 1\n");
    u.write_secret(&backup, 0o600);
    let stack = Stack::with_module("svc", "");
    for counter in 1..=3u64 {
        let d = login_at(&stack, &u, &oathtool_hotp(&secret, counter), None, T0);
        assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    }
    u.write_secret(&backup, 0o600);
    let out = stack.state_tool(&["show", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("highest HOTP counter used: 3 (codes are accepted from counter 4 on"),
        "{text}"
    );
    assert!(!text.contains("none recorded"), "{text}");
    // What it says is what a login does: the restored file's counter 1 is refused.
    let d = login_at(&stack, &u, &oathtool_hotp(&secret, 1), None, T0 + 60);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    let d = login_at(&stack, &u, &oathtool_hotp(&secret, 4), None, T0 + 120);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
}

/// A `state_dir=` below a directory anyone can write (sticky /tmp) is refused: any user
/// could create the directory first and deny every login. The login is denied with a
/// log line naming the cause, nothing is created; the same user logs in with a state
/// directory below root-only directories.
#[test]
fn a_state_dir_below_a_sticky_world_writable_directory_is_refused() {
    let t = "a_state_dir_below_a_sticky_world_writable_directory_is_refused";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("sk");
    let sticky = tempfile::Builder::new()
        .prefix("pam_totp-sticky")
        .tempdir_in("/tmp")
        .expect("tempdir in /tmp");
    let state = sticky.path().join("state");
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!("auth required @MODULE@ state_dir={}\n", state.display()),
    );
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sticky") && l.contains("state_dir=")),
        "{lines:#?}"
    );
    assert!(!state.exists(), "nothing created below /tmp");
    // Control: the stack's own state directory (below root-only directories).
    let ok = Stack::with_module("svc", "");
    let d = login_at(&ok, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
}

/// The facts the module logs only with `debug` (here an 80-bit secret and a window above
/// the admin's cap) are what `totp-enroll check` reports for the user it checks, read
/// as the module reads the file; a file the module would refuse is named with why.
#[test]
fn check_reports_what_the_module_logs_only_with_debug() {
    if !require_root("check_reports_what_the_module_logs_only_with_debug") {
        return;
    }
    let u = TestUser::create("cw");
    u.write_secret("JBSWY3DPEHPK3PXP\n\" WINDOW_SIZE 21\n\" TOTP_AUTH\n", 0o600);
    let stack = Stack::new();
    stack.service("svc", "auth required @MODULE@\n");
    let check = || {
        Command::new(&built().enroll)
            .args(["check", "--user", &u.name, "--service", "svc", "--pam-dir"])
            .arg(stack.path())
            .stdin(Stdio::null())
            .output()
            .expect("totp-enroll check")
    };
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret is only 80 bits"), "{stderr}");
    // A usable file, its code prompt unanswered (standard input closed): not checked.
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr.contains("WINDOW_SIZE 21 exceeds the admin cap; using 17"),
        "{stderr}"
    );
    // A file the module would refuse: named, with the reason.
    u.write_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n", 0o644);
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the module would deny") && stderr.contains("mode 0644"),
        "{stderr}"
    );
    // What the tool found is a problem found, whatever the prompt got.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// A host migrated one service at a time: `totp-enroll check --service svc` names the
/// google-authenticator line left in `sudo` on the same secret files under the default
/// `shared_file=auto`, with the words `totp-state audit` uses; it said nothing of it.
/// Control: with `shared_file=yes` (GA's lines kept up to date) no such warning.
#[test]
fn check_names_a_ga_line_left_on_the_same_secret_files() {
    if !require_root("check_names_a_ga_line_left_on_the_same_secret_files") {
        return;
    }
    let warning = "loads pam_google_authenticator.so on the secret files";
    for (args, warned) in [("", true), (" shared_file=yes", false)] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\nauth required @MODULE@{args}\n"),
        );
        stack.service("sudo", "auth required pam_google_authenticator.so\n");
        let out = check(stack.path(), "svc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let sudo_line = format!("{}:1 ", stack.path().join("sudo").display());
        assert_eq!(
            stderr.contains(&format!("warning: {sudo_line}{warning}")),
            warned,
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("state store:"), "{args:?}: {stderr}");
        let audit = Command::new(&built().state_tool)
            .args(["audit", "--user", "root", "--service", "svc", "--pam-dir"])
            .arg(stack.path())
            .output()
            .expect("totp-state audit");
        let audit_err = String::from_utf8_lossy(&audit.stderr);
        assert_eq!(
            audit_err.contains(&format!("{sudo_line}{warning}")),
            warned,
            "the audit agrees: {audit_err}"
        );
    }
}

/// totp-enroll(1): with `--json`, a failure is one `error` object on standard output
/// with kind `usage` for bad flags. That holds for the usage errors the flag parser
/// finds itself (a conflict, a value out of range, an unknown flag, in a subcommand
/// too), not only for those found later: a provisioning tool reading standard output
/// used to get nothing at all for them. Without `--json` standard output stays empty,
/// and `--help` is still help.
#[test]
fn json_usage_errors_are_json_on_standard_output() {
    let cases: &[&[&str]] = &[
        &["-t", "-D", "-W", "-C", "--non-interactive", "-r", "3", "-u"],
        &["-t", "-r", "11", "-R", "30"],
        &["-t", "--digits", "9"],
        &["--no-such-flag"],
        &["resync", "--bogus"],
        &["check"],
    ];
    for args in cases {
        let out = Command::new(&built().enroll)
            .args(*args)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .expect("run totp-enroll");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: standard output is not one JSON object ({e}): {:?}; stderr {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(v["error"]["kind"], "usage", "{args:?}: {v}");
        assert_eq!(v["error"]["exit_code"], 2, "{args:?}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{args:?}: {v}"
        );
        // Without --json: the same status, nothing on standard output.
        let plain = Command::new(&built().enroll)
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .expect("run totp-enroll");
        assert_eq!(plain.status.code(), Some(2), "{args:?}");
        assert!(plain.stdout.is_empty(), "{args:?}: {plain:?}");
    }
    let help = Command::new(&built().enroll)
        .args(["--json", "--help"])
        .output()
        .expect("run totp-enroll");
    assert!(help.status.success(), "{help:?}");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
}

/// An existing `--qr-png` file is not replaced without `-f`, nothing is written, and the
/// refusal points at `-f` only: the hint for an existing secret file
/// (`--regenerate-scratch-codes`) is no way out for an image, and the run used to give it.
#[test]
fn an_existing_qr_file_is_refused_with_a_hint_that_fits_it() {
    let dir = tempfile::Builder::new()
        .prefix("pam_totp-qr")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    let png = dir.path().join("qr.png");
    let secret = dir.path().join("ga");
    fs::write(&png, b"an older image").expect("write png");
    let run = |force: bool| {
        let mut cmd = Command::new(&built().enroll);
        cmd.args(ENROLL_SCRIPTED)
            .arg("--json")
            .arg("--qr-png")
            .arg(&png)
            .arg("-s")
            .arg(&secret)
            .stdin(Stdio::null());
        if force {
            cmd.arg("-f");
        }
        cmd.output().expect("run totp-enroll")
    };
    let out = run(false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["error"]["kind"], "exists", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("qr.png") && message.contains("-f/--force"),
        "{v}"
    );
    assert!(
        !message.contains("regenerate"),
        "a hint for secret files: {v}"
    );
    assert!(!secret.exists(), "nothing written");
    assert_eq!(fs::read(&png).expect("png"), b"an older image");

    let out = run(true);
    assert!(out.status.success(), "{out:?}");
    assert!(secret.exists());
    assert!(fs::read(&png).expect("png").starts_with(b"\x89PNG"));
}

/// Finding: a `-f` re-enrolment that failed after its QR image was written (the secret
/// file's lock held past the wait) had already overwritten the old `--qr-png` image, and
/// its clean-up then removed it: the previous image was gone, though the previous
/// secret stayed. Now images are written under temp names and take their path only
/// after the secret file took its own. A test holding the secret's `flock` makes the
/// run fail: the old image is byte for byte what it was, and no temp file is left.
/// Control: without the lock the same run replaces it.
#[test]
fn a_failed_forced_enrolment_keeps_the_previous_qr_image() {
    let dir = tempfile::tempdir_in(private_tmp()).expect("tempdir");
    let png = dir.path().join("q.png");
    let secret = dir.path().join("ga");
    let run = || {
        Command::new(&built().enroll)
            .args(ENROLL_SCRIPTED)
            .arg("--json")
            .arg("-f")
            .arg("--qr-png")
            .arg(&png)
            .arg("-s")
            .arg(&secret)
            .stdin(Stdio::null())
            .output()
            .expect("run totp-enroll")
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let before_png = fs::read(&png).expect("png");
    let before_secret = fs::read(&secret).expect("secret");
    let entries = || {
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    {
        let held = fs::File::open(&secret).expect("open secret");
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        let out = run();
        assert!(!out.status.success(), "the lock was held: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\"written\":false"),
            "{out:?}"
        );
    }
    assert_eq!(fs::read(&secret).expect("secret"), before_secret);
    assert_eq!(
        fs::read(&png).expect("png"),
        before_png,
        "the old image stays"
    );
    assert_eq!(entries(), ["ga", "q.png"], "no temp file left");

    let out = run();
    assert!(out.status.success(), "{out:?}");
    assert_ne!(fs::read(&secret).expect("secret"), before_secret);
    let after = fs::read(&png).expect("png");
    assert!(after.starts_with(b"\x89PNG") && after != before_png);
    assert_eq!(entries(), ["ga", "q.png"]);
}

/// Finding: answering "no" to "update your file?" with `--uri` printed the otpauth URI
/// of a secret no file holds and exited 0, so a script enrolled the phone with a secret
/// its logins never accept. Now the URI is not printed, the exit status is 1 and no
/// file is written. Control: answering "y" prints the URI of the secret
/// then in the file, exit 0.
#[test]
fn a_declined_save_prints_no_uri() {
    let dir = tempfile::tempdir_in(private_tmp()).expect("tempdir");
    let secret = dir.path().join("ga");
    let answer = |reply: &str, path: &Path| {
        let mut child = Command::new(&built().enroll)
            .args(["-t", "-d", "-W", "-u", "-C", "-Q", "NONE", "--uri", "-s"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run totp-enroll");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(reply.as_bytes()).expect("answer");
        }
        child.wait_with_output().expect("totp-enroll")
    };
    let out = answer("no\n", &secret);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("otpauth://"),
        "no URI: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not saved"),
        "{out:?}"
    );
    assert!(!secret.exists(), "nothing written");

    let out = answer("y\n", &secret);
    assert!(out.status.success(), "{out:?}");
    let uri = String::from_utf8_lossy(&out.stdout);
    let now = fs::read_to_string(&secret).expect("secret");
    let key = now.lines().next().unwrap_or_default();
    assert!(
        uri.lines()
            .any(|l| l.contains("otpauth://totp/") && l.contains(&format!("secret={key}&"))),
        "the URI of the secret in the file: {uri} {now}"
    );
}

/// Finding (R4): root enrolling itself with `--qr-png` in a directory another account
/// owns wrote a root-owned image there, through a directory that account controls
/// (and could swap for a link to /etc while root waits). Now a QR directory owned by
/// neither the caller nor root is a usage error (exit 2) before the secret is shown, and
/// nothing is written, the secret file included. Control: the same run with the directory root's succeeds.
#[test]
fn root_writes_no_qr_image_into_another_accounts_directory() {
    if !require_root("root_writes_no_qr_image_into_another_accounts_directory") {
        return;
    }
    let daemon = totp_os::nss::lookup_user_by_name("daemon")
        .expect("nss")
        .expect("the daemon account");
    let dir = tempfile::tempdir_in(private_tmp()).expect("tempdir");
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(daemon.uid), Some(daemon.gid)).expect("chown");
    let secret = dir.path().join("ga");
    let run = |qr_dir: &Path| {
        Command::new(&built().enroll)
            .args(ENROLL_SCRIPTED)
            .arg("--qr-png")
            .arg(qr_dir.join("q.png"))
            .arg("-s")
            .arg(&secret)
            .stdin(Stdio::null())
            .output()
            .expect("run totp-enroll")
    };
    let out = run(&theirs);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither yours nor root's"),
        "{out:?}"
    );
    assert_eq!(
        fs::read_dir(&theirs).expect("read_dir").count(),
        0,
        "nothing written there"
    );
    assert!(!secret.exists(), "no secret file either");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("secret key"),
        "refused before the secret is shown: {out:?}"
    );

    let ours = dir.path().join("ours");
    fs::create_dir(&ours).expect("mkdir");
    let out = run(&ours);
    assert!(out.status.success(), "{out:?}");
    assert!(secret.exists());
    assert!(
        fs::read(ours.join("q.png"))
            .expect("png")
            .starts_with(b"\x89PNG")
    );
}

/// README, "Migrating from google-authenticator": the audit before the switch runs on a
/// copy of the PAM directory with the word changed, includes read from the copy. On the
/// directory as it still is (the GA module named) it can only say there is no pam_totp
/// line, which is why the README no longer tells people to run it there.
#[test]
fn the_readmes_audit_before_the_switch_works_on_a_changed_copy() {
    if !require_root("the_readmes_audit_before_the_switch_works_on_a_changed_copy") {
        return;
    }
    let (u, _) = TestUser::enrolled("ra");
    let live = tempfile::tempdir().expect("tempdir");
    fs::write(
        live.path().join("common-auth"),
        "auth [success=1 default=ignore] pam_unix.so nullok\n\
         auth requisite pam_deny.so\nauth required pam_permit.so\n",
    )
    .expect("common-auth");
    fs::write(
        live.path().join("sshd"),
        "@include common-auth\nauth required pam_google_authenticator.so nullok\n",
    )
    .expect("sshd");
    let audit = |dir: &Path| {
        state_tool(&[
            "audit",
            "--service",
            "sshd",
            "--pam-dir",
            dir.to_str().expect("utf-8"),
        ])
    };
    let out = audit(live.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no auth line for pam_totp.so"),
        "{out:?}"
    );

    // The README's steps: copy, change the word in the copy, audit the copy.
    let copy = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", live.path().display()))
        .arg(copy.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let status = Command::new("sed")
        .args(["-i", r"s/pam_google_authenticator\.so/pam_totp.so/"])
        .arg(copy.path().join("sshd"))
        .status()
        .expect("sed");
    assert!(status.success());
    let out = audit(copy.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{}: ok:", u.name))),
        "the enrolled account is audited: {out:?}"
    );
}

/// Finding: `totp-state reset --user` (and `show`) with no store named acted on the
/// default state directory, and on a host whose pam_totp lines name another store
/// (`state_dir=`, `state=redis…`) said "no record, nothing to clear" and exited 0, which
/// a runbook reads as success. With the default directory never used (no store key; an
/// empty /var/lib in a private mount namespace): exit 1, naming the directory looked
/// at and --service/--options. Controls: the store named with --service is reset; a
/// default directory a login has used (its store key there) still says "no record"
/// and succeeds.
#[test]
fn a_reset_of_an_unused_default_store_names_it_and_fails() {
    if !require_root("a_reset_of_an_unused_default_store_names_it_and_fails") {
        return;
    }
    // Its own tag: user names are per process and tag, and tests run in parallel.
    let (u, secret) = TestUser::enrolled("ud");
    let stack = Stack::with_module("svc", "");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let tool = built().state_tool.display().to_string();
    let empty_var_lib = "mount -t tmpfs -o mode=755 none /var/lib";
    let used = format!(
        "{empty_var_lib}\n'{tool}' init --options state_dir={DEFAULT} >/dev/null",
        DEFAULT = "/var/lib/pam_totp/state"
    );
    let in_ns = |setup: &str, args: &[&str]| {
        let mut inner = Command::new(&built().state_tool);
        inner.args(args);
        in_private_mounts(setup, stack.path(), &inner)
            .output()
            .expect("run totp-state")
    };
    // A reset failed; a show could not look.
    for (args, status) in [
        (&["reset", "--user", &u.name][..], 1),
        (&["show", "--user", &u.name], 2),
        (&["show"], 2),
    ] {
        let out = in_ns(empty_var_lib, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {out:?}");
        assert!(
            stderr.contains("default state directory /var/lib/pam_totp/state")
                && stderr.contains("--service")
                && stderr.contains("--options"),
            "{args:?}: {stderr}"
        );
        // Control: a default directory logins have used holds no record of the user,
        // and says so with success.
        let out = in_ns(&used, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = in_ns(&used, &["reset", "--user", &u.name]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no record, nothing to clear"),
        "{out:?}"
    );
    // Control: the store named through the service is the one reset.
    let out = Command::new(&built().state_tool)
        .args(["reset", "--user", &u.name, "--service", "svc", "--pam-dir"])
        .arg(stack.path())
        .output()
        .expect("totp-state");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("used codes stay used"),
        "{out:?}"
    );
}

/// A script that keeps the URI and lets the rest go (`totp-enroll --user NAME … --uri |
/// head -n 1`): once the file is in place, the "Wrote" line after the URI meets a
/// closed pipe. The enrolment is done and its secret handed out, so the run succeeds;
/// it used to fail ("cannot write to the terminal"), and a script answering a failure
/// with `-f` would replace the secret it had just given the user. The pipe is closed
/// deterministically by strace, which fails exactly the chosen write with EPIPE.
#[test]
fn a_reader_gone_after_the_uri_does_not_fail_a_done_enrolment() {
    if !require_root("a_reader_gone_after_the_uri_does_not_fail_a_done_enrolment")
        || !require_tool("a_reader_gone_after_the_uri", "strace")
    {
        return;
    }
    let u = TestUser::create("cg");
    let secret_file = u.home.join(".google_authenticator");
    let out_dir = system_tests::fleet::trusted_dir("cg-out");
    let stdout = out_dir.path().join("stdout");
    // `fail_write`: the how-manieth write to standard output fails with EPIPE.
    let enrol = |fail_write: Option<u32>| {
        let _ = fs::remove_file(&secret_file);
        let file = fs::File::create(&stdout).expect("stdout file");
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o", "/dev/null", "-P"])
            .arg(&stdout);
        cmd.arg("-e").arg("trace=write");
        if let Some(n) = fail_write {
            cmd.arg("-e")
                .arg(format!("inject=write:error=EPIPE:when={n}"));
        }
        let out = cmd
            .arg(&built().enroll)
            .args([
                "--user", &u.name, "-t", "-d", "-f", "-u", "-W", "-C", "--uri",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .output()
            .expect("strace totp-enroll");
        let printed = fs::read_to_string(&stdout).expect("read stdout");
        (out, printed)
    };
    let uri_secret = |printed: &str| {
        printed
            .lines()
            .next()
            .and_then(|l| l.split("secret=").nth(1))
            .and_then(|s| s.split('&').next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no URI: {printed}"))
    };

    // Control: nothing fails; the URI, then the "Wrote" line.
    let (out, printed) = enrol(None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(
        printed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("Wrote ")),
        "{printed}"
    );

    // The reader gone before the URI: nothing handed out, nothing written (R29).
    let (out, printed) = enrol(Some(1));
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(printed.is_empty(), "{printed}");
    assert!(
        !secret_file.exists(),
        "a secret nobody received was written"
    );

    // The reader gone after the URI: the enrolment stands, and says so by its status.
    let (out, printed) = enrol(Some(2));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        printed.lines().count(),
        1,
        "only the URI got out: {printed}"
    );
    let file = fs::read_to_string(&secret_file).expect("the secret file was written");
    assert!(
        file.starts_with(&uri_secret(&printed)),
        "the file holds the secret of the URI handed out"
    );
}

/// `totp-state audit … 2>&1 | head -n 1` in a cron job: once the reader is gone, a
/// warning or the final error message meets a closed standard error. The exit status
/// stays the one the run chose (it was 101, a panic, which tells neither "problem
/// found" nor "could not look").
#[test]
fn a_closed_standard_error_keeps_the_exit_status() {
    if !require_root("a_closed_standard_error_keeps_the_exit_status") {
        return;
    }
    let stack = Stack::new();
    // A code-only stack: the audit warns on standard error before anything else.
    stack.service("svc", "auth required @MODULE@\n");
    let pam_dir = stack.path().to_str().expect("utf-8").to_owned();
    let cases: [(&std::path::Path, Vec<&str>, i32); 3] = [
        (
            &built().state_tool,
            vec![
                "audit",
                "--service",
                "svc",
                "--pam-dir",
                &pam_dir,
                "--user",
                "no-such-cs",
            ],
            1,
        ),
        (&built().state_tool, vec!["show", "--user", "no-such-cs"], 2),
        (
            &built().enroll,
            vec![
                "--user",
                "no-such-cs",
                "-t",
                "-d",
                "-f",
                "-u",
                "-W",
                "-C",
                "-q",
            ],
            1,
        ),
    ];
    for (tool, args, status) in cases {
        // Control: with a reader, the status and the message that goes with it.
        let out = Command::new(tool).args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(status), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: {out:?}");
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(tool)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(writer))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(status), "{args:?}: {out:?}");
    }
}

/// A run from Ansible or cron may get a standard input that never ends and never
/// speaks (a pipe held open by the runner): a subcommand that prompts waited on it for
/// ever. With `--non-interactive`, `resync` without its codes and `check` at the
/// module's prompt end at once, exit 2, saying why. Controls: without the flag the same
/// runs are still waiting when the harness kills them, and the same stack answered
/// by standard input logs in.
#[test]
fn non_interactive_resync_and_check_never_read_standard_input() {
    if !require_root("non_interactive_resync_and_check_never_read_standard_input") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ni");
    let stack = Stack::new();
    stack.service(
        "svc",
        "auth required pam_permit.so\nauth required @MODULE@\n",
    );
    let resync = |extra: &[&str]| {
        let mut c = Command::new(&built().enroll);
        c.args(["resync", "--user", &u.name]).args(extra);
        c
    };
    let check = |extra: &[&str]| {
        let mut c = Command::new(&built().enroll);
        c.args(["check", "--user", &u.name, "--service", "svc", "--pam-dir"])
            .arg(stack.path())
            .args(extra);
        c
    };
    // Generous: the flag makes the run end without reading anything.
    let ends = std::time::Duration::from_secs(120);
    let out = output_within(&mut resync(&["--non-interactive"]), Input::HeldOpen, ends)
        .expect("resync --non-interactive ended");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("non-interactive") && err.contains("CODE1 CODE2"),
        "{err}"
    );
    let out = output_within(&mut check(&["--non-interactive"]), Input::HeldOpen, ends)
        .expect("check --non-interactive ended");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("left unanswered (--non-interactive)"), "{err}");

    // Controls: without the flag both wait on the silent pipe until killed.
    let waits = std::time::Duration::from_secs(3);
    assert!(
        output_within(&mut resync(&[]), Input::HeldOpen, waits).is_none(),
        "resync without --non-interactive did not wait for its codes"
    );
    assert!(
        output_within(&mut check(&[]), Input::HeldOpen, waits).is_none(),
        "check without --non-interactive did not wait for the code"
    );
    let code = format!("{}\n", code_at(&secret, now()));
    let out = output_guarded(&mut check(&[]), Input::Bytes(code.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `totp-enroll check --strict`: a stack that lets the login in while the check warned
/// about it (a `sufficient` line ending the stack before the code) exits 1, not 0.
/// Control: the same login through a stack with no warning exits 0 with `--strict`, and
/// without `--strict` the warned stack still exits 0.
#[test]
fn strict_check_counts_a_warned_stack_that_lets_the_login_in() {
    if !require_root("strict_check_counts_a_warned_stack_that_lets_the_login_in") {
        return;
    }
    let (u, secret) = TestUser::enrolled("sw");
    let stack = Stack::new();
    stack.service(
        "warned",
        "auth sufficient pam_permit.so\nauth required @MODULE@\n",
    );
    stack.service(
        "clean",
        "auth required pam_permit.so\nauth required @MODULE@\n",
    );
    let run = |service: &str, strict: bool, at_code: bool| {
        let mut c = Command::new(&built().enroll);
        c.args([
            "check",
            "--user",
            &u.name,
            "--service",
            service,
            "--pam-dir",
        ])
        .arg(stack.path());
        if strict {
            c.arg("--strict");
        }
        let code = if at_code {
            format!("{}\n", code_at(&secret, now()))
        } else {
            String::new()
        };
        output_guarded(&mut c, Input::Bytes(code.as_bytes()))
    };
    let out = run("warned", false, false);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning:"),
        "{out:?}"
    );
    let out = run("warned", true, false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(--strict)"),
        "{out:?}"
    );
    // Control: no warning, the right code, `--strict`: 0.
    let out = run("clean", true, true);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning:"),
        "{out:?}"
    );
}

/// The harness guard of direct runs under a frozen clock (`guarded_within`, used by
/// `output_guarded` and `Driver::run`): a CLI run that waits for ever (here `resync`
/// prompting on a silent pipe, with libfaketime freezing its clock) is killed and
/// named a frozen-clock hang instead of hanging the test run. Control: the same run
/// with its standard input at its end returns its own status (2, no answer).
#[test]
fn a_frozen_clock_cli_run_that_hangs_is_killed_by_the_guard() {
    if !require_root("a_frozen_clock_cli_run_that_hangs_is_killed_by_the_guard") {
        return;
    }
    let (u, _) = TestUser::enrolled("fg");
    let resync = || {
        let mut c = Command::new(&built().enroll);
        c.args(["resync", "--user", &u.name])
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(T0))
            .env("TZ", "UTC");
        c
    };
    let limit = std::time::Duration::from_secs(3);
    let hang = guarded_within(&mut resync(), Input::HeldOpen, limit)
        .expect_err("a hung frozen-clock run was not killed");
    assert_eq!(hang.limit, limit);
    assert!(hang.to_string().contains("frozen"), "{hang}");
    let out = guarded_within(&mut resync(), Input::Null, FROZEN_CLOCK_LIMIT)
        .expect("the control run ended");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A control value that fails a wrong code but not the module's own failures
/// (`[success=ok auth_err=die default=ignore]`): through libpam, a conversation that
/// aborts or fails at the prompt (or any fault the module returns, `PAM_SYSTEM_ERR` for a
/// lock its owner holds) passes the line, and the stack's other lines log the user in
/// without a code. `totp-enroll check` said nothing of it (it read only what the line does
/// to a wrong code); it now names the failures the line lets through. Control: a wrong
/// code is refused on that line, and `required` fails the aborted login and draws no
/// warning.
#[test]
fn check_warns_about_a_line_that_lets_the_modules_own_failures_through() {
    use system_tests::pamapp::{Reply, Scripted, Transaction, codes};
    if !require_root("check_warns_about_a_line_that_lets_the_modules_own_failures_through") {
        return;
    }
    let (u, _secret) = TestUser::enrolled("cf");
    let aborted = |stack: &Stack, reply: i32| {
        let conv = Box::new(Scripted::new([Reply::Fail(reply)]));
        let mut tx =
            Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
        tx.authenticate(0)
    };
    let open = Stack::new();
    open.service(
        "svc",
        "auth [success=ok auth_err=die default=ignore] @MODULE@\nauth required pam_permit.so\n",
    );
    for reply in [codes::ABORT, codes::CONV_ERR] {
        assert_eq!(aborted(&open, reply), codes::SUCCESS, "the fault: {reply}");
    }
    let conv = Box::new(Scripted::texts(["000000"]));
    let mut tx = Transaction::start("svc", Some(&u.name), Some(open.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::AUTH_ERR, "control: a wrong code");
    let stderr = String::from_utf8_lossy(&check(open.path(), "svc").stderr).into_owned();
    assert!(
        stderr.contains("a wrong code fails, but the module's own failures")
            && stderr.contains("PAM_CONV_ERR")
            && stderr.contains("PAM_ABORT")
            && stderr.contains("PAM_SYSTEM_ERR"),
        "{stderr}"
    );
    let closed = Stack::new();
    closed.service(
        "svc",
        "auth required @MODULE@\nauth required pam_permit.so\n",
    );
    assert_eq!(aborted(&closed, codes::ABORT), codes::ABORT, "control");
    let stderr = String::from_utf8_lossy(&check(closed.path(), "svc").stderr).into_owned();
    assert!(!stderr.contains("CONTROL VALUES"), "control: {stderr}");
    assert!(stderr.contains("state store:"), "control: {stderr}");
}

/// `totp-state show --user` of a store refused as a whole (here a symlinked
/// `--state-dir`) said the record's logins "are denied until `totp-state reset …`",
/// which is refused for the same reason. It now says the store's fault must be fixed.
/// Controls: that reset is indeed refused; a record unusable on its own (corrupt, in the
/// real directory) still names the reset, which then succeeds.
#[test]
fn a_record_of_a_refused_store_names_the_store_fault_not_a_reset() {
    if !require_root("a_record_of_a_refused_store_names_the_store_fault_not_a_reset") {
        return;
    }
    let (stack, u) = recorded("su");
    let base = system_tests::fleet::trusted_dir("su-link");
    let link = base.path().join("state");
    std::os::unix::fs::symlink(stack.state_dir(), &link).expect("symlink");
    let link = link.to_str().expect("UTF-8");
    let refused = "component \"state\" is a symlink; not followed";
    let suggests_reset = "logins are denied until `totp-state reset";
    let out = state_tool(&["show", "--user", &u.name, "--state-dir", link]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    assert!(stdout.contains(refused), "{stdout}");
    assert!(!stdout.contains(suggests_reset), "{stdout}");
    assert!(
        stdout.contains("denied until that fault is fixed; `totp-state reset` is refused"),
        "{stdout}"
    );
    // Control: the reset the old text suggested is refused.
    let out = state_tool(&["reset", "--user", &u.name, "--state-dir", link]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(refused),
        "{out:?}"
    );
    // Control: a corrupt record of a usable store still names the reset, which works.
    fs::write(stack.state_file(u.uid), b"not a record").expect("corrupt the record");
    let out = stack.state_tool(&["show", "--user", &u.name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    assert!(stdout.contains("state record unusable"), "{stdout}");
    assert!(stdout.contains(suggests_reset), "{stdout}");
    let out = stack.state_tool(&["reset", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
}
