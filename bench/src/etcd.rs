//! The etcd backend in `make bench`: a three-member cluster the benchmark starts on
//! random loopback ports in its scratch directory (killed on drop), the plugin copied
//! where its ownership check passes, and the benchmarked user's record deleted between
//! iterations so every right code is fresh.

use std::fs;
use std::io::BufReader;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::wire;

const MEMBERS: usize = 3;
/// `--tmpfs-etcd`: each member preallocates a 64 MB write-ahead log segment, and its
/// snapshot and database grow with the run; 1 GiB leaves ample room for three.
pub const TMPFS_SIZE: &str = "1g";

/// Where the members' data directories are (the tmpfs of `--tmpfs-etcd`); the plugin
/// stays outside it, since that tmpfs is mounted noexec.
pub fn data_root(scratch: &Path) -> PathBuf {
    scratch.join("etcd").join("data")
}

pub struct BenchEtcd {
    children: Vec<Child>,
    clients: Vec<u16>,
    plugin: PathBuf,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("pick a port: {e}"))
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl BenchEtcd {
    /// `Ok(None)` when `etcd` or `etcdctl` is not installed (the etcd rows are left out).
    /// The members keep their data on disk in the scratch directory (fsync and all), or
    /// with `tmpfs` on a tmpfs of [`TMPFS_SIZE`] (a diagnostic: fsync is then free).
    pub fn start(scratch: &Path, release: &Path, tmpfs: bool) -> Result<Option<BenchEtcd>, String> {
        if !installed("etcd") || !installed("etcdctl") {
            return Ok(None);
        }
        let dir = scratch.join("etcd");
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // cargo hard-links its outputs; the module wants a single-link, root-owned copy.
        let plugin = dir.join("etcd.so");
        fs::copy(release.join("libpam_totp_etcd.so"), &plugin)
            .map_err(|e| format!("copy the etcd plugin (build it first): {e}"))?;
        fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod plugin: {e}"))?;
        let data = data_root(scratch);
        fs::create_dir_all(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        if tmpfs {
            crate::sandbox::mount_tmpfs(&data, TMPFS_SIZE)?;
        }
        let mut ports = Vec::new();
        for _ in 0..MEMBERS {
            ports.push((free_port()?, free_port()?));
        }
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("b{i}=http://127.0.0.1:{p}"))
            .collect();
        let mut cluster = BenchEtcd {
            children: Vec::new(),
            clients: ports.iter().map(|(c, _)| *c).collect(),
            plugin,
        };
        for (i, (client, peer)) in ports.iter().enumerate() {
            let log = fs::File::create(dir.join(format!("b{i}.log")))
                .map_err(|e| format!("etcd log: {e}"))?;
            let child = Command::new("etcd")
                .arg(format!("--name=b{i}"))
                .arg(format!(
                    "--data-dir={}",
                    data.join(format!("b{i}")).display()
                ))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                ))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg("--initial-cluster-state=new")
                .arg("--logger=zap")
                .arg("--log-outputs=stderr")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("start etcd: {e}"))?;
            cluster.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cluster.ctl(&["endpoint", "health"]).is_ok() {
                crate::fleet::init_store(release, &cluster.options())?;
                return Ok(Some(cluster));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("etcd did not start (see {})", dir.display()))
    }

    fn endpoints(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    fn ctl(&self, args: &[&str]) -> Result<(), String> {
        let urls: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| format!("http://{e}"))
            .collect();
        let out = Command::new("etcdctl")
            .env_clear()
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", urls.join(",")))
            .args(args)
            .output()
            .map_err(|e| format!("run etcdctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "etcdctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The client port of the member listed first (the one the plugin asks first).
    pub fn first_member(&self) -> u16 {
        self.clients[0]
    }

    /// The module options that put the state on this cluster.
    pub fn options(&self) -> String {
        format!(
            "state=etcd://{} etcd_plugin={}",
            self.endpoints().join(","),
            self.plugin.display()
        )
    }

    /// Forgets the benchmarked user's record (the store's record stays, as on a fleet),
    /// then waits until every member has applied the deletion, so that a login finds
    /// the cluster idle, as a sparse login does. Through the gateway from this process:
    /// `etcdctl` forked the bench (its environment is cleared, so no `posix_spawn`),
    /// and the copy-on-write faults that left behind fell in the next timed login.
    pub fn flush(&self) -> Result<(), String> {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}user:{}",
            totp_core::fleet::etcd::DEFAULT_ETCD_PREFIX,
            crate::USER
        ));
        let ask = |port: u16, path: &str, body: &str| -> Result<u64, String> {
            let mut s = wire::connect(port)?;
            let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
            let reply = wire::post(&mut s, &mut r, port, path, body)?;
            header_revision(&reply).ok_or_else(|| format!("{path}: no revision in the reply"))
        };
        let deleted = ask(
            self.clients[0],
            "/v3/kv/deleterange",
            &format!(r#"{{"key":"{key}"}}"#),
        )?;
        let serializable = format!(r#"{{"key":"{key}","serializable":true}}"#);
        let deadline = Instant::now() + Duration::from_secs(5);
        for &port in &self.clients {
            while ask(port, "/v3/kv/range", &serializable)? < deleted {
                if Instant::now() > deadline {
                    return Err(format!("member on port {port} did not apply the deletion"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }
}

/// The `revision` of a gateway reply's header (a decimal string).
fn header_revision(reply: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(reply).ok()?;
    let at = text.find("\"revision\":\"")? + "\"revision\":\"".len();
    let digits = &text[at..];
    digits[..digits.find('"')?].parse().ok()
}

impl Drop for BenchEtcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::header_revision;

    #[test]
    fn the_header_s_revision_is_read_and_not_a_key_s() {
        let range = br#"{"header":{"cluster_id":"1","member_id":"2","revision":"42","raft_term":"3"},"kvs":[{"key":"a","create_revision":"7","mod_revision":"9"}],"count":"1"}"#;
        assert_eq!(header_revision(range), Some(42));
        // Without the header's field, a key's mod_revision is not taken for it.
        let headless = br#"{"kvs":[{"key":"a","mod_revision":"9"}]}"#;
        assert_eq!(header_revision(headless), None);
        assert_eq!(header_revision(br#"{"header":{"revision":"x"}}"#), None);
    }
}
