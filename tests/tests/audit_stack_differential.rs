//! `totp-state audit --service` runs the service's `pam_totp` auth lines by their control
//! values (`totp-state/src/audit_stack.rs`) and warns of other modules' lines that end
//! the stack or jump past a code line (`totp_os::pam_stack::bypass_warnings`). Both are
//! claims about what libpam does: this test generates small stacks from fixed seeds, runs
//! the real login through libpam and the audit on the same pam.d directory, and asserts
//! they agree (docs/differential.md, "Stack differential").

use std::path::Path;
use std::process::Command;

use system_tests::*;

/// A deterministic generator (xorshift64*): the same seed gives the same stacks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len())]
    }
}

/// What a `pam_totp` line's secret file is for the account.
#[derive(Clone, Copy, Debug, PartialEq)]
enum File {
    /// Mode 0600: the right code succeeds.
    Usable,
    /// Mode 0644: the module refuses it.
    Refused,
    Absent,
}

#[derive(Clone, Debug)]
enum Entry {
    Totp {
        control: String,
        nullok: bool,
        skip: bool,
        file: File,
    },
    /// `pam_permit.so`: succeeds.
    Permit { control: String },
    /// `pam_deny.so`: fails. Only where the audit says what it means: jumped over by
    /// the approving line before it, as in Debian's common-auth.
    Deny { control: String },
    /// `auth include` (false) or `auth substack` (true) of a file of these lines.
    Sub { substack: bool, lines: Vec<Entry> },
}

const ACTIONS: &[&str] = &["ok", "done", "die", "bad", "ignore"];

/// A control value for a line: a keyword, or a bracketed form with a jump of at most
/// `room` (the modules after it in its frame; a jump further is a different claim).
fn control(rng: &mut Rng, room: usize, totp: bool) -> String {
    let keywords = ["required", "requisite", "sufficient", "optional"];
    if rng.below(2) == 0 {
        return rng.pick(&keywords).to_owned();
    }
    let action = |rng: &mut Rng, may_fail: bool| -> String {
        if room > 0 && rng.below(3) == 0 {
            return (1 + rng.below(room)).to_string();
        }
        // The stand-ins' success is the approval the audit assumes: never a failure.
        let of: &[&str] = if may_fail { ACTIONS } else { &ACTIONS[..2] };
        rng.pick(of).to_owned()
    };
    let success = action(rng, totp);
    let mut parts = vec![format!("success={success}")];
    if totp {
        if rng.below(2) == 0 {
            parts.push(format!("ignore={}", action(rng, true)));
        }
        if rng.below(2) == 0 {
            parts.push(format!("auth_err={}", action(rng, true)));
        }
        if rng.below(3) != 0 {
            parts.push(format!("default={}", action(rng, true)));
        }
    } else {
        parts.push("default=ignore".to_owned());
    }
    format!("[{}]", parts.join(" "))
}

fn totp(rng: &mut Rng, room: usize) -> Entry {
    // Now and then one further than the frame may have: libpam's "bad jump".
    let room = if rng.below(6) == 0 { room + 1 } else { room };
    Entry::Totp {
        control: control(rng, room, true),
        nullok: rng.below(2) == 0,
        skip: rng.below(5) == 0,
        file: [File::Usable, File::Usable, File::Refused, File::Absent][rng.below(4)],
    }
}

/// `n` lines, `nested` whether they may include a file of their own.
fn lines(rng: &mut Rng, n: usize, nested: bool) -> Vec<Entry> {
    let mut kinds: Vec<usize> = (0..n)
        .map(|_| rng.below(if nested { 6 } else { 5 }))
        .collect();
    // Every stack has a code line.
    if !kinds.iter().any(|&k| k < 3) {
        kinds[0] = 0;
    }
    let mut out = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        // A jump stays in this file's frame; an include's modules count in it too, so
        // stay conservative: the lines left in this file.
        let room = n - i - 1;
        out.push(match k {
            0..=2 => totp(rng, room),
            3 | 4 => Entry::Permit {
                control: control(rng, room, false),
            },
            _ => {
                let m = 1 + rng.below(3);
                Entry::Sub {
                    substack: rng.below(2) == 0,
                    lines: lines(rng, m, false),
                }
            }
        });
    }
    out
}

/// The files of one generated service: `svc` and its sub-files, and each code line's
/// secret file state, in stack order.
struct Written {
    files: Vec<(String, String)>,
    code_files: Vec<File>,
}

fn write_out(entries: &[Entry], module: &str, dir: &Path, base: &Path, group: &str) -> Written {
    let mut w = Written {
        files: Vec::new(),
        code_files: Vec::new(),
    };
    // pam_permit first: the password line whose success the audit assumes.
    let mut svc = String::from("auth required pam_permit.so\n");
    render(entries, module, base, group, dir, &mut w, &mut svc);
    w.files.insert(0, ("svc".to_owned(), svc));
    w
}

fn render(
    entries: &[Entry],
    module: &str,
    base: &Path,
    group: &str,
    dir: &Path,
    w: &mut Written,
    text: &mut String,
) {
    for e in entries {
        match e {
            Entry::Totp {
                control,
                nullok,
                skip,
                file,
            } => {
                let i = w.code_files.len();
                w.code_files.push(*file);
                text.push_str(&format!(
                    "auth {control} {module} state_dir={} secret=~/.totp{i} authtok_prompt=Code{i}:{}{}\n",
                    base.display(),
                    if *nullok { " nullok" } else { "" },
                    if *skip {
                        format!(" skip_group={group}")
                    } else {
                        String::new()
                    }
                ));
            }
            Entry::Permit { control } => {
                text.push_str(&format!("auth {control} pam_permit.so\n"));
            }
            Entry::Deny { control } => {
                text.push_str(&format!("auth {control} pam_deny.so\n"));
            }
            Entry::Sub { substack, lines } => {
                let name = format!("sub{}", w.files.len());
                let mut sub = String::new();
                render(lines, module, base, group, dir, w, &mut sub);
                w.files.push((name.clone(), sub));
                let how = if *substack { "substack" } else { "include" };
                // By path: libpam (1.5) reads a relative include of a `pam_start_confdir`
                // stack from its default directory, not the stack's.
                text.push_str(&format!("auth {how} {}\n", dir.join(&name).display()));
            }
        }
    }
}

/// The stand-in lines of `svc` (as `FILE:LINE`) and each one's line text.
fn stand_ins(dir: &Path, files: &[(String, String)]) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (fi, (name, text)) in files.iter().enumerate() {
        for (n, line) in text.lines().enumerate() {
            if line.ends_with("pam_permit.so") && !(fi == 0 && n == 0) {
                out.push((
                    format!("{}:{}", dir.join(name).display(), n + 1),
                    name.clone(),
                    n,
                ));
            }
        }
    }
    out
}

/// What `totp-enroll check --service svc` says on standard error about `user`'s login
/// through `stack`.
fn enroll_check(stack: &Stack, user: &str) -> String {
    let out = Command::new(&built().enroll)
        .args(["check", "--user", user, "--service", "svc", "--pam-dir"])
        .arg(stack.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("totp-enroll check");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn audit(stack: &Stack, user: &str) -> (String, String, Vec<String>) {
    let out = Command::new(&built().state_tool)
        .args([
            "audit",
            "--json",
            "--service",
            "svc",
            "--user",
            user,
            "--pam-dir",
        ])
        .arg(stack.path())
        .output()
        .expect("totp-state audit");
    let seen = audit_verdicts(&out.stdout);
    let (verdict, reasons) = seen
        .get(user)
        .cloned()
        .unwrap_or_else(|| panic!("no verdict: {out:?}"));
    let warnings = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("comes before the pam_totp.so line"))
        .map(str::to_owned)
        .collect();
    (verdict, reasons, warnings)
}

/// The login of `user` typing each line's right code at its prompt.
fn login(stack: &Stack, user: &TestUser, secrets: &[String]) -> Drive {
    let mut d = Driver::new(stack, "svc", &user.name).at(T0);
    for (i, s) in secrets.iter().enumerate() {
        d = d.arg("--answer-to", &format!("Code{i}:={}", code_at(s, T0)));
    }
    d.run()
}

/// One generated case: returns a description of the disagreement, if any.
fn check(
    case: &str,
    entries: &[Entry],
    user: &TestUser,
    secrets: &[String],
    group: &str,
) -> Option<String> {
    let stack = Stack::new();
    let module = built().module.to_string_lossy().into_owned();
    let w = write_out(entries, &module, stack.path(), &stack.state_dir(), group);
    for (name, text) in &w.files {
        stack.service(name, text);
    }
    for (i, f) in w.code_files.iter().enumerate() {
        let p = user.home.join(format!(".totp{i}"));
        let _ = std::fs::remove_file(&p);
        let text = totp_file(&secrets[i]);
        match f {
            File::Usable => write_owned(&p, text.as_bytes(), user.uid, user.gid, 0o600),
            File::Refused => write_owned(&p, text.as_bytes(), user.uid, user.gid, 0o644),
            File::Absent => {}
        }
    }
    let n = w.code_files.len();
    let listing = || {
        w.files
            .iter()
            .map(|(name, text)| format!("--- {name}\n{text}"))
            .collect::<String>()
    };
    let (verdict, reasons, warnings) = audit(&stack, &user.name);
    let d = login(&stack, user, secrets);
    let mut problems = Vec::new();

    // Each stand-in alone, in a copy where every code line asks (required, usable
    // file) and every other stand-in just approves (`optional`): whether it keeps a code
    // line from running is what the warning claims.
    let plain = Stack::new();
    let mut bypassing = false;
    for (place, file, at) in stand_ins(stack.path(), &w.files) {
        let warned = warnings
            .iter()
            .any(|l| l.contains(&format!("{place} (auth")));
        for (name, text) in &w.files {
            let rewritten: String = text
                .lines()
                .enumerate()
                .map(|(k, line)| {
                    let line = if line.contains(&module) {
                        let i = line
                            .split("secret=~/.totp")
                            .nth(1)
                            .and_then(|r| r.split_whitespace().next())
                            .unwrap_or("0");
                        format!(
                            "auth required {module} state_dir={} secret=~/.totpp{i} \
                             authtok_prompt=Code{i}:",
                            plain.state_dir().display()
                        )
                    } else if line.starts_with("auth include ")
                        || line.starts_with("auth substack ")
                    {
                        line.replace(
                            &*stack.path().to_string_lossy(),
                            &plain.path().to_string_lossy(),
                        )
                    } else if line.ends_with("pam_deny.so") {
                        "auth optional pam_deny.so".to_owned()
                    } else if line.ends_with("pam_permit.so")
                        && !(name == &file && k == at)
                        && !(name == "svc" && k == 0)
                    {
                        "auth optional pam_permit.so".to_owned()
                    } else {
                        line.to_owned()
                    };
                    format!("{line}\n")
                })
                .collect();
            plain.service(name, &rewritten);
        }
        for (i, s) in secrets.iter().enumerate().take(n) {
            let p = user.home.join(format!(".totpp{i}"));
            write_owned(&p, totp_file(s).as_bytes(), user.uid, user.gid, 0o600);
        }
        // A fresh store for each run: the same code again would be a replay.
        let _ = std::fs::remove_dir_all(plain.state_dir());
        let r = login(&plain, user, secrets);
        let skipped = r.prompts < n;
        bypassing |= warned;
        if skipped != warned {
            problems.push(format!(
                "stand-in {place}: {} code line(s) of {n} asked alone ({} {:?}), but the audit {}",
                r.prompts,
                r.result,
                r.messages,
                if warned { "warns" } else { "does not warn" }
            ));
        }
    }

    // The verdict, where no stand-in skips a code line (the audit's verdict is for the
    // logins that reach the code lines; the warning covers the others).
    if !bypassing {
        let let_in = d.result == "PAM_SUCCESS";
        // A lone line's `not-enrolled` without nullok says the login is denied.
        let first: String = serde_json::from_str::<Vec<String>>(&reasons)
            .ok()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default();
        let says_in = match verdict.as_str() {
            "ok" | "warning" => true,
            "not-enrolled" => !first.contains("every login denied"),
            _ => false,
        };
        if let_in != says_in {
            problems.push(format!(
                "libpam: {} ({} prompt(s)); audit: {verdict} {reasons}",
                d.result, d.prompts
            ));
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!(
            "{case}: {}\nfiles: {:?}\n{}",
            problems.join("; "),
            w.code_files,
            listing()
        ))
    }
}

const GROUP: &str = "ptsdskip";

/// An account in the skip group, and a secret for each code line a stack can have.
fn account(tag: &str) -> (TestUser, Vec<String>) {
    let u = TestUser::create(tag);
    u.add_to_group(GROUP);
    (u, (0..16).map(|_| random_secret_b32()).collect())
}

/// Generated stacks (fixed seeds), each through libpam and the audit.
#[test]
fn generated_stacks_agree_with_libpam() {
    if !require_root("generated_stacks_agree_with_libpam") {
        return;
    }
    let (u, secrets) = account("sd");
    let mut failures = Vec::new();
    let cases: u64 = 200;
    for seed in 1..=cases {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let n = 1 + rng.below(4);
        let entries = lines(&mut rng, n, true);
        if let Some(f) = check(&format!("seed {seed}"), &entries, &u, &secrets, GROUP) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} stacks disagree:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Stacks the generator found the audit wrong on, kept as fixed cases: a lone line's
/// control value that turns its finding round (a 0644 file on an `optional` line lets
/// the login in on the other modules; `[success=die]` fails even the right code), and a
/// skip (`nullok`, no file) under `default=bad` or `ignore=ok` (libpam ends the login
/// with `PAM_IGNORE`, not a success), and a jump past the end of the line's stack frame
/// (libpam's "bad jump in stack": the right code fails the login). Controls: the same
/// lines under `required` and `[success=ok ignore=ignore default=die]`, a jump that lands
/// on the last module.
#[test]
fn fixed_cases_found_by_the_differential() {
    if !require_root("fixed_cases_found_by_the_differential") {
        return;
    }
    let (u, secrets) = account("sf");
    let t = |control: &str, file: File, nullok: bool| Entry::Totp {
        control: control.to_owned(),
        nullok,
        skip: false,
        file,
    };
    let permit = |control: &str| Entry::Permit {
        control: control.to_owned(),
    };
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("optional 0644", vec![t("optional", File::Refused, false)]),
        (
            "control: required 0644",
            vec![t("required", File::Refused, false)],
        ),
        (
            "success=die",
            vec![t("[success=die ignore=die]", File::Usable, false)],
        ),
        (
            "control: success=ok",
            vec![t("[success=ok default=die]", File::Usable, false)],
        ),
        (
            "skip under default=bad",
            vec![
                t("[success=ok default=bad]", File::Absent, true),
                permit("[success=ok default=ignore]"),
                t("optional", File::Refused, false),
            ],
        ),
        (
            "skip under ignore=ok",
            vec![t(
                "[success=done ignore=ok default=ignore]",
                File::Absent,
                true,
            )],
        ),
        (
            "jump past the end",
            vec![t("[success=2 default=die]", File::Usable, false)],
        ),
        (
            "jump past the end of a substack",
            vec![
                Entry::Sub {
                    substack: true,
                    lines: vec![t("[success=1 default=die]", File::Usable, false)],
                },
                permit("required"),
            ],
        ),
        (
            "control: jump to the end",
            vec![
                t("[success=1 default=die]", File::Usable, false),
                permit("required"),
            ],
        ),
        (
            "Debian's common-auth before the code line",
            vec![
                permit("[success=1 default=ignore]"),
                Entry::Deny {
                    control: "requisite".to_owned(),
                },
                permit("required"),
                t(
                    "[success=ok ignore=ignore default=die]",
                    File::Refused,
                    true,
                ),
            ],
        ),
        (
            "Debian's common-auth, a jump of 2 past the code line",
            vec![
                permit("[success=2 default=ignore]"),
                Entry::Deny {
                    control: "requisite".to_owned(),
                },
                t("required", File::Refused, false),
                permit("required"),
            ],
        ),
        (
            "control: skip under ignore=ignore",
            vec![
                t("[success=ok ignore=ignore default=die]", File::Absent, true),
                t("optional", File::Usable, false),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, entries) in &cases {
        if let Some(f) = check(name, entries, &u, &secrets, GROUP) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Control values libpam reads differently from a plain split on blanks and `=`
/// (`totp_os::pam_stack::control_action`): keywords in any case or in brackets, blanks
/// around `=`, the first `default=` (a later one finds every value set), and text
/// libpam cannot read (a jump of 0, an unknown return value), which makes every result
/// of the line a failure. Each through libpam and the audit, a lone code line with a
/// usable file and the right code typed. Controls: the same values written plainly.
#[test]
fn control_values_as_libpam_reads_them() {
    if !require_root("control_values_as_libpam_reads_them") {
        return;
    }
    let (u, secrets) = account("sv");
    let t = |control: &str, file: File| {
        vec![Entry::Totp {
            control: control.to_owned(),
            nullok: false,
            skip: false,
            file,
        }]
    };
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("keyword in capitals", t("Required", File::Usable)),
        ("control: keyword", t("required", File::Usable)),
        ("keyword in brackets", t("[OPTIONAL]", File::Refused)),
        ("control: optional", t("optional", File::Refused)),
        (
            "blanks around =",
            t("[success = ok default= die]", File::Usable),
        ),
        (
            "first default=",
            t("[default=bad default=ok]", File::Usable),
        ),
        ("control: one default=", t("[default=ok]", File::Usable)),
        ("jump of 0", t("[success=0 default=ok]", File::Usable)),
        (
            "unknown value",
            t("[success=ok default=ok bogus=ok]", File::Usable),
        ),
        (
            "last of a value named twice",
            t("[success=ok success=die]", File::Usable),
        ),
        (
            "jump beyond INT_MAX",
            t("[success=ok auth_err=99999999999 default=ok]", File::Usable),
        ),
        (
            "jump number past INT_MAX, wrapped to ok",
            t("[success=4294967295 default=die]", File::Usable),
        ),
        (
            "jump number past INT_MAX on auth_err only",
            t("[success=ok auth_err=99999999999 default=ok]", File::Usable),
        ),
        (
            "control: success=ok",
            t("[success=ok default=die]", File::Usable),
        ),
    ];
    let mut failures = Vec::new();
    for (name, entries) in &cases {
        if let Some(f) = check(name, entries, &u, &secrets, GROUP) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `totp-enroll check` warns of a code line on which a wrong code does not fail the
/// login, by the same reading of the control value: `auth_err=` named twice takes the
/// last (libpam lets a wrong code in after `auth_err=die auth_err=ignore`, and denies it
/// after `auth_err=ignore auth_err=die`). Each stack is run through libpam with a wrong
/// code; the warning is there exactly when libpam let it in.
#[test]
fn check_warns_where_libpam_lets_a_wrong_code_in() {
    if !require_root("check_warns_where_libpam_lets_a_wrong_code_in") {
        return;
    }
    let u = TestUser::create("sw");
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    let right = code_at(&secret, T0);
    // Another six digits: each digit moved by one.
    let wrong: String = right
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    for (control, lets_in) in [
        (
            "[success=ok auth_err=die auth_err=ignore default=die]",
            true,
        ),
        (
            "[success=ok auth_err=ignore auth_err=die default=die]",
            false,
        ),
        ("[success=ok default=ignore default=die]", true),
        ("[success=ok default=die default=ignore]", false),
    ] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\nauth {control} @MODULE@\n"),
        );
        let d = Driver::login(&stack, &u, &wrong).at(T0).run();
        assert_eq!(d.result == "PAM_SUCCESS", lets_in, "{control}: {d:?}");
        let stderr = enroll_check(&stack, &u.name);
        let warned = stderr.contains("a wrong code is ignored");
        assert_eq!(warned, lets_in, "{control}: {stderr}");
    }
}

/// libpam reads a line's type and the `include`/`substack` keywords in any case
/// (`AUTH`, `auth Include`): the audit and `totp-enroll check` read such lines as the
/// auth lines they are. Each stack holds one code line whose file (mode 0644) the module
/// refuses: libpam denies the login, the audit says `refused`, and check gives no "fails
/// every time" warning for it. Control: the same stacks written in lower case.
#[test]
fn line_types_and_include_keywords_are_read_in_any_case() {
    if !require_root("line_types_and_include_keywords_are_read_in_any_case") {
        return;
    }
    let (u, secrets) = account("sk");
    let p = u.home.join(".totp0");
    let _ = std::fs::remove_file(&p);
    write_owned(&p, totp_file(&secrets[0]).as_bytes(), u.uid, u.gid, 0o644);
    let code_line =
        |kind: &str| format!("{kind} required @MODULE@ secret=~/.totp0 authtok_prompt=Code0:\n");
    for (kind, include) in [
        ("AUTH", None),
        ("Auth", Some("Include")),
        ("auth", Some("SUBSTACK")),
        ("auth", None),
        ("auth", Some("include")),
    ] {
        let stack = Stack::new();
        let svc = match include {
            None => format!("auth required pam_permit.so\n{}", code_line(kind)),
            Some(word) => {
                stack.service("sub", &code_line("auth"));
                format!(
                    "auth required pam_permit.so\n{kind} {word} {}\n",
                    stack.path().join("sub").display()
                )
            }
        };
        stack.service("svc", &svc);
        let case = format!("{kind} {include:?}");
        let d = login(&stack, &u, &secrets[..1]);
        assert_eq!(
            d.result, "PAM_AUTH_ERR",
            "{case}: libpam ran the code line: {d:?}"
        );
        let (verdict, reasons, _) = audit(&stack, &u.name);
        assert_eq!(verdict, "refused", "{case}: {reasons}");
        let stderr = enroll_check(&stack, &u.name);
        assert!(
            !stderr.contains("fails every time") && !stderr.contains("has no auth line"),
            "{case}: {stderr}"
        );
        assert!(stderr.contains("mode 0644"), "{case}: {stderr}");
    }
}

/// Inside a bracketed argument libpam keeps `\]` as a `]` of the argument: the audit and
/// `totp-enroll check` read `[authtok_prompt=Code\] 0:]` as the one option libpam
/// passes (the prompt the login shows), not as an option followed by `0:]`, which the
/// module would refuse. Control: the same line with no escape.
#[test]
fn an_escaped_bracket_in_an_argument_is_read_as_libpam_passes_it() {
    if !require_root("an_escaped_bracket_in_an_argument_is_read_as_libpam_passes_it") {
        return;
    }
    let u = TestUser::create("sb");
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    for (arg, prompt) in [
        (r"[authtok_prompt=Code\] 0:]", "Code] 0:"),
        ("[authtok_prompt=Code 0:]", "Code 0:"),
    ] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\nauth required @MODULE@ {arg}\n"),
        );
        let d = Driver::new(&stack, "svc", &u.name)
            .arg("--answer-to", &format!("{prompt}={}", code_at(&secret, T0)))
            .at(T0)
            .run();
        assert_eq!(d.result, "PAM_SUCCESS", "{arg}: {d:?}");
        assert!(
            d.messages.iter().any(|(_, m)| m == prompt),
            "{arg}: libpam passed another prompt: {d:?}"
        );
        let (verdict, reasons, _) = audit(&stack, &u.name);
        assert_eq!(verdict, "ok", "{arg}: {reasons}");
        let stderr = enroll_check(&stack, &u.name);
        assert!(
            !stderr.contains("invalid") && !stderr.contains("unrecognized"),
            "{arg}: {stderr}"
        );
    }
}

/// libpam strips one leading `-` from a line's type: `-auth` is an auth line, `--auth`
/// a line of an illegal type that never runs its module. The audit names a
/// google-authenticator line left on the same secret files only where libpam runs it:
/// through libpam, GA takes the code pam_totp just accepted on `-auth` (and on `AUTH`,
/// the type in capitals), and never asks on `--auth`.
#[test]
fn a_type_keeps_all_but_one_leading_dash_as_libpam_reads_it() {
    let t = "a_type_keeps_all_but_one_leading_dash_as_libpam_reads_it";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let Some(ga) = ga_module() else {
        skip(
            t,
            "google-authenticator's PAM module (libpam-google-authenticator)",
        );
        return;
    };
    let u = TestUser::create("sg");
    let warning = "loads pam_google_authenticator.so on the secret files";
    for (kind, runs) in [("-auth", true), ("AUTH", true), ("--auth", false)] {
        let stack = Stack::new();
        stack.service(
            "svc",
            "auth required pam_permit.so\nauth required @MODULE@\n",
        );
        stack.service("sudo", &format!("{kind} required {}\n", ga.display()));
        u.write_secret(
            &format!("{GA_SECRET}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
            0o600,
        );
        let code = oathtool_totp(GA_SECRET, T0, 30, 6, "sha1");
        let d = Driver::login(&stack, &u, &code).at(T0).run();
        assert_eq!(d.result, "PAM_SUCCESS", "{kind}: {d:?}");
        let d = Driver::new(&stack, "sudo", &u.name)
            .answer(&code)
            .at(T0 + 5)
            .run();
        assert_eq!(
            d.result == "PAM_SUCCESS",
            runs,
            "{kind}: GA through sudo: {d:?}"
        );
        assert_eq!(d.prompts > 0, runs, "{kind}: GA asked: {d:?}");
        let out = Command::new(&built().state_tool)
            .args(["audit", "--service", "svc", "--user", &u.name, "--pam-dir"])
            .arg(stack.path())
            .output()
            .expect("totp-state audit");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains(warning), runs, "{kind}: {err}");
    }
}

/// libpam (1.5.2 here) sums a jump number's digits in a C int: past 2147483647 it wraps
/// round, and a negative result is one of its codes for the action words. A code line
/// whose `auth_err=` number wraps to `reset`, or to "not set" with a `default=ignore`,
/// lets a wrong code in when a later line approves; the audit read such a number as a
/// jump past the stack (a failed login) and `totp-enroll check` said nothing. Each
/// stack is run through libpam with a wrong code; check warns exactly where libpam let
/// it in. Controls: the action words written out, and numbers that wrap to a failure.
#[test]
fn jump_numbers_past_int_max_as_libpam_reads_them() {
    if !require_root("jump_numbers_past_int_max_as_libpam_reads_them") {
        return;
    }
    let u = TestUser::create("sj");
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    let right = code_at(&secret, T0);
    let wrong: String = right
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    for (control, lets_in) in [
        ("[success=ok auth_err=4294967291 default=die]", true),
        ("[success=ok auth_err=4294967290 default=ignore]", true),
        ("[success=ok auth_err=reset default=die]", true),
        ("[success=ok auth_err=4294967289 default=ignore]", false),
        ("[success=ok auth_err=4294967296 default=ignore]", false),
        ("[success=ok auth_err=4294967293 default=ignore]", false),
        ("[success=ok auth_err=bad default=ignore]", false),
    ] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!(
                "auth required pam_permit.so\nauth {control} @MODULE@\n\
                 auth required pam_permit.so\n"
            ),
        );
        let d = Driver::login(&stack, &u, &wrong).at(T0).run();
        assert_eq!(d.result == "PAM_SUCCESS", lets_in, "{control}: {d:?}");
        let stderr = enroll_check(&stack, &u.name);
        let warned = stderr.contains("a wrong code is");
        assert_eq!(warned, lets_in, "{control}: {stderr}");
    }
}

/// libpam joins a line ending in a backslash to the next line with text: blanks after
/// the backslash, and blank or comment-only lines between, change nothing; a `#` right
/// after the backslash, or a CRLF line end, ends the line. A `pam_totp.so` line joined
/// to the one before is an argument of that module, and the login needs no code; the
/// audit read it as a code line (a trailing blank, a blank line after the backslash)
/// and said every login asks for a code. Each stack is run through libpam with no code
/// typed; the audit finds a code line exactly where libpam asked for a code. Control:
/// the same lines without a backslash.
#[test]
fn continued_lines_as_libpam_joins_them() {
    if !require_root("continued_lines_as_libpam_joins_them") {
        return;
    }
    let u = TestUser::create("sc");
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    for (text, asks) in [
        (
            "auth required pam_permit.so\nauth required @MODULE@\n",
            true,
        ),
        (
            "auth required pam_permit.so \\  \nauth required @MODULE@\n",
            false,
        ),
        (
            "auth required pam_permit.so \\\t\nauth required @MODULE@\n",
            false,
        ),
        (
            "auth required pam_permit.so \\\n# c\nauth required @MODULE@\n",
            false,
        ),
        (
            "auth required pam_permit.so \\\n\nauth required @MODULE@\n",
            false,
        ),
        (
            "auth required pam_permit.so \\\n  # c\nauth required @MODULE@\n",
            false,
        ),
        (
            "auth required pam_permit.so \\#\nauth required @MODULE@\n",
            true,
        ),
        (
            "auth required pam_permit.so \\\r\nauth required @MODULE@\n",
            true,
        ),
    ] {
        let stack = Stack::new();
        stack.service("svc", text);
        let d = Driver::login(&stack, &u, "000000").at(T0).run();
        assert_eq!(d.prompts == 1, asks, "{text:?}: {d:?}");
        let out = Command::new(&built().state_tool)
            .args(["audit", "--json", "--service", "svc", "--user", &u.name])
            .arg("--pam-dir")
            .arg(stack.path())
            .output()
            .expect("totp-state audit");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let found = !stderr.contains("has no auth line");
        assert_eq!(found, asks, "{text:?}: {out:?}");
        if asks {
            assert_eq!(out.status.code(), Some(0), "{text:?}: {out:?}");
        } else {
            assert_ne!(out.status.code(), Some(0), "{text:?}: {out:?}");
        }
    }
}

/// A service file that ends inside a line continued with a backslash (blank or comment
/// lines after it change nothing) is one libpam cannot read: every login fails with
/// PAM_ABORT. The audit read the unfinished line as a code line and said `ok`; it now
/// names the file as a problem found (exit status 1). Control: the same file with the
/// last line ended.
#[test]
fn a_file_ending_inside_a_continued_line_fails_every_login() {
    if !require_root("a_file_ending_inside_a_continued_line_fails_every_login") {
        return;
    }
    let u = TestUser::create("se");
    let secret = random_secret_b32();
    u.write_secret(&totp_file(&secret), 0o600);
    for (text, readable) in [
        (
            "auth required pam_permit.so\nauth required @MODULE@\n",
            true,
        ),
        (
            "auth required pam_permit.so\nauth required @MODULE@ \\\n",
            false,
        ),
        (
            "auth required pam_permit.so\nauth required @MODULE@ \\",
            false,
        ),
        (
            "auth required pam_permit.so\nauth required @MODULE@ \\\n\n# x\n",
            false,
        ),
    ] {
        let stack = Stack::new();
        stack.service("svc", text);
        let right = code_at(&secret, T0);
        let d = Driver::login(&stack, &u, &right).at(T0).run();
        let expected = if readable { "PAM_SUCCESS" } else { "PAM_ABORT" };
        assert_eq!(d.result, expected, "{text:?}: {d:?}");
        let out = Command::new(&built().state_tool)
            .args(["audit", "--service", "svc", "--user", &u.name])
            .arg("--pam-dir")
            .arg(stack.path())
            .output()
            .expect("totp-state audit");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = stderr.contains("ends inside a line continued");
        assert_eq!(named, !readable, "{text:?}: {out:?}");
        let status = if readable { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(status), "{text:?}: {out:?}");
        let stderr = enroll_check(&stack, &u.name);
        let named = stderr.contains("ends inside a line continued");
        assert_eq!(named, !readable, "{text:?}: {stderr}");
    }
}

/// The audit's words (on standard error) for a run of `totp-state audit --service svc`.
fn audit_stderr(stack: &Stack, user: &str) -> String {
    let out = Command::new(&built().state_tool)
        .args(["audit", "--service", "svc", "--user", user, "--pam-dir"])
        .arg(stack.path())
        .output()
        .expect("totp-state audit");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A line of an illegal type (`--auth`, `xauth`, `Auth2`) is no line libpam skips: it
/// logs "illegal module type" and installs it as an auth line that returns
/// `PAM_PERM_DENIED`, which its control value acts on (`required` fails every login, at
/// the top, in an `@include`d file and in a substack; `[default=1]` jumps over the code
/// line). The audit names such a line where libpam fails the login or skips the code.
/// Controls: `-auth` (one dash, a legal type), `optional` (the failure ignored), an
/// illegal type before `include` (libpam includes the file as auth lines).
#[test]
fn an_illegal_type_is_an_auth_line_that_always_fails() {
    if !require_root("an_illegal_type_is_an_auth_line_that_always_fails") {
        return;
    }
    let (u, secrets) = account("si");
    let p = u.home.join(".totp0");
    let _ = std::fs::remove_file(&p);
    write_owned(&p, totp_file(&secrets[0]).as_bytes(), u.uid, u.gid, 0o600);
    let code_line = "auth required @MODULE@ secret=~/.totp0 authtok_prompt=Code0:\n";
    let warning = "never runs its module";
    // (line before the code line, an extra file it names, libpam's result, prompted,
    // warned)
    let cases: [(&str, Option<&str>, &str, bool, bool); 9] = [
        (
            "--auth required pam_permit.so",
            None,
            "PAM_PERM_DENIED",
            true,
            true,
        ),
        (
            "xauth required pam_permit.so",
            None,
            "PAM_PERM_DENIED",
            true,
            true,
        ),
        (
            "Auth2 requisite pam_permit.so",
            None,
            "PAM_PERM_DENIED",
            false,
            true,
        ),
        (
            "@include @FILE@",
            Some("--auth required pam_permit.so\n"),
            "PAM_PERM_DENIED",
            true,
            true,
        ),
        (
            "auth substack @FILE@",
            Some("xauth required pam_permit.so\n"),
            "PAM_PERM_DENIED",
            true,
            true,
        ),
        (
            "xauth [default=1] pam_permit.so",
            None,
            "PAM_SUCCESS",
            false,
            true,
        ),
        (
            "-auth required pam_permit.so",
            None,
            "PAM_SUCCESS",
            true,
            false,
        ),
        (
            "xauth optional pam_permit.so",
            None,
            "PAM_SUCCESS",
            true,
            false,
        ),
        (
            "xauth include @FILE@",
            Some("auth required pam_deny.so\n"),
            "PAM_AUTH_ERR",
            true,
            false,
        ),
    ];
    for (line, extra, result, prompted, warned) in cases {
        let stack = Stack::new();
        let file = stack.path().join("extra");
        if let Some(text) = extra {
            stack.service("extra", text);
        }
        let line = line.replace("@FILE@", &file.to_string_lossy());
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\n{line}\n{code_line}"),
        );
        let d = login(&stack, &u, &secrets[..1]);
        assert_eq!(d.result, result, "{line}: {d:?}");
        assert_eq!(d.prompts > 0, prompted, "{line}: {d:?}");
        let said = audit_stderr(&stack, &u.name);
        assert_eq!(said.contains(warning), warned, "{line}: {said}");
        if warned {
            let place = if line.starts_with(['@', 'a']) {
                format!("{}:1", file.display())
            } else {
                format!("{}:2", stack.path().join("svc").display())
            };
            assert!(said.contains(&place), "{line}: {said}");
        }
    }
}

/// libpam ends a pam.d line at `\n` only: in a CRLF file the carriage return stays in
/// the line's last token, so `nullok\r` is an option the module refuses, `pam_permit.so\r`
/// a module libpam cannot load, and a blank line (`\r` alone) a line of an illegal type
/// that fails every login. The audit reads the lines as libpam runs them. Controls: the
/// same files with `\n` line ends.
#[test]
fn a_crlf_file_is_read_with_its_carriage_returns() {
    if !require_root("a_crlf_file_is_read_with_its_carriage_returns") {
        return;
    }
    let (u, secrets) = account("sr");
    let p = u.home.join(".totp0");
    let code = "auth required @MODULE@ secret=~/.totp0 authtok_prompt=Code0:";
    // (file, whether its module file is there, libpam succeeds, what the audit says)
    let cases = [
        (
            format!("auth required pam_permit.so \r\n{code} nullok\r\n"),
            false,
            false,
            Some("option the module refuses"),
        ),
        (
            format!("auth required pam_permit.so \n{code} nullok\n"),
            false,
            true,
            None,
        ),
        (
            format!("auth required pam_permit.so\r\n{code}\n"),
            true,
            false,
            Some("returns PAM_MODULE_UNKNOWN"),
        ),
        (
            format!("auth required pam_permit.so\n\r\n{code}\n"),
            true,
            false,
            Some("returns PAM_PERM_DENIED"),
        ),
        (
            format!("auth required pam_permit.so\n\n{code}\n"),
            true,
            true,
            None,
        ),
    ];
    for (text, usable, succeeds, said) in cases {
        let _ = std::fs::remove_file(&p);
        if usable {
            write_owned(&p, totp_file(&secrets[0]).as_bytes(), u.uid, u.gid, 0o600);
        }
        let stack = Stack::new();
        stack.service("svc", &text);
        let case = text.escape_debug().to_string();
        let d = login(&stack, &u, &secrets[..1]);
        assert_eq!(d.result == "PAM_SUCCESS", succeeds, "{case}: {d:?}");
        let out = audit_stderr(&stack, &u.name);
        for words in [
            "option the module refuses",
            "returns PAM_MODULE_UNKNOWN",
            "returns PAM_PERM_DENIED",
        ] {
            assert_eq!(out.contains(words), said == Some(words), "{case}: {out}");
        }
    }
}

/// `totp-state audit --service svc`: its exit status and its words (both streams).
fn audit_status(stack: &Stack, user: &str) -> (Option<i32>, String) {
    let out = Command::new(&built().state_tool)
        .args(["audit", "--service", "svc", "--user", user, "--pam-dir"])
        .arg(stack.path())
        .output()
        .expect("totp-state audit");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// An account with a usable secret file for the code line `Code0:`.
fn enrolled(tag: &str) -> (TestUser, Vec<String>) {
    let (u, secrets) = account(tag);
    let p = u.home.join(".totp0");
    let _ = std::fs::remove_file(&p);
    write_owned(&p, totp_file(&secrets[0]).as_bytes(), u.uid, u.gid, 0o600);
    (u, secrets)
}

const CODE_LINE: &str = "auth required @MODULE@ secret=~/.totp0 authtok_prompt=Code0:\n";

/// A line before the code line, the extra file's text, libpam's result, whether the
/// code was asked, the audit's words, the line they name (0: svc:2, 1: extra:1).
type OpenCase<'a> = (&'a str, &'a str, &'a str, bool, Option<&'a str>, usize);

/// An `auth include` or `auth substack` whose file libpam cannot open (none there, or a
/// name ending in a carriage return) is no reason to stop reading: libpam logs
/// "unable to open config", installs the line as one that returns `PAM_PERM_DENIED`
/// with every action `bad`, and runs the rest of the stack, so every login fails after
/// the code is asked. An `@include` inside an `auth include`d file fails too, but with
/// actions libpam never set (the code asked on some logins, not on others). An
/// `@include` of the service's own reading (its file, or a file it `@include`s) is
/// different: libpam fails to read the service, and every login fails with
/// `PAM_ABORT` before any prompt. The audit names the line, or refuses the service
/// (status 1; the unset actions too), where it stopped with "cannot read" before.
/// Controls: the same includes of a file that is there.
#[test]
fn an_include_libpam_cannot_open_fails_every_login() {
    if !require_root("an_include_libpam_cannot_open_fails_every_login") {
        return;
    }
    let (u, secrets) = enrolled("so");
    let always = "cannot open the file it includes";
    let whole = "fails to read the whole service";
    let cases: [OpenCase; 9] = [
        (
            "auth include @DIR@/missing",
            "",
            "PAM_PERM_DENIED",
            true,
            Some(always),
            0,
        ),
        (
            "auth substack @DIR@/missing",
            "",
            "PAM_PERM_DENIED",
            true,
            Some(always),
            0,
        ),
        (
            "auth include @DIR@/extra\r",
            "auth required pam_permit.so\n",
            "PAM_PERM_DENIED",
            true,
            Some(always),
            0,
        ),
        (
            "@include @DIR@/extra",
            "auth substack @DIR@/missing\n",
            "PAM_PERM_DENIED",
            true,
            Some(always),
            1,
        ),
        (
            "@include @DIR@/missing",
            "",
            "PAM_ABORT",
            false,
            Some(whole),
            0,
        ),
        (
            "@include @DIR@/extra",
            "@include @DIR@/missing\n",
            "PAM_ABORT",
            false,
            Some(whole),
            1,
        ),
        (
            "auth include @DIR@/extra",
            "auth required pam_permit.so\n",
            "PAM_SUCCESS",
            true,
            None,
            0,
        ),
        (
            "auth substack @DIR@/extra",
            "auth required pam_permit.so\n",
            "PAM_SUCCESS",
            true,
            None,
            0,
        ),
        (
            "@include @DIR@/extra",
            "auth required pam_permit.so\n",
            "PAM_SUCCESS",
            true,
            None,
            0,
        ),
    ];
    for (line, extra, result, prompted, words, at) in cases {
        let stack = Stack::new();
        let dir = stack.path().to_string_lossy().into_owned();
        if !extra.is_empty() {
            stack.service("extra", &extra.replace("@DIR@", &dir));
        }
        let line = line.replace("@DIR@", &dir);
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\n{line}\n{CODE_LINE}"),
        );
        let case = line.escape_debug().to_string();
        let d = login(&stack, &u, &secrets[..1]);
        assert_eq!(d.result, result, "{case}: {d:?}");
        assert_eq!(d.prompts > 0, prompted, "{case}: {d:?}");
        let (status, said) = audit_status(&stack, &u.name);
        assert!(!said.contains("cannot read"), "{case}: {said}");
        for w in [always, whole] {
            assert_eq!(said.contains(w), words == Some(w), "{case}: {said}");
        }
        let place = match at {
            0 => format!("{}:2", stack.path().join("svc").display()),
            _ => format!("{}:1", stack.path().join("extra").display()),
        };
        if words.is_some() {
            assert!(said.contains(&place), "{case}: {said}");
        }
        // A refused service is a problem found; a line that fails every login a
        // warning beside the accounts' verdicts.
        let expected = if words == Some(whole) { 1 } else { 0 };
        assert_eq!(status, Some(expected), "{case}: {said}");
    }
    // A jump over an `auth substack` libpam cannot open: libpam installs the
    // substack's start and then the failing line, two modules a jump counts (one for
    // an `auth include`). `success=1` lands on the failing line, `success=2` on the code
    // line, which runs: neither skips the code.
    let jumps = "jumps over it";
    for (kind, n, result) in [
        ("substack", 1, "PAM_PERM_DENIED"),
        ("substack", 2, "PAM_SUCCESS"),
        ("include", 1, "PAM_SUCCESS"),
    ] {
        let stack = Stack::new();
        let dir = stack.path().to_string_lossy().into_owned();
        stack.service(
            "svc",
            &format!(
                "auth [success={n} default=ignore] pam_permit.so\n\
                 auth {kind} {dir}/missing\n{CODE_LINE}"
            ),
        );
        let case = format!("{kind} success={n}");
        let d = login(&stack, &u, &secrets[..1]);
        assert_eq!(d.result, result, "{case}: {d:?}");
        assert!(d.prompts > 0, "{case}: {d:?}");
        let (_, said) = audit_status(&stack, &u.name);
        assert!(!said.contains(jumps), "{case}: {said}");
        assert!(said.contains(always), "{case}: {said}");
    }
    // Control: a jump of 3 over the substack's two modules passes the code line too.
    let stack = Stack::new();
    let dir = stack.path().to_string_lossy().into_owned();
    stack.service(
        "svc",
        &format!(
            "auth [success=3 default=ignore] pam_permit.so\nauth substack {dir}/missing\n\
             {CODE_LINE}auth required pam_permit.so\n"
        ),
    );
    let d = login(&stack, &u, &secrets[..1]);
    assert_eq!((d.result.as_str(), d.prompts), ("PAM_SUCCESS", 0), "{d:?}");
    let (_, said) = audit_status(&stack, &u.name);
    assert!(said.contains(jumps), "{said}");

    // An `@include` libpam cannot open in a file an `auth include` reads: libpam sets
    // none of the failing line's actions, and the same stack asked the code on some
    // logins and not on others; the login failed on each. The audit refuses it.
    let stack = Stack::new();
    let dir = stack.path().to_string_lossy().into_owned();
    stack.service("extra", &format!("@include {dir}/missing\n"));
    stack.service(
        "svc",
        &format!("auth required pam_permit.so\nauth include {dir}/extra\n{CODE_LINE}"),
    );
    let d = login(&stack, &u, &secrets[..1]);
    assert_eq!(d.result, "PAM_PERM_DENIED", "{d:?}");
    let (status, said) = audit_status(&stack, &u.name);
    assert!(said.contains("actions it never set"), "{said}");
    assert!(
        said.contains(&format!("{}:1", stack.path().join("extra").display())),
        "{said}"
    );
    assert_eq!(status, Some(1), "{said}");
}

/// An include with no file name after it (`auth include`, `auth substack`, `@include`,
/// of any type) crashes libpam 1.5.2 while it reads the service: the program logging
/// in dies of a segmentation fault. The audit refuses such a service (status 1), where
/// it called the line one that fails like a line without a module. Control: the same
/// lines naming a file that is there.
#[test]
fn an_include_with_no_file_name_crashes_libpam() {
    if !require_root("an_include_with_no_file_name_crashes_libpam") {
        return;
    }
    let (u, secrets) = enrolled("sn");
    let words = "an include with no file name";
    let permit = "auth required pam_permit.so\n";
    for (line, extra, crashes) in [
        ("auth include", permit, true),
        ("auth substack", permit, true),
        ("@include", permit, true),
        ("account include", permit, true),
        ("xauth substack", permit, true),
        ("@include @DIR@/extra", "auth include\n", true),
        ("auth include @DIR@/extra", "@include\n", true),
        ("auth include @DIR@/extra", permit, false),
        ("auth substack @DIR@/extra", permit, false),
        ("@include @DIR@/extra", permit, false),
        ("account include @DIR@/extra", permit, false),
        // An `auth include` reads no other type's line past its type.
        ("auth include @DIR@/extra", "account include\n", false),
    ] {
        let stack = Stack::new();
        stack.service("extra", extra);
        let line = line.replace("@DIR@", &stack.path().to_string_lossy());
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\n{line}\n{CODE_LINE}"),
        );
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            login(&stack, &u, &secrets[..1])
        }));
        match ran {
            Ok(d) => {
                assert!(!crashes, "{line}: no crash: {d:?}");
                assert_eq!(d.result, "PAM_SUCCESS", "{line}: {d:?}");
            }
            Err(e) => {
                let why = e.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(crashes, "{line}: {why}");
                assert!(why.contains("signal 11"), "{line}: {why}");
            }
        }
        let (status, said) = audit_status(&stack, &u.name);
        assert_eq!(said.contains(words), crashes, "{line}: {said}");
        assert_eq!(status, Some(if crashes { 1 } else { 0 }), "{line}: {said}");
        if crashes && extra == permit {
            let place = format!("{}:2", stack.path().join("svc").display());
            assert!(said.contains(&place), "{line}: {said}");
        }
    }
}

/// A line with a type and no module (`auth required`, `auth`) is installed by libpam as
/// one that returns `PAM_PERM_DENIED` ("no module name supplied"), its control value
/// acting on it: `required` or no control value (every action `bad`) fail every login
/// after the code is asked, `[default=1]` jumps over the code line. The audit names
/// each. Controls: `optional` (the failure ignored) and `account required` (no auth
/// line).
#[test]
fn a_line_with_no_module_always_fails() {
    if !require_root("a_line_with_no_module_always_fails") {
        return;
    }
    let (u, secrets) = enrolled("sm");
    let words = "never runs its module";
    for (line, result, prompted, warned) in [
        ("auth required", "PAM_PERM_DENIED", true, true),
        ("auth", "PAM_PERM_DENIED", true, true),
        ("auth [default=1]", "PAM_SUCCESS", false, true),
        ("auth optional", "PAM_SUCCESS", true, false),
        ("account required", "PAM_SUCCESS", true, false),
    ] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\n{line}\n{CODE_LINE}"),
        );
        let d = login(&stack, &u, &secrets[..1]);
        assert_eq!(d.result, result, "{line}: {d:?}");
        assert_eq!(d.prompts > 0, prompted, "{line}: {d:?}");
        let (_, said) = audit_status(&stack, &u.name);
        assert_eq!(said.contains(words), warned, "{line}: {said}");
        if warned {
            let place = format!("{}:2", stack.path().join("svc").display());
            assert!(said.contains(&place), "{line}: {said}");
        }
    }
}

/// The audit looks through every file of the PAM directory for google-authenticator
/// lines on the code line's secret files: a file it cannot read (a link that loops, which
/// root cannot open either) is an audit that could not look (status 2, said on standard
/// error), not one that found nothing; `totp-enroll check` warns of it. Control: the
/// same directory without it.
#[test]
fn a_pam_dir_file_the_audit_cannot_read_is_said() {
    if !require_root("a_pam_dir_file_the_audit_cannot_read_is_said") {
        return;
    }
    let (u, _) = enrolled("sl");
    let words = "cannot look for pam_google_authenticator.so lines";
    for looped in [true, false] {
        let stack = Stack::new();
        stack.service("svc", &format!("auth required pam_permit.so\n{CODE_LINE}"));
        if looped {
            std::os::unix::fs::symlink("looped", stack.path().join("looped")).expect("link");
        }
        let (status, said) = audit_status(&stack, &u.name);
        assert_eq!(said.contains(words), looped, "{said}");
        assert_eq!(status, Some(if looped { 2 } else { 0 }), "{said}");
        let stderr = enroll_check(&stack, &u.name);
        assert_eq!(stderr.contains(words), looped, "check: {stderr}");
    }
}
