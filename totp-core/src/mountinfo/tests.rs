use super::*;

/// A line as the kernel writes it, for a mount at `point` (written as given).
fn line(id: u64, parent: u64, dev: &str, point: &str) -> String {
    format!("{id} {parent} {dev} / {point} rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
}

/// A list: the root (1, 8:1), `/srv` (2, 8:2) on it, `/srv/homes` (3, 0:40, a tmpfs) on
/// that, `/home` (4, 8:1 again: a bind mount of the root's file system) and `/data`
/// (5, 8:3) on the root.
fn host() -> Vec<Mount> {
    let text = [
        line(1, 0, "8:1", "/"),
        line(2, 1, "8:2", "/srv"),
        line(3, 2, "0:40", "/srv/homes"),
        line(4, 1, "8:1", "/home"),
        line(5, 1, "8:3", "/data"),
    ]
    .concat();
    parse(text.as_bytes()).expect("list")
}

fn export(path: &str, options: &str) -> Export {
    crate::nfs_etab::export(format!("{path}\t*({options})").as_bytes()).expect("export")
}

fn covering(mounts: &[Mount], exports: &[Export], file: FileMount) -> Option<Vec<u8>> {
    export_covering(mounts, exports, file)
        .expect("an answer")
        .map(|e| e.path.clone())
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
    let text = [
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
    ]
    .concat();
    let mounts = parse(text.as_bytes()).expect("list");
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
    let text = [line(1, 2, "8:1", "/"), line(2, 1, "8:2", "/")].concat();
    let mounts = parse(text.as_bytes()).expect("list");
    // Every root is on another root: none is the bottom.
    assert_eq!(mount_of(&mounts, b"/x"), None);
    assert_eq!(
        export_covering(&mounts, &[export("/x", "rw")], FileMount::Id(1)),
        Err(CoverError::NoRoot)
    );
    let text = [
        line(1, 0, "8:1", "/"),
        line(2, 3, "8:2", "/a"),
        line(3, 2, "8:3", "/a/b"),
    ]
    .concat();
    let mounts = parse(text.as_bytes()).expect("list");
    assert_eq!(mount_of(&mounts, b"/a/b").map(|m| m.id), Some(1));
    assert_eq!(
        covering(&mounts, &[export("/", "crossmnt")], FileMount::Id(3)),
        None
    );
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
    let dev = |major, minor| FileMount::Device { major, minor };
    assert_eq!(covering(&mounts, &[export("/srv", "rw")], dev(0, 40)), None);
    assert_eq!(
        covering(&mounts, &[export("/srv", "crossmnt")], dev(0, 40)),
        Some(b"/srv".to_vec())
    );
    assert_eq!(
        covering(&mounts, &[export("/home", "rw")], dev(8, 1)),
        Some(b"/home".to_vec())
    );
    // A number no mount has (a Btrfs subvolume's): nothing covers it.
    assert_eq!(
        covering(&mounts, &[export("/", "crossmnt")], dev(0, 99)),
        None
    );
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
