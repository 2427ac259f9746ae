//! The fresh-process rows: each iteration is one login in a newly exec'd `pam-bench
//! --one-login`, as sshd, login or sudo run one process per login. In the long-lived
//! benchmark process the shared-store plugins, which the module dlopens and never
//! unloads, and their TLS libraries stay mapped after the first iteration, so the
//! in-process rows count their loading once; here every login pays it.
//!
//! The child times only `pam_start_confdir` → `pam_authenticate` → `pam_end`: exec and
//! the start-up of the bench binary are not a login's cost, the dynamic loading inside
//! libpam's calls is. Before the clock starts, the child looks the user up once (every
//! login host has done so before PAM, so the NSS modules are loaded) and, in the sshd
//! variant, loads libcrypto with `RTLD_GLOBAL` (sshd links it).
//! The child inherits the parent's mount namespace: the same private `/dev/log`, `/etc`
//! and tmpfs mounts.

use std::ffi::CString;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pamapp::Scripted;

pub const ARG: &str = "--one-login";
/// sshd's libcrypto (OpenSSL 3), which the plugins' libssl needs too.
const LIBCRYPTO: &std::ffi::CStr = c"libcrypto.so.3";

/// What one child login reported.
pub struct Outcome {
    pub elapsed: Duration,
    pub rc: i32,
    pub prompts: usize,
    pub faults: u64,
}

fn minor_faults_self() -> u64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    u64::try_from(ru.ru_minflt).unwrap_or(0)
}

/// Runs one login in a new process and returns the child's own figure.
pub fn spawn(
    confdir: &Path,
    service: &str,
    user: &str,
    answer: Option<&str>,
    libcrypto: bool,
) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(ARG)
        .arg(confdir)
        .args([service, user, answer.unwrap_or("-")]);
    if libcrypto {
        cmd.arg("libcrypto");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{service}: start the login child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{service}: login child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{service}: the login child printed no {key}"))
    };
    Ok(Outcome {
        elapsed: Duration::from_nanos(field("elapsed_ns")?),
        rc: i32::try_from(field("rc")?).map_err(|e| format!("{service}: rc: {e}"))?,
        prompts: usize::try_from(field("prompts")?).unwrap_or(usize::MAX),
        faults: field("faults")?,
    })
}

/// `--one-login CONFDIR SERVICE USER ANSWER [libcrypto]` (ANSWER `-`: none); prints
/// `key value` lines.
pub fn child(args: &[String]) -> ExitCode {
    let (confdir, service, user, answer, libcrypto) = match args {
        [c, s, u, a] => (c, s, u, a, false),
        [c, s, u, a, l] if l == "libcrypto" => (c, s, u, a, true),
        _ => {
            eprintln!("usage: pam-bench {ARG} CONFDIR SERVICE USER ANSWER [libcrypto]");
            return ExitCode::from(2);
        }
    };
    let Ok(name) = CString::new(user.as_bytes()) else {
        eprintln!("user name with a NUL byte");
        return ExitCode::from(2);
    };
    // SAFETY: `name` is NUL-terminated; the returned entry is not kept.
    if unsafe { libc::getpwnam(name.as_ptr()) }.is_null() {
        eprintln!("no account {user}");
        return ExitCode::from(1);
    }
    if libcrypto {
        // SAFETY: a NUL-terminated library name; the handle is kept for the life of the
        // process on purpose (sshd never unloads it).
        let h = unsafe { libc::dlopen(LIBCRYPTO.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if h.is_null() {
            eprintln!("dlopen libcrypto.so.3 failed");
            return ExitCode::from(1);
        }
    }
    let answers: Vec<String> = if answer == "-" {
        Vec::new()
    } else {
        vec![answer.clone()]
    };
    let faults_before = minor_faults_self();
    let t0 = Instant::now();
    let (rc, prompts) = crate::authenticate_once(
        Path::new(confdir),
        service,
        user,
        Box::new(Scripted::texts(answers)),
    )
    .unwrap_or_else(|e| (e.0, 0));
    let elapsed = t0.elapsed();
    let faults = minor_faults_self().saturating_sub(faults_before);
    println!("elapsed_ns {}", elapsed.as_nanos());
    println!("rc {rc}");
    println!("prompts {prompts}");
    println!("faults {faults}");
    ExitCode::SUCCESS
}
