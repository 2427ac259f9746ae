//! Parallel logins, replay, crash safety of the state rewrite, and what rewrites keep
//! (SECURITY.md cases C1–C3, D1, D6, R12, R15–R17), with real processes.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::*;
use totp_core::gafile::GaFile;

fn spawn_all(drivers: Vec<Driver>) -> Vec<Drive> {
    let children: Vec<Child> = drivers
        .iter()
        .map(|d| {
            d.command()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pam-drive")
        })
        .collect();
    children
        .into_iter()
        .map(|c| Drive::parse(&c.wait_with_output().expect("wait")))
        .collect()
}

/// A start time ~1.5 s ahead that is not within 3 s of a 30-s step boundary, so all
/// processes present the code of one step while that step is current.
fn start_time() -> u64 {
    loop {
        let start = now_ms() + 1_500;
        let into_step = (start / 1000) % 30;
        if (3..27).contains(&into_step) {
            return start;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// C1: 32 processes, the same valid code, released together: exactly one success,
/// in each of five rounds (fresh secret each round).
#[test]
fn same_code_in_32_parallel_logins_succeeds_exactly_once() {
    if !require_root("same_code_in_32_parallel_logins_succeeds_exactly_once") {
        return;
    }
    let u = TestUser::create("cc");
    let stack = Stack::probe("svc", "lock_timeout=5000 throttle_after=100");
    for round in 0..5 {
        let secret = random_secret_b32();
        u.write_secret(&totp_file(&secret), 0o600);
        let start = start_time();
        let code = code_at(&secret, start / 1000);
        let drivers = (0..32)
            .map(|_| {
                Driver::new(&stack, "svc", &u.name)
                    .answer(&code)
                    .start_at(start)
            })
            .collect();
        let results = spawn_all(drivers);
        let ok = results
            .iter()
            .filter(|d| d.module_code() == "PAM_SUCCESS")
            .count();
        let denied = results
            .iter()
            .filter(|d| d.module_code() == "PAM_AUTH_ERR")
            .count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        assert_eq!(
            denied, 31,
            "round {round}: every other one denied: {results:?}"
        );
        let f = read(&u.secret_path());
        assert_eq!(
            file_value(&f, "PAM_TOTP_LAST_STEP"),
            Some((start / 1000 / 30).to_string()),
            "round {round}"
        );
        GaFile::parse(f.as_bytes()).expect("parses");
    }
}

/// C2/I5: N parallel wrong codes are all evaluated and counted: +N exactly.
#[test]
fn parallel_wrong_codes_are_counted_exactly() {
    if !require_root("parallel_wrong_codes_are_counted_exactly") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("cw");
    let stack = Stack::probe("svc", "lock_timeout=5000 throttle_after=100");
    // Start from an existing count to see an increase, not just a value.
    u.write_secret(
        &format!(
            "{secret}\n\" PAM_TOTP_FAILURES 7 {}\n\" TOTP_AUTH\n",
            now() - 5
        ),
        0o600,
    );
    let n = 32;
    let start = start_time();
    let drivers = (0..n)
        .map(|i| {
            let wrong = format!(
                "{:06}",
                (code_at(&secret, start / 1000).parse::<u32>().expect("n") + 1 + i) % 1_000_000
            );
            Driver::new(&stack, "svc", &u.name)
                .answer(&wrong)
                .start_at(start)
        })
        .collect();
    let results = spawn_all(drivers);
    for d in &results {
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    }
    let f = read(&u.secret_path());
    assert_eq!(failures(&f), 7 + n, "{f}");
}

/// C3 / R12: the same code twice is refused the second time, and a code of an earlier
/// step is refused once a later one was accepted.
#[test]
fn replayed_and_older_codes_are_refused() {
    if !require_root("replayed_and_older_codes_are_refused") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("rp");
    u.write_secret(&totp_file(&secret), 0o600);
    let stack = Stack::probe("svc", "");
    let login = |code: &str, at: u64| {
        Driver::new(&stack, "svc", &u.name)
            .answer(code)
            .at(at)
            .run()
    };
    let c0 = code_at(&secret, T0);
    assert_eq!(login(&c0, T0).module_code(), "PAM_SUCCESS");
    assert_eq!(
        login(&c0, T0 + 1).module_code(),
        "PAM_AUTH_ERR",
        "same code again"
    );
    // Next step: the code of step S+1 is accepted at S+1 …
    let c1 = code_at(&secret, T0 + 30);
    assert_eq!(login(&c1, T0 + 30).module_code(), "PAM_SUCCESS");
    // … then the code of step S is still inside the window but older: refused.
    assert_eq!(
        login(&c0, T0 + 31).module_code(),
        "PAM_AUTH_ERR",
        "older step"
    );
    // A code for S+2 entered early (window +1) is accepted, then S+1 is refused.
    u.write_secret(&totp_file(&secret), 0o600);
    let c2 = code_at(&secret, T0 + 60);
    assert_eq!(login(&c2, T0 + 30).module_code(), "PAM_SUCCESS");
    assert_eq!(login(&c1, T0 + 31).module_code(), "PAM_AUTH_ERR");
    assert_eq!(
        file_value(&read(&u.secret_path()), "PAM_TOTP_LAST_STEP"),
        Some(((T0 + 60) / 30).to_string())
    );
}

/// R17: a rewrite keeps mode and owner (0600 stays 0600, 0400 stays 0400), for success
/// and failure rewrites alike.
#[test]
fn rewrites_keep_mode_and_owner() {
    if !require_root("rewrites_keep_mode_and_owner") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("mo");
    let stack = Stack::probe("svc", "");
    for mode in [0o600, 0o400] {
        let p = u.write_secret(&totp_file(&secret), mode);
        // Held open so its inode number cannot be reused by the rewrites below.
        let original = fs::File::open(&p).expect("open original");
        let ino = original
            .metadata()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        let d = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(&secret, T0))
            .at(T0)
            .run();
        assert_eq!(d.module_code(), "PAM_AUTH_ERR");
        assert_eq!(
            mode_owner(&p),
            (mode, u.uid, u.gid),
            "{mode:o} after a failure"
        );
        assert_eq!(failures(&read(&p)), 1, "the failure was written");
        let d = Driver::new(&stack, "svc", &u.name)
            .answer(&code_at(&secret, T0))
            .at(T0)
            .run();
        assert_eq!(d.module_code(), "PAM_SUCCESS", "{mode:o}: {d:?}");
        assert_eq!(
            mode_owner(&p),
            (mode, u.uid, u.gid),
            "{mode:o} after a success"
        );
        let new_ino = fs::metadata(&p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        assert_ne!(ino.ok(), new_ino.ok(), "replaced by rename");
        drop(original);
    }
}

/// D6 / GA #88: stale temp files from earlier crashes do not block a login.
#[test]
fn stale_temp_files_do_not_block() {
    if !require_root("stale_temp_files_do_not_block") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("sf");
    u.write_secret(&totp_file(&secret), 0o600);
    let stale = [
        ".google_authenticator.tmp-0000000000000000",
        ".google_authenticator.tmp-ffffffffffffffff",
        ".google_authenticator~",
        ".google_authenticator.tmp",
        ".google_authenticator~tmp",
    ];
    for name in stale {
        write_owned(&u.home.join(name), b"garbage", u.uid, u.gid, 0o600);
    }
    // One stale temp owned by root, one a directory.
    write_owned(
        &u.home.join(".google_authenticator.tmp-root"),
        b"x",
        0,
        0,
        0o600,
    );
    fs::create_dir(u.home.join(".google_authenticator.tmp-dir")).expect("mkdir");
    let stack = Stack::probe("svc", "");
    for i in 0..3u64 {
        let at = T0 + 30 * i;
        let d = Driver::new(&stack, "svc", &u.name)
            .answer(&code_at(&secret, at))
            .at(at)
            .run();
        assert_eq!(d.module_code(), "PAM_SUCCESS", "login {i}: {d:?}");
    }
    assert_eq!(
        file_value(&read(&u.secret_path()), "PAM_TOTP_LAST_STEP"),
        Some(((T0 + 60) / 30).to_string())
    );
}

/// D1: kill -9 at random moments of 200 logins (each rewrites the file twice: the
/// attempt, then the verdict). After every kill the file parses, holds the same
/// secret, and keeps its mode and owner. A final login still works.
#[test]
fn kill_9_during_rewrites_never_corrupts_the_file() {
    if !require_root("kill_9_during_rewrites_never_corrupts_the_file") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("k9");
    let p = u.write_secret(&totp_file(&secret), 0o600);
    let stack = Stack::probe("svc", "throttle_after=100");
    let expected_secret = GaFile::parse(read(&p).as_bytes())
        .expect("parse")
        .secret()
        .expect("secret");
    let run_at = |i: u64| {
        let at = T0 + 30 * i;
        let mut cmd = Driver::new(&stack, "svc", &u.name)
            .answer(&code_at(&secret, at))
            .at(at)
            .command();
        // Own process group, so the kill reaches everything the child started.
        cmd.process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    // Typical duration of one login, to spread the kills over it.
    let t = Instant::now();
    let st = run_at(0).status().expect("run");
    assert!(st.success(), "baseline login: {st:?}");
    let typical = t.elapsed().as_micros() as u64;
    let mut seed = now_ms() ^ u64::from(std::process::id());
    let mut killed = 0;
    for i in 1..=200u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = seed % (typical * 11 / 10 + 1);
        let mut child = run_at(i).spawn().expect("spawn");
        std::thread::sleep(Duration::from_micros(delay));
        let pid = child.id() as i32;
        // SAFETY: kill(2) has no memory-safety preconditions; the target is the
        // process group this test just created for this child.
        let rc = unsafe { libc::kill(-pid, libc::SIGKILL) };
        if rc == 0 {
            killed += 1;
        }
        let _ = child.wait();
        // libfaketime keeps per-process shared memory that a SIGKILL leaves behind.
        for leftover in [
            format!("/dev/shm/faketime_shm_{pid}"),
            format!("/dev/shm/sem.faketime_sem_{pid}"),
        ] {
            let _ = std::fs::remove_file(leftover);
        }
        let bytes = fs::read(&p).expect("read secret file");
        let f = GaFile::parse(&bytes).unwrap_or_else(|e| {
            panic!("after kill {i} (delay {delay} µs): corrupt file {e:?}: {bytes:?}")
        });
        assert_eq!(
            f.secret().expect("secret").as_bytes(),
            expected_secret.as_bytes(),
            "after kill {i}"
        );
        assert_eq!(mode_owner(&p), (0o600, u.uid, u.gid), "after kill {i}");
    }
    assert!(killed > 100, "most runs were killed mid-way ({killed})");
    let at = T0 + 30 * 201;
    let d = Driver::new(&stack, "svc", &u.name)
        .answer(&code_at(&secret, at))
        .at(at)
        .run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "after 200 kills: {d:?}");
}

/// A lock holder that stops (SIGSTOP) delays others only up to lock_timeout; once it
/// dies the lock is free again (C4).
#[test]
fn stopped_lock_holder_delays_others_only_boundedly() {
    if !require_root("stopped_lock_holder_delays_others_only_boundedly") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("ls");
    u.write_secret(&totp_file(&secret), 0o600);
    // The holder: flock(1) on the file as the user, then sleeping.
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(u.secret_path())
        .args(["sleep", "30"])
        .process_group(0)
        .spawn()
        .expect("flock");
    std::thread::sleep(Duration::from_millis(300));
    let pid = holder.id() as i32;
    // SAFETY: kill(2) has no memory-safety preconditions; own child's process group.
    unsafe { libc::kill(-pid, libc::SIGSTOP) };
    let stack = Stack::probe("svc", "lock_timeout=1000");
    let t = Instant::now();
    let d = Driver::new(&stack, "svc", &u.name)
        .answer(&code_at(&secret, now()))
        .run();
    let took = t.elapsed();
    assert_ne!(d.module_code(), "PAM_SUCCESS");
    assert_ne!(d.module_code(), "PAM_IGNORE");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = holder.wait();
    let d = Driver::new(&stack, "svc", &u.name)
        .answer(&code_at(&secret, now()))
        .run();
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}
