//! `write_new_file_checked` and `entry_exists`: the directory chain is checked on the
//! descriptors the write uses, and symlinks are never taken on trust.

use std::os::unix::fs::{lchown, symlink};

use super::*;
use crate::testutil::*;

const BODY: &[u8] = b"JBSWY3DPEHPK3PXP\n";

/// Rules of a root-only store whose chain is checked from the scratch directory down
/// (the scratch directory lives under a world-writable /tmp, so not from `/`).
fn store_rules(s: &Scratch) -> FileRules {
    FileRules::new(vec![me()]).with_trusted_root(s.path())
}

#[test]
fn a_closed_chain_is_written_and_an_open_one_refused_without_a_trace() {
    let s = Scratch::new();
    let store = s.mkdir("store", me(), 0o700);
    let path = store.join("alice");
    write_new_file_checked(&path, &store_rules(&s), BODY, 0o600, false).expect("written");
    assert_eq!(std::fs::read(&path).expect("read"), BODY);

    set_mode(&store, 0o770);
    let err = write_new_file_checked(&store.join("bob"), &store_rules(&s), BODY, 0o600, false)
        .expect_err("group-writable store");
    assert!(matches!(err, FileError::UnsafeDirectory { .. }), "{err:?}");
    assert!(temp_files(&store).is_empty());
    assert!(!store.join("bob").exists());
    // The unchecked write, which the caller's own credentials guard, still works there.
    write_new_file(&store, OsStr::new("bob"), BODY, 0o600, false).expect("unchecked write");
}

#[test]
fn a_directory_above_the_store_is_checked_too() {
    let s = Scratch::new();
    s.mkdir("open", me(), 0o777);
    let store = s.mkdir("open/store", me(), 0o700);
    let err = write_new_file_checked(&store.join("a"), &store_rules(&s), BODY, 0o600, false)
        .expect_err("open directory above the store");
    assert_eq!(
        err,
        FileError::UnsafeDirectory {
            path: s.path().join("open"),
            uid: me(),
            mode: libc::S_IFDIR | 0o777,
            root_only: me() == 0,
        }
    );
}

// `canonicalize` would have followed this link and checked only the directory it
// names; the walk refuses a link root did not place.
#[test]
fn a_store_reached_through_a_users_symlink_is_refused() {
    if !require_root("a_store_reached_through_a_users_symlink_is_refused") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("real", 0, 0o700);
    let link = s.path().join("link");
    symlink(s.path().join("real"), &link).expect("symlink");
    lchown(&link, Some(ALICE), Some(ALICE)).expect("lchown");
    let path = link.join("alice");
    let err = write_new_file_checked(&path, &store_rules(&s), BODY, 0o600, false)
        .expect_err("user's symlink");
    assert_eq!(err, FileError::UntrustedSymlink { path: link.clone() });
    assert_eq!(entry_exists(&path, Some(&store_rules(&s))), Err(err));
    assert!(!s.path().join("real/alice").exists());
}

#[test]
fn entry_exists_sees_a_dangling_symlink_without_following_it() {
    let s = Scratch::new();
    let store = s.mkdir("store", me(), 0o700);
    let path = store.join("alice");
    assert_eq!(entry_exists(&path, None), Ok(false));
    assert_eq!(entry_exists(&path, Some(&store_rules(&s))), Ok(false));
    symlink("/nonexistent/target", &path).expect("symlink");
    assert_eq!(entry_exists(&path, None), Ok(true));
    assert_eq!(entry_exists(&path, Some(&store_rules(&s))), Ok(true));
    set_mode(&store, 0o777);
    assert!(matches!(
        entry_exists(&path, Some(&store_rules(&s))),
        Err(FileError::UnsafeDirectory { .. })
    ));
}
