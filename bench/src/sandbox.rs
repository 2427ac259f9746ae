//! A private `/dev/log` for the run, so module logging costs what it costs in
//! production (a `send` to a datagram socket that a reader drains) without touching the
//! host.
//!
//! The process moves into its own mount namespace with private propagation, mounts a
//! small tmpfs over `/dev` (visible to this process and its children only), attaches a
//! copy of the host's `/dev` mount tree (`open_tree`/`move_mount`) at `/dev/.host` and recreates every entry of it
//! as a symlink into `/dev/.host` — except `log`, which becomes our own socket. Nothing
//! is created on the host's `/dev`, the host's syslog daemon (if any) never sees the
//! benchmark's messages, and everything disappears when the process exits.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts the datagrams the modules sent to `/dev/log`.
pub struct Sink {
    received: Arc<AtomicU64>,
    /// Whether a sink is installed (false with `--no-sink`).
    pub installed: bool,
}

impl Sink {
    /// A sink that counts nothing (`--no-sink`).
    pub fn none() -> Sink {
        Sink {
            received: Arc::new(AtomicU64::new(0)),
            installed: false,
        }
    }

    /// Messages received so far, after waiting until the reader has caught up (the
    /// modules' `send` is synchronous, the reader is not).
    pub fn settled_count(&self) -> u64 {
        if !self.installed {
            return 0;
        }
        let mut last = self.received.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            std::thread::sleep(Duration::from_millis(2));
            let now = self.received.load(Ordering::SeqCst);
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

/// `open_tree(2)` and `move_mount(2)` flags (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let source_c = source.map(cstr).transpose()?;
    let target_c = cstr(target)?;
    let fstype_c = fstype.map(cstr).transpose()?;
    let data_c = data.map(cstr).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a NUL-terminated string that outlives the
    // call; mount(2) does not keep them.
    let rc = unsafe {
        libc::mount(
            ptr(&source_c),
            target_c.as_ptr(),
            ptr(&fstype_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {} on {target}: {}",
            source.unwrap_or("-"),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Enters a private mount namespace and installs the sink. Must run before any thread
/// is started (unshare(CLONE_NEWNS) refuses a process whose threads share its fs state).
pub fn isolate() -> Result<Sink, String> {
    // SAFETY: unshare has no memory-safety preconditions; it only changes this
    // process's namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {} (run as root, or pass --no-sink)",
            std::io::Error::last_os_error()
        ));
    }
    // Nothing we mount from here on propagates back to the host.
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    shadow("/dev", &["log"])?;
    let socket = UnixDatagram::bind("/dev/log").map_err(|e| format!("bind /dev/log: {e}"))?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    std::thread::Builder::new()
        .name("syslog-sink".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while socket.recv(&mut buf).is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .map_err(|e| format!("start the sink thread: {e}"))?;
    Ok(Sink {
        received,
        installed: true,
    })
}

/// Covers `dir` with a tmpfs (seen by this process and its children only) in which
/// every entry of the host's `dir` is a symlink into a detached copy of it mounted at
/// `dir/.host` (a symlink of the host's is copied instead), except the names in
/// `keep_out`, which the caller then creates itself.
/// Our own entries are plain files in our tmpfs, not mount points, so nothing the host
/// does to its own files (a `useradd` renaming `/etc/passwd`) can make them disappear.
fn shadow(dir: &str, keep_out: &[&str]) -> Result<(), String> {
    let dir_c = cstr(dir)?;
    // A detached copy of the host's directory with its submounts (pts, shm, ...),
    // taken before our tmpfs covers it.
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: the path is NUL-terminated and outlives the call; open_tree returns a new
    // descriptor or -1 and touches no memory of ours.
    let raw = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, dir_c.as_ptr(), flags) };
    let mut host = format!("{dir}/.host");
    if raw >= 0 {
        let raw = i32::try_from(raw).map_err(|_| "open_tree: descriptor out of range")?;
        // SAFETY: `raw` is a descriptor open_tree just returned; nothing else owns it.
        let tree = unsafe { OwnedFd::from_raw_fd(raw) };
        cover(dir)?;
        fs::create_dir(&host).map_err(|e| format!("mkdir {host}: {e}"))?;
        let host_c = cstr(&host)?;
        // SAFETY: `tree` is a valid descriptor; both paths are NUL-terminated and
        // outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                host_c.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if rc != 0 {
            return Err(format!(
                "move_mount {host}: {}",
                std::io::Error::last_os_error()
            ));
        }
    } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // Under valgrind, which does not know open_tree: the host's directory is
        // bind-mounted on a staging directory of the bench's own before it is covered.
        host = format!(
            "{STAGING}/host-{}{}",
            std::process::id(),
            dir.replace('/', "-")
        );
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&host)
            .map_err(|e| format!("mkdir {host}: {e}"))?;
        mount(Some(dir), &host, None, libc::MS_BIND | libc::MS_REC, None)?;
        cover(dir)?;
    } else {
        return Err(format!(
            "open_tree {dir}: {} (pass --no-sink)",
            std::io::Error::last_os_error()
        ));
    }
    let entries = fs::read_dir(&host).map_err(|e| format!("read {host}: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {host}: {e}"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if keep_out.contains(&name) {
            continue;
        }
        // A symlink is copied as it is (its target, relative ones included, means the
        // same from `dir`: /etc/os-release -> ../usr/lib/os-release); anything else is
        // reached through the copy of the host's directory.
        let target = match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                fs::read_link(entry.path()).map_err(|e| format!("readlink {host}/{name}: {e}"))?
            }
            _ => std::path::PathBuf::from(format!("{host}/{name}")),
        };
        symlink(&target, format!("{dir}/{name}"))
            .map_err(|e| format!("symlink {dir}/{name}: {e}"))?;
    }
    Ok(())
}

/// Where the valgrind fallback of [`shadow`] stages the host's directories (the
/// benchmark's own directory, see `main.rs`).
const STAGING: &str = "/run/pam_totp-bench";

/// A small tmpfs over `dir`, seen by this process and its children only.
fn cover(dir: &str) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=1m"),
    )
}

/// Gives this process (which has entered its own mount namespace, [`isolate`]) an
/// `/etc` whose `passwd` and `group` are the given texts; every other entry is the
/// host's.
pub fn private_accounts(passwd: &str, group: &str) -> Result<(), String> {
    shadow("/etc", &["passwd", "group"])?;
    for (path, text) in [("/etc/passwd", passwd), ("/etc/group", group)] {
        fs::write(path, text).map_err(|e| format!("write {path}: {e}"))?;
    }
    Ok(())
}

/// Mounts a tmpfs of at most `size` (tmpfs syntax: `1m`, `1g`) on `dir`, inside the
/// private namespace, so only this process and its children see it; it vanishes with
/// them.
pub fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Result<(), String> {
    let target = dir.to_str().ok_or("the scratch path is not UTF-8")?;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(&format!("mode=0700,size={size}")),
    )
}

/// Removes the staging directories of the valgrind fallback of [`shadow`] (their mounts
/// are this process's own; the directories are on the host).
pub fn release_staging() {
    let prefix = format!("host-{}-", std::process::id());
    let Ok(entries) = fs::read_dir(STAGING) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            unmount(&path);
            let _ = fs::remove_dir(&path);
        }
    }
}

/// Undoes [`mount_tmpfs`] so the directory can be removed.
pub fn unmount(dir: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = CString::new(dir.as_os_str().as_bytes()) {
        // SAFETY: `c` is NUL-terminated and outlives the call.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The file system type of `path`, by name, for the report (fsync cost depends on it).
pub fn fs_type(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return "?".into();
    };
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    #[allow(clippy::unnecessary_cast)]
    match st.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs (fsync is a no-op: figures not representative)".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        other => format!("0x{other:x}"),
    }
}
