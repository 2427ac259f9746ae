//! `pam-bench`, run by `make bench`: pam_totp measured against pam_permit (the libpam
//! floor), Debian's pam_google_authenticator and pam_access, through the real libpam,
//! in one process. Method and figures: docs/performance.md.
//!
//! Every timed iteration is one `pam_start_confdir` → `pam_authenticate` → `pam_end`
//! (the module is loaded and unloaded each time, as in a login process), with `PAM_RHOST`
//! set and a scripted answer. The primary rows log in a normal user (`user.rs`: an
//! account that exists only in the benchmark's mount namespace) in store mode and in
//! home mode; root authenticating as root, which skips the group lookup and the
//! credential switch, is kept as a secondary section. Before each iteration, outside
//! the timed region, the case's refresh puts its starting state in place (`Refresh`): a
//! fresh secret file and an empty pam_totp record (a first failure, an unused code); a
//! user with history at a new step (earlier `DISALLOW_REUSE`/`RATE_LIMIT` entries, a
//! record with an earlier TOTP mark); or nothing at all for a hammered wrong code, which
//! meets the throttle its own earlier iterations set off. Cases run interleaved in
//! rounds so background load spreads evenly over them. Limits are printed, not
//! enforced. A few right-code rows run each login in a freshly exec'd child instead
//! (`login.rs`), since a real login's process loads the shared-store plugins afresh.

mod args;
mod cases;
mod etcd;
mod fleet;
mod footprint;
mod login;
mod memory;
mod report;
mod sandbox;
mod user;
mod wire;

use args::*;
use cases::*;
use report::*;

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pamapp::{Item, Scripted, Transaction, code_name, codes};
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::secret::Secret;

/// Every module authenticates root against a root-owned 0600 file in a 0700 directory:
/// what GA's `user=` mode needs when the benchmark runs as root.
pub const USER: &str = "root";
/// The remote address of every login (TEST-NET-1), matched by the last access rule.
pub const RHOST: &str = "192.0.2.10";

/// One login as every bench transaction runs it: `pam_start_confdir` on `confdir` for
/// `service` and `user`, `PAM_RHOST` set to [`RHOST`], `pam_authenticate`, `pam_end`.
/// The result code and the number of prompts shown.
pub fn authenticate_once(
    confdir: &Path,
    service: &str,
    user: &str,
    conv: Box<dyn pamapp::Conversation>,
) -> Result<(i32, usize), pamapp::StartError> {
    let mut tx = Transaction::start(service, Some(user), Some(confdir), conv)?;
    tx.set_item(Item::RHost, RHOST.as_bytes());
    let rc = tx.authenticate(0);
    Ok((rc, tx.prompt_count()))
}
const SECRET: &[u8; 20] = b"pam-bench-secret-160";
const SCRATCH: [&str; 5] = ["31415926", "27182818", "14142135", "17320508", "22360679"];
const ACCESS_SIZES: [usize; 3] = [10, 1_000, 10_000];
const ENROLL_RUNS: usize = 30;
const ROUNDS: u32 = 5;
const WARMUP: usize = 3;

struct Bench {
    opts: Opts,
    /// target/release (the bench binary, the module and totp-enroll).
    release: PathBuf,
    scratch: PathBuf,
    confdir: PathBuf,
    state: PathBuf,
    state_contents: Vec<u8>,
    /// The secret file of a user with history: earlier `DISALLOW_REUSE` steps and
    /// `RATE_LIMIT` times, as GA leaves it after some logins.
    steady_contents: Vec<u8>,
    /// The normal user's home, when the namespace could give it one.
    normal: Option<user::NormalUser>,
    /// pam_totp's record of the normal user after a real login, its TOTP mark moved a
    /// few steps back: what "a user with a record, at a new step" meets.
    steady_record: Option<totp_core::state::UserState>,
    /// pam_totp's state directory (`state_dir=`).
    store: totp_os::state_dir::StateDir,
    secret: Secret,
    wrong_code: String,
    sink: sandbox::Sink,
    rewrite_samples: Vec<Duration>,
    /// The shared-store rows (`totp-redis`); `None` without `redis-server`.
    redis: Option<fleet::BenchRedis>,
    /// The etcd rows (`totp-etcd`); `None` without `etcd`.
    etcd: Option<etcd::BenchEtcd>,
}

/// Minor page faults of the calling thread so far.
fn minor_faults() -> u64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return 0;
    }
    u64::try_from(ru.ru_minflt).unwrap_or(0)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Writes `contents` to `dir/name` durably: temp file, fsync, rename, directory fsync;
/// owned by `owner` (uid and its private gid) when given, else by root.
fn durable_write(
    dir: &Path,
    name: &str,
    contents: &[u8],
    owner: Option<u32>,
) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.bench-tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    if let Some(uid) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(uid))?;
    }
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// A 6-digit code that matches no step within ±1600 steps (±13 h) of now, so not even
/// GA's ±1500-step skew search finds it during the run.
fn pick_wrong_code(secret: &Secret) -> String {
    let step = otp::totp_step(now_unix(), 30).unwrap_or(0);
    let lo = step.saturating_sub(1600);
    let near: std::collections::HashSet<u32> = (lo..=step + 1600)
        .map(|t| otp::hotp(secret, t, Algorithm::Sha1, Digits::SIX))
        .collect();
    let mut c = 314_159u32;
    while near.contains(&c) {
        c = (c + 1) % 1_000_000;
    }
    otp::format_code(c, Digits::SIX).to_string()
}

/// The secret file of a user with history (GA's `DISALLOW_REUSE` and `RATE_LIMIT`
/// lines holding earlier entries): steps and times well before any the run meets.
fn steady_text(initial: &str) -> Vec<u8> {
    let now = now_unix();
    let step = otp::totp_step(now, 30).unwrap_or(0);
    let extra = format!(
        "\" RATE_LIMIT 3 30 {} {}\n",
        now.saturating_sub(400),
        now.saturating_sub(300)
    );
    // GA keeps the line's steps after the keyword, and the rate limit right after the
    // secret, where google-authenticator writes it.
    let mut lines: Vec<String> = initial.lines().map(str::to_owned).collect();
    for l in &mut lines {
        if l == "\" DISALLOW_REUSE" {
            *l = format!(
                "\" DISALLOW_REUSE {} {}",
                step.saturating_sub(12),
                step.saturating_sub(11)
            );
        }
    }
    lines.insert(1, extra.trim_end().to_owned());
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

/// `n` rules in the pam_access syntax both modules read; none but the last matches
/// [`RHOST`], so both must go through the whole file. Users are `ALL` everywhere: the
/// cheapest case for pam_access (no user or group lookups per rule).
fn access_rules(n: usize) -> String {
    let mut s = String::from("# pam-bench: only the last rule matches\n");
    for i in 0..n.saturating_sub(1) {
        let (a, b) = (i / 250 % 250 + 1, i % 250 + 1);
        let _ = match i % 4 {
            0 => writeln!(s, "+ : ALL : 10.{a}.{b}.0/24"),
            1 => writeln!(s, "- : ALL : 172.16.{a}.{b}"),
            2 => writeln!(s, "+ : ALL : 2001:db8:{a:x}:{b:x}::/64"),
            _ => writeln!(s, "+ : ALL : 198.51.{a}.{b} 203.0.{a}.{b}/32"),
        };
    }
    s.push_str("+ : ALL : 192.0.2.0/24\n");
    s
}

impl Bench {
    fn setup(opts: Opts, sink: sandbox::Sink) -> Result<Bench, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let release = exe
            .parent()
            .ok_or("the binary has no directory")?
            .to_path_buf();
        let module = opts
            .module
            .clone()
            .unwrap_or_else(|| release.join("libpam_totp.so"));
        if !module.exists() {
            return Err(format!(
                "{} not found: build it first (make bench does)",
                module.display()
            ));
        }
        // Not below the checkout: the module refuses a state directory below one anyone
        // can write (a checkout under /tmp), and an access-rule file below any directory
        // that is not root's and closed to others; the bench runs as root anyway.
        let base = PathBuf::from("/run/pam_totp-bench");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)
            .map_err(|e| format!("create {}: {e}", base.display()))?;
        let scratch = base.join(format!("run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&scratch)
            .map_err(|e| format!("create {}: {e}", scratch.display()))?;
        let confdir = scratch.join("pam");
        let secrets = scratch.join("secrets");
        for d in [&confdir, &secrets] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        if opts.tmpfs_state {
            sandbox::mount_tmpfs(&secrets, "1m")?;
        }
        let state = secrets.join("state");
        let state_dir = secrets.join("pam_totp-state");
        let secret = Secret::from_slice(SECRET);
        // What `totp-enroll -t -d -W -u -C -f` (and google-authenticator) write.
        let mut text = totp_core::base32::encode(SECRET);
        text.push_str("\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
        for c in SCRATCH {
            text.push_str(c);
            text.push('\n');
        }
        let wrong_code = pick_wrong_code(&secret);
        let s = state.display();
        let m = format!("{} state_dir={}", module.display(), state_dir.display());
        let normal = if sink.installed {
            Some(user::install(&scratch)?)
        } else {
            eprintln!("--no-sink: no private namespace, so no normal user; root rows only");
            None
        };
        let sd = secrets.display();
        let mut services = vec![
            ("other", "auth required pam_deny.so".to_string()),
            ("permit", "auth required pam_permit.so".to_string()),
            (
                "ga",
                format!("auth required pam_google_authenticator.so user=root secret={s}"),
            ),
            (
                "ga-noskew",
                format!("auth required pam_google_authenticator.so user=root secret={s} noskewadj"),
            ),
            ("totp", format!("auth required {m} user=root secret={s}")),
            // The normal user: store mode (a root-owned file named after the user) and
            // home mode (each module's default, ~/.google_authenticator).
            (
                "ga-store",
                format!(
                    "auth required pam_google_authenticator.so user=root secret={sd}/${{USER}}"
                ),
            ),
            (
                "ga-noskew-store",
                format!(
                    "auth required pam_google_authenticator.so user=root secret={sd}/${{USER}} noskewadj"
                ),
            ),
            (
                "totp-store",
                format!("auth required {m} user=root secret={sd}/${{USER}}"),
            ),
            (
                "ga-home",
                "auth required pam_google_authenticator.so".into(),
            ),
            (
                "ga-noskew-home",
                "auth required pam_google_authenticator.so noskewadj".into(),
            ),
            ("totp-home", format!("auth required {m}")),
            // Loaded by pam_start and unloaded by pam_end, never called: the dynamic
            // loading cost alone.
            (
                "ga-load",
                format!(
                    "auth sufficient pam_permit.so\nauth required pam_google_authenticator.so user=root secret={s}"
                ),
            ),
            (
                "totp-load",
                format!("auth sufficient pam_permit.so\nauth required {m} user=root secret={s}"),
            ),
        ];
        // The skip is measured for the normal user in home mode; root's store-mode line
        // stands in without the namespace.
        let totp_line = if normal.is_some() {
            m.clone()
        } else {
            format!("{m} user=root secret={s}")
        };
        let mut access = Vec::new();
        for n in ACCESS_SIZES {
            let rules = scratch.join(format!("access-{n}.conf"));
            fs::write(&rules, access_rules(n))
                .map_err(|e| format!("write {}: {e}", rules.display()))?;
            let r = rules.display();
            access.push((
                format!("access-pam-{n}"),
                format!("auth required pam_access.so accessfile={r}"),
            ));
            access.push((
                format!("access-totp-{n}"),
                format!("auth required {totp_line} accessfile={r}"),
            ));
            // Control: the same rules with a `-` last rule. pam_access grants when no rule
            // matches, so only a denial here proves it read down to the last line.
            let control = scratch.join(format!("access-{n}-control.conf"));
            let text = access_rules(n).replace("+ : ALL : 192.0.2.0/24", "- : ALL : 192.0.2.0/24");
            fs::write(&control, text).map_err(|e| format!("write {}: {e}", control.display()))?;
            let c = control.display();
            access.push((
                format!("control-pam-{n}"),
                format!("auth required pam_access.so accessfile={c}"),
            ));
            access.push((
                format!("control-totp-{n}"),
                format!("auth required {totp_line} accessfile={c}"),
            ));
        }
        services.extend(access.iter().map(|(n, l)| (n.as_str(), l.clone())));
        let redis = fleet::BenchRedis::start(&scratch, &release)?;
        if let Some(r) = &redis {
            services.push((
                "totp-redis",
                format!("auth required {m} user=root secret={s} {}", r.options()),
            ));
        }
        // Three idle members still wake both cores for their heartbeats: a run whose
        // `--only` selects no etcd row does without them, so they do not weigh on the
        // round trips of the rows it measures.
        let wants_etcd = cases::auth_cases(&wrong_code, true)
            .iter()
            .any(|c| c.key.starts_with("etcd-") && opts.wants(&c.key));
        let etcd = if wants_etcd || opts.tmpfs_etcd {
            etcd::BenchEtcd::start(&scratch, &release, opts.tmpfs_etcd)?
        } else {
            None
        };
        if opts.tmpfs_etcd && etcd.is_none() {
            return Err("--tmpfs-etcd: etcd and etcdctl are not installed".into());
        }
        if let Some(e) = &etcd {
            services.push((
                "totp-etcd",
                format!("auth required {m} user=root secret={s} {}", e.options()),
            ));
        }
        for (name, line) in &services {
            fs::write(confdir.join(name), format!("{line}\n"))
                .map_err(|e| format!("write service {name}: {e}"))?;
        }
        let mut b = Bench {
            opts,
            release,
            scratch,
            confdir,
            state,
            steady_contents: steady_text(&text),
            state_contents: text.into_bytes(),
            normal,
            steady_record: None,
            store: totp_os::state_dir::StateDir::new(&state_dir, Duration::from_secs(5)),
            secret,
            wrong_code,
            sink,
            rewrite_samples: Vec::new(),
            redis,
            etcd,
        };
        b.refresh(Who::Root, Refresh::Fresh, Shared::None)?;
        if b.normal.is_some() {
            b.capture_steady_record()?;
            // Both of the normal user's files exist from the start, so that a case that
            // never refreshes (hammering) finds them when it runs alone (--only).
            b.refresh(Who::Store, Refresh::Fresh, Shared::None)?;
            b.refresh(Who::Home, Refresh::Fresh, Shared::None)?;
        }
        Ok(b)
    }

    /// One real login of the normal user, untimed; its record, with the TOTP mark moved
    /// back by three steps, is what every steady-state iteration starts from.
    fn capture_steady_record(&mut self) -> Result<(), String> {
        use totp_core::state::StateStore;
        self.refresh(Who::Store, Refresh::Fresh, Shared::None)?;
        let conv = Scripted::texts([self.totp_now()]);
        let (rc, _) = authenticate_once(&self.confdir, "totp-store", user::NAME, Box::new(conv))
            .map_err(|e| format!("totp-store: {e}"))?;
        if rc != codes::SUCCESS {
            return Err(format!(
                "the normal user's first login failed ({}): no steady-state record",
                code_name(rc)
            ));
        }
        let mut record = self
            .store
            .read(user::UID)
            .map_err(|e| format!("read the normal user's record: {e}"))?;
        let mut moved = false;
        for (_, marks) in &mut record.marks {
            if let Some(t) = marks.totp_until.as_mut() {
                *t = t.saturating_sub(90);
                moved = true;
            }
        }
        if !moved {
            return Err("the normal user's record holds no TOTP mark after a login".into());
        }
        self.steady_record = Some(record);
        Ok(())
    }

    /// Rewrites what a row's logins start from (untimed), in the row's shared store too
    /// (see [`Bench::flush_shared`]).
    fn refresh(&mut self, who: Who, kind: Refresh, shared: Shared) -> Result<(), String> {
        use totp_core::state::{StateStore, UserState, Write};
        if kind == Refresh::Keep {
            return Ok(());
        }
        let contents = match kind {
            Refresh::Steady => &self.steady_contents,
            _ => &self.state_contents,
        };
        let t0 = Instant::now();
        let uid = match who {
            Who::Root => {
                let dir = self.state.parent().unwrap_or(Path::new("."));
                durable_write(dir, "state", contents, None)
                    .map_err(|e| format!("rewrite the state file: {e}"))?;
                0
            }
            Who::Store => {
                let dir = self.state.parent().unwrap_or(Path::new("."));
                durable_write(dir, user::NAME, contents, None)
                    .map_err(|e| format!("rewrite the store-mode secret file: {e}"))?;
                user::UID
            }
            Who::Home => {
                let home = &self.normal.as_ref().ok_or("no normal user")?.home;
                durable_write(home, ".google_authenticator", contents, Some(user::UID))
                    .map_err(|e| format!("rewrite the home-mode secret file: {e}"))?;
                user::UID
            }
            // No file: only the record the module charges the name's failures to, so
            // each iteration is a first failure, as in the wrong code's fresh rows.
            // It is chosen under the store's key, created here if no login has yet.
            Who::Unknown { .. } => {
                let context = self
                    .store
                    .context(totp_core::state::Missing::Create { complete_since: 0 })
                    .map_err(|e| format!("the store's key: {e}"))?
                    .ok_or("the store's key vanished")?;
                totp_core::ledger::StandIn::new(&context.key, user::UNKNOWN.as_bytes()).uid
            }
        };
        let record = match (kind, &self.steady_record) {
            (Refresh::Steady, Some(r)) => r.clone(),
            (Refresh::Steady, None) => return Err("no steady-state record captured".into()),
            _ => UserState::default(),
        };
        self.store
            .update(uid, &mut |_| Write::Durable(record.clone()))
            .map_err(|e| format!("reset pam_totp's state record: {e}"))?;
        self.rewrite_samples.push(t0.elapsed());
        self.flush_shared(shared)
    }

    /// Deletes the benchmarked user's record in the shared store a row uses, so that
    /// each of its right codes is fresh there too. Only that row's store: a local row
    /// runs with both servers left alone, as on a host that uses neither.
    fn flush_shared(&self, shared: Shared) -> Result<(), String> {
        match (shared, &self.redis, &self.etcd) {
            (Shared::Redis, Some(r), _) => r.flush(),
            (Shared::Etcd, _, Some(e)) => e.flush(),
            (Shared::None, _, _) => Ok(()),
            _ => Err("a shared-store row without its server".into()),
        }
    }

    fn totp_now(&self) -> String {
        let v = otp::totp(&self.secret, now_unix(), 30, Algorithm::Sha1, Digits::SIX).unwrap_or(0);
        otp::format_code(v, Digits::SIX).to_string()
    }

    fn answer(&self, a: &Answer) -> Vec<String> {
        match a {
            Answer::None => Vec::new(),
            Answer::Fixed(s) => vec![s.clone()],
            Answer::TotpNow => vec![self.totp_now()],
        }
    }

    /// Runs iterations of `case` until `deadline` or `max` iterations.
    fn batch(&mut self, case: &mut Case, deadline: Instant, max: usize) -> Result<(), String> {
        let before = self.sink.settled_count();
        let faults_before = minor_faults();
        for i in 0..max + case.prime {
            if Instant::now() >= deadline {
                break;
            }
            self.refresh(case.who, case.refresh, case.shared())?;
            let (dt, rc, prompts) = match case.process {
                Process::Bench => {
                    let conv = Scripted::texts(self.answer(&case.answer));
                    let t0 = Instant::now();
                    let (rc, prompts) = authenticate_once(
                        &self.confdir,
                        &case.service,
                        case.who.user(),
                        Box::new(conv),
                    )
                    .map_err(|e| format!("{}: {e}", case.key))?;
                    (t0.elapsed(), rc, prompts)
                }
                Process::Fresh { libcrypto } => {
                    let answer = self.answer(&case.answer).pop();
                    let o = login::spawn(
                        &self.confdir,
                        &case.service,
                        case.who.user(),
                        answer.as_deref(),
                        libcrypto,
                    )
                    .map_err(|e| format!("{}: {e}", case.key))?;
                    // The child's faults are not this thread's: counted here instead.
                    case.faults += o.faults;
                    (o.elapsed, o.rc, o.prompts)
                }
            };
            let ok = match case.expect {
                Expect::Success => rc == codes::SUCCESS,
                Expect::Denied => rc != codes::SUCCESS && prompts == 1,
                Expect::Skipped => prompts == 0,
            };
            if !ok {
                return Err(format!(
                    "{}: unexpected result {} after {prompts} prompt(s); the figures would be meaningless \
                     (run with --keep and look at the files under {})",
                    case.key,
                    code_name(rc),
                    self.scratch.display()
                ));
            }
            if i < case.prime {
                // Re-establishes the throttle (hammering): not a sample.
                case.primed += 1;
            } else if case.skipped_warmup < WARMUP {
                case.skipped_warmup += 1;
            } else {
                case.samples.push(dt);
            }
        }
        if case.process == Process::Bench {
            case.faults += minor_faults().saturating_sub(faults_before);
        }
        case.logs += self.sink.settled_count().saturating_sub(before);
        Ok(())
    }
}

struct Enroll {
    ours_ms: Option<f64>,
    ga_ms: Option<f64>,
}

fn time_runs(dir: &Path, mut cmd: impl FnMut(&Path) -> Command) -> Option<f64> {
    let mut samples = Vec::new();
    for i in 0..ENROLL_RUNS {
        let file = dir.join(format!("enroll-{i}"));
        let mut c = cmd(&file);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = Instant::now();
        let ok = c.status().map(|s| s.success()).unwrap_or(false);
        let dt = t0.elapsed();
        if !ok || !file.exists() {
            return None;
        }
        samples.push(dt);
        let _ = fs::remove_file(&file);
    }
    percentile(&samples, 50).map(|us| us / 1000.0)
}

fn enrollment(b: &Bench) -> Enroll {
    let dir = b.scratch.join("enroll");
    if fs::DirBuilder::new().mode(0o700).create(&dir).is_err() {
        return Enroll {
            ours_ms: None,
            ga_ms: None,
        };
    }
    let flags = ["-t", "-d", "-W", "-u", "-C", "-f"];
    let ours = b.release.join("totp-enroll");
    let ours_ms = time_runs(&dir, |file| {
        let mut c = Command::new(&ours);
        c.args(flags)
            .args(["--non-interactive", "-Q", "NONE", "-s"])
            .arg(file);
        c
    });
    let ga_ms = time_runs(&dir, |file| {
        let mut c = Command::new("google-authenticator");
        c.args(flags).args(["-Q", "NONE", "-s"]).arg(file);
        c
    });
    Enroll { ours_ms, ga_ms }
}

#[derive(Default)]
struct Mem {
    hwm_kib: Option<u64>,
    anon_kib: Option<u64>,
    file_kib: Option<u64>,
    path: Option<String>,
}

fn memory_of(b: &mut Bench, service: &str, needle: &str, answer: &Answer) -> Result<Mem, String> {
    b.refresh(Who::Root, Refresh::Fresh, Shared::None)?;
    let answer = b.answer(answer).pop().unwrap_or_else(|| "-".into());
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .arg("--memory-child")
        .arg(&b.confdir)
        .args([service, needle, &answer])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("memory child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "memory child for {service} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut m = Mem::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        match k {
            "hwm_delta_kib" => m.hwm_kib = v.parse().ok(),
            "anon_delta_kib" => m.anon_kib = v.parse().ok(),
            "file_delta_kib" => m.file_kib = v.parse().ok(),
            "module_path" => m.path = Some(v.to_owned()),
            _ => {}
        }
    }
    Ok(m)
}

fn run(opts: Opts) -> Result<(), String> {
    let sink = if opts.sink {
        sandbox::isolate()?
    } else {
        sandbox::Sink::none()
    };
    let mut b = Bench::setup(opts, sink)?;
    let result = run_all(&mut b);
    // The members hold their data directories open: stopped before those go.
    drop(b.etcd.take());
    if b.opts.keep {
        eprintln!("scratch directory kept: {}", b.scratch.display());
    } else {
        if b.opts.tmpfs_state {
            sandbox::unmount(b.state.parent().unwrap_or(&b.scratch));
        }
        if b.opts.tmpfs_etcd {
            sandbox::unmount(&etcd::data_root(&b.scratch));
        }
        let _ = fs::remove_dir_all(&b.scratch);
    }
    sandbox::release_staging();
    result
}

fn run_all(b: &mut Bench) -> Result<(), String> {
    let every_access = access_cases();
    // A wanted pam_totp row brings the pam_access row it is compared with.
    let wanted_refs: Vec<String> = every_access
        .iter()
        .filter(|c| b.opts.wants(&c.key))
        .filter_map(|c| c.reference.clone())
        .collect();
    let mut access: Vec<Case> = every_access
        .into_iter()
        .filter(|c| b.opts.wants(&c.key) || (!b.opts.exact && wanted_refs.contains(&c.key)))
        .collect();
    if b.normal.is_none() {
        for c in &mut access {
            c.who = Who::Root;
            c.group =
                "skip by access rules (root, store mode: no normal user without the namespace)";
        }
    }
    // The ratios need the floor and the reference row of the same run.
    let mut all = auth_cases(&b.wrong_code, b.normal.is_some());
    if b.redis.is_none() {
        eprintln!("redis-server not installed: no Redis rows");
        all.retain(|c| !c.key.starts_with("redis-"));
    }
    if b.etcd.is_none() {
        // Not started when `--only` selects no etcd row (see `main`).
        if all
            .iter()
            .any(|c| c.key.starts_with("etcd-") && b.opts.wants(&c.key))
        {
            eprintln!("etcd not installed: no etcd rows");
        }
        all.retain(|c| !c.key.starts_with("etcd-"));
    }
    let mut keep: Vec<String> = Vec::new();
    for c in all.iter().filter(|c| b.opts.wants(&c.key)) {
        keep.push(c.key.clone());
        if b.opts.exact {
            continue;
        }
        keep.push("permit".into());
        keep.push(c.process.floor().into());
        keep.extend(c.reference.clone());
        // B2's unknown user is printed against the wrong code of the same service.
        if let Some(service) = c.key.strip_suffix("-unknown") {
            keep.push(format!("{service}-wrong"));
        }
        // The Redis rows are judged against the local store.
        if let Some(scenario) = c
            .key
            .strip_prefix("redis-")
            .or_else(|| c.key.strip_prefix("etcd-"))
        {
            keep.push(format!("totp-{scenario}"));
        }
    }
    if !access.is_empty() && !b.opts.exact {
        keep.push("permit".into());
    }
    let mut auth: Vec<Case> = all.into_iter().filter(|c| keep.contains(&c.key)).collect();
    println!(
        "pam-bench: libpam in-process, pam_start_confdir → pam_authenticate → pam_end per iteration"
    );
    println!("{}", machine(b));
    println!(
        "syslog: {}; wrong code {}; users {} (uid {}) and {USER}, PAM_RHOST {RHOST}; budget {:.1} s per case in {ROUNDS} interleaved rounds",
        if b.sink.installed {
            "private /dev/log datagram sink in a mount namespace"
        } else {
            "/dev/log as found (--no-sink)"
        },
        b.wrong_code,
        user::NAME,
        user::UID,
        b.opts.budget.as_secs_f64()
    );
    if b.etcd.is_some() {
        println!(
            "etcd members' data on: {}",
            sandbox::fs_type(&etcd::data_root(&b.scratch))
        );
    }
    if b.opts.tmpfs_etcd {
        println!(
            "--tmpfs-etcd: the etcd members' data directories are on a tmpfs (size={}) private to this run, \
             so Raft's fsyncs cost nothing. A DIAGNOSTIC that separates the protocol's cost from the \
             disk's, not a supported deployment: members that lose their logs at a power cut lose \
             committed writes.",
            etcd::TMPFS_SIZE
        );
    }
    eprintln!(
        "authentication cases ({}), then access rules ({})",
        auth.len(),
        access.len()
    );
    run_cases(b, &mut auth)?;
    let wire = wire_floors(b)?;
    // The rewrites done for the authentication cases are the "durable write" figure.
    let rewrite = percentile(&b.rewrite_samples, 50);
    check_access_controls(b, &access)?;
    run_cases(b, &mut access)?;

    let enroll = b.opts.wants("enroll").then(|| enrollment(b));
    let mut mems = Vec::new();
    if b.opts.wants("memory") {
        for (name, service, needle, answer) in [
            ("pam_permit.so", "permit", "pam_permit", Answer::None),
            (
                "pam_google_authenticator.so",
                "ga",
                "pam_google_authenticator",
                Answer::TotpNow,
            ),
            ("pam_totp.so", "totp", "libpam_totp", Answer::TotpNow),
        ] {
            mems.push((name, memory_of(b, service, needle, &answer)?));
        }
    }

    println!();
    print_table(&auth, &access);
    println!();
    print_wire_floors(&wire);
    println!(
        "durable rewrite of the state file (temp + fsync + rename + dir fsync, done by the bench between iterations): median {}",
        fmt_us(rewrite)
    );
    if let Some(e) = &enroll {
        println!(
            "enrollment wall time (totp-enroll -t -d -W -u -C -f --non-interactive -Q NONE -s FILE, median of {ENROLL_RUNS}): {}; google-authenticator same flags: {}; ratio {}",
            e.ours_ms.map_or("failed".into(), |v| format!("{v:.2} ms")),
            e.ga_ms.map_or("n/a".into(), |v| format!("{v:.2} ms")),
            fmt_ratio(ratio(e.ours_ms, e.ga_ms)),
        );
    }
    let so = b.release.join("libpam_totp.so");
    let mut stripped_kib = None;
    if let Ok(m) = fs::metadata(&so) {
        let stripped = stripped_size(b, &so);
        stripped_kib = stripped.map(|s| s / 1024);
        let ga_size = mems
            .iter()
            .find(|(n, _)| n.starts_with("pam_google"))
            .and_then(|(_, m)| m.path.as_deref())
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| m.len());
        println!(
            "module size: libpam_totp.so {} KiB (stripped {}); pam_google_authenticator.so {}",
            m.len() / 1024,
            stripped.map_or("n/a".into(), |s| format!("{} KiB", s / 1024)),
            ga_size.map_or("n/a".into(), |s| format!("{} KiB", s / 1024)),
        );
        size_breakdown(&so);
    }
    if b.opts.wants("memory") {
        footprint::report(&b.release, |p| stripped_size(b, p));
    }
    for (name, m) in &mems {
        let kib = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v} KiB"));
        println!(
            "memory, one authentication in a warm process: {name}: peak RSS +{}, while prompting RSS +{} anon, +{} file-backed",
            kib(m.hwm_kib),
            kib(m.anon_kib),
            kib(m.file_kib),
        );
    }

    println!();
    println!("limits of issue 23, for the normal user (printed, not enforced):");
    let permit = median_of(&auth, "permit");
    for mode in ["store", "home"] {
        for (scenario, what) in [("wrong", "fresh"), ("hammered", "throttled")] {
            let ours = median_of(&auth, &format!("totp-{mode}-{scenario}"));
            goal(
                &format!("{mode} mode: wrong code, {what} ≤ 2.0× pam_permit"),
                ratio(ours, permit),
                2.0,
                true,
            );
            goal(
                &format!("{mode} mode: wrong code, {what} ≤ 1.2× GA noskewadj"),
                ratio(
                    ours,
                    median_of(&auth, &format!("ga-noskew-{mode}-{scenario}")),
                ),
                1.2,
                true,
            );
        }
        goal(
            &format!("{mode} mode: right code, steady state ≤ 0.6× GA DISALLOW_REUSE+RATE_LIMIT"),
            ratio(
                median_of(&auth, &format!("totp-{mode}-steady")),
                median_of(&auth, &format!("ga-{mode}-steady")),
            ),
            0.6,
            true,
        );
    }
    goal(
        "skip by 10 access rules (home mode) ≤ 1.5× pam_access",
        ratio(
            median_of(&access, "access-totp-10"),
            median_of(&access, "access-pam-10"),
        ),
        1.5,
        true,
    );
    match stripped_kib {
        Some(kib) => goal(
            "stripped module ≤ 600 KiB",
            Some(kib as f64 / 600.0),
            1.0,
            true,
        ),
        None => goal("stripped module ≤ 600 KiB", None, 1.0, true),
    }
    println!();
    println!("earlier goals, root as root (printed, not enforced):");
    let totp_wrong = median_of(&auth, "totp-wrong");
    goal(
        "wrong code ≤ 1.5× pam_permit",
        ratio(totp_wrong, permit),
        1.5,
        true,
    );
    goal(
        "right code ≤ 1.0× GA default",
        ratio(median_of(&auth, "totp-right"), median_of(&auth, "ga-right")),
        1.0,
        true,
    );
    goal(
        "scratch code ≤ 1.0× GA default",
        ratio(
            median_of(&auth, "totp-scratch"),
            median_of(&auth, "ga-scratch"),
        ),
        1.0,
        true,
    );
    goal(
        "right code through Redis ≤ 1.2× the local store",
        ratio(
            median_of(&auth, "redis-right"),
            median_of(&auth, "totp-right"),
        ),
        1.2,
        true,
    );
    fresh_ratios(&auth, "redis");
    best_ratio(&auth, wire.redis.as_ref());
    goal(
        "wrong code through Redis ≤ 1.2× the local store",
        ratio(
            median_of(&auth, "redis-wrong"),
            median_of(&auth, "totp-wrong"),
        ),
        1.2,
        true,
    );
    // Issue 22: a three-member etcd cluster on loopback (every write on a majority).
    goal(
        "right code through etcd ≤ 3× the local store",
        ratio(
            median_of(&auth, "etcd-right"),
            median_of(&auth, "totp-right"),
        ),
        3.0,
        true,
    );
    fresh_ratios(&auth, "etcd");
    best_ratio(&auth, wire.etcd.as_ref());
    goal(
        "10,000 access rules ≤ 0.33× pam_access",
        ratio(
            median_of(&access, "access-totp-10000"),
            median_of(&access, "access-pam-10000"),
        ),
        0.33,
        true,
    );
    println!();
    println!(
        "SECURITY.md B2, a name with no account against the normal user's wrong code (printed; timing is not tested):"
    );
    for mode in ["store", "home"] {
        println!(
            "  {mode} mode: unknown user / wrong code, fresh: {}",
            fmt_ratio(ratio(
                median_of(&auth, &format!("totp-{mode}-unknown")),
                median_of(&auth, &format!("totp-{mode}-wrong")),
            ))
        );
    }
    Ok(())
}

/// The stores alone ([`wire`]), when their rows run: two round trips, then one.
struct WireFloors {
    redis: Option<[Vec<Duration>; 2]>,
    etcd: Option<[Vec<Duration>; 2]>,
}

fn wire_floors(b: &Bench) -> Result<WireFloors, String> {
    let redis = match &b.redis {
        Some(r) if b.opts.wants("redis-right") => {
            let wire = wire::RedisWire::new(r.port(), totp_core::fleet::DEFAULT_PREFIX, USER);
            Some(wire_floor(
                b.opts.budget,
                || r.flush(),
                |trips| wire.once(trips).map_err(|e| format!("Redis alone: {e}")),
            )?)
        }
        _ => None,
    };
    let etcd = match &b.etcd {
        Some(e) if b.opts.wants("etcd-right") => {
            let wire = wire::EtcdWire::new(
                e.first_member(),
                totp_core::fleet::etcd::DEFAULT_ETCD_PREFIX,
                USER,
            );
            Some(wire_floor(
                b.opts.budget,
                || e.flush(),
                |trips| wire.once(trips).map_err(|e| format!("etcd alone: {e}")),
            )?)
        }
        _ => None,
    };
    Ok(WireFloors { redis, etcd })
}

/// One store alone in two round trips, then in one, each after `flush`.
fn wire_floor(
    budget: Duration,
    flush: impl Fn() -> Result<(), String>,
    one: impl Fn(wire::Trips) -> Result<(), String>,
) -> Result<[Vec<Duration>; 2], String> {
    Ok([
        wire::measure(budget, &flush, || one(wire::Trips::Two))?,
        wire::measure(budget, &flush, || one(wire::Trips::One))?,
    ])
}

fn print_wire_floors(w: &WireFloors) {
    if w.redis.is_none() && w.etcd.is_none() {
        return;
    }
    println!(
        "the stores alone, no module (a minimal client in this process doing one login's wire work per iteration, after the row's flush; src/wire.rs):"
    );
    for (what, floors) in [
        (
            [
                "Redis: connect, INFO and two HMGETs in one write, then an EVAL doing the function's reads and write, close",
                "Redis in one round trip: the same four commands in one write",
            ],
            &w.redis,
        ),
        (
            [
                "etcd: connect to the first member, a linearizable read of the two records, a compare-and-put transaction, close",
                "etcd in one request: the compare-and-put alone, the records read in its failure branch",
            ],
            &w.etcd,
        ),
    ] {
        let Some(floors) = floors else {
            continue;
        };
        for (label, s) in what.iter().zip(floors) {
            println!(
                "  {label}: median {}, p90 {}, n {}",
                fmt_us(percentile(s, 50)),
                fmt_us(percentile(s, 90)),
                s.len()
            );
        }
    }
}

/// Under a shared store's goal: the local store's right code plus that store alone,
/// over the local store's right code, with two round trips and with one. No plugin
/// can do better on this machine (it still does the local row's work but for the
/// local store's own update, a small part of that row).
fn best_ratio(auth: &[Case], floors: Option<&[Vec<Duration>; 2]>) {
    let Some([two, one]) = floors else {
        return;
    };
    let local = median_of(auth, "totp-right");
    let best = |floor: &[Duration]| {
        fmt_ratio(ratio(
            local.zip(percentile(floor, 50)).map(|(l, f)| l + f),
            local,
        ))
    };
    println!(
        "      at best, the local store's right code plus the store alone: {} in two round trips, {} in one (printed, no limit)",
        best(two),
        best(one)
    );
}

/// The right code's shared-store/local ratio in the fresh-process rows, printed under
/// the in-process goal with no limit of its own.
fn fresh_ratios(auth: &[Case], store: &str) {
    let of = |sfx: &str| {
        ratio(
            median_of(auth, &format!("{store}-right{sfx}")),
            median_of(auth, &format!("totp-right{sfx}")),
        )
    };
    let (plain, crypto) = (of("-exec"), of("-exec-crypto"));
    if plain.is_none() && crypto.is_none() {
        return;
    }
    println!(
        "      same ratio, a fresh process per login: {}; with libcrypto preloaded as in sshd: {} (printed, no limit)",
        fmt_ratio(plain),
        fmt_ratio(crypto),
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-child") {
        return memory::child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--footprint-child") {
        return footprint::child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(login::ARG) {
        return login::child(&args[1..]);
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "pam-bench: run as root (a mount namespace for the syslog sink, and GA's user=root secret file)"
        );
        return ExitCode::from(2);
    }
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pam-bench: {e}");
            ExitCode::from(1)
        }
    }
}
