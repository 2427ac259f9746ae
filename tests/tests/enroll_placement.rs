//! Where `totp-enroll` writes as root, and whether the directories on the way are
//! checked on what is actually opened: a store outside the user's home is written only
//! when root alone can change every directory down to it, and a symlink root did not
//! place is never followed to get there.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::Path;
use std::process::{Command, Output};

use system_tests::{TestUser, built, read, require_root};

fn enroll(args: &[&str]) -> Output {
    Command::new(&built().enroll)
        .args(["-t", "-d", "-W", "-u", "-C", "--non-interactive"])
        .args(args)
        .output()
        .expect("run totp-enroll")
}

/// A root-owned 0700 directory whose whole chain is root's (`/var/lib`, not `/tmp`).
fn closed_store() -> tempfile::TempDir {
    let store = tempfile::Builder::new()
        .prefix("pam_totp-test-placement")
        .tempdir_in("/var/lib")
        .expect("store");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    store
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// Following the link and checking the directory it names would accept this; the link
// belongs to the user, so the user decided where it points.
#[test]
fn a_store_reached_through_a_users_symlink_is_refused_before_the_secret_is_shown() {
    if !require_root("a_store_reached_through_a_users_symlink_is_refused") {
        return;
    }
    let user = TestUser::create("plk");
    let store = closed_store();
    let real = store.path().join("real");
    fs::create_dir(&real).expect("mkdir");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = store.path().join("link");
    symlink(&real, &link).expect("symlink");
    lchown(&link, Some(user.uid), Some(user.uid)).expect("lchown");

    let target = link.join(&user.name);
    let target = target.to_string_lossy();
    // -f (a lost phone's re-enrolment) replaces a file; it does not skip the look.
    for force in [None, Some("-f")] {
        let mut args = vec!["--user", &user.name, "-Q", "UTF8", "-s", &target];
        args.extend(force);
        let out = enroll(&args);
        assert!(!out.status.success(), "{force:?} {out:?}");
        let said = text(&out);
        assert!(said.contains("symbolic link"), "{force:?} {said}");
        assert!(
            !said.contains("secret key"),
            "{force:?}: secret shown for a file never written: {said}"
        );
        assert!(!real.join(&user.name).exists());
    }
}

#[test]
fn a_store_file_is_not_updated_once_a_directory_above_it_opened_up() {
    if !require_root("a_store_file_is_not_updated_once_a_directory_above_it_opened_up") {
        return;
    }
    let user = TestUser::create("plo");
    let store = closed_store();
    let inner = store.path().join("inner");
    fs::create_dir(&inner).expect("mkdir");
    fs::set_permissions(&inner, fs::Permissions::from_mode(0o700)).expect("chmod");
    let path = inner.join(&user.name);
    let s = path.to_string_lossy().into_owned();
    let out = enroll(&["--user", &user.name, "-Q", "NONE", "--json", "-s", &s]);
    assert!(out.status.success(), "{out:?}");
    let before = read(&path);

    // The file's own directory is still closed; the one above it is not.
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o770)).expect("chmod");
    let out = Command::new(&built().enroll)
        .args([
            "--regenerate-scratch-codes",
            "--json",
            "--user",
            &user.name,
            "-s",
            &s,
        ])
        .output()
        .expect("run totp-enroll");
    assert!(!out.status.success(), "{out:?}");
    assert!(text(&out).contains("root-owned"), "{}", text(&out));
    assert_eq!(read(&path), before);
    assert!(Path::new(&path).exists());
}

/// Root enrolling a user into a store writes the QR image the user asked for in their
/// home as that user, not as root: the image is the user's, and a directory on its path
/// that the user swapped for a symlink to a root directory (as during the lock wait) is
/// followed only with the user's rights, so root's directory gets no file. The control
/// is the same run into a real directory of the user's.
#[test]
fn a_qr_image_beside_a_store_enrolment_is_written_as_the_user() {
    if !require_root("a_qr_image_beside_a_store_enrolment_is_written_as_the_user") {
        return;
    }
    let user = TestUser::create("pqr");
    let store = closed_store();
    let secret = store.path().join(&user.name);
    let secret_s = secret.to_string_lossy().into_owned();
    // Root's directory, open to read and search: only the write decides.
    let roots = closed_store();
    fs::set_permissions(roots.path(), fs::Permissions::from_mode(0o755)).expect("chmod");

    let real = user.home.join("q");
    fs::create_dir(&real).expect("mkdir");
    lchown(&real, Some(user.uid), Some(user.gid)).expect("chown");
    let png = real.join("x.png");
    let png_s = png.to_string_lossy().into_owned();
    let out = enroll(&[
        "--user", &user.name, "-Q", "NONE", "--json", "-s", &secret_s, "--qr-png", &png_s,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let meta = fs::symlink_metadata(&png).expect("the image");
    assert!(meta.file_type().is_file());
    assert_eq!(meta.uid(), user.uid, "the image is the user's");

    let swapped = user.home.join("swapped");
    symlink(roots.path(), &swapped).expect("symlink");
    lchown(&swapped, Some(user.uid), Some(user.gid)).expect("lchown");
    let png_s = swapped.join("x.png").to_string_lossy().into_owned();
    let out = enroll(&[
        "--user", &user.name, "-Q", "NONE", "--json", "-f", "-s", &secret_s, "--qr-png", &png_s,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !roots.path().join("x.png").exists(),
        "root wrote into its own directory for the user: {}",
        text(&out)
    );
    assert_eq!(
        fs::read_dir(roots.path()).expect("ls").count(),
        0,
        "nothing left behind"
    );
}
