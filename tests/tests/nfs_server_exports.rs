//! `shared_file=auto` on the NFS server that exports the homes and is a login host too:
//! its homes lie on a local file system, yet NFS clients read the same secret files, so
//! a file on a file system an export of `/var/lib/nfs/etab` is on counts as shared and
//! GA's `DISALLOW_REUSE` line is written, as on the clients. Each login runs in a private
//! mount namespace whose `/var/lib/nfs` holds a table the test wrote
//! ([`nfs_etab_in_namespace`]); the host's is never touched. The controls are the same
//! login with a table listing only another file system, and with no table.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use system_tests::*;

const SVC: &str = "sshd";

/// A test's export table and another file system to list in it (a tmpfs mounted in the
/// namespace).
struct Exports {
    dir: tempfile::TempDir,
}

impl Exports {
    fn new() -> Exports {
        Exports {
            dir: tempfile::Builder::new()
                .prefix("pam_totp-etab")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// A directory that is another file system in the namespace.
    fn elsewhere(&self) -> PathBuf {
        self.dir.path().join("elsewhere")
    }

    /// A table named `name` holding `contents`, readable by all as exportfs leaves it.
    fn table(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, contents).expect("write etab");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod etab");
        p
    }

    /// The namespace's set-up: `table` (if any) as `/var/lib/nfs/etab`, and the other
    /// file system mounted.
    fn setup(&self, table: Option<&Path>) -> String {
        let elsewhere = self.elsewhere();
        fs::create_dir_all(&elsewhere).expect("mkdir");
        format!(
            "{}mount -t tmpfs none '{}'\n",
            nfs_etab_in_namespace(table),
            elsewhere.to_str().expect("a UTF-8 path")
        )
    }

    /// One login of `u` with `setup` in place: the run and the module's log lines.
    fn login(
        &self,
        setup: &str,
        stack: &Stack,
        u: &TestUser,
        answer: &str,
        at: u64,
    ) -> (Drive, Vec<String>) {
        let driver = Driver::new(stack, SVC, &u.name).answer(answer).at(at);
        let (out, lines) = with_syslog_capture_after(setup, &driver.command());
        (Drive::ran(&out), lines)
    }

    /// `totp-state audit --json` of `stack` with `setup` in place.
    fn audit(&self, setup: &str, stack: &Stack) -> Output {
        in_private_mounts(setup, self.dir.path(), &audit_command(stack.path()))
            .output()
            .expect("run totp-state audit")
    }
}

/// An exportfs line: `path` exported to a network (written as it is: the test's paths
/// have no blank, control character, `\`, `"` or `#` that exportfs would escape).
fn export_line(path: &Path) -> String {
    format!(
        "{}\t192.0.2.0/24(rw,sync,wdelay,hide,nocrossmnt,secure,root_squash,no_all_squash)\n",
        path.display()
    )
}

/// A GA-migrated file: GA's default enrolment writes both lines.
fn ga_file(secret: &str) -> String {
    format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n")
}

#[test]
fn a_home_on_an_exported_local_file_system_gets_the_used_step_written() {
    let t = "a_home_on_an_exported_local_file_system_gets_the_used_step_written";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let x = Exports::new();
    let secret = random_secret_b32();
    let code = code_at(&secret, T0);
    let step = (T0 / 30).to_string();
    let stack = Stack::with_module(SVC, "");

    // Control: the table lists only another file system; the file is left as it is.
    let c = TestUser::create("nxc");
    let p = c.write_secret(&ga_file(&secret), 0o600);
    let before = read(&p);
    let elsewhere = x.table("etab-elsewhere", &export_line(&x.elsewhere()));
    let (d, lines) = x.login(&x.setup(Some(&elsewhere)), &stack, &c, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    assert_eq!(read(&p), before, "not exported: left alone");
    // Nor with no table at all (no NFS server).
    let (d, lines) = x.login(
        &x.setup(None),
        &stack,
        &c,
        &code_at(&secret, T0 + 30),
        T0 + 30,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    assert_eq!(read(&p), before, "no table: left alone");

    // The table lists the home directory (after another export): the step is written.
    let u = TestUser::create("nxe");
    let p = u.write_secret(&ga_file(&secret), 0o600);
    let exported = x.table(
        "etab-exported",
        &format!("{}{}", export_line(&x.elsewhere()), export_line(&u.home)),
    );
    let setup = x.setup(Some(&exported));
    let (d, lines) = x.login(&setup, &stack, &u, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    let after = read(&p);
    assert_eq!(
        file_value(&after, "DISALLOW_REUSE").as_deref(),
        Some(step.as_str()),
        "{after}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("etab")),
        "a readable table logs nothing: {lines:#?}"
    );
    // An NFS client (a host with its own store, reading the same file) refuses the
    // code from the line alone.
    let client = Stack::with_module(SVC, "");
    let d = Driver::new(&client, SVC, &u.name)
        .answer(&code)
        .at(T0 + 5)
        .run();
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(
        d.messages.iter().any(|(_, m)| m.contains("already used")),
        "{d:?}"
    );
}

/// A table that cannot be read as exportfs writes it errs toward shared: the line is
/// written, with a warning naming the table's fault.
#[test]
fn a_garbled_export_table_errs_toward_shared_and_says_so() {
    let t = "a_garbled_export_table_errs_toward_shared_and_says_so";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let x = Exports::new();
    let secret = random_secret_b32();
    let stack = Stack::with_module(SVC, "");
    let u = TestUser::create("nxg");
    let p = u.write_secret(&ga_file(&secret), 0o600);
    // The other file system, then a line with a bad escape and no tab.
    let garbled = x.table(
        "etab-garbled",
        &format!("{}/srv/x\\9\n", export_line(&x.elsewhere())),
    );
    let (d, lines) = x.login(
        &x.setup(Some(&garbled)),
        &stack,
        &u,
        &code_at(&secret, T0),
        T0,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    let after = read(&p);
    assert_eq!(
        file_value(&after, "DISALLOW_REUSE").as_deref(),
        Some((T0 / 30).to_string().as_str()),
        "{after}"
    );
    assert!(
        lines.iter().any(|l| l.contains("NFS server exports")
            && l.contains("/var/lib/nfs/etab: line 2")
            && l.contains("kept up to date as on a shared home")),
        "{lines:#?}"
    );
}

#[test]
fn audit_reports_a_home_on_an_exported_file_system() {
    let t = "audit_reports_a_home_on_an_exported_file_system";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let x = Exports::new();
    let u = TestUser::create("nxa");
    u.write_secret(&ga_file(&random_secret_b32()), 0o600);
    let stack = Stack::with_module("svc", "");
    let exported = x.table("etab-exported", &export_line(&u.home));
    let elsewhere = x.table("etab-elsewhere", &export_line(&x.elsewhere()));
    let reasons = |table: &Path| {
        let out = x.audit(&x.setup(Some(table)), &stack);
        let found = audit_verdicts(&out.stdout);
        let (verdict, reasons) = found.get(&u.name).cloned().unwrap_or_default();
        assert_eq!(verdict, "ok", "{out:?}");
        reasons
    };
    let r = reasons(&exported);
    assert!(
        r.contains("kept up to date on logins (a local file system this host's NFS server exports")
            && r.contains(&u.home.display().to_string()),
        "{r}"
    );
    let r = reasons(&elsewhere);
    assert!(
        r.contains(
            "not written on time-based logins (a local file system, shared_file=auto, not exported"
        ),
        "{r}"
    );
}
