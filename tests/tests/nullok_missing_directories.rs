//! `nullok` and missing directories, through the real libpam: a missing directory that
//! is the user's own (below the home, or at or below the first component of `secret=`
//! that names the user) means "not enrolled", as a missing file does; a missing
//! directory shared by all users, the home itself, or one under a directory that fails
//! the checks is an outage: asked for a code and denied.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use system_tests::squash::{require_fuse, squashed_login};
use system_tests::*;

fn messages(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| syslog_message(l).to_owned()).collect()
}

/// A root-owned directory of mode 0755 (what a store's parent looks like), removed with
/// the returned guard.
fn store_base() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("pam_totp-nullok")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// `dir` created for `u`, mode 0700, holding `u`'s enrolled file: the secret.
fn enrol_in(u: &TestUser, dir: &Path, name: &str) -> String {
    fs::create_dir_all(dir).expect("mkdir");
    chown(dir, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    let secret = random_secret_b32();
    write_owned(
        &dir.join(name),
        totp_file(&secret).as_bytes(),
        u.uid,
        u.gid,
        0o600,
    );
    secret
}

/// A stack where the module is `requisite` and `pam_permit` follows: the login succeeds
/// without a prompt only when the module steps aside.
fn requisite_then_permit(args: &str) -> Stack {
    let s = Stack::new();
    s.service(
        "svc",
        &format!("auth requisite @MODULE@ {args}\nauth required pam_permit.so\n"),
    );
    s
}

/// `totp-state audit`'s verdict on `u` for a one-line stack with `args`, and whether its
/// reasons say that nullok skips the code.
fn audit_of(args: &str, u: &TestUser) -> (String, bool) {
    let stack = Stack::with_module("svc", args);
    let out = audit_command(stack.path())
        .output()
        .expect("totp-state audit");
    let (verdict, reasons) = audit_verdicts(&out.stdout)
        .remove(&u.name)
        .unwrap_or_default();
    (verdict, reasons.contains("nullok skips"))
}

/// Asked for a code, and the module denied it.
fn assert_asked_and_denied(d: &Drive) {
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
}

/// Not asked: the module stepped aside (not enrolled).
fn assert_skipped(d: &Drive) {
    assert_eq!(d.module_code(), "PAM_IGNORE", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
}

/// In `stack`, asked for a code, and `secret`'s right code logs `u` in.
fn assert_asked_and_logged_in(stack: &Stack, u: &TestUser, secret: &str) {
    let d = login_at(stack, u, &code_at(secret, T0), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
}

/// In a [`requisite_then_permit`] stack, the login goes through without a prompt: the
/// module stepped aside.
fn assert_let_through_unasked(stack: &Stack, u: &TestUser) {
    let d = Driver::login(stack, u, "123456").run();
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(d.prompts, 0, "{d:?}");
}

/// One log message says `missing` does not exist, and why.
fn missing_logged(m: &[String], missing: &Path, why: &str) -> bool {
    let missing = format!("{} does not exist", missing.display());
    m.iter().any(|l| l.contains(&missing) && l.contains(why))
}

/// A directory `dir` created root-owned, mode 0755.
fn root_dir(dir: &Path) {
    fs::create_dir(dir).expect("mkdir");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Options that want a root-owned file (`user=root`, readable by the user: 0644) at
/// `in_home` below each user's home, spelled through the homes' directory and
/// `${USER}` so that the chain is checked from `/`.
fn root_file_in_home(u: &TestUser, in_home: &str) -> String {
    let homes = u.home.parent().expect("home's parent").display();
    format!("nullok user=root allowed_perm=0644 secret={homes}/${{USER}}/{in_home}")
}

/// Whether `m` has the line refusing `file` (`user=root`) because the user owns the
/// home `home` above it: a store is checked from `/` down (R7), so the file is refused
/// before a missing entry on the way is looked at, and asked for.
fn home_refused(m: &[String], file: &Path, home: &Path) -> bool {
    m.iter().any(|l| {
        l.contains(&format!("secret file {} refused", file.display()))
            && l.contains(&format!("directory {} ", home.display()))
            && l.contains("(not owned by root)")
            && l.contains("asking for a code anyway")
    })
}

fn skip_line(m: &[String], u: &TestUser, dir: &Path) -> bool {
    let dir = dir.display().to_string();
    m.iter().any(|l| {
        l.contains(&format!("not asking {} from {PEER}", u.name))
            && l.contains(&dir)
            && l.contains("(nullok)")
    })
}

#[test]
fn a_missing_per_user_directory_of_a_user_template_is_not_enrolled() {
    let t = "a_missing_per_user_directory_of_a_user_template_is_not_enrolled";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (_guard, base) = store_base();
    let store = base.join("unencrypted-home");
    root_dir(&store);
    let secret_arg = format!("secret={}/${{USER}}/.google_authenticator", store.display());
    let u = TestUser::create("pu");
    let own = store.join(&u.name);
    let probe = Stack::probe("svc", &format!("nullok {secret_arg}"));

    // An empty store directory is what the mount point of a store that did not mount
    // looks like: asked and denied, with a line saying why; the audit agrees.
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    let m = messages(&lines);
    assert!(missing_logged(&m, &own, "lists nothing else"), "{m:#?}");
    assert_eq!(
        audit_of(&format!("nullok {secret_arg}"), &u).0,
        "refused",
        "{}",
        u.name
    );
    // Another user's directory there: a live store.
    fs::create_dir(store.join("someone-else")).expect("mkdir another user's directory");

    // The user's directory was never created: skipped without a prompt, logged with
    // the directory it did not find.
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
    let m = messages(&lines);
    assert!(skip_line(&m, &u, &own), "{m:#?}");

    // In a stack that needs the module to step aside, the login goes through.
    let stack = requisite_then_permit(&format!("nullok {secret_arg}"));
    assert_let_through_unasked(&stack, &u);

    // Without nullok nothing changes: asked and denied.
    let strict = Stack::probe("svc", &secret_arg);
    let d = Driver::login(&strict, &u, "123456").run();
    assert_asked_and_denied(&d);

    // A directory that others may write shows nothing about what it lacks, and a store
    // is checked from `/` down (R7): the file is refused, asked and denied, with a line
    // naming the store directory and why.
    fs::set_permissions(&store, fs::Permissions::from_mode(0o777)).expect("chmod 0777");
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    let m = messages(&lines);
    assert!(
        m.iter().any(|l| l.contains(&format!(
            "secret file {} refused ({} is owned by uid 0 with mode 0777",
            own.join(".google_authenticator").display(),
            store.display()
        ))),
        "{m:#?}"
    );
    fs::set_permissions(&store, fs::Permissions::from_mode(0o755)).expect("chmod 0755");

    // Control: once enrolled there, asked, and the right code logs in.
    let secret = enrol_in(&u, &own, ".google_authenticator");
    assert_asked_and_logged_in(&stack, &u, &secret);
    let d = login_at(&probe, &u, &wrong_totp(&secret, T0 + 60), None, T0 + 60);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
}

#[test]
fn a_missing_ssh_directory_in_the_home_is_not_enrolled() {
    let t = "a_missing_ssh_directory_in_the_home_is_not_enrolled";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let args = "nullok secret=~/.ssh/google_authenticator";
    let u = TestUser::create("ps");
    let ssh = u.home.join(".ssh");
    assert!(!ssh.exists());

    let probe = Stack::probe("svc", args);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
    assert!(skip_line(&messages(&lines), &u, &ssh), "{lines:#?}");
    let stack = requisite_then_permit(args);
    assert_let_through_unasked(&stack, &u);
    // The audit says what the login does.
    assert_eq!(
        audit_of(args, &u),
        ("not-enrolled".to_owned(), true),
        "{}",
        u.name
    );

    // Control: with the directory and the file, asked, and the right code logs in.
    let secret = enrol_in(&u, &ssh, "google_authenticator");
    assert_asked_and_logged_in(&stack, &u, &secret);

    // The home itself missing stays an outage without nullok_missing_home.
    let gone = TestUser::create("pg");
    fs::remove_dir_all(&gone.home).expect("remove the home");
    let (d, lines) = login_logged(&probe, &gone, "123456", PEER, None);
    assert_asked_and_denied(&d);
    let m = messages(&lines);
    assert!(
        m.iter().any(|l| l.contains(&format!(
            "home directory {} does not exist",
            gone.home.display()
        )) && l.contains("nullok_missing_home")),
        "{m:#?}"
    );
}

#[test]
fn a_missing_directory_shared_by_all_users_is_an_outage() {
    let t = "a_missing_directory_shared_by_all_users_is_an_outage";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (_guard, base) = store_base();
    // The store's own directory was never created (or did not mount).
    let store = base.join("totp");
    let args = format!(
        "nullok secret={}/${{USER}}/.google_authenticator",
        store.display()
    );
    let u = TestUser::create("pd");

    let probe = Stack::probe("svc", &args);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    let m = messages(&lines);
    assert!(missing_logged(&m, &store, "shared by all users"), "{m:#?}");
    let stack = requisite_then_permit(&args);
    let d = Driver::login(&stack, &u, "123456").run();
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
    assert_eq!(audit_of(&args, &u).0, "refused", "{}", u.name);

    // Control: the same store, created and holding the user's file, logs in.
    root_dir(&store);
    let secret = enrol_in(&u, &store.join(&u.name), ".google_authenticator");
    assert_asked_and_logged_in(&stack, &u, &secret);
}

/// A missing directory in a home on a file system not known to be local (the FUSE
/// stand-in, as an sshfs or NFS home whose server is down answers `ENOENT` too): asked
/// and denied. Control: the same user and options on the local home are skipped.
#[test]
fn a_missing_directory_on_a_file_system_not_known_to_be_local_is_an_outage() {
    let t = "a_missing_directory_on_a_file_system_not_known_to_be_local_is_an_outage";
    if !require_fuse(t) {
        return;
    }
    let args = "nullok secret=~/.ssh/google_authenticator";
    let u = TestUser::create("pf");
    let ssh = u.home.join(".ssh");
    let probe = Stack::probe("svc", args);
    let (d, lines) = squashed_login(
        &u.home,
        &u.home.join(".profile"),
        None,
        &Driver::login(&probe, &u, "123456").at(T0),
    );
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?} {lines:#?}");
    assert_eq!(d.prompts, 1, "{d:?}");
    assert!(
        missing_logged(&lines, &ssh, "not known to be local"),
        "{lines:#?}"
    );

    // Control: the home on its local file system.
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
    assert!(skip_line(&messages(&lines), &u, &ssh), "{lines:#?}");
}

/// A root-owned `~/.ssh` (root:root 0755) holding a root-owned file, renamed away by the
/// user (who may rename entries of their home). Where the file must be root's
/// (`user=root`), the missing `~/.ssh` is no proof: asked, denied, logged (the file is
/// refused outright: its chain is checked from `/`, and the home above is the user's). Under
/// `no_strict_owner` the file may be the user's too, so the user could as well have put
/// a file of their own there: the absence is skipped as not enrolled (the control; the
/// root-owned file logged in before the rename).
#[test]
fn a_directory_the_user_could_rename_away_is_no_proof_for_a_file_not_theirs() {
    let t = "a_directory_the_user_could_rename_away_is_no_proof_for_a_file_not_theirs";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let u = TestUser::create("pr");
    let ssh = u.home.join(".ssh");
    let moved = u.home.join(".x");
    let secret = root_dir_with_file(&moved, "google_authenticator");
    // Readable by the user, who opens it.
    let loose = "nullok no_strict_owner allowed_perm=0644 secret=~/.ssh/google_authenticator";

    // Before the rename the root-owned file is used: the right code logs in.
    fs::rename(&moved, &ssh).expect("rename into place");
    let stack = requisite_then_permit(loose);
    assert_asked_and_logged_in(&stack, &u, &secret);
    fs::rename(&ssh, &moved).expect("rename away");

    let roots_file = root_file_in_home(&u, ".ssh/google_authenticator");
    let probe = Stack::probe("svc", &roots_file);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    // user=root checks the chain from `/` (R7): the user's home above fails it, and
    // the file is refused before its absence is looked at.
    let m = messages(&lines);
    assert!(
        home_refused(&m, &ssh.join("google_authenticator"), &u.home),
        "{m:#?}"
    );

    // Control: under no_strict_owner the file may be the user's: skipped.
    let probe = Stack::probe("svc", loose);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
    assert!(skip_line(&messages(&lines), &u, &ssh), "{lines:#?}");
    assert_eq!(audit_of(loose, &u).0, "not-enrolled", "{}", u.name);
}

/// A root-owned directory `dir` (0755) holding a root-owned file `name` (0644) with a
/// fresh secret, returned.
fn root_dir_with_file(dir: &Path, name: &str) -> String {
    root_dir(dir);
    let secret = random_secret_b32();
    write_owned(&dir.join(name), totp_file(&secret).as_bytes(), 0, 0, 0o644);
    secret
}

/// `user=root` with a root-owned `~/.ssh` holding a root-owned file, renamed away by the
/// user and replaced by an empty directory of theirs: the file is simply missing, which
/// the user caused: asked, denied, logged. Control: in the default layout (the user's
/// own `~/.google_authenticator`) a missing file is still skipped.
#[test]
fn a_missing_file_the_user_could_have_moved_away_is_no_proof_when_not_theirs() {
    let t = "a_missing_file_the_user_could_have_moved_away_is_no_proof_when_not_theirs";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let u = TestUser::create("pm");
    let ssh = u.home.join(".ssh");
    root_dir_with_file(&ssh, "google_authenticator");
    let loose = root_file_in_home(&u, ".ssh/google_authenticator");
    let loose = loose.as_str();
    let stack = requisite_then_permit(loose);

    // What the user can do: `mv ~/.ssh ~/.ssh.x; mkdir ~/.ssh`.
    fs::rename(&ssh, u.home.join(".ssh.x")).expect("rename away");
    fs::create_dir(&ssh).expect("mkdir");
    chown(&ssh, Some(u.uid), Some(u.gid)).expect("chown");
    let probe = Stack::probe("svc", loose);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    // The user's new ~/.ssh fails the chain user=root checks from `/`: refused.
    let file = ssh.join("google_authenticator");
    let m = messages(&lines);
    assert!(
        m.iter().any(
            |l| l.contains(&format!("secret file {} refused", file.display()))
                && l.contains("asking for a code anyway")
        ),
        "{m:#?}"
    );
    let d = Driver::login(&stack, &u, "123456").run();
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(audit_of(loose, &u).0, "refused", "{}", u.name);

    // Control: the default layout, the user's own file missing: skipped.
    let own = "nullok";
    assert!(!u.secret_path().exists());
    let probe = Stack::probe("svc", own);
    let (d, _) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
    assert_eq!(
        audit_of(own, &u),
        ("not-enrolled".to_owned(), true),
        "{}",
        u.name
    );
}

/// A root-owned `~/.cache` (left by `sudo pip`) renamed by the user into `~/.ssh`: a
/// root-owned 0755 directory listing other entries, in which the file's directory is
/// missing. The home above is the user's, who could rename it there: where the file
/// must be root's (`user=root`) asked, denied, logged. Control: the file the user's own,
/// skipped.
#[test]
fn a_root_owned_directory_renamed_into_the_path_is_no_proof_when_not_theirs() {
    let t = "a_root_owned_directory_renamed_into_the_path_is_no_proof_when_not_theirs";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let u = TestUser::create("pc");
    let ssh = u.home.join(".ssh");
    root_dir_with_file(&u.home.join(".cache"), "pip");
    fs::rename(u.home.join(".cache"), &ssh).expect("mv ~/.cache ~/.ssh");
    let missing = ssh.join("totp");
    let loose = root_file_in_home(&u, ".ssh/totp/google_authenticator");
    let loose = loose.as_str();
    let probe = Stack::probe("svc", loose);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    let m = messages(&lines);
    assert!(
        home_refused(&m, &missing.join("google_authenticator"), &u.home),
        "{m:#?}"
    );
    assert_eq!(audit_of(loose, &u).0, "refused", "{}", u.name);

    // Control: the file must be the user's own: the same missing directory is skipped.
    let own = "nullok allowed_perm=0644 secret=~/.ssh/totp/google_authenticator";
    let probe = Stack::probe("svc", own);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
    assert!(skip_line(&messages(&lines), &u, &missing), "{lines:#?}");
}

/// The NSS home `<base>/home/<user>`, `<base>/home` a root-owned symlink to `real`, and
/// `secret=<base>/real/${USER}/…`: the missing `<base>/real/<user>` is the home under
/// another spelling, an outage without `nullok_missing_home` (asked, denied, logged).
/// Control: with `nullok_missing_home`, skipped.
#[test]
fn a_missing_home_under_another_spelling_is_the_missing_home() {
    let t = "a_missing_home_under_another_spelling_is_the_missing_home";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let u = TestUser::create("ph");
    let (_guard, base) = store_base();
    let real = base.join("real");
    root_dir(&real);
    // Another user's home beside it: a directory that lists another entry.
    fs::create_dir(real.join("someone-else")).expect("mkdir");
    std::os::unix::fs::symlink("real", base.join("home")).expect("symlink");
    let linked_home = base.join("home").join(&u.name).display().to_string();
    let usermod = |home: &str| {
        let _g = user_database_lock();
        let out = shadow_tool("usermod", &["-d", home, &u.name]).expect("usermod");
        assert!(out.status.success(), "usermod: {out:?}");
    };
    usermod(&linked_home);
    let secret_arg = format!("secret={}/${{USER}}/.google_authenticator", real.display());
    let missing = real.join(&u.name);

    let probe = Stack::probe("svc", &format!("nullok {secret_arg}"));
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    let m = messages(&lines);
    let home_line = m.iter().any(|l| {
        l.contains(&format!(
            "home directory {} does not exist",
            missing.display()
        )) && l.contains("nullok_missing_home")
    });
    let audit = audit_of(&format!("nullok {secret_arg}"), &u).0;
    // Control: nullok_missing_home skips a missing home.
    let skipping = Stack::probe("svc", &format!("nullok nullok_missing_home {secret_arg}"));
    let (c, _) = login_logged(&skipping, &u, "123456", PEER, None);
    // Put the home back where userdel expects it before asserting.
    usermod(&u.home.display().to_string());
    assert_asked_and_denied(&d);
    assert!(home_line, "{m:#?}");
    assert_eq!(audit, "refused", "{}", u.name);
    assert_skipped(&c);
}

/// `user=root` with a file in the user's home: the user renames a root-owned directory
/// of theirs into `~/.ssh`, where the file is then simply missing. The home above it is
/// theirs: asked, denied, logged. Control: the same options with a root-owned store,
/// whose chain from `/` nobody else may change, skip the missing file.
#[test]
fn a_root_file_in_the_home_missing_is_no_proof_with_user_root() {
    let t = "a_root_file_in_the_home_missing_is_no_proof_with_user_root";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let u = TestUser::create("pw");
    root_dir_with_file(&u.home.join(".other"), "entry");
    fs::rename(u.home.join(".other"), u.home.join(".ssh")).expect("rename into place");
    let args = root_file_in_home(&u, ".ssh/ga");
    let probe = Stack::probe("svc", &args);
    let (d, lines) = login_logged(&probe, &u, "123456", PEER, None);
    assert_asked_and_denied(&d);
    let m = messages(&lines);
    assert!(home_refused(&m, &u.home.join(".ssh/ga"), &u.home), "{m:#?}");

    // Control: a root-owned store, the user's file missing in it: skipped.
    let (_guard, base) = store_base();
    let store = format!("nullok user=root secret={}/${{USER}}", base.display());
    let probe = Stack::probe("svc", &store);
    let (d, _) = login_logged(&probe, &u, "123456", PEER, None);
    assert_skipped(&d);
}
