use super::*;

/// A line as the kernel writes it, for a mount of the root of its file system at
/// `point` (written as given).
fn line(id: u64, parent: u64, dev: &str, point: &str) -> String {
    bound(id, parent, dev, "/", point)
}

/// [`line`] for a mount showing the directory `root` of its file system.
fn bound(id: u64, parent: u64, dev: &str, root: &str, point: &str) -> String {
    format!("{id} {parent} {dev} {root} {point} rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
}

/// The mounts of `lines`, which must parse.
fn list(lines: &[String]) -> Vec<Mount> {
    parse(lines.concat().as_bytes()).expect("list")
}

/// A list: the root (1, 8:1), `/srv` (2, 8:2) on it, `/srv/homes` (3, 0:40, a tmpfs) on
/// that, `/home` (4, 8:1 again: a bind mount of the root's file system) and `/data`
/// (5, 8:3) on the root.
fn host() -> Vec<Mount> {
    list(&[
        line(1, 0, "8:1", "/"),
        line(2, 1, "8:2", "/srv"),
        line(3, 2, "0:40", "/srv/homes"),
        line(4, 1, "8:1", "/home"),
        line(5, 1, "8:3", "/data"),
    ])
}

fn export(path: &str, options: &str) -> Export {
    crate::nfs_etab::export(format!("{path}\t*({options})").as_bytes()).expect("export")
}

fn covering(mounts: &[Mount], exports: &[Export], file: FileMount) -> Option<Vec<u8>> {
    export_covering(mounts, exports, file)
        .expect("an answer")
        .map(<[u8]>::to_vec)
}

fn dev(major: u32, minor: u32) -> FileMount {
    FileMount::Device { major, minor }
}

#[test]
fn a_line_the_kernel_writes_is_parsed() {
    let m = parse_line(
        b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
    )
    .expect("line");
    assert_eq!(
        m,
        Mount {
            id: 36,
            parent: 35,
            major: 98,
            minor: 0,
            root: b"/mnt1".to_vec(),
            mount_point: b"/mnt2".to_vec(),
        }
    );
    // No optional fields at all.
    let m = parse_line(b"1 1 0:2 / / rw - rootfs rootfs rw").expect("line");
    assert_eq!((m.id, m.parent, m.mount_point), (1, 1, b"/".to_vec()));
}

#[test]
fn escapes_in_the_mount_point_are_undone() {
    let m = parse_line(b"40 1 0:50 / /home/my\\040home\\011x\\012y\\134z rw - tmpfs none rw")
        .expect("line");
    assert_eq!(m.mount_point, b"/home/my home\tx\ny\\z".to_vec());
    // A mount point that spells the separator, escaped as the kernel does, is one field.
    let m = parse_line(b"40 1 0:50 / /a\\040-\\040b rw - tmpfs none rw").expect("line");
    assert_eq!(m.mount_point, b"/a - b".to_vec());
    // Raw bytes the kernel does not escape (controls other than tab and newline, UTF-8).
    let m = parse_line("40 1 0:50 / /h\u{e9}\x1b rw - tmpfs none rw".as_bytes()).expect("line");
    assert_eq!(m.mount_point, "/h\u{e9}\x1b".as_bytes().to_vec());
}

#[test]
fn hostile_lines_are_refused() {
    for (l, e) in [
        (
            "40 1 0:50 / /a\\04 rw - tmpfs none rw",
            MountinfoError::BadEscape,
        ),
        (
            "40 1 0:50 / /a\\9zz rw - tmpfs none rw",
            MountinfoError::BadEscape,
        ),
        (
            "40 1 0:50 / /a\\400 rw - tmpfs none rw",
            MountinfoError::BadEscape,
        ),
        (
            "40 1 0:50 / /a\\ rw - tmpfs none rw",
            MountinfoError::BadEscape,
        ),
        (
            "40 1 0:50 / /a\\000 rw - tmpfs none rw",
            MountinfoError::Nul,
        ),
        (
            "40 1 0:50 / a rw - tmpfs none rw",
            MountinfoError::NotAbsolute,
        ),
        // No separator, or nothing after it, or it among the first six fields.
        (
            "40 1 0:50 / /a rw shared:1 tmpfs none rw",
            MountinfoError::Fields,
        ),
        ("40 1 0:50 / /a rw -", MountinfoError::Fields),
        ("40 1 0:50 / - rw tmpfs none rw", MountinfoError::Fields),
        ("40 1 0:50 /", MountinfoError::Fields),
        ("", MountinfoError::Fields),
        // Numbers: signs, hex, no colon, overflow.
        ("+40 1 0:50 / /a rw - tmpfs none rw", MountinfoError::Number),
        (
            "40 0x1 0:50 / /a rw - tmpfs none rw",
            MountinfoError::Number,
        ),
        ("40 1 050 / /a rw - tmpfs none rw", MountinfoError::Number),
        ("40 1 0:5:0 / /a rw - tmpfs none rw", MountinfoError::Number),
        (
            "40 1 0:99999999999 / /a rw - tmpfs none rw",
            MountinfoError::Number,
        ),
        (
            "99999999999999999999 1 0:5 / /a rw - tmpfs none rw",
            MountinfoError::Number,
        ),
    ] {
        assert_eq!(parse_line(l.as_bytes()), Err(e), "{l:?}");
    }
    assert_eq!(
        parse_line(b"40 1 0:50 / /a\0b rw - tmpfs none rw"),
        Err(MountinfoError::Nul)
    );
}

#[test]
fn overlong_mount_points_are_refused_long_options_taken() {
    let longest = format!("/{}", "a".repeat(MAX_PATH_LEN - 2));
    let l = format!("40 1 0:50 / {longest} rw - tmpfs none rw");
    assert_eq!(
        parse_line(l.as_bytes()).map(|m| m.mount_point.len()),
        Ok(MAX_PATH_LEN - 1)
    );
    let over = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    let l = format!("40 1 0:50 / {over} rw - tmpfs none rw");
    assert_eq!(parse_line(l.as_bytes()), Err(MountinfoError::TooLong));
    let huge = format!("/{}", "\\040".repeat(1 << 18));
    let l = format!("40 1 0:50 / {huge} rw - tmpfs none rw");
    assert_eq!(parse_line(l.as_bytes()), Err(MountinfoError::TooLong));
    // An overlay's long super options are the file system's business.
    let options = format!("rw,lowerdir={}", "/l".repeat(1 << 15));
    let l = format!("40 1 0:50 / /a rw - overlay overlay {options}");
    assert!(parse_line(l.as_bytes()).is_ok());
}

#[test]
fn one_bad_line_makes_the_list_an_error_naming_it() {
    let text = format!(
        "{}40 1 0:50 / /a\\9 rw - tmpfs none rw\n",
        line(1, 0, "8:1", "/")
    );
    assert_eq!(
        parse(text.as_bytes()),
        Err(LineError {
            line: 2,
            error: MountinfoError::BadEscape
        })
    );
    assert_eq!(parse(b"\n\n"), Ok(vec![]));
}

#[test]
fn a_path_is_on_the_mount_a_walk_from_the_root_finds() {
    let mounts = host();
    let id = |p: &str| mount_of(&mounts, p.as_bytes()).map(|m| m.id);
    assert_eq!(id("/"), Some(1));
    assert_eq!(id("/etc/x"), Some(1));
    assert_eq!(id("/srv"), Some(2));
    assert_eq!(id("/srv/"), Some(2));
    assert_eq!(id("//srv//homes/alice"), Some(3));
    // Component by component: `/srvx` is not below `/srv`.
    assert_eq!(id("/srvx/homes"), Some(1));
    assert_eq!(id("/srv/homesick"), Some(2));
    // A path that exists nowhere is on the mount its prefix is.
    assert_eq!(id("/data/gone/away"), Some(5));
    assert_eq!(mount_of(&[], b"/"), None);
}

#[test]
fn stacked_and_hidden_mounts_are_walked_as_the_kernel_does() {
    let mounts = list(&[
        line(1, 0, "8:1", "/"),
        // `/a/b`, then `/a` mounted over it: `/a/b` is hidden.
        line(2, 1, "8:2", "/a/b"),
        line(3, 1, "8:3", "/a"),
        // `/c`, with another mount on top of it.
        line(4, 1, "8:4", "/c"),
        line(5, 4, "8:5", "/c"),
        // A mount on the root at `/`.
        line(6, 1, "8:6", "/"),
        line(7, 6, "8:7", "/d"),
        line(8, 1, "8:8", "/d"),
    ]);
    let id = |p: &str| mount_of(&mounts, p.as_bytes()).map(|m| m.id);
    assert_eq!(id("/x"), Some(6));
    // `/d` on the upper root, not the one on the lower root it hides.
    assert_eq!(id("/d/x"), Some(7));
    // `/a` and `/c` were mounted on the lower root, which the upper one hides.
    assert_eq!(id("/a/b/x"), Some(6));
    assert_eq!(id("/c/x"), Some(6));
    // Without the upper root.
    let lower: Vec<Mount> = mounts.iter().filter(|m| m.id < 6).cloned().collect();
    let id = |p: &str| mount_of(&lower, p.as_bytes()).map(|m| m.id);
    assert_eq!(id("/a/b/x"), Some(3));
    assert_eq!(id("/c/x"), Some(5));
}

#[test]
fn a_parent_loop_ends() {
    let mounts = list(&[line(1, 2, "8:1", "/"), line(2, 1, "8:2", "/")]);
    // Every root is on another root: none is the bottom.
    assert_eq!(mount_of(&mounts, b"/x"), None);
    assert_eq!(
        export_covering(&mounts, &[export("/x", "rw")], FileMount::Id(1)),
        Err(CoverError::NoRoot)
    );
    let mounts = list(&[
        line(1, 0, "8:1", "/"),
        line(2, 3, "8:2", "/a"),
        line(3, 2, "8:3", "/a/b"),
    ]);
    assert_eq!(mount_of(&mounts, b"/a/b").map(|m| m.id), Some(1));
    // Whether the file's mount is below the export's cannot be told: not "no".
    assert_eq!(
        export_covering(&mounts, &[export("/", "crossmnt")], FileMount::Id(3)),
        Err(CoverError::BrokenChain(3))
    );
}

/// A mount whose parent is not listed, other than a root, breaks the chain a crossmnt
/// export is looked for along: the answer is unknown, never "not covered". Where the
/// chain is not needed, or another export answers, it changes nothing.
#[test]
fn a_broken_parent_chain_where_needed_is_an_error() {
    let mounts = list(&[
        line(1, 0, "8:1", "/"),
        line(2, 1, "8:2", "/srv"),
        // On a mount the list does not have.
        line(3, 77, "0:40", "/srv/homes"),
    ]);
    assert_eq!(
        export_covering(&mounts, &[export("/srv", "crossmnt")], FileMount::Id(3)),
        Err(CoverError::BrokenChain(3))
    );
    assert_eq!(
        export_covering(&mounts, &[export("/", "nohide")], dev(0, 40)),
        Err(CoverError::BrokenChain(3))
    );
    // Not needed: no crossmnt, or the file's mount is not below the export's path.
    assert_eq!(
        covering(&mounts, &[export("/srv", "rw")], FileMount::Id(3)),
        None
    );
    assert_eq!(
        covering(&mounts, &[export("/data", "crossmnt")], FileMount::Id(3)),
        None
    );
    // Another export covers the file (on a bind mount of its file system): that
    // answers.
    let mut bound_too = mounts.clone();
    bound_too.extend(list(&[line(4, 1, "0:40", "/data")]));
    assert_eq!(
        covering(
            &bound_too,
            &[export("/srv", "crossmnt"), export("/data", "rw")],
            FileMount::Id(3)
        ),
        Some(b"/data".to_vec())
    );
    let e = CoverError::BrokenChain(3).to_string();
    assert!(e.contains("ID 3") && e.contains("not listed"), "{e}");
}

#[test]
fn an_export_on_the_files_mount_covers_it() {
    let mounts = host();
    // The export's own directory, one above the file, one elsewhere on the same mount
    // (a Btrfs subvolume below it is on that mount too).
    for path in [
        "/srv/homes",
        "/srv",
        "/srv/other",
        "/srv/homes/alice/subvolume",
    ] {
        let file = if path.starts_with("/srv/homes") { 3 } else { 2 };
        assert_eq!(
            covering(
                &mounts,
                &[export(path, "rw,nocrossmnt")],
                FileMount::Id(file)
            ),
            Some(path.as_bytes().to_vec()),
            "{path}"
        );
    }
}

#[test]
fn an_export_on_a_bind_mount_of_the_files_file_system_covers_it() {
    let mounts = host();
    // `/home` (4) is the root's file system (8:1) mounted again.
    assert_eq!(
        covering(&mounts, &[export("/home", "rw")], FileMount::Id(1)),
        Some(b"/home".to_vec())
    );
    assert_eq!(
        covering(&mounts, &[export("/etc", "rw")], FileMount::Id(4)),
        Some(b"/etc".to_vec())
    );
}

#[test]
fn an_export_on_another_mount_does_not_cover() {
    let mounts = host();
    let exports = [export("/data", "rw"), export("/srv", "rw,hide,nocrossmnt")];
    // The file on `/srv/homes` (its own mount below the export, no crossmnt).
    assert_eq!(covering(&mounts, &exports, FileMount::Id(3)), None);
    assert_eq!(covering(&mounts, &exports, FileMount::Id(1)), None);
    assert_eq!(covering(&mounts, &[], FileMount::Id(3)), None);
}

#[test]
fn crossmnt_or_nohide_covers_the_mounts_below_the_export() {
    let mounts = host();
    for options in ["rw,crossmnt", "rw,nohide"] {
        // `/srv/homes` (3) is below `/srv`, on `/srv`'s mount.
        assert_eq!(
            covering(&mounts, &[export("/srv", options)], FileMount::Id(3)),
            Some(b"/srv".to_vec()),
            "{options}"
        );
        // From the root too, through `/srv`.
        assert_eq!(
            covering(&mounts, &[export("/", options)], FileMount::Id(3)),
            Some(b"/".to_vec()),
            "{options}"
        );
        // Not a mount beside the export: `/data` (5) is on the root, not below `/srv`.
        assert_eq!(
            covering(&mounts, &[export("/srv", options)], FileMount::Id(5)),
            None,
            "{options}"
        );
        // Nor a mount above it.
        assert_eq!(
            covering(
                &mounts,
                &[export("/srv/homes/x", options)],
                FileMount::Id(2)
            ),
            None,
            "{options}"
        );
    }
}

#[test]
fn the_files_mount_not_listed_is_an_error() {
    let mounts = host();
    assert_eq!(
        export_covering(&mounts, &[export("/srv", "rw")], FileMount::Id(99)),
        Err(CoverError::FileMountUnlisted(99))
    );
}

#[test]
fn by_device_number_every_mount_with_it_is_the_files() {
    let mounts = host();
    assert_eq!(covering(&mounts, &[export("/srv", "rw")], dev(0, 40)), None);
    assert_eq!(
        covering(&mounts, &[export("/srv", "crossmnt")], dev(0, 40)),
        Some(b"/srv".to_vec())
    );
    assert_eq!(
        covering(&mounts, &[export("/home", "rw")], dev(8, 1)),
        Some(b"/home".to_vec())
    );
}

/// Before Linux 5.8, a file in a Btrfs subvolume has a device number no mount lists:
/// which mount it is on is unknown, so whether an export covers it is too.
#[test]
fn by_device_number_a_number_no_mount_has_is_an_error() {
    let mounts = host();
    for exports in [
        vec![],
        vec![export("/data", "rw")],
        vec![export("/", "crossmnt")],
    ] {
        assert_eq!(
            export_covering(&mounts, &exports, dev(0, 99)),
            Err(CoverError::DeviceUnlisted {
                major: 0,
                minor: 99
            })
        );
    }
    let e = CoverError::DeviceUnlisted {
        major: 0,
        minor: 99,
    }
    .to_string();
    assert!(e.contains("0:99") && e.contains("Btrfs"), "{e}");
}

/// A home reached, below a crossmnt export, through a bind mount of its file system:
/// the file's descriptor names the mount it was opened through, yet NFS clients see the
/// same file through the other mount.
#[test]
fn crossmnt_above_any_mount_of_the_files_file_system_covers_it() {
    let mounts = list(&[
        line(1, 0, "8:1", "/"),
        // The homes' file system, where logins open the files.
        line(2, 1, "8:5", "/data"),
        // Its `homes` directory bound below the export.
        bound(3, 1, "8:5", "/homes", "/srv/export/homes"),
        // Another directory of it, beside the homes: shows none of their files.
        bound(4, 1, "8:5", "/scratch", "/srv/export/scratch"),
        // A bind mount of one home, below the directory bound at 3.
        bound(5, 1, "8:5", "/homes/alice", "/srv/alice"),
    ]);
    for options in ["rw,crossmnt", "rw,nohide"] {
        let exports = [export("/srv/export", options)];
        assert_eq!(
            covering(&mounts, &exports, FileMount::Id(2)),
            Some(b"/srv/export".to_vec()),
            "{options}"
        );
        // Opened through the one home's mount: 3 shows it too.
        assert_eq!(
            covering(&mounts, &exports, FileMount::Id(5)),
            Some(b"/srv/export".to_vec()),
            "{options}"
        );
        assert_eq!(
            covering(&mounts, &[export("/srv", options)], FileMount::Id(5)),
            Some(b"/srv".to_vec()),
            "{options}"
        );
    }
    // Without crossmnt the bound directory is another export's business.
    assert_eq!(
        covering(&mounts, &[export("/srv/export", "rw")], FileMount::Id(2)),
        None
    );
    // An export of the bound directory itself is on a mount of the file's file system.
    assert_eq!(
        covering(
            &mounts,
            &[export("/srv/export/homes", "rw")],
            FileMount::Id(5)
        ),
        Some(b"/srv/export/homes".to_vec())
    );
    // Control: a file opened through the scratch mount shares no directory with the
    // homes' bind mounts, only with the whole file system's (2), which is not below.
    assert_eq!(
        covering(
            &mounts,
            &[
                export("/srv/export/homes", "rw"),
                export("/srv/alice", "crossmnt")
            ],
            FileMount::Id(4)
        ),
        None
    );
    assert_eq!(
        covering(&mounts, &[export("/data", "rw")], FileMount::Id(4)),
        Some(b"/data".to_vec())
    );
}

/// An export listed once per client is walked once, its options merged: `crossmnt` for
/// one client is enough. The answer names the path as first written.
#[test]
fn an_export_listed_for_several_clients_counts_once_with_every_option() {
    let mounts = host();
    let exports = [
        export("/srv", "rw,nocrossmnt"),
        export("/srv/", "ro,hide"),
        export("//srv", "rw,crossmnt"),
    ];
    assert_eq!(
        covering(&mounts, &exports, FileMount::Id(3)),
        Some(b"/srv".to_vec())
    );
    assert_eq!(covering(&mounts, &exports[..2], FileMount::Id(3)), None);
}

/// Tens of thousands of mounts and table lines: each export is walked once and each
/// step is a lookup, where a scan of the list per step took minutes.
#[test]
fn a_large_list_and_table_are_decided_in_time() {
    let n: u64 = 20_000;
    let mut lines = vec![line(1, 0, "8:1", "/")];
    lines.extend((2..n).map(|i| line(i, 1, &format!("0:{i}"), &format!("/m/{i}"))));
    let mounts = list(&lines);
    let exports: Vec<Export> = (0..n)
        .flat_map(|i| {
            let path = format!("/e/{i}/x");
            ["a", "b", "c"].map(|_| export(&path, "rw,crossmnt"))
        })
        .collect();
    let start = std::time::Instant::now();
    assert_eq!(covering(&mounts, &exports, FileMount::Id(n - 1)), None);
    let elapsed = start.elapsed();
    // Generous for a debug build on a busy machine; the scan per step was far above.
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
}

#[test]
fn nfsd_runs_with_threads_above_zero() {
    assert_eq!(nfsd_running(b"8\n"), Some(true));
    assert_eq!(nfsd_running(b"1"), Some(true));
    assert_eq!(nfsd_running(b"0\n"), Some(false));
    assert_eq!(nfsd_running(b""), None);
    assert_eq!(nfsd_running(b"-1\n"), None);
    assert_eq!(nfsd_running(b"eight\n"), None);
    assert_eq!(nfsd_running(b"99999999999999999999999\n"), None);
}
