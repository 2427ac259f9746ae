//! The Redis backend in `make bench`: a `redis-server` the benchmark starts on a random
//! loopback port in its scratch directory (stopped on drop), the plugin copied where its
//! ownership check passes, and a flush between iterations so every right code is fresh.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BenchRedis {
    child: Child,
    port: u16,
    plugin: PathBuf,
}

impl BenchRedis {
    /// `Ok(None)` when `redis-server` is not installed (the Redis rows are then left out).
    pub fn start(scratch: &Path, release: &Path) -> Result<Option<BenchRedis>, String> {
        let installed = Command::new("sh")
            .args(["-c", "command -v redis-server"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            return Ok(None);
        }
        let dir = scratch.join("redis");
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // cargo hard-links its outputs; the module wants a single-link, root-owned copy.
        let plugin = dir.join("redis.so");
        fs::copy(release.join("libpam_totp_redis.so"), &plugin)
            .map_err(|e| format!("copy the Redis plugin (build it first): {e}"))?;
        fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod plugin: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("pick a port: {e}"))?
            .port();
        let log = dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start redis-server: {e}"))?;
        let mut server = BenchRedis {
            child,
            port,
            plugin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if fs::read_to_string(&log).is_ok_and(|t| t.contains("Ready to accept connections")) {
                init_store(release, &server.options())?;
                return Ok(Some(server));
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not start (see {})",
            log.display()
        ))
    }

    /// The module options that put the state on this server.
    pub fn options(&self) -> String {
        format!(
            "state=redis://127.0.0.1:{} redis_plugin={}",
            self.port,
            self.plugin.display()
        )
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets every record (between iterations, like the local state rewrite).
    pub fn flush(&self) -> Result<(), String> {
        // Only the benchmarked user's record: the store's record (`<prefix>store`) stays, as on a
        // fleet, where `totp-state init` made it once.
        // Records are keyed by the canonical user name (`<prefix>user:NAME`).
        let key = format!("{}user:{}", totp_core::fleet::DEFAULT_PREFIX, crate::USER);
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("connect to redis-server: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let cmd = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len());
        s.write_all(cmd.as_bytes())
            .map_err(|e| format!("DEL {key}: {e}"))?;
        let mut reply = [0u8; 16];
        let n = s.read(&mut reply).map_err(|e| format!("DEL {key}: {e}"))?;
        if !reply[..n].starts_with(b":") {
            return Err(format!("DEL {key} refused"));
        }
        Ok(())
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `totp-state init --never-used --options OPTIONS`, as an admin sets up a new fleet's
/// store: without it the first login would count the current step as used (R34).
pub fn init_store(release: &Path, options: &str) -> Result<(), String> {
    let out = Command::new(release.join("totp-state"))
        .args(["init", "--never-used", "--options", options])
        .output()
        .map_err(|e| format!("run totp-state init (build it first): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "totp-state init: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
