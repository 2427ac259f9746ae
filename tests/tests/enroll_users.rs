//! `totp-enroll --user`: root provisions another user without ever writing as root into a
//! directory that user controls, and the result logs in through both modules.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use system_tests::{
    Drive, Driver, ENROLL_SCRIPTED, Stack, T0, TestUser, built, code_at, login_at, now,
    oathtool_totp, random_secret_b32, read, require_root, require_tool, reset_state,
    stored_last_step, write_owned,
};

fn enroll(args: &[&str]) -> Output {
    Command::new(&built().enroll)
        .args(ENROLL_SCRIPTED)
        .arg("--json")
        .args(args)
        .output()
        .expect("run totp-enroll")
}

/// [`enroll`] of `user` through the `svc` line of `stack` (`--service`), with `extra`.
fn enroll_through_service(user: &TestUser, stack: &Stack, extra: &[&str]) -> Output {
    let pam_dir = stack.path().to_string_lossy();
    let service = [
        "--user",
        &user.name,
        "--service",
        "svc",
        "--pam-dir",
        &pam_dir,
    ];
    enroll(&[&service[..], extra].concat())
}

/// New scratch codes for `user`, their file updated in place through the `svc` line of
/// `stack`.
fn regenerate_through_service(user: &TestUser, stack: &Stack) -> Output {
    Command::new(&built().enroll)
        .args(["--regenerate-scratch-codes", "--json", "--user", &user.name])
        .args(["--service", "svc", "--pam-dir"])
        .arg(stack.path())
        .output()
        .expect("run totp-enroll")
}

/// The code of `secret` (GA's defaults: SHA-1, six digits, 30-s steps) at `unix`.
fn ga_code(secret: &str, unix: u64) -> String {
    oathtool_totp(secret, unix, 30, 6, "sha1")
}

/// One login of `user` to `service` of `stack`, answering `answer`.
fn login(stack: &Stack, service: &str, user: &TestUser, answer: &str) -> Drive {
    Driver::new(stack, service, &user.name).answer(answer).run()
}

/// `path` is a regular file of `uid`'s, mode 0600.
fn assert_private_file_of(path: &Path, uid: u32) {
    let meta = fs::symlink_metadata(path).expect("written");
    assert!(meta.file_type().is_file(), "{}", path.display());
    assert_eq!(meta.uid(), uid, "{} owned by {uid}", path.display());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "{}",
        path.display()
    );
}

fn json_field(out: &Output, key: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let pat = format!("\"{key}\":\"");
    let start = text.find(&pat).map(|i| i + pat.len()).unwrap_or_else(|| {
        panic!(
            "no {key} in {text} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    text[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn ga_module_present() -> bool {
    ga_module_path().is_some()
}

#[test]
fn root_enrolls_a_user_into_their_home_and_both_modules_accept_it() {
    if !require_root("root_enrolls_a_user_into_their_home")
        || !require_tool("root_enrolls_a_user_into_their_home", "oathtool")
    {
        return;
    }
    if !ga_module_present() {
        system_tests::skip(
            "root_enrolls_a_user_into_their_home",
            "GA's pam_google_authenticator.so",
        );
        return;
    }
    let user = TestUser::create("enr");
    let out = enroll(&["--user", &user.name]);
    assert!(out.status.success(), "{out:?}");
    let path = user.secret_path();
    assert_private_file_of(&path, user.uid);
    let secret = json_field(&out, "secret");
    assert_eq!(read(&path).lines().next(), Some(secret.as_str()));

    let t = now();
    let first = ga_code(&secret, t);
    let next = ga_code(&secret, t + 30);
    let ga = Stack::new();
    ga.service("sshd", "auth required pam_google_authenticator.so\n");
    let r = login(&ga, "sshd", &user, &first);
    assert_eq!(r.result, "PAM_SUCCESS", "GA module: {r:?}");
    let ours = Stack::with_module("sshd", "");
    let r = login(&ours, "sshd", &user, &next);
    assert_eq!(r.result, "PAM_SUCCESS", "pam_totp: {r:?}");
    // The step GA accepted is not accepted again by us either.
    let r = login(&ours, "sshd", &user, &first);
    assert_eq!(r.result, "PAM_AUTH_ERR");
}

#[test]
fn the_write_into_a_home_happens_with_the_users_credentials() {
    if !require_root("the_write_into_a_home_happens_with_the_users_credentials")
        || !require_tool("the_write_into_a_home_happens", "strace")
    {
        return;
    }
    let user = TestUser::create("cre");
    let trace = tempfile::NamedTempFile::new().expect("tmp");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(trace.path())
        .args([
            "-e",
            "trace=setfsuid,openat,renameat2,renameat,rename,linkat",
        ])
        .arg(&built().enroll)
        .args(ENROLL_SCRIPTED)
        .arg("-q")
        .args(["--user", &user.name])
        .output()
        .expect("strace");
    assert!(out.status.success(), "{out:?}");
    let log = read(trace.path());
    // Follow the thread's fsuid through the trace: every creation and rename of the
    // secret file must happen while it is the user's.
    let mut fsuid: i64 = 0;
    let mut writes = 0;
    for line in log.lines() {
        if let Some(arg) = line
            .split("setfsuid(")
            .nth(1)
            .and_then(|r| r.split(')').next())
        {
            let v: i64 = arg.parse().unwrap_or(-1);
            if v >= 0 {
                fsuid = v;
            }
        }
        if line.contains("google_authenticator")
            && (line.contains("O_CREAT") || line.contains("rename"))
        {
            writes += 1;
            assert_eq!(fsuid, i64::from(user.uid), "written as uid {fsuid}: {line}");
        }
    }
    assert!(writes >= 2, "expected a temp creation and a rename:\n{log}");
    assert_eq!(
        fs::metadata(user.secret_path()).expect("written").uid(),
        user.uid
    );
}

#[test]
fn a_symlink_planted_by_the_user_is_never_followed() {
    if !require_root("a_symlink_planted_by_the_user_is_never_followed") {
        return;
    }
    let user = TestUser::create("sym");
    let victim_dir = tempfile::tempdir().expect("tmp");
    let victim = victim_dir.path().join("root-file");
    write_owned(&victim, b"root's data\n", 0, 0, 0o644);
    std::os::unix::fs::symlink(&victim, user.secret_path()).expect("plant symlink");
    let out = enroll(&["--user", &user.name, "-f"]);
    assert!(!out.status.success(), "must refuse a symlink: {out:?}");
    assert_eq!(read(&victim), "root's data\n");
    assert!(
        fs::symlink_metadata(user.secret_path())
            .expect("still there")
            .file_type()
            .is_symlink()
    );
}

/// QR image files root writes for a user into that user's home are written as the user
/// (as the secret file is): a symlink the user planted at the path is refused and its
/// target untouched, a planted hard link to root's file is replaced, never written
/// into, and the images belong to the user.
#[test]
fn qr_files_in_a_users_home_are_written_as_the_user() {
    if !require_root("qr_files_in_a_users_home_are_written_as_the_user") {
        return;
    }
    let user = TestUser::create("qrf");
    // Beside the home, so that a hard link to it can be made there.
    let victim_dir =
        tempfile::tempdir_in(user.home.parent().expect("home has a parent")).expect("tmp");
    let victim = victim_dir.path().join("root-file");
    write_owned(&victim, b"root's data\n", 0, 0, 0o644);
    let png = user.home.join("q.png");
    let svg = user.home.join("q.svg");
    let (png_s, svg_s) = (png.to_str().expect("utf-8"), svg.to_str().expect("utf-8"));

    std::os::unix::fs::symlink(&victim, &png).expect("plant symlink");
    let out = enroll(&["--user", &user.name, "-f", "--qr-png", png_s]);
    assert!(!out.status.success(), "must refuse a symlink: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "{out:?}"
    );
    assert_eq!(read(&victim), "root's data\n");
    assert!(fs::symlink_metadata(&png).expect("lstat").is_symlink());
    assert!(
        !user.secret_path().exists(),
        "no secret without its QR file"
    );
    fs::remove_file(&png).expect("rm symlink");

    fs::hard_link(&victim, &svg).expect("plant hard link");
    let out = enroll(&[
        "--user", &user.name, "-f", "--qr-png", png_s, "--qr-svg", svg_s,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        read(&victim),
        "root's data\n",
        "written through a hard link"
    );
    assert_eq!(fs::metadata(&victim).expect("stat").nlink(), 1);
    for p in [&png, &svg, &user.secret_path()] {
        assert_private_file_of(p, user.uid);
    }
    assert!(read(&svg).contains("<svg"), "the image itself");
}

#[test]
fn an_existing_enrollment_is_not_replaced_without_force() {
    if !require_root("an_existing_enrollment_is_not_replaced_without_force") {
        return;
    }
    let user = TestUser::create("exi");
    let before = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";
    user.write_secret(before, 0o600);
    // "Already enrolled" has its own status, so a fleet script that runs the same
    // command on every host tells it from a failure without --json (and -q, as such
    // a script runs it, prints no secret either way).
    let out = enroll(&["--user", &user.name]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["error"]["kind"], "exists", "{v}");
    assert_eq!(v["error"]["exit_code"], 3, "{v}");
    assert_eq!(read(&user.secret_path()), before);
    let quiet = Command::new(&built().enroll)
        .args(["--user", &user.name, "-t", "-d", "-W", "-u", "-C", "-q"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run totp-enroll");
    assert_eq!(quiet.status.code(), Some(3), "{quiet:?}");
    assert!(quiet.stdout.is_empty(), "{quiet:?}");
    assert_eq!(read(&user.secret_path()), before);
    // Control: a failure keeps status 1 (a secret file in a directory that does not
    // exist).
    let out = enroll(&["--user", &user.name, "-s", "/nonexistent-ptotp/secret"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = enroll(&["--user", &user.name, "-f"]);
    assert!(out.status.success(), "{out:?}");
    assert_ne!(read(&user.secret_path()), before);
}

#[test]
fn root_enrolls_into_a_root_owned_store_and_the_module_reads_it() {
    if !require_root("root_enrolls_into_a_root_owned_store")
        || !require_tool("root_enrolls_into_a_root_owned_store", "oathtool")
    {
        return;
    }
    let user = TestUser::create("sto");
    // Enrollment wants the whole chain root-owned and closed (not under /tmp).
    let store = store_dir(0o700);
    let path = store.path().join(&user.name);
    let out = enroll(&["--user", &user.name, "-s", &path.to_string_lossy()]);
    assert!(out.status.success(), "{out:?}");
    let meta = fs::metadata(&path).expect("written");
    assert_eq!(meta.uid(), 0, "store files belong to root");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let secret = json_field(&out, "secret");
    let stack = Stack::with_module(
        "sudo",
        &format!("user=root secret={}/${{USER}}", store.path().display()),
    );
    let r = login(&stack, "sudo", &user, &ga_code(&secret, now()));
    assert_eq!(r.result, "PAM_SUCCESS", "{r:?}");
    // The replay mark went to the state store; the secret file is configuration.
    assert!(stored_last_step(&stack, user.uid).is_some());
    assert!(!read(&path).contains("PAM_TOTP_"), "{}", read(&path));
    // A store that others can write to is refused.
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = enroll(&["--user", &user.name, "-f", "-s", &path.to_string_lossy()]);
    assert!(
        !out.status.success(),
        "world-writable store must be refused"
    );
}

/// A root-owned store below `/var/lib` (a chain only root can change), `mode`.
fn store_dir(mode: u32) -> tempfile::TempDir {
    let store = tempfile::Builder::new()
        .prefix("pam_totp-test-store")
        .tempdir_in("/var/lib")
        .expect("tmp");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(mode)).expect("chmod");
    store
}

// GA's meaning of a line without user=: the file is opened as the user and must be the
// user's. Root enrolling through such a line (--service) used to write a root-owned
// file every login then refused; the file now goes to the user, and a right code logs
// in through the real libpam. Control: a line with user=root gets a root-owned file,
// which it accepts.
#[test]
fn root_enrolls_through_a_service_line_into_the_owner_its_logins_require() {
    let test = "root_enrolls_through_a_service_line_into_the_owner_its_logins_require";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    // With -s naming the same file too: that is how the fault was first met.
    for (user_opt, with_s, tag) in [
        ("", false, "sown"),
        ("", true, "sows"),
        ("user=root ", false, "sroo"),
    ] {
        let user = TestUser::create(tag);
        // The login opens the file as the user: the store must let them through.
        let store = store_dir(0o755);
        let stack = Stack::with_module(
            "svc",
            &format!("{user_opt}secret={}/${{USER}}", store.path().display()),
        );
        let path = store.path().join(&user.name);
        let named = path.to_string_lossy().into_owned();
        let extra: &[&str] = if with_s { &["-s", &named] } else { &[] };
        let out = enroll_through_service(&user, &stack, extra);
        assert!(out.status.success(), "{user_opt:?}: {out:?}");
        let meta = fs::symlink_metadata(&path).expect("written where the line reads");
        let owner = if user_opt.is_empty() { user.uid } else { 0 };
        assert_eq!(
            meta.uid(),
            owner,
            "{user_opt:?}: owned as the line requires"
        );
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert!(temp_files_in(store.path()).is_empty());
        let secret = json_field(&out, "secret");
        let t = now();
        let r = login(&stack, "svc", &user, &ga_code(&secret, t));
        assert_eq!(r.result, "PAM_SUCCESS", "{user_opt:?}: {r:?}");

        // An update in place (new scratch codes) keeps the owner the line requires.
        let out = regenerate_through_service(&user, &stack);
        assert!(out.status.success(), "{user_opt:?}: {out:?}");
        assert_eq!(fs::symlink_metadata(&path).expect("kept").uid(), owner);
        let next = ga_code(&secret, t + 30);
        let r = login(&stack, "svc", &user, &next);
        assert_eq!(
            r.result, "PAM_SUCCESS",
            "{user_opt:?} after the update: {r:?}"
        );
    }
}

// GA's user= naming a store account: every login opens the file as that account, so the
// enrolment writes it as that account (never as root in the directory it owns), and
// the login accepts a right code.
#[test]
fn root_enrolls_through_a_line_with_a_store_account_as_that_account() {
    let test = "root_enrolls_through_a_line_with_a_store_account_as_that_account";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("sacu");
    let account = TestUser::create("saca");
    let store = store_dir(0o755);
    let dir = store.path().join("otp");
    fs::create_dir(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::chown(&dir, Some(account.uid), Some(account.gid)).expect("chown");
    let stack = Stack::with_module(
        "svc",
        &format!("user={} secret={}/${{USER}}", account.name, dir.display()),
    );
    let out = enroll_through_service(&user, &stack, &[]);
    assert!(out.status.success(), "{out:?}");
    let meta = fs::symlink_metadata(dir.join(&user.name)).expect("written");
    assert_eq!(meta.uid(), account.uid, "the store account's");
    let secret = json_field(&out, "secret");
    let r = login(&stack, "svc", &user, &ga_code(&secret, now()));
    assert_eq!(r.result, "PAM_SUCCESS", "{r:?}");
}

/// Leftover temp files (`.NAME.tmp-…`) in `dir`.
fn temp_files_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// `totp-enroll` run by `user` themselves (real and effective uid, their groups).
fn enroll_as(user: &TestUser, args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg(&built().enroll)
        .args(ENROLL_SCRIPTED)
        .arg("--json")
        .args(args)
        .output()
        .expect("run totp-enroll as the user")
}

fn set_home(user: &TestUser, gid: u32, mode: u32) {
    std::os::unix::fs::chown(&user.home, Some(user.uid), Some(gid)).expect("chown home");
    fs::set_permissions(&user.home, fs::Permissions::from_mode(mode)).expect("chmod home");
}

/// L10: a user enrolling themselves gets the directory checks a login makes. A home
/// others can write (0777, or 0775 with a shared group) is refused with exit 1, naming
/// the directory, and nothing is written: the module would refuse such a file at every
/// login (A7), and `nullok` cannot help once a file exists. Controls: 0755, and 0775
/// with the user's own private group, are written, and the 0755 one logs in through
/// libpam.
#[test]
fn self_enrolment_refuses_a_home_a_login_would_refuse() {
    let t = "self_enrolment_refuses_a_home_a_login_would_refuse";
    if !require_root(t) || !require_tool(t, "setpriv") || !require_tool(t, "oathtool") {
        return;
    }
    let user = TestUser::create("shm");
    let shared = 100; // "users" on Debian-like systems; any group the user is not alone in
    for (gid, mode) in [(user.gid, 0o777), (shared, 0o775)] {
        set_home(&user, gid, mode);
        let out = enroll_as(&user, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "home {mode:o}: {out:?}");
        assert!(
            err.contains(&*user.home.to_string_lossy()),
            "home {mode:o}: the message names the directory: {err}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("\"secret\""),
            "no secret printed: {out:?}"
        );
        assert!(
            fs::symlink_metadata(user.secret_path()).is_err(),
            "home {mode:o}: nothing written"
        );
    }
    // The user's private group may write their home (Debian's user-group-modes).
    set_home(&user, user.gid, 0o775);
    let out = enroll_as(&user, &[]);
    assert!(out.status.success(), "private group: {out:?}");
    fs::remove_file(user.secret_path()).expect("remove");

    set_home(&user, user.gid, 0o755);
    let out = enroll_as(&user, &[]);
    assert!(out.status.success(), "{out:?}");
    let secret = json_field(&out, "secret");
    let stack = Stack::with_module("sshd", "");
    let r = login(&stack, "sshd", &user, &ga_code(&secret, now()));
    assert_eq!(r.result, "PAM_SUCCESS", "{r:?}");
}

/// D5 for enrolment (partly: this kernel may have no SELinux, so the label is an
/// attribute no policy acts on): root re-enrolling a user with `-f` replaces the file
/// by rename, as the user, and the new file carries the old one's label.
#[test]
fn re_enrolment_keeps_the_selinux_label() {
    if !require_root("re_enrolment_keeps_the_selinux_label") {
        return;
    }
    const LABEL: &[u8] = b"system_u:object_r:auth_home_t:s0";
    let label_of = |p: &Path| {
        let mut buf = [0u8; 256];
        rustix::fs::lgetxattr(p, "security.selinux", &mut buf[..])
            .ok()
            .map(|n| buf[..n].to_vec())
    };
    let user = TestUser::create("lab");
    let out = enroll(&["--user", &user.name]);
    assert!(out.status.success(), "{out:?}");
    let path = user.secret_path();
    rustix::fs::lsetxattr(
        &path,
        "security.selinux",
        LABEL,
        rustix::fs::XattrFlags::empty(),
    )
    .expect("set security.selinux");
    let ino = fs::metadata(&path).expect("stat").ino();
    let out = enroll(&["--user", &user.name, "-f"]);
    assert!(out.status.success(), "{out:?}");
    assert_ne!(fs::metadata(&path).expect("stat").ino(), ino, "replaced");
    assert_eq!(label_of(&path).as_deref(), Some(LABEL));
    assert_eq!(fs::metadata(&path).expect("stat").uid(), user.uid);
}

// Root replacing a user's store file with -f keeps the group the file had (an admin's
// chgrp for the store's readers), read on the replaced file, as the in-place rewrite
// of --regenerate-scratch-codes keeps it. Control: a first enrolment gets the user's
// primary group.
#[test]
fn re_enrolment_into_a_store_keeps_the_group_of_the_file_it_replaces() {
    if !require_root("re_enrolment_into_a_store_keeps_the_group_of_the_file_it_replaces") {
        return;
    }
    let user = TestUser::create("grp");
    let other = TestUser::create("grpo");
    let store = store_dir(0o755);
    let stack = Stack::with_module(
        "svc",
        &format!("secret={}/${{USER}}", store.path().display()),
    );
    let path = store.path().join(&user.name);
    let out = enroll_through_service(&user, &stack, &[]);
    assert!(out.status.success(), "{out:?}");
    let meta = fs::symlink_metadata(&path).expect("written");
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid), "a new file");
    assert_ne!(other.gid, user.gid);
    std::os::unix::fs::chown(&path, None, Some(other.gid)).expect("chgrp");

    let before = read(&path);
    let out = enroll_through_service(&user, &stack, &["-f"]);
    assert!(out.status.success(), "{out:?}");
    assert_ne!(read(&path), before, "replaced");
    let meta = fs::symlink_metadata(&path).expect("replaced");
    assert_eq!((meta.uid(), meta.gid()), (user.uid, other.gid), "-f");

    let out = regenerate_through_service(&user, &stack);
    assert!(out.status.success(), "{out:?}");
    let meta = fs::symlink_metadata(&path).expect("rewritten");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (user.uid, other.gid),
        "--regenerate-scratch-codes"
    );
}

/// Finding: with `--service`, a `-s` naming another file than the one the service's line
/// reads wrote that file and exited 0 with `"written":true`, only a note on standard
/// error saying the service reads another: the user's logins never read the new secret.
/// Now it is refused as a usage error (exit 2) and nothing is written or shown.
/// Control: `-s` naming the very file the service reads is enrolled.
#[test]
fn a_secret_path_the_service_does_not_read_is_refused() {
    if !require_root("a_secret_path_the_service_does_not_read_is_refused") {
        return;
    }
    let user = TestUser::create("sdif");
    let store = store_dir(0o700);
    let other = store_dir(0o700);
    let stack = Stack::with_module(
        "svc",
        &format!("user=root secret={}/${{USER}}", store.path().display()),
    );
    let elsewhere = other.path().join(&user.name);
    let out = enroll_through_service(&user, &stack, &["-s", &elsewhere.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reads") && err.contains(&store.path().join(&user.name).display().to_string()),
        "{out:?}"
    );
    assert!(!elsewhere.exists(), "nothing written");
    assert!(!store.path().join(&user.name).exists(), "nothing written");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"secret\":"),
        "no secret shown: {out:?}"
    );

    let read = store.path().join(&user.name);
    let out = enroll_through_service(&user, &stack, &["-s", &read.to_string_lossy()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"written\":true"),
        "{out:?}"
    );
    assert!(read.exists());
}

/// `-s` with `--service` is compared with the file the service reads by identity, not
/// as text: the same directory entry spelled through a symbolic link to its directory,
/// or with `..`, was refused as "a path the service does not read" (exit 2). Now it is
/// enrolled, into the service's own spelling, and a login reads it. Controls: another
/// name in that directory, and a symbolic link elsewhere whose target is the service's
/// file (the final component is never followed: the write would replace the link), are
/// still refused with nothing written.
#[test]
fn another_spelling_of_the_file_the_service_reads_is_enrolled() {
    let test = "another_spelling_of_the_file_the_service_reads_is_enrolled";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("spel");
    let store = store_dir(0o700);
    fs::create_dir(store.path().join("sub")).expect("mkdir");
    let links = store_dir(0o755);
    let via_link = links.path().join("store");
    std::os::unix::fs::symlink(store.path(), &via_link).expect("symlink");
    let stack = Stack::with_module(
        "svc",
        &format!("user=root secret={}/${{USER}}", store.path().display()),
    );
    let read = store.path().join(&user.name);
    let written = |out: &Output| {
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["written"], true, "{out:?}");
        let meta = fs::symlink_metadata(&read).expect("the service's file");
        assert!(meta.is_file() && meta.uid() == 0, "{meta:?}");
        v["secret"].as_str().expect("secret").to_owned()
    };

    let refused = |path: &Path| {
        let out = enroll_through_service(&user, &stack, &["-s", &path.to_string_lossy()]);
        assert_eq!(out.status.code(), Some(2), "{}: {out:?}", path.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is never read by its logins"),
            "{out:?}"
        );
        assert!(!read.exists(), "nothing written: {}", path.display());
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("\"secret\":"),
            "no secret shown: {out:?}"
        );
    };
    // Controls: another entry of the same directory; a link whose target is the file.
    refused(&via_link.join(format!("{}x", user.name)));
    let alias = links.path().join(&user.name);
    std::os::unix::fs::symlink(&read, &alias).expect("symlink");
    refused(&alias);
    fs::remove_file(&alias).expect("rm");

    // Through the symbolic link to the store directory.
    let out = enroll_through_service(
        &user,
        &stack,
        &["-s", &via_link.join(&user.name).to_string_lossy()],
    );
    let secret = written(&out);
    let t = now();
    let d = Driver::login(&stack, &user, &oathtool_totp(&secret, t, 30, 6, "sha1"))
        .at(t)
        .run();
    assert_eq!(d.result, "PAM_SUCCESS", "the service reads it: {d:?}");

    // With `..`, from a working directory reached through the link: a re-enrolment
    // (-f) of the same file.
    let out = Command::new(&built().enroll)
        .args(ENROLL_SCRIPTED)
        .args([
            "--json",
            "-f",
            "--user",
            &user.name,
            "--service",
            "svc",
            "--pam-dir",
        ])
        .arg(stack.path())
        .arg("-s")
        .arg(format!("sub/../{}", user.name))
        .current_dir(&via_link)
        .output()
        .expect("run totp-enroll");
    let again = written(&out);
    assert_ne!(again, secret, "a new secret");
    assert!(!store.path().join("sub").join(&user.name).exists());
}

/// `-s` naming the file of a later line of a two-file stack (the sudo example: the
/// root-owned store, then the home file while users move over): once the store holds
/// the user's file, every login is asked for the store's code and never reaches the
/// home file, so a new home secret changes nothing the service asks for. The enrolment
/// still writes it (sshd may read it) but says so, naming the file to enroll instead;
/// it said nothing, and a user told to use the new code was refused. Control: without
/// the store file (the first line skips under nullok) no note, and the home code logs in.
#[test]
fn a_file_the_service_reaches_only_past_an_existing_store_file_is_noted() {
    let test = "a_file_the_service_reaches_only_past_an_existing_store_file_is_noted";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("frst");
    let store = store_dir(0o700);
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!(
            "auth required pam_permit.so\nauth [success=1 ignore=ignore default=die] @MODULE@ \
             user=root secret={}/${{USER}} nullok\nauth [success=ok ignore=ignore default=die] @MODULE@ nullok\n",
            store.path().display()
        ),
    );
    let home_file = user.secret_path();
    let store_file = store.path().join(&user.name);
    let secret_of = |out: &Output| {
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["written"], true, "{out:?}");
        v["secret"].as_str().expect("secret").to_owned()
    };
    let noted = |out: &Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        all.contains(&format!("reads \"{}\" first", store_file.display()))
    };
    let logs_in = |secret: &str| {
        let t = now();
        let d = Driver::login(&stack, &user, &oathtool_totp(secret, t, 30, 6, "sha1"))
            .at(t)
            .run();
        d.result == "PAM_SUCCESS"
    };

    // Control: no store file; the store line skips and the home file is read.
    let out = enroll_through_service(&user, &stack, &["-s", &home_file.to_string_lossy()]);
    let home = secret_of(&out);
    assert!(!noted(&out), "{out:?}");
    assert!(logs_in(&home));

    // The user moved to the store: its code is asked from now on.
    let out = enroll_through_service(&user, &stack, &["-s", &store_file.to_string_lossy()]);
    let stored = secret_of(&out);
    assert!(!noted(&out), "{out:?}");
    assert!(logs_in(&stored));

    // A new home secret now: written, with the note, and its code is refused.
    let out = enroll_through_service(&user, &stack, &["-f", "-s", &home_file.to_string_lossy()]);
    let again = secret_of(&out);
    assert_ne!(again, home);
    assert!(noted(&out), "{out:?}");
    assert!(!logs_in(&again), "the store line asks for its own code");
}

/// The loop of totp-enroll(1), IDEMPOTENT RUNS (and docs/fleet.md): run twice over the
/// same users, the first run enrolls each (0) and writes the QR image into the user's
/// home as the user; the second changes nothing and exits 3 per user, the secret files
/// and images byte-identical. Neither run prints the secret or a scratch code (what a
/// configuration tool logs). `-f` added replaces an enrolment in use: the phone's codes
/// from the old secret are refused at login, the new secret's log in; the user not
/// replaced still logs in with theirs (the control).
#[test]
fn a_shell_loop_run_twice_enrolls_once_and_prints_no_secret() {
    if !require_root("a_shell_loop_run_twice_enrolls_once_and_prints_no_secret")
        || !require_tool("a_shell_loop_run_twice", "oathtool")
    {
        return;
    }
    let a = TestUser::create("lpa");
    let b = TestUser::create("lpb");
    let script = r#"enroll=$1; shift
for u in "$@"; do
  home=$(getent passwd "$u" | cut -d: -f6)
  "$enroll" --user "$u" -t -d -W -r 3 -R 30 --non-interactive -q $EXTRA \
    --qr-png "$home/totp-enroll.png" </dev/null
  echo "$u $?"
done"#;
    let run_loop = |extra: &str, users: &[&TestUser]| {
        let out = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&built().enroll)
            .args(users.iter().map(|u| u.name.as_str()))
            .env("EXTRA", extra)
            .output()
            .expect("run the loop");
        assert!(out.status.success(), "{out:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let statuses = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("ptt"))
            .map(str::to_owned)
            .collect()
    };
    let png = |u: &TestUser| u.home.join("totp-enroll.png");
    // Whatever of the file a log must never hold: the secret and the scratch codes.
    let assert_nothing_secret = |text: &str, u: &TestUser| {
        for line in read(&u.secret_path()).lines() {
            if !line.starts_with('"') {
                assert!(!text.contains(line), "printed {line:?}: {text}");
            }
        }
    };

    // Without --non-interactive (and without -f), the run asks whether to write the
    // file: it waits for the answer while standard input stays open, and ends with 2,
    // nothing written, once it is closed.
    let home_png = png(&a);
    let mut asking = Command::new(&built().enroll)
        .args([
            "--user", &a.name, "-t", "-d", "-W", "-r", "3", "-R", "30", "-q",
        ])
        .arg("--qr-png")
        .arg(&home_png)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run totp-enroll");
    let mut question = Vec::new();
    {
        use std::io::Read;
        let stdout = asking.stdout.as_mut().expect("stdout");
        let mut byte = [0u8; 1];
        while !question.ends_with(b"(y/n) ") {
            let n = stdout.read(&mut byte).expect("read the question");
            assert_eq!(
                n,
                1,
                "ended before asking: {}",
                String::from_utf8_lossy(&question)
            );
            question.push(byte[0]);
        }
    }
    assert!(
        asking.try_wait().expect("wait").is_none(),
        "still waiting for the answer"
    );
    drop(asking.stdin.take());
    let out = asking.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        !a.secret_path().exists() && !home_png.exists(),
        "nothing written"
    );

    let first = run_loop("", &[&a, &b]);
    assert_eq!(first.lines().count(), 2, "-q prints nothing: {first}");
    assert_eq!(
        statuses(&first),
        [format!("{} 0", a.name), format!("{} 0", b.name)],
        "{first}"
    );
    for u in [&a, &b] {
        assert_private_file_of(&u.secret_path(), u.uid);
        assert_private_file_of(&png(u), u.uid);
        assert_nothing_secret(&first, u);
    }
    let files = |u: &TestUser| {
        (
            fs::read(u.secret_path()).expect("secret file"),
            fs::read(png(u)).expect("QR image"),
        )
    };
    let (a_before, b_before) = (files(&a), files(&b));

    let second = run_loop("", &[&a, &b]);
    assert_eq!(
        statuses(&second),
        [format!("{} 3", a.name), format!("{} 3", b.name)],
        "{second}"
    );
    assert_eq!(files(&a), a_before, "the second run changed nothing");
    assert_eq!(files(&b), b_before, "the second run changed nothing");
    for u in [&a, &b] {
        assert_nothing_secret(&second, u);
    }

    let old_a = read(&a.secret_path())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let forced = run_loop("-f", &[&a]);
    assert_eq!(statuses(&forced), [format!("{} 0", a.name)], "{forced}");
    assert_nothing_secret(&forced, &a);
    let new_a = read(&a.secret_path())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(new_a, old_a, "-f gives a new secret");
    assert_ne!(files(&a).1, a_before.1, "and a new image");

    let stack = Stack::with_module("sshd", "");
    let t = now();
    let r = login(&stack, "sshd", &a, &ga_code(&old_a, t));
    assert_eq!(r.result, "PAM_AUTH_ERR", "the phone's old secret: {r:?}");
    let r = login(&stack, "sshd", &a, &ga_code(&new_a, t));
    assert_eq!(r.result, "PAM_SUCCESS", "the new secret: {r:?}");
    let b_secret = read(&b.secret_path())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let r = login(&stack, "sshd", &b, &ga_code(&b_secret, t));
    assert_eq!(r.result, "PAM_SUCCESS", "the user not replaced: {r:?}");

    // An image left beside a secret file that is gone: refused (1), not replaced.
    let image = fs::read(png(&a)).expect("image");
    fs::remove_file(a.secret_path()).expect("rm secret");
    let left = run_loop("", &[&a]);
    assert_eq!(statuses(&left), [format!("{} 1", a.name)], "{left}");
    assert_eq!(fs::read(png(&a)).expect("image"), image);
    assert!(!a.secret_path().exists(), "{left}");

    // Control for the "nothing secret" checks: --json, in the same loop, prints the
    // secret into what a tool would log.
    let logged = run_loop("-f --json", &[&b]);
    assert_eq!(statuses(&logged), [format!("{} 0", b.name)], "{logged}");
    let b_new = read(&b.secret_path())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        logged.contains(&b_new),
        "--json prints the secret: {logged}"
    );
}

/// The codes of `--regenerate-scratch-codes --json`.
fn regenerated_codes(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("\"scratch_codes\":[").map(|i| i + 17);
    let list = start.and_then(|s| text[s..].split(']').next());
    let codes: Vec<String> = list
        .unwrap_or_default()
        .split(',')
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    assert!(!codes.is_empty(), "no scratch codes in {text}");
    codes
}

/// Finding: in a file with a line that ends GA's scan of the scratch codes (neither a
/// code, blank, nor a `"` line, here a note the user wrote), `--regenerate-scratch-codes`
/// appended the new codes after it: shown, saved, and refused at every login. They now
/// go where the scan reads them, the note kept. Control: the same file without the note.
#[test]
fn regenerated_scratch_codes_after_a_note_in_the_file_log_in() {
    if !require_root("regenerated_scratch_codes_after_a_note_in_the_file_log_in") {
        return;
    }
    let user = TestUser::create("regn");
    let stack = Stack::with_module("svc", "");
    let path = user.secret_path();
    let secret = system_tests::random_secret_b32();
    for note in ["", "# emergency codes below\n"] {
        let file = format!("{secret}\n\" TOTP_AUTH\n12345678\n{note}");
        write_owned(&path, file.as_bytes(), user.uid, user.gid, 0o600);
        let out = Command::new(&built().enroll)
            .args(["--regenerate-scratch-codes", "--json", "-e", "2"])
            .args(["--user", &user.name])
            .output()
            .expect("run totp-enroll");
        assert!(out.status.success(), "{out:?}");
        let codes = regenerated_codes(&out);
        assert_eq!(codes.len(), 2, "{codes:?}");
        let text = read(&path);
        assert!(
            text.contains(note) && !text.contains("12345678"),
            "note {note:?}: the note kept, the old code gone"
        );
        assert_eq!(
            login(&stack, "svc", &user, &codes[0]).result,
            "PAM_SUCCESS",
            "note {note:?}"
        );
        // Struck once used: the login read the code from the list, not elsewhere.
        assert_eq!(
            login(&stack, "svc", &user, &codes[0]).result,
            "PAM_AUTH_ERR",
            "note {note:?}"
        );
        // GA's module reads the list the same way.
        if let Some(ga) = ga_module_path() {
            let ga_stack = Stack::new();
            ga_stack.service("svc", &format!("auth required {}\n", ga.display()));
            assert_eq!(
                login(&ga_stack, "svc", &user, &codes[1]).result,
                "PAM_SUCCESS",
                "GA, note {note:?}"
            );
        }
    }
}

fn ga_module_path() -> Option<std::path::PathBuf> {
    [
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
    ]
    .iter()
    .map(|d| Path::new(d).join("pam_google_authenticator.so"))
    .find(|p| p.exists())
}

/// A fleet's script treats status 3 as "enrolled before". An existing file no login can
/// use (a mode line GA does not recognise either and no scratch code, a STEP_SIZE GA
/// refuses, a secret below the 80 bits no option lowers: copied over from a GA host,
/// or hand-edited) got 3 too, so the script
/// counted a locked-out account as enrolled. Now it fails (1) saying why, the file
/// untouched; a login with the file is denied, as the message says. Controls: the
/// same file with a mode line spelled right, or with a scratch code, is "enrolled
/// before" (3), and with -f it is replaced.
#[test]
fn an_existing_file_no_login_can_use_is_no_enrollment() {
    if !require_root("an_existing_file_no_login_can_use_is_no_enrollment") {
        return;
    }
    let user = TestUser::create("unus");
    let secret = random_secret_b32();
    let stack = Stack::with_module("svc", "");
    for (what, rest, status) in [
        ("a mode line spelled right: control", "\" TOTP_AUTH\n", 3),
        ("two blanks before TOTP_AUTH", "\"  TOTP_AUTH\n", 1),
        (
            "STEP_SIZE out of range",
            "\" STEP_SIZE 0\n\" TOTP_AUTH\n",
            1,
        ),
        ("a 48-bit secret", "\" TOTP_AUTH\n", 1),
        (
            "no mode line, a scratch code: control",
            "\" totp_auth\n73951846\n",
            3,
        ),
    ] {
        // GA's tool never wrote one this short, but GA logs in with it.
        let key = if what.contains("48-bit") {
            &secret[..10]
        } else {
            &secret[..]
        };
        let before = format!("{key}\n{rest}");
        user.write_secret(&before, 0o400);
        let out = Command::new(&built().enroll)
            .args(["--user", &user.name, "-t", "-d", "-W", "-u", "-C", "-q"])
            .arg("--non-interactive")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run totp-enroll");
        assert_eq!(out.status.code(), Some(status), "{what}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.contains("no login can use it"),
            status == 1,
            "{what}: {stderr}"
        );
        assert_eq!(read(&user.secret_path()), before, "{what}: untouched");
        let code = code_at(key, T0);
        let d = login_at(&stack, &user, &code, None, T0);
        assert_eq!(
            d.result == "PAM_SUCCESS",
            status == 3 && !rest.contains("totp_auth"),
            "{what}: {d:?}"
        );
        reset_state(&stack, user.uid);
    }
    let out = enroll(&["--user", &user.name, "-f"]);
    assert!(out.status.success(), "{out:?}");
    assert!(read(&user.secret_path()).contains("\" TOTP_AUTH"));
}
