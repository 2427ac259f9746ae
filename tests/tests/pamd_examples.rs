//! Every file in `pam.d-examples/` run through the real libpam (`pam_start_confdir`, via
//! `pam-drive`), as root with real users, real passwords and codes from `oathtool`.
//!
//! Each example is copied into a throwaway PAM directory with these substitutions and
//! nothing else changed:
//!
//! - `pam_totp.so` becomes the module built from this tree (absolute path);
//! - `/var/lib/pam_totp/` (store mode) becomes a root-owned `0700` temporary directory;
//! - `/etc/security/pam_totp_access.conf` becomes a temporary access-rule file that each
//!   case writes (or leaves absent);
//! - `@include common-*` becomes `@include <confdir>/common-*`, stand-ins written into the
//!   same directory. (Linux-PAM 1.5.2 resolves a relative `@include` in `/etc/pam.d` even
//!   under `pam_start_confdir`, so the system's files would be used silently; an absolute
//!   path is read as given.) `common-auth` has the shape of Debian 12's default: real
//!   `pam_unix` (the password is checked against `/etc/shadow`), then `requisite
//!   pam_deny`, then `required pam_permit`. The account, session and password stand-ins
//!   are `pam_permit`, since only `pam_authenticate` runs here;
//! - `su` only: in the cases that play an ordinary user running su, `pam_rootok.so`
//!   becomes `pam_deny.so`, because these tests run as root and `pam_rootok` would end the
//!   stack before anything is asked (one case keeps it and checks exactly that).
//!
//! The `pam-auth-update` profile is checked by building `common-auth` the way
//! pam-auth-update does: the profile's `Auth:` lines go into the "Additional" block after
//! `pam_permit`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use system_tests::{
    Drive, Driver, ENROLL_SCRIPTED, Stack, TestUser, built, module_with_state, now, oathtool_totp,
    private_tmp, random_secret_b32, require_root, require_tool, reset_state, skip, workspace,
    write_owned, wrong_totp,
};

const PASSWORD: &str = "correct horse 7 battery";
const CODE_PROMPT: &str = "erification code";
const OK: &str = "PAM_SUCCESS";
const DENIED: &str = "PAM_AUTH_ERR";

/// Every file the examples directory must hold; a new example needs a test here.
const EXAMPLES: &[&str] = &[
    "README.md",
    "cockpit",
    "gdm-password",
    "lightdm",
    "login",
    "openvpn",
    "pam-configs/pam_totp",
    "pam_totp_access.conf",
    "polkit-1",
    "screen-locker",
    "sddm",
    "sshd",
    "sshd-publickey",
    "sshd_config-password.conf",
    "sshd_config-publickey.conf",
    "su",
    "sudo",
    "sudo-i",
    "xrdp-sesman",
];

/// Every PAM stack among the examples.
const STACKS: &[&str] = &[
    "screen-locker",
    "sshd",
    "sshd-publickey",
    "sudo",
    "sudo-i",
    "su",
    "login",
    "lightdm",
    "gdm-password",
    "sddm",
    "xrdp-sesman",
    "cockpit",
    "polkit-1",
    "openvpn",
];

/// The prompt of pam_totp's `forward_pass` (password and code in one answer).
const COMBINED_PROMPT: &str = "Password & verification code";

/// Debian 12's default `common-auth`, without the optional pam_cap.
const COMMON_AUTH: &str = "\
auth [success=1 default=ignore] pam_unix.so nullok
auth requisite pam_deny.so
auth required pam_permit.so
";

fn examples_dir() -> PathBuf {
    workspace().join("pam.d-examples")
}

fn example_text(name: &str) -> String {
    fs::read_to_string(examples_dir().join(name))
        .unwrap_or_else(|e| panic!("read pam.d-examples/{name}: {e}"))
}

/// Lines of a PAM file without comments and blank lines.
fn active_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A temporary PAM directory holding one example, the common-* stand-ins, a secret
/// store and an access-rule path.
struct Setup {
    stack: Stack,
    store: tempfile::TempDir,
    service: String,
}

struct Rewrite<'a> {
    /// Replace `pam_rootok.so` (su) with `pam_deny.so`.
    no_rootok: bool,
    /// Extra options appended to the pam_totp line.
    extra: &'a str,
    /// Where the access-rule path points.
    accessfile: PathBuf,
}

impl Setup {
    fn new(service: &str) -> Setup {
        let stack = Stack::new();
        let dir = stack.path();
        fs::write(dir.join("common-auth"), COMMON_AUTH).expect("common-auth");
        fs::write(
            dir.join("common-account"),
            "account required pam_permit.so\n",
        )
        .expect("w");
        fs::write(
            dir.join("common-session"),
            "session required pam_permit.so\n",
        )
        .expect("w");
        fs::write(
            dir.join("common-session-noninteractive"),
            "session required pam_permit.so\n",
        )
        .expect("w");
        fs::write(
            dir.join("common-password"),
            "password required pam_permit.so\n",
        )
        .expect("w");
        let store = tempfile::Builder::new()
            .prefix("pam_totp-store")
            .tempdir_in(private_tmp())
            .expect("store");
        // tempdir() creates 0700 directories owned by the (root) caller.
        Setup {
            stack,
            store,
            service: service.to_string(),
        }
    }

    fn access_path(&self) -> PathBuf {
        self.stack.path().join("pam_totp_access.conf")
    }

    fn write_access(&self, rules: &str) {
        write_owned(&self.access_path(), rules.as_bytes(), 0, 0, 0o644);
    }

    /// A set-up for `service` whose stack is the example `example` with the default
    /// rewrite.
    fn example(service: &str, example: &str) -> Setup {
        let setup = Setup::new(service);
        setup.install(example, &setup.default_rewrite());
        setup
    }

    fn default_rewrite(&self) -> Rewrite<'static> {
        Rewrite {
            no_rootok: false,
            extra: "",
            accessfile: self.access_path(),
        }
    }

    /// Installs `text` (an example) as this setup's service, with the substitutions
    /// listed at the top of this file.
    fn install_text(&self, text: &str, rw: &Rewrite<'_>) {
        let store = format!("{}/", self.store.path().display());
        let mut out = String::new();
        let mut totp_lines = 0;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            let mut tokens: Vec<String> = trimmed
                .split_whitespace()
                .map(|t| {
                    if trimmed.starts_with("@include") && t.starts_with("common-") {
                        let standin = self.stack.path().join(t);
                        assert!(standin.is_file(), "no stand-in for {t}");
                        standin.to_string_lossy().into_owned()
                    } else if t == "pam_totp.so" {
                        module_with_state(&self.stack.state_dir())
                    } else if rw.no_rootok && t == "pam_rootok.so" {
                        "pam_deny.so".to_string()
                    } else {
                        t.replace("/var/lib/pam_totp/", &store).replace(
                            "/etc/security/pam_totp_access.conf",
                            &rw.accessfile.to_string_lossy(),
                        )
                    }
                })
                .collect();
            if trimmed.split_whitespace().any(|t| t == "pam_totp.so") {
                totp_lines += 1;
                if !rw.extra.is_empty() {
                    tokens.push(rw.extra.to_string());
                }
            }
            out.push_str(&tokens.join(" "));
            out.push('\n');
        }
        assert!(
            (1..=2).contains(&totp_lines),
            "expected one pam_totp line (two for a migration) in:\n{text}"
        );
        fs::write(self.stack.path().join(&self.service), out).expect("write service");
    }

    fn install(&self, example: &str, rw: &Rewrite<'_>) {
        self.install_text(&example_text(example), rw);
    }

    fn drive(&self, user: &TestUser) -> Driver {
        Driver::new(&self.stack, &self.service, &user.name)
    }

    fn store_path(&self, user: &TestUser) -> PathBuf {
        self.store.path().join(&user.name)
    }

    /// This set-up's PAM files as an administrator's directory holds them, for the CLIs'
    /// `--pam-dir`: `@include common-*` relative again (libpam needs them absolute here,
    /// see the top of this file; the CLIs read includes from the same directory).
    fn relative_includes_view(&self) -> tempfile::TempDir {
        let view = tempfile::Builder::new()
            .prefix("pam_totp-pamdir")
            .tempdir_in(private_tmp())
            .expect("pam dir view");
        let absolute = format!("@include {}/", self.stack.path().display());
        for entry in fs::read_dir(self.stack.path()).expect("read stack dir") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with("common-") || name == self.service {
                let text = fs::read_to_string(&path).expect("read PAM file");
                fs::write(view.path().join(name), text.replace(&absolute, "@include "))
                    .expect("write PAM file");
            }
        }
        view
    }
}

/// Where an enrollment lives for one example.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Home,
    Store,
}

/// Writes a fresh secret file (new secret, so no replay mark or failure count carries
/// over between cases) and returns the secret.
/// A fresh enrollment: a new secret and no state left from the previous one (two
/// enrollments in one 30-s step would otherwise share a replay mark).
fn enroll(setup: &Setup, user: &TestUser, mode: Mode) -> String {
    reset_state(&setup.stack, user.uid);
    let secret = random_secret_b32();
    let contents = format!("{secret}\n\" TOTP_AUTH\n");
    match mode {
        Mode::Home => {
            user.write_secret(&contents, 0o600);
        }
        Mode::Store => write_owned(&setup.store_path(user), contents.as_bytes(), 0, 0, 0o600),
    }
    secret
}

fn code(secret: &str) -> String {
    oathtool_totp(secret, now(), 30, 6, "sha1")
}

#[track_caller]
fn expect(d: &Drive, result: &str, prompts: usize, code_asked: bool, what: &str) {
    assert_eq!(d.result, result, "{what}: result; {d:?}");
    assert_eq!(d.prompts, prompts, "{what}: prompt count; {d:?}");
    assert_eq!(
        d.prompted(CODE_PROMPT),
        code_asked,
        "{what}: code prompt; {d:?}"
    );
}

/// Users for one example: one enrolled, one never enrolled; both with a password.
struct Users {
    enrolled: TestUser,
    plain: TestUser,
}

fn users(tag: &str) -> Users {
    let enrolled = TestUser::create(&format!("{tag}e"));
    let plain = TestUser::create(&format!("{tag}n"));
    enrolled.set_password(PASSWORD);
    plain.set_password(PASSWORD);
    Users { enrolled, plain }
}

/// A terminal and remote host as the service's application would set them.
#[derive(Clone, Copy)]
struct Items {
    tty: Option<&'static str>,
    rhost: Option<&'static str>,
}

fn with_items(d: Driver, items: Items) -> Driver {
    d.tty_opt(items.tty).rhost_opt(items.rhost)
}

/// The cases every "password, then code" example must pass.
fn password_then_code(setup: &Setup, u: &Users, mode: Mode, items: Items) {
    let user = &u.enrolled;

    let secret = enroll(setup, user, mode);
    let right = code(&secret);
    let d = with_items(setup.drive(user), items)
        .answer(PASSWORD)
        .answer(&right)
        .run();
    expect(&d, OK, 2, true, "right password and right code");

    let d = with_items(setup.drive(user), items)
        .answer(PASSWORD)
        .answer(&right)
        .run();
    expect(&d, DENIED, 2, true, "the same code a second time (replay)");

    let secret = enroll(setup, user, mode);
    let d = with_items(setup.drive(user), items)
        .answer(PASSWORD)
        .answer(&wrong_totp(&secret, now()))
        .run();
    expect(&d, DENIED, 2, true, "right password, wrong code");

    let secret = enroll(setup, user, mode);
    let d = with_items(setup.drive(user), items)
        .answer("not the password")
        .answer(&code(&secret))
        .run();
    expect(
        &d,
        DENIED,
        1,
        false,
        "wrong password: the code is never asked",
    );

    let d = with_items(setup.drive(&u.plain), items)
        .answer(PASSWORD)
        .run();
    expect(&d, OK, 1, false, "not enrolled, nullok: the password alone");

    let d = with_items(setup.drive(&u.plain), items)
        .answer("wrong")
        .run();
    expect(
        &d,
        DENIED,
        1,
        false,
        "not enrolled, nullok: a wrong password still fails",
    );
}

/// The cases every single-question example (`forward_pass`: the password immediately
/// followed by the code, in one answer) must pass.
fn password_and_code_in_one_answer(setup: &Setup, u: &Users, mode: Mode, items: Items) {
    let user = &u.enrolled;
    let combined = |code: &str| format!("{PASSWORD}{code}");

    let secret = enroll(setup, user, mode);
    let right = code(&secret);
    let d = with_items(setup.drive(user), items)
        .answer(&combined(&right))
        .run();
    expect(&d, OK, 1, true, "password and right code in one answer");
    assert!(d.prompted(COMBINED_PROMPT), "one combined question: {d:?}");

    let d = with_items(setup.drive(user), items)
        .answer(&combined(&right))
        .run();
    expect(&d, DENIED, 1, true, "the same code a second time (replay)");

    let secret = enroll(setup, user, mode);
    let d = with_items(setup.drive(user), items)
        .answer(&combined(&wrong_totp(&secret, now())))
        .run();
    expect(&d, DENIED, 1, true, "right password, wrong code");

    let secret = enroll(setup, user, mode);
    let d = with_items(setup.drive(user), items)
        .answer(&format!("not the password{}", code(&secret)))
        .run();
    expect(
        &d,
        DENIED,
        1,
        true,
        "right code, wrong password: the forwarded password is checked, nothing asked again",
    );

    let secret = enroll(setup, user, mode);
    let d = with_items(setup.drive(user), items).answer(PASSWORD).run();
    expect(&d, DENIED, 1, true, "the password without a code");
    let d = with_items(setup.drive(user), items)
        .answer(&code(&secret))
        .run();
    expect(&d, DENIED, 1, true, "the code without the password");

    let d = with_items(setup.drive(&u.plain), items)
        .answer(PASSWORD)
        .run();
    expect(&d, OK, 1, false, "not enrolled, nullok: the password alone");
    assert!(!d.prompted(COMBINED_PROMPT), "{d:?}");
    let d = with_items(setup.drive(&u.plain), items)
        .answer("wrong")
        .run();
    expect(&d, DENIED, 1, false, "not enrolled: a wrong password fails");
}

fn ready(test: &str) -> bool {
    require_root(test) && require_tool(test, "oathtool") && require_tool(test, "chpasswd")
}

#[test]
fn every_example_is_tested_and_no_pam_totp_line_is_sufficient_or_optional() {
    let mut found = BTreeSet::new();
    let mut pending = vec![examples_dir()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read pam.d-examples") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(examples_dir()).expect("prefix");
                found.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let expected: BTreeSet<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, expected,
        "pam.d-examples/ changed: add a test for each new example"
    );

    for &name in STACKS {
        let text = example_text(name);
        let totp: Vec<&str> = active_lines(&text)
            .filter(|l| l.split_whitespace().any(|t| t == "pam_totp.so"))
            .collect();
        // One line, or (sudo, su: moving from home mode to the store) a store line that
        // jumps over a home-mode line; both die on anything but success or a skip.
        let (first, last) = match totp.as_slice() {
            [only] => (None, *only),
            [store, home] if ["sudo", "sudo-i", "su"].contains(&name) => (Some(*store), *home),
            other => panic!("{name}: unexpected pam_totp lines {other:?}"),
        };
        if let Some(store) = first {
            assert!(
                store.starts_with(
                    "auth [success=1 ignore=ignore default=die] pam_totp.so user=root"
                ),
                "{name}: the store line jumps over the home line only on success: {store}"
            );
        }
        assert!(
            last.starts_with("auth [success=ok ignore=ignore default=die] pam_totp.so")
                || last.starts_with("auth required pam_totp.so"),
            "{name}: pam_totp must be requisite-style or required: {last}"
        );
    }
    // The RPM ships these examples too: on RHEL/Fedora an @include of a missing common-*
    // file breaks the stack, so each example that has one says so before its first line.
    let mut with_include = 0;
    for &name in STACKS {
        let text = example_text(name);
        if !active_lines(&text).any(|l| l.starts_with("@include common-")) {
            continue;
        }
        with_include += 1;
        let header: String = text
            .lines()
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "DEBIAN/UBUNTU ONLY",
            "auth substack password-auth",
            "system-auth",
            // rhel_sufficient_password_needs_substack_before_the_code_line shows why.
            "change \"include\" to \"substack\"",
        ] {
            assert!(
                header.contains(needle),
                "{name}: includes common-* but its header lacks \"{needle}\""
            );
        }
    }
    assert!(
        with_include > 0,
        "no example includes common-*: the check above ran on nothing"
    );
    let profile = example_text("pam-configs/pam_totp");
    assert!(
        profile.lines().any(|l| l == "Default: no"),
        "profile must not be enabled by default"
    );
    assert!(
        profile_auth_lines(&profile)
            .iter()
            .all(|l| l.starts_with("[success=ok ignore=ignore default=die]")),
        "profile Auth lines must be requisite-style"
    );
}

/// Whitespace-normalised active lines, for comparing PAM files.
fn normalised_lines(text: &str) -> Vec<String> {
    active_lines(text)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// An example installed as it is must not drop what the stock file did (pam_limits,
/// pam_loginuid, the locale environment...). `login`, `su`, `sudo`, `sudo-i` and
/// `polkit-1` are Debian 12's stock files with the pam_totp lines added: every active
/// line of the host's stock file (sudo's and polkit's only where those are installed) is
/// in them, in order. Every other example that stands for a distribution's file with
/// more lines says to keep those lines.
#[test]
fn examples_keep_the_stock_files_other_lines_or_say_to() {
    let test = "examples_keep_the_stock_files_other_lines_or_say_to";
    // login and su come with every Debian system; sudo's files only with sudo, polkit's
    // only with polkitd (in the vendor directory, which /etc/pam.d overrides).
    for (name, dir, always) in [
        ("login", "/etc/pam.d", true),
        ("su", "/etc/pam.d", true),
        ("sudo", "/etc/pam.d", false),
        ("sudo-i", "/etc/pam.d", false),
        ("polkit-1", "/usr/lib/pam.d", false),
    ] {
        let system = PathBuf::from(dir).join(name);
        let Ok(stock) = fs::read_to_string(&system) else {
            if always {
                skip(test, &format!("Debian's stock {}", system.display()));
            }
            continue;
        };
        let example = normalised_lines(&example_text(name));
        let mut at = 0;
        for line in normalised_lines(&stock) {
            match example[at..].iter().position(|l| *l == line) {
                Some(i) => at += i + 1,
                None => panic!(
                    "pam.d-examples/{name} lacks (or reorders) the stock line {line:?} of {}",
                    system.display()
                ),
            }
        }
    }
    for name in [
        "sshd",
        "sshd-publickey",
        "gdm-password",
        "lightdm",
        "sddm",
        "cockpit",
        "xrdp-sesman",
    ] {
        let text = example_text(name);
        assert!(
            text.contains("Keep your distribution's account,"),
            "pam.d-examples/{name} must say to keep the stock file's other lines"
        );
    }
}

#[test]
fn access_rule_example_is_inert_as_shipped_and_its_sample_rules_parse() {
    use totp_core::access::{AccessRules, ParseOptions};
    let text = example_text("pam_totp_access.conf");
    let shipped = AccessRules::parse(text.as_bytes(), ParseOptions::default())
        .expect("shipped access-rule example parses");
    assert!(
        shipped.is_empty(),
        "the shipped file must skip nobody until edited"
    );
    // Each commented sample rule ("#+ ..." or "#- ...") must be valid when uncommented.
    let samples: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with("+ :") || l.starts_with("- :"))
        .collect();
    assert!(samples.len() >= 3, "expected sample rules in the example");
    for rule in samples {
        AccessRules::parse(rule.as_bytes(), ParseOptions::default())
            .unwrap_or_else(|e| panic!("sample rule {rule:?} does not parse: {e}"));
    }
}

#[test]
fn sshd_example_asks_password_then_code_and_skips_only_by_rule() {
    let test = "sshd_example";
    if !ready(test) {
        return;
    }
    let setup = Setup::example("sshd", "sshd");
    let u = users("ss");
    // sshd sets PAM_TTY "ssh" and PAM_RHOST to the client's numeric address.
    let remote = Items {
        tty: Some("ssh"),
        rhost: Some("192.0.2.10"),
    };

    // No access-rule file at all: nothing is skipped, everything else works.
    password_then_code(&setup, &u, Mode::Home, remote);

    // LAN skip: 10.0.0.0/8 and the loopback address skip the code; others do not.
    setup.write_access("+ : ALL : 10.0.0.0/8 127.0.0.1\n");
    enroll(&setup, &u.enrolled, Mode::Home);
    for rhost in ["10.1.2.3", "127.0.0.1", "::ffff:10.9.8.7"] {
        let d = setup
            .drive(&u.enrolled)
            .tty("ssh")
            .rhost(rhost)
            .answer(PASSWORD)
            .run();
        expect(
            &d,
            OK,
            1,
            false,
            &format!("access rule skips the code from {rhost}"),
        );
        let d = setup
            .drive(&u.enrolled)
            .tty("ssh")
            .rhost(rhost)
            .answer("wrong")
            .run();
        expect(
            &d,
            DENIED,
            1,
            false,
            &format!("a skip from {rhost} never skips the password"),
        );
    }
    for rhost in ["192.0.2.10", "11.1.2.3", "lan-host.example"] {
        let secret = enroll(&setup, &u.enrolled, Mode::Home);
        let d = setup
            .drive(&u.enrolled)
            .tty("ssh")
            .rhost(rhost)
            .answer(PASSWORD)
            .answer(&code(&secret))
            .run();
        expect(
            &d,
            OK,
            2,
            true,
            &format!("no rule matches {rhost}: code asked"),
        );
    }
    // A rule for one user does not skip the others.
    setup.write_access(&format!("+ : {} : 10.0.0.0/8\n", u.plain.name));
    let secret = enroll(&setup, &u.enrolled, Mode::Home);
    let d = setup
        .drive(&u.enrolled)
        .tty("ssh")
        .rhost("10.1.2.3")
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(&d, OK, 2, true, "a rule naming another user: code asked");

    // Group skip, added as the example's README suggests.
    let group = format!("pttg{}", std::process::id() % 100_000);
    u.plain.add_to_group(&group);
    let rw = Rewrite {
        extra: &format!("skip_group={group}"),
        ..setup.default_rewrite()
    };
    setup.install("sshd", &rw);
    let skipper = &u.plain;
    let secret = random_secret_b32();
    skipper.write_secret(&format!("{secret}\n\" TOTP_AUTH\n"), 0o600);
    let d = setup
        .drive(skipper)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer(PASSWORD)
        .run();
    expect(&d, OK, 1, false, "member of skip_group: no code");
    let d = setup
        .drive(skipper)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer("wrong")
        .run();
    expect(
        &d,
        DENIED,
        1,
        false,
        "member of skip_group: the password still counts",
    );
    let secret = enroll(&setup, &u.enrolled, Mode::Home);
    let d = setup
        .drive(&u.enrolled)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(&d, OK, 2, true, "not a member of skip_group: code asked");
    {
        let _g = system_tests::user_database_lock();
        let _ = system_tests::shadow_tool("groupdel", &[&group]);
    }
}

#[test]
fn sshd_publickey_example_asks_only_the_code_and_needs_pam_permit_for_skips() {
    let test = "sshd_publickey_example";
    if !ready(test) {
        return;
    }
    let setup = Setup::example("sshd", "sshd-publickey");
    let u = users("sk");
    let user = &u.enrolled;

    let secret = enroll(&setup, user, Mode::Home);
    let right = code(&secret);
    let d = setup
        .drive(user)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer(&right)
        .run();
    expect(&d, OK, 1, true, "right code after the key");
    let d = setup
        .drive(user)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer(&right)
        .run();
    expect(&d, DENIED, 1, true, "replayed code");

    let secret = enroll(&setup, user, Mode::Home);
    let d = setup
        .drive(user)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer(&wrong_totp(&secret, now()))
        .run();
    expect(&d, DENIED, 1, true, "wrong code");

    let d = setup.drive(&u.plain).tty("ssh").rhost("192.0.2.10").run();
    expect(
        &d,
        OK,
        0,
        false,
        "not enrolled, nullok: pam_permit makes the skip a success",
    );

    setup.write_access("+ : ALL : 10.0.0.0/8\n");
    let d = setup.drive(user).tty("ssh").rhost("10.20.30.40").run();
    expect(&d, OK, 0, false, "access rule from 10.x");
    let secret = enroll(&setup, user, Mode::Home);
    let d = setup
        .drive(user)
        .tty("ssh")
        .rhost("192.0.2.10")
        .answer(&code(&secret))
        .run();
    expect(&d, OK, 1, true, "outside the rule: code asked");

    // Without the pam_permit line a skip alone must not succeed: PAM_IGNORE is no success.
    let without_permit: String = example_text("sshd-publickey")
        .lines()
        .filter(|l| !l.trim_start().starts_with("auth required pam_permit.so"))
        .map(|l| format!("{l}\n"))
        .collect();
    setup.install_text(&without_permit, &setup.default_rewrite());
    let d = setup.drive(&u.plain).tty("ssh").rhost("192.0.2.10").run();
    assert_ne!(d.result, OK, "a stack of skips alone must fail: {d:?}");
}

/// pam.d-examples/README.md, "sshd: the sshd_config first": until the drop-in is in
/// force (sshd not reloaded yet, an earlier drop-in winning, or an sshd that never reads
/// `sshd_config.d`), sshd keeps Debian's stock `PasswordAuthentication yes`, and its
/// "password" method runs the installed PAM stack, answering every hidden question with
/// the password typed. The `sshd-publickey` stack checks no password: a user without a
/// secret file (`nullok`) is let in whatever the password. Control: the `sshd` stack,
/// driven the same way, still checks it. Both refuse an enrolled user (the password is
/// no code).
#[test]
fn sshd_publickey_stack_under_the_password_method_takes_any_password() {
    let test = "sshd_publickey_password_method";
    if !ready(test) {
        return;
    }
    let u = users("sw");
    let as_sshd_password_method = |setup: &Setup, user: &TestUser, password: &str| {
        setup
            .drive(user)
            .tty("ssh")
            .rhost("192.0.2.40")
            .answer(password)
            .answer(password)
            .run()
    };

    let publickey = Setup::example("sshd", "sshd-publickey");
    let d = as_sshd_password_method(&publickey, &u.plain, "not the password");
    expect(
        &d,
        OK,
        0,
        false,
        "sshd-publickey stack, not enrolled: any password logs in, nothing is asked",
    );
    enroll(&publickey, &u.enrolled, Mode::Home);
    let d = as_sshd_password_method(&publickey, &u.enrolled, PASSWORD);
    expect(
        &d,
        DENIED,
        1,
        true,
        "sshd-publickey stack, enrolled: the password goes to the code prompt",
    );

    let password = Setup::example("sshd", "sshd");
    let d = as_sshd_password_method(&password, &u.plain, "not the password");
    expect(
        &d,
        DENIED,
        1,
        false,
        "control, sshd stack: a wrong password is refused",
    );
    let d = as_sshd_password_method(&password, &u.plain, PASSWORD);
    expect(
        &d,
        OK,
        1,
        false,
        "control, sshd stack: not enrolled, the right password alone",
    );
}

/// README, "Before you enable it", item 4: `totp-state audit --service sudo` before the
/// switch. The sudo example reads two files: the store, then (for a user not moved yet)
/// the home file. A home file the module refuses (mode 0620) denies that user's sudo
/// (proven through libpam here), and the audit must say so: it used to read the first
/// pam_totp line only, and reported "not-enrolled: nullok skips the code", exit 0.
/// Control: the same user with a mode-0600 home file, audited ok and let in.
#[test]
fn audit_of_the_sudo_example_follows_the_fallback_to_the_home_file() {
    let test = "audit_of_the_sudo_example";
    if !ready(test) {
        return;
    }
    let setup = Setup::example("sudo", "sudo");
    let u = users("au");
    let user = &u.enrolled;
    let in_ssh = Items {
        tty: Some("/dev/pts/4"),
        rhost: None,
    };
    // The directory libpam runs these logins from, its includes by absolute path.
    let audit = || {
        std::process::Command::new(&built().state_tool)
            .args(["audit", "--service", "sudo", "--pam-dir"])
            .arg(setup.stack.path())
            .args(["--user", &user.name])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run totp-state audit")
    };

    let secret = enroll(&setup, user, Mode::Home);
    let out = audit();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.starts_with(&format!("{}: ok:", user.name)),
        "control, a usable home file: {out:?}"
    );
    let d = with_items(setup.drive(user), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(&d, OK, 2, true, "control: the home file's code passes sudo");

    let secret = enroll(&setup, user, Mode::Home);
    user.write_secret(&format!("{secret}\n\" TOTP_AUTH\n"), 0o620);
    let d = with_items(setup.drive(user), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(&d, DENIED, 2, true, "a refused home file denies sudo");
    let out = audit();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "the audit fails: {out:?}");
    assert!(
        report.starts_with(&format!("{}: refused:", user.name)) && report.contains("0620"),
        "the audit names the refused home file: {report}"
    );
}

#[test]
fn sudo_example_uses_the_root_owned_store_and_asks_inside_ssh() {
    let test = "sudo_example";
    if !ready(test) {
        return;
    }
    let setup = Setup::example("sudo", "sudo");
    let u = users("su");
    // sudo run from an SSH session: a pseudo-terminal and no PAM_RHOST.
    let in_ssh = Items {
        tty: Some("/dev/pts/3"),
        rhost: None,
    };
    password_then_code(&setup, &u, Mode::Store, in_ssh);

    // The user's own ~/.google_authenticator is not what guards sudo.
    let store_secret = enroll(&setup, &u.enrolled, Mode::Store);
    let home_secret = enroll(&setup, &u.enrolled, Mode::Home);
    let d = with_items(setup.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&home_secret))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "a code from the user's home file does not pass sudo",
    );
    let d = with_items(setup.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&store_secret))
        .run();
    expect(&d, OK, 2, true, "the store's code passes sudo");

    // Even an admin who adds access rules to sudo gets no skip for sudo inside SSH.
    setup.write_access("+ : ALL : 10.0.0.0/8 127.0.0.1 LOCAL\n");
    let rw = Rewrite {
        extra: &format!("accessfile={}", setup.access_path().display()),
        ..setup.default_rewrite()
    };
    setup.install("sudo", &rw);
    for tty in ["/dev/pts/3", "pts/0", "/dev/tty1", ":0"] {
        let secret = enroll(&setup, &u.enrolled, Mode::Store);
        let d = setup
            .drive(&u.enrolled)
            .tty(tty)
            .answer(PASSWORD)
            .answer(&code(&secret))
            .run();
        expect(
            &d,
            OK,
            2,
            true,
            &format!("sudo on {tty} with access rules: code asked"),
        );
    }
    let secret = enroll(&setup, &u.enrolled, Mode::Store);
    let d = setup
        .drive(&u.enrolled)
        .tty("/dev/pts/3")
        .answer(PASSWORD)
        .answer(&wrong_totp(&secret, now()))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "sudo inside SSH with access rules: wrong code denied",
    );
}

/// Debian's sudo runs `sudo -i` through the `sudo-i` service, not `sudo`: the sudo-i
/// example asks the same password and store code, with the same move from home mode,
/// so `sudo -i` is no way around the code the sudo example asks for.
#[test]
fn sudo_i_example_asks_the_same_store_code_as_sudo() {
    let test = "sudo_i_example";
    if !ready(test) {
        return;
    }
    let in_ssh = Items {
        tty: Some("/dev/pts/4"),
        rhost: None,
    };
    let sudo = example_text("sudo");
    let sudo_i = example_text("sudo-i");
    let totp_lines = |text: &str| -> Vec<String> {
        normalised_lines(text)
            .into_iter()
            .filter(|l| l.contains("pam_totp.so"))
            .collect()
    };
    assert_eq!(
        totp_lines(&sudo_i),
        totp_lines(&sudo),
        "sudo-i asks what sudo asks"
    );
    let setup = Setup::example("sudo-i", "sudo-i");
    let u = users("si");
    password_then_code(&setup, &u, Mode::Store, in_ssh);
    // A user enrolled only at home keeps being asked for that code (migration).
    let home_secret = enroll(&setup, &u.plain, Mode::Home);
    let d = with_items(setup.drive(&u.plain), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&home_secret))
        .run();
    expect(&d, OK, 2, true, "enrolled at home only: that code is asked");
}

#[test]
fn su_example_asks_the_target_accounts_password_and_store_code() {
    let test = "su_example";
    if !ready(test) {
        return;
    }
    let setup = Setup::new("su");
    let as_user = Rewrite {
        no_rootok: true,
        ..setup.default_rewrite()
    };
    setup.install("su", &as_user);
    let u = users("sx");
    let in_ssh = Items {
        tty: Some("/dev/pts/4"),
        rhost: None,
    };
    password_then_code(&setup, &u, Mode::Store, in_ssh);

    // As root, pam_rootok ends the stack before any question: su from root needs nothing.
    setup.install("su", &setup.default_rewrite());
    enroll(&setup, &u.enrolled, Mode::Store);
    let d = with_items(setup.drive(&u.enrolled), in_ssh).run();
    expect(&d, OK, 0, false, "root running su: pam_rootok");
}

/// A local login stack (console or display manager): password, then the code.
fn local_example_asks_password_then_code(service: &str, tag: &str, tty: &'static str) {
    if !ready(service) {
        return;
    }
    let setup = Setup::example(service, service);
    let u = users(tag);
    let local = Items {
        tty: Some(tty),
        rhost: None,
    };
    password_then_code(&setup, &u, Mode::Home, local);
}

#[test]
fn login_example_asks_password_then_code_on_the_console() {
    local_example_asks_password_then_code("login", "lo", "tty1");
}

#[test]
fn lightdm_example_asks_password_then_code() {
    local_example_asks_password_then_code("lightdm", "ld", ":0");
}

#[test]
fn gdm_password_example_asks_password_then_code() {
    local_example_asks_password_then_code("gdm-password", "gd", "/dev/tty2");
}

/// The `Auth:` lines of a pam-auth-update profile (continuation lines, trimmed).
fn profile_auth_lines(profile: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_auth = false;
    for line in profile.lines() {
        if let Some((field, rest)) = line.split_once(':')
            && !line.starts_with(char::is_whitespace)
            && !field.contains(char::is_whitespace)
        {
            in_auth = field == "Auth";
            if in_auth && !rest.trim().is_empty() {
                lines.push(rest.trim().to_string());
            }
            continue;
        }
        if in_auth && !line.trim().is_empty() {
            lines.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    lines
}

/// A set-up whose `service` is a stock file that only includes `common-auth`, and whose
/// `common-auth` is what pam-auth-update writes with the profile (`auth` lines)
/// selected: the Primary block, pam_deny, pam_permit, then the Additional block.
fn profile_setup(service: &str, auth: &[String]) -> Setup {
    let setup = Setup::new(service);
    let mut common = COMMON_AUTH.to_string();
    for line in auth {
        common.push_str("auth ");
        common.push_str(&line.replace("pam_totp.so", &module_with_state(&setup.stack.state_dir())));
        common.push('\n');
    }
    fs::write(setup.stack.path().join("common-auth"), common).expect("common-auth");
    let include = format!(
        "@include {}\n",
        setup.stack.path().join("common-auth").display()
    );
    fs::write(setup.stack.path().join(service), include).expect("service");
    setup
}

#[test]
fn pam_auth_update_profile_adds_the_code_after_the_password() {
    let test = "pam_auth_update_profile";
    if !ready(test) {
        return;
    }
    let profile = example_text("pam-configs/pam_totp");
    assert!(profile.lines().any(|l| l == "Auth-Type: Additional"));
    let auth = profile_auth_lines(&profile);
    assert!(!auth.is_empty(), "profile has no Auth lines");

    let setup = profile_setup("login", &auth);

    let u = users("pa");
    let console = Items {
        tty: Some("tty3"),
        rhost: None,
    };
    password_then_code(&setup, &u, Mode::Home, console);
}

/// What pam.d-examples/README.md warns about: with the profile selected and Debian's
/// stock sshd settings (`PasswordAuthentication yes`, keyboard-interactive off), sshd's
/// "password" method answers every hidden PAM question with the password, the code
/// prompt included. An enrolled user is then refused with the right password (and the
/// attempt counts as a wrong code); a user without a secret file still logs in.
#[test]
fn pam_auth_update_profile_refuses_enrolled_users_on_sshds_password_method() {
    let test = "pam_auth_update_profile_password_method";
    if !ready(test) {
        return;
    }
    let auth = profile_auth_lines(&example_text("pam-configs/pam_totp"));
    let setup = profile_setup("sshd", &auth);
    let u = users("pw");
    enroll(&setup, &u.enrolled, Mode::Home);
    // sshd's password method: the same password for every echo-off prompt.
    let as_sshd_password_method = |user: &TestUser| {
        setup
            .drive(user)
            .tty("ssh")
            .rhost("192.0.2.30")
            .answer(PASSWORD)
            .answer(PASSWORD)
            .run()
    };
    let d = as_sshd_password_method(&u.enrolled);
    expect(
        &d,
        DENIED,
        2,
        true,
        "enrolled: the code prompt gets the password and the login fails",
    );
    let d = as_sshd_password_method(&u.plain);
    expect(
        &d,
        OK,
        1,
        false,
        "not enrolled (nullok): the password alone",
    );
}

/// pam.d-examples/README.md: with the profile enabled, a locker that answers every
/// question with its one field gets the `screen-locker` stack. Its password lines are
/// its own: `@include common-auth` would bring in the profile's pam_totp line, which
/// asks again, and the locker's same answer then fails (a replay at best), so the
/// screen could never be unlocked by an enrolled user.
#[test]
fn screen_locker_example_unlocks_with_the_profile_enabled() {
    let test = "screen_locker_with_profile";
    if !ready(test) {
        return;
    }
    let auth = profile_auth_lines(&example_text("pam-configs/pam_totp"));
    let setup = profile_setup("i3lock", &auth);
    setup.install("screen-locker", &setup.default_rewrite());
    let u = users("sp");
    let secret = enroll(&setup, &u.enrolled, Mode::Home);
    let typed = format!("{PASSWORD}{}", code(&secret));
    // The locker's one field answers every prompt with the same text.
    let d = setup
        .drive(&u.enrolled)
        .tty(":0")
        .answer(&typed)
        .answer(&typed)
        .run();
    expect(&d, OK, 1, true, "one question, with the profile enabled");
    let d = setup
        .drive(&u.plain)
        .tty(":0")
        .answer(PASSWORD)
        .answer(PASSWORD)
        .run();
    expect(&d, OK, 1, false, "not enrolled: the password alone");
}

/// Why the examples and the profile do not combine (pam.d-examples/README.md): an
/// example that includes `common-auth` and adds its own pam_totp line asks for the code
/// twice when the profile is enabled, and the second answer is refused.
#[test]
fn an_example_with_the_profile_enabled_asks_twice_and_fails() {
    let test = "example_with_profile";
    if !ready(test) {
        return;
    }
    let auth = profile_auth_lines(&example_text("pam-configs/pam_totp"));
    let setup = profile_setup("login", &auth);
    setup.install("login", &setup.default_rewrite());
    let u = users("pl");
    let secret = enroll(&setup, &u.enrolled, Mode::Home);
    let right = code(&secret);
    let d = setup
        .drive(&u.enrolled)
        .tty("tty5")
        .answer(PASSWORD)
        .answer(&right)
        .answer(&right)
        .run();
    expect(
        &d,
        DENIED,
        3,
        true,
        "the code asked twice; the second is a replay",
    );
}

/// What the README says before removing the package: a pam.d line naming a module that
/// is gone fails every login through the stack, with the right password and without a
/// secret file (nullok cannot help: the module never runs).
#[test]
fn a_removed_module_fails_every_login_through_the_login_example() {
    let test = "removed_module";
    if !ready(test) {
        return;
    }
    let setup = Setup::example("login", "login");
    let installed = setup.stack.path().join("login");
    let text = fs::read_to_string(&installed).expect("installed example");
    let module = built().module.to_string_lossy().into_owned();
    assert!(text.contains(&module), "{text}");
    let gone = setup.stack.path().join("removed").join("pam_totp.so");
    fs::write(&installed, text.replace(&module, &gone.to_string_lossy())).expect("write");
    let u = users("rm");
    let d = setup.drive(&u.plain).tty("tty4").answer(PASSWORD).run();
    assert_eq!(d.result, "PAM_MODULE_UNKNOWN", "{d:?}");
}

#[test]
fn sufficient_would_let_the_code_replace_the_password() {
    // Why every example warns against "sufficient": placed first, a right code ends the
    // stack and the password is never asked. A skip (PAM_IGNORE) does not end it.
    let test = "sufficient_stack";
    if !ready(test) {
        return;
    }
    let setup = Setup::new("bad");
    fs::write(
        setup.stack.path().join("bad"),
        format!(
            "auth sufficient {} nullok\n@include {}\n",
            module_with_state(&setup.stack.state_dir()),
            setup.stack.path().join("common-auth").display()
        ),
    )
    .expect("write");
    let u = users("bd");
    let secret = enroll(&setup, &u.enrolled, Mode::Home);
    let d = setup
        .drive(&u.enrolled)
        .tty("ssh")
        .rhost("192.0.2.1")
        .answer(&code(&secret))
        .run();
    expect(
        &d,
        OK,
        1,
        true,
        "sufficient: the code alone logs in, no password asked",
    );
    let d = setup
        .drive(&u.plain)
        .tty("ssh")
        .rhost("192.0.2.1")
        .answer("wrong")
        .run();
    expect(
        &d,
        DENIED,
        1,
        false,
        "sufficient + nullok skip: PAM_IGNORE does not end the stack",
    );
}

#[test]
fn sddm_example_takes_password_and_code_in_one_answer() {
    if !ready("sddm_example") {
        return;
    }
    let setup = Setup::example("sddm", "sddm");
    let u = users("sd");
    let display = Items {
        tty: Some(":0"),
        rhost: None,
    };
    password_and_code_in_one_answer(&setup, &u, Mode::Home, display);
}

/// A locker that sends its one field to every prompt (i3lock, swaylock): one question,
/// password and code together; the same cases as sddm.
#[test]
fn screen_locker_example_takes_password_and_code_in_one_answer() {
    if !ready("screen_locker_example") {
        return;
    }
    let setup = Setup::example("i3lock", "screen-locker");
    let u = users("lk");
    let display = Items {
        tty: Some(":0"),
        rhost: None,
    };
    password_and_code_in_one_answer(&setup, &u, Mode::Home, display);
}

#[test]
fn xrdp_example_takes_password_and_code_in_one_answer() {
    if !ready("xrdp_example") {
        return;
    }
    let setup = Setup::example("xrdp-sesman", "xrdp-sesman");
    let u = users("xr");
    let remote = Items {
        tty: None,
        rhost: Some("192.0.2.20"),
    };
    password_and_code_in_one_answer(&setup, &u, Mode::Home, remote);
}

#[test]
fn openvpn_example_takes_password_and_store_code_in_one_answer() {
    if !ready("openvpn_example") {
        return;
    }
    let setup = Setup::example("openvpn", "openvpn");
    let u = users("ov");
    let vpn = Items {
        tty: None,
        rhost: None,
    };
    password_and_code_in_one_answer(&setup, &u, Mode::Store, vpn);

    // The user's own ~/.google_authenticator is not what guards the VPN.
    enroll(&setup, &u.enrolled, Mode::Store);
    let home = enroll(&setup, &u.enrolled, Mode::Home);
    let d = setup
        .drive(&u.enrolled)
        .answer(&format!("{PASSWORD}{}", code(&home)))
        .run();
    expect(
        &d,
        DENIED,
        1,
        true,
        "a code from the home file does not pass",
    );
}

#[test]
fn cockpit_example_asks_password_then_code() {
    if !ready("cockpit_example") {
        return;
    }
    let setup = Setup::example("cockpit", "cockpit");
    let u = users("ck");
    let browser = Items {
        tty: None,
        rhost: Some("192.0.2.30"),
    };
    password_then_code(&setup, &u, Mode::Home, browser);
}

#[test]
fn polkit_example_asks_password_then_store_code() {
    if !ready("polkit_example") {
        return;
    }
    let setup = Setup::example("polkit-1", "polkit-1");
    let u = users("pk");
    // pkexec from a terminal inside SSH: a pseudo-terminal, no PAM_RHOST.
    let pkexec = Items {
        tty: Some("/dev/pts/5"),
        rhost: None,
    };
    password_then_code(&setup, &u, Mode::Store, pkexec);

    let home = enroll(&setup, &u.enrolled, Mode::Home);
    let d = with_items(setup.drive(&u.enrolled), pkexec)
        .answer(PASSWORD)
        .answer(&code(&home))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "a code from the home file does not pass",
    );
}

/// The sudo and su examples move people from home mode to the store without dropping
/// anybody's second factor: a user enrolled only at home is asked for that code, a user
/// with a store file for the store's, and only a user enrolled nowhere passes with the
/// password alone (the recipe in the sudo example's comments).
#[test]
fn sudo_and_su_examples_keep_asking_users_enrolled_at_home() {
    let test = "sudo_and_su_examples_keep_asking_users_enrolled_at_home";
    if !ready(test) {
        return;
    }
    let in_ssh = Items {
        tty: Some("/dev/pts/3"),
        rhost: None,
    };
    let setup = Setup::example("sudo", "sudo");
    let u = users("mh");
    // Enrolled at home only (the state of a host that ran a home-mode sudo stack).
    let home = enroll(&setup, &u.enrolled, Mode::Home);
    assert!(!setup.store_path(&u.enrolled).exists());
    let d = with_items(setup.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&wrong_totp(&home, now()))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "home-enrolled user, wrong code: denied, not skipped",
    );
    let d = with_items(setup.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&home))
        .run();
    expect(&d, OK, 2, true, "home-enrolled user, the home code");
    // Moved to the store: the store's code, asked once.
    let store = enroll(&setup, &u.enrolled, Mode::Store);
    let d = with_items(setup.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&store))
        .run();
    expect(&d, OK, 2, true, "moved to the store: one code, the store's");
    // Enrolled nowhere: the password alone, as before the migration.
    let d = with_items(setup.drive(&u.plain), in_ssh)
        .answer(PASSWORD)
        .run();
    expect(&d, OK, 1, false, "enrolled nowhere: the password alone");

    // su reads the target account's files the same way.
    let su = Setup::new("su");
    su.install(
        "su",
        &Rewrite {
            no_rootok: true,
            ..su.default_rewrite()
        },
    );
    let home = enroll(&su, &u.plain, Mode::Home);
    let d = with_items(su.drive(&u.plain), in_ssh)
        .answer(PASSWORD)
        .answer(&wrong_totp(&home, now()))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "su to a home-enrolled account: its code is asked",
    );
}

/// What a user past `max_failures=` is told.
const DISABLED_MESSAGE: &str =
    "too many failed codes; the second factor is disabled until an administrator resets it";

/// `totp-enroll --json` run by root for `user` into the store file `store_path`
/// (`-f`: replacing one): the new secret and the scratch codes it printed.
fn enroll_into_store(user: &TestUser, store_path: &std::path::Path) -> (String, Vec<String>) {
    let path = store_path.to_str().expect("a UTF-8 store path");
    let out = std::process::Command::new(&built().enroll)
        .arg("--json")
        .args(ENROLL_SCRIPTED)
        .args(["-f", "--user", &user.name, "--secret", path])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run totp-enroll");
    assert!(out.status.success(), "totp-enroll: {out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let secret = json["secret"].as_str().expect("secret").to_owned();
    let scratch = json["scratch_codes"]
        .as_array()
        .expect("scratch codes")
        .iter()
        .map(|c| c.to_string().replace('"', ""))
        .collect();
    (secret, scratch)
}

/// README "Before you enable it: your way back in", through the sudo example with the
/// store made by the real `totp-enroll` (in a directory whose chain is root's, as
/// `/var/lib/pam_totp` is). An admin past `max_failures=` (own typos) is refused by sudo
/// for a right code and a scratch code alike, and told so; a second admin with a code of
/// their own still gets root; from that root shell the real `totp-state reset` lets the
/// first admin's next code in. Then the admin's phone is lost: a scratch code passes sudo
/// once; re-enrolling only the home file (`totp-enroll --user NAME -f`, the README's
/// earlier advice) leaves the lost phone passing sudo (control); re-enrolling the store
/// file refuses it and the new phone's code passes.
#[test]
fn an_admin_locked_out_of_sudo_gets_back_the_documented_way() {
    let test = "an_admin_locked_out_of_sudo_gets_back_the_documented_way";
    if !ready(test) {
        return;
    }
    let root_chain = tempfile::Builder::new()
        .prefix("pam_totp-store")
        .tempdir_in("/var/lib")
        .expect("store under /var/lib");
    let setup = Setup {
        store: root_chain,
        ..Setup::new("sudo")
    };
    let capped = Rewrite {
        extra: "max_failures=3",
        ..setup.default_rewrite()
    };
    setup.install("sudo", &capped);
    let admins = users("bg");
    let (admin, second) = (&admins.enrolled, &admins.plain);
    let in_ssh = Items {
        tty: Some("/dev/pts/5"),
        rhost: None,
    };
    let sudo = |user: &TestUser, answer: &str| {
        with_items(setup.drive(user), in_ssh)
            .answer(PASSWORD)
            .answer(answer)
            .run()
    };
    let told = |d: &Drive| d.messages.iter().any(|(_, m)| m == DISABLED_MESSAGE);
    let (secret, scratch) = enroll_into_store(admin, &setup.store_path(admin));
    let (second_secret, _) = enroll_into_store(second, &setup.store_path(second));

    for typo in 0..3 {
        let d = sudo(admin, &wrong_totp(&secret, now()));
        expect(&d, DENIED, 2, true, &format!("typo {typo}"));
        assert!(!told(&d), "not capped yet: {d:?}");
    }
    let d = sudo(admin, &code(&secret));
    expect(&d, DENIED, 2, true, "past max_failures: a right code");
    assert!(told(&d), "the admin is told why: {d:?}");
    let d = sudo(admin, &scratch[0]);
    expect(&d, DENIED, 2, true, "past max_failures: a scratch code");
    assert!(told(&d), "{d:?}");

    // The cap is the first admin's alone: a second admin's code still gets root.
    let d = sudo(second, &code(&second_secret));
    expect(&d, OK, 2, true, "a second admin");
    // ... and from that root shell, the reset the message asks for.
    let out = setup.stack.state_tool(&["reset", "--user", &admin.name]);
    assert!(out.status.success(), "totp-state reset: {out:?}");
    let d = sudo(admin, &code(&secret));
    expect(&d, OK, 2, true, "after totp-state reset");

    // The phone is lost: a scratch code from the store file, once.
    let d = sudo(admin, &scratch[1]);
    expect(&d, OK, 2, true, "a scratch code");
    let d = sudo(admin, &scratch[1]);
    expect(&d, DENIED, 2, true, "the same scratch code again");
    // Re-enrolling the home file does not touch what sudo reads.
    let home = std::process::Command::new(&built().enroll)
        .args(ENROLL_SCRIPTED)
        .args(["-f", "--user", &admin.name])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run totp-enroll");
    assert!(home.status.success(), "totp-enroll (home): {home:?}");
    // The next step's code: the current one was used after the reset.
    let lost_phone = oathtool_totp(&secret, now() + 30, 30, 6, "sha1");
    let d = sudo(admin, &lost_phone);
    expect(
        &d,
        OK,
        2,
        true,
        "control: a new home file leaves the lost phone in sudo",
    );
    // Re-enrolling the store file is what stops it.
    let (new_secret, _) = enroll_into_store(admin, &setup.store_path(admin));
    // Refused as a wrong code, not as the replay it now also is.
    let d = sudo(admin, &lost_phone);
    assert!(
        !d.messages.iter().any(|(_, m)| m.contains("already used")),
        "refused for the secret, not as a replay: {d:?}"
    );
    expect(
        &d,
        DENIED,
        2,
        true,
        "the lost phone after the store's re-enrolment",
    );
    let d = sudo(admin, &code(&new_secret));
    expect(&d, OK, 2, true, "the new phone");
}

/// README's drifted-phone advice for the store: the user cannot write the store file,
/// so root resynchronises it (`totp-enroll resync --user NAME --secret STORE --service
/// sudo`, the real CLI) with two consecutive codes of the phone. Through the sudo
/// example: the phone's code five steps ahead is refused before (control) and its next
/// code passes after.
#[test]
fn a_drifted_phone_is_resynchronised_into_the_store_that_sudo_reads() {
    let test = "a_drifted_phone_is_resynchronised_into_the_store_that_sudo_reads";
    if !ready(test) {
        return;
    }
    let root_chain = tempfile::Builder::new()
        .prefix("pam_totp-store")
        .tempdir_in("/var/lib")
        .expect("store under /var/lib");
    let setup = Setup {
        store: root_chain,
        ..Setup::new("sudo")
    };
    setup.install("sudo", &setup.default_rewrite());
    let u = users("dr");
    let admin = &u.enrolled;
    let in_ssh = Items {
        tty: Some("/dev/pts/6"),
        rhost: None,
    };
    let store = setup.store_path(admin);
    let (secret, _) = enroll_into_store(admin, &store);
    // The phone's clock runs five steps ahead; its codes from one reading of the clock,
    // so that the two typed for the resync are consecutive.
    let t = now();
    let phone = |steps_on: u64| oathtool_totp(&secret, t + 150 + 30 * steps_on, 30, 6, "sha1");
    let sudo = |answer: &str| {
        with_items(setup.drive(admin), in_ssh)
            .answer(PASSWORD)
            .answer(answer)
            .run()
    };
    let d = sudo(&phone(0));
    expect(
        &d,
        DENIED,
        2,
        true,
        "control: the drifted phone before the resync",
    );

    // The README's command, `--service sudo` included: the example's two lines read two
    // files (the store, then the home file), and -s names the one to update.
    let view = setup.relative_includes_view();
    let out = std::process::Command::new(&built().enroll)
        .args(["resync", "--user", &admin.name, "--secret"])
        .arg(&store)
        .args(["--service", "sudo", "--pam-dir"])
        .arg(view.path())
        .args([phone(0), phone(1)])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run totp-enroll resync");
    assert!(out.status.success(), "totp-enroll resync: {out:?}");
    let d = sudo(&phone(2));
    expect(
        &d,
        OK,
        2,
        true,
        "the drifted phone's next code after the resync",
    );
}

/// A cloud VM whose root went read-only: the sudo example refuses the admin's right
/// code, and the admin is told that the host's state store failed rather than left to
/// suspect the phone (README: take the way in that does not need the code). The state
/// directory is a read-only bind mount; control: the same stack, directory and code on
/// the writable original log in.
#[test]
fn sudo_example_on_a_read_only_state_store_tells_the_admin_it_is_the_host() {
    let test = "sudo_example_on_a_read_only_state_store_tells_the_admin_it_is_the_host";
    if !ready(test) {
        return;
    }
    let setup = Setup::new("sudo");
    let writable = setup.stack.path().join("state-rw");
    let read_only = setup.stack.path().join("state-ro");
    for dir in [&writable, &read_only] {
        fs::create_dir(dir).expect("state dir");
    }
    let mount = |args: &[&str]| {
        let st = std::process::Command::new("mount")
            .args(args)
            .status()
            .expect("mount");
        assert!(st.success(), "mount {args:?}");
    };
    let (w, r) = (
        writable.to_str().expect("UTF-8"),
        read_only.to_str().expect("UTF-8"),
    );
    mount(&["--bind", w, r]);
    mount(&["-o", "remount,ro,bind", r]);
    // Unmounted however the test ends.
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(r);
    let u = users("ro");
    let admin = &u.enrolled;
    let in_ssh = Items {
        tty: Some("/dev/pts/7"),
        rhost: None,
    };
    let secret = enroll(&setup, admin, Mode::Store);
    let told = |d: &Drive| {
        d.messages.iter().any(|(_, m)| {
            m == "the code could not be checked: the login state store failed on this host (see the system log)"
        })
    };

    let state_dir = format!("state_dir={r}");
    setup.install(
        "sudo",
        &Rewrite {
            extra: &state_dir,
            ..setup.default_rewrite()
        },
    );
    let d = with_items(setup.drive(admin), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "a right code on a read-only state store",
    );
    assert!(told(&d), "told it is the host: {d:?}");

    let state_dir = format!("state_dir={w}");
    setup.install(
        "sudo",
        &Rewrite {
            extra: &state_dir,
            ..setup.default_rewrite()
        },
    );
    let d = with_items(setup.drive(admin), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(
        &d,
        OK,
        2,
        true,
        "control: the same code on the writable directory",
    );
    assert!(!told(&d), "{d:?}");
}

/// RHEL/Fedora's `system-auth` and `password-auth` (authselect) in the shape that
/// matters here: `sufficient pam_unix` (a right password ends the file with a success),
/// then `required pam_deny`. The real `pam_unix` checks the password.
const RHEL_SYSTEM_AUTH: &str = "\
auth required pam_env.so
auth sufficient pam_unix.so nullok
auth required pam_deny.so
";

/// What the examples tell RHEL/Fedora admins: keep the distribution's sudo file and add
/// the example's pam_totp lines after the password check, with `auth include
/// system-auth` (RHEL's stock sudo and polkit-1 line) changed to `auth substack`.
/// Under `include`, the `sufficient pam_unix` inside system-auth ends the whole stack on
/// a right password, so the lines after it never run: the password alone passes sudo.
/// Under `substack` it ends only the substack, and the code is asked.
#[test]
fn rhel_sufficient_password_needs_substack_before_the_code_line() {
    let test = "rhel_substack";
    if !ready(test) {
        return;
    }
    let u = users("rh");
    let rhel_sudo = |setup: &Setup, control: &str| {
        let system_auth = setup.stack.path().join("system-auth");
        fs::write(&system_auth, RHEL_SYSTEM_AUTH).expect("system-auth");
        let mut text = format!("auth {control} {}\n", system_auth.display());
        let example = example_text("sudo");
        let totp: Vec<&str> = active_lines(&example)
            .filter(|l| l.split_whitespace().any(|t| t == "pam_totp.so"))
            .collect();
        assert_eq!(totp.len(), 2, "the sudo example's store and home lines");
        for line in totp {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!("account include {}\n", system_auth.display()));
        setup.install_text(&text, &setup.default_rewrite());
    };
    let in_ssh = Items {
        tty: Some("/dev/pts/3"),
        rhost: None,
    };

    let include = Setup::new("sudo");
    rhel_sudo(&include, "include");
    let secret = enroll(&include, &u.enrolled, Mode::Store);
    let d = with_items(include.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&wrong_totp(&secret, now()))
        .run();
    expect(
        &d,
        OK,
        1,
        false,
        "include: the sufficient pam_unix ends the stack, the code is never asked",
    );
    let d = with_items(include.drive(&u.enrolled), in_ssh)
        .answer("not the password")
        .run();
    assert_eq!(d.result, DENIED, "include, wrong password (control): {d:?}");

    let substack = Setup::new("sudo");
    rhel_sudo(&substack, "substack");
    let secret = enroll(&substack, &u.enrolled, Mode::Store);
    let d = with_items(substack.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&wrong_totp(&secret, now()))
        .run();
    expect(&d, DENIED, 2, true, "substack: a wrong code is refused");
    password_then_code_after_a_substack(&substack, &u, in_ssh);

    // The tools say so (they used to say nothing): `totp-state audit` and `totp-enroll
    // check` name the sufficient line, the code line it passes, and the include to
    // change; under substack (the control) neither warns.
    let tools = |setup: &Setup| {
        let audit = std::process::Command::new(&built().state_tool)
            .args(["audit", "--service", "sudo", "--pam-dir"])
            .arg(setup.stack.path())
            .args(["--user", &u.enrolled.name])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run totp-state audit");
        let check = std::process::Command::new(&built().enroll)
            .args(["check", "--user", &u.enrolled.name, "--service", "sudo"])
            .arg("--pam-dir")
            .arg(setup.stack.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run totp-enroll check");
        [audit, check].map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
    };
    let system_auth = include.stack.path().join("system-auth");
    let sufficient = format!(
        "{}:2 (auth sufficient pam_unix.so) comes before the pam_totp.so line at {}:2",
        system_auth.display(),
        include.stack.path().join("sudo").display()
    );
    let advice = format!("\"auth substack {}\"", system_auth.display());
    for said in tools(&include) {
        assert!(
            said.contains(&sufficient) && said.contains(&advice),
            "include: the tools name the line that skips the code: {said}"
        );
    }
    for said in tools(&substack) {
        assert!(
            !said.contains("comes before the pam_totp.so line"),
            "substack (control): no warning: {said}"
        );
    }

    // The README's warning: under the substack, someone without the password reaches
    // the code, so with max_failures= their wrong codes disable the user's second
    // factor. Control: the user's own right password and code before that.
    let capped = Setup::new("sudo");
    let system_auth = capped.stack.path().join("system-auth");
    fs::write(&system_auth, RHEL_SYSTEM_AUTH).expect("system-auth");
    let sudo_lines: String = active_lines(&example_text("sudo"))
        .filter(|l| l.split_whitespace().any(|t| t == "pam_totp.so"))
        .map(|l| format!("{l}\n"))
        .collect();
    capped.install_text(
        &format!("auth substack {}\n{sudo_lines}", system_auth.display()),
        &Rewrite {
            extra: "max_failures=2",
            ..capped.default_rewrite()
        },
    );
    let secret = enroll(&capped, &u.enrolled, Mode::Store);
    let d = with_items(capped.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    expect(&d, OK, 2, true, "max_failures=2, control: the user logs in");
    let secret = enroll(&capped, &u.enrolled, Mode::Store);
    for attempt in 1..=2 {
        let d = with_items(capped.drive(&u.enrolled), in_ssh)
            .answer("not the password")
            .answer(&wrong_totp(&secret, now()))
            .run();
        expect(
            &d,
            DENIED,
            2,
            true,
            &format!("a stranger without the password, attempt {attempt}"),
        );
    }
    let d = with_items(capped.drive(&u.enrolled), in_ssh)
        .answer(PASSWORD)
        .answer(&code(&secret))
        .run();
    assert_eq!(
        d.result, DENIED,
        "the stranger's wrong codes disabled the user's second factor: {d:?}"
    );
    assert!(
        d.messages
            .iter()
            .any(|(_, m)| m.contains("disabled until an administrator resets it")),
        "the user is told why: {d:?}"
    );
}

/// No shipped stack has another module's line that ends the stack, or jumps over the
/// code line, before it when it succeeds: `totp-state audit` warns about none of them
/// but LightDM's stock `nopasswdlogin` line, whose comment says it skips the code.
/// `pam_rootok.so`'s `sufficient` before su's code line is exempt (root alone passes
/// it, who could become anyone anyway). Control: the same su stack with any other
/// module in pam_rootok's place is warned about.
#[test]
fn no_example_passes_its_code_line_on_another_modules_success() {
    if !require_root("no_example_passes_its_code_line") {
        return;
    }
    let audit = |setup: &Setup| {
        let out = std::process::Command::new(&built().state_tool)
            .args(["audit", "--service", &setup.service, "--pam-dir"])
            .arg(setup.stack.path())
            .args(["--user", "root"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run totp-state audit");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let warning = "comes before the pam_totp.so line";
    const CODE_ONLY: &str = "no auth module other than pam_totp.so";
    for &name in STACKS {
        let said = audit(&Setup::example(name, name));
        assert!(said.contains("root: "), "{name}: the audit ran: {said}");
        // Each example has another auth module, so a login every code line skips is
        // approved by it rather than denied for want of one.
        assert!(!said.contains(CODE_ONLY), "{name}: {said}");
        if name == "lightdm" {
            // LightDM's stock passwordless login, kept and commented in the example:
            // its members skip the code too, which the audit says once (a row and
            // standard error).
            assert_eq!(said.matches(warning).count(), 2, "{said}");
            assert!(
                said.contains("lightdm:34 (auth sufficient pam_succeed_if.so) "),
                "{said}"
            );
            continue;
        }
        assert!(!said.contains(warning), "{name}: {said}");
    }
    let su = Setup::new("su");
    su.install_text(
        &example_text("su").replace("pam_rootok.so", "pam_permit.so"),
        &su.default_rewrite(),
    );
    let said = audit(&su);
    assert!(
        said.contains(&format!("{}:", su.stack.path().join("su").display()))
            && said.contains("(auth sufficient pam_permit.so) ")
            && said.contains(warning),
        "control: {said}"
    );
}

/// The cases of [`password_then_code`] through a RHEL-shaped substack, whose
/// `required pam_deny` does not stop the stack: after a wrong password the code is asked
/// too (and the login fails whatever the answer).
fn password_then_code_after_a_substack(setup: &Setup, u: &Users, items: Items) {
    let user = &u.enrolled;
    let secret = enroll(setup, user, Mode::Store);
    let right = code(&secret);
    let d = with_items(setup.drive(user), items)
        .answer(PASSWORD)
        .answer(&right)
        .run();
    expect(&d, OK, 2, true, "substack: right password and right code");
    let d = with_items(setup.drive(user), items)
        .answer(PASSWORD)
        .answer(&right)
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "substack: the same code again (replay)",
    );

    let secret = enroll(setup, user, Mode::Store);
    let d = with_items(setup.drive(user), items)
        .answer("not the password")
        .answer(&code(&secret))
        .run();
    expect(
        &d,
        DENIED,
        2,
        true,
        "substack: a wrong password fails, though the code is still asked",
    );

    let d = with_items(setup.drive(&u.plain), items)
        .answer(PASSWORD)
        .run();
    expect(
        &d,
        OK,
        1,
        false,
        "substack, not enrolled, nullok: the password alone",
    );
    let d = with_items(setup.drive(&u.plain), items)
        .answer("wrong")
        .run();
    expect(
        &d,
        DENIED,
        1,
        false,
        "substack, not enrolled: a wrong password fails",
    );
}
