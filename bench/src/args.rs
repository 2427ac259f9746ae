//! Command-line options of `pam-bench`.

use super::*;

pub(super) const USAGE: &str =
    "usage: pam-bench [--budget SECS] [--quick] [--only SUBSTRING] [--no-sink] [--keep]
                 [--tmpfs-state] [--tmpfs-etcd] [--exact] [--module PATH]
  --budget SECS   time per case (default 3, spread over 5 interleaved rounds)
  --quick         --budget 0.5 (a smoke run; figures are noisy)
  --only S        only the cases whose key contains S, with the rows they are compared with
                  (keys: permit, totp-store-wrong, ga-noskew-home-hammered, totp-home-steady,
                  ga-wrong, totp-scratch, access-totp-10, redis-right-exec,
                  etcd-right-exec-crypto, enroll, memory, ...)
  --exact         --only names one key exactly, without the rows it is compared with
                  (for profiling one case: valgrind --tool=callgrind, docs/performance.md)
  --no-sink       do not enter a mount namespace; /dev/log is used as found
  --tmpfs-state   put the state file on a tmpfs private to the run, where fsync costs
                  nothing: a diagnostic that separates CPU and syscall cost from the disk
  --tmpfs-etcd    put the etcd members' data directories on a 1 GiB tmpfs private to the
                  run, where Raft's fsyncs cost nothing: a diagnostic that separates the
                  protocol's cost from the disk's, not a supported deployment
  --keep          keep the scratch directory (under /run/pam_totp-bench)
  --module PATH   benchmark this build of pam_totp instead of target/release/libpam_totp.so
Runs as root (mount namespace, GA's user=root file).";

pub(super) struct Opts {
    pub(super) budget: Duration,
    pub(super) only: Option<String>,
    pub(super) exact: bool,
    pub(super) sink: bool,
    pub(super) tmpfs_state: bool,
    pub(super) tmpfs_etcd: bool,
    pub(super) keep: bool,
    pub(super) module: Option<PathBuf>,
}

pub(super) fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        budget: Duration::from_secs(3),
        only: None,
        exact: false,
        sink: true,
        tmpfs_state: false,
        tmpfs_etcd: false,
        keep: false,
        module: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--budget" => {
                let v = it.next().ok_or("--budget needs a value")?;
                let secs: f64 = v.parse().map_err(|e| format!("--budget: {e}"))?;
                if !(0.05..=600.0).contains(&secs) {
                    return Err("--budget: between 0.05 and 600 seconds".into());
                }
                o.budget = Duration::from_secs_f64(secs);
            }
            "--quick" => o.budget = Duration::from_millis(500),
            "--only" => o.only = Some(it.next().ok_or("--only needs a value")?.clone()),
            "--exact" => o.exact = true,
            "--no-sink" => o.sink = false,
            "--keep" => o.keep = true,
            "--tmpfs-state" => o.tmpfs_state = true,
            "--tmpfs-etcd" => o.tmpfs_etcd = true,
            "--module" => {
                let p = PathBuf::from(it.next().ok_or("--module needs a path")?);
                o.module = Some(std::path::absolute(&p).map_err(|e| format!("--module: {e}"))?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.tmpfs_state && !o.sink {
        return Err("--tmpfs-state needs the mount namespace (drop --no-sink)".into());
    }
    if o.tmpfs_etcd && !o.sink {
        return Err("--tmpfs-etcd needs the mount namespace (drop --no-sink)".into());
    }
    Ok(o)
}

impl Opts {
    pub(super) fn wants(&self, key: &str) -> bool {
        match self.only.as_deref() {
            None => true,
            Some(s) if self.exact => key == s,
            Some(s) => key.contains(s),
        }
    }
}
