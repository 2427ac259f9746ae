//! The normal user the primary rows log in as (issue 23): root authenticating as root
//! skips the group lookup and the credential switch, so it says little about a real
//! login.
//!
//! The host's account database is not touched: inside the benchmark's private mount
//! namespace, `/etc` is shadowed (`sandbox::private_accounts`) by one whose `passwd`
//! and `group` are copies that add one user (own private group, uid in the 60000s). The user's home sits
//! in the scratch directory, owned by the user, mode 0700, below root-owned directories
//! that nobody else can write and everybody can traverse (what the module's chain check
//! and the user's own traversal need).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The benchmark user's name, uid and gid (its private group has the same id).
pub const NAME: &str = "pambench";
pub const UID: u32 = 60_123;
/// A name no account has (the "unknown user" rows); [`install`] checks that.
pub const UNKNOWN: &str = "pambenchnobody";

/// Where the normal user's files are.
pub struct NormalUser {
    pub home: PathBuf,
}

fn chmod(p: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

/// Adds `line` to a copy of the database file `db`, refusing when the name or the id
/// is taken already (the figures would then be some other account's) or when
/// [`UNKNOWN`] is there.
fn extended(db: &str, line: &str) -> Result<String, String> {
    let text = fs::read_to_string(db).map_err(|e| format!("read {db}: {e}"))?;
    let id = UID.to_string();
    for l in text.lines() {
        let mut f = l.split(':');
        let name = f.next().unwrap_or("");
        let num = f.nth(1).unwrap_or("");
        if name == UNKNOWN {
            return Err(format!(
                "{db} has {UNKNOWN}, the name the unknown-user rows need unknown"
            ));
        }
        if name == NAME || num == id {
            return Err(format!(
                "{db} already has {NAME} or id {UID}: pick other values in bench/src/user.rs"
            ));
        }
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    Ok(out)
}

/// Installs the user in this process's mount namespace (the caller has entered one)
/// and creates its home under `scratch`. `scratch` and its parent become 0711: root's,
/// traversable, not listable.
pub fn install(scratch: &Path) -> Result<NormalUser, String> {
    let home_root = scratch.join("home");
    let home = home_root.join(NAME);
    let passwd = extended(
        "/etc/passwd",
        &format!(
            "{NAME}:x:{UID}:{UID}:pam-bench:{}:/usr/sbin/nologin",
            home.display()
        ),
    )?;
    let group = extended("/etc/group", &format!("{NAME}:x:{UID}:"))?;
    crate::sandbox::private_accounts(&passwd, &group)?;
    if let Some(parent) = scratch.parent() {
        chmod(parent, 0o711)?;
    }
    chmod(scratch, 0o711)?;
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&home_root)
        .map_err(|e| format!("create {}: {e}", home_root.display()))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&home)
        .map_err(|e| format!("create {}: {e}", home.display()))?;
    std::os::unix::fs::chown(&home, Some(UID), Some(UID))
        .map_err(|e| format!("chown {}: {e}", home.display()))?;
    // The module must see the user through NSS exactly as a login would.
    match totp_os::nss::lookup_user_by_name(NAME) {
        Ok(Some(pw)) if pw.uid == UID && pw.dir == home => Ok(NormalUser { home }),
        other => Err(format!(
            "{NAME} not visible through NSS after the bind mounts ({other:?}); is nscd caching passwd?"
        )),
    }
}
