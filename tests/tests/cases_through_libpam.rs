//! Hostile cases of SECURITY.md that unit tests cover in depth, run once more through
//! the real libpam and the built module, so that no row rests on unit tests alone:
//! A3 (a root-owned symlink on the way home), A13 (line-1 spelling), A16/H6 (malformed
//! files), A17 (unknown lines, duplicate keys), H1 (GA's vector), H2 (clock going back),
//! H7 (even windows), J2–J6 and J12 (peer addresses and a missing rule file). Each
//! denial has a control that logs in, or a skip that the same set-up gives otherwise.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use system_tests::*;

fn logged(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| syslog_message(l).contains(needle))
}

/// A3 / R5: the home reached through a root-owned symlink in a root-owned directory (as
/// `/home -> var/home`) is followed and logs in; the same chain with the symlink owned
/// by the user is not followed, and the login is denied with the reason logged.
#[test]
fn a_root_owned_symlink_on_the_way_home_is_followed_and_a_users_is_not() {
    if !require_root("a_root_owned_symlink_on_the_way_home_is_followed_and_a_users_is_not") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ah");
    let base = tempfile::Builder::new()
        .prefix("pam_totp-a3")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let real = base.path().join("real");
    fs::create_dir(&real).expect("mkdir");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = real.join(&u.name);
    fs::create_dir(&home).expect("mkdir home");
    chown(&home, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod");
    write_owned(
        &home.join(".google_authenticator"),
        totp_file(&secret).as_bytes(),
        u.uid,
        u.gid,
        0o600,
    );
    let link = base.path().join("home");
    std::os::unix::fs::symlink("real", &link).expect("symlink");
    let linked_home = link.join(&u.name).display().to_string();
    let st = shadow_tool("usermod", &["-d", &linked_home, &u.name]).expect("usermod");
    assert!(st.status.success(), "usermod: {st:?}");

    let stack = Stack::probe("svc", "");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "root-owned symlink: {d:?}");

    // The same link owned by the user: not followed.
    std::os::unix::fs::lchown(&link, Some(u.uid), Some(u.gid)).expect("lchown");
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "user's symlink: {d:?}");
    assert!(
        logged(&lines, "is a symbolic link not owned by root"),
        "{lines:?}"
    );
    // Put the home back where userdel expects it.
    let own_home = u.home.display().to_string();
    let st = shadow_tool("usermod", &["-d", &own_home, &u.name]).expect("usermod");
    assert!(st.status.success(), "usermod: {st:?}");
}

/// A13: GA's spellings of line 1 (lower case, spaces, the typos 0/1/8) log in with the
/// code of the secret they spell; `=` padding and a non-ASCII byte make the file
/// unusable (denied, logged). Control: the canonical spelling logs in.
#[test]
fn line_one_spellings_are_read_as_ga_reads_them() {
    if !require_root("line_one_spellings_are_read_as_ga_reads_them") {
        return;
    }
    let u = TestUser::create("sp");
    // 160 bits in which O, L and B occur, so the typos 0, 1 and 8 have a meaning.
    let canonical = "JBSWY3DPEHPK3PXPOLBOLBOLBJBSWY3DP";
    let canonical = &canonical[..32];
    let stack = Stack::probe("svc", "");
    let typos: String = canonical
        .chars()
        .map(|c| match c {
            'O' => '0',
            'L' => '1',
            'B' => '8',
            c => c,
        })
        .collect();
    let spaced: String = canonical
        .to_lowercase()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut at = T0;
    for (what, line1) in [
        ("canonical (control)", canonical.to_owned()),
        ("typos 0/1/8", typos),
        ("lower case with spaces", spaced),
    ] {
        at += 30;
        u.write_secret(&format!("{line1}\n\" TOTP_AUTH\n"), 0o600);
        let d = login_at(&stack, &u, &code_at(canonical, at), None, at);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "{what}: {d:?}");
    }
    for (what, line1) in [
        ("= padding", format!("{canonical}====")),
        ("a non-ASCII byte", format!("{canonical}\u{e9}")),
    ] {
        at += 30;
        u.write_secret(&format!("{line1}\n\" TOTP_AUTH\n"), 0o600);
        let (d, lines) = login_logged(&stack, &u, &code_at(canonical, at), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{what}: {d:?}");
        assert_eq!(d.prompts, 1, "{what}: prompted like everybody");
        assert!(logged(&lines, "secret file unusable"), "{what}: {lines:?}");
    }
}

/// A16, H6, A17: malformed settings (`STEP_SIZE 0/61`, `WINDOW_SIZE 0/101`, a
/// `RATE_LIMIT` with a trailing space) make the file unusable, never a default: denied
/// with the file named in the log, and the file is left alone. Unknown lines and a
/// duplicated key are kept and the first occurrence wins (a duplicated `WINDOW_SIZE 1`
/// after `WINDOW_SIZE 3` still accepts the previous step). Control: the plain file.
#[test]
fn malformed_settings_deny_and_unknown_lines_are_kept() {
    if !require_root("malformed_settings_deny_and_unknown_lines_are_kept") {
        return;
    }
    let (u, secret) = TestUser::enrolled("mf");
    let stack = Stack::probe("svc", "");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}");
    let mut at = T0;
    for setting in [
        "STEP_SIZE 0",
        "STEP_SIZE 61",
        "WINDOW_SIZE 0",
        "WINDOW_SIZE 101",
        "RATE_LIMIT 3 30 ",
    ] {
        at += 30;
        let text = format!("{secret}\n\" {setting}\n\" TOTP_AUTH\n");
        let p = u.write_secret(&text, 0o600);
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{setting:?}: {d:?}");
        assert!(
            lines
                .iter()
                .any(|l| syslog_message(l).contains(&p.display().to_string())),
            "{setting:?}: the log names the file: {lines:?}"
        );
        assert_eq!(read(&p), text, "{setting:?}: file untouched");
    }
    at += 30;
    let text = format!(
        "{secret}\n\" WINDOW_SIZE 3\n\" WINDOW_SIZE 1\n\" SOME_FUTURE_KEY x\n\" TOTP_AUTH\n"
    );
    let p = u.write_secret(&text, 0o600);
    // The code of the previous step: inside window 3, outside window 1.
    let d = login_at(&stack, &u, &code_at(&secret, at - 30), None, at);
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "first WINDOW_SIZE wins: {d:?}"
    );
    assert_eq!(read(&p), text, "unknown lines and duplicates left alone");
}

/// H1: GA's own vector through the module: secret 2SH3V3GDW7ZNMGYE at t = 300000 s gives
/// 050548 (and oathtool agrees); the code of the next step is refused at that time
/// outside the window. Control for the refusal: the vector itself logs in.
#[test]
fn gas_vector_logs_in_through_the_module() {
    if !require_root("gas_vector_logs_in_through_the_module") {
        return;
    }
    let u = TestUser::create("gv");
    u.write_secret(&format!("{GA_SECRET}\n\" TOTP_AUTH\n"), 0o600);
    assert_eq!(oathtool_totp(GA_SECRET, 300_000, 30, 6, "sha1"), "050548");
    let stack = Stack::probe("svc", "");
    let far = oathtool_totp(GA_SECRET, 300_000 + 30 * 5, 30, 6, "sha1");
    let d = login_at(&stack, &u, &far, None, 300_000);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "five steps ahead: {d:?}");
    let d = login_at(&stack, &u, "050548", None, 300_000);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "GA's vector: {d:?}");
}

/// H2, H7: a clock that goes back never reopens an accepted step (the code of an
/// earlier step, valid at the earlier time, is refused after a later one was used);
/// an even window (4) accepts offsets -1..+2 and not -2. Controls: each code logs in on
/// a fresh user.
#[test]
fn clock_going_back_and_even_windows() {
    if !require_root("clock_going_back_and_even_windows") {
        return;
    }
    let stack = Stack::probe("svc", "");
    let (u, secret) = TestUser::enrolled("cb");
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 300), None, T0 + 300);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    // The clock goes back 5 minutes: the code of that time is valid there, but its
    // step is before the mark.
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "clock went back: {d:?}");
    // Control: a fresh user, the same time and code, logs in.
    let (w, secret_w) = TestUser::enrolled("cc");
    let d = login_at(&stack, &w, &code_at(&secret_w, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}");

    // Window 4 (even): offsets -1, 0, +1, +2 in, -2 out.
    let (e, secret_e) = TestUser::enrolled("ew");
    e.write_secret(
        &format!("{secret_e}\n\" WINDOW_SIZE 4\n\" TOTP_AUTH\n"),
        0o600,
    );
    let at = T0 + 3_000;
    let d = login_at(&stack, &e, &code_at(&secret_e, at - 60), None, at);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "offset -2: {d:?}");
    for (k, offset) in [-1i64, 0, 1, 2].iter().enumerate() {
        // Each a later time, so the mark of the one before does not refuse it.
        let now = at + 300 * (k as u64 + 1);
        let step_time = now.checked_add_signed(offset * 30).expect("time");
        let d = login_at(&stack, &e, &code_at(&secret_e, step_time), None, now);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "offset {offset}: {d:?}");
    }
}

/// The rule that lets the peers of 10.0.0.0/8 skip the code.
const RULE: &[u8] = b"+ : ALL : 10.0.0.0/8\n";

/// The rule-file tests' set-up: root's secret, root-owned, and the path of the rule
/// file the test writes, in one directory that only root controls from `/` down (as the
/// module requires of the rule file's).
struct RuleSetup {
    dir: tempfile::TempDir,
    secret: PathBuf,
    rules: PathBuf,
}

impl RuleSetup {
    fn new() -> RuleSetup {
        let dir = fleet::trusted_dir("pam_totp-rules");
        let secret = dir.path().join("secret");
        write_owned(&secret, totp_file(SECRET_160).as_bytes(), 0, 0, 0o600);
        let rules = dir.path().join("access.conf");
        RuleSetup { dir, secret, rules }
    }

    /// A probe stack for `sshd` reading the rules in `rules`, with `extra` options.
    fn stack(&self, rules: &Path, extra: &str) -> Stack {
        let args = format!(
            "secret={} accessfile={} {extra}",
            self.secret.display(),
            rules.display()
        );
        Stack::probe("sshd", args.trim_end())
    }
}

/// Root's login to `sshd` with a wrong code, from `rhost` when given: only a skip lets
/// it through.
fn root_login(stack: &Stack, rhost: Option<&str>) -> Driver {
    Driver::new(stack, "sshd", "root")
        .answer("000000")
        .rhost_opt(rhost)
}

/// J2–J6, J12: peer addresses as the rules see them, through the module: an
/// IPv4-mapped IPv6 address matches the IPv4 rule (skip); the IPv4-compatible form,
/// `010.1.2.3`-style literals, a trailing dot, a host name (even one the hosts file maps
/// to the rule's address) and no `PAM_RHOST` at all do not (the code is asked); with the
/// rule file missing nobody skips and the log names
/// the file. Control: the plain address skips.
#[test]
fn peer_addresses_and_a_missing_rule_file_through_the_module() {
    if !require_root("peer_addresses_and_a_missing_rule_file_through_the_module") {
        return;
    }
    let setup = RuleSetup::new();
    write_owned(&setup.rules, RULE, 0, 0, 0o644);
    let stack = setup.stack(&setup.rules, "");
    let returned = |stack: &Stack, rhost: Option<&str>| {
        let r = root_login(stack, rhost).run();
        (r.returned(), r.prompts)
    };
    assert_eq!(
        returned(&stack, Some("10.1.2.3")),
        (Returned::Ignore, 0),
        "control: the plain address skips"
    );
    assert_eq!(
        returned(&stack, Some("::ffff:10.1.2.3")),
        (Returned::Ignore, 0),
        "mapped IPv6 is the IPv4 address"
    );
    for rhost in [
        Some("::10.1.2.3"),
        Some("010.1.2.3"),
        Some("10.1.2.3."),
        Some("0xa.1.2.3"),
        Some("10.1"),
        Some(""),
        None,
    ] {
        let (r, prompts) = returned(&stack, rhost);
        assert_eq!(
            (r.clone(), prompts),
            (Returned::Failed("PAM_AUTH_ERR".into()), 1),
            "{rhost:?}: the code is asked"
        );
    }
    // J5: a host name is never looked up. Here it resolves to the rule's address (a
    // hosts file of the test's own over /etc/hosts, in a private mount namespace), so a
    // lookup would skip; the code is still asked. Control: the same rule, with the same
    // hosts file in place, skips the literal address.
    let hosts = setup.dir.path().join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n10.1.2.3 lan.example.com\n").expect("hosts");
    let (out, _) = run_with_files_over(&[(&hosts, "/etc/hosts")], "getent hosts lan.example.com");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("10.1.2.3 "),
        "the name resolves to the rule's address there: {out:?}"
    );
    let through_hosts = |rhost: &str| {
        let (d, _) = capture_syslog_with_bind(
            &hosts,
            Path::new("/etc/hosts"),
            &root_login(&stack, Some(rhost)),
        );
        (d.returned(), d.prompts)
    };
    assert_eq!(
        through_hosts("lan.example.com"),
        (Returned::Failed("PAM_AUTH_ERR".into()), 1),
        "a name resolving to the rule's address: the code is asked"
    );
    assert_eq!(
        through_hosts("10.1.2.3"),
        (Returned::Ignore, 0),
        "control: the literal address skips under the same hosts file"
    );
    let missing = setup.dir.path().join("no-such-access.conf");
    let stack = setup.stack(&missing, "");
    let (d, lines) = capture_syslog(&root_login(&stack, Some("10.1.2.3")));
    assert_eq!(
        (d.returned(), d.prompts),
        (Returned::Failed("PAM_AUTH_ERR".into()), 1),
        "missing rule file: no skip"
    );
    assert!(
        logged(&lines, &missing.display().to_string()),
        "the log names the missing file: {lines:?}"
    );
}

/// I4: a success resets the failures of its origin. With `throttle_after=2`, failure,
/// success, failure, then the right code logs in (the first failure was forgotten);
/// control: two failures in a row, and the right code is held back.
#[test]
fn a_success_resets_the_failures_of_its_origin() {
    if !require_root("a_success_resets_the_failures_of_its_origin") {
        return;
    }
    let stack = Stack::probe("svc", "throttle_after=2");
    let from = |u: &TestUser, answer: &str, at: u64| {
        login_at(&stack, u, answer, "192.0.2.44", at).module_code()
    };
    // Seconds apart (inside any backoff), across a step boundary so that the second
    // right code is a new one: second 27 of a step, then the next step.
    let base = T0 - T0 % 30 + 27;
    let (u, secret) = TestUser::enrolled("rs");
    for (what, right, at, want) in [
        ("failure", false, base, "PAM_AUTH_ERR"),
        ("success", true, base + 1, "PAM_SUCCESS"),
        ("failure after the success", false, base + 2, "PAM_AUTH_ERR"),
        (
            "right code: one failure counted",
            true,
            base + 4,
            "PAM_SUCCESS",
        ),
    ] {
        let answer = if right {
            code_at(&secret, at)
        } else {
            wrong_totp(&secret, at)
        };
        assert_eq!(from(&u, &answer, at), want, "{what}");
    }
    let (v, secret_v) = TestUser::enrolled("rt");
    for at in [base, base + 2] {
        assert_eq!(from(&v, &wrong_totp(&secret_v, at), at), "PAM_AUTH_ERR");
    }
    assert_eq!(
        from(&v, &code_at(&secret_v, base + 4), base + 4),
        "PAM_AUTH_ERR",
        "control: two failures in a row hold the right code back"
    );
}

/// Asserts that a root login from an address the rules skip, through `stack`, was
/// refused the skip because of the rule file: no skip, the code asked (and the wrong
/// one failed), and a log line saying the code is required for everybody that holds
/// each of `named` (the file, and what is at fault).
fn rule_file_refused(stack: &Stack, named: &[String], what: &str) {
    let (d, lines) = capture_syslog(&root_login(stack, Some("10.1.2.3")));
    assert_eq!(
        (d.returned(), d.prompts),
        (Returned::Failed("PAM_AUTH_ERR".into()), 1),
        "{what}: no skip, the code is asked"
    );
    assert!(
        lines.iter().any(|l| {
            let m = syslog_message(l);
            named.iter().all(|n| m.contains(n.as_str()))
                && m.contains("the code is required for everybody")
        }),
        "{what}: the log names {named:?}: {lines:?}"
    );
}

/// J11 / R21: the rule file must be root's and closed to writes by others; a file owned
/// by a user, or writable by others, or holding a NUL, is refused: nobody skips, the
/// code is asked and the log names the file. Control: the same rules in a root-owned
/// 0644 file skip. J15: the skip is logged once, naming the rule file's verdict.
#[test]
fn rule_file_ownership_and_mode_through_the_module() {
    if !require_root("rule_file_ownership_and_mode_through_the_module") {
        return;
    }
    let setup = RuleSetup::new();
    let stack = setup.stack(&setup.rules, "throttle_after=100");
    let attempt = || capture_syslog(&root_login(&stack, Some("10.1.2.3")));
    write_owned(&setup.rules, RULE, 0, 0, 0o644);
    let (d, lines) = attempt();
    assert_eq!((d.returned(), d.prompts), (Returned::Ignore, 0), "control");
    let skip_lines: Vec<&String> = lines
        .iter()
        .filter(|l| syslog_message(l).contains("not asking root"))
        .collect();
    assert_eq!(skip_lines.len(), 1, "the skip is logged once: {lines:?}");
    assert!(
        skip_lines[0].contains(&format!("{}:line 1", setup.rules.display())),
        "the skip names the rule: {lines:?}"
    );
    // A file written on Windows: CRLF line ends are read as LF, and the rule skips.
    write_owned(
        &setup.rules,
        b"# comment\r\n+ : ALL : 10.0.0.0/8\r\n",
        0,
        0,
        0o644,
    );
    let (d, lines) = attempt();
    assert_eq!(
        (d.returned(), d.prompts),
        (Returned::Ignore, 0),
        "CRLF rules skip: {lines:?}"
    );
    // The caps (1 MiB, 8192-byte lines, 100,000 rules), each one over, the matching
    // rule first so only the cap can stop the skip.
    let mut oversize = RULE.to_vec();
    oversize.resize(1024 * 1024 + 1, b'#');
    let long_line = format!("+ : ALL : 10.0.0.0/8\n# {}\n", "x".repeat(8192));
    let too_many = format!("+ : ALL : 10.0.0.0/8\n{}", "-:ALL:ALL\n".repeat(100_000));
    for (what, bytes, owner, mode, cause) in [
        ("owned by a user", RULE, 65534, 0o644, "owned by uid 65534"),
        (
            "writable by others",
            RULE,
            0,
            0o666,
            "mode 0666 is too permissive",
        ),
        (
            "writable by the group",
            RULE,
            0,
            0o664,
            "mode 0664 is too permissive",
        ),
        (
            "a NUL byte",
            &b"+ : ALL : 10.0.0.0/8\n\0\n"[..],
            0,
            0o644,
            "NUL byte",
        ),
        (
            "over the size cap",
            &oversize[..],
            0,
            0o644,
            "file is larger than 1048576 bytes",
        ),
        (
            "a line over the line cap",
            long_line.as_bytes(),
            0,
            0o644,
            "line longer than 8192 bytes",
        ),
        (
            "more rules than the cap",
            too_many.as_bytes(),
            0,
            0o644,
            "more than 100000 rules",
        ),
    ] {
        write_owned(&setup.rules, bytes, owner, 0, mode);
        rule_file_refused(
            &stack,
            &[setup.rules.display().to_string(), cause.to_owned()],
            what,
        );
    }
}

/// J11 / R21: the rule file's whole path is root-controlled, as code the module loads:
/// in a root-owned 0755 directory whose parent belongs to a user, or is group-writable
/// (either can rename that directory away and put another rule file in its place),
/// and right in /tmp (world-writable, sticky), the file is refused: nobody skips, the
/// code is asked, and the log names the file and the directory at fault with why.
/// Control: the same file with every directory root-owned and closed skips, before and
/// after.
#[test]
fn rule_file_path_is_root_controlled_through_the_module() {
    if !require_root("rule_file_path_is_root_controlled_through_the_module") {
        return;
    }
    let setup = RuleSetup::new();
    let up = setup.dir.path().join("up");
    let rules_dir = up.join("rules");
    fs::create_dir_all(&rules_dir).expect("mkdir");
    for d in [&up, &rules_dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let rules = rules_dir.join("pam_totp_access.conf");
    write_owned(&rules, RULE, 0, 0, 0o644);
    let stack = setup.stack(&rules, "throttle_after=100");
    let attempt = |stack: &Stack| capture_syslog(&root_login(stack, Some("10.1.2.3")));
    let skips = |what: &str| {
        let (d, lines) = attempt(&stack);
        assert_eq!(
            (d.returned(), d.prompts),
            (Returned::Ignore, 0),
            "{what}: {lines:?}"
        );
    };
    skips("control: root-controlled chain");
    let refused = |stack: &Stack, file: &Path, dir: &Path, fault: &str, what: &str| {
        rule_file_refused(
            stack,
            &[
                format!("access file {}", file.display()),
                format!("directory {} ", dir.display()),
                fault.to_owned(),
            ],
            what,
        );
    };
    for (what, owner, mode, fault) in [
        (
            "parent owned by a user",
            65534,
            0o755,
            "(not owned by root)",
        ),
        (
            "parent writable by its group",
            0,
            0o775,
            "(writable by its group)",
        ),
    ] {
        chown(&up, Some(owner), None).expect("chown");
        fs::set_permissions(&up, fs::Permissions::from_mode(mode)).expect("chmod");
        refused(&stack, &rules, &up, fault, what);
    }
    chown(&up, Some(0), None).expect("chown");
    fs::set_permissions(&up, fs::Permissions::from_mode(0o755)).expect("chmod");
    skips("control: the chain closed again");
    let in_tmp = tempfile::Builder::new()
        .prefix("pam_totp-access")
        .tempfile_in("/tmp")
        .expect("a file in /tmp");
    write_owned(in_tmp.path(), RULE, 0, 0, 0o644);
    refused(
        &setup.stack(in_tmp.path(), "throttle_after=100"),
        in_tmp.path(),
        Path::new("/tmp"),
        "writable by others",
        "right in /tmp",
    );
}

/// L11: the enrolment's code confirmation, through the built `totp-enroll` with the
/// clock frozen mid-step, accepts exactly what a login with the default window accepts:
/// the codes of the steps just before and after, not two steps away (each of those is
/// answered "Code incorrect" first, counted).
#[test]
fn the_enrolment_confirmation_accepts_one_step_either_way_through_the_cli() {
    use std::io::{BufRead, BufReader, Write};
    let t = "the_enrolment_confirmation_accepts_one_step_either_way_through_the_cli";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let enroll = |offsets: &[i64]| -> (String, String) {
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-confirm")
            .tempdir_in(private_tmp())
            .expect("tempdir");
        let mut child = std::process::Command::new(&built().enroll)
            .args(["-t", "-D", "-W", "-u", "-f", "-Q", "NONE", "-s", "s"])
            .current_dir(dir.path())
            .env_remove("HOME")
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", faketime_date(T0))
            .env("TZ", "UTC")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn totp-enroll");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        let secret = loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).expect("read") > 0,
                "no secret shown: {seen}"
            );
            seen.push_str(&line);
            if let Some(s) = line.strip_prefix("Your new secret key is: ") {
                break s.trim().to_owned();
            }
        };
        let answers: String = offsets
            .iter()
            .map(|k| {
                let at = T0.checked_add_signed(k * 30).expect("time");
                format!("{}\n", oathtool_totp(&secret, at, 30, 6, "sha1"))
            })
            .collect();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(answers.as_bytes())
            .expect("answer");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).expect("read");
        let status = child.wait().expect("wait");
        assert!(status.success(), "totp-enroll: {status:?} {seen}{rest}");
        (rest, read(&dir.path().join("s")))
    };
    for (offsets, refused) in [(&[-2i64, 2, -1][..], 2), (&[3, 1][..], 1), (&[0][..], 0)] {
        let (out, file) = enroll(offsets);
        assert_eq!(
            out.matches("Code incorrect. Try again.").count(),
            refused,
            "{offsets:?}: {out}"
        );
        assert!(
            out.contains("Code confirmed") && !out.contains("Code confirmation skipped"),
            "{offsets:?}: the last code was accepted: {out}"
        );
        assert!(
            file.contains("TOTP_AUTH"),
            "{offsets:?}: enrolled: {file:?}"
        );
    }
}
