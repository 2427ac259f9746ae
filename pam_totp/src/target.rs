//! Who is logging in, which file holds their secret, and as whom it is opened.

use std::path::{Path, PathBuf};

use totp_core::options::{ModuleOptions, UserSpec};
use totp_core::user::{UserName, expand_secret_spec};
use totp_os::creds::Identity;
use totp_os::nss::Passwd;
use totp_os::safefile::FileRules;

use crate::error::{AuthError, Denial};
use crate::system::System;

/// Everything needed to read and update one user's secret file.
#[derive(Debug)]
pub struct Target {
    /// The validated `PAM_USER`.
    pub name: UserName,
    /// The NSS entry of the user logging in (absent with `user=` for users NSS does not
    /// know, which GA allows: the name only selects a file).
    pub pw: Option<Passwd>,
    /// The expanded `secret=` path.
    pub path: PathBuf,
    /// The identity the file is opened and rewritten as.
    pub identity: Identity,
    /// Owner, mode and directory rules for the file.
    pub rules: FileRules,
}

/// A user for whom no code can ever succeed. They are still prompted (no oracle).
#[derive(Debug)]
pub struct Doomed {
    pub denial: Denial,
    /// For the log only.
    pub why: String,
    /// The validated name, when there is one, for log lines.
    pub name: Option<UserName>,
}

fn doomed(denial: Denial, why: impl Into<String>, name: Option<&UserName>) -> Doomed {
    Doomed {
        denial,
        why: why.into(),
        name: name.cloned(),
    }
}

/// Resolves the target. `Err` is a module-wide fault; `Ok(Err(_))` a doomed user.
pub fn resolve(
    opts: &ModuleOptions,
    sys: &dyn System,
    raw_user: Option<&[u8]>,
) -> Result<Result<Target, Doomed>, AuthError> {
    // A `user=` naming no account is a configuration error for everybody, decided before
    // the PAM name is looked at, so the answer never depends on the name.
    let owner = match &opts.user {
        Some(spec) => Some(resolve_owner(sys, spec)?),
        None => None,
    };
    let Some(raw) = raw_user else {
        return Ok(Err(doomed(Denial::InvalidUserName, "no user name", None)));
    };
    let name = match UserName::parse(raw) {
        Ok(n) => n,
        Err(e) => {
            return Ok(Err(doomed(
                Denial::InvalidUserName,
                format!("invalid user name: {e}"),
                None,
            )));
        }
    };
    match owner {
        Some((owner, identity)) => Ok(resolve_fixed_owner(opts, sys, name, owner, identity)),
        None => Ok(resolve_own_file(opts, sys, name)),
    }
}

/// The `user=` account and its identity.
fn resolve_owner(sys: &dyn System, spec: &UserSpec) -> Result<(Passwd, Identity), AuthError> {
    let owner = match spec {
        UserSpec::Uid(uid) => sys.user_by_uid(*uid),
        UserSpec::Name(n) => sys.user_by_name(n.as_str()),
    };
    let owner = match owner {
        Ok(Some(pw)) => pw,
        Ok(None) => return Err(AuthError::Config("user= names no known account".into())),
        Err(e) => return Err(AuthError::Nss(format!("user= lookup: {e:?}"))),
    };
    let identity = sys
        .identity(&owner)
        .map_err(|e| AuthError::Nss(format!("groups of the user= account: {e:?}")))?;
    Ok((owner, identity))
}

/// GA's `user=`: every file is owned by one fixed account (a root-owned store, or a
/// service account); the PAM name only selects the file, after validation.
fn resolve_fixed_owner(
    opts: &ModuleOptions,
    sys: &dyn System,
    name: UserName,
    owner: Passwd,
    identity: Identity,
) -> Result<Target, Doomed> {
    // The logging-in user is looked up only for group and access rules; GA does not
    // require an NSS entry here, and neither do we.
    let pw = sys.user_by_name(name.as_str()).ok().flatten();
    let path = match expand_secret_spec(&opts.secret, &name, None) {
        Ok(p) => PathBuf::from(p),
        Err(e) => {
            return Err(doomed(
                Denial::NoSecret,
                format!("secret= cannot be expanded with user=: {e}"),
                Some(&name),
            ));
        }
    };
    let mut owners = vec![owner.uid];
    if opts.no_strict_owner && owner.uid != 0 {
        owners.push(0);
    }
    let rules = file_rules(opts, owners, None);
    Ok(Target {
        name,
        pw,
        path,
        identity,
        rules,
    })
}

/// The default: the user's own file, opened with the user's credentials.
fn resolve_own_file(
    opts: &ModuleOptions,
    sys: &dyn System,
    name: UserName,
) -> Result<Target, Doomed> {
    let pw = match sys.user_by_name(name.as_str()) {
        Ok(Some(pw)) => pw,
        Ok(None) => return Err(doomed(Denial::UnknownUser, "unknown user", Some(&name))),
        // An NSS outage is treated like an unknown user: prompt, then deny.
        Err(e) => {
            return Err(doomed(
                Denial::UnknownUser,
                format!("name service error: {e:?}"),
                Some(&name),
            ));
        }
    };
    let Some(home) = pw.dir.to_str().filter(|h| h.starts_with('/')) else {
        return Err(doomed(
            Denial::NoSecret,
            "home directory is not an absolute path",
            Some(&name),
        ));
    };
    let home = home.to_owned();
    // ${USER} becomes the canonical NSS name, never the raw PAM string.
    let canonical = match UserName::parse(pw.name.as_bytes()) {
        Ok(n) => n,
        Err(e) => {
            return Err(doomed(
                Denial::InvalidUserName,
                format!("NSS name is unusable: {e}"),
                Some(&name),
            ));
        }
    };
    let path = match expand_secret_spec(&opts.secret, &canonical, Some(&home)) {
        Ok(p) => PathBuf::from(p),
        Err(e) => {
            return Err(doomed(
                Denial::NoSecret,
                format!("secret= cannot be expanded: {e}"),
                Some(&name),
            ));
        }
    };
    let identity = match sys.identity(&pw) {
        Ok(id) => id,
        Err(e) => {
            return Err(doomed(
                Denial::UnknownUser,
                format!("name service error (groups): {e:?}"),
                Some(&name),
            ));
        }
    };
    let mut owners = vec![pw.uid];
    if opts.no_strict_owner && pw.uid != 0 {
        owners.push(0);
    }
    let trusted_root = Path::new(&path)
        .starts_with(&home)
        .then(|| PathBuf::from(&home));
    let rules = file_rules(opts, owners, trusted_root);
    Ok(Target {
        name,
        pw: Some(pw),
        path,
        identity,
        rules,
    })
}

fn file_rules(opts: &ModuleOptions, owners: Vec<u32>, root: Option<PathBuf>) -> FileRules {
    let mut rules = FileRules::new(owners);
    rules.allowed_perm = opts.allowed_perm;
    rules.trusted_root = root;
    rules
}
