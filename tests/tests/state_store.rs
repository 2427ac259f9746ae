//! The state store through the real libpam (issue 13, and the throttling and clock
//! parts of issue 11): the secret file is configuration, replay marks and throttling
//! live in a root-owned state directory, faults of that directory deny cleanly, the
//! admin tool shows and resets a record.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use system_tests::*;

fn logs_contain(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| syslog_message(l).contains(needle))
}

const SCRATCH: &str = "12345678";

/// Issue 13: the setups that work with GA and were denied while logins rewrote the
/// secret file now log in, and a replay is still refused.
#[test]
fn read_only_secret_setups_log_in_and_replay_still_fails() {
    if !require_root("read_only_secret_setups_log_in_and_replay_still_fails") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("rs");
    let text = totp_file(&secret);

    // 1. secret=/etc/totp/${USER} style: a root-owned 0755 directory, user-owned 0400.
    let etc = tempfile::Builder::new()
        .prefix("pam_totp-etc")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(etc.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let f = etc.path().join(&u.name);
    write_owned(&f, text.as_bytes(), u.uid, u.gid, 0o400);
    let stack = Stack::probe("svc", &format!("secret={}/${{USER}}", etc.path().display()));
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 1).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(read(&f), text);

    // 2. A root-owned 0644 file in the home directory under no_strict_owner.
    let p = u.write_secret(&text, 0o644);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::chown(&p, Some(0), Some(0)).expect("chown");
    let stack = Stack::probe("svc", "no_strict_owner allowed_perm=0644");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 1).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(read(&p), text);

    // 3. The secret on a read-only file system (EROFS for any write).
    let ro = u.home.join("ro");
    fs::create_dir(&ro).expect("mkdir");
    std::os::unix::fs::chown(&ro, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).expect("chmod");
    write_owned(&ro.join("ga"), text.as_bytes(), u.uid, u.gid, 0o600);
    let stack = Stack::probe("svc", "secret=~/ro/ga");
    let ro_setup = "mount --bind \"$1\" \"$1\"\nmount -o remount,bind,ro \"$1\"";
    let run_ro = |answer: &str, at: u64| {
        let cmd = Driver::login(&stack, &u, answer).at(at).command();
        let out = output_guarded(&mut in_private_mounts(ro_setup, &ro, &cmd), Input::Null);
        Drive::parse(&out)
    };
    let d = run_ro(&code_at(&secret, T0), T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "read-only secret fs: {d:?}");
    assert_eq!(
        run_ro(&code_at(&secret, T0), T0 + 1).module_code(),
        "PAM_AUTH_ERR"
    );
    // Issue 20: a scratch code works once although the file cannot be rewritten (the
    // state store records it), and is refused after that although the file still
    // lists it.
    write_owned(
        &ro.join("ga"),
        format!("{text}{SCRATCH}\n").as_bytes(),
        u.uid,
        u.gid,
        0o600,
    );
    let d = run_ro(SCRATCH, T0 + 2);
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "scratch on a read-only fs: {d:?}"
    );
    assert!(
        read(&ro.join("ga")).contains(SCRATCH),
        "the file was read-only"
    );
    assert_eq!(run_ro(SCRATCH, T0 + 40).module_code(), "PAM_AUTH_ERR");
    // HOTP on the read-only file: each counter once, and past the file's window (the
    // window starts after the store's high-water mark, not at the file's counter).
    write_owned(
        &ro.join("ga"),
        format!("{secret}\n\" HOTP_COUNTER 1\n").as_bytes(),
        u.uid,
        u.gid,
        0o600,
    );
    for counter in 1..=5u64 {
        let d = run_ro(&oathtool_hotp(&secret, counter), T0 + 100 + 40 * counter);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "HOTP {counter}: {d:?}");
    }
    assert_eq!(
        run_ro(&oathtool_hotp(&secret, 5), T0 + 400).module_code(),
        "PAM_AUTH_ERR",
        "a used counter"
    );
    assert!(read(&ro.join("ga")).contains("HOTP_COUNTER 1\n"));

    // 4. The secret on a full file system (ENOSPC for any write).
    let full = Tmpfs::new("256k");
    let dir = full.path().join("u");
    fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::chown(full.path(), Some(u.uid), Some(u.gid)).expect("chown");
    std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    write_owned(&dir.join("ga"), text.as_bytes(), u.uid, u.gid, 0o600);
    full.fill();
    let stack = Stack::probe("svc", &format!("secret={}/ga", dir.display()));
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "full secret fs: {d:?}");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 31).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(read(&dir.join("ga")), text);
}

/// A failed HOTP attempt on a read-only secret file: GA's move of the counter cannot be
/// written, and the log says the counter stays, not that something was recorded; a
/// right code's log line (the control) says the store recorded it.
#[test]
fn a_failed_hotp_attempt_on_a_read_only_file_is_logged_as_such() {
    if !require_root("a_failed_hotp_attempt_on_a_read_only_file_is_logged_as_such") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("rf");
    let ro = u.home.join("ro");
    fs::create_dir(&ro).expect("mkdir");
    std::os::unix::fs::chown(&ro, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).expect("chmod");
    let text = format!("{secret}\n\" HOTP_COUNTER 1\n");
    write_owned(&ro.join("ga"), text.as_bytes(), u.uid, u.gid, 0o600);
    let stack = Stack::probe("svc", "secret=~/ro/ga");
    let ro_setup = "mount --bind \"$1\" \"$1\"\nmount -o remount,bind,ro \"$1\"";
    let run_ro = |answer: &str, at: u64| {
        let cmd = Driver::login(&stack, &u, answer).at(at).command();
        let (out, lines) = with_syslog_capture(&in_private_mounts(ro_setup, &ro, &cmd));
        (Drive::parse(&out), lines)
    };
    let near: Vec<String> = (1..=4).map(|c| oathtool_hotp(&secret, c)).collect();
    let wrong = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .expect("a wrong code");
    let (d, lines) = run_ro(&wrong, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let line = lines
        .iter()
        .find(|l| l.contains("not rewritten"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        line.contains("the HOTP counter stays where it is"),
        "{line}"
    );
    assert!(!line.contains("recorded in the state store"), "{line}");

    let (d, lines) = run_ro(&oathtool_hotp(&secret, 1), T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("not rewritten") && l.contains("recorded in the state store")),
        "{lines:?}"
    );
    assert_eq!(read(&ro.join("ga")), text);
}

/// Issue 13: right, wrong, replayed and throttled attempts leave the secret file's
/// bytes, inode and modification time alone (a file without GA's own `RATE_LIMIT` and
/// `DISALLOW_REUSE` lines, which are kept up to date where present: `shared_home.rs`).
#[test]
fn totp_attempts_never_write_the_secret_file() {
    if !require_root("totp_attempts_never_write_the_secret_file") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("nw");
    let text = format!("{secret}\n\" WINDOW_SIZE 3\n\" TOTP_AUTH\n{SCRATCH}\n");
    let p = u.write_secret(&text, 0o600);
    let meta = |p: &Path| {
        let m = fs::metadata(p).expect("stat");
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before = meta(&p);
    let stack = Stack::probe("svc", "throttle_after=2");
    let right = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(right.module_code(), "PAM_SUCCESS");
    let replayed = login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 1);
    assert_eq!(replayed.module_code(), "PAM_AUTH_ERR");
    let wrong = login_at(&stack, &u, &wrong_totp(&secret, T0), None, T0 + 2);
    assert_eq!(wrong.module_code(), "PAM_AUTH_ERR");
    let throttled = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 3);
    assert_eq!(throttled.module_code(), "PAM_AUTH_ERR");
    assert!(
        throttled
            .messages
            .iter()
            .any(|(s, t)| *s == 3 && t.starts_with("too many failed codes")),
        "{throttled:?}"
    );
    assert_eq!(read(&p), text);
    assert_eq!(meta(&p), before, "inode or mtime changed");
    assert_eq!(stored_last_step(&stack, u.uid), Some(T0 / 30));
    assert_eq!(stored_failures(&stack, u.uid), 2);
}

/// A user rewriting their own file (deleting state lines, adding zeroed ones) cannot
/// reset the replay mark or the throttling: both live in a directory they cannot write.
#[test]
fn a_user_rewriting_their_own_file_cannot_reset_replay_or_throttling() {
    if !require_root("a_user_rewriting_their_own_file_cannot_reset_replay_or_throttling") {
        return;
    }
    let (u, secret) = TestUser::enrolled("uw");
    let stack = Stack::probe("svc", "throttle_after=2");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    for i in 0..2 {
        assert_eq!(
            login_at(&stack, &u, &wrong_totp(&secret, T0), None, T0 + 1 + i).module_code(),
            "PAM_AUTH_ERR"
        );
    }
    // What a user with a shell could do to their own file.
    for rewrite in [
        totp_file(&secret),
        format!("{secret}\n\" PAM_TOTP_FAILURES 0 0\n\" PAM_TOTP_LAST_STEP 0\n\" TOTP_AUTH\n"),
        format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
    ] {
        u.write_secret(&rewrite, 0o600);
        let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 10);
        assert_eq!(
            d.module_code(),
            "PAM_AUTH_ERR",
            "still throttled after {rewrite:?}"
        );
        assert!(d.messages.iter().any(|(s, _)| *s == 3), "{d:?}");
    }
    // After the backoff: the replayed code is still refused (a third failure, 60 s),
    // a new one works after that.
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 40).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0 + 120), None, T0 + 120).module_code(),
        "PAM_SUCCESS"
    );
    let (mode, uid, _) = mode_owner(&stack.state_file(u.uid));
    assert_eq!((mode, uid), (0o600, 0), "the record is root's");
}

/// Issue 11: someone who knows the password can throttle their own origin, never the
/// user's; the throttled side is told how long to wait.
#[test]
fn a_strangers_origin_does_not_throttle_the_users_origin() {
    if !require_root("a_strangers_origin_does_not_throttle_the_users_origin") {
        return;
    }
    let (u, secret) = TestUser::enrolled("so");
    let stack = Stack::probe("svc", "");
    let stranger = "198.51.100.66";
    let own = "192.0.2.10";
    for i in 0..3 {
        let d = login_at(&stack, &u, &wrong_totp(&secret, T0), stranger, T0 + i);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert!(
            !d.messages.iter().any(|(s, _)| *s == 3),
            "not throttled yet: {d:?}"
        );
    }
    // The stranger keeps trying the moment each backoff ends...
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 10), stranger, T0 + 10);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert!(
        d.messages
            .contains(&(3, "too many failed codes; try again in 22 s".to_string())),
        "{d:?}"
    );
    // ...the user's own address is not held up.
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 10), own, T0 + 10);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // Local logins are keyed by their tty: another tty is another origin.
    for i in 0..3 {
        let d = Driver::login(&stack, &u, &wrong_totp(&secret, T0))
            .tty("/dev/pts/7")
            .at(T0 + 40 + i)
            .run();
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    }
    let d = Driver::login(&stack, &u, &code_at(&secret, T0 + 60))
        .tty("/dev/pts/8")
        .at(T0 + 60)
        .run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// Issue 11: rotating origins does not buy more guesses: the per-user ceiling stops
/// them (and the user's known origin still gets in).
#[test]
fn rotating_origins_meet_the_per_user_ceiling() {
    if !require_root("rotating_origins_meet_the_per_user_ceiling") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ce");
    let stack = Stack::probe("svc", "ceiling_burst=4 ceiling_interval=600");
    let own = "192.0.2.10";
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), own, T0).module_code(),
        "PAM_SUCCESS"
    );
    for i in 0..4u64 {
        let d = login_at(
            &stack,
            &u,
            &wrong_totp(&secret, T0),
            format!("203.0.113.{i}").as_str(),
            T0 + 1,
        );
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert!(
            !d.messages.iter().any(|(s, _)| *s == 3),
            "guess {i} evaluated: {d:?}"
        );
    }
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, T0 + 30),
        "203.0.113.99",
        T0 + 30,
    );
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "a fifth origin is held by the ceiling"
    );
    assert!(
        d.messages
            .iter()
            .any(|(s, t)| *s == 3 && t.contains("try again in")),
        "{d:?}"
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), own, T0 + 31);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the known origin: {d:?}");
}

/// pam_totp(8), THROTTLING: a host name in `PAM_RHOST` (sshd with `UseDNS yes`) is
/// whatever the peer's reverse zone says, so a code accepted from it never makes it a
/// known origin: once strangers spent the other origins' half of the ceiling, a login
/// from that name waits with them. Control: a numeric address a code was accepted from
/// in the same record is known and still gets in.
#[test]
fn a_host_name_never_becomes_a_known_origin() {
    if !require_root("a_host_name_never_becomes_a_known_origin") {
        return;
    }
    let (u, secret) = TestUser::enrolled("hn");
    let stack = Stack::probe("svc", "ceiling_burst=4 ceiling_interval=600");
    let (name, own) = ("client.example", "192.0.2.11");
    for (from, at) in [(name, T0), (own, T0 + 30)] {
        let d = login_at(&stack, &u, &code_at(&secret, at), from, at);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "{from}: {d:?}");
    }
    for i in 0..4u64 {
        let from = format!("203.0.113.{i}");
        let d = login_at(
            &stack,
            &u,
            &wrong_totp(&secret, T0 + 31),
            from.as_str(),
            T0 + 31,
        );
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    }
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), name, T0 + 60);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert!(
        d.messages
            .iter()
            .any(|(s, t)| *s == 3 && t.contains("try again in")),
        "held by the ceiling: {d:?}"
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), own, T0 + 61);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "the known address: {d:?}");
}

/// Issue 13: a full or read-only state file system denies with a clear log line and
/// loses nothing already recorded.
#[test]
fn a_full_state_disk_spares_recorded_users_and_read_only_denies() {
    if !require_root("a_full_state_disk_spares_recorded_users_and_read_only_denies") {
        return;
    }
    let (u, secret) = TestUser::enrolled("sf");
    let fs_ = Tmpfs::new("64k");
    let dir = fs_.path().join("state");
    let stack = Stack::probe("svc", &format!("state_dir={}", dir.display()));
    let read_state = || {
        use totp_core::state::StateStore;
        totp_os::state_dir::StateDir::new(&dir, Duration::from_secs(1))
            .read(u.uid)
            .expect("record readable")
    };
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    let recorded = read_state();
    assert_eq!(
        recorded.latest().and_then(|m| m.last_totp_step(30)),
        Some(T0 / 30)
    );

    fs_.fill();
    // Issue 20: a user with a record is not locked out by a full disk (the record's
    // blocks were allocated when it was created).
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "full, with a record: {d:?}");
    assert_eq!(
        read_state().latest().and_then(|m| m.last_totp_step(30)),
        Some((T0 + 30) / 30),
        "recorded"
    );
    // ... and the used code is still refused.
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 31).module_code(),
        "PAM_AUTH_ERR"
    );
    // A user without a record: denied, and the log names the cause.
    let (u2, secret2) = TestUser::enrolled("sg");
    let (d, lines) = login_logged(&stack, &u2, &code_at(&secret2, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "full, no record: {d:?}");
    assert!(
        told_store_fault(&d),
        "the user is told it is the host: {d:?}"
    );
    assert!(
        logs_contain(&lines, "No space left on device") && logs_contain(&lines, "allocate"),
        "{lines:?}"
    );
    assert!(
        !dir.join(u2.uid.to_string()).exists(),
        "no half-made record left"
    );
    let recorded = read_state();

    let _ = fs::remove_file(fs_.path().join("fill"));
    fs_.remount("ro");
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 60);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "read-only: {d:?}");
    assert!(logs_contain(&lines, "Read-only file system"), "{lines:?}");
    // A right code refused by a host fault is told as such, not left to read as a
    // broken phone; a name without an account meets the same store and is told the
    // same (R9).
    assert!(told_store_fault(&d), "read-only: {d:?}");
    let ghost = format!("ghostro{}", std::process::id());
    let g = Driver::new(&stack, "svc", &ghost)
        .answer(&code_at(&secret, T0 + 60))
        .at(T0 + 60)
        .run();
    assert_eq!(
        (g.module_code(), g.messages),
        (d.module_code(), d.messages.clone()),
        "a name without an account on the read-only store"
    );
    assert_eq!(read_state(), recorded, "nothing lost");

    fs_.remount("rw");
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 + 60), None, T0 + 60);
    assert!(
        !told_store_fault(&d),
        "control: a wrong code is no host fault: {d:?}"
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 60);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "healthy again: {d:?}");
    let d = login_at(&stack, &u2, &code_at(&secret2, T0 + 60), None, T0 + 60);
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "room again for a new record: {d:?}"
    );
}

/// Whether the user was told that the state store failed (PAM_ERROR_MSG).
fn told_store_fault(d: &Drive) -> bool {
    d.messages.contains(&(
        3,
        "the code could not be checked: the login state store failed on this host (see the system log)"
            .to_string(),
    ))
}

/// Issue 13 / A14: hostile or damaged state records (symlink, FIFO, foreign owner, group
/// or other mode, a hard link planted in the state directory, huge, truncated, corrupt, a
/// directory) are never followed, written through or waited on; the login is denied with
/// a log line naming the cause, and `totp-state reset` is the way back. Control: a login
/// with the healthy record first, and after every reset. Then an unsafe state directory
/// (mode 0777): denied, the log names it, fixed by restoring its mode.
#[test]
fn hostile_state_records_deny_log_and_never_follow() {
    if !require_root("hostile_state_records_deny_log_and_never_follow") {
        return;
    }
    let (u, secret) = TestUser::enrolled("hs");
    let stack = Stack::probe("svc", "lock_timeout=1000");
    // A first login creates the directory and a healthy record.
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    let rec = stack.state_file(u.uid);
    let healthy = fs::read(&rec).expect("record");
    let bait = stack.path().join("bait");
    fs::write(&bait, b"do not touch").expect("bait");
    let linked = stack.state_dir().join("linked-elsewhere");
    type Plant = Box<dyn Fn(&Path)>;
    // (case, how it is planted, the cause the log line must name)
    let cases: Vec<(&str, Plant, &str)> = vec![
        (
            "symlink",
            Box::new(move |p: &Path| symlink(bait_path(p), p).expect("symlink")),
            "is a symlink",
        ),
        (
            "FIFO",
            Box::new(|p: &Path| {
                let st = Command::new("mkfifo").arg(p).status().expect("mkfifo");
                assert!(st.success());
            }),
            "is a FIFO",
        ),
        (
            "owned by the user",
            Box::new({
                let (uid, gid, bytes) = (u.uid, u.gid, healthy.clone());
                move |p: &Path| write_owned(p, &bytes, uid, gid, 0o600)
            }),
            "is owned by uid",
        ),
        (
            "group-readable",
            Box::new({
                let bytes = healthy.clone();
                move |p: &Path| write_owned(p, &bytes, 0, 0, 0o640)
            }),
            "has mode 640",
        ),
        (
            "other-writable",
            Box::new({
                let bytes = healthy.clone();
                move |p: &Path| write_owned(p, &bytes, 0, 0, 0o606)
            }),
            "has mode 606",
        ),
        (
            // A healthy, root-owned 0600 record with a second name in the state
            // directory: a write through one name would change the other.
            "hard link",
            Box::new({
                let (bytes, linked) = (healthy.clone(), linked.clone());
                move |p: &Path| {
                    write_owned(&linked, &bytes, 0, 0, 0o600);
                    fs::hard_link(&linked, p).expect("hard link");
                }
            }),
            "has 2 hard links",
        ),
        (
            "huge",
            Box::new(|p: &Path| write_owned(p, &vec![0x41; 1 << 20], 0, 0, 0o600)),
            "is larger than",
        ),
        (
            "truncated",
            Box::new({
                // Cut inside the record's slot (zeros before it are unwritten slots).
                let start = healthy.iter().position(|&b| b != 0).unwrap_or(0);
                let bytes = healthy[..start + 20].to_vec();
                move |p: &Path| write_owned(p, &bytes, 0, 0, 0o600)
            }),
            "passes its check",
        ),
        (
            "corrupt",
            Box::new(|p: &Path| write_owned(p, &[0x5a; 300], 0, 0, 0o600)),
            "passes its check",
        ),
        (
            "a directory",
            Box::new(|p: &Path| fs::create_dir(p).expect("mkdir")),
            "is a directory",
        ),
    ];
    for (i, (what, plant, cause)) in cases.iter().enumerate() {
        let _ = fs::remove_file(&rec);
        let _ = fs::remove_dir(&rec);
        plant(&rec);
        let at = T0 + 30 * (i as u64 + 1);
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{what}: {d:?}");
        assert!(
            lines.iter().any(|l| {
                let m = syslog_message(l);
                m.contains("unusable") && m.contains(cause)
            }),
            "{what}: the log names the cause {cause:?}: {lines:?}"
        );
        assert_eq!(
            fs::read(stack.path().join("bait")).expect("bait"),
            b"do not touch"
        );
        if *what == "hard link" {
            assert_eq!(
                fs::read(&linked).expect("linked"),
                healthy,
                "nothing written through the other name"
            );
        }
        if *what == "a directory" {
            fs::remove_dir(&rec).expect("rmdir");
        } else {
            let out = stack.state_tool(&["reset", "--user", &u.name]);
            assert!(out.status.success(), "{what}: reset: {out:?}");
        }
        if *what == "hard link" {
            assert_eq!(
                fs::read(&linked).expect("linked"),
                healthy,
                "the reset removed the name, not the other one's bytes"
            );
            fs::remove_file(&linked).expect("rm linked");
        }
        let d = login_at(&stack, &u, &code_at(&secret, at), None, at);
        assert_eq!(
            d.module_code(),
            "PAM_SUCCESS",
            "{what}: after the reset: {d:?}"
        );
    }
    // An unsafe state directory (writable by others): denied with the directory named,
    // and usable again once its mode is fixed.
    let at = T0 + 30 * (cases.len() as u64 + 1);
    fs::set_permissions(stack.state_dir(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "unsafe directory: {d:?}");
    assert!(
        logs_contain(&lines, "not writable by others"),
        "unsafe directory: {lines:?}"
    );
    fs::set_permissions(stack.state_dir(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let d = login_at(&stack, &u, &code_at(&secret, at), None, at);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "directory fixed: {d:?}");
}

fn bait_path(record: &Path) -> PathBuf {
    // <stack>/state/<uid> -> <stack>/bait
    record
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("bait"))
        .expect("bait path")
}

/// Migration: lines earlier versions and GA wrote are honoured (never weaker than the
/// file says); our old lines are not touched, GA's `RATE_LIMIT` and `DISALLOW_REUSE`
/// are kept up to date as GA keeps them.
#[test]
fn old_state_lines_are_honoured_and_left_alone() {
    if !require_root("old_state_lines_are_honoured_and_left_alone") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("mg");

    // PAM_TOTP_FAILURES: a running backoff carries over (taken over on first use).
    let text = format!(
        "{secret}\n\" PAM_TOTP_FAILURES 5 {}\n\" TOTP_AUTH\n",
        T0 - 10
    );
    u.write_secret(&text, 0o600);
    let stack = Stack::probe("svc", "");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "backoff of the old line: {d:?}"
    );
    assert!(d.messages.iter().any(|(s, _)| *s == 3), "{d:?}");
    assert_eq!(stored_failures(&stack, u.uid), 5);
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 120), None, T0 + 120);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "after it: {d:?}");
    assert_eq!(
        read(&u.secret_path()),
        text,
        "the old line is left as it is"
    );

    // PAM_TOTP_LAST_STEP (also what `totp-enroll resync` writes): a floor on every
    // login, even once the store has a mark of its own.
    let stack = Stack::probe("svc", "");
    u.write_secret(&totp_file(&secret), 0o600);
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    let ahead = T0 / 30 + 2;
    let text = format!("{secret}\n\" PAM_TOTP_LAST_STEP {ahead}\n\" TOTP_AUTH\n");
    u.write_secret(&text, 0o600);
    for s in [T0 / 30 + 1, ahead] {
        let d = login_at(&stack, &u, &code_at(&secret, s * 30), None, s * 30);
        assert_eq!(
            d.module_code(),
            "PAM_AUTH_ERR",
            "step {s} is at or below the line"
        );
    }
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, (ahead + 1) * 30),
        None,
        (ahead + 1) * 30,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(read(&u.secret_path()), text);

    // GA's DISALLOW_REUSE list and RATE_LIMIT.
    let stack = Stack::probe("svc", "throttle_after=100");
    let step = T0 / 30;
    let text = format!("{secret}\n\" RATE_LIMIT 2 60\n\" DISALLOW_REUSE {step}\n\" TOTP_AUTH\n");
    u.write_secret(&text, 0o600);
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30).module_code(),
        "PAM_SUCCESS"
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 40);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "third attempt within 60 s: {d:?}"
    );
    assert!(d.messages.iter().any(|(s, _)| *s == 3), "{d:?}");
    // Obeyed, and left as they are: on a local file system no host with another state
    // store reads the file (shared_file=auto); shared_home.rs has them kept up to date
    // where one does.
    assert_eq!(read(&u.secret_path()), text);
}

/// Issue 11: a replay mark recorded while the clock was far ahead denies with a log
/// line that says what is wrong and how to recover, and `totp-state reset` recovers: it
/// lowers the mark to a minute after its own clock, so the code of the step after that
/// logs in (one within the minute does not).
#[test]
fn a_clock_fault_is_logged_and_totp_state_reset_recovers() {
    if !require_root("a_clock_fault_is_logged_and_totp_state_reset_recovers") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cf");
    let stack = Stack::probe("svc", "");
    // The RTC said 2100 for one login.
    let future = 4_102_444_800 + 15;
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, future), None, future).module_code(),
        "PAM_SUCCESS"
    );
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_ne!(d.module_code(), "PAM_SUCCESS");
    assert_ne!(d.module_code(), "PAM_IGNORE");
    assert!(logs_contain(&lines, "clock fault"), "{lines:?}");
    assert!(
        logs_contain(&lines, &format!("totp-state reset --user {}", u.name))
            && logs_contain(&lines, "--clock-fault`"),
        "{lines:?}"
    );
    let out = stack.state_tool(&["show", "--json", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("\"mark_ahead_of_clock\":true"), "{shown}");
    // The reset, on a host whose clock says T0 as the module's did: the mark comes down
    // to a minute after that clock, and no lower (R34).
    let out = output_guarded(
        Command::new(&built().state_tool)
            .args(["reset", "--user", &u.name, "--state-dir"])
            .arg(stack.state_dir())
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(T0)),
        Input::Null,
    );
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("was ahead of the clock"), "{said}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_ne!(d.module_code(), "PAM_SUCCESS", "within the minute: {d:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 90), None, T0 + 90);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "after the reset: {d:?}");
}

/// The `totp-state reset` a log line tells an administrator to run is pasted into a
/// root shell: a user name a directory service allows (a space, `$(…)`, a quote) is
/// one quoted shell word there. Unquoted, `john smith` reset another account and
/// `x$(id)` ran what it says. Control: a plain name is written as it is (the clock
/// fault test above).
#[test]
fn the_reset_command_a_log_line_names_quotes_the_user_for_the_shell() {
    let t = "the_reset_command_a_log_line_names_quotes_the_user_for_the_shell";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let name = format!("ptt{}q x$(id)'y", std::process::id() % 100_000);
    let u = {
        let _g = user_database_lock();
        let _ = shadow_tool("userdel", &["-r", "-f", &name]);
        let out = shadow_tool(
            "useradd",
            &["--badname", "-m", "-s", "/bin/sh", "-K", "UMASK=077", &name],
        )
        .expect("useradd");
        assert!(out.status.success(), "useradd {name}: {out:?}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("id")
        };
        TestUser {
            uid: id("-u"),
            gid: id("-g"),
            home: PathBuf::from(format!("/home/{name}")),
            name: name.clone(),
        }
    };
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    let stack = Stack::probe("svc", "");
    let future = 4_102_444_800 + 15;
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, future), None, future).module_code(),
        "PAM_SUCCESS"
    );
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SYSTEM_ERR", "{d:?}");
    let command = lines
        .iter()
        .map(|l| syslog_message(l))
        .find_map(|m| {
            let (_, rest) = m.split_once("reset the user's state with `")?;
            Some(rest.split_once('`')?.0.to_owned())
        })
        .unwrap_or_else(|| panic!("no reset command logged: {lines:#?}"));
    let word = command
        .strip_prefix("totp-state reset --user ")
        .and_then(|r| r.strip_suffix(" --service svc --clock-fault"))
        .unwrap_or_else(|| panic!("{command}"));
    // The shell reads it back as one word, the name itself, and runs nothing.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("set -- {word}; printf '%s\\n' \"$#\" \"$1\""),
        ])
        .output()
        .expect("sh");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("1\n{name}\n"),
        "{command}"
    );
}

/// A mark two days ahead (a clock that was ahead by two days for one login): the module
/// refuses it as a clock fault, but a file with a wide `TIME_SKEW` at a 60-s step could
/// set one there legitimately, so a plain reset keeps it; the `--clock-fault` the log
/// line names lowers it, and the user logs in again.
#[test]
fn a_reset_lowers_a_mark_within_a_phones_reach_only_when_told_it_was_a_clock_fault() {
    if !require_root(
        "a_reset_lowers_a_mark_within_a_phones_reach_only_when_told_it_was_a_clock_fault",
    ) {
        return;
    }
    let (u, secret) = TestUser::enrolled("cg");
    let stack = Stack::probe("svc", "");
    let ahead = T0 + 2 * 86_400;
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, ahead), None, ahead).module_code(),
        "PAM_SUCCESS"
    );
    let reset_at = |extra: &[&str]| {
        let out = output_guarded(
            Command::new(&built().state_tool)
                .args(["reset", "--user", &u.name, "--state-dir"])
                .arg(stack.state_dir())
                .args(extra)
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", faketime_date(T0)),
            Input::Null,
        );
        assert!(out.status.success(), "{out:?}");
    };
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SYSTEM_ERR", "{d:?}");
    assert!(logs_contain(&lines, "--clock-fault"), "{lines:?}");
    reset_at(&[]);
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 90), None, T0 + 90);
    assert_eq!(
        d.module_code(),
        "PAM_SYSTEM_ERR",
        "a plain reset keeps it: {d:?}"
    );
    reset_at(&["--clock-fault"]);
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 120), None, T0 + 120);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "after --clock-fault: {d:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 120), None, T0 + 121);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "its replay: {d:?}");
}

/// The admin tool: `show` (text and JSON) and `reset`, and a clear refusal when not
/// run as root.
#[test]
fn totp_state_shows_and_resets_and_refuses_non_root() {
    if !require_root("totp_state_shows_and_resets_and_refuses_non_root") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ts");
    let stack = Stack::probe("svc", "");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    for i in 0..3 {
        login_at(
            &stack,
            &u,
            &wrong_totp(&secret, T0),
            "198.51.100.1",
            now() - 5 + i,
        );
    }
    let out = stack.state_tool(&["show", "--json", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        format!("\"user\":\"{}\"", u.name),
        format!("\"uid\":{}", u.uid),
        format!("\"last_step\":{}", T0 / 30),
        "\"last_accepted\":\"2023-11-14 22:13:30 UTC\"".to_string(),
        "\"consecutive_failures\":3".to_string(),
        "\"backoff_until\":\"".to_string(),
    ] {
        assert!(json.contains(&needle), "{needle} in {json}");
    }
    // Without --user: every record of the directory.
    let out = stack.state_tool(&["show"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("{} (uid {})", u.name, u.uid)),
        "{text}"
    );
    assert!(text.contains("consecutive failures: 3"), "{text}");
    // Reset ends the backoff at once.
    let out = stack.state_tool(&["reset", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let d = login_at(&stack, &u, &code_at(&secret, now()), "198.51.100.1", now());
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // Unknown users are an error, not an empty record.
    let out = stack.state_tool(&["show", "--user", "nosuchuser-pt"]);
    assert!(!out.status.success());
    // Not root: refused, with the reason.
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--clear-groups")
        .arg(&built().state_tool)
        .args(["show", "--user", &u.name])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be run as root"),
        "{out:?}"
    );
}

/// Issue 12 item 4: inside a grace period with `forward_pass`, the password part is
/// still asked for and forwarded to the next module.
#[test]
fn grace_period_with_forward_pass_still_forwards_the_password() {
    if !require_root("grace_period_with_forward_pass_still_forwards_the_password") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gf");
    let stack = Stack::new();
    let rec = stack.path().join("record-authtok");
    fs::write(&rec, "#!/bin/sh\ncat > \"$1\"\n").expect("recorder");
    fs::set_permissions(&rec, fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = stack.path().join("authtok.out");
    stack.service(
        "svc",
        &format!(
            "auth requisite @MODULE@ forward_pass grace_period=3600\n\
             auth optional pam_exec.so expose_authtok {} {}\n",
            rec.display(),
            out.display()
        ),
    );
    let pw = "correct horse";
    let d = login_at(
        &stack,
        &u,
        &format!("{pw}{}", code_at(&secret, T0)),
        "192.0.2.44",
        T0,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(fs::read_to_string(&out).expect("forwarded"), pw);
    fs::remove_file(&out).expect("rm");
    let d = login_at(&stack, &u, pw, "192.0.2.44", T0 + 100);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompt_list(), vec![(1, "Password: ".to_string())]);
    assert_eq!(fs::read_to_string(&out).expect("forwarded in grace"), pw);
}

/// `use_first_pass` never prompts, inside a grace period with `forward_pass` too: with
/// no `PAM_AUTHTOK` the grace login is accepted without the `Password: ` question (it
/// asked one, which an application that cannot answer a second question fails on), and
/// nothing is stored for the next module, as for a skip. Controls: the same line from
/// another address (no grace) denies without a prompt, and plain `forward_pass` still
/// asks for the password inside the grace period.
#[test]
fn use_first_pass_in_a_grace_period_never_prompts() {
    if !require_root("use_first_pass_in_a_grace_period_never_prompts") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gu");
    let stack = Stack::new();
    stack
        .service(
            "svc",
            "auth requisite @MODULE@ forward_pass grace_period=3600\n",
        )
        .service(
            "first",
            "auth requisite @MODULE@ use_first_pass forward_pass grace_period=3600\n",
        );
    let host = "192.0.2.45";
    let d = login_at(&stack, &u, &format!("pw{}", code_at(&secret, T0)), host, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let d = Driver::new(&stack, "first", &u.name)
        .rhost(host)
        .at(T0 + 100)
        .run();
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
    let d = Driver::new(&stack, "first", &u.name)
        .rhost("192.0.2.46")
        .at(T0 + 100)
        .run();
    assert_eq!(
        d.result, "PAM_AUTH_ERR",
        "no grace from another address: {d:?}"
    );
    assert_eq!(d.prompts, 0, "{d:?}");
    let d = login_at(&stack, &u, "pw", host, T0 + 200);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompt_list(), vec![(1, "Password: ".to_string())]);
}

/// A module that does not run as root (a screen locker checking its own user) keeps
/// its state in that account's ~/.local/state/pam_totp; replay is still refused.
#[test]
fn an_unprivileged_caller_keeps_state_in_its_own_home() {
    if !require_root("an_unprivileged_caller_keeps_state_in_its_own_home") {
        return;
    }
    let (u, secret) = TestUser::enrolled("up");
    let stack = Stack::new();
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // No state_dir=: the default for a non-root caller.
    fs::write(
        stack.path().join("svc"),
        format!("auth required {}\n", built().module.display()),
    )
    .expect("service");
    fs::set_permissions(stack.path().join("svc"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let run_as_user = |answer: &str, at: u64| {
        let inner = Driver::login(&stack, &u, answer).at(at).command();
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .arg("--clear-groups")
            .arg("env");
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                let mut kv = k.to_os_string();
                kv.push("=");
                kv.push(v);
                cmd.arg(kv);
            }
        }
        cmd.arg(inner.get_program()).args(inner.get_args());
        Drive::parse(&output_guarded(&mut cmd, Input::Null))
    };
    let d = run_as_user(&code_at(&secret, T0), T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let rec = u.home.join(".local/state/pam_totp").join(u.uid.to_string());
    let (mode, owner, _) = mode_owner(&rec);
    assert_eq!((mode, owner), (0o600, u.uid), "the caller's own record");
    let d = run_as_user(&code_at(&secret, T0), T0 + 1);
    assert_eq!(d.result, "PAM_AUTH_ERR", "replay: {d:?}");
    assert_eq!(read(&u.secret_path()), totp_file(&secret));
}

/// Issue 11, R9: the throttle message reveals nothing about the account: a name without
/// an account, and an account without a secret, are throttled and told so after the
/// same number of failures, with the same words, as an account with a wrong code; and a
/// decoy name throttled from the same address first does not make a name without an
/// account look throttled (its stand-in record is chosen under the store's key).
#[test]
fn names_without_an_account_are_throttled_like_accounts() {
    if !require_root("names_without_an_account_are_throttled_like_accounts") {
        return;
    }
    let (real, secret) = TestUser::enrolled("tr");
    let bare = TestUser::create("tb");
    let stack = Stack::probe("svc", "");
    let ghost = format!("ghost{}", std::process::id());
    // The probe of the review: a decoy name that shared the ghost's stand-in record
    // under the earlier, unkeyed choice, given wrong codes from the address the ghost is
    // then tried from until it is throttled. The ghost's attempts must still be those of
    // an account that nobody attacked (they were throttled from the first).
    let decoy = (0..1_000_000u32)
        .map(|i| format!("decoy{i}"))
        .find(|d| *d != ghost && unkeyed_stand_in_uid(d) == unkeyed_stand_in_uid(&ghost))
        .expect("a colliding decoy");
    for i in 0..4u64 {
        let d = Driver::new(&stack, "svc", &decoy)
            .rhost("198.51.100.9")
            .answer(&wrong_totp(&secret, T0))
            .at(T0 + i)
            .run();
        assert_eq!(
            d.messages
                .iter()
                .any(|(_, t)| t.starts_with("too many failed codes")),
            i == 3,
            "the decoy is throttled after three wrong codes: {d:?}"
        );
    }
    let mut seen = Vec::new();
    for name in [real.name.as_str(), bare.name.as_str(), ghost.as_str()] {
        let runs: Vec<Drive> = (0..4)
            .map(|i| {
                Driver::new(&stack, "svc", name)
                    .rhost("198.51.100.9")
                    .answer(&wrong_totp(&secret, T0))
                    .at(T0 + 10 + i)
                    .run()
            })
            .collect();
        let shape: Vec<(String, Vec<(i32, String)>)> = runs
            .iter()
            .map(|d| (d.module_code(), d.messages.clone()))
            .collect();
        assert!(
            shape[3]
                .1
                .contains(&(3, "too many failed codes; try again in 29 s".to_string())),
            "{name}: {shape:?}"
        );
        seen.push(shape);
    }
    assert_eq!(seen[0], seen[1], "account without a secret");
    assert_eq!(seen[0], seen[2], "name without an account");
}

/// The stand-in record earlier versions charged a name without an account to: an
/// unkeyed SHA-256 of the name, which anyone could compute.
fn unkeyed_stand_in_uid(name: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::new()
        .chain_update(b"pam_totp stand-in uid v1\0")
        .chain_update(name.as_bytes())
        .finalize();
    0x8000_0000 | (u32::from_le_bytes([d[0], d[1], d[2], d[3]]) & 0x0fff)
}

/// A damaged store key (`store.key`: here too short) denies every user, not one: the log
/// says so and names the fix, moving the key aside, instead of the user's
/// `totp-state reset`, which an admin who got root the documented way would run in vain
/// (control: it succeeds and the next login is still denied). After the key is moved
/// aside, the next login creates a new one and logs in.
#[test]
fn a_damaged_store_key_is_named_as_the_stores_and_moving_it_aside_recovers() {
    if !require_root("a_damaged_store_key_is_named_as_the_stores_and_moving_it_aside_recovers") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dk");
    let (other, other_secret) = TestUser::enrolled("dl");
    let stack = Stack::probe("svc", "");
    assert_eq!(
        login_at(&stack, &u, &code_at(&secret, T0), None, T0).module_code(),
        "PAM_SUCCESS"
    );
    let key = stack.state_dir().join("store.key");
    write_owned(&key, b"short", 0, 0, 0o600);

    for (user, secret) in [(&u, &secret), (&other, &other_secret)] {
        let (d, lines) = login_logged(&stack, user, &code_at(secret, T0 + 30), None, T0 + 30);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
        assert!(told_store_fault(&d), "{d:?}");
        assert!(
            logs_contain(&lines, "unusable for every user")
                && logs_contain(&lines, "store.key")
                && logs_contain(&lines, "move it aside"),
            "{lines:?}"
        );
        assert!(
            !logs_contain(&lines, "totp-state reset --user"),
            "{lines:?}"
        );
    }
    // totp-state audit (what an admin runs first) names the key as the store's fault.
    let audit = || {
        Command::new(&built().state_tool)
            .args(["audit", "--service", "svc", "--pam-dir"])
            .arg(stack.path())
            .output()
            .expect("totp-state audit")
    };
    let out = audit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("state store:") && l.contains("store.key")),
        "{stdout}"
    );
    let out = stack.state_tool(&["reset", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 60), None, T0 + 60);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "control: the user's reset does not fix the key: {d:?}"
    );

    fs::rename(&key, stack.state_dir().join("store.key.bad")).expect("move the key aside");
    for (user, secret) in [(&u, &secret), (&other, &other_secret)] {
        let d = login_at(&stack, user, &code_at(secret, T0 + 90), None, T0 + 90);
        assert_eq!(
            d.module_code(),
            "PAM_SUCCESS",
            "after moving it aside: {d:?}"
        );
    }
    assert_eq!(
        fs::metadata(&key).map(|m| m.len()).ok(),
        Some(32),
        "a new key"
    );
    let out = audit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.lines().any(|l| l.starts_with("state store:")),
        "control: a sound key is no finding: {stdout}"
    );
}
