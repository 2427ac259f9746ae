//! Containers and user namespaces through the real libpam, the built `.so` and the CLI
//! (pam_totp(8), CONTAINERS):
//!
//! - "root" without the capabilities the per-thread credential switch needs (a
//!   container dropping CAP_SETUID/CAP_SETGID), or in a user namespace whose
//!   `setgroups` is denied, or with `setfsuid`/`setfsgid` refused by a seccomp filter:
//!   home mode is denied with one log line naming the cause and the host process
//!   survives; store mode with `user=root` needs no switch and logs in.
//! - Files from outside the namespace (a bind-mounted home or state directory in an
//!   unprivileged LXC container) show as 65534: refused, and the line says why.
//! - A read-only state store (`docker run --read-only`): denied with one line;
//!   `totp-state audit` and `totp-enroll check` predict it.
//! - `close_range(2)` refused: the secret command does not start, and the line says why.
//!   `renameat2(2)` refused: the store key is created through the link fallback.
//! - No `/dev/log` and no `/proc`: home mode works and nothing goes to standard error.
//!
//! Every run shows its fault: the shell that starts the process prints its capability
//! sets, its uid map and its `setgroups` setting to standard error and the test reads
//! them back; strace's trace counts each refused call; mounts are checked from inside.
//! Root only (real users, capability sets, user namespaces, mounts).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use system_tests::*;

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// How `pam-drive` is started: as the test runs, or inside one of the faults.
#[derive(Clone, Debug)]
enum Host {
    /// Root with every capability.
    Plain,
    /// Root whose bounding set lacks these capabilities (`capsh --drop`), as in a
    /// container started with `--cap-drop`.
    Without(&'static [u32]),
    /// Root inside a user namespace that maps only root and denies `setgroups`
    /// (`unshare --map-root-user`, what an unprivileged user gets).
    RootOnlyNamespace,
    /// Root inside the user namespace of this process (see [`Mapped`]), with its
    /// uid map: what an unprivileged LXC container is.
    Mapped(u32, String),
}

/// What the starting shell reports about itself before it becomes `pam-drive`.
const SHOW: &str = r#"grep -E '^CapEff' /proc/self/status >&2
printf 'uid_map %s\n' "$(tr '\n' ';' < /proc/self/uid_map)" >&2
printf 'setgroups %s\n' "$(cat /proc/self/setgroups)" >&2
exec "$@""#;

/// Runs `driver` started as `host` with its syslog captured; asserts that the fault
/// really was in place (or really absent for [`Host::Plain`]).
fn run(host: &Host, driver: &Driver) -> (Output, Drive, Vec<String>) {
    let (out, lines) = started(host, &driver.command());
    let drive = Drive::ran(&out);
    (out, drive, lines)
}

/// Runs `inner` started as `host` with its syslog captured (see [`run`]).
fn started(host: &Host, inner: &Command) -> (Output, Vec<String>) {
    let mut cmd = match host {
        Host::Plain => {
            let mut c = Command::new("sh");
            c.args(["-c", SHOW, "sh"]);
            c
        }
        Host::Without(caps) => {
            let names: Vec<String> = caps
                .iter()
                .map(|c| format!("cap_{}", cap_name(*c)))
                .collect();
            let mut c = Command::new("capsh");
            c.arg(format!("--drop={}", names.join(",")))
                .args(["--", "-c", SHOW, "sh"]);
            c
        }
        Host::RootOnlyNamespace => {
            let mut c = Command::new("unshare");
            c.args(["--user", "--map-root-user", "sh", "-c", SHOW, "sh"]);
            c
        }
        Host::Mapped(pid, _) => {
            let mut c = Command::new("nsenter");
            c.args([
                "--user",
                "--target",
                &pid.to_string(),
                "sh",
                "-c",
                SHOW,
                "sh",
            ]);
            c
        }
    };
    cmd.arg("env");
    append_env_exec(&mut cmd, inner);
    let (out, lines) = with_syslog_capture(&cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let eff = stderr
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no CapEff reported: {stderr}"));
    let has = |cap: u32| eff & (1 << cap) != 0;
    let uid_map = stderr
        .lines()
        .find_map(|l| l.strip_prefix("uid_map "))
        .unwrap_or_else(|| panic!("no uid_map reported: {stderr}"));
    // "inside outside count;" per line, however the kernel pads the columns.
    let uid_map: String = uid_map
        .split(';')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .map(|l| l + ";")
        .collect();
    let setgroups = stderr
        .lines()
        .find_map(|l| l.strip_prefix("setgroups "))
        .unwrap_or_else(|| panic!("no setgroups reported: {stderr}"));
    // The initial namespace maps every id onto itself.
    let initial = uid_map.trim() == "0 0 4294967295;";
    match host {
        Host::Plain => {
            assert!(has(CAP_SETUID) && has(CAP_SETGID), "{stderr}");
            assert!(initial, "{stderr}");
        }
        Host::Without(caps) => {
            for c in caps.iter() {
                assert!(!has(*c), "capability {c} still effective: {stderr}");
            }
            assert!(initial, "{stderr}");
        }
        Host::RootOnlyNamespace => {
            assert_eq!(uid_map.trim(), "0 0 1;", "not in a root-only namespace");
            assert_eq!(setgroups.trim(), "deny", "{stderr}");
        }
        Host::Mapped(_, map) => assert_eq!(uid_map.trim(), map, "{stderr}"),
    }
    assert!(
        out.status.signal().is_none(),
        "killed by signal {:?} (the module or the tool took its process down): {stderr}",
        out.status.signal()
    );
    (out, lines)
}

fn cap_name(cap: u32) -> &'static str {
    match cap {
        CAP_SETGID => "setgid",
        CAP_SETUID => "setuid",
        _ => panic!("no name for capability {cap}"),
    }
}

/// The lines that refused the identity switch.
fn switch_refusals(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| syslog_message(l))
        .filter(|m| m.contains("cannot switch to the identity"))
        .collect()
}

fn home_login(tag: &str) -> (Stack, TestUser, String) {
    let (user, secret) = TestUser::enrolled(tag);
    let stack = Stack::with_module("svc", "");
    (stack, user, secret)
}

/// A store-mode stack that reads as root (`user=root`) a root-owned store holding a
/// new secret for `user`: the stack, the store (kept for the test) and the secret.
fn root_store_login(user: &TestUser) -> (Stack, tempfile::TempDir, String) {
    let store = root_store();
    let secret = random_secret_b32();
    write_owned(
        &store.path().join(&user.name),
        totp_file(&secret).as_bytes(),
        0,
        0,
        0o600,
    );
    let stack = Stack::with_module(
        "svc",
        &format!("user=root secret={}/${{USER}}", store.path().display()),
    );
    (stack, store, secret)
}

/// `totp-state audit` of the service `svc` in `stack`, to be started by the caller.
fn audit_command(stack: &Stack) -> Command {
    let mut audit = Command::new(&built().state_tool);
    audit
        .args(["audit", "--service", "svc", "--pam-dir"])
        .arg(stack.path());
    audit
}

/// The line of `user` in `totp-state audit`'s standard output.
fn audit_line_for<'a>(stdout: &'a str, user: &TestUser) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{}:", user.name)))
        .unwrap_or_else(|| panic!("no audit line for {}: {stdout}", user.name))
}

/// A home-mode login started as `host`: denied (neither success nor ignored) with one
/// line refusing the identity switch, a line containing each of `names`; then the same
/// code logs in where the switch works, as nothing was recorded as used.
fn home_login_refused_by_the_switch(host: &Host, tag: &str, names: &[&str]) {
    let (stack, user, secret) = home_login(tag);
    let code = code_at(&secret, now());
    let (_, denied, lines) = run(host, &Driver::login(&stack, &user, &code));
    assert_ne!(denied.result, "PAM_SUCCESS", "{lines:?}");
    assert_ne!(denied.result, "PAM_IGNORE", "{lines:?}");
    let refused = switch_refusals(&lines);
    assert_eq!(refused.len(), 1, "one line naming the refusal: {lines:?}");
    assert!(
        names.iter().all(|n| refused[0].contains(n)),
        "{}",
        refused[0]
    );
    let (_, ok, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &code));
    assert_eq!(ok.result, "PAM_SUCCESS", "{lines:?}");
}

#[test]
fn home_mode_without_cap_setgid_denies_with_one_line_and_the_host_survives() {
    if !require_root("home_mode_without_cap_setgid_denies_with_one_line_and_the_host_survives")
        || !require_tool("home_mode_without_cap_setgid", "capsh")
    {
        return;
    }
    home_login_refused_by_the_switch(
        &Host::Without(&[CAP_SETGID]),
        "cg",
        &["CAP_SETGID", "denying"],
    );
}

#[test]
fn home_mode_without_cap_setuid_names_the_capability() {
    if !require_root("home_mode_without_cap_setuid_names_the_capability")
        || !require_tool("home_mode_without_cap_setuid", "capsh")
    {
        return;
    }
    home_login_refused_by_the_switch(&Host::Without(&[CAP_SETUID]), "cu", &["CAP_SETUID"]);
}

#[test]
fn home_mode_in_a_namespace_denying_setgroups_denies_and_the_host_survives() {
    if !require_root("home_mode_in_a_namespace_denying_setgroups_denies_and_the_host_survives") {
        return;
    }
    home_login_refused_by_the_switch(
        &Host::RootOnlyNamespace,
        "ns",
        &["user namespace that denies setgroups"],
    );
}

/// The set-up pam_totp(8) names for such containers: a root-owned store read as root.
#[test]
fn store_mode_as_root_logs_in_without_the_switch_capabilities() {
    if !require_root("store_mode_as_root_logs_in_without_the_switch_capabilities")
        || !require_tool("store_mode_as_root", "capsh")
    {
        return;
    }
    let user = TestUser::create("st");
    let (stack, store, secret) = root_store_login(&user);
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let step = now() / 30;
    for (host, at) in [
        (Host::Without(&[CAP_SETUID, CAP_SETGID]), step * 30),
        (Host::RootOnlyNamespace, (step + 1) * 30),
    ] {
        let code = code_at(&secret, at);
        let (_, ok, lines) = run(&host, &Driver::login(&stack, &user, &code).at(at));
        assert_eq!(ok.result, "PAM_SUCCESS", "{host:?}: {lines:?}");
        // The replay mark was written there too: the same code is refused as used.
        let (_, again, lines) = run(&host, &Driver::login(&stack, &user, &code).at(at));
        assert_eq!(again.result, "PAM_AUTH_ERR", "{host:?}: {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| syslog_message(l).contains("already used")),
            "{host:?}: {lines:?}"
        );
    }
}

/// A user namespace for the length of a test, held by a sleeping child: root and the
/// system accounts mapped onto themselves, and one user's uid and gid onto ids far
/// away, so that the user exists inside (a login can switch to it) while every file
/// the user owns on the host shows as 65534, as a home bind-mounted into an
/// unprivileged LXC container does.
struct Mapped {
    holder: std::process::Child,
    map: String,
}

impl Mapped {
    fn new(user: &TestUser) -> Mapped {
        let holder = Command::new("unshare")
            .args(["--user", "sleep", "600"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("unshare");
        let pid = holder.id();
        let ours = fs::read_link("/proc/self/ns/user").expect("own user namespace");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_link(format!("/proc/{pid}/ns/user")).ok().as_ref() == Some(&ours) {
            assert!(std::time::Instant::now() < deadline, "unshare never left");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // One write each: a map file takes a single write.
        let far = 200_000;
        let ids = |id: u32| format!("0 0 1000\n{id} {} 1\n", id + far);
        fs::write(format!("/proc/{pid}/uid_map"), ids(user.uid)).expect("uid_map");
        fs::write(format!("/proc/{pid}/gid_map"), ids(user.gid)).expect("gid_map");
        let map = format!("0 0 1000;{} {} 1;", user.uid, user.uid + far);
        Mapped { holder, map }
    }

    fn host(&self) -> Host {
        Host::Mapped(self.holder.id(), self.map.clone())
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The message part of the lines that mention the overflow id.
fn overflow_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| syslog_message(l))
        .filter(|m| m.contains("uid 65534 (65534 is nobody"))
        .collect()
}

/// The fault of a [`Mapped`] host, seen from inside: `path` belongs to the overflow id.
fn assert_owner_shows_as_the_overflow_id(host: &Host, path: &std::path::Path) {
    let mut owner = Command::new("stat");
    owner.args(["-c", "%u"]).arg(path);
    let (shown, _) = started(host, &owner);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), "65534");
}

#[test]
fn a_home_from_outside_the_namespace_is_refused_naming_the_unmapped_owner() {
    if !require_root("a_home_from_outside_the_namespace_is_refused_naming_the_unmapped_owner") {
        return;
    }
    let (stack, user, secret) = home_login("mp");
    let code = code_at(&secret, now());
    let mapped = Mapped::new(&user);
    let host = mapped.host();
    // The fault: inside, the user's own home belongs to the overflow id.
    assert_owner_shows_as_the_overflow_id(&host, &user.home);

    let (_, denied, lines) = run(&host, &Driver::login(&stack, &user, &code));
    assert_eq!(denied.result, "PAM_AUTH_ERR", "{lines:?}");
    let named = overflow_lines(&lines);
    assert_eq!(
        named.len(),
        1,
        "one line names the unmapped owner: {lines:?}"
    );
    assert!(
        named[0].contains(&*user.home.to_string_lossy()),
        "{}",
        named[0]
    );

    // totp-state audit run in the same container predicts the refusal, in the same words.
    let audit = audit_command(&stack);
    let (out, _) = started(&host, &audit);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = audit_line_for(&stdout, &user);
    assert!(
        line.contains("refused") && line.contains("65534 is nobody"),
        "{line}"
    );

    // Control: the same code outside the namespace logs in.
    let (_, ok, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &code));
    assert_eq!(ok.result, "PAM_SUCCESS", "{lines:?}");
}

#[test]
fn audit_without_cap_setgid_predicts_the_refusal_instead_of_aborting() {
    if !require_root("audit_without_cap_setgid_predicts_the_refusal_instead_of_aborting")
        || !require_tool("audit_without_cap_setgid", "capsh")
    {
        return;
    }
    let (stack, user, _) = home_login("au");
    let audit = audit_command(&stack);
    let (out, _) = started(&Host::Without(&[CAP_SETGID]), &audit);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = audit_line_for(&stdout, &user);
    assert!(
        line.contains("refused") && line.contains("CAP_SETGID"),
        "{line}"
    );
    // Control: with the capability, the same account is ok.
    let (out, _) = started(&Host::Plain, &audit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{}: ok", user.name)), "{stdout}");
}

/// A read-only file system under the state store, as `docker run --read-only` gives one
/// whose volume does not cover `/var/lib/pam_totp`: the store directory missing (the
/// image never ran a login), present and empty (as the package installs it), or holding
/// records already.
#[test]
fn a_read_only_state_store_denies_with_one_line_and_audit_predicts_it() {
    if !require_root("a_read_only_state_store_denies_with_one_line_and_audit_predicts_it") {
        return;
    }
    let (stack, user, secret) = home_login("ro");
    let dir = stack.path().display().to_string();
    // The fault, shown before anything runs: nothing can be created there.
    let read_only = format!(
        "mount --bind {dir} {dir}\nmount -o remount,bind,ro {dir}\n\
         if touch {dir}/.probe 2>/dev/null; then echo still writable >&2; exit 97; fi"
    );
    let check = || {
        let mut c = Command::new(&built().enroll);
        c.args([
            "check",
            "--user",
            &user.name,
            "--service",
            "svc",
            "--pam-dir",
        ])
        .arg(stack.path());
        c
    };
    // The health probe monitoring runs: it read the store key and said "ok" for a store
    // every login refused.
    let ping = || {
        let mut c = Command::new(&built().state_tool);
        c.args(["ping", "--service", "svc", "--pam-dir"])
            .arg(stack.path());
        c
    };
    let state_line = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("state store:"))
            .map(str::to_owned)
    };
    for case in ["missing", "empty", "with records"] {
        let _ = fs::remove_dir_all(stack.state_dir());
        if case != "missing" {
            fs::create_dir(stack.state_dir()).expect("state dir");
            fs::set_permissions(stack.state_dir(), fs::Permissions::from_mode(0o700))
                .expect("chmod");
        }
        if case == "with records" {
            let wrong = wrong_totp(&secret, now());
            let (_, d, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &wrong));
            assert_eq!(d.result, "PAM_AUTH_ERR", "{lines:?}");
            assert!(stack.state_file(user.uid).exists());
        }
        let code = code_at(&secret, now());
        let (out, lines) =
            with_syslog_capture_after(&read_only, &Driver::login(&stack, &user, &code).command());
        let denied = Drive::ran(&out);
        assert_eq!(denied.result, "PAM_AUTH_ERR", "{case}: {lines:?}");
        let named: Vec<&str> = lines
            .iter()
            .map(|l| syslog_message(l))
            .filter(|m| m.contains("Read-only file system"))
            .collect();
        assert_eq!(named.len(), 1, "{case}: {lines:?}");
        assert!(named[0].contains("denying"), "{case}: {}", named[0]);

        let (out, _) = with_syslog_capture_after(&read_only, &audit_command(&stack));
        assert_eq!(out.status.code(), Some(1), "{case}: {out:?}");
        let line = state_line(&out).unwrap_or_else(|| panic!("{case}: no state store line"));
        assert!(
            line.contains("refused") && line.contains("read-only file system"),
            "{case}: {line}"
        );
        if case == "with records" {
            let (out, _) = with_syslog_capture_after(&read_only, &ping());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{case}: ping: {out:?}");
            assert!(
                stderr.contains("the write every login makes")
                    && stderr.contains("read-only file system"),
                "{case}: {stderr}"
            );
        }
        // totp-enroll check, the admin's test of a stack, says it too (with no syslog in
        // the container, nothing else would).
        let (out, _) = with_syslog_capture_after(&read_only, &check());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("warning: the module would deny every login: state directory")
                && stderr.contains("read-only file system"),
            "{case}: {stderr}"
        );
        // Control: on the writable file system audit and check have nothing to say of
        // the store, and the same code logs in.
        let (out, _) = with_syslog_capture(&audit_command(&stack));
        assert_eq!(state_line(&out), None, "{case}");
        let (out, _) = with_syslog_capture(&check());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("would deny every login"),
            "{case}: {stderr}"
        );
        let (_, ok, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &code));
        assert_eq!(ok.result, "PAM_SUCCESS", "{case}: {lines:?}");
        let out = ping().output().expect("run totp-state ping");
        assert_eq!(out.status.code(), Some(0), "{case}: control ping: {out:?}");
    }
}

/// `/var/lib/pam_totp` bind-mounted from the host into an unprivileged container: the
/// state directory's owner is not mapped there and shows as 65534. Store mode with
/// `user=root`, the set-up that works in such a container otherwise.
#[test]
fn a_state_store_from_outside_the_namespace_is_refused_naming_the_unmapped_owner() {
    if !require_root(
        "a_state_store_from_outside_the_namespace_is_refused_naming_the_unmapped_owner",
    ) {
        return;
    }
    let user = TestUser::create("sd");
    let (stack, _store, secret) = root_store_login(&user);
    fs::create_dir(stack.state_dir()).expect("state dir");
    fs::set_permissions(stack.state_dir(), fs::Permissions::from_mode(0o700)).expect("chmod");
    // An owner far outside the namespace's map, as a host's root is in an unprivileged
    // container.
    std::os::unix::fs::chown(stack.state_dir(), Some(400_000), Some(400_000)).expect("chown");
    let mapped = Mapped::new(&user);
    let host = mapped.host();
    assert_owner_shows_as_the_overflow_id(&host, &stack.state_dir());

    let code = code_at(&secret, now());
    let (_, denied, lines) = run(&host, &Driver::login(&stack, &user, &code));
    assert_eq!(denied.result, "PAM_AUTH_ERR", "{lines:?}");
    let named = overflow_lines(&lines);
    assert_eq!(named.len(), 1, "{lines:?}");
    assert!(named[0].contains("state"), "{}", named[0]);

    let audit = audit_command(&stack);
    let (out, _) = started(&host, &audit);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("state store:"))
        .unwrap_or_else(|| panic!("no state store line: {stdout} {out:?}"));
    assert!(
        line.contains("refused") && line.contains("65534 is nobody"),
        "{line}"
    );

    // Control: the directory given to root, as the container maps it, logs in there.
    std::os::unix::fs::chown(stack.state_dir(), Some(0), Some(0)).expect("chown");
    let (_, ok, lines) = run(&host, &Driver::login(&stack, &user, &code));
    assert_eq!(ok.result, "PAM_SUCCESS", "{lines:?}");
}

/// `driver` with every `setfsuid` and `setfsgid` answered EPERM, as a container's
/// seccomp filter answers a call it denies (strace injects it, and its trace shows
/// each injection): the run, its syslog lines and how many calls were refused.
fn with_fs_ids_refused(driver: &Driver) -> (Drive, Vec<String>, usize) {
    let (out, lines, injected) = with_calls_refused("setfsuid,setfsgid", &driver.command());
    assert!(out.status.signal().is_none(), "{out:?}");
    (Drive::ran(&out), lines, injected)
}

/// Runs `inner` with its syslog captured and every call named in `calls` (strace's
/// comma-separated list) answered EPERM, as a container's seccomp filter answers a call
/// it denies: the output, the lines and how many refusals strace's trace shows.
fn with_calls_refused(calls: &str, inner: &Command) -> (Output, Vec<String>, usize) {
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-e", &format!("trace={calls}")])
        .args(["-e", &format!("inject={calls}:error=EPERM"), "-o"])
        .arg(trace.path())
        .arg("env");
    append_env_exec(&mut strace, inner);
    let (out, lines) = with_syslog_capture(&strace);
    let injected = fs::read_to_string(trace.path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("EPERM") && l.contains("INJECTED"))
        .count();
    (out, lines, injected)
}

#[test]
fn with_setfsuid_refused_store_mode_as_root_logs_in_and_home_mode_says_why_it_cannot() {
    let t = "with_setfsuid_refused_store_mode_as_root_logs_in_and_home_mode_says_why_it_cannot";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let user = TestUser::create("sc");
    let (root_store_stack, _store, secret) = root_store_login(&user);
    user.write_secret(&totp_file(&secret), 0o600);
    let home_stack = Stack::with_module("svc", "");
    let step = now() / 30;

    // Store mode as root needs no switch: it logs in, and a replay is refused.
    let at = step * 30;
    let code = code_at(&secret, at);
    let (ok, lines, injected) =
        with_fs_ids_refused(&Driver::login(&root_store_stack, &user, &code).at(at));
    assert!(injected > 0, "nothing refused");
    assert_eq!(ok.result, "PAM_SUCCESS", "{lines:?}");
    let (again, lines, _) =
        with_fs_ids_refused(&Driver::login(&root_store_stack, &user, &code).at(at));
    assert_eq!(again.result, "PAM_AUTH_ERR", "{lines:?}");

    // Home mode cannot read as the user: denied, one line naming the refused call.
    let at = (step + 1) * 30;
    let code = code_at(&secret, at);
    let (denied, lines, injected) =
        with_fs_ids_refused(&Driver::login(&home_stack, &user, &code).at(at));
    assert!(injected > 0, "nothing refused");
    assert_ne!(denied.result, "PAM_SUCCESS", "{lines:?}");
    assert_ne!(denied.result, "PAM_IGNORE", "{lines:?}");
    let refused = switch_refusals(&lines);
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert!(
        refused[0].contains("is refused in this process"),
        "{}",
        refused[0]
    );
    // Control: the same code, nothing refused.
    let (_, ok, lines) = run(
        &Host::Plain,
        &Driver::login(&home_stack, &user, &code).at(at),
    );
    assert_eq!(ok.result, "PAM_SUCCESS", "{lines:?}");
}

/// A container whose seccomp profile predates `close_range(2)` (older Docker defaults
/// answer it EPERM; strace injects that here, each injection counted in its trace):
/// the secret command is not started, and the line says why.
#[test]
fn a_refused_close_range_keeps_the_secret_command_from_starting_and_says_so() {
    let t = "a_refused_close_range_keeps_the_secret_command_from_starting_and_says_so";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let user = TestUser::create("cr");
    let secret = random_secret_b32();
    let dir = system_tests::fleet::trusted_dir("cr");
    let command = system_tests::fleet::secret_command(dir.path(), &user.name, &totp_file(&secret));
    let stack = Stack::with_module(
        "svc",
        &format!(
            "secret_command={} secret_command_user=nobody",
            command.display()
        ),
    );
    let code = code_at(&secret, now());
    let (out, lines, injected) = with_calls_refused(
        "close_range",
        &Driver::login(&stack, &user, &code).command(),
    );
    assert!(injected > 0, "close_range was not refused");
    let denied = Drive::ran(&out);
    assert_eq!(denied.result, "PAM_AUTH_ERR", "{lines:?}");
    let named: Vec<&str> = lines
        .iter()
        .map(|l| syslog_message(l))
        .filter(|m| m.contains("close_range(2) is refused"))
        .collect();
    assert_eq!(named.len(), 1, "{lines:?}");
    // Control: the same code, nothing refused.
    let (_, ok, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &code));
    assert_eq!(ok.result, "PAM_SUCCESS", "{lines:?}");
}

/// A minimal container: no syslog socket and no /proc. Nothing of the module needs
/// either: home mode logs in and refuses a replay, the log lines are dropped by
/// pam_syslog, and nothing is written to standard error instead (under sudo or su that
/// is the user's terminal).
#[test]
fn without_dev_log_or_proc_home_mode_works_and_writes_nothing_to_stderr() {
    if !require_root("without_dev_log_or_proc_home_mode_works_and_writes_nothing_to_stderr") {
        return;
    }
    let (stack, user, secret) = home_login("dl");
    let bare = tempfile::tempdir().expect("tempdir");
    const SETUP: &str = r#"t="$1"
mkdir -p "$t/dev"
mount -t tmpfs -o mode=755 none "$t/dev"
for n in null zero urandom random full tty; do
  touch "$t/dev/$n"; mount --bind "/dev/$n" "$t/dev/$n"
done
mount --rbind "$t/dev" /dev
mount -t tmpfs -o mode=555 none /proc
if [ -e /dev/log ] || [ -e /proc/self ]; then echo "not bare" >&2; exit 97; fi"#;
    let at = (now() / 30) * 30;
    let code = code_at(&secret, at);
    for (expect, what) in [("PAM_SUCCESS", "right code"), ("PAM_AUTH_ERR", "replay")] {
        let driver = Driver::login(&stack, &user, &code);
        let out = in_private_mounts(SETUP, bare.path(), &driver.command())
            .output()
            .expect("run");
        assert!(out.status.signal().is_none(), "{what}: {out:?}");
        let drive = Drive::ran(&out);
        assert_eq!(drive.result, expect, "{what}: {out:?}");
        assert!(out.stderr.is_empty(), "{what}: stderr {:?}", drive.stderr);
    }
}

/// A seccomp profile without `renameat2` (answered EPERM; strace injects it, each
/// injection counted): the first login of a host creates the state store's key with a
/// no-replace rename, and falls back to a link as on a file system without it.
#[test]
fn a_refused_renameat2_still_creates_the_store_key_and_logs_in() {
    let t = "a_refused_renameat2_still_creates_the_store_key_and_logs_in";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (stack, user, secret) = home_login("rn");
    assert!(!stack.state_dir().exists(), "a fresh store");
    let at = (now() / 30) * 30;
    let code = code_at(&secret, at);
    let (out, lines, injected) = with_calls_refused(
        "renameat2",
        &Driver::login(&stack, &user, &code).at(at).command(),
    );
    assert!(injected > 0, "renameat2 was not refused");
    assert_eq!(Drive::ran(&out).result, "PAM_SUCCESS", "{lines:?}");
    let key = stack.state_dir().join("store.key");
    let meta = fs::metadata(&key).expect("store key");
    assert_eq!(meta.len(), 32, "{}", key.display());
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 1);
    // The key holds: the code is refused as used by a login that renames nothing.
    let (_, again, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &code).at(at));
    assert_eq!(again.result, "PAM_AUTH_ERR", "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("already used")),
        "{lines:?}"
    );
}

/// A seccomp profile without `linkat` (answered EPERM; strace injects it, each injection
/// counted): a user's first record, built without a name (`O_TMPFILE`), cannot be linked
/// into place, so it is built again under a temporary name and renamed into place
/// without replacing one, as on a file system without `O_TMPFILE`: the login succeeds,
/// the record has one link, no temporary name is left, and the code is refused as used
/// by a login that links nothing (C9).
#[test]
fn a_refused_linkat_still_creates_the_record_complete_and_logs_in() {
    let t = "a_refused_linkat_still_creates_the_record_complete_and_logs_in";
    if !require_root(t) || !require_tool(t, "strace") {
        return;
    }
    let (stack, user, secret) = home_login("lk");
    let at = (now() / 30) * 30;
    let code = code_at(&secret, at);
    let (out, lines, injected) = with_calls_refused(
        "linkat",
        &Driver::login(&stack, &user, &code).at(at).command(),
    );
    assert!(injected > 0, "linkat was not refused");
    assert_eq!(Drive::ran(&out).result, "PAM_SUCCESS", "{lines:?}");
    let record = stack.state_file(user.uid);
    let meta = fs::metadata(&record).expect("the record");
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 1);
    let left: Vec<_> = fs::read_dir(stack.state_dir())
        .expect("state directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary names left: {left:?}");
    let (_, again, lines) = run(&Host::Plain, &Driver::login(&stack, &user, &code).at(at));
    assert_eq!(again.result, "PAM_AUTH_ERR", "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).contains("already used")),
        "{lines:?}"
    );
}
