use std::os::unix::fs::PermissionsExt;

use totp_core::nfs_etab::LineError;

use super::*;

/// A scratch directory holding a file (the secret file's stand-in), the table and a
/// thread count.
struct Case {
    dir: tempfile::TempDir,
    file: File,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").expect("write");
        let file = File::open(&p).expect("open");
        Case { dir, file }
    }

    fn etab(&self) -> PathBuf {
        self.dir.path().join("etab")
    }

    fn threads(&self) -> PathBuf {
        self.dir.path().join("threads")
    }

    fn run(&self) -> Result<ExportOf, ExportsError> {
        export_of_in(&self.etab(), &self.threads(), &self.file)
    }

    fn with_table(&self, contents: &[u8]) -> Result<ExportOf, ExportsError> {
        std::fs::write(self.etab(), contents).expect("write etab");
        self.run()
    }

    /// The table line exporting `p`, escaped as exportfs does.
    fn line(p: &Path) -> Vec<u8> {
        let mut l = Vec::new();
        for &b in p.as_os_str().as_bytes() {
            if b.is_ascii_whitespace() || b.is_ascii_control() || b == b'\\' {
                l.extend_from_slice(format!("\\{b:03o}").as_bytes());
            } else {
                l.push(b);
            }
        }
        l.extend_from_slice(b"\t192.0.2.0/24(rw,sync,wdelay,hide,nocrossmnt,secure,root_squash)\n");
        l
    }
}

/// `f` run with alice's file-system identity, as a login of hers runs.
fn as_alice<T>(f: impl FnOnce() -> T) -> T {
    let id = crate::creds::Identity {
        uid: crate::testutil::ALICE,
        gid: crate::testutil::ALICE_GROUP,
        groups: vec![],
    };
    let _alice = crate::creds::switch_to(&id).expect("switch");
    f()
}

/// The exports of a table's text, which must parse.
fn table(text: &[u8]) -> Vec<nfs_etab::Export> {
    nfs_etab::exports(text).expect("table")
}

/// A mount list: the root (1), `/srv` (2) on it, and `/srv/home dirs` (3, a tmpfs) on
/// that.
const LIST: &[u8] = b"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                      2 1 8:2 / /srv rw shared:3 - ext4 /dev/sda2 rw\n\
                      3 2 0:40 / /srv/home\\040dirs rw - tmpfs none rw\n";

fn exported(p: &Path) -> ExportOf {
    ExportOf::Exported {
        export: p.to_path_buf(),
        by_device: false,
    }
}

const NOT_EXPORTED: ExportOf = ExportOf::NotExported { by_device: false };

#[test]
fn an_export_on_the_files_mount_is_named() {
    let c = Case::new();
    // Another directory of the same mount, not above the file, nor existing: still
    // exported, decided from the mount list alone.
    let other = c.dir.path().join("my export").join("gone");
    let mut table = b"/proc\t*(ro)\n".to_vec();
    table.extend(Case::line(&other));
    assert_eq!(c.with_table(&table).expect("read"), exported(&other));
}

#[test]
fn no_table_no_export_or_exports_on_other_mounts_are_not_exported() {
    let c = Case::new();
    assert_eq!(c.run().expect("no table"), ExportOf::NoTable);
    assert_eq!(c.with_table(b"").expect("empty"), NOT_EXPORTED);
    // `/proc` and `/proc/self` are other mounts than the scratch directory's.
    assert_eq!(
        c.with_table(b"/proc\t*(ro)\n/proc/self/fd\t*(ro)\n")
            .expect("read"),
        NOT_EXPORTED
    );
}

#[test]
fn the_decision_from_a_given_mount_list() {
    let srv = table(b"/srv\t*(rw,nocrossmnt)\n");
    let decided = |exports: &[nfs_etab::Export], file| decide(LIST, exports, file);
    assert_eq!(
        decided(&srv, FileMount::Id(2)).expect("decided"),
        exported(Path::new("/srv"))
    );
    assert_eq!(
        decided(&srv, FileMount::Id(3)).expect("decided"),
        NOT_EXPORTED
    );
    assert_eq!(
        decided(&table(b"/srv\t*(rw,crossmnt)\n"), FileMount::Id(3)).expect("decided"),
        exported(Path::new("/srv"))
    );
    let tmpfs = FileMount::Device {
        major: 0,
        minor: 40,
    };
    assert_eq!(
        decided(&srv, tmpfs).expect("decided"),
        ExportOf::NotExported { by_device: true }
    );
    assert!(matches!(
        decided(&srv, FileMount::Id(9)),
        Err(ExportsError::Mounts(CoverError::FileMountUnlisted(9)))
    ));
    let e = decide(b"1 0 8:1 / / rw ext4\n", &srv, FileMount::Id(1)).expect_err("garbled");
    assert!(
        e.to_string().starts_with("/proc/self/mountinfo: line 1"),
        "{e}"
    );
}

/// Without a mount ID, a device number no mount has (a file in a Btrfs subvolume) is
/// unknown, and the error says why.
#[test]
fn by_device_a_number_no_mount_has_is_unknown() {
    let btrfs = FileMount::Device {
        major: 0,
        minor: 99,
    };
    let e = decide(LIST, &table(b"/srv\t*(rw)\n"), btrfs).expect_err("unknown");
    assert!(
        matches!(e, ExportsError::Mounts(CoverError::DeviceUnlisted { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("/proc/self/mountinfo: no mount has the secret file's device number 0:99"),
        "{e}"
    );
}

/// A table path with a `..` component is not walked as written: the table is garbled.
#[test]
fn a_dot_component_in_the_table_is_unknown() {
    let c = Case::new();
    let mut text = b"/proc/../srv\t*(rw)\n".to_vec();
    text.extend(Case::line(c.dir.path()));
    let e = c.with_table(&text).expect_err("unknown");
    assert!(
        matches!(e, ExportsError::Garbled(LineError { line: 1, .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("a . or .. component"), "{e}");
}

#[test]
fn without_a_table_a_running_nfs_server_is_unknown() {
    // The thread count as read: missing (no nfsd module), 0, a number, garbage.
    assert_eq!(no_table(Ok(None)).expect("no nfsd"), ExportOf::NoTable);
    assert_eq!(
        no_table(Ok(Some(b"0\n".to_vec()))).expect("stopped"),
        ExportOf::NoTable
    );
    let e = no_table(Ok(Some(b"8\n".to_vec()))).expect_err("running");
    assert!(matches!(e, ExportsError::NfsdWithoutTable), "{e:?}");
    assert!(
        e.to_string()
            .contains("no /var/lib/nfs/etab, yet the kernel NFS server runs"),
        "{e}"
    );
    assert!(matches!(
        no_table(Ok(Some(b"x".to_vec()))),
        Err(ExportsError::NfsdThreadsGarbled)
    ));
    assert!(matches!(
        no_table(Err(ExportsError::NotRegular(PathBuf::from(NFSD_THREADS)))),
        Err(ExportsError::NotRegular(_))
    ));
    // Read from a file in place of the kernel's.
    let c = Case::new();
    std::fs::write(c.threads(), b"8\n").expect("write");
    assert!(matches!(c.run(), Err(ExportsError::NfsdWithoutTable)));
    std::fs::write(c.threads(), b"0\n").expect("write");
    assert_eq!(c.run().expect("stopped"), ExportOf::NoTable);
    // Read only where the table is missing.
    std::fs::write(c.threads(), b"8\n").expect("write");
    assert_eq!(c.with_table(b"").expect("a table"), NOT_EXPORTED);
}

/// The thread count is root's alone (0600), and a login reads with the user's identity:
/// it is read as root, so a loaded but stopped server is no NFS server for the user's
/// login too (it was a warning on every login), and a running one still unknown. A file
/// that cannot be read even so leaves the server's state unknown. The user's identity
/// is back after each read.
#[test]
fn without_a_table_the_thread_count_is_read_as_root_for_a_users_login() {
    if !crate::testutil::require_root(
        "without_a_table_the_thread_count_is_read_as_root_for_a_users_login",
    ) {
        return;
    }
    let c = Case::new();
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let threads = |contents: &[u8]| {
        std::fs::write(c.threads(), contents).expect("write");
        std::fs::set_permissions(c.threads(), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    };
    let run_as_alice = || {
        as_alice(|| {
            // The fault is in place: this identity cannot read the file.
            assert_eq!(
                File::open(c.threads()).map_err(|e| e.kind()).err(),
                Some(io::ErrorKind::PermissionDenied)
            );
            let r = c.run();
            let ids = crate::creds::current_fs_ids().expect("fs ids");
            assert_eq!(
                (ids.uid, ids.gid),
                (crate::testutil::ALICE, crate::testutil::ALICE_GROUP)
            );
            r
        })
    };
    threads(b"0\n");
    assert_eq!(run_as_alice().expect("stopped"), ExportOf::NoTable);
    threads(b"8\n");
    assert!(matches!(
        run_as_alice(),
        Err(ExportsError::NfsdWithoutTable)
    ));
    // Loaded, state unknown: never "no exports".
    std::fs::remove_file(c.threads()).expect("rm");
    std::fs::create_dir(c.threads()).expect("mkdir");
    let e = as_alice(|| c.run()).expect_err("unknown");
    assert!(
        matches!(&e, ExportsError::NfsdUnknown(inner) if matches!(**inner, ExportsError::NotRegular(_))),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(
            "no /var/lib/nfs/etab, and whether the kernel NFS server runs is unknown ("
        ),
        "{e}"
    );
}

#[test]
fn a_garbled_table_is_an_error_naming_the_line() {
    let c = Case::new();
    let e = c
        .with_table(b"/proc\t*(ro)\n/srv/a\\9zz\t*(rw)\n")
        .expect_err("garbled");
    assert!(
        matches!(e, ExportsError::Garbled(LineError { line: 2, .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("line 2"), "{e}");
    // Even when an earlier line would have answered.
    let mut table = Case::line(c.dir.path());
    table.extend_from_slice(b"no tab here\n");
    assert!(matches!(
        c.with_table(&table),
        Err(ExportsError::Garbled(_))
    ));
}

#[test]
fn a_table_over_the_cap_is_an_error_and_read_no_further() {
    let c = Case::new();
    let mut table = Case::line(c.dir.path());
    let line = b"/proc\t*(ro)\n";
    while table.len() <= ETAB_MAX {
        table.extend_from_slice(line);
    }
    assert!(matches!(
        c.with_table(&table),
        Err(ExportsError::TooLarge(_, ETAB_MAX))
    ));
    // Control: the same table within the cap.
    table.truncate(ETAB_MAX - ETAB_MAX % line.len());
    while !table.ends_with(b"\n") {
        table.pop();
    }
    assert!(table.len() <= ETAB_MAX);
    assert_eq!(c.with_table(&table).expect("read"), exported(c.dir.path()));
}

#[test]
fn a_fifo_or_a_directory_in_place_of_the_table_is_refused_without_blocking() {
    let c = Case::new();
    nix::unistd::mkfifo(&c.etab(), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
    assert!(matches!(c.run(), Err(ExportsError::NotRegular(p)) if p == c.etab()));
    std::fs::remove_file(c.etab()).expect("rm");
    std::fs::create_dir(c.etab()).expect("mkdir");
    assert!(matches!(
        c.run(),
        Err(ExportsError::NotRegular(_)) | Err(ExportsError::Os { .. })
    ));
}

/// The old decision stat'ed every exported path, and a directory the login's identity
/// could not search made it an error (a warning on every login); now no path is looked
/// at, so the answer is the same as root's.
#[test]
fn an_export_path_this_identity_cannot_look_at_changes_nothing() {
    if !crate::testutil::require_root("an_export_path_this_identity_cannot_look_at_changes_nothing")
    {
        return;
    }
    let c = Case::new();
    let closed = c.dir.path().join("closed");
    std::fs::create_dir(&closed).expect("mkdir");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let hidden = closed.join("export");
    std::fs::create_dir(&hidden).expect("mkdir");
    std::fs::write(c.etab(), Case::line(&hidden)).expect("write etab");
    std::fs::set_permissions(c.etab(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let as_alice = as_alice(|| {
        // The fault is in place: this identity cannot search the directory.
        assert_eq!(
            std::fs::symlink_metadata(&hidden)
                .map_err(|e| e.kind())
                .err(),
            Some(io::ErrorKind::PermissionDenied)
        );
        c.run()
    });
    assert_eq!(as_alice.expect("as alice"), exported(&hidden));
    // Control: root, who can look, has the same answer.
    assert_eq!(c.run().expect("root"), exported(&hidden));
}
