//! The secret command (`secret_command=`, rule R32): a program the admin names that
//! prints a user's google-authenticator-format secret file, modelled on OpenSSH's
//! `AuthorizedKeysCommand`.
//!
//! Before it runs, the program and every directory above it must be root-owned and not
//! group/other writable ([`check_root_controlled`]), and so must every interpreter its
//! `#!` line leads to (`check_interpreters`: root's symlinks and hard links allowed). It
//! runs as a named unprivileged user (real, effective and saved uid and gid of that user,
//! no supplementary groups, switched in the child by `drop_identity` whatever the host's
//! real uid), in a session and process group of its own (no controlling terminal), in
//! `/`, with an empty environment apart from a fixed `PATH`, stdin and stderr on
//! `/dev/null`, no other descriptor of the host (R33: all above 2 are closed at the
//! exec), SIGCHLD at its default whatever the host set (restored once the command is
//! reaped), no signal blocked or ignored (the host thread's mask and ignored signals are
//! not inherited), and the canonical user name as its only argument. Its output is read
//! up to the 64 KiB secret-file cap; past the time limit, or past the cap, the whole
//! process group is killed. Only exit status [`NOT_ENROLLED_EXIT_STATUS`] with empty
//! output means "this user has no secret"; every other failure is an error, so the
//! module denies.
//!
//! [`run_bounded`] is the same runner for other programs: `totp-state audit` runs
//! `getent passwd` through it, as root, with a larger output cap, and the shared stores'
//! host names are resolved with `getent ahosts` through it (`crate::resolve`).

use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, killpg, sigaction};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use totp_core::fleet::NOT_ENROLLED_EXIT_STATUS;
use totp_core::gafile::GaFileError;
use zeroize::Zeroizing;

use crate::nss::{self, Passwd};

mod env_line;
use crate::safefile::{
    DEFAULT_MAX_SIZE, FileError, check_root_controlled, check_root_controlled_interpreter,
};

/// Largest program accepted by the ownership check (it is not read, only stat'ed).
const MAX_PROGRAM_SIZE: usize = 256 << 20;
/// The only environment the command gets.
const COMMAND_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// `getent` by its absolute path, checked like any program run here: a `PATH` left by
/// the caller (`sudo -E`, a cron job) must not choose the program whose answer is
/// trusted (the accounts `totp-state audit` checks, the addresses a store is reached at).
pub const GETENT: &str = "/usr/bin/getent";
/// How often the exit status is polled once the output is closed.
const REAP_PAUSE: Duration = Duration::from_millis(2);

/// What the command said about the user.
pub enum SecretOutput {
    /// The secret file's bytes (wiped on drop).
    Secret(Zeroizing<Vec<u8>>),
    /// Exit status [`NOT_ENROLLED_EXIT_STATUS`] with empty output.
    NotEnrolled,
}

impl fmt::Debug for SecretOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(b) => write!(f, "Secret(<{} bytes>)", b.len()),
            Self::NotEnrolled => f.write_str("NotEnrolled"),
        }
    }
}

/// Why the command gave no usable answer. Never carries its output.
#[derive(Debug)]
pub enum CommandError {
    /// The program or a directory above it could be changed by someone other than root.
    Untrusted(FileError),
    /// The interpreter a `#!` line names (of the program, or of an interpreter that is a
    /// script itself) could be changed by someone other than root: it runs the script,
    /// so it decides the answer as much as the program does.
    UntrustedInterpreter(String, FileError),
    /// The program, or an interpreter its `#!` line leads to, could not be read to find
    /// its own interpreter (a host that is not root): what it names is unknown.
    Unreadable(String, io::Error),
    /// A `#!/usr/bin/env …` line whose program cannot be told for certain.
    EnvUnclear(String, String),
    /// `secret_command_user=` names nobody, or root.
    BadRunAsUser(String),
    /// `secret_command_user=` is the very account logging in (its uid): that account's
    /// own processes may trace the command and change the secret it prints.
    RunsAsTheUser {
        runner: String,
        uid: u32,
    },
    /// The command's exit status was taken by another thread of the host, one that waits
    /// for every child (`waitpid(-1)`): `ECHILD` where the command was still unreaped.
    StatusTaken,
    Spawn(io::Error),
    /// `close_range(2)` is refused in this process, so the command cannot be started
    /// without the host's descriptors (R33).
    NoCloseRange(io::Error),
    /// The program's `#!` line names an interpreter that does not exist (the kernel
    /// reports that as the program missing, which misleads).
    NoInterpreter(String),
    /// The kernel refused to execute the program for `secret_command_user=`.
    NotExecutable(&'static str),
    /// The interpreter its `#!` line names is on a file system mounted `noexec`.
    InterpreterNoexec(String),
    /// After the switch to `secret_command_user=` the child still had supplementary
    /// groups or could become root again, so the command was not started.
    IdentityKept,
    Read(io::Error),
    TimedOut,
    /// The command itself exited with this status, but something it started kept its
    /// standard output open until the time limit.
    OutputHeldOpen(std::process::ExitStatus),
    TooLarge,
    /// Exit status 0 and nothing printed.
    EmptyOutput,
    /// The not-enrolled status, but with output: ambiguous, so refused.
    NotEnrolledWithOutput,
    /// Exit status 127 from a script whose `#!` line ends in a carriage return: `env`
    /// looked for a program whose name ends in it.
    CrlfEnvLine,
    Exited(i32),
    Killed(i32),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Untrusted(e) => write!(f, "secret command not trusted: {e}"),
            Self::UntrustedInterpreter(i, e) => write!(
                f,
                "secret command not trusted: the interpreter its #! line names ({i}): {e}; it and every directory above it must be owned by root and not writable by group or others"
            ),
            Self::Unreadable(p, e) => write!(
                f,
                "secret command not trusted: {p} cannot be read here ({e}), so the interpreter its #! line names cannot be checked; make it readable (mode 0755)"
            ),
            Self::EnvUnclear(line, why) => write!(
                f,
                "secret command not trusted: which program its #! line ({line}) makes env run cannot be told ({why}); name the interpreter by its full path"
            ),
            Self::BadRunAsUser(m) => write!(f, "secret_command_user: {m}"),
            Self::RunsAsTheUser { runner, uid } => write!(
                f,
                "secret command not started: secret_command_user={} is the account logging in (uid {uid}), whose own processes could trace the command and change the secret it prints; name a system account of its own that nobody logs in as",
                runner.escape_debug()
            ),
            Self::StatusTaken => f.write_str(
                "secret command's exit status was taken by another thread of the host application, which waits for every child (waitpid(-1)): the answer cannot be trusted without it; the host must wait only for its own children",
            ),
            Self::Spawn(e) => write!(f, "secret command could not start: {e}"),
            Self::NoCloseRange(e) => write!(
                f,
                "secret command not started: close_range(2) is refused here ({e}): a \
                 seccomp filter (an older container runtime's default profile) or a kernel \
                 before 5.11, and without it the command would inherit the host's \
                 descriptors"
            ),
            Self::NoInterpreter(i) => write!(
                f,
                "secret command could not start: the interpreter its #! line names ({i}) does not exist; install it or fix the #! line"
            ),
            Self::NotExecutable(why) => write!(f, "secret command could not start: {why}"),
            Self::InterpreterNoexec(i) => write!(
                f,
                "secret command could not start: the interpreter its #! line names ({i}) is on a file system mounted noexec; put it on one that is not"
            ),
            Self::IdentityKept => f.write_str(
                "secret command not started: after switching to secret_command_user it \
                 still had supplementary groups or could become root again (capabilities \
                 the host keeps across a uid change)",
            ),
            Self::Read(e) => write!(f, "reading the secret command's output: {e}"),
            Self::TimedOut => {
                f.write_str("secret command timed out and was killed (secret_command_timeout=)")
            }
            Self::OutputHeldOpen(status) => write!(
                f,
                "secret command exited ({}) but a process it started in the background kept its standard output open until the time limit; all were killed; send that process's output to /dev/null",
                describe_status(*status)
            ),
            Self::TooLarge => write!(
                f,
                "secret command printed more than {DEFAULT_MAX_SIZE} bytes and was killed"
            ),
            Self::EmptyOutput => f.write_str("secret command succeeded but printed nothing"),
            Self::NotEnrolledWithOutput => f.write_str(
                "secret command exited with the not-enrolled status but printed something",
            ),
            Self::CrlfEnvLine => f.write_str(
                "secret command exited with status 127: its #! line ends with a carriage return (the script was saved with CRLF line ends), so the program it names was looked for with \\r at the end of its name; convert it with dos2unix",
            ),
            Self::Exited(c @ 127) => write!(
                f,
                "secret command exited with status {c} (a program it runs was not found: its PATH is only {COMMAND_PATH}; name programs elsewhere by their full path)"
            ),
            Self::Exited(c @ 126) => write!(
                f,
                "secret command exited with status {c} (a program it runs could not be executed by secret_command_user)"
            ),
            Self::Exited(c) => write!(f, "secret command exited with status {c}"),
            Self::Killed(s @ 9) => write!(
                f,
                "secret command killed by signal {s} (SIGKILL: the kernel's OOM killer, a cgroup limit, or someone with kill)"
            ),
            Self::Killed(s) => write!(f, "secret command killed by signal {s}"),
        }
    }
}

impl std::error::Error for CommandError {}

fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// Turns a failed exec into the cause an admin can act on. The program itself was just
/// checked, so ENOENT means its interpreter is missing; EACCES is a `noexec` mount or
/// an execute bit `secret_command_user=` lacks.
fn spawn_error(program: &Path, e: io::Error) -> CommandError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => match interpreter_of(program) {
            Some(i) if !Path::new(&i).exists() => CommandError::NoInterpreter(i),
            _ => CommandError::Spawn(e),
        },
        Some(IDENTITY_KEPT) => CommandError::IdentityKept,
        Some(libc::EACCES) => {
            let noexec = |p: &Path| {
                rustix::fs::statvfs(p)
                    .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC))
            };
            if noexec(program) {
                return CommandError::NotExecutable(
                    "its file system is mounted noexec; put it on one that is not",
                );
            }
            // The kernel refuses an interpreter on a noexec mount with the same EACCES.
            match interpreter_path(program) {
                Some(i) if noexec(&Path::new("/").join(&i)) => {
                    CommandError::InterpreterNoexec(shown_interpreter(&i))
                }
                _ => CommandError::NotExecutable(
                    "permission denied: it (and a #! interpreter) must be executable by secret_command_user (mode 0755)",
                ),
            }
        }
        _ => CommandError::Spawn(e),
    }
}

/// The interpreter of a `#!` line as an admin reads it.
fn interpreter_of(program: &Path) -> Option<String> {
    interpreter_path(program).map(|p| shown_interpreter(&p))
}

/// A script saved with CRLF line ends names "/bin/sh\r": escaped, the \r shows.
fn shown_interpreter(path: &Path) -> String {
    path.to_string_lossy().escape_debug().to_string()
}

/// Whether the program's `#!` line ends in a carriage return (CRLF line ends).
fn crlf_line(program: &Path) -> bool {
    read_head(program).is_ok_and(|head| {
        head.starts_with(b"#!")
            && head
                .split(|&b| b == b'\n')
                .next()
                .is_some_and(|line| line.ends_with(b"\r"))
    })
}

/// The interpreter path of a `#!` line, from the first 256 bytes of the program, as the
/// kernel reads it (root reads a root-owned file; nothing else of it is looked at).
fn interpreter_path(program: &Path) -> Option<PathBuf> {
    shebang(&read_head(program).ok()?).map(|(path, _)| path)
}

/// The first bytes of a file, as many as the kernel reads for a `#!` line
/// (`BINPRM_BUF_SIZE`).
fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; 256];
    let n = crate::safefile::read_at_most(&std::fs::File::open(path)?, &mut head, 0)?;
    head.truncate(n);
    Ok(head)
}

/// A `#!` line's interpreter and its one optional argument, as the kernel splits it:
/// blanks before the interpreter skipped, the argument everything after the blanks that
/// follow it, up to the end of the line (or of the 255 bytes read) or a NUL, trailing
/// blanks cut.
fn shebang(head: &[u8]) -> Option<(PathBuf, Option<Vec<u8>>)> {
    let line = head.get(..head.len().min(255))?.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b))?;
    let line = &line[start..];
    let end = line
        .iter()
        .position(|b| blank(b) || *b == 0)
        .unwrap_or(line.len());
    let name = &line[..end];
    let rest = &line[end..];
    let rest = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
    let arg = rest
        .iter()
        .position(|b| !blank(b))
        .map(|s| {
            let a = &rest[s..];
            let e = a.iter().rposition(|b| !blank(b)).map_or(0, |e| e + 1);
            a[..e].to_vec()
        })
        .filter(|a| !a.is_empty());
    Some((PathBuf::from(std::ffi::OsStr::from_bytes(name)), arg))
}

/// The shell glibc's `execvp` runs a file with when the kernel cannot execute it.
const FALLBACK_SHELL: &str = "/bin/sh";

/// How many interpreters the kernel follows from one exec: its loop over binary
/// handlers runs at depths 0 to 5, the program and five interpreters (four scripts and
/// the binary the last names); a sixth fails the exec (ELOOP). Four, as here before,
/// left the fifth unchecked, and it ran.
const MAX_INTERPRETERS: usize = 5;

/// How many programs one check follows, `env` starting a new chain included.
const MAX_HOPS: usize = 16;

/// Every interpreter the program's `#!` line leads to, checked as the program is: a
/// script's answer is whatever its interpreter makes of it, so a `#!/opt/tools/python`
/// that a deploy account can replace would hand that account every user's secret.
/// `#!/usr/bin/env NAME` checks `env`, then NAME where `env` finds it
/// ([`env_program`]). A program that cannot be read here (a host that is not root) is
/// refused: its `#!` line is unknown.
fn check_interpreters(program: &Path, runner: Option<&Passwd>) -> Result<(), CommandError> {
    let mut script = program.to_path_buf();
    let mut depth = 0;
    for _ in 0..MAX_HOPS {
        let head = read_head(&script)
            .map_err(|e| CommandError::Unreadable(shown_interpreter(&script), e))?;
        let (named, arg) = match shebang(&head) {
            Some(line) => line,
            // The kernel runs it itself.
            None if head.starts_with(b"\x7fELF") => return Ok(()),
            // A file the kernel cannot execute (ENOEXEC) is run by the standard
            // library's execvp with /bin/sh, which then decides the answer.
            None => (PathBuf::from(FALLBACK_SHELL), None),
        };
        depth += 1;
        if depth > MAX_INTERPRETERS {
            // The kernel refuses the exec (ELOOP).
            return Ok(());
        }
        let fallback = named.as_os_str() == FALLBACK_SHELL;
        // The kernel opens a relative interpreter from the working directory: `/`.
        let interpreter = Path::new("/").join(&named);
        let resolved = match check_root_controlled_interpreter(&interpreter, MAX_PROGRAM_SIZE) {
            Ok(_) if fallback => return Ok(()),
            Ok(resolved) => resolved,
            Err(FileError::NotFound | FileError::MissingDirectory { .. }) => {
                return Err(CommandError::NoInterpreter(shown_interpreter(&named)));
            }
            Err(e) => {
                return Err(CommandError::UntrustedInterpreter(
                    shown_interpreter(&named),
                    e,
                ));
            }
        };
        let is_env = |p: &Path| p.file_name().is_some_and(|n| n == "env");
        if !(is_env(&named) || is_env(&resolved)) {
            script = resolved;
            continue;
        }
        // `env` execs the program afresh: the kernel's count starts again.
        match env_program(&named, arg.as_deref(), &script, runner)? {
            Some(next) => {
                script = next;
                depth = 0;
            }
            None => return Ok(()),
        }
    }
    Err(CommandError::EnvUnclear(
        shown_interpreter(program),
        format!("more than {MAX_HOPS} programs in a row"),
    ))
}

/// The program a `#!ENV ARG` line makes `env` run, checked like an interpreter: the
/// first file of that name on env's `PATH` that `secret_command_user=` may execute,
/// every one before it that exists checked too (deny when any could be changed by
/// someone other than root). `None`: none exists (the command then exits 127, whose
/// message names the `PATH`), or `env` runs nothing.
fn env_program(
    env: &Path,
    arg: Option<&[u8]>,
    script: &Path,
    runner: Option<&Passwd>,
) -> Result<Option<PathBuf>, CommandError> {
    let line = || {
        let mut l = env.as_os_str().as_bytes().to_vec();
        if let Some(a) = arg {
            l.push(b' ');
            l.extend_from_slice(a);
        }
        format!("#!{}", String::from_utf8_lossy(&l).escape_debug())
    };
    let run = match env_line::env_run(arg, script, COMMAND_PATH) {
        Ok(Some(run)) => run,
        Ok(None) => return Ok(None),
        Err(why) => return Err(CommandError::EnvUnclear(line(), why)),
    };
    for candidate in run.candidates() {
        match check_root_controlled_interpreter(&candidate, MAX_PROGRAM_SIZE) {
            Ok(resolved) if executable_by(&resolved, runner) => return Ok(Some(resolved)),
            Ok(_) | Err(FileError::NotFound | FileError::MissingDirectory { .. }) => {}
            Err(e) => {
                return Err(CommandError::UntrustedInterpreter(
                    format!("{}, which {} runs", shown_interpreter(&candidate), line()),
                    e,
                ));
            }
        }
    }
    Ok(None)
}

/// Whether `execve` as the runner (its uid and gid, no other group) would run the
/// root-owned regular file at `path`; as root (no runner), any execute bit.
fn executable_by(path: &Path, runner: Option<&Passwd>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(path) else {
        return false;
    };
    if !md.is_file() {
        return false;
    }
    let bits = match runner {
        None => 0o111,
        Some(r) if r.uid == md.uid() => 0o100,
        Some(r) if r.gid == md.gid() => 0o010,
        Some(_) => 0o001,
    };
    md.mode() & bits != 0
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: async-signal-safe, a raw system call.
fn cloexec_range(first: libc::c_uint) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes three integers and touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A session and process group of the command's own (`setsid`), its id the child's pid.
/// A process group alone left the command in the host's session: under su, sudo or a
/// console login it kept the user's terminal as its controlling terminal, and anything
/// it started could move itself into another group of that session (the host's own, the
/// terminal's foreground group), out of reach of the kill at the bounds, and read the
/// terminal the next prompt is typed on. A session leader cannot change its group, and
/// nothing in a new session can join a group of another.
fn own_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and is async-signal-safe.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every descriptor above 2 close-on-exec (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`):
/// they are gone in the command, while the standard library's own exec-status pipe keeps
/// working until the exec. A kernel without it (before 5.11) fails the spawn: the login
/// is denied rather than the command run with the host's descriptors. Descriptors 0, 1
/// and 2 are made to survive the exec.
fn close_inherited_descriptors() -> io::Result<()> {
    cloexec_range(3)?;
    // A host that closed 0, 1 or 2 (a daemon that never reopened them) gives the
    // command's /dev/null or pipe that very number in the parent, opened close-on-exec;
    // the standard library's dup2 onto the same number is then a no-op that keeps the
    // flag, so the command would start with that stream closed and its first open file
    // in its place. Here 0, 1 and 2 are already what the command must get.
    for fd in 0..=2 {
        // SAFETY: F_SETFD on an integer descriptor touches no memory and is
        // async-signal-safe.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An empty signal mask and no ignored signal in the command. The forked child has the
/// mask of the host thread that called the module, and ignored signals survive an exec:
/// a threaded daemon typically blocks every signal in its workers (one thread takes
/// them with sigwait), and the command then started with SIGCHLD blocked, so a script's
/// own `wait` for a child of its own never returned and every login ran into the time
/// limit and was denied. Handlers need nothing: the exec resets them.
fn default_signals() -> io::Result<()> {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `empty` is a valid sigset_t; sigprocmask only reads it.
    let rc = unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // glibc refuses the two signals it keeps for itself (32 and 33) with EINVAL; they are
    // left as they are.
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction is a valid "default, no flags, empty mask" action.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `act`.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut act) } == 0
            && act.sa_sigaction == libc::SIG_IGN
        {
            act.sa_sigaction = libc::SIG_DFL;
            // SAFETY: installs the default action; no handler code runs.
            unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) };
        }
    }
    Ok(())
}

// On these 32-bit ABIs the plain numbers are the legacy 16-bit-id calls; glibc uses the
// 32-bit variants there, and so must we (an id above 65535 would be cut short).
#[cfg(any(target_arch = "x86", target_arch = "arm"))]
mod id_calls {
    pub(super) const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub(super) const GETGROUPS: libc::c_long = libc::SYS_getgroups32;
    pub(super) const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub(super) const SETRESUID: libc::c_long = libc::SYS_setresuid32;
}
#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
mod id_calls {
    pub(super) const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub(super) const GETGROUPS: libc::c_long = libc::SYS_getgroups;
    pub(super) const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub(super) const SETRESUID: libc::c_long = libc::SYS_setresuid;
}

/// The errno [`drop_identity`] reports when the switch could be undone or left
/// supplementary groups: no system call on this path returns it, so the parent can name
/// the cause.
const IDENTITY_KEPT: i32 = libc::ENOTRECOVERABLE;

/// A raw system call's result as an `io::Result` (no allocation: an OS error is a number).
fn sys_result(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Makes the forked child `uid`/`gid` for good (R32): no supplementary groups, then
/// real, effective and saved gid, then the same for the uid, each checked; group changes
/// first, as they need the privilege the uid change gives up. Raw system calls, which
/// are async-signal-safe; glibc's wrappers also coordinate every thread of the process,
/// which a forked child must not rely on.
///
/// Not `Command::uid`/`gid`: how the standard library treats the supplementary groups
/// depends on its version. Older ones cleared them only when the real uid was 0, and a
/// setuid-root host (su, pkexec, polkit's agent helper) has the caller's real uid, so
/// the command kept the caller's groups (docker, disk, adm); current ones ignore a
/// refused `setgroups`, so a host without `CAP_SETGID` that already has the runner's gid
/// starts it with its own groups. An empty list that cannot be set (also a user
/// namespace where setgroups is denied) is accepted only when the child has no
/// supplementary group anyway.
///
/// Then it checks the switch holds: no group left, and going back to root refused (a
/// host that keeps its capabilities across a uid change, through securebits, could).
fn drop_identity(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    let (uid, gid) = (libc::c_long::from(uid), libc::c_long::from(gid));
    let no_groups: *const libc::gid_t = std::ptr::null();
    // SAFETY: raw credential system calls on integers and an empty (null, length 0)
    // list, which the kernel does not read; they change this, the child's only, thread.
    unsafe {
        if let Err(e) = sys_result(libc::syscall(
            id_calls::SETGROUPS,
            0 as libc::c_long,
            no_groups,
        )) && sys_result(libc::syscall(
            id_calls::GETGROUPS,
            0 as libc::c_long,
            no_groups,
        ))? != 0
        {
            return Err(e);
        }
        sys_result(libc::syscall(id_calls::SETRESGID, gid, gid, gid))?;
        sys_result(libc::syscall(id_calls::SETRESUID, uid, uid, uid))?;
        let groups_left = sys_result(libc::syscall(
            id_calls::GETGROUPS,
            0 as libc::c_long,
            no_groups,
        ))?;
        let root_again = libc::syscall(
            id_calls::SETRESUID,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        ) == 0;
        if groups_left != 0 || root_again {
            return Err(io::Error::from_raw_os_error(IDENTITY_KEPT));
        }
    }
    Ok(())
}

/// What `secret_command=` said about a user, checked as a login checks it.
pub enum CommandSecret {
    /// A secret file (checked: scratch codes and HOTP only with a shared store).
    File(totp_core::gafile::GaFile),
    /// The documented "not enrolled" answer.
    NotEnrolled,
}

/// Runs the secret command of `opts` for the canonical user name, parses and checks its
/// file: the one path for the module and the admin tools, so `totp-enroll check` never
/// disagrees with a login. `Ok(None)`: no command is configured. `Err`: why its answer
/// cannot be used (the login is denied); never carries the output.
pub fn secret_from_command(
    opts: &totp_core::options::ModuleOptions,
    user: &Passwd,
) -> Result<Option<CommandSecret>, String> {
    let Some(cmd) = opts.fleet.secret_command() else {
        return Ok(None);
    };
    let out = run_secret_command(
        Path::new(&cmd.path),
        &cmd.user,
        user,
        Duration::from_millis(cmd.timeout_ms),
    )
    .map_err(|e| match e {
        // The check's own message names neither the program nor the rule it applies,
        // and a missing program is no question of trust.
        CommandError::Untrusted(FileError::NotFound | FileError::MissingDirectory { .. }) => {
            format!("secret command {} does not exist", cmd.path.escape_debug())
        }
        CommandError::Untrusted(FileError::Os {
            op: "open",
            errno: libc::EACCES,
        }) => format!(
            "secret command {} cannot be read here (a host without CAP_DAC_OVERRIDE), so it cannot be checked, nor the interpreter its #! line names; make it readable (mode 0755)",
            cmd.path.escape_debug()
        ),
        CommandError::Untrusted(f) => format!(
            "secret command {} not trusted: {f}; the program and every directory above it must be owned by root and not writable by group or others",
            cmd.path.escape_debug()
        ),
        other => other.to_string(),
    })?;
    match out {
        SecretOutput::NotEnrolled => Ok(Some(CommandSecret::NotEnrolled)),
        SecretOutput::Secret(bytes) => {
            let file = totp_core::gafile::GaFile::parse(&bytes).map_err(|e| match e {
                // A CLI's warning or banner on stdout lands before the secret.
                GaFileError::BadSecret { .. } => format!(
                    "secret command output is not a secret file: {e}; the secret must be its first line (a message the command prints belongs on stderr)"
                ),
                _ => format!("secret command output is not a secret file: {e}"),
            })?;
            totp_core::fleet::check_command_file(&file, opts.state.is_shared())
                .map_err(|e| e.to_string())?;
            Ok(Some(CommandSecret::File(file)))
        }
    }
}

/// Runs `program` as `run_as` for `user` (the login's NSS entry: its canonical name is
/// the argument, its uid what the runner must not be) and returns its verdict within
/// `limit` (the whole process group is killed past it).
pub fn run_secret_command(
    program: &Path,
    run_as: &str,
    user: &Passwd,
    limit: Duration,
) -> Result<SecretOutput, CommandError> {
    let runner = run_as_user(run_as)?;
    refuse_the_users_own_account(&runner, run_as, user)?;
    let (status, output) = run_bounded(
        program,
        &[user.name.as_str()],
        Some(&runner),
        DEFAULT_MAX_SIZE,
        limit,
    )?;
    match (status.code(), output.is_empty()) {
        (Some(0), false) => Ok(SecretOutput::Secret(output)),
        (Some(0), true) => Err(CommandError::EmptyOutput),
        (Some(NOT_ENROLLED_EXIT_STATUS), true) => Ok(SecretOutput::NotEnrolled),
        (Some(NOT_ENROLLED_EXIT_STATUS), false) => Err(CommandError::NotEnrolledWithOutput),
        (Some(127), _) if crlf_line(program) => Err(CommandError::CrlfEnvLine),
        (Some(c), _) => Err(CommandError::Exited(c)),
        (None, _) => Err(CommandError::Killed(status.signal().unwrap_or(0))),
    }
}

/// R32: the command must not run as the account it answers for. Compared by uid, so a
/// second name of the same account is refused too; the uid is the one the login's own
/// lookup found, not asked again (a directory answering differently the second time,
/// or not at all, must not change the verdict).
fn refuse_the_users_own_account(
    runner: &Passwd,
    run_as: &str,
    user: &Passwd,
) -> Result<(), CommandError> {
    if user.uid == runner.uid {
        return Err(CommandError::RunsAsTheUser {
            runner: run_as.to_owned(),
            uid: user.uid,
        });
    }
    Ok(())
}

/// Runs a root-controlled `program` with `args` as the secret command is run (the
/// checks, descriptors, signals, environment and process group of the module docs
/// above) and returns its exit status and standard output, read up to `max_output`
/// bytes within `limit`; past either the whole process group is killed
/// ([`CommandError::TooLarge`], [`CommandError::TimedOut`]). `runner`: the account it
/// runs as, looked up by the caller (never root: `run_as_user`); `None` keeps the caller's identity, for an admin tool whose
/// program must see what root sees (`totp-state audit`'s `getent passwd`: a directory
/// may answer root alone), and for the host-name lookup of `crate::resolve`, which
/// runs as the host would have run getaddrinfo. The secret command always names an
/// account.
pub fn run_bounded(
    program: &Path,
    args: &[&str],
    runner: Option<&Passwd>,
    max_output: usize,
    limit: Duration,
) -> Result<(std::process::ExitStatus, Zeroizing<Vec<u8>>), CommandError> {
    let deadline = Instant::now() + limit;
    check_root_controlled(program, MAX_PROGRAM_SIZE).map_err(CommandError::Untrusted)?;
    check_interpreters(program, runner)?;
    // Asked in the parent on a range no descriptor can be in: a refusal here (a seccomp
    // filter, an old kernel) is named as such, where the child's would reach the log
    // as a bare "Operation not permitted" that reads like the program's permissions.
    cloexec_range(libc::c_uint::MAX).map_err(CommandError::NoCloseRange)?;
    // Dropped last, after the child is reaped: the host gets its SIGCHLD back only then.
    let _sigchld = DefaultSigchld::set().map_err(CommandError::Spawn)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", COMMAND_PATH)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let identity = runner.map(|r| (r.uid, r.gid));
    // R33: the host application (sshd keeps its log, pipes and monitor socket open)
    // may have left descriptors without FD_CLOEXEC; none of them may reach the command.
    // R32: the identity is switched here and not with `Command::uid`/`gid` (see
    // `drop_identity`); the closure runs after the standard library's own set-up, so
    // nothing privileged follows it but the exec.
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls (setsid, close_range, fcntl, sigprocmask, sigaction, raw
    // setgroups/setresgid/setresuid/getgroups) on its own stack; it touches no memory of
    // the parent and allocates nothing (it captures an optional pair of integers).
    unsafe {
        command.pre_exec(move || {
            own_session()?;
            close_inherited_descriptors()?;
            default_signals()?;
            match identity {
                Some((uid, gid)) => drop_identity(uid, gid),
                None => Ok(()),
            }
        });
    }
    let mut child = command.spawn().map_err(|e| spawn_error(program, e))?;
    let mut guard = KillOnDrop {
        child: &mut child,
        sweep_session: runner.is_some(),
    };
    let output = match read_until(&mut guard, deadline, max_output) {
        Err(CommandError::TimedOut) => {
            return Err(match exited(&mut guard)? {
                Some(status) => CommandError::OutputHeldOpen(status),
                None => CommandError::TimedOut,
            });
        }
        other => other?,
    };
    let status = wait_until(&mut guard, deadline)?;
    Ok((status, output))
}

/// SIGCHLD at its default while the command runs, the host's own disposition restored
/// on drop (as pam_unix does around its helper). A host that ignores SIGCHLD has every
/// child reaped by the kernel, and one whose handler reaps every child can take the
/// command's exit status first: either would deny every login. The command would also
/// inherit an ignored SIGCHLD, which breaks a script's own `wait`. While the default
/// is set, a child of the host that exits stays a zombie until the host reaps it; its
/// SIGCHLD in that window is lost, which pam_unix accepts too.
///
/// Concurrent commands in one process (threads of a host, or of a test) share one
/// saved disposition: the first sets the default and saves the host's, the last gives it
/// back, so two overlapping commands cannot save each other's default and leave the host
/// without its handler.
struct DefaultSigchld;

/// Commands running now, and the host's disposition saved by the first of them.
static HOST_SIGCHLD: std::sync::Mutex<(usize, Option<SigAction>)> =
    std::sync::Mutex::new((0, None));

impl DefaultSigchld {
    fn set() -> io::Result<DefaultSigchld> {
        let mut shared = HOST_SIGCHLD.lock().unwrap_or_else(|e| e.into_inner());
        if shared.0 == 0 {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            // SAFETY: installs the default disposition, no handler code of ours runs.
            let host = unsafe { sigaction(Signal::SIGCHLD, &default) }.map_err(io::Error::from)?;
            shared.1 = Some(host);
        }
        shared.0 += 1;
        Ok(DefaultSigchld)
    }
}

impl Drop for DefaultSigchld {
    fn drop(&mut self) {
        let mut shared = HOST_SIGCHLD.lock().unwrap_or_else(|e| e.into_inner());
        shared.0 = shared.0.saturating_sub(1);
        if shared.0 == 0
            && let Some(host) = shared.1.take()
        {
            // SAFETY: puts back exactly the action the host had installed.
            let _ = unsafe { sigaction(Signal::SIGCHLD, &host) };
        }
    }
}

fn run_as_user(name: &str) -> Result<Passwd, CommandError> {
    match nss::lookup_user_by_name(name) {
        Ok(Some(pw)) if pw.uid != 0 && pw.gid != 0 => Ok(pw),
        Ok(Some(_)) => Err(CommandError::BadRunAsUser(
            "must not be root or in group root".to_owned(),
        )),
        Ok(None) => Err(CommandError::BadRunAsUser("no such user".to_owned())),
        Err(e) => Err(CommandError::BadRunAsUser(e.to_string())),
    }
}

/// Kills the child's process group and reaps the child, on every path.
struct KillOnDrop<'a> {
    child: &'a mut Child,
    /// Whether what the command left in other process groups of its session is looked
    /// for too ([`kill_session`]): for a program the admin wrote (the secret command), not
    /// for getent, whose look through `/proc` would cost each login of a fleet store
    /// named by host name a few milliseconds on a host with many processes.
    sweep_session: bool,
}

impl KillOnDrop<'_> {
    fn kill_group(&mut self) {
        // Called only while the child is not reaped, so its pid (= the process group
        // id) cannot have been reused: the kill reaches only what the command started.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
    }
}

impl KillOnDrop<'_> {
    /// Whether the child is still ours to reap: a host thread waiting for every child
    /// (`waitpid(-1)`) may have reaped it, and then its pid, and with it the group and
    /// session id, may belong to another process by now.
    fn unreaped(&mut self) -> bool {
        !matches!(exited(self), Err(CommandError::StatusTaken))
    }
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if !self.unreaped() {
            // Whatever the command left keeps running rather than a kill by a number
            // that may name someone else's processes.
            return;
        }
        self.kill_group();
        if self.sweep_session {
            kill_session(self.child.id());
        }
        let _ = self.child.wait();
    }
}

/// How often the session is looked through: a process forking while it is looked for
/// is found by the next pass.
const SESSION_PASSES: usize = 4;

/// Kills what the command left in a process group of its own inside its session, out of
/// reach of the group kill: coreutils `timeout` moves itself and the program it runs to
/// a new group, as a script's job control does. The session id is the command's pid,
/// not reaped yet, so only what the command started can be in that session (the kernel
/// keeps a pid unused while a session or group of that id has a member). A process
/// that started a session of its own (a daemon) is beyond this.
///
/// Each process is signalled through a pidfd opened before its session is read: if it
/// ends and its pid is reused between the read and the kill, the signal goes nowhere
/// rather than to the process that reused the pid. Bounded: at most [`SESSION_PASSES`]
/// looks through the process table, a pass repeated only when it killed something.
/// Nothing is done when `/proc` is not of this process's pid namespace (its numbers
/// would not be ours).
fn kill_session(sid: u32) {
    let Ok(sid) = i32::try_from(sid) else {
        return;
    };
    if !proc_is_ours() {
        return;
    }
    for _ in 0..SESSION_PASSES {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut found = false;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == sid {
                continue;
            }
            let Some(pidfd) = pidfd_open(pid) else {
                continue;
            };
            if live_in_session(pid, sid) && pidfd_kill(&pidfd) {
                found = true;
            }
        }
        if !found {
            return;
        }
    }
}

/// Whether `/proc` shows this process under its own pid: a `/proc` of another pid
/// namespace (a host started by `unshare --pid` without a new mount) numbers every
/// process differently, and its session ids would name strangers.
fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .is_ok_and(|p| p.as_os_str().as_bytes() == std::process::id().to_string().as_bytes())
}

/// A pidfd for `pid` (`pidfd_open(2)`, Linux 5.3, older than the 5.11 `close_range`
/// the runner needs), or `None` when it has gone.
fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes two integers and touches no memory.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor, owned by nothing else.
    Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// SIGKILL to the process `pidfd` refers to, whatever now has its pid.
fn pidfd_kill(pidfd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal with a null siginfo reads no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    rc == 0
}

/// Whether `/proc/PID/stat` shows a process of session `sid` that is not yet a zombie
/// (its state and session follow the command name, which ends at the last `)`).
fn live_in_session(pid: i32, sid: i32) -> bool {
    let mut stat = [0u8; 512];
    let Ok(n) =
        std::fs::File::open(format!("/proc/{pid}/stat")).and_then(|mut f| f.read(&mut stat))
    else {
        return false;
    };
    let Some(close) = stat[..n].iter().rposition(|&b| b == b')') else {
        return false;
    };
    // After ") ": state ppid pgrp session.
    let mut fields = stat[close + 1..n]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let state = fields.next();
    let session = fields
        .nth(2)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<i32>().ok());
    session == Some(sid) && !matches!(state, Some(b"Z" | b"X"))
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Reads stdout to EOF, at most `max` + 1 bytes, before `deadline`. The buffer starts
/// at the secret-file cap and grows by doubling into a fresh buffer, the old one wiped
/// as it is dropped: a large cap costs memory only as output arrives, and no copy of a
/// secret is left in freed memory.
fn read_until(
    guard: &mut KillOnDrop<'_>,
    deadline: Instant,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, CommandError> {
    let cap = max.saturating_add(1);
    let mut buf = Zeroizing::new(vec![0u8; cap.min(DEFAULT_MAX_SIZE + 1)]);
    let mut filled = 0;
    let Some(mut out) = guard.child.stdout.take() else {
        return Err(CommandError::Read(io::Error::other("no stdout pipe")));
    };
    loop {
        let left = remaining(deadline).ok_or(CommandError::TimedOut)?;
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Err(CommandError::TimedOut),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(CommandError::Read(e.into())),
        }
        if filled == buf.len() {
            let mut bigger = Zeroizing::new(vec![0u8; buf.len().saturating_mul(2).min(cap)]);
            bigger[..filled].copy_from_slice(&buf[..filled]);
            buf = bigger;
        }
        // Readable or hung up: this read does not block.
        match out.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled >= cap {
                    return Err(CommandError::TooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CommandError::Read(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The child's exit status if it has already exited (not reaped: the guard does that).
/// A host thread that waits for every child may have taken it: that is named as such
/// ([`CommandError::StatusTaken`], as [`wait_until`] does), not as a time-out.
fn exited(guard: &mut KillOnDrop<'_>) -> Result<Option<std::process::ExitStatus>, CommandError> {
    let pid = Pid::from_raw(guard.child.id() as i32);
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        return match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::Exited(_, code)) => {
                Ok(Some(std::process::ExitStatus::from_raw((code & 0xff) << 8)))
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                Ok(Some(std::process::ExitStatus::from_raw(sig as i32)))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => Err(CommandError::StatusTaken),
            _ => Ok(None),
        };
    }
}

/// Waits for the child to exit before `deadline`, without reaping it (the guard reaps
/// it after killing whatever it left running in its process group).
fn wait_until(
    guard: &mut KillOnDrop<'_>,
    deadline: Instant,
) -> Result<std::process::ExitStatus, CommandError> {
    let pid = Pid::from_raw(guard.child.id() as i32);
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    // Also bounded by a count of pauses, in case the clock does not advance.
    let pauses = remaining(deadline).map_or(0, |d| d.as_millis() / REAP_PAUSE.as_millis() + 1);
    for _ in 0..=pauses {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(std::process::ExitStatus::from_raw((code & 0xff) << 8));
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Ok(std::process::ExitStatus::from_raw(sig as i32));
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            // Not ours to reap any more: a host thread in waitpid(-1) took it.
            Err(nix::errno::Errno::ECHILD) => return Err(CommandError::StatusTaken),
            Err(e) => return Err(CommandError::Read(e.into())),
        }
        let left = remaining(deadline).ok_or(CommandError::TimedOut)?;
        std::thread::sleep(left.min(REAP_PAUSE));
    }
    Err(CommandError::TimedOut)
}
