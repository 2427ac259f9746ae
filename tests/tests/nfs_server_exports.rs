//! `shared_file=auto` on the NFS server that exports the homes and is a login host too:
//! its homes lie on a local file system, yet NFS clients read the same secret files, so
//! a file on the mount an export of `/var/lib/nfs/etab` is on (or on a mount below an
//! export with `crossmnt`) counts as shared and GA's `DISALLOW_REUSE` line is written,
//! as on the clients. Each login runs in a private mount namespace whose `/var/lib/nfs`
//! holds a table the test wrote ([`nfs_etab_in_namespace`]); the host's is never
//! touched. The controls are the same login with a table listing only another file
//! system, and with no table. Exported paths are never looked at: one that does not
//! exist, or lies below a directory the user cannot search, changes nothing.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

    /// [`Exports::login`], for a secret file that exists only in the namespace: it is
    /// copied to `out` after the login, so the test can read what the login left.
    fn login_keeping(
        &self,
        setup: &str,
        stack: &Stack,
        u: &TestUser,
        answer: &str,
        at: u64,
        out: &Path,
    ) -> (Drive, Vec<String>) {
        let driver = Driver::new(stack, SVC, &u.name).answer(answer).at(at);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("f=$1; o=$2; shift 2; \"$@\"; s=$?; cp \"$f\" \"$o\"; exit $s")
            .arg("sh")
            .arg(u.secret_path())
            .arg(out)
            .arg("env");
        append_env_exec(&mut cmd, &driver.command());
        let (run, lines) = with_syslog_capture_after(setup, &cmd);
        (Drive::ran(&run), lines)
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
    export_line_with(path, "hide,nocrossmnt")
}

/// [`export_line`] with `flags` (`crossmnt` or `nocrossmnt`, as exportfs writes them).
fn export_line_with(path: &Path, flags: &str) -> String {
    format!(
        "{}\t192.0.2.0/24(rw,sync,wdelay,{flags},secure,root_squash,no_all_squash)\n",
        path.display()
    )
}

/// Set-up lines putting `u`'s home on a mount of its own (a tmpfs with the home's owner
/// and mode) holding a copy of its secret file as written on the host.
fn home_on_its_own_mount(u: &TestUser) -> String {
    let m = fs::metadata(&u.home).expect("home");
    let home = u.home.to_str().expect("a UTF-8 path");
    format!(
        "cp -p '{home}/.google_authenticator' \"$1/ga.saved\"\n\
         mount -t tmpfs -o mode={:o},uid={},gid={} none '{home}'\n\
         cp -p \"$1/ga.saved\" '{home}/.google_authenticator'\n",
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
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
            "not written on time-based logins (a local file system, shared_file=auto; no \
             export of its mount in /var/lib/nfs/etab"
        ),
        "{r}"
    );
}

/// A home on a mount of its own (`useradd --btrfs-subvolume-home` or a separate file
/// system) below an exported directory: NFS clients see it only with `crossmnt` (or
/// `nohide`), which makes it exported; without, it is another mount and left alone.
#[test]
fn a_home_on_its_own_mount_below_a_crossmnt_export_gets_the_used_step_written() {
    let t = "a_home_on_its_own_mount_below_a_crossmnt_export_gets_the_used_step_written";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let x = Exports::new();
    let secret = random_secret_b32();
    let stack = Stack::with_module(SVC, "");
    let u = TestUser::create("nxm");
    let written = ga_file(&secret);
    u.write_secret(&written, 0o600);
    let parent = u.home.parent().expect("a home below a directory");
    let after = x.dir.path().join("after");
    let own_mount = home_on_its_own_mount(&u);
    let login = |flags: &str, at: u64| {
        let table = x.table(&format!("etab-{flags}"), &export_line_with(parent, flags));
        let setup = format!("{}{own_mount}", x.setup(Some(&table)));
        let (d, lines) = x.login_keeping(&setup, &stack, &u, &code_at(&secret, at), at, &after);
        assert_eq!(d.result, "PAM_SUCCESS", "{flags}: {d:?} {lines:#?}");
        assert!(
            !lines.iter().any(|l| l.contains("NFS server")),
            "{flags}: nothing to warn about: {lines:#?}"
        );
        read(&after)
    };
    // Control: the export does not cross into the home's mount; the file is left alone.
    assert_eq!(
        login("hide,nocrossmnt", T0),
        written,
        "not exported: left alone"
    );
    // The same export with crossmnt: the step is written.
    let kept = login("hide,crossmnt", T0 + 30);
    assert_eq!(
        file_value(&kept, "DISALLOW_REUSE").as_deref(),
        Some(((T0 + 30) / 30).to_string().as_str()),
        "{kept}"
    );
    // On the host, the file under the namespace's mount was never touched.
    assert_eq!(read(&u.secret_path()), written);
}

/// No exported path is looked at: one that does not exist, and one below a directory
/// the user cannot search (which used to be a warning on every login), on another mount
/// than the home, leave the decision as it is and log nothing. The control adds the
/// home's export to the same table: written, still without a warning.
#[test]
fn export_paths_missing_or_unsearchable_are_never_looked_at() {
    let t = "export_paths_missing_or_unsearchable_are_never_looked_at";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "setpriv") {
        return;
    }
    let x = Exports::new();
    let secret = random_secret_b32();
    let stack = Stack::with_module(SVC, "");
    let u = TestUser::create("nxu");
    let p = u.write_secret(&ga_file(&secret), 0o600);
    let before = read(&p);
    let closed = x.elsewhere().join("closed");
    let hidden = closed.join("export");
    let gone = x.elsewhere().join("gone").join("away");
    let fault = x.dir.path().join("fault");
    // On the other mount: the closed directory, and the proof that the user cannot
    // look below it.
    let setup = |table: &Path| {
        format!(
            "{}mkdir -p '{hidden}'\nchmod 700 '{closed}'\n\
             setpriv --reuid={uid} --regid={gid} --clear-groups stat '{hidden}' \
             >/dev/null 2>'{fault}' || true\n",
            x.setup(Some(table)),
            hidden = hidden.display(),
            closed = closed.display(),
            fault = fault.display(),
            uid = u.uid,
            gid = u.gid,
        )
    };
    let unseen = format!("{}{}", export_line(&gone), export_line(&hidden));
    let table = x.table("etab-unseen", &unseen);
    let (d, lines) = x.login(&setup(&table), &stack, &u, &code_at(&secret, T0), T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    let denied = fs::read_to_string(&fault).expect("the fault's proof");
    assert!(denied.contains("Permission denied"), "{denied}");
    assert_eq!(read(&p), before, "other mounts only: left alone");
    assert!(
        !lines.iter().any(|l| l.contains("NFS server")),
        "no warning: {lines:#?}"
    );
    // Control: the same table listing the home too.
    let table = x.table("etab-home", &format!("{unseen}{}", export_line(&u.home)));
    let (d, lines) = x.login(
        &setup(&table),
        &stack,
        &u,
        &code_at(&secret, T0 + 30),
        T0 + 30,
    );
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:#?}");
    let after = read(&p);
    assert_eq!(
        file_value(&after, "DISALLOW_REUSE").as_deref(),
        Some(((T0 + 30) / 30).to_string().as_str()),
        "{after}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("NFS server")),
        "no warning: {lines:#?}"
    );
}
