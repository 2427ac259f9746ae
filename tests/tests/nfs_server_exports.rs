//! `shared_file=auto` on the NFS server that exports the homes and is a login host too:
//! its homes lie on a local file system, yet NFS clients read the same secret files, so
//! a file on the mount an export of `/var/lib/nfs/etab` is on (or on a mount below an
//! export with `crossmnt`, or reached there through a bind mount of its file system)
//! counts as shared and GA's `DISALLOW_REUSE` line is written, as on the clients. Each
//! login runs in a private mount namespace whose `/var/lib/nfs` holds a table the test
//! wrote ([`nfs_etab_in_namespace`]) and whose `/proc/fs` is an empty file system, so
//! that neither the host's table nor its NFS server's state changes the outcome. The
//! controls are the same login with a table listing only another file system, and with
//! no table. Exported paths are never looked at: one that does not exist, or lies below
//! a directory the user cannot search, changes nothing.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use system_tests::*;

const SVC: &str = "sshd";

/// One test's set-up: a scratch directory for its tables and for another file system
/// to list in them (a tmpfs mounted in the namespace), a stack, and a user whose secret
/// file is GA-migrated (GA's default enrolment writes both lines).
struct Case {
    dir: tempfile::TempDir,
    stack: Stack,
    secret: String,
    u: TestUser,
    /// The secret file as written on the host.
    written: String,
}

impl Case {
    /// `None` where test `t` cannot run here (skipped; a failure under CI=true): it
    /// needs root, `unshare` and `tools`. `user` names the test user, `service` the
    /// stack's service.
    fn new(t: &str, user: &str, service: &str, tools: &[&str]) -> Option<Case> {
        if !require_root(t) || !["unshare"].iter().chain(tools).all(|n| require_tool(t, n)) {
            return None;
        }
        let secret = random_secret_b32();
        let written = format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
        let u = TestUser::create(user);
        u.write_secret(&written, 0o600);
        Some(Case {
            dir: tempfile::Builder::new()
                .prefix("pam_totp-etab")
                .tempdir()
                .expect("tempdir"),
            stack: Stack::with_module(service, ""),
            secret,
            u,
            written,
        })
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

    /// The namespace's set-up: `table` (if any) as `/var/lib/nfs/etab`, `/proc/fs`
    /// masked (no `nfsd` thread count: with no table, no NFS server, whatever the
    /// host's runs), and the other file system mounted.
    fn setup(&self, table: Option<&Path>) -> String {
        let elsewhere = self.elsewhere();
        fs::create_dir_all(&elsewhere).expect("mkdir");
        format!(
            "{}mount -t tmpfs -o mode=755 none /proc/fs\nmount -t tmpfs none '{}'\n",
            nfs_etab_in_namespace(table),
            elsewhere.to_str().expect("a UTF-8 path")
        )
    }

    /// [`Case::setup`] with a table holding `contents`, written as `name`.
    fn setup_with(&self, name: &str, contents: &str) -> String {
        self.setup(Some(&self.table(name, contents)))
    }

    fn code(&self, at: u64) -> String {
        code_at(&self.secret, at)
    }

    /// One login of the user at `at`, with the right code, in `setup`: it must succeed.
    /// The module's log lines.
    fn login(&self, setup: &str, at: u64) -> Vec<String> {
        let driver = Driver::new(&self.stack, SVC, &self.u.name)
            .answer(&self.code(at))
            .at(at);
        let (out, lines) = with_syslog_capture_after(setup, &driver.command());
        let d = Drive::ran(&out);
        assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
        lines
    }

    /// [`Case::login`] for a secret file that exists only in the namespace: the file
    /// as the login left it, copied out, and the log lines.
    fn login_keeping(&self, setup: &str, at: u64) -> (String, Vec<String>) {
        let out = self.dir.path().join("after");
        let driver = Driver::new(&self.stack, SVC, &self.u.name)
            .answer(&self.code(at))
            .at(at);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("f=$1; o=$2; shift 2; \"$@\"; s=$?; cp \"$f\" \"$o\"; exit $s")
            .arg("sh")
            .arg(self.u.secret_path())
            .arg(&out)
            .arg("env");
        append_env_exec(&mut cmd, &driver.command());
        let (run, lines) = with_syslog_capture_after(setup, &cmd);
        let d = Drive::ran(&run);
        assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
        (read(&out), lines)
    }

    /// `totp-state audit --json` of the stack in `setup`.
    fn audit(&self, setup: &str) -> Output {
        in_private_mounts(setup, self.dir.path(), &audit_command(self.stack.path()))
            .output()
            .expect("run totp-state audit")
    }

    /// The secret file on the host, which must be as written.
    fn assert_left_alone(&self, why: &str) {
        assert_eq!(read(&self.u.secret_path()), self.written, "{why}");
    }
}

/// `contents` records the step of a login at `at` as used (among the earlier ones GA
/// keeps).
fn assert_step_written(contents: &str, at: u64) {
    let step = (at / 30).to_string();
    assert!(
        file_value(contents, "DISALLOW_REUSE")
            .is_some_and(|v| v.split_whitespace().any(|s| s == step)),
        "step {step}: {contents}"
    );
}

/// No log line about this host's NFS server: the decision was made without doubt.
fn assert_no_nfs_warning(lines: &[String], what: &str) {
    assert!(
        !lines.iter().any(|l| l.contains("NFS server")),
        "{what}: nothing to warn about: {lines:#?}"
    );
}

/// An exportfs line: `path` exported to a network (written as it is: the test's paths
/// have no blank, control character, `\`, `"` or `#` that exportfs would escape).
fn export_line(path: &Path) -> String {
    export_line_with(path, "hide,nocrossmnt")
}

/// [`export_line`] with `flags` (`crossmnt` or `nocrossmnt`, as exportfs writes them).
fn export_line_with(path: &Path, flags: &str) -> String {
    format!(
        "{}\t192.0.2.0/24(rw,sync,wdelay,{flags},secure,root_squash,no_all_squash)\n",
        path.display()
    )
}

/// Set-up lines putting `u`'s home on a file system of its own (a tmpfs with the
/// home's owner and mode, mounted at `fs`) holding a copy of its secret file as written
/// on the host, and that file system bound onto the home: the login opens the file
/// through the bind mount. `fs` is the home itself for a home on its own mount.
fn home_on_its_own_file_system(u: &TestUser, fs: &Path) -> String {
    let m = fs::metadata(&u.home).expect("home");
    let home = u.home.to_str().expect("a UTF-8 path");
    let fs = fs.to_str().expect("a UTF-8 path");
    let mut s = format!(
        "cp -p '{home}/.google_authenticator' \"$1/ga.saved\"\n\
         mkdir -p '{fs}'\n\
         mount -t tmpfs -o mode={:o},uid={},gid={} none '{fs}'\n\
         cp -p \"$1/ga.saved\" '{fs}/.google_authenticator'\n",
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
    );
    if fs != home {
        s.push_str(&format!("mount --bind '{fs}' '{home}'\n"));
    }
    s
}

#[test]
fn a_home_on_an_exported_local_file_system_gets_the_used_step_written() {
    let t = "a_home_on_an_exported_local_file_system_gets_the_used_step_written";
    let Some(c) = Case::new(t, "nxc", SVC, &[]) else {
        return;
    };
    // Control: the table lists only another file system; the file is left as it is,
    // and nothing is logged about the NFS server.
    let lines = c.login(
        &c.setup_with("etab-elsewhere", &export_line(&c.elsewhere())),
        T0,
    );
    c.assert_left_alone("not exported: left alone");
    assert_no_nfs_warning(&lines, "not exported");
    // Nor with no table at all (no NFS server).
    let lines = c.login(&c.setup(None), T0 + 30);
    c.assert_left_alone("no table: left alone");
    assert_no_nfs_warning(&lines, "no table");

    // The table lists the home directory (after another export): the step is written.
    let x = Case::new(t, "nxe", SVC, &[]).expect("root");
    let table = format!("{}{}", export_line(&x.elsewhere()), export_line(&x.u.home));
    let lines = x.login(&x.setup_with("etab-exported", &table), T0);
    assert_step_written(&read(&x.u.secret_path()), T0);
    assert!(
        !lines.iter().any(|l| l.contains("etab")),
        "a readable table logs nothing: {lines:#?}"
    );
    // An NFS client (a host with its own store, reading the same file) refuses the
    // code from the line alone.
    let client = Stack::with_module(SVC, "");
    let d = Driver::new(&client, SVC, &x.u.name)
        .answer(&x.code(T0))
        .at(T0 + 5)
        .run();
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(
        d.messages.iter().any(|(_, m)| m.contains("already used")),
        "{d:?}"
    );
}

/// A table that cannot be read as exportfs writes it errs toward shared: the line is
/// written, with a warning naming the table's fault. So does a path with a `..`
/// component, which is never walked as written.
#[test]
fn a_garbled_export_table_errs_toward_shared_and_says_so() {
    let t = "a_garbled_export_table_errs_toward_shared_and_says_so";
    let Some(c) = Case::new(t, "nxg", SVC, &[]) else {
        return;
    };
    let other = export_line(&c.elsewhere());
    for (at, bad) in [
        // A bad escape and no tab.
        (T0, "/srv/x\\9\n".to_owned()),
        (T0 + 30, export_line(&c.elsewhere().join("..").join("x"))),
    ] {
        let lines = c.login(&c.setup_with("etab-garbled", &format!("{other}{bad}")), at);
        assert_step_written(&read(&c.u.secret_path()), at);
        assert!(
            lines.iter().any(|l| l.contains("NFS server exports")
                && l.contains("/var/lib/nfs/etab: line 2")
                && l.contains("kept up to date as on a shared home")),
            "{bad}: {lines:#?}"
        );
    }
}

#[test]
fn audit_reports_a_home_on_an_exported_file_system() {
    let t = "audit_reports_a_home_on_an_exported_file_system";
    let Some(c) = Case::new(t, "nxa", "svc", &[]) else {
        return;
    };
    let reasons = |name: &str, table: &str| {
        let out = c.audit(&c.setup_with(name, table));
        let found = audit_verdicts(&out.stdout);
        let (verdict, reasons) = found.get(&c.u.name).cloned().unwrap_or_default();
        assert_eq!(verdict, "ok", "{out:?}");
        reasons
    };
    let r = reasons("etab-exported", &export_line(&c.u.home));
    assert!(
        r.contains("kept up to date on logins (a local file system this host's NFS server exports")
            && r.contains(&c.u.home.display().to_string()),
        "{r}"
    );
    let r = reasons("etab-elsewhere", &export_line(&c.elsewhere()));
    assert!(
        r.contains(
            "not written on time-based logins (a local file system, shared_file=auto; no \
             export of its mount in /var/lib/nfs/etab"
        ),
        "{r}"
    );
}

/// A home on a mount of its own (`useradd --btrfs-subvolume-home` or a separate file
/// system) below an exported directory: NFS clients see it only with `crossmnt` (or
/// `nohide`), which makes it exported; without, it is another mount and left alone.
/// The same holds for a home opened through one mount of its file system while another
/// mount of it (a bind mount) lies below the export: the clients read the same file.
#[test]
fn a_home_on_its_own_mount_below_a_crossmnt_export_gets_the_used_step_written() {
    let t = "a_home_on_its_own_mount_below_a_crossmnt_export_gets_the_used_step_written";
    let Some(c) = Case::new(t, "nxm", SVC, &[]) else {
        return;
    };
    let parent = c.u.home.parent().expect("a home below a directory");
    let exported = c.dir.path().join("exported");
    // The home's own mount below `parent`, then the home's file system mounted below
    // `exported` and bound onto the home, which is not below `exported`.
    let cases = [
        (parent, home_on_its_own_file_system(&c.u, &c.u.home)),
        (
            exported.as_path(),
            home_on_its_own_file_system(&c.u, &exported.join("homes")),
        ),
    ];
    let mut at = T0;
    for (export, own_fs) in &cases {
        let login = |flags: &str, at: u64| {
            let table = export_line_with(export, flags);
            let setup = format!("{}{own_fs}", c.setup_with(&format!("etab-{flags}"), &table));
            let (after, lines) = c.login_keeping(&setup, at);
            assert_no_nfs_warning(&lines, flags);
            after
        };
        // Control: the export does not cross into the home's mount; left alone.
        assert_eq!(
            login("hide,nocrossmnt", at),
            c.written,
            "{export:?}: not exported: left alone"
        );
        // The same export with crossmnt: the step is written.
        assert_step_written(&login("hide,crossmnt", at + 30), at + 30);
        at += 60;
    }
    // On the host, the file under the namespace's mounts was never touched.
    c.assert_left_alone("the host's file");
}

/// No exported path is looked at: one that does not exist, and one below a directory
/// the user cannot search (which used to be a warning on every login), on another mount
/// than the home, leave the decision as it is and log nothing. The control adds the
/// home's export to the same table: written, still without a warning.
#[test]
fn export_paths_missing_or_unsearchable_are_never_looked_at() {
    let t = "export_paths_missing_or_unsearchable_are_never_looked_at";
    let Some(c) = Case::new(t, "nxu", SVC, &["setpriv"]) else {
        return;
    };
    let closed = c.elsewhere().join("closed");
    let hidden = closed.join("export");
    let gone = c.elsewhere().join("gone").join("away");
    let fault = c.dir.path().join("fault");
    // On the other mount: the closed directory, and the proof that the user cannot
    // look below it.
    let setup = |name: &str, table: &str| {
        format!(
            "{}mkdir -p '{hidden}'\nchmod 700 '{closed}'\n\
             setpriv --reuid={uid} --regid={gid} --clear-groups stat '{hidden}' \
             >/dev/null 2>'{fault}' || true\n",
            c.setup_with(name, table),
            hidden = hidden.display(),
            closed = closed.display(),
            fault = fault.display(),
            uid = c.u.uid,
            gid = c.u.gid,
        )
    };
    let unseen = format!("{}{}", export_line(&gone), export_line(&hidden));
    let lines = c.login(&setup("etab-unseen", &unseen), T0);
    let denied = fs::read_to_string(&fault).expect("the fault's proof");
    assert!(denied.contains("Permission denied"), "{denied}");
    c.assert_left_alone("other mounts only: left alone");
    assert_no_nfs_warning(&lines, "other mounts only");
    // Control: the same table listing the home too.
    let table = format!("{unseen}{}", export_line(&c.u.home));
    let lines = c.login(&setup("etab-home", &table), T0 + 30);
    assert_step_written(&read(&c.u.secret_path()), T0 + 30);
    assert_no_nfs_warning(&lines, "the home exported");
}

/// docs/file-format.md and docs/logging.md, `shared_file=auto`: when `fstatfs` of the
/// secret file fails, the file system's type is unknown and the file is taken for
/// shared: the used step is written to `DISALLOW_REUSE` as on a shared home, with a
/// warning that names the error, and the login goes on. The fault is `EIO` injected by
/// strace into every `fstatfs` of the login (the trace shows it happened). Control: the
/// same login without the fault, on this local, unexported home, leaves the file alone
/// and warns of nothing.
#[test]
fn a_failed_fstatfs_keeps_the_lines_as_on_a_shared_home_and_warns() {
    let t = "a_failed_fstatfs_keeps_the_lines_as_on_a_shared_home_and_warns";
    let Some(c) = Case::new(t, "nxf", SVC, &["strace"]) else {
        return;
    };
    let setup = c.setup(None);
    let unknown = |lines: &[String]| {
        lines.iter().any(|l| {
            let m = syslog_message(l);
            m.contains("file system type unknown (")
                && m.contains("kept up to date as on a shared home")
        })
    };
    let lines = c.login(&setup, T0);
    c.assert_left_alone("a local home, not exported: left alone");
    assert!(!unknown(&lines), "control: {lines:#?}");

    let trace = c.dir.path().join("fstatfs.trace");
    let at = T0 + 30;
    let driver = Driver::new(&c.stack, SVC, &c.u.name)
        .answer(&c.code(at))
        .at(at);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"]).arg(&trace).args([
        "-e",
        "trace=fstatfs",
        "-e",
        "inject=fstatfs:error=EIO",
        "env",
    ]);
    append_env_exec(&mut cmd, &driver.command());
    let (out, lines) = with_syslog_capture_after(&setup, &cmd);
    let d = Drive::ran(&out);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    let traced = fs::read_to_string(&trace).expect("the trace");
    assert!(traced.contains("(INJECTED)"), "never injected: {traced}");
    assert!(unknown(&lines), "{lines:#?}");
    assert_step_written(&read(&c.u.secret_path()), at);
}
