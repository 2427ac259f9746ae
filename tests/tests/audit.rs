//! `totp-state audit` (issue 20): before changing pam.d, what the service's module would
//! do for every account, by the module's own rules, checked against real logins.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use system_tests::*;

/// `totp-state audit --json` of `stack`'s `svc` with `extra` arguments, run.
fn run_audit(stack: &Stack, extra: &[&str]) -> Output {
    audit_command(stack.path())
        .args(extra)
        .output()
        .expect("totp-state audit")
}

/// The text form (no `--json`) of `stack`'s `svc` audit, not yet run.
fn text_audit_command(stack: &Stack) -> Command {
    let mut text = Command::new(&built().state_tool);
    text.args(["audit", "--service", "svc", "--pam-dir"])
        .arg(stack.path());
    text
}

/// `tmpfs` or `ramfs` when `dir` is on one (as `stat -f` tells), `None` otherwise.
fn memory_fs(dir: &std::path::Path) -> Option<&'static str> {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .expect("stat -f");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "tmpfs" => Some("tmpfs"),
        "ramfs" => Some("ramfs"),
        _ => None,
    }
}

/// `svc` with `pam_permit` before the code line, as the examples have a password line:
/// a stack of code lines only is warned about (a `stack` row and standard error), which
/// tests of other matters must not see.
fn permit_then_module(args: &str) -> Stack {
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!("auth required pam_permit.so\nauth required @MODULE@ {args}\n"),
    );
    stack
}

/// Each line of a `--json` audit, parsed.
fn findings(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

#[test]
fn audit_reports_each_account_as_the_module_would_treat_it() {
    if !require_root("audit_reports_each_account_as_the_module_would_treat_it") {
        return;
    }
    let (ok, secret) = TestUser::enrolled("ao");
    let none = TestUser::create("an");
    let bad = TestUser::create("ab");
    bad.write_secret(&totp_file(&random_secret_b32()), 0o644);
    let legacy = TestUser::create("al");
    legacy.write_secret(&format!("{GA_SECRET}\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::with_module("svc", "nullok");

    let out = run_audit(&stack, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused account fails the audit: {out:?}"
    );
    let seen = audit_verdicts(&out.stdout);
    let verdict = |u: &TestUser| seen.get(&u.name).cloned().unwrap_or_default();
    assert_eq!(verdict(&ok).0, "ok", "{:?}", verdict(&ok));
    assert_eq!(verdict(&none).0, "not-enrolled", "{:?}", verdict(&none));
    assert!(
        verdict(&none).1.contains("nullok skips"),
        "{:?}",
        verdict(&none)
    );
    assert_eq!(verdict(&bad).0, "refused", "{:?}", verdict(&bad));
    assert!(verdict(&bad).1.contains("0644"), "{:?}", verdict(&bad));
    assert_eq!(verdict(&legacy).0, "warning", "{:?}", verdict(&legacy));
    assert!(
        verdict(&legacy).1.contains("80 bits"),
        "{:?}",
        verdict(&legacy)
    );
    assert!(
        seen.contains_key("root"),
        "every account the name service lists"
    );

    // The verdicts are what logins do.
    let login = |u: &TestUser, answer: &str| login_at(&stack, u, answer, None, T0);
    assert_eq!(login(&ok, &code_at(&secret, T0)).result, "PAM_SUCCESS");
    assert_eq!(login(&bad, "123456").result, "PAM_AUTH_ERR");
    let d = login(&legacy, &oathtool_totp(GA_SECRET, T0, 30, 6, "sha1"));
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");

    // Text form: one line per account, the verdict word in it.
    let out = text_audit_command(&stack)
        .output()
        .expect("totp-state audit");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{}: refused: ", bad.name)), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{out:?}"
    );
}

/// Store mode: accounts are judged by their file in the store, and a file in the store
/// named after no account is reported as refused.
#[test]
fn audit_in_store_mode_reads_the_store_and_names_orphan_files() {
    if !require_root("audit_in_store_mode_reads_the_store_and_names_orphan_files") {
        return;
    }
    let store = root_store();
    let u = TestUser::create("as");
    let secret = random_secret_b32();
    for name in [u.name.as_str(), "nobody-here-as"] {
        let file = totp_file(&secret);
        write_owned(&store.path().join(name), file.as_bytes(), 0, 0, 0o600);
    }
    let stack = Stack::with_module(
        "svc",
        &format!("user=root secret={}/${{USER}}", store.path().display()),
    );
    let out = run_audit(&stack, &[]);
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(
        seen.get(&u.name).map(|(v, _)| v.as_str()),
        Some("ok"),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("nobody-here-as").map(|(v, _)| v.as_str()),
        Some("refused"),
        "{seen:?}"
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(
        d.result, "PAM_SUCCESS",
        "the store's file is what logins use: {d:?}"
    );
}

/// System accounts such as `_apt` and `nobody` have a home that does not exist and a
/// shell that refuses logins. The module refuses them as it refuses every missing home,
/// but they do not fail the audit: on a stock host it would fail every time and check
/// nothing. An account with a login shell and the same missing home still does. Run with
/// a private `/etc/passwd` (bind-mounted in a mount namespace) that lists only root and
/// these accounts, so the exit status depends on nothing else on the machine.
#[test]
fn accounts_without_a_login_shell_do_not_fail_the_audit() {
    if !require_root("accounts_without_a_login_shell_do_not_fail_the_audit") {
        return;
    }
    let stack = permit_then_module("nullok");
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = dir.path().join("passwd");
    // A run with `passwd` bind-mounted over /etc/passwd.
    let with_passwd = |inner: &Command| {
        in_private_mounts(r#"mount --bind "$1" /etc/passwd"#, &passwd, inner)
            .output()
            .expect("totp-state audit")
    };
    let audit = |extra: &str| {
        // A useradd of any process (another test binary) renames a new /etc/passwd into
        // place, which detaches the bind mount below: the audit would then list the
        // host's accounts, changing as it reads them. Every useradd waits meanwhile.
        let _g = user_database_frozen();
        std::fs::write(
            &passwd,
            format!(
                "root:x:0:0:root:/root:/bin/bash\n\
                 ptotpsys:x:64001:64001::/nonexistent:/usr/sbin/nologin\n\
                 ptotpfalse:x:64002:64002::/nonexistent:/bin/false\n{extra}"
            ),
        )
        .expect("write passwd");
        let out = with_passwd(&audit_command(stack.path()));
        let lines: BTreeMap<String, serde_json::Value> = findings(&out)
            .into_iter()
            .map(|v| (v["user"].as_str().expect("user").to_owned(), v))
            .collect();
        (out, lines)
    };

    let (out, lines) = audit("");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for user in ["ptotpsys", "ptotpfalse"] {
        assert_eq!(lines[user]["verdict"], "refused", "{lines:?}");
        assert_eq!(lines[user]["login_shell"], false, "{lines:?}");
        // Under nullok the line names the option that would skip them, as the module does.
        assert!(
            lines[user]["reasons"]
                .to_string()
                .contains("(nullok_missing_home would skip)"),
            "{lines:?}"
        );
    }
    // Run from cron, a passing audit says nothing on standard error (cron mails it),
    // but for a state directory on memory (/run is tmpfs on most hosts).
    let quiet = |err: &[u8]| {
        let err = String::from_utf8_lossy(err);
        match memory_fs(&stack.state_dir()) {
            Some(kind) => {
                err.lines().count() == 1 && err.contains(&format!(" is on {kind}: its records"))
            }
            None => err.is_empty(),
        }
    };
    assert!(quiet(&out.stderr), "{out:?}");
    let text = {
        // As in `audit`: the bind mount must stay over the /etc/passwd it ran with.
        let _g = user_database_frozen();
        with_passwd(&text_audit_command(&stack))
    };
    assert_eq!(text.status.code(), Some(0), "{text:?}");
    assert!(quiet(&text.stderr), "{text:?}");
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("2 refused account(s) without a login shell"),
        "{text:?}"
    );

    // Control: the same missing home with a login shell fails the audit.
    let (out, lines) = audit("ptotpshell:x:64003:64003::/nonexistent:/bin/sh\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(lines["ptotpshell"]["verdict"], "refused", "{lines:?}");
    assert_eq!(lines["ptotpshell"]["login_shell"], true, "{lines:?}");
}

/// A deleted account leaves its state record, keyed by uid, for whoever `useradd` gives
/// the uid next (pam_totp(8), ACCOUNT CHANGES). The audit names it as a warning with the
/// reset to run, which does not fail the audit; after the reset it is gone. Control:
/// while the account exists the record is not listed.
#[test]
fn audit_warns_of_a_deleted_accounts_state_record() {
    if !require_root("audit_warns_of_a_deleted_accounts_state_record") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ad");
    let stack = Stack::with_module("svc", "nullok");
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(stack.state_file(u.uid).exists());
    let key = format!("uid {}", u.uid);
    let audit = || {
        let out = run_audit(&stack, &[]);
        let found = findings(&out)
            .into_iter()
            .find(|v| v["user"] == key.as_str());
        (out, found)
    };
    let (_, found) = audit();
    assert!(found.is_none(), "control: the account exists: {found:?}");

    // Until the end: no other test of this binary may be given the freed uid.
    let _g = user_database_lock();
    let out = shadow_tool("userdel", &["-r", &u.name]).expect("userdel");
    assert!(out.status.success(), "{out:?}");
    let (out, found) = audit();
    let found = found.unwrap_or_else(|| panic!("no finding for {key}: {out:?}"));
    assert_eq!(found["verdict"], "warning", "{found}");
    let reset = format!("totp-state reset --user {}", u.uid);
    assert!(found["reasons"].to_string().contains(&reset), "{found}");

    let uid = u.uid.to_string();
    let out = stack.state_tool(&["reset", "--user", &uid]);
    assert!(out.status.success(), "{out:?}");
    let (_, found) = audit();
    assert!(found.is_none(), "after the reset: {found:?}");
}

/// A file with GA's `DISALLOW_REUSE`/`RATE_LIMIT` lines: the audit says whether logins
/// keep them up to date (`shared_file=`), as the module decides it on the file it reads;
/// on a local file system this host does not export over NFS only `shared_file=yes`
/// does (the table of exports is `nfs_server_exports.rs`'s; this machine exports none).
#[test]
fn audit_says_whether_ga_lines_are_kept_up_to_date() {
    if !require_root("audit_says_whether_ga_lines_are_kept_up_to_date") {
        return;
    }
    let u = TestUser::create("ag");
    let secret = random_secret_b32();
    u.write_secret(
        &format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
        0o600,
    );
    let plain = TestUser::create("ap");
    plain.write_secret(&totp_file(&secret), 0o600);
    for (args, want) in [
        (
            "",
            "not written on time-based logins (a local file system, shared_file=auto",
        ),
        (
            "shared_file=yes",
            "kept up to date on logins (shared_file=yes)",
        ),
        ("shared_file=no", "obeyed, never written (shared_file=no)"),
    ] {
        let stack = Stack::with_module("svc", args);
        let out = run_audit(&stack, &[]);
        let found = audit_verdicts(&out.stdout);
        let (verdict, reasons) = found.get(&u.name).cloned().unwrap_or_default();
        assert_eq!(verdict, "ok", "{args}: {reasons}");
        assert!(reasons.contains(want), "{args}: {reasons}");
        let (_, reasons) = found.get(&plain.name).cloned().unwrap_or_default();
        assert!(!reasons.contains("DISALLOW_REUSE"), "{args}: {reasons}");
    }
}

/// Finding: the audit ran `getent` found through the caller's `PATH`, as root. A
/// `getent` placed first in `PATH` (as `sudo -E` or a cron environment can leave it)
/// that lists an account nobody has and leaves out a real one changes nothing: the
/// audit lists the real account and not the invented one. Control: the name service
/// really has the real account, and the invented one is nobody's.
#[test]
fn audit_lists_accounts_with_the_system_getent_whatever_the_path() {
    if !require_root("audit_lists_accounts_with_the_system_getent_whatever_the_path") {
        return;
    }
    let (real, _) = TestUser::enrolled("aq");
    let invented = "zzpamtotpnobody";
    let stack = Stack::with_module("svc", "nullok");
    let bin = tempfile::tempdir().expect("tmp");
    let fake = bin.path().join("getent");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho '{invented}:x:4242:4242::/nonexistent:/bin/sh'\n"),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Control: the caller's PATH does find the stand-in first.
    let found = Command::new("sh")
        .args(["-c", "getent passwd"])
        .env("PATH", &path)
        .output()
        .expect("sh");
    assert!(String::from_utf8_lossy(&found.stdout).contains(invented));

    let out = audit_command(stack.path())
        .env("PATH", &path)
        .output()
        .expect("totp-state audit");
    let seen = audit_verdicts(&out.stdout);
    assert!(seen.contains_key(&real.name), "{out:?}");
    assert!(!seen.contains_key(invented), "{out:?}");
}

/// Directory accounts (SSSD with its default `enumerate = false`, most LDAP and AD
/// setups) are not listed, so the admin names them: `--user` audits exactly the names
/// given, each looked up as a login looks it up, and a name the name service does not
/// know is refused and fails the audit. Control: the known account alone passes, and
/// nobody else (root) is listed.
#[test]
fn named_accounts_are_audited_and_an_unknown_name_fails_the_audit() {
    if !require_root("named_accounts_are_audited_and_an_unknown_name_fails_the_audit") {
        return;
    }
    let (u, secret) = TestUser::enrolled("au");
    let unknown = "zzpamtotpnosuchau";
    let stack = permit_then_module("nullok");
    let out = run_audit(&stack, &["--user", &u.name]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(seen.keys().collect::<Vec<_>>(), [&u.name], "{out:?}");
    assert_eq!(seen[&u.name].0, "ok", "{out:?}");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(
        d.result, "PAM_SUCCESS",
        "the verdict is what logins do: {d:?}"
    );

    let out = run_audit(&stack, &["--user", unknown, "--user", &u.name]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(seen.len(), 2, "{out:?}");
    assert_eq!(seen[&u.name].0, "ok", "{out:?}");
    assert_eq!(seen[unknown].0, "refused", "{out:?}");
    assert!(
        seen[unknown]
            .1
            .contains("the name service does not know this name"),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 account(s) refused"),
        "{out:?}"
    );
}

/// `--users-from`: one name a line, `#` comments and blank lines skipped, `-` for
/// standard input. A commented-out account whose file the module refuses is not
/// audited (it would fail the run); the unknown name in the list is. Control: without
/// the unknown name the same list passes. A line no name can be is refused whole.
#[test]
fn users_from_reads_one_name_a_line_and_skips_comments() {
    if !require_root("users_from_reads_one_name_a_line_and_skips_comments") {
        return;
    }
    let (u, _) = TestUser::enrolled("af");
    let skipped = TestUser::create("ax");
    skipped.write_secret(&totp_file(&random_secret_b32()), 0o644);
    let unknown = "zzpamtotpnosuchaf";
    let stack = permit_then_module("nullok");
    let dir = tempfile::tempdir().expect("tmp");
    let list = dir.path().join("users");
    let list = list.to_str().expect("a UTF-8 path");
    let body = format!("# staff\n\n  {}\t\n  # {}\n", u.name, skipped.name);
    std::fs::write(list, format!("{body}{unknown}\n")).expect("write");

    let out = run_audit(&stack, &["--users-from", list]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut want = vec![u.name.as_str(), unknown];
            want.sort();
            want
        },
        "{out:?}"
    );
    assert_eq!(seen[&u.name].0, "ok", "{out:?}");
    assert_eq!(seen[unknown].0, "refused", "{out:?}");

    // Control: the commented-out account really is refused when named.
    let out = run_audit(&stack, &["--user", &skipped.name]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Standard input, without the unknown name: passes.
    let mut child = audit_command(stack.path())
        .args(["--users-from", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("totp-state audit");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(body.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("totp-state audit");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(seen.keys().collect::<Vec<_>>(), [&u.name], "{out:?}");

    // Bounded: a line longer than 4096 bytes is no list of names (usage error).
    std::fs::write(list, format!("{}\n{}\n", u.name, "x".repeat(5000))).expect("write");
    let out = run_audit(&stack, &["--users-from", list]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2 is longer than 4096 bytes"),
        "{out:?}"
    );
    // A list of nothing (a pipeline that failed) does not pass an audit of nobody.
    std::fs::write(list, "# nobody yet\n").expect("write");
    let out = run_audit(&stack, &["--users-from", list]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A host whose `passwd` line names a directory source (`sss`) lists only its local
/// accounts to `getent passwd`: the audit says so on standard error and names
/// `--users-from`. Run with a private /etc/nsswitch.conf bind-mounted in a mount
/// namespace. Controls: `files systemd` (a stock host) gives no warning, nor does an
/// audit of named accounts, which lists nothing.
#[test]
fn an_audit_warns_when_the_name_service_may_not_list_directory_accounts() {
    if !require_root("an_audit_warns_when_the_name_service_may_not_list_directory_accounts") {
        return;
    }
    let stack = permit_then_module("nullok");
    let dir = tempfile::tempdir().expect("tmp");
    let conf = dir.path().join("nsswitch.conf");
    let audit = |passwd: &str, extra: &[&str]| {
        std::fs::write(
            &conf,
            format!("# test\npasswd:         {passwd}\ngroup:          files\n"),
        )
        .expect("write nsswitch.conf");
        let mut inner = audit_command(stack.path());
        inner.args(extra);
        let out = in_private_mounts(r#"mount --bind "$1" /etc/nsswitch.conf"#, &conf, &inner)
            .output()
            .expect("totp-state audit");
        // The audit ran (other tests' accounts may fail it: its status is not ours).
        assert!(
            audit_verdicts(&out.stdout).contains_key("root"),
            "{passwd}: {out:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warned = audit("files [NOTFOUND=return] sss", &[]);
    assert!(
        warned.contains("warning: the passwd line of /etc/nsswitch.conf names sss"),
        "{warned}"
    );
    assert!(warned.contains("--users-from"), "{warned}");
    for (passwd, extra) in [
        ("files systemd", &[][..]),
        ("files sss", &["--user", "root"][..]),
    ] {
        let quiet = audit(passwd, extra);
        assert!(!quiet.contains("warning"), "{passwd} {extra:?}: {quiet}");
    }
}

/// Finding: in store mode the audit called a store file an orphan, with "remove it", as
/// soon as its name was missing from `getent passwd`, which a directory service without
/// enumeration never fills: the secrets of directory users who still log in. Now an
/// unlisted name is looked up by name: `daemon`, left out of a fake listing (a
/// `getent` bind-mounted over the system one) but known by name, is audited as an
/// account and the audit passes. Controls: a name no lookup knows is still refused and
/// fails the audit; with a directory source in nsswitch.conf (the listing may be
/// incomplete) the same name is unverified, without the advice, and does not fail it.
#[test]
fn a_store_file_of_an_unlisted_account_is_no_orphan() {
    if !require_root("a_store_file_of_an_unlisted_account_is_no_orphan") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let store = root_store();
    let secret = random_secret_b32();
    let enrol = |name: &str| {
        write_owned(
            &store.path().join(name),
            totp_file(&secret).as_bytes(),
            0,
            0,
            0o600,
        )
    };
    enrol("daemon");
    let stack = Stack::with_module(
        "svc",
        &format!(
            "user=root secret={}/${{USER}} nullok",
            store.path().display()
        ),
    );
    let fake = tempfile::tempdir().expect("tmp");
    let getent = fake.path().join("getent");
    std::fs::write(
        &getent,
        "#!/bin/sh\necho 'root:x:0:0:root:/root:/bin/bash'\n",
    )
    .expect("write");
    std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = fake.path().join("nsswitch.conf");
    let audit = |passwd_sources: &str| {
        std::fs::write(
            &conf,
            format!("passwd:         {passwd_sources}\ngroup:          files\n"),
        )
        .expect("write nsswitch.conf");
        let out = in_private_mounts(
            r#"mount --bind "$1/getent" /usr/bin/getent
mount --bind "$1/nsswitch.conf" /etc/nsswitch.conf"#,
            fake.path(),
            &audit_command(stack.path()),
        )
        .output()
        .expect("totp-state audit");
        let seen = audit_verdicts(&out.stdout);
        (out, seen)
    };
    // The fake listing is what the audit read, and daemon is not in it.
    let listed = in_private_mounts(
        r#"mount --bind "$1/getent" /usr/bin/getent"#,
        fake.path(),
        Command::new("/usr/bin/getent").arg("passwd"),
    )
    .output()
    .expect("getent");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("daemon"));

    let (out, seen) = audit("files");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let daemon = seen.get("daemon").cloned().unwrap_or_default();
    assert_ne!(daemon.0, "refused", "{out:?}");
    assert!(!daemon.1.contains("remove it"), "{daemon:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("refused"),
        "{out:?}"
    );

    // Control: a name nobody has is an orphan, refused with the advice.
    let ghost = "nobody-here-au";
    enrol(ghost);
    let (out, seen) = audit("files");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let orphan = seen.get(ghost).cloned().unwrap_or_default();
    assert_eq!(orphan.0, "refused", "{out:?}");
    assert!(orphan.1.contains("remove it"), "{orphan:?}");
    assert_ne!(seen.get("daemon").map(|v| v.0.as_str()), Some("refused"));

    // A directory source: "no such name" may be an unreachable directory.
    let (out, seen) = audit("files sss");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let unverified = seen.get(ghost).cloned().unwrap_or_default();
    assert_eq!(unverified.0, "unverified", "{out:?}");
    assert!(!unverified.1.contains("remove it"), "{unverified:?}");
}

/// A broken `accessfile=` bars every skip (R21): the audit says so in a line of its own
/// and, for an account `skip_group=` would skip, that the code is asked for after all,
/// so an account without a secret file is refused as its logins are. The skip itself
/// is reported where the module makes it. Control: with a usable rule file there is no
/// such line, and the same account is reported skipped, as its login is.
#[test]
fn a_broken_rule_file_shows_in_the_audit_as_the_group_skips_it_bars() {
    if !require_root("a_broken_rule_file_shows_in_the_audit_as_the_group_skips_it_bars") {
        return;
    }
    // No secret file and no nullok: only the skip lets this account in.
    let u = TestUser::create("bq");
    let dir = system_tests::fleet::trusted_dir("pam_totp-audit-access");
    let rules = dir.path().join("access.conf");
    // useradd gave the account a primary group of its own name: proven membership.
    let stack = Stack::probe(
        "svc",
        &format!(
            "skip_group={} grace_period=600 accessfile={}",
            u.name,
            rules.display()
        ),
    );
    let audit = || {
        let out = run_audit(&stack, &["--user", &u.name]);
        let lines: BTreeMap<String, serde_json::Value> = findings(&out)
            .into_iter()
            .map(|v| (v["user"].as_str().expect("user").to_owned(), v))
            .collect();
        (out, lines)
    };
    let login = || login_at(&stack, &u, "123456", None, T0).returned();

    // Control: a usable file that skips nobody; the group option skips the account.
    write_owned(&rules, b"- : ALL : ALL\n", 0, 0, 0o644);
    let (out, lines) = audit();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!lines.contains_key("access file"), "{lines:?}");
    assert_eq!(lines[&u.name]["verdict"], "warning", "{lines:?}");
    let reasons = lines[&u.name]["reasons"].to_string();
    assert!(
        reasons.contains(&format!(
            "the code is never asked for: group rule: member of skip group {}",
            u.name
        )),
        "{reasons}"
    );
    assert_eq!(login(), Returned::Ignore, "the skip is what logins get");

    let malformed = b"+ : ALL : 10.0.0.0/24\n+ : ALL : 10.0.0.0/33\n".as_slice();
    for (what, contents, mode) in [
        ("malformed", malformed, 0o644),
        ("writable by others", b"- : ALL : ALL\n".as_slice(), 0o666),
    ] {
        write_owned(&rules, contents, 0, 0, mode);
        let (out, lines) = audit();
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        let service = &lines["access file"];
        assert_eq!(service["verdict"], "warning", "{what}: {lines:?}");
        let said = service["reasons"].to_string();
        for part in [
            &rules.display().to_string(),
            "the module asks everybody for the code",
            "grace_period= lets nobody in without it",
        ] {
            assert!(said.contains(part), "{what}: {part}: {said}");
        }
        assert_eq!(lines[&u.name]["verdict"], "refused", "{what}: {lines:?}");
        let reasons = lines[&u.name]["reasons"].to_string();
        assert!(
            reasons.contains(&format!(
                "the code is asked for although group rule: member of skip group {} would skip it",
                u.name
            )),
            "{what}: {reasons}"
        );
        assert_eq!(
            login(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "{what}: the refusal is what logins get"
        );
    }
}

/// Two pam_totp lines, the first with a group option that skips the account: the skip
/// (`PAM_IGNORE`) hands the login to the second line, which asks for the code, and the
/// audit gives the second line's verdict instead of "the code is never asked for". A 0644
/// home file is refused by the second line, as the login shows; control: a 0600 file
/// is audited ok and its code logs in through the same two lines.
#[test]
fn a_group_skip_on_the_first_line_hands_the_account_to_the_next_line() {
    if !require_root("a_group_skip_on_the_first_line_hands_the_account_to_the_next_line") {
        return;
    }
    let (u, secret) = TestUser::enrolled("bs");
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!(
            "auth [success=done ignore=ignore default=die] @MODULE@ skip_group={}\n\
             auth required @MODULE@\n",
            u.name
        ),
    );
    let audit = || {
        let out = run_audit(&stack, &["--user", &u.name]);
        let seen = audit_verdicts(&out.stdout);
        (out, seen.get(&u.name).cloned().unwrap_or_default())
    };

    // Control: a usable file on the second line.
    let (out, (verdict, reasons)) = audit();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(verdict, "ok", "{reasons}");
    // The verdict is the second line's, named by its place in the service file.
    assert!(reasons.contains("svc:2: "), "{reasons}");
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");

    u.write_secret(&totp_file(&random_secret_b32()), 0o644);
    let (out, (verdict, reasons)) = audit();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(verdict, "refused", "{reasons}");
    assert!(reasons.contains("svc:2: "), "{reasons}");
    assert!(reasons.contains("0644"), "{reasons}");
    let d = login_at(&stack, &u, "123456", None, T0);
    assert_eq!(
        d.result, "PAM_AUTH_ERR",
        "the refusal is what logins get: {d:?}"
    );
}

/// A service with two `pam_totp` auth lines, as the sudo and su examples have them
/// (pam.d-examples/sudo): the store first (a right code jumps over the next line; no
/// store file under nullok goes on), then the home file. Every line is audited and the
/// verdict is the one of the line that decides, named, as real logins through the same
/// stack show: an account without a store file is judged by its home file (refused,
/// or asked for that code), one with a store file by the store alone.
#[test]
fn every_auth_line_of_a_service_is_audited_in_stack_order() {
    if !require_root("every_auth_line_of_a_service_is_audited_in_stack_order") {
        return;
    }
    let store = root_store();
    // In the store (its home file refused, but jumped over); only at home, refused
    // there (0644); only at home, usable; nowhere.
    let in_store = TestUser::create("m1");
    let home_refused = TestUser::create("m2");
    let (home_only, home_secret) = TestUser::enrolled("m3");
    let nowhere = TestUser::create("m4");
    let store_secret = random_secret_b32();
    write_owned(
        &store.path().join(&in_store.name),
        totp_file(&store_secret).as_bytes(),
        0,
        0,
        0o600,
    );
    in_store.write_secret(&totp_file(&random_secret_b32()), 0o644);
    let refused_secret = random_secret_b32();
    home_refused.write_secret(&totp_file(&refused_secret), 0o644);
    let stack = Stack::new();
    // pam_permit stands for the password lines before them (common-auth), which prime
    // the success a jump leaves in place.
    stack.service(
        "svc",
        &format!(
            "auth required pam_permit.so\n\
             auth [success=1 ignore=ignore default=die] @MODULE@ user=root \
             secret={}/${{USER}} nullok\n\
             auth [success=ok ignore=ignore default=die] @MODULE@ nullok\n",
            store.path().display()
        ),
    );
    let out = run_audit(&stack, &[]);
    let lines: BTreeMap<String, serde_json::Value> = findings(&out)
        .into_iter()
        .map(|v| (v["user"].as_str().expect("user").to_owned(), v))
        .collect();
    let svc = stack.path().join("svc");
    let second = format!("{}:3", svc.display());
    let verdict = |u: &TestUser| lines[&u.name]["verdict"].as_str().unwrap_or("").to_owned();
    let reasons = |u: &TestUser| lines[&u.name]["reasons"].to_string();
    assert_eq!(verdict(&in_store), "ok", "{:?}", lines[&in_store.name]);
    assert_eq!(
        verdict(&home_refused),
        "refused",
        "{:?}",
        lines[&home_refused.name]
    );
    assert!(
        reasons(&home_refused).contains(&format!("{second} refuses it")),
        "the line that decides is named: {}",
        reasons(&home_refused)
    );
    assert_eq!(verdict(&home_only), "ok", "{:?}", lines[&home_only.name]);
    assert!(
        reasons(&home_only).contains(&second),
        "{}",
        reasons(&home_only)
    );
    assert_eq!(
        verdict(&nowhere),
        "not-enrolled",
        "{:?}",
        lines[&nowhere.name]
    );
    // Each line's part: the store line ran for all; the home line is jumped over for
    // the account in the store.
    let ran = |u: &TestUser| -> Vec<String> {
        lines[&u.name]["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| format!("{}={}", l["verdict"], l["ran"]))
            .collect()
    };
    assert_eq!(
        ran(&in_store),
        ["\"ok\"=\"yes\"", "\"refused\"=\"no\""],
        "{:?}",
        lines[&in_store.name]
    );
    assert_eq!(
        ran(&home_refused),
        ["\"not-enrolled\"=\"yes\"", "\"refused\"=\"yes\""]
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused account fails it: {out:?}"
    );

    // What logins through the same stack do.
    let login = |u: &TestUser, answer: &str| login_at(&stack, u, answer, None, T0).result;
    assert_eq!(login(&in_store, &code_at(&store_secret, T0)), "PAM_SUCCESS");
    assert_eq!(login(&home_only, &code_at(&home_secret, T0)), "PAM_SUCCESS");
    assert_eq!(
        login(&home_only, &wrong_totp(&home_secret, T0 + 30)),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        login(&home_refused, &code_at(&refused_secret, T0)),
        "PAM_AUTH_ERR"
    );
    assert_eq!(login(&nowhere, "").as_str(), "PAM_SUCCESS");

    // The text form says which line decides.
    let text = text_audit_command(&stack).output().expect("audit");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "{}: refused: {second} refuses it",
            home_refused.name
        )),
        "{text}"
    );
    assert!(text.contains("2 pam_totp.so auth lines"), "{text}");
}

/// The audit assumes an unknown origin, which an address rule never skips. A line that
/// skips the code for some origins (`+ : ALL : 10.0.0.0/8` on the store line) sends
/// those logins on to the next line, the home file: a refused one there denies them.
/// The audit used to stop at the store line (a right code jumps over the home line) and
/// say "ok"; it now runs the stack for those origins too and reports the refusal,
/// naming the rule and the line. Control: a usable home file, audited ok, and the
/// logins from both origins let in.
#[test]
fn a_line_that_skips_for_some_origins_hands_them_to_the_next_line() {
    if !require_root("a_line_that_skips_for_some_origins_hands_them_to_the_next_line") {
        return;
    }
    let store = root_store();
    let (u, home_secret) = TestUser::enrolled("bo");
    let store_secret = random_secret_b32();
    write_owned(
        &store.path().join(&u.name),
        totp_file(&store_secret).as_bytes(),
        0,
        0,
        0o600,
    );
    let dir = system_tests::fleet::trusted_dir("pam_totp-audit-origin");
    let rules = dir.path().join("access.conf");
    write_owned(&rules, b"+ : ALL : 10.0.0.0/8\n", 0, 0, 0o644);
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!(
            "auth required pam_permit.so\n\
             auth [success=1 ignore=ignore default=die] @MODULE@ user=root \
             secret={}/${{USER}} nullok accessfile={}\n\
             auth [success=ok ignore=ignore default=die] @MODULE@ nullok\n",
            store.path().display(),
            rules.display()
        ),
    );
    let audit = || {
        let out = run_audit(&stack, &["--user", &u.name]);
        let seen = audit_verdicts(&out.stdout);
        (out, seen.get(&u.name).cloned().unwrap_or_default())
    };
    let inside = Some("10.1.2.3");
    let outside = Some("192.0.2.7");

    // Control: the home file is usable; each origin is asked for its line's code.
    let (out, (verdict, reasons)) = audit();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(verdict, "ok", "{reasons}");
    let d = login_at(&stack, &u, &code_at(&store_secret, T0), outside, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let d = login_at(&stack, &u, &code_at(&home_secret, T0 + 30), inside, T0 + 30);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");

    // A refused home file: denied from 10.0.0.0/8, not from elsewhere.
    u.write_secret(&totp_file(&home_secret), 0o644);
    let d = login_at(&stack, &u, &code_at(&home_secret, T0 + 60), inside, T0 + 60);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    let d = login_at(
        &stack,
        &u,
        &code_at(&store_secret, T0 + 90),
        outside,
        T0 + 90,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let (out, (verdict, reasons)) = audit();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(verdict, "refused", "{reasons}");
    let svc = stack.path().join("svc");
    for needle in [
        format!(
            "{}:2 by access rule {}:line 1: + : ALL : 10.0.0.0/8",
            svc.display(),
            rules.display()
        ),
        format!("{}:3 refuses it", svc.display()),
        "0644".to_owned(),
        "from other origins: ok".to_owned(),
    ] {
        assert!(reasons.contains(&needle), "{needle}: {reasons}");
    }
}

/// A `-` rule that names an origin only maybe matches a login of unknown origin, and
/// the module decides on it then (the code is asked); a login from another origin goes
/// on past it to a `+` that skips the code, and so to the next pam_totp line. The audit
/// follows those logins too: `- : ALL : 10.0.0.0/8` then `+ : ALL : ALL` skips the
/// store line for every login from outside 10.0.0.0/8.
#[test]
fn a_deny_rule_for_some_origins_hands_the_others_to_the_next_line() {
    if !require_root("a_deny_rule_for_some_origins_hands_the_others_to_the_next_line") {
        return;
    }
    let store = root_store();
    let (u, home_secret) = TestUser::enrolled("bd");
    let store_secret = random_secret_b32();
    write_owned(
        &store.path().join(&u.name),
        totp_file(&store_secret).as_bytes(),
        0,
        0,
        0o600,
    );
    let dir = system_tests::fleet::trusted_dir("pam_totp-audit-deny-origin");
    let rules = dir.path().join("access.conf");
    write_owned(
        &rules,
        b"- : ALL : 10.0.0.0/8\n+ : ALL : ALL\n",
        0,
        0,
        0o644,
    );
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!(
            "auth required pam_permit.so\n\
             auth [success=1 ignore=ignore default=die] @MODULE@ user=root \
             secret={}/${{USER}} nullok accessfile={}\n\
             auth [success=ok ignore=ignore default=die] @MODULE@ nullok\n",
            store.path().display(),
            rules.display()
        ),
    );
    let audit = || {
        let out = run_audit(&stack, &["--user", &u.name]);
        let seen = audit_verdicts(&out.stdout);
        (out, seen.get(&u.name).cloned().unwrap_or_default())
    };
    let inside = Some("10.1.2.3");
    let outside = Some("192.0.2.7");

    // Control: the home file is usable. Inside 10.0.0.0/8 the store's code is asked,
    // elsewhere the home file's.
    let (out, (verdict, reasons)) = audit();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(verdict, "ok", "{reasons}");
    let d = login_at(&stack, &u, &code_at(&store_secret, T0), inside, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let d = login_at(
        &stack,
        &u,
        &code_at(&home_secret, T0 + 30),
        outside,
        T0 + 30,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let d = login_at(
        &stack,
        &u,
        &code_at(&store_secret, T0 + 60),
        outside,
        T0 + 60,
    );
    assert_eq!(
        d.result, "PAM_AUTH_ERR",
        "outside, the store's code is not asked: {d:?}"
    );

    // A refused home file: denied from outside 10.0.0.0/8, not from inside.
    u.write_secret(&totp_file(&home_secret), 0o644);
    let d = login_at(
        &stack,
        &u,
        &code_at(&home_secret, T0 + 90),
        outside,
        T0 + 90,
    );
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    let d = login_at(
        &stack,
        &u,
        &code_at(&store_secret, T0 + 120),
        inside,
        T0 + 120,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let (out, (verdict, reasons)) = audit();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(verdict, "refused", "{reasons}");
    let svc = stack.path().join("svc");
    let r = rules.display();
    for needle in [
        format!(
            "{}:2 by access rule {r}:line 2: + : ALL : ALL (for logins that access rule \
             {r}:line 1: - : ALL : 10.0.0.0/8 does not match)",
            svc.display(),
        ),
        format!("{}:3 refuses it", svc.display()),
        "0644".to_owned(),
        "from other origins: ok".to_owned(),
    ] {
        assert!(reasons.contains(&needle), "{needle}: {reasons}");
    }
}

/// A service whose only auth module is pam_totp: a login every code line skips
/// (`nullok` without a file) is not let through but denied by libpam, since no module
/// approved it (PAM_PERM_DENIED). The audit says so once, as a `stack` row and on
/// standard error, not in the exit status. Control: with `pam_permit` before the code
/// line, no warning and the same account logs in.
#[test]
fn a_stack_of_code_lines_only_is_named_as_denying_skipped_logins() {
    if !require_root("a_stack_of_code_lines_only_is_named_as_denying_skipped_logins") {
        return;
    }
    let none = TestUser::create("ac");
    let warning = "no auth module other than pam_totp.so";
    for (before, warned, result) in [
        ("", true, "PAM_PERM_DENIED"),
        ("auth required pam_permit.so\n", false, "PAM_SUCCESS"),
    ] {
        let stack = Stack::new();
        stack.service("svc", &format!("{before}auth required @MODULE@ nullok\n"));
        let out = run_audit(&stack, &["--user", &none.name]);
        assert_eq!(out.status.code(), Some(0), "{before:?}: {out:?}");
        let rows = findings(&out);
        let stack_rows: Vec<_> = rows.iter().filter(|v| v["user"] == "stack").collect();
        let err = String::from_utf8_lossy(&out.stderr);
        if warned {
            assert_eq!(stack_rows.len(), 1, "{rows:?}");
            assert!(
                stack_rows[0]["reasons"].to_string().contains(warning),
                "{rows:?}"
            );
            assert!(
                err.contains(warning) && err.contains("PAM_PERM_DENIED"),
                "{err}"
            );
        } else {
            assert!(stack_rows.is_empty(), "{rows:?}");
            assert!(!err.contains(warning), "{err}");
        }
        let seen = audit_verdicts(&out.stdout);
        assert_eq!(seen[&none.name].0, "not-enrolled", "{seen:?}");
        let d = login_at(&stack, &none, "", None, T0);
        assert_eq!(d.result, result, "{before:?}: {d:?}");
        assert_eq!(d.prompts, 0, "{d:?}");
    }
}

/// Another module's `success=N` past the end of the stack is libpam's "bad jump in
/// stack": the login it approves fails (PAM_PERM_DENIED), no code asked; the audit's
/// warning says that, not that the code is skipped. Control: a jump that lands inside
/// the stack (on pam_permit) skips the code line and lets the login in, as warned.
#[test]
fn a_success_jump_past_the_stacks_end_is_named_a_failed_login() {
    if !require_root("a_success_jump_past_the_stacks_end_is_named_a_failed_login") {
        return;
    }
    let (u, _secret) = TestUser::enrolled("aj");
    for (jump, after, result, said) in [
        (3, "", "PAM_PERM_DENIED", "bad jump in stack"),
        (
            1,
            "auth required pam_permit.so\n",
            "PAM_SUCCESS",
            "jumps over it",
        ),
    ] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!(
                "auth [success={jump} default=ignore] pam_permit.so\n\
                 auth required @MODULE@\n{after}"
            ),
        );
        let out = run_audit(&stack, &["--user", &u.name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "success={jump}: {err}");
        let other = if jump == 1 {
            "bad jump"
        } else {
            "jumps over it"
        };
        assert!(!err.contains(other), "success={jump}: {err}");
        let d = login_at(&stack, &u, "", None, T0);
        assert_eq!(d.result, result, "success={jump}: {d:?}");
        assert_eq!(d.prompts, 0, "success={jump}: no code asked: {d:?}");
    }
}

/// A host migrated one service at a time: `svc` on pam_totp, `sudo` still on
/// google-authenticator, one local home. With the default `shared_file=auto` the file's
/// `DISALLOW_REUSE` is obeyed, not updated, so GA through `sudo` takes the code pam_totp
/// just accepted: the audit of `svc` names `sudo`'s line (a `stack` row and standard
/// error, not in the exit status). Control: with `shared_file=yes` GA refuses the code
/// and the audit says nothing of it.
#[test]
fn a_ga_line_left_on_the_same_files_is_named_and_takes_a_used_code() {
    let t = "a_ga_line_left_on_the_same_files_is_named_and_takes_a_used_code";
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
    let u = TestUser::create("gl");
    let warning = "loads pam_google_authenticator.so on the secret files";
    for (args, warned, ga_verdict) in [
        ("", true, "PAM_SUCCESS"),
        ("shared_file=yes", false, "PAM_AUTH_ERR"),
    ] {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!("auth required pam_permit.so\nauth required @MODULE@ {args}\n"),
        );
        stack.service("sudo", &format!("auth required {}\n", ga.display()));
        u.write_secret(
            &format!("{GA_SECRET}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
            0o600,
        );
        let code = oathtool_totp(GA_SECRET, T0, 30, 6, "sha1");
        let d = login_at(&stack, &u, &code, None, T0);
        assert_eq!(d.result, "PAM_SUCCESS", "{args:?}: {d:?}");
        let d = Driver::new(&stack, "sudo", &u.name)
            .answer(&code)
            .at(T0 + 5)
            .run();
        assert_eq!(d.result, ga_verdict, "{args:?}: GA through sudo: {d:?}");

        let out = run_audit(&stack, &["--user", &u.name]);
        let rows = findings(&out);
        let stack_rows: Vec<_> = rows.iter().filter(|v| v["user"] == "stack").collect();
        let err = String::from_utf8_lossy(&out.stderr);
        let sudo_line = format!("{}:1 ", stack.path().join("sudo").display());
        if warned {
            assert_eq!(stack_rows.len(), 1, "{rows:?}");
            assert!(
                stack_rows[0]["reasons"].to_string().contains(warning),
                "{rows:?}"
            );
            assert!(
                err.contains(&format!("{sudo_line}{warning}")) && err.contains("shared_file=yes"),
                "{err}"
            );
        } else {
            assert!(stack_rows.is_empty(), "{rows:?}");
            assert!(!err.contains(warning), "{err}");
        }
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    }
}

/// A `--users-from` list is written by whoever keeps the accounts (an export of a
/// directory), and the module accepts spaces and colons in a name: no name may forge
/// a `name: verdict: reasons` line of the text audit or reach the terminal as a
/// control sequence. The JSON form carries every name exactly.
#[test]
fn hostile_names_neither_forge_a_line_nor_reach_the_terminal() {
    if !require_root("hostile_names_neither_forge_a_line_nor_reach_the_terminal") {
        return;
    }
    let (ok, _secret) = TestUser::enrolled("hn");
    let stack = permit_then_module("");
    let hostile = [
        "mallory: ok: fine",
        "eve\u{1b}[2J\u{1b}[Hroot: ok: fine",
        "bob\rroot: ok: fine",
        "\u{202e}nimda",
        "a \"quoted\" name",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("names");
    let mut body = format!("{}\n", ok.name);
    for h in hostile {
        body.push_str(h);
        body.push('\n');
    }
    std::fs::write(&list, body).expect("write list");

    let out = text_audit_command(&stack)
        .arg("--users-from")
        .arg(&list)
        .output()
        .expect("totp-state audit");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the unknown names are refused: {out:?}"
    );
    let text = String::from_utf8(out.stdout.clone()).expect("UTF-8");
    // Control: the real account's line is there, its name as it is.
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{}: ok: ", ok.name))),
        "{text}"
    );
    // One line per name, none of them beginning as a forged account's would, and no
    // control or reordering character anywhere.
    assert_eq!(text.lines().count(), 1 + hostile.len(), "{text}");
    for line in text.lines().filter(|l| !l.starts_with(&ok.name)) {
        assert!(line.starts_with('"'), "an unusual name is quoted: {line:?}");
        assert!(line.contains("\": refused: "), "{line:?}");
    }
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("\"eve\\u{1b}[2J"), "{text}");
    assert!(text.contains("\"bob\\rroot: ok: fine\""), "{text}");

    // The JSON form names each account exactly, escaped by JSON itself.
    let out = run_audit(&stack, &["--users-from", list.to_str().expect("path")]);
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(
        seen.get(&ok.name).map(|v| v.0.as_str()),
        Some("ok"),
        "{out:?}"
    );
    for h in hostile {
        assert_eq!(
            seen.get(h).map(|v| v.0.as_str()),
            Some("refused"),
            "{h:?}: {out:?}"
        );
    }
}

/// For a cron job or a monitoring check, the audit's status tells three outcomes apart:
/// 0 nothing wrong, 1 a problem found (a refused account; a line with an option the
/// module refuses, which fails every login), 2 the audit could not be made (a service
/// without the module, not root). Before, the last two were both 1.
#[test]
fn audit_exit_statuses_tell_a_problem_from_an_audit_not_made() {
    if !require_root("audit_exit_statuses_tell_a_problem_from_an_audit_not_made") {
        return;
    }
    let (ok, _secret) = TestUser::enrolled("xs");
    let stack = permit_then_module("");
    stack.service(
        "bogus",
        "auth required pam_permit.so\nauth required @MODULE@ no_such_option\n",
    );
    stack.service("plain", "auth required pam_permit.so\n");
    let status = |service: &str, user: &str| {
        Command::new(&built().state_tool)
            .args(["audit", "--service", service, "--user", user, "--pam-dir"])
            .arg(stack.path())
            .output()
            .expect("totp-state audit")
    };
    // Control: nothing wrong.
    let out = status("svc", &ok.name);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Problems found.
    let out = status("svc", "no-such-account-xs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = status("bogus", &ok.name);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("option the module refuses"),
        "{out:?}"
    );
    // Audits not made.
    let out = status("plain", &ok.name);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no auth line"),
        "{out:?}"
    );
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", ok.uid))
        .arg(format!("--regid={}", ok.gid))
        .arg("--clear-groups")
        .arg(&built().state_tool)
        .args(["audit", "--service", "svc", "--user", &ok.name, "--pam-dir"])
        .arg(stack.path())
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be run as root"),
        "{out:?}"
    );
}

/// The module refuses a name with a control character or one that is not UTF-8 (R8),
/// whatever the name service says. The audit of every listed account checked only the
/// names given with `--user`: a listed name with ESC in it was reported as the module
/// would treat its plain twin (here `not-enrolled`, passing the audit), and a name that
/// is not UTF-8 was left out, as if deleted since the listing. Both are now refused.
/// Control: the same account under its plain name passes.
#[test]
fn listed_names_the_module_refuses_are_refused_by_the_audit() {
    if !require_root("listed_names_the_module_refuses_are_refused_by_the_audit") {
        return;
    }
    let u = TestUser::create("bn");
    let stack = permit_then_module("nullok");
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = dir.path().join("passwd");
    let entry = |name: &[u8]| {
        let mut line = name.to_vec();
        line.extend_from_slice(
            format!(":x:{}:{}::{}:/bin/sh\n", u.uid, u.gid, u.home.display()).as_bytes(),
        );
        line
    };
    let audit = |names: &[&[u8]]| {
        let _g = user_database_frozen();
        let mut body = b"root:x:0:0:root:/root:/usr/sbin/nologin\n".to_vec();
        for n in names {
            body.extend(entry(n));
        }
        std::fs::write(&passwd, body).expect("write passwd");
        let run = |cmd: &Command| {
            in_private_mounts(r#"mount --bind "$1" /etc/passwd"#, &passwd, cmd)
                .output()
                .expect("totp-state audit")
        };
        (
            run(&audit_command(stack.path())),
            run(&text_audit_command(&stack)),
        )
    };

    // Control: the account under its own name is not enrolled, which nullok passes.
    let (out, text) = audit(&[u.name.as_bytes()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        audit_verdicts(&out.stdout)[&u.name].0,
        "not-enrolled",
        "{out:?}"
    );
    assert_eq!(text.status.code(), Some(0), "{text:?}");

    let escaped = format!("{}\u{1b}[2J", u.name);
    let mut not_utf8 = u.name.as_bytes().to_vec();
    not_utf8.push(0xff);
    let (out, text) = audit(&[escaped.as_bytes(), &not_utf8]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let seen = audit_verdicts(&out.stdout);
    let control = &seen[&escaped];
    assert_eq!(control.0, "refused", "{seen:?}");
    assert!(control.1.contains("control byte"), "{seen:?}");
    let shown = format!("{}\\xff", u.name);
    assert_eq!(
        seen.get(&shown).map(|v| v.0.as_str()),
        Some("refused"),
        "{seen:?}"
    );
    assert!(seen[&shown].1.contains("not UTF-8"), "{seen:?}");
    // The text form names both, escaped, on lines of their own.
    let text = String::from_utf8(text.stdout).expect("UTF-8");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.contains(&format!("\"{}\\u{{1b}}[2J\": refused: ", u.name)),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"{}\\\\xff\": refused: ", u.name)),
        "{text}"
    );
}

/// A `state_dir=` on tmpfs or ramfs loses its records at a reboot, and with them the
/// used scratch codes and HOTP counters recorded only there: `totp-state audit` and
/// `totp-state ping` said nothing of it. Now both warn on standard error, and neither
/// fails for it (an admin may have chosen it). Each file system is mounted over the
/// stack's state directory in a private mount namespace; control: a directory on the
/// file system of /var/lib bound there instead (skipped where that is memory too).
#[test]
fn a_state_dir_on_tmpfs_or_ramfs_is_warned_by_audit_and_ping() {
    let t = "a_state_dir_on_tmpfs_or_ramfs_is_warned_by_audit_and_ping";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("vf");
    let stack = permit_then_module("");
    // A store in use (its key, the user's record), copied onto each file system.
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    let disk = tempfile::Builder::new()
        .prefix("pam_totp-test-vf")
        .tempdir_in("/var/lib")
        .expect("tempdir in /var/lib");

    let copy = |fs: &str| {
        format!(
            "d=$(mktemp -d)\ncp -a \"$1\"/. \"$d\"\n\
             mount -t {fs} -o mode=0700 {fs} \"$1\"\ncp -a \"$d\"/. \"$1\"\nrm -rf \"$d\""
        )
    };
    let bind = format!(
        "cp -a \"$1\"/. {0}\nmount --bind {0} \"$1\"",
        disk.path().display()
    );
    let tool = |args: &[&str]| {
        let mut c = Command::new(&built().state_tool);
        c.args(args)
            .args(["--service", "svc", "--pam-dir"])
            .arg(stack.path());
        c
    };
    let (tmpfs, ramfs) = (copy("tmpfs"), copy("ramfs"));
    let mut cases = vec![
        (tmpfs.as_str(), Some("tmpfs")),
        (ramfs.as_str(), Some("ramfs")),
    ];
    if memory_fs(disk.path()).is_some() {
        skip(t, "a disk-backed /var/lib for the control");
    } else {
        cases.push((bind.as_str(), None));
    }
    for (mount, kind) in cases {
        let run = |inner: &Command| {
            in_private_mounts(mount, &stack.state_dir(), inner)
                .output()
                .expect("totp-state")
        };
        let audit = run(&tool(&["audit", "--json", "--user", &u.name]));
        let ping = run(&tool(&["ping"]));
        for (what, out) in [("audit", &audit), ("ping", &ping)] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{what} {kind:?}: {out:?}");
            match kind {
                Some(kind) => assert!(
                    err.contains(&format!(
                        "totp-state: warning: the state directory {} is on {kind}: its \
                         records are lost at every reboot",
                        stack.state_dir().display()
                    )),
                    "{what}: {err}"
                ),
                None => assert!(!err.contains("lost at every reboot"), "{what}: {err}"),
            }
        }
        assert!(
            String::from_utf8_lossy(&ping.stdout).starts_with("ok: "),
            "{ping:?}"
        );
        assert_eq!(
            audit_verdicts(&audit.stdout)[&u.name].0,
            "ok",
            "a warning, not a finding: {audit:?}"
        );
    }
}

/// A check run by a configuration tool (Ansible's `failed_when`) or a monitor learns of
/// the warnings with `--strict`: a line whose success ends the stack before the code,
/// a stack of code lines only, an account a rule never asks for a code. Without it the
/// status is still 0 (as `nginx -t` or `sshd -t` pass with warnings); with it each
/// stack exits 1. Controls: a clean stack passes with `--strict`; an account refused
/// stays 1 and an audit not made stays 2 under `--strict`.
#[test]
fn strict_audit_fails_on_each_warning_and_only_then() {
    if !require_root("strict_audit_fails_on_each_warning_and_only_then") {
        return;
    }
    let (u, _secret) = TestUser::enrolled("st");
    let dir = system_tests::fleet::trusted_dir("pam_totp-audit-strict");
    let rules = dir.path().join("access.conf");
    write_owned(&rules, b"+ : ALL : ALL\n", 0, 0, 0o644);
    let status = |stack: &Stack, service: &str, user: &str, strict: bool| {
        let mut c = Command::new(&built().state_tool);
        c.args(["audit", "--service", service, "--user", user, "--pam-dir"])
            .arg(stack.path());
        if strict {
            c.arg("--strict");
        }
        c.output().expect("totp-state audit")
    };
    // Control: no warning, both forms pass.
    let clean = permit_then_module("");
    for strict in [false, true] {
        let out = status(&clean, "svc", &u.name, strict);
        assert_eq!(out.status.code(), Some(0), "strict={strict}: {out:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("warning"),
            "{out:?}"
        );
    }
    for (stack_text, said) in [
        (
            "auth sufficient pam_permit.so\nauth required @MODULE@\n".to_owned(),
            "pam_permit.so",
        ),
        (
            "auth required @MODULE@\n".to_owned(),
            "no auth module other",
        ),
        (
            format!(
                "auth required pam_permit.so\nauth required @MODULE@ accessfile={}\n",
                rules.display()
            ),
            "never asked",
        ),
    ] {
        let stack = Stack::new();
        stack.service("svc", &stack_text);
        let out = status(&stack, "svc", &u.name, false);
        assert_eq!(out.status.code(), Some(0), "{stack_text}: {out:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("warning") && text.contains(said), "{text}");
        let out = status(&stack, "svc", &u.name, true);
        assert_eq!(out.status.code(), Some(1), "{stack_text}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("(--strict)"),
            "{out:?}"
        );
    }
    // A problem and an audit not made keep their statuses.
    let out = status(&clean, "svc", "no-such-account-st", true);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    clean.service("plain", "auth required pam_permit.so\n");
    let out = status(&clean, "plain", &u.name, true);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A line that fails a wrong code but lets the module's own failures through
/// (`[success=ok auth_err=die default=ignore]`): through libpam a client that ends the
/// conversation at the prompt passes it, and the stack's other lines log the user in
/// without a code. `totp-enroll check` warned of it; the audit said `ok`. It now says
/// `warning` and names the failures. Control: the same stack with `required` fails the
/// aborted login, and its audit says `ok`.
#[test]
fn audit_warns_of_a_line_that_lets_the_modules_own_failures_through() {
    use system_tests::pamapp::{Reply, Scripted, Transaction, codes};
    if !require_root("audit_warns_of_a_line_that_lets_the_modules_own_failures_through") {
        return;
    }
    let (u, _secret) = TestUser::enrolled("fo");
    let stack_with = |control: &str| {
        let stack = Stack::new();
        stack.service(
            "svc",
            &format!("auth {control} @MODULE@\nauth required pam_permit.so\n"),
        );
        stack
    };
    let aborted = |stack: &Stack| {
        let conv = Box::new(Scripted::new([Reply::Fail(codes::ABORT)]));
        let mut tx =
            Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
        tx.authenticate(0)
    };
    let open = stack_with("[success=ok auth_err=die default=ignore]");
    assert_eq!(aborted(&open), codes::SUCCESS, "the bypass");
    let out = run_audit(&open, &["--user", &u.name]);
    let seen = audit_verdicts(&out.stdout);
    let (verdict, reasons) = seen.get(&u.name).cloned().unwrap_or_default();
    assert_eq!(verdict, "warning", "{out:?}");
    assert!(
        reasons.contains("own failures") && reasons.contains("PAM_CONV_ERR"),
        "{reasons}"
    );
    let closed = stack_with("required");
    assert_eq!(aborted(&closed), codes::ABORT, "control");
    let out = run_audit(&closed, &["--user", &u.name]);
    let seen = audit_verdicts(&out.stdout);
    assert_eq!(
        seen.get(&u.name).map(|v| v.0.as_str()),
        Some("ok"),
        "control: {out:?}"
    );
}

/// A GA file whose mode line is spelled in a way neither GA nor the module recognises
/// (`"` and two spaces, a tab, lower case): no `TOTP_AUTH` line, so the file reads as
/// scratch codes only, and the app's codes are refused by both modules. The audit said
/// "ok: usable" for such a file, before a migration locked the user out (at once when it
/// has no scratch code left). Now the audit refuses it (exit 1) without a scratch code
/// and warns with some (a secret too short is still named as the refusal). Controls:
/// the same file with the line spelled right is usable and its code logs in, through
/// GA and through the module.
#[test]
fn a_mode_line_neither_module_recognises_is_no_usable_file() {
    let t = "a_mode_line_neither_module_recognises_is_no_usable_file";
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
    let u = TestUser::create("gm");
    let stack = permit_then_module("");
    stack.service("ga", &format!("auth required {}\n", ga.display()));
    let code = oathtool_totp(SECRET_160, T0, 30, 6, "sha1");
    for (what, rest, verdict, status, logs_in) in [
        ("control", "\" TOTP_AUTH\n", "ok", 0, true),
        ("two spaces", "\"  TOTP_AUTH\n", "refused", 1, false),
        ("a tab", "\"\tTOTP_AUTH\n", "refused", 1, false),
        ("lower case", "\" totp_auth\n", "refused", 1, false),
        (
            "lower case, scratch codes",
            "\" totp_auth\n73951846\n",
            "warning",
            0,
            false,
        ),
    ] {
        u.write_secret(&format!("{SECRET_160}\n{rest}"), 0o400);
        let out = run_audit(&stack, &["--user", &u.name]);
        let rows = audit_verdicts(&out.stdout);
        let (said, reasons) = rows.get(&u.name).cloned().unwrap_or_default();
        assert_eq!(said, verdict, "{what}: {out:?}");
        assert_eq!(out.status.code(), Some(status), "{what}: {out:?}");
        assert_eq!(
            reasons.contains("no TOTP_AUTH or HOTP_COUNTER line"),
            verdict != "ok",
            "{what}: {reasons}"
        );
        let want = if logs_in {
            "PAM_SUCCESS"
        } else {
            "PAM_AUTH_ERR"
        };
        let ours = login_at(&stack, &u, &code, None, T0);
        assert_eq!(ours.result, want, "{what}: pam_totp: {ours:?}");
        // GA reads the file as it was (ours rewrites nothing here).
        u.write_secret(&format!("{SECRET_160}\n{rest}"), 0o400);
        let theirs = Driver::new(&stack, "ga", &u.name)
            .answer(&code)
            .at(T0)
            .run();
        assert_eq!(theirs.result, want, "{what}: GA: {theirs:?}");
        reset_state(&stack, u.uid);
    }
    // What refuses the file outright is said first: a secret below 80 bits denies the
    // scratch codes too.
    u.write_secret("GEZDGNBVGY\n\" totp_auth\n73951846\n", 0o400);
    let out = run_audit(&stack, &["--user", &u.name]);
    let rows = audit_verdicts(&out.stdout);
    let (said, reasons) = rows.get(&u.name).cloned().unwrap_or_default();
    assert_eq!(said, "refused", "{out:?}");
    assert!(reasons.contains("at least 80 required"), "{reasons}");
    let d = login_at(&stack, &u, "73951846", None, T0);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
}
