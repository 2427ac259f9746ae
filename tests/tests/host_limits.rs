//! More of the host's state that a user can set before a setuid host (su, a polkit
//! helper keep the caller's limits, working directory and real ids) and that must
//! neither kill nor hang the host nor change a verdict. These were found fine; the tests
//! keep them so:
//!
//! - `RLIMIT_NOFILE` at every value from where libpam can no longer load the stack up
//!   to where the login succeeds: the host is never killed, a wrong code is never
//!   accepted and an enrolled user under `nullok` is never skipped (an `EMFILE` on the
//!   way to the secret is not a missing file); control: the normal limit logs in;
//! - `RLIMIT_NPROC` below what the secret command's user runs: the command cannot
//!   run (its shell cannot fork), the login is denied with the command's failure
//!   logged, nothing hangs; control: no limit logs in;
//! - a working directory that was deleted or that nobody may read: the module uses
//!   absolute paths and runs the command in `/`, so logins succeed;
//! - a setuid host (real uid the caller's, effective uid root): the store stays
//!   root-owned and replay is refused, for the caller logging in as themselves and
//!   as someone else;
//! - a host thread already running with another fsuid: denied (the root-only store is
//!   out of reach), never written with that identity, and the fsuid is given back.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use system_tests::fleet::{secret_command, trusted_dir};
use system_tests::*;

/// The command that runs `driver` under `prlimit` with `limit` (e.g. `--nofile=8`),
/// soft and hard.
fn limited_command(driver: &Driver, limit: &str) -> Command {
    let inner = driver.command();
    let mut c = Command::new("prlimit");
    c.arg(limit).arg("--").arg(inner.get_program());
    c.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// `driver` run under `prlimit` with `limit`.
fn limited(driver: &Driver, limit: &str) -> Output {
    limited_command(driver, limit).output().expect("prlimit")
}

fn not_killed(out: &Output, what: &str) {
    assert_eq!(
        out.status.signal(),
        None,
        "{what}: the host was killed: {out:?}"
    );
}

#[test]
fn a_descriptor_limit_near_exhaustion_never_admits_or_skips() {
    let t = "a_descriptor_limit_near_exhaustion_never_admits_or_skips";
    if !require_root(t) || !require_tool(t, "prlimit") {
        return;
    }
    let (u, secret) = TestUser::enrolled("nf");
    let stack = Stack::probe("svc", "nullok throttle_after=100 ceiling_burst=1000");
    let mut logged_in = false;
    for (i, n) in (4..=24).enumerate() {
        let at = T0 + 60 * i as u64;
        let limit = format!("--nofile={n}");
        let wrong = Driver::login(&stack, &u, &wrong_totp(&secret, at)).at(at);
        let out = limited(&wrong, &limit);
        not_killed(&out, &limit);
        let d = Drive::parse(&out);
        assert!(
            !matches!(d.returned(), Returned::Success | Returned::Ignore),
            "{limit}, wrong code: {d:?}"
        );
        let right = Driver::login(&stack, &u, &code_at(&secret, at)).at(at);
        let out = limited(&right, &limit);
        not_killed(&out, &limit);
        let d = Drive::parse(&out);
        match d.returned() {
            Returned::Success => logged_in = true,
            Returned::Ignore => panic!("{limit}: an enrolled user was skipped: {d:?}"),
            // Too few descriptors to finish is a denial, and then the code is unused.
            Returned::Failed(_) => assert!(
                !logged_in,
                "{limit}: denied above a limit that logged in: {d:?}"
            ),
        }
    }
    assert!(logged_in, "control: a limit of 24 descriptors logs in");
}

#[test]
fn a_process_limit_that_stops_the_secret_command_denies() {
    let t = "a_process_limit_that_stops_the_secret_command_denies";
    if !require_root(t) || !require_tool(t, "prlimit") || !require_tool(t, "unshare") {
        return;
    }
    let dir = trusted_dir("nproc");
    let u = TestUser::create("np");
    let secret = random_secret_b32();
    let cmd = secret_command(dir.path(), &u.name, &totp_file(&secret));
    let stack = Stack::probe(
        "svc",
        &format!(
            "secret_command={} secret_command_user=nobody",
            cmd.display()
        ),
    );
    let login = Driver::login(&stack, &u, &code_at(&secret, T0)).at(T0);
    for n in [0, 1] {
        let limit = format!("--nproc={n}");
        let (out, lines) = with_syslog_capture(&limited_command(&login, &limit));
        not_killed(&out, &limit);
        let d = Drive::parse(&out);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{limit}: {d:?}"
        );
        // Denied for the command: under the limit its shell cannot fork (the script's
        // `cat`), and the log says the command failed, not some other fault.
        assert!(
            lines
                .iter()
                .any(|l| syslog_message(l).contains("secret command: secret command exited")),
            "{limit}: {lines:?}"
        );
    }
    // Control: the same code, never used by the denied logins.
    assert_eq!(login.run().returned(), Returned::Success);
}

#[test]
fn a_deleted_or_unreadable_working_directory_changes_nothing() {
    if !require_root("a_deleted_or_unreadable_working_directory_changes_nothing") {
        return;
    }
    let dir = trusted_dir("cwd");
    let (u, secret) = TestUser::enrolled("cw");
    let file_user = TestUser::create("cx");
    let file_secret = random_secret_b32();
    let cmd = secret_command(dir.path(), &file_user.name, &totp_file(&file_secret));
    let plain = Stack::probe("svc", "");
    let command = Stack::probe(
        "svc",
        &format!(
            "secret_command={} secret_command_user=nobody",
            cmd.display()
        ),
    );
    let gone = dir.path().join("gone");
    let closed = dir.path().join("closed");
    // Entered by the shell, then removed or closed to everybody, before the host runs.
    let setups = [
        format!("mkdir -p {0} && cd {0} && rmdir {0}", gone.display()),
        format!("mkdir -p {0} && cd {0} && chmod 000 {0}", closed.display()),
    ];
    for (i, setup) in setups.iter().enumerate() {
        let at = T0 + 30 * i as u64;
        for (stack, user, s) in [(&plain, &u, &secret), (&command, &file_user, &file_secret)] {
            let inner = Driver::login(stack, user, &code_at(s, at)).at(at).command();
            let mut c = Command::new("sh");
            c.args(["-c", &format!("{setup} && exec env \"$@\""), "sh"]);
            append_env_exec(&mut c, &inner);
            let out = output_guarded(&mut c, Input::Null);
            let d = Drive::ran(&out);
            assert_eq!(d.returned(), Returned::Success, "{setup}: {d:?}");
        }
    }
}

#[test]
fn a_setuid_host_keeps_the_store_root_owned_and_refuses_replay() {
    let t = "a_setuid_host_keeps_the_store_root_owned_and_refuses_replay";
    if !require_root(t) || !require_tool(t, "perl") {
        return;
    }
    let (u, secret) = TestUser::enrolled("su");
    let caller = TestUser::create("sc");
    let stack = Stack::probe("svc", "");
    // The real ids set to the caller's, effective and saved ids root: what the kernel
    // gives a setuid-root program. Such a process runs in secure mode, which drops
    // LD_PRELOAD: no libfaketime, the real clock.
    let setuid_like = |caller: &TestUser, answer: &str| {
        let inner = Driver::login(&stack, &u, answer).command();
        let mut c = Command::new("perl");
        c.args([
            "-e",
            "$( = $ARGV[1]; $< = $ARGV[0]; shift @ARGV; shift @ARGV; exec @ARGV or die",
            &caller.uid.to_string(),
            &caller.gid.to_string(),
        ]);
        c.arg(inner.get_program()).args(inner.get_args());
        let out = c.output().expect("perl");
        Drive::ran(&out)
    };
    for who in [&u, &caller] {
        reset_state(&stack, u.uid);
        let code = code_at(&secret, now());
        let d = setuid_like(who, &code);
        assert_eq!(d.returned(), Returned::Success, "{}: {d:?}", who.name);
        let d = setuid_like(who, &code);
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{}: replay: {d:?}",
            who.name
        );
        let (mode, uid, _) = mode_owner(&stack.state_file(u.uid));
        assert_eq!((mode & 0o7777, uid), (0o600, 0), "{}: the record", who.name);
    }
}

/// A host thread that already runs with another filesystem uid (effective uid root)
/// when it calls PAM: the store, which only root may open, is out of reach, so the login
/// is denied rather than written with that identity, and the host's fsuid is what it
/// set. Control: the same code with the host's fsuid left at root logs in.
#[test]
fn a_host_thread_with_another_fsuid_is_denied_and_keeps_it() {
    if !require_root("a_host_thread_with_another_fsuid_is_denied_and_keeps_it") {
        return;
    }
    let (u, secret) = TestUser::enrolled("fs");
    let other = TestUser::create("ft");
    let stack = Stack::probe("svc", "");
    // The store exists (made by a plain login) and the code is fresh.
    let first = Driver::login(&stack, &u, &code_at(&secret, T0)).at(T0);
    assert_eq!(first.run().returned(), Returned::Success, "set-up");
    let login = Driver::login(&stack, &u, &code_at(&secret, T0 + 30)).at(T0 + 30);
    for fsuid in [u.uid, other.uid] {
        let out = login
            .clone()
            .arg("--host-fsuid", &fsuid.to_string())
            .output();
        let d = Drive::ran(&out);
        assert!(
            !matches!(d.returned(), Returned::Success | Returned::Ignore),
            "fsuid {fsuid}: {d:?}"
        );
        let kept = String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == format!("fsuid {fsuid}"));
        assert!(kept, "fsuid {fsuid}: the host's fsuid is kept: {d:?}");
    }
    // Control: the same code, unused by the denied logins.
    assert_eq!(login.run().returned(), Returned::Success, "control");
}
