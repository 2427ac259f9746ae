//! Whose secret file: the account from NSS (the invoking uid, or `--user`), and
//! the core's placement of its file (`totp_core::placement`), which also decides as
//! whom it is written and which owners and directories are trusted.
//!
//! The default path comes from the NSS home directory, never from `$HOME`: a root
//! shell with an inherited `HOME` must not write another user's file into root's
//! home, nor root's secret into a directory someone else named.

use std::path::{Path, PathBuf};

use totp_core::options::{ModuleOptions, UserSpec};
use totp_core::placement::{self, Account, Caller, Opener, Placement, PlacementError, ServiceLine};
use totp_os::nss::{self, Passwd};
use totp_os::pam_stack::{self, MODULE_FILE};
use totp_os::safefile::FileRules;

use crate::error::Error;

#[derive(Debug)]
pub struct Target {
    /// The canonical NSS entry of the account the file is for.
    pub user: Passwd,
    /// Where the file is, as whom it is written, and what it and its directories
    /// must look like.
    pub placed: Placement,
    /// The `user=` account of the `--service` line, which writes the file when the
    /// placement says [`Opener::Owner`].
    pub owner: Option<Passwd>,
    /// What the run should tell about the placement (whose file it is, a `--secret`
    /// the service does not read).
    pub notes: Vec<String>,
}

/// The PAM service whose `pam_totp` lines the file is placed for (`--service`,
/// `--pam-dir`).
#[derive(Clone, Copy, Debug)]
pub struct Service<'a> {
    pub name: &'a str,
    pub pam_dir: Option<&'a Path>,
}

impl Target {
    /// Absolute path of the secret file.
    pub fn path(&self) -> &Path {
        &self.placed.path
    }

    /// The checks `totp_os::safefile` makes for this placement.
    pub fn rules(&self) -> FileRules {
        FileRules::for_placement_of(&self.placed, &self.user, self.owner.as_ref())
    }

    /// The owner and group a new file is given (root writing a store file the login
    /// requires the user to own), else `None`.
    pub fn new_file_owner(&self) -> Option<(u32, u32)> {
        let uid = self.placed.new_file_owner()?;
        (uid == self.user.uid).then_some((self.user.uid, self.user.gid))
    }
}

/// `--service`'s `pam_totp` lines, each with its `user=` account.
fn service_lines(service: Service<'_>) -> Result<Vec<(ModuleOptions, Option<Passwd>)>, Error> {
    let dir = pam_stack::pam_dir_or_default(service.pam_dir);
    let found = pam_stack::module_options(&dir, service.name)?;
    if found.is_empty() {
        return Err(Error::failed(format!(
            "service \"{}\" in \"{}\" has no auth line for {MODULE_FILE}",
            service.name,
            dir.display()
        )));
    }
    // Such a line reads its secret from the program, never a file here: a file written
    // for it would be enrolled in name only, and its codes would never log in.
    if found.iter().any(|opts| opts.fleet.secret_command.is_some()) {
        return Err(Error::failed(format!(
            "service \"{}\" in \"{}\" reads secrets from secret_command=, not from a file \
             on this host: make the user's file with --print-file and add it to the \
             command's secret source (ENROLLING A FLEET in totp-enroll(1))",
            service.name,
            dir.display()
        )));
    }
    found
        .into_iter()
        .map(|opts| {
            let owner = match &opts.user {
                None => None,
                Some(spec) => {
                    let (found, shown) = match spec {
                        UserSpec::Uid(uid) => (nss::lookup_user_by_uid(*uid), uid.to_string()),
                        UserSpec::Name(n) => {
                            (nss::lookup_user_by_name(n.as_str()), n.as_str().to_owned())
                        }
                    };
                    Some(
                        found
                            .map_err(|e| {
                                Error::failed(format!("cannot look up user={shown}: {e}"))
                            })?
                            .ok_or_else(|| {
                                Error::failed(format!(
                                    "user={shown} of service \"{}\" is no account",
                                    service.name
                                ))
                            })?,
                    )
                }
            };
            Ok((opts, owner))
        })
        .collect()
}

fn account(pw: &Passwd) -> Account<'_> {
    Account {
        name: &pw.name,
        uid: pw.uid,
        dir: &pw.dir,
    }
}

pub fn resolve(
    caller: Caller,
    user: Option<&str>,
    secret: Option<&Path>,
    service: Option<Service<'_>>,
) -> Result<Target, Error> {
    let pw = match user {
        // The account a login with this name reaches, or none (R8): an enrolment for
        // another would never log in, or would write another account's file.
        Some(name) => nss::lookup_login_user(name)
            .map_err(|e| Error::failed(format!("cannot enrol {name:?}: {e}")))?
            .ok_or_else(|| Error::failed(format!("no such user {name:?}")))?,
        None => nss::lookup_user_by_uid(caller.uid)
            .map_err(|e| Error::failed(format!("cannot look up uid {}: {e}", caller.uid)))?
            .ok_or_else(|| {
                Error::failed(format!(
                    "uid {} has no entry in the password database; pass --user",
                    caller.uid
                ))
            })?,
    };
    // Relative to the working directory: the one piece of I/O the placement needs.
    let mut absolute = match secret {
        Some(p) => Some(
            std::path::absolute(p)
                .map_err(|e| Error::failed(format!("cannot resolve \"{}\": {e}", p.display())))?,
        ),
        None => None,
    };
    if let (0, None, Some(path)) = (caller.uid, user, absolute.as_deref()) {
        refuse_another_users_directory(path)?;
    }
    let lines = match service {
        Some(service) => Some(service_lines(service)?),
        None => None,
    };
    let shown = || secret.unwrap_or(Path::new("")).display();
    let to_error = |e: PlacementError| match e {
        PlacementError::NotNormal => Error::usage(format!(
            "secret path \"{}\" must not contain \"..\"",
            shown()
        )),
        PlacementError::NoFileName => {
            Error::usage(format!("secret path \"{}\" does not name a file", shown()))
        }
        PlacementError::HomeNotAbsolute { .. } => Error::failed(format!("{e}; pass -s/--secret")),
        PlacementError::AliasFileName { .. } => Error::usage(e.to_string()),
        e => Error::failed(e.to_string()),
    };
    let place = |line: Option<ServiceLine<'_>>, secret: Option<&Path>| {
        placement::for_enrollment(account(&pw), user, secret, caller, line)
    };
    let reads = |(opts, owner): &(ModuleOptions, Option<Passwd>)| {
        let line = ServiceLine {
            opts,
            owner: owner.as_ref().map(account),
        };
        place(Some(line), None).ok().map(|p| p.path)
    };
    if let (Some(lines), Some(given)) = (&lines, absolute.as_deref()) {
        // The path the service's lines themselves name: a --secret elsewhere is a file no
        // login through the service reads, so an enrolment there would lock the user out
        // (or leave the old secret in use) while it says it was written. Without
        // --service, -s alone still writes any file.
        let read: Vec<PathBuf> = lines.iter().filter_map(reads).collect();
        match read.iter().find(|r| same_entry(given, r)) {
            // Another spelling of that file (`./x`, `a/../x`, through a symbolic link to
            // a directory, a symlinked working directory): from here on it is the
            // service's own spelling, placed and checked exactly as logins reach it.
            Some(r) => absolute = Some(r.clone()),
            None => {
                return Err(Error::usage(format!(
                    "service \"{}\" reads {}, not \"{}\": a secret written there is never \
                     read by its logins; nothing was written (drop -s to write the file the \
                     service reads, or drop --service to write this one)",
                    service.map_or("", |s| s.name),
                    if read.is_empty() {
                        "no file for this user".to_owned()
                    } else {
                        read.iter()
                            .map(|r| format!("\"{}\"", r.display()))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    },
                    given.display()
                )));
            }
        }
    }
    // A line before the first that reads the -s file is met first by every login, and
    // it hands the login on only when it skips the code: the -s file may then be one its
    // logins never reach (the sudo example's home file once the store file exists), and
    // a user told to use the new code would be refused.
    let mut notes = Vec::new();
    // What `totp-enroll check` and `totp-state audit` say of the same stack: a login
    // that another line lets through before the code line is never asked for the code
    // enrolled here (RHEL's `auth include system-auth` with `sufficient pam_unix`).
    if let Some(s) = service {
        let dir = pam_stack::pam_dir_or_default(s.pam_dir);
        if let Ok((modules, others)) = pam_stack::auth_stack(&dir, s.name) {
            for w in pam_stack::bypass_warnings(&modules, &others) {
                notes.push(format!("warning: {w}\n"));
            }
        }
    }
    if let (Some(all), Some(given)) = (&lines, absolute.as_deref()) {
        for (opts, owner) in all
            .iter()
            .take_while(|l| reads(l).as_deref() != Some(given))
        {
            let line = ServiceLine {
                opts,
                owner: owner.as_ref().map(account),
            };
            let Ok(first) = place(Some(line), None) else {
                continue;
            };
            // Looked up only in a store root owns: never a stat as root where the user
            // could point it elsewhere (R4).
            let exists =
                first.opener == Opener::Root && std::fs::symlink_metadata(&first.path).is_ok();
            let why = match (exists, opts.nullok) {
                (true, _) => ", which exists",
                (false, false) => ", without nullok",
                (false, true) => continue,
            };
            notes.push(format!(
                "note: service \"{}\" reads \"{}\" first{why}: its logins are asked for that \
                 file's code and reach \"{}\" only where that line skips it (a skip rule, or \
                 nullok without that file); enroll \"{}\" to change the code they ask for\n",
                service.map_or("", |s| s.name),
                first.path.display(),
                given.display(),
                first.path.display()
            ));
        }
    }
    // A service may read two files: the sudo, sudo-i and su examples check the
    // root-owned store first and fall back to the home file while users move over. With
    // -s naming one of them, the lines that read that file decide how it is written.
    let lines = match (lines, absolute.as_deref()) {
        (Some(all), Some(given)) if all.iter().any(|l| reads(l).as_deref() == Some(given)) => Some(
            all.into_iter()
                .filter(|l| reads(l).as_deref() == Some(given))
                .collect::<Vec<_>>(),
        ),
        (lines, _) => lines,
    };
    // Every pam_totp line left reads the file: they must agree on it.
    let mut placed: Option<Placement> = None;
    for line in lines.iter().flatten() {
        let (opts, owner) = line;
        let line = ServiceLine {
            opts,
            owner: owner.as_ref().map(account),
        };
        let this = place(Some(line), absolute.as_deref()).map_err(to_error)?;
        if placed.as_ref().is_some_and(|p| *p != this) {
            let files: Vec<String> = lines
                .iter()
                .flatten()
                .filter_map(reads)
                .map(|p| format!("\"{}\"", p.display()))
                .collect();
            let name = service.map_or("", |s| s.name);
            return Err(match absolute.as_deref() {
                Some(given) => Error::usage(format!(
                    "service \"{name}\" reads {}, not \"{}\": a secret written there is \
                     never read by its logins; nothing was written",
                    files.join(" or "),
                    given.display()
                )),
                None => Error::failed(format!(
                    "the {MODULE_FILE} lines of service \"{name}\" read different secret \
                     files ({}); name the one to write with -s/--secret",
                    files.join(", ")
                )),
            });
        }
        placed = Some(this);
    }
    let placed = match placed {
        Some(placed) => placed,
        None => place(None, absolute.as_deref()).map_err(to_error)?,
    };
    if lines.is_none() && placed.opener == Opener::Root && pw.uid != 0 {
        notes.push(format!(
            "note: \"{}\" is written owned by root, as a {MODULE_FILE} line with \
             user=root reads it; for a line without user=, which needs the file owned by \
             {}, pass --service NAME\n",
            placed.path.display(),
            pw.name
        ));
    }
    let owner = match placed.opener {
        Opener::Owner => lines.as_ref().and_then(|l| {
            l.iter()
                .find_map(|(_, o)| o.as_ref().filter(|o| placed.owners.contains(&o.uid)))
                .cloned()
        }),
        _ => None,
    };
    Ok(Target {
        user: pw,
        placed,
        owner,
        notes,
    })
}

/// Whether `given` names the directory entry `read` names: the same final name in the
/// same directory, the directories compared by device and inode (each path's
/// directory part resolved as the kernel resolves it, `..` and symbolic links
/// included), so the file need not exist yet. The final component is never followed:
/// a symbolic link named `given` pointing at `read` is another entry, which the write
/// would replace, not the file the service reads.
fn same_entry(given: &Path, read: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if given == read {
        return true;
    }
    let (Some(given_dir), Some(given_name)) = (given.parent(), given.file_name()) else {
        return false;
    };
    let (Some(read_dir), Some(read_name)) = (read.parent(), read.file_name()) else {
        return false;
    };
    if given_name != read_name {
        return false;
    }
    match (std::fs::metadata(given_dir), std::fs::metadata(read_dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Root with `-s` into a directory another account owns (GA's habit, `sudo
/// google-authenticator -s /home/alice/.google_authenticator`) would write a root-owned
/// file the module refuses in alice's home. Refuse and name `--user`, which writes the
/// file as alice. (Not a security check: `--user` and the module decide that.)
fn refuse_another_users_directory(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let owner = nss::lookup_user_by_uid(meta.uid())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", meta.uid()), |p| p.name);
    Err(Error::usage(format!(
        "\"{}\" belongs to {owner}: root writing it would leave a root-owned file the \
         module refuses; run totp-enroll --user {owner} (it writes the file as {owner})",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use totp_core::placement::{DEFAULT_FILE_NAME, Opener};

    use super::*;

    fn me() -> Caller {
        crate::host::caller()
    }

    #[test]
    fn default_path_is_the_nss_home_not_the_environment() {
        let t = resolve(me(), None, None, None).expect("current user resolves");
        assert_eq!(t.path(), t.user.dir.join(DEFAULT_FILE_NAME));
        assert_eq!(t.placed.opener, Opener::Caller);
    }

    #[test]
    fn relative_secret_paths_become_absolute_and_dotdot_is_refused() {
        let t = resolve(me(), None, Some(Path::new("x/y")), None).expect("ok");
        assert!(t.path().is_absolute() && t.path().ends_with("x/y"));
        assert_eq!(t.placed.file_name(), "y");
        let err = resolve(me(), None, Some(Path::new("/srv/../etc/x")), None).unwrap_err();
        assert!(err.to_string().contains("\"/srv/../etc/x\""), "{err}");
        assert!(resolve(me(), None, Some(Path::new("/")), None).is_err());
    }

    #[test]
    fn unknown_user_is_an_error() {
        let err = resolve(me(), Some("no-such-user-totp-enroll"), None, None).unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }

    #[test]
    fn non_root_cannot_enroll_someone_else() {
        let caller = Caller {
            uid: 4242,
            euid: 4242,
        };
        let err = resolve(caller, Some("root"), None, None).unwrap_err();
        assert!(err.to_string().contains("only root"), "{err}");
    }

    #[test]
    fn root_for_another_user_picks_home_or_store_mode() {
        let root = Caller { uid: 0, euid: 0 };
        let Ok(Some(nobody)) = nss::lookup_user_by_name("nobody") else {
            // Every Debian system has it; a skip in CI would hide a regression.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "needs a user \"nobody\", and CI=true forbids skipping"
            );
            eprintln!("note: no user \"nobody\"; skipping");
            return;
        };
        let home = resolve(
            root,
            Some("nobody"),
            Some(&nobody.dir.join(DEFAULT_FILE_NAME)),
            None,
        )
        .expect("ok");
        if nobody.dir.is_absolute() && nobody.dir != Path::new("/") {
            assert_eq!(home.placed.opener, Opener::User);
        }
        let store = resolve(
            root,
            Some("nobody"),
            Some(Path::new("/var/lib/x/nobody")),
            None,
        )
        .expect("ok");
        assert_eq!(store.placed.opener, Opener::Root);
        assert_eq!(store.rules().allowed_owners, vec![0]);
    }
}
