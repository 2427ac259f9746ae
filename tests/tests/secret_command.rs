//! The secret command (`secret_command=`, rule R32) run for real: as an unprivileged
//! user, clean environment, no stdin, bounded output and time. Every hostile case
//! (untrusted program or directory, slow, huge, failing, killed, ambiguous, garbage)
//! must be an error, never a secret and never "not enrolled".

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use system_tests::fleet::trusted_dir;
use system_tests::{
    Drive, Driver, Returned, Stack, TestUser, code_at, command_user, now, random_secret_b32,
    require_root, require_tool, totp_file,
};
use totp_core::fleet::NOT_ENROLLED_EXIT_STATUS;
use totp_os::command::{CommandError, SecretOutput, run_secret_command};

const RUN_AS: &str = "nobody";
const LIMIT: Duration = Duration::from_millis(1500);
const SECRET_FILE: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";

/// A root-owned 0755 script in a trusted directory.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn run(path: &Path) -> Result<SecretOutput, CommandError> {
    run_secret_command(path, RUN_AS, &command_user("alice"), LIMIT)
}

fn output_of(path: &Path) -> String {
    match run(path) {
        Ok(SecretOutput::Secret(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{}: {other:?}", path.display()),
    }
}

/// No process whose command line contains `marker` is left (SIGKILL is delivered
/// asynchronously, so this looks again for a while before giving up).
fn no_process_with(marker: &str) -> bool {
    let running = || {
        fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(marker))
                    .unwrap_or(false)
            })
        })
    };
    for _ in 0..200 {
        if !running() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_secret_file_printed_by_the_command_is_returned_and_parses() {
    if !require_root("a_secret_file_printed_by_the_command_is_returned_and_parses") {
        return;
    }
    let dir = trusted_dir("cmd");
    let p = script(dir.path(), "ok", &format!("cat <<'EOF'\n{SECRET_FILE}EOF"));
    let out = output_of(&p);
    assert_eq!(out, SECRET_FILE);
    assert!(totp_core::gafile::GaFile::parse(out.as_bytes()).is_ok());
}

#[test]
fn the_command_runs_as_the_named_user_with_nothing_inherited() {
    if !require_root("the_command_runs_as_the_named_user_with_nothing_inherited") {
        return;
    }
    let dir = trusted_dir("cmd");
    let p = script(
        dir.path(),
        "who",
        "echo \"uid=$(id -u) gid=$(id -g) groups=$(id -G) arg=$1 argc=$#\"\n\
         echo \"stdin=$(readlink /proc/self/fd/0) cwd=$(pwd)\"\n\
         env",
    );
    let out = output_of(&p);
    let first = out.lines().next().unwrap_or("");
    assert_eq!(
        first, "uid=65534 gid=65534 groups=65534 arg=alice argc=1",
        "{out}"
    );
    assert!(out.contains("stdin=/dev/null cwd=/"), "{out}");
    assert!(out.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), "{out}");
    for leaked in ["HOME=", "CARGO", "CI=", "RUST", "USER=", "LD_"] {
        assert!(!out.contains(leaked), "{leaked} leaked: {out}");
    }
}

#[test]
fn only_the_documented_status_with_empty_output_means_not_enrolled() {
    if !require_root("only_the_documented_status_with_empty_output_means_not_enrolled") {
        return;
    }
    let dir = trusted_dir("cmd");
    let p = script(
        dir.path(),
        "none",
        &format!("exit {NOT_ENROLLED_EXIT_STATUS}"),
    );
    assert!(matches!(run(&p), Ok(SecretOutput::NotEnrolled)));
    let p = script(
        dir.path(),
        "none-but-says",
        &format!("echo hello; exit {NOT_ENROLLED_EXIT_STATUS}"),
    );
    assert!(matches!(run(&p), Err(CommandError::NotEnrolledWithOutput)));
    let p = script(dir.path(), "empty", "exit 0");
    assert!(matches!(run(&p), Err(CommandError::EmptyOutput)));
}

#[test]
fn failing_commands_are_errors() {
    if !require_root("failing_commands_are_errors") {
        return;
    }
    let dir = trusted_dir("cmd");
    for (name, body, status) in [
        ("one", "exit 1", 1),
        ("two", "exit 2", 2),
        ("printed-then-failed", "echo JBSWY3DPEHPK3PXP; exit 3", 3),
        ("missing-tool", "/nonexistent/tool", 127),
    ] {
        let p = script(dir.path(), name, body);
        match run(&p) {
            Err(CommandError::Exited(c)) => assert_eq!(c, status, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let p = script(dir.path(), "killed", "kill -9 $$");
    assert!(matches!(run(&p), Err(CommandError::Killed(9))));
    // A crash after printing a whole file: the file is not used.
    let p = script(
        dir.path(),
        "crashed",
        &format!(
            "printf '{}'; kill -SEGV $$",
            SECRET_FILE.replace('\n', "\\n")
        ),
    );
    assert!(matches!(run(&p), Err(CommandError::Killed(11))));
}

#[test]
fn garbage_output_never_parses_as_a_secret_file() {
    if !require_root("garbage_output_never_parses_as_a_secret_file") {
        return;
    }
    let dir = trusted_dir("cmd");
    for (name, body) in [
        ("json", "echo '{\"error\": \"ldap timeout\"}'"),
        ("binary", "head -c 200 /dev/urandom | tr -d '\\n'"),
        ("nul", "printf 'JBSWY3DPEHPK3PXP\\0\\n'"),
        ("empty-first-line", "printf '\\n\" TOTP_AUTH\\n'"),
    ] {
        let p = script(dir.path(), name, body);
        let out = match run(&p) {
            Ok(SecretOutput::Secret(b)) => b,
            other => panic!("{name}: {other:?}"),
        };
        assert!(
            totp_core::gafile::GaFile::parse(&out).is_err(),
            "{name} parsed"
        );
    }
}

#[test]
fn a_slow_command_is_killed_with_its_children() {
    if !require_root("a_slow_command_is_killed_with_its_children") {
        return;
    }
    let dir = trusted_dir("cmd");
    let p = script(dir.path(), "slow", "sleep 31.4159");
    let started = std::time::Instant::now();
    assert!(matches!(run(&p), Err(CommandError::TimedOut)));
    // Hang guard, not a performance goal: the limit is 1.5 s.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(no_process_with("31.4159"));
    // A background child keeping stdout open after the command exits: still a denial
    // at the limit, told apart from a command that is itself slow.
    let p = script(
        dir.path(),
        "detached",
        "(sleep 31.2718 &)\necho JBSWY3DPEHPK3PXP",
    );
    assert!(matches!(run(&p), Err(CommandError::OutputHeldOpen(s)) if s.success()));
    assert!(no_process_with("31.2718"));
    // Its output closed early, the command itself still running: waited for only up to
    // the limit, then killed.
    let p = script(
        dir.path(),
        "closed-early",
        "echo JBSWY3DPEHPK3PXP\nexec >&-\nsleep 31.5772",
    );
    assert!(matches!(run(&p), Err(CommandError::TimedOut)));
    assert!(no_process_with("31.5772"));
}

#[test]
fn huge_output_is_cut_off_and_killed() {
    if !require_root("huge_output_is_cut_off_and_killed") {
        return;
    }
    let dir = trusted_dir("cmd");
    let p = script(dir.path(), "yes", "exec yes JBSWY3DPEHPK3PXP");
    assert!(matches!(run(&p), Err(CommandError::TooLarge)));
    let p = script(
        dir.path(),
        "just-over",
        "head -c 65537 /dev/zero | tr '\\0' A",
    );
    assert!(matches!(run(&p), Err(CommandError::TooLarge)));
    let p = script(dir.path(), "at-cap", "head -c 65536 /dev/zero | tr '\\0' A");
    assert!(matches!(run(&p), Ok(SecretOutput::Secret(b)) if b.len() == 65536));
}

#[test]
fn a_program_others_could_change_is_never_run() {
    if !require_root("a_program_others_could_change_is_never_run") {
        return;
    }
    let dir = trusted_dir("cmd");
    let marker = dir.path().join("ran");
    let body = format!("touch {}; echo JBSWY3DPEHPK3PXP", marker.display());
    // Owned by another user.
    let p = script(dir.path(), "theirs", &body);
    chown(&p, Some(65534), None).expect("chown");
    assert!(matches!(run(&p), Err(CommandError::Untrusted(_))));
    // Group- or other-writable.
    for mode in [0o775, 0o757] {
        let p = script(dir.path(), "writable", &body);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        assert!(
            matches!(run(&p), Err(CommandError::Untrusted(_))),
            "{mode:o}"
        );
    }
    // In a directory others can write to.
    let sub = dir.path().join("open");
    fs::create_dir(&sub).expect("mkdir");
    let p = script(&sub, "cmd", &body);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(matches!(run(&p), Err(CommandError::Untrusted(_))));
    // A symlink as the program.
    let good = script(dir.path(), "good", &body);
    let link = dir.path().join("link");
    symlink(&good, &link).expect("symlink");
    assert!(matches!(run(&link), Err(CommandError::Untrusted(_))));
    // Under /tmp (world-writable, sticky or not).
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = script(tmp.path(), "cmd", &body);
    assert!(matches!(run(&p), Err(CommandError::Untrusted(_))));
    assert!(!marker.exists(), "an untrusted program ran");
}

#[test]
fn the_command_never_runs_as_root_or_as_nobody_known() {
    if !require_root("the_command_never_runs_as_root_or_as_nobody_known") {
        return;
    }
    let dir = trusted_dir("cmd");
    let p = script(dir.path(), "ok", "echo JBSWY3DPEHPK3PXP");
    for user in ["root", "no-such-user-pam-totp"] {
        let r = run_secret_command(&p, user, &command_user("alice"), LIMIT);
        assert!(
            matches!(r, Err(CommandError::BadRunAsUser(_))),
            "{user}: {r:?}"
        );
    }
}

/// A supplementary group of the caller in the setuid case below: any number works for
/// setgroups, and none of the accounts involved has this one.
const CALLERS_EXTRA_GID: u32 = 4_100_042;

/// The `Uid:`, `Gid:` and `Groups:` lines of a report, for the process `who` names.
fn ids_of<'a>(report: &'a str, who: &str) -> Vec<&'a str> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix(who)?.strip_prefix(' '))
        .collect()
}

/// R32 under a setuid-root host (su, pkexec, polkit's agent helper): the module runs
/// with the caller's real uid and groups and effective uid 0, as `setpriv` sets up for
/// `pam-drive` here. The command must still run as `secret_command_user` alone, with
/// none of the caller's groups. The command reports its own ids and its parent's (the
/// driver's), which proves the driver really had a real uid other than 0 and the
/// caller's extra group. Control: the same command under a driver whose real uid is 0.
#[test]
fn the_command_keeps_no_group_of_a_setuid_hosts_caller() {
    let t = "the_command_keeps_no_group_of_a_setuid_hosts_caller";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let nobody = totp_os::nss::lookup_user_by_name(RUN_AS)
        .ok()
        .flatten()
        .expect("the nobody account");
    let u = TestUser::create("sg");
    let secret = random_secret_b32();
    let dir = trusted_dir("cmd-groups");
    // The only place the command (as nobody) may write: its report.
    let out = dir.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    chown(&out, Some(nobody.uid), Some(nobody.gid)).expect("chown");
    let report = out.join("report");
    let cmd = script(
        dir.path(),
        "groups",
        &format!(
            "{{ grep -E '^(Uid|Gid|Groups):' /proc/$PPID/status | sed 's/^/driver /'\n\
             grep -E '^(Uid|Gid|Groups):' /proc/self/status | sed 's/^/command /'; }} > {}\n\
             cat <<'EOF'\n{}EOF",
            report.display(),
            totp_file(&secret)
        ),
    );
    let stack = Stack::probe(
        "svc",
        &format!(
            "secret_command={} secret_command_user={RUN_AS}",
            cmd.display()
        ),
    );
    // No frozen clock: an effective uid other than the real one makes the loader ignore
    // LD_PRELOAD, so the code is the current one.
    // `pam-drive` under `setpriv` with `ids` (none: run as this test runs it).
    let run = |ids: &[String]| -> (Drive, String) {
        let _ = fs::remove_file(&report);
        let inner = Driver::login(&stack, &u, &code_at(&secret, now())).command();
        let mut outer = Command::new("setpriv");
        outer
            .args(ids)
            .arg(inner.get_program())
            .args(inner.get_args());
        let mut run = if ids.is_empty() { inner } else { outer };
        let output = run.stdin(Stdio::null()).output().expect("run pam-drive");
        let text = fs::read_to_string(&report).unwrap_or_default();
        (Drive::parse(&output), text)
    };
    let setuid_host = [
        format!("--ruid={}", u.uid),
        "--euid=0".to_owned(),
        format!("--regid={}", u.gid),
        format!("--groups={},{CALLERS_EXTRA_GID}", u.gid),
    ];

    let (d, text) = run(&setuid_host);
    assert_eq!(d.returned(), Returned::Success, "{d:?}\n{text}");
    let driver = ids_of(&text, "driver");
    // The fault set-up: real uid the caller's, effective and saved uid 0, the caller's
    // extra group in the driver.
    assert!(
        driver.contains(&format!("Uid:\t{}\t0\t0\t0", u.uid).as_str()),
        "{text}"
    );
    assert!(
        driver.iter().any(|l| l.starts_with("Groups:")
            && l.split_whitespace()
                .any(|g| g == CALLERS_EXTRA_GID.to_string())),
        "{text}"
    );
    let only_nobody = |text: &str| {
        let (uid, gid) = (nobody.uid, nobody.gid);
        let want = [
            format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}"),
            format!("Gid:\t{gid}\t{gid}\t{gid}\t{gid}"),
            "Groups:".to_owned(),
        ];
        let got: Vec<String> = ids_of(text, "command")
            .iter()
            .map(|l| l.trim_end().to_owned())
            .collect();
        assert_eq!(got, want, "{text}");
    };
    only_nobody(&text);

    // Control: a driver whose real uid is 0 (the report is all that is looked at; the
    // same code again may be refused as a replay).
    let (_, text) = run(&[]);
    assert!(
        ids_of(&text, "driver").contains(&"Uid:\t0\t0\t0\t0"),
        "{text}"
    );
    only_nobody(&text);

    // A host that cannot drop groups: a root service whose capability bounding set lacks
    // CAP_SETGID, already running with the runner's gid (so the gid switch needs no
    // privilege) and with a group of its own. The standard library's switch ignores a
    // refused setgroups and would start the command with that group; it is not started.
    let no_setgid = [
        "--bounding-set=-setgid".to_owned(),
        format!("--regid={}", nobody.gid),
        format!("--groups={CALLERS_EXTRA_GID}"),
    ];
    // The set-up holds: CAP_SETGID (bit 6) gone, the extra group there.
    let probe = Command::new("setpriv")
        .args(&no_setgid)
        .args(["grep", "-E", "^(Groups|CapEff):", "/proc/self/status"])
        .output()
        .expect("setpriv");
    let probe = String::from_utf8_lossy(&probe.stdout);
    let cap_eff = probe
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    assert_eq!(cap_eff & (1 << 6), 0, "{probe}");
    assert!(probe.contains(&CALLERS_EXTRA_GID.to_string()), "{probe}");
    let (d, text) = run(&no_setgid);
    assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}\n{text}");
    assert_eq!(text, "", "the command ran with the host's group");
}
