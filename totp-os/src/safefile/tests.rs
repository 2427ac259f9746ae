use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::creds::{Identity, switch_to};
use crate::fault::{self, FaultPoint};
use crate::testutil::*;

const SECRET: &[u8] = b"JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";

fn root_rules(s: &Scratch) -> FileRules {
    FileRules::new(vec![me()]).with_trusted_root(s.path())
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------------------
// open_checked

#[test]
fn valid_0600_file_is_read_with_its_stat_info() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let f = open_checked(&p, &root_rules(&s)).expect("open");
    assert_eq!(&f.contents[..], SECRET);
    assert_eq!(f.name, "secret");
    assert_eq!(f.info.perm(), 0o600);
    assert_eq!(f.info.uid, me());
    assert_eq!(f.info.nlink, 1);
    let meta = std::fs::metadata(&p).expect("stat");
    assert_eq!((f.info.dev, f.info.ino), (meta.dev(), meta.ino()));
}

#[test]
fn debug_output_never_shows_the_contents() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let opened = open_checked(&p, &root_rules(&s)).expect("open");
    let locked = lock_with_deadline(&p, &root_rules(&s), LONG).expect("lock");
    for shown in [format!("{opened:?}"), format!("{locked:?}")] {
        assert!(
            !shown.contains("JBSWY3DP") && !shown.contains("74, 66"),
            "{shown}"
        );
        assert!(shown.contains("<29 bytes>"), "{shown}");
    }
}

#[test]
fn file_with_mode_0400_is_accepted() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o400);
    assert!(open_checked(&p, &root_rules(&s)).is_ok());
}

#[test]
fn opened_fds_are_close_on_exec() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let f = open_checked(&p, &root_rules(&s)).expect("open");
    for fd in [f.file.as_fd(), f.dir.as_fd()] {
        let flags = fcntl::fcntl(fd, fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}

#[test]
fn symlink_as_final_component_is_refused_with_eloop_and_not_followed() {
    let s = Scratch::new();
    let target = s.file("real", SECRET, me(), 0o600);
    let link = s.path().join("secret");
    symlink(&target, &link).expect("symlink");
    let err = open_checked(&link, &root_rules(&s)).expect_err("symlink");
    assert_eq!(err, FileError::Symlink);
    assert_eq!(err.errno(), libc::ELOOP);
    assert!(!err.is_not_found());
}

#[test]
fn symlink_to_dev_zero_is_refused() {
    let s = Scratch::new();
    let link = s.path().join("secret");
    symlink("/dev/zero", &link).expect("symlink");
    assert_eq!(
        open_checked(&link, &root_rules(&s)).expect_err("symlink"),
        FileError::Symlink
    );
}

#[test]
fn device_node_at_the_path_is_refused_without_reading() {
    let s = Scratch::new();
    let p = s.path().join("secret");
    // The same major/minor as /dev/zero. Some containers forbid mknod; nothing to test then.
    if stat::mknod(
        &p,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        libc::makedev(1, 5),
    )
    .is_err()
    {
        skip(
            "device_node_at_the_path_is_refused_without_reading",
            "mknod",
        );
        return;
    }
    let err = open_checked(&p, &root_rules(&s)).expect_err("device");
    assert!(matches!(err, FileError::NotRegular { .. }), "{err:?}");
}

#[test]
fn symlinked_directory_owned_by_the_user_is_not_followed() {
    if !require_root("symlinked_directory_owned_by_the_user_is_not_followed") {
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", ALICE, 0o700);
    s.mkdir("elsewhere", me(), 0o755);
    s.file("elsewhere/secret", SECRET, ALICE, 0o600);
    let link = home.join("cfg");
    symlink(s.path().join("elsewhere"), &link).expect("symlink");
    lchown(&link, Some(ALICE), Some(ALICE)).expect("lchown");
    let rules = FileRules::new(vec![ALICE]).with_trusted_root(&home);
    let err = open_checked(&home.join("cfg/secret"), &rules).expect_err("user symlink");
    assert_eq!(err, FileError::UntrustedSymlink { path: link.clone() });
    assert_eq!(err.errno(), libc::ELOOP);

    // Even a root-owned link is refused when it sits in the user's directory: the user
    // could have moved it there.
    lchown(&link, Some(0), Some(0)).expect("lchown root");
    let err = open_checked(&home.join("cfg/secret"), &rules).expect_err("link in user dir");
    assert_eq!(err, FileError::UntrustedSymlink { path: link });
}

#[test]
fn root_owned_symlink_in_root_owned_directory_is_followed() {
    if !require_root("root_owned_symlink_in_root_owned_directory_is_followed") {
        return;
    }
    // Like /home -> /var/home on image-based distributions.
    let s = Scratch::new();
    s.mkdir("var/home/alice", me(), 0o700);
    let p = s.file("var/home/alice/secret", SECRET, me(), 0o600);
    symlink("var/home", s.path().join("home")).expect("symlink");
    let via_link = s.path().join("home/alice/secret");
    let rules = FileRules::new(vec![me()]).with_trusted_root(s.path().join("home/alice"));
    let f = open_checked(&via_link, &rules).expect("root symlink followed");
    assert_eq!(&f.contents[..], SECRET);
    assert_eq!(f.info.ino, std::fs::metadata(p).expect("stat").ino());
}

#[test]
fn root_owned_symlink_in_a_writable_directory_is_not_followed() {
    if !require_root("root_owned_symlink_in_a_writable_directory_is_not_followed") {
        return;
    }
    let s = Scratch::new();
    let open_dir = s.mkdir("open", me(), 0o777);
    s.mkdir("real", me(), 0o755);
    s.file("real/secret", SECRET, me(), 0o600);
    symlink(s.path().join("real"), open_dir.join("link")).expect("symlink");
    let err = open_checked(&open_dir.join("link/secret"), &FileRules::new(vec![me()]))
        .expect_err("link in world-writable dir");
    assert!(matches!(err, FileError::UntrustedSymlink { .. }), "{err:?}");
}

#[test]
fn fifo_is_refused_without_blocking() {
    let s = Scratch::new();
    let p = s.path().join("secret");
    unistd::mkfifo(&p, Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let (tx, rx) = mpsc::channel();
    let rules = root_rules(&s);
    std::thread::spawn(move || {
        let _ = tx.send(open_checked(&p, &rules).map(|_| ()));
    });
    // A FIFO without a writer blocks a blocking open forever: any answer at all shows
    // the open did not block (the bound is a hang guard, not a speed goal).
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("open_checked hung on a FIFO");
    assert!(
        matches!(result, Err(FileError::NotRegular { .. })),
        "{result:?}"
    );
}

/// Bytes this thread has read so far (`rchar` of /proc/thread-self/io: every read and
/// pread, whatever the file), so a test can tell whether a call read a file.
fn bytes_read_by_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar line")
}

#[test]
fn sparse_2_gib_file_is_refused_before_reading() {
    let s = Scratch::new();
    let rules = root_rules(&s);
    // 2 GiB, and a sparse 1 TiB (A10 of the test plan).
    for (name, size) in [("secret-2g", 2u64 << 30), ("secret-1t", 1u64 << 40)] {
        let p = s.file(name, b"", me(), 0o600);
        File::options()
            .write(true)
            .open(&p)
            .expect("open")
            .set_len(size)
            .expect("set_len");
        let before = bytes_read_by_this_thread();
        let err = open_checked(&p, &rules).expect_err("huge");
        let read = bytes_read_by_this_thread() - before;
        assert_eq!(
            err,
            FileError::TooLarge {
                limit: DEFAULT_MAX_SIZE
            },
            "{name}"
        );
        // Refused on its size: not even the bounded read's cap of it was read (the
        // count includes the small reads of the walk and of /proc itself).
        assert!(read < DEFAULT_MAX_SIZE as u64, "{name}: {read} bytes read");
    }
    // Control: a file at the cap is read, and the count sees it.
    let q = s.file("at-cap", &vec![b'A'; DEFAULT_MAX_SIZE], me(), 0o600);
    let before = bytes_read_by_this_thread();
    let opened = open_checked(&q, &rules).expect("a file at the cap");
    let read = bytes_read_by_this_thread() - before;
    assert_eq!(opened.contents.len(), DEFAULT_MAX_SIZE);
    assert!(read >= DEFAULT_MAX_SIZE as u64, "{read} bytes read");
}

#[test]
fn file_one_byte_over_64_kib_is_refused_and_64_kib_is_accepted() {
    let s = Scratch::new();
    let p = s.file("secret", &vec![b'A'; DEFAULT_MAX_SIZE + 1], me(), 0o600);
    let err = open_checked(&p, &root_rules(&s)).expect_err("too big");
    assert_eq!(
        err,
        FileError::TooLarge {
            limit: DEFAULT_MAX_SIZE
        }
    );
    let p = s.file("exact", &vec![b'A'; DEFAULT_MAX_SIZE], me(), 0o600);
    assert_eq!(
        open_checked(&p, &root_rules(&s))
            .expect("64 KiB")
            .contents
            .len(),
        DEFAULT_MAX_SIZE
    );
}

#[test]
fn bounded_read_ignores_st_size_and_stops_after_the_cap() {
    // What a file that grows between fstat and read looks like to the reader.
    let s = Scratch::new();
    let p = s.file("grown", &[b'x'; 100], me(), 0o600);
    let f = File::open(&p).expect("open");
    // The size hint is what fstat said: too small (the file grew), zero, or right.
    for hint in [0, 10, 100] {
        assert_eq!(
            read_bounded(&f, 99, hint).expect_err("over cap"),
            FileError::TooLarge { limit: 99 }
        );
        assert_eq!(read_bounded(&f, 100, hint).expect("at cap").len(), 100);
    }
    // A file far larger than its hint and than the first buffer is read whole, growing
    // the buffer, and still stops after the cap.
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let p = s.file("big", &big, me(), 0o600);
    let f = File::open(&p).expect("open");
    assert_eq!(
        read_bounded(&f, 64 * 1024, 1).expect("under cap")[..],
        big[..]
    );
    assert_eq!(
        read_bounded(&f, 19_999, 1).expect_err("over cap"),
        FileError::TooLarge { limit: 19_999 }
    );
}

#[test]
fn too_permissive_modes_are_refused() {
    let s = Scratch::new();
    for mode in [
        0o640, 0o660, 0o602, 0o606, 0o644, 0o4600, 0o2600, 0o1600, 0o700,
    ] {
        let p = s.file("secret", SECRET, me(), mode);
        let err = open_checked(&p, &root_rules(&s)).expect_err("bad mode");
        assert_eq!(err, FileError::BadMode { perm: mode }, "mode {mode:o}");
    }
}

#[test]
fn allowed_perm_relaxes_read_bits_but_never_write_or_special_bits() {
    let s = Scratch::new();
    let rules = FileRules {
        allowed_perm: 0o7777,
        ..root_rules(&s)
    };
    let p = s.file("secret", SECRET, me(), 0o644);
    assert!(open_checked(&p, &rules).is_ok());
    for mode in [0o660, 0o602, 0o4600] {
        let p = s.file("secret", SECRET, me(), mode);
        assert_eq!(
            open_checked(&p, &rules).expect_err("bad"),
            FileError::BadMode { perm: mode }
        );
    }
}

#[test]
fn hard_linked_file_is_refused() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    std::fs::hard_link(&p, s.path().join("other")).expect("link");
    assert_eq!(
        open_checked(&p, &root_rules(&s)).expect_err("nlink 2"),
        FileError::HardLinked { nlink: 2 }
    );
}

#[test]
fn directory_at_the_path_is_refused() {
    let s = Scratch::new();
    let p = s.mkdir("secret", me(), 0o700);
    let err = open_checked(&p, &root_rules(&s)).expect_err("dir");
    assert!(matches!(err, FileError::NotRegular { .. }), "{err:?}");
    assert!(!err.is_not_found());
}

#[test]
fn empty_file_is_read_as_empty() {
    // Whether empty is acceptable is the parser's call, not the OS layer's.
    let s = Scratch::new();
    let p = s.file("secret", b"", me(), 0o600);
    assert!(
        open_checked(&p, &root_rules(&s))
            .expect("empty")
            .contents
            .is_empty()
    );
}

#[test]
fn wrong_owner_is_refused() {
    if !require_root("wrong_owner_is_refused") {
        return;
    }
    let s = Scratch::new();
    let p = s.file("secret", SECRET, MALLORY, 0o600);
    let rules = FileRules::new(vec![ALICE]).with_trusted_root(s.path());
    assert_eq!(
        open_checked(&p, &rules).expect_err("owner"),
        FileError::BadOwner { uid: MALLORY }
    );
    // Root is not implied for the file itself.
    let p = s.file("root", SECRET, 0, 0o600);
    assert_eq!(
        open_checked(&p, &rules).expect_err("root"),
        FileError::BadOwner { uid: 0 }
    );
}

#[test]
fn missing_file_is_not_found_but_missing_directory_is_not() {
    let s = Scratch::new();
    let err = open_checked(&s.path().join("absent"), &root_rules(&s)).expect_err("absent");
    assert!(err.is_not_found());
    assert_eq!(err.errno(), libc::ENOENT);
    // Another entry beside the missing one: the directory is not an empty mount point.
    std::fs::write(s.path().join("other"), b"").expect("write");
    let err = open_checked(&s.path().join("nodir/secret"), &root_rules(&s)).expect_err("no dir");
    assert!(!err.is_not_found());
    assert!(matches!(
        err,
        FileError::MissingDirectory {
            ref path,
            absence: Absence::Proven { .. },
            ..
        } if *path == s.path().join("nodir")
    ));
    // Above the trusted root nothing is checked, so nothing is shown.
    let rules = root_rules(&s).with_trusted_root(s.path().join("nodir/deeper"));
    let err = open_checked(&s.path().join("nodir/deeper/secret"), &rules).expect_err("above");
    assert!(matches!(
        err,
        FileError::MissingDirectory {
            ref path,
            absence: Absence::Unchecked,
            ..
        } if *path == s.path().join("nodir")
    ));
}

#[test]
fn a_missing_directory_shows_its_absence_only_under_a_checked_directory() {
    // Without a trusted root the directory that should hold the missing one is checked
    // as a file's parent would be: one others may write shows nothing.
    let s = Scratch::new();
    let rules = FileRules::new(vec![me()]);
    let open = s.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::create_dir(open.join("bob")).expect("mkdir");
    let err = open_checked(&open.join("user/secret"), &rules).expect_err("missing");
    assert!(matches!(
        err,
        FileError::MissingDirectory {
            ref path,
            absence: Absence::Proven { .. },
            ..
        } if *path == open.join("user")
    ));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = open_checked(&open.join("user/secret"), &rules).expect_err("missing");
    assert!(matches!(
        err,
        FileError::MissingDirectory {
            ref path,
            absence: Absence::Unchecked,
            ..
        } if *path == open.join("user")
    ));
}

#[test]
fn a_missing_directory_in_an_empty_one_shows_nothing() {
    // The empty mount point of a store that did not mount: checked, local, empty.
    let s = Scratch::new();
    let rules = FileRules::new(vec![me()]);
    let store = s.path().join("store");
    std::fs::create_dir(&store).expect("mkdir");
    let err = open_checked(&store.join("user/secret"), &rules).expect_err("missing");
    assert!(matches!(
        err,
        FileError::MissingDirectory {
            ref path,
            absence: Absence::Empty,
            ..
        } if *path == store.join("user")
    ));
    // Control: another user's entry there.
    std::fs::create_dir(store.join("bob")).expect("mkdir");
    let err = open_checked(&store.join("user/secret"), &rules).expect_err("missing");
    assert!(matches!(
        err,
        FileError::MissingDirectory {
            absence: Absence::Proven { .. },
            ..
        }
    ));
}

#[test]
fn a_proven_absence_under_a_directory_the_user_may_write_holds_only_for_their_own_file() {
    const ALICE_UID: u32 = 1000;
    let proven = |owners: &[u32], shared| Absence::Proven {
        chain: Chain::of(owners, shared),
    };
    // A directory of theirs anywhere on the chain (the home above a root-owned ~/.ssh).
    let in_their_home = proven(&[ALICE_UID], false);
    // The file must be theirs: renaming the directory gives nothing a delete would not.
    assert_eq!(
        in_their_home.clone().for_user(ALICE_UID, &[ALICE_UID]),
        in_their_home
    );
    // A file that must be root's (user=root) could be moved away.
    assert_eq!(
        in_their_home.clone().for_user(ALICE_UID, &[0]),
        Absence::UserMovable
    );
    // no_strict_owner: the file may be theirs too, so on a chain of theirs they could
    // put a file of their own in its place; the absence protects nothing more.
    assert_eq!(
        in_their_home.clone().for_user(ALICE_UID, &[ALICE_UID, 0]),
        in_their_home
    );
    // Group or other writable counts as writable for them.
    let shared = proven(&[], true);
    assert_eq!(shared.for_user(ALICE_UID, &[0]), Absence::UserMovable);
    // A chain that could not be checked from its top shows nothing but for their own.
    let unchecked = Absence::Proven {
        chain: Chain::unchecked(),
    };
    assert_eq!(
        unchecked.clone().for_user(ALICE_UID, &[0]),
        Absence::Unchecked
    );
    assert_eq!(
        unchecked.clone().for_user(ALICE_UID, &[ALICE_UID]),
        unchecked
    );
    // Control: root-owned directories nobody else writes, or another account's.
    let roots = proven(&[], false);
    assert_eq!(roots.clone().for_user(ALICE_UID, &[0]), roots);
    let service = proven(&[2000], false);
    assert_eq!(service.clone().for_user(ALICE_UID, &[2000]), service);
    assert_eq!(
        Absence::Empty.for_user(ALICE_UID, &[ALICE_UID]),
        Absence::Empty
    );
}

#[test]
fn a_missing_entry_names_every_directory_of_the_chain_above_it() {
    if !require_root("a_missing_entry_names_every_directory_of_the_chain_above_it") {
        return;
    }
    // The trusted root is ALICE's (her home); the directory below it is root's: the
    // home still lets her rename that one away.
    let s = Scratch::new();
    let home = s.mkdir("home", ALICE, 0o755);
    s.mkdir("home/ssh", 0, 0o755);
    s.file("home/ssh/other", SECRET, 0, 0o600);
    let rules = FileRules::new(vec![ALICE, 0]).with_trusted_root(&home);
    let movable = |r: Result<OpenedFile, (FileError, Absence)>| match r {
        Err((FileError::NotFound, Absence::Proven { chain })) => chain.movable_by(ALICE),
        Err((
            FileError::MissingDirectory {
                absence: Absence::Proven { chain },
                ..
            },
            _,
        )) => chain.movable_by(ALICE),
        other => panic!("not a proven absence: {:?}", other.err()),
    };
    assert!(movable(open_checked_noting(
        &home.join("ssh/secret"),
        &rules
    )));
    assert!(movable(open_checked_noting(
        &home.join("ssh/sub/secret"),
        &rules
    )));
    // Control: the same from the root-owned directory down.
    let rules = FileRules::new(vec![ALICE, 0]).with_trusted_root(home.join("ssh"));
    assert!(!movable(open_checked_noting(
        &home.join("ssh/secret"),
        &rules
    )));
}

#[test]
fn a_sticky_directory_lets_only_the_owner_of_an_entry_rename_it() {
    if !require_root("a_sticky_directory_lets_only_the_owner_of_an_entry_rename_it") {
        return;
    }
    // A root-owned store in a sticky, world-writable directory (as under /tmp), the
    // file root's: nobody else can rename the store.
    let s = Scratch::new();
    let tmp = s.mkdir("tmp", 0, 0o1777);
    s.mkdir("tmp/store", 0, 0o755);
    s.file("tmp/store/other", SECRET, 0, 0o600);
    s.file("tmp/another", SECRET, 0, 0o600);
    let rules = FileRules::new(vec![0]);
    let proven_for_alice = |p: &Path| match open_checked_noting(p, &rules) {
        Err((FileError::NotFound, absence))
        | Err((FileError::MissingDirectory { absence, .. }, _)) => {
            matches!(absence.for_user(ALICE, &[0]), Absence::Proven { .. })
        }
        other => panic!("not an absence: {:?}", other.err()),
    };
    assert!(proven_for_alice(&tmp.join("store/secret")));
    // Control: a directory missing in the sticky directory itself may have been the
    // user's, who could rename it.
    assert!(!proven_for_alice(&tmp.join("mine/secret")));
}

#[test]
fn unreadable_file_is_eacces_not_not_found() {
    if !require_root("unreadable_file_is_eacces_not_not_found") {
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", ALICE, 0o755);
    let p = s.file("home/secret", SECRET, MALLORY, 0o600);
    let rules = FileRules::new(vec![ALICE, MALLORY]).with_trusted_root(&home);
    let _guard = switch_to(&Identity {
        uid: ALICE,
        gid: ALICE,
        groups: vec![],
    })
    .expect("switch");
    let err = open_checked(&p, &rules).expect_err("EACCES");
    assert!(!err.is_not_found());
    assert_eq!(err.errno(), libc::EACCES);
    // Whereas a missing file in a directory it can search is "not found".
    let err = open_checked(&s.path().join("home/absent"), &rules).expect_err("absent");
    assert!(err.is_not_found());
}

#[test]
fn unsearchable_directory_is_an_error_not_not_found() {
    if !require_root("unsearchable_directory_is_an_error_not_not_found") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("locked", me(), 0o700);
    let _guard = switch_to(&Identity {
        uid: ALICE,
        gid: ALICE,
        groups: vec![],
    })
    .expect("switch");
    let err = open_checked(
        &s.path().join("locked/secret"),
        &FileRules::new(vec![ALICE]),
    )
    .expect_err("EACCES");
    assert!(!err.is_not_found());
    assert_eq!(err.errno(), libc::EACCES);
}

#[test]
fn group_or_world_writable_directory_in_the_chain_is_refused() {
    let s = Scratch::new();
    let home = s.mkdir("home", me(), 0o775);
    s.mkdir("home/.config", me(), 0o700);
    let p = s.file("home/.config/secret", SECRET, me(), 0o600);
    let rules = FileRules::new(vec![me()]).with_trusted_root(&home);
    let err = open_checked(&p, &rules).expect_err("writable home");
    assert!(
        matches!(err, FileError::UnsafeDirectory { ref path, .. } if *path == home),
        "{err:?}"
    );
    set_mode(&home, 0o700);
    assert!(open_checked(&p, &rules).is_ok());
    set_mode(&s.path().join("home/.config"), 0o1777);
    let err = open_checked(&p, &rules).expect_err("writable subdir");
    assert!(matches!(err, FileError::UnsafeDirectory { .. }), "{err:?}");
}

#[test]
fn directory_owned_by_another_user_is_refused() {
    if !require_root("directory_owned_by_another_user_is_refused") {
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", MALLORY, 0o755);
    let p = s.file("home/secret", SECRET, ALICE, 0o600);
    let rules = FileRules::new(vec![ALICE]).with_trusted_root(&home);
    let err = open_checked(&p, &rules).expect_err("mallory's dir");
    assert_eq!(
        err,
        FileError::UnsafeDirectory {
            path: home,
            uid: MALLORY,
            mode: 0o40755,
            root_only: false,
        }
    );
}

#[test]
fn without_trusted_root_only_the_parent_is_checked() {
    let s = Scratch::new();
    s.mkdir("open", me(), 0o777);
    s.mkdir("open/ok", me(), 0o755);
    let p = s.file("open/ok/secret", SECRET, me(), 0o600);
    assert!(open_checked(&p, &FileRules::new(vec![me()])).is_ok());
    let p = s.file("open/secret", SECRET, me(), 0o600);
    let err = open_checked(&p, &FileRules::new(vec![me()])).expect_err("parent writable");
    assert!(matches!(err, FileError::UnsafeDirectory { .. }), "{err:?}");
}

#[test]
fn path_outside_trusted_root_or_malformed_is_refused() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = FileRules::new(vec![me()]).with_trusted_root(s.path().join("home"));
    assert_eq!(
        open_checked(&p, &rules).expect_err("outside"),
        FileError::NotUnderTrustedRoot
    );
    let rules = FileRules::new(vec![me()]);
    for bad in ["relative/secret", "/", "/tmp/../etc/shadow", ""] {
        assert_eq!(
            open_checked(Path::new(bad), &rules).expect_err(bad),
            FileError::InvalidPath
        );
    }
}

// ---------------------------------------------------------------------------------------
// lock_with_deadline

const LONG: Duration = Duration::from_secs(5);

#[test]
fn lock_times_out_while_another_descriptor_holds_the_flock() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let holder = File::open(&p).expect("open");
    holder.lock().expect("flock");
    let start = Instant::now();
    let err = lock_with_deadline(&p, &root_rules(&s), Duration::from_millis(300))
        .expect_err("held elsewhere");
    let waited = start.elapsed();
    assert_eq!(err, FileError::LockTimeout);
    // The deadline was waited out (a lower bound cannot be missed on a slow machine);
    // how soon after it the call returns is a speed goal, for `make bench`.
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
}

#[test]
fn lock_is_acquired_once_the_holder_lets_go() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let holder = File::open(&p).expect("open");
    holder.lock().expect("flock");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(holder);
    });
    let locked = lock_with_deadline(&p, &root_rules(&s), LONG).expect("lock");
    assert_eq!(locked.contents(), SECRET);
    releaser.join().expect("releaser");
}

#[test]
fn lock_with_zero_timeout_tries_exactly_once() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    assert!(lock_with_deadline(&p, &root_rules(&s), Duration::ZERO).is_ok());
    fault::fail_next(FaultPoint::Lock, libc::EWOULDBLOCK);
    let err = lock_with_deadline(&p, &root_rules(&s), Duration::ZERO).expect_err("contended");
    assert_eq!(err, FileError::LockTimeout);
}

#[test]
fn lock_error_other_than_contention_is_reported() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    fault::fail_next(FaultPoint::Lock, libc::ENOLCK);
    let err = lock_with_deadline(&p, &root_rules(&s), LONG).expect_err("ENOLCK");
    assert_eq!(
        err,
        FileError::Os {
            op: "flock",
            errno: libc::ENOLCK
        }
    );
}

#[test]
fn waiter_that_locked_a_replaced_inode_reopens_and_reads_the_new_file() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = root_rules(&s);
    // The waiter must open the old inode before the replace; that is a matter of
    // scheduling, so allow a few attempts on a busy machine. The contents must be the
    // new ones every time.
    let mut saw_reopen = false;
    for attempt in 0..5u8 {
        let mut first = lock_with_deadline(&p, &rules, LONG).expect("first");
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let (p, rules) = (p.clone(), rules.clone());
            std::thread::spawn(move || {
                tx.send(()).expect("signal");
                let locked = lock_with_deadline(&p, &rules, LONG).map(|l| l.contents().to_vec());
                (locked, REOPENS.with(|r| r.get()))
            })
        };
        rx.recv().expect("waiter started");
        // Give the waiter time to open the old inode and start polling its lock.
        std::thread::sleep(Duration::from_millis(200));
        let new = format!("NEW CONTENTS {attempt}\n");
        first.replace(new.as_bytes()).expect("replace");
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        let (locked, reopens) = waiter.join().expect("waiter");
        assert_eq!(locked.expect("waiter locked"), new.as_bytes());
        assert!(reopens <= 1, "reopened {reopens} times for one replace");
        if reopens == 1 {
            saw_reopen = true;
            break;
        }
    }
    assert!(saw_reopen, "the waiter never had to re-check the inode");
}

#[test]
fn lock_stays_effective_after_replace() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = root_rules(&s);
    let mut locked = lock_with_deadline(&p, &rules, LONG).expect("lock");
    locked.replace(b"ONE\n").expect("first write");
    let other = {
        let (p, rules) = (p.clone(), rules.clone());
        std::thread::spawn(move || lock_with_deadline(&p, &rules, Duration::from_millis(200)).err())
    };
    assert_eq!(other.join().expect("thread"), Some(FileError::LockTimeout));
    // A second write in the same critical section (attempt, then verdict).
    locked.replace(b"TWO\n").expect("second write");
    assert_eq!(locked.contents(), b"TWO\n");
    assert_eq!(
        locked.info().ino,
        std::fs::metadata(&p).expect("stat").ino()
    );
    drop(locked);
    let again = lock_with_deadline(&p, &rules, LONG).expect("free again");
    assert_eq!(again.contents(), b"TWO\n");
}

// ---------------------------------------------------------------------------------------
// replace

#[test]
fn replace_keeps_mode_0400_and_0600_and_leaves_no_temp_files() {
    let s = Scratch::new();
    for mode in [0o400, 0o600] {
        let p = s.file("secret", SECRET, me(), mode);
        let mut locked = lock_with_deadline(&p, &root_rules(&s), LONG).expect("lock");
        let old_ino = locked.info().ino;
        locked.replace(b"REPLACED\n").expect("replace");
        assert_ne!(locked.info().ino, old_ino);
        assert_eq!(mode_of(&p), mode);
        assert_eq!(std::fs::read(&p).expect("read"), b"REPLACED\n");
        assert_eq!(std::fs::metadata(&p).expect("stat").nlink(), 1);
        assert!(temp_files(s.path()).is_empty());
        drop(locked);
        // The result passes our own checks again.
        assert!(open_checked(&p, &root_rules(&s)).is_ok());
    }
}

#[test]
fn replace_as_the_switched_user_keeps_the_owner() {
    if !require_root("replace_as_the_switched_user_keeps_the_owner") {
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", ALICE, 0o700);
    let p = s.file("home/.google_authenticator", SECRET, ALICE, 0o400);
    let rules = FileRules::new(vec![ALICE]).with_trusted_root(&home);
    let alice = Identity {
        uid: ALICE,
        gid: ALICE,
        groups: vec![ALICE],
    };
    {
        let _guard = switch_to(&alice).expect("switch");
        let mut locked = lock_with_deadline(&p, &rules, LONG).expect("lock");
        locked.replace(b"NEW\n").expect("replace as alice");
    }
    let meta = std::fs::metadata(&p).expect("stat");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (ALICE, ALICE, 0o400)
    );
}

#[test]
fn replace_with_the_wrong_identity_is_refused_and_changes_nothing() {
    if !require_root("replace_with_the_wrong_identity_is_refused_and_changes_nothing") {
        return;
    }
    let s = Scratch::new();
    let p = s.file("secret", SECRET, ALICE, 0o600);
    let rules = FileRules::new(vec![ALICE]).with_trusted_root(s.path());
    let mut locked = lock_with_deadline(&p, &rules, LONG).expect("lock");
    let err = locked.replace(b"NEW\n").expect_err("wrong identity");
    assert_eq!(
        err,
        FileError::WrongIdentity {
            expected: ALICE,
            got: 0
        }
    );
    assert_eq!(std::fs::read(&p).expect("read"), SECRET);
    assert!(temp_files(s.path()).is_empty());
}

#[test]
fn replace_larger_than_the_cap_is_refused() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = FileRules {
        max_size: 64,
        ..root_rules(&s)
    };
    let mut locked = lock_with_deadline(&p, &rules, LONG).expect("lock");
    assert_eq!(
        locked.replace(&[b'a'; 65]).expect_err("big"),
        FileError::TooLarge { limit: 64 }
    );
    assert_eq!(std::fs::read(&p).expect("read"), SECRET);
}

#[test]
fn stale_temp_files_do_not_block_rewrites() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    // Leftovers of a crash, including GA's old fixed name.
    for stale in [
        ".secret.tmp-0000000000000000",
        ".secret.tmp-ffffffffffffffff",
        "secret~",
    ] {
        s.file(stale, b"partial", me(), 0o600);
    }
    let mut locked = lock_with_deadline(&p, &root_rules(&s), LONG).expect("lock");
    locked.replace(b"NEW\n").expect("replace");
    drop(locked);
    write_new_file(s.path(), OsStr::new("secret"), b"NEWER\n", 0o600, true).expect("write");
    assert_eq!(std::fs::read(&p).expect("read"), b"NEWER\n");
    assert_eq!(temp_files(s.path()).len(), 2, "only the stale ones remain");
}

#[test]
fn injected_failures_before_the_rename_leave_the_old_file_and_no_temp() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let cases = [
        (FaultPoint::CreateTemp, libc::EDQUOT, "create temp file"),
        (FaultPoint::Write, libc::ENOSPC, "write"),
        (FaultPoint::Fsync, libc::EIO, "fsync temp file"),
        (FaultPoint::Rename, libc::EROFS, "rename"),
    ];
    for (point, errno, op) in cases {
        let mut locked = lock_with_deadline(&p, &root_rules(&s), LONG).expect("lock");
        let ino = locked.info().ino;
        fault::fail_next(point, errno);
        assert_eq!(
            locked.replace(b"NEW\n").expect_err("fault"),
            FileError::Os { op, errno }
        );
        fault::clear();
        assert_eq!(locked.contents(), SECRET);
        assert_eq!(locked.info().ino, ino);
        assert_eq!(std::fs::read(&p).expect("read"), SECRET, "{point:?}");
        assert_eq!(mode_of(&p), 0o600);
        assert!(
            temp_files(s.path()).is_empty(),
            "{point:?} left a temp file"
        );
        // The critical section can go on: a retry works under the same lock.
        locked.replace(SECRET).expect("retry");
    }
}

#[test]
fn failed_directory_fsync_is_reported_after_the_new_file_is_in_place() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = root_rules(&s);
    let mut locked = lock_with_deadline(&p, &rules, LONG).expect("lock");
    fault::fail_next(FaultPoint::DirFsync, libc::EIO);
    let err = locked.replace(b"NEW\n").expect_err("dir fsync");
    assert_eq!(
        err,
        FileError::Os {
            op: "fsync directory",
            errno: libc::EIO
        }
    );
    // Not durable, but consistent: the new file is in place and still locked by us.
    assert_eq!(locked.contents(), b"NEW\n");
    assert_eq!(std::fs::read(&p).expect("read"), b"NEW\n");
    let other = std::thread::spawn(move || lock_with_deadline(&p, &rules, Duration::ZERO).err());
    assert_eq!(other.join().expect("thread"), Some(FileError::LockTimeout));
    assert!(temp_files(s.path()).is_empty());
}

#[test]
fn sigkill_during_a_rewrite_loop_never_leaves_a_partial_file() {
    let s = Scratch::new();
    let p = s.file("secret", &version_a(), me(), 0o600);
    let ino = |p: &Path| std::fs::metadata(p).expect("stat").ino();
    for round in 0..12 {
        let before = ino(&p);
        let mut child = child_command(
            "safefile::tests::child_rewrite_loop",
            p.to_str().expect("utf-8 temp path"),
        )
        .spawn()
        .expect("spawn");
        // Wait until the child is rewriting, then kill it at a random point of the loop.
        let started = Instant::now();
        while ino(&p) == before {
            assert!(
                started.elapsed() < LONG,
                "round {round}: child never rewrote the file"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut r = [0u8; 1];
        getrandom::fill(&mut r).expect("random");
        std::thread::sleep(Duration::from_micros(u64::from(r[0]) * 200));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: child was not mid-loop"
        );
        let contents = std::fs::read(&p).expect("read");
        assert!(
            contents == version_a() || contents == version_b(),
            "round {round}: file is neither version ({} bytes)",
            contents.len()
        );
        let checked = open_checked(&p, &root_rules(&s)).expect("still passes the checks");
        assert_eq!(checked.info.perm(), 0o600);
    }
    // A temp file may survive a kill between create and rename; it is never read and
    // never blocks (see stale_temp_files_do_not_block_rewrites).
}

fn version_a() -> Vec<u8> {
    b"A".repeat(100)
}

fn version_b() -> Vec<u8> {
    b"B".repeat(5000)
}

#[test]
fn child_rewrite_loop() {
    let Some(path) = child_arg() else {
        return;
    };
    let path = PathBuf::from(path);
    let rules = FileRules::new(vec![me()]).with_trusted_root(path.parent().expect("parent"));
    // Runs until the parent kills it; the bound only stops a forgotten child.
    for i in 0..1_000_000 {
        let mut locked = lock_with_deadline(&path, &rules, LONG).expect("lock");
        let next = if i % 2 == 0 { version_b() } else { version_a() };
        locked.replace(&next).expect("replace");
    }
}

// ---------------------------------------------------------------------------------------
// write_new_file

#[test]
fn write_new_file_creates_with_the_requested_mode() {
    let s = Scratch::new();
    write_new_file(s.path(), OsStr::new("secret"), SECRET, 0o400, false).expect("write");
    let p = s.path().join("secret");
    assert_eq!(std::fs::read(&p).expect("read"), SECRET);
    assert_eq!(mode_of(&p), 0o400);
    assert!(temp_files(s.path()).is_empty());
}

#[test]
fn write_new_file_without_overwrite_refuses_an_existing_file() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let err =
        write_new_file(s.path(), OsStr::new("secret"), b"NEW", 0o600, false).expect_err("exists");
    assert_eq!(err, FileError::AlreadyExists);
    assert_eq!(std::fs::read(&p).expect("read"), SECRET);
    write_new_file(s.path(), OsStr::new("secret"), b"NEW", 0o600, true).expect("overwrite");
    assert_eq!(std::fs::read(&p).expect("read"), b"NEW");
    assert!(temp_files(s.path()).is_empty());
}

/// A pending file takes its name only when committed; dropped, only its temp file goes
/// and the file at the name stays. A directory owned by nobody in `dir_owners` is
/// refused before anything is written there; control: the same call naming its owner.
#[test]
fn a_pending_file_replaces_nothing_until_committed() {
    let s = Scratch::new();
    let p = s.file("q.png", b"OLD", me(), 0o600);
    let pending = prepare_new_file_in(s.path(), OsStr::new("q.png"), b"NEW", 0o600, true, &[])
        .expect("prepare");
    assert_eq!(std::fs::read(&p).expect("read"), b"OLD");
    assert_eq!(temp_files(s.path()).len(), 1);
    drop(pending);
    assert_eq!(std::fs::read(&p).expect("read"), b"OLD");
    assert!(temp_files(s.path()).is_empty());

    let not_mine = me().wrapping_add(1);
    let err = prepare_new_file_in(
        s.path(),
        OsStr::new("q.png"),
        b"NEW",
        0o600,
        true,
        &[not_mine],
    )
    .expect_err("another owner's directory");
    assert!(matches!(err, FileError::UnsafeDirectory { .. }), "{err:?}");
    assert!(temp_files(s.path()).is_empty());

    prepare_new_file_in(s.path(), OsStr::new("q.png"), b"NEW", 0o600, true, &[me()])
        .expect("prepare")
        .commit()
        .expect("commit");
    assert_eq!(std::fs::read(&p).expect("read"), b"NEW");
    assert!(temp_files(s.path()).is_empty());
}

#[test]
fn write_new_file_refuses_a_symlink_or_directory_at_the_target() {
    let s = Scratch::new();
    let victim = s.file("victim", b"keep", me(), 0o600);
    symlink(&victim, s.path().join("secret")).expect("symlink");
    for overwrite in [false, true] {
        let err = write_new_file(s.path(), OsStr::new("secret"), b"X", 0o600, overwrite)
            .expect_err("symlink");
        assert_eq!(err, FileError::Symlink);
    }
    assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
    s.mkdir("dir", me(), 0o700);
    let err = write_new_file(s.path(), OsStr::new("dir"), b"X", 0o600, true).expect_err("dir");
    assert!(matches!(err, FileError::NotRegular { .. }), "{err:?}");
    assert!(temp_files(s.path()).is_empty());
}

#[test]
fn write_new_file_rejects_bad_names_and_modes() {
    let s = Scratch::new();
    for name in ["", ".", "..", "a/b"] {
        assert_eq!(
            write_new_file(s.path(), OsStr::new(name), b"X", 0o600, true).expect_err(name),
            FileError::InvalidPath
        );
    }
    for mode in [0o666, 0o620, 0o4600] {
        assert_eq!(
            write_new_file(s.path(), OsStr::new("x"), b"X", mode, true).expect_err("mode"),
            FileError::BadMode { perm: mode }
        );
    }
    assert_eq!(
        write_new_file(Path::new("relative"), OsStr::new("x"), b"X", 0o600, true)
            .expect_err("relative"),
        FileError::InvalidPath
    );
}

#[test]
fn write_new_file_faults_leave_nothing_behind() {
    let s = Scratch::new();
    for point in [FaultPoint::Write, FaultPoint::Fsync, FaultPoint::Rename] {
        fault::fail_next(point, libc::ENOSPC);
        assert!(write_new_file(s.path(), OsStr::new("new"), SECRET, 0o600, false).is_err());
        fault::clear();
        assert!(!s.path().join("new").exists(), "{point:?}");
        let p = s.file("old", b"OLD", me(), 0o600);
        fault::fail_next(point, libc::ENOSPC);
        assert!(write_new_file(s.path(), OsStr::new("old"), SECRET, 0o600, true).is_err());
        fault::clear();
        assert_eq!(std::fs::read(&p).expect("read"), b"OLD", "{point:?}");
        assert!(temp_files(s.path()).is_empty(), "{point:?}");
    }
}

#[test]
fn write_new_file_follows_only_root_symlinks_to_the_directory() {
    if !require_root("write_new_file_follows_only_root_symlinks_to_the_directory") {
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", ALICE, 0o700);
    s.mkdir("target", me(), 0o755);
    let link = home.join("link");
    symlink(s.path().join("target"), &link).expect("symlink");
    lchown(&link, Some(ALICE), Some(ALICE)).expect("lchown");
    let err = write_new_file(&link, OsStr::new("secret"), SECRET, 0o600, false)
        .expect_err("user symlink");
    assert_eq!(err, FileError::UntrustedSymlink { path: link });
    assert!(!s.path().join("target/secret").exists());
}

// ---------------------------------------------------------------------------------------
// replacing a file logins lock

// A file renamed over the locked one (an enrolment with -f, a user's mv) must not be
// undone by the holder's rewrite of the old contents: that would bring an old secret
// back. The rewrite fails, the newer file stays, and no temp file is left.
#[test]
fn replace_refuses_when_the_path_was_renamed_over_the_locked_file() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let mut locked = lock_with_deadline(&p, &root_rules(&s), LONG).expect("lock");
    let newer = s.file("newer", b"NEWER SECRET\n", me(), 0o600);
    std::fs::rename(&newer, &p).expect("rename over");
    assert_eq!(
        locked.replace(b"OLD, REWRITTEN\n"),
        Err(FileError::Unstable)
    );
    assert_eq!(std::fs::read(&p).expect("read"), b"NEWER SECRET\n");
    assert!(temp_files(s.path()).is_empty());
    // Removed under the holder: the rewrite does not recreate it either.
    std::fs::remove_file(&p).expect("remove");
    assert_eq!(locked.replace(b"OLD\n"), Err(FileError::Unstable));
    assert!(!p.exists());
}

// An overwrite takes the lock logins take: it waits for the holder, and replaces the
// file only once the holder let go.
#[test]
fn overwrite_waits_for_the_lock_a_login_holds() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let holder = File::open(&p).expect("open");
    holder.lock().expect("flock");
    let rules = root_rules(&s);
    let start = Instant::now();
    let err = rules
        .write_new_file_then(
            &p,
            b"NEW\n",
            NewFile::new(0o600, true, Duration::from_millis(300)),
            || Ok::<(), ()>(()),
        )
        .expect_err("held elsewhere");
    assert_eq!(err, FileError::LockTimeout);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        std::fs::read(&p).expect("read"),
        SECRET,
        "not replaced while locked"
    );
    assert!(temp_files(s.path()).is_empty());

    let (tx, rx) = mpsc::channel();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        // Still the old contents while the lock is held.
        tx.send(std::fs::read(&p).expect("read")).expect("send");
        drop(holder);
    });
    let start = Instant::now();
    write_new_file(s.path(), OsStr::new("secret"), b"NEW\n", 0o600, true).expect("write");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(rx.recv().expect("seen"), SECRET);
    releaser.join().expect("releaser");
    assert_eq!(
        std::fs::read(s.path().join("secret")).expect("read"),
        b"NEW\n"
    );
    assert!(temp_files(s.path()).is_empty());
}

// A login that replaced the file while the overwrite waited: the overwrite locks the
// login's new file and replaces that one, never renaming under a lock it lost.
#[test]
fn overwrite_follows_a_rewrite_that_happened_while_it_waited() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = root_rules(&s);
    let mut login = lock_with_deadline(&p, &rules, LONG).expect("lock");
    let (tx, rx) = mpsc::channel();
    let writer = {
        let (p, rules) = (p.clone(), rules.clone());
        std::thread::spawn(move || {
            tx.send(()).expect("signal");
            rules.write_new_file_then(&p, b"ENROLLED\n", NewFile::new(0o600, true, LONG), || {
                Ok::<(), ()>(())
            })
        })
    };
    rx.recv().expect("started");
    std::thread::sleep(Duration::from_millis(200));
    login.replace(b"COUNTER BUMPED\n").expect("login rewrite");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(std::fs::read(&p).expect("read"), b"COUNTER BUMPED\n");
    drop(login);
    assert_eq!(writer.join().expect("writer"), Ok(Ok(())));
    assert_eq!(std::fs::read(&p).expect("read"), b"ENROLLED\n");
    assert!(temp_files(s.path()).is_empty());
}

// The step between writing and renaming (printing the new secret) decides: an error
// there leaves the old file and no temp file; success puts the new file in place.
#[test]
fn a_failed_step_before_the_rename_leaves_the_old_file() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let rules = root_rules(&s);
    for overwrite in [true, false] {
        let mut saw_temp = false;
        let r =
            rules.write_new_file_then(&p, b"NEW\n", NewFile::new(0o600, overwrite, LONG), || {
                saw_temp = temp_files(s.path()).len() == 1;
                Err("stdout is full")
            });
        if overwrite {
            assert_eq!(r, Ok(Err("stdout is full")));
            assert!(saw_temp, "the new file was complete before the step");
        } else {
            assert_eq!(r, Err(FileError::AlreadyExists), "refused before the step");
        }
        assert_eq!(std::fs::read(&p).expect("read"), SECRET);
        assert!(temp_files(s.path()).is_empty());
    }
    let new = s.path().join("new");
    assert_eq!(
        rules.write_new_file_then(&new, b"NEW\n", NewFile::new(0o400, false, LONG), || {
            Ok::<(), ()>(())
        }),
        Ok(Ok(()))
    );
    assert_eq!(mode_of(&new), 0o400);
    assert_eq!(
        rules.write_new_file_then(&p, b"NEW\n", NewFile::new(0o600, true, LONG), || {
            Ok::<(), ()>(())
        }),
        Ok(Ok(()))
    );
    assert_eq!(std::fs::read(&p).expect("read"), b"NEW\n");
    assert!(temp_files(s.path()).is_empty());
}

// The narrower bits are those of the file the rename replaces, read under its lock: a
// file swapped in after the new one was written (while the secret is printed) decides,
// not the one that was there before. Controls: not asked, the asked bits; an old mode
// the owner could not read, the asked bits.
#[test]
fn a_replacement_keeps_the_narrower_bits_of_the_file_it_actually_replaces() {
    let s = Scratch::new();
    let rules = root_rules(&s);
    let keep = NewFile {
        keep_narrower_mode: true,
        ..NewFile::new(0o600, true, LONG)
    };
    let p = s.file("secret", SECRET, me(), 0o600);
    let swap = || {
        let _ = s.file("swapped", SECRET, me(), 0o400);
        std::fs::rename(s.path().join("swapped"), &p).expect("swap");
        Ok::<(), ()>(())
    };
    assert_eq!(
        rules.write_new_file_then(&p, b"NEW\n", keep, swap),
        Ok(Ok(()))
    );
    assert_eq!(std::fs::read(&p).expect("read"), b"NEW\n");
    assert_eq!(mode_of(&p) & 0o777, 0o400, "the swapped-in file's bits");

    let p = s.file("secret", SECRET, me(), 0o400);
    let plain = NewFile::new(0o600, true, LONG);
    assert_eq!(
        rules.write_new_file_then(&p, b"NEW\n", plain, || Ok::<(), ()>(())),
        Ok(Ok(()))
    );
    assert_eq!(mode_of(&p) & 0o777, 0o600, "not asked to narrow");

    let p = s.file("secret", SECRET, me(), 0o200);
    assert_eq!(
        rules.write_new_file_then(&p, b"NEW\n", keep, || Ok::<(), ()>(())),
        Ok(Ok(()))
    );
    assert_eq!(
        mode_of(&p) & 0o777,
        0o600,
        "0200 would leave the owner unable to read"
    );
    assert!(temp_files(s.path()).is_empty());
}

// Root writing a store file the user is to own: the file is the user's before it takes
// its name, and the directories must still be root's (the user owning the file does not
// make a directory the user owns acceptable). Control: the same directory is accepted
// when the rules do not ask for root-owned directories.
#[test]
fn root_hands_a_new_store_file_to_its_owner_in_root_owned_directories_only() {
    if !require_root("root_hands_a_new_store_file_to_its_owner") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("store", 0, 0o755);
    s.mkdir("users", ALICE, 0o755);
    let rules = FileRules {
        root_owned_dirs: true,
        ..FileRules::new(vec![ALICE]).with_trusted_root(s.path())
    };
    let to_alice = NewFile {
        owner: Some((ALICE, ALICE_GROUP)),
        ..NewFile::new(0o400, false, LONG)
    };
    let p = s.path().join("store/alice");
    assert_eq!(
        rules.write_new_file_then(&p, b"NEW\n", to_alice, || Ok::<(), ()>(())),
        Ok(Ok(()))
    );
    let meta = std::fs::symlink_metadata(&p).expect("written");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (ALICE, ALICE_GROUP, 0o400)
    );
    // The file the module then opens passes the same rules.
    assert!(open_checked(&p, &rules).is_ok());

    let q = s.path().join("users/alice");
    let err = rules
        .write_new_file_then(&q, b"NEW\n", to_alice, || Ok::<(), ()>(()))
        .expect_err("a directory alice owns");
    assert!(matches!(err, FileError::UnsafeDirectory { .. }), "{err:?}");
    assert!(!q.exists());
    let owned_dirs_ok = FileRules {
        root_owned_dirs: false,
        ..rules.clone()
    };
    assert_eq!(
        owned_dirs_ok.write_new_file_then(&q, b"NEW\n", to_alice, || Ok::<(), ()>(())),
        Ok(Ok(()))
    );
}

// D5 for the enrolment tool: a replaced file keeps its SELinux label (this kernel may
// have no SELinux; root can still set the attribute, which no policy then acts on). A
// new file next to it gets none, so the label seen after the overwrite was copied.
#[test]
fn overwrite_keeps_the_selinux_label() {
    if !require_root("overwrite_keeps_the_selinux_label") {
        return;
    }
    const LABEL: &[u8] = b"system_u:object_r:auth_home_t:s0";
    let label_of = |p: &Path| {
        let mut buf = [0u8; 256];
        rustix::fs::lgetxattr(p, "security.selinux", &mut buf[..])
            .ok()
            .map(|n| buf[..n].to_vec())
    };
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    if let Err(e) = rustix::fs::lsetxattr(
        &p,
        "security.selinux",
        LABEL,
        rustix::fs::XattrFlags::empty(),
    ) {
        panic!("set security.selinux on the test file system: {e}");
    }
    let ino = std::fs::metadata(&p).expect("stat").ino();
    write_new_file(s.path(), OsStr::new("secret"), b"NEW\n", 0o600, true).expect("overwrite");
    assert_ne!(
        std::fs::metadata(&p).expect("stat").ino(),
        ino,
        "replaced by rename"
    );
    assert_eq!(label_of(&p).as_deref(), Some(LABEL));
    write_new_file(s.path(), OsStr::new("fresh"), b"NEW\n", 0o600, false).expect("new");
    assert_eq!(
        label_of(&s.path().join("fresh")),
        None,
        "control: no label of its own"
    );
}

// ---------------------------------------------------------------------------------------
// fd hygiene

#[test]
fn no_descriptor_leaks_on_success_or_error_paths() {
    // Other tests open files concurrently, so the count is taken in a fresh process.
    let s = Scratch::new();
    let status = run_child(
        "safefile::tests::child_fd_hygiene",
        s.path().to_str().expect("utf-8 temp path"),
    );
    assert_eq!(status.code(), Some(42), "child status {status:?}");
}

#[test]
fn child_fd_hygiene() {
    let Some(dir) = child_arg() else {
        return;
    };
    let dir = PathBuf::from(dir);
    let fds = || std::fs::read_dir("/proc/self/fd").expect("fd dir").count();
    let p = dir.join("secret");
    std::fs::write(&p, SECRET).expect("write");
    set_mode(&p, 0o600);
    let rules = FileRules::new(vec![me()]).with_trusted_root(&dir);
    let before = fds();
    for _ in 0..3 {
        drop(open_checked(&p, &rules).expect("open"));
        let _ = open_checked(&dir.join("absent"), &rules);
        let mut locked = lock_with_deadline(&p, &rules, LONG).expect("lock");
        locked.replace(SECRET).expect("replace");
        fault::fail_next(FaultPoint::Fsync, libc::EIO);
        let _ = locked.replace(b"X");
        drop(locked);
        write_new_file(&dir, OsStr::new("other"), SECRET, 0o600, true).expect("write");
        let _ = write_new_file(&dir, OsStr::new("other"), SECRET, 0o600, false);
    }
    assert_eq!(fds(), before);
    std::process::exit(42);
}

// ---------------------------------------------------------------------------------------
// on_network_fs

#[test]
fn a_file_on_a_local_file_system_is_not_on_a_network_one() {
    let s = Scratch::new();
    let p = s.path().join("f");
    std::fs::write(&p, SECRET).expect("write");
    let f = std::fs::File::open(&p).expect("open");
    // The scratch directory is on the build's own disk (ext4, xfs, btrfs, tmpfs…).
    assert_eq!(on_network_fs(&f), Ok(false));
    // proc is local too, and asked through a descriptor of its own.
    let proc = std::fs::File::open("/proc/self/stat").expect("open /proc");
    assert_eq!(on_network_fs(&proc), Ok(false));
}

#[test]
fn only_known_local_file_system_types_are_taken_for_local() {
    // Local disks and memory.
    for local in [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0x2FC1_2FC1] {
        assert!(!shared_fs_type(local), "{local:#x}");
    }
    // Network and cluster types, named or not: NFS, SMB2, FUSE, Ceph, GPFS, BeeGFS,
    // OrangeFS; and the stacking ones, whose type hides what lies below (overlayfs,
    // eCryptfs), and anything unknown.
    for shared in [
        0x6969,
        0xFE53_4D42,
        0x6573_5546,
        0x00C3_6400,
        0x4750_4653,
        0x1983_0326,
        0x2003_0528,
        0x794C_7630,
        0xF15F,
        0x1234_5678,
    ] {
        assert!(shared_fs_type(shared), "{shared:#x}");
    }
}

/// overlayfs reports its own type whatever its layers lie on (an NFS home below a
/// container's overlay): taken for shared, like any type not known to be local.
#[test]
fn a_file_on_overlayfs_is_taken_for_shared() {
    if !require_root("a_file_on_overlayfs_is_taken_for_shared") {
        return;
    }
    let s = Scratch::new();
    std::fs::create_dir(s.path().join("lower")).expect("mkdir");
    std::fs::write(s.path().join("lower/f"), SECRET).expect("write");
    let Some(status) = on_overlayfs(&s, "safefile::tests::child_on_overlayfs", "f") else {
        skip(
            "a_file_on_overlayfs_is_taken_for_shared",
            "an overlayfs mount",
        );
        return;
    };
    assert_eq!(status.code(), Some(42), "child status {status:?}");
}

/// Run the test `child` in a mount namespace of its own where `s`'s `lower` directory
/// (created by the caller) is the lower layer of an overlayfs mount at `merged`, with
/// the argument `merged/<rel>`; `None` where no overlayfs can be mounted.
fn on_overlayfs(s: &Scratch, child: &str, rel: &str) -> Option<std::process::ExitStatus> {
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(s.path().join(d)).expect("mkdir");
    }
    let child = child_command(
        child,
        s.path()
            .join("merged")
            .join(rel)
            .to_str()
            .expect("utf-8 temp path"),
    );
    let script = format!(
        "mount -t overlay overlay -o lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work \
         {0}/merged || exit 97; exec \"$0\" \"$@\"",
        s.path().display()
    );
    let status = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .status()
        .expect("spawn unshare");
    (status.code() != Some(97)).then_some(status)
}

/// A directory missing on a file system not known to be local (overlayfs here; an NFS
/// or FUSE one whose server is down answers `ENOENT` as well) shows nothing about its
/// absence, however checked and full its parent is. Control: the same missing directory
/// on the local file system below the overlay is a proven absence.
#[test]
fn a_missing_directory_on_a_shared_file_system_shows_nothing() {
    if !require_root("a_missing_directory_on_a_shared_file_system_shows_nothing") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("lower/store", me(), 0o755);
    s.file("lower/store/other", SECRET, me(), 0o600);
    let err = open_checked(
        &s.path().join("lower/store/user/secret"),
        &FileRules::new(vec![me()]),
    )
    .expect_err("missing");
    assert!(
        matches!(
            err,
            FileError::MissingDirectory {
                absence: Absence::Proven { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let Some(status) = on_overlayfs(
        &s,
        "safefile::tests::child_missing_directory_on_overlayfs",
        "store/user/secret",
    ) else {
        skip(
            "a_missing_directory_on_a_shared_file_system_shows_nothing",
            "an overlayfs mount",
        );
        return;
    };
    assert_eq!(status.code(), Some(42), "child status {status:?}");
}

#[test]
fn child_missing_directory_on_overlayfs() {
    let Some(path) = child_arg() else {
        return;
    };
    let err = open_checked(Path::new(&path), &FileRules::new(vec![me()])).expect_err("missing");
    assert!(
        matches!(
            err,
            FileError::MissingDirectory {
                absence: Absence::NotLocal,
                ..
            }
        ),
        "{err:?}"
    );
    std::process::exit(42);
}

#[test]
fn child_on_overlayfs() {
    let Some(path) = child_arg() else {
        return;
    };
    let f = std::fs::File::open(path).expect("open");
    assert_eq!(on_network_fs(&f), Ok(true));
    std::process::exit(42);
}

// ---------------------------------------------------------------------------------------
// access_rules_file: root-controlled from `/`

/// R21: a rule file in a root-owned 0755 directory is refused when a directory further
/// up belongs to a user or is group/other writable (whoever can rename it can swap the
/// whole subtree); the error names that directory and each fault. A sticky root-owned
/// directory closed to writes passes; /tmp does not. Control: the same file with a
/// root-controlled chain is read.
#[test]
fn the_access_rule_file_is_checked_from_the_root_down() {
    if !require_root("the_access_rule_file_is_checked_from_the_root_down") {
        return;
    }
    let base = private_tempdir();
    set_mode(base.path(), 0o755);
    let up = base.path().join("up");
    let rules_dir = up.join("rules");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    set_mode(&rules_dir, 0o755);
    let file = rules_dir.join("access.conf");
    std::fs::write(&file, b"+ : ALL : LOCAL\n").expect("write");
    set_mode(&file, 0o644);
    let rules = FileRules::access_rules_file();
    for (uid, mode) in [(0, 0o755), (0, 0o1755)] {
        std::os::unix::fs::chown(&up, Some(uid), None).expect("chown");
        set_mode(&up, mode);
        let opened = open_checked(&file, &rules).expect("root-controlled chain");
        assert_eq!(&opened.contents[..], b"+ : ALL : LOCAL\n");
    }
    for (uid, mode, fault) in [
        (ALICE, 0o755, "(not owned by root)"),
        (0, 0o775, "(writable by its group)"),
        (0, 0o1777, "(writable by its group, writable by others)"),
        (0, 0o757, "(writable by others)"),
        (
            ALICE,
            0o777,
            "(not owned by root, writable by its group, writable by others)",
        ),
    ] {
        std::os::unix::fs::chown(&up, Some(uid), None).expect("chown");
        set_mode(&up, mode);
        let err = open_checked(&file, &rules).expect_err("unsafe directory above");
        assert!(
            matches!(err, FileError::UnsafeDirectory { ref path, root_only: true, .. } if *path == up),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("directory {}", up.display()))
                && shown.contains(fault)
                && shown.contains("must be owned by root"),
            "{shown}"
        );
    }
    // A rule file right in /tmp (world-writable, sticky).
    let in_tmp = tempfile::Builder::new()
        .prefix("access")
        .tempfile_in("/tmp")
        .expect("a file in /tmp");
    std::fs::write(in_tmp.path(), b"+ : ALL : LOCAL\n").expect("write");
    set_mode(in_tmp.path(), 0o644);
    let err = open_checked(in_tmp.path(), &rules).expect_err("in /tmp");
    assert!(
        matches!(err, FileError::UnsafeDirectory { ref path, .. } if path == Path::new("/tmp")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// POSIX ACLs on a directory whose group write the private group excuses

/// A POSIX access ACL in the kernel's xattr format: `named` are (tag, id, perm) entries
/// between the owner's and the mask; the owning group gets `group_perm`, the mask the
/// union of the group class (as setfacl computes it), others nothing.
/// One named ACL entry: (tag, id, permission bits).
type AclEntry = (u16, u32, u16);

fn acl_blob(named: &[AclEntry], group_perm: u16) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let mut entries = vec![(0x01u16, UNDEFINED, 7u16)];
    let mut sorted = named.to_vec();
    sorted.sort();
    entries.extend(sorted.iter().filter(|e| e.0 == 0x02));
    entries.push((0x04, UNDEFINED, group_perm));
    entries.extend(sorted.iter().filter(|e| e.0 == 0x08));
    let mask = named.iter().fold(group_perm, |m, e| m | e.2);
    entries.push((0x10, UNDEFINED, mask));
    entries.push((0x20, UNDEFINED, 0));
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        blob.extend(tag.to_le_bytes());
        blob.extend(perm.to_le_bytes());
        blob.extend(id.to_le_bytes());
    }
    blob
}

fn set_acl(dir: &Path, named: &[AclEntry], group_perm: u16) {
    rustix::fs::setxattr(
        dir,
        "system.posix_acl_access",
        &acl_blob(named, group_perm),
        rustix::fs::XattrFlags::empty(),
    )
    .expect("the test file system supports POSIX ACLs");
}

#[test]
fn an_acl_entry_granting_write_to_someone_else_is_found() {
    const USER: u16 = 0x02;
    const GROUP: u16 = 0x08;
    let s = Scratch::new();
    let dir = s.mkdir("home", me(), 0o770);
    let writer = |dir: &Path| {
        let fd = fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
        let st = stat::fstat(&fd).expect("fstat");
        walk::acl_writer(fd.as_fd(), &st, ALICE_GROUP, &[ALICE])
    };
    assert_eq!(writer(&dir), None, "no ACL");
    let cases: [(&[AclEntry], Option<&str>); 6] = [
        (&[(USER, MALLORY, 7)], Some("user 4343")),
        (&[(USER, MALLORY, 2)], Some("user 4343")),
        (&[(GROUP, SHARED_GROUP, 7)], Some("group 4545")),
        // Read and search for someone else, write only for the owning group: the
        // mask shows group write, which is the private group's own.
        (&[(USER, MALLORY, 5)], None),
        // The allowed owner and the private group by name.
        (&[(USER, ALICE, 7), (GROUP, ALICE_GROUP, 7)], None),
        (&[(USER, 0, 7)], None),
    ];
    for (named, want) in cases {
        set_acl(&dir, named, 7);
        // The group bits are now the mask.
        assert_eq!(mode_of(&dir) & 0o070, 0o070, "{named:?}");
        assert_eq!(writer(&dir).as_deref(), want, "{named:?}");
    }
}

/// The ACL is read where `/proc` is not mounted too (through a readable descriptor of
/// the directory): a directory without one shows no writer, one with an entry granting
/// write shows it, as with `/proc`.
#[test]
fn an_acl_is_read_without_proc() {
    if !require_root("an_acl_is_read_without_proc") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("plain", me(), 0o770);
    let granting = s.mkdir("granting", me(), 0o770);
    set_acl(&granting, &[(0x02, MALLORY, 7)], 7);
    let child = child_command(
        "safefile::tests::child_acl_without_proc",
        s.path().to_str().expect("utf-8 temp path"),
    );
    let status = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "umount -l /proc || exit 97; exec \"$0\" \"$@\"",
        ])
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .status()
        .expect("spawn unshare");
    if status.code() == Some(97) {
        skip(
            "an_acl_is_read_without_proc",
            "a mount namespace without /proc",
        );
        return;
    }
    assert_eq!(status.code(), Some(42), "child status {status:?}");
}

#[test]
fn child_acl_without_proc() {
    let Some(base) = child_arg() else {
        return;
    };
    assert!(!Path::new("/proc/self").exists(), "/proc is still mounted");
    let writer = |dir: &str| {
        let path = Path::new(&base).join(dir);
        let fd =
            fcntl::open(&path, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
        let st = stat::fstat(&fd).expect("fstat");
        walk::acl_writer(fd.as_fd(), &st, ALICE_GROUP, &[ALICE])
    };
    assert_eq!(writer("plain"), None);
    assert_eq!(writer("granting").as_deref(), Some("user 4343"));
    std::process::exit(42);
}

#[test]
fn a_private_group_home_with_an_acl_granting_write_is_refused() {
    if !require_root("a_private_group_home_with_an_acl_granting_write_is_refused") {
        return;
    }
    // Root's own group stands in for a user-private group (named like the user, its
    // primary group, no other member); without that, the exception never applies.
    let root_group = crate::nss::lookup_group_by_name("root").ok().flatten();
    if !root_group.is_some_and(|g| g.gid == 0 && g.members.iter().all(|m| m == "root")) {
        skip(
            "a_private_group_home_with_an_acl_granting_write_is_refused",
            "a group root without other members",
        );
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", 0, 0o770);
    let p = s.file("home/secret", SECRET, 0, 0o600);
    let rules = FileRules::new(vec![0])
        .with_trusted_root(&home)
        .with_private_group_of("root", 0);
    // Control: group write by the private group alone is excused.
    assert!(open_checked(&p, &rules).is_ok());
    set_acl(&home, &[(0x02, MALLORY, 7)], 7);
    let err = open_checked(&p, &rules).expect_err("an ACL lets mallory write");
    assert_eq!(
        err,
        FileError::AclWritable {
            path: home.clone(),
            writer: format!("user {MALLORY}"),
        }
    );
    assert!(err.to_string().contains("POSIX ACL"), "{err}");
}

/// R7 outside the home: the file owner's private group is excused on a directory that
/// owner owns (GA's per-user directory made under umask 002), not on one root or
/// anyone else owns, and world write (a sticky one too) stays refused.
#[test]
fn a_store_directory_is_excused_for_the_private_group_only_when_the_file_owner_owns_it() {
    if !require_root(
        "a_store_directory_is_excused_for_the_private_group_only_when_the_file_owner_owns_it",
    ) {
        return;
    }
    // Root's group stands in for the owner's private group; it must have no member.
    let root_group = crate::nss::lookup_group_by_name("root").ok().flatten();
    if !root_group.is_some_and(|g| g.gid == 0 && g.members.iter().all(|m| m == "root")) {
        skip(
            "a_store_directory_is_excused_for_the_private_group_only_when_the_file_owner_owns_it",
            "a group root without other members",
        );
        return;
    }
    let s = Scratch::new();
    let dir = s.mkdir("alice", ALICE, 0o2775);
    lchown(&dir, Some(ALICE), Some(0)).expect("chown");
    let p = s.file("alice/secret", SECRET, ALICE, 0o600);
    // Named like the user "root" with primary gid 0: the group of the directory.
    let rules = FileRules::new(vec![ALICE])
        .with_trusted_root(s.path())
        .with_private_group_of("root", 0)
        .on_dirs_owned_by(ALICE);
    assert!(
        open_checked(&p, &rules).is_ok(),
        "owned by the file's owner"
    );
    let refused = |why: &str| {
        let err = open_checked(&p, &rules).expect_err(why);
        assert!(
            matches!(err, FileError::UnsafeDirectory { ref path, .. } if *path == dir),
            "{why}: {err:?}"
        );
    };
    // Root owns it: root gave the group write, which the user cannot undo.
    lchown(&dir, Some(0), Some(0)).expect("chown");
    refused("root-owned");
    // Control: the home's rule (no owner asked) excuses the same directory.
    let home_rules = FileRules::new(vec![ALICE])
        .with_trusted_root(s.path())
        .with_private_group_of("root", 0);
    assert!(open_checked(&p, &home_rules).is_ok(), "the home's rule");
    // Another allowed owner's directory is not the file owner's.
    let rules_two = FileRules::new(vec![ALICE, MALLORY])
        .with_trusted_root(s.path())
        .with_private_group_of("root", 0)
        .on_dirs_owned_by(ALICE);
    lchown(&dir, Some(MALLORY), Some(0)).expect("chown");
    assert!(
        open_checked(&p, &rules_two).is_err(),
        "owned by another owner"
    );
    // The file owner's own directory, but writable by all (sticky or not).
    lchown(&dir, Some(ALICE), Some(0)).expect("chown");
    for mode in [0o1777, 0o3777, 0o0777] {
        set_mode(&dir, mode);
        refused(&format!("mode {mode:o}"));
    }
    // A group other than the private one.
    set_mode(&dir, 0o2775);
    lchown(&dir, Some(ALICE), Some(ALICE_GROUP)).expect("chown");
    refused("another group");
}

/// R7: the rules module and CLI build for a placement. A store's chain is checked from
/// `/` with the file's owners; the user's private group is excused on every directory
/// of their home, and on a store's chain only on directories the file's owner owns
/// (also for a user whose home is `/`: every path lies in it); root's group never.
#[test]
fn the_rules_of_a_placement_check_a_store_from_the_root_with_the_owners_private_group() {
    use totp_core::options::ModuleOptions;
    use totp_core::placement::{Account, for_login};
    use totp_core::user::UserName;
    let opts = |args: &[&str]| {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        ModuleOptions::parse(&raw).expect("valid options")
    };
    let name = UserName::parse(b"alice").expect("a valid name");
    let user = |dir: &str| crate::nss::Passwd {
        name: "alice".into(),
        uid: 1000,
        gid: 1000,
        dir: PathBuf::from(dir),
    };
    fn account(pw: &crate::nss::Passwd) -> Account<'_> {
        Account {
            name: "alice",
            uid: pw.uid,
            dir: pw.dir.as_path(),
        }
    }
    let home = user("/home/alice");
    let p = for_login(&opts(&[]), &name, Some(account(&home)), None).expect("placed");
    let rules = FileRules::for_placement_of(&p, &home, None);
    assert_eq!(
        rules.trusted_root.as_deref(),
        Some(Path::new("/home/alice"))
    );
    let upg = |dirs_owned_by| {
        Some(PrivateGroupOwner {
            user: "alice".into(),
            primary_gid: 1000,
            dirs_owned_by,
        })
    };
    assert_eq!(
        rules.private_group_of,
        upg(None),
        "the home's private group"
    );
    let store = opts(&["secret=/var/unencrypted-home/${USER}/.google_authenticator"]);
    for pw in [&home, &user("/")] {
        let p = for_login(&store, &name, Some(account(pw)), None).expect("placed");
        let rules = FileRules::for_placement_of(&p, pw, None);
        assert_eq!(
            rules.trusted_root.as_deref(),
            Some(Path::new("/")),
            "{pw:?}"
        );
        assert_eq!(rules.allowed_owners, vec![1000]);
        assert_eq!(rules.private_group_of, upg(Some(1000)), "{pw:?}");
    }
    let root = Account {
        name: "root",
        uid: 0,
        dir: Path::new("/root"),
    };
    let with_owner = opts(&["user=root", "secret=/var/lib/pam_totp/${USER}"]);
    let p = for_login(&with_owner, &name, Some(account(&home)), Some(root)).expect("placed");
    let root_pw = crate::nss::Passwd {
        name: "root".into(),
        uid: 0,
        gid: 0,
        dir: PathBuf::from("/root"),
    };
    let rules = FileRules::for_placement_of(&p, &home, Some(&root_pw));
    assert_eq!(rules.trusted_root.as_deref(), Some(Path::new("/")));
    assert_eq!(rules.allowed_owners, vec![0]);
    assert_eq!(
        rules.private_group_of, None,
        "root's group is never excused"
    );
    // user= the user's own account, the file reached by a path outside the home: its
    // private group on its own directories.
    let own = opts(&["user=alice", "secret=/srv/alice/.google_authenticator"]);
    let p = for_login(&own, &name, Some(account(&home)), Some(account(&home))).expect("placed");
    let rules = FileRules::for_placement_of(&p, &home, Some(&home));
    assert_eq!(rules.private_group_of, upg(Some(1000)));
    // The account handed in must be the owner the placement names.
    let rules = FileRules::for_placement_of(&p, &home, Some(&root_pw));
    assert_eq!(rules.private_group_of, None);
}

// ---------------------------------------------------------------------------------------
// the walk's opens, at the moments a concurrent change can reach them

/// A plain file swapped for a symlink or a FIFO between the `lstat` that found it and
/// the open is still refused, by the open itself: it follows no link (a link to a file
/// the rules accept would be read) and does not block. Control: a plain file renamed
/// over it there is read.
#[test]
fn a_file_swapped_after_its_lstat_is_refused_by_the_open_itself() {
    let s = Scratch::new();
    let p = s.file("secret", SECRET, me(), 0o600);
    let other = s.file("other", b"followed", me(), 0o600);
    let rules = root_rules(&s);
    let swap_in = |from: PathBuf| {
        let to = p.clone();
        fault::run_at(FaultPoint::OpenFile, move || {
            std::fs::rename(&from, &to).expect("rename");
        });
    };

    swap_in(s.file("new", b"renamed", me(), 0o600));
    let f = open_checked(&p, &rules).expect("a plain file");
    assert!(!fault::pending(FaultPoint::OpenFile));
    assert_eq!(&f.contents[..], b"renamed");

    let link = s.path().join("link");
    symlink(&other, &link).expect("symlink");
    swap_in(link);
    let err = open_checked(&p, &rules).expect_err("a symlink");
    assert!(!fault::pending(FaultPoint::OpenFile));
    assert_eq!(err, FileError::Symlink);

    // The link swapped in is at the path now: a plain file again.
    s.file("secret", SECRET, me(), 0o600);
    let fifo = s.path().join("fifo");
    unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let (tx, rx) = mpsc::channel();
    let to = p.clone();
    std::thread::spawn(move || {
        // Hooks are per thread: this one is the opener's.
        fault::run_at(FaultPoint::OpenFile, move || {
            std::fs::rename(&fifo, &to).expect("rename");
        });
        let result = open_checked(&p, &rules).map(|_| ());
        let _ = tx.send((result, fault::pending(FaultPoint::OpenFile)));
    });
    // The bound is a hang guard, not a speed goal.
    let (result, pending) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the open blocked on a FIFO swapped in");
    assert!(!pending);
    assert!(
        matches!(result, Err(FileError::NotRegular { .. })),
        "{result:?}"
    );
}

/// A file replaced between its open and its `fstat` (the open holds a file without
/// links) is opened again and the new one read; replaced at every open, it is given up
/// on after a bound, refused for its link count.
#[test]
fn a_file_replaced_between_its_open_and_fstat_is_opened_again_a_bounded_number_of_times() {
    let s = Scratch::new();
    let p = s.file("secret", b"old", me(), 0o600);
    let rules = root_rules(&s);
    let replace = |contents: &'static [u8]| {
        let (tmp, to) = (s.path().join("new"), p.clone());
        move || {
            std::fs::write(&tmp, contents).expect("write");
            set_mode(&tmp, 0o600);
            std::fs::rename(&tmp, &to).expect("rename");
        }
    };

    fault::run_at(FaultPoint::OpenedFile, replace(b"new"));
    let f = open_checked(&p, &rules).expect("opened again");
    assert!(!fault::pending(FaultPoint::OpenedFile));
    assert_eq!(&f.contents[..], b"new");

    for _ in 0..=MAX_REOPENS_UNLINKED {
        fault::run_at(FaultPoint::OpenedFile, replace(b"again"));
    }
    let err = open_checked(&p, &rules).expect_err("replaced at every open");
    assert!(!fault::pending(FaultPoint::OpenedFile));
    assert_eq!(err, FileError::HardLinked { nlink: 0 });
    // Control: untouched, the last replacement is read.
    assert_eq!(
        &open_checked(&p, &rules).expect("read").contents[..],
        b"again"
    );
}

/// Without a trusted root only the file's parent is checked, but a missing file's
/// absence still names who could rename a directory anywhere above it (walked again
/// from `/`): a home of the user's above a root-owned directory lets them move a file
/// that must be root's away. Control: the same under a root-owned home.
#[test]
fn without_a_trusted_root_a_missing_file_names_the_owners_of_every_directory_above() {
    if !require_root(
        "without_a_trusted_root_a_missing_file_names_the_owners_of_every_directory_above",
    ) {
        return;
    }
    let s = Scratch::new();
    let rules = FileRules::new(vec![0]);
    let movable = |home: &Path| match open_checked_noting(&home.join("ssh/secret"), &rules) {
        Err((FileError::NotFound, absence @ Absence::Proven { .. })) => {
            absence.for_user(ALICE, &[0]) == Absence::UserMovable
        }
        other => panic!("not a proven absence: {:?}", other.err()),
    };
    let hers = s.mkdir("alice", ALICE, 0o755);
    s.mkdir("alice/ssh", 0, 0o755);
    s.file("alice/ssh/other", SECRET, 0, 0o600);
    assert!(movable(&hers));
    let roots = s.mkdir("root", 0, 0o755);
    s.mkdir("root/ssh", 0, 0o755);
    s.file("root/ssh/other", SECRET, 0, 0o600);
    assert!(!movable(&roots));
}

/// A symlink that is not root's, above the directories a walk checks (without a trusted
/// root, every directory but the parent; with one, those above it), is not followed,
/// however the walk gets through those directories. Control: a root-owned link in a
/// root-owned directory, at the same place, is.
#[test]
fn an_untrusted_symlink_above_the_checked_directories_is_not_followed() {
    if !require_root("an_untrusted_symlink_above_the_checked_directories_is_not_followed") {
        return;
    }
    let s = Scratch::new();
    let home = s.mkdir("home", ALICE, 0o755);
    s.mkdir("real/ssh", me(), 0o755);
    s.file("real/ssh/secret", SECRET, me(), 0o600);
    let hers = home.join("link");
    symlink(s.path().join("real"), &hers).expect("symlink");
    lchown(&hers, Some(ALICE), Some(ALICE)).expect("lchown");
    let roots = s.path().join("link");
    symlink(s.path().join("real"), &roots).expect("symlink");
    for link in [&hers, &roots] {
        for rules in [
            FileRules::new(vec![me()]),
            FileRules::new(vec![me()]).with_trusted_root(link.join("ssh")),
        ] {
            let opened = open_checked(&link.join("ssh/secret"), &rules);
            if link == &hers {
                assert_eq!(
                    opened.expect_err("her link"),
                    FileError::UntrustedSymlink { path: hers.clone() }
                );
            } else {
                assert_eq!(&opened.expect("root's link").contents[..], SECRET);
            }
        }
    }
}

/// A plain file or a FIFO where a directory of the path should be is refused as not a
/// directory, and the FIFO is not opened in a way that blocks, whether the walk checks
/// that directory (under a trusted root) or not (the parent alone, without one).
#[test]
fn a_file_or_fifo_where_a_directory_should_be_is_refused_without_blocking() {
    let s = Scratch::new();
    s.file("plain", SECRET, me(), 0o600);
    unistd::mkfifo(&s.path().join("fifo"), Mode::from_bits_truncate(0o600)).expect("mkfifo");
    for name in ["plain", "fifo"] {
        for rules in [FileRules::new(vec![me()]), root_rules(&s)] {
            let (tx, rx) = mpsc::channel();
            let p = s.path().join(name).join("secret");
            std::thread::spawn(move || {
                let _ = tx.send(open_checked(&p, &rules).map(|_| ()));
            });
            // The bound is a hang guard, not a speed goal.
            let result = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the walk blocked on a FIFO");
            assert_eq!(
                result,
                Err(FileError::NotADirectory {
                    path: s.path().join(name)
                }),
                "{name}"
            );
        }
    }
    // Control: the directory itself.
    s.mkdir("dir", me(), 0o755);
    s.file("dir/secret", SECRET, me(), 0o600);
    assert!(open_checked(&s.path().join("dir/secret"), &FileRules::new(vec![me()])).is_ok());
}

/// Every descriptor a walk hands back is close-on-exec, `/` itself included (the
/// directory of a file in `/`), and so is the readable one a write reopens it as, so a
/// program another thread starts inherits none.
#[test]
fn the_directory_a_walk_ends_on_is_close_on_exec_root_included() {
    let s = Scratch::new();
    s.mkdir("a/b", me(), 0o755);
    let rules = FileRules::new(vec![me()]);
    let dirs = [
        Vec::new(),
        dir_components(&s.path().join("a/b")).expect("components"),
    ];
    for comps in &dirs {
        let walked = walk_checked(comps, &rules).expect("walk");
        // And the readable one a write reopens it as (for its directory fsync).
        let readable = reopen_readable(walked.fd.try_clone().expect("dup"), "reopen")
            .expect("reopen readable");
        for fd in [walked.fd.as_fd(), readable.as_fd()] {
            let flags = fcntl::fcntl(fd, fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
            assert_ne!(flags & libc::FD_CLOEXEC, 0, "{:?}", walked.shown);
        }
    }
}

/// Root's symlinks in root's directories are followed as the kernel follows them: up to
/// [`MAX_SYMLINKS`] in one walk, and a walk needing one more (a loop among them
/// included) is refused rather than followed on.
#[test]
fn a_walk_follows_at_most_the_kernels_number_of_symlinks() {
    // Only root's symlinks are followed.
    if !require_root("a_walk_follows_at_most_the_kernels_number_of_symlinks") {
        return;
    }
    let s = Scratch::new();
    s.mkdir("real", me(), 0o755);
    s.file("real/secret", SECRET, me(), 0o600);
    let rules = FileRules::new(vec![me()]);
    // l0 -> l1 -> ... -> l{n-1} -> real
    let chain = |prefix: &str, n: u32| {
        for i in 0..n {
            let target = if i + 1 == n {
                "real".to_owned()
            } else {
                format!("{prefix}{}", i + 1)
            };
            symlink(target, s.path().join(format!("{prefix}{i}"))).expect("symlink");
        }
        s.path().join(format!("{prefix}0/secret"))
    };
    let at_limit = chain("a", MAX_SYMLINKS);
    assert_eq!(
        &open_checked(&at_limit, &rules).expect("40 links").contents[..],
        SECRET
    );
    let over = chain("b", MAX_SYMLINKS + 1);
    assert_eq!(
        open_checked(&over, &rules).expect_err("41 links"),
        FileError::TooManySymlinks
    );
    symlink("loop", s.path().join("loop")).expect("symlink");
    assert_eq!(
        open_checked(&s.path().join("loop/secret"), &rules).expect_err("a loop"),
        FileError::TooManySymlinks
    );
}
