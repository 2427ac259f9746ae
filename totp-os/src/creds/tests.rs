use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Barrier};

use super::*;
use crate::safefile::{FileError, FileRules, open_checked};
use crate::testutil::*;

fn alice() -> Identity {
    Identity {
        uid: ALICE,
        gid: ALICE_GROUP,
        groups: vec![ALICE_GROUP, SHARED_GROUP],
    }
}

fn sorted(mut id: Identity) -> Identity {
    id.groups.sort_unstable();
    id
}

#[test]
fn current_fs_ids_matches_the_syscalls() {
    let ids = current_fs_ids().expect("status");
    assert_eq!(Some(ids.uid), current_fsuid());
    assert_eq!(Some(ids.gid), current_fsgid());
    let mut groups = thread_groups().expect("getgroups");
    groups.sort_unstable();
    assert_eq!(sorted(ids).groups, groups);
}

#[test]
fn switch_sets_fsuid_fsgid_and_groups_and_drop_restores_them() {
    if !require_root("switch_sets_fsuid_fsgid_and_groups_and_drop_restores_them") {
        return;
    }
    let before = current_fs_ids().expect("status");
    {
        let guard = switch_to(&alice()).expect("switch");
        assert!(guard.switched());
        let during = sorted(current_fs_ids().expect("status"));
        assert_eq!(during, sorted(alice()));
    }
    assert_eq!(current_fs_ids().expect("status"), before);
}

#[test]
fn switch_with_no_supplementary_groups_clears_them_for_the_duration() {
    if !require_root("switch_with_no_supplementary_groups_clears_them_for_the_duration") {
        return;
    }
    let before = current_fs_ids().expect("status");
    let id = Identity {
        uid: ALICE,
        gid: ALICE_GROUP,
        groups: Vec::new(),
    };
    let guard = switch_to(&id).expect("switch");
    assert!(current_fs_ids().expect("status").groups.is_empty());
    drop(guard);
    assert_eq!(current_fs_ids().expect("status"), before);
}

#[test]
fn other_threads_keep_their_credentials_while_one_thread_switches() {
    if !require_root("other_threads_keep_their_credentials_while_one_thread_switches") {
        return;
    }
    let before = current_fs_ids().expect("status");
    let switched = Arc::new(Barrier::new(2));
    let observed = Arc::new(Barrier::new(2));
    let observer = {
        let (switched, observed) = (Arc::clone(&switched), Arc::clone(&observed));
        std::thread::spawn(move || {
            switched.wait();
            let ids = current_fs_ids().expect("status");
            observed.wait();
            ids
        })
    };
    let guard = switch_to(&alice()).expect("switch");
    switched.wait();
    observed.wait();
    assert_eq!(sorted(current_fs_ids().expect("status")), sorted(alice()));
    drop(guard);
    let other = observer.join().expect("observer thread");
    assert_eq!(other, before, "another thread's credentials changed");
    assert!(nix::unistd::geteuid().is_root());
}

#[test]
fn failed_switch_leaves_credentials_untouched() {
    if !require_root("failed_switch_leaves_credentials_untouched") {
        return;
    }
    let before = current_fs_ids().expect("status");
    // More groups than the kernel's NGROUPS_MAX: setgroups fails with EINVAL.
    let id = Identity {
        uid: ALICE,
        gid: ALICE_GROUP,
        groups: vec![ALICE_GROUP; 65_537],
    };
    let err = switch_to(&id).expect_err("too many groups");
    assert_eq!(
        err,
        CredError::Groups {
            errno: libc::EINVAL
        }
    );
    assert_eq!(current_fs_ids().expect("status"), before);
}

#[test]
fn panic_while_switched_restores_credentials_during_unwind() {
    if !require_root("panic_while_switched_restores_credentials_during_unwind") {
        return;
    }
    let before = current_fs_ids().expect("status");
    let result = std::panic::catch_unwind(|| {
        let _guard = switch_to(&alice()).expect("switch");
        panic!("simulated failure while switched");
    });
    assert!(result.is_err());
    assert_eq!(current_fs_ids().expect("status"), before);
}

#[test]
fn nested_switches_unwind_in_order() {
    if !require_root("nested_switches_unwind_in_order") {
        return;
    }
    let before = current_fs_ids().expect("status");
    let outer = switch_to(&alice()).expect("outer");
    // Still euid 0, so a second switch (e.g. to a store owner) is allowed.
    let mallory = Identity {
        uid: MALLORY,
        gid: MALLORY,
        groups: vec![MALLORY],
    };
    let inner = switch_to(&mallory).expect("inner");
    assert_eq!(current_fs_ids().expect("status"), mallory);
    drop(inner);
    assert_eq!(sorted(current_fs_ids().expect("status")), sorted(alice()));
    drop(outer);
    assert_eq!(current_fs_ids().expect("status"), before);
}

#[test]
fn switched_thread_reads_only_what_the_target_user_may_read() {
    if !require_root("switched_thread_reads_only_what_the_target_user_may_read") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("store", 0, 0o755);
    let secret = s.file("store/mallory", b"MALLORYSECRET\n", MALLORY, 0o600);
    let shared = s.file("store/shared", b"SHARED\n", MALLORY, 0o640);
    std::os::unix::fs::chown(&shared, Some(MALLORY), Some(SHARED_GROUP)).expect("chgrp");
    let rules = FileRules {
        allowed_perm: 0o640,
        ..FileRules::new(vec![MALLORY])
    };

    let before = current_fs_ids().expect("status");
    {
        let _guard = switch_to(&alice()).expect("switch");
        // Another uid's 0600 file: the kernel refuses, and it is not "not found".
        let err = open_checked(&secret, &rules).expect_err("must not read");
        assert_eq!(
            err,
            FileError::Os {
                op: "open",
                errno: libc::EACCES
            }
        );
        // Group-readable through a supplementary group: the groups really apply.
        let ok = open_checked(&shared, &rules).expect("group read");
        assert_eq!(&ok.contents[..], b"SHARED\n");
    }
    {
        let without_group = Identity {
            uid: ALICE,
            gid: ALICE_GROUP,
            groups: vec![ALICE_GROUP],
        };
        let _guard = switch_to(&without_group).expect("switch");
        let err = open_checked(&shared, &rules).expect_err("no group, no read");
        assert_eq!(err.errno(), libc::EACCES);
    }
    {
        let owner = Identity {
            uid: MALLORY,
            gid: MALLORY,
            groups: vec![],
        };
        let _guard = switch_to(&owner).expect("switch");
        let ok = open_checked(&secret, &rules).expect("owner reads");
        assert_eq!(&ok.contents[..], b"MALLORYSECRET\n");
    }
    assert_eq!(current_fs_ids().expect("status"), before);
}

#[test]
fn failed_restore_aborts_the_process() {
    if !require_root("failed_restore_aborts_the_process") {
        return;
    }
    let status = run_child("creds::tests::child_failed_restore", "abort");
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "child status {status:?}"
    );
}

#[test]
fn child_failed_restore() {
    if child_arg().as_deref() != Some("abort") {
        return;
    }
    let guard = switch_to(&alice()).expect("switch");
    crate::fault::fail_next(crate::fault::FaultPoint::CredRestore, libc::EPERM);
    drop(guard);
    // Reaching this line means the process went on with the wrong credentials.
    std::process::exit(0);
}

#[test]
fn unprivileged_process_gets_a_noop_for_itself_and_an_error_for_others() {
    if !require_root("unprivileged_process_gets_a_noop_for_itself_and_an_error_for_others") {
        return;
    }
    // Dropping all ids is process-wide and irreversible, so it happens in a child.
    let status = run_child("creds::tests::child_unprivileged", "unprivileged");
    // 42, not 0: a child that matched no test would also exit 0.
    assert_eq!(status.code(), Some(42), "child status {status:?}");
}

#[test]
fn child_unprivileged() {
    if child_arg().as_deref() != Some("unprivileged") {
        return;
    }
    let gid = nix::unistd::Gid::from_raw(ALICE_GROUP);
    let uid = nix::unistd::Uid::from_raw(ALICE);
    nix::unistd::setgroups(&[gid]).expect("setgroups");
    nix::unistd::setresgid(gid, gid, gid).expect("setresgid");
    nix::unistd::setresuid(uid, uid, uid).expect("setresuid");

    let me = Identity {
        uid: ALICE,
        gid: ALICE_GROUP,
        groups: vec![ALICE_GROUP],
    };
    let guard = switch_to(&me).expect("no-op switch to ourselves");
    assert!(!guard.switched());
    drop(guard);

    let other = Identity {
        uid: MALLORY,
        gid: MALLORY,
        groups: vec![],
    };
    assert_eq!(
        switch_to(&other).expect_err("cannot switch"),
        CredError::NotPermitted {
            uid: MALLORY,
            gid: MALLORY
        }
    );
    let ids = current_fs_ids().expect("status");
    assert_eq!((ids.uid, ids.gid), (ALICE, ALICE_GROUP));
    std::process::exit(42);
}

/// A host running as the account with another group in effect (started after
/// `newgrp`, or installed setgid) opens the account's files as it is: the group is not
/// the account's, but it cannot be changed and the owner bits decide. Another account
/// is still refused.
#[test]
fn unprivileged_process_in_another_group_gets_a_noop_for_itself() {
    if !require_root("unprivileged_process_in_another_group_gets_a_noop_for_itself") {
        return;
    }
    let status = run_child(
        "creds::tests::child_unprivileged_other_group",
        "other-group",
    );
    assert_eq!(status.code(), Some(42), "child status {status:?}");
}

#[test]
fn child_unprivileged_other_group() {
    if child_arg().as_deref() != Some("other-group") {
        return;
    }
    let other = nix::unistd::Gid::from_raw(SHARED_GROUP);
    let uid = nix::unistd::Uid::from_raw(ALICE);
    nix::unistd::setgroups(&[other]).expect("setgroups");
    nix::unistd::setresgid(other, other, other).expect("setresgid");
    nix::unistd::setresuid(uid, uid, uid).expect("setresuid");

    let guard = switch_to(&alice()).expect("no-op switch to ourselves in another group");
    assert!(!guard.switched());
    drop(guard);
    let ids = current_fs_ids().expect("status");
    assert_eq!((ids.uid, ids.gid), (ALICE, SHARED_GROUP), "left as it was");

    let mallory = Identity {
        uid: MALLORY,
        gid: SHARED_GROUP,
        groups: vec![],
    };
    assert_eq!(
        switch_to(&mallory).expect_err("cannot switch"),
        CredError::NotPermitted {
            uid: MALLORY,
            gid: SHARED_GROUP
        }
    );
    std::process::exit(42);
}

#[test]
fn root_opening_as_root_is_left_as_it_is() {
    if !require_root("root_opening_as_root_is_left_as_it_is") {
        return;
    }
    let root = crate::nss::lookup_user_by_name("root")
        .expect("lookup")
        .expect("root exists");
    let id = crate::nss::identity_of(&root).expect("identity");
    let before = current_fs_ids().expect("status");
    let guard = switch_to(&id).expect("switch");
    assert!(!guard.switched(), "nothing to switch for root as root");
    assert_eq!(current_fs_ids().expect("status"), before);
    drop(guard);
    // Another fsgid is a real switch, groups included.
    let other_group = Identity {
        uid: 0,
        gid: SHARED_GROUP,
        groups: vec![SHARED_GROUP],
    };
    let guard = switch_to(&other_group).expect("switch");
    assert!(guard.switched());
    assert_eq!(sorted(current_fs_ids().expect("status")), other_group);
    drop(guard);
    assert_eq!(current_fs_ids().expect("status"), before);
}
