//! One account's verdict on a service with more than one `pam_totp` auth line (the
//! sudo and su examples read the store, then a home-mode line for the users not moved
//! yet; lines may differ in `accessfile=`, `skip_group=`, `nullok`): every line is
//! judged, then the lines are run in stack order by their control values as libpam
//! runs them (`totp_os::pam_stack::ModuleLine::action`), for a login that gets every
//! other module's approval and types each right code. The verdict is the line that
//! decides: the one whose refusal fails the login, else the ones that ask for a code,
//! else the skips that let the account in on the other modules alone.

use totp_os::inspect::{Finding, Verdict};
use totp_os::pam_stack::{
    Action, Fault, ModuleLine, Returned, control_problem, fault_action, jumped,
};

/// What one line did in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Run; the module's finding decided what it returned.
    Yes,
    /// Not run: an earlier line's jump (`success=N`) or `done`, or its failure ended
    /// the stack, skipped it (for every origin, see [`combine_origins`]).
    Skipped,
    /// Not run because what an earlier line returns is not known.
    Unknown,
}

/// One line's own finding for the account, and whether the run reached it.
pub struct LineFinding {
    pub place: String,
    pub finding: Finding,
    pub ran: Ran,
}

/// What the module returns for an account whose finding on a line is `finding`
/// (`skipped`: an access rule or group option skips the code); `None`: not known.
fn returned(finding: &Finding, skipped: bool, nullok: bool) -> Option<Returned> {
    Some(match finding.verdict {
        Verdict::Refused => Returned::AuthErr,
        Verdict::NotEnrolled if nullok => Returned::Ignore,
        Verdict::NotEnrolled => Returned::AuthErr,
        Verdict::Ok | Verdict::Warning if skipped => Returned::Ignore,
        Verdict::Ok | Verdict::Warning => Returned::Success,
        Verdict::Unverified => return None,
    })
}

/// Whether libpam fails the login when a line returns `ret` and its control value
/// gives `action`, after other modules have approved (pam.conf(5) and libpam's
/// dispatcher): `bad` and `die` whatever was returned; `ok` and `done` for anything
/// but a success, which they make the stack's result: `PAM_AUTH_ERR`, or `PAM_IGNORE`,
/// which `pam_authenticate` returns as it is (not a success).
fn fails_login(ret: Returned, action: Action) -> bool {
    match action {
        Action::Bad | Action::Die => true,
        Action::Ok | Action::Done => ret != Returned::Success,
        Action::Ignore | Action::Reset | Action::Jump(_) => false,
    }
}

/// The module's own failures (`PAM_CONV_ERR` for a client that hangs up at the prompt,
/// `PAM_SYSTEM_ERR`, ...) that `line`'s control value lets through: a login passes such
/// a line without a code, as it passes one that ignores a wrong code.
fn faults_passed(line: &ModuleLine) -> Vec<&'static str> {
    Fault::ALL
        .into_iter()
        .filter(|&f| !matches!(fault_action(&line.control, f), Action::Bad | Action::Die))
        .map(Fault::name)
        .collect()
}

/// Whether `later` lies after `from` in `from`'s stack (what its `done` ends; a
/// substack's `done` ends only the substack).
fn ended(from: &[usize], later: &[usize]) -> bool {
    jumped(from, later, usize::MAX)
}

/// The account's verdict over `lines` (each with its finding, whether that finding
/// is a skip, and its `nullok`), and each line's part. With one line, its finding.
pub fn combine(lines: &[(&ModuleLine, Finding, bool, bool)]) -> (Finding, Vec<LineFinding>) {
    let mut parts: Vec<LineFinding> = lines
        .iter()
        .map(|(line, finding, _, _)| LineFinding {
            place: line.place(),
            finding: finding.clone(),
            ran: Ran::Yes,
        })
        .collect();
    // One line: its own finding, unless its control value turns it round (a refusal
    // `optional` ignores; a skip or a right code its control value fails).
    if let [(line, finding, skipped, nullok)] = lines {
        let agrees = match returned(finding, *skipped, *nullok) {
            Some(ret) => fails_login(ret, line.action(ret)) == (ret == Returned::AuthErr),
            None => true,
        };
        // A line that asks and fails a wrong code, but whose control value lets the
        // module's own failures through, is warned about below as in a stack of several.
        let open = returned(finding, *skipped, *nullok) == Some(Returned::Success)
            && fails_login(Returned::AuthErr, line.action(Returned::AuthErr))
            && !faults_passed(line).is_empty();
        if agrees && !open {
            return (finding.clone(), parts);
        }
    }
    let mut asked: Vec<usize> = Vec::new();
    let mut unenforced: Vec<usize> = Vec::new();
    let mut open_to_faults: Vec<usize> = Vec::new();
    let mut ignored: Vec<usize> = Vec::new();
    let mut decided: Option<Finding> = None;
    for (i, (line, finding, skipped, nullok)) in lines.iter().enumerate() {
        if parts[i].ran != Ran::Yes {
            continue;
        }
        let place = line.place();
        let Some(ret) = returned(finding, *skipped, *nullok) else {
            for later in &mut parts[i + 1..] {
                later.ran = Ran::Unknown;
            }
            let mut reasons = vec![format!(
                "{place} decides, and what it does for this account is not known"
            )];
            reasons.extend(finding.reasons.iter().map(|r| format!("{place}: {r}")));
            decided = Some(Finding {
                verdict: Verdict::Unverified,
                reasons,
            });
            break;
        };
        let action = line.action(ret);
        // A wrong code on a line that asks: whether it fails the login here.
        let wrong = line.action(Returned::AuthErr);
        let fails = |a: Action| fails_login(Returned::AuthErr, a);
        match (ret, action) {
            (r, a) if fails_login(r, a) => {
                // Later lines may run (bad, ok), but nothing they return undoes it.
                for later in &mut parts[i + 1..] {
                    later.ran = Ran::Skipped;
                }
                let first = match r {
                    Returned::AuthErr => format!("{place} refuses it, and that fails the login"),
                    Returned::Ignore => format!(
                        "{place} skips the code, and its control value {} fails the login \
                         on a skip",
                        line.control
                    ),
                    Returned::Success => format!(
                        "{place}: its control value {} fails the login on the right code",
                        line.control
                    ),
                };
                let first = match control_problem(&line.control) {
                    Some(p) => format!(
                        "{first} (libpam cannot read that control value: {p}; it makes \
                         every result of the line a failure)"
                    ),
                    None => first,
                };
                let mut reasons = vec![first];
                reasons.extend(finding.reasons.iter().map(|r| format!("{place}: {r}")));
                decided = Some(Finding {
                    verdict: Verdict::Refused,
                    reasons,
                });
                break;
            }
            (Returned::Success, _) => {
                asked.push(i);
                if !fails(wrong) {
                    unenforced.push(i);
                } else if !faults_passed(line).is_empty() {
                    open_to_faults.push(i);
                }
            }
            _ => ignored.push(i),
        }
        match action {
            Action::Jump(n) => {
                for (j, (later, ..)) in lines.iter().enumerate().skip(i + 1) {
                    if jumped(&line.position, &later.position, n) {
                        parts[j].ran = Ran::Skipped;
                    }
                }
            }
            Action::Done if ret == Returned::Success => {
                for (j, (later, ..)) in lines.iter().enumerate().skip(i + 1) {
                    if ended(&line.position, &later.position) {
                        parts[j].ran = Ran::Skipped;
                    }
                }
            }
            _ => {}
        }
    }
    let finding =
        decided.unwrap_or_else(|| summary(lines, &asked, &unenforced, &open_to_faults, &ignored));
    (finding, parts)
}

/// [`combine`], where lines that ask for the code skip it for logins from some
/// origins (`sometimes`, each line's rule that does; the audit assumes an unknown
/// origin, which such a rule never skips): those logins go on to the lines after it,
/// which are then run too, all such lines skipping at once (lines reading one rule file
/// skip together). A refusal there is the verdict: those logins are denied.
pub fn combine_origins(
    lines: &[(&ModuleLine, Finding, bool, bool)],
    sometimes: &[Option<String>],
) -> (Finding, Vec<LineFinding>) {
    let (finding, mut parts) = combine(lines);
    if lines.len() < 2
        || finding.verdict == Verdict::Refused
        || sometimes.iter().all(Option::is_none)
    {
        return (finding, parts);
    }
    let skipping: Vec<(&ModuleLine, Finding, bool, bool)> = lines
        .iter()
        .zip(sometimes)
        .map(|((line, f, skipped, nullok), rule)| match rule {
            Some(rule) => {
                let why = format!("the code is not asked for logins that {rule} skips");
                (
                    *line,
                    Finding {
                        verdict: Verdict::Warning,
                        reasons: vec![why],
                    },
                    true,
                    *nullok,
                )
            }
            None => (*line, f.clone(), *skipped, *nullok),
        })
        .collect();
    let (other, other_parts) = combine(&skipping);
    if other.verdict != Verdict::Refused {
        return (finding, parts);
    }
    let rules: Vec<String> = lines
        .iter()
        .zip(sometimes)
        .filter_map(|((line, ..), rule)| Some(format!("{} by {}", line.place(), rule.as_ref()?)))
        .collect();
    let mut reasons = vec![format!(
        "logins from an origin whose code is skipped at {} go on to the lines after it",
        rules.join(", ")
    )];
    reasons.extend(other.reasons);
    reasons.push(format!(
        "from other origins: {}: {}",
        finding.verdict,
        finding.reasons.join("; ")
    ));
    // A line either run runs for some login.
    for (part, other) in parts.iter_mut().zip(other_parts) {
        if other.ran == Ran::Yes {
            part.ran = Ran::Yes;
        }
    }
    (
        Finding {
            verdict: Verdict::Refused,
            reasons,
        },
        parts,
    )
}

/// The verdict of a run no line failed: the lines that ask for a code, else the skips.
fn summary(
    lines: &[(&ModuleLine, Finding, bool, bool)],
    asked: &[usize],
    unenforced: &[usize],
    open_to_faults: &[usize],
    ignored: &[usize],
) -> Finding {
    let place = |i: usize| lines[i].0.place();
    let mut reasons = Vec::new();
    let deciding = if asked.is_empty() { ignored } else { asked };
    let mut verdict = if asked.is_empty() {
        // Every line that ran skipped: the other modules alone let the account in.
        reasons.push("no line asks for a code: the other modules alone let it in".to_owned());
        if deciding
            .iter()
            .all(|&i| lines[i].1.verdict == Verdict::NotEnrolled)
        {
            Verdict::NotEnrolled
        } else {
            Verdict::Warning
        }
    } else {
        if asked.len() > 1 {
            let all: Vec<String> = asked.iter().map(|&i| place(i)).collect();
            reasons.push(format!(
                "{} lines each ask for a code: {}",
                asked.len(),
                all.join(", ")
            ));
        }
        if asked
            .iter()
            .any(|&i| lines[i].1.verdict == Verdict::Warning)
        {
            Verdict::Warning
        } else {
            Verdict::Ok
        }
    };
    for &i in unenforced {
        verdict = Verdict::Warning;
        reasons.push(format!(
            "{}: a wrong code does not fail the login by this line (control {})",
            place(i),
            lines[i].0.control
        ));
    }
    for &i in open_to_faults {
        verdict = Verdict::Warning;
        reasons.push(format!(
            "{}: a wrong code fails the login by this line, but the module's own failures \
             ({}: a conversation ended at the prompt, a fault of the host) do not (control \
             {}): the login can pass it without a code",
            place(i),
            faults_passed(lines[i].0).join(", "),
            lines[i].0.control
        ));
    }
    for &i in deciding {
        reasons.extend(
            lines[i]
                .1
                .reasons
                .iter()
                .map(|r| format!("{}: {r}", place(i))),
        );
    }
    Finding { verdict, reasons }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn line(n: usize, control: &str, position: &[usize]) -> ModuleLine {
        ModuleLine {
            kind: "auth".into(),
            control: control.into(),
            options: None,
            file: PathBuf::from("svc"),
            line: n,
            position: position.to_vec(),
            after: 9,
        }
    }

    fn found(verdict: Verdict, why: &str) -> Finding {
        Finding {
            verdict,
            reasons: vec![why.to_owned()],
        }
    }

    /// A line that fails a wrong code but lets the module's own failures through
    /// (`default=ignore`) is a warning, alone or after another line; control: `required`
    /// and `[success=ok default=die]` (every failure fails) keep the line's verdict.
    #[test]
    fn a_line_open_to_the_modules_own_failures_is_a_warning() {
        let open = line(1, "[success=ok auth_err=die default=ignore]", &[3]);
        let (f, _) = combine(&[(&open, found(Verdict::Ok, "enrolled"), false, false)]);
        assert_eq!(f.verdict, Verdict::Warning, "{:?}", f.reasons);
        let why = f.reasons.join("; ");
        assert!(
            why.contains("PAM_CONV_ERR") && why.contains("PAM_ABORT"),
            "{why}"
        );
        let store = line(1, "[success=1 ignore=ignore default=die]", &[3]);
        let home = line(2, "[success=ok auth_err=bad default=ignore]", &[4]);
        let (f, _) = combine(&[
            (
                &store,
                found(Verdict::NotEnrolled, "not in the store"),
                false,
                true,
            ),
            (&home, found(Verdict::Ok, "enrolled"), false, true),
        ]);
        assert_eq!(f.verdict, Verdict::Warning, "{:?}", f.reasons);
        assert!(
            f.reasons.join("; ").contains("PAM_SYSTEM_ERR"),
            "{:?}",
            f.reasons
        );
        for control in ["required", "[success=ok default=die]", "requisite"] {
            let closed = line(1, control, &[3]);
            let (f, _) = combine(&[(&closed, found(Verdict::Ok, "enrolled"), false, false)]);
            assert_eq!(f.verdict, Verdict::Ok, "control {control}: {:?}", f.reasons);
        }
        // An account the line skips passes it without a code anyway: not warned.
        let (f, _) = combine(&[(&open, found(Verdict::Ok, "skipped"), true, false)]);
        assert_eq!(f.verdict, Verdict::Ok, "{:?}", f.reasons);
    }

    /// The sudo example's two lines: the store (a right code jumps over the home line),
    /// then the home file.
    #[test]
    fn the_line_that_decides_gives_the_verdict() {
        let store = line(1, "[success=1 ignore=ignore default=die]", &[3]);
        let home = line(2, "[success=ok ignore=ignore default=die]", &[4]);
        let run = |a: Finding, b: Finding| {
            let (f, parts) = combine(&[(&store, a, false, true), (&home, b, false, true)]);
            (
                f.verdict,
                parts.iter().map(|p| p.ran).collect::<Vec<_>>(),
                f,
            )
        };
        use Verdict::*;
        // In the store: the home line is jumped over, whatever it would say.
        let (v, ran, _) = run(found(Ok, "store"), found(Refused, "home 0644"));
        assert_eq!((v, ran), (Ok, vec![Ran::Yes, Ran::Skipped]));
        // Not in the store: the home line decides, refusal or code.
        let (v, ran, f) = run(found(NotEnrolled, "none"), found(Refused, "home 0644"));
        assert_eq!((v, ran), (Refused, vec![Ran::Yes, Ran::Yes]));
        assert!(f.reasons[0].starts_with("svc:2 refuses it"), "{f:?}");
        let (v, _, f) = run(found(NotEnrolled, "none"), found(Ok, "home"));
        assert_eq!(v, Ok);
        assert!(f.reasons.iter().any(|r| r == "svc:2: home"), "{f:?}");
        let (v, ..) = run(found(NotEnrolled, "none"), found(NotEnrolled, "none"));
        assert_eq!(v, NotEnrolled);
        // A refused store file dies there.
        let (v, ran, _) = run(found(Refused, "store 0644"), found(Ok, "home"));
        assert_eq!((v, ran), (Refused, vec![Ran::Yes, Ran::Skipped]));
        let (v, ran, _) = run(found(Unverified, "?"), found(Ok, "home"));
        assert_eq!((v, ran), (Unverified, vec![Ran::Yes, Ran::Unknown]));
    }

    /// Two `required` lines both run: each asks for its code, and a refusal on the
    /// second fails a login the first lets in.
    #[test]
    fn required_lines_all_run() {
        let a = line(1, "required", &[0]);
        let b = line(2, "required", &[1]);
        let (f, _) = combine(&[
            (&a, found(Verdict::Ok, "a"), false, false),
            (&b, found(Verdict::Refused, "b"), false, false),
        ]);
        assert_eq!(f.verdict, Verdict::Refused);
        let (f, _) = combine(&[
            (&a, found(Verdict::Ok, "a"), false, false),
            (&b, found(Verdict::Ok, "b"), false, false),
        ]);
        assert_eq!(f.verdict, Verdict::Ok);
        assert!(f.reasons[0].contains("2 lines each ask"), "{f:?}");
        // sufficient: a right code ends the stack; a wrong one is ignored (a warning).
        let s = line(1, "sufficient", &[0]);
        let (f, parts) = combine(&[
            (&s, found(Verdict::Ok, "a"), false, false),
            (&b, found(Verdict::Refused, "b"), false, false),
        ]);
        assert_eq!(f.verdict, Verdict::Warning, "{f:?}");
        assert_eq!(parts[1].ran, Ran::Skipped);
    }

    /// The store line skips for some origins: those logins reach the home line, whose
    /// refusal is the verdict; without that, the store line's jump decides.
    #[test]
    fn a_skip_for_some_origins_runs_the_lines_after_it() {
        let store = line(1, "[success=1 ignore=ignore default=die]", &[3]);
        let home = line(2, "[success=ok ignore=ignore default=die]", &[4]);
        let run = |home_finding: Finding, rule: Option<&str>| {
            let lines = [
                (&store, found(Verdict::Ok, "store"), false, true),
                (&home, home_finding, false, true),
            ];
            combine_origins(&lines, &[rule.map(str::to_owned), None])
        };
        let (f, parts) = run(found(Verdict::Refused, "home 0644"), Some("R"));
        assert_eq!(f.verdict, Verdict::Refused, "{f:?}");
        assert!(f.reasons[0].contains("svc:1 by R"), "{f:?}");
        assert!(
            f.reasons.iter().any(|r| r.starts_with("svc:2 refuses it")),
            "{f:?}"
        );
        assert_eq!(parts[1].ran, Ran::Yes);
        // Controls: no origin skips; a usable home file.
        let (f, parts) = run(found(Verdict::Refused, "home 0644"), None);
        assert_eq!((f.verdict, parts[1].ran), (Verdict::Ok, Ran::Skipped));
        let (f, _) = run(found(Verdict::Ok, "home"), Some("R"));
        assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
    }

    #[test]
    fn jumps_stay_in_their_substack() {
        assert!(jumped(&[3], &[4], 1));
        assert!(!jumped(&[3], &[5], 1));
        assert!(jumped(&[3], &[4, 0], 1));
        assert!(!jumped(&[4, 0], &[5], 9));
        assert!(jumped(&[4, 0], &[4, 2], 2));
        assert!(ended(&[4, 0], &[4, 7]));
        assert!(!ended(&[4, 0], &[5]));
    }
}
