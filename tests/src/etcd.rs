//! etcd test helpers: a real cluster of `etcd` members started by the test on random
//! loopback ports, each in its own temporary data directory (killed on drop), `etcdctl`
//! against it, and the etcd plugin built from this tree and installed where its
//! ownership check passes.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::fleet::{TestCa, install_plugin, signed};

/// The etcd plugin built from this tree, installed by [`install_plugin`].
pub fn etcd_plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| install_plugin("pam_totp_etcd", "etcd"))
}

/// How to start a cluster.
#[derive(Default)]
pub struct EtcdConfig<'a> {
    /// Serve clients over TLS only, with this CA's server certificate.
    pub tls: Option<&'a TestCa>,
    /// With TLS: require client certificates signed by the same CA.
    pub client_cert_auth: bool,
}

struct Member {
    child: Option<Child>,
    client_port: u16,
    /// Where it serves its peers (plain HTTP).
    peer_port: u16,
    /// The command line it was started with (a restore starts it again on other data).
    args: Vec<String>,
}

/// An etcd cluster owned by the test; every member is killed on drop.
pub struct EtcdCluster {
    members: Vec<Member>,
    tls: bool,
    /// CA, client certificate and key for `etcdctl` against a TLS cluster.
    ctl_tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// `root:password` once authentication is on.
    root: Option<String>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

impl EtcdCluster {
    /// `n` members on loopback; returns once every member reports healthy.
    pub fn start(n: usize, config: &EtcdConfig<'_>) -> EtcdCluster {
        assert!(
            crate::require_tool("etcd", "etcd") && crate::require_tool("etcd", "etcdctl"),
            "etcd or etcdctl is missing (apt-get install etcd-server etcd-client)"
        );
        for _ in 0..3 {
            if let Some(c) = Self::try_start(n, config) {
                return c;
            }
        }
        panic!("the etcd cluster did not start");
    }

    fn try_start(n: usize, config: &EtcdConfig<'_>) -> Option<EtcdCluster> {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-etcd")
            .tempdir()
            .expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let client_scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let token = format!("pam_totp-{}-{}", std::process::id(), ports[0].0);
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("m{i}"));
            let log = fs::File::create(dir.path().join(format!("m{i}.log"))).expect("log");
            let mut args: Vec<String> = vec![
                format!("--name=m{i}"),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client_scheme}://127.0.0.1:{client}"),
                format!("--advertise-client-urls={client_scheme}://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster={}", initial.join(",")),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".into(),
                // Loopback: a short election keeps the failover tests quick.
                "--heartbeat-interval=50".into(),
                "--election-timeout=500".into(),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
            ];
            if let Some(ca) = config.tls {
                let (cert, key) = if config.client_cert_auth {
                    member_cert(ca)
                } else {
                    (ca.server_cert.clone(), ca.server_key.clone())
                };
                args.push(format!("--cert-file={}", cert.display()));
                args.push(format!("--key-file={}", key.display()));
                if config.client_cert_auth {
                    args.push("--client-cert-auth".into());
                    args.push(format!("--trusted-ca-file={}", ca.ca_cert.display()));
                }
            }
            let child = spawn_member(&args, log);
            members.push(Member {
                child: Some(child),
                client_port: *client,
                peer_port: *peer,
                args,
            });
        }
        let ctl_tls = config.tls.map(|ca| {
            let (cert, key) = client_cert(ca, "root");
            (ca.ca_cert.clone(), cert, key)
        });
        let cluster = EtcdCluster {
            members,
            tls: config.tls.is_some(),
            ctl_tls,
            root: None,
            dir,
        };
        cluster.healthy().then_some(cluster)
    }

    /// Waits (bounded) until every member reports healthy; prints the logs if not.
    fn healthy(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.etcdctl(&["endpoint", "health"]).status.success() {
                return true;
            }
            sleep(Duration::from_millis(100));
        }
        for i in 0..self.members.len() {
            let log = fs::read_to_string(self.dir.path().join(format!("m{i}.log")));
            eprintln!("etcd m{i} did not become healthy: {log:?}");
        }
        false
    }

    /// `etcdctl snapshot save` from member 0 (etcd 3.4 takes a snapshot from one member)
    /// into the cluster's directory; the snapshot's path.
    pub fn snapshot_save(&self) -> PathBuf {
        let path = self.dir.path().join("snapshot.db");
        let out = self.etcdctl_on(&[0], &["snapshot", "save", &path.to_string_lossy()]);
        assert!(
            out.status.success(),
            "etcdctl snapshot save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// The disaster recovery of etcd's documentation: every member stopped, `etcdctl
    /// snapshot restore` of `snapshot` into a new data directory per member (same names,
    /// peer URLs and `--initial-cluster`, the new cluster token `token`), every member
    /// started on its new data. Returns once the restored cluster is healthy.
    pub fn restore(&mut self, snapshot: &Path, token: &str) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        for i in 0..self.members.len() {
            let data = self.dir.path().join(format!("m{i}-restored"));
            let mut args = self.members[i].args.clone();
            let flag = |args: &[String], name: &str| -> String {
                args.iter()
                    .find_map(|a| a.strip_prefix(name))
                    .map(str::to_owned)
                    .unwrap_or_else(|| panic!("member {i} has no {name}"))
            };
            let out = Command::new("etcdctl")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("ETCDCTL_API", "3")
                .arg("snapshot")
                .arg("restore")
                .arg(snapshot)
                .arg(format!("--name={}", flag(&args, "--name=")))
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!(
                    "--initial-cluster={}",
                    flag(&args, "--initial-cluster=")
                ))
                .arg(format!("--initial-cluster-token={token}"))
                .arg(format!(
                    "--initial-advertise-peer-urls={}",
                    flag(&args, "--initial-advertise-peer-urls=")
                ))
                .output()
                .expect("run etcdctl snapshot restore");
            assert!(
                out.status.success(),
                "etcdctl snapshot restore: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for a in &mut args {
                if a.starts_with("--data-dir=") {
                    *a = format!("--data-dir={}", data.display());
                } else if a.starts_with("--initial-cluster-token=") {
                    *a = format!("--initial-cluster-token={token}");
                }
            }
            let log = fs::File::create(self.dir.path().join(format!("m{i}.log"))).expect("log");
            self.members[i].child = Some(spawn_member(&args, log));
            self.members[i].args = args;
        }
        assert!(self.healthy(), "the restored etcd cluster did not start");
    }

    fn endpoints_of(&self, members: impl Iterator<Item = usize>) -> Vec<String> {
        members
            .map(|i| format!("127.0.0.1:{}", self.members[i].client_port))
            .collect()
    }

    /// `etcd://127.0.0.1:P1,…` (or `etcds://`) naming every member.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "etcds" } else { "etcd" };
        let list = self.endpoints_of(0..self.members.len());
        format!("{scheme}://{}", list.join(","))
    }

    /// `127.0.0.1:PORT` where member `i` serves its clients (plain HTTP unless TLS).
    pub fn client_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// `127.0.0.1:PORT` where member `i` serves its peers: a plain HTTP server (not the
    /// client port, which closes a connection that is neither HTTP/1 nor gRPC).
    pub fn peer_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].peer_port)
    }

    /// Adds a learner (`etcdctl member add --learner`, plain HTTP, no authentication
    /// set-up) and starts it; returns `127.0.0.1:PORT` of its client URL once it answers
    /// there. It is a member from then on: [`EtcdCluster::url`] names it too.
    pub fn add_learner(&mut self) -> String {
        let i = self.members.len();
        let (client, peer) = (free_port(), free_port());
        let name = format!("m{i}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let added = self.ctl(&[
            "member",
            "add",
            &name,
            "--learner",
            "--peer-urls",
            &peer_url,
        ]);
        // etcdctl prints the initial cluster the new member must be started with.
        let initial = added
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("member add names the initial cluster")
            .to_owned();
        let data = self.dir.path().join(&name);
        let log = fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let args: Vec<String> = vec![
            format!("--name={name}"),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={initial}"),
            "--initial-cluster-state=existing".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        let child = spawn_member(&args, log);
        self.members.push(Member {
            child: Some(child),
            client_port: client,
            peer_port: peer,
            args,
        });
        // A hang guard, not a speed goal (a loaded machine).
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(Instant::now() < deadline, "the learner did not start");
            sleep(Duration::from_millis(50));
        }
        format!("127.0.0.1:{client}")
    }

    /// Runs `etcdctl` against the members still running (as root once auth is on).
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect();
        self.etcdctl_on(&live, args)
    }

    /// Runs `etcdctl` against the members `on`.
    fn etcdctl_on(&self, on: &[usize], args: &[&str]) -> Output {
        self.etcdctl_cmd(on, args).output().expect("run etcdctl")
    }

    /// The `etcdctl` command line for the members `on`, `args` last.
    fn etcdctl_cmd(&self, on: &[usize], args: &[&str]) -> Command {
        let scheme = if self.tls { "https" } else { "http" };
        let endpoints: Vec<String> = self
            .endpoints_of(on.iter().copied())
            .into_iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let mut cmd = Command::new("etcdctl");
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=5s");
        if let Some((ca, cert, key)) = &self.ctl_tls {
            cmd.arg(format!("--cacert={}", ca.display()))
                .arg(format!("--cert={}", cert.display()))
                .arg(format!("--key={}", key.display()));
        }
        if let Some(root) = &self.root {
            cmd.arg(format!("--user={root}"));
        }
        cmd.args(args);
        cmd
    }

    /// `etcdctl put key` with the value's bytes on its standard input (a value with
    /// bytes a command line cannot carry), asserting success.
    pub fn put_bytes(&self, key: &str, value: &[u8]) {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect();
        let mut child = self
            .etcdctl_cmd(&live, &["put", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl put");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(value).expect("write the value to etcdctl");
        }
        let out = child.wait_with_output().expect("wait for etcdctl put");
        assert!(
            out.status.success(),
            "etcdctl put: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `etcdctl`, asserting success; its standard output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The index of the current leader (asked of the running members).
    pub fn leader(&self) -> usize {
        // A hang guard, not a speed goal: an election on a loaded machine may take long.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = self.etcdctl(&["endpoint", "status", "-w", "json"]);
            if out.status.success()
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            {
                for s in v.as_array().into_iter().flatten() {
                    let member = s["Status"]["header"]["member_id"].as_u64();
                    let leader = s["Status"]["leader"].as_u64();
                    if member.is_some() && member == leader {
                        let ep = s["Endpoint"].as_str().unwrap_or("");
                        if let Some(i) = self
                            .members
                            .iter()
                            .position(|m| ep.ends_with(&format!(":{}", m.client_port)))
                        {
                            return i;
                        }
                    }
                }
            }
            sleep(Duration::from_millis(100));
        }
        panic!("no etcd leader");
    }

    /// SIGKILL to member `i` (no goodbye to its peers).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Turns authentication on: a `root` user, and `user` with `password` whose role may
    /// read and write only keys under `prefix`.
    pub fn enable_auth(&mut self, user: &str, password: &str, prefix: &str) {
        self.ctl(&["user", "add", "root", "--new-user-password=root-test-pw"]);
        // The root role exists once auth is used; granting it may need it created.
        let _ = self.etcdctl(&["role", "add", "root"]);
        self.ctl(&["user", "grant-role", "root", "root"]);
        self.ctl(&["role", "add", "pam_totp"]);
        self.ctl(&[
            "role",
            "grant-permission",
            "pam_totp",
            "--prefix=true",
            "readwrite",
            prefix,
        ]);
        self.ctl(&[
            "user",
            "add",
            user,
            &format!("--new-user-password={password}"),
        ]);
        self.ctl(&["user", "grant-role", user, "pam_totp"]);
        self.ctl(&["auth", "enable"]);
        self.root = Some("root:root-test-pw".to_owned());
    }
}

fn spawn_member(args: &[String], log: fs::File) -> Child {
    Command::new("etcd")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn etcd")
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A client certificate with common name `cn`, signed by `ca`, for clusters started
/// with `--client-cert-auth`. The key is root-only (mode 0600).
pub fn client_cert(ca: &TestCa, cn: &str) -> (PathBuf, PathBuf) {
    signed(
        ca.dir.path(),
        &format!("client-{cn}"),
        cn,
        "extendedKeyUsage=clientAuth\n",
    )
}

/// A member certificate for a `--client-cert-auth` cluster: etcd 3.4's JSON gateway
/// dials its own gRPC server with the member's certificate, so that certificate must be
/// good for client authentication too.
fn member_cert(ca: &TestCa) -> (PathBuf, PathBuf) {
    signed(
        ca.dir.path(),
        "member",
        "localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
}
