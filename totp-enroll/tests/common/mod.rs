//! Shared helpers for the CLI tests: running the binary, golden files, tools.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_totp-enroll");

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs the binary with `args` and `stdin` (closed when `None`), in `cwd`.
pub fn run_in(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn totp-enroll");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            // The child may exit before reading everything (an error); that is fine.
            let _ = input.write_all(text.as_bytes());
        }
    }
    Run::from(child.wait_with_output().expect("wait"))
}

pub fn run(args: &[&str]) -> Run {
    run_in(Path::new(env!("CARGO_TARGET_TMPDIR")), args, None)
}

/// Compares `actual` with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        actual, expected,
        "golden {name} differs (UPDATE_GOLDEN=1 to accept)"
    );
}

/// Whether an external tool is on PATH. Missing on CI (`CI=true`) is a failure;
/// elsewhere the test prints a note and is skipped.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} is required on CI");
        }
        eprintln!("note: {tool} not installed; skipping");
    }
    found
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The one skip policy for root-only tests (the same as the system tests' harness):
/// true when root; otherwise the test fails under `CI=true`, where a skip would hide a
/// regression, and elsewhere it prints a note and is skipped.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root");
    false
}

/// A test that cannot run here for want of `what`: false (skipped, with a note) on a
/// developer's machine; under `CI=true`, where every test must run, a failure.
pub fn skip(test: &str, what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs {what}, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs {what}");
    false
}

/// Runs the binary as `nobody` (through util-linux's `setpriv`), for the refusals an
/// unprivileged caller must get; the test process itself is root.
pub fn run_as_nobody(args: &[&str]) -> Run {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(BIN)
        .args(args)
        .current_dir("/")
        .env_remove("HOME")
        .stdin(Stdio::null())
        .output()
        .expect("spawn setpriv");
    Run::from(out)
}

/// A scratch directory below directories only root can write when the tests run as
/// root: root's enrolment checks every directory from `/` down to a file outside a home
/// (R7), and a checkout below `/tmp` (sticky, writable by all) would be refused. Run as
/// a normal user, the target directory.
pub fn tempdir() -> tempfile::TempDir {
    let base = if nix::unistd::geteuid().is_root() {
        let base = PathBuf::from("/run/pam_totp-enroll-tests");
        std::fs::create_dir_all(&base).expect("scratch base");
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod scratch base");
        base
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    tempfile::Builder::new()
        .prefix("enroll-")
        .tempdir_in(base)
        .expect("tempdir")
}

/// The fully non-interactive GA flag set from the compatibility notes.
pub const GA_FLAGS: [&str; 13] = [
    "-t", "-d", "-f", "-r", "3", "-R", "30", "-W", "-S", "30", "-e", "3", "-C",
];

/// Enrolls into `dir/name` with `extra` flags plus `--json`, returns the JSON.
pub fn enroll_json(dir: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let path = dir.join(name);
    let path = path.to_str().expect("utf-8 path");
    let mut args = vec!["--json", "--non-interactive", "-s", path];
    args.extend_from_slice(extra);
    let r = run_in(dir, &args, None);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// `oathtool` output for the URI's parameters at `time` (TOTP) or `counter` (HOTP).
pub fn oathtool_code(secret: &str, alg: &str, digits: u32, kind: OathKind) -> String {
    let mut cmd = Command::new("oathtool");
    match kind {
        OathKind::Totp { period, time } => {
            cmd.arg(format!("--totp={}", alg.to_ascii_lowercase()))
                .arg(format!("--time-step-size={period}s"))
                .arg(format!("--now=@{time}"));
        }
        OathKind::Hotp { counter } => {
            cmd.arg("--hotp").arg(format!("--counter={counter}"));
        }
    }
    let out = cmd
        .arg(format!("--digits={digits}"))
        .arg("--base32")
        .arg(secret)
        .output()
        .expect("oathtool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[derive(Clone, Copy)]
pub enum OathKind {
    Totp { period: u64, time: u64 },
    Hotp { counter: u64 },
}

pub fn decode_uri_params(uri: &str) -> std::collections::HashMap<String, String> {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn target_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}
