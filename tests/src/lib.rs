//! Harness for the system tests: build the real module, write throwaway PAM stacks,
//! create test users, compute reference codes with `oathtool`, and drive libpam either
//! in-process (`pamapp`) or in a child process (`pam-drive`, for libfaketime, parallel
//! logins and kill -9).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use pamapp;

pub mod etcd;
pub mod fleet;
pub mod names;
pub mod proxy;
pub mod squash;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    workspace().join("target")
}

/// Builds the module, the driver and the CLI once per test binary, so the tests always
/// load the `.so` built from this tree.
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "pam_totp",
                "-p",
                "pamapp",
                "-p",
                "totp-enroll",
                "-p",
                "totp-state",
            ])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build failed");
        let dir = target_dir().join("debug");
        Built {
            module: dir.join("libpam_totp.so"),
            driver: dir.join("pam-drive"),
            enroll: dir.join("totp-enroll"),
            state_tool: dir.join("totp-state"),
        }
    })
}

/// `totp-enroll` without a question: time-based, replay refused, the smallest window,
/// no rate limit, no confirmation, no QR code.
pub const ENROLL_SCRIPTED: [&str; 8] = [
    "-t",
    "-d",
    "-W",
    "-u",
    "-C",
    "--non-interactive",
    "-Q",
    "NONE",
];

/// Runs the `totp-state` admin tool built from this tree with `args`.
pub fn state_tool(args: &[&str]) -> Output {
    Command::new(&built().state_tool)
        .args(args)
        .output()
        .expect("run totp-state")
}

/// `totp-state audit --json` of the `svc` service in `pam_dir`, not yet run (some tests
/// run it in a namespace).
pub fn audit_command(pam_dir: &Path) -> Command {
    let mut audit = Command::new(&built().state_tool);
    audit
        .args(["audit", "--json", "--service", "svc", "--pam-dir"])
        .arg(pam_dir);
    audit
}

/// The output of `totp-state audit --json`: each account's verdict and its reasons (the
/// JSON array as text), by user name.
pub fn audit_verdicts(stdout: &[u8]) -> std::collections::BTreeMap<String, (String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
            (
                v["user"].as_str().expect("user").to_owned(),
                (
                    v["verdict"].as_str().expect("verdict").to_owned(),
                    v["reasons"].to_string(),
                ),
            )
        })
        .collect()
}

pub struct Built {
    pub module: PathBuf,
    pub driver: PathBuf,
    pub enroll: PathBuf,
    /// The `totp-state` admin tool.
    pub state_tool: PathBuf,
}

/// True when running as root. When not root: in CI (CI=true) the test fails, because
/// root-only tests must never skip there; elsewhere it prints a note and skips.
pub fn require_root(test: &str) -> bool {
    // SAFETY-free: geteuid has no preconditions; via libc for a plain number.
    let euid = nix_euid();
    euid == 0 || skip(test, "root")
}

/// A test that cannot run here for want of `what`: skipped (false) on a developer's
/// machine, a failure in CI (CI=true), where every test must run.
pub fn skip(test: &str, what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs {what}, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs {what}");
    false
}

fn nix_euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Fails (in CI) or skips when an external tool is missing.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    found || skip(test, tool)
}

/// Compiles the C test helper `source` (relative to the workspace, e.g. an NSS or FUSE
/// stand-in under `tests/`) into `output` with `cc -O1 -Wall -Wextra -Werror`, `flags`
/// before the source and `libs` after it; panics with the compiler's message.
pub fn compile_c(source: &str, output: &Path, flags: &[String], libs: &[String]) {
    let out = Command::new("cc")
        .args(["-O1", "-Wall", "-Wextra", "-Werror"])
        .args(flags)
        .arg("-o")
        .arg(output)
        .arg(workspace().join(source))
        .args(libs)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {source} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Current unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A throwaway PAM configuration directory for `pam_start_confdir`.
pub struct Stack {
    pub dir: tempfile::TempDir,
}

/// A base for test directories that hold state directories: below directories only
/// their owner can write, as the module requires of `state_dir=` (it refuses one below
/// /tmp, which anyone can write). /run for root, the home directory otherwise.
pub fn private_tmp() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = if nix_euid() == 0 {
            PathBuf::from("/run/pam_totp-tests")
        } else {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/pam_totp-tests")
        };
        fs::create_dir_all(&base).expect("private test base");
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod base");
        base
    })
}

impl Stack {
    /// A directory with `other` denying everything, as a real system has.
    pub fn new() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-stack")
            .tempdir_in(private_tmp())
            .expect("tempdir");
        fs::write(dir.path().join("other"), "auth required pam_deny.so\n").expect("write other");
        Stack { dir }
    }

    /// Writes service `name` with the given lines; `@MODULE@` is replaced by the path of
    /// the freshly built `pam_totp` module followed by `state_dir=` naming this stack's
    /// own state directory (see [`Stack::state_dir`]), so tests never share state with
    /// each other or with the host; a later `state_dir=` in the line wins.
    pub fn service(&self, name: &str, lines: &str) -> &Stack {
        let text = lines.replace("@MODULE@", &module_with_state(&self.state_dir()));
        fs::write(self.dir.path().join(name), text).expect("write service");
        self
    }

    /// A one-line stack `auth required <module> <args>`.
    pub fn with_module(name: &str, args: &str) -> Stack {
        let s = Stack::new();
        s.service(name, &format!("auth required @MODULE@ {args}\n"));
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The state directory the module uses in this stack (created by the module on
    /// first use, root-owned, mode 0700).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `totp-state` with `args` on this stack's state directory.
    pub fn state_tool(&self, args: &[&str]) -> Output {
        let dir = self.state_dir();
        let dir = dir.to_str().expect("a UTF-8 state directory");
        state_tool(&[args, &["--state-dir", dir]].concat())
    }

    /// The path of `uid`'s state record in this stack.
    pub fn state_file(&self, uid: u32) -> PathBuf {
        self.state_dir().join(uid.to_string())
    }

    /// The stand-in record a name without an account is charged to in this stack: chosen
    /// under the store's key (`store.key`), so only after the module has created it.
    pub fn stand_in_uid(&self, name: &str) -> u32 {
        let bytes = fs::read(self.state_dir().join("store.key")).expect("the store's key");
        let key = totp_core::state::StoreKey::from_slice(&bytes).expect("a sound store key");
        totp_core::ledger::StandIn::new(&key, name.as_bytes()).uid
    }
}

impl Stack {
    /// The record a name the name service does not know is kept in under `user=` once
    /// its secret file (`file`, its bytes) is usable: the record of the enrolment the
    /// file holds, chosen under the store's key.
    pub fn enrolment_record_uid(&self, file: &[u8]) -> u32 {
        let bytes = fs::read(self.state_dir().join("store.key")).expect("the store's key");
        let key = totp_core::state::StoreKey::from_slice(&bytes).expect("a sound store key");
        let file = totp_core::gafile::GaFile::parse(file).expect("a GA file");
        let id = totp_core::verify::enrolment_of(&file, &key).expect("an enrolment");
        totp_core::ledger::EnrolmentRecord::new(id).uid
    }

    /// The names in this stack's state directory (records are named by their uid).
    pub fn state_listing(&self) -> std::collections::BTreeSet<String> {
        fs::read_dir(self.state_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The module path and a `state_dir=` argument, for stacks written without [`Stack`].
pub fn module_with_state(state_dir: &Path) -> String {
    format!(
        "{} state_dir={}",
        built().module.to_string_lossy(),
        state_dir.display()
    )
}

impl Default for Stack {
    fn default() -> Self {
        Stack::new()
    }
}

/// The result of one `pam-drive` run.
#[derive(Debug, Clone)]
pub struct Drive {
    pub result: String,
    pub prompts: usize,
    pub messages: Vec<(i32, String)>,
    pub stderr: String,
}

impl Drive {
    /// [`Drive::parse`] of a run that must have reached pam-drive's report (a set-up
    /// around it, such as a namespace or a mount, can fail before it).
    pub fn ran(out: &Output) -> Drive {
        assert!(
            !out.stdout.is_empty(),
            "pam-drive did not run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Drive::parse(out)
    }
    /// The report of a pam-drive run that ended normally: it exited (no signal ended
    /// it) and printed exactly one `result` line. Panics with the child's stderr
    /// otherwise, so a login that crashed or was killed before its report can never pass
    /// for a denial; a test that expects the process to die uses [`Drive::died`].
    pub fn parse(out: &Output) -> Drive {
        use std::os::unix::process::ExitStatusExt;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let results = stdout.lines().filter(|l| l.starts_with("result ")).count();
        assert!(
            out.status.code().is_some() && results == 1,
            "pam-drive did not end normally ({}; {results} result lines): stdout {stdout:?}, \
             stderr {:?}",
            match out.status.signal() {
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("{}", out.status),
            },
            String::from_utf8_lossy(&out.stderr)
        );
        Drive::report(out)
    }

    /// The signal that ended a pam-drive run a test expects to die before its verdict
    /// (a SIGTERM or SIGABRT test); panics if the run exited by itself or printed a
    /// `result` line.
    pub fn died(out: &Output) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let d = Drive::report(out);
        let signal = out.status.signal();
        assert!(
            d.result.is_empty() && !String::from_utf8_lossy(&out.stdout).contains("result "),
            "a verdict left a process expected to die: {out:?}"
        );
        signal.unwrap_or_else(|| panic!("the process exited instead of dying: {out:?}"))
    }

    fn report(out: &Output) -> Drive {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut d = Drive {
            result: String::new(),
            prompts: 0,
            messages: Vec::new(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        for line in stdout.lines() {
            if let Some(v) = line.strip_prefix("result ") {
                d.result = v.to_string();
            } else if let Some(v) = line.strip_prefix("prompts ") {
                d.prompts = v.parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("msg ") {
                let (style, text) = v.split_once(' ').unwrap_or((v, ""));
                d.messages
                    .push((style.parse().unwrap_or(0), text.to_string()));
            }
        }
        d
    }
}

/// How long, by the wall clock, a run whose clock libfaketime freezes may take before
/// the harness kills it and fails the test ([`FrozenClockHang`]). Under a frozen clock no
/// timeout of the module can expire: a login that meets a paused (SIGSTOP) or silent
/// server would wait for ever and hang the whole test run. Far more than any such login
/// takes on a loaded machine.
pub const FROZEN_CLOCK_LIMIT: Duration = Duration::from_secs(180);

/// A run with the clock frozen by libfaketime that outlived its wall-clock limit and was
/// killed ([`FROZEN_CLOCK_LIMIT`]). Its text says what to change in the test.
#[derive(Clone, Debug)]
pub struct FrozenClockHang {
    /// The `FAKETIME` value the run was given.
    pub faketime: String,
    pub limit: Duration,
}

impl std::fmt::Display for FrozenClockHang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a run with the clock frozen at {:?} by libfaketime was still going after {} s \
             by the wall clock and was killed: under a frozen clock no timeout can expire, \
             so a login that meets a paused or silent server (RedisServer::pause, a \
             stalled proxy) waits for ever. Run such a login with the running clock \
             (`login_logged(.., None)`, no `Driver::at`)",
            self.faketime,
            self.limit.as_secs()
        )
    }
}

/// The `FAKETIME` a command runs with when it freezes the clock: set in its environment,
/// or passed as a `FAKETIME=…` argument to an `env` that a wrapper execs last
/// ([`append_env_exec`]). A value starting with `@`, `+` or `-` lets the clock run.
pub fn frozen_faketime(cmd: &Command) -> Option<String> {
    let frozen = |v: &OsStr| {
        let v = v.to_string_lossy();
        (!v.starts_with(['@', '+', '-'])).then(|| v.into_owned())
    };
    let from_env = cmd
        .get_envs()
        .find(|(k, _)| *k == "FAKETIME")
        .and_then(|(_, v)| v)
        .and_then(frozen);
    from_env.or_else(|| {
        cmd.get_args().find_map(|a| {
            a.to_str()
                .and_then(|a| a.strip_prefix("FAKETIME="))
                .and_then(|v| frozen(OsStr::new(v)))
        })
    })
}

/// A child whose output is read while it runs, so that it can be waited for with a
/// wall-clock deadline.
struct Watched {
    child: std::process::Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
    /// The write end of a standard input nobody writes to ([`Input::HeldOpen`]),
    /// closed once the child is waited for or killed.
    held_stdin: Option<std::process::ChildStdin>,
}

/// What a guarded run ([`output_guarded`]) gets on its standard input.
#[derive(Clone, Debug)]
pub enum Input<'a> {
    /// `/dev/null`.
    Null,
    /// These bytes, then the end of input.
    Bytes(&'a [u8]),
    /// A pipe kept open and never written to, as a configuration tool or a CI runner
    /// may leave it: a program that reads it waits for ever.
    HeldOpen,
}

impl Watched {
    fn spawn(cmd: &mut Command) -> std::io::Result<Watched> {
        Watched::spawn_with(cmd, &Input::Null)
    }

    fn spawn_with(cmd: &mut Command, input: &Input<'_>) -> std::io::Result<Watched> {
        use std::io::{Read, Write};
        let stdin = match input {
            Input::Null => Stdio::null(),
            Input::Bytes(_) | Input::HeldOpen => Stdio::piped(),
        };
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut held_stdin = None;
        match input {
            Input::Null => {}
            Input::Bytes(bytes) => {
                if let Some(mut pipe) = child.stdin.take() {
                    let bytes = bytes.to_vec();
                    // A writer thread: a child that does not read would block this one.
                    std::thread::spawn(move || {
                        let _ = pipe.write_all(&bytes);
                    });
                }
            }
            Input::HeldOpen => held_stdin = child.stdin.take(),
        }
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        Ok(Watched {
            child,
            stdout,
            stderr,
            held_stdin,
        })
    }

    /// The output once the child exits, or `None` after it was killed at `deadline`
    /// (its pipes are then left to their readers: a descendant may still hold them).
    fn finish(mut self, deadline: Instant) -> Option<Output> {
        let status = loop {
            match self.child.try_wait().expect("wait for a child") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    self.kill();
                    return None;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        Some(Output {
            status,
            stdout: self.stdout.join().unwrap_or_default(),
            stderr: self.stderr.join().unwrap_or_default(),
        })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.held_stdin = None;
    }
}

/// `cmd` run with `input`, its output read while it runs; killed once it has taken
/// `limit` by the wall clock (`None` then), whatever its clock.
pub fn output_within(cmd: &mut Command, input: Input<'_>, limit: Duration) -> Option<Output> {
    Watched::spawn_with(cmd, &input)
        .expect("run a child")
        .finish(Instant::now() + limit)
}

/// `cmd.output()` with `input` for a test's direct runs (a `Driver::command`, a CLI):
/// a run with a frozen clock ([`frozen_faketime`]) is killed after
/// [`FROZEN_CLOCK_LIMIT`] by the wall clock and fails the test, as [`Driver::run`]
/// does, rather than hang the test run.
pub fn output_guarded(cmd: &mut Command, input: Input<'_>) -> Output {
    guarded_within(cmd, input, FROZEN_CLOCK_LIMIT).unwrap_or_else(|hang| panic!("{hang}"))
}

/// [`output_guarded`] with another limit (the test of the guard itself).
pub fn guarded_within(
    cmd: &mut Command,
    input: Input<'_>,
    limit: Duration,
) -> Result<Output, FrozenClockHang> {
    let Some(faketime) = frozen_faketime(cmd) else {
        let mut child = Watched::spawn_with(cmd, &input).expect("run a child");
        // No deadline: only a frozen clock stops the run's own timeouts.
        let status = child.child.wait().expect("wait for a child");
        child.held_stdin = None;
        return Ok(Output {
            status,
            stdout: child.stdout.join().unwrap_or_default(),
            stderr: child.stderr.join().unwrap_or_default(),
        });
    };
    Watched::spawn_with(cmd, &input)
        .expect("run a child")
        .finish(Instant::now() + limit)
        .ok_or(FrozenClockHang { faketime, limit })
}

/// `cmd.output()`, except that a run with a frozen clock ([`frozen_faketime`]) is killed
/// once it has taken `limit` by the wall clock, which is then the error.
pub fn output_bounded(cmd: &mut Command, limit: Duration) -> Result<Output, FrozenClockHang> {
    guarded_within(cmd, Input::Null, limit)
}

/// Builder for a `pam-drive` child process.
#[derive(Clone, Debug, Default)]
pub struct Driver {
    args: Vec<String>,
    faketime: Option<u64>,
    /// [`FROZEN_CLOCK_LIMIT`] unless a test of the limit itself shortens it.
    frozen_limit: Option<Duration>,
}

impl Driver {
    pub fn new(stack: &Stack, service: &str, user: &str) -> Driver {
        let mut d = Driver::default();
        d.args.extend([
            "--confdir".into(),
            stack.path().to_string_lossy().into_owned(),
            "--service".into(),
            service.into(),
            "--user".into(),
            user.into(),
        ]);
        d
    }
    pub fn arg(mut self, flag: &str, value: &str) -> Driver {
        self.args.push(flag.into());
        self.args.push(value.into());
        self
    }
    pub fn flag(mut self, flag: &str) -> Driver {
        self.args.push(flag.into());
        self
    }
    /// `user` answering `answer` on the service `svc` of `stack`, the service the probe
    /// and one-line stacks of most tests name.
    pub fn login(stack: &Stack, user: &TestUser, answer: &str) -> Driver {
        Driver::new(stack, "svc", &user.name).answer(answer)
    }
    pub fn answer(self, a: &str) -> Driver {
        self.arg("--answer", a)
    }
    pub fn rhost(self, h: &str) -> Driver {
        self.arg("--rhost", h)
    }
    /// [`Driver::rhost`] when there is one: no `PAM_RHOST` at all otherwise.
    pub fn rhost_opt(self, h: Option<&str>) -> Driver {
        match h {
            Some(h) => self.rhost(h),
            None => self,
        }
    }
    pub fn tty(self, t: &str) -> Driver {
        self.arg("--tty", t)
    }
    /// [`Driver::tty`] when there is one: no `PAM_TTY` at all otherwise.
    pub fn tty_opt(self, t: Option<&str>) -> Driver {
        match t {
            Some(t) => self.tty(t),
            None => self,
        }
    }
    /// Freezes the clock at `unix` seconds with libfaketime. No timeout can expire then:
    /// a run still going after [`FROZEN_CLOCK_LIMIT`] by the wall clock is killed and
    /// fails the test ([`FrozenClockHang`]) rather than hang the test run.
    pub fn at(mut self, unix: u64) -> Driver {
        self.faketime = Some(unix);
        self
    }

    /// Another wall-clock limit than [`FROZEN_CLOCK_LIMIT`] for a frozen-clock run (the
    /// test of that guard).
    pub fn frozen_limit(mut self, limit: Duration) -> Driver {
        self.frozen_limit = Some(limit);
        self
    }

    fn limit(&self) -> Duration {
        self.frozen_limit.unwrap_or(FROZEN_CLOCK_LIMIT)
    }

    pub fn command(&self) -> Command {
        let driver = &built().driver;
        let mut cmd = Command::new(driver);
        if let Some(t) = self.faketime {
            // libfaketime preloaded directly: the `faketime` wrapper names a semaphore
            // and shared memory after its pid, leaks them when its child is killed, and
            // a later wrapper with a reused pid then fails with "sem_open: File exists".
            cmd.env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", faketime_date(t))
                .env("TZ", "UTC");
        }
        cmd.args(&self.args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn run(&self) -> Drive {
        Drive::parse(&self.output())
    }

    /// The raw output of one run, with the guard of [`Driver::run`] (a frozen-clock run
    /// killed after its wall-clock limit fails the test).
    pub fn output(&self) -> Output {
        output_bounded(&mut self.command(), self.limit())
            .unwrap_or_else(|hang| panic!("pam-drive: {hang}"))
    }
}

/// Path of Debian's libfaketime (package `faketime`/`libfaketime`).
pub fn libfaketime() -> &'static str {
    static LIB: OnceLock<String> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = Command::new("sh")
            .args([
                "-c",
                "dpkg -L libfaketime 2>/dev/null | grep '/libfaketime.so.1$' | head -n 1",
            ])
            .output()
            .expect("dpkg -L");
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !found.is_empty() {
            return found;
        }
        [
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/faketime/libfaketime.so.1",
        ]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| (*p).to_string())
        .expect("libfaketime not installed (apt-get install faketime)")
    })
}

/// An absolute `FAKETIME` (without `@`): the clock is frozen at that moment.
pub fn faketime_date(unix: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%d %H:%M:%S"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A reference code from `oathtool` (an implementation nobody here wrote).
pub fn oathtool_totp(secret_b32: &str, unix: u64, step: u64, digits: u8, alg: &str) -> String {
    let out = Command::new("oathtool")
        .arg(format!("--totp={}", alg.to_lowercase()))
        .args(["-b", "-d", &digits.to_string(), "-s", &format!("{step}s")])
        .args(["-N", &format!("@{unix}")])
        .arg(secret_b32)
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "oathtool failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// HOTP reference code from `oathtool`.
pub fn oathtool_hotp(secret_b32: &str, counter: u64) -> String {
    let out = Command::new("oathtool")
        .args(["-b", "-c", &counter.to_string(), secret_b32])
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "oathtool failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A system user created for one test and deleted afterwards (root only).
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

fn user_lock() -> &'static Mutex<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    &LOCK
}

/// Held while a test of this binary changes the user database, so that another test's
/// `useradd` cannot take a uid being handed over (`userdel`, then `useradd -u` of the
/// same uid, which the next automatic uid may be).
pub fn user_database_lock() -> std::sync::MutexGuard<'static, ()> {
    user_lock().lock().unwrap_or_else(|e| e.into_inner())
}

/// [`user_database_lock`] plus the lock every program of the shadow suite (useradd,
/// userdel, usermod, groupadd, ...) takes for as long as it changes the user database:
/// `lckpwdf(3)`'s write lock on the whole of `/etc/.pwd.lock`. Held by a test that runs
/// something under its own `/etc/passwd` bind-mounted over the host's: another test
/// process's `useradd` renames a new `/etc/passwd` into place, which detaches that bind
/// mount in every namespace, so the program would read the host's changing listing
/// instead. Meanwhile every user-database change on the host waits (lckpwdf waits up to
/// 15 s; the harness retries a `useradd` that gave up). The lock is the process's
/// (fcntl), so the in-process mutex keeps this binary's own tests out first, and no
/// test of this binary runs `useradd` while it is held.
pub struct UserDatabaseFrozen {
    // Dropped first: closing the descriptor releases the fcntl lock.
    _file: fs::File,
    _in_process: std::sync::MutexGuard<'static, ()>,
}

/// See [`UserDatabaseFrozen`].
pub fn user_database_frozen() -> UserDatabaseFrozen {
    use std::os::unix::fs::OpenOptionsExt;
    let in_process = user_database_lock();
    // As lckpwdf opens it.
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open("/etc/.pwd.lock")
        .expect("open /etc/.pwd.lock");
    rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::LockExclusive)
        .expect("lock /etc/.pwd.lock");
    UserDatabaseFrozen {
        _file: file,
        _in_process: in_process,
    }
}

/// Records which test of this binary created users under `tag`, and fails the second
/// test that does: the account name is the process id and the tag, and `create` deletes
/// an account of that name first, so two tests running at once would delete each
/// other's user and test whatever account is left. A test may reuse its own tag
/// (an account deleted and created again). Tests run on threads named after them;
/// threads without a test's name (helpers a test spawns, a harness running tests on
/// the main thread) are not checked.
fn claim_tag(tag: &str) {
    static CLAIMS: Mutex<std::collections::BTreeMap<String, String>> =
        Mutex::new(std::collections::BTreeMap::new());
    let current = std::thread::current();
    let Some(test) = current.name().filter(|n| *n != "main") else {
        return;
    };
    let mut claims = CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
    match claims.get(tag) {
        Some(owner) if owner != test => panic!(
            "TestUser tag {tag:?} is used by two tests of this binary, {owner} and {test}: \
             give each test its own"
        ),
        Some(_) => {}
        None => {
            claims.insert(tag.to_owned(), test.to_owned());
        }
    }
}

impl TestUser {
    /// Creates `ptt<tag>` with a private home directory (mode 0700).
    pub fn create(tag: &str) -> TestUser {
        claim_tag(tag);
        let _g = user_database_lock();
        let name = format!("ptt{}{}", std::process::id() % 100_000, tag);
        // A leftover of an earlier run with this process id; a userdel refused for
        // another process's lock would leave it to fail the useradd.
        let _ = shadow_tool("userdel", &["-r", &name]);
        // Its group may be left alone (see `Drop`): useradd would refuse the name.
        let _ = shadow_tool("groupdel", &[&name]);
        let out = shadow_tool(
            "useradd",
            &["-m", "-s", "/bin/sh", "-K", "UMASK=077", &name],
        )
        .expect("useradd");
        assert!(out.status.success(), "useradd {name}: {out:?}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        let home = PathBuf::from(
            String::from_utf8_lossy(
                &Command::new("sh")
                    .args(["-c", &format!("getent passwd {name} | cut -d: -f6")])
                    .output()
                    .expect("getent")
                    .stdout,
            )
            .trim(),
        );
        TestUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
            home,
        }
    }

    /// Path of the default secret file.
    pub fn secret_path(&self) -> PathBuf {
        self.home.join(".google_authenticator")
    }

    /// Writes the secret file owned by the user with `mode`.
    pub fn write_secret(&self, contents: &str, mode: u32) -> PathBuf {
        let p = self.secret_path();
        write_owned(&p, contents.as_bytes(), self.uid, self.gid, mode);
        p
    }

    /// Creates `ptt<tag>` (see `create`) enrolled with a fresh random secret: a 0600
    /// `totp_file` in the default place. Returns the user and the base32 secret.
    pub fn enrolled(tag: &str) -> (TestUser, String) {
        let u = TestUser::create(tag);
        let secret = random_secret_b32();
        u.write_secret(&totp_file(&secret), 0o600);
        (u, secret)
    }

    /// Adds the user to a (created if missing) group. Both tools wait for another
    /// test's `useradd` or `userdel` to release the group file ([`shadow_tool`]).
    pub fn add_to_group(&self, group: &str) {
        let _g = user_database_lock();
        let out = shadow_tool("groupadd", &["-f", group]).expect("groupadd");
        assert!(out.status.success(), "groupadd -f {group}: {out:?}");
        let out = shadow_tool("usermod", &["-a", "-G", group, &self.name]).expect("usermod");
        assert!(
            out.status.success(),
            "usermod -a -G {group} {}: {out:?}",
            self.name
        );
    }
}

impl Drop for TestUser {
    /// Never panics (a drop during a test's unwinding would abort the binary): an
    /// account left behind is said on standard error, named, for the next run of a test
    /// with the same tag would otherwise meet it (its `create` removes it first).
    fn drop(&mut self) {
        let _g = user_database_lock();
        match shadow_tool("userdel", &["-r", "-f", &self.name]) {
            // 6: already gone (a test deleted the account itself).
            Ok(out) if out.status.success() || out.status.code() == Some(6) => {}
            Ok(out) => eprintln!(
                "TestUser: userdel {} failed, the account is left behind: {:?}: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!(
                "TestUser: userdel {} did not run, the account is left behind: {e}",
                self.name
            ),
        }
        // userdel keeps the account's group when another account still names it (a
        // test made it that account's primary or supplementary group) or when the
        // account's primary group was changed; the group would outlive the test and
        // make a later run's useradd of the name fail.
        match shadow_tool("groupdel", &[&self.name]) {
            // 6: no such group (userdel removed it).
            Ok(out) if out.status.success() || out.status.code() == Some(6) => {}
            Ok(out) => eprintln!(
                "TestUser: groupdel {} failed, the group is left behind: {:?}: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!(
                "TestUser: groupdel {} did not run, the group is left behind: {e}",
                self.name
            ),
        }
    }
}

/// How long [`shadow_tool`] waits for another process to release the user database.
pub const SHADOW_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs a shadow-suite tool (`useradd`, `userdel`) until it gets the user database's
/// locks, for at most [`SHADOW_LOCK_WAIT`]. Another process's tool holding them (other
/// test binaries run at the same time) makes it give up at once with "cannot lock
/// FILE; try again later" (exit 1 for the passwd files, 10 for the group files, 5 from
/// `passwd`), which would otherwise fail a `create` or leave a deleted account behind.
/// Any other failure is returned at once. Its standard output and error are captured.
pub fn shadow_tool(program: &str, args: &[&str]) -> std::io::Result<Output> {
    let start = std::time::Instant::now();
    loop {
        // Untranslated, so the lock message is recognised.
        let out = Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()?;
        let busy = !out.status.success()
            && matches!(out.status.code(), Some(1 | 5 | 10))
            && String::from_utf8_lossy(&out.stderr).contains("try again later");
        if !busy || start.elapsed() >= SHADOW_LOCK_WAIT {
            return Ok(out);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Writes a file with the given owner and mode (replacing whatever was there).
pub fn write_owned(path: &Path, contents: &[u8], uid: u32, gid: u32, mode: u32) {
    let _ = fs::remove_file(path);
    fs::write(path, contents).expect("write file");
    chown(path, Some(uid), Some(gid)).expect("chown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Reads a file as a string (lossy).
pub fn read(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Runs a command and returns its output.
pub fn run<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(program: &str, args: I) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// GA's test secret (80 bits; legacy length, accepted with a warning).
pub const GA_SECRET: &str = "2SH3V3GDW7ZNMGYE";
/// A 160-bit secret for tests that do not need GA's vectors.
pub const SECRET_160: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

// ---- Helpers for the pam.d example tests (tests/tests/pamd_examples.rs) ----

impl TestUser {
    /// Sets the user's password (root only), so stacks with a real `pam_unix` can be run.
    pub fn set_password(&self, password: &str) {
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        {
            use std::io::Write;
            let stdin = child.stdin.as_mut().expect("chpasswd stdin");
            writeln!(stdin, "{}:{}", self.name, password).expect("write to chpasswd");
        }
        assert!(
            child.wait().expect("chpasswd").success(),
            "chpasswd {}",
            self.name
        );
    }
}

/// A fresh random 160-bit secret in base32 (32 characters), from the OS CSPRNG.
pub fn random_secret_b32() -> String {
    use std::io::Read;
    let mut buf = [0u8; 20];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    totp_core::base32::encode(&buf)
}

/// A six-digit code that is wrong for `secret_b32` at `unix` (30-s steps, SHA-1): it
/// differs from every code within two steps either side.
pub fn wrong_totp(secret_b32: &str, unix: u64) -> String {
    let near: Vec<String> = (0..5u64)
        .map(|i| {
            oathtool_totp(
                secret_b32,
                (unix + i * 30).saturating_sub(60),
                30,
                6,
                "sha1",
            )
        })
        .collect();
    let mut candidate: u32 = near[2].parse().unwrap_or(0);
    loop {
        candidate = (candidate + 500_001) % 1_000_000;
        let s = format!("{candidate:06}");
        if !near.contains(&s) {
            return s;
        }
    }
}

impl Drive {
    /// True when some prompt (echo on or off) contained `needle`.
    pub fn prompted(&self, needle: &str) -> bool {
        self.messages
            .iter()
            .any(|(style, text)| (*style == 1 || *style == 2) && text.contains(needle))
    }
}

// ---- Helpers for the module tests (tests/tests/module_*.rs) ----

impl Drive {
    /// The module's own return code for a [`Stack::probe`] service, as a PAM name
    /// (`PAM_SUCCESS`, `PAM_IGNORE` or the failure code), from [`Drive::returned`].
    pub fn module_code(&self) -> String {
        match self.returned() {
            Returned::Success => "PAM_SUCCESS".to_string(),
            Returned::Ignore => "PAM_IGNORE".to_string(),
            Returned::Failed(code) => code,
        }
    }

    /// The prompts (style, text) only, without `pam_debug`'s info messages.
    pub fn prompt_list(&self) -> Vec<(i32, String)> {
        self.messages
            .iter()
            .filter(|(style, _)| *style == 1 || *style == 2)
            .cloned()
            .collect()
    }
}

impl Driver {
    /// Waits until `unix_ms` (real time) before `pam_authenticate` (for parallel runs).
    pub fn start_at(self, unix_ms: u64) -> Driver {
        self.arg("--start-at", &unix_ms.to_string())
    }
    /// The conversation answers `PAM_SUCCESS` with a NULL `resp` string.
    pub fn null_answer(self) -> Driver {
        self.flag("--null-answer")
    }
    /// The conversation answers `PAM_SUCCESS` with a NULL response array.
    pub fn null_array(self) -> Driver {
        self.flag("--null-array")
    }
    /// The conversation fails with the named PAM code.
    pub fn conv_fail(self, code: &str) -> Driver {
        self.arg("--conv-fail", code)
    }
}

/// GA's `pam_google_authenticator.so`, found next to the libpam the system uses.
pub fn ga_module() -> Option<PathBuf> {
    let out = Command::new("ldconfig").arg("-p").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("libpam.so.0"))
        .filter_map(|l| l.split("=>").nth(1))
        .filter_map(|p| {
            Path::new(p.trim())
                .parent()
                .map(|d| d.join("security/pam_google_authenticator.so"))
        })
        .find(|p| p.exists())
}

/// A minimal TOTP file as GA's tool writes it.
pub fn totp_file(secret_b32: &str) -> String {
    format!("{secret_b32}\n\" TOTP_AUTH\n")
}

/// The 6-digit SHA-1 TOTP code with 30-s steps at `unix`, computed with `totp_core`
/// (cross-checked against `oathtool` by the tests that use GA's vectors).
pub fn code_at(secret_b32: &str, unix: u64) -> String {
    let bytes = totp_core::base32::decode_lenient(secret_b32.as_bytes()).expect("base32 secret");
    let secret = totp_core::secret::Secret::new(bytes);
    let digits = totp_core::otp::Digits::SIX;
    let v = totp_core::otp::totp(
        &secret,
        i64::try_from(unix).expect("time"),
        30,
        totp_core::otp::Algorithm::Sha1,
        digits,
    )
    .expect("totp");
    totp_core::otp::format_code(v, digits).to_string()
}

/// A fixed time in the middle of a 30-s step (step 56_666_667), for faketime runs.
pub const T0: u64 = 1_700_000_025;

/// The value of a `" KEY value` line in a secret file, if present.
pub fn file_value(contents: &str, key: &str) -> Option<String> {
    let prefix = format!("\" {key}");
    contents.lines().find_map(|l| {
        let rest = l.strip_prefix(&prefix)?;
        if rest.is_empty() {
            Some(String::new())
        } else {
            rest.strip_prefix(' ').map(str::to_string)
        }
    })
}

/// The state record the module keeps for `uid` in `stack` (default when absent).
pub fn stored(stack: &Stack, uid: u32) -> totp_core::state::UserState {
    use totp_core::state::StateStore;
    let mut s =
        totp_os::state_dir::StateDir::new(stack.state_dir(), std::time::Duration::from_secs(5));
    s.read(uid)
        .unwrap_or_else(|e| panic!("state of uid {uid} unreadable: {e}"))
}

/// The replay high-water mark (last accepted TOTP step, 30-s steps) of the enrolment
/// used last, in the store.
pub fn stored_last_step(stack: &Stack, uid: u32) -> Option<u64> {
    last_step_of(&stored(stack, uid))
}

/// Consecutive failures (any origin) recorded in the store.
pub fn stored_failures(stack: &Stack, uid: u32) -> u32 {
    failures_of(&stored(stack, uid))
}

/// The replay high-water mark (30-s steps) of the enrolment a record used last.
pub fn last_step_of(st: &totp_core::state::UserState) -> Option<u64> {
    st.latest().and_then(|m| m.last_totp_step(30))
}

/// Consecutive failures (any origin) in a record.
pub fn failures_of(st: &totp_core::state::UserState) -> u32 {
    totp_core::ledger::Ledger::decode(&st.extra)
        .map(|l| l.consecutive)
        .unwrap_or_else(|e| panic!("ledger: {e}"))
}

/// Forgets `uid`'s state in `stack` (what `totp-state reset` does).
pub fn reset_state(stack: &Stack, uid: u32) {
    let _ = fs::remove_file(stack.state_file(uid));
}

/// Permission bits, owner uid and group gid of a path (not following a final symlink).
pub fn mode_owner(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).expect("stat");
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// Current unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs every driver as its own process at once (each `pam-drive` waits for its own
/// start time) and collects the results in order.
/// Frozen-clock drivers are killed together once the longest of their limits has passed
/// by the wall clock ([`Driver::at`]).
pub fn spawn_all(drivers: Vec<Driver>) -> Vec<Drive> {
    let Some(limit) = drivers
        .iter()
        .filter(|d| d.faketime.is_some())
        .map(Driver::limit)
        .max()
    else {
        let children: Vec<std::process::Child> = drivers
            .iter()
            .map(|d| {
                d.command()
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn pam-drive")
            })
            .collect();
        return children
            .into_iter()
            .map(|c| Drive::parse(&c.wait_with_output().expect("wait")))
            .collect();
    };
    let mut children: Vec<Watched> = drivers
        .iter()
        .map(|d| Watched::spawn(&mut d.command()).expect("spawn pam-drive"))
        .collect();
    let deadline = Instant::now() + limit;
    let mut drives = Vec::with_capacity(children.len());
    // In order; a run past the deadline takes every one still going with it.
    while !children.is_empty() {
        match children.remove(0).finish(deadline) {
            Some(out) => drives.push(Drive::parse(&out)),
            None => {
                for mut rest in children {
                    rest.kill();
                }
                let faketime = drivers
                    .iter()
                    .find_map(|d| d.faketime.map(faketime_date))
                    .unwrap_or_default();
                panic!("pam-drive: {}", FrozenClockHang { faketime, limit });
            }
        }
    }
    drives
}

/// The right code of `secret` answered by `n` logins of `user` spread over `hosts`, all
/// released at one instant ([`start_time`]) so that they race: their results, and the
/// 30-s step whose code they answered.
pub fn same_code_at_once(
    hosts: &[Stack],
    user: &TestUser,
    secret: &str,
    n: usize,
) -> (Vec<Drive>, u64) {
    let start = start_time();
    let code = code_at(secret, start / 1000);
    let drivers = (0..n)
        .map(|i| Driver::login(&hosts[i % hosts.len()], user, &code).start_at(start))
        .collect();
    (spawn_all(drivers), start / 1000 / 30)
}

/// A start time (unix ms) about 1.5 s ahead that is not within 3 s of a 30-s step
/// boundary, so parallel processes all present the code of one step while it is current.
pub fn start_time() -> u64 {
    loop {
        let start = now_ms() + 1_500;
        if (3..27).contains(&((start / 1000) % 30)) {
            return start;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A root-owned directory (mode 0700) for a store-mode secret store, below directories
/// only root can write ([`private_tmp`]): a login checks every directory from `/` down
/// to a store file (R7), and refuses one in /tmp.
pub fn root_store() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("pam_totp-store")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).expect("chmod store");
    d
}

/// What the module itself returned, seen through a probe stack (see [`Stack::probe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Returned {
    Success,
    Ignore,
    /// Any failure: the PAM code name the stack returned.
    Failed(String),
}

impl Stack {
    /// A stack that tells `PAM_SUCCESS`, `PAM_IGNORE` and failures of the module apart,
    /// which a one-line stack cannot (libpam turns a lone `PAM_IGNORE` into
    /// `PAM_PERM_DENIED`): success jumps to one `pam_echo` marker, ignore falls through to
    /// another, anything else ends the stack with the module's own code.
    pub fn probe(service: &str, args: &str) -> Stack {
        let s = Stack::new();
        s.service(
            service,
            &format!(
                "auth [success=2 ignore=ignore default=die] @MODULE@ {args}\n\
                 auth required pam_echo.so pam_totp-returned-ignore\n\
                 auth [success=done default=die] pam_permit.so\n\
                 auth required pam_echo.so pam_totp-returned-success\n"
            ),
        );
        s
    }
}

impl Drive {
    /// Interprets a run against a [`Stack::probe`] stack.
    pub fn returned(&self) -> Returned {
        assert!(
            !self.result.is_empty(),
            "no verdict to interpret (the run never reported): {self:?}"
        );
        let marker = |m: &str| self.messages.iter().any(|(_, t)| t == m);
        if self.result == "PAM_SUCCESS" && marker("pam_totp-returned-success") {
            Returned::Success
        } else if self.result == "PAM_SUCCESS" && marker("pam_totp-returned-ignore") {
            Returned::Ignore
        } else {
            Returned::Failed(self.result.clone())
        }
    }
}

/// Runs `driver` in a private mount namespace where `/dev/log` is a datagram socket of
/// this process (a tmpfs over `/dev` inside that namespace only, with `null`, `zero`,
/// `urandom`, `random`, `full` and `tty` bound from the real one, and a private `shm`
/// for libfaketime's semaphores), and returns the run
/// and the syslog datagrams the module sent (root only; the host's `/dev` is untouched).
pub fn capture_syslog(driver: &Driver) -> (Drive, Vec<String>) {
    let (out, lines) = with_syslog_capture_within("", &driver.command(), driver.limit());
    (Drive::ran(&out), lines)
}

/// One [`Driver::login`] run, from `rhost` when given, with the clock frozen at `at`.
pub fn login_at<'a>(
    stack: &Stack,
    user: &TestUser,
    answer: &str,
    rhost: impl Into<Option<&'a str>>,
    at: u64,
) -> Drive {
    Driver::login(stack, user, answer)
        .rhost_opt(rhost.into())
        .at(at)
        .run()
}

/// The peer address (RFC 5737) the fleet tests log in from.
pub const PEER: &str = "192.0.2.7";

/// One [`Driver::login`], from `rhost` and with the clock frozen at `at` when given (a
/// test that waits on a real server or times the login needs the running clock): the
/// run and the syslog lines the module sent ([`capture_syslog`]).
pub fn login_logged<'a>(
    stack: &Stack,
    user: &TestUser,
    answer: &str,
    rhost: impl Into<Option<&'a str>>,
    at: impl Into<Option<u64>>,
) -> (Drive, Vec<String>) {
    let driver = Driver::login(stack, user, answer).rhost_opt(rhost.into());
    capture_syslog(&match at.into() {
        Some(unix) => driver.at(unix),
        None => driver,
    })
}

/// [`capture_syslog`] with `src` bind-mounted over `dst` (both absolute) inside the same
/// private mount namespace first: a device or another file over a secret, another
/// `/etc/passwd` for a host whose accounts differ. The host's mounts are untouched.
pub fn capture_syslog_with_bind(src: &Path, dst: &Path, driver: &Driver) -> (Drive, Vec<String>) {
    let mut wrapped = Command::new("sh");
    wrapped
        .args([
            "-c",
            r#"src=$1; dst=$2; shift 2; mount --bind "$src" "$dst" && exec "$@""#,
            "sh",
        ])
        .arg(src)
        .arg(dst)
        .arg("env");
    append_env_exec(&mut wrapped, &driver.command());
    let (out, lines) = with_syslog_capture_within("", &wrapped, driver.limit());
    (Drive::ran(&out), lines)
}

/// `sh -c script` with each `(file, over)` bind-mounted over the host's `over` (a PAM
/// service file over `/etc/pam.d/su`, a sudoers file) in a private mount namespace, and
/// `/dev/log` captured ([`with_syslog_capture_after`]): real programs (su, sudo,
/// chpasswd) read a configuration the test wrote, and the host's stays untouched.
pub fn run_with_files_over(mounts: &[(&Path, &str)], script: &str) -> (Output, Vec<String>) {
    let first: Vec<String> = mounts
        .iter()
        .map(|(file, over)| {
            format!(
                "mount --bind '{}' '{over}'",
                file.to_str().expect("a UTF-8 path")
            )
        })
        .collect();
    let mut inner = Command::new("sh");
    inner.args(["-c", script]);
    with_syslog_capture_after(&first.join("\n"), &inner)
}

/// Runs any command with `/dev/log` replaced, inside a private mount namespace, by a
/// socket this test reads; the host's `/dev` is untouched. Root only (it mounts).
pub fn with_syslog_capture(inner: &Command) -> (Output, Vec<String>) {
    with_syslog_capture_after("", inner)
}

/// [`with_syslog_capture`], with the shell commands `first` run in the private mount
/// namespace (`$1`: a private directory of this capture) before `/dev` is replaced
/// there: for a set-up that needs the host's devices, such as a FUSE daemon opening
/// `/dev/fuse`.
pub fn with_syslog_capture_after(first: &str, inner: &Command) -> (Output, Vec<String>) {
    with_syslog_capture_within(first, inner, FROZEN_CLOCK_LIMIT)
}

/// [`with_syslog_capture_after`] with `limit` for a run with a frozen clock
/// ([`output_bounded`]): past it, the panic says why, with the lines logged until then.
fn with_syslog_capture_within(
    first: &str,
    inner: &Command,
    limit: Duration,
) -> (Output, Vec<String>) {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::Builder::new()
        .prefix("pam_totp-syslog")
        .tempdir()
        .expect("tempdir");
    let sock_path = dir.path().join("log.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind syslog socket");
    // Writable by all, as a real /dev/log is: the module logs some failures while its
    // fsuid is the user's, and a root-only socket would lose exactly those lines.
    fs::set_permissions(&sock_path, fs::Permissions::from_mode(0o666)).expect("chmod socket");
    const SETUP: &str = r#"t="$1"
mkdir "$t/dev"
mount -t tmpfs -o mode=755 none "$t/dev"
for n in null zero urandom random full tty; do
  touch "$t/dev/$n"; mount --bind "/dev/$n" "$t/dev/$n"
done
touch "$t/dev/log"; mount --bind "$t/log.sock" "$t/dev/log"
mkdir "$t/dev/shm"; mount -t tmpfs -o mode=1777 none "$t/dev/shm"
mount --rbind "$t/dev" /dev"#;
    let mut cmd = in_private_mounts(&format!("{first}\n{SETUP}"), dir.path(), inner);
    // Read while the child runs: a full datagram queue would block its syslog() call.
    sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .expect("timeout");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = vec![0u8; 8192];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(_) if done.load(std::sync::atomic::Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
            lines
        })
    };
    let out = output_bounded(&mut cmd, limit);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let lines = reader.join().expect("syslog reader");
    match out {
        Ok(out) => (out, lines),
        Err(hang) => panic!("{hang}; logged until then: {lines:?}"),
    }
}

/// `inner` in a private mount namespace, run by a shell once `setup` (with `$1` = `arg`)
/// has mounted there what the run needs; the host's mounts are untouched. Root only.
pub fn in_private_mounts(setup: &str, arg: &Path, inner: &Command) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("set -e\n{setup}\nshift\nexec \"$@\""))
        .arg("sh")
        .arg(arg)
        // The inner command's environment is applied by `env` right before the final
        // exec, not to unshare and sh: a process started with libfaketime preloaded that
        // then execs another program leaves libfaketime's per-process shared memory
        // behind.
        .arg("env");
    append_env_exec(&mut cmd, inner);
    cmd.stdin(Stdio::null());
    cmd
}

/// The message part of a syslog datagram (after `ident[pid]: ` or `ident: `).
pub fn syslog_message(datagram: &str) -> &str {
    datagram
        .split_once("): ")
        .map(|(_, m)| m)
        .unwrap_or(datagram)
}

/// Appends `inner` to an outer command that ends in `env`: its environment as `KEY=VALUE`
/// arguments, then its program and arguments. Wrappers (unshare, sh) that exec `env` last
/// apply the inner environment only to the final program.
pub fn append_env_exec(outer: &mut Command, inner: &Command) {
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            let mut kv = k.to_os_string();
            kv.push("=");
            kv.push(v);
            outer.arg(kv);
        }
    }
    outer.arg(inner.get_program()).args(inner.get_args());
}

/// The module built with the test-only cargo `feature` (see `pam_totp/Cargo.toml`), in
/// its own target directory so that it never replaces the real one.
pub fn module_with_feature(feature: &str) -> PathBuf {
    let target = workspace().join(format!("target/{feature}-build"));
    let out = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "pam_totp", "--features", feature])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cargo build --features {feature}: {e}"));
    assert!(
        out.status.success(),
        "{feature} build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug/libpam_totp.so")
}

impl Stack {
    /// [`Stack::probe`] around another build of the module (`so`), with this stack's
    /// own state directory as `@MODULE@` gives the real one.
    pub fn probe_module(service: &str, so: &Path, args: &str) -> Stack {
        let s = Stack::new();
        s.service(
            service,
            &format!(
                "auth [success=2 ignore=ignore default=die] {so} state_dir={state} {args}\n\
                 auth required pam_echo.so pam_totp-returned-ignore\n\
                 auth [success=done default=die] pam_permit.so\n\
                 auth required pam_echo.so pam_totp-returned-success\n",
                so = so.display(),
                state = s.state_dir().display()
            ),
        );
        s
    }
}

/// The release build of the module (`cargo build --release`, the build installed), for
/// tests that check the installed form too.
pub fn release_module() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-q", "--release", "-p", "pam_totp"])
        .current_dir(workspace())
        .output()
        .expect("cargo build --release");
    assert!(
        out.status.success(),
        "release build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir().join("release/libpam_totp.so")
}

/// Shell lines for a private mount namespace ([`in_private_mounts`],
/// [`with_syslog_capture_after`]; `$1` a scratch directory of the run) after which
/// `/var/lib/nfs` is a tmpfs of that namespace holding `etab` bind-mounted as `etab`, the
/// NFS server's export table, or no table at all (`None`). Where the machine has no
/// `/var/lib/nfs`, `/var/lib` is first rebuilt on a tmpfs of the namespace, its entries
/// bound back, so that the directory can be made without touching the host's.
pub fn nfs_etab_in_namespace(etab: Option<&Path>) -> String {
    let mut s = String::from(
        r#"if [ ! -d /var/lib/nfs ]; then
  v=$(mktemp -d "$1/varlib.XXXXXX")
  mount --rbind /var/lib "$v"
  mount -t tmpfs -o mode=755 none /var/lib
  for e in "$v"/* "$v"/.[!.]*; do
    n=${e##*/}
    if [ -L "$e" ]; then cp -P "$e" "/var/lib/$n"
    elif [ -d "$e" ]; then mkdir "/var/lib/$n"; mount --rbind "$e" "/var/lib/$n"
    elif [ -e "$e" ]; then touch "/var/lib/$n"; mount --bind "$e" "/var/lib/$n"
    fi
  done
  mkdir /var/lib/nfs
fi
mount -t tmpfs -o mode=755 none /var/lib/nfs
"#,
    );
    if let Some(etab) = etab {
        s.push_str(&format!(
            "touch /var/lib/nfs/etab\nmount --bind '{}' /var/lib/nfs/etab\n",
            etab.to_str().expect("a UTF-8 path")
        ));
    }
    s
}

/// How long a run may take before a test calls it hung: a guard against a hang, far
/// above any wait a login is allowed (it bounds nothing the tests claim).
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// `f` on a thread of its own, its value once it returns; panics as "hung" when it has
/// not returned within [`HANG_GUARD`] (`what` names the run).
pub fn within_hang_guard<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(v) => v,
        Err(_) => panic!("{what}: hung (no end within {HANG_GUARD:?})"),
    }
}

/// The holder of a `flock` on inode `ino` seen from the holder's side: true when one of
/// `pid`'s open descriptors carries that lock (its `/proc/PID/fdinfo` `lock:` line).
/// `/proc/locks` names the process that took a flock, which may have exited since (a
/// `flock 9` helper whose shell keeps the descriptor), so it cannot say who holds it now.
pub fn holds_flock(pid: u32, ino: u64) -> bool {
    let suffix = format!(":{ino}");
    fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                fs::read_to_string(e.path()).is_ok_and(|info| {
                    info.lines()
                        .filter_map(|l| l.strip_prefix("lock:"))
                        .any(|l| {
                            let f: Vec<&str> = l.split_whitespace().collect();
                            f.get(1) == Some(&"FLOCK")
                                && f.get(3) == Some(&"WRITE")
                                && f.get(5).is_some_and(|dev_ino| dev_ino.ends_with(&suffix))
                        })
                })
            })
        })
        .unwrap_or(false)
}

/// A tmpfs mounted on the host for the length of a test (unmounted on drop).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn new(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-tmpfs")
            .tempdir_in(private_tmp())
            .expect("tempdir");
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs");
        Tmpfs { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Fills the file system until ENOSPC and shows that it is full: not one more
    /// block can be written (a test of a full disk must not pass on a disk with room).
    pub fn fill(&self) {
        // dd fails when the file system is full, which is the point.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", self.path().join("fill").display()))
            .stderr(Stdio::null())
            .status();
        let probe = self.path().join("probe");
        let wrote = fs::write(&probe, [0u8; 4096]);
        let _ = fs::remove_file(&probe);
        assert_eq!(
            wrote.map_err(|e| e.raw_os_error()),
            Err(Some(libc::ENOSPC)),
            "the file system is full"
        );
    }
    pub fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.path())
            .status()
            .expect("remount");
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The NSS entry a login hands the secret command for `name`, with a uid no account of
/// this host has (so no runner is the user's own account).
pub fn command_user(name: &str) -> totp_os::nss::Passwd {
    totp_os::nss::Passwd {
        name: name.to_owned(),
        uid: 3_999_999_001,
        gid: 3_999_999_001,
        dir: PathBuf::from("/nonexistent"),
    }
}

#[cfg(test)]
mod report_tests {
    use super::Drive;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{ExitStatus, Output};

    fn output(wait_status: i32, stdout: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(wait_status),
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"boom".to_vec(),
        }
    }

    const DENIED: &str = "result PAM_AUTH_ERR\nprompts 1\n";

    #[test]
    fn a_normal_run_is_read() {
        // Exit status 7 (PAM_AUTH_ERR) in a wait status: the code in the second byte.
        let d = Drive::parse(&output(7 << 8, DENIED));
        assert_eq!((d.result.as_str(), d.prompts), ("PAM_AUTH_ERR", 1));
    }

    #[test]
    #[should_panic(expected = "did not end normally")]
    fn a_killed_run_is_no_denial() {
        Drive::parse(&output(libc::SIGKILL, ""));
    }

    #[test]
    #[should_panic(expected = "did not end normally")]
    fn a_run_without_a_result_is_no_denial() {
        Drive::parse(&output(0, "prompts 1\n"));
    }

    #[test]
    #[should_panic(expected = "did not end normally")]
    fn two_results_are_no_report() {
        Drive::parse(&output(0, &format!("{DENIED}result PAM_SUCCESS\n")));
    }

    #[test]
    fn a_run_expected_to_die_gives_its_signal() {
        assert_eq!(Drive::died(&output(libc::SIGTERM, "")), libc::SIGTERM);
    }

    #[test]
    #[should_panic(expected = "a verdict left")]
    fn a_verdict_from_a_run_expected_to_die_fails() {
        Drive::died(&output(libc::SIGTERM, DENIED));
    }

    #[test]
    #[should_panic(expected = "exited instead of dying")]
    fn a_run_expected_to_die_that_exits_fails() {
        Drive::died(&output(0, ""));
    }

    /// A tag one test used is refused to another test of the binary (its user would be
    /// deleted under the first); control: the same test may create it again.
    #[test]
    fn a_tag_is_claimed_by_the_first_test_that_uses_it() {
        let in_test = |test: &str| {
            std::thread::Builder::new()
                .name(test.to_owned())
                .spawn(|| super::claim_tag("zzclaim"))
                .expect("spawn")
                .join()
        };
        assert!(in_test("first_test").is_ok());
        assert!(in_test("first_test").is_ok(), "the same test again");
        assert!(in_test("second_test").is_err(), "another test");
    }
}
