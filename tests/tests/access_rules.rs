//! Access rules and group skipping through the real libpam, with PAM_RHOST, PAM_TTY and
//! the service name set as sshd, sudo and login would set them.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::PathBuf;
use std::process::Command;

use system_tests::fleet::trusted_dir;
use system_tests::{
    Driver, PEER, Returned, SECRET_160, Stack, T0, TestUser, built, code_at, login_at, now,
    oathtool_totp, require_root, require_tool, shadow_tool, user_database_lock, write_owned,
    wrong_totp,
};

const FIELD_EXAMPLE: &str = "+ : ALL : 10.0.0.0/24\n+ : ALL : LOCAL\n- : ALL : ALL\n";

/// A root-controlled directory (every directory from `/` root-owned, closed to group and
/// other writes, as the module requires of the rule file's) with a root secret file and
/// an access file.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(rules: &str) -> Setup {
        let dir = trusted_dir("pam_totp-access");
        let s = Setup { dir };
        write_owned(
            &s.secret(),
            format!("{SECRET_160}\n\" TOTP_AUTH\n").as_bytes(),
            0,
            0,
            0o600,
        );
        write_owned(&s.rules(), rules.as_bytes(), 0, 0, 0o644);
        s
    }
    fn secret(&self) -> PathBuf {
        self.dir.path().join("secret")
    }
    fn rules(&self) -> PathBuf {
        self.dir.path().join("access.conf")
    }
    fn args(&self, extra: &str) -> String {
        format!(
            "secret={} accessfile={} {extra}",
            self.secret().display(),
            self.rules().display()
        )
    }
}

struct Case {
    what: &'static str,
    service: &'static str,
    rhost: Option<&'static str>,
    tty: Option<&'static str>,
    skip: bool,
}

fn run_case(setup: &Setup, extra: &str, case: &Case) -> (Returned, usize) {
    let stack = Stack::probe(case.service, &setup.args(extra));
    let mut d = Driver::new(&stack, case.service, "root").answer("000000");
    if let Some(h) = case.rhost {
        d = d.rhost(h);
    }
    if let Some(t) = case.tty {
        d = d.tty(t);
    }
    let r = d.run();
    (r.returned(), r.prompts)
}

fn check_cases(setup: &Setup, extra: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let (ret, prompts) = run_case(setup, extra, c);
        let ok = if c.skip {
            ret == Returned::Ignore && prompts == 0
        } else {
            // Required: the user is prompted, and the wrong answer fails.
            ret == Returned::Failed("PAM_AUTH_ERR".into()) && prompts == 1
        };
        if !ok {
            failures.push(format!(
                "{}: expected {}, got {ret:?} with {prompts} prompts",
                c.what,
                if c.skip { "skip" } else { "code required" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn case(
    what: &'static str,
    service: &'static str,
    rhost: Option<&'static str>,
    tty: Option<&'static str>,
    skip: bool,
) -> Case {
    Case {
        what,
        service,
        rhost,
        tty,
        skip,
    }
}

#[test]
fn field_example_through_libpam() {
    if !require_root("field_example_through_libpam") {
        return;
    }
    let setup = Setup::new(FIELD_EXAMPLE);
    let cases = [
        case("LAN address", "sshd", Some("10.0.0.5"), None, true),
        case(
            "mapped LAN address",
            "sshd",
            Some("::ffff:10.0.0.7"),
            None,
            true,
        ),
        case("other network", "sshd", Some("10.0.1.5"), None, false),
        case("internet", "sshd", Some("203.0.113.9"), None, false),
        case("IPv6 peer", "sshd", Some("2001:db8::1"), None, false),
        case(
            "host name never matches",
            "sshd",
            Some("lan-host.example"),
            None,
            false,
        ),
        case(
            "leading zero is not an address",
            "sshd",
            Some("010.0.0.5"),
            None,
            false,
        ),
        case("trailing junk", "sshd", Some("10.0.0.5 "), None, false),
        case("short form", "sshd", Some("10.0.0"), None, false),
        case("hex form", "sshd", Some("0x0a.0.0.5"), None, false),
        case("brackets", "sshd", Some("[10.0.0.5]"), None, false),
        case("local console", "login", None, Some("tty1"), true),
        case("local display manager", "lightdm", None, Some(":0"), true),
        case("VNC display manager", "lightdm", None, Some(":1"), false),
        case("sudo inside SSH", "sudo", None, Some("/dev/pts/3"), false),
        case("su inside SSH", "su", None, Some("pts/0"), false),
        case(
            "sudo on a console tty is not LOCAL",
            "sudo",
            None,
            Some("tty1"),
            false,
        ),
        case("no RHOST and no TTY", "sshd", None, None, false),
        case("empty RHOST", "sshd", Some(""), Some("ssh"), false),
    ];
    check_cases(&setup, "", &cases);
}

/// VNC servers number their displays from :1, so only display 0 is LOCAL: a remote VNC
/// user's display manager or screen locker is asked for the code. :0 is the control.
#[test]
fn only_display_zero_is_local() {
    if !require_root("only_display_zero_is_local") {
        return;
    }
    let setup = Setup::new("+ : ALL : LOCAL\n");
    let cases = [
        case("display 0", "lightdm", None, Some(":0"), true),
        case(
            "display 0, screen 1",
            "xscreensaver",
            None,
            Some(":0.1"),
            true,
        ),
        case("VNC display 1", "lightdm", None, Some(":1"), false),
        case(
            "VNC display 1 locker",
            "xscreensaver",
            None,
            Some(":1.0"),
            false,
        ),
        case("VNC display 5", "gdm-password", None, Some(":5"), false),
    ];
    check_cases(&setup, "", &cases);
}

#[test]
fn ipv6_rules_and_zone_ids() {
    if !require_root("ipv6_rules_and_zone_ids") {
        return;
    }
    let setup = Setup::new("+ : ALL : fd00::/8 fe80::/10\n");
    let cases = [
        case("ULA inside fd00::/8", "sshd", Some("fd12::1"), None, true),
        case(
            "link-local with zone id",
            "sshd",
            Some("fe80::1%eth0"),
            None,
            true,
        ),
        case("global address", "sshd", Some("2001:db8::5"), None, false),
        case("IPv4 peer", "sshd", Some("10.0.0.5"), None, false),
        case(
            "zone id on a global address",
            "sshd",
            Some("fd12::1%eth0"),
            None,
            false,
        ),
    ];
    check_cases(&setup, "", &cases);
}

#[test]
fn a_broken_rule_file_requires_the_code_for_everybody() {
    if !require_root("a_broken_rule_file_requires_the_code_for_everybody") {
        return;
    }
    let lan = [case("LAN address", "sshd", Some("10.0.0.5"), None, false)];
    // Malformed: an error on line 2 invalidates the good rule on line 1.
    for bad in [
        "+ : ALL : 10.0.0.0/24\n+ : ALL : 10.0.0.1/8\n",
        "+ : ALL : 10.0.0.0/24\n+ : ALL : lan.example.com\n",
        "+ : ALL : 10.0.0.0/24\n+ : ALL : 10.0.0.0/33\n",
        "+ : ALL : 10.0.0.0/24\n+ : ALL : 010.0.0.0/8\n",
        "+ : ALL : 10.0.0.0/24\nallow everything\n",
        "+ : ALL : 10.0.0.0/24\n+ : @netgroup : ALL\n",
    ] {
        let setup = Setup::new(bad);
        check_cases(&setup, "", &lan);
    }
    // Writable by others, or not owned by root.
    let setup = Setup::new(FIELD_EXAMPLE);
    fs::set_permissions(setup.rules(), fs::Permissions::from_mode(0o666)).expect("chmod");
    check_cases(&setup, "", &lan);
    let setup = Setup::new(FIELD_EXAMPLE);
    chown(setup.rules(), Some(65534), None).expect("chown");
    check_cases(&setup, "", &lan);
    // A symlink to a good file.
    let setup = Setup::new(FIELD_EXAMPLE);
    let link = setup.dir.path().join("link.conf");
    std::os::unix::fs::symlink(setup.rules(), &link).expect("symlink");
    let stack = Stack::probe(
        "sshd",
        &format!(
            "secret={} accessfile={}",
            setup.secret().display(),
            link.display()
        ),
    );
    let r = Driver::new(&stack, "sshd", "root")
        .answer("000000")
        .rhost("10.0.0.5")
        .run();
    assert_eq!(r.returned(), Returned::Failed("PAM_AUTH_ERR".into()));
    // Missing.
    let setup = Setup::new(FIELD_EXAMPLE);
    fs::remove_file(setup.rules()).expect("rm");
    check_cases(&setup, "", &lan);
}

/// A broken rule file bars the group skips too: `skip_group=` (root is in root) and
/// `require_group=` (root is not in nogroup) each skip root with a usable file, and
/// neither does with a malformed or an unusable one (R21).
#[test]
fn a_broken_rule_file_bars_group_skips() {
    if !require_root("a_broken_rule_file_bars_group_skips") {
        return;
    }
    let lan = |skip| [case("LAN address", "sshd", Some("10.0.0.5"), None, skip)];
    let groups = ["skip_group=root", "require_group=nogroup"];
    // Control: a usable file that skips nobody from this peer; the group rules skip.
    let good = Setup::new("- : ALL : ALL\n");
    for g in groups {
        check_cases(&good, g, &lan(true));
    }
    let malformed = Setup::new("+ : ALL : 10.0.0.0/24\n+ : ALL : 10.0.0.0/33\n");
    for g in groups {
        check_cases(&malformed, g, &lan(false));
    }
    let writable = Setup::new("- : ALL : ALL\n");
    fs::set_permissions(writable.rules(), fs::Permissions::from_mode(0o666)).expect("chmod");
    for g in groups {
        check_cases(&writable, g, &lan(false));
    }
    let missing = Setup::new("- : ALL : ALL\n");
    fs::remove_file(missing.rules()).expect("rm");
    for g in groups {
        check_cases(&missing, g, &lan(false));
    }
}

/// A broken rule file bars the grace period too: a code accepted from an address earns
/// no skip there while the file is broken. Control: with the usable file, the same entry
/// lets a wrong code in.
#[test]
fn a_broken_rule_file_bars_the_grace_period() {
    if !require_root("a_broken_rule_file_bars_the_grace_period") {
        return;
    }
    let dir = trusted_dir("pam_totp-access");
    let rules = dir.path().join("access.conf");
    write_owned(&rules, b"- : ALL : ALL\n", 0, 0, 0o644);
    let (u, secret) = TestUser::enrolled("agb");
    let stack = Stack::probe(
        "svc",
        &format!("grace_period=3600 accessfile={}", rules.display()),
    );
    let d = login_at(&stack, &u, &code_at(&secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "{d:?}");
    // Control: within the grace period, that address needs no code.
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 + 60), PEER, T0 + 60);
    assert_eq!(d.returned(), Returned::Success, "grace applies: {d:?}");
    write_owned(
        &rules,
        b"+ : ALL : 10.0.0.0/24\n+ : ALL : 10.0.0.0/33\n",
        0,
        0,
        0o644,
    );
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 + 120), PEER, T0 + 120);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "a broken rule file let the grace period skip the code: {d:?}"
    );
    assert_eq!(d.prompts, 1, "{d:?}");
}

#[test]
fn a_required_code_still_works_when_the_rule_file_is_broken() {
    if !require_root("a_required_code_still_works_when_the_rule_file_is_broken")
        || !require_tool("a_required_code_still_works", "oathtool")
    {
        return;
    }
    let setup = Setup::new("+ : ALL : bogus\n");
    let stack = Stack::probe("sshd", &setup.args(""));
    let code = oathtool_totp(SECRET_160, now(), 30, 6, "sha1");
    let r = Driver::new(&stack, "sshd", "root")
        .answer(&code)
        .rhost("10.0.0.5")
        .run();
    assert_eq!(r.returned(), Returned::Success, "{r:?}");
}

#[test]
fn whole_internet_rules_need_the_opt_in() {
    if !require_root("whole_internet_rules_need_the_opt_in") {
        return;
    }
    let setup = Setup::new("+ : ALL : 0.0.0.0/0\n");
    let peer = [case(
        "any address",
        "sshd",
        Some("198.51.100.7"),
        None,
        false,
    )];
    check_cases(&setup, "", &peer);
    let peer = [case(
        "any address, opted in",
        "sshd",
        Some("198.51.100.7"),
        None,
        true,
    )];
    check_cases(&setup, "allow_any_network", &peer);
    // explain and check read the file as the module line says: rejected without the
    // option, deciding the skip with it.
    let explain = |flag: Option<&str>| {
        Command::new(&built().enroll)
            .args([
                "explain",
                "--json",
                "--user",
                "root",
                "--rhost",
                "198.51.100.7",
            ])
            .arg("--accessfile")
            .arg(setup.rules())
            .args(flag)
            .output()
            .expect("totp-enroll explain")
    };
    let out = explain(None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires the code for everybody"),
        "{out:?}"
    );
    let out = explain(Some("--allow-any-network"));
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (&v["verdict"], &v["module_refuses_file"]),
        (&"skip".into(), &serde_json::Value::Null),
        "{v}"
    );
    let warned = |extra: &str| {
        let stack = Stack::probe("sshd", &setup.args(extra));
        let out = Command::new(&built().enroll)
            .args(["check", "--user", "root", "--service", "sshd", "--pam-dir"])
            .arg(stack.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("totp-enroll check");
        String::from_utf8_lossy(&out.stderr).contains("would require the code for everybody")
    };
    assert!(warned(""), "check: the module line without the option");
    assert!(
        !warned("allow_any_network"),
        "check: the module line with it"
    );
}

#[test]
fn the_environment_is_never_consulted() {
    if !require_root("the_environment_is_never_consulted") {
        return;
    }
    let setup = Setup::new(FIELD_EXAMPLE);
    let stack = Stack::probe("sshd", &setup.args(""));
    let mut cmd = Driver::new(&stack, "sshd", "root")
        .answer("000000")
        .rhost("203.0.113.9")
        .command();
    cmd.env("SSH_CONNECTION", "10.0.0.5 50000 10.0.0.1 22")
        .env("SSH_CLIENT", "10.0.0.5 50000 22")
        .env("REMOTEHOST", "10.0.0.5");
    let out = cmd.output().expect("pam-drive");
    let r = system_tests::Drive::parse(&out);
    assert_eq!(r.returned(), Returned::Failed("PAM_AUTH_ERR".into()));
    assert_eq!(r.prompts, 1);
}

#[test]
fn user_and_group_items_in_rules() {
    if !require_root("user_and_group_items_in_rules") {
        return;
    }
    let member = TestUser::create("acm");
    let other = TestUser::create("aco");
    member.add_to_group("pttlan");
    for u in [&member, &other] {
        u.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    }
    let rules_dir = trusted_dir("pam_totp-rules");
    let rules = rules_dir.path().join("access.conf");
    write_owned(
        &rules,
        format!(
            "- : {} : ALL\n+ : (pttlan) : 192.0.2.0/24\n+ : ALL EXCEPT root : LOCAL\n",
            other.name
        )
        .as_bytes(),
        0,
        0,
        0o644,
    );
    let stack = Stack::probe("sshd", &format!("accessfile={}", rules.display()));
    let run = |user: &str, rhost: Option<&str>, tty: Option<&str>| {
        Driver::new(&stack, "sshd", user)
            .answer("000000")
            .rhost_opt(rhost)
            .tty_opt(tty)
            .run()
            .returned()
    };
    let required = Returned::Failed("PAM_AUTH_ERR".into());
    assert_eq!(
        run(&member.name, Some("192.0.2.10"), None),
        Returned::Ignore
    );
    assert_eq!(run(&other.name, Some("192.0.2.10"), None), required);
    assert_eq!(
        run(&other.name, None, Some("tty2")),
        required,
        "first match wins"
    );
    assert_eq!(run(&member.name, None, Some("tty2")), Returned::Ignore);
    assert_eq!(run(&member.name, Some("198.51.100.1"), None), required);
    drop((member, other));
    remove_group("pttlan");
}

#[test]
fn skip_group_and_require_group_use_supplementary_groups() {
    if !require_root("skip_group_and_require_group_use_supplementary_groups") {
        return;
    }
    let admin = TestUser::create("gad");
    let plain = TestUser::create("gpl");
    admin.add_to_group("pttadm");
    for u in [&admin, &plain] {
        u.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    }
    let required = Returned::Failed("PAM_AUTH_ERR".into());
    let run = |args: &str, user: &str| {
        let stack = Stack::probe("sshd", args);
        Driver::new(&stack, "sshd", user)
            .answer("000000")
            .rhost("203.0.113.9")
            .run()
            .returned()
    };
    // skip_group: members (supplementary) skip, others need the code.
    assert_eq!(run("skip_group=pttadm", &admin.name), Returned::Ignore);
    assert_eq!(run("skip_group=pttadm", &plain.name), required);
    // require_group: only members need the code (the "only sudo" case).
    assert_eq!(run("require_group=nogroup,pttadm", &admin.name), required);
    assert_eq!(run("require_group=pttadm", &plain.name), Returned::Ignore);
    // A group that does not exist skips nobody.
    assert_eq!(run("skip_group=ptt-no-such-group", &admin.name), required);
    // Unknown users get the normal unknown-user flow: prompted, denied, never skipped.
    assert_eq!(run("require_group=pttadm", "ptt-no-such-user"), required);
    drop((admin, plain));
    remove_group("pttadm");
}

#[test]
fn explain_mode_names_the_rule_and_the_verdict() {
    if !require_root("explain_mode_names_the_rule_and_the_verdict") {
        return;
    }
    let setup = Setup::new(FIELD_EXAMPLE);
    let explain = |rhost: &str, tty: Option<&str>| {
        let mut cmd = Command::new(&built().enroll);
        cmd.arg("explain")
            .arg("--accessfile")
            .arg(setup.rules())
            .args(["--user", "root", "--rhost", rhost]);
        if let Some(t) = tty {
            cmd.args(["--tty", t]);
        }
        let out = cmd.output().expect("totp-enroll explain");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lan = explain("10.0.0.5", None);
    assert!(lan.contains("line 1"), "{lan}");
    assert!(lan.to_lowercase().contains("skip"), "{lan}");
    let wan = explain("203.0.113.9", None);
    assert!(wan.contains("line 3"), "{wan}");
    assert!(wan.to_lowercase().contains("require"), "{wan}");
    let console = explain("", Some("tty1"));
    assert!(console.contains("line 2"), "{console}");
}

/// R21: `totp-enroll explain` and `check` judge the rule file as the module does,
/// along its whole path: with the directory above its (root-owned) directory owned by a
/// user, `explain` still
/// explains the draft but says the module would refuse it, naming that directory, and
/// gives the module's verdict, require (JSON and text), with the rule's skip as what the
/// rules would decide; `check` warns that the module would require the code for
/// everybody; and a login through libpam is indeed asked the code. Control: with the
/// directory root's again, neither says so, explain says skip and the login skips.
#[test]
fn explain_and_check_name_a_directory_the_module_refuses() {
    if !require_root("explain_and_check_name_a_directory_the_module_refuses") {
        return;
    }
    let setup = Setup::new(FIELD_EXAMPLE);
    let up = setup.dir.path().join("up");
    let rules_dir = up.join("rules");
    fs::create_dir_all(&rules_dir).expect("mkdir");
    for d in [&up, &rules_dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let rules = rules_dir.join("access.conf");
    write_owned(&rules, FIELD_EXAMPLE.as_bytes(), 0, 0, 0o644);
    let stack = Stack::probe(
        "sshd",
        &format!(
            "secret={} accessfile={}",
            setup.secret().display(),
            rules.display()
        ),
    );
    let explain = |json: bool| {
        let mut cmd = Command::new(&built().enroll);
        cmd.args(["explain", "--user", "root", "--rhost", "10.0.0.5"])
            .arg("--accessfile")
            .arg(&rules);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("totp-enroll explain");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // What the module would say of the file, after asserting that explain's verdict (JSON
    // and text) and a real login agree: skip when it accepts the file, require when not.
    let refusal = || {
        let v: serde_json::Value = serde_json::from_str(&explain(true)).expect("JSON");
        assert_eq!(v["rules_verdict"], "skip", "the draft is explained: {v}");
        assert_eq!(v["rule"]["line"], 1, "{v}");
        let refused = v["module_refuses_file"].as_str().map(str::to_owned);
        let text = explain(false);
        let login = Driver::new(&stack, "sshd", "root")
            .answer("000000")
            .rhost("10.0.0.5")
            .run();
        if refused.is_some() {
            assert_eq!(v["verdict"], "require", "{v}");
            assert!(
                text.contains(
                    "verdict: require: the code is asked for (the module refuses the file"
                ) && !text.contains("verdict: skip"),
                "{text}"
            );
            assert_eq!(
                (login.returned(), login.prompts),
                (Returned::Failed("PAM_AUTH_ERR".into()), 1),
                "the module asks the code, as explain says"
            );
        } else {
            assert_eq!(v["verdict"], "skip", "{v}");
            assert!(
                text.contains("verdict: skip") && !text.contains("verdict: require"),
                "{text}"
            );
            assert_eq!(
                (login.returned(), login.prompts),
                (Returned::Ignore, 0),
                "the module skips, as explain says"
            );
        }
        refused
    };
    let warned = || {
        let out = Command::new(&built().enroll)
            .args(["check", "--user", "root", "--service", "sshd", "--pam-dir"])
            .arg(stack.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("totp-enroll check");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("would require the code for everybody"))
            .map(str::to_owned)
    };
    assert_eq!(refusal(), None, "control: root-controlled chain");
    assert_eq!(warned(), None, "control: root-controlled chain");
    chown(&up, Some(65534), None).expect("chown");
    let named = format!("directory {} is owned by uid 65534", up.display());
    let why = refusal().expect("explain: the module would refuse the file");
    assert!(
        why.contains(&named) && why.contains("not owned by root"),
        "{why}"
    );
    let warning = warned().expect("check: a warning");
    assert!(
        warning.contains(&rules.display().to_string()) && warning.contains(&named),
        "{warning}"
    );
}

/// `- : pttbare : ALL` as copied from an access.conf: pam_access without `nodefgroup`
/// also matches a bare name as a group, pam_totp only as a user, so the rule covers
/// none of the group's members. `explain` (text and JSON) and `check` warn, naming the
/// line and the group, once; the module indeed lets the member skip. Control: a bare
/// name that is a user and a `(group)` item get no warning.
#[test]
fn a_bare_group_name_in_a_rule_is_warned_about_by_the_cli() {
    if !require_root("a_bare_group_name_in_a_rule_is_warned_about_by_the_cli") {
        return;
    }
    let member = TestUser::create("bgm");
    member.add_to_group("pttbare");
    member.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    let setup = Setup::new(&format!(
        "- : pttbare : ALL\n- : {} pttbare : 198.51.100.0/24\n+ : (pttbare) : LOCAL\n+ : ALL : ALL\n",
        member.name
    ));
    let warning = "line 1: pttbare is a group, not a user";
    let explain = |json: bool| {
        let mut cmd = Command::new(&built().enroll);
        cmd.args(["explain", "--user", &member.name, "--rhost", "10.0.0.5"])
            .arg("--accessfile")
            .arg(setup.rules());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("totp-enroll explain");
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (text, _) = explain(false);
    assert_eq!(text.matches(warning).count(), 1, "{text}");
    assert!(
        text.contains("line 4"),
        "the member skips by line 4: {text}"
    );
    assert_eq!(text.matches("is a group").count(), 1, "control: {text}");
    let (json, stderr) = explain(true);
    assert!(stderr.contains(warning), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["verdict"], "skip", "{v}");
    let stack = Stack::probe("sshd", &setup.args(""));
    let out = Command::new(&built().enroll)
        .args([
            "check",
            "--user",
            &member.name,
            "--service",
            "sshd",
            "--pam-dir",
        ])
        .arg(stack.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("totp-enroll check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "access file {} {warning}",
            setup.rules().display()
        )),
        "{stderr}"
    );
    let d = Driver::new(&stack, "sshd", &member.name)
        .answer("000000")
        .rhost("10.0.0.5")
        .run();
    assert_eq!(
        d.returned(),
        Returned::Ignore,
        "the module matches users only"
    );
    drop(member);
    remove_group("pttbare");
}

#[test]
fn ten_thousand_rules_are_decided_through_libpam() {
    if !require_root("ten_thousand_rules_are_decided_through_libpam") {
        return;
    }
    let mut text = String::new();
    for i in 0..10_000u32 {
        text.push_str(&format!(
            "- : ALL : 172.{}.{}.0/24\n",
            16 + (i >> 8) % 16,
            i & 255
        ));
    }
    text.push_str("+ : ALL : 10.0.0.0/8\n");
    let setup = Setup::new(&text);
    let cases = [
        case("last rule matches", "sshd", Some("10.9.8.7"), None, true),
        case(
            "an early deny rule matches",
            "sshd",
            Some("172.16.0.9"),
            None,
            false,
        ),
    ];
    check_cases(&setup, "", &cases);
}

#[test]
fn unknown_users_meet_the_same_rules_so_a_skip_reveals_no_user_names() {
    if !require_root("unknown_users_meet_the_same_rules") {
        return;
    }
    let setup = Setup::new(FIELD_EXAMPLE);
    let stack = Stack::probe("sshd", &setup.args(""));
    for (user, rhost, expected, prompts) in [
        ("root", "10.0.0.5", Returned::Ignore, 0),
        ("ptt-no-such-user", "10.0.0.5", Returned::Ignore, 0),
        (
            "root",
            "203.0.113.9",
            Returned::Failed("PAM_AUTH_ERR".into()),
            1,
        ),
        (
            "ptt-no-such-user",
            "203.0.113.9",
            Returned::Failed("PAM_AUTH_ERR".into()),
            1,
        ),
    ] {
        let r = Driver::new(&stack, "sshd", user)
            .answer("000000")
            .rhost(rhost)
            .run();
        assert_eq!(
            (r.returned(), r.prompts),
            (expected, prompts),
            "{user} from {rhost}"
        );
    }
}

/// What sshd and other applications put in PAM_RHOST besides plain addresses: the
/// upper-case forms `getnameinfo` never writes but a PAM application may, and the
/// loopback peer as a name (`UseDNS yes`), as an address, and sshd's `UNKNOWN` for a
/// connection that is not a socket. A loopback peer is a network peer, never LOCAL.
#[test]
fn rhost_forms_from_applications() {
    if !require_root("rhost_forms_from_applications") {
        return;
    }
    let setup = Setup::new(FIELD_EXAMPLE);
    let cases = [
        case(
            "upper-case mapped address",
            "sshd",
            Some("::FFFF:10.0.0.7"),
            None,
            true,
        ),
        case(
            "upper-case mapped hex",
            "sshd",
            Some("::FFFF:A00:7"),
            None,
            true,
        ),
        case("loopback by name", "sshd", Some("localhost"), None, false),
        case("loopback IPv4", "sshd", Some("127.0.0.2"), None, false),
        case("loopback IPv6", "sshd", Some("::1"), None, false),
        case(
            "sshd without a socket",
            "sshd",
            Some("UNKNOWN"),
            None,
            false,
        ),
        case(
            "address with a port",
            "sshd",
            Some("10.0.0.5:22"),
            None,
            false,
        ),
    ];
    check_cases(&setup, "", &cases);
}

/// Rules written for pam_access, whose LOCAL is every login without PAM_RHOST and whose
/// user names match without case: a `-` rule meant for those logins keeps the code for
/// them here too (sudo inside SSH is not LOCAL enough to skip, but not remote enough to
/// escape a `- : ALL : LOCAL`), and a name spelt in another case never skips. Controls:
/// the same files skip a network peer and another user.
#[test]
fn pam_access_local_and_name_case_never_skip_unproven() {
    if !require_root("pam_access_local_and_name_case_never_skip_unproven") {
        return;
    }
    let setup = Setup::new("- : ALL : LOCAL\n+ : ALL : ALL\n");
    let cases = [
        case("sudo inside SSH", "sudo", None, Some("/dev/pts/3"), false),
        case("su on a console", "su", None, Some("tty1"), false),
        case("console login", "login", None, Some("tty1"), false),
        case("no RHOST and no TTY", "cron", None, None, false),
        case(
            "network peer: control",
            "sshd",
            Some("203.0.113.9"),
            None,
            true,
        ),
    ];
    check_cases(&setup, "", &cases);
    let setup = Setup::new("+ : ALL : ALL EXCEPT LOCAL\n");
    let cases = [
        case("sudo inside SSH", "sudo", None, Some("pts/0"), false),
        case(
            "network peer: control",
            "sshd",
            Some("203.0.113.9"),
            None,
            true,
        ),
    ];
    check_cases(&setup, "", &cases);
    // Each file first lets root skip from 198.51.100.0/24 (the control: the file is
    // valid, so the code asked from the other peer is the miscased rule's doing, not a
    // refused file's); the peer 203.0.113.9 meets the miscased name.
    let peers = [
        case(
            "peer of the control rule",
            "sshd",
            Some("198.51.100.7"),
            None,
            true,
        ),
        case(
            "peer of the miscased rule",
            "sshd",
            Some("203.0.113.9"),
            None,
            false,
        ),
    ];
    for rules in [
        "- : ROOT : ALL\n+ : ALL : ALL\n",
        "+ : ALL EXCEPT Root : ALL\n",
        "+ : Root : ALL\n",
    ] {
        let file = format!("+ : root : 198.51.100.0/24\n{rules}");
        check_cases(&Setup::new(&file), "", &peers);
    }
    let control = [case(
        "network peer",
        "sshd",
        Some("203.0.113.9"),
        None,
        true,
    )];
    for rules in [
        "- : rooted : ALL\n+ : ALL : ALL\n",
        "+ : ALL EXCEPT rooted : ALL\n",
        "+ : root : ALL\n",
    ] {
        check_cases(&Setup::new(rules), "", &control);
    }
}

/// Membership through the primary group alone (the gid in passwd; useradd's own group
/// does not list its user): it counts for every group rule, so a "not in the group" skip
/// never reaches such a member. A bare name is a user name only, never a group (as
/// pam_access with `nodefgroup`): a supplementary member of the group named like a user
/// is not that user. Controls: the other user skips where the member does not.
#[test]
fn primary_group_membership_and_bare_names() {
    if !require_root("primary_group_membership_and_bare_names") {
        return;
    }
    let owner = TestUser::create("pgo");
    let other = TestUser::create("pgx");
    let listed = TestUser::create("pgl");
    listed.add_to_group(&owner.name);
    for u in [&owner, &other, &listed] {
        u.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    }
    let rules_dir = trusted_dir("pam_totp-rules");
    let rules = |name: &str, text: &str| {
        let p = rules_dir.path().join(name);
        write_owned(&p, text.as_bytes(), 0, 0, 0o644);
        format!("accessfile={}", p.display())
    };
    let g = &owner.name;
    let except = rules("except.conf", &format!("+ : ALL EXCEPT ({g}) : ALL\n"));
    let minus = rules("minus.conf", &format!("- : ({g}) : ALL\n+ : ALL : ALL\n"));
    let plus = rules("plus.conf", &format!("+ : ({g}) : ALL\n"));
    let bare = rules("bare.conf", &format!("- : {g} : ALL\n+ : ALL : ALL\n"));
    let required = Returned::Failed("PAM_AUTH_ERR".into());
    let run = |args: &str, user: &str| {
        let stack = Stack::probe("sshd", args);
        Driver::new(&stack, "sshd", user)
            .answer("000000")
            .rhost("203.0.113.9")
            .run()
            .returned()
    };
    let mut failures = Vec::new();
    let mut want = |what: &str, args: &str, user: &TestUser, expected: &Returned| {
        let got = run(args, &user.name);
        if got != *expected {
            failures.push(format!("{what} for {}: {got:?}", user.name));
        }
    };
    for (what, args) in [
        ("require_group", format!("require_group={g}")),
        ("EXCEPT (group)", except.clone()),
        ("- (group)", minus.clone()),
    ] {
        want(what, &args, &owner, &required);
        want(what, &args, &listed, &required);
        want(what, &args, &other, &Returned::Ignore);
    }
    for (what, args) in [
        ("skip_group", format!("skip_group={g}")),
        ("+ (group)", plus),
    ] {
        want(what, &args, &owner, &Returned::Ignore);
        want(what, &args, &listed, &Returned::Ignore);
        want(what, &args, &other, &required);
    }
    want("bare name", &bare, &owner, &required);
    want("bare name", &bare, &listed, &Returned::Ignore);
    want("bare name", &bare, &other, &Returned::Ignore);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Dropped in reverse order: the member first, so userdel removes the owner's group.
}

/// `accessfile=` and the group options are separate skips, each proven on its own: a `-`
/// rule ends the file's walk without a skip, and does not overrule `skip_group=` (root is
/// in group root through its primary group). Control: without the group option, the
/// same file requires the code.
#[test]
fn a_minus_rule_does_not_overrule_skip_group() {
    if !require_root("a_minus_rule_does_not_overrule_skip_group") {
        return;
    }
    let setup = Setup::new("- : ALL : ALL\n");
    let peer = |skip| {
        [case(
            "network peer",
            "sshd",
            Some("203.0.113.9"),
            None,
            skip,
        )]
    };
    check_cases(&setup, "", &peer(false));
    check_cases(&setup, "skip_group=root", &peer(true));
}

/// What a grace entry is keyed by: the user and the address, nothing else. Another
/// user's code accepted from the victim's address earns the victim nothing (the victim
/// is prompted and a wrong code refused); the victim's own code from that address earns
/// grace there, for every service whose line has `grace_period=` (the record is the
/// user's, as GA's `LASTn` lines are the file's), and for no other address; a `-` rule
/// naming the user does not bar it (pam_totp(8): grace is not a skip rule).
#[test]
fn grace_is_the_users_never_another_users_and_spans_services() {
    if !require_root("grace_is_the_users_never_another_users_and_spans_services") {
        return;
    }
    let dir = trusted_dir("pam_totp-access");
    let rules = dir.path().join("access.conf");
    let (victim, victim_secret) = TestUser::enrolled("gkv");
    let (other, other_secret) = TestUser::enrolled("gko");
    write_owned(
        &rules,
        format!("- : {} : ALL\n", victim.name).as_bytes(),
        0,
        0,
        0o644,
    );
    let args = format!(
        "grace_period=3600 ceiling_burst=100 accessfile={}",
        rules.display()
    );
    let stack = Stack::probe("svc", &args);
    // A second service in the same stack (so the same state store), the probe's lines.
    stack.service(
        "othersvc",
        &format!(
            "auth [success=2 ignore=ignore default=die] @MODULE@ {args}\n\
             auth required pam_echo.so pam_totp-returned-ignore\n\
             auth [success=done default=die] pam_permit.so\n\
             auth required pam_echo.so pam_totp-returned-success\n"
        ),
    );
    let run = |service: &str, u: &TestUser, answer: &str, rhost: &str, at: u64| {
        Driver::new(&stack, service, &u.name)
            .answer(answer)
            .rhost(rhost)
            .at(at)
            .run()
    };
    let refused = Returned::Failed("PAM_AUTH_ERR".into());

    // Another user's accepted code from the victim's address.
    let d = run("svc", &other, &code_at(&other_secret, T0), PEER, T0);
    assert_eq!(d.returned(), Returned::Success, "other user's login: {d:?}");
    let d = run(
        "svc",
        &victim,
        &wrong_totp(&victim_secret, T0 + 30),
        PEER,
        T0 + 30,
    );
    assert_eq!(d.returned(), refused, "grace earned for the victim: {d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");

    // Control: the victim's own code earns grace at that address, on both services.
    let d = run(
        "svc",
        &victim,
        &code_at(&victim_secret, T0 + 90),
        PEER,
        T0 + 90,
    );
    assert_eq!(d.returned(), Returned::Success, "victim's code: {d:?}");
    for (service, at) in [("svc", T0 + 150), ("othersvc", T0 + 210)] {
        let d = run(service, &victim, &wrong_totp(&victim_secret, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{service}: {d:?}");
        assert_eq!(d.prompts, 0, "{service}: {d:?}");
    }
    // Not from another address.
    let d = run(
        "othersvc",
        &victim,
        &wrong_totp(&victim_secret, T0 + 270),
        "192.0.2.8",
        T0 + 270,
    );
    assert_eq!(d.returned(), refused, "another address: {d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
}

/// Group options and `(group)` items name groups, never ids: a number is looked up as a
/// group name, which no group has, so it proves nothing either way (pam_totp(8)). For
/// root, whose primary group is gid 0: `skip_group=0` and `+ : (0) : ALL` do not skip,
/// and `require_group=` with nogroup's id does not skip either. Controls: the same
/// options and rule by name skip.
#[test]
fn group_options_and_items_take_names_not_ids() {
    if !require_root("group_options_and_items_take_names_not_ids") {
        return;
    }
    let nogroup_gid = Command::new("getent")
        .args(["group", "nogroup"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|l| l.split(':').nth(2).map(|g| g.trim().to_owned()))
        .filter(|g| !g.is_empty())
        .expect("the nogroup group");
    let peer = |what, skip| [case(what, "sshd", Some("203.0.113.9"), None, skip)];
    let none = Setup::new("- : ALL : 127.0.0.1\n");
    check_cases(&none, "skip_group=0", &peer("skip_group=0", false));
    check_cases(&none, "skip_group=root", &peer("skip_group=root", true));
    check_cases(
        &none,
        &format!("require_group={nogroup_gid}"),
        &peer("require_group=<nogroup's id>", false),
    );
    check_cases(
        &none,
        "require_group=nogroup",
        &peer("require_group=nogroup", true),
    );
    let by_id = Setup::new("+ : (0) : ALL\n");
    check_cases(&by_id, "", &peer("+ : (0) : ALL", false));
    let by_name = Setup::new("+ : (root) : ALL\n");
    check_cases(&by_name, "", &peer("+ : (root) : ALL", true));
}

/// Removes a group a test created (a leftover is harmless: `add_to_group` reuses it).
fn remove_group(group: &str) {
    let _g = user_database_lock();
    let _ = shadow_tool("groupdel", &[group]);
}
