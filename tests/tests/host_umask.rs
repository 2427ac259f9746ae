//! The host's umask. A module inherits it: sshd and login run with 022, but su and a
//! polkit helper keep the caller's, and a screen locker runs under whatever the user's
//! session set (0277 and 0777 are legal). What the module creates (the state
//! directory and its missing parents, the store key, a record) must get exactly the
//! modes the module means, or the next login fails: an unprivileged host (a screen
//! locker keeping its store in the user's home) could no longer enter a directory
//! created 0500 or 0000, nor open a record created 0400 for writing, and every later
//! login of that user was denied. The rewrite of a secret file keeps its old mode.
//! Controls: the same logins under umask 022, and the modes a 022 login leaves.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use system_tests::*;

const UMASKS: [&str; 4] = ["0", "077", "0277", "0777"];

/// `driver` run under `umask`, as `user` (uid, gid, with its groups) when given.
fn under_umask(driver: &Driver, umask: &str, user: Option<&TestUser>) -> Drive {
    let mut c = match user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", u.uid))
                .arg(format!("--regid={}", u.gid))
                .arg("--init-groups")
                .arg("sh");
            c
        }
        None => Command::new("sh"),
    };
    c.args(["-c", "umask \"$1\"; shift; exec env \"$@\"", "sh", umask]);
    append_env_exec(&mut c, &driver.command());
    let out = c.output().expect("run pam-drive");
    Drive::ran(&out)
}

fn perm(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The modes the module means for what it created below `base`: missing parents 0755,
/// the state directory 0700, the record and the store key 0600.
fn assert_intended_modes(base: &Path, state: &Path, uid: u32, what: &str) {
    let mut dir = state.parent();
    while let Some(d) = dir
        && d != base
    {
        assert_eq!(perm(d), 0o755, "{what}: parent {}", d.display());
        dir = d.parent();
    }
    assert_eq!(perm(state), 0o700, "{what}: state directory");
    assert_eq!(perm(&state.join(uid.to_string())), 0o600, "{what}: record");
    assert_eq!(perm(&state.join("store.key")), 0o600, "{what}: store key");
}

#[test]
fn a_root_host_creates_the_store_with_its_own_modes_under_any_umask() {
    if !require_root("a_root_host_creates_the_store_with_its_own_modes_under_any_umask") {
        return;
    }
    let (u, secret) = TestUser::enrolled("um");
    for (i, umask) in UMASKS.iter().chain(&["022"]).enumerate() {
        let probe = Stack::probe("svc", "");
        // Two missing parents, so that their creation is seen too.
        let state = probe.path().join("var/lib/state");
        let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
        let at = T0 + 90 * i as u64;
        let d = under_umask(
            &Driver::login(&stack, &u, &code_at(&secret, at)).at(at),
            umask,
            None,
        );
        assert_eq!(d.returned(), Returned::Success, "umask {umask}: {d:?}");
        assert_intended_modes(stack.path(), &state, u.uid, &format!("umask {umask}"));
        // The next login, under the same umask, finds everything usable.
        let d = under_umask(
            &Driver::login(&stack, &u, &code_at(&secret, at + 30)).at(at + 30),
            umask,
            None,
        );
        assert_eq!(
            d.returned(),
            Returned::Success,
            "umask {umask}, next: {d:?}"
        );
    }
}

#[test]
fn a_screen_locker_under_a_tight_umask_can_log_its_user_in_again() {
    let t = "a_screen_locker_under_a_tight_umask_can_log_its_user_in_again";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let (u, secret) = TestUser::enrolled("uk");
    // The store in the user's home, as an unprivileged host keeps it by default.
    let local = u.home.join(".local");
    let state = local.join("state/pam_totp");
    let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
    // The unprivileged host reads its pam.d directory.
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    for (i, umask) in ["0277", "0777", "077", "022"].iter().enumerate() {
        let _ = fs::remove_dir_all(&local);
        let at = T0 + 90 * i as u64;
        let login = |at: u64| Driver::login(&stack, &u, &code_at(&secret, at)).at(at);
        let d = under_umask(&login(at), umask, Some(&u));
        assert_eq!(d.returned(), Returned::Success, "umask {umask}: {d:?}");
        assert_intended_modes(&u.home, &state, u.uid, &format!("umask {umask}"));
        // The lockout this guards against: the next login of the same locker.
        for (k, next) in [*umask, "022"].into_iter().enumerate() {
            let at = at + 30 * (k as u64 + 1);
            let d = under_umask(&login(at), next, Some(&u));
            assert_eq!(
                d.returned(),
                Returned::Success,
                "created under umask {umask}, next login under {next}: {d:?}"
            );
        }
    }
}

#[test]
fn a_scratch_code_rewrite_keeps_the_files_mode_under_any_umask() {
    if !require_root("a_scratch_code_rewrite_keeps_the_files_mode_under_any_umask") {
        return;
    }
    let u = TestUser::create("us");
    let secret = random_secret_b32();
    let stack = Stack::probe("svc", "");
    for (i, umask) in UMASKS.iter().enumerate() {
        for (j, mode) in [0o400, 0o600].into_iter().enumerate() {
            // Fresh codes each time: the store remembers used ones of this secret.
            let n = 10_000_000 + 100 * i + 10 * j;
            let codes = [n.to_string(), (n + 1).to_string()];
            u.write_secret(
                &format!("{}{}\n{}\n", totp_file(&secret), codes[0], codes[1]),
                mode,
            );
            let at = T0 + 60 * i as u64;
            let d = under_umask(&Driver::login(&stack, &u, &codes[0]).at(at), umask, None);
            assert_eq!(d.returned(), Returned::Success, "umask {umask}: {d:?}");
            let left = fs::read_to_string(u.secret_path()).expect("read secret");
            assert!(
                !left.contains(&codes[0]),
                "umask {umask}: used code removed"
            );
            assert_eq!(perm(&u.secret_path()), mode, "umask {umask}: mode kept");
            let d = under_umask(&Driver::login(&stack, &u, &codes[1]).at(at), umask, None);
            assert_eq!(
                d.returned(),
                Returned::Success,
                "umask {umask}, next: {d:?}"
            );
        }
    }
}

/// A store directory (and a parent) that a creator left as the umask made it, dead
/// before its chmod, or found so by a racing creator: mode 0000, owned by the
/// unprivileged host's user. The walk gives the owner its bits back, through a
/// descriptor that follows nothing, and the login succeeds; before, the walk accepted
/// the directory and every later login of that user was denied. Controls: directories
/// whose owner has all its bits keep their modes, and so does a parent its owner can
/// pass through but not write (0500).
#[test]
fn a_store_directory_left_without_its_owners_bits_is_repaired() {
    let t = "a_store_directory_left_without_its_owners_bits_is_repaired";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ur");
    let local = u.home.join(".local");
    let parent = local.join("state");
    let state = parent.join("pam_totp");
    let stack = Stack::probe("svc", &format!("state_dir={}", state.display()));
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // (parent's mode, state directory's mode, what each is after the login)
    let cases = [
        (0o000, 0o000, 0o700, 0o700),
        (0o755, 0o000, 0o755, 0o700),
        (0o000, 0o700, 0o700, 0o700),
        // Controls: nothing missing, nothing changed.
        (0o750, 0o750, 0o750, 0o750),
        (0o755, 0o700, 0o755, 0o700),
        // A parent its owner made read-only on purpose still leads to the store: kept.
        (0o500, 0o700, 0o500, 0o700),
    ];
    for (i, (p_mode, s_mode, p_after, s_after)) in cases.into_iter().enumerate() {
        let _ = fs::remove_dir_all(&local);
        fs::create_dir_all(&state).expect("mkdir");
        for d in [&local, &parent, &state] {
            std::os::unix::fs::chown(d, Some(u.uid), Some(u.gid)).expect("chown");
        }
        fs::set_permissions(&local, fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::set_permissions(&state, fs::Permissions::from_mode(s_mode)).expect("chmod");
        fs::set_permissions(&parent, fs::Permissions::from_mode(p_mode)).expect("chmod");
        let what = format!("parent {p_mode:o}, state directory {s_mode:o}");
        let at = T0 + 90 * i as u64;
        let login = |at: u64| Driver::login(&stack, &u, &code_at(&secret, at)).at(at);
        let d = under_umask(&login(at), "022", Some(&u));
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?}");
        assert_eq!(perm(&parent), p_after, "{what}: parent");
        assert_eq!(perm(&state), s_after, "{what}: state directory");
        assert_eq!(
            perm(&state.join(u.uid.to_string())),
            0o600,
            "{what}: record"
        );
        let d = under_umask(&login(at + 30), "022", Some(&u));
        assert_eq!(d.returned(), Returned::Success, "{what}, next: {d:?}");
    }
}
