//! C7 (SECURITY.md): homes and secret stores on an NFS export with `root_squash`,
//! through the real libpam. This kernel has no NFS, so a stand-in plays the server: a
//! FUSE passthrough file system (tests/fuse/ptotpsquash.c, built and mounted by
//! `system_tests::squash`, which shared_home.rs uses too) that does every operation
//! with the caller's file-system identity, except that root is nobody (65534), and
//! leaves permission checks to the backing file system (no
//! `default_permissions`, no caching). It is mounted over the directory it serves, in a
//! private mount namespace around the `pam-drive` child, so the host sees the backing
//! files at the same paths and the test checks them there.
//!
//! Every mount first shows that root cannot read through it (the set-up fails
//! otherwise), and `the_stand_in_squashes_root_and_serves_the_user` shows the mapping
//! itself, so a login that succeeds below succeeded under a real squash.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use system_tests::squash::{
    OpLog, login_with, mount_squashed, mount_squashed_with, require_fuse, squashed_login,
};
use system_tests::{
    Drive, Driver, ENROLL_SCRIPTED, Returned, Stack, T0, TestUser, audit_command, built, code_at,
    faketime_date, in_private_mounts, libfaketime, mode_owner, oathtool_totp, private_tmp,
    require_tool, root_store, shadow_tool, totp_file, user_database_lock,
    with_syslog_capture_after, write_owned, wrong_totp,
};

/// What the stand-in maps root to (an NFS server's default anonymous uid and gid).
const NOBODY: u32 = 65534;

/// A scratch code written into secret files.
const SCRATCH: &str = "48151623";

fn logged(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// The entries of `dir` with their owner uid and mode, sorted by name.
fn entries(dir: &Path) -> Vec<(String, u32, u32)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            (
                e.file_name().to_string_lossy().into_owned(),
                m.uid(),
                m.mode() & 0o7777,
            )
        })
        .collect();
    v.sort();
    v
}

/// A shell script as root inside a private mount namespace where `setup` has run.
fn in_namespace(setup: &str, script: &str) -> Output {
    let mut inner = Command::new("sh");
    inner.args(["-c", script]);
    run_in_namespace(setup, &inner)
}

/// `inner` (as root) inside a private mount namespace where `setup` has run.
fn run_in_namespace(setup: &str, inner: &Command) -> Output {
    let scratch = tempfile::Builder::new()
        .prefix("pam_totp-squash")
        .tempdir()
        .expect("tempdir");
    in_private_mounts(setup, scratch.path(), inner)
        .output()
        .expect("run unshare")
}

/// The control: through the stand-in root is nobody (it cannot read the user's 0600
/// secret, list the user's 0700 home or create a file there, and what it creates in a
/// world-writable directory belongs to 65534), while the user reads the file and what
/// the user creates is the user's; a `flock` held on the file through the mount
/// excludes a second one. The mount is the FUSE one. Without the mount, root reads the
/// same file, so the refusals are the stand-in's.
#[test]
fn the_stand_in_squashes_root_and_serves_the_user() {
    let t = "the_stand_in_squashes_root_and_serves_the_user";
    if !require_fuse(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("sqc");
    let path = u.secret_path();
    assert_eq!(
        fs::read_to_string(&path).expect("root reads it unmounted"),
        totp_file(&secret)
    );
    // A second export: root-owned, with a world-writable directory (mode 1777).
    let export = tempfile::Builder::new()
        .prefix("pam_totp-export")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(export.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let drop = export.path().join("drop");
    fs::create_dir(&drop).expect("mkdir");
    fs::set_permissions(&drop, fs::Permissions::from_mode(0o1777)).expect("chmod");
    let setup = format!(
        "{}\n{}",
        mount_squashed(&u.home, &path, None),
        mount_squashed(export.path(), &export.path().join("none"), None)
    );
    let as_user = format!("setpriv --reuid={} --regid={} --clear-groups", u.uid, u.gid);
    let script = format!(
        r#"grep " {home} " /proc/self/mountinfo | sed 's/^/mount /'
cat "{file}" 2>&1 | sed 's/^/root-read /'
ls "{home}" 2>&1 | sed 's/^/root-list /'
touch "{home}/by-root" 2>&1 | sed 's/^/root-create /'
touch "{drop}/by-root"
{as_user} cat "{file}" | sed 's/^/user-read /'
{as_user} flock -n "{file}" sh -c 'flock -n "$1" true; echo "second-lock $?"' sh "{file}"
{as_user} touch "{drop}/by-user""#,
        home = u.home.display(),
        file = path.display(),
        drop = drop.display(),
    );
    let out = in_namespace(&setup, &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let report = format!("{out:?}");
    assert!(out.status.success(), "{report}");
    let with = |prefix: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect()
    };
    let mounts = with("mount ");
    assert!(
        mounts.len() == 1 && mounts[0].contains(" - fuse.ptotpsquash "),
        "the home is the stand-in's FUSE mount: {report}"
    );
    assert!(
        !mounts[0].contains("default_permissions"),
        "the server decides, not the kernel: {report}"
    );
    for what in ["root-read ", "root-list ", "root-create "] {
        let got = with(what);
        assert!(
            got.len() == 1 && got[0].contains("Permission denied"),
            "{what}: {report}"
        );
    }
    let user_read: String = with("user-read ").concat();
    assert_eq!(
        user_read,
        secret.clone() + "\" TOTP_AUTH",
        "the user reads: {report}"
    );
    // Locks are the kernel's (the stand-in has none): still exclusive on the mount.
    assert_eq!(
        with("second-lock "),
        ["1"],
        "a second flock is refused: {report}"
    );
    // The backing files, seen from the host: root's file is nobody's.
    let owner = |p: &Path| {
        let m = fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e} ({report})", p.display()));
        (m.uid(), m.gid())
    };
    assert_eq!(owner(&drop.join("by-root")), (NOBODY, NOBODY));
    assert_eq!(owner(&drop.join("by-user")), (u.uid, u.gid));
    assert!(!u.home.join("by-root").exists());
}

/// Home mode on a squashed home (mode 0700): the home itself exported (as an automounter
/// mounts one home), with the default secret path and with GA's
/// `secret=${HOME}/.google_authenticator`, and the directory of all homes exported (an
/// NFS `/home`). The module, running as root, reads the file as the user. A right code
/// logs in, the same code again is refused as used, a wrong code is refused; the file's
/// content, owner and mode are untouched and nothing new appears in the home.
#[test]
fn home_mode_logs_in_through_a_squashed_home() {
    let t = "home_mode_logs_in_through_a_squashed_home";
    if !require_fuse(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("sqh");
    let ops = OpLog::new();
    let path = u.secret_path();
    let before = (read_bytes(&path), mode_owner(&path), entries(&u.home));
    assert_eq!(before.1, (0o600, u.uid, u.gid));
    let homes = u.home.parent().expect("the directory of homes");
    let cases = [
        (u.home.as_path(), ""),
        (u.home.as_path(), "secret=${HOME}/.google_authenticator"),
        (homes, ""),
    ];
    for (round, (export, args)) in cases.into_iter().enumerate() {
        let stack = Stack::probe("svc", args);
        let at = T0 + 90 * round as u64;
        let code = code_at(&secret, at);
        let opened = format!(
            "open /{} ok",
            path.strip_prefix(export)
                .expect("below the export")
                .display()
        );
        // Each login reads the file through the stand-in as the user, and does nothing
        // there as anybody else.
        let login = |answer: &str| {
            let run = squashed_login(
                export,
                &path,
                Some(&ops),
                &Driver::login(&stack, &u, answer).at(at),
            );
            assert_ops_only_as(&ops, u.uid, &[&opened]);
            run
        };
        let case = format!("{} exported, {args:?}", export.display());

        let (d, lines) = login(&code);
        assert_eq!(d.returned(), Returned::Success, "{case}: {d:?} {lines:?}");
        assert!(
            logged(&lines, &format!("accepted time-based code for {}", u.name)),
            "{case}: {lines:?}"
        );
        let (d, lines) = login(&code);
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{case}, replay: {d:?} {lines:?}"
        );
        assert!(logged(&lines, "code already used for"), "{case}: {lines:?}");
        let (d, lines) = login(&wrong_totp(&secret, at));
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{case}, wrong: {d:?} {lines:?}"
        );
        assert!(
            logged(&lines, "invalid verification code for"),
            "{case}: {lines:?}"
        );
    }
    assert_eq!(
        (read_bytes(&path), mode_owner(&path), entries(&u.home)),
        before,
        "the secret file and the home are as they were"
    );
}

/// Home mode, a scratch code on a squashed home: the module rewrites the secret file
/// (temp file, fsync, rename, directory fsync, under `flock`) as the user. The code is
/// used once, the new file (another inode) belongs to the user with mode 0600, and no
/// temp file or other entry is left; the same code again is refused.
#[test]
fn a_scratch_code_rewrites_the_secret_as_the_user() {
    let t = "a_scratch_code_rewrites_the_secret_as_the_user";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sqs");
    let ops = OpLog::new();
    let secret = system_tests::random_secret_b32();
    let path = u.write_secret(&format!("{}{SCRATCH}\n", totp_file(&secret)), 0o600);
    let inode = fs::metadata(&path).expect("stat").ino();
    let names: Vec<String> = entries(&u.home).into_iter().map(|e| e.0).collect();
    let stack = Stack::probe("svc", "");
    let login = || {
        squashed_login(
            &u.home,
            &path,
            Some(&ops),
            &Driver::login(&stack, &u, SCRATCH).at(T0),
        )
    };

    let (d, lines) = login();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(logged(&lines, "accepted scratch code for"), "{lines:?}");
    // The temp file's name is random; the rename names the file it replaced.
    assert_ops_only_as(
        &ops,
        u.uid,
        &[
            "open /.google_authenticator ok",
            "rename /.google_authenticator ok",
        ],
    );
    assert_eq!(read_bytes(&path), totp_file(&secret).into_bytes());
    assert_ne!(fs::metadata(&path).expect("stat").ino(), inode, "rewritten");
    assert_eq!(mode_owner(&path), (0o600, u.uid, u.gid));
    let after = entries(&u.home);
    assert_eq!(
        after.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        names,
        "no entry added or left behind"
    );
    assert!(after.iter().all(|e| e.1 == u.uid), "{after:?}");

    let (d, lines) = login();
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(logged(&lines, "invalid verification code for"), "{lines:?}");
    assert_ops_only_as(&ops, u.uid, &["open /.google_authenticator ok"]);
}

/// A shared home (shared_home.rs) on a squashed export: the TOTP login that keeps GA's
/// `DISALLOW_REUSE` line up to date rewrites the file as the user, and a second host
/// (its own state directory) refuses the code from that line.
#[test]
fn ga_lines_are_rewritten_as_the_user_on_a_squashed_home() {
    let t = "ga_lines_are_rewritten_as_the_user_on_a_squashed_home";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sqr");
    let ops = OpLog::new();
    let secret = system_tests::random_secret_b32();
    let text = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let path = u.write_secret(&text, 0o600);
    let names: Vec<String> = entries(&u.home).into_iter().map(|e| e.0).collect();
    let (a, b) = (Stack::probe("svc", ""), Stack::probe("svc", ""));
    let code = code_at(&secret, T0);
    let login = |stack: &Stack, at: u64| {
        squashed_login(
            &u.home,
            &path,
            Some(&ops),
            &Driver::login(stack, &u, &code).at(at),
        )
    };

    let (d, lines) = login(&a, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_ops_only_as(
        &ops,
        u.uid,
        &[
            "open /.google_authenticator ok",
            "rename /.google_authenticator ok",
        ],
    );
    let want = format!("{secret}\n\" DISALLOW_REUSE {}\n\" TOTP_AUTH\n", T0 / 30);
    assert_eq!(read_bytes(&path), want.into_bytes());
    assert_eq!(mode_owner(&path), (0o600, u.uid, u.gid));
    let after = entries(&u.home);
    assert_eq!(
        after.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        names,
        "no entry added or left behind"
    );

    let (d, lines) = login(&b, T0 + 5);
    assert_refused_as_already_used(&d, &lines);
}

/// An NFSv4 client refuses an exclusive flock on a file opened read-only, the lock
/// taken to keep GA's lines: the TOTP login still succeeds with the file unchanged, the
/// failure is logged, and the host's own store still refuses the replay. (Control: the
/// test above, where the lock is granted and the line written.)
#[test]
fn a_refused_lock_on_an_nfs4_home_never_denies_a_totp_login() {
    let t = "a_refused_lock_on_an_nfs4_home_never_denies_a_totp_login";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sq4");
    let secret = system_tests::random_secret_b32();
    let text = format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    // GA leaves its files at 0400.
    let path = u.write_secret(&text, 0o400);
    let stack = Stack::probe("svc", "");
    let code = code_at(&secret, T0);
    let login = |at: u64| {
        login_with(
            "--nfs4-flock",
            &u,
            &path,
            &Driver::login(&stack, &u, &code).at(at),
        )
    };

    let (d, lines) = login(T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(
        logged(&lines, "cannot be locked") && logged(&lines, "flock"),
        "the refused lock is what happened: {lines:?}"
    );
    assert_eq!(read_bytes(&path), text.clone().into_bytes());
    let (d, lines) = login(T0 + 5);
    assert_refused_as_already_used(&d, &lines);
}

/// A login that failed and told the user the code was already used.
fn assert_refused_as_already_used(d: &Drive, lines: &[String]) {
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(
        d.messages.iter().any(|(_, m)| m.contains("already used")),
        "{d:?}"
    );
}

/// What the module logs when the stand-in refused the lock with EBADF and the file was
/// rewritten under the state store's lock instead.
const REFUSED_LOCK: &str = "refused the lock on a file opened read-only (flock: EBADF";

/// The lockout: on an NFSv4 home a GA file (0400) cannot be locked (EBADF), and a
/// scratch code, which must be struck from the file, used to deny the login. It now
/// logs in with the refusal logged, the code is struck from the file (mode kept), and
/// the code is refused again on this host and on a host with its own state store.
/// Control: the same login on the plain mount takes the lock and logs no refusal. A
/// rewrite that fails still leaves the used code refused on this host.
#[test]
fn a_scratch_code_logs_in_on_an_nfs4_home_and_is_used_up() {
    let t = "a_scratch_code_logs_in_on_an_nfs4_home_and_is_used_up";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sq5");
    let secret = system_tests::random_secret_b32();
    let (plain, second) = ("27182818", "31415926");
    let text = format!("{}{SCRATCH}\n{plain}\n{second}\n", totp_file(&secret));
    let path = u.write_secret(&text, 0o400);
    let (a, b) = (Stack::probe("svc", ""), Stack::probe("svc", ""));
    let login = |flags: &str, stack: &Stack, code: &str| {
        login_with(flags, &u, &path, &Driver::login(stack, &u, code).at(T0))
    };
    let failed = |d: &Drive, lines: &[String]| {
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{d:?} {lines:?}"
        );
    };

    // Control: the plain mount grants the lock on the read-only descriptor.
    let (d, lines) = login("", &a, plain);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(!logged(&lines, REFUSED_LOCK), "{lines:?}");
    assert!(!String::from_utf8_lossy(&read_bytes(&path)).contains(plain));

    let (d, lines) = login("--nfs4-flock", &a, SCRATCH);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(
        logged(&lines, REFUSED_LOCK),
        "the lock was refused: {lines:?}"
    );
    assert!(logged(&lines, "accepted scratch code for"), "{lines:?}");
    assert_eq!(
        read_bytes(&path),
        format!("{}{second}\n", totp_file(&secret)).into_bytes()
    );
    assert_eq!(mode_owner(&path), (0o400, u.uid, u.gid));

    let (d, lines) = login("--nfs4-flock", &a, SCRATCH);
    failed(&d, &lines);
    let (d, lines) = login("--nfs4-flock", &b, SCRATCH);
    failed(&d, &lines);

    // A rewrite that fails (the home is not writable) logs in, and the used code stays
    // refused on this host: the state store recorded it first.
    let mode = fs::metadata(&u.home)
        .expect("stat home")
        .permissions()
        .mode();
    fs::set_permissions(&u.home, fs::Permissions::from_mode(0o555)).expect("chmod home");
    let (d, lines) = login("--nfs4-flock", &a, second);
    let (d2, lines2) = login("--nfs4-flock", &a, second);
    fs::set_permissions(&u.home, fs::Permissions::from_mode(mode)).expect("chmod home");
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(logged(&lines, "not rewritten"), "{lines:?}");
    assert!(String::from_utf8_lossy(&read_bytes(&path)).contains(second));
    failed(&d2, &lines2);
}

/// The comparison for `a_scratch_code_logs_in_on_an_nfs4_home_and_is_used_up`: GA,
/// which takes no lock, logs in with a scratch code on the same NFSv4 stand-in and
/// strikes it from the file; pam_totp now does too.
#[test]
fn ga_logs_in_with_a_scratch_code_on_an_nfs4_home() {
    let t = "ga_logs_in_with_a_scratch_code_on_an_nfs4_home";
    if !require_fuse(t) {
        return;
    }
    let Some(ga) = system_tests::ga_module() else {
        system_tests::skip(
            t,
            "google-authenticator's PAM module (libpam-google-authenticator)",
        );
        return;
    };
    let u = TestUser::create("sq7");
    let secret = system_tests::random_secret_b32();
    let path = u.write_secret(&format!("{}{SCRATCH}\n", totp_file(&secret)), 0o400);
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", ga.display()));
    let (d, lines) = login_with(
        "--nfs4-flock",
        &u,
        &path,
        &Driver::login(&stack, &u, SCRATCH).at(T0),
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    assert!(!String::from_utf8_lossy(&read_bytes(&path)).contains(SCRATCH));
}

/// An HOTP code on an NFSv4 home whose GA file (0400) cannot be locked: the login
/// succeeds, the counter moves in the file, and the code is refused again on this host
/// and on a host with its own state store. (Control: the plain-mount login of
/// `a_scratch_code_logs_in_on_an_nfs4_home_and_is_used_up`.)
#[test]
fn an_hotp_code_logs_in_on_an_nfs4_home_and_advances_the_counter() {
    let t = "an_hotp_code_logs_in_on_an_nfs4_home_and_advances_the_counter";
    if !require_fuse(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("sq6");
    let secret = system_tests::random_secret_b32();
    let path = u.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o400);
    let (a, b) = (Stack::probe("svc", ""), Stack::probe("svc", ""));
    let code = system_tests::oathtool_hotp(&secret, 2);
    let login = |stack: &Stack| {
        login_with(
            "--nfs4-flock",
            &u,
            &path,
            &Driver::login(stack, &u, &code).at(T0),
        )
    };

    let (d, lines) = login(&a);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert!(
        logged(&lines, REFUSED_LOCK),
        "the lock was refused: {lines:?}"
    );
    let after = String::from_utf8_lossy(&read_bytes(&path)).into_owned();
    assert!(after.contains("\" HOTP_COUNTER 3"), "{after}");
    assert_eq!(mode_owner(&path), (0o400, u.uid, u.gid));
    for stack in [&a, &b] {
        let (d, lines) = login(stack);
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{d:?} {lines:?}"
        );
    }
}

/// The processes other than this one that hold both `a` and `b` open.
fn holders_of(a: &Path, b: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let open: Vec<PathBuf> = fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|fds| {
                    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
                        .collect()
                })
                .unwrap_or_default();
            open.iter().any(|p| p == a) && open.iter().any(|p| p == b)
        })
        .collect()
}

/// Two logins of one host racing on an NFSv4 home (the lock on the secret file
/// refused), made deterministic: the test holds the user's state record's `flock` (the
/// per-user lock of this host's state store) before `driver` starts, waits until the
/// login holds the secret file it read and the record it waits to lock (nothing else
/// opens both), then rewrites the file as the other login would (`other`, the user's,
/// `mode`, renamed into place) and releases the lock. The run and the module's syslog.
fn raced_login(
    u: &TestUser,
    stack: &Stack,
    path: &Path,
    driver: &Driver,
    other: &str,
    mode: u32,
) -> (Drive, Vec<String>) {
    let record = stack.state_file(u.uid);
    let held = fs::File::open(&record).expect("the state record (an earlier login made it)");
    held.lock().expect("hold the state record's lock");
    std::thread::scope(|scope| {
        let login = scope.spawn(|| login_with("--nfs4-flock", u, path, driver));
        // Bounded by the login itself: it ends (and the test fails below) if it never
        // waits on the record; it waits there for at most its lock_timeout.
        while holders_of(path, &record).is_empty() {
            assert!(
                !login.is_finished(),
                "the login ended without waiting for the state record's lock: {:?}",
                login.join()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let temp = u.home.join(".google_authenticator~other");
        write_owned(&temp, other.as_bytes(), u.uid, u.gid, mode);
        fs::rename(&temp, path).expect("rename the other login's file into place");
        held.unlock().expect("release the state record's lock");
        login.join().expect("the login thread")
    })
}

/// What a [`raced_login`] that succeeded leaves: the file read right after it, `after`,
/// holds `want` (`why` says what that shows), the file is still 0400 and the user's,
/// and the login's `lines` name the refused lock and the race.
fn assert_the_raced_use_was_carried(
    u: &TestUser,
    path: &Path,
    after: &[u8],
    want: &str,
    why: &str,
    lines: &[String],
) {
    assert_eq!(after, want.as_bytes(), "{why}");
    assert_eq!(mode_owner(path), (0o400, u.uid, u.gid));
    assert!(logged(lines, REFUSED_LOCK), "{lines:?}");
    assert!(
        logged(lines, "changed by another login since this one read it"),
        "the race happened: {lines:?}"
    );
}

/// The race on one host that a refused lock leaves (an NFSv4 home): a scratch-code
/// login reads the file, and before it rewrites it another login strikes another
/// scratch code. The login succeeds and carries its own use into the newer file, so
/// the file lists neither code and a host with its own state store refuses the code
/// this login used. (Before the fix the newer file was kept as it was: the code stayed
/// listed and the other host accepted it. Control, unraced:
/// `a_scratch_code_logs_in_on_an_nfs4_home_and_is_used_up`.)
#[test]
fn a_scratch_code_raced_on_an_nfs4_home_is_still_struck_from_the_file() {
    let t = "a_scratch_code_raced_on_an_nfs4_home_is_still_struck_from_the_file";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sq8");
    let secret = system_tests::random_secret_b32();
    let (theirs, left) = ("27182818", "31415926");
    let text = format!("{}{SCRATCH}\n{theirs}\n{left}\n", totp_file(&secret));
    let path = u.write_secret(&text, 0o400);
    let (a, b) = (
        Stack::probe("svc", "lock_timeout=5000"),
        Stack::probe("svc", "lock_timeout=5000"),
    );
    // A TOTP login first makes this host's state record (no rewrite: no GA lines).
    let (d, lines) = login_with(
        "--nfs4-flock",
        &u,
        &path,
        &Driver::login(&a, &u, &code_at(&secret, T0)).at(T0),
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_eq!(read_bytes(&path), text.clone().into_bytes());

    // The other login's file: `theirs` struck, as its rewrite would leave it.
    let other = format!("{}{SCRATCH}\n{left}\n", totp_file(&secret));
    let (d, lines) = raced_login(
        &u,
        &a,
        &path,
        &Driver::login(&a, &u, SCRATCH).at(T0 + 60),
        &other,
        0o400,
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let after = read_bytes(&path);
    // The other host first: it knows only the file.
    for stack in [&b, &a] {
        let (d, lines) = login_with(
            "--nfs4-flock",
            &u,
            &path,
            &Driver::login(stack, &u, SCRATCH).at(T0 + 120),
        );
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{d:?} {lines:?}"
        );
    }
    assert_the_raced_use_was_carried(
        &u,
        &path,
        &after,
        &format!("{}{left}\n", totp_file(&secret)),
        "neither used scratch code is listed",
        &lines,
    );
}

/// The HOTP form of the race: this login reads `HOTP_COUNTER 2` and accepts the code of
/// counter 3, while another login, which used counter 2, writes `HOTP_COUNTER 3`
/// before this one rewrites the file. The counter ends at 4, so a host with its own
/// state store refuses the code of counter 3. (Before the fix the file kept 3 and that
/// host accepted it. Control, unraced:
/// `an_hotp_code_logs_in_on_an_nfs4_home_and_advances_the_counter`.)
#[test]
fn an_hotp_code_raced_on_an_nfs4_home_still_advances_the_counter() {
    let t = "an_hotp_code_raced_on_an_nfs4_home_still_advances_the_counter";
    if !require_fuse(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("sq9");
    let secret = system_tests::random_secret_b32();
    let path = u.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o400);
    let (a, b) = (
        Stack::probe("svc", "lock_timeout=5000"),
        Stack::probe("svc", "lock_timeout=5000"),
    );
    let hotp = |c: u64| system_tests::oathtool_hotp(&secret, c);
    let login = |stack: &Stack, code: &str| {
        login_with(
            "--nfs4-flock",
            &u,
            &path,
            &Driver::login(stack, &u, code).at(T0),
        )
    };
    // Counter 1, unraced: this host's state record is made and the file says 2.
    let (d, lines) = login(&a, &hotp(1));
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_eq!(
        read_bytes(&path),
        format!("{secret}\n\" HOTP_COUNTER 2\n").into_bytes()
    );

    let (d, lines) = raced_login(
        &u,
        &a,
        &path,
        &Driver::login(&a, &u, &hotp(3)).at(T0),
        &format!("{secret}\n\" HOTP_COUNTER 3\n"),
        0o400,
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let after = read_bytes(&path);
    // The other host first: it knows only the file.
    for stack in [&b, &a] {
        let (d, lines) = login(stack, &hotp(3));
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{d:?} {lines:?}"
        );
    }
    assert_the_raced_use_was_carried(
        &u,
        &path,
        &after,
        &format!("{secret}\n\" HOTP_COUNTER 4\n"),
        "the counter this login used is no longer open",
        &lines,
    );
}

/// `nullok` on a squashed home without a secret file: the module looks for the file as
/// the user, finds it missing in a home it reached and skips. Had it looked as root
/// (nobody on the server), the home would be unreachable and the login denied.
#[test]
fn nullok_skips_a_user_without_a_file_on_a_squashed_home() {
    let t = "nullok_skips_a_user_without_a_file_on_a_squashed_home";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sqn");
    let ops = OpLog::new();
    let stack = Stack::probe("svc", "nullok");
    let (d, lines) = squashed_login(
        &u.home,
        &u.home.join(".profile"),
        Some(&ops),
        &Driver::login(&stack, &u, "123456").at(T0),
    );
    assert_eq!(d.returned(), Returned::Ignore, "{d:?} {lines:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
    assert_ops_only_as(
        &ops,
        u.uid,
        &["getattr /.google_authenticator No such file or directory"],
    );
}

/// Store mode on a squashed export, as an admin with NFS would set it up: the secrets
/// in a directory of a dedicated store account (mode 0700), `user=` naming that account
/// and `secret=` the store. The module opens the files as that account: a right code
/// logs in, its replay and a wrong code are refused, the file is untouched.
#[test]
fn store_mode_with_a_store_account_logs_in_through_a_squashed_export() {
    let t = "store_mode_with_a_store_account_logs_in_through_a_squashed_export";
    if !require_fuse(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("sql");
    let store = TestUser::create("sqa");
    let ops = OpLog::new();
    let path = store.home.join(&u.name);
    write_owned(
        &path,
        totp_file(&secret).as_bytes(),
        store.uid,
        store.gid,
        0o600,
    );
    let before = (read_bytes(&path), mode_owner(&path));
    let stack = Stack::probe(
        "svc",
        &format!(
            "user={} secret={}/${{USER}}",
            store.name,
            store.home.display()
        ),
    );
    let code = code_at(&secret, T0);
    let opened = format!("open /{} ok", u.name);
    let login = |answer: &str| {
        let run = squashed_login(
            &store.home,
            &path,
            Some(&ops),
            &Driver::login(&stack, &u, answer).at(T0),
        );
        assert_ops_only_as(&ops, store.uid, &[&opened]);
        run
    };

    let (d, lines) = login(&code);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let (d, lines) = login(&code);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(logged(&lines, "code already used for"), "{lines:?}");
    let (d, lines) = login(&wrong_totp(&secret, T0));
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(logged(&lines, "invalid verification code for"), "{lines:?}");
    assert_eq!((read_bytes(&path), mode_owner(&path)), before);
}

/// Store mode with `user=root` on a squashed export cannot work (root is nobody on the
/// server, and the root-only store is closed to nobody): the login is denied after the
/// prompt, with an error line naming the secret file and the refusal. Control: the same
/// stack without the squash logs in.
#[test]
fn store_mode_as_root_on_a_squashed_export_is_denied_and_logged() {
    let t = "store_mode_as_root_on_a_squashed_export_is_denied_and_logged";
    if !require_fuse(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("sqz");
    let ops = OpLog::new();
    let store = root_store();
    let path = store.path().join(&u.name);
    write_owned(&path, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    let stack = Stack::probe(
        "svc",
        &format!("user=root secret={}/${{USER}}", store.path().display()),
    );
    let code = code_at(&secret, T0);
    let driver = Driver::login(&stack, &u, &code).at(T0);

    let (d, lines) = squashed_login(store.path(), &path, Some(&ops), &driver);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert_eq!(d.prompts, 1, "denied after the usual prompt: {d:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&path.display().to_string()) && l.contains("Permission denied")),
        "the log names the file and the refusal: {lines:?}"
    );
    assert!(
        logged(&lines, "code not verified (secret file unusable)"),
        "{lines:?}"
    );
    // The server saw nobody, and refused it.
    assert_ops_only_as(
        &ops,
        NOBODY,
        &[&format!("getattr /{} Permission denied", u.name)],
    );

    let (d, lines) = system_tests::capture_syslog(&driver);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
}

/// Every operation the module had the stand-in do was done as `uid`, and `wanted` is
/// among them (`OP uid=UID /PATH RESULT`, without the uid).
fn assert_ops_only_as(ops: &OpLog, uid: u32, wanted: &[&str]) {
    let all = ops.lines();
    let tag = format!(" uid={uid} ");
    assert!(
        !all.is_empty() && all.iter().all(|l| l.contains(&tag)),
        "only uid {uid}: {all:#?}"
    );
    for w in wanted {
        let (op, rest) = w.split_once(' ').expect("OP PATH RESULT");
        let line = format!("{op}{tag}{rest}");
        assert!(all.contains(&line), "{line:?} in {all:#?}");
    }
}

fn read_bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Removes a group created for one test.
struct GroupGuard(String);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _g = user_database_lock();
        let _ = shadow_tool("groupdel", &[&self.0]);
    }
}

/// Home mode with the home behind a directory only a supplementary group may search
/// (`staff`, mode 0710, as many NFS sites arrange homes): root is nobody and cannot
/// pass it, the user's primary group cannot either, so only the module's switch to the
/// user's supplementary groups (sent to the server, as NFS's AUTH_SYS does) reaches the
/// file. A right code logs in; with the user taken out of the group, the same set-up is
/// denied after the prompt and the log names the refusal.
#[test]
fn supplementary_groups_reach_a_home_behind_a_group_only_directory() {
    let t = "supplementary_groups_reach_a_home_behind_a_group_only_directory";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sqg");
    let group = GroupGuard(format!("{}g", u.name));
    u.add_to_group(&group.0);
    let gid: u32 = String::from_utf8_lossy(
        &Command::new("getent")
            .args(["group", &group.0])
            .output()
            .expect("getent")
            .stdout,
    )
    .split(':')
    .nth(2)
    .and_then(|g| g.trim().parse().ok())
    .expect("the group's gid");
    let export = tempfile::Builder::new()
        .prefix("pam_totp-export")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(export.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let staff = export.path().join("staff");
    fs::create_dir(&staff).expect("mkdir");
    std::os::unix::fs::chown(&staff, Some(0), Some(gid)).expect("chown");
    fs::set_permissions(&staff, fs::Permissions::from_mode(0o710)).expect("chmod");
    let home = staff.join(&u.name);
    fs::create_dir(&home).expect("mkdir");
    std::os::unix::fs::chown(&home, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod");
    {
        let _g = user_database_lock();
        let home = home.display().to_string();
        let out = shadow_tool("usermod", &["-d", &home, &u.name]).expect("usermod");
        assert!(out.status.success(), "usermod -d: {out:?}");
    }
    let secret = system_tests::random_secret_b32();
    let path = home.join(".google_authenticator");
    write_owned(&path, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o600);
    let ops = OpLog::new();
    let stack = Stack::probe("svc", "");
    let login = |at: u64| {
        squashed_login(
            export.path(),
            &path,
            Some(&ops),
            &Driver::login(&stack, &u, &code_at(&secret, at)).at(at),
        )
    };

    let (d, lines) = login(T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_ops_only_as(
        &ops,
        u.uid,
        &[&format!("open /staff/{}/.google_authenticator ok", u.name)],
    );

    let st = {
        let _g = user_database_lock();
        shadow_tool("gpasswd", &["-d", &u.name, &group.0]).expect("gpasswd")
    };
    assert!(st.status.success(), "gpasswd -d: {st:?}");
    let (d, lines) = login(T0 + 60);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert_eq!(d.prompts, 1, "denied after the usual prompt: {d:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Permission denied") && l.contains(&staff.display().to_string())),
        "the log names the refusal: {lines:?}"
    );
    assert_ops_only_as(
        &ops,
        u.uid,
        &[&format!("getattr /staff/{} Permission denied", u.name)],
    );
}

/// `totp-enroll --user` run by root for a user whose home is squashed: the CLI writes
/// the new secret file as the user (root could not create it there), the file is the
/// user's with mode 0600, and the module then logs the user in with a code of it.
#[test]
fn root_enrolls_a_user_on_a_squashed_home_as_the_user() {
    let t = "root_enrolls_a_user_on_a_squashed_home_as_the_user";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sqe");
    let ops = OpLog::new();
    let path = u.secret_path();
    let mut enroll = Command::new(&built().enroll);
    enroll.args(ENROLL_SCRIPTED).args(["-q", "--user", &u.name]);
    let out = run_in_namespace(
        &mount_squashed(&u.home, &u.home.join(".profile"), Some(&ops)),
        &enroll,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode_owner(&path), (0o600, u.uid, u.gid), "{out:?}");
    assert_ops_only_as(&ops, u.uid, &["rename /.google_authenticator ok"]);
    let text = String::from_utf8_lossy(&read_bytes(&path)).into_owned();
    let secret = text.lines().next().expect("line 1").to_owned();

    let stack = Stack::probe("svc", "");
    let (d, lines) = squashed_login(
        &u.home,
        &path,
        Some(&ops),
        &Driver::login(&stack, &u, &code_at(&secret, T0)).at(T0),
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
}

/// `state_dir=` on a squashed export cannot work (the state store is root's, and root
/// is nobody there): the login is denied after the prompt, nothing is created on the
/// export, and the log names the state directory and the refusal. Control: the same stack with
/// its usual local state directory logs in through the same squashed home.
#[test]
fn a_state_dir_on_a_squashed_export_is_denied_and_logged() {
    let t = "a_state_dir_on_a_squashed_export_is_denied_and_logged";
    if !require_fuse(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("sqd");
    let ops = OpLog::new();
    // Below directories only root can write, as the module requires of a state_dir=.
    let export = tempfile::Builder::new()
        .prefix("pam_totp-export")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(export.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = export.path().join("state");
    let code = code_at(&secret, T0);
    let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
    let (d, lines) = squashed_login(
        export.path(),
        &state.join("probe"),
        Some(&ops),
        &Driver::login(&stack, &u, &code).at(T0),
    );
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert_eq!(d.prompts, 1, "denied after the usual prompt: {d:?}");
    assert!(
        lines.iter().any(|l| l.contains("could not be saved")
            && l.contains(&state.display().to_string())
            && l.contains("Permission denied")),
        "the log names the state directory and the refusal: {lines:?}"
    );
    assert!(!state.exists(), "nothing created on the export");
    // Root reached the export as nobody only, and the server refused the creation.
    assert_ops_only_as(&ops, NOBODY, &["mkdir /state Permission denied"]);

    let control = Stack::probe("svc", "");
    let (d, lines) = squashed_login(
        export.path(),
        &state.join("probe"),
        None,
        &Driver::login(&control, &u, &code).at(T0),
    );
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
}

/// GA's layout for secrets kept outside the home (`secret=/DIR/${USER}/.google_authenticator`,
/// one 0700 directory per user in a root-owned one), with that tree on the squashed
/// export and no `user=`: the module opens each file as its user, so a right code logs
/// in and a wrong one is refused, and nothing on the export is touched as anybody else.
#[test]
fn ga_style_secret_outside_the_home_on_a_squashed_export() {
    let t = "ga_style_secret_outside_the_home_on_a_squashed_export";
    if !require_fuse(t) {
        return;
    }
    let u = TestUser::create("sqo");
    let ops = OpLog::new();
    let export = tempfile::Builder::new()
        .prefix("pam_totp-export")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(export.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = export.path().join(&u.name);
    fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    let secret = system_tests::random_secret_b32();
    let path = dir.join(".google_authenticator");
    write_owned(&path, totp_file(&secret).as_bytes(), u.uid, u.gid, 0o600);
    let stack = Stack::probe(
        "svc",
        &format!(
            "secret={}/${{USER}}/.google_authenticator",
            export.path().display()
        ),
    );
    let opened = format!("open /{}/.google_authenticator ok", u.name);
    let login = |answer: &str| {
        let run = squashed_login(
            export.path(),
            &path,
            Some(&ops),
            &Driver::login(&stack, &u, answer).at(T0),
        );
        assert_ops_only_as(&ops, u.uid, &[&opened]);
        run
    };

    let (d, lines) = login(&code_at(&secret, T0));
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    let (d, lines) = login(&wrong_totp(&secret, T0));
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(logged(&lines, "invalid verification code for"), "{lines:?}");
    assert_eq!(mode_owner(&path), (0o600, u.uid, u.gid));
}

/// `totp-state audit`, run by root before a pam.d change, inspects a squashed home as
/// its user: the enrolled user on the export is `ok` (read through the stand-in as the
/// user only), and the login then agrees.
#[test]
fn audit_inspects_a_squashed_home_as_the_user() {
    let t = "audit_inspects_a_squashed_home_as_the_user";
    if !require_fuse(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("squ");
    let ops = OpLog::new();
    let path = u.secret_path();
    let stack = Stack::probe("svc", "");
    let audit = audit_command(stack.path());
    let out = run_in_namespace(&mount_squashed(&u.home, &path, Some(&ops)), &audit);
    let verdict = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["user"] == u.name.as_str())
        .unwrap_or_else(|| panic!("{} not audited: {out:?}", u.name));
    assert_eq!(verdict["verdict"], "ok", "{verdict}");
    assert_ops_only_as(&ops, u.uid, &["open /.google_authenticator ok"]);

    let (d, lines) = squashed_login(
        &u.home,
        &path,
        Some(&ops),
        &Driver::login(&stack, &u, &code_at(&secret, T0)).at(T0),
    );
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
}

/// Home mode, an HOTP code on a squashed home: the counter moves in the secret file,
/// rewritten as the user (the user's, 0600, another inode, nothing else in the home
/// changed); the same code again is refused.
#[test]
fn an_hotp_counter_is_rewritten_as_the_user() {
    let t = "an_hotp_counter_is_rewritten_as_the_user";
    if !require_fuse(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("sqk");
    let ops = OpLog::new();
    let secret = system_tests::random_secret_b32();
    let path = u.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let inode = fs::metadata(&path).expect("stat").ino();
    let others: Vec<_> = entries(&u.home)
        .into_iter()
        .filter(|e| e.0 != ".google_authenticator")
        .collect();
    let stack = Stack::probe("svc", "");
    let code = system_tests::oathtool_hotp(&secret, 2);
    let login = || {
        squashed_login(
            &u.home,
            &path,
            Some(&ops),
            &Driver::login(&stack, &u, &code).at(T0),
        )
    };

    let (d, lines) = login();
    assert_eq!(d.returned(), Returned::Success, "{d:?} {lines:?}");
    assert_ops_only_as(&ops, u.uid, &["rename /.google_authenticator ok"]);
    let after = String::from_utf8_lossy(&read_bytes(&path)).into_owned();
    assert!(after.contains("\" HOTP_COUNTER 3"), "{after}");
    assert_ne!(fs::metadata(&path).expect("stat").ino(), inode, "rewritten");
    assert_eq!(mode_owner(&path), (0o600, u.uid, u.gid));
    let now: Vec<_> = entries(&u.home)
        .into_iter()
        .filter(|e| e.0 != ".google_authenticator")
        .collect();
    assert_eq!(now, others, "nothing else in the home changed");

    let (d, lines) = login();
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
}

/// GA leaves its files 0400, and an NFSv4 client refuses `flock` on a read-only
/// descriptor (EBADF): `totp-enroll resync` and `--regenerate-scratch-codes` took that
/// lock only, and failed, so a user on a shared NFSv4 home could neither be
/// resynchronised nor get new scratch codes. Now the file is read unlocked, as a login
/// reads it, and rewritten only over what was read: the offset is recorded (mode and
/// owner kept), the phone's next code logs in, and the new scratch codes are written.
/// Control: the plain mount grants the lock, and the same runs do the same.
#[test]
fn resync_and_new_scratch_codes_work_on_an_nfs4_home() {
    let t = "resync_and_new_scratch_codes_work_on_an_nfs4_home";
    if !require_fuse(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("sqy");
    let stack = Stack::probe("svc", "");
    for flags in ["", "--nfs4-flock"] {
        let secret = system_tests::random_secret_b32();
        let text = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n{SCRATCH}\n");
        let path = u.write_secret(&text, 0o400);
        // The phone's clock is five minutes behind.
        let phone = |t: u64| oathtool_totp(&secret, t - 300, 30, 6, "sha1");
        let mount = mount_squashed_with(flags, &u.home, &path, None);
        let mut resync = Command::new(&built().enroll);
        resync
            .args(["resync", "--user", &u.name, &phone(T0 - 30), &phone(T0)])
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(T0))
            .env("TZ", "UTC");
        let (out, _) = with_syslog_capture_after(&mount, &resync);
        assert!(out.status.success(), "{flags:?}: {out:?}");
        let file = String::from_utf8(read_bytes(&path)).expect("utf-8");
        assert!(file.contains("\" TIME_SKEW -10\n"), "{flags:?}: {file}");
        assert_eq!(mode_owner(&path), (0o400, u.uid, u.gid), "{flags:?}");
        let later = T0 + 60;
        let (d, lines) = login_with(
            flags,
            &u,
            &path,
            &Driver::login(&stack, &u, &phone(later)).at(later),
        );
        assert_eq!(
            d.returned(),
            Returned::Success,
            "{flags:?}: {d:?} {lines:?}"
        );

        let mut regenerate = Command::new(&built().enroll);
        regenerate.args([
            "--regenerate-scratch-codes",
            "--user",
            &u.name,
            "-q",
            "--non-interactive",
        ]);
        let (out, _) = with_syslog_capture_after(&mount, &regenerate);
        assert!(out.status.success(), "{flags:?}: {out:?}");
        let file = String::from_utf8(read_bytes(&path)).expect("utf-8");
        assert!(!file.contains(SCRATCH), "{flags:?}: {file}");
        assert!(file.contains("\" TIME_SKEW -10\n"), "{flags:?}: {file}");
        assert_eq!(mode_owner(&path), (0o400, u.uid, u.gid), "{flags:?}");
    }
}

/// `totp-enroll --regenerate-scratch-codes` on an NFSv4 home (the lock refused, the
/// file read unlocked) while a login of this host strikes a scratch code: strace stops
/// the CLI at the fsync of its new file, after the second read that compares, before
/// the rename; the test then renames the login's file into place, as that login would,
/// and lets the CLI go on. The check on the name right before the rename finds another
/// file there: nothing is written (the login's strike stays, so a host with its own
/// state store refuses that code), and the run says so and to run again (before, it
/// said the file "kept being replaced while locking"). Control: the same stop without
/// the rewrite, and the new codes are written.
#[test]
fn a_login_rewrite_during_new_scratch_codes_on_an_nfs4_home_is_not_undone() {
    let t = "a_login_rewrite_during_new_scratch_codes_on_an_nfs4_home_is_not_undone";
    if !require_fuse(t) || !require_tool(t, "strace") {
        return;
    }
    let u = TestUser::create("sqw");
    let left = "27182818";
    for raced in [false, true] {
        let secret = system_tests::random_secret_b32();
        let text = format!("{}{SCRATCH}\n{left}\n", totp_file(&secret));
        let path = u.write_secret(&text, 0o400);
        let struck = format!("{}{left}\n", totp_file(&secret));
        let trace_dir = tempfile::tempdir().expect("tempdir");
        let trace = trace_dir.path().join("strace.out");
        let mount = mount_squashed_with("--nfs4-flock", &u.home, &path, None);
        let mut regenerate = Command::new("strace");
        regenerate
            .args(["-D", "-f", "-qq", "-e", "trace=fsync", "-e"])
            .arg("inject=fsync:signal=SIGSTOP:when=1")
            .arg("-o")
            .arg(&trace)
            .arg(&built().enroll)
            .args([
                "--regenerate-scratch-codes",
                "--user",
                &u.name,
                "-q",
                "--non-interactive",
            ]);
        let out = std::thread::scope(|scope| {
            let run = scope.spawn(|| with_syslog_capture_after(&mount, &regenerate).0);
            // Bounded by the run: it ends (and the test fails) if it never stops.
            let pid = loop {
                let lines = fs::read_to_string(&trace).unwrap_or_default();
                if let Some(pid) = lines
                    .lines()
                    .find(|l| l.contains("--- stopped by SIGSTOP ---"))
                    .and_then(|l| l.split_whitespace().next()?.parse::<i32>().ok())
                {
                    break pid;
                }
                assert!(
                    !run.is_finished(),
                    "the CLI ended without stopping at its fsync: {:?}",
                    run.join()
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            };
            if raced {
                let temp = u.home.join(".google_authenticator~login");
                write_owned(&temp, struck.as_bytes(), u.uid, u.gid, 0o400);
                fs::rename(&temp, &path).expect("rename the login's file into place");
            }
            let cont = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status()
                .expect("kill -CONT");
            assert!(cont.success(), "kill -CONT {pid}");
            run.join().expect("the CLI thread")
        });
        let after = String::from_utf8(read_bytes(&path)).expect("utf-8");
        assert_eq!(mode_owner(&path), (0o400, u.uid, u.gid), "raced {raced}");
        if raced {
            assert!(!out.status.success(), "{out:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("was replaced while it was being updated")
                    && stderr.contains("nothing was written; run again"),
                "{stderr}"
            );
            assert_eq!(after, struck, "the login's strike is kept");
        } else {
            assert!(out.status.success(), "{out:?}");
            assert!(
                !after.contains(SCRATCH) && !after.contains(left),
                "new codes written: {after}"
            );
        }
    }
}

/// Without the lock an NFSv4 home refuses, `totp-enroll resync` and
/// `--regenerate-scratch-codes` read the file again right before the rename and write
/// only if it still holds what they read (totp-enroll(1)): a login on another host
/// that rewrote it meanwhile (a used scratch code, a `RATE_LIMIT` entry) is never
/// undone. The stand-in appends a line between the two reads: nothing is written, the
/// run fails with status 1 asking to be run again, and the other host's line stays.
/// Control: the same runs without the change write the file.
#[test]
fn an_unlocked_update_of_a_file_changed_meanwhile_writes_nothing() {
    let t = "an_unlocked_update_of_a_file_changed_meanwhile_writes_nothing";
    if !require_fuse(t) || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("sqx");
    for (flags, changed) in [("--nfs4-flock-changing", true), ("--nfs4-flock", false)] {
        let secret = system_tests::random_secret_b32();
        let text = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n{SCRATCH}\n");
        let path = u.write_secret(&text, 0o400);
        let phone = |t: u64| oathtool_totp(&secret, t - 300, 30, 6, "sha1");
        let mount = mount_squashed_with(flags, &u.home, &path, None);
        let mut resync = Command::new(&built().enroll);
        resync
            .args(["resync", "--user", &u.name, &phone(T0 - 30), &phone(T0)])
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(T0))
            .env("TZ", "UTC");
        let (out, _) = with_syslog_capture_after(&mount, &resync);
        let file = String::from_utf8(read_bytes(&path)).expect("utf-8");
        if changed {
            assert_eq!(out.status.code(), Some(1), "{out:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("changed while it was being updated")
                    && stderr.contains("nothing was written; run again"),
                "{stderr}"
            );
            assert_eq!(file, format!("{text}\" X_WRITTEN_BY_ANOTHER_HOST\n"));
        } else {
            assert!(out.status.success(), "{out:?}");
            assert!(file.contains("\" TIME_SKEW -10\n"), "{file}");
        }

        let before = read_bytes(&path);
        let mut regenerate = Command::new(&built().enroll);
        regenerate.args([
            "--regenerate-scratch-codes",
            "--user",
            &u.name,
            "-q",
            "--non-interactive",
        ]);
        let (out, _) = with_syslog_capture_after(&mount, &regenerate);
        let file = String::from_utf8(read_bytes(&path)).expect("utf-8");
        if changed {
            assert_eq!(out.status.code(), Some(1), "{out:?}");
            let mut expected = before.clone();
            expected.extend_from_slice(b"\" X_WRITTEN_BY_ANOTHER_HOST\n");
            assert_eq!(file.as_bytes(), expected.as_slice(), "nothing written");
            assert!(file.contains(SCRATCH), "{file}");
        } else {
            assert!(out.status.success(), "{out:?}");
            assert!(!file.contains(SCRATCH), "{file}");
        }
        assert_eq!(mode_owner(&path), (0o400, u.uid, u.gid), "{flags:?}");
    }
}
