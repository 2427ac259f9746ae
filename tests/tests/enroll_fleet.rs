//! Enrollment for fleets, end to end through the real libpam: the file
//! `totp-enroll --print-file` prints is served unchanged by a `secret_command=`
//! program to two hosts sharing a real `redis-server`, and a code computed by
//! `oathtool` from that file's secret logs in once, fleet-wide.

use std::fs;
use std::process::Command;

use system_tests::fleet::{RedisServer, ServerConfig, init_store, secret_command, trusted_dir};
use system_tests::*;

#[test]
fn a_printed_file_served_by_the_secret_command_logs_in_once_fleet_wide() {
    if !require_root("a_printed_file_served_by_the_secret_command_logs_in_once_fleet_wide")
        || !require_tool(
            "a_printed_file_served_by_the_secret_command_logs_in_once_fleet_wide",
            "oathtool",
        )
    {
        return;
    }
    let u = TestUser::create("pf");
    // The admin's run: nothing written, the file on stdout (a pipe).
    let workdir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(&built().enroll)
        .args([
            "--print-file",
            "-l",
            &format!("{}@fleet.example", u.name),
            "-i",
            "Fleet",
            "-d",
            "-W",
            "-u",
            "--non-interactive",
        ])
        .current_dir(workdir.path())
        .output()
        .expect("run totp-enroll");
    assert!(out.status.success(), "{out:?}");
    let file = String::from_utf8(out.stdout).expect("ASCII file");
    assert!(
        fs::read_dir(workdir.path()).expect("read").next().is_none(),
        "nothing written in the working directory"
    );
    assert!(!u.secret_path().exists(), "no home file");
    let secret = file.lines().next().expect("secret line").to_owned();

    let server = RedisServer::start(&ServerConfig::default());
    let dir = trusted_dir("cmd");
    let cmd = secret_command(dir.path(), &u.name, &file);
    let args = server.options(&format!(
        "redis_prefix=pf{}: redis_timeout=2000 secret_command={} secret_command_user=nobody",
        std::process::id(),
        cmd.display()
    ));
    init_store(&args);
    let hosts: Vec<Stack> = (0..2).map(|_| Stack::probe("svc", &args)).collect();

    let code = oathtool_totp(&secret, T0, 30, 6, "sha1");
    let d = login_at(&hosts[0], &u, &code, PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    // The same code on the other host: the fleet's one replay mark refuses it.
    let d = login_at(&hosts[1], &u, &code, PEER, T0 + 5);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
    assert!(
        d.messages
            .iter()
            .any(|(_, m)| m.starts_with("that code was already used")),
        "refused as a replay: {d:?}"
    );
    let next = oathtool_totp(&secret, T0 + 30, 30, 6, "sha1");
    let d = login_at(&hosts[1], &u, &next, PEER, T0 + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    // A wrong code: the served file is checked, not just present.
    let d = login_at(&hosts[0], &u, &wrong_totp(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?}"
    );
}

/// `--service` naming a `secret_command=` line: no login of that service reads a file on
/// this host, so none is written (it would look enrolled and never log in) and the
/// message names `--print-file`. The control is the same service without the command.
#[test]
fn a_secret_command_service_gets_no_file_and_is_pointed_to_print_file() {
    if !require_root("a_secret_command_service_gets_no_file_and_is_pointed_to_print_file") {
        return;
    }
    let u = TestUser::create("sc");
    let run = |stack: &Stack, extra: &[&str]| {
        let dir = stack.path().to_str().expect("utf-8").to_owned();
        Command::new(&built().enroll)
            .args(["--user", &u.name, "--service", "svc", "--pam-dir", &dir])
            .args(extra)
            .output()
            .expect("run totp-enroll")
    };
    let command = Stack::with_module(
        "svc",
        "secret_command=/usr/bin/true secret_command_user=nobody",
    );
    let scripted = ENROLL_SCRIPTED.to_vec();
    let forced = [&ENROLL_SCRIPTED[..], &["-f"]].concat();
    let regenerate = vec!["--regenerate-scratch-codes", "-q"];
    for extra in [&scripted, &forced, &regenerate] {
        let out = run(&command, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {out:?}");
        assert!(stderr.contains("secret_command="), "{extra:?}: {stderr}");
        assert!(stderr.contains("--print-file"), "{extra:?}: {stderr}");
        assert!(
            !u.secret_path().exists(),
            "{extra:?}: a file no login reads"
        );
    }

    let plain = Stack::with_module("svc", "");
    let out = run(&plain, &scripted);
    assert!(out.status.success(), "{out:?}");
    assert!(u.secret_path().exists());
}
