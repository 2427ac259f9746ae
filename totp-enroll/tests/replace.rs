//! Replacing an enrolment (`-f`): the lock logins take, and the new secret handed over
//! before the old file is gone.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FLAGS: [&str; 6] = ["-t", "-D", "-W", "-u", "-C", "--non-interactive"];

fn seed(dir: &Path) -> Vec<u8> {
    enroll_json(dir, "s", &["-t", "-D", "-W", "-u"]);
    std::fs::read(dir.join("s")).expect("seeded")
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// A login holds the file's lock while it rewrites it (a HOTP counter, a used scratch
/// code). `-f` waits for it and fails after its deadline with the old file in place;
/// released in time, the new file is written after the release, never before.
#[test]
fn force_waits_for_the_lock_a_login_holds() {
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    let holder = File::open(&path).expect("open");
    holder.lock().expect("flock");

    let start = Instant::now();
    let r = run_in(
        dir.path(),
        &[&FLAGS[..], &["-f", "-q", "-s", "s"]].concat(),
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(r.stderr.contains("lock"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        old,
        "replaced while locked"
    );
    assert!(temp_files(dir.path()).is_empty());

    let child = Command::new(BIN)
        .args(FLAGS)
        .args(["-f", "-q", "-s", "s"])
        .current_dir(dir.path())
        .env_remove("HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::read(&path).expect("read"),
        old,
        "replaced while locked"
    );
    drop(holder);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert_ne!(std::fs::read(&path).expect("read"), old);
}

/// Rule R29: with `--json` the new secret reaches its reader before the new file
/// replaces the old one. Standard output on /dev/full fails the run and leaves the old
/// file byte for byte, with no temp file; into a pipe, the file is replaced.
#[test]
fn a_json_result_that_cannot_be_printed_leaves_the_old_file() {
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    let full = File::options()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = Command::new(BIN)
        .args(FLAGS)
        .args(["-f", "--json", "-s", "s"])
        .current_dir(dir.path())
        .env_remove("HOME")
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("standard output"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), old, "old file kept");
    assert!(temp_files(dir.path()).is_empty());

    // The same for a first enrolment: no file at all.
    let out = Command::new(BIN)
        .args(FLAGS)
        .args(["--uri", "-q", "-s", "fresh"])
        .current_dir(dir.path())
        .env_remove("HOME")
        .stdin(Stdio::null())
        .stdout(File::options().write(true).open("/dev/full").expect("open"))
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!dir.path().join("fresh").exists());
    assert!(temp_files(dir.path()).is_empty());

    // Control: into a pipe the JSON arrives and the file is the new one.
    let r = run_in(
        dir.path(),
        &[&FLAGS[..], &["-f", "--json", "-s", "s"]].concat(),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let secret = v["secret"].as_str().expect("secret");
    let now = std::fs::read_to_string(&path).expect("read");
    assert_eq!(now.lines().next(), Some(secret));
    assert_ne!(now.as_bytes(), old);
}

/// The same for `--regenerate-scratch-codes --json`: new scratch codes that cannot be
/// printed are not written either, so the old ones keep working.
#[test]
fn regenerated_codes_that_cannot_be_printed_are_not_written() {
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    let run = |stdout: Stdio| {
        Command::new(BIN)
            .args(["--regenerate-scratch-codes", "--json", "-s", "s"])
            .current_dir(dir.path())
            .env_remove("HOME")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .expect("run")
    };
    let full = File::options()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = run(Stdio::from(full));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(std::fs::read(&path).expect("read"), old, "old codes kept");
    assert!(temp_files(dir.path()).is_empty());
    // Control: into a pipe the codes arrive and are the file's.
    let out = run(Stdio::piped());
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = v["scratch_codes"][0].as_str().expect("codes");
    let now = std::fs::read_to_string(&path).expect("read");
    assert!(now.lines().any(|l| l == first), "{now}");
}

/// A file GA's tool wrote (mode 0400, which a line with `allowed_perm=0400` requires)
/// replaced with `-f` and no `--service`: the new file keeps 0400, never widened to the
/// 0600 that line would refuse at every login.
#[test]
fn force_keeps_a_narrower_mode_of_the_file_it_replaces() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let r = run_in(
        dir.path(),
        &[&FLAGS[..], &["-f", "-q", "-s", "s"]].concat(),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(std::fs::read(&path).expect("read"), old, "not replaced");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);

    // Control: a 0600 file stays 0600.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let r = run_in(
        dir.path(),
        &[&FLAGS[..], &["-f", "-q", "-s", "s"]].concat(),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
