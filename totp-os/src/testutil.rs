//! Shared helpers for the crate's tests.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Unused ids for files and credentials owned by "somebody else".
pub const ALICE: u32 = 4242;
pub const MALLORY: u32 = 4343;
pub const ALICE_GROUP: u32 = 4444;
pub const SHARED_GROUP: u32 = 4545;

/// The uid the tests run as (files "owned by us" need no chown).
pub fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Give `p` to `uid` (group id = uid), unless it is ours already.
fn give(p: &Path, uid: u32) {
    if uid != me() {
        chown(p, Some(uid), Some(uid)).expect("chown");
    }
}

/// Environment variable that turns a `child_*` test into the body of a subprocess.
pub const CHILD_ENV: &str = "TOTP_OS_TEST_CHILD";

/// True when root-only tests can run. When not root they are skipped, except in CI
/// (`CI=true`), where a skip would hide a regression: then the test fails.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root, and root-only tests must not be skipped in CI");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A test that cannot run here for want of `what`: false (skipped, with a note) on a
/// developer's machine; in CI (`CI=true`), where every test must run, a failure.
pub fn skip(test: &str, what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs {what}, and tests must not be skipped in CI");
    }
    eprintln!("skipping {test}: needs {what}");
    false
}

/// A scratch directory below directories only its owner can write (the state store
/// refuses one below /tmp, which anyone can write): /run for root, the home directory
/// otherwise. Removed on drop.
pub fn private_tempdir() -> tempfile::TempDir {
    let base = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/run/pam_totp-tests")
    } else {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/pam_totp-tests")
    };
    std::fs::create_dir_all(&base).expect("private test base");
    set_mode(&base, 0o755);
    tempfile::tempdir_in(&base).expect("tempdir")
}

/// A scratch directory (root-owned, 0755) removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Create a subdirectory with the given owner and mode.
    pub fn mkdir(&self, rel: &str, uid: u32, mode: u32) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        give(&p, uid);
        set_mode(&p, mode);
        p
    }

    /// Create a file with contents, owner and mode.
    pub fn file(&self, rel: &str, contents: &[u8], uid: u32, mode: u32) -> PathBuf {
        let p = self.dir.path().join(rel);
        // Start from a fresh inode: the old one may be read-only or hard-linked.
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, contents).expect("write");
        give(&p, uid);
        set_mode(&p, mode);
        p
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Names in `dir` that look like our temp files.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Run the test named `test` (a `child_*` test of this binary) in a fresh process with
/// `CHILD_ENV=arg`, so it can abort, be killed or change process-wide ids without
/// touching the test harness.
pub fn child_command(test: &str, arg: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

pub fn run_child(test: &str, arg: &str) -> ExitStatus {
    child_command(test, arg).status().expect("spawn child")
}

/// The argument given to this process as a child, if it is one.
pub fn child_arg() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}
