use std::os::unix::fs::PermissionsExt;

use super::*;

/// A scratch directory holding a file (the secret file's stand-in) and the table.
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

    fn with_table(&self, contents: &[u8]) -> Result<Option<PathBuf>, ExportsError> {
        std::fs::write(self.etab(), contents).expect("write etab");
        export_of_in(&self.etab(), &self.file)
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

#[test]
fn an_export_on_the_files_file_system_is_named() {
    let c = Case::new();
    // Another directory of the same file system, not above the file: still exported.
    let other = c.dir.path().join("my export");
    std::fs::create_dir(&other).expect("mkdir");
    let mut table = b"/proc\t*(ro)\n".to_vec();
    table.extend(Case::line(&other));
    assert_eq!(c.with_table(&table).expect("read"), Some(other));
}

#[test]
fn no_table_no_export_or_exports_elsewhere_are_not_exported() {
    let c = Case::new();
    assert_eq!(export_of_in(&c.etab(), &c.file).expect("no table"), None);
    assert_eq!(c.with_table(b"").expect("empty"), None);
    // Another file system, and an export whose directory is gone.
    let gone = c.dir.path().join("gone");
    let mut table = b"/proc\t*(ro)\n".to_vec();
    table.extend(Case::line(&gone));
    table.extend(Case::line(&c.dir.path().join("f").join("below a file")));
    assert_eq!(c.with_table(&table).expect("read"), None);
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
    assert!(matches!(c.with_table(&table), Err(ExportsError::TooLarge)));
    // Control: the same table within the cap.
    table.truncate(ETAB_MAX - ETAB_MAX % line.len());
    while !table.ends_with(b"\n") {
        table.pop();
    }
    assert!(table.len() <= ETAB_MAX);
    assert_eq!(
        c.with_table(&table).expect("read"),
        Some(c.dir.path().to_path_buf())
    );
}

#[test]
fn a_fifo_or_a_directory_in_place_of_the_table_is_refused_without_blocking() {
    let c = Case::new();
    nix::unistd::mkfifo(&c.etab(), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
    assert!(matches!(
        export_of_in(&c.etab(), &c.file),
        Err(ExportsError::NotRegular)
    ));
    std::fs::remove_file(c.etab()).expect("rm");
    std::fs::create_dir(c.etab()).expect("mkdir");
    assert!(matches!(
        export_of_in(&c.etab(), &c.file),
        Err(ExportsError::NotRegular) | Err(ExportsError::Os { .. })
    ));
}

#[test]
fn an_export_path_this_identity_cannot_look_at_is_an_error() {
    if !crate::testutil::require_root("an_export_path_this_identity_cannot_look_at_is_an_error") {
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
    let id = crate::creds::Identity {
        uid: crate::testutil::ALICE,
        gid: crate::testutil::ALICE_GROUP,
        groups: vec![],
    };
    let as_alice = {
        let _alice = crate::creds::switch_to(&id).expect("switch");
        export_of_in(&c.etab(), &c.file)
    };
    assert!(
        matches!(&as_alice, Err(ExportsError::Os { what, .. }) if *what == hidden),
        "{as_alice:?}"
    );
    // Control: root sees it.
    assert_eq!(
        export_of_in(&c.etab(), &c.file).expect("root"),
        Some(hidden)
    );
}
