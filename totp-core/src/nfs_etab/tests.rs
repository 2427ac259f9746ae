use super::*;

fn path(line: &str) -> Result<Vec<u8>, EtabError> {
    export(line.as_bytes()).map(|e| e.path)
}

fn export_path(line: &[u8]) -> Result<Vec<u8>, EtabError> {
    export(line).map(|e| e.path)
}

#[test]
fn a_line_exportfs_writes_gives_its_path() {
    assert_eq!(
        path("/srv/homes\t192.0.2.0/24(rw,sync,wdelay,hide,nocrossmnt,secure,root_squash)"),
        Ok(b"/srv/homes".to_vec())
    );
    assert_eq!(path("/\t*(ro,fsid=0)"), Ok(b"/".to_vec()));
    // The client is not parsed, nor anything after the options.
    assert_eq!(
        path("/export\tgss/krb5(rw)\tjunk \\x"),
        Ok(b"/export".to_vec())
    );
}

#[test]
fn the_options_are_given_and_crossmnt_or_nohide_cover_mounts_below() {
    let e =
        export(b"/srv/homes\t192.0.2.0/24(rw,sync,wdelay,hide,nocrossmnt,secure)").expect("export");
    assert_eq!(
        e.options,
        ["rw", "sync", "wdelay", "hide", "nocrossmnt", "secure"]
            .map(|o| o.as_bytes().to_vec())
            .to_vec()
    );
    // `nocrossmnt` and `hide` are what exportfs writes by default: not covering.
    assert!(!e.covers_mounts_below());
    for options in ["rw,crossmnt", "nohide", "ro,nohide,secure"] {
        let line = format!("/srv\t*({options})");
        assert!(
            export(line.as_bytes())
                .expect("export")
                .covers_mounts_below(),
            "{line}"
        );
    }
    // A flag of a name only starting so, or in the client, is not one.
    for line in [
        "/srv\t*(crossmnts)",
        "/srv\tcrossmnt(rw)",
        "/srv\t*(rw)crossmnt",
    ] {
        assert!(
            !export(line.as_bytes())
                .expect("export")
                .covers_mounts_below(),
            "{line}"
        );
    }
    assert_eq!(export(b"/srv\t*()").map(|e| e.options), Ok(vec![]));
}

#[test]
fn a_line_without_options_is_refused() {
    assert_eq!(path("/export\t"), Err(EtabError::NoOptions));
    assert_eq!(path("/export\t*"), Err(EtabError::NoOptions));
    assert_eq!(path("/export\t*(rw,crossmnt"), Err(EtabError::NoOptions));
    assert_eq!(path("/export\t*)rw("), Err(EtabError::NoOptions));
}

#[test]
fn escapes_are_undone() {
    assert_eq!(
        path("/srv/my\\040homes\\011x\\134y\\043z\\042\t*(rw)"),
        Ok(b"/srv/my homes\tx\\y#z\"".to_vec())
    );
    // The highest byte, and bytes exportfs writes as they are (UTF-8).
    assert_eq!(path("/a\\377\t*(rw)"), Ok(b"/a\xff".to_vec()));
    assert_eq!(
        path("/srv/h\u{e9}me\t*(rw)"),
        Ok("/srv/h\u{e9}me".as_bytes().to_vec())
    );
    // An escaped slash at the start is still an absolute path.
    assert_eq!(path("\\057srv\t*(rw)"), Ok(b"/srv".to_vec()));
}

#[test]
fn bad_escapes_are_refused() {
    for line in [
        "/a\\\t*(rw)",    // nothing after the backslash
        "/a\\04\t*(rw)",  // two digits, then the tab
        "/a\\0\t*(rw)",   // one digit
        "/a\\08x\t*(rw)", // not octal
        "/a\\x41\t*(rw)", // not octal
        "/a\\400\t*(rw)", // more than a byte
        "/a\\777\t*(rw)", // more than a byte
        "/a\\\\\t*(rw)",  // a backslash escaped C-style, not as exportfs does
        "/a\\-12\t*(rw)", // a sign
    ] {
        assert_eq!(path(line), Err(EtabError::BadEscape), "{line:?}");
    }
}

#[test]
fn nul_raw_or_escaped_is_refused() {
    assert_eq!(export_path(b"/a\0b\t*(rw)"), Err(EtabError::Nul));
    assert_eq!(path("/a\\000b\t*(rw)"), Err(EtabError::Nul));
    assert_eq!(export_path(b"\0\t*(rw)"), Err(EtabError::Nul));
}

#[test]
fn a_line_without_a_tab_is_refused() {
    assert_eq!(path("/srv/homes"), Err(EtabError::NoTab));
    assert_eq!(path("/srv/homes *(rw)"), Err(EtabError::NoTab));
    assert_eq!(path(""), Err(EtabError::NoTab));
}

#[test]
fn unescaped_blanks_controls_and_relative_paths_are_refused() {
    assert_eq!(path("/srv/my homes\tx\t*(rw)"), Err(EtabError::Unescaped));
    assert_eq!(path("/srv/\x1b[2J\t*(rw)"), Err(EtabError::Unescaped));
    assert_eq!(path("/srv/x\r\t*(rw)"), Err(EtabError::Unescaped));
    assert_eq!(path("/srv/x\x7f\t*(rw)"), Err(EtabError::Unescaped));
    assert_eq!(path("srv/homes\t*(rw)"), Err(EtabError::NotAbsolute));
    assert_eq!(path("\t*(rw)"), Err(EtabError::NotAbsolute));
    assert_eq!(path("# a comment\t*(rw)"), Err(EtabError::Unescaped));
    assert_eq!(path("#comment\t*(rw)"), Err(EtabError::NotAbsolute));
}

/// Taken as written, `/srv/../home` would be walked to a directory named `..` below
/// `/srv`, on `/srv`'s mount, where the kernel exported `/home`: unknown instead.
#[test]
fn dot_components_are_refused() {
    for line in [
        "/srv/../home\t*(rw)",
        "/srv/..\t*(rw)",
        "/..\t*(rw)",
        "/./home\t*(rw)",
        "/home/.\t*(rw)",
        "/srv/\\056\\056/home\t*(rw)",
    ] {
        assert_eq!(path(line), Err(EtabError::DotComponent), "{line}");
    }
    // Names that only start or end with dots are names.
    for p in ["/srv/...", "/srv/.hidden", "/srv/a..", "/srv/..a"] {
        assert_eq!(
            path(&format!("{p}\t*(rw)")),
            Ok(p.as_bytes().to_vec()),
            "{p}"
        );
    }
    assert!(
        EtabError::DotComponent.to_string().contains(". or .."),
        "{}",
        EtabError::DotComponent
    );
}

#[test]
fn overlong_paths_are_refused_without_reading_them_all() {
    let longest = format!("/{}", "a".repeat(MAX_PATH_LEN - 2));
    assert_eq!(
        path(&format!("{longest}\t*(rw)")),
        Ok(longest.as_bytes().to_vec())
    );
    let over = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert_eq!(path(&format!("{over}\t*(rw)")), Err(EtabError::TooLong));
    // Within PATH_MAX once unescaped, but every byte escaped: still taken.
    let escaped = format!("/{}", "\\040".repeat(MAX_PATH_LEN - 2));
    assert_eq!(
        path(&format!("{escaped}\t*(rw)")).map(|p| p.len()),
        Ok(MAX_PATH_LEN - 1)
    );
    // A megabyte of path, with or without a tab after it.
    let huge = format!("/{}", "b".repeat(1 << 20));
    assert_eq!(path(&format!("{huge}\t*(rw)")), Err(EtabError::TooLong));
    assert_eq!(path(&huge), Err(EtabError::TooLong));
    // Long client options are not the path's: taken.
    let options = "x".repeat(1 << 16);
    assert_eq!(path(&format!("/srv\t*({options})")), Ok(b"/srv".to_vec()));
}

#[test]
fn a_table_gives_its_exports_a_line_each_in_order() {
    let etab = "/srv/homes\t192.0.2.1(rw)\n/srv/homes\t192.0.2.2(rw,crossmnt)\n\n/srv/my\\040data\t*(ro)\n/srv/homes\t*(ro)";
    let paths = |t: &[u8]| exports(t).map(|x| x.into_iter().map(|e| e.path).collect::<Vec<_>>());
    assert_eq!(
        paths(etab.as_bytes()),
        Ok(vec![
            b"/srv/homes".to_vec(),
            b"/srv/homes".to_vec(),
            b"/srv/my data".to_vec(),
            b"/srv/homes".to_vec(),
        ])
    );
    // Each client's options with its line.
    let covering: Vec<bool> = exports(etab.as_bytes())
        .expect("table")
        .iter()
        .map(Export::covers_mounts_below)
        .collect();
    assert_eq!(covering, [false, true, false, false]);
    assert_eq!(paths(b""), Ok(vec![]));
    assert_eq!(paths(b"\n\n"), Ok(vec![]));
}

#[test]
fn one_garbled_line_makes_the_table_an_error_naming_it() {
    let etab = b"/srv/homes\t*(rw)\n/srv/x\\9\t*(rw)\n/srv/y\t*(rw)\n";
    let e = exports(etab).expect_err("garbled");
    assert_eq!(
        e,
        LineError {
            line: 2,
            error: EtabError::BadEscape
        }
    );
    assert_eq!(
        e.to_string(),
        "line 2: a backslash not followed by three octal digits of a byte"
    );
    assert_eq!(
        exports(b"/srv/homes\t*(rw)\n\0\0\0\0").map_err(|e| e.line),
        Err(2)
    );
}
