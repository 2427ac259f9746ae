//! The benchmark cases (what each login answers and must return) and the interleaved
//! rounds that time them.

use super::*;

/// What to answer the prompt with.
#[derive(Clone)]
pub(super) enum Answer {
    None,
    Fixed(String),
    /// The TOTP code of the current step, computed just before the timed region.
    TotpNow,
}

/// What a correct run of the case returns; anything else aborts the benchmark.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Success,
    /// Denied after exactly one prompt.
    Denied,
    /// No prompt at all (pam_totp's access-rule skip returns PAM_IGNORE).
    Skipped,
}

/// Whose files a case uses, which decides what its refresh rewrites and who logs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Who {
    /// Root authenticating as root (`user=root`, the earlier figures of record): no
    /// group lookup and no credential switch.
    Root,
    /// The normal user, store mode: `user=root secret=DIR/${USER}`, a root-owned file.
    Store,
    /// The normal user, home mode: `~/.google_authenticator`, owned by the user.
    Home,
    /// A name with no account ([`user::UNKNOWN`]) in the store-mode or home-mode
    /// service (`true`: store mode): SECURITY.md B2, compared with the normal user's
    /// wrong code.
    Unknown { store: bool },
}

impl Who {
    pub(super) fn user(self) -> &'static str {
        match self {
            Who::Root => USER,
            Who::Store | Who::Home => user::NAME,
            Who::Unknown { .. } => user::UNKNOWN,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Who::Root => "root as root (secondary)",
            Who::Store => "normal user, store mode",
            Who::Home | Who::Unknown { store: false } => "normal user, home mode",
            Who::Unknown { store: true } => "normal user, store mode",
        }
    }
}

/// What the untimed refresh before each iteration puts in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    /// Nothing: the state the previous iteration left (hammering, load, access rules).
    Keep,
    /// The initial secret file and an empty state record: a first failure, an unused
    /// code.
    Fresh,
    /// A user with records at a new step: the secret file with earlier
    /// `DISALLOW_REUSE` and `RATE_LIMIT` entries, pam_totp's record as a real login
    /// left it with its TOTP mark moved back.
    Steady,
}

/// Where each iteration runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Process {
    /// In the benchmark process: whatever a module dlopens and keeps (the shared-store
    /// plugins and their TLS libraries) is loaded once for the whole run.
    Bench,
    /// A freshly exec'd child per login (`login.rs`), as sshd, login and sudo run; with
    /// `libcrypto`, the child has libcrypto loaded before the clock starts, as sshd has.
    Fresh { libcrypto: bool },
}

impl Process {
    /// The pam_permit row the "×permit" column divides by: a floor run the same way.
    pub(super) fn floor(self) -> &'static str {
        match self {
            Process::Bench => "permit",
            Process::Fresh { libcrypto: false } => "permit-exec",
            Process::Fresh { libcrypto: true } => "permit-exec-crypto",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Process::Bench => "",
            Process::Fresh { libcrypto: false } => "-exec",
            Process::Fresh { libcrypto: true } => "-exec-crypto",
        }
    }
}

pub(super) struct Case {
    pub(super) key: String,
    /// The table section (who logs in, which mode).
    pub(super) group: &'static str,
    pub(super) who: Who,
    pub(super) scenario: String,
    pub(super) module: String,
    pub(super) service: String,
    pub(super) answer: Answer,
    pub(super) expect: Expect,
    /// What is rewritten before each iteration (untimed).
    pub(super) refresh: Refresh,
    pub(super) process: Process,
    /// Untimed iterations at the start of every batch (hammering: other cases reset
    /// the user's record between batches, so the throttle is re-established first).
    pub(super) prime: usize,
    /// The key of the row this one is compared with in the "×GA" column.
    pub(super) reference: Option<String>,
    pub(super) samples: Vec<Duration>,
    pub(super) skipped_warmup: usize,
    pub(super) logs: u64,
    /// Minor page faults of the benchmark thread (the module is mapped afresh each time).
    pub(super) faults: u64,
    /// Untimed priming iterations run so far (in the logs and faults counts).
    pub(super) primed: usize,
}

/// The shared store a row's logins use, if any.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Shared {
    None,
    Redis,
    Etcd,
}

impl Case {
    pub(super) fn shared(&self) -> Shared {
        if self.key.starts_with("redis-") {
            Shared::Redis
        } else if self.key.starts_with("etcd-") {
            Shared::Etcd
        } else {
            Shared::None
        }
    }

    pub(super) fn median_us(&self) -> Option<f64> {
        percentile(&self.samples, 50)
    }
}

pub(super) fn percentile(samples: &[Duration], p: usize) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() - 1) * p).div_ceil(100).min(v.len() - 1);
    Some(v[idx])
}

/// A case with no samples yet.
#[allow(clippy::too_many_arguments)]
fn case(
    key: String,
    who: Who,
    scenario: &str,
    module: &str,
    service: String,
    answer: Answer,
    expect: Expect,
    refresh: Refresh,
    reference: Option<String>,
) -> Case {
    Case {
        key,
        group: who.label(),
        who,
        scenario: scenario.into(),
        module: module.into(),
        service,
        answer,
        expect,
        refresh,
        process: Process::Bench,
        prime: 0,
        reference,
        samples: Vec::new(),
        skipped_warmup: 0,
        logs: 0,
        faults: 0,
        primed: 0,
    }
}

/// Attempts from one origin after which pam_totp refuses unevaluated (its first
/// backoff), plus one: a hammering batch starts with this many untimed failures.
pub(super) const THROTTLE_PRIME: usize = 4;

/// The normal user's rows (the figures of record, issue 23), then root as root.
/// `normal` is false without the namespace the normal user lives in (`--no-sink`).
pub(super) fn auth_cases(wrong: &str, normal: bool) -> Vec<Case> {
    let mut v = vec![case(
        "permit".into(),
        Who::Root,
        "floor",
        "pam_permit.so",
        "permit".into(),
        Answer::None,
        Expect::Success,
        Refresh::Fresh,
        None,
    )];
    v[0].group = "floor";
    let wrong = Answer::Fixed(wrong.into());
    // GA is compared in its cheapest configuration for each scenario: noskewadj for a
    // wrong code (no ±1500-step search), DISALLOW_REUSE + RATE_LIMIT in its file for the
    // steady-state right code (what a GA user who asked for replay and rate protection,
    // which pam_totp always gives, runs).
    let scenarios = [
        (
            "wrong",
            "wrong code, fresh",
            "ga-noskew",
            wrong.clone(),
            Expect::Denied,
            Refresh::Fresh,
        ),
        (
            "hammered",
            "wrong, hammered",
            "ga-noskew",
            wrong.clone(),
            Expect::Denied,
            Refresh::Keep,
        ),
        (
            "steady",
            "right, steady",
            "ga",
            Answer::TotpNow,
            Expect::Success,
            Refresh::Steady,
        ),
    ];
    if normal {
        for (who, mode) in [(Who::Store, "store"), (Who::Home, "home")] {
            for (skey, sname, ga, answer, expect, refresh) in &scenarios {
                let reference = format!("{ga}-{mode}-{skey}");
                let ga_name = if *ga == "ga" {
                    "GA DIS_REUSE+RL"
                } else {
                    "GA noskewadj"
                };
                v.push(case(
                    reference.clone(),
                    who,
                    sname,
                    ga_name,
                    format!("{ga}-{mode}"),
                    answer.clone(),
                    *expect,
                    *refresh,
                    None,
                ));
                v.push(case(
                    format!("totp-{mode}-{skey}"),
                    who,
                    sname,
                    "pam_totp.so",
                    format!("totp-{mode}"),
                    answer.clone(),
                    *expect,
                    *refresh,
                    Some(reference),
                ));
            }
        }
        for c in v.iter_mut().filter(|c| c.key.ends_with("-hammered")) {
            c.prime = THROTTLE_PRIME;
        }
        // B2: a name with no account gets the same prompt and denial; its row sits next
        // to the wrong code's of the same service (the ratio is printed, not judged).
        for (store, mode) in [(true, "store"), (false, "home")] {
            let at = v
                .iter()
                .position(|c| c.key == format!("totp-{mode}-wrong"))
                .map_or(v.len(), |i| i + 1);
            v.insert(
                at,
                case(
                    format!("totp-{mode}-unknown"),
                    Who::Unknown { store },
                    "unknown user",
                    "pam_totp.so",
                    format!("totp-{mode}"),
                    wrong.clone(),
                    Expect::Denied,
                    Refresh::Fresh,
                    None,
                ),
            );
        }
    }
    // Root as root, as in the earlier figures of record: a fresh record each time.
    for (mkey, mname) in [("ga", "GA default"), ("totp", "pam_totp.so")] {
        v.push(case(
            format!("{mkey}-load"),
            Who::Root,
            "load+unload only",
            mname,
            format!("{mkey}-load"),
            Answer::None,
            Expect::Success,
            Refresh::Keep,
            (mkey != "ga").then(|| "ga-load".to_string()),
        ));
    }
    let modules = [
        ("ga", "GA default", "ga"),
        ("ga-noskew", "GA noskewadj", "ga-noskew"),
        ("totp", "pam_totp.so", "totp"),
        ("redis", "totp+Redis", "totp-redis"),
        ("etcd", "totp+etcd", "totp-etcd"),
    ];
    let root_scenarios = [
        ("wrong", "wrong code", wrong, Expect::Denied),
        ("right", "right code", Answer::TotpNow, Expect::Success),
        (
            "scratch",
            "scratch code",
            Answer::Fixed(SCRATCH[0].into()),
            Expect::Success,
        ),
    ];
    for (skey, sname, answer, expect) in root_scenarios {
        for (mkey, mname, service) in modules {
            let reference = (!mkey.starts_with("ga")).then(|| format!("ga-{skey}"));
            v.push(case(
                format!("{mkey}-{skey}"),
                Who::Root,
                sname,
                mname,
                service.into(),
                answer.clone(),
                expect,
                Refresh::Fresh,
                reference,
            ));
        }
    }
    // The right code again, one fresh process per login: the module, the plugin and
    // the plugin's libssl/libcrypto are loaded at every login, as in a real one. The
    // ratios to the local store are printed next to the in-process goals.
    for (process, group) in [
        (
            Process::Fresh { libcrypto: false },
            "right code, fresh process (root as root)",
        ),
        (
            Process::Fresh { libcrypto: true },
            "right code, fresh process, libcrypto preloaded as in sshd (root as root)",
        ),
    ] {
        let sfx = process.suffix();
        // The section's own floor first, run the same way, then the right code per store.
        let floor = (
            process.floor().to_string(),
            "floor",
            "pam_permit.so",
            "permit",
            Answer::None,
            Refresh::Keep,
        );
        let rows = modules[2..].iter().map(|(mkey, mname, service)| {
            (
                format!("{mkey}-right{sfx}"),
                "right code",
                *mname,
                *service,
                Answer::TotpNow,
                Refresh::Fresh,
            )
        });
        for (key, scenario, module, service, answer, refresh) in std::iter::once(floor).chain(rows)
        {
            let mut c = case(
                key,
                Who::Root,
                scenario,
                module,
                service.into(),
                answer,
                Expect::Success,
                refresh,
                None,
            );
            c.group = group;
            c.process = process;
            v.push(c);
        }
    }
    v
}

/// The access-rule skip, for the normal user in home mode (pam_totp's default setup).
pub(super) fn access_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for n in ACCESS_SIZES {
        for (who, module, expect) in [
            ("pam", "pam_access.so", Expect::Success),
            ("totp", "pam_totp.so", Expect::Skipped),
        ] {
            let mut c = case(
                format!("access-{who}-{n}"),
                Who::Home,
                &format!("{n} access rules"),
                module,
                format!("access-{who}-{n}"),
                // pam_totp would prompt if the rules did not skip: the check catches it.
                Answer::Fixed("000000".into()),
                expect,
                Refresh::Keep,
                (who == "totp").then(|| format!("access-pam-{n}")),
            );
            c.group = "skip by access rules (normal user, home mode)";
            v.push(c);
        }
    }
    v
}

/// Before timing the access rules: with the last rule turned into `-`, pam_access must
/// deny and pam_totp must ask for the code, which shows that both read every rule and
/// that nothing before the last one matches.
pub(super) fn check_access_controls(b: &Bench, cases: &[Case]) -> Result<(), String> {
    for case in cases.iter().filter(|c| c.module == "pam_access.so") {
        let n = case.key.rsplit('-').next().unwrap_or("");
        for (service, want_prompts, want_rc) in [
            (format!("control-pam-{n}"), 0, Some(codes::PERM_DENIED)),
            (format!("control-totp-{n}"), 1, None),
        ] {
            let conv = Scripted::texts([b.wrong_code.clone()]);
            let user = case.who.user();
            let (rc, prompts) = authenticate_once(&b.confdir, &service, user, Box::new(conv))
                .map_err(|e| format!("{service}: {e}"))?;
            if prompts != want_prompts || want_rc.is_some_and(|w| w != rc) {
                return Err(format!(
                    "{service}: control check failed ({} after {prompts} prompt(s)): the rule file is not read as intended",
                    code_name(rc),
                ));
            }
        }
    }
    Ok(())
}

/// Interleaved rounds: each case gets `budget / ROUNDS` per round.
pub(super) fn run_cases(b: &mut Bench, cases: &mut [Case]) -> Result<(), String> {
    let slice = b.opts.budget / ROUNDS;
    for round in 0..ROUNDS {
        for case in cases.iter_mut() {
            b.batch(case, Instant::now() + slice, 5_000)?;
        }
        eprint!("\r  round {}/{ROUNDS} done", round + 1);
    }
    eprintln!();
    Ok(())
}
