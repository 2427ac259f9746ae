//! R6/R7 through the real libpam: a home directory writable by its group passes the
//! directory check when the group is the user's private one (Debian's user-group-modes),
//! but on a directory with a POSIX access ACL the group bits are the ACL mask, so
//! `setfacl -m u:<someone>:rwx ~alice` shows as group write too. Such a home is refused,
//! the log naming the directory and the ACL; a private-group home without that ACL, and
//! one whose ACL lets someone else only read and search, log in.
//!
//! The ACL is set as the kernel stores it (the `system.posix_acl_access` extended
//! attribute), so the test needs no `setfacl`, and reads it back to prove it is there.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use system_tests::*;

const ACL_XATTR: &str = "system.posix_acl_access";
const DEFAULT_ACL_XATTR: &str = "system.posix_acl_default";
/// Entry tags and the "undefined id" of the kernel's ACL format.
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED: u32 = u32::MAX;
/// Someone else: any uid that is neither the user nor root.
const OTHER_UID: u32 = 65534;

/// The owner and the owning group `rwx`, `OTHER_UID` with `perm`, the mask their union,
/// others nothing: `setfacl -m u:65534:<perm>` on a 0770 directory.
fn acl_with_other_user(perm: u16) -> Vec<u8> {
    let entries = [
        (USER_OBJ, UNDEFINED, 7),
        (USER, OTHER_UID, perm),
        (GROUP_OBJ, UNDEFINED, 7),
        (MASK, UNDEFINED, 7 | perm),
        (OTHER, UNDEFINED, 0),
    ];
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        blob.extend(tag.to_le_bytes());
        blob.extend(perm.to_le_bytes());
        blob.extend(id.to_le_bytes());
    }
    blob
}

/// `setfacl -d -m u:65534:r` on a 0700 home: every file created in it gets a named
/// entry letting `OTHER_UID` read, the mask `r`.
fn default_acl_letting_someone_else_read() -> Vec<u8> {
    let entries: [(u16, u32, u16); 5] = [
        (USER_OBJ, UNDEFINED, 7),
        (USER, OTHER_UID, 4),
        (GROUP_OBJ, UNDEFINED, 0),
        (MASK, UNDEFINED, 4),
        (OTHER, UNDEFINED, 0),
    ];
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        blob.extend(tag.to_le_bytes());
        blob.extend(perm.to_le_bytes());
        blob.extend(id.to_le_bytes());
    }
    blob
}

fn set_default_acl(dir: &Path) {
    let blob = default_acl_letting_someone_else_read();
    rustix::fs::setxattr(
        dir,
        DEFAULT_ACL_XATTR,
        &blob,
        rustix::fs::XattrFlags::empty(),
    )
    .expect("the home's file system takes default POSIX ACLs");
}

/// A secret file written by the test into a home with a default ACL inherits it: the
/// test takes it off, so that the file the module rewrites starts without one.
fn write_secret_without_acl(u: &TestUser, contents: &str, mode: u32) {
    let path = u.write_secret(contents, mode);
    match rustix::fs::removexattr(&path, ACL_XATTR) {
        Ok(()) | Err(rustix::io::Errno::NODATA) => {}
        Err(e) => panic!("removexattr {}: {e}", path.display()),
    }
    assert_eq!(stored_acl(&path), None, "the secret starts without an ACL");
}

/// The ACL of `dir` as stored, or `None` without one.
fn stored_acl(dir: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::getxattr(dir, ACL_XATTR, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {}: {e}", dir.display()),
    }
}

fn set_acl(dir: &Path, blob: &[u8]) {
    rustix::fs::setxattr(dir, ACL_XATTR, blob, rustix::fs::XattrFlags::empty())
        .expect("the home's file system takes POSIX ACLs");
    assert_eq!(
        stored_acl(dir).as_deref(),
        Some(blob),
        "the ACL is in place"
    );
}

fn logged(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| syslog_message(l).contains(needle))
}

#[test]
fn a_private_group_home_an_acl_lets_someone_else_write_is_refused() {
    if !require_root("a_private_group_home_an_acl_lets_someone_else_write_is_refused") {
        return;
    }
    let (u, secret) = TestUser::enrolled("acl");
    let home = u.home.clone();
    let stack = Stack::probe("svc", "");
    let mode = |p: &Path| fs::metadata(p).expect("stat home").permissions().mode() & 0o7777;

    // Control: group-writable, the group the user's private one, no ACL: excused.
    fs::set_permissions(&home, fs::Permissions::from_mode(0o770)).expect("chmod");
    assert_eq!(stored_acl(&home), None);
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, T0), None, T0);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");

    // Someone else may write through the ACL; the mode shows only group write.
    set_acl(&home, &acl_with_other_user(7));
    assert_eq!(mode(&home), 0o770);
    let at = T0 + 30;
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
    assert!(
        matches!(d.returned(), Returned::Failed(_)),
        "{d:?} {lines:?}"
    );
    assert!(
        lines.iter().any(|l| {
            let m = syslog_message(l);
            m.contains(&format!("{}", home.display()))
                && m.contains("POSIX ACL")
                && m.contains(&format!("user {OTHER_UID}"))
        }),
        "{lines:?}"
    );

    // Control: an ACL that lets someone else only read and search (the mask still shows
    // group write, which is the private group's own) logs in.
    set_acl(&home, &acl_with_other_user(5));
    assert_eq!(mode(&home), 0o770);
    let at = T0 + 60;
    let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "read-only ACL: {d:?} {lines:?}"
    );
    assert!(!logged(&lines, "POSIX ACL"), "{lines:?}");
}

fn perm(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// A scratch code rewrites the secret file (R17) with a temp file created in the home.
/// Under a default ACL naming someone else that temp file inherited the named entry,
/// and the `fchmod` to the kept `allowed_perm=0640` raised the mask to `r`: the other
/// user could read the rewritten secret. The rewrite now carries no ACL; control: the
/// same rewrite in the same home before the default ACL is set.
#[test]
fn a_rewrite_in_a_home_with_a_default_acl_gives_nobody_else_the_secret() {
    if !require_root("a_rewrite_in_a_home_with_a_default_acl_gives_nobody_else_the_secret") {
        return;
    }
    let u = TestUser::create("aclrw");
    let secret = random_secret_b32();
    let stack = Stack::probe("svc", "allowed_perm=0640");
    let path = u.secret_path();
    for (i, with_default_acl) in [false, true].into_iter().enumerate() {
        if with_default_acl {
            set_default_acl(&u.home);
        }
        for (j, mode) in [0o640, 0o600].into_iter().enumerate() {
            let n = 20_000_000 + 100 * i + 10 * j;
            let codes = [n.to_string(), (n + 1).to_string()];
            let what = format!("default ACL {with_default_acl}, mode {mode:o}");
            write_secret_without_acl(
                &u,
                &format!("{}{}\n{}\n", totp_file(&secret), codes[0], codes[1]),
                mode,
            );
            let (d, lines) = login_logged(&stack, &u, &codes[0], None, T0);
            assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
            assert!(!read(&path).contains(&codes[0]), "{what}: file rewritten");
            assert_eq!(stored_acl(&path), None, "{what}: no ACL on the rewrite");
            assert_eq!(perm(&path), mode, "{what}: mode kept");
            // The rewritten file is one the next login accepts.
            let (d, lines) = login_logged(&stack, &u, &codes[1], None, T0);
            assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
        }
    }
}

/// `totp-enroll`'s first write of a secret into a home goes through the same temp file:
/// under a default ACL the new secret must not carry the inherited entry either.
/// Control: the enrolment before the default ACL is set.
#[test]
fn an_enrolment_in_a_home_with_a_default_acl_gives_nobody_else_the_secret() {
    if !require_root("an_enrolment_in_a_home_with_a_default_acl_gives_nobody_else_the_secret") {
        return;
    }
    let u = TestUser::create("aclen");
    let path = u.secret_path();
    for with_default_acl in [false, true] {
        if with_default_acl {
            set_default_acl(&u.home);
        }
        let out = Command::new(&built().enroll)
            .args(ENROLL_SCRIPTED)
            .args(["-f", "--user", &u.name])
            .output()
            .expect("run totp-enroll");
        assert!(
            out.status.success(),
            "default ACL {with_default_acl}: {out:?}"
        );
        assert!(path.exists(), "default ACL {with_default_acl}: enrolled");
        assert_eq!(
            stored_acl(&path),
            None,
            "default ACL {with_default_acl}: no ACL on the new secret"
        );
        assert_eq!(perm(&path), 0o600, "default ACL {with_default_acl}");
    }
}

/// The state store's files are built the same way in a directory that may carry a
/// default ACL (a host running as the user keeps its store in the home): the new record
/// and the store key carry no access ACL, the inherited named entry gone rather than
/// masked by the 0600 mode. Control: a stack whose directory has no default ACL.
#[test]
fn a_state_record_under_a_default_acl_carries_none() {
    if !require_root("a_state_record_under_a_default_acl_carries_none") {
        return;
    }
    let (u, secret) = TestUser::enrolled("aclst");
    for (i, with_default_acl) in [false, true].into_iter().enumerate() {
        let stack = Stack::probe("svc", "");
        let state = stack.state_dir();
        let parent = state.parent().expect("the stack's directory");
        if with_default_acl {
            set_default_acl(parent);
        }
        let at = T0 + 30 * i as u64;
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
        let what = format!("default ACL {with_default_acl}");
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
        for file in [stack.state_file(u.uid), state.join("store.key")] {
            assert!(file.exists(), "{what}: {} written", file.display());
            assert_eq!(stored_acl(&file), None, "{what}: {}", file.display());
            assert_eq!(perm(&file), 0o600, "{what}: {}", file.display());
        }
    }
}

/// `fstype` mounted over `dir` (root, then `uid`:`gid` with `mode` on its root), and
/// unmounted when dropped, a failed assertion included, so no later test meets it.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn new(fstype: &str, dir: &Path, uid: u32, gid: u32, mode: u32) -> Mounted {
        fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", fstype, fstype])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {fstype} on {}: {out:?}",
            dir.display()
        );
        let mounted = Mounted(dir.to_path_buf());
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown mount root");
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).expect("chmod mount root");
        mounted
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// Every write now removes the new file's POSIX access ACL. A file system without
/// extended attributes (ramfs here; vfat, NFS without ACLs, most FUSE file systems)
/// refuses that removal with EOPNOTSUPP, which must not fail the write: a scratch code
/// that cannot be struck denies the login, and an enrolment that cannot be written
/// locks the user out. The home and the state directory on ramfs: two scratch-code
/// logins (each rewriting the 0640 secret, the first creating the state record and the
/// store key) and an enrolment over the secret succeed. The refusal is proven on the
/// secret itself; control: the same in the home and state directory on disk.
#[test]
fn a_file_system_without_acls_takes_every_write() {
    if !require_root("a_file_system_without_acls_takes_every_write") {
        return;
    }
    let u = TestUser::create("aclnx");
    let secret = random_secret_b32();
    let stack = Stack::probe("svc", "allowed_perm=0640");
    let path = u.secret_path();
    for (i, fstype) in [None, Some("ramfs")].into_iter().enumerate() {
        let what = fstype.unwrap_or("the disk");
        let _mounts = fstype.map(|t| {
            (
                Mounted::new(t, &u.home, u.uid, u.gid, 0o700),
                Mounted::new(t, &stack.state_dir(), 0, 0, 0o700),
            )
        });
        let n = 30_000_000 + 100 * i;
        let codes = [n.to_string(), (n + 1).to_string()];
        u.write_secret(
            &format!("{}{}\n{}\n", totp_file(&secret), codes[0], codes[1]),
            0o640,
        );
        let refused = rustix::fs::removexattr(&path, ACL_XATTR);
        match fstype {
            Some(_) => assert_eq!(
                refused,
                Err(rustix::io::Errno::OPNOTSUPP),
                "{what}: the ACL removal is refused"
            ),
            None => assert!(
                matches!(refused, Ok(()) | Err(rustix::io::Errno::NODATA)),
                "{what}: {refused:?}"
            ),
        }
        for (j, code) in codes.iter().enumerate() {
            let (d, lines) = login_logged(&stack, &u, code, None, T0);
            assert_eq!(
                d.returned(),
                Returned::Success,
                "{what} {j}: {d:?} {lines:?}"
            );
            assert!(
                !read(&path).contains(code.as_str()),
                "{what} {j}: rewritten"
            );
            assert_eq!(perm(&path), 0o640, "{what} {j}: mode kept");
        }
        for file in [stack.state_file(u.uid), stack.state_dir().join("store.key")] {
            assert!(file.exists(), "{what}: {} written", file.display());
            assert_eq!(perm(&file), 0o600, "{what}: {}", file.display());
        }
        let out = Command::new(&built().enroll)
            .args(ENROLL_SCRIPTED)
            .args(["-f", "--user", &u.name])
            .output()
            .expect("run totp-enroll");
        assert!(out.status.success(), "{what}: enrolment: {out:?}");
        assert!(
            !read(&path).contains(&secret),
            "{what}: the new secret written"
        );
        assert_eq!(perm(&path), 0o600, "{what}: enrolled");
    }
}

/// The default ACL (`system.posix_acl_default`) of `dir` as stored, or `None`.
fn stored_default_acl(dir: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::getxattr(dir, DEFAULT_ACL_XATTR, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {}: {e}", dir.display()),
    }
}

/// The state directory the module creates, and the missing directories above it, under
/// a directory with a default ACL naming someone else: they carry neither its access
/// ACL nor its default ACL (before, both were inherited, the named entry only masked by
/// the 0700 mode until the next `setfacl -m` recomputed the mask). Control: a stack
/// whose directory has no default ACL creates the same directories, logs in alike.
#[test]
fn directories_the_state_store_creates_under_a_default_acl_carry_none() {
    if !require_root("directories_the_state_store_creates_under_a_default_acl_carry_none") {
        return;
    }
    let (u, secret) = TestUser::enrolled("acldir");
    for (i, with_default_acl) in [false, true].into_iter().enumerate() {
        let stack = Stack::probe("svc", "");
        let parent = stack
            .state_dir()
            .parent()
            .expect("the stack's directory")
            .to_path_buf();
        let above = parent.join("var-lib");
        let state = above.join("pam_totp");
        stack.service(
            "svc",
            &format!(
                "auth [success=2 ignore=ignore default=die] @MODULE@ state_dir={}\n\
                 auth required pam_echo.so pam_totp-returned-ignore\n\
                 auth [success=done default=die] pam_permit.so\n\
                 auth required pam_echo.so pam_totp-returned-success\n",
                state.display()
            ),
        );
        if with_default_acl {
            set_default_acl(&parent);
            assert!(
                stored_default_acl(&parent).is_some(),
                "the default ACL is set"
            );
        }
        let at = T0 + 30 * i as u64;
        let (d, lines) = login_logged(&stack, &u, &code_at(&secret, at), None, at);
        let what = format!("default ACL {with_default_acl}");
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {lines:?}");
        assert!(
            state.join(u.uid.to_string()).exists(),
            "{what}: record written"
        );
        for (dir, mode) in [(&above, 0o755), (&state, 0o700)] {
            assert_eq!(stored_acl(dir), None, "{what}: {}", dir.display());
            assert_eq!(stored_default_acl(dir), None, "{what}: {}", dir.display());
            assert_eq!(perm(dir), mode, "{what}: {}", dir.display());
        }
    }
}
