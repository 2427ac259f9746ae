//! The etcd backend in `make bench`: a three-member cluster the benchmark starts on
//! random loopback ports in its scratch directory (killed on drop), the plugin copied
//! where its ownership check passes, and the benchmarked user's record deleted between
//! iterations so every right code is fresh.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

    /// Forgets the benchmarked user's record (the store's record stays, as on a fleet).
    pub fn flush(&self) -> Result<(), String> {
        let key = format!(
            "{}user:{}",
            totp_core::fleet::etcd::DEFAULT_ETCD_PREFIX,
            crate::USER
        );
        self.ctl(&["del", &key])
    }
}

impl Drop for BenchEtcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
