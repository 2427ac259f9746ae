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

use system_tests::*;

const ACL_XATTR: &str = "system.posix_acl_access";
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
