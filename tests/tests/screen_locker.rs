//! SECURITY.md E4 through a real screen locker: Debian's `vlock` locks the terminal of
//! an unprivileged enrolled user and asks, through its own terminal conversation, for
//! that user's code on PAM service `vlock`. The test is the person at the keyboard: it
//! owns the pseudo-terminal vlock runs on, reads the screen and types.
//!
//! Debian installs `vlock-main` setuid root, and a setuid-root locker is a root host, not
//! the host E4 is about. The locker is therefore started with `no_new_privs`, under
//! which the kernel ignores the setuid bit: the unchanged binary then runs as the user
//! alone, as lockers that are not setuid (swaylock, i3lock, xsecurelock) always do. The
//! test checks that the locker really ran as the user before it believes a verdict.
//!
//! Each locker runs in a private mount namespace where `/etc/pam.d` is a directory
//! holding only `vlock` (the built module) and `other` (deny), and `/dev/log` is a socket
//! the test reads; the host's `/etc` and `/dev` are untouched.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use system_tests::*;

/// How long a locker may take to show what the test waits for. Generous: other test
/// binaries share the CPUs, and a verdict includes an fsync.
const PATIENCE: Duration = Duration::from_secs(20);

/// Mounts the private `/dev` (the pty's `/dev/pts` included, so vlock's `ttyname` still
/// names its terminal) and the stack directory over `/etc/pam.d`, then runs the locker.
/// The whole directory is mounted because Debian's vlock ships no `/etc/pam.d/vlock` to
/// mount a file over, and creating one would change the host.
const NAMESPACE: &str = r#"set -e
t="$1"; pamd="$2"; shift 2
mkdir "$t/dev"
mount -t tmpfs -o mode=755 none "$t/dev"
for n in null zero urandom random full tty; do
  touch "$t/dev/$n"; mount --bind "/dev/$n" "$t/dev/$n"
done
mkdir "$t/dev/pts"; mount --bind /dev/pts "$t/dev/pts"
touch "$t/dev/log"; mount --bind "$t/log.sock" "$t/dev/log"
mount --rbind "$t/dev" /dev
mount --bind "$pamd" /etc/pam.d
exec "$@""#;

/// Whether the setuid bit of `vlock-main` takes effect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Privs {
    /// `no_new_privs`: the locker runs as the user alone (E4).
    UserOnly,
    /// As installed: real uid the user, effective uid root (a root host).
    SetuidRoot,
}

/// One running `vlock` on a pseudo-terminal the test holds, with the syslog lines the
/// processes in its namespace sent.
struct Locker {
    child: Child,
    master: File,
    screen: Arc<Mutex<Vec<u8>>>,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    status: Option<ExitStatus>,
    _dir: tempfile::TempDir,
}

impl Locker {
    /// Starts `vlock -c` as `user` (the locker's own PAM user) with `pam_d` as
    /// `/etc/pam.d`: with `no_new_privs`, as the user alone; without, setuid root as
    /// Debian installs it.
    fn start(user: &TestUser, pam_d: &Path, privs: Privs) -> Locker {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-locker")
            .tempdir()
            .expect("tempdir");
        let sock_path = dir.path().join("log.sock");
        let sock = UnixDatagram::bind(&sock_path).expect("bind syslog socket");
        // The module logs from the user's process: the socket must accept its datagrams.
        fs::set_permissions(&sock_path, fs::Permissions::from_mode(0o666)).expect("chmod");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");

        let (master, slave) = open_pty();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", NAMESPACE])
            .arg("sh")
            .arg(dir.path())
            .arg(pam_d)
            .arg("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg("--clear-groups");
        if privs == Privs::UserOnly {
            cmd.arg("--no-new-privs");
        }
        cmd.args(["env", "-i"])
            .arg(format!("HOME={}", user.home.display()))
            .arg(format!("USER={}", user.name))
            .arg(format!("LOGNAME={}", user.name))
            .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("TERM=dumb")
            .args(["vlock", "-c"]);
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup pty")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec. A new session with
        // the pty as its controlling terminal is what a login shell gives a locker.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start vlock");
        // The parent's copies of the slave are gone with `cmd`: the master then reads
        // EIO once the locker and everything it started have exited.
        drop(cmd);

        let screen = Arc::new(Mutex::new(Vec::new()));
        {
            let screen = screen.clone();
            let mut reader = master.try_clone().expect("dup master");
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    screen
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let log = log.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 8192];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        log.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                }
            });
        }
        Locker {
            child,
            master,
            screen,
            log,
            stop,
            status: None,
            _dir: dir,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The messages (without syslog header) logged so far.
    fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| syslog_message(l).to_string())
            .collect()
    }

    /// Waits until the screen, after its first `after` bytes, shows `needle`; returns
    /// the screen length just past it.
    fn wait_screen(&self, after: usize, needle: &str) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.screen();
            if let Some(i) = s.get(after..).and_then(|rest| rest.find(needle)) {
                return after + i + needle.len();
            }
            assert!(
                Instant::now() < deadline,
                "vlock never showed {needle:?}; the screen:\n{s}\nlog: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a log message contains `needle`.
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {:#?}\nscreen:\n{}",
                self.log(),
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_line(&mut self, text: &str) {
        self.master
            .write_all(format!("{text}\n").as_bytes())
            .expect("type on the pty");
    }

    /// Presses Enter at the lock screen and answers the code prompt that follows for
    /// `user`; returns the screen position after the prompt.
    fn answer(&mut self, after: usize, user: &str, code: &str) -> usize {
        let at = self.wait_screen(after, "Please press [ENTER] to unlock.");
        self.type_line("");
        let at = self.wait_screen(at, &format!("{user}'s Verification code: "));
        self.type_line(code);
        at
    }

    /// vlock's offer of root's account after the user's failed: the module, not root
    /// here, cannot read root's file and asks for a code as for any name (R9); an empty
    /// answer ends the turn. Returns the screen offset after the prompt.
    fn root_turn(&mut self, after: usize) -> usize {
        let at = self.wait_screen(after, "root's Verification code: ");
        self.type_line("");
        at
    }

    /// Waits for the locker to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait vlock") {
                self.status = Some(st);
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "vlock did not exit; the screen:\n{}\nlog: {:#?}",
                self.screen(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The locker is still running, i.e. the terminal is still locked.
    fn still_locked(&mut self) -> bool {
        self.child.try_wait().expect("wait vlock").is_none()
    }

    /// Ends a locker that stays locked (only a right code or a signal ends vlock).
    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// The real, effective, saved and file-system uids of the locker, from its process.
    fn uids(&self) -> String {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        self.kill();
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn open_pty() -> (File, File) {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty writes two descriptors it opened into the two ints; the NULL name,
    // termios and window size are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // openpty sets no close-on-exec flag: a process another test thread starts meanwhile
    // would inherit this terminal and hold it open.
    for fd in [master, slave] {
        // SAFETY: fcntl on a descriptor this function owns.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        assert_eq!(rc, 0, "fcntl: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    (File::from(m), File::from(s))
}

/// A PAM configuration directory as the locker's `/etc/pam.d`: `vlock` with `lines`,
/// `other` denying. Readable by the user: libpam reads it as the locker's user.
fn pam_d(lines: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("pam_totp-pamd")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    for (name, text) in [("vlock", lines), ("other", "auth required pam_deny.so\n")] {
        let p = d.path().join(name);
        fs::write(&p, text).expect("write service");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    d
}

/// `user`'s record in the store below their home (where a locker running as them keeps
/// it), read as `user`: the store refuses a directory its reader does not own, as the
/// module does. The identity is changed for one short-lived thread only (raw per-thread
/// syscalls; the saved uid stays root), so the rest of the test keeps running as root.
fn home_record(user: &TestUser) -> totp_core::state::UserState {
    let (uid, gid) = (user.uid, user.gid);
    let dir = user.home.join(".local/state/pam_totp");
    std::thread::spawn(move || {
        // SAFETY: plain syscalls on integers; they change this thread's ids only.
        let rc = unsafe {
            (
                libc::syscall(libc::SYS_setresgid, u32::MAX, gid, u32::MAX),
                libc::syscall(libc::SYS_setresuid, u32::MAX, uid, u32::MAX),
            )
        };
        assert_eq!(rc, (0, 0), "{}", std::io::Error::last_os_error());
        let mut store = totp_os::state_dir::StateDir::new(dir, Duration::from_secs(5));
        totp_core::state::StateStore::read(&mut store, uid).expect("the user's record")
    })
    .join()
    .expect("reader thread")
}

/// Waits until the current 30-s step has at least 10 s left, so a code typed now is
/// still the current one when the module checks it; returns the time.
fn mid_step() -> u64 {
    loop {
        let t = now();
        if (2..20).contains(&(t % 30)) {
            return t;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn requirements(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "unshare")
        && require_tool(test, "setpriv")
        && require_tool(test, "vlock")
}

/// Home mode: the locker runs as the user, the root-owned state directory is out of its
/// reach, and the replay mark lives in the user's own record. A right code unlocks; the
/// same code at the next lock, and a wrong code, do not.
#[test]
fn vlock_as_the_user_unlocks_once_per_code_with_state_in_the_home() {
    let t = "vlock_as_the_user_unlocks_once_per_code_with_state_in_the_home";
    if !requirements(t) {
        return;
    }
    let (u, secret) = TestUser::enrolled("vl");
    // No state_dir=: the default a locker gets, which E4 is about.
    let pamd = pam_d(&format!("auth required {}\n", built().module.display()));
    let record = u.home.join(".local/state/pam_totp").join(u.uid.to_string());
    // Compared, not required absent: a uid is reused once its test user is deleted.
    let root_record = Path::new(totp_os::state_dir::DEFAULT_STATE_DIR).join(u.uid.to_string());
    let root_before = fs::read(&root_record).ok();
    let mut all_logs = Vec::new();

    // Control: the right code unlocks.
    let mut lock = Locker::start(&u, pamd.path(), Privs::UserOnly);
    let at = lock.wait_screen(0, "This TTY is now locked.");
    let uids = lock.uids();
    assert_eq!(
        uids,
        [u.uid; 4].map(|i| i.to_string()).join(" "),
        "vlock must run as the user alone (real, effective, saved, fs uid)"
    );
    let now = mid_step();
    let code = code_at(&secret, now);
    lock.answer(at, &u.name, &code);
    let st = lock.wait_exit();
    assert_eq!(
        st.code(),
        Some(0),
        "a right code unlocks: {st:?}\nscreen:\n{}\nlog: {:#?}",
        lock.screen(),
        lock.log()
    );
    let accepted = format!("accepted time-based code for {} from -", u.name);
    assert!(
        lock.log().contains(&accepted),
        "{accepted:?} in {:#?}",
        lock.log()
    );
    let (mode, owner, _) = mode_owner(&record);
    assert_eq!((mode, owner), (0o600, u.uid), "the user's own record");
    let after_unlock = home_record(&u);
    assert_eq!(
        last_step_of(&after_unlock),
        Some(now / 30),
        "the replay mark is in the user's record"
    );
    assert_eq!(failures_of(&after_unlock), 0);
    assert_eq!(
        fs::read(&root_record).ok(),
        root_before,
        "nothing written to the root-owned directory: {}",
        root_record.display()
    );
    all_logs.extend(lock.log());
    drop(lock);

    // The same code at the next lock: refused as used, the terminal stays locked.
    let mut lock = Locker::start(&u, pamd.path(), Privs::UserOnly);
    let at = lock.answer(0, &u.name, &code);
    let line = lock.wait_log(&format!("code already used for {} from -", u.name));
    assert_eq!(line, format!("code already used for {} from -", u.name));
    assert!(
        lock.log().contains(&format!(
            "{} from - reused an already accepted code; this might mean a man-in-the-middle attack",
            u.name
        )),
        "{:#?}",
        lock.log()
    );
    lock.wait_screen(at, "that code was already used; wait for the next code");
    let at = lock.wait_screen(at, "vlock: Authentication failure");
    // vlock goes on (root's turn, then the lock screen again): it did not unlock.
    let at = lock.root_turn(at);
    lock.wait_screen(at, "Please press [ENTER] to unlock.");
    assert!(lock.still_locked(), "a replayed code must not unlock");
    lock.kill();
    assert!(
        !lock.log().iter().any(|l| l.starts_with("accepted")),
        "{:#?}",
        lock.log()
    );
    all_logs.extend(lock.log());
    drop(lock);
    let after_replay = home_record(&u);
    assert_eq!(last_step_of(&after_replay), Some(now / 30));

    // A wrong code: refused, still locked.
    let mut lock = Locker::start(&u, pamd.path(), Privs::UserOnly);
    let wrong = wrong_totp(&secret, now);
    let at = lock.answer(0, &u.name, &wrong);
    let line = lock.wait_log(&format!("invalid verification code for {} from -", u.name));
    assert_eq!(
        line,
        format!("invalid verification code for {} from -", u.name)
    );
    let at = lock.wait_screen(at, "vlock: Authentication failure");
    let at = lock.root_turn(at);
    lock.wait_screen(at, "Please press [ENTER] to unlock.");
    assert!(lock.still_locked(), "a wrong code must not unlock");
    lock.kill();
    assert!(
        !lock.log().iter().any(|l| l.starts_with("accepted")),
        "{:#?}",
        lock.log()
    );
    let after_wrong = home_record(&u);
    assert_eq!(
        failures_of(&after_wrong),
        failures_of(&after_replay) + 1,
        "the failure is counted in the user's record"
    );
    assert_eq!(last_step_of(&after_wrong), Some(now / 30));
    assert_eq!(fs::read(&root_record).ok(), root_before);
    all_logs.extend(lock.log());
    assert!(
        !all_logs
            .iter()
            .any(|l| l.contains(&code) || l.contains(&wrong)),
        "a code in the log: {all_logs:#?}"
    );
}

/// Store mode: the secret sits in a root-only store the user cannot read. The locker,
/// running as the user, is prompted and denied as a name without an account would be,
/// with the cause logged, and vlock keeps running, locked. Control, with the same stack, store, user and code: vlock as
/// Debian installs it (setuid root, a root host) reads the store and unlocks.
#[test]
fn vlock_as_the_user_is_denied_cleanly_when_the_store_is_unreadable() {
    let t = "vlock_as_the_user_is_denied_cleanly_when_the_store_is_unreadable";
    if !requirements(t) {
        return;
    }
    let u = TestUser::create("vs");
    let secret = random_secret_b32();
    let store = root_store();
    write_owned(
        &store.path().join(&u.name),
        totp_file(&secret).as_bytes(),
        0,
        0,
        0o600,
    );
    let state = tempfile::Builder::new()
        .prefix("pam_totp-state")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    let state_dir = state.path().join("state");
    // state_dir=: the setuid control is a root host, which must not write the host's
    // default state directory.
    let pamd = pam_d(&format!(
        "auth required {} user=root secret={}/${{USER}} state_dir={}\n",
        built().module.display(),
        store.path().display(),
        state_dir.display()
    ));
    let denied = "cannot switch to the identity of uid 0: not running as root: \
                  cannot switch filesystem identity to uid 0 gid 0; denying";

    let mut lock = Locker::start(&u, pamd.path(), Privs::UserOnly);
    let at = lock.wait_screen(0, "This TTY is now locked.");
    assert_eq!(lock.uids(), [u.uid; 4].map(|i| i.to_string()).join(" "));
    // Prompted, then denied as a name without an account is (R9): ending before the
    // prompt, for accounts only, would tell which names exist. The right code does not
    // help: the file cannot be read.
    let at = lock.answer(at, &u.name, &code_at(&secret, mid_step()));
    let at = lock.wait_screen(at, "vlock: Authentication failure");
    assert_eq!(lock.wait_log("cannot switch"), denied);
    assert!(
        !lock.screen().contains("System error"),
        "an ordinary denial: {}",
        lock.screen()
    );
    // vlock goes on to offer root's code, then locks again: it neither crashed nor
    // unlocked.
    let at = lock.root_turn(at);
    lock.wait_screen(at, "Please press [ENTER] to unlock.");
    assert!(lock.still_locked(), "denied, and vlock is still running");
    lock.kill();
    let log = lock.log();
    assert!(!log.iter().any(|l| l.starts_with("accepted")), "{log:#?}");
    assert!(
        !u.home.join(".local/state/pam_totp").exists(),
        "nothing recorded for a login that was never checked"
    );
    drop(lock);

    // Control: the same set-up, with the privileges vlock is installed with.
    let mut lock = Locker::start(&u, pamd.path(), Privs::SetuidRoot);
    let at = lock.wait_screen(0, "This TTY is now locked.");
    let ids: Vec<String> = lock.uids().split(' ').map(str::to_string).collect();
    assert_eq!(ids.first(), Some(&u.uid.to_string()), "real uid: the user");
    assert_eq!(
        ids.get(1).map(String::as_str),
        Some("0"),
        "effective uid: root (a setuid bit that did not apply: no_new_privs inherited by \
         this test, or a nosuid mount)"
    );
    let now = mid_step();
    lock.answer(at, &u.name, &code_at(&secret, now));
    let st = lock.wait_exit();
    assert_eq!(
        st.code(),
        Some(0),
        "the setuid locker unlocks: {st:?}\nscreen:\n{}\nlog: {:#?}",
        lock.screen(),
        lock.log()
    );
    let log = lock.log();
    let accepted = format!("accepted time-based code for {} from -", u.name);
    assert!(log.contains(&accepted), "{accepted:?} in {log:#?}");
    assert!(!log.iter().any(|l| l.contains("cannot switch")), "{log:#?}");
    assert!(state_dir.join(u.uid.to_string()).exists(), "the root store");
}
