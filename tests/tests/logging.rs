//! Log lines for configuration problems, and no openlog/closelog. (Who/where/outcome,
//! secret hygiene and escaping are in module_logging.rs.)

use system_tests::fleet::trusted_dir;
use system_tests::{
    Driver, Stack, T0, TestUser, built, capture_syslog, code_at, require_root, require_tool, run,
    totp_file, write_owned, wrong_totp,
};

fn joined(lines: &[String]) -> String {
    lines.join("\n")
}

#[test]
fn a_broken_access_file_is_logged_with_file_and_line() {
    if !require_root("a_broken_access_file_is_logged_with_file_and_line") {
        return;
    }
    let dir = trusted_dir("pam_totp-logging");
    let rules = dir.path().join("access.conf");
    write_owned(
        &rules,
        b"+ : ALL : 10.0.0.0/24\n+ : ALL : lan.example.com\n",
        0,
        0,
        0o644,
    );
    let stack = Stack::with_module("sshd", &format!("accessfile={}", rules.display()));
    let (_, lines) = capture_syslog(
        &Driver::new(&stack, "sshd", "root")
            .answer("000000")
            .rhost("10.0.0.5"),
    );
    let all = joined(&lines);
    assert!(all.contains("access.conf"), "{all}");
    assert!(all.contains("line 2"), "{all}");
}

#[test]
fn an_unknown_option_is_logged_and_denies_without_prompt() {
    if !require_root("an_unknown_option_is_logged_and_denies_without_prompt") {
        return;
    }
    let stack = Stack::with_module("sshd", "nullok no_such_option=1");
    let (r, lines) = capture_syslog(&Driver::new(&stack, "sshd", "root").answer("000000"));
    assert_eq!(r.result, "PAM_SERVICE_ERR");
    assert_eq!(r.prompts, 0);
    assert!(joined(&lines).contains("no_such_option"), "{lines:?}");
}

#[test]
fn the_module_never_calls_openlog_or_closelog() {
    let out = run(
        "nm",
        ["-D", "--undefined-only"]
            .iter()
            .map(|s| s.to_string())
            .chain([built().module.to_string_lossy().into_owned()]),
    );
    let syms = String::from_utf8_lossy(&out.stdout);
    assert!(syms.contains("pam_syslog"), "expected pam_syslog: {syms}");
    for bad in ["openlog", "closelog", "syslog@", "vsyslog"] {
        assert!(
            !syms.lines().any(|l| l
                .split_whitespace()
                .last()
                .is_some_and(|s| s.starts_with(bad))),
            "module imports {bad}"
        );
    }
}

/// The ident of the host that `pam-drive --host-syslog` plays (SECURITY.md K3).
const HOST_IDENT: &str = "pam-drive-host";
/// What the host's ident becomes after a `closelog()`: glibc falls back to the program
/// name.
const PROGRAM_NAME: &str = "pam-drive";
/// The lines the host logs itself, in order, at the points a module's
/// `openlog`/`closelog` would show: before the module is loaded, after the module's
/// authenticate and setcred calls, and after `pam_end` ran the module's cleanups.
const HOST_LINES: [&str; 3] = [
    "host: before pam_start",
    "host: between pam_authenticate and pam_end",
    "host: after pam_end",
];

/// One syslog datagram as glibc sends it to `/dev/log`:
/// `<PRI>Mmm dd hh:mm:ss IDENT[PID]: MESSAGE` (`[PID]` only with `LOG_PID`).
#[derive(Debug)]
struct Datagram {
    facility: i32,
    severity: i32,
    ident: String,
    pid: Option<u32>,
    message: String,
}

fn parse_datagram(raw: &str) -> Option<Datagram> {
    let (pri, rest) = raw.strip_prefix('<')?.split_once('>')?;
    let pri: i32 = pri.parse().ok()?;
    // The time stamp is fixed-width ("Dec  5 21:47:33"), followed by one space.
    let rest = rest.get(16..)?;
    let (tag, message) = rest.split_once(": ")?;
    let (ident, pid) = match tag.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((ident, pid)) => (ident, Some(pid.parse().ok()?)),
        None => (tag, None),
    };
    Some(Datagram {
        facility: pri & libc::LOG_FACMASK,
        severity: pri & libc::LOG_PRIMASK,
        ident: ident.to_string(),
        pid,
        message: message.to_string(),
    })
}

/// The login's datagrams, every one parsed; the host's own lines, in order, checked to
/// be exactly [`HOST_LINES`], whatever they carry (the caller judges that).
fn host_and_module_lines(raw: &[String]) -> (Vec<Datagram>, Vec<Datagram>) {
    let all: Vec<Datagram> = raw
        .iter()
        .map(|l| parse_datagram(l).unwrap_or_else(|| panic!("unparsed datagram {l:?}")))
        .collect();
    let (host, module): (Vec<Datagram>, Vec<Datagram>) = all
        .into_iter()
        .partition(|d| d.message.starts_with("host: "));
    let said: Vec<&str> = host.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(said, HOST_LINES, "{raw:#?}");
    (host, module)
}

/// Whether the host's log set-up survived the login: each host line carries the
/// ident, facility (`LOG_LOCAL3`) and `LOG_PID` the host gave `openlog`, and the PID of
/// the line logged before `pam_start` (before libpam loaded the module). The `Err`
/// names every difference.
fn host_log_kept(host: &[Datagram]) -> Result<u32, String> {
    let pid = host
        .first()
        .and_then(|d| d.pid)
        .ok_or(format!("the first host line has no PID: {host:?}"))?;
    let mut wrong = Vec::new();
    for d in host {
        if d.ident != HOST_IDENT {
            wrong.push(format!("{:?}: ident {:?}", d.message, d.ident));
        }
        if d.facility != libc::LOG_LOCAL3 {
            wrong.push(format!("{:?}: facility {}", d.message, d.facility >> 3));
        }
        if d.pid != Some(pid) {
            wrong.push(format!("{:?}: pid {:?}, not {pid}", d.message, d.pid));
        }
        if d.severity != libc::LOG_INFO {
            wrong.push(format!("{:?}: severity {}", d.message, d.severity));
        }
    }
    if wrong.is_empty() {
        Ok(pid)
    } else {
        Err(wrong.join("; "))
    }
}

/// A one-line `svc` stack naming the module under its installed name, so that libpam's
/// prefix in each line is the one a real host writes (`pam_totp(svc:auth): `).
fn installed_stack() -> Stack {
    let stack = Stack::new();
    let installed = stack.path().join("pam_totp.so");
    std::os::unix::fs::symlink(&built().module, &installed).expect("symlink");
    stack.service(
        "svc",
        &format!(
            "auth required {} state_dir={}\n",
            installed.display(),
            stack.state_dir().display()
        ),
    );
    stack
}

#[test]
fn the_hosts_own_syslog_ident_facility_and_pid_survive_logins_through_libpam() {
    let t = "the_hosts_own_syslog_ident_facility_and_pid_survive_logins_through_libpam";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("k3");
    let stack = installed_stack();
    let login = |answer: &str, at: u64| {
        Driver::login(&stack, &u, answer)
            .rhost("192.0.2.33")
            .arg("--host-syslog", HOST_IDENT)
            .at(at)
    };

    let check = |what: &str, driver: Driver, want: &str, verdict: &str| {
        let (d, raw) = capture_syslog(&driver);
        assert_eq!(d.result, want, "{what}: {d:?}\n{raw:#?}");
        let (host, module) = host_and_module_lines(&raw);
        let pid = host_log_kept(&host).unwrap_or_else(|e| panic!("{what}: {e}\n{raw:#?}"));
        // libpam's pam_syslog: the application's ident and options (so its PID), always
        // the authpriv facility, the module's name and the PAM call before the text.
        assert!(!module.is_empty(), "{what}: the module logged nothing");
        for m in &module {
            assert_eq!(m.ident, HOST_IDENT, "{what}: {m:?}");
            assert_eq!(m.pid, Some(pid), "{what}: {m:?}");
            assert_eq!(m.facility, libc::LOG_AUTHPRIV, "{what}: {m:?}");
            assert!(
                m.message.starts_with("pam_totp(svc:auth): "),
                "{what}: {m:?}"
            );
        }
        assert!(
            module
                .iter()
                .any(|m| m.message.contains(verdict) && m.severity == libc::LOG_NOTICE),
            "{what}: no notice {verdict:?}: {module:#?}"
        );
        module
    };

    // pam_setcred too, so that every export a login calls has run before the host's
    // second line.
    check(
        "right code",
        login(&code_at(&secret, T0), T0).flag("--setcred"),
        "PAM_SUCCESS",
        "accepted time-based code for",
    );
    check(
        "wrong code",
        login(&wrong_totp(&secret, T0 + 30), T0 + 30),
        "PAM_AUTH_ERR",
        "invalid verification code for",
    );
    // A denial logged at err: a secret file others can read.
    u.write_secret(&totp_file(&secret), 0o644);
    let module = check(
        "unusable secret file",
        login("123456", T0 + 60),
        "PAM_AUTH_ERR",
        "code not verified (secret file unusable)",
    );
    assert!(
        module
            .iter()
            .any(|m| m.severity == libc::LOG_ERR && m.message.contains(".google_authenticator")),
        "no err line naming the file: {module:#?}"
    );
}

/// Control for the test above: the same check sees a host whose log was reset or
/// replaced during the login. The driver itself makes the call a misbehaving module
/// would make, right after the module's calls returned.
#[test]
fn a_closelog_or_openlog_during_the_login_is_seen_by_the_host_log_check() {
    let t = "a_closelog_or_openlog_during_the_login_is_seen_by_the_host_log_check";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("k3c");
    let stack = installed_stack();
    let login = |answer: String, at: u64, control: &[&str]| {
        let driver = Driver::login(&stack, &u, &answer)
            .arg("--host-syslog", HOST_IDENT)
            .at(at);
        let driver = control.iter().fold(driver, |d, arg| d.flag(arg));
        let (d, raw) = capture_syslog(&driver);
        assert_eq!(d.result, "PAM_SUCCESS", "{control:?}: {d:?}\n{raw:#?}");
        let (host, _) = host_and_module_lines(&raw);
        (host_log_kept(&host), raw)
    };

    // The same login untouched passes, so what fails below is the control's call.
    let (kept, raw) = login(code_at(&secret, T0), T0, &[]);
    assert!(kept.is_ok(), "{kept:?}\n{raw:#?}");

    // closelog(): glibc forgets the ident and logs under the program's name.
    let (kept, raw) = login(code_at(&secret, T0 + 30), T0 + 30, &["--host-closelog-mid"]);
    let e = kept
        .err()
        .unwrap_or_else(|| panic!("closelog unseen: {raw:#?}"));
    for line in &HOST_LINES[1..] {
        assert!(
            e.contains(&format!("{line:?}: ident {PROGRAM_NAME:?}")),
            "{e}"
        );
    }
    assert!(!e.contains(HOST_LINES[0]), "{e}");

    // openlog() with a module's own ident, no LOG_PID and authpriv.
    let (kept, raw) = login(
        code_at(&secret, T0 + 60),
        T0 + 60,
        &["--host-openlog-mid", "pam_totp"],
    );
    let e = kept
        .err()
        .unwrap_or_else(|| panic!("openlog unseen: {raw:#?}"));
    for line in &HOST_LINES[1..] {
        for diff in [
            "ident \"pam_totp\"".to_string(),
            format!("facility {}", libc::LOG_AUTHPRIV >> 3),
            "pid None".to_string(),
        ] {
            assert!(e.contains(&format!("{line:?}: {diff}")), "{diff}: {e}");
        }
    }
    assert!(!e.contains(HOST_LINES[0]), "{e}");
}
