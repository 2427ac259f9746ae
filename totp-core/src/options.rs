//! PAM module arguments: all of GA's names with GA's parsing, plus ours.
//!
//! Fail closed (R28): an unknown option, a malformed or out-of-range value, or
//! a flag given a value is an error naming the option, and the module refuses to
//! run. Every value is typed and bounded here, so nothing downstream re-checks.
//! The man page documents each name in [`OPTION_NAMES`].

use std::fmt;

use crate::fleet::FleetOptions;
use crate::policy::{
    DEFAULT_CEILING_BURST, DEFAULT_CEILING_INTERVAL_SECS, DEFAULT_MAX_CLOCK_LAG_SECS,
    DEFAULT_MAX_TIME_SKEW, DEFAULT_MAX_WINDOW, DEFAULT_MIN_SECRET_BITS, DEFAULT_THROTTLE_AFTER,
    DEFAULT_THROTTLE_MAX_SECS, MAX_FAILURES_LIMIT, Policy,
};
use crate::user::{DEFAULT_SECRET_SPEC, UserName};

/// Every accepted option name, without the `=` of valued options.
pub const OPTION_NAMES: &[&str] = &[
    // GA's options.
    "secret",
    "authtok_prompt",
    "user",
    "no_strict_owner",
    "allowed_perm",
    "debug",
    "try_first_pass",
    "use_first_pass",
    "forward_pass",
    "noskewadj",
    "no_increment_hotp",
    "nullok",
    "nullok_missing_home",
    "echo_verification_code",
    "echo-verification-code",
    "grace_period",
    "allow_readonly",
    // Ours.
    "max_window",
    "max_time_skew",
    "min_secret_bits",
    "max_failures",
    "throttle_after",
    "throttle_max",
    "accessfile",
    "allow_any_network",
    "skip_group",
    "require_group",
    "lock_timeout",
    "state",
    "state_dir",
    "ceiling_burst",
    "ceiling_interval",
    "shared_file",
    // Fleets (crate::fleet): state=redis://… and these, parsed there.
    "state_fallback",
    "redis_connect_timeout",
    "redis_timeout",
    "redis_prefix",
    "redis_credentials",
    "redis_ca_file",
    "redis_client_cert",
    "redis_client_key",
    "redis_wait",
    "redis_wait_timeout",
    "redis_ttl",
    "redis_plugin",
    // state=etcd://… and its settings (crate::fleet::etcd).
    "etcd_connect_timeout",
    "etcd_timeout",
    "etcd_prefix",
    "etcd_credentials",
    "etcd_ca_file",
    "etcd_cert_file",
    "etcd_key_file",
    "etcd_plugin",
    "secret_command",
    "secret_command_user",
    "secret_command_timeout",
];

/// GA's default `allowed_perm`.
pub const DEFAULT_ALLOWED_PERM: u32 = 0o600;
/// `allowed_perm` may add read and execute bits only: owner read/write/execute plus
/// group/other read/execute. Neither lets anyone but the owner change the file, and
/// GA's users set them where a file system shows every file with one mode (a CIFS
/// mount's `file_mode`, 0755 by default); group/other write and the special bits stay
/// refused (the file check refuses them whatever the option says).
pub const ALLOWED_PERM_CEILING: u32 = 0o755;
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 4000;
pub const MAX_LOCK_TIMEOUT_MS: u64 = 5000;
/// Longest `grace_period=` accepted (366 days).
pub const MAX_GRACE_PERIOD_SECS: u64 = 366 * 86_400;
/// Longest `throttle_max=` accepted (a day).
pub const MAX_THROTTLE_MAX_SECS: u64 = 86_400;
/// Largest `max_window=` and `max_time_skew=` accepted.
pub const MAX_WINDOW_CAP: u32 = crate::gafile::WIDEST_WINDOW;
pub const MAX_TIME_SKEW_CAP: u32 = DEFAULT_MAX_TIME_SKEW;

/// How long after it was written a used TOTP code may still be accepted by some login
/// if the record's mark were gone, under any options and any secret file: the widest
/// window, plus a `TIME_SKEW` that moved from one end of its range to the other (hosts
/// clamping it differently, the file edited), at the longest step, plus the lag behind
/// the mark a host's clock may have before it counts as a clock fault (a host that far
/// behind reaches the used code that much later).
const MARK_REACH_SECS: u64 = (2 * MAX_TIME_SKEW_CAP as u64 + MAX_WINDOW_CAP as u64 + 1)
    * crate::gafile::LONGEST_STEP_SECS
    + DEFAULT_MAX_CLOCK_LAG_SECS;

const fn larger(a: u64, b: u64) -> u64 {
    if a > b { a } else { b }
}

/// The shortest `redis_ttl=` above 0 accepted, before the per-user ceiling's share
/// ([`ModuleOptions::min_redis_ttl_secs`]): 272460 s (3 days, 3 h, 41 min). A record
/// that expires loses everything in it (R12, R14), and the store record's floor (R34)
/// covers a lost data set, not one lost record; so no record may expire while a login
/// could still read it differently than no record at all. Of what a record without
/// counters holds, the replay marks reach furthest (`MARK_REACH_SECS`); a backoff
/// ends at most `throttle_max=` after the failure that set it, a `RATE_LIMIT` line's
/// attempts count for its interval. Every write refreshes the TTL and each of these is
/// dated at most at its write, so a TTL this long outlives them all.
pub const RECORD_REACH_SECS: u64 = larger(
    MARK_REACH_SECS,
    larger(
        MAX_THROTTLE_MAX_SECS,
        crate::gafile::LONGEST_RATE_LIMIT_SECS,
    ),
);

/// Where the code comes from (`try_first_pass` / `use_first_pass`; last one wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassMode {
    #[default]
    Prompt,
    /// Try `PAM_AUTHTOK` first, then prompt.
    TryFirstPass,
    /// Only `PAM_AUTHTOK`; never prompt.
    UseFirstPass,
}

/// `state=`: which state store keeps replay marks and throttling records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateBackend {
    /// One record file per uid in a local directory (`state_dir=`).
    #[default]
    Local,
    /// A Redis/Valkey server shared by a fleet (`state=redis://…`, `crate::fleet`).
    Redis,
    /// An etcd cluster shared by a fleet (`state=etcd://…`, `crate::fleet::etcd`).
    Etcd,
}

impl StateBackend {
    /// Whether the store is shared by a fleet (every host sees every write).
    pub fn is_shared(self) -> bool {
        self != Self::Local
    }
}

/// `shared_file=`: whether the secret file is read by hosts with another state store (a
/// home shared over NFS by hosts that each keep their own), so that GA's
/// `DISALLOW_REUSE` and `RATE_LIMIT` lines, where the file has them, are kept up to
/// date in it as GA does. The lines are read and obeyed whatever this says; only
/// their writing (and the lock and rewrite it costs a TOTP login) depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SharedFile {
    /// The file's file system is not one known to be local (network and cluster ones,
    /// FUSE, overlayfs, unknown types), asked of the descriptor the file was read
    /// through.
    #[default]
    Auto,
    /// Always (a host whose own logins see the shared homes on a local file system:
    /// the NFS server that exports them is itself a login host).
    Yes,
    /// Never (every host that reads the file shares one state store, `state=`, or
    /// none shares it).
    No,
}

/// `user=`: a uid or a (validated) name to resolve through NSS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    Uid(u32),
    Name(UserName),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleOptions {
    /// `secret=` spec, unexpanded (default `~/.google_authenticator`).
    pub secret: String,
    pub authtok_prompt: Option<String>,
    pub user: Option<UserSpec>,
    pub no_strict_owner: bool,
    /// Effective `allowed_perm` (already limited to [`ALLOWED_PERM_CEILING`]).
    pub allowed_perm: u32,
    /// `allowed_perm=` asked for bits beyond the ceiling; they were dropped.
    pub allowed_perm_masked: bool,
    pub debug: bool,
    pub pass_mode: PassMode,
    pub forward_pass: bool,
    /// Accepted for GA compatibility; skew learning is always off.
    pub noskewadj: bool,
    pub no_increment_hotp: bool,
    pub nullok: bool,
    /// With `nullok`: a user whose home directory itself does not exist is skipped too
    /// (GA's behaviour), a documented weakening: a failed automounter looks the same.
    pub nullok_missing_home: bool,
    pub echo_verification_code: bool,
    pub grace_period_secs: u64,
    /// `grace_period=` asked for more than [`MAX_GRACE_PERIOD_SECS`]; it was clamped.
    pub grace_period_clamped: bool,
    /// `redis_ttl=` asked for less than a record may still protect
    /// ([`ModuleOptions::min_redis_ttl_secs`]); that minimum is used instead.
    pub redis_ttl_raised: bool,
    pub allow_readonly: bool,
    pub max_window: u32,
    pub max_time_skew: u32,
    pub min_secret_bits: u32,
    pub max_failures: Option<u32>,
    pub throttle_after: u32,
    pub throttle_max_secs: u64,
    pub accessfile: Option<String>,
    pub allow_any_network: bool,
    /// `skip_group=` (repeatable, or comma-separated).
    pub skip_groups: Vec<String>,
    /// `require_group=` (repeatable, or comma-separated).
    pub require_groups: Vec<String>,
    pub lock_timeout_ms: u64,
    /// `ceiling_burst=`: failed guesses per origin class before the per-user ceiling bites.
    pub ceiling_burst: u32,
    /// `ceiling_interval=`: seconds per further guess under the per-user ceiling.
    pub ceiling_interval_secs: u64,
    pub state: StateBackend,
    /// `state_dir=`: directory of the local store (default: see `totp_os::state_dir`).
    pub state_dir: Option<String>,
    /// `shared_file=`: whether GA's `DISALLOW_REUSE` and `RATE_LIMIT` lines are kept up
    /// to date in the secret file ([`SharedFile`]).
    pub shared_file: SharedFile,
    /// Shared Redis state and the secret command (`crate::fleet`).
    pub fleet: FleetOptions,
}

impl Default for ModuleOptions {
    fn default() -> Self {
        Self {
            secret: DEFAULT_SECRET_SPEC.to_owned(),
            authtok_prompt: None,
            user: None,
            no_strict_owner: false,
            allowed_perm: DEFAULT_ALLOWED_PERM,
            allowed_perm_masked: false,
            debug: false,
            pass_mode: PassMode::Prompt,
            forward_pass: false,
            noskewadj: false,
            no_increment_hotp: false,
            nullok: false,
            nullok_missing_home: false,
            echo_verification_code: false,
            grace_period_secs: 0,
            grace_period_clamped: false,
            redis_ttl_raised: false,
            allow_readonly: false,
            max_window: DEFAULT_MAX_WINDOW,
            max_time_skew: DEFAULT_MAX_TIME_SKEW,
            min_secret_bits: DEFAULT_MIN_SECRET_BITS,
            max_failures: None,
            throttle_after: DEFAULT_THROTTLE_AFTER,
            throttle_max_secs: DEFAULT_THROTTLE_MAX_SECS,
            accessfile: None,
            allow_any_network: false,
            skip_groups: Vec::new(),
            require_groups: Vec::new(),
            lock_timeout_ms: DEFAULT_LOCK_TIMEOUT_MS,
            ceiling_burst: DEFAULT_CEILING_BURST,
            ceiling_interval_secs: DEFAULT_CEILING_INTERVAL_SECS,
            state: StateBackend::Local,
            state_dir: None,
            shared_file: SharedFile::Auto,
            fleet: FleetOptions::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionError {
    /// Not an option we know: its name only (the part before `=`, shown lossily, at
    /// most [`UNKNOWN_NAME_CHARS`] characters). The value is never kept: a line
    /// mistyped around a password or secret (`secert=…`) must not carry it to syslog.
    Unknown(String),
    /// A known option with a bad value.
    BadValue {
        option: &'static str,
        reason: &'static str,
    },
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(o) => write!(f, "unrecognized option {o:?}"),
            Self::BadValue { option, reason } => write!(f, "invalid {option}= value: {reason}"),
        }
    }
}

impl std::error::Error for OptionError {}

/// How much of an unknown option's name its error keeps.
pub const UNKNOWN_NAME_CHARS: usize = 32;

/// The error for an argument that is no option: its name, bounded, never its value.
fn unknown(arg: &str) -> OptionError {
    let name = arg.split('=').next().unwrap_or_default();
    OptionError::Unknown(name.chars().take(UNKNOWN_NAME_CHARS).collect())
}

pub(crate) fn bad(option: &'static str, reason: &'static str) -> OptionError {
    OptionError::BadValue { option, reason }
}

/// A plain decimal in `min..=max` (no sign, no blanks); the fleet options use it too.
pub(crate) fn decimal(
    option: &'static str,
    v: &str,
    min: u64,
    max: u64,
) -> Result<u64, OptionError> {
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(option, "not a decimal number"));
    }
    let n: u64 = v.parse().map_err(|_| bad(option, "not a decimal number"))?;
    if !(min..=max).contains(&n) {
        return Err(bad(option, "out of range"));
    }
    Ok(n)
}

fn small(option: &'static str, v: &str, min: u32, max: u32) -> Result<u32, OptionError> {
    decimal(option, v, u64::from(min), u64::from(max)).map(|n| n as u32)
}

fn parse_user(v: &str) -> Result<UserSpec, OptionError> {
    if v.is_empty() {
        return Err(bad("user", "empty"));
    }
    if v.as_bytes()[0].is_ascii_digit() {
        // GA would read "123abc" as uid 123; trailing text is refused instead.
        return small("user", v, 0, i32::MAX as u32).map(UserSpec::Uid);
    }
    UserName::parse(v.as_bytes())
        .map(UserSpec::Name)
        .map_err(|_| bad("user", "not a valid user name"))
}

fn parse_perm(v: &str) -> Result<u32, OptionError> {
    if v.is_empty() || !v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad("allowed_perm", "not an octal number"));
    }
    // GA's strtol takes any number of leading zeros (`0000600`).
    let digits = v.trim_start_matches('0');
    if digits.len() > 5 {
        return Err(bad("allowed_perm", "out of range"));
    }
    let n = if digits.is_empty() {
        0
    } else {
        u32::from_str_radix(digits, 8).map_err(|_| bad("allowed_perm", "not an octal number"))?
    };
    if n == 0 || n > 0o7777 {
        return Err(bad("allowed_perm", "out of range"));
    }
    Ok(n)
}

fn push_groups(option: &'static str, v: &str, out: &mut Vec<String>) -> Result<(), OptionError> {
    for g in v.split(',') {
        let ok = !g.is_empty()
            && g.len() <= 256
            && !g.starts_with('-')
            && !g
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == ':' || c == '/');
        if !ok {
            return Err(bad(option, "not a valid group name"));
        }
        out.push(g.to_owned());
    }
    Ok(())
}

/// The kernel's `PATH_MAX`, terminating NUL included: a longer path fails every `open`.
const PATH_MAX: usize = 4096;

/// The one rule for every path-valued module option (`accessfile=`, `state_dir=`, the
/// fleet files, plugins and `secret_command=`): absolute, no `..` component (the path an
/// admin reads on the line is the one opened), no control character (it would garble the
/// log line that names it), shorter than `PATH_MAX`. A `.` component is accepted: it
/// names the same directory, and refusing it would turn an existing `state_dir=/x/./y`
/// line into a denial for everybody on that line after an upgrade.
pub(crate) fn absolute_path(option: &'static str, v: &str) -> Result<String, OptionError> {
    if !v.starts_with('/') || v.len() >= PATH_MAX {
        return Err(bad(option, "not an absolute path shorter than PATH_MAX"));
    }
    if v.split('/').any(|c| c == "..") || v.chars().any(char::is_control) {
        return Err(bad(
            option,
            "contains a .. component or a control character",
        ));
    }
    Ok(v.to_owned())
}

impl ModuleOptions {
    /// Parses the module's `argv`. The same option given twice: the last wins,
    /// except `skip_group=`/`require_group=`, which accumulate.
    pub fn parse(args: &[&[u8]]) -> Result<ModuleOptions, OptionError> {
        let mut o = ModuleOptions::default();
        for raw in args {
            let Ok(arg) = std::str::from_utf8(raw) else {
                return Err(unknown(&String::from_utf8_lossy(raw)));
            };
            o.apply(arg)?;
        }
        o.fleet.check()?;
        if o.nullok_missing_home && !o.nullok {
            return Err(bad("nullok_missing_home", "only meaningful with nullok"));
        }
        o.settle_redis_ttl();
        Ok(o)
    }

    /// The shortest `redis_ttl=` above 0 these options allow: [`RECORD_REACH_SECS`], or
    /// the per-user ceiling's refill time when longer (`ceiling_burst=` ×
    /// `ceiling_interval=`: a ceiling's budget is back in full at most that long after
    /// the failure that last drew on it; until then an expired record would hand out a
    /// fresh budget). Grace entries are left out: losing one only asks for a code again.
    pub fn min_redis_ttl_secs(&self) -> u64 {
        let ceiling = u64::from(self.ceiling_burst).saturating_mul(self.ceiling_interval_secs);
        RECORD_REACH_SECS.max(ceiling)
    }

    /// Raises a `redis_ttl=` that would let a record expire while it still protects
    /// something to [`ModuleOptions::min_redis_ttl_secs`] ([`Self::redis_ttl_raised`]),
    /// and the default where it is shorter (a ceiling of more than 90 days). Raised, not
    /// refused: the TTL only bounds the memory idle records hold, and a value earlier
    /// releases accepted (86400 was the documented example) must not deny every login
    /// after an upgrade.
    fn settle_redis_ttl(&mut self) {
        if self.fleet.redis.is_none() {
            return;
        }
        let floor = self.min_redis_ttl_secs();
        match self.fleet.ttl_secs {
            Some(ttl) if ttl > 0 && ttl < floor => {
                self.fleet.ttl_secs = Some(floor);
                self.redis_ttl_raised = true;
            }
            None if floor > crate::fleet::DEFAULT_TTL_SECS => self.fleet.ttl_secs = Some(floor),
            _ => {}
        }
    }

    fn apply(&mut self, arg: &str) -> Result<(), OptionError> {
        match arg {
            "debug" => self.debug = true,
            "try_first_pass" => self.pass_mode = PassMode::TryFirstPass,
            "use_first_pass" => self.pass_mode = PassMode::UseFirstPass,
            "forward_pass" => self.forward_pass = true,
            "noskewadj" => self.noskewadj = true,
            "no_increment_hotp" => self.no_increment_hotp = true,
            "nullok" => self.nullok = true,
            "nullok_missing_home" => self.nullok_missing_home = true,
            "echo_verification_code" | "echo-verification-code" => {
                self.echo_verification_code = true
            }
            "no_strict_owner" => self.no_strict_owner = true,
            "allow_readonly" => self.allow_readonly = true,
            "allow_any_network" => self.allow_any_network = true,
            _ => {
                let (name, v) = arg.split_once('=').ok_or_else(|| unknown(arg))?;
                match name {
                    "secret" => {
                        if v.is_empty() {
                            return Err(bad("secret", "empty"));
                        }
                        self.secret = v.to_owned();
                    }
                    "authtok_prompt" => self.authtok_prompt = Some(v.to_owned()),
                    "user" => self.user = Some(parse_user(v)?),
                    "allowed_perm" => {
                        let p = parse_perm(v)?;
                        self.allowed_perm = p & ALLOWED_PERM_CEILING;
                        self.allowed_perm_masked = p & !ALLOWED_PERM_CEILING != 0;
                    }
                    "grace_period" => {
                        // GA: empty means 0 (off). GA takes any period that fits a
                        // `long`; a longer one than ours is clamped (a shorter grace
                        // period only asks for a code sooner) rather than refusing a
                        // configuration GA ran with, which would deny everybody.
                        // Digits beyond a `long` are no error to GA either (its strtol
                        // saturates, errno unread): they are the longest period.
                        let n = if v.is_empty() {
                            0
                        } else if v.bytes().all(|b| b.is_ascii_digit()) {
                            v.parse::<u64>().unwrap_or(u64::MAX)
                        } else {
                            return Err(bad("grace_period", "not a decimal number"));
                        };
                        self.grace_period_clamped = n > MAX_GRACE_PERIOD_SECS;
                        self.grace_period_secs = n.min(MAX_GRACE_PERIOD_SECS);
                    }
                    "max_window" => self.max_window = small("max_window", v, 1, MAX_WINDOW_CAP)?,
                    "max_time_skew" => {
                        self.max_time_skew = small("max_time_skew", v, 0, MAX_TIME_SKEW_CAP)?
                    }
                    "min_secret_bits" => {
                        self.min_secret_bits = small("min_secret_bits", v, 80, 8192)?
                    }
                    "max_failures" => {
                        self.max_failures = Some(small("max_failures", v, 1, MAX_FAILURES_LIMIT)?)
                    }
                    "throttle_after" => self.throttle_after = small("throttle_after", v, 1, 100)?,
                    "throttle_max" => {
                        self.throttle_max_secs =
                            decimal("throttle_max", v, 1, MAX_THROTTLE_MAX_SECS)?
                    }
                    "accessfile" => self.accessfile = Some(absolute_path("accessfile", v)?),
                    "skip_group" => push_groups("skip_group", v, &mut self.skip_groups)?,
                    "require_group" => push_groups("require_group", v, &mut self.require_groups)?,
                    "lock_timeout" => {
                        self.lock_timeout_ms = decimal("lock_timeout", v, 0, MAX_LOCK_TIMEOUT_MS)?
                    }
                    "state" if crate::fleet::RedisEndpoint::is_remote(v) => {
                        self.fleet.apply(name, v)?;
                        self.fleet.etcd.endpoints = None;
                        self.state = StateBackend::Redis;
                    }
                    "state" if crate::fleet::EtcdEndpoints::is_etcd(v) => {
                        self.fleet.apply(name, v)?;
                        self.fleet.redis = None;
                        self.state = StateBackend::Etcd;
                    }
                    "state" => {
                        self.state = match v {
                            "local" => StateBackend::Local,
                            _ => return Err(bad("state", "not a known state store")),
                        };
                        self.fleet.redis = None;
                        self.fleet.etcd.endpoints = None;
                    }
                    "state_dir" => self.state_dir = Some(absolute_path("state_dir", v)?),
                    "shared_file" => {
                        self.shared_file = match v {
                            "auto" => SharedFile::Auto,
                            "yes" => SharedFile::Yes,
                            "no" => SharedFile::No,
                            _ => return Err(bad("shared_file", "not auto, yes or no")),
                        }
                    }
                    "ceiling_burst" => self.ceiling_burst = small("ceiling_burst", v, 1, 1000)?,
                    "ceiling_interval" => {
                        self.ceiling_interval_secs = decimal("ceiling_interval", v, 1, 86_400)?
                    }
                    _ if self.fleet.apply(name, v)? => {}
                    _ => return Err(unknown(arg)),
                }
            }
        }
        Ok(())
    }

    /// The admin policy these options describe.
    pub fn policy(&self) -> Policy {
        Policy {
            max_window: self.max_window,
            max_time_skew: self.max_time_skew,
            min_secret_bits: self.min_secret_bits,
            throttle_after: self.throttle_after,
            throttle_max_secs: self.throttle_max_secs,
            max_failures: self.max_failures,
            no_increment_hotp: self.no_increment_hotp,
            grace_period_secs: self.grace_period_secs,
            max_clock_lag_secs: DEFAULT_MAX_CLOCK_LAG_SECS,
            ceiling_burst: self.ceiling_burst,
            ceiling_interval_secs: self.ceiling_interval_secs,
        }
    }

    /// Options that weaken security and deserve a warning at every load (R28).
    pub fn weakening(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.no_strict_owner {
            w.push("no_strict_owner");
        }
        if self.allowed_perm & !DEFAULT_ALLOWED_PERM != 0 || self.allowed_perm_masked {
            w.push("allowed_perm");
        }
        if self.grace_period_secs > 0 {
            w.push("grace_period");
        }
        if self.allow_any_network {
            w.push("allow_any_network");
        }
        if self.nullok_missing_home {
            w.push("nullok_missing_home");
        }
        if self.max_window > DEFAULT_MAX_WINDOW {
            w.push("max_window");
        }
        if self.throttle_after > DEFAULT_THROTTLE_AFTER {
            w.push("throttle_after");
        }
        if self.throttle_max_secs < DEFAULT_THROTTLE_MAX_SECS {
            w.push("throttle_max");
        }
        // With forward_pass the first answer is the password followed by the code:
        // echoing it shows the password on the screen.
        if self.echo_verification_code && self.forward_pass {
            w.push("echo_verification_code");
        }
        if self.ceiling_burst > DEFAULT_CEILING_BURST {
            w.push("ceiling_burst");
        }
        if self.ceiling_interval_secs < DEFAULT_CEILING_INTERVAL_SECS {
            w.push("ceiling_interval");
        }
        if self.fleet.fallback == crate::fleet::Fallback::Local {
            w.push("state_fallback");
        }
        // With a store of this host's own, the lines are what hosts sharing the home
        // read of this host's logins: not writing them lets those hosts accept its codes
        // again. With a shared store, that store refuses them everywhere.
        if self.shared_file == SharedFile::No && !self.state.is_shared() {
            w.push("shared_file");
        }
        w
    }
}

#[cfg(test)]
mod tests;
