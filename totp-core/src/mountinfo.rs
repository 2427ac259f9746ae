//! The kernel's list of the mounts a process sees, `/proc/self/mountinfo`, and which
//! exports of this host's NFS server ([`crate::nfs_etab`]) cover a file's mount, for
//! `shared_file=auto`. Deciding from this list alone means no export path is ever
//! looked at: an export on a hung file system (a re-exported NFS mount whose server is
//! down, FUSE, an autofs point) or below a directory the user cannot search costs a
//! login nothing.
//!
//! A line: `ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - TYPE SOURCE
//! SUPER-OPTIONS`, space-separated, with every space, tab, newline and `\` of a path
//! written as `\` and three octal digits. A line of any other shape is an error, never
//! skipped: a mount left out could be the one that answers, and the caller errs toward
//! "exported".

use std::fmt;

use crate::nfs_etab::Export;
use crate::user::MAX_PATH_LEN;

/// Longest mount point field taken, written: every byte of the longest path escaped.
const MAX_FIELD_LEN: usize = 4 * MAX_PATH_LEN;

/// One mount of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The mount ID (`statx`'s `stx_mnt_id`).
    pub id: u64,
    /// The ID of the mount it is mounted on (its own for the root of the namespace).
    pub parent: u64,
    /// The file system's device number: the same on every mount of one file system
    /// (bind mounts, Btrfs subvolumes mounted on their own).
    pub major: u32,
    pub minor: u32,
    /// Where it is mounted, unescaped, absolute.
    pub mount_point: Vec<u8>,
}

/// Why a line of the list is not one the kernel writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountinfoError {
    /// Fewer than the six fields before the optional ones, or no ` - ` after them.
    Fields,
    /// An ID or a device number that is not a decimal number.
    Number,
    /// A `\` not followed by three octal digits of a byte.
    BadEscape,
    /// A NUL byte, raw or escaped, which no path holds.
    Nul,
    /// A mount point that is not absolute.
    NotAbsolute,
    /// A mount point longer than `PATH_MAX`.
    TooLong,
}

impl fmt::Display for MountinfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountinfoError::Fields => "not the fields of a mount",
            MountinfoError::Number => "an ID or device number that is not a number",
            MountinfoError::BadEscape => "a backslash not followed by three octal digits of a byte",
            MountinfoError::Nul => "a NUL byte in the mount point",
            MountinfoError::NotAbsolute => "the mount point is not absolute",
            MountinfoError::TooLong => "the mount point is longer than PATH_MAX",
        })
    }
}

/// A [`MountinfoError`] and the line (from 1) it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: MountinfoError,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// Why a field's octal escapes cannot be undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnescapeError {
    BadEscape,
    Nul,
}

/// `field` with every `\` and three octal digits (`\040`) made the byte they write, as
/// the kernel's mount list and `exportfs` both write paths. A NUL is refused.
pub(crate) fn unescape_octal(field: &[u8]) -> Result<Vec<u8>, UnescapeError> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&b, after)) = rest.split_first() {
        let byte = match b {
            0 => return Err(UnescapeError::Nul),
            b'\\' => {
                let [d0, d1, d2, ..] = *after else {
                    return Err(UnescapeError::BadEscape);
                };
                let value = [d0, d1, d2].iter().try_fold(0u32, |acc, &d| match d {
                    b'0'..=b'7' => Ok(acc * 8 + u32::from(d - b'0')),
                    _ => Err(UnescapeError::BadEscape),
                })?;
                rest = &after[3..];
                match u8::try_from(value) {
                    Ok(0) => return Err(UnescapeError::Nul),
                    Ok(v) => v,
                    Err(_) => return Err(UnescapeError::BadEscape),
                }
            }
            b => {
                rest = after;
                b
            }
        };
        out.push(byte);
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(field: &[u8]) -> Result<T, MountinfoError> {
    // `from_str` alone would take a leading `+`.
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return Err(MountinfoError::Number);
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(MountinfoError::Number)
}

/// One line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Mount, MountinfoError> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    // ID, parent, device, root, mount point, options; then optional fields up to `-`,
    // which the file system type follows.
    let separator = fields
        .iter()
        .skip(6)
        .position(|f| *f == b"-")
        .map(|i| i + 6)
        .ok_or(MountinfoError::Fields)?;
    if fields.len() < separator + 2 {
        return Err(MountinfoError::Fields);
    }
    let id = number(fields[0])?;
    let parent = number(fields[1])?;
    let (major, minor) = fields[2]
        .iter()
        .position(|&b| b == b':')
        .map(|c| (&fields[2][..c], &fields[2][c + 1..]))
        .ok_or(MountinfoError::Number)?;
    let (major, minor) = (number(major)?, number(minor)?);
    let field = fields[4];
    if field.len() > MAX_FIELD_LEN {
        return Err(MountinfoError::TooLong);
    }
    let mount_point = unescape_octal(field).map_err(|e| match e {
        UnescapeError::BadEscape => MountinfoError::BadEscape,
        UnescapeError::Nul => MountinfoError::Nul,
    })?;
    if mount_point.first() != Some(&b'/') {
        return Err(MountinfoError::NotAbsolute);
    }
    if mount_point.len() >= MAX_PATH_LEN {
        return Err(MountinfoError::TooLong);
    }
    Ok(Mount {
        id,
        parent,
        major,
        minor,
        mount_point,
    })
}

/// Every mount of the list `contents`, in its order. Empty lines are skipped; the first
/// line that is not a mount is the error.
pub fn parse(contents: &[u8]) -> Result<Vec<Mount>, LineError> {
    contents
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| parse_line(line).map_err(|error| LineError { line: i + 1, error }))
        .collect()
}

/// The non-empty components of an absolute path.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// Whether `path` is `dir` or lies below it, component by component (`/srv/a` is not
/// below `/srv/ab`); neither is resolved.
fn is_within(path: &[u8], dir: &[u8]) -> bool {
    let mut p = components(path);
    components(dir).all(|d| p.next() == Some(d))
}

/// The mount mounted last on `parent` at `point`, and the ones mounted on it there in
/// turn: the one a path walk ends up on.
fn topmost<'a>(mounts: &'a [Mount], mut current: &'a Mount, point: &[u8]) -> &'a Mount {
    // A bound: a list whose parent IDs loop never ends the walk otherwise.
    for _ in 0..mounts.len() {
        let Some(next) = mounts.iter().rev().find(|m| {
            m.parent == current.id
                && m.id != current.id
                && components(&m.mount_point).eq(components(point))
        }) else {
            break;
        };
        current = next;
    }
    current
}

/// The mount `path` lies on, as a path walk from the root finds it: for each leading
/// run of components, a mount on the current one there is stepped onto (so a mount
/// hidden below a later one on an ancestor is never taken). Nothing is resolved: a
/// symlink in `path` is taken as a directory (`exportfs` writes resolved paths). `None`
/// only for a list without a mount at `/`.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &[u8]) -> Option<&'a Mount> {
    let is_root = |m: &Mount| components(&m.mount_point).next().is_none();
    // The bottom root: one not mounted on another mount at `/`.
    let bottom = mounts.iter().find(|m| {
        is_root(m)
            && !mounts
                .iter()
                .any(|p| p.id == m.parent && p.id != m.id && is_root(p))
    })?;
    let mut current = topmost(mounts, bottom, b"/");
    let mut prefix: Vec<u8> = Vec::with_capacity(path.len());
    for c in components(path) {
        prefix.push(b'/');
        prefix.extend_from_slice(c);
        current = topmost(mounts, current, &prefix);
    }
    Some(current)
}

/// How the secret file's mount is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMount {
    /// Its mount ID (`statx` with `STATX_MNT_ID`, Linux 5.8 and later).
    Id(u64),
    /// Only its device number (`st_dev`), where the kernel gives no mount ID: every
    /// mount with that number in the list is taken for the file's. A file in a Btrfs
    /// subvolume has a number of its own, which no mount lists.
    Device { major: u32, minor: u32 },
}

/// Why the list cannot answer for the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoverError {
    /// No mount at `/` in the list.
    NoRoot,
    /// The file's mount ID is not in the list (a mount outside this process's root).
    FileMountUnlisted(u64),
}

impl fmt::Display for CoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoverError::NoRoot => f.write_str("no mount at /"),
            CoverError::FileMountUnlisted(id) => {
                write!(f, "the secret file's mount (ID {id}) is not listed")
            }
        }
    }
}

/// Whether `m` is `ancestor` or mounted, through mounts on mounts, on it.
fn descends_from(mounts: &[Mount], m: &Mount, ancestor: &Mount) -> bool {
    let mut current = m;
    for _ in 0..=mounts.len() {
        if current.id == ancestor.id {
            return true;
        }
        match mounts
            .iter()
            .find(|p| p.id == current.parent && p.id != current.id)
        {
            Some(p) => current = p,
            None => return false,
        }
    }
    false
}

/// The first export (of `exports`, from the table) that covers the file on `file`:
///
/// - its path lies on a mount of the file's file system (the same mount, which a Btrfs
///   subvolume below it shares, or another mount with the same device number: a bind
///   mount of it), whether or not the file lies below the path, which errs toward
///   "exported";
/// - or it has `crossmnt` or `nohide`, and the file's mount is mounted below its path
///   (a home on its own mount below an exported `/home`).
pub fn export_covering<'a>(
    mounts: &[Mount],
    exports: &'a [Export],
    file: FileMount,
) -> Result<Option<&'a Export>, CoverError> {
    let file_mounts: Vec<&Mount> = match file {
        FileMount::Id(id) => {
            let m = mounts
                .iter()
                .find(|m| m.id == id)
                .ok_or(CoverError::FileMountUnlisted(id))?;
            vec![m]
        }
        FileMount::Device { major, minor } => mounts
            .iter()
            .filter(|m| m.major == major && m.minor == minor)
            .collect(),
    };
    for e in exports {
        let m = mount_of(mounts, &e.path).ok_or(CoverError::NoRoot)?;
        let covers = file_mounts.iter().any(|f| {
            (f.major, f.minor) == (m.major, m.minor)
                || (e.covers_mounts_below()
                    && is_within(&f.mount_point, &e.path)
                    && descends_from(mounts, f, m))
        });
        if covers {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Whether the kernel NFS server runs, from the contents of `/proc/fs/nfsd/threads`:
/// its number of threads, above 0. `None` for contents that are not a number.
pub fn nfsd_running(threads: &[u8]) -> Option<bool> {
    number::<u64>(threads.trim_ascii()).ok().map(|n| n > 0)
}

#[cfg(test)]
mod tests;
