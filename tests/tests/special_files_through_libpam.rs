//! Hostile cases of SECURITY.md that need a mount to set up, through the real libpam
//! and the built module, each inside a private mount namespace so the host is never
//! touched: A9 (a device or a procfs file bind-mounted over the secret file: denied,
//! never read as a secret, and the login finishes), B6 (root in home mode, its secret in
//! `/root`), A14 (another root file bind-mounted over a state record: refused, left as
//! it was). Each denial has a control through the same wrapper that logs in.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use system_tests::*;

/// [`capture_syslog_with_bind`] and how long it took.
fn login_with_bind(src: &Path, dst: &Path, driver: &Driver) -> (Drive, Vec<String>, Duration) {
    let started = Instant::now();
    let (d, lines) = capture_syslog_with_bind(src, dst, driver);
    (d, lines, started.elapsed())
}

fn logged(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| syslog_message(l).contains(needle))
}

/// A9: the secret path in store mode (root-owned, so ownership alone refuses none of
/// them) with a character device (`/dev/zero`, `/dev/tty`) or `/proc/kmsg` mounted over
/// it. Each is denied after the prompt with "not a regular file" or an unreadable secret
/// in the log, and the login ends (a read of `/dev/zero` or `/proc/kmsg` could block or
/// never end); control: a valid secret file mounted the same way logs in.
#[test]
fn devices_and_procfs_files_mounted_over_the_secret_are_refused() {
    if !require_root("devices_and_procfs_files_mounted_over_the_secret_are_refused") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("pam_totp-special")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    let secret = dir.path().join("secret");
    let valid = dir.path().join("valid");
    for p in [&secret, &valid] {
        write_owned(
            p,
            format!("{SECRET_160}\n\" TOTP_AUTH\n").as_bytes(),
            0,
            0,
            0o600,
        );
    }
    let stack = Stack::probe(
        "svc",
        &format!("secret={} throttle_after=100", secret.display()),
    );
    let attempt = |src: &Path| {
        login_with_bind(
            src,
            &secret,
            &Driver::new(&stack, "svc", "root")
                .answer(&code_at(SECRET_160, now()))
                .rhost("192.0.2.9"),
        )
    };

    // Control: the wrapper itself mounts a valid file, which logs in.
    let (d, lines, _) = attempt(&valid);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    for special in ["/dev/zero", "/dev/tty", "/proc/kmsg"] {
        let (d, lines, took) = attempt(Path::new(special));
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{special}: {d:?} {lines:?}"
        );
        assert!(
            lines.iter().any(|l| {
                let m = syslog_message(l);
                m.contains("secret file") && m.contains("refused")
            }),
            "{special}: the refused secret file is named as the cause: {lines:?}"
        );
        // A hang guard, not a performance goal: the read must not block on the device.
        assert!(took < Duration::from_secs(20), "{special}: took {took:?}");
    }
    // The file under the mounts is untouched.
    assert!(
        fs::read_to_string(&secret)
            .expect("read")
            .starts_with(SECRET_160)
    );
}

/// B6: root in home mode: `/root/.google_authenticator` (a private directory mounted
/// over `/root`), read and written as root. A right code logs in once; the same code
/// again is refused as used.
#[test]
fn root_logs_in_with_a_secret_in_its_home() {
    if !require_root("root_logs_in_with_a_secret_in_its_home") {
        return;
    }
    let home = tempfile::Builder::new()
        .prefix("pam_totp-roothome")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    write_owned(
        &home.path().join(".google_authenticator"),
        format!("{SECRET_160}\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n").as_bytes(),
        0,
        0,
        0o400,
    );
    let stack = Stack::probe("svc", "");
    let code = code_at(SECRET_160, now());
    let attempt = || {
        login_with_bind(
            home.path(),
            Path::new("/root"),
            &Driver::new(&stack, "svc", "root")
                .answer(&code)
                .rhost("192.0.2.9"),
        )
    };
    let (d, lines, _) = attempt();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let (d, lines, _) = attempt();
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "the same code again: {d:?} {lines:?}"
    );
    assert!(logged(&lines, "already used"), "{lines:?}");
}

/// A root-owned 0600 file that is no record (a host key, say) bind-mounted over a
/// user's state record passes every check made on the descriptor (type, owner, mode,
/// links, size): the login is denied because it does not read as a record, and the
/// file is left as it was. Before the fix the allocation of a record with holes ran
/// before the read and grew that file to 16 KiB of zeros. Control: a copy of the
/// user's real record mounted the same way logs in.
#[test]
fn a_file_bind_mounted_over_a_state_record_is_refused_and_left_as_it_was() {
    if !require_root("a_file_bind_mounted_over_a_state_record_is_refused_and_left_as_it_was") {
        return;
    }
    let (u, secret) = TestUser::enrolled("bm");
    let base = Stack::new();
    let state = base.path().join("state");
    let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "first login: {d:?}");
    let record = state.join(u.uid.to_string());
    let other = base.path().join("host_key");
    let bytes = b"-----BEGIN OPENSSH PRIVATE KEY-----\n".repeat(20);
    write_owned(&other, &bytes, 0, 0, 0o600);
    let at = T0 + 30;
    let driver = Driver::new(&stack, "svc", &u.name)
        .answer(&code_at(&secret, at))
        .at(at);
    let (d, lines, _) = login_with_bind(&other, &record, &driver);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(logged(&lines, "passes its check"), "{lines:?}");
    let now = fs::read(&other).expect("read");
    assert!(
        now == bytes,
        "the mounted file is as it was ({} bytes now)",
        now.len()
    );
    // Control: the user's own record, copied and mounted the same way.
    let copy = base.path().join("copy");
    write_owned(&copy, &fs::read(&record).expect("record"), 0, 0, 0o600);
    let at = T0 + 60;
    let driver = Driver::new(&stack, "svc", &u.name)
        .answer(&code_at(&secret, at))
        .at(at);
    let (d, lines, _) = login_with_bind(&copy, &record, &driver);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
}
