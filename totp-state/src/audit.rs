//! `totp-state audit`: the preflight an admin runs before changing one word in pam.d.
//! For every account the name service lists, what the service's module would do and
//! why (`totp_os::inspect`, the module's own placement, checks and parser). Read only.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use totp_core::ledger::{ENROLMENT_RECORD_UIDS, STAND_IN_UIDS};
use totp_core::options::ModuleOptions;
use totp_core::state::{Missing, StateStore, StoreError};
use totp_os::inspect::{self, Verdict};
use totp_os::nss;
use totp_os::state_dir::{DEFAULT_STATE_DIR, KEY_FILE, StateDir};

use crate::{Fatal, Stop, emit};

/// An account the name service enumerates, and whether its shell lets it log in.
struct Listed {
    name: String,
    login_shell: bool,
}

/// Shells that refuse a login (`nologin`, `false`): system accounts such as `_apt` or
/// `nobody` have one, with a home that does not exist. The module refuses them as it
/// refuses anyone whose home is missing, but nobody logs in there, so they do not fail
/// the audit (an audit that fails on every stock host checks nothing).
fn is_login_shell(shell: &str) -> bool {
    let base = shell.rsplit('/').next().unwrap_or(shell);
    !matches!(base, "nologin" | "false")
}

/// `getent` by its absolute path: the tool runs as root, and a `PATH` the caller left
/// (`sudo -E`, a cron job, a user's shell profile) must not choose the program whose
/// list of accounts the audit trusts.
const GETENT: &str = "/usr/bin/getent";
/// The most `getent passwd` may print (some 500 000 accounts of 128 bytes): a directory
/// larger than that is not audited whole, and memory stays bounded (R36).
const MAX_LISTING: u64 = 64 << 20;
/// How long the enumeration may take: a directory server that hangs ends the audit
/// with an error, not a wait without end.
const LISTING_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether `path` is a program only root can change: owned by root, not group or
/// other writable (the directories above it are the system's).
fn root_owned_program(path: &Path) -> Result<(), String> {
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a root-owned program others cannot write (owner uid {}, mode {:o})",
            path.display(),
            m.uid(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Standard output of `cmd` (run with no environment, standard input and error on
/// /dev/null), at most `cap` bytes within `timeout`; the program is killed when it
/// prints more or takes longer, and must exit 0.
fn bounded_output(mut cmd: Command, cap: u64, timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no pipe to its output".into());
    };
    // The reader runs apart so that the deadline holds however the program writes.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let read = stdout.take(cap + 1).read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(read);
    });
    let stop = |child: &mut std::process::Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    let buf = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(buf)) if buf.len() as u64 > cap => {
            return stop(&mut child, format!("it printed more than {cap} bytes"));
        }
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => return stop(&mut child, format!("reading its output: {e}")),
        Err(_) => {
            return stop(
                &mut child,
                format!("no complete answer within {} s", timeout.as_secs()),
            );
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(buf),
            Ok(Some(status)) => return Err(format!("it failed ({status})")),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                return stop(
                    &mut child,
                    format!("it did not exit within {} s", timeout.as_secs()),
                );
            }
            Err(e) => return stop(&mut child, format!("waiting for it: {e}")),
        }
    }
}

/// The accounts the name service enumerates (`getent passwd`, which asks every source
/// the way logins do); each is then looked up as the module looks it up.
fn accounts() -> Result<Vec<Listed>, Fatal> {
    let getent = Path::new(GETENT);
    root_owned_program(getent).map_err(|e| Fatal(format!("cannot list the accounts: {e}")))?;
    let mut cmd = Command::new(getent);
    cmd.arg("passwd");
    let out = bounded_output(cmd, MAX_LISTING, LISTING_TIMEOUT).map_err(|e| {
        Fatal(format!(
            "{GETENT} passwd: {e}: the name service cannot be listed"
        ))
    })?;
    let mut listed: Vec<Listed> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            let name = *fields.first()?;
            (!name.is_empty()).then(|| Listed {
                name: name.to_owned(),
                // No shell field means /bin/sh (passwd(5)).
                login_shell: fields
                    .get(6)
                    .is_none_or(|s| s.is_empty() || is_login_shell(s)),
            })
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed.dedup_by(|a, b| a.name == b.name);
    Ok(listed)
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
                "{dir}/{n}: a secret file in the store for a name the name service does not know; logins with it are denied, and whoever is given the name next is asked for its codes: remove it (a deleted account) or rename it (a renamed one)"
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

/// The local store's records of uids no account has (a deleted account, a changed uid):
/// the next account given such a uid would start with its failures, backoff and
/// `max_failures=` count. A warning, not a refusal: nobody's login fails because of it.
/// Stand-in records (names without an account) are meant to be there. A shared store
/// keys records by name and is not listed.
fn stale_records(opts: &ModuleOptions) -> Result<Vec<(String, inspect::Finding)>, Fatal> {
    if opts.fleet.shared().is_some() {
        return Ok(Vec::new());
    }
    let dir = PathBuf::from(opts.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR));
    let mut store = StateDir::new(&dir, Duration::from_secs(5));
    Ok(crate::list(&dir)?
        .into_iter()
        .filter(|uid| !STAND_IN_UIDS.contains(uid) && !ENROLMENT_RECORD_UIDS.contains(uid))
        .filter(|&uid| matches!(nss::lookup_user_by_uid(uid), Ok(None)))
        // A reset leaves the marks and no throttling: marks are bound to the leaver's
        // enrolment (R35), so nothing the next account would inherit. An unusable record
        // would deny the next account outright.
        .filter(|&uid| !matches!(store.read(uid), Ok(s) if s.extra.is_empty()))
        .map(|uid| {
            let reason = format!(
                "{}/{uid}: a state record for a uid no account has; the next account given this uid inherits it (failures, backoff, the max_failures= count): totp-state reset --user {uid}",
                dir.display()
            );
            (
                format!("uid {uid}"),
                inspect::Finding {
                    verdict: Verdict::Warning,
                    reasons: vec![reason],
                },
            )
        })
        .collect())
}

/// The local store as a login would meet it: a directory the module refuses, or one on
/// a read-only file system (a container's read-only root), denies every account at
/// the write of its attempt, whatever its secret file says; so does a damaged store
/// key, which no user's reset fixes.
fn store_problem(opts: &ModuleOptions) -> Option<(String, inspect::Finding)> {
    if opts.fleet.shared().is_some() {
        return None;
    }
    let dir = PathBuf::from(opts.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR));
    let mut store = StateDir::new(&dir, Duration::from_secs(5));
    let fault = store.check_writable().err().or_else(|| {
        // Only a key that is there is read: the audit creates nothing (a missing key
        // is made by the next login).
        std::fs::symlink_metadata(dir.join(KEY_FILE)).ok()?;
        store.context(Missing::Leave).err()
    })?;
    let reason = match fault {
        StoreError::Refused(m)
        | StoreError::Unavailable(m)
        | StoreError::Corrupt(m)
        | StoreError::Clock(m) => m,
    };
    Some((
        "state store".to_owned(),
        inspect::Finding {
            verdict: Verdict::Refused,
            reasons: vec![reason],
        },
    ))
}

pub fn run(opts: &ModuleOptions, json: bool) -> Result<(), Stop> {
    let mut refused = 0usize;
    let mut refused_without_login = 0usize;
    let listed = accounts()?;
    let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let mut findings: Vec<(String, bool, inspect::Finding)> = Vec::new();
    for account in &listed {
        let finding = match nss::lookup_user_by_name(&account.name) {
            Ok(Some(pw)) => inspect::inspect(opts, &pw),
            Ok(None) => continue,
            Err(e) => inspect::Finding {
                verdict: Verdict::Refused,
                reasons: vec![format!("name service error: {e}")],
            },
        };
        findings.push((account.name.clone(), account.login_shell, finding));
    }
    // A store file named after nobody is refused whatever its name's shell would be.
    findings.extend(orphans(opts, &names).into_iter().map(|(n, f)| (n, true, f)));
    let store = store_problem(opts);
    let store_refused = store.is_some();
    findings.extend(store.map(|(n, f)| (n, true, f)));
    // A refused directory may not even be listable (an owner a container does not map):
    // its refusal is the finding, not a fault that hides every other line.
    if !store_refused {
        findings.extend(stale_records(opts)?.into_iter().map(|(n, f)| (n, true, f)));
    }
    for (name, login_shell, mut finding) in findings {
        if finding.verdict == Verdict::Refused {
            if login_shell {
                refused += 1;
            } else {
                refused_without_login += 1;
                finding
                    .reasons
                    .push("no login shell: not counted in the exit status".to_owned());
            }
        }
        let line = if json {
            serde_json::json!({
                "user": name,
                "verdict": finding.verdict.to_string(),
                "reasons": finding.reasons,
                "login_shell": login_shell,
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
    // A summary, not a fault: standard error stays empty on a passing audit, so a cron
    // job mails only when something is wrong (every stock host has such accounts). The
    // JSON objects carry it in `login_shell`.
    if refused_without_login > 0 && !json {
        emit(&format!(
            "{refused_without_login} refused account(s) without a login shell (nologin, false): not counted\n"
        ))?;
    }
    if store_refused {
        return Err(Fatal(
            "the state store would deny every login, whatever the accounts' files say".into(),
        )
        .into());
    }
    if refused > 0 {
        return Err(Fatal(format!(
            "{refused} account(s) refused: the module would deny every login of theirs"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    /// R36: the listing is bounded in size and time; the program is killed at either
    /// bound, and its exit status counts.
    #[test]
    fn the_account_listing_is_bounded_in_size_and_time() {
        let second = Duration::from_secs(1);
        assert_eq!(
            bounded_output(sh("echo root:x:0:0"), 100, 10 * second),
            Ok(b"root:x:0:0\n".to_vec())
        );
        let big = bounded_output(sh("head -c 5000 /dev/zero"), 1000, 10 * second);
        assert!(big.is_err_and(|e| e.contains("more than 1000 bytes")));
        // A program that never stops talking is cut off at the size bound too.
        let endless = bounded_output(sh("yes"), 1000, 10 * second);
        assert!(endless.is_err_and(|e| e.contains("more than 1000 bytes")));
        let started = Instant::now();
        let slow = bounded_output(sh("sleep 30"), 1000, Duration::from_millis(300));
        assert!(slow.is_err_and(|e| e.contains("no complete answer")));
        assert!(started.elapsed() < 10 * second, "killed, not waited for");
        let failed = bounded_output(sh("echo x; exit 2"), 1000, 10 * second);
        assert!(failed.is_err_and(|e| e.contains("failed")));
        // No environment reaches it: PATH and all.
        assert_eq!(
            bounded_output(sh("echo \"[$HOME]\""), 100, 10 * second),
            Ok(b"[]\n".to_vec())
        );
    }

    #[test]
    fn only_a_root_owned_program_others_cannot_write_is_run() {
        assert_eq!(root_owned_program(Path::new("/bin/sh")), Ok(()));
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("getent");
        std::fs::write(&p, "#!/bin/sh\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(root_owned_program(&p).is_err(), "world-writable");
        assert!(root_owned_program(dir.path()).is_err(), "not a file");
    }
}
