//! R33: a secret command inherits no descriptor of the host application. The test
//! process leaves a descriptor without FD_CLOEXEC open on a root-only file (as sshd
//! leaves its log and monitor socket open); `pam-drive` inherits it, and the module's
//! secret command must not.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use system_tests::fleet::trusted_dir;
use system_tests::*;

/// The descriptor number the host leaves open (high, so no shell uses it by itself).
const LEAKED_FD: i32 = 57;

#[test]
fn the_secret_command_inherits_no_descriptor_of_the_host() {
    if !require_root("the_secret_command_inherits_no_descriptor_of_the_host") {
        return;
    }
    let dir = trusted_dir("fd");
    let marker = dir.path().join("root-only-marker");
    fs::write(&marker, b"root only\n").expect("write marker");
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o600)).expect("chmod");
    let file = fs::File::open(&marker).expect("open marker");
    // SAFETY: dup2 onto a number this test owns; the new descriptor has no FD_CLOEXEC,
    // which is the point. It is closed at the end of the test.
    let fd = unsafe { libc::dup2(file.as_raw_fd(), LEAKED_FD) };
    assert_eq!(fd, LEAKED_FD, "dup2");

    // Control: an ordinary child of this process does inherit it.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("readlink /proc/self/fd/{LEAKED_FD}"))
        .output()
        .expect("sh");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        marker.to_string_lossy(),
        "the descriptor is open and inherited by a plain child"
    );

    let u = TestUser::create("fdl");
    let secret = random_secret_b32();
    // The command refuses to answer when it can see the descriptor.
    let cmd = dir.path().join("secret-command");
    fs::write(
        &cmd,
        format!(
            "#!/bin/sh\nif [ -e /proc/self/fd/{LEAKED_FD} ]; then exit 3; fi\n\
             for f in /proc/self/fd/*; do n=${{f##*/}}; [ \"$n\" -le 2 ] && continue; \
             case $(readlink \"$f\") in *root-only-marker*) exit 4;; esac; done\n\
             cat <<'EOF'\n{}EOF\n",
            totp_file(&secret)
        ),
    )
    .expect("write command");
    fs::set_permissions(&cmd, fs::Permissions::from_mode(0o755)).expect("chmod");
    let stack = Stack::probe(
        "svc",
        &format!(
            "secret_command={} secret_command_user=nobody",
            cmd.display()
        ),
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    // SAFETY: closes the descriptor this test made.
    unsafe { libc::close(LEAKED_FD) };
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}
