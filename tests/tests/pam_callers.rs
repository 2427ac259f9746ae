//! PAM callers other than sshd's single call: a host that runs as the user with another
//! group in effect (a locker started after `newgrp`, or installed setgid), a host whose
//! real and effective uids differ, one handle authenticated more than once (sshd's
//! keyboard-interactive retries), answers no terminal types (64 KiB, bytes that are not
//! UTF-8), and a conversation that fails every message it cannot show.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use system_tests::*;

/// A group no test user is in (Debian's `nogroup`).
const OTHER_GID: u32 = 65534;

/// A stack without `state_dir=`, readable by an unprivileged host: a non-root caller
/// then keeps its state in its own home, the default a screen locker gets.
fn home_mode_stack() -> Stack {
    let stack = Stack::new();
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let svc = stack.path().join("svc");
    fs::write(
        &svc,
        format!("auth required {}\n", built().module.display()),
    )
    .expect("service");
    fs::set_permissions(&svc, fs::Permissions::from_mode(0o644)).expect("chmod");
    stack
}

/// pam-drive for `driver` under `setpriv` with `ids` (its uid and gid options), no
/// supplementary groups, the libfaketime environment kept; the log captured.
fn drive_with_ids(driver: &Driver, ids: &[String]) -> (Drive, Vec<String>) {
    let inner = driver.command();
    let mut cmd = Command::new("setpriv");
    cmd.args(ids).arg("--clear-groups").arg("env");
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            let mut kv = k.to_os_string();
            kv.push("=");
            kv.push(v);
            cmd.arg(kv);
        }
    }
    cmd.arg(inner.get_program()).args(inner.get_args());
    let (out, log) = with_syslog_capture(&cmd);
    (Drive::ran(&out), log)
}

/// E4 with another group in effect: a locker the user starts from a shell after
/// `newgrp` (real, effective and saved gid all another group), or one installed setgid
/// (effective gid another group), runs as the user and reads the user's own file by
/// its owner bits; the group it cannot shed must not deny the user's own code. What it
/// writes is the user's (owner), in the user's home. Control: the user's own group.
#[test]
fn a_host_running_as_the_user_with_another_group_unlocks_its_own_user() {
    let t = "a_host_running_as_the_user_with_another_group_unlocks_its_own_user";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let stack = home_mode_stack();
    // The real clock: a setgid host runs in secure mode, where the loader ignores the
    // libfaketime preload. One account per case, so each right code is a first use.
    for (tag, what) in [
        ("pcg0", "control: the user's own group"),
        ("pcg1", "after newgrp"),
        ("pcg2", "setgid"),
    ] {
        let (u, secret) = TestUser::enrolled(tag);
        let ids = match tag {
            "pcg0" => vec![format!("--reuid={}", u.uid), format!("--regid={}", u.gid)],
            "pcg1" => vec![format!("--reuid={}", u.uid), format!("--regid={OTHER_GID}")],
            _ => vec![
                format!("--reuid={}", u.uid),
                format!("--rgid={}", u.gid),
                format!("--egid={OTHER_GID}"),
            ],
        };
        let code = code_at(&secret, mid_step());
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
        assert_eq!(d.result, "PAM_SUCCESS", "{what}: {d:?}\n{log:#?}");
        let record = u.home.join(".local/state/pam_totp").join(u.uid.to_string());
        let (mode, owner, _) = mode_owner(&record);
        assert_eq!(
            (mode, owner),
            (0o600, u.uid),
            "{what}: the user's own record"
        );
        // The code it accepted is now used: the same host refuses it.
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{what}: replay: {d:?}\n{log:#?}");
        assert!(
            log.iter().any(|l| l.contains("code already used")),
            "{what}: {log:#?}"
        );
        // Nothing in the user's home written as another owner; the secret unchanged.
        for entry in fs::read_dir(record.parent().expect("dir")).expect("read store") {
            let p = entry.expect("entry").path();
            assert_eq!(mode_owner(&p).1, u.uid, "{what}: {p:?}");
        }
        assert_eq!(read(&u.secret_path()), totp_file(&secret), "{what}");
    }
}

/// Waits until the current 30-s step has at least 10 s left, so a code computed now is
/// still the current one when the module checks it; returns the time.
fn mid_step() -> u64 {
    loop {
        let t = now();
        if t % 30 < 20 {
            return t;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
