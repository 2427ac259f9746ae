//! `totp-state audit`: the preflight an admin runs before changing one word in pam.d.
//! For every account the name service lists, what the service's module would do and
//! why (`totp_os::inspect`, the module's own placement, checks and parser). Read only.

use std::process::Command;

use totp_core::options::ModuleOptions;
use totp_os::inspect::{self, Verdict};
use totp_os::nss;

use crate::{Fatal, Stop, emit};

/// The account names the name service enumerates (`getent passwd`, which asks every
/// source the way logins do); each is then looked up as the module looks it up.
fn account_names() -> Result<Vec<String>, Fatal> {
    let out = Command::new("getent")
        .arg("passwd")
        .output()
        .map_err(|e| Fatal(format!("cannot run getent: {e}")))?;
    if !out.status.success() {
        return Err(Fatal(
            "getent passwd failed: the name service cannot be listed".into(),
        ));
    }
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// In store mode (`user=`, `secret=DIR/${USER}`), the files of the store named after no
/// account the name service lists: a login with such a name is always denied.
fn orphans(opts: &ModuleOptions, accounts: &[String]) -> Vec<(String, inspect::Finding)> {
    let Some(dir) = opts.user.as_ref().and(opts.secret.strip_suffix("/${USER}")) else {
        return Vec::new();
    };
    if dir.contains("${") {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, inspect::Finding)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        // `accounts` is sorted (account_names).
        .filter(|n| !n.starts_with('.') && accounts.binary_search(n).is_err())
        .map(|n| {
            let reason = format!(
                "{dir}/{n}: a secret file in the store for a name the name service does not know; logins with it are denied"
            );
            (
                n,
                inspect::Finding {
                    verdict: Verdict::Refused,
                    reasons: vec![reason],
                },
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

pub fn run(opts: &ModuleOptions, json: bool) -> Result<(), Stop> {
    let mut refused = 0usize;
    let names = account_names()?;
    let mut findings: Vec<(String, inspect::Finding)> = Vec::new();
    for name in &names {
        let finding = match nss::lookup_user_by_name(name) {
            Ok(Some(pw)) => inspect::inspect(opts, &pw),
            Ok(None) => continue,
            Err(e) => inspect::Finding {
                verdict: Verdict::Refused,
                reasons: vec![format!("name service error: {e}")],
            },
        };
        findings.push((name.clone(), finding));
    }
    findings.extend(orphans(opts, &names));
    for (name, finding) in findings {
        if finding.verdict == Verdict::Refused {
            refused += 1;
        }
        let line = if json {
            serde_json::json!({
                "user": name,
                "verdict": finding.verdict.to_string(),
                "reasons": finding.reasons,
            })
            .to_string()
        } else {
            format!(
                "{name}: {}: {}",
                finding.verdict,
                finding.reasons.join("; ")
            )
        };
        emit(&format!("{line}\n"))?;
    }
    if refused > 0 {
        return Err(Fatal(format!(
            "{refused} account(s) refused: the module would deny every login of theirs"
        ))
        .into());
    }
    Ok(())
}
