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

pub(super) struct Case {
    pub(super) key: String,
    pub(super) scenario: String,
    pub(super) module: String,
    pub(super) service: String,
    pub(super) answer: Answer,
    pub(super) expect: Expect,
    /// Rewrite the state file before each iteration (untimed).
    pub(super) refresh: bool,
    pub(super) samples: Vec<Duration>,
    pub(super) skipped_warmup: usize,
    pub(super) logs: u64,
    /// Minor page faults of the benchmark thread (the module is mapped afresh each time).
    pub(super) faults: u64,
}

impl Case {
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

pub(super) fn auth_cases(wrong: &str) -> Vec<Case> {
    let mut v = Vec::new();
    let mut add = |key: &str, scenario: &str, module: &str, service: &str, answer, expect| {
        v.push(Case {
            key: key.into(),
            scenario: scenario.into(),
            module: module.into(),
            service: service.into(),
            answer,
            expect,
            refresh: !key.ends_with("-load"),
            samples: Vec::new(),
            skipped_warmup: 0,
            logs: 0,
            faults: 0,
        });
    };
    add(
        "permit",
        "floor",
        "pam_permit.so",
        "permit",
        Answer::None,
        Expect::Success,
    );
    let modules = [
        ("ga", "GA default", "ga"),
        ("ga-noskew", "GA noskewadj", "ga-noskew"),
        ("totp", "pam_totp.so", "totp"),
        ("redis", "totp+Redis", "totp-redis"),
        ("etcd", "totp+etcd", "totp-etcd"),
    ];
    let scenarios = [
        (
            "wrong",
            "wrong code",
            Answer::Fixed(wrong.into()),
            Expect::Denied,
        ),
        ("right", "right code", Answer::TotpNow, Expect::Success),
        (
            "scratch",
            "scratch code",
            Answer::Fixed(SCRATCH[0].into()),
            Expect::Success,
        ),
    ];
    for (mkey, mname, _) in modules
        .iter()
        .filter(|m| !matches!(m.0, "ga-noskew" | "redis" | "etcd"))
    {
        add(
            &format!("{mkey}-load"),
            "load+unload only",
            mname,
            &format!("{mkey}-load"),
            Answer::None,
            Expect::Success,
        );
    }
    for (skey, sname, answer, expect) in scenarios {
        for (mkey, mname, service) in modules {
            add(
                &format!("{mkey}-{skey}"),
                sname,
                mname,
                service,
                answer.clone(),
                expect,
            );
        }
    }
    v
}

pub(super) fn access_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for n in ACCESS_SIZES {
        for (who, module, expect) in [
            ("pam", "pam_access.so", Expect::Success),
            ("totp", "pam_totp.so", Expect::Skipped),
        ] {
            v.push(Case {
                key: format!("access-{who}-{n}"),
                scenario: format!("{n} access rules"),
                module: module.into(),
                service: format!("access-{who}-{n}"),
                // pam_totp would prompt if the rules did not skip: the check catches it.
                answer: Answer::Fixed("000000".into()),
                expect,
                refresh: false,
                samples: Vec::new(),
                skipped_warmup: 0,
                logs: 0,
                faults: 0,
            });
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
            let mut tx = Transaction::start(&service, Some(USER), Some(&b.confdir), Box::new(conv))
                .map_err(|e| format!("{service}: {e}"))?;
            tx.set_item(Item::RHost, RHOST.as_bytes());
            let rc = tx.authenticate(0);
            if tx.prompt_count() != want_prompts || want_rc.is_some_and(|w| w != rc) {
                return Err(format!(
                    "{service}: control check failed ({} after {} prompt(s)): the rule file is not read as intended",
                    code_name(rc),
                    tx.prompt_count()
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
