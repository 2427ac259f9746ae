use super::*;

fn opts(args: &[&str]) -> ModuleOptions {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    ModuleOptions::parse(&raw).expect("valid options")
}

fn name(n: &str) -> UserName {
    UserName::parse(n.as_bytes()).expect("valid name")
}

fn alice() -> Account<'static> {
    Account {
        name: "alice",
        uid: 1000,
        dir: Path::new("/home/alice"),
    }
}

fn root_account() -> Account<'static> {
    Account {
        name: "root",
        uid: 0,
        dir: Path::new("/root"),
    }
}

const ROOT: Caller = Caller { uid: 0, euid: 0 };

// ---- the module

#[test]
fn login_home_mode_reads_the_users_file_as_the_user_checked_from_the_home_down() {
    let p = for_login(&opts(&[]), &name("alice"), Some(alice()), None).expect("placed");
    assert_eq!(p.path, Path::new("/home/alice/.google_authenticator"));
    assert_eq!(p.opener, Opener::User);
    assert_eq!(p.owners, vec![1000]);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/home/alice")));
    assert_eq!(p.allowed_perm, 0o600);
    assert!(!p.check_dirs_on_create);
}

/// R7: outside the home every directory from `/` down is checked (a store the user's
/// own file is in), not the parent alone: whoever may rename a directory above it can
/// put another user's directory in its place.
#[test]
fn login_home_mode_outside_the_home_checks_from_the_root_down() {
    let o = opts(&["secret=/var/lib/totp/${USER}"]);
    let p = for_login(&o, &name("alice"), Some(alice()), None).expect("placed");
    assert_eq!(p.path, Path::new("/var/lib/totp/alice"));
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    // "/home/alicex" is not inside "/home/alice": components, not string prefixes.
    let o = opts(&["secret=/home/alicex/f"]);
    let p = for_login(&o, &name("alice"), Some(alice()), None).expect("placed");
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
}

#[test]
fn login_store_mode_opens_as_the_owner_and_needs_no_nss_entry() {
    let o = opts(&["user=root", "secret=/var/lib/totp/${USER}"]);
    let p = for_login(&o, &name("ghost"), None, Some(root_account())).expect("placed");
    assert_eq!(p.path, Path::new("/var/lib/totp/ghost"));
    assert_eq!(p.opener, Opener::Owner);
    assert_eq!(p.owners, vec![0]);
    // R7: the whole chain from `/`, as enrolment checks the store it writes into.
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    // Also where the file lies in the user's home, which the owner does not own.
    let o = opts(&["user=root", "secret=/home/${USER}/.f"]);
    let p = for_login(&o, &name("alice"), Some(alice()), Some(root_account())).expect("placed");
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    // No home is available with user=, as in GA.
    let o = opts(&["user=root", "secret=~/.f"]);
    assert_eq!(
        for_login(&o, &name("ghost"), None, Some(root_account())),
        Err(PlacementError::Expand {
            fixed_owner: true,
            err: UserError::HomeUnavailable
        })
    );
}

#[test]
fn no_strict_owner_adds_root_and_only_root_in_both_modes() {
    let o = opts(&["no_strict_owner"]);
    let p = for_login(&o, &name("alice"), Some(alice()), None).expect("placed");
    assert_eq!(p.owners, vec![1000, 0]);
    let svc = Account {
        name: "totp",
        uid: 990,
        dir: Path::new("/var/lib/totp"),
    };
    let o = opts(&[
        "no_strict_owner",
        "user=totp",
        "secret=/var/lib/totp/${USER}",
    ]);
    let p = for_login(&o, &name("alice"), Some(alice()), Some(svc)).expect("placed");
    assert_eq!(p.owners, vec![990, 0]);
    // Root already is the owner: no duplicate.
    let o = opts(&["no_strict_owner", "user=root", "secret=/s/${USER}"]);
    let p = for_login(&o, &name("alice"), None, Some(root_account())).expect("placed");
    assert_eq!(p.owners, vec![0]);
}

#[test]
fn login_allowed_perm_comes_from_the_options() {
    let o = opts(&["allowed_perm=0640"]);
    let p = for_login(&o, &name("alice"), Some(alice()), None).expect("placed");
    assert_eq!(p.allowed_perm, 0o640);
}

#[test]
fn login_refuses_unknown_users_and_relative_homes_in_home_mode() {
    assert_eq!(
        for_login(&opts(&[]), &name("ghost"), None, None),
        Err(PlacementError::UnknownUser)
    );
    let odd = Account {
        dir: Path::new("home/alice"),
        ..alice()
    };
    assert!(matches!(
        for_login(&opts(&[]), &name("alice"), Some(odd), None),
        Err(PlacementError::HomeNotAbsolute { .. })
    ));
}

// ---- the CLI

#[test]
fn enrolling_oneself_writes_as_the_caller_into_the_nss_home() {
    let me = Caller {
        uid: 1000,
        euid: 1000,
    };
    let p = for_enrollment(alice(), None, None, me, None).expect("placed");
    assert_eq!(p.path, Path::new("/home/alice/.google_authenticator"));
    assert_eq!(p.dir(), Path::new("/home/alice"));
    assert_eq!(p.file_name(), ".google_authenticator");
    assert_eq!(p.opener, Opener::Caller);
    assert_eq!(p.owners, vec![1000]);
    // The chain a login checks, from the home down: a home others can write would
    // otherwise get a file every login refuses.
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/home/alice")));
    assert!(p.check_dirs_on_create);
    let login = for_login(&opts(&[]), &name("alice"), Some(alice()), None).expect("placed");
    assert_eq!(
        (&p.path, &p.owners, &p.trusted_root),
        (&login.path, &login.owners, &login.trusted_root)
    );
    // Outside the home a login checks from `/` down, and so does the enrolment.
    let p = for_enrollment(alice(), None, Some(Path::new("/srv/totp/alice")), me, None)
        .expect("placed");
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    assert!(p.check_dirs_on_create);
}

#[test]
fn non_root_cannot_enroll_someone_else() {
    let other = Caller {
        uid: 4242,
        euid: 4242,
    };
    assert_eq!(
        for_enrollment(root_account(), Some("root"), None, other, None),
        Err(PlacementError::NotRoot {
            user: "root".into()
        })
    );
}

#[test]
fn root_writes_into_a_home_as_the_user_and_into_a_store_as_root() {
    let p = for_enrollment(alice(), Some("alice"), None, ROOT, None).expect("placed");
    assert_eq!(p.opener, Opener::User);
    assert_eq!(p.owners, vec![1000]);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/home/alice")));
    assert!(p.check_dirs_on_create);

    let store = Path::new("/var/lib/totp/alice");
    let p = for_enrollment(alice(), Some("alice"), Some(store), ROOT, None).expect("placed");
    assert_eq!(p.opener, Opener::Root);
    assert_eq!(p.owners, vec![0]);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    assert!(p.check_dirs_on_create);
}

#[test]
fn a_home_of_slash_is_never_a_home() {
    let svc = Account {
        name: "svc",
        uid: 5,
        dir: Path::new("/"),
    };
    let p =
        for_enrollment(svc, Some("svc"), Some(Path::new("/srv/f")), ROOT, None).expect("placed");
    assert_eq!(p.opener, Opener::Root);
}

#[test]
fn cli_paths_must_be_absolute_without_dotdot_and_name_a_file() {
    let me = Caller {
        uid: 1000,
        euid: 1000,
    };
    let placed = |p: &str| for_enrollment(alice(), None, Some(Path::new(p)), me, None);
    assert_eq!(placed("/srv/../etc/x"), Err(PlacementError::NotNormal));
    assert_eq!(placed("x/y"), Err(PlacementError::NotNormal));
    assert_eq!(placed("/"), Err(PlacementError::NoFileName));
    assert!(placed("/srv/./x").is_ok());
    let homeless = Account {
        dir: Path::new("nowhere"),
        ..alice()
    };
    assert!(matches!(
        for_enrollment(homeless, None, None, me, None),
        Err(PlacementError::HomeNotAbsolute { .. })
    ));
}

#[test]
fn store_files_are_named_after_the_canonical_name() {
    let store = |typed: &str, file: &str| {
        let path = PathBuf::from(format!("/var/lib/totp/{file}"));
        for_enrollment(alice(), Some(typed), Some(&path), ROOT, None)
    };
    let err = store("ALICE", "ALICE").expect_err("alias refused");
    assert!(err.to_string().contains("\"alice\""), "{err}");
    assert!(store("AD\\alice", "AD\\alice").is_err());
    assert!(store("ALICE", "alice").is_ok());
    assert!(store("alice", "alice").is_ok());
    // Only a store file is keyed on the name: a home file is found through the home.
    let home = Path::new("/home/alice/ALICE");
    assert!(for_enrollment(alice(), Some("ALICE"), Some(home), ROOT, None).is_ok());
}

// ---- enrolment through a service's line: the login's owners, carried out by the CLI

fn through(line: &[&str], owner: Option<Account<'static>>, caller: Caller) -> Placement {
    let o = opts(line);
    let line = ServiceLine { opts: &o, owner };
    for_enrollment(alice(), Some("alice"), None, caller, Some(line)).expect("placed")
}

#[test]
fn a_store_line_without_user_gives_root_a_file_for_the_user_to_own() {
    let p = through(&["secret=/var/lib/totp/${USER}"], None, ROOT);
    let login = for_login(
        &opts(&["secret=/var/lib/totp/${USER}"]),
        &name("alice"),
        Some(alice()),
        None,
    )
    .expect("login");
    assert_eq!(p.path, login.path);
    assert_eq!(p.owners, login.owners, "the owners the login accepts");
    assert_eq!(p.opener, Opener::Root);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    assert_eq!(p.new_file_owner(), Some(1000));
    // no_strict_owner lets root own it too; the new file still goes to the user.
    let p = through(
        &["secret=/var/lib/totp/${USER}", "no_strict_owner"],
        None,
        ROOT,
    );
    assert_eq!(
        (p.owners.clone(), p.new_file_owner()),
        (vec![1000, 0], Some(1000))
    );
    // allowed_perm comes from the line.
    let p = through(
        &["secret=/var/lib/totp/${USER}", "allowed_perm=0400"],
        None,
        ROOT,
    );
    assert_eq!(p.allowed_perm, 0o400);
    // The user enrolling themselves writes their own file.
    let me = Caller {
        uid: 1000,
        euid: 1000,
    };
    let p = through(&["secret=/var/lib/totp/${USER}"], None, me);
    assert_eq!((p.opener, p.new_file_owner()), (Opener::Caller, None));
}

#[test]
fn a_store_line_with_user_gives_the_file_to_that_account() {
    let p = through(
        &["user=root", "secret=/var/lib/totp/${USER}"],
        Some(root_account()),
        ROOT,
    );
    assert_eq!(p.path, Path::new("/var/lib/totp/alice"));
    assert_eq!((p.opener, p.owners.clone()), (Opener::Root, vec![0]));
    assert_eq!(p.new_file_owner(), None);
    let gauth = Account {
        name: "gauth",
        uid: 333,
        dir: Path::new("/var/lib/gauth"),
    };
    let p = through(
        &["user=gauth", "secret=/var/lib/totp/${USER}"],
        Some(gauth),
        ROOT,
    );
    assert_eq!((p.opener, p.owners.clone()), (Opener::Owner, vec![333]));
    assert_eq!(p.new_file_owner(), None);
    // alice cannot write a file gauth owns.
    let o = opts(&["user=gauth", "secret=/var/lib/totp/${USER}"]);
    let me = Caller {
        uid: 1000,
        euid: 1000,
    };
    let line = ServiceLine {
        opts: &o,
        owner: Some(gauth),
    };
    assert_eq!(
        for_enrollment(alice(), None, None, me, Some(line)),
        Err(PlacementError::NotRoot {
            user: "gauth".to_owned()
        })
    );
}

#[test]
fn a_home_line_through_a_service_is_written_as_the_user() {
    let p = through(&[], None, ROOT);
    assert_eq!(p.path, Path::new("/home/alice/.google_authenticator"));
    assert_eq!(p.opener, Opener::User);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/home/alice")));
    assert_eq!(p.new_file_owner(), None);
}

// ---- which missing directories show that a user has no file (nullok)

fn per_user(args: &[&str], owner: Option<Account<'_>>) -> PerUserDirs {
    for_login(&opts(args), &name("alice"), Some(alice()), owner)
        .expect("placed")
        .per_user
}

#[test]
fn directories_below_the_home_are_per_user_the_home_and_above_are_not() {
    let d = per_user(&["secret=~/.ssh/google_authenticator"], None);
    assert!(d.contains(Path::new("/home/alice/.ssh")));
    assert!(d.contains(Path::new("/home/alice/a/b")));
    assert!(!d.contains(Path::new("/home/alice")));
    assert!(!d.contains(Path::new("/home")));
    assert!(!d.contains(Path::new("/home/alicex")));
}

#[test]
fn directories_from_the_first_component_naming_the_user_are_per_user() {
    let d = per_user(
        &["secret=/var/unencrypted-home/${USER}/.google_authenticator"],
        None,
    );
    assert!(d.contains(Path::new("/var/unencrypted-home/alice")));
    assert!(d.contains(Path::new("/var/unencrypted-home/alice/sub")));
    // Shared by every user: a store that was never created or did not mount.
    assert!(!d.contains(Path::new("/var/unencrypted-home")));
    assert!(!d.contains(Path::new("/var")));
    assert!(!d.contains(Path::new("/var/unencrypted-home/bob")));
    let d = per_user(&["secret=/srv/totp/u-${USER}-x/s/f"], None);
    assert!(d.contains(Path::new("/srv/totp/u-alice-x/s")));
    assert!(!d.contains(Path::new("/srv/totp")));
}

#[test]
fn a_template_without_the_user_makes_nothing_outside_the_home_per_user() {
    let d = per_user(&["secret=/etc/totp/shared/file"], None);
    assert!(!d.contains(Path::new("/etc/totp/shared")));
    assert!(!d.contains(Path::new("/etc/totp")));
}

#[test]
fn with_user_the_template_decides_and_the_home_is_never_per_user() {
    let owner = root_account();
    let d = per_user(&["secret=/etc/totp/${USER}/f", "user=root"], Some(owner));
    assert!(d.contains(Path::new("/etc/totp/alice")));
    assert!(!d.contains(Path::new("/etc/totp")));
    // A store kept in the homes: the home itself missing may be an unmounted home.
    let d = per_user(&["secret=/home/${USER}/.ga/f", "user=root"], Some(owner));
    assert!(!d.contains(Path::new("/home/alice")));
    assert!(d.contains(Path::new("/home/alice/.ga")));
}

#[test]
fn below_the_home_counts_only_for_a_file_in_the_home() {
    // A login account whose home is /srv, with a store below it that secret= reaches
    // without the home: /srv/totp is every user's, not this one's.
    let srv = Account {
        name: "alice",
        uid: 1000,
        dir: Path::new("/srv"),
    };
    let p = for_login(
        &opts(&["secret=/srv/totp/${USER}/f"]),
        &name("alice"),
        Some(srv),
        None,
    )
    .expect("placed");
    assert!(!p.per_user.contains(Path::new("/srv/totp")));
    assert!(p.per_user.contains(Path::new("/srv/totp/alice")));
    assert!(!p.per_user.contains(Path::new("/srv")));
    // Control: the same home with the file in it.
    let p =
        for_login(&opts(&["secret=~/totp/f"]), &name("alice"), Some(srv), None).expect("placed");
    assert!(p.per_user.contains(Path::new("/srv/totp")));
}

#[test]
fn a_home_of_root_makes_nothing_per_user() {
    let root_home = Account {
        name: "svc",
        uid: 999,
        dir: Path::new("/"),
    };
    let p = for_login(
        &opts(&["secret=~/.ga/f"]),
        &name("svc"),
        Some(root_home),
        None,
    )
    .expect("placed");
    assert!(!p.per_user.contains(Path::new("/.ga")));
    assert!(!p.per_user.contains(Path::new("/etc")));
}

#[test]
fn enrolment_never_counts_a_directory_as_per_user() {
    let p = for_enrollment(alice(), None, None, ROOT, None).expect("placed");
    assert!(!p.per_user.contains(Path::new("/home/alice/.ssh")));
}

/// Through a home line, a `--secret` path is checked as a login would check it there:
/// from the home down in the home, from `/` down outside it (R7), whoever writes it.
#[test]
fn a_secret_path_through_a_home_line_is_checked_from_where_a_login_would() {
    let o = opts(&[]);
    let me = Caller {
        uid: 1000,
        euid: 1000,
    };
    let placed = |path: &str, caller: Caller| {
        let line = ServiceLine {
            opts: &o,
            owner: None,
        };
        for_enrollment(alice(), None, Some(Path::new(path)), caller, Some(line)).expect("placed")
    };
    let p = placed("/srv/totp/alice", me);
    assert_eq!(p.opener, Opener::Caller);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
    let p = placed("/home/alice/.config/ga", me);
    assert_eq!(p.opener, Opener::Caller);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/home/alice")));
    let p = placed("/home/alice/.config/ga", ROOT);
    assert_eq!(p.opener, Opener::User);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/home/alice")));
    let p = placed("/srv/totp/alice", ROOT);
    assert_eq!(p.opener, Opener::Root);
    assert_eq!(p.trusted_root.as_deref(), Some(Path::new("/")));
}
