//! The NFS stand-in (tests/fuse/ptotpsquash.c): a FUSE passthrough file system that
//! does every operation with the caller's file-system identity, root squashed to
//! nobody, mounted over the directory it serves inside a private mount namespace around
//! one `pam-drive` child. Its file system type is FUSE, which the module's
//! `shared_file=auto` counts as a network one: root_squash.rs (C7) and shared_home.rs
//! (homes shared by hosts with their own state stores) both log in through it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{
    Drive, Driver, TestUser, require_root, require_tool, syslog_message, with_syslog_capture_after,
    workspace,
};

/// True when the stand-in can be built and mounted here: root, a C compiler, libfuse3's
/// headers and `/dev/fuse`. In CI (CI=true) anything missing fails the test.
pub fn require_fuse(test: &str) -> bool {
    if !require_root(test)
        || !require_tool(test, "cc")
        || !require_tool(test, "pkg-config")
        || !require_tool(test, "unshare")
        || !require_tool(test, "setpriv")
    {
        return false;
    }
    let headers = Command::new("pkg-config")
        .args(["--exists", "fuse3"])
        .status()
        .is_ok_and(|s| s.success());
    let missing = match (Path::new("/dev/fuse").exists(), headers) {
        (true, true) => return true,
        (false, _) => "/dev/fuse",
        (true, false) => "libfuse3-dev (pkg-config fuse3)",
    };
    crate::skip(test, missing)
}

/// The stand-in, compiled once per test binary into the target directory.
pub fn squash_fs() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = workspace().join("target/test-helpers");
        fs::create_dir_all(&dir).expect("helper directory");
        let bin = dir.join("ptotpsquash");
        // Built beside and renamed into place: a daemon of another run may still be
        // executing the old one.
        let fresh = dir.join(format!("ptotpsquash.{}", std::process::id()));
        let flags = |arg: &str| -> Vec<String> {
            let out = Command::new("pkg-config")
                .args([arg, "fuse3"])
                .output()
                .expect("pkg-config");
            assert!(out.status.success(), "pkg-config {arg} fuse3: {out:?}");
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        crate::compile_c(
            "tests/fuse/ptotpsquash.c",
            &fresh,
            &flags("--cflags"),
            &flags("--libs"),
        );
        fs::rename(&fresh, &bin).expect("rename the stand-in into place");
        bin
    })
}

/// The operations the stand-in did for its callers, `OP uid=UID PATH RESULT` per line
/// (UID as the backing file system saw it: 65534 for root), from a file of the test.
pub struct OpLog {
    dir: tempfile::TempDir,
}

impl Default for OpLog {
    fn default() -> Self {
        Self::new()
    }
}

impl OpLog {
    pub fn new() -> OpLog {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-squashlog")
            .tempdir()
            .expect("tempdir");
        OpLog { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ops")
    }

    pub fn lines(&self) -> Vec<String> {
        fs::read_to_string(self.path())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Shell commands (for [`crate::in_private_mounts`] or
/// [`crate::with_syslog_capture_after`], `$1` a private directory) that mount the
/// stand-in over `dir`, serving `dir` itself, wait for the mount (a minute at most, a
/// hang guard for a loaded machine; a daemon that exits ends it), and fail unless root
/// is refused reading `probe` through it; with a log, the operations after that
/// refusal are logged there.
pub fn mount_squashed(dir: &Path, probe: &Path, log: Option<&OpLog>) -> String {
    mount_squashed_with("", dir, probe, log)
}

/// [`mount_squashed`] with the stand-in's `flags` (`--nfs4-flock`).
pub fn mount_squashed_with(flags: &str, dir: &Path, probe: &Path, log: Option<&OpLog>) -> String {
    let (bin, dir, probe) = (squash_fs().display(), dir.display(), probe.display());
    let (log, start_log) = match log {
        Some(l) => {
            let p = format!("\"{}\"", l.path().display());
            (p.clone(), format!(": > {p}"))
        }
        None => (String::new(), String::new()),
    };
    format!(
        r#""{bin}" {flags} "{dir}" "{dir}" {log} </dev/null >/dev/null 2>>"$1/squash.err" &
daemon=$!
n=0
until grep -q " {dir} .* - fuse.ptotpsquash " /proc/self/mountinfo; do
  n=$((n+1))
  if [ $n -gt 2400 ] || ! kill -0 $daemon 2>/dev/null; then
    echo "the stand-in did not mount {dir}:" >&2; cat "$1/squash.err" >&2; exit 97
  fi
  sleep 0.025
done
if cat "{probe}" >/dev/null 2>&1; then echo "root read {probe}: not squashed" >&2; exit 98; fi
{start_log}"#
    )
}

/// `driver` with `dir` squashed ([`mount_squashed`]): the run and the module's syslog.
pub fn squashed_login(
    dir: &Path,
    probe: &Path,
    log: Option<&OpLog>,
    driver: &Driver,
) -> (Drive, Vec<String>) {
    let (out, lines) =
        with_syslog_capture_after(&mount_squashed(dir, probe, log), &driver.command());
    let lines = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
    (Drive::ran(&out), lines)
}

/// `driver` on `u`'s home mounted by the stand-in with `flags`: the run and the
/// module's syslog.
pub fn login_with(flags: &str, u: &TestUser, path: &Path, driver: &Driver) -> (Drive, Vec<String>) {
    let mount = mount_squashed_with(flags, &u.home, path, None);
    let (out, lines) = with_syslog_capture_after(&mount, &driver.command());
    let lines = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
    (Drive::ran(&out), lines)
}
