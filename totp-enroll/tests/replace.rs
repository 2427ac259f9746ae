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

/// Starts `--regenerate-scratch-codes --json` for `s` in `dir` with a standard output
/// filled to capacity, and returns once it sits in write(2) on it: the codes are being
/// printed and the file is not yet read again. Draining `reader` past the `filled`
/// bytes lets it go on.
fn regenerate_blocked_in_print(dir: &Path) -> (std::process::Child, std::io::PipeReader, usize) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    fcntl(&writer, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("nonblock");
    let filler = [b'\n'; 4096];
    let mut filled = 0usize;
    loop {
        match writer.write(&filler) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    fcntl(&writer, FcntlArg::F_SETFL(OFlag::empty())).expect("blocking");
    let mut child = Command::new(BIN)
        .args(["--regenerate-scratch-codes", "--json", "-s", "s"])
        .current_dir(dir)
        .env_remove("HOME")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the child sits in write(2) on its standard output (fd 1).
    let syscall = format!("/proc/{}/syscall", child.id());
    let blocked = format!("{} 0x1 ", nix::libc::SYS_write);
    let mut waited = 0;
    while !std::fs::read_to_string(&syscall)
        .unwrap_or_default()
        .starts_with(&blocked)
    {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "exited before blocking"
        );
        waited += 1;
        assert!(waited < 6000, "never blocked in write(1, ...)");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, reader, filled)
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

/// The JSON object goes out before the rename (rule R29), but `written` is its last key
/// and only follows once the rename is done: when the rename then fails (here: a login
/// holds the old file's lock past the deadline), the one object says `"written":false`
/// and the error follows; no line ever says true.
#[test]
fn json_says_written_only_once_the_rename_succeeded() {
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    let holder = File::open(&path).expect("open");
    holder.lock().expect("flock");
    let r = run_in(
        dir.path(),
        &[&FLAGS[..], &["-f", "--json", "-s", "s"]].concat(),
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    // The fault happened where it should: after the print, at the rename's lock.
    assert!(r.stderr.contains("lock"), "{}", r.stderr);
    assert_eq!(std::fs::read(&path).expect("read"), old, "old file kept");
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(lines[0]["written"], false, "{}", r.stdout);
    assert!(lines[0]["secret"].is_string(), "{}", r.stdout);
    assert!(lines[1]["error"].is_object(), "{}", r.stdout);
    assert!(!r.stdout.contains("\"written\":true"), "{}", r.stdout);
    drop(holder);

    // Control: with the lock free, one object, written and true.
    let r = run_in(
        dir.path(),
        &[&FLAGS[..], &["-f", "--json", "-s", "s"]].concat(),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["written"], true);
    let now = std::fs::read_to_string(&path).expect("read");
    assert_eq!(now.lines().next(), v["secret"].as_str());
}

/// `--regenerate-scratch-codes` prints before it takes the lock a login needs: with a
/// standard output nobody reads (a full pipe), the run blocks in its print while the
/// file is unlocked and unchanged. Drained, the codes printed are the file's.
#[test]
fn regenerate_never_holds_the_lock_while_it_prints() {
    use std::io::Read;
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    let (mut child, mut reader, filled) = regenerate_blocked_in_print(dir.path());
    // A login's lock: free while the codes wait in the pipe, and nothing written yet.
    let login = File::open(&path).expect("open");
    login
        .try_lock()
        .expect("the secret file is locked while printing");
    assert_eq!(std::fs::read(&path).expect("read"), old);
    // Control: the probe does see a lock someone holds.
    let other = File::open(&path).expect("open");
    assert!(other.try_lock().is_err(), "a held lock went unseen");
    drop(login);

    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("drain");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(out.len() > filled, "nothing printed after the filler");
    let text = String::from_utf8_lossy(&out[filled..]).into_owned();
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(v["written"], true, "{text}");
    let now = std::fs::read_to_string(&path).expect("read");
    let codes = v["scratch_codes"].as_array().expect("codes");
    assert!(!codes.is_empty());
    for c in codes {
        let c = c.as_str().expect("code");
        assert!(now.lines().any(|l| l == c), "{c} not in the file: {now}");
    }
    drop(other);
}

/// `-f` replaces the enrolment while the new codes wait in a full pipe: the codes were
/// printed for the old enrolment, so the update refuses to put them into the new one
/// (whose codes stay as they were), says so and exits 1 with `"written": false`. The
/// control is `regenerate_never_holds_the_lock_while_it_prints`: no replacement, the
/// codes are written.
#[test]
fn regenerate_refuses_an_enrolment_replaced_while_it_prints() {
    use std::io::Read;
    let dir = tempdir();
    let old = seed(dir.path());
    let path = dir.path().join("s");
    let (child, mut reader, filled) = regenerate_blocked_in_print(dir.path());
    enroll_json(dir.path(), "s", &["-f", "-t", "-D", "-W", "-u"]);
    let replaced = std::fs::read(&path).expect("read");
    assert_ne!(replaced, old, "-f did not replace the enrolment");

    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("drain");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("changed since the codes were printed"),
        "{stderr}"
    );
    let text = String::from_utf8_lossy(&out[filled..]).into_owned();
    // The result object, then the error object on a line of its own.
    let mut lines = text.trim().lines();
    let v: serde_json::Value = serde_json::from_str(lines.next().expect("result")).expect("json");
    assert_eq!(v["written"], false, "{text}");
    let e: serde_json::Value = serde_json::from_str(lines.next().expect("error")).expect("json");
    assert_eq!(e["error"]["exit_code"], 1, "{text}");
    assert!(!v["scratch_codes"].as_array().expect("codes").is_empty());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        replaced,
        "the new enrolment was changed"
    );
}

/// What the update would refuse (no file, a file that does not parse) is refused before
/// any new code is printed, so no code that was never saved reaches anyone.
#[test]
fn regenerate_refuses_before_printing_a_code() {
    let dir = tempdir();
    seed(dir.path());
    std::fs::write(dir.path().join("bad"), "not a secret file\n").expect("write");
    let run = |name: &str| {
        run_in(
            dir.path(),
            &["--regenerate-scratch-codes", "--json", "-s", name],
            None,
        )
    };
    for name in ["missing", "bad"] {
        let r = run(name);
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert!(!r.stdout.contains("scratch_codes"), "{name}: {}", r.stdout);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON error");
        assert!(v["error"].is_object(), "{name}: {v}");
    }
    // Control: a file that parses gets its codes printed.
    let r = run("s");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("scratch_codes"), "{}", r.stdout);
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
