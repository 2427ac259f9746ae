//! Hardening through the real libpam and the built `.so` (SECURITY.md cases C4, C5, D2,
//! E1, E2, E5, E6, F8, G1; rules R4, R6, R16, R24).
//!
//! - Panics: a `test-panic` build of the module panics in `pam_sm_authenticate` and
//!   `pam_sm_setcred`; the host survives, gets a failure code, prints nothing on stderr,
//!   and the panic is logged once through syslog.
//! - Credentials and descriptors: fsuid, fsgid and groups of the calling thread (and of
//!   the process) are the same before and after every call path, errors included; no
//!   descriptor is left open; every descriptor the module opens is close-on-exec; other
//!   threads never see a credential change, while the calling thread really runs as the
//!   user inside the critical section.
//! - Lock contention: a stopped process holding the secret file's lock (seen holding it
//!   in its `/proc/PID/fdinfo` before and after) makes its own user's login give up on
//!   the lock, logged as such, and fail; another user logs in meanwhile; the lock goes
//!   away with the holder.
//! - `strace -e inject=`: write, fsync and rename errors in the real `.so` deny and leave
//!   the state file as it was.
//!
//! Root only (real users, credential switches). All tests in this file take one lock:
//! they compare process-wide facts (`/proc/self/fd`) that parallel tests would disturb.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use system_tests::pamapp::{Reply, Scripted, Transaction, codes};
use system_tests::*;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// /proc helpers

/// fsuid, fsgid and supplementary groups as the kernel applies them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Creds {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<u32>,
}

fn creds_from(status_path: &str) -> Creds {
    let status = fs::read_to_string(status_path).unwrap_or_else(|e| panic!("{status_path}: {e}"));
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let mut groups = field("Groups:");
    groups.sort_unstable();
    Creds {
        // Uid:/Gid: are real, effective, saved, filesystem.
        fsuid: field("Uid:")[3],
        fsgid: field("Gid:")[3],
        groups,
    }
}

fn thread_creds() -> Creds {
    creds_from("/proc/thread-self/status")
}

fn process_creds() -> Creds {
    creds_from("/proc/self/status")
}

/// The calling thread's status path, readable from other threads.
fn my_task_status() -> String {
    let link = fs::read_link("/proc/thread-self").expect("readlink /proc/thread-self");
    format!("/proc/{}/status", link.display())
}

/// Open descriptors of this process and what they name.
fn fds() -> BTreeMap<u32, String> {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            Some((n, target.display().to_string()))
        })
        // The directory handle read_dir itself holds.
        .filter(|(_, t)| !t.starts_with("/proc/") || !t.ends_with("/fd"))
        .collect()
}

/// `O_CLOEXEC` in `/proc/self/fdinfo/<fd>` (flags are octal).
fn is_cloexec(fd: u32) -> Option<bool> {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
    let flags = u32::from_str_radix(flags, 8).ok()?;
    Some(flags & 0o2_000_000 != 0)
}

// ---------------------------------------------------------------------------------------
// Fixtures

/// A scratch code: the one kind of answer that still locks and rewrites the secret file.
const SCRATCH: &str = "12345678";

/// A TOTP file with [`SCRATCH`] as its scratch code.
fn scratch_file(secret: &str) -> String {
    format!("{}{SCRATCH}\n", totp_file(secret))
}

fn code_now(secret: &str) -> String {
    code_at(secret, now())
}

fn wrong_now(secret: &str) -> String {
    let t = now();
    let near: Vec<String> = (0..5u64)
        .map(|i| code_at(secret, t + i * 30 - 60))
        .collect();
    let mut n: u32 = near[2].parse().expect("digits");
    loop {
        n = (n + 500_001) % 1_000_000;
        let s = format!("{n:06}");
        if !near.contains(&s) {
            return s;
        }
    }
}

/// Holds an exclusive `flock` on `path` from this process (another open file
/// description, so it conflicts with the module's own lock).
fn hold_lock(path: &Path) -> fs::File {
    let f = fs::File::open(path).expect("open for flock");
    f.lock().expect("flock");
    f
}

fn temp_leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// 1. Panics (G1, G2)

/// The `test-panic` build: a panic at the entry of each export.
fn panic_module() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| module_with_feature("test-panic")).clone()
}

/// The `test-panic-after-prompt` build: a panic inside the conversation path, once the
/// application has answered the prompt.
fn panic_after_prompt_module() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| module_with_feature("test-panic-after-prompt"))
        .clone()
}

/// A probe stack (see `Stack::probe`) around the panicking module.
fn panic_stack(service: &str) -> Stack {
    Stack::probe_module(service, &panic_module(), "")
}

/// G2: a panic inside the conversation path, after the user answered: the same silent
/// denial as a panic at the entry (PAM_SYSTEM_ERR, the host alive, nothing on stderr,
/// one syslog line), with the prompt shown once. Control: the same user and code with
/// the real module log in.
#[test]
fn panic_after_the_prompt_is_a_silent_denial_and_the_host_survives() {
    let _g = serial();
    if !require_root("panic_after_the_prompt_is_a_silent_denial_and_the_host_survives") {
        return;
    }
    let (u, secret) = TestUser::enrolled("pp");
    let control = Stack::probe("svc", "");
    let d = Driver::login(&control, &u, &code_now(&secret)).run();
    assert_eq!(d.returned(), Returned::Success, "control: {d:?}");
    let stack = Stack::probe_module("svc", &panic_after_prompt_module(), "");
    let cmd = Driver::login(&stack, &u, &code_now(&secret)).command();
    let (out, syslog) = with_syslog_capture(&cmd);
    let d = Drive::parse(&out);
    assert_eq!(out.status.signal(), None, "host killed by a signal: {d:?}");
    assert_eq!(d.result, "PAM_SYSTEM_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "the panic came after the prompt: {d:?}");
    assert!(out.stderr.is_empty(), "stderr: {:?}", d.stderr);
    let panics: Vec<&String> = syslog.iter().filter(|l| l.contains("panic")).collect();
    assert_eq!(panics.len(), 1, "one syslog line per panic: {syslog:?}");
}

#[test]
fn panic_in_authenticate_is_a_silent_denial_and_the_host_survives() {
    let _g = serial();
    if !require_root("panic_in_authenticate_is_a_silent_denial_and_the_host_survives") {
        return;
    }
    let stack = panic_stack("svc");
    for user in ["root", "nosuchuser-pt", "../x"] {
        let cmd = Driver::new(&stack, "svc", user).answer("123456").command();
        let (out, syslog) = with_syslog_capture(&cmd);
        let d = Drive::parse(&out);
        assert_eq!(
            out.status.signal(),
            None,
            "{user}: host killed by a signal: {d:?}"
        );
        assert!(out.status.code().is_some(), "{user}: {out:?}");
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "{user}: a panic must deny: {d:?}"
        );
        assert_eq!(d.result, "PAM_SYSTEM_ERR", "{user}: {d:?}");
        assert!(out.stderr.is_empty(), "{user}: stderr: {:?}", d.stderr);
        assert_eq!(d.prompts, 0, "{user}: the panic comes before any prompt");
        let panics: Vec<&String> = syslog.iter().filter(|l| l.contains("panic")).collect();
        assert_eq!(
            panics.len(),
            1,
            "{user}: one syslog line per panic: {syslog:?}"
        );
        assert!(
            panics[0].contains("pam_totp") || panics[0].contains("svc"),
            "{user}: {syslog:?}"
        );
    }
}

/// Runs in a child process started by the test below (it re-executes this test binary),
/// so that the child's stderr and exit status can be checked.
#[test]
fn panic_child_process() {
    let Ok(confdir) = std::env::var("PAM_TOTP_PANIC_CHILD_CONFDIR") else {
        return; // Not the child: nothing to do.
    };
    let before = thread_creds();
    let fds_before = fds();
    let mut tx = Transaction::start(
        "svc",
        Some("root"),
        Some(Path::new(&confdir)),
        Box::new(Scripted::texts(["123456"])),
    )
    .expect("pam_start");
    let auth = tx.authenticate(0);
    let setcred = tx.setcred();
    let auth2 = tx.authenticate(0);
    drop(tx);
    println!("child-auth {auth}");
    println!("child-setcred {setcred}");
    println!("child-auth2 {auth2}");
    println!("child-creds-same {}", thread_creds() == before);
    // libpam may keep its syslog socket; anything else would be ours.
    let extra: Vec<String> = fds()
        .into_iter()
        .filter(|(n, t)| !fds_before.contains_key(n) && !t.starts_with("socket:"))
        .map(|(n, t)| format!("{n}->{t}"))
        .collect();
    println!("child-extra-fds {}", extra.join(","));
}

#[test]
fn panic_in_setcred_and_authenticate_in_process_host_survives() {
    let _g = serial();
    if !require_root("panic_in_setcred_and_authenticate_in_process_host_survives") {
        return;
    }
    let so = panic_module();
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", so.display()));
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--exact",
            "panic_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PAM_TOTP_PANIC_CHILD_CONFDIR", stack.path())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child died: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stderr.is_empty(),
        "the module printed on the host's stderr: {stderr:?}"
    );
    let value = |k: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.find(k).map(|i| &l[i + k.len()..]))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {k} in {stdout}"))
    };
    for k in ["child-auth ", "child-setcred ", "child-auth2 "] {
        let code: i32 = value(k).parse().expect("code");
        assert_ne!(code, codes::SUCCESS, "{k}: {stdout}");
        assert_ne!(code, 25, "{k} PAM_IGNORE: {stdout}");
    }
    assert_eq!(value("child-creds-same "), "true", "{stdout}");
    assert_eq!(value("child-extra-fds "), "", "{stdout}");
}

// ---------------------------------------------------------------------------------------
// 2. Credentials and descriptors (E1, E2, E5, E6)

struct CallPath {
    name: &'static str,
    user: String,
    args: String,
    replies: Vec<Reply>,
    /// Hold a conflicting lock on this file during the call.
    lock: Option<PathBuf>,
}

#[test]
fn credentials_and_descriptors_are_unchanged_after_every_call_path() {
    let _g = serial();
    if !require_root("credentials_and_descriptors_are_unchanged_after_every_call_path") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cr");
    let (bad, _) = TestUser::enrolled("cb");
    fs::set_permissions(
        bad.secret_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let (nofile, _) = TestUser::enrolled("cn");
    fs::remove_file(nofile.secret_path()).expect("rm");
    let group = format!("ptg{}", std::process::id() % 100_000);
    u.add_to_group(&group);
    let store = root_store();
    fs::write(store.path().join(&u.name), totp_file(&secret)).expect("store file");
    fs::set_permissions(
        store.path().join(&u.name),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let store_args = format!("user=root secret={}/${{USER}}", store.path().display());

    let t = |s: &str| Reply::Text(s.to_string());
    let paths = vec![
        CallPath {
            name: "success",
            user: u.name.clone(),
            args: String::new(),
            replies: vec![t("CODE")],
            lock: None,
        },
        CallPath {
            name: "wrong code",
            user: u.name.clone(),
            args: String::new(),
            replies: vec![t("WRONG")],
            lock: None,
        },
        CallPath {
            name: "unknown user",
            user: "nosuchuser-pt".into(),
            args: String::new(),
            replies: vec![t("123456")],
            lock: None,
        },
        CallPath {
            name: "invalid user name",
            user: "../../etc/x".into(),
            args: String::new(),
            replies: vec![t("123456")],
            lock: None,
        },
        CallPath {
            name: "bad file mode",
            user: bad.name.clone(),
            args: String::new(),
            replies: vec![t("123456")],
            lock: None,
        },
        CallPath {
            name: "no file",
            user: nofile.name.clone(),
            args: String::new(),
            replies: vec![t("123456")],
            lock: None,
        },
        CallPath {
            name: "no file, nullok",
            user: nofile.name.clone(),
            args: "nullok".into(),
            replies: vec![],
            lock: None,
        },
        CallPath {
            name: "conversation error",
            user: u.name.clone(),
            args: String::new(),
            replies: vec![Reply::Fail(codes::CONV_ERR)],
            lock: None,
        },
        CallPath {
            name: "NULL reply",
            user: u.name.clone(),
            args: String::new(),
            replies: vec![Reply::NullText],
            lock: None,
        },
        CallPath {
            name: "bad module argument",
            user: u.name.clone(),
            args: "no_such_option".into(),
            replies: vec![],
            lock: None,
        },
        // A scratch code locks the secret file (it must be used up exactly once).
        CallPath {
            name: "lock timeout",
            user: u.name.clone(),
            args: "lock_timeout=300".into(),
            replies: vec![t(SCRATCH)],
            lock: Some(u.secret_path()),
        },
        CallPath {
            name: "group skip",
            user: u.name.clone(),
            args: format!("skip_group={group}"),
            replies: vec![],
            lock: None,
        },
        CallPath {
            name: "store mode success",
            user: u.name.clone(),
            args: store_args.clone(),
            replies: vec![t("CODE")],
            lock: None,
        },
        CallPath {
            name: "store mode wrong",
            user: u.name.clone(),
            args: store_args,
            replies: vec![t("WRONG")],
            lock: None,
        },
    ];

    let run_path = |p: &CallPath| -> (i32, Creds, Creds) {
        let stack = Stack::with_module("svc", &p.args);
        let replies: Vec<Reply> = p
            .replies
            .iter()
            .map(|r| match r {
                Reply::Text(s) if s == "CODE" => Reply::Text(code_now(&secret)),
                Reply::Text(s) if s == "WRONG" => Reply::Text(wrong_now(&secret)),
                other => other.clone(),
            })
            .collect();
        let holder = p.lock.as_deref().map(hold_lock);
        let before = (thread_creds(), process_creds());
        let mut tx = Transaction::start(
            "svc",
            Some(&p.user),
            Some(stack.path()),
            Box::new(Scripted::new(replies)),
        )
        .expect("pam_start");
        let rc = tx.authenticate(0);
        drop(tx);
        drop(holder);
        let after = (thread_creds(), process_creds());
        assert_eq!(before, after, "{}: credentials changed", p.name);
        (rc, before.0, after.0)
    };

    // Warm-up: glibc opens its syslog socket and NSS its files on first use and keeps
    // them; those belong to the host, not to a call.
    for p in &paths[..3] {
        run_path(p);
    }
    // Each path has a stack (and so a state directory) of its own: no replay mark is
    // left between them.
    for p in &paths {
        u.write_secret(&scratch_file(&secret), 0o600);
        let fds_before = fds();
        let (rc, _, _) = run_path(p);
        let fds_after = fds();
        assert_eq!(
            fds_before, fds_after,
            "{}: descriptors leaked (rc {rc})",
            p.name
        );
        match p.name {
            "success" | "store mode success" => assert_eq!(rc, codes::SUCCESS, "{}", p.name),
            "no file, nullok" | "group skip" => {
                // A lone PAM_IGNORE in a stack is not a success for libpam.
                assert_ne!(rc, codes::SUCCESS, "{}", p.name)
            }
            _ => assert_ne!(rc, codes::SUCCESS, "{}: rc {rc}", p.name),
        }
    }
}

#[test]
fn other_threads_never_see_a_credential_change() {
    let _g = serial();
    if !require_root("other_threads_never_see_a_credential_change") {
        return;
    }
    // Thread A authenticates and waits (lock held by this test) inside the critical
    // section, where it runs with the user's fsuid/fsgid/groups; the main thread and the
    // process as a whole must never see that.
    let (u, secret) = TestUser::enrolled("mt");
    let group = format!("ptm{}", std::process::id() % 100_000);
    u.add_to_group(&group);
    let user_gids: Vec<u32> = {
        let out = run("id", ["-G", u.name.as_str()]);
        let mut g: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        g.sort_unstable();
        g
    };
    let mine = thread_creds();
    let process = process_creds();
    // A scratch code: its check locks the secret file as the user.
    u.write_secret(&scratch_file(&secret), 0o600);
    let holder = hold_lock(&u.secret_path());
    let stack = Stack::with_module("svc", "lock_timeout=1500");
    let done = Arc::new(AtomicBool::new(false));
    let (tx_status, rx_status) = std::sync::mpsc::channel::<String>();
    let worker = {
        let done = done.clone();
        let name = u.name.clone();
        let code = SCRATCH.to_string();
        let confdir = stack.path().to_path_buf();
        std::thread::spawn(move || {
            tx_status.send(my_task_status()).expect("send");
            let before = thread_creds();
            let mut tx = Transaction::start(
                "svc",
                Some(&name),
                Some(&confdir),
                Box::new(Scripted::texts([code])),
            )
            .expect("pam_start");
            let rc = tx.authenticate(0);
            drop(tx);
            let after = thread_creds();
            done.store(true, Ordering::SeqCst);
            (rc, before, after)
        })
    };
    let worker_status = rx_status.recv().expect("worker status path");
    let mut seen_user_creds = None;
    let mut cloexec_violations = Vec::new();
    let fds_before = fds();
    let confdir_text = stack.path().display().to_string();
    while !done.load(Ordering::SeqCst) {
        assert_eq!(thread_creds(), mine, "this thread's credentials changed");
        assert_eq!(
            process_creds(),
            process,
            "the process's credentials changed"
        );
        if let Ok(s) = fs::read_to_string(&worker_status) {
            let c = creds_from_text(&s);
            if c.fsuid == u.uid {
                seen_user_creds = Some(c);
            }
        }
        // E5: every descriptor the module holds open meanwhile is close-on-exec.
        for (fd, target) in fds() {
            // libpam reads the stack configuration with plain fopen() in pam_start, and
            // opens its audit socket: not the module's descriptors.
            let libpams = target.starts_with(&confdir_text) || target.starts_with("socket:");
            if !libpams && !fds_before.contains_key(&fd) && is_cloexec(fd) == Some(false) {
                cloexec_violations.push(format!("{fd} -> {target}"));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(holder);
    let (rc, before, after) = worker.join().expect("worker");
    assert_ne!(rc, codes::SUCCESS, "lock was held: must deny");
    assert_eq!(before, after, "worker thread not restored");
    assert_eq!(thread_creds(), mine);
    let c = seen_user_creds.expect("the worker never ran as the user (E1)");
    assert_eq!(c.fsgid, u.gid, "fsgid inside the critical section");
    assert_eq!(c.groups, user_gids, "groups inside the critical section");
    assert!(
        cloexec_violations.is_empty(),
        "not close-on-exec: {cloexec_violations:?}"
    );
}

fn creds_from_text(status: &str) -> Creds {
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let mut groups = field("Groups:");
    groups.sort_unstable();
    Creds {
        fsuid: field("Uid:").get(3).copied().unwrap_or(u32::MAX),
        fsgid: field("Gid:").get(3).copied().unwrap_or(u32::MAX),
        groups,
    }
}

#[test]
fn every_descriptor_the_module_opens_is_close_on_exec() {
    let _g = serial();
    if !require_root("every_descriptor_the_module_opens_is_close_on_exec")
        || !require_tool(
            "every_descriptor_the_module_opens_is_close_on_exec",
            "strace",
        )
    {
        return;
    }
    // E5 with strace: after libpam has loaded the module (pam_start), every open and
    // socket call of the process happens inside pam_authenticate — the module, or NSS and
    // syslog on its behalf — and must carry O_CLOEXEC / SOCK_CLOEXEC.
    let (u, secret) = TestUser::enrolled("ce");
    let (nofile, _) = TestUser::enrolled("cf");
    fs::remove_file(nofile.secret_path()).expect("rm");
    let stack = Stack::probe("svc", "");
    let cases = [
        (u.name.clone(), code_now(&secret)),
        (u.name.clone(), wrong_now(&secret)),
        (nofile.name.clone(), "123456".to_string()),
        ("nosuchuser-pt".to_string(), "123456".to_string()),
    ];
    for (user, answer) in cases {
        u.write_secret(&totp_file(&secret), 0o600);
        let log = tempfile::NamedTempFile::new().expect("tmp");
        let cmd = Driver::new(&stack, "svc", &user).answer(&answer).command();
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=open,openat,openat2,creat,socket,dup,fcntl,pipe,pipe2,accept,accept4",
            ])
            .arg("-o")
            .arg(log.path())
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null())
            .output()
            .expect("strace");
        let d = Drive::parse(&out);
        assert!(!d.result.is_empty(), "{user}: {out:?}");
        let trace = fs::read_to_string(log.path()).expect("trace");
        let confdir = stack.path().display().to_string();
        let module = built()
            .module
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let start = trace
            .lines()
            .position(|l| l.contains(&module) && l.contains("open"))
            .unwrap_or_else(|| panic!("{user}: module load not traced:\n{trace}"));
        let bad: Vec<&str> = trace
            .lines()
            .skip(start + 1)
            .filter(|l| {
                !l.contains("= -1 ") && !l.contains("<unfinished") && !l.contains("resumed>")
            })
            // libpam's own, not the module's: it reads the rest of the stack configuration
            // (`other`) after loading us, and opens its audit socket around each call
            // (libaudit sets FD_CLOEXEC with fcntl right after socket()).
            .filter(|l| !l.contains(&confdir) && !l.contains("NETLINK_AUDIT"))
            .filter(|l| {
                let opens = l.contains("open(")
                    || l.contains("openat(")
                    || l.contains("openat2(")
                    || l.contains("creat(");
                let sockets =
                    l.contains("socket(") || l.contains("accept4(") || l.contains("pipe2(");
                let dups = l.contains("F_DUPFD(") || l.contains("F_DUPFD,");
                (opens && !l.contains("O_CLOEXEC"))
                    || (sockets && !l.contains("CLOEXEC"))
                    || (dups && !l.contains("F_DUPFD_CLOEXEC"))
                    || l.contains(" dup(")
                    || l.contains(" pipe(")
                    || l.contains(" accept(")
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{user}: descriptors without close-on-exec:\n{}",
            bad.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. Lock contention (C4, C5)

/// A child that takes an exclusive `flock` on `path` (as `uid`/`gid`) and then stops
/// itself with SIGSTOP, holding the lock until killed.
fn stopped_lock_holder(path: &Path, uid: u32, gid: u32) -> Child {
    let child = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args([
            "sh",
            "-c",
            "exec 9<\"$1\" && flock -x 9 && kill -STOP $$",
            "holder",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn lock holder");
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = fs::read_to_string(&stat).unwrap_or_default();
        // Field 3 is the state; the command name (field 2) is in parentheses.
        let state = s
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        if state == Some(Some('T')) {
            break;
        }
        assert!(Instant::now() < deadline, "lock holder did not stop: {s}");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn a_stopped_lock_holder_delays_only_its_user_and_only_for_a_bounded_time() {
    let _g = serial();
    if !require_root("a_stopped_lock_holder_delays_only_its_user_and_only_for_a_bounded_time") {
        return;
    }
    let (a, secret_a) = TestUser::enrolled("la");
    let (b, secret_b) = TestUser::enrolled("lb");
    let stack = Stack::probe("svc", "");
    // Holder as root (C4), then as the user themselves (C5: a user's own flock). The
    // held lock is the secret file's, which a scratch code needs.
    for (who, uid, gid) in [("root", 0, 0), ("the user", a.uid, a.gid)] {
        a.write_secret(&scratch_file(&secret_a), 0o600);
        b.write_secret(&totp_file(&secret_b), 0o600);
        // Fresh enrollments: both rounds may fall in one 30-s step.
        reset_state(&stack, a.uid);
        reset_state(&stack, b.uid);
        let before = fs::read(a.secret_path()).expect("read");
        let mut holder = stopped_lock_holder(&a.secret_path(), uid, gid);
        let ino =
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(a.secret_path()).expect("stat"));
        assert!(
            holds_flock(holder.id(), ino),
            "holder {who}: the stopped holder holds the secret file's lock"
        );

        let driver = Driver::login(&stack, &a, SCRATCH);
        let blocked = std::thread::spawn(move || capture_syslog(&driver));
        // Meanwhile another user logs in: only the held file's lock is waited for.
        let other = Driver::login(&stack, &b, &code_now(&secret_b)).run();
        assert_eq!(
            other.returned(),
            Returned::Success,
            "holder {who}: other user: {other:?}"
        );

        let (d, lines) = within_hang_guard("the blocked login", move || {
            blocked.join().expect("blocked login")
        });
        assert!(
            matches!(d.returned(), Returned::Failed(_)),
            "holder {who}: {d:?}"
        );
        // The login gave up on the lock (the module's own words), not on anything else.
        let path = a.secret_path();
        let timed_out: Vec<&String> = lines
            .iter()
            .filter(|l| {
                let m = syslog_message(l);
                m.contains("timed out waiting for the lock on")
                    && m.contains(&*path.to_string_lossy())
            })
            .collect();
        assert_eq!(
            timed_out.len(),
            1,
            "holder {who}: the lock wait logged: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| syslog_message(l)
                    .contains("code not verified (secret file lock timed out)")),
            "holder {who}: the attempt ends naming the lock: {lines:?}"
        );
        assert!(
            holds_flock(holder.id(), ino),
            "holder {who}: the holder still held the lock when the login gave up"
        );
        assert_eq!(
            fs::read(a.secret_path()).expect("read"),
            before,
            "holder {who}: file changed"
        );

        // The lock dies with its holder.
        holder.kill().expect("kill holder");
        holder.wait().expect("reap holder");
        let after = Driver::login(&stack, &a, SCRATCH).run();
        assert_eq!(
            after.returned(),
            Returned::Success,
            "holder {who}: after the holder died: {after:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. strace fault injection in the real module (D2, F8)

#[test]
fn strace_injected_write_fsync_rename_errors_deny_and_keep_the_file() {
    let _g = serial();
    if !require_root("strace_injected_write_fsync_rename_errors_deny_and_keep_the_file")
        || !require_tool(
            "strace_injected_write_fsync_rename_errors_deny_and_keep_the_file",
            "strace",
        )
    {
        return;
    }
    let (u, secret) = TestUser::enrolled("si");
    let stack = Stack::probe("svc", "");
    // What a fault must leave behind.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Expect {
        /// Control: success, the mark recorded.
        Saved,
        /// The state write failed: nothing recorded, the code still unused.
        NotRecorded,
        /// A scratch code whose record's fsync failed: denied, the code still in the
        /// file, but its record may be on disk, so it counts as used.
        ScratchRecorded,
        /// A scratch code whose file rewrite failed after the store recorded it:
        /// accepted once (the store is the authority), the file left as it was.
        ScratchOnce,
    }
    use Expect::*;
    // pwrite64 is only ever the module's state write (one per attempt); fsync and
    // rename are only ever the module's.
    let injections: &[(Option<&str>, bool, Expect)] = &[
        (None, false, Saved),
        (
            Some("inject=pwrite64:error=ENOSPC:when=1"),
            false,
            NotRecorded,
        ),
        (Some("inject=pwrite64:error=EIO:when=1"), false, NotRecorded),
        (
            Some("inject=pwrite64:error=EROFS:when=1"),
            false,
            NotRecorded,
        ),
        (
            Some("inject=pwrite64:error=EDQUOT:when=1"),
            false,
            NotRecorded,
        ),
        // A used TOTP code is written without an fsync (the boot time covers a lost
        // write), so fsync faults matter for a scratch code: its record is durable.
        (
            Some("inject=fsync,fdatasync:error=EIO"),
            true,
            ScratchRecorded,
        ),
        (
            Some("inject=fsync,fdatasync:error=ENOSPC"),
            true,
            ScratchRecorded,
        ),
        // Rename is only ever the secret file's best-effort rewrite.
        (
            Some("inject=rename,renameat,renameat2:error=EROFS"),
            true,
            ScratchOnce,
        ),
        (
            Some("inject=rename,renameat,renameat2:error=EIO"),
            true,
            ScratchOnce,
        ),
    ];
    for &(inj, scratch, expect) in injections {
        u.write_secret(&scratch_file(&secret), 0o600);
        reset_state(&stack, u.uid);
        // The record exists before the fault, so the fault hits a write, not the
        // record's creation.
        let d = Driver::login(&stack, &u, &wrong_now(&secret)).run();
        assert!(matches!(d.returned(), Returned::Failed(_)), "{d:?}");
        let before = fs::read(u.secret_path()).expect("read");
        let mark_before = stored_last_step(&stack, u.uid);
        let answer = if scratch {
            SCRATCH.to_string()
        } else {
            code_now(&secret)
        };
        let cmd = Driver::login(&stack, &u, &answer).command();
        // The trace of the injected calls only, to show the fault happened.
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let mut strace = Command::new("strace");
        strace.args(["-f", "-qq", "-o"]).arg(trace.path());
        if let Some(i) = inj {
            let calls = i
                .strip_prefix("inject=")
                .and_then(|r| r.split(':').next())
                .expect("syscalls");
            strace.args(["-e", &format!("trace={calls}"), "-e", i]);
        } else {
            strace.args(["-e", "trace=none"]);
        }
        strace.arg(cmd.get_program()).args(cmd.get_args());
        let (out, lines) = with_syslog_capture(&strace);
        let d = Drive::parse(&out);
        if let Some(i) = inj {
            let traced = fs::read_to_string(trace.path()).unwrap_or_default();
            assert!(
                traced.contains("(INJECTED)"),
                "{i}: the fault was never injected: {traced}"
            );
            // The log names the cause: the errno's name, or the skipped rewrite.
            let errno = i
                .rsplit("error=")
                .next()
                .and_then(|e| e.split(':').next())
                .unwrap_or("");
            let cause = if expect == ScratchOnce {
                "not rewritten".to_owned()
            } else {
                format!("({errno})")
            };
            assert!(
                lines.iter().any(|l| syslog_message(l).contains(&cause)),
                "{i}: the log names {cause:?}: {lines:?}"
            );
        }
        let after = fs::read(u.secret_path()).expect("read");
        let i = inj.unwrap_or("control");
        if expect == ScratchOnce {
            assert_eq!(d.returned(), Returned::Success, "{i}: {d:?}");
        } else if expect == Saved {
            assert_eq!(d.returned(), Returned::Success, "control run: {d:?}");
            assert_ne!(
                stored_last_step(&stack, u.uid),
                mark_before,
                "control: state not saved"
            );
        } else {
            assert!(!d.result.is_empty(), "{i}: driver output lost: {out:?}");
            assert!(matches!(d.returned(), Returned::Failed(_)), "{i}: {d:?}");
        }
        assert_eq!(
            String::from_utf8_lossy(&after),
            String::from_utf8_lossy(&before),
            "{i}: secret file changed"
        );
        if expect == NotRecorded {
            assert_eq!(
                stored_last_step(&stack, u.uid),
                mark_before,
                "{i}: recorded"
            );
            let again = Driver::login(&stack, &u, &answer).run();
            assert_eq!(
                again.returned(),
                Returned::Success,
                "{i}: code lost: {again:?}"
            );
        }
        if matches!(expect, ScratchRecorded | ScratchOnce) {
            let again = Driver::login(&stack, &u, SCRATCH).run();
            assert_eq!(
                again.returned(),
                Returned::Failed("PAM_AUTH_ERR".into()),
                "{i}: a scratch code the store may have recorded was accepted again: {again:?}"
            );
        }
        assert!(
            temp_leftovers(&u.home).is_empty(),
            "{inj:?}: temp file left"
        );
        let mut s = String::new();
        let _ = fs::File::open(u.secret_path()).and_then(|mut f| f.read_to_string(&mut s));
        assert!(s.starts_with(&secret), "{inj:?}: secret lost");
    }
}

/// E3 through libpam: the credential restore fails (strace makes the login's second
/// `setgroups`, the first restore, return EPERM) and the process aborts rather than go
/// on with the user's identity: pam-drive dies by SIGABRT before it prints a result.
/// Control: the same login untraced by faults logs in, with the switch shown to happen
/// (at least two `setgroups` calls, switch and restore).
#[test]
fn a_failed_credential_restore_aborts_the_login_process() {
    let _g = serial();
    let t = "a_failed_credential_restore_aborts_the_login_process";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cq");
    let stack = Stack::probe("svc", "");
    let run = |inject: Option<&str>| {
        let cmd = Driver::login(&stack, &u, &code_now(&secret)).command();
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let mut strace = Command::new("strace");
        strace
            .args(["-f", "-qq", "-e", "trace=setgroups", "-o"])
            .arg(trace.path());
        if let Some(i) = inject {
            strace.args(["-e", i]);
        }
        strace.arg(cmd.get_program()).args(cmd.get_args());
        let out = strace.output().expect("run strace");
        let traced = fs::read_to_string(trace.path()).unwrap_or_default();
        (out, traced)
    };
    let (out, traced) = run(None);
    assert_eq!(
        Drive::parse(&out).returned(),
        Returned::Success,
        "control: {out:?}"
    );
    assert!(
        traced.matches("setgroups(").count() >= 2,
        "control: the switch and its restore: {traced}"
    );
    let (out, traced) = run(Some("inject=setgroups:error=EPERM:when=2"));
    assert!(
        traced.contains("(INJECTED)"),
        "the fault was never injected: {traced}"
    );
    assert!(
        traced.contains("SIGABRT"),
        "the process did not abort: {traced}"
    );
    // Drive::died also proves that no result was printed after the failed restore.
    assert_eq!(
        Drive::died(&out),
        libc::SIGABRT,
        "strace passes the abort on as its own end: {out:?}"
    );
}

/// docs/logging.md and pam_totp(8), RETURN VALUES: a credential switch refused after
/// the answer came in denies with `PAM_SYSTEM_ERR`, a fault of the host, logged as
/// `code not verified (credential switch failed)`, and uses nothing up. A scratch code
/// is the answer that opens the secret file again after the prompt (locked, to rewrite
/// it): strace makes that switch's `setgroups`, the login's third (the first two are
/// the pre-read's switch and restore), return EPERM. Control: the same scratch code,
/// untraced by faults, then logs in, so the faulted login did not use it.
#[test]
fn a_credential_switch_refused_after_the_answer_is_a_system_error() {
    let _g = serial();
    let t = "a_credential_switch_refused_after_the_answer_is_a_system_error";
    if !require_root(t) || !require_tool(t, "strace") || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cw");
    u.write_secret(&scratch_file(&secret), 0o600);
    let stack = Stack::probe("svc", "");
    let run = |inject: Option<&str>| {
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let mut strace = Command::new("strace");
        strace
            .args(["-f", "-qq", "-e", "trace=setgroups", "-o"])
            .arg(trace.path());
        if let Some(i) = inject {
            strace.args(["-e", i]);
        }
        strace.arg("env");
        append_env_exec(&mut strace, &Driver::login(&stack, &u, SCRATCH).command());
        let (out, lines) = with_syslog_capture(&strace);
        let traced = fs::read_to_string(trace.path()).unwrap_or_default();
        (Drive::parse(&out), lines, traced)
    };
    let (d, lines, traced) = run(Some("inject=setgroups:error=EPERM:when=3"));
    assert!(traced.contains("(INJECTED)"), "never injected: {traced}");
    assert_eq!(d.result, "PAM_SYSTEM_ERR", "{d:?} {lines:#?}");
    assert_eq!(d.prompts, 1, "{d:?}");
    let closing = format!(
        "code not verified (credential switch failed) for {} from -",
        u.name
    );
    assert!(
        lines.iter().any(|l| syslog_message(l) == closing),
        "{lines:#?}"
    );
    assert!(
        read(&u.secret_path()).contains(SCRATCH),
        "the file as it was"
    );
    let (d, lines, _) = run(None);
    assert_eq!(d.result, "PAM_SUCCESS", "control: {d:?} {lines:#?}");
}
