//! The secret command as admins really write it, through the real libpam: a script that
//! the kernel cannot start (a `#!` line saved with CRLF, a missing interpreter, a
//! `noexec` mount, no execute bit for `secret_command_user=`), one that calls a CLI not
//! on the module's `PATH`, one that leaves a background process holding its output, a
//! program the module refuses or cannot find, a command killed by SIGKILL, output with
//! only the secret or a warning before it, and the admin tools that run the command without a login. Each denial's log line names
//! the fix; each case has a control that logs in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use system_tests::fleet::trusted_dir;
use system_tests::*;

/// A root-owned program in `dir` with exactly `text` and `mode`.
fn program(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write command");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

fn stack_for(cmd: &Path) -> Stack {
    Stack::probe(
        "svc",
        &format!(
            "throttle_after=100 secret_command={} secret_command_user=nobody \
             secret_command_timeout=1000",
            cmd.display()
        ),
    )
}

/// True when one log line of the module contains every needle.
fn logged(lines: &[String], needles: &[&str]) -> bool {
    lines.iter().any(|l| {
        let m = syslog_message(l);
        needles.iter().all(|n| m.contains(n))
    })
}

fn login(cmd: &Path, user: &TestUser, secret: &str) -> (Drive, Vec<String>) {
    login_logged(&stack_for(cmd), user, &code_at(secret, now()), PEER, None)
}

/// The login through `cmd` fails, and one log line holds every one of `needles`.
fn refused_saying(cmd: &Path, user: &TestUser, secret: &str, needles: &[&str]) {
    let (d, lines) = login(cmd, user, secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    assert!(logged(&lines, needles), "{needles:?}: {lines:?}");
}

/// A tmpfs mounted `noexec` on a directory, unmounted on drop.
struct NoexecMount(PathBuf);

impl NoexecMount {
    fn at(dir: &Path) -> NoexecMount {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "noexec,mode=0755,size=2m", "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount a noexec tmpfs");
        NoexecMount(dir.to_path_buf())
    }
}

impl Drop for NoexecMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A script the kernel refuses to start is denied with a log line naming the cause an
/// admin can act on, not the bare "No such file or directory" / "Permission denied" of
/// the exec (the program is right there): also an interpreter on a noexec mount, and a
/// CRLF `#!/usr/bin/env sh` line, which starts `env` but not the shell (exit 127, not a
/// question of `PATH`). Control: the same script, startable, logs in.
#[test]
fn a_script_the_kernel_cannot_start_denies_and_the_log_names_the_fix() {
    if !require_root("a_script_the_kernel_cannot_start_denies_and_the_log_names_the_fix") {
        return;
    }
    let u = TestUser::create("sk");
    let secret = random_secret_b32();
    let body = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let dir = trusted_dir("cmd-exec");
    let working = program(dir.path(), "working", &format!("#!/bin/sh\n{body}"), 0o755);
    let (d, lines) = login(&working, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    let crlf = program(
        dir.path(),
        "crlf",
        &format!("#!/bin/sh\r\n{}", body.replace('\n', "\r\n")),
        0o755,
    );
    let missing = program(
        dir.path(),
        "missing",
        &format!("#!/usr/bin/pam-totp-no-such-shell -e\n{body}"),
        0o755,
    );
    let root_only = program(
        dir.path(),
        "root-only",
        &format!("#!/bin/sh\n{body}"),
        0o700,
    );
    let noexec_dir = dir.path().join("noexec");
    fs::create_dir(&noexec_dir).expect("mkdir");
    let _mount = NoexecMount::at(&noexec_dir);
    let on_noexec = program(&noexec_dir, "cmd", &format!("#!/bin/sh\n{body}"), 0o755);
    let noexec_shell = noexec_dir.join("sh");
    fs::copy("/bin/sh", &noexec_shell).expect("copy the shell");
    let interpreter_on_noexec = program(
        dir.path(),
        "interpreter-on-noexec",
        &format!("#!{}\n{body}", noexec_shell.display()),
        0o755,
    );
    // The fault is real: a root shell cannot execute it either.
    let direct = Command::new(&on_noexec).arg(&u.name).output();
    assert!(
        direct.is_err_and(|e| e.raw_os_error() == Some(libc::EACCES)),
        "the mount is noexec"
    );
    let interpreter_cause = format!(
        "({}) is on a file system mounted noexec",
        noexec_shell.display()
    );
    let crlf_env = program(
        dir.path(),
        "crlf-env",
        &format!("#!/usr/bin/env sh\r\n{}", body.replace('\n', "\r\n")),
        0o755,
    );
    let (d, lines) = login(&crlf_env, &u, &secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    assert!(
        logged(
            &lines,
            &["exited with status 127", "carriage return", "dos2unix"]
        ),
        "CRLF #!/usr/bin/env line: {lines:?}"
    );
    for (what, cmd, cause) in [
        ("CRLF #! line", &crlf, "(/bin/sh\\r) does not exist"),
        (
            "missing interpreter",
            &missing,
            "(/usr/bin/pam-totp-no-such-shell) does not exist",
        ),
        (
            "not executable by secret_command_user",
            &root_only,
            "must be executable by secret_command_user",
        ),
        ("noexec mount", &on_noexec, "mounted noexec"),
        (
            "interpreter on a noexec mount",
            &interpreter_on_noexec,
            interpreter_cause.as_str(),
        ),
    ] {
        let (d, lines) = login(cmd, &u, &secret);
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{what}: {d:?} {lines:?}"
        );
        assert!(
            logged(&lines, &["secret command could not start", cause]),
            "{what}: the log names {cause:?}: {lines:?}"
        );
    }
}

/// A script that calls its vault CLI by name from /usr/local/bin works from the admin's
/// shell but exits 127 under the module's `PATH`; the log says so and names the `PATH`.
/// Control: the same CLI called by its full path logs in.
#[test]
fn a_cli_not_on_the_commands_path_is_named_in_the_log() {
    if !require_root("a_cli_not_on_the_commands_path_is_named_in_the_log") {
        return;
    }
    let u = TestUser::create("sp");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-path");
    let cli_name = format!("pam-totp-vault-{}", std::process::id());
    let cli = program(
        dir.path(),
        &cli_name,
        &format!("#!/bin/sh\ncat <<'EOF'\n{}EOF\n", totp_file(&secret)),
        0o755,
    );
    let by_name = program(
        dir.path(),
        "by-name",
        &format!("#!/bin/sh\nset -e\n{cli_name} \"$1\"\n"),
        0o755,
    );
    let by_path = program(
        dir.path(),
        "by-path",
        &format!("#!/bin/sh\nset -e\n{} \"$1\"\n", cli.display()),
        0o755,
    );
    let (d, lines) = login(&by_path, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let (d, lines) = login(&by_name, &u, &secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    assert!(
        logged(
            &lines,
            &["exited with status 127", "PATH is only /usr/sbin:/usr/bin"]
        ),
        "{lines:?}"
    );
}

/// A script that starts a helper in the background (an agent, a cache refresher) which
/// inherits its standard output: the script printed the secret and exited, but the pipe
/// stays open. The login is denied at the time limit with a log line that says the
/// command itself exited and what to do, not a bare "timed out", and nothing it started
/// is left running. Control: the helper's output sent to /dev/null logs in.
#[test]
fn a_background_child_holding_the_output_is_named_in_the_log() {
    if !require_root("a_background_child_holding_the_output_is_named_in_the_log") {
        return;
    }
    let u = TestUser::create("sb");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-bg");
    let marker = format!("{}.5", std::process::id() % 100_000 + 100_000);
    let serve = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let quiet = program(
        dir.path(),
        "quiet",
        &format!("#!/bin/sh\nsleep {marker} >/dev/null &\n{serve}"),
        0o755,
    );
    let (d, lines) = login(&quiet, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let holding = program(
        dir.path(),
        "holding",
        &format!("#!/bin/sh\nsleep {marker} &\n{serve}"),
        0o755,
    );
    refused_saying(
        &holding,
        &u,
        &secret,
        &[
            "exited (status 0)",
            "kept its standard output open",
            "/dev/null",
        ],
    );
    let left = || {
        fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
        })
    };
    let mut gone = false;
    for _ in 0..200 {
        if !left() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(gone, "the background helper was killed");
}

/// `totp-state audit` runs the secret command for each account as a login would and
/// reports its answer: a served file is usable, the not-enrolled status is "not
/// enrolled", a failing command is refused with the cause; `totp-enroll check` says the
/// same for one user. The same verdicts hold at login (the enrolled user logs in, the
/// failing one is denied).
#[test]
fn audit_and_check_run_the_secret_command_as_a_login_would() {
    if !require_root("audit_and_check_run_the_secret_command_as_a_login_would") {
        return;
    }
    let ok = TestUser::create("sao");
    let none = TestUser::create("san");
    let down = TestUser::create("sad");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-audit");
    let cmd = program(
        dir.path(),
        "cmd",
        &format!(
            "#!/bin/sh\ncase \"$1\" in\n{}) cat <<'EOF'\n{}EOF\n;;\n{}) echo 'backend down' >&2; exit 1;;\n*) exit 10;;\nesac\n",
            ok.name,
            totp_file(&secret),
            down.name
        ),
        0o755,
    );
    let stack = stack_for(&cmd);
    let out = audit_command(stack.path())
        .output()
        .expect("totp-state audit");
    let seen = audit_verdicts(&out.stdout);
    let verdict = |u: &TestUser| seen.get(&u.name).cloned().unwrap_or_default();
    assert_eq!(verdict(&ok).0, "ok", "{:?}", verdict(&ok));
    assert_eq!(verdict(&none).0, "not-enrolled", "{:?}", verdict(&none));
    assert!(
        verdict(&none).1.contains("not enrolled"),
        "{:?}",
        verdict(&none)
    );
    assert_eq!(verdict(&down).0, "refused", "{:?}", verdict(&down));
    assert!(
        verdict(&down).1.contains("exited with status 1"),
        "{:?}",
        verdict(&down)
    );
    assert!(!out.stdout.is_empty() && !String::from_utf8_lossy(&out.stdout).contains(&secret));
    // totp-enroll check says the same for one user before it asks for a code.
    let check = Command::new(&built().enroll)
        .args([
            "check",
            "--user",
            &down.name,
            "--service",
            "svc",
            "--pam-dir",
        ])
        .arg(stack.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("totp-enroll check");
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(
        said.contains("the module would deny") && said.contains("exited with status 1"),
        "{said}"
    );
    let (d, lines) = login(&cmd, &ok, &secret);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let (d, _) = login(&cmd, &down, &secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
}

/// A script that prints only the secret (`vault kv get -field=…`), with LF or CRLF:
/// without a `" TOTP_AUTH` line google-authenticator's format takes it for a file of
/// scratch codes, and it has none, so no code can be right. The login is denied with a
/// log line saying that, not "invalid verification code" (which also counted towards
/// throttling). Control: the same secret printed with its `" TOTP_AUTH` line, CRLF line
/// ends and all, logs in.
#[test]
fn a_script_printing_only_the_secret_is_told_to_print_the_whole_file() {
    if !require_root("a_script_printing_only_the_secret_is_told_to_print_the_whole_file") {
        return;
    }
    let u = TestUser::create("sl");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-bare");
    let whole = program(
        dir.path(),
        "whole",
        &format!("#!/bin/sh\nprintf '%s\\r\\n\" TOTP_AUTH\\r\\n' {secret}\n"),
        0o755,
    );
    let (d, lines) = login(&whole, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    for (what, printf) in [("LF", "%s\\n"), ("CRLF", "%s\\r\\n")] {
        let bare = program(
            dir.path(),
            "bare",
            &format!("#!/bin/sh\nprintf '{printf}' {secret}\n"),
            0o755,
        );
        let (d, lines) = login(&bare, &u, &secret);
        assert!(matches!(d.returned(), Returned::Failed(_)), "{what}: {d:?}");
        assert!(
            logged(&lines, &["no \" TOTP_AUTH", "print the whole secret file"]),
            "{what}: {lines:?}"
        );
        assert!(
            !logged(&lines, &["invalid verification code"]),
            "{what}: a right code logged as wrong: {lines:?}"
        );
    }
}

/// A program the module will not run is named in the log with the rule that refuses it
/// (the bare check said "owned by uid 65534, which is not allowed" about no file, or
/// that a directory must be owned "by root or the user"), and a program that is not
/// there is called missing, not untrusted. Control: the trusted program logs in.
#[test]
fn an_untrusted_or_missing_program_is_named_in_the_log_with_the_rule() {
    if !require_root("an_untrusted_or_missing_program_is_named_in_the_log_with_the_rule") {
        return;
    }
    let u = TestUser::create("su");
    let secret = random_secret_b32();
    let text = format!("#!/bin/sh\ncat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let dir = trusted_dir("cmd-trust");
    let trusted = program(dir.path(), "trusted", &text, 0o755);
    let (d, lines) = login(&trusted, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let theirs = program(dir.path(), "theirs", &text, 0o755);
    std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).expect("mkdir");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o775)).expect("chmod");
    let in_shared = program(&shared, "cmd", &text, 0o755);
    let rule = "must be owned by root and not writable by group or others";
    for (what, cmd) in [
        ("owned by nobody", &theirs),
        ("group-writable directory", &in_shared),
    ] {
        let (d, lines) = login(cmd, &u, &secret);
        assert!(matches!(d.returned(), Returned::Failed(_)), "{what}: {d:?}");
        let shown = cmd.display().to_string();
        assert!(
            logged(&lines, &[&shown, "not trusted", rule]),
            "{what}: {lines:?}"
        );
    }
    let gone = dir.path().join("gone");
    refused_saying(
        &gone,
        &u,
        &secret,
        &[&format!("secret command {} does not exist", gone.display())],
    );
}

/// A CLI that prints a warning on stdout before the secret ("token expires soon"): the
/// log says the secret must be the first line and where messages belong, without
/// quoting the output. Control: the warning on stderr logs in.
#[test]
fn a_warning_printed_before_the_secret_is_named_in_the_log() {
    if !require_root("a_warning_printed_before_the_secret_is_named_in_the_log") {
        return;
    }
    let u = TestUser::create("sw");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-warn");
    let serve = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let to_stderr = program(
        dir.path(),
        "stderr",
        &format!("#!/bin/sh\necho 'WARNING: token expires soon' >&2\n{serve}"),
        0o755,
    );
    let (d, lines) = login(&to_stderr, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let to_stdout = program(
        dir.path(),
        "stdout",
        &format!("#!/bin/sh\necho 'WARNING: token expires soon'\n{serve}"),
        0o755,
    );
    refused_saying(
        &to_stdout,
        &u,
        &secret,
        &["the secret must be its first line", "stderr"],
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("expires") || l.contains(&secret)),
        "the output is not quoted: {lines:?}"
    );
}

/// A command the kernel's OOM killer (or a cgroup limit) ends with SIGKILL: the log
/// names the likely killers, since the script itself never exits that way. The kill
/// is simulated by the script killing itself. Control: the same script without the
/// kill logs in.
#[test]
fn a_command_killed_by_sigkill_names_the_likely_killers() {
    if !require_root("a_command_killed_by_sigkill_names_the_likely_killers") {
        return;
    }
    let u = TestUser::create("so");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-kill");
    let serve = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let fine = program(dir.path(), "fine", &format!("#!/bin/sh\n{serve}"), 0o755);
    let (d, lines) = login(&fine, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let killed = program(
        dir.path(),
        "killed",
        &format!("#!/bin/sh\nkill -9 $$\n{serve}"),
        0o755,
    );
    refused_saying(&killed, &u, &secret, &["killed by signal 9", "OOM killer"]);
}

/// The command starts a session of its own, so nothing it starts can get back into the
/// host's: a process it forks that moves itself into the host's process group (as the
/// user's foreground group under su or sudo, it could read the terminal the next prompt
/// is typed on) is refused, stays in the command's group and is killed with it at the
/// end of the login. The script prints the secret only once that child has tried the
/// move and only when its session is not the host's, so the login succeeding is the
/// control that the attempt was made.
#[test]
fn nothing_the_command_starts_joins_the_hosts_process_group_or_session() {
    if !require_root("nothing_the_command_starts_joins_the_hosts_process_group_or_session") {
        return;
    }
    let u = TestUser::create("ss");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-sess");
    let marker = format!("{}.25", std::process::id() % 100_000 + 100_000);
    let escaping = program(
        dir.path(),
        "escaping",
        &format!(
            "#!/usr/bin/perl\n\
             use POSIX ();\n\
             sub session {{ my @f = split ' ', (split /\\) /, `cat /proc/$_[0]/stat`)[-1]; $f[3] }}\n\
             my $host = getpgrp(getppid());\n\
             pipe(my $r, my $w) or exit 3;\n\
             my $pid = fork() // exit 4;\n\
             if ($pid == 0) {{\n\
               close STDOUT; close $r;\n\
               POSIX::setpgid(0, $host);\n\
               print $w \"tried\\n\"; close $w;\n\
               exec '/bin/sleep', '{marker}';\n\
             }}\n\
             close $w;\n\
             <$r> eq \"tried\\n\" or exit 5;\n\
             session($$) != session(getppid()) or exit 6;\n\
             print <<'EOF';\n{}EOF\n",
            totp_file(&secret)
        ),
        0o755,
    );
    let (d, lines) = login(&escaping, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let left = || {
        fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
        })
    };
    let mut gone = false;
    for _ in 0..200 {
        if !left() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        gone,
        "the child that tried to join the host's group was killed"
    );
}

/// A script's interpreter decides its answer as much as the script does: an interpreter
/// someone other than root can change (owned by another account, or named through a
/// symlink in a directory others can write) denies before anything runs, and the log
/// names the interpreter. Controls: the same copy of the shell owned by root, and named
/// through a relative root symlink in a root directory, log in (the perl of the test above has
/// two hard links).
#[test]
fn a_script_whose_interpreter_others_could_change_is_never_run() {
    if !require_root("a_script_whose_interpreter_others_could_change_is_never_run") {
        return;
    }
    let u = TestUser::create("si");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-interp");
    let serve = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let subdir = |name: &str, mode: u32| {
        let d = dir.path().join(name);
        fs::create_dir(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).expect("chmod");
        d
    };
    let bin = subdir("bin", 0o755);
    let shell = bin.join("sh");
    fs::copy("/bin/sh", &shell).expect("copy the shell");
    fs::set_permissions(&shell, fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = |name: &str, interpreter: &Path| {
        program(
            dir.path(),
            name,
            &format!("#!{}\n{serve}", interpreter.display()),
            0o755,
        )
    };
    let direct = script("direct", &shell);
    let (d, lines) = login(&direct, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    std::os::unix::fs::chown(&shell, Some(65534), None).expect("chown");
    let (d, lines) = login(&direct, &u, &secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    let shown = shell.display().to_string();
    assert!(
        logged(&lines, &["interpreter", &shown, "uid 65534"]),
        "{lines:?}"
    );
    std::os::unix::fs::chown(&shell, Some(0), None).expect("chown back");

    let linked = subdir("linked", 0o755);
    // Relative, up and down again, as distributions link their interpreters.
    std::os::unix::fs::symlink("../bin/sh", linked.join("sh")).expect("symlink");
    let (d, lines) = login(&script("via-root-link", &linked.join("sh")), &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    let open = subdir("open", 0o777);
    std::os::unix::fs::symlink(&shell, open.join("sh")).expect("symlink");
    let (d, lines) = login(&script("via-open-dir", &open.join("sh")), &u, &secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    let shown = open.join("sh").display().to_string();
    assert!(logged(&lines, &["interpreter", &shown]), "{lines:?}");
}

/// What the command leaves running in a process group of its own inside its session is
/// killed with it: coreutils `timeout` puts itself and the program it runs in a new
/// group (a script wrapping its CLI in `timeout 600 vault …`), out of reach of the group
/// kill, so every login left it running as `secret_command_user=` until its own limit.
/// The script answers only once the helper is in its own group. Control: the login
/// succeeds (a helper left in the command's group is killed by the group kill:
/// `a_background_child_holding_the_output_is_named_in_the_log`).
#[test]
fn a_helper_in_a_process_group_of_its_own_is_killed_with_the_command() {
    if !require_root("a_helper_in_a_process_group_of_its_own_is_killed_with_the_command") {
        return;
    }
    let u = TestUser::create("sg");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-pgrp");
    let marker = format!("{}.75", std::process::id() % 100_000 + 100_000);
    let left = |marker: &str| {
        fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
            })
        })
    };
    let gone = |marker: &str| {
        (0..200).any(|_| {
            let g = !left(marker);
            if !g {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            g
        })
    };
    let cmd = program(
        dir.path(),
        "wrapped",
        &format!(
            "#!/bin/sh\n\
             timeout 1000 sleep {marker} >/dev/null &\n\
             while [ \"$(cut -d' ' -f5 /proc/$!/stat)\" != $! ]; do sleep 0.01; done\n\
             cat <<'EOF'\n{}EOF\n",
            totp_file(&secret)
        ),
        0o755,
    );
    let (d, lines) = login(&cmd, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(gone(&marker), "the helper in a group of its own was killed");
}

/// The interpreter check must not refuse what admins ship: the shells through the
/// usrmerge `/bin -> usr/bin` link and `/bin/sh -> dash`, an interpreter with an
/// argument, `env` with a name or with `-S`, `/usr/bin/python3 -> python3.11`, perl
/// with its hard links, a `#!` line padded past the kernel's 256-byte buffer (the
/// kernel keeps the interpreter and cuts the argument), and a script without a `#!`
/// line (the exec falls back to `/bin/sh`, as it did before the check). Each logs in.
/// Controls: `env` copied to a directory of the test and given to another account, named
/// by the same kind of line, is refused and named before anything runs; so is the
/// script without a `#!` line when `/bin/sh` is such a copy.
#[test]
fn the_interpreters_admins_ship_pass_the_check() {
    if !require_root("the_interpreters_admins_ship_pass_the_check") {
        return;
    }
    let u = TestUser::create("sn");
    let secret = random_secret_b32();
    let file = totp_file(&secret);
    let dir = trusted_dir("cmd-shipped");
    let shell_body = format!("cat <<'EOF'\n{file}EOF\n");
    let python_body = format!("import sys\nsys.stdout.write({file:?})\n");
    let mut cases = vec![
        ("#!/bin/sh", format!("#!/bin/sh\n{shell_body}")),
        ("#!/usr/bin/sh", format!("#!/usr/bin/sh\n{shell_body}")),
        ("#!/bin/bash -e", format!("#!/bin/bash -e\n{shell_body}")),
        (
            "#!/usr/bin/env -S bash -e",
            format!("#!/usr/bin/env -S bash -e\n{shell_body}"),
        ),
        ("#! /bin/sh", format!("#! /bin/sh\n{shell_body}")),
        (
            "a #! line longer than the kernel reads",
            format!("#!/bin/bash -e{}\n{shell_body}", " ".repeat(300)),
        ),
        ("no #! line", shell_body.clone()),
        (
            "#!/usr/bin/perl -w",
            format!("#!/usr/bin/perl -w\nprint <<'EOF';\n{file}EOF\n"),
        ),
    ];
    if Path::new("/usr/bin/python3").exists() {
        cases.push((
            "#!/usr/bin/env python3",
            format!("#!/usr/bin/env python3\n{python_body}"),
        ));
        cases.push((
            "#!/usr/bin/python3",
            format!("#!/usr/bin/python3\n{python_body}"),
        ));
    }
    for (i, (what, text)) in cases.iter().enumerate() {
        let cmd = program(dir.path(), &format!("shipped-{i}"), text, 0o755);
        let (d, lines) = login(&cmd, &u, &secret);
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
    }

    // Without a #! line the shell runs the script, so the shell is checked too: a copy
    // given to another account, mounted over it for this login only, is refused.
    let no_line = program(dir.path(), "no-line", &shell_body, 0o755);
    let shell = fs::canonicalize("/bin/sh").expect("the shell");
    let theirs = dir.path().join("sh-theirs");
    fs::copy(&shell, &theirs).expect("copy the shell");
    std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
    let (d, lines) = capture_syslog_with_bind(
        &theirs,
        &shell,
        &Driver::login(&stack_for(&no_line), &u, &code_at(&secret, now())).rhost(PEER),
    );
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    assert!(
        logged(&lines, &["interpreter", "(/bin/sh)", "uid 65534"]),
        "{lines:?}"
    );

    let bin = dir.path().join("bin");
    fs::create_dir(&bin).expect("mkdir");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = bin.join("env");
    fs::copy("/usr/bin/env", &env).expect("copy env");
    fs::set_permissions(&env, fs::Permissions::from_mode(0o755)).expect("chmod");
    let via_copy = program(
        dir.path(),
        "via-copy",
        &format!("#!{} sh\n{shell_body}", env.display()),
        0o755,
    );
    let (d, lines) = login(&via_copy, &u, &secret);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "control: root's copy: {d:?} {lines:?}"
    );
    std::os::unix::fs::chown(&env, Some(65534), None).expect("chown");
    refused_saying(
        &via_copy,
        &u,
        &secret,
        &["interpreter", &env.display().to_string(), "uid 65534"],
    );
}

/// `secret_command_user=` naming the very account that logs in: that account's own
/// processes could trace the command and change the secret it prints, so the login is
/// denied before the command starts, and the log says why and what to name instead.
/// Control: the same command run as a system account logs in.
#[test]
fn a_secret_command_running_as_the_user_logging_in_is_refused() {
    if !require_root("a_secret_command_running_as_the_user_logging_in_is_refused") {
        return;
    }
    let u = TestUser::create("sr");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-self");
    let cmd = program(
        dir.path(),
        "cmd",
        &format!("#!/bin/sh\ncat <<'EOF'\n{}EOF\n", totp_file(&secret)),
        0o755,
    );
    let (d, lines) = login(&cmd, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let stack = Stack::probe(
        "svc",
        &format!(
            "throttle_after=100 secret_command={} secret_command_user={} \
             secret_command_timeout=1000",
            cmd.display(),
            u.name
        ),
    );
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, now()), PEER, None);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    assert!(
        logged(
            &lines,
            &[
                "secret command not started",
                &format!("secret_command_user={} is the account logging in", u.name),
                "system account"
            ]
        ),
        "{lines:?}"
    );
}

/// `#!/usr/bin/env NAME` runs NAME, found on env's `PATH`, and NAME decides the answer
/// as much as `env` does: a NAME someone other than root can change is refused before
/// anything runs, and the log names it and the line (only `env` was checked, and such a
/// script logged in). Found on the command's fixed `PATH` (a copy given to another
/// account, mounted over `/usr/bin/bash` for one login), and on a `PATH` the line sets
/// with `-S`. A line whose program cannot be told (an option this release does not
/// know) is refused too. Controls: the same
/// lines with root's copies log in (`#!/usr/bin/env -S bash -e` and `python3`:
/// `the_interpreters_admins_ship_pass_the_check`).
#[test]
fn the_program_env_runs_is_checked_like_an_interpreter() {
    if !require_root("the_program_env_runs_is_checked_like_an_interpreter") {
        return;
    }
    let u = TestUser::create("se");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-env");
    let body = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let bash = fs::canonicalize("/usr/bin/bash").expect("bash");
    let theirs = dir.path().join("bash-theirs");
    fs::copy(&bash, &theirs).expect("copy bash");
    std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
    let on_path = program(
        dir.path(),
        "on-path",
        &format!("#!/usr/bin/env bash\n{body}"),
        0o755,
    );
    let (d, lines) = login(&on_path, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let (d, lines) = capture_syslog_with_bind(
        &theirs,
        &bash,
        &Driver::login(&stack_for(&on_path), &u, &code_at(&secret, now())).rhost(PEER),
    );
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(
        logged(
            &lines,
            &[
                "not trusted",
                &format!("({}, which #!/usr/bin/env bash runs)", bash.display()),
                "uid 65534"
            ]
        ),
        "{lines:?}"
    );

    let bin = dir.path().join("bin");
    fs::create_dir(&bin).expect("mkdir");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::copy(&bash, bin.join("bash")).expect("copy bash");
    fs::set_permissions(bin.join("bash"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let split = program(
        dir.path(),
        "split",
        &format!(
            "#!/usr/bin/env -S PATH={}:/usr/bin bash -e\n{body}",
            bin.display()
        ),
        0o755,
    );
    let (d, lines) = login(&split, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    std::os::unix::fs::chown(bin.join("bash"), Some(65534), None).expect("chown");
    let (d, lines) = login(&split, &u, &secret);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
    assert!(
        logged(
            &lines,
            &[
                &format!(
                    "({}, which #!/usr/bin/env -S PATH=",
                    bin.join("bash").display()
                ),
                "uid 65534"
            ]
        ),
        "{lines:?}"
    );

    // `-a` (the program's argv[0], newer coreutils) is not known here: refused.
    let unclear = program(
        dir.path(),
        "unclear",
        &format!("#!/usr/bin/env -S -a tool bash\n{body}"),
        0o755,
    );
    refused_saying(
        &unclear,
        &u,
        &secret,
        &["which program its #! line", "cannot be told"],
    );
}

/// A compiled (ELF) secret command: the kernel runs it itself, so only the program is
/// checked. Compiled here, root-owned, printing a secret file it reads: logs in. Refused
/// when the same binary is group-writable, the log naming the rule.
#[test]
fn a_compiled_secret_command_logs_in_and_a_group_writable_one_is_refused() {
    let t = "a_compiled_secret_command_logs_in_and_a_group_writable_one_is_refused";
    if !require_root(t) || !require_tool(t, "cc") {
        return;
    }
    let u = TestUser::create("sc");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-elf");
    let file = dir.path().join("secret");
    fs::write(&file, totp_file(&secret)).expect("write secret");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let source = dir.path().join("cmd.c");
    fs::write(
        &source,
        format!(
            "#include <stdio.h>\n\
             int main(void) {{\n\
               FILE *f = fopen(\"{}\", \"r\");\n\
               int c;\n\
               if (!f) return 1;\n\
               while ((c = getc(f)) != EOF) putchar(c);\n\
               return 0;\n\
             }}\n",
            file.display()
        ),
    )
    .expect("write source");
    let cmd = dir.path().join("cmd");
    let built = Command::new("cc")
        .arg("-o")
        .arg(&cmd)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(built.success(), "compiled");
    assert_eq!(
        &fs::read(&cmd).expect("read")[..4],
        b"\x7fELF",
        "an ELF file"
    );
    fs::set_permissions(&cmd, fs::Permissions::from_mode(0o755)).expect("chmod");
    let (d, lines) = login(&cmd, &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    fs::set_permissions(&cmd, fs::Permissions::from_mode(0o775)).expect("chmod");
    refused_saying(
        &cmd,
        &u,
        &secret,
        &[&format!("secret command {} not trusted", cmd.display())],
    );
}

/// A program the host cannot read has an unknown `#!` line, so its interpreter cannot
/// be checked: it is refused, the log saying why. An interpreter that is an unreadable
/// script had its check skipped, and `secret_command_user=` ran whatever interpreter
/// its line named (the program itself was refused, as "not trusted"). Reached with a root
/// host whose bounding set lacks `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` (a
/// service unit's `CapabilityBoundingSet=`) and a program of mode 0050 whose group is
/// the runner's: the runner can read and execute it, root cannot read it. Its
/// interpreter (or its interpreter's) is a shell another account owns. Control: the same
/// host logs in with a readable program and root's shell.
#[test]
fn a_program_the_host_cannot_read_is_refused() {
    let t = "a_program_the_host_cannot_read_is_refused";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let u = TestUser::create("sx");
    let runner = TestUser::create("sxr");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-unread");
    let theirs = dir.path().join("sh-theirs");
    fs::copy("/bin/sh", &theirs).expect("copy the shell");
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
    let body = format!("cat <<'EOF'\n{}EOF\n", totp_file(&secret));
    let drive = |cmd: &Path| {
        let stack = Stack::probe(
            "svc",
            &format!(
                "throttle_after=100 secret_command={} secret_command_user={} \
                 secret_command_timeout=1000",
                cmd.display(),
                runner.name
            ),
        );
        let driver = Driver::login(&stack, &u, &code_at(&secret, now())).rhost(PEER);
        let inner = driver.command();
        let mut wrapped = Command::new("setpriv");
        wrapped
            .args([
                "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-all",
            ])
            .arg(inner.get_program())
            .args(inner.get_args());
        let (out, lines) = with_syslog_capture(&wrapped);
        (Drive::ran(&out), lines)
    };
    let readable = program(dir.path(), "readable", &format!("#!/bin/sh\n{body}"), 0o755);
    let (d, lines) = drive(&readable);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    // The program itself unreadable: refused by the program check, which says so.
    let unread = program(dir.path(), "unread", &format!("#!/bin/sh\n{body}"), 0o050);
    std::os::unix::fs::chown(&unread, Some(0), Some(runner.gid)).expect("chgrp");
    let (d, lines) = drive(&unread);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(
        logged(
            &lines,
            &[
                &format!("secret command {} cannot be read here", unread.display()),
                "make it readable"
            ]
        ),
        "{lines:?}"
    );

    // A readable program whose interpreter is an unreadable script naming a shell
    // another account owns: the kernel reads the interpreter's #! line itself.
    let wrap = program(
        dir.path(),
        "wrap",
        &format!("#!{}\n", theirs.display()),
        0o050,
    );
    std::os::unix::fs::chown(&wrap, Some(0), Some(runner.gid)).expect("chgrp");
    let via_wrap = program(
        dir.path(),
        "via-wrap",
        &format!("#!{}\n{body}", wrap.display()),
        0o755,
    );
    let (d, lines) = drive(&via_wrap);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(
        logged(
            &lines,
            &[
                &format!("{} cannot be read here", wrap.display()),
                "make it readable"
            ]
        ),
        "{lines:?}"
    );
}

/// The kernel follows five interpreters from one exec (four scripts, then the binary
/// the last names): the fifth is checked too (only four were, and a shell another
/// account owns ran as the fifth). Control: the same chain ending in root's copy logs
/// in.
#[test]
fn the_fifth_interpreter_of_a_chain_is_checked() {
    if !require_root("the_fifth_interpreter_of_a_chain_is_checked") {
        return;
    }
    let u = TestUser::create("sf");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-chain");
    let ours = dir.path().join("sh-ours");
    fs::copy("/bin/sh", &ours).expect("copy the shell");
    fs::set_permissions(&ours, fs::Permissions::from_mode(0o755)).expect("chmod");
    let theirs = dir.path().join("sh-theirs");
    fs::copy("/bin/sh", &theirs).expect("copy the shell");
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
    // Four scripts in a row, the last naming `last`; the program names the first. The
    // shell at the end runs the last script (the others are its arguments), which
    // prints the file.
    let chain = |tag: &str, last: &Path| {
        let mut next = program(
            dir.path(),
            &format!("{tag}-i4"),
            &format!(
                "#!{}\ncat <<'EOF'\n{}EOF\n",
                last.display(),
                totp_file(&secret)
            ),
            0o755,
        );
        for level in (1..=3).rev() {
            next = program(
                dir.path(),
                &format!("{tag}-i{level}"),
                &format!("#!{}\n", next.display()),
                0o755,
            );
        }
        program(
            dir.path(),
            &format!("{tag}-cmd"),
            &format!("#!{}\n", next.display()),
            0o755,
        )
    };
    let (d, lines) = login(&chain("ours", &ours), &u, &secret);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    let (d, lines) = login(&chain("theirs", &theirs), &u, &secret);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(
        logged(
            &lines,
            &["interpreter", &theirs.display().to_string(), "uid 65534"]
        ),
        "{lines:?}"
    );
}
