//! The module under a directory service, through the real libpam: a stand-in NSS module
//! (tests/nss/ptotpds.c, compiled here) serves aliases of a test account and a group
//! whose source can be switched to the ways real sources fail. It is loaded after
//! `files` through an nsswitch.conf bind-mounted in a private mount namespace around the
//! `pam-drive` child, so the host's name service is untouched.
//!
//! Every case that must be refused is prompted, then gets PAM_AUTH_ERR; each has a
//! control run that shows the same setup does skip or succeed when it should, so the
//! refusals cannot come from a broken stand-in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use system_tests::{
    Drive, Driver, ENROLL_SCRIPTED, SECRET_160, Stack, T0, TestUser, append_env_exec, code_at,
    in_private_mounts, require_root, require_tool, root_store, shadow_tool, syslog_message,
    totp_file, user_database_lock, with_syslog_capture, write_owned, wrong_totp,
};

/// The stand-in's service name in nsswitch.conf (`libnss_ptotpds.so.2`).
const SERVICE: &str = "ptotpds";

/// Milliseconds a slow directory takes for each `getgrgid`: one answer fits in the
/// walk's 10 s bound (`WALK_BOUND`), two do not. Just over half the bound, not 6 s:
/// the controls whose one slow answer must come in time then have nearly 5 s to spare
/// on a loaded machine (CI runs two tests at once on two cores), while two answers run
/// past the bound whatever the load (a sleep never ends early).
const SLOW_GID_MS: u64 = 5_200;

/// What the stand-in answers (written to its control file).
#[derive(Clone, Debug)]
struct Control {
    canonical: String,
    uid: u32,
    gid: u32,
    dir: PathBuf,
    aliases: Vec<String>,
    /// `ok`, `unavail`, `tryagain` or `silent`; `once`: the first `getpwnam` only.
    passwd: &'static str,
    /// As `passwd`, or `nogid` / `initdown`.
    group: &'static str,
    /// `getpwuid`: `ok` (not found here, `files` answers) or a failure as `passwd`.
    pwuid: &'static str,
    grname: String,
    grgid: u32,
    grmember: bool,
    /// Non-zero: `getgrnam` answers with a group of this gid and no member, the first
    /// of two groups with one name (the stand-in's `grfirst`).
    grfirst: u32,
    /// What `getgrgid` alone answers: a mode as `group`, or `nameless` (the group found,
    /// its `gr_name` NULL).
    grgidmode: &'static str,
    /// Milliseconds `getgrgid` waits before it answers (0: at once).
    grgidsleep: u64,
    /// Milliseconds `initgroups` waits before it answers (0: at once).
    initsleep: u64,
    /// Milliseconds `getgrnam` waits before it answers (0: at once).
    grnamsleep: u64,
}

/// The stand-in: its build, nsswitch.conf, control file, call log and rule files in one
/// root-owned directory (mode 0755, so lookups made under the target's file-system identity can
/// still reach it).
struct DirSvc {
    dir: tempfile::TempDir,
    control: Control,
}

impl DirSvc {
    fn new(u: &TestUser) -> DirSvc {
        DirSvc::built(u, &[])
    }

    /// The stand-in compiled with `cflags` added (`-DNO_GETGRGID`: no `getgrgid_r`).
    fn built(u: &TestUser, cflags: &[&str]) -> DirSvc {
        // Root-controlled from `/` down: the rule files written here must pass the
        // module's checks.
        let dir = system_tests::fleet::trusted_dir("pam_totp-dirsvc");
        let mut flags = vec![
            "-shared".into(),
            "-fPIC".into(),
            format!("-DSTATE_DIR=\"{}\"", dir.path().display()),
        ];
        flags.extend(cflags.iter().map(|f| (*f).to_owned()));
        system_tests::compile_c(
            "tests/nss/ptotpds.c",
            &dir.path().join(format!("libnss_{SERVICE}.so.2")),
            &flags,
            &[],
        );
        fs::write(
            dir.path().join("nsswitch.conf"),
            format!("passwd: files {SERVICE}\ngroup: files {SERVICE}\nshadow: files\n"),
        )
        .expect("write nsswitch.conf");
        let calls = dir.path().join("calls");
        fs::write(&calls, "").expect("calls");
        fs::set_permissions(&calls, fs::Permissions::from_mode(0o666)).expect("chmod calls");
        let control = Control {
            canonical: u.name.clone(),
            uid: u.uid,
            gid: u.gid,
            dir: u.home.clone(),
            aliases: aliases(&u.name),
            passwd: "ok",
            group: "ok",
            pwuid: "ok",
            grname: format!("{}g", u.name),
            grgid: 3_700_000 + std::process::id() % 100_000,
            grmember: true,
            grfirst: 0,
            grgidmode: "ok",
            grgidsleep: 0,
            initsleep: 0,
            grnamsleep: 0,
        };
        let ds = DirSvc { dir, control };
        ds.set(ds.control.clone());
        ds
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites the control file (the stand-in reads it on every call).
    fn set(&self, c: Control) {
        let mut text = format!(
            "canonical {}\nuid {}\ngid {}\ndir {}\npasswd {}\ngroup {}\npwuid {}\ngrname {}\ngrgid {}\ngrmember {}\ngrfirst {}\ngrgidmode {}\ngrgidsleep {}\ninitsleep {}\ngrnamsleep {}\n",
            c.canonical,
            c.uid,
            c.gid,
            c.dir.display(),
            c.passwd,
            c.group,
            c.pwuid,
            c.grname,
            c.grgid,
            u8::from(c.grmember),
            c.grfirst,
            c.grgidmode,
            c.grgidsleep,
            c.initsleep,
            c.grnamsleep
        );
        for a in &c.aliases {
            text.push_str(&format!("alias {a}\n"));
        }
        fs::write(self.path().join("control"), text).expect("write control");
    }

    fn with(&self, change: impl FnOnce(&mut Control)) {
        let mut c = self.control.clone();
        change(&mut c);
        self.set(c);
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn clear_calls(&self) {
        fs::write(self.path().join("calls"), "").expect("clear calls");
    }

    /// `driver` inside a private mount namespace whose /etc/nsswitch.conf is ours; the
    /// driver's environment is applied by `env` at the last exec (as the syslog capture
    /// does), with the stand-in's directory on the library path for NSS's dlopen.
    fn command(&self, driver: &Driver) -> Command {
        self.wrap(&driver.command())
    }

    /// Any command inside the namespace (see [`DirSvc::command`]).
    fn wrap(&self, inner: &Command) -> Command {
        let mut with_lib = Command::new("env");
        with_lib.arg(format!("LD_LIBRARY_PATH={}", self.path().display()));
        append_env_exec(&mut with_lib, inner);
        in_private_mounts(
            "mount --bind \"$1\" /etc/nsswitch.conf",
            &self.path().join("nsswitch.conf"),
            &with_lib,
        )
    }

    fn run(&self, driver: &Driver) -> Drive {
        let out = self.command(driver).output().expect("run unshare");
        Drive::ran(&out)
    }

    fn run_logged(&self, driver: &Driver) -> (Drive, Vec<String>) {
        let (out, lines) = with_syslog_capture(&self.command(driver));
        let lines = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
        (Drive::ran(&out), lines)
    }
}

/// Spellings a directory service resolves to one account: case-insensitive, NetBIOS
/// domain prefix, UPN-style suffix.
fn aliases(name: &str) -> Vec<String> {
    vec![
        name.to_uppercase(),
        format!("AD\\{name}"),
        format!("{name}@AD"),
    ]
}

/// The two pam.d layouts: the user's own file, and a root-owned store keyed by name.
enum Mode {
    Home,
    Store(tempfile::TempDir),
}

impl Mode {
    fn both() -> [Mode; 2] {
        [Mode::Home, Mode::Store(root_store())]
    }

    fn name(&self) -> &'static str {
        match self {
            Mode::Home => "home",
            Mode::Store(_) => "store",
        }
    }

    fn args(&self, extra: &str) -> String {
        match self {
            Mode::Home => extra.to_owned(),
            Mode::Store(dir) => format!(
                "user=root secret={}/${{USER}} {extra}",
                dir.path().display()
            ),
        }
    }

    /// The canonical user's secret file.
    fn enroll(&self, u: &TestUser) {
        let text = totp_file(SECRET_160);
        match self {
            Mode::Home => {
                u.write_secret(&text, 0o600);
            }
            Mode::Store(dir) => {
                write_owned(&dir.path().join(&u.name), text.as_bytes(), 0, 0, 0o600)
            }
        }
    }

    fn unenroll(&self, u: &TestUser) {
        let _ = match self {
            Mode::Home => fs::remove_file(u.secret_path()),
            Mode::Store(dir) => fs::remove_file(dir.path().join(&u.name)),
        };
    }
}

/// One login against a probe stack, at `at`, answering `answer`.
fn login(ds: &DirSvc, args: &str, user: &str, answer: &str, at: u64) -> Drive {
    let stack = Stack::probe("svc", args);
    ds.run(&Driver::new(&stack, "svc", user).answer(answer).at(at))
}

/// Collects failed expectations so one run reports every broken case at once.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn refused(&mut self, what: &str, d: &Drive) {
        if d.module_code() != "PAM_AUTH_ERR" || d.prompts != 1 {
            self.0.push(format!(
                "{what}: want prompted then PAM_AUTH_ERR, got {} after {} prompt(s)",
                d.module_code(),
                d.prompts
            ));
        }
    }

    fn expect(&mut self, what: &str, d: &Drive, code: &str) {
        if d.module_code() != code {
            self.0.push(format!(
                "{what}: want {code}, got {} ({d:?})",
                d.module_code()
            ));
        }
    }

    fn check(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn setup(test: &str, tag: &str) -> Option<(TestUser, DirSvc)> {
    if !require_root(test) || !require_tool(test, "cc") || !require_tool(test, "unshare") {
        return None;
    }
    let u = TestUser::create(tag);
    let ds = DirSvc::new(&u);
    Some((u, ds))
}

/// The reasons `totp-state audit --json`'s output `out` gives for `u`.
fn audit_reasons(out: &std::process::Output, u: &TestUser) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["user"] == u.name.as_str())
        .flat_map(|v| {
            v["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A root-owned rule file in the stand-in's (root-owned, 0755) directory.
fn rules_file(ds: &DirSvc, name: &str, rules: &str) -> PathBuf {
    let p = ds.path().join(name);
    write_owned(&p, rules.as_bytes(), 0, 0, 0o644);
    p
}

/// Issue case 1: every spelling of the account reaches the canonical account's file, in
/// both modes, with and without nullok; a wrong code is refused, the right one accepted.
#[test]
fn aliases_reach_the_canonical_account() {
    let Some((u, ds)) = setup("aliases_reach_the_canonical_account", "dsa") else {
        return;
    };
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        mode.enroll(&u);
        for nullok in ["", "nullok"] {
            let args = mode.args(nullok);
            for typed in aliases(&u.name).iter().chain([&u.name]) {
                at += 90;
                let what = format!("{} [{nullok}] as {typed:?}", mode.name());
                let d = login(&ds, &args, typed, &wrong_totp(SECRET_160, at), at);
                f.refused(&format!("{what}, wrong code"), &d);
                let d = login(&ds, &args, typed, &code_at(SECRET_160, at), at);
                f.expect(&format!("{what}, right code"), &d, "PAM_SUCCESS");
            }
        }
        mode.unenroll(&u);
    }
    f.check();
}

/// R4: a file in the home is opened with the user's full group list or not at all. A
/// group source that fails while the list is gathered (a server that says "try again", a
/// refused connection) would leave groups out, and fewer groups can mean more access (a
/// file or ACL entry that denies a group what it allows others): the right code is
/// denied and the log names the name service. Sources that answer, and one that fails
/// without a trace (which cannot be told from "not found"), log in. Store mode with
/// `user=root` opens as root and looks no group up.
#[test]
fn a_group_list_a_failing_source_may_have_cut_short_denies() {
    let Some((u, ds)) = setup(
        "a_group_list_a_failing_source_may_have_cut_short_denies",
        "dsi",
    ) else {
        return;
    };
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        mode.enroll(&u);
        let stack = Stack::probe("svc", &mode.args(""));
        for group in ["ok", "unavail", "tryagain", "initdown"] {
            at += 90;
            ds.with(|c| c.group = group);
            let what = format!("{} with the group source {group}", mode.name());
            let (d, lines) = ds.run_logged(
                &Driver::new(&stack, "svc", &u.name)
                    .answer(&code_at(SECRET_160, at))
                    .at(at),
            );
            let cut_short = matches!(mode, Mode::Home) && matches!(group, "tryagain" | "initdown");
            if !cut_short {
                f.expect(&format!("{what}: control"), &d, "PAM_SUCCESS");
                continue;
            }
            f.refused(&what, &d);
            if !lines.iter().any(|l| {
                l.contains("group source of the name service") && l.contains("nsswitch.conf")
            }) {
                f.0.push(format!("{what}: the name service is not named: {lines:?}"));
            }
        }
        mode.unenroll(&u);
    }
    f.check();
}

/// Log lines name the canonical account, never the typed spelling.
#[test]
fn logs_name_the_canonical_account() {
    let Some((u, ds)) = setup("logs_name_the_canonical_account", "dsl") else {
        return;
    };
    let mode = Mode::Store(root_store());
    mode.enroll(&u);
    let typed = u.name.to_uppercase();
    let stack = Stack::probe("svc", &mode.args(""));
    let at = T0 + 300;
    let (d, lines) = ds.run_logged(
        &Driver::new(&stack, "svc", &typed)
            .answer(&code_at(SECRET_160, at))
            .at(at),
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {lines:?}");
    let accepted = format!("accepted time-based code for {} ", u.name);
    assert!(lines.iter().any(|l| l.contains(&accepted)), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&typed)), "{lines:?}");
}

/// An NSS error for the user (as opposed to "no such user") is prompted and denied in
/// both modes, with and without nullok, even when an access rule skips everybody.
#[test]
fn name_service_errors_for_the_user_deny() {
    let Some((u, ds)) = setup("name_service_errors_for_the_user_deny", "dse") else {
        return;
    };
    let everybody = rules_file(&ds, "all.conf", "+ : ALL : ALL\n");
    let typed = u.name.to_uppercase();
    let mut f = Failures::default();
    for mode in Mode::both() {
        for nullok in ["", "nullok"] {
            for rules in ["", &format!("accessfile={}", everybody.display())] {
                let args = mode.args(&format!("{nullok} {rules}"));
                // Control: with the directory answering, the access rule skips.
                if !rules.is_empty() {
                    ds.with(|_| {});
                    let d = login(&ds, &args, &typed, "123456", T0);
                    f.expect(
                        &format!("{} [{nullok}] {rules}: control", mode.name()),
                        &d,
                        "PAM_IGNORE",
                    );
                }
                for passwd in ["unavail", "tryagain"] {
                    ds.with(|c| c.passwd = passwd);
                    let d = login(&ds, &args, &typed, "123456", T0);
                    f.refused(
                        &format!("{} [{nullok}] {rules}: passwd {passwd}", mode.name()),
                        &d,
                    );
                }
            }
        }
    }
    f.check();
    // The log says it was the name service, not an unknown user, so tools that count
    // failed attempts (the fail2ban filter) do not ban everybody during an outage.
    ds.with(|c| c.passwd = "unavail");
    let stack = Stack::probe("svc", "");
    let (d, lines) = ds.run_logged(
        &Driver::new(&stack, "svc", &typed)
            .answer("123456")
            .rhost("192.0.2.30")
            .at(T0),
    );
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("code not verified (name service error)")
                && l.contains("192.0.2.30")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("(unknown user)")),
        "{lines:#?}"
    );
}

/// Store mode and a name NSS does not know: the name still selects a file (GA allows
/// users outside NSS), but nullok never turns its absence into a skip; a source that
/// fails without saying so looks the same and is refused the same way.
#[test]
fn store_mode_name_unknown_to_nss_is_not_excused_by_nullok() {
    let Some((u, ds)) = setup(
        "store_mode_name_unknown_to_nss_is_not_excused_by_nullok",
        "dsu",
    ) else {
        return;
    };
    let mode = Mode::Store(root_store());
    let args = mode.args("nullok");
    let mut f = Failures::default();
    // Control: a known account without a file is skipped under nullok, whatever the spelling.
    for typed in [u.name.clone(), u.name.to_uppercase()] {
        let d = login(&ds, &args, &typed, "123456", T0);
        f.expect(
            &format!("known {typed:?}, not enrolled: control"),
            &d,
            "PAM_IGNORE",
        );
    }
    let d = login(&ds, &args, &format!("{}-nobody", u.name), "123456", T0);
    f.refused("name unknown to every source", &d);
    ds.with(|c| c.passwd = "silent");
    let d = login(&ds, &args, &u.name.to_uppercase(), "123456", T0);
    f.refused("alias while the source fails silently", &d);
    // Home mode has no file to look for without an account: refused as before.
    let d = login(
        &ds,
        &Mode::Home.args("nullok"),
        &u.name.to_uppercase(),
        "123456",
        T0,
    );
    f.refused("home mode, alias while the source fails silently", &d);
    f.check();
}

/// Issue case 2: a skip because the user is *not* in a group needs a complete answer.
/// The user is a member only through the stand-in; each failure of that source must
/// lead to the code being asked for, for every option that skips on non-membership.
#[test]
fn non_membership_skips_need_a_complete_answer() {
    let Some((u, ds)) = setup("non_membership_skips_need_a_complete_answer", "dsg") else {
        return;
    };
    let g = ds.control.grname.clone();
    let except = rules_file(&ds, "except.conf", &format!("+ : ALL EXCEPT ({g}) : ALL\n"));
    let minus = rules_file(
        &ds,
        "minus.conf",
        &format!("- : ({g}) : ALL\n+ : ALL : ALL\n"),
    );
    let options = [
        format!("require_group={g}"),
        format!("accessfile={}", except.display()),
        format!("accessfile={}", minus.display()),
    ];
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        mode.enroll(&u);
        for nullok in ["", "nullok"] {
            for option in &options {
                let args = mode.args(&format!("{nullok} {option}"));
                let what = |case: &str| format!("{} [{nullok}] {option}: {case}", mode.name());
                at += 90;
                let wrong = wrong_totp(SECRET_160, at);
                // Controls: a proven non-member skips; a proven member is asked.
                ds.with(|c| c.grmember = false);
                f.expect(
                    &what("proven non-member"),
                    &login(&ds, &args, &u.name, &wrong, at),
                    "PAM_IGNORE",
                );
                ds.with(|_| {});
                f.refused(&what("member"), &login(&ds, &args, &u.name, &wrong, at));
                for group in ["unavail", "tryagain", "silent", "nogid", "initdown"] {
                    ds.with(|c| c.group = group);
                    f.refused(&what(group), &login(&ds, &args, &u.name, &wrong, at));
                    // The same through an alias (the rule subject is the canonical name).
                    let alias = u.name.to_uppercase();
                    f.refused(
                        &what(&format!("{group} as {alias}")),
                        &login(&ds, &args, &alias, &wrong, at),
                    );
                }
            }
        }
        mode.unenroll(&u);
    }
    f.check();
}

/// A skip because the user *is* in a group is unchanged: a proven member skips; a
/// member the failing source cannot vouch for is asked for the code.
#[test]
fn membership_skips_need_proven_membership() {
    let Some((u, ds)) = setup("membership_skips_need_proven_membership", "dsm") else {
        return;
    };
    let g = ds.control.grname.clone();
    let plus = rules_file(&ds, "plus.conf", &format!("+ : ({g}) : ALL\n"));
    let options = [
        format!("skip_group={g}"),
        format!("accessfile={}", plus.display()),
    ];
    let mut f = Failures::default();
    for mode in Mode::both() {
        mode.enroll(&u);
        for nullok in ["", "nullok"] {
            for option in &options {
                let args = mode.args(&format!("{nullok} {option}"));
                let what = |case: &str| format!("{} [{nullok}] {option}: {case}", mode.name());
                let wrong = wrong_totp(SECRET_160, T0);
                ds.with(|_| {});
                f.expect(
                    &what("member"),
                    &login(&ds, &args, &u.name, &wrong, T0),
                    "PAM_IGNORE",
                );
                for group in ["unavail", "tryagain", "silent", "nogid", "initdown"] {
                    ds.with(|c| c.group = group);
                    f.refused(&what(group), &login(&ds, &args, &u.name, &wrong, T0));
                }
            }
        }
        mode.unenroll(&u);
    }
    f.check();
}

/// `skip_group=` skips on a proven membership only: a non-member is asked for the code
/// whether or not the non-membership is proven, so the walk that would prove the user's
/// group list complete (each source's `initgroups_dyn` on its own) is not made. The
/// stand-in sees one `initgroups` of the user (glibc's `getgrouplist`), where it saw
/// two. Controls: `require_group=` of the same non-member needs that proof, asks the
/// stand-in twice and skips; the member skips under `skip_group=`; a group list the
/// directory left incomplete still skips no one under `skip_group=`.
#[test]
fn a_skip_group_asks_no_source_for_a_non_membership() {
    let Some((u, ds)) = setup("a_skip_group_asks_no_source_for_a_non_membership", "dsx") else {
        return;
    };
    let mode = Mode::Store(root_store());
    mode.enroll(&u);
    let g = ds.control.grname.clone();
    let skip = mode.args(&format!("skip_group={g}"));
    let require = mode.args(&format!("require_group={g}"));
    let mut at = T0;
    let mut run = |args: &str| {
        at += 90;
        ds.clear_calls();
        let d = login(&ds, args, &u.name, &wrong_totp(SECRET_160, at), at);
        let initgroups = ds
            .calls()
            .iter()
            .filter(|c| c.starts_with("initgroups "))
            .count();
        (d, initgroups)
    };
    let mut f = Failures::default();
    ds.with(|c| c.grmember = false);
    let (d, asked) = run(&skip);
    f.refused("skip_group, non-member", &d);
    if asked != 1 {
        f.0.push(format!(
            "skip_group, non-member: {asked} initgroups calls, want 1"
        ));
    }
    let (d, asked) = run(&require);
    f.expect("require_group, non-member: control", &d, "PAM_IGNORE");
    if asked != 2 {
        f.0.push(format!(
            "require_group, non-member: {asked} initgroups calls, want 2"
        ));
    }
    ds.with(|_| {});
    f.expect("skip_group, member: control", &run(&skip).0, "PAM_IGNORE");
    ds.with(|c| c.group = "unavail");
    f.refused("skip_group, directory unavail: control", &run(&skip).0);
    f.check();
}

/// A home-mode login the group rules did not skip opens the user's file under the
/// user's identity, whose group list is `getgrouplist`'s: the list the rules asked for
/// moments before is used, not asked for again. The stand-in sees one `initgroups` of
/// a `skip_group=` non-member whose right code logs in, where it saw two. Controls:
/// without group rules the identity alone asks once; a source that says "try again"
/// while the rules list the groups still denies the file login (the incomplete list is
/// asked again, and refused).
#[test]
fn a_home_login_asks_the_group_list_once_for_the_rules_and_the_identity() {
    let Some((u, ds)) = setup(
        "a_home_login_asks_the_group_list_once_for_the_rules_and_the_identity",
        "dsj",
    ) else {
        return;
    };
    Mode::Home.enroll(&u);
    let g = ds.control.grname.clone();
    let skip = format!("skip_group={g}");
    let mut at = T0;
    let mut run = |args: &str| {
        at += 90;
        ds.clear_calls();
        let d = login(&ds, args, &u.name, &code_at(SECRET_160, at), at);
        let initgroups = ds
            .calls()
            .iter()
            .filter(|c| c.starts_with("initgroups "))
            .count();
        (d, initgroups)
    };
    let mut f = Failures::default();
    ds.with(|c| c.grmember = false);
    let (d, asked) = run(&skip);
    f.expect("skip_group, non-member, right code", &d, "PAM_SUCCESS");
    if asked != 1 {
        f.0.push(format!(
            "skip_group, non-member: {asked} initgroups calls, want 1"
        ));
    }
    let (d, asked) = run("");
    f.expect("no group rules, right code: control", &d, "PAM_SUCCESS");
    if asked != 1 {
        f.0.push(format!("no group rules: {asked} initgroups calls, want 1"));
    }
    ds.with(|c| {
        c.grmember = false;
        c.group = "tryagain";
    });
    let (d, _) = run(&skip);
    f.expect("skip_group, source tryagain: control", &d, "PAM_AUTH_ERR");
    f.check();
}
/// One group named by `skip_group=` and `require_group=` is asked two questions: the
/// skip group's (a membership only, which leaves a non-member unknown) and the require
/// group's (a non-membership too). The answer to the first is not the answer to the
/// second: a proven non-member skips under `require_group=`, as it did when both asked
/// the same question, in both modes, and `totp-state audit` (through the same sources)
/// reports each skip, and only those, as its login gets it. Controls: a member skips
/// (the skip group); a non-member the directory cannot vouch for (it says "try again",
/// or it resolves the group but its group list is down) is asked for the code.
#[test]
fn one_group_in_skip_group_and_require_group_gets_each_question_answered() {
    let Some((u, ds)) = setup(
        "one_group_in_skip_group_and_require_group_gets_each_question_answered",
        "dsp",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        mode.enroll(&u);
        let stack = Stack::probe(
            "svc",
            &mode.args(&format!("skip_group={g} require_group={g}")),
        );
        let mut run = |what: String, skips: Option<&str>| {
            at += 90;
            let wrong = wrong_totp(SECRET_160, at);
            let d = ds.run(&Driver::new(&stack, "svc", &u.name).answer(&wrong).at(at));
            match skips {
                Some(_) => f.expect(&what, &d, "PAM_IGNORE"),
                None => f.refused(&what, &d),
            }
            let mut audit = system_tests::audit_command(stack.path());
            audit.args(["--user", &u.name]);
            let out = ds.wrap(&audit).output().expect("totp-state audit");
            let verdicts = system_tests::audit_verdicts(&out.stdout);
            let reasons = verdicts.get(&u.name).map(|v| v.1.as_str()).unwrap_or("");
            let said = match skips {
                Some(reason) => reasons.contains(&format!(
                    "the code is never asked for: group rule: {reason}"
                )),
                None => !reasons.contains("never asked for") && !reasons.is_empty(),
            };
            if !said {
                f.0.push(format!("{what}: audit: {out:?}"));
            }
        };
        let name = mode.name();
        ds.with(|c| c.grmember = false);
        run(
            format!("{name}: proven non-member"),
            Some("member of no require group"),
        );
        ds.with(|_| {});
        run(
            format!("{name}: member: control"),
            Some(&format!("member of skip group {g}")),
        );
        for group in ["tryagain", "initdown"] {
            ds.with(|c| {
                c.grmember = false;
                c.group = group;
            });
            run(format!("{name}: non-member, {group}: control"), None);
        }
        mode.unenroll(&u);
    }
    f.check();
}

/// No group lookups when no rule or option names a group: the stand-in logs every call,
/// and a login that a rule without group items skips makes none, not even the user's
/// group list for the credential switch (that comes only after the skip rules).
#[test]
fn rules_without_groups_make_no_group_lookups() {
    let Some((u, ds)) = setup("rules_without_groups_make_no_group_lookups", "dsn") else {
        return;
    };
    let g = ds.control.grname.clone();
    let lan = rules_file(
        &ds,
        "lan.conf",
        "+ : ALL : 10.0.0.0/8\n+ : ALL EXCEPT root : 192.168.0.0/16\n",
    );
    let grouped = rules_file(&ds, "grouped.conf", &format!("+ : ({g}) : 10.0.0.0/8\n"));
    let typed = u.name.to_uppercase();
    for mode in Mode::both() {
        mode.enroll(&u);
        let run = |rules: &Path| {
            ds.clear_calls();
            let args = mode.args(&format!("accessfile={}", rules.display()));
            let stack = Stack::probe("svc", &args);
            let driver = Driver::new(&stack, "svc", &typed)
                .answer("123456")
                .rhost("10.1.2.3")
                .at(T0);
            (ds.run(&driver), ds.calls())
        };
        let (d, calls) = run(&lan);
        assert_eq!(d.module_code(), "PAM_IGNORE", "{}: {d:?}", mode.name());
        // The stand-in was consulted (the alias lives only there), so the log works.
        assert!(
            calls.contains(&format!("getpwnam {typed}")),
            "{}: {calls:?}",
            mode.name()
        );
        let group_calls: Vec<&String> = calls
            .iter()
            .filter(|c| {
                c.starts_with("getgrnam ")
                    || c.starts_with("getgrgid ")
                    || c.starts_with("initgroups ")
            })
            .collect();
        assert!(group_calls.is_empty(), "{}: {calls:?}", mode.name());
        // Control: a group item makes the lookup.
        let (d, calls) = run(&grouped);
        assert_eq!(d.module_code(), "PAM_IGNORE", "{}: {d:?}", mode.name());
        assert!(
            calls.contains(&format!("getgrnam {g}")),
            "{}: {calls:?}",
            mode.name()
        );
        mode.unenroll(&u);
    }
}

/// The same on the host's own name service, seen by strace: a skip by a rule without
/// group items never opens the group database (nor loads a module for it), a group rule
/// does.
#[test]
fn skip_without_group_rules_never_opens_the_group_database() {
    let test = "skip_without_group_rules_never_opens_the_group_database";
    let Some((u, ds)) = setup(test, "dss") else {
        return;
    };
    if !require_tool(test, "strace") {
        return;
    }
    let lan = rules_file(&ds, "lan.conf", "+ : ALL : 10.0.0.0/8\n");
    // useradd gave the user a primary group of the same name.
    let grouped = rules_file(
        &ds,
        "grouped.conf",
        &format!("+ : ({}) : 10.0.0.0/8\n", u.name),
    );
    for mode in Mode::both() {
        let opens = |rules: &Path| -> Vec<String> {
            let args = mode.args(&format!("accessfile={}", rules.display()));
            let stack = Stack::probe("svc", &args);
            let driver = Driver::login(&stack, &u, "1").rhost("10.1.2.3");
            let inner = driver.command();
            let trace = ds.path().join("trace");
            let out = Command::new("strace")
                .args(["-f", "-e", "trace=openat,open", "-o"])
                .arg(&trace)
                .arg(inner.get_program())
                .args(inner.get_args())
                .stdin(Stdio::null())
                .output()
                .expect("strace");
            assert_eq!(
                Drive::parse(&out).module_code(),
                "PAM_IGNORE",
                "{} {}: {out:?}",
                mode.name(),
                rules.display()
            );
            let text = fs::read_to_string(&trace).unwrap_or_default();
            // Only what happens once the module is loaded.
            let after = text
                .split_once("libpam_totp.so")
                .map_or("", |(_, rest)| rest);
            after.lines().map(str::to_owned).collect()
        };
        let skip = opens(&lan);
        assert!(!skip.is_empty(), "{}: no trace", mode.name());
        assert!(
            !skip
                .iter()
                .any(|l| l.contains("/etc/group") || l.contains("libnss_")),
            "{}: {skip:#?}",
            mode.name()
        );
        // Control: membership of the primary group is proven from /etc/group.
        let grouped = opens(&grouped);
        assert!(
            grouped.iter().any(|l| l.contains("/etc/group")),
            "{}: {grouped:#?}",
            mode.name()
        );
    }
}

/// Issue case 3: with nullok, only a missing file in a reachable, checked directory is
/// "not enrolled". A missing or unreachable directory is refused, and logged once.
#[test]
fn unreachable_directories_are_not_absent() {
    let Some((u, ds)) = setup("unreachable_directories_are_not_absent", "dsd") else {
        return;
    };
    let typed = u.name.to_uppercase();
    let base = ds.path();
    // A root-owned symlink to a file system that is not there (/home -> unmounted).
    std::os::unix::fs::symlink(base.join("unmounted/homes"), base.join("homes")).expect("symlink");
    // A directory the target cannot search.
    let locked = base.join("locked");
    fs::create_dir(&locked).expect("mkdir");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("chmod");
    let locked_home = locked.join(&u.name);
    fs::create_dir(&locked_home).expect("mkdir");
    std::os::unix::fs::chown(&locked_home, Some(u.uid), Some(u.gid)).expect("chown");

    let mut f = Failures::default();
    let home_cases = [
        (
            "home behind a symlink to nowhere",
            base.join("homes").join(&u.name),
        ),
        ("home directory missing", base.join("nohome").join(&u.name)),
        ("home the user cannot reach", locked_home.clone()),
    ];
    // Control: the real home without a file is skipped under nullok.
    ds.with(|_| {});
    f.expect(
        "home reachable, no file: control",
        &login(&ds, "nullok", &typed, "123456", T0),
        "PAM_IGNORE",
    );
    for nullok in ["", "nullok"] {
        for (what, dir) in &home_cases {
            ds.with(|c| c.dir = dir.clone());
            f.refused(
                &format!("{what} [{nullok}]"),
                &login(&ds, nullok, &typed, "123456", T0),
            );
        }
    }
    ds.with(|_| {});
    let store = root_store();
    let args =
        |dir: &Path, nullok: &str| format!("user=root secret={}/${{USER}} {nullok}", dir.display());
    f.expect(
        "store reachable, no file: control",
        &login(&ds, &args(store.path(), "nullok"), &typed, "123456", T0),
        "PAM_IGNORE",
    );
    for nullok in ["", "nullok"] {
        let missing = args(&store.path().join("missing"), nullok);
        f.refused(
            &format!("store directory missing [{nullok}]"),
            &login(&ds, &missing, &typed, "123456", T0),
        );
    }
    f.check();

    // Logged once per login, saying what is missing.
    ds.with(|c| c.dir = base.join("nohome").join(&u.name));
    let stack = Stack::probe("svc", "nullok");
    let (d, lines) = ds.run_logged(&Driver::new(&stack, "svc", &typed).answer("123456").at(T0));
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let why: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("does not exist"))
        .collect();
    assert_eq!(why.len(), 1, "{lines:?}");
    assert!(why[0].contains("nohome"), "{lines:?}");
}

/// totp-enroll follows the same rule: a store file named after an alias would never be
/// read, so it is refused; named after the canonical account, the alias can log in.
#[test]
fn enrolling_an_alias_into_a_store_uses_the_canonical_name() {
    let test = "enrolling_an_alias_into_a_store_uses_the_canonical_name";
    let Some((u, ds)) = setup(test, "dsy") else {
        return;
    };
    if !require_tool(test, "oathtool") {
        return;
    }
    // Enrollment wants the whole chain root-owned and closed (not under /tmp).
    let store = tempfile::Builder::new()
        .prefix("pam_totp-test-store")
        .tempdir_in("/var/lib")
        .expect("tempdir");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let typed = u.name.to_uppercase();
    let enroll = |file: &str| {
        let mut cmd = Command::new(&system_tests::built().enroll);
        cmd.args(ENROLL_SCRIPTED)
            .arg("--json")
            .args(["--user", &typed, "-s"])
            .arg(store.path().join(file));
        ds.wrap(&cmd).output().expect("run totp-enroll")
    };
    let out = enroll(&typed);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("\"{}\"", u.name)),
        "{out:?}"
    );
    assert!(!store.path().join(&typed).exists());

    let out = enroll(&u.name);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let secret = text
        .split_once("\"secret\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(s, _)| s.to_owned())
        .expect("secret in the JSON output");
    let mode = Mode::Store(store);
    let stack = Stack::probe("svc", &mode.args(""));
    let code = system_tests::oathtool_totp(&secret, system_tests::now(), 30, 6, "sha1");
    let d = ds.run(&Driver::new(&stack, "svc", &typed).answer(&code));
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// B4 / R8: a directory service answering with a hostile home (empty, relative, with
/// `..`, even one that resolves to the real home) for an alias of the account: prompted,
/// then denied, with and without `nullok`, never a skip; the log names the unusable
/// home or the secret path it would expand into. Control: the same alias with the real home logs in.
#[test]
fn hostile_homes_from_a_directory_service_deny_without_a_skip() {
    let Some((u, ds)) = setup(
        "hostile_homes_from_a_directory_service_deny_without_a_skip",
        "dsh",
    ) else {
        return;
    };
    Mode::Home.enroll(&u);
    let typed = u.name.to_uppercase();
    let mut at = T0;
    for nullok in ["", "nullok"] {
        at += 90;
        let d = login(&ds, nullok, &typed, &code_at(SECRET_160, at), at);
        assert_eq!(d.module_code(), "PAM_SUCCESS", "control [{nullok}]: {d:?}");
    }
    let real = u.home.display().to_string();
    let name = u
        .home
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let dotdot = format!("{real}/../{name}");
    let relative = real.trim_start_matches('/').to_owned();
    let mut f = Failures::default();
    for dir in [
        "",
        "relative/home",
        relative.as_str(),
        dotdot.as_str(),
        "/nonexistent/../etc",
    ] {
        ds.with(|c| c.dir = PathBuf::from(dir));
        for nullok in ["", "nullok"] {
            at += 90;
            let stack = Stack::probe("svc", nullok);
            let (d, lines) = ds.run_logged(
                &Driver::new(&stack, "svc", &typed)
                    .answer(&code_at(SECRET_160, at))
                    .at(at),
            );
            let what = format!("pw_dir {dir:?} [{nullok}]");
            f.refused(&what, &d);
            if !lines.iter().any(|l| {
                l.contains(&u.name)
                    && (l.contains("is not an absolute path")
                        || l.contains("contains a .. component"))
            }) {
                // The cause: the home itself, or the secret path it would expand into.
                f.0.push(format!("{what}: the log names no cause: {lines:?}"));
            }
        }
    }
    ds.with(|c| c.dir = u.home.clone());
    f.check();
}

/// Migration from google-authenticator, through libpam with the stand-in directory
/// service: GA put the name typed at login into `secret=…/${USER}`, so a store migrated
/// from it may hold `ALICE` where the name service answers `alice`. Such a file must not
/// read as "not enrolled", or `nullok` would skip the code: the alias is asked for a
/// code and denied, and the log names the file to rename. Both of GA's layouts (a
/// root-owned store with `user=root`, and per-user files opened as the user), with and
/// without `nullok`. Controls: renamed to the canonical name, the same login succeeds;
/// with no file under either name, `nullok` skips as before.
#[test]
fn a_file_named_by_the_typed_spelling_is_never_a_nullok_skip() {
    let Some((u, ds)) = setup(
        "a_file_named_by_the_typed_spelling_is_never_a_nullok_skip",
        "dst",
    ) else {
        return;
    };
    let typed = u.name.to_uppercase();
    let mut at = T0;
    // (layout, the store's owner and mode, the files' owner, the module's owner option)
    for (layout, owner) in [("user=root store", 0), ("files of the users", u.uid)] {
        for nullok in ["", "nullok"] {
            let store = root_store();
            if owner != 0 {
                fs::set_permissions(store.path(), fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
            let user_opt = if owner == 0 { "user=root" } else { "" };
            let args = format!(
                "{nullok} {user_opt} secret={}/${{USER}}",
                store.path().display()
            );
            let what = format!("{layout}, [{nullok}]");
            let stack = Stack::probe("svc", &args);
            let login = |at: u64| {
                ds.run_logged(
                    &Driver::new(&stack, "svc", &typed)
                        .answer(&code_at(SECRET_160, at))
                        .at(at),
                )
            };
            let put = |name: &str| {
                let gid = if owner == 0 { 0 } else { u.gid };
                let text = totp_file(SECRET_160);
                write_owned(&store.path().join(name), text.as_bytes(), owner, gid, 0o600);
            };
            put(&typed);
            at += 60;
            let (d, lines) = login(at);
            let mut f = Failures::default();
            f.refused(&format!("{what}: file named by the typed spelling"), &d);
            f.check();
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&typed) && l.contains("rename it")),
                "{what}: {lines:?}"
            );

            fs::rename(store.path().join(&typed), store.path().join(&u.name)).expect("rename");
            at += 60;
            let (d, lines) = login(at);
            assert_eq!(
                d.module_code(),
                "PAM_SUCCESS",
                "{what}, renamed: {d:?} {lines:?}"
            );

            fs::remove_file(store.path().join(&u.name)).expect("remove");
            at += 60;
            let (d, lines) = login(at);
            let want = if nullok.is_empty() {
                "PAM_AUTH_ERR"
            } else {
                "PAM_IGNORE"
            };
            assert_eq!(d.module_code(), want, "{what}, no file: {d:?} {lines:?}");
            assert!(
                !lines.iter().any(|l| l.contains("rename it")),
                "{what}: {lines:?}"
            );
        }
    }
}

/// A directory holding only a group file, for [`login_with_groups`]: root's group, `u`'s
/// own group and `extra` (group lines).
fn group_layer(dir: &Path, u: &TestUser, extra: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("mkdir");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.join("group");
    fs::write(
        &path,
        format!("root:x:0:\n{}:x:{}:\n{extra}", u.name, u.gid),
    )
    .expect("write group file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    dir.to_owned()
}

/// One login of `u` from a network peer with a wrong code, in a private mount namespace
/// whose /etc shows `layer`'s group file over the host's (the `files` source reads it;
/// the host is untouched); the log as the module wrote it. An overlay on /etc rather than
/// a bind mount on /etc/group: a concurrent `useradd` renames a new host file over that
/// mount point, which detaches the bind mount mid-test.
fn login_with_groups(u: &TestUser, layer: &Path, option: &str) -> (Drive, Vec<String>) {
    let stack = Stack::probe("svc", option);
    let driver = Driver::new(&stack, "svc", &u.name)
        .answer(&wrong_totp(SECRET_160, T0))
        .rhost("203.0.113.9")
        .at(T0);
    let cmd = in_private_mounts(
        "mount -t overlay overlay -o \"lowerdir=$1:/etc\" /etc",
        layer,
        &driver.command(),
    );
    let (out, lines) = with_syslog_capture(&cmd);
    let lines = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
    (Drive::ran(&out), lines)
}

/// Very large answers from the `files` source: a group whose entry needs a buffer of
/// megabytes is read in full (its members listed last still count), one larger than the
/// 16 MiB cap is a failed lookup, and a user in more groups than a thread can hold
/// (`NGROUPS_MAX`, 65,536) has no group list that could prove non-membership. A failed
/// lookup never skips: a member of the oversized group is asked for the code, and so is a
/// user whose list is too long under `require_group=`; each fault is named in the log.
/// Controls: the large group skips its member, and without the long list
/// `require_group=` skips the same user.
#[test]
fn huge_groups_and_users_in_too_many_groups_never_skip_unproven() {
    let test = "huge_groups_and_users_in_too_many_groups_never_skip_unproven";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let u = TestUser::create("dsb");
    u.write_secret(&totp_file(SECRET_160), 0o600);
    let dir = tempfile::tempdir().expect("tempdir");
    let base_gid = 3_800_000 + std::process::id() % 100_000 * 10;
    let (big, huge, other) = (
        format!("{}b", u.name),
        format!("{}h", u.name),
        format!("{}o", u.name),
    );
    let members = |n: usize| -> String {
        let mut m = String::with_capacity(n * 10);
        for i in 0..n {
            m.push_str(&format!("m{i:07},"));
        }
        m.push_str(&u.name);
        m
    };
    let not_listed = format!("{other}:x:{}:\n", base_gid + 2);
    // 200,000 members: about 2 MB; 2,000,000: about 18 MB, over the cap.
    let sized = group_layer(
        &dir.path().join("sized"),
        &u,
        &format!(
            "{big}:x:{}:{}\n{huge}:x:{}:{}\n{not_listed}",
            base_gid,
            members(200_000),
            base_gid + 1,
            members(2_000_000),
        ),
    );
    let mut many = not_listed.clone();
    for i in 0..70_000u32 {
        many.push_str(&format!(
            "{}m{i}:x:{}:{}\n",
            u.name,
            base_gid + 10 + i,
            u.name
        ));
    }
    let many = group_layer(&dir.path().join("many"), &u, &many);
    let plain = group_layer(&dir.path().join("plain"), &u, &not_listed);

    let mut f = Failures::default();
    let (d, _) = login_with_groups(&u, &sized, &format!("skip_group={big}"));
    f.expect(
        "member listed last in a 2 MB group: control",
        &d,
        "PAM_IGNORE",
    );
    let (d, _) = login_with_groups(&u, &sized, &format!("require_group={big}"));
    f.refused("require_group of a 2 MB group the user is in", &d);
    for option in [
        format!("skip_group={huge}"),
        format!("require_group={huge}"),
    ] {
        let (d, lines) = login_with_groups(&u, &sized, &option);
        f.refused(&format!("{option}: group over 16 MiB"), &d);
        if !lines
            .iter()
            .any(|l| l.contains(&huge) && l.contains("lookup failed"))
        {
            f.0.push(format!(
                "{option}: the oversized group is not named: {lines:?}"
            ));
        }
    }
    let (d, _) = login_with_groups(&u, &plain, &format!("require_group={other}"));
    f.expect(
        "require_group, proven non-member: control",
        &d,
        "PAM_IGNORE",
    );
    let (d, lines) = login_with_groups(&u, &many, &format!("require_group={other}"));
    f.refused("require_group, user in 70,000 groups", &d);
    if !lines
        .iter()
        .any(|l| l.contains("group list") && l.contains("failed"))
    {
        f.0.push(format!("the failed group list is not named: {lines:?}"));
    }
    let (d, _) = login_with_groups(&u, &many, &format!("skip_group={}m5", u.name));
    f.expect(
        "skip_group listing the user, in 70,000 groups",
        &d,
        "PAM_IGNORE",
    );
    f.check();
}

/// A group's member list names users exactly, as the C library does when it builds a
/// user's groups: a member line spelling the user in another case is another user, so
/// the user is not a member (as `id` shows), for `require_group=` and `skip_group=`
/// alike, and as for pam_access's `(group)`. Control: the exact spelling.
#[test]
fn group_members_are_compared_exactly() {
    let test = "group_members_are_compared_exactly";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let u = TestUser::create("dsc");
    u.write_secret(&totp_file(SECRET_160), 0o600);
    let dir = tempfile::tempdir().expect("tempdir");
    let gid = 3_700_000 + std::process::id() % 100_000;
    let g = format!("{}c", u.name);
    let mut f = Failures::default();
    for (what, member, is_member) in [
        ("exact spelling: control", u.name.clone(), true),
        ("upper-case spelling", u.name.to_uppercase(), false),
    ] {
        let groups = group_layer(
            &dir.path().join(if is_member { "exact" } else { "upper" }),
            &u,
            &format!("{g}:x:{gid}:{member}\n"),
        );
        let (skip, require) = if is_member {
            ("PAM_IGNORE", "PAM_AUTH_ERR")
        } else {
            ("PAM_AUTH_ERR", "PAM_IGNORE")
        };
        let (d, _) = login_with_groups(&u, &groups, &format!("skip_group={g}"));
        f.expect(&format!("{what}: skip_group"), &d, skip);
        let (d, _) = login_with_groups(&u, &groups, &format!("require_group={g}"));
        f.expect(&format!("{what}: require_group"), &d, require);
    }
    f.check();
}

/// Name items in the rule file match the account, not the spelling typed at the prompt:
/// every alias of the account (`ALICE`, `AD\alice`, `alice@AD`) meets `- : alice` and
/// `+ : alice` as the account itself does. A rule spelling the account in upper case
/// (pam_access compares without case) never skips any of them, and as a `-` rule it
/// requires the code (skipped before the fix). Controls: a rule naming someone else lets
/// `+ : ALL` skip every spelling, and the upper-case files' first rule skips a login from
/// 198.51.100.0/24 (so they are valid files, and the code asked otherwise is the
/// upper-case rule's doing, not a refused file's).
#[test]
fn name_rules_match_the_account_whatever_the_typed_spelling() {
    let Some((u, ds)) = setup(
        "name_rules_match_the_account_whatever_the_typed_spelling",
        "dsr",
    ) else {
        return;
    };
    Mode::Home.enroll(&u);
    let minus = rules_file(
        &ds,
        "minus.conf",
        &format!("- : {} : ALL\n+ : ALL : ALL\n", u.name),
    );
    let plus = rules_file(&ds, "plus.conf", &format!("+ : {} : ALL\n", u.name));
    let upper = rules_file(
        &ds,
        "upper.conf",
        &format!(
            "+ : ALL : 198.51.100.0/24\n- : {} : ALL\n+ : ALL : ALL\n",
            u.name.to_uppercase()
        ),
    );
    let alias_plus = rules_file(
        &ds,
        "alias.conf",
        &format!(
            "+ : ALL : 198.51.100.0/24\n+ : {} : ALL\n",
            u.name.to_uppercase()
        ),
    );
    let other = rules_file(
        &ds,
        "other.conf",
        &format!("- : {}x : ALL\n+ : ALL : ALL\n", u.name),
    );
    let mut f = Failures::default();
    let mut at = T0;
    for typed in aliases(&u.name).iter().chain([&u.name]) {
        at += 90;
        let wrong = wrong_totp(SECRET_160, at);
        let run = |rules: &Path| {
            login(
                &ds,
                &format!("accessfile={}", rules.display()),
                typed,
                &wrong,
                at,
            )
        };
        f.refused(&format!("{typed:?}: - canonical"), &run(&minus));
        f.expect(
            &format!("{typed:?}: + canonical"),
            &run(&plus),
            "PAM_IGNORE",
        );
        f.refused(&format!("{typed:?}: - upper-case"), &run(&upper));
        f.refused(&format!("{typed:?}: + upper-case"), &run(&alias_plus));
        for (what, rules) in [("- upper-case", &upper), ("+ upper-case", &alias_plus)] {
            let stack = Stack::probe("svc", &format!("accessfile={}", rules.display()));
            let from_lan = ds.run(
                &Driver::new(&stack, "svc", typed)
                    .answer(&wrong)
                    .at(at)
                    .rhost("198.51.100.7"),
            );
            f.expect(
                &format!("{typed:?}: {what}, the file's first rule: control"),
                &from_lan,
                "PAM_IGNORE",
            );
        }
        f.expect(
            &format!("{typed:?}: - someone else: control"),
            &run(&other),
            "PAM_IGNORE",
        );
    }
    f.check();
}

/// SSSD qualifies a domain's group names (`admins@ad.example.com`) when told to; a
/// `(group)` item may name such a group (refused as a netgroup before the fix, which left
/// the whole file unusable). A member skips, a proven non-member does not, and a source
/// that fails leaves the membership unproven.
#[test]
fn qualified_group_names_in_rules() {
    let Some((u, ds)) = setup("qualified_group_names_in_rules", "dsq") else {
        return;
    };
    Mode::Home.enroll(&u);
    let g = format!("{}g@ad.example.com", u.name);
    ds.with(|c| c.grname = g.clone());
    let plus = rules_file(&ds, "plus.conf", &format!("+ : ({g}) : ALL\n"));
    let args = format!("accessfile={}", plus.display());
    let mut f = Failures::default();
    let wrong = wrong_totp(SECRET_160, T0);
    f.expect(
        "member",
        &login(&ds, &args, &u.name, &wrong, T0),
        "PAM_IGNORE",
    );
    ds.with(|c| {
        c.grname = g.clone();
        c.grmember = false;
    });
    f.refused("proven non-member", &login(&ds, &args, &u.name, &wrong, T0));
    ds.with(|c| {
        c.grname = g.clone();
        c.group = "unavail";
    });
    f.refused("source down", &login(&ds, &args, &u.name, &wrong, T0));
    f.check();
}

/// What `require_group=` does to users outside the group who never enrolled while the
/// group source is down (pam_totp(8)): their non-membership cannot be proven, so the
/// code is asked for and, having no secret, they are refused. `nullok` still lets them
/// in where the missing file can be established: always in store mode, and in home
/// mode unless the source reports its failure while the user's groups are gathered
/// (`tryagain`: the file is opened with the full group list only, R4). Controls: with
/// the source answering, the same user is skipped whether or not `nullok` is set.
#[test]
fn an_outage_asks_non_members_and_nullok_still_admits_the_unenrolled() {
    let Some((u, ds)) = setup(
        "an_outage_asks_non_members_and_nullok_still_admits_the_unenrolled",
        "dso",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        mode.unenroll(&u);
        for nullok in ["", "nullok"] {
            let args = mode.args(&format!("{nullok} require_group={g}"));
            let what = |case: &str| format!("{} [{nullok}]: {case}", mode.name());
            at += 90;
            ds.with(|c| c.grmember = false);
            f.expect(
                &what("proven non-member"),
                &login(&ds, &args, &u.name, "123456", at),
                "PAM_IGNORE",
            );
            for group in ["unavail", "tryagain", "silent"] {
                ds.with(|c| {
                    c.grmember = false;
                    c.group = group;
                });
                let d = login(&ds, &args, &u.name, "123456", at);
                let home_needs_groups = matches!(mode, Mode::Home) && group == "tryagain";
                if nullok.is_empty() || home_needs_groups {
                    f.refused(&what(group), &d);
                } else {
                    f.expect(&what(group), &d, "PAM_IGNORE");
                }
            }
        }
    }
    f.check();
}

/// R22 for a group both `files` and the directory hold under one name (a local group
/// extended in LDAP): `getgrnam_r` stops at the local entry, which does not list the
/// user, so only the user's group list can tell, and a directory that is down leaves it
/// out of that list without a trace glibc reports (`unavail`: the error number a real
/// "no such user" sets; `silent`: none). A member listed only in the directory's group
/// is then not a proven non-member: `require_group=` asks for the code (it skipped
/// before the fix), as it does for a source that says "try again". `skip_group=` does
/// not skip the member. Controls: with the directory answering, the member is asked
/// under `require_group=` and skipped under `skip_group=`, and a non-member is skipped
/// under `require_group=`.
#[test]
fn a_local_group_shadowing_the_directorys_needs_every_source() {
    let Some((u, ds)) = setup(
        "a_local_group_shadowing_the_directorys_needs_every_source",
        "dsw",
    ) else {
        return;
    };
    Mode::Home.enroll(&u);
    let g = ds.control.grname.clone();
    let gid = ds.control.grgid;
    // /etc as the login sees it: our nsswitch.conf, and a group file whose `g` lists
    // someone else.
    let layer = tempfile::tempdir().expect("tempdir");
    let etc = group_layer(
        &layer.path().join("etc"),
        &u,
        &format!("{g}:x:{gid}:root\n"),
    );
    fs::copy(ds.path().join("nsswitch.conf"), etc.join("nsswitch.conf")).expect("nsswitch");
    let run = |option: &str, at: u64| -> (Drive, Vec<String>) {
        let stack = Stack::probe("svc", option);
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, at))
            .at(at);
        let mut with_lib = Command::new("env");
        with_lib.arg(format!("LD_LIBRARY_PATH={}", ds.path().display()));
        append_env_exec(&mut with_lib, &driver.command());
        let cmd = in_private_mounts(
            "mount -t overlay overlay -o \"lowerdir=$1:/etc\" /etc",
            &etc,
            &with_lib,
        );
        let (out, lines) = with_syslog_capture(&cmd);
        let lines: Vec<String> = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
        (Drive::ran(&out), lines)
    };
    let require = format!("require_group={g}");
    let skip = format!("skip_group={g}");
    let mut f = Failures::default();
    let mut at = T0;
    ds.with(|c| c.grmember = false);
    at += 90;
    f.expect(
        "require_group, non-member: control",
        &run(&require, at).0,
        "PAM_IGNORE",
    );
    ds.with(|_| {});
    at += 90;
    f.refused("require_group, member: control", &run(&require, at).0);
    at += 90;
    f.expect(
        "skip_group, member: control",
        &run(&skip, at).0,
        "PAM_IGNORE",
    );
    for group in ["unavail", "silent", "tryagain", "initdown"] {
        ds.with(|c| c.group = group);
        at += 90;
        let (d, lines) = run(&require, at);
        f.refused(&format!("require_group, directory {group}"), &d);
        // The log names the source that did not answer where only the walk source by
        // source saw it.
        let named = lines
            .iter()
            .any(|l| l.contains(&format!("source {SERVICE} (nsswitch.conf) did not answer")));
        if matches!(group, "unavail" | "silent") && !named {
            f.0.push(format!("{group}: the source is not named: {lines:?}"));
        }
        at += 90;
        f.refused(&format!("skip_group, directory {group}"), &run(&skip, at).0);
    }
    f.check();
}

/// nsswitch.conf as glibc 2.33 and later reads it decides which sources the proof of
/// non-membership asks. The proof's own reading took the *first* line of a database
/// (glibc takes the last), needed a colon after the name (glibc does not) and cut a
/// line at `#` (glibc walks `#` and what follows as services), and read a last line
/// without its newline (glibc stops before it): in each layout glibc
/// walked the directory and the proof did not, so a directory that was down and held
/// the group under a local group's name let `require_group=` skip its member. And a
/// file that was not UTF-8 (a Latin-1 comment) made every non-membership unknown, so
/// every non-member was asked for a code, as did a comment of more than 32 words after
/// the services. Controls per layout: the non-member skips, the member is asked, with
/// the directory up.
#[test]
fn the_sources_asked_are_the_ones_glibc_reads_from_nsswitch_conf() {
    let Some((u, ds)) = setup(
        "the_sources_asked_are_the_ones_glibc_reads_from_nsswitch_conf",
        "dsf",
    ) else {
        return;
    };
    Mode::Home.enroll(&u);
    let g = ds.control.grname.clone();
    let gid = ds.control.grgid;
    let layouts: [(&str, Vec<u8>); 6] = [
        (
            "a second group line",
            format!("passwd: files {SERVICE}\ngroup: files\ngroup: files {SERVICE}\n").into(),
        ),
        (
            "a group line without a colon",
            format!("passwd: files {SERVICE}\ngroup files {SERVICE}\n").into(),
        ),
        (
            "a service after a #",
            format!("passwd: files {SERVICE}\ngroup: files # {SERVICE}\n").into(),
        ),
        (
            // glibc walks every word (each loads no module); the proof refused a line
            // of more than 32 words, leaving every non-membership unknown.
            "a long comment after the services",
            format!(
                "passwd: files {SERVICE}\ngroup: files {SERVICE} # {}\n",
                "the directory is ours, ask the admins before changing it ".repeat(5)
            )
            .into(),
        ),
        (
            // glibc stops at end of file with a last line that has no newline, so the
            // line before it is in force; the proof read the last one, did not ask the
            // directory, and a member whose directory was down quietly skipped.
            "a last group line without its newline",
            format!("passwd: files {SERVICE}\ngroup: files {SERVICE}\ngroup: files").into(),
        ),
        (
            "a Latin-1 comment",
            [
                &b"# g\xe9r\xe9 par l'\xe9quipe\n"[..],
                format!("passwd: files {SERVICE}\ngroup: files {SERVICE}\n").as_bytes(),
            ]
            .concat(),
        ),
    ];
    let require = format!("require_group={g}");
    let mut f = Failures::default();
    let mut at = T0;
    for (i, (what, conf)) in layouts.iter().enumerate() {
        // /etc as the login sees it: this nsswitch.conf, and a group file whose `g`
        // lists someone else.
        let layer = tempfile::tempdir().expect("tempdir");
        let etc = group_layer(
            &layer.path().join(format!("etc{i}")),
            &u,
            &format!("{g}:x:{gid}:root\n"),
        );
        fs::write(etc.join("nsswitch.conf"), conf).expect("nsswitch");
        let run = |at: u64| -> Drive {
            let stack = Stack::probe("svc", &require);
            let driver = Driver::new(&stack, "svc", &u.name)
                .answer(&wrong_totp(SECRET_160, at))
                .at(at);
            let mut with_lib = Command::new("env");
            with_lib.arg(format!("LD_LIBRARY_PATH={}", ds.path().display()));
            append_env_exec(&mut with_lib, &driver.command());
            let out = in_private_mounts(
                "mount -t overlay overlay -o \"lowerdir=$1:/etc\" /etc",
                &etc,
                &with_lib,
            )
            .output()
            .expect("run unshare");
            Drive::ran(&out)
        };
        ds.with(|c| c.grmember = false);
        at += 90;
        f.expect(
            &format!("{what}: non-member, control"),
            &run(at),
            "PAM_IGNORE",
        );
        ds.with(|_| {});
        at += 90;
        f.refused(&format!("{what}: member, control"), &run(at));
        for down in ["unavail", "silent"] {
            ds.with(|c| c.group = down);
            at += 90;
            f.refused(&format!("{what}: member, directory {down}"), &run(at));
        }
    }
    f.check();
}

/// R32 with a directory that goes away in the middle of a login: the name logging in is
/// an account the directory alone serves, with the uid of `secret_command_user=` (two
/// names of one account). The login's lookup finds it; a second lookup of the same name
/// (the runner check asked NSS again) found the directory down and let the command run
/// as the very account it answers for. The check now uses the login's own entry: one
/// `getpwnam` of the name per login, as the stand-in's call log shows, and the login is
/// denied before the command starts. Controls: the command runs and the login succeeds
/// when the account has a uid of its own, with the same directory behaviour.
#[test]
fn the_secret_commands_runner_check_uses_the_logins_own_lookup() {
    let Some((u, ds)) = setup(
        "the_secret_commands_runner_check_uses_the_logins_own_lookup",
        "dsk",
    ) else {
        return;
    };
    let name = format!("{}d", u.name);
    let dir = system_tests::fleet::trusted_dir("dirsvc-cmd");
    // The command, run as the test account, leaves its marker in a directory of its own.
    let out = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(out.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let marker = out.path().join("ran");
    let cmd = dir.path().join("cmd");
    fs::write(
        &cmd,
        format!(
            "#!/bin/sh\n: > {}\ncat <<'EOF'\n{}EOF\n",
            marker.display(),
            totp_file(SECRET_160)
        ),
    )
    .expect("write command");
    fs::set_permissions(&cmd, fs::Permissions::from_mode(0o755)).expect("chmod");
    let args = format!(
        "secret_command={} secret_command_user={}",
        cmd.display(),
        u.name
    );
    let mut f = Failures::default();
    let mut at = T0;
    for (what, uid, want) in [
        (
            "an account of its own: control",
            3_990_000 + std::process::id() % 9_000,
            "PAM_SUCCESS",
        ),
        ("the runner's uid", u.uid, "PAM_AUTH_ERR"),
    ] {
        at += 90;
        ds.with(|c| {
            c.canonical = name.clone();
            c.aliases = vec![name.clone()];
            c.uid = uid;
            c.passwd = "once";
        });
        ds.clear_calls();
        let _ = fs::remove_file(&marker);
        let d = login(&ds, &args, &name, &code_at(SECRET_160, at), at);
        f.expect(what, &d, want);
        let lookups = ds
            .calls()
            .iter()
            .filter(|c| **c == format!("getpwnam {name}"))
            .count();
        if lookups != 1 {
            f.0.push(format!(
                "{what}: {lookups} getpwnam of {name}: {:?}",
                ds.calls()
            ));
        }
        if marker.exists() != (want == "PAM_SUCCESS") {
            f.0.push(format!("{what}: the command ran: {}", marker.exists()));
        }
    }
    f.check();
}

/// R8 with a directory whose entry for a spelling names another account: the typed
/// spelling (`ALICE`) reaches the directory, whose entry is called `alice` but has a uid
/// of its own, while `alice` itself is a local account. The module keyed the login on
/// the name, so the local account's rules (`+ : alice`), its store file and its
/// `nullok` absence applied to the directory's account. Now a canonical name that maps
/// back to another uid is a name service fault: prompted and denied, in both modes.
/// Controls: the same spelling skips when the directory's entry is the local account
/// (same uid), and the local name itself skips.
#[test]
fn a_canonical_name_that_maps_back_to_another_account_denies() {
    let Some((u, ds)) = setup(
        "a_canonical_name_that_maps_back_to_another_account_denies",
        "dsz",
    ) else {
        return;
    };
    let plus = rules_file(&ds, "plus.conf", &format!("+ : {} : ALL\n", u.name));
    let typed = u.name.to_uppercase();
    let other_uid = 3_990_000 + std::process::id() % 9_000;
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        for (what, args) in [
            (
                "accessfile",
                mode.args(&format!("accessfile={}", plus.display())),
            ),
            ("nullok, not enrolled", mode.args("nullok")),
        ] {
            let what = |case: &str| format!("{} {what}: {case}", mode.name());
            at += 90;
            let wrong = wrong_totp(SECRET_160, at);
            ds.with(|_| {});
            f.expect(
                &what("alias of the local account: control"),
                &login(&ds, &args, &typed, &wrong, at),
                "PAM_IGNORE",
            );
            ds.with(|c| c.uid = other_uid);
            f.expect(
                &what("the local name: control"),
                &login(&ds, &args, &u.name, &wrong, at),
                "PAM_IGNORE",
            );
            f.refused(
                &what("alias whose entry has another uid"),
                &login(&ds, &args, &typed, &wrong, at),
            );
        }
    }
    f.check();
}

/// R22 for one group name that `files` and the directory give two gids (a local group
/// and a directory group of the same name): `getgrnam_r` resolves the name to the local
/// group, which does not list the user, and the user's complete group list holds only
/// the directory's gid, so the user looked like a proven non-member although `id` shows
/// the group by that name and `require_group=` skipped the code. Non-membership now also
/// needs the group of that name in every source, none of which makes the user a member:
/// the member is asked for the code. Controls: the same setup skips a user the
/// directory's group does not list, and the member skips under `skip_group=`.
#[test]
fn one_group_name_with_two_gids_needs_every_sources_group() {
    let Some((u, ds)) = setup(
        "one_group_name_with_two_gids_needs_every_sources_group",
        "dsv",
    ) else {
        return;
    };
    Mode::Home.enroll(&u);
    let g = ds.control.grname.clone();
    let local_gid = ds.control.grgid + 1;
    let layer = tempfile::tempdir().expect("tempdir");
    let etc = group_layer(
        &layer.path().join("etc"),
        &u,
        &format!("{g}:x:{local_gid}:root\n"),
    );
    fs::copy(ds.path().join("nsswitch.conf"), etc.join("nsswitch.conf")).expect("nsswitch");
    let run = |option: &str, at: u64| -> Drive {
        let stack = Stack::probe("svc", option);
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, at))
            .at(at);
        let mut with_lib = Command::new("env");
        with_lib.arg(format!("LD_LIBRARY_PATH={}", ds.path().display()));
        append_env_exec(&mut with_lib, &driver.command());
        let mut cmd = in_private_mounts(
            "mount -t overlay overlay -o \"lowerdir=$1:/etc\" /etc",
            &etc,
            &with_lib,
        );
        Drive::ran(&cmd.output().expect("run unshare"))
    };
    let require = format!("require_group={g}");
    let mut f = Failures::default();
    let mut at = T0;
    ds.with(|c| c.grmember = false);
    at += 90;
    f.expect(
        "not in either group: control",
        &run(&require, at),
        "PAM_IGNORE",
    );
    ds.with(|_| {});
    at += 90;
    f.expect(
        "skip_group, in the directory's group: control",
        &run(&format!("skip_group={g}"), at),
        "PAM_IGNORE",
    );
    at += 90;
    f.refused(
        "require_group, in the directory's group",
        &run(&require, at),
    );
    f.check();
}

/// A secret served by `secret_command=` opens no file, so the login needs no file-system
/// identity and no group list of the user: a group source that says "try again" (which
/// denies a home-mode file login, R4) denied every such login as a name service error
/// before. Now the command's login succeeds and makes no `initgroups` call. Control: the
/// same account's file login with the same source is denied, and named.
#[test]
fn a_secret_command_login_needs_no_group_list() {
    let Some((u, ds)) = setup("a_secret_command_login_needs_no_group_list", "ds1") else {
        return;
    };
    Mode::Home.enroll(&u);
    let dir = system_tests::fleet::trusted_dir("dirsvc-cmd-groups");
    let cmd = dir.path().join("cmd");
    fs::write(
        &cmd,
        format!("#!/bin/sh\ncat <<'EOF'\n{}EOF\n", totp_file(SECRET_160)),
    )
    .expect("write command");
    fs::set_permissions(&cmd, fs::Permissions::from_mode(0o755)).expect("chmod");
    let command = format!(
        "secret_command={} secret_command_user=nobody",
        cmd.display()
    );
    ds.with(|c| c.group = "tryagain");
    let mut f = Failures::default();
    let mut at = T0;
    at += 90;
    f.refused(
        "file login, group source tryagain: control",
        &login(&ds, "", &u.name, &code_at(SECRET_160, at), at),
    );
    at += 90;
    ds.clear_calls();
    f.expect(
        "secret command, group source tryagain",
        &login(&ds, &command, &u.name, &code_at(SECRET_160, at), at),
        "PAM_SUCCESS",
    );
    let calls = ds.calls();
    if calls.iter().any(|c| c.starts_with("initgroups ")) {
        f.0.push(format!("a group list was asked for: {calls:?}"));
    }
    f.check();
}

/// R8 in the tools: the module denies a typed spelling (`ALICE`) whose directory entry
/// is called after a local account (`alice`) with another uid
/// ([`a_canonical_name_that_maps_back_to_another_account_denies`]), but the tools asked
/// `getpwnam` alone: `totp-enroll` enrolled the directory's account under the local
/// account's store file, `explain` explained the local account's rules, and `totp-state`
/// named the directory's record as the local account's. Each now refuses with the
/// module's reason (`totp_os::nss::lookup_login_user`). Control: the same spelling of
/// the local account itself (same uid) is enrolled, explained and shown.
#[test]
fn the_tools_judge_an_alias_of_another_account_as_the_module_does() {
    let test = "the_tools_judge_an_alias_of_another_account_as_the_module_does";
    let Some((u, ds)) = setup(test, "ds2") else {
        return;
    };
    if !require_tool(test, "oathtool") {
        return;
    }
    let plus = rules_file(&ds, "plus.conf", &format!("+ : {} : ALL\n", u.name));
    // Enrollment wants the whole chain root-owned and closed (not under /tmp).
    let store = tempfile::Builder::new()
        .prefix("pam_totp-test-store")
        .tempdir_in("/var/lib")
        .expect("tempdir");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let state = system_tests::fleet::trusted_dir("dirsvc-state");
    let typed = u.name.to_uppercase();
    let other_uid = 3_990_000 + std::process::id() % 9_000;
    let run = |tool: &Path, args: &[&str], extra: Option<&Path>| {
        let mut cmd = Command::new(tool);
        cmd.args(args);
        if let Some(p) = extra {
            cmd.arg(p);
        }
        ds.wrap(&cmd).output().expect("run the tool")
    };
    let mut f = Failures::default();
    for (what, uid, allowed) in [
        ("alias of the local account: control", u.uid, true),
        ("alias whose entry has another uid", other_uid, false),
    ] {
        ds.with(|c| c.uid = uid);
        let _ = fs::remove_file(store.path().join(&u.name));
        let built = system_tests::built();
        let mut enrol: Vec<&str> = ENROLL_SCRIPTED.to_vec();
        enrol.extend(["--json", "--user", &typed, "-s"]);
        let outs = [
            (
                "totp-enroll",
                run(&built.enroll, &enrol, Some(&store.path().join(&u.name))),
            ),
            (
                "totp-enroll explain",
                run(
                    &built.enroll,
                    &["explain", "--user", &typed, "--accessfile"],
                    Some(&plus),
                ),
            ),
            (
                "totp-state show",
                run(
                    &built.state_tool,
                    &["show", "--user", &typed, "--state-dir"],
                    Some(state.path()),
                ),
            ),
        ];
        for (tool, out) in outs {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said = stderr.contains(&format!("the name of uid {}", u.uid));
            if out.status.success() != allowed || said == allowed {
                f.0.push(format!("{what}: {tool}: {out:?}"));
            }
        }
        if store.path().join(&u.name).exists() != allowed {
            f.0.push(format!("{what}: the store file written: {}", !allowed));
        }
    }
    f.check();
}

/// A login through a shared store by a process that is not root (a screen locker, the
/// user unlocking their own session) and has no `state_dir=`: its local store is found
/// through the process owner's account. When the name service fails that lookup
/// (`getpwuid` answers "try again"), the store may hold codes this host accepted, so the
/// log says they were not checked and what to check, as for an unreadable local store;
/// the login is not denied for it (the same deviation, SECURITY.md). Before, the
/// failure counted as "never used" and nothing was logged. Control: the lookup answers
/// (an owner whose local store was never used): no such line.
#[test]
fn an_unprivileged_hosts_failed_owner_lookup_is_logged_not_denied() {
    let test = "an_unprivileged_hosts_failed_owner_lookup_is_logged_not_denied";
    let Some((u, ds)) = setup(test, "dlo") else {
        return;
    };
    if !require_tool(test, "setpriv") {
        return;
    }
    use system_tests::fleet::{RedisServer, ServerConfig, init_store};
    use system_tests::now;
    let server = RedisServer::start(&ServerConfig::default());
    let args = server.options("redis_prefix=dlo/");
    init_store(&args);
    u.write_secret(&totp_file(SECRET_160), 0o600);
    // The stand-in first, its "try again" final, so that `getpwuid` fails rather than
    // `files` answering; every name lookup still reaches `files`.
    fs::write(
        ds.path().join("nsswitch.conf"),
        format!(
            "passwd: {SERVICE} [TRYAGAIN=return] files\ngroup: files {SERVICE}\nshadow: files\n"
        ),
    )
    .expect("write nsswitch.conf");
    // No state_dir=: the process owner's lookup finds the local store.
    let stack = Stack::new();
    fs::write(
        stack.path().join("svc"),
        format!(
            "auth required {} {args}\n",
            system_tests::built().module.display()
        ),
    )
    .expect("write service");
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let as_owner = |at: u64| {
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&code_at(SECRET_160, at))
            .command();
        let mut cmd = Command::new("setpriv");
        for (k, v) in driver.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .arg("--clear-groups")
            .arg(driver.get_program())
            .args(driver.get_args());
        let (out, lines) = with_syslog_capture(&ds.wrap(&cmd));
        let lines: Vec<String> = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
        (Drive::ran(&out), lines)
    };
    // The real clock (libfaketime's shared memory is root's after the first run): the
    // control's code is the next step's, within the default window.
    let t = now();
    let said = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("not checked") && l.contains("cannot look up the process owner"))
    };

    ds.with(|c| c.pwuid = "tryagain");
    let (d, lines) = as_owner(t);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}\n{lines:#?}");
    assert!(said(&lines), "the failed lookup logged: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("nsswitch.conf") && l.contains("state_dir=")),
        "with what to check: {lines:#?}"
    );
    assert!(
        ds.calls()
            .iter()
            .any(|c| c == &format!("getpwuid {}", u.uid)),
        "the fault: the owner's uid was asked of the stand-in: {:?}",
        ds.calls()
    );

    // Control: the lookup answers.
    ds.with(|c| c.pwuid = "ok");
    let (d, lines) = as_owner(t + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "control: {d:?}\n{lines:#?}");
    assert!(!said(&lines), "control: {lines:#?}");
}

/// One source holding a group's name twice (`/etc/group` with `g:x:A:` then
/// `g:x:B:user`): `getgrnam_r` answers with the first alone, while the user's list
/// holds B and `id` shows the user in `g`. `require_group=g` must not take that for a
/// proven non-member: the code is asked, and `totp-state audit` (the same proof)
/// reports no skip, nor does `totp-enroll explain` for a rule file's
/// `ALL EXCEPT (g)`. Controls: `g` held once, and B named otherwise, are proven
/// non-memberships and skip (the audit and explain say so).
#[test]
fn a_group_name_held_twice_by_one_source_is_no_proven_non_membership() {
    let test = "a_group_name_held_twice_by_one_source_is_no_proven_non_membership";
    if !require_root(test) || !require_tool(test, "unshare") {
        return;
    }
    let u = TestUser::create("ds3");
    u.write_secret(&totp_file(SECRET_160), 0o600);
    let dir = tempfile::tempdir().expect("tempdir");
    let gid = 3_900_000 + std::process::id() % 100_000 * 2;
    let g = format!("{}t", u.name);
    let first = format!("{g}:x:{gid}:\n");
    // The rule a `(group)` item skips a non-member by, for `totp-enroll explain`.
    let trusted = system_tests::fleet::trusted_dir("pam_totp-twice");
    let rules = trusted.path().join("access.conf");
    write_owned(
        &rules,
        format!("+ : ALL EXCEPT ({g}) : ALL\n").as_bytes(),
        0,
        0,
        0o644,
    );
    let mut f = Failures::default();
    for (what, extra, skips) in [
        ("g held once: control", first.clone(), true),
        (
            "the user's other group named otherwise: control",
            format!("{first}{}o:x:{}:{}\n", u.name, gid + 1, u.name),
            true,
        ),
        (
            "g held twice, the user in the second",
            format!("{first}{g}:x:{}:{}\n", gid + 1, u.name),
            false,
        ),
    ] {
        let layer = group_layer(&dir.path().join(what.len().to_string()), &u, &extra);
        let option = format!("require_group={g}");
        let (d, lines) = login_with_groups(&u, &layer, &option);
        if skips {
            f.expect(what, &d, "PAM_IGNORE");
        } else {
            f.refused(what, &d);
        }
        let stack = Stack::probe("svc", &option);
        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &u.name]);
        let mut cmd = in_private_mounts(
            "mount -t overlay overlay -o \"lowerdir=$1:/etc\" /etc",
            &layer,
            &audit,
        );
        let out = cmd.output().expect("totp-state audit");
        let verdicts = system_tests::audit_verdicts(&out.stdout);
        let reasons = verdicts.get(&u.name).map(|v| v.1.as_str()).unwrap_or("");
        let skip_said = reasons.contains("member of no require group");
        if reasons.is_empty() || skip_said != skips {
            f.0.push(format!("{what}: audit: {out:?} (login log {lines:?})"));
        }
        // `totp-enroll explain` proves the rule file's `(group)` the same way.
        let mut explain = Command::new(&system_tests::built().enroll);
        explain
            .args([
                "explain", "--json", "--user", &u.name, "--rhost", "10.0.0.5",
            ])
            .arg("--accessfile")
            .arg(&rules);
        let mut cmd = in_private_mounts(
            "mount -t overlay overlay -o \"lowerdir=$1:/etc\" /etc",
            &layer,
            &explain,
        );
        let out = cmd.output().expect("totp-enroll explain");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let want = if skips { "not a member" } else { "member" };
        let said = v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == g.as_str())
            .map(|e| e["membership"].clone());
        let verdict_skips = v["verdict"] == "skip";
        if said.as_ref().and_then(|m| m.as_str()) != Some(want) || verdict_skips != skips {
            f.0.push(format!("{what}: explain: {out:?}"));
        }
    }
    f.check();
}

/// Two directory groups with one name (one `cn`): the stand-in's `getgrnam` answers with
/// the first, which does not list the user, while the user's list holds the second's
/// gid. `require_group=` asks for the code, in both modes; so it does when the
/// directory names the user's gids no longer (`getgrgid` says "try again"), since the
/// second group may be one of them. Controls: a non-member of both skips, with and
/// without the first group shadowing.
#[test]
fn two_directory_groups_with_one_name_are_no_proven_non_membership() {
    let Some((u, ds)) = setup(
        "two_directory_groups_with_one_name_are_no_proven_non_membership",
        "ds4",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let first = ds.control.grgid + 7;
    let mut f = Failures::default();
    let mut at = T0;
    for mode in Mode::both() {
        mode.enroll(&u);
        let args = mode.args(&format!("require_group={g}"));
        let name = mode.name();
        let stack = Stack::probe("svc", &args);
        let mut run = |what: &str, change: &dyn Fn(&mut Control), skips: bool| {
            ds.with(change);
            at += 90;
            let driver = Driver::new(&stack, "svc", &u.name)
                .answer(&wrong_totp(SECRET_160, at))
                .at(at);
            let (d, lines) = ds.run_logged(&driver);
            let what = format!("{name}: {what}");
            if skips {
                f.expect(&what, &d, "PAM_IGNORE");
            } else {
                f.refused(&what, &d);
            }
            lines
        };
        run(
            "non-member: control",
            &|c: &mut Control| c.grmember = false,
            true,
        );
        run(
            "non-member of both groups: control",
            &|c: &mut Control| {
                c.grmember = false;
                c.grfirst = first;
            },
            true,
        );
        run(
            "member of the second group of the name",
            &|c: &mut Control| c.grfirst = first,
            false,
        );
        let lines = run(
            "non-member, the directory's gids unnamed (try again)",
            &|c: &mut Control| {
                c.grmember = false;
                c.grfirst = first;
                c.grgidmode = "tryagain";
            },
            false,
        );
        // The log names the gid and the service that did not answer for it.
        if !lines.iter().any(|l| {
            l.contains("asked of each name service source")
                && l.contains("group id")
                && l.contains(SERVICE)
        }) {
            f.0.push(format!("{name}: the unnamed gid is not logged: {lines:?}"));
        }
        mode.unenroll(&u);
    }
    f.check();
}

/// A directory whose `getgrgid` finds the user's gid but gives it no name (`gr_name`
/// NULL, a broken module): that gid may be the second group of the name, so
/// `require_group=` asks for the code. It was taken for a gid no source knows, and the
/// member of the second group skipped the code. Control: a non-member of both groups,
/// whose gids the directory does not hold, still skips with the same module.
#[test]
fn a_gid_found_without_a_name_is_no_proven_non_membership() {
    let Some((u, ds)) = setup(
        "a_gid_found_without_a_name_is_no_proven_non_membership",
        "ds5",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let first = ds.control.grgid + 7;
    let mut f = Failures::default();
    let mut at = T0;
    let mode = Mode::Home;
    mode.enroll(&u);
    let args = mode.args(&format!("require_group={g}"));
    let stack = Stack::probe("svc", &args);
    for (what, member, skips) in [
        ("non-member of both groups: control", false, true),
        ("member of the second group, its gid nameless", true, false),
    ] {
        ds.with(|c| {
            c.grmember = member;
            c.grfirst = first;
            c.grgidmode = "nameless";
        });
        at += 90;
        ds.clear_calls();
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, at))
            .at(at);
        let (d, lines) = ds.run_logged(&driver);
        if skips {
            f.expect(what, &d, "PAM_IGNORE");
        } else {
            f.refused(what, &d);
            // The fault: the directory was asked the second group's gid.
            let asked = format!("getgrgid {}", ds.control.grgid);
            if !ds.calls().contains(&asked) {
                f.0.push(format!("{what}: {asked} not made: {:?}", ds.calls()));
            }
            if !lines
                .iter()
                .any(|l| l.contains("group id") && l.contains(SERVICE))
            {
                f.0.push(format!("{what}: the nameless gid is not logged: {lines:?}"));
            }
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// R8 for the one name the `user=` text is: `user=` naming its account by an alias
/// (`user=ALICE`, a directory's case-insensitive spelling), and that very alias typed at
/// login. The module took the `user=` lookup for the login's own (the same query) and
/// kept the typed spelling as the account's name: `secret=…/${USER}` named a file of
/// that spelling, which does not exist, and under `nullok` the enrolled account was let
/// in without a code. Now the login's name is the canonical one there too: the
/// account's file is read, a wrong code is refused and the right one accepted.
/// Controls: the canonical name typed, and another alias, reach the same file.
#[test]
fn the_user_option_spelling_typed_at_login_is_the_canonical_account() {
    let Some((u, ds)) = setup(
        "the_user_option_spelling_typed_at_login_is_the_canonical_account",
        "dsua",
    ) else {
        return;
    };
    let alias = u.name.to_uppercase();
    write_owned(
        &u.home.join(&u.name),
        totp_file(SECRET_160).as_bytes(),
        u.uid,
        u.gid,
        0o600,
    );
    let args = format!("user={alias} secret={}/${{USER}} nullok", u.home.display());
    let mut f = Failures::default();
    let mut at = T0;
    for typed in [alias.clone(), u.name.clone(), format!("AD\\{}", u.name)] {
        at += 90;
        f.refused(
            &format!("{typed}: wrong code"),
            &login(&ds, &args, &typed, &wrong_totp(SECRET_160, at), at),
        );
        at += 90;
        f.expect(
            &format!("{typed}: right code"),
            &login(&ds, &args, &typed, &code_at(SECRET_160, at), at),
            "PAM_SUCCESS",
        );
    }
    f.check();
}

/// A directory whose module resolves group names (`getgrnam_r`) but has no `getgrgid_r`
/// cannot say whether one of the user's gids is a second group of the rule's name: the
/// proof of non-membership has no answer from it, and `require_group=` asks for the
/// code. It was passed over as a source that holds no gid, and the member of the second
/// group of the name skipped the code. The log names the service. Controls: the same
/// directory with `getgrgid_r` lets a non-member of both groups skip, and asks the
/// member of the second. The line says the source cannot look groups up by id (it was
/// "did not answer: Function not implemented", which read as an outage).
#[test]
fn a_source_that_cannot_name_a_gid_is_no_proven_non_membership() {
    let Some((u, full)) = setup(
        "a_source_that_cannot_name_a_gid_is_no_proven_non_membership",
        "ds6",
    ) else {
        return;
    };
    let no_gid = DirSvc::built(&u, &["-DNO_GETGRGID"]);
    let g = full.control.grname.clone();
    let mut f = Failures::default();
    let mut at = T0;
    let mode = Mode::Home;
    mode.enroll(&u);
    let stack = Stack::probe("svc", &mode.args(&format!("require_group={g}")));
    for (what, ds, member, skips) in [
        (
            "with getgrgid_r, non-member of both: control",
            &full,
            false,
            true,
        ),
        (
            "with getgrgid_r, member of the second: control",
            &full,
            true,
            false,
        ),
        (
            "without getgrgid_r, member of the second",
            &no_gid,
            true,
            false,
        ),
        (
            "without getgrgid_r, non-member of both",
            &no_gid,
            false,
            false,
        ),
    ] {
        let first = ds.control.grgid + 7;
        ds.with(|c| {
            c.grmember = member;
            c.grfirst = first;
        });
        at += 90;
        ds.clear_calls();
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, at))
            .at(at);
        let (d, lines) = ds.run_logged(&driver);
        if skips {
            f.expect(what, &d, "PAM_IGNORE");
        } else {
            f.refused(what, &d);
        }
        // The group's entry was asked of the directory, so the proof reached the gids.
        if !ds.calls().iter().any(|c| c.starts_with("getgrnam")) {
            f.0.push(format!("{what}: getgrnam not made: {:?}", ds.calls()));
        }
        // Said as what it is, not as a source that did not answer.
        let said = lines.iter().any(|l| {
            l.contains("group id")
                && l.contains(SERVICE)
                && l.contains("cannot look groups up by id")
                && !l.contains("did not answer")
                && !l.contains("Function not implemented")
        });
        if std::ptr::eq(ds, &no_gid) != said {
            f.0.push(format!(
                "{what}: the gid no source can name logged: {said}: {lines:?}"
            ));
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// R36: the proof that a user is in no group of a rule's name asks every source for
/// each of the user's gids, and a directory that answers each slowly kept the login
/// waiting gid after gid, then skipped. The walk now has one deadline (`WALK_BOUND` in
/// totp-os/src/nss_sources.rs, 10 s): an answer that comes after it proves nothing, so
/// `require_group=` asks for the code, the bound logged. Here each `getgrgid` of the
/// directory takes just over 5 s (`SLOW_GID_MS`), inside the bound, and the user's two
/// gids together past it. Control: the same directory answering at once lets the non-member skip.
#[test]
fn a_directory_slow_for_each_gid_is_cut_off_at_the_walks_deadline() {
    let Some((u, ds)) = setup(
        "a_directory_slow_for_each_gid_is_cut_off_at_the_walks_deadline",
        "ds7",
    ) else {
        return;
    };
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    // A local group the user is not in: its non-membership is proven by the names of the
    // user's gids, one of them the directory's.
    let stack = Stack::probe("svc", &mode.args("require_group=nogroup"));
    for (what, sleep, skips) in [
        ("a directory answering at once: control", 0, true),
        ("a directory slow for each gid", SLOW_GID_MS, false),
    ] {
        ds.with(|c| c.grgidsleep = sleep);
        ds.clear_calls();
        // The clock runs (a frozen one would never reach the deadline).
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        let (d, lines) = ds.run_logged(&driver);
        if skips {
            f.expect(what, &d, "PAM_IGNORE");
        } else {
            f.refused(what, &d);
            if !lines
                .iter()
                .any(|l| l.contains("group id") && l.contains("more than 10 s"))
            {
                f.0.push(format!("{what}: the deadline is not logged: {lines:?}"));
            }
        }
        // The directory was asked for each of the user's gids.
        for gid in [u.gid, ds.control.grgid] {
            let asked = format!("getgrgid {gid}");
            if !ds.calls().contains(&asked) {
                f.0.push(format!("{what}: {asked} not made: {:?}", ds.calls()));
            }
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// `totp-enroll explain` asks the name service what the module asks: nothing about
/// groups for rules that name none. It fetched the user's whole group list from every
/// source up front, so with the directory's group source down it asked that source
/// for a list no rule needed (a login asks nothing). The verdict is the module's in
/// each case. Control: a rule naming the directory's group asks the source, and with
/// the source down the membership is unknown, and the skip not given, as the module
/// decides.
#[test]
fn explain_asks_no_group_source_for_rules_that_name_no_group() {
    let test = "explain_asks_no_group_source_for_rules_that_name_no_group";
    let Some((u, ds)) = setup(test, "ds8") else {
        return;
    };
    let g = ds.control.grname.clone();
    let lan = rules_file(&ds, "lan.conf", "+ : ALL : 10.0.0.0/8\n");
    let grouped = rules_file(&ds, "grouped.conf", &format!("+ : ({g}) : 10.0.0.0/8\n"));
    let group_calls = |calls: Vec<String>| -> Vec<String> {
        calls
            .into_iter()
            .filter(|c| {
                c.starts_with("getgrnam ")
                    || c.starts_with("getgrgid ")
                    || c.starts_with("initgroups ")
                    || c.starts_with("getgrent")
            })
            .collect()
    };
    let explain = |rules: &Path| {
        ds.clear_calls();
        let mut cmd = Command::new(&system_tests::built().enroll);
        cmd.args([
            "explain", "--json", "--user", &u.name, "--rhost", "10.1.2.3",
        ])
        .arg("--accessfile")
        .arg(rules);
        let out = ds.wrap(&cmd).output().expect("totp-enroll explain");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out, v, group_calls(ds.calls()))
    };
    let login = |rules: &Path| {
        let stack = Stack::probe("svc", &format!("accessfile={}", rules.display()));
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer("123456")
            .rhost("10.1.2.3")
            .at(T0);
        ds.clear_calls();
        (ds.run(&driver).module_code(), group_calls(ds.calls()))
    };
    u.write_secret(&totp_file(SECRET_160), 0o600);
    let mut f = Failures::default();
    for group in ["ok", "unavail"] {
        ds.with(|c| c.group = group);
        let (out, v, calls) = explain(&lan);
        let (module, module_calls) = login(&lan);
        if !out.status.success()
            || !out.stderr.is_empty()
            || v["verdict"] != "skip"
            || module != "PAM_IGNORE"
            || !calls.is_empty()
            || !module_calls.is_empty()
        {
            f.0.push(format!(
                "no group rule, source {group}: {out:?} {calls:?}; module {module} {module_calls:?}"
            ));
        }
        // Control: the rule names the group; asked, as the module asks it.
        let (out, v, calls) = explain(&grouped);
        let (module, _) = login(&grouped);
        let (want, membership) = match group {
            "ok" => ("PAM_IGNORE", "member"),
            _ => ("PAM_AUTH_ERR", "unknown"),
        };
        let said = v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == g.as_str())
            .map(|e| e["membership"].clone());
        let skips = v["verdict"] == "skip";
        if !out.status.success()
            || said.as_ref().and_then(|m| m.as_str()) != Some(membership)
            || skips != (want == "PAM_IGNORE")
            || module != want
            || !calls.iter().any(|c| c == &format!("getgrnam {g}"))
        {
            f.0.push(format!(
                "group rule, source {group}: {out:?} {calls:?}; module {module}"
            ));
        }
    }
    f.check();
}

/// R22, R36 and the audit: `totp-state audit` asks each account's non-membership on a
/// walk of its own, as its login does, but kept the names of each gid for the whole
/// audit, a failure too. A walk that ran past its deadline (`WALK_BOUND`, 10 s) on one
/// account's gid is a fact of that account's walk, not of the gid: the next account
/// holding that gid got "unknown" and was reported as asked for the code, while its
/// login, on a walk of its own, proved the non-membership and skipped. Here the
/// directory takes just over 5 s (`SLOW_GID_MS`) for each `getgrgid`; the first
/// account's second gid (the second account's group) is answered past its deadline.
/// Control: the directory answering at once, where the audit reports both skips.
#[test]
fn an_audit_keeps_no_accounts_expired_walk_for_another_account() {
    let test = "an_audit_keeps_no_accounts_expired_walk_for_another_account";
    if !require_root(test) || !require_tool(test, "cc") || !require_tool(test, "unshare") {
        return;
    }
    let one = TestUser::create("dt1");
    let two = TestUser::create("dt3");
    // The first account walks its gids in ascending order: the second account's own
    // group must be asked after the first's, when the deadline has passed.
    let (first, second) = if one.gid < two.gid {
        (one, two)
    } else {
        (two, one)
    };
    first.add_to_group(&second.name);
    let ds = DirSvc::new(&first);
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&first);
    mode.enroll(&second);
    // A local group neither account is in: each non-membership is proven by the names
    // the sources give the account's gids.
    let stack = Stack::probe("svc", &mode.args("require_group=nogroup"));
    let skip = "member of no require group";
    for (what, sleep, first_skips) in [
        ("a directory answering at once: control", 0, true),
        ("a directory slow for each gid", SLOW_GID_MS, false),
    ] {
        ds.with(|c| c.grgidsleep = sleep);
        ds.clear_calls();
        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &first.name, "--user", &second.name]);
        let out = ds.wrap(&audit).output().expect("totp-state audit");
        let verdicts = system_tests::audit_verdicts(&out.stdout);
        let said = |u: &TestUser| {
            verdicts
                .get(&u.name)
                .map(|v| v.1.contains(skip))
                .unwrap_or(false)
        };
        // The fault happened: the first account's walk ran out, on the second's gid.
        if said(&first) != first_skips {
            f.0.push(format!("{what}: audit of the first account: {out:?}"));
        }
        let asked = format!("getgrgid {}", second.gid);
        if !ds.calls().contains(&asked) {
            f.0.push(format!("{what}: {asked} not made: {:?}", ds.calls()));
        }
        if !said(&second) {
            f.0.push(format!("{what}: audit of the second account: {out:?}"));
        }
        // Its login, on a walk of its own, skips (what the audit must report).
        let driver = Driver::new(&stack, "svc", &second.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        f.expect(&format!("{what}: login"), &ds.run(&driver), "PAM_IGNORE");
    }
    mode.unenroll(&first);
    mode.unenroll(&second);
    f.check();
}

/// R36: the walk's deadline can also pass while each source gives the user's groups
/// (`initgroups`), before any gid is named: the list is incomplete, the membership
/// unknown and the code asked, as for a gid. The log said the directory "did not
/// answer: Timer expired", an outage to look for where there was none; it now names the
/// walk's bound, as it does for a gid. Here the directory's `initgroups` takes 11 s.
/// Control: the directory answering at once lets the non-member skip.
#[test]
fn a_group_list_past_the_walks_deadline_is_logged_as_the_bound() {
    let Some((u, ds)) = setup(
        "a_group_list_past_the_walks_deadline_is_logged_as_the_bound",
        "dt2",
    ) else {
        return;
    };
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    let stack = Stack::probe("svc", &mode.args("require_group=nogroup"));
    for (what, sleep, skips) in [
        ("a directory answering at once: control", 0, true),
        (
            "a directory taking 11 s for the user's groups",
            11_000,
            false,
        ),
    ] {
        ds.with(|c| c.initsleep = sleep);
        ds.clear_calls();
        // The clock runs (a frozen one would never reach the deadline).
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        let (d, lines) = ds.run_logged(&driver);
        if skips {
            f.expect(what, &d, "PAM_IGNORE");
            continue;
        }
        f.refused(what, &d);
        let listed = |l: &&String| l.contains("group list of") && l.contains("incomplete");
        if !lines
            .iter()
            .filter(listed)
            .any(|l| l.contains("more than 10 s") && !l.contains("did not answer"))
        {
            f.0.push(format!("{what}: the deadline is not logged: {lines:?}"));
        }
        // The directory was asked for the user's groups by the walk too (once by
        // getgrouplist before it).
        let asked = ds
            .calls()
            .iter()
            .filter(|c| c.starts_with("initgroups"))
            .count();
        if asked < 2 {
            f.0.push(format!("{what}: initgroups asked {asked} time(s)"));
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// `totp-state audit` and `totp-enroll explain` prove a non-membership as the module
/// does, on the account's one walk of the sources, and now say why it stays unknown in
/// the words of the module's log line: a directory whose module has no `getgrgid_r`
/// cannot name the user's gids, so `require_group=` (and a rule file's `ALL EXCEPT
/// (g)`) asks for the code. Both tools dropped that reason: the audit showed no skip
/// and no cause, explain said "unknown" and nothing more. Control: the same directory
/// with `getgrgid_r` proves the non-membership (the audit and explain show the skip)
/// and no reason is printed.
#[test]
fn the_tools_say_why_a_source_without_getgrgid_leaves_a_non_membership_unknown() {
    let Some((u, full)) = setup(
        "the_tools_say_why_a_source_without_getgrgid_leaves_a_non_membership_unknown",
        "ds9",
    ) else {
        return;
    };
    let no_gid = DirSvc::built(&u, &["-DNO_GETGRGID"]);
    let g = full.control.grname.clone();
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    let option = format!("require_group={g}");
    let stack = Stack::probe("svc", &mode.args(&option));
    let said = |s: &str| s.contains("cannot look groups up by id") && s.contains(SERVICE);
    for (what, ds, unknown) in [
        ("with getgrgid_r: control", &full, false),
        ("without getgrgid_r", &no_gid, true),
    ] {
        ds.with(|c| {
            c.grmember = false;
            c.grfirst = ds.control.grgid + 7;
        });
        // The module's own line, for the words the tools must print.
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, T0))
            .at(T0);
        let (d, lines) = ds.run_logged(&driver);
        if unknown {
            f.refused(what, &d);
        } else {
            f.expect(what, &d, "PAM_IGNORE");
        }
        let logged = lines.iter().find(|l| said(l)).cloned();
        if logged.is_some() != unknown {
            f.0.push(format!("{what}: module log: {lines:?}"));
        }
        let in_log = |r: &str| logged.as_deref().is_some_and(|l| l.contains(r));

        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &u.name]);
        let out = ds.wrap(&audit).output().expect("totp-state audit");
        let reasons = audit_reasons(&out, &u);
        let skip_said = reasons
            .iter()
            .any(|r| r.contains("member of no require group"));
        let why = reasons.iter().find(|r| said(r));
        if reasons.is_empty()
            || skip_said == unknown
            || why.is_some() != unknown
            || why.is_some_and(|r| !in_log(r))
        {
            f.0.push(format!("{what}: audit: {out:?} (module log {lines:?})"));
        }

        let rules = rules_file(ds, "except.conf", &format!("+ : ALL EXCEPT ({g}) : ALL\n"));
        let explain = |json: bool| {
            let mut cmd = Command::new(&system_tests::built().enroll);
            cmd.arg("explain");
            if json {
                cmd.arg("--json");
            }
            cmd.args(["--user", &u.name, "--rhost", "10.0.0.5", "--accessfile"])
                .arg(&rules);
            ds.wrap(&cmd).output().expect("totp-enroll explain")
        };
        let out = explain(true);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let entry = v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == g.as_str())
            .cloned()
            .unwrap_or_default();
        let want = if unknown { "unknown" } else { "not a member" };
        let because: Vec<&str> = entry["unknown_because"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        let json_why = because.iter().find(|r| said(r));
        if entry["membership"] != want
            || (v["verdict"] == "skip") == unknown
            || json_why.is_some() != unknown
            || json_why.is_some_and(|r| !in_log(r))
            || (!unknown && !because.is_empty())
        {
            f.0.push(format!("{what}: explain --json: {out:?}"));
        }
        let out = explain(false);
        let text = String::from_utf8_lossy(&out.stdout);
        let text_why = text
            .lines()
            .find_map(|l| l.strip_prefix("unknown: "))
            .filter(|r| said(r));
        if !out.status.success()
            || text_why.is_some() != unknown
            || text_why.is_some_and(|r| !in_log(r))
        {
            f.0.push(format!("{what}: explain: {out:?}"));
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// R36 in `totp-state audit`: an answer of the sources is asked once for the whole
/// audit, and a later account reused it for free, where its login asks it again and
/// spends the time. A directory taking just over 5 s (`SLOW_GID_MS`) for each
/// `getgrgid`: the first account (whose primary group is the second's) has one gid to
/// name and skips; the second has that gid and the directory's group, two slow answers
/// on its own login's walk, past the deadline, so `require_group=` asks it for the
/// code, but the audit named the shared gid from the first account's answer, spent no
/// time on it and reported the skip. The
/// time a kept answer took now counts against each account's walk, so the audit says
/// the code is asked, and why. Control: the directory answering at once lets both
/// skip, in the audit as at login.
#[test]
fn the_audit_counts_a_shared_answers_time_against_each_accounts_walk() {
    let Some((u, ds)) = setup(
        "the_audit_counts_a_shared_answers_time_against_each_accounts_walk",
        "ds0",
    ) else {
        return;
    };
    // The first account audited: a local one whose only gid is `u`'s primary group.
    let first = TestUser::create("dt0");
    {
        let _g = user_database_lock();
        let out =
            shadow_tool("usermod", &["-g", &u.gid.to_string(), &first.name]).expect("usermod");
        assert!(out.status.success(), "usermod: {out:?}");
    }
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    let stack = Stack::probe("svc", &mode.args("require_group=nogroup"));
    for (what, sleep, second_skips) in [
        ("a directory answering at once: control", 0, true),
        ("a directory slow for each gid", SLOW_GID_MS, false),
    ] {
        ds.with(|c| {
            c.grgidsleep = sleep;
            c.grmember = true;
        });
        // What the second account's login gets (the clock runs, so the walk can end).
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        let (d, lines) = ds.run_logged(&driver);
        if second_skips {
            f.expect(what, &d, "PAM_IGNORE");
        } else {
            f.refused(what, &d);
        }
        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &first.name, "--user", &u.name]);
        let out = ds.wrap(&audit).output().expect("totp-state audit");
        let verdicts = system_tests::audit_verdicts(&out.stdout);
        let skips = |name: &str| {
            verdicts
                .get(name)
                .map(|v| v.1.contains("member of no require group"))
        };
        let second_reasons = verdicts
            .get(&u.name)
            .map(|v| v.1.clone())
            .unwrap_or_default();
        let deadline_said = second_reasons.contains("more than 10 s");
        if skips(&first.name) != Some(true)
            || skips(&u.name) != Some(second_skips)
            || deadline_said == second_skips
        {
            f.0.push(format!("{what}: audit: {out:?} (login log {lines:?})"));
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// R36 in `totp-state audit`, one account: a login looks a group up again (its entry
/// by `getgrnam`, then the group in every source on the walk) for each question asked
/// of it, and a rule file's `(g)` (a non-membership) and `skip_group=g` (a membership)
/// are two questions. The audit answered the second from the first for free, where the
/// login spends the time again on its walk. A directory taking 4 s for each `getgrnam`:
/// the login's walk asks `g` in every source (4 s), `getgrnam` of `g` again (8 s),
/// `g` in every source again (12 s, past the 10 s deadline), so `require_group=nogroup`
/// cannot prove the non-membership and the code is asked; the audit had spent 4 s on
/// `g` and 4 s on `nogroup` and reported the skip, a lockout for an account without a
/// secret file and without nullok. Control: the directory answering at once lets the
/// account skip, in the audit as at login.
#[test]
fn the_audit_counts_a_groups_second_question_against_the_accounts_walk() {
    let Some((u, ds)) = setup(
        "the_audit_counts_a_groups_second_question_against_the_accounts_walk",
        "dt4",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let rules = rules_file(&ds, "member.conf", &format!("+ : ({g}) : ALL\n"));
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    let stack = Stack::probe(
        "svc",
        &mode.args(&format!(
            "accessfile={} skip_group={g} require_group=nogroup",
            rules.display()
        )),
    );
    for (what, sleep, skips) in [
        ("a directory answering at once: control", 0, true),
        ("a directory taking 4 s for each getgrnam", 4000, false),
    ] {
        ds.with(|c| {
            c.grnamsleep = sleep;
            c.grmember = false;
        });
        // The clock runs, so the walk can end.
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        let (d, lines) = ds.run_logged(&driver);
        if skips {
            f.expect(what, &d, "PAM_IGNORE");
        } else {
            f.refused(what, &d);
            if !lines.iter().any(|l| l.contains("more than 10 s")) {
                f.0.push(format!("{what}: login log without the deadline: {lines:?}"));
            }
        }
        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &u.name]);
        let out = ds.wrap(&audit).output().expect("totp-state audit");
        let verdicts = system_tests::audit_verdicts(&out.stdout);
        let reasons = verdicts
            .get(&u.name)
            .map(|v| v.1.clone())
            .unwrap_or_default();
        let skip_said = reasons.contains("member of no require group");
        let deadline_said = reasons.contains("more than 10 s");
        if reasons.is_empty() || skip_said != skips || deadline_said == skips {
            f.0.push(format!("{what}: audit: {out:?} (login log {lines:?})"));
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// `totp-enroll explain` keeps what it proved as a login does: a rule file naming a
/// group twice asks it once, and a gid's names are asked once. It asked them again
/// for each item, spending the walk's time twice: under a directory taking just over
/// 5 s for each `getgrgid` (`SLOW_GID_MS`), the login names the account's one gid once
/// and skips on `+ : ALL EXCEPT (g)`, while explain named it again (past the deadline) and
/// said the code is asked. Control: the directory answering at once, the same skip in
/// both.
#[test]
fn explain_asks_a_group_named_twice_once_as_the_login_does() {
    let Some((u, ds)) = setup(
        "explain_asks_a_group_named_twice_once_as_the_login_does",
        "dt5",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let rules = rules_file(
        &ds,
        "twice.conf",
        &format!("- : ({g}) : ALL\n+ : ALL EXCEPT ({g}) : ALL\n"),
    );
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    let stack = Stack::probe(
        "svc",
        &mode.args(&format!("accessfile={}", rules.display())),
    );
    for (what, sleep) in [
        ("a directory answering at once: control", 0),
        ("a directory taking just over 5 s for each gid", SLOW_GID_MS),
    ] {
        ds.with(|c| {
            c.grgidsleep = sleep;
            c.grmember = false;
        });
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        let (d, lines) = ds.run_logged(&driver);
        f.expect(what, &d, "PAM_IGNORE");
        let mut cmd = Command::new(&system_tests::built().enroll);
        cmd.args(["explain", "--json", "--user", &u.name, "--accessfile"])
            .arg(&rules);
        let out = ds.wrap(&cmd).output().expect("totp-enroll explain");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let all_proven = v["groups"]
            .as_array()
            .is_some_and(|gs| gs.iter().all(|e| e["membership"] == "not a member"));
        if v["verdict"] != "skip" || !all_proven {
            f.0.push(format!("{what}: explain: {out:?} (login log {lines:?})"));
        }
    }
    mode.unenroll(&u);
    f.check();
}

/// R36: a login proves a non-membership by the names every source gives each of the
/// user's gids, and two groups to prove ask for the same gids: each gid's names are
/// asked of the directory once per login (the walk keeps them), as they are by
/// `totp-enroll explain` for two groups of a rule, and by `totp-state audit`. Asked
/// again, each question would spend the walk's one deadline once more, and a slow
/// directory would run it out where one answer proves both. Control: one group asks
/// each gid once too, and every verdict is the skip the login gives.
#[test]
fn each_gid_is_named_once_however_many_groups_are_proven() {
    let Some((u, ds)) = setup(
        "each_gid_is_named_once_however_many_groups_are_proven",
        "dt6",
    ) else {
        return;
    };
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    let asked_once = |what: &str, f: &mut Failures, calls: Vec<String>| {
        for gid in [u.gid, ds.control.grgid] {
            let asked = format!("getgrgid {gid}");
            let n = calls.iter().filter(|c| **c == asked).count();
            if n != 1 {
                f.0.push(format!("{what}: {asked} made {n} time(s): {calls:?}"));
            }
        }
    };
    // Local groups the user is not in.
    for (what, groups) in [
        ("one group: control", "nogroup"),
        ("two groups", "nogroup,staff"),
    ] {
        let stack = Stack::probe("svc", &mode.args(&format!("require_group={groups}")));
        ds.clear_calls();
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, system_tests::now()));
        f.expect(&format!("{what}: login"), &ds.run(&driver), "PAM_IGNORE");
        asked_once(&format!("{what}: login"), &mut f, ds.calls());

        ds.clear_calls();
        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &u.name]);
        let out = ds.wrap(&audit).output().expect("totp-state audit");
        let skips = system_tests::audit_verdicts(&out.stdout)
            .get(&u.name)
            .is_some_and(|v| v.1.contains("member of no require group"));
        if !skips {
            f.0.push(format!("{what}: audit: {out:?}"));
        }
        asked_once(&format!("{what}: audit"), &mut f, ds.calls());

        let items: Vec<String> = groups.split(',').map(|g| format!("({g})")).collect();
        let rules = rules_file(
            &ds,
            "except.conf",
            &format!("+ : ALL EXCEPT {} : ALL\n", items.join(" ")),
        );
        ds.clear_calls();
        let mut cmd = Command::new(&system_tests::built().enroll);
        cmd.args([
            "explain", "--json", "--user", &u.name, "--rhost", "10.0.0.5",
        ])
        .arg("--accessfile")
        .arg(&rules);
        let out = ds.wrap(&cmd).output().expect("totp-enroll explain");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["verdict"] != "skip" {
            f.0.push(format!("{what}: explain: {out:?}"));
        }
        asked_once(&format!("{what}: explain"), &mut f, ds.calls());
    }
    mode.unenroll(&u);
    f.check();
}

/// Migration's tools say why a membership stays unknown in the words of the module's
/// log line for every cause, not only a source that failed the walk: a group no source
/// names (`require_group=` a group that is gone; `getgrnam` cannot tell that from a
/// source that failed quietly), and a group list the directory left incomplete (its
/// `initgroups` down). `totp-state audit` and `totp-enroll explain` printed "code
/// asked" with no reason for either, where the login's log names the cause. Control:
/// the directory answering, where the non-member skips and no reason is given.
#[test]
fn the_tools_say_why_a_missing_group_or_an_incomplete_list_leaves_a_membership_unknown() {
    let Some((u, ds)) = setup(
        "the_tools_say_why_a_missing_group_or_an_incomplete_list_leaves_a_membership_unknown",
        "dt7",
    ) else {
        return;
    };
    let g = ds.control.grname.clone();
    let gone = format!("{}gone", u.name);
    let mut f = Failures::default();
    let mode = Mode::Home;
    mode.enroll(&u);
    for (what, group, source, reason) in [
        ("a directory answering: control", g.as_str(), "ok", None),
        (
            "a group no source names",
            gone.as_str(),
            "ok",
            Some("not found (or a name service source failed quietly)"),
        ),
        (
            "the directory's initgroups down",
            g.as_str(),
            "initdown",
            Some("is incomplete ("),
        ),
    ] {
        // The user in no directory group: the group's entry lists no member, and the
        // directory's own list of the user's groups is empty (or down).
        ds.with(|c| {
            c.grmember = false;
            c.group = source;
        });
        let stack = Stack::probe("svc", &mode.args(&format!("require_group={group}")));
        let driver = Driver::new(&stack, "svc", &u.name)
            .answer(&wrong_totp(SECRET_160, T0))
            .at(T0);
        let (d, lines) = ds.run_logged(&driver);
        let logged = reason.and_then(|r| lines.iter().find(|l| l.contains(r)).cloned());
        match reason {
            None => f.expect(what, &d, "PAM_IGNORE"),
            Some(_) => {
                f.refused(what, &d);
                if logged.is_none() {
                    f.0.push(format!("{what}: the module's reason not logged: {lines:?}"));
                }
            }
        }
        // A tool's reason is the module's, word for word (the log line ends with it).
        let in_log = |r: &str| logged.as_deref().is_some_and(|l| l.ends_with(r));
        let said = |r: &str| reason.is_some_and(|want| r.contains(want));

        let mut audit = system_tests::audit_command(stack.path());
        audit.args(["--user", &u.name]);
        let out = ds.wrap(&audit).output().expect("totp-state audit");
        let reasons = audit_reasons(&out, &u);
        let skip_said = reasons
            .iter()
            .any(|r| r.contains("member of no require group"));
        let why = reasons.iter().find(|r| said(r));
        if reasons.is_empty()
            || skip_said != reason.is_none()
            || why.is_some() != reason.is_some()
            || why.is_some_and(|r| !in_log(r))
        {
            f.0.push(format!("{what}: audit: {out:?} (module log {lines:?})"));
        }

        let rules = rules_file(
            &ds,
            "except.conf",
            &format!("+ : ALL EXCEPT ({group}) : ALL\n"),
        );
        let mut cmd = Command::new(&system_tests::built().enroll);
        cmd.args([
            "explain",
            "--user",
            &u.name,
            "--rhost",
            "10.0.0.5",
            "--accessfile",
        ])
        .arg(&rules);
        let out = ds.wrap(&cmd).output().expect("totp-enroll explain");
        let text = String::from_utf8_lossy(&out.stdout);
        let text_why: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("unknown: "))
            .collect();
        let found = text_why.iter().find(|r| said(r));
        if !out.status.success()
            || found.is_some() != reason.is_some()
            || found.is_some_and(|r| !in_log(r))
            || (reason.is_none() && !text_why.is_empty())
        {
            f.0.push(format!("{what}: explain: {out:?} (module log {lines:?})"));
        }
    }
    mode.unenroll(&u);
    f.check();
}
