//! `totp-state audit`: the preflight an admin runs before changing one word in pam.d.
//! For every account the name service lists, or every one named (`--user`,
//! `--users-from`), what the service's module would do and why (`totp_os::inspect`, the
//! module's own placement, checks and parser; its skip decision, `audit_skips`), on
//! every `pam_totp` auth line of the service, run in stack order as libpam runs them
//! (`audit_stack`). Read only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use totp_core::ledger::{ENROLMENT_RECORD_UIDS, STAND_IN_UIDS};
use totp_core::options::ModuleOptions;
use totp_core::state::{Missing, StateStore, StoreError};
use totp_core::user::{UserError, UserName};
use totp_os::command::{self, CommandError, GETENT};
use totp_os::inspect::{self, Verdict};
use totp_os::nss::{self, Passwd};
use totp_os::pam_stack::ModuleLine;
use totp_os::state_dir::{DEFAULT_STATE_DIR, KEY_FILE, StateDir};

use crate::audit_skips::Skips;
use crate::audit_stack::{self, LineFinding, Ran};
use crate::{Fatal, Stop, emit};

/// An account the name service enumerates, and whether its shell lets it log in; or an
/// account named on the command line, whose shell is not asked (`None`): the admin
/// named it, so its refusal counts.
struct Listed {
    name: String,
    login_shell: Option<bool>,
    /// The name service listed a name that is not UTF-8 (`name` shows its bytes
    /// escaped): the module refuses it (R8), and no lookup by `name` would find it.
    not_utf8: bool,
}

/// Shells that refuse a login (`nologin`, `false`): system accounts such as `_apt` or
/// `nobody` have one, with a home that does not exist. The module refuses them as it
/// refuses anyone whose home is missing, but nobody logs in there, so they do not fail
/// the audit (an audit that fails on every stock host checks nothing).
fn is_login_shell(shell: &str) -> bool {
    let base = shell.rsplit('/').next().unwrap_or(shell);
    !matches!(base, "nologin" | "false")
}

/// The most `getent passwd` may print (some 500 000 accounts of 128 bytes): a directory
/// larger than that is not audited whole, and memory stays bounded (R36).
const MAX_LISTING: usize = 64 << 20;
/// How long the enumeration may take: a directory server that hangs ends the audit
/// with an error, not a wait without end.
const LISTING_TIMEOUT: Duration = Duration::from_secs(120);

/// Standard output of `program args`, run by the secret command's runner as root
/// (`getent` must see what root sees), at most `cap` bytes within `timeout`; it must
/// exit 0. Every failure in words for the audit's error line.
fn bounded_output(
    program: &Path,
    args: &[&str],
    cap: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    match command::run_bounded(program, args, None, cap, timeout) {
        // Moved out, not copied: a listing is no secret and needs no wiping.
        Ok((status, mut out)) if status.success() => Ok(std::mem::take(&mut *out)),
        Ok((status, _)) => Err(format!("it failed ({status})")),
        Err(CommandError::Untrusted(e)) => Err(format!(
            "{} is not a program only root can change ({e}): it and every directory above it must be owned by root and not writable by group or others",
            program.display()
        )),
        Err(CommandError::TooLarge) => Err(format!("it printed more than {cap} bytes")),
        Err(CommandError::TimedOut | CommandError::OutputHeldOpen(_)) => {
            Err(format!("no complete answer within {} s", timeout.as_secs()))
        }
        Err(e) => Err(format!("cannot run it: {e}")),
    }
}

/// The accounts the name service enumerates (`getent passwd`, which asks every source
/// the way logins do); each is then looked up as the module looks it up.
fn accounts() -> Result<Vec<Listed>, Fatal> {
    let out = bounded_output(Path::new(GETENT), &["passwd"], MAX_LISTING, LISTING_TIMEOUT)
        .map_err(|e| {
            Fatal(format!(
                "{GETENT} passwd: {e}: the name service cannot be listed"
            ))
        })?;
    let mut listed: Vec<Listed> =
        out.split(|&b| b == b'\n')
            .filter_map(|l| {
                let fields: Vec<&[u8]> = l.split(|&b| b == b':').collect();
                let raw = *fields.first()?;
                let (name, not_utf8) = match std::str::from_utf8(raw) {
                    Ok(name) => (name.to_owned(), false),
                    Err(_) => (raw.escape_ascii().to_string(), true),
                };
                (!name.is_empty()).then(|| Listed {
                    name,
                    // No shell field means /bin/sh (passwd(5)).
                    login_shell: Some(fields.get(6).is_none_or(|s| {
                        s.is_empty() || is_login_shell(&String::from_utf8_lossy(s))
                    })),
                    not_utf8,
                })
            })
            .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed.dedup_by(|a, b| a.name == b.name);
    Ok(listed)
}

/// In store mode (`user=`, `secret=DIR/${USER}`), the files of the store named after no
/// account the name service lists, each looked up by name as a login looks it up: a
/// listing is no proof of absence (a directory service lists only what it enumerates).
/// A name the lookup finds is audited as a named account; one it proves absent is an
/// orphan, which denies every login with that name; one the lookup cannot answer, or
/// proves absent while the listing may be incomplete (`partial_listing`: a directory
/// that may be unreachable answers "no such name" too), is unverified: no advice to
/// remove a secret whose owner may still log in.
fn orphans(
    opts: &ModuleOptions,
    audit: &dyn Fn(&Passwd) -> Audited,
    accounts: &[String],
    partial_listing: bool,
) -> Vec<(String, Option<bool>, Audited)> {
    let Some(dir) = opts.user.as_ref().and(opts.secret.strip_suffix("/${USER}")) else {
        return Vec::new();
    };
    if dir.contains("${") {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut unlisted: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        // `accounts` is sorted (account_names).
        .filter(|n| !n.starts_with('.') && accounts.binary_search(n).is_err())
        .collect();
    unlisted.sort();
    unlisted
        .into_iter()
        .map(|n| {
            let unverified = |why: String| inspect::Finding {
                verdict: Verdict::Unverified,
                reasons: vec![format!(
                    "{dir}/{n}: a secret file in the store for a name the name service does not list, and {why}: check the account before removing the file (not counted in the exit status)"
                )],
            };
            let finding = match nss::lookup_login_user(&n) {
                // Not enumerated, but an account: audited as one named with --user.
                Ok(Some(pw)) if pw.name == n => return (n, None, audit(&pw)),
                Err(e @ nss::LoginUserError::AnotherAccount { .. }) => inspect::Finding {
                    verdict: Verdict::Warning,
                    reasons: vec![format!("{dir}/{n}: {e}: no login reads this file")],
                },
                // Logins key the file on the name the name service returns.
                Ok(Some(pw)) => inspect::Finding {
                    verdict: Verdict::Warning,
                    reasons: vec![format!(
                        "{dir}/{n}: the name service knows this name as \"{}\", whose logins read {dir}/{}: no login reads this file",
                        pw.name, pw.name
                    )],
                },
                Ok(None) if partial_listing => unverified(
                    "a lookup by name found no such account, but the name service may have a directory source this host does not reach now".to_owned(),
                ),
                Ok(None) => refusal(format!(
                    "{dir}/{n}: a secret file in the store for a name the name service does not know; logins with it are denied, and whoever is given the name next is asked for its codes: remove it (a deleted account) or rename it (a renamed one)"
                )),
                Err(e) => unverified(format!("a lookup by name failed ({e})")),
            };
            (n, Some(true), alone(finding))
        })
        .collect()
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
        | StoreError::Clock(m)
        | StoreError::StoreChanged(m) => m,
    };
    Some((
        "state store".to_owned(),
        inspect::Finding {
            verdict: Verdict::Refused,
            reasons: vec![reason],
        },
    ))
}

/// An account's verdict on the service, and each line's part in it (empty for the
/// findings that are not about one account's logins).
type Audited = (inspect::Finding, Vec<LineFinding>);

fn alone(finding: inspect::Finding) -> Audited {
    (finding, Vec::new())
}

/// `pw` on every line of the service (`judges`, in stack order), combined as the stack
/// runs them.
fn audit_account(judges: &[(&ModuleLine, &ModuleOptions, Skips<'_>)], pw: &Passwd) -> Audited {
    let mut sometimes = Vec::new();
    let judged: Vec<(&ModuleLine, inspect::Finding, bool, bool)> = judges
        .iter()
        .map(|(line, opts, skips)| {
            let (finding, skipped, some) = skips.judged(pw, || inspect::inspect(opts, pw));
            sometimes.push(some);
            (*line, finding, skipped, opts.nullok)
        })
        .collect();
    audit_stack::combine_origins(&judged, &sometimes)
}

fn refusal(reason: String) -> inspect::Finding {
    inspect::Finding {
        verdict: Verdict::Refused,
        reasons: vec![reason],
    }
}

/// `service`: the PAM service, whose name tells whether its logins can have an origin.
/// `named`: the accounts `--user` and `--users-from` gave, audited instead of the
/// listing; the store's files and records are then not compared with the accounts
/// (a partial list would make every other one an orphan).
/// `lines`: the service's `pam_totp` auth lines, in stack order, each with its options
/// (at least one; they name one store). `bypasses`: the service's other lines that end
/// the stack (or jump) before a `pam_totp` line when they succeed
/// (`totp_os::pam_stack::bypass_warnings`): said once, on standard error (what a cron
/// job mails) and as a `stack` row; not counted in the exit status, which counts the
/// logins the module would deny, unless `strict`: then every warning (a row or a line
/// on standard error) is a problem too, exit 1, as a check run by a configuration tool
/// or a monitor needs to learn of a stack that skips the code.
pub fn run(
    service: &str,
    lines: &[ModuleLine],
    bypasses: &[String],
    json: bool,
    named: Option<Vec<String>>,
    strict: bool,
) -> Result<(), Stop> {
    let judges: Vec<(&ModuleLine, &ModuleOptions, Skips<'_>)> = lines
        .iter()
        .filter_map(|l| Some((l, l.options.as_ref()?)))
        .map(|(l, o)| (l, o, Skips::new(o, service)))
        .collect();
    let Some(&(_, opts, _)) = judges.first() else {
        return Err(Fatal("no pam_totp auth line to audit".into()).into());
    };
    for b in bypasses {
        crate::warn(&format!("warning: {b}"));
    }
    // Warnings said on standard error only (the bypasses are rows too, counted there).
    let mut said_warnings = 0usize;
    // A warning, not a finding: it denies nobody, and the exit status counts denials.
    if opts.fleet.shared().is_none() {
        let dir = PathBuf::from(opts.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR));
        if let Some(w) = totp_os::state_dir::volatile_warning(&dir) {
            crate::warn(&format!("warning: {w}"));
            said_warnings += 1;
        }
    }
    let audit = |pw: &Passwd| audit_account(&judges, pw);
    let mut refused = 0usize;
    let mut refused_without_login = 0usize;
    let whole = named.is_none();
    let mut partial_listing = false;
    let listed = match named {
        Some(names) => names
            .into_iter()
            .map(|name| Listed {
                name,
                login_shell: None,
                not_utf8: false,
            })
            .collect(),
        None => {
            // Before the listing, which a directory server can make long.
            if let Some(warning) = crate::audit_names::incomplete_listing_warning() {
                crate::warn(&warning);
                partial_listing = true;
                said_warnings += 1;
            }
            accounts()?
        }
    };
    let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let mut findings: Vec<(String, Option<bool>, Audited)> = Vec::new();
    for account in &listed {
        // Every account goes the module's way: the name checked (R8), then asked of
        // the name service by name. A listed name is not one the module accepts
        // just because the name service has it (a directory allows control
        // characters and other encodings than UTF-8; the module refuses both).
        let checked = if account.not_utf8 {
            Err(UserError::NotUtf8)
        } else {
            UserName::parse(account.name.as_bytes()).map(drop)
        };
        if let Err(e) = checked {
            let finding = refusal(format!("not a user name the module accepts: {e}"));
            findings.push((account.name.clone(), account.login_shell, alone(finding)));
            continue;
        }
        // As the module resolves the login (R8).
        let finding = match nss::lookup_login_user(&account.name) {
            Ok(Some(pw)) => audit(&pw),
            Err(e @ nss::LoginUserError::AnotherAccount { .. }) => alone(refusal(e.to_string())),
            // Listed, then gone: deleted since the listing.
            Ok(None) if whole => continue,
            Ok(None) => alone(refusal(
                "the name service does not know this name: no such account, or one in a \
                 directory this host does not reach"
                    .to_owned(),
            )),
            Err(e) => alone(refusal(format!("name service error: {e}"))),
        };
        findings.push((account.name.clone(), account.login_shell, finding));
    }
    // A store file named after nobody is refused whatever its name's shell would be.
    // Each line's store directory (store mode), a file named once.
    if whole {
        let mut seen = std::collections::BTreeSet::new();
        for (_, line_opts, _) in &judges {
            for orphan in orphans(line_opts, &audit, &names, partial_listing) {
                if seen.insert(orphan.0.clone()) {
                    findings.push(orphan);
                }
            }
        }
    }
    // The rows before this one are named after accounts (or store files named after
    // one): their names are quoted in the text output; the rows after it are ours.
    let account_rows = findings.len();
    // Not counted: it denies nobody by itself; the accounts it leaves without a skip
    // are judged by their own files above.
    for (line, _, skips) in &judges {
        if let Some(f) = skips.barred_finding() {
            let name = if judges.len() > 1 {
                format!("access file ({})", line.place())
            } else {
                "access file".to_owned()
            };
            findings.push((name, Some(true), alone(f)));
        }
    }
    // Not counted either: the accounts are judged for the logins that reach the code.
    for b in bypasses {
        let f = inspect::Finding {
            verdict: Verdict::Warning,
            reasons: vec![b.clone()],
        };
        findings.push(("stack".to_owned(), Some(true), alone(f)));
    }
    // One store for every line (`--service` refuses lines that name different ones).
    let store = store_problem(opts);
    let store_refused = store.is_some();
    findings.extend(store.map(|(n, f)| (n, Some(true), alone(f))));
    // A refused directory may not even be listable (an owner a container does not map):
    // its refusal is the finding, not a fault that hides every other line.
    if whole && !store_refused {
        findings.extend(
            stale_records(opts)?
                .into_iter()
                .map(|(n, f)| (n, Some(true), alone(f))),
        );
    }
    let mut warning_rows = 0usize;
    for (row, (name, login_shell, (mut finding, parts))) in findings.into_iter().enumerate() {
        // As for a refusal: an account nobody logs in to (nologin, false) is no problem.
        if finding.verdict == Verdict::Warning && login_shell != Some(false) {
            warning_rows += 1;
        }
        if finding.verdict == Verdict::Refused {
            if login_shell != Some(false) {
                refused += 1;
            } else {
                refused_without_login += 1;
                finding
                    .reasons
                    .push("no login shell: not counted in the exit status".to_owned());
            }
        }
        let line = if json {
            let mut obj = serde_json::json!({
                "user": name,
                "verdict": finding.verdict.to_string(),
                "reasons": finding.reasons,
                "login_shell": login_shell,
            });
            if !parts.is_empty() {
                obj["lines"] = parts_json(&parts);
            }
            obj.to_string()
        } else {
            let shown = if row < account_rows {
                crate::quote::name(&name)
            } else {
                std::borrow::Cow::Borrowed(name.as_str())
            };
            format!(
                "{shown}: {}: {}",
                finding.verdict,
                crate::quote::text(&finding.reasons.join("; "))
            )
        };
        emit(&format!("{line}\n"))?;
    }
    if judges.len() > 1 && !json {
        emit(&format!(
            "{} {} auth lines, run in stack order: each verdict is the line that decides it\n",
            judges.len(),
            totp_os::pam_stack::MODULE_FILE
        ))?;
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
        return Err(Stop::Status(
            crate::EXIT_PROBLEM,
            "the state store would deny every login, whatever the accounts' files say".into(),
        ));
    }
    if refused > 0 {
        return Err(Stop::Status(
            crate::EXIT_PROBLEM,
            format!("{refused} account(s) refused: the module would deny every login of theirs"),
        ));
    }
    let warnings = warning_rows + said_warnings;
    if strict && warnings > 0 {
        return Err(Stop::Status(
            crate::EXIT_PROBLEM,
            format!("{warnings} warning(s), counted as problems (--strict)"),
        ));
    }
    Ok(())
}

/// Each line's own verdict for the account, and whether the stack runs it for a login
/// that types the right codes: `yes` (for logins from some origin, where an access rule
/// skips an earlier line for some: `audit_stack::combine_origins`); `no` (jumped over,
/// ended by a `done`, or after a refusal that decides); `unknown` (after a line whose
/// result is not known).
fn parts_json(parts: &[LineFinding]) -> serde_json::Value {
    parts
        .iter()
        .map(|p| {
            serde_json::json!({
                "line": p.place,
                "verdict": p.finding.verdict.to_string(),
                "reasons": p.finding.reasons,
                "ran": match p.ran {
                    Ran::Yes => "yes",
                    Ran::Skipped => "no",
                    Ran::Unknown => "unknown",
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R36 through the secret command's runner: the listing is bounded in size and
    /// time, the program is killed at either bound, its exit status counts, no
    /// environment reaches it, and only a program root controls is run.
    #[test]
    fn the_account_listing_is_bounded_in_size_and_time() {
        let second = Duration::from_secs(1);
        // The shell itself, not the /bin/sh link: the runner refuses symbolic links.
        let sh = std::fs::canonicalize("/bin/sh").expect("a shell");
        let sh = sh.as_path();
        let run = |script: &str, cap, limit| bounded_output(sh, &["-c", script], cap, limit);
        assert_eq!(
            run("echo root:x:0:0", 100, 10 * second),
            Ok(b"root:x:0:0\n".to_vec())
        );
        // Larger than the secret-file cap the buffer starts at: it grows.
        let listing = run("head -c 200000 /dev/zero", 300_000, 10 * second);
        assert_eq!(listing.map(|o| o.len()), Ok(200_000));
        let big = run("head -c 5000 /dev/zero", 1000, 10 * second);
        assert!(big.is_err_and(|e| e.contains("more than 1000 bytes")));
        // A program that never stops talking is cut off at the size bound too.
        let endless = run("yes", 1000, 10 * second);
        assert!(endless.is_err_and(|e| e.contains("more than 1000 bytes")));
        let slow = run("sleep 30", 1000, Duration::from_millis(300));
        assert!(slow.is_err_and(|e| e.contains("no complete answer")));
        let failed = run("echo x; exit 2", 1000, 10 * second);
        assert!(failed.is_err_and(|e| e.contains("failed")));
        // No environment reaches it but the runner's fixed PATH.
        assert_eq!(
            run("echo \"[$HOME]\"", 100, 10 * second),
            Ok(b"[]\n".to_vec())
        );
    }

    #[test]
    fn only_a_root_owned_program_others_cannot_write_is_run() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let roots = |d: &Path| std::fs::metadata(d).is_ok_and(|m| m.uid() == 0);
        // Not in /tmp: a sticky world-writable directory above the program is refused
        // too, which would leave the control nothing to show. As root, under /run (the
        // checkout itself may lie below /tmp); otherwise in the crate's directory.
        let root = roots(Path::new("/proc/self"));
        let parent = if root {
            "/run"
        } else {
            env!("CARGO_MANIFEST_DIR")
        };
        let dir = tempfile::tempdir_in(parent).expect("tmp");
        let p = dir.path().join("getent");
        let sh = std::fs::canonicalize("/bin/sh").expect("a shell");
        let script = format!("#!{}\necho root:x:0:0\n", sh.display());
        std::fs::write(&p, script).expect("write");
        let run = |p: &Path| bounded_output(p, &[], 100, Duration::from_secs(10));
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        chmod(dir.path(), 0o755);
        chmod(&p, 0o777);
        let world_writable = run(&p);
        assert!(
            world_writable
                .as_ref()
                .is_err_and(|e| e.contains("only root can change")),
            "{world_writable:?}"
        );
        assert!(run(dir.path()).is_err(), "not a file");
        // Control: the same script at 0755 runs, as root (every directory above it root's).
        chmod(&p, 0o755);
        let closed =
            |d: &Path| std::fs::metadata(d).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0);
        if root {
            assert!(
                dir.path().ancestors().all(closed),
                "{}",
                dir.path().display()
            );
            assert_eq!(run(&p), Ok(b"root:x:0:0\n".to_vec()));
        }
    }
}
