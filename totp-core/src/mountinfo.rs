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
//!
//! An export's path is compared with the mount points as written in the table, never
//! resolved. The kernel exports the directory the path resolves to, so a path through
//! a symlink (`/export` a link to `/srv`) is walked as if the link were a directory,
//! and ends on the mount the link lies on rather than the one exported: a home on that
//! other mount is then taken for not exported. Telling a link from a directory needs a
//! look at the path, which is what this decision avoids: a host exporting through a
//! link needs the resolved path in its exports, or `shared_file=yes`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
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
    /// The directory of the file system it shows, unescaped (`/` for the whole file
    /// system; a bind mount's source directory, a Btrfs subvolume's path).
    pub root: Vec<u8>,
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
    /// A root or mount point longer than `PATH_MAX`.
    TooLong,
}

impl fmt::Display for MountinfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountinfoError::Fields => "not the fields of a mount",
            MountinfoError::Number => "an ID or device number that is not a number",
            MountinfoError::BadEscape => "a backslash not followed by three octal digits of a byte",
            MountinfoError::Nul => "a NUL byte in the root or mount point",
            MountinfoError::NotAbsolute => "the mount point is not absolute",
            MountinfoError::TooLong => "the root or mount point is longer than PATH_MAX",
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

/// A path field, unescaped and at most `PATH_MAX` long.
fn path_field(field: &[u8]) -> Result<Vec<u8>, MountinfoError> {
    if field.len() > MAX_FIELD_LEN {
        return Err(MountinfoError::TooLong);
    }
    let path = unescape_octal(field).map_err(|e| match e {
        UnescapeError::BadEscape => MountinfoError::BadEscape,
        UnescapeError::Nul => MountinfoError::Nul,
    })?;
    if path.len() >= MAX_PATH_LEN {
        return Err(MountinfoError::TooLong);
    }
    Ok(path)
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
    // The root need not be absolute (`net:[…]` for a namespace file bound somewhere).
    let root = path_field(fields[3])?;
    let mount_point = path_field(fields[4])?;
    if mount_point.first() != Some(&b'/') {
        return Err(MountinfoError::NotAbsolute);
    }
    Ok(Mount {
        id,
        parent,
        major,
        minor,
        root,
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

/// The non-empty components of a path.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// `path` spelled one way only (`/a/b`, `/` for the root), so that equal paths are
/// equal keys whatever slashes the list or the table doubled or left at the end.
fn normalized(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for c in components(path) {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Whether `path` is `dir` or lies below it, component by component (`/srv/a` is not
/// below `/srv/ab`); neither is resolved.
fn is_within(path: &[u8], dir: &[u8]) -> bool {
    let mut p = components(path);
    components(dir).all(|d| p.next() == Some(d))
}

/// Whether two mounts of one file system show a common part of it: one's root lies
/// within the other's. A mount whose root is outside the other's subtree shows none of
/// the files that other mount shows, since a secret file has one link only.
fn roots_overlap(a: &Mount, b: &Mount) -> bool {
    is_within(&a.root, &b.root) || is_within(&b.root, &a.root)
}

/// The list, indexed once so that each question costs lookups rather than a scan.
struct Index<'a> {
    mounts: &'a [Mount],
    /// Position of each ID (the first, should the list repeat one).
    by_id: HashMap<u64, usize>,
    /// The mount a walk steps onto from the mount `.0` at the point `.1` (normalized):
    /// the last one mounted there.
    on: HashMap<(u64, Vec<u8>), usize>,
    /// The most components any mount point has: no prefix of a path longer than that
    /// can be a mount point.
    depth: usize,
    /// The bottom root, where a walk starts.
    bottom: Option<usize>,
}

impl<'a> Index<'a> {
    fn new(mounts: &'a [Mount]) -> Index<'a> {
        let mut by_id = HashMap::with_capacity(mounts.len());
        let mut on = HashMap::with_capacity(mounts.len());
        let mut depth = 0;
        for (i, m) in mounts.iter().enumerate() {
            by_id.entry(m.id).or_insert(i);
            // A mount listed as on itself (the root of a namespace) is stepped onto by
            // no walk; later ones at a place are on top of earlier ones.
            if m.parent != m.id {
                on.insert((m.parent, normalized(&m.mount_point)), i);
            }
            depth = depth.max(components(&m.mount_point).count());
        }
        let is_root = |m: &Mount| components(&m.mount_point).next().is_none();
        // The bottom root: one at `/` not mounted on another mount at `/`.
        let bottom = mounts.iter().position(|m| {
            is_root(m)
                && !by_id
                    .get(&m.parent)
                    .is_some_and(|&p| mounts[p].id != m.id && is_root(&mounts[p]))
        });
        Index {
            mounts,
            by_id,
            on,
            depth,
            bottom,
        }
    }

    fn get(&self, id: u64) -> Option<&'a Mount> {
        self.by_id.get(&id).map(|&i| &self.mounts[i])
    }

    /// The mount mounted last on `current` at `point` (normalized), and the ones
    /// mounted on it there in turn: the one a path walk ends up on.
    fn topmost(&self, mut current: usize, point: &[u8]) -> usize {
        // A bound: a list whose parent IDs loop never ends the walk otherwise.
        for _ in 0..self.mounts.len() {
            let key = (self.mounts[current].id, point.to_vec());
            match self.on.get(&key) {
                Some(&next) if self.mounts[next].id != self.mounts[current].id => current = next,
                _ => break,
            }
        }
        current
    }

    /// See [`mount_of`].
    fn mount_of(&self, path: &[u8]) -> Option<&'a Mount> {
        let mut current = self.topmost(self.bottom?, b"/");
        let mut prefix: Vec<u8> = Vec::with_capacity(path.len());
        for c in components(path).take(self.depth) {
            prefix.push(b'/');
            prefix.extend_from_slice(c);
            current = self.topmost(current, &prefix);
        }
        Some(&self.mounts[current])
    }

    /// The IDs of `m` and of every mount it is mounted on, down to a root. A mount
    /// other than a root whose parent is not listed, or a chain that loops, is an
    /// error: what it is mounted on, and so which exports lie above it, is unknown.
    fn ancestors(&self, m: &'a Mount) -> Result<HashSet<u64>, CoverError> {
        let mut seen = HashSet::new();
        let mut current = m;
        loop {
            if !seen.insert(current.id) {
                return Err(CoverError::BrokenChain(m.id));
            }
            if current.parent == current.id {
                return Ok(seen);
            }
            match self.get(current.parent) {
                Some(p) => current = p,
                None if components(&current.mount_point).next().is_none() => return Ok(seen),
                None => return Err(CoverError::BrokenChain(m.id)),
            }
        }
    }
}

/// The mount `path` lies on, as a path walk from the root finds it: for each leading
/// run of components, a mount on the current one there is stepped onto (so a mount
/// hidden below a later one on an ancestor is never taken). Nothing is resolved: a `.`,
/// `..` or symlink component is taken as a directory of that name. `None` only for a
/// list without a mount at `/`.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &[u8]) -> Option<&'a Mount> {
    Index::new(mounts).mount_of(path)
}

/// How the secret file's mount is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMount {
    /// Its mount ID (`statx` with `STATX_MNT_ID`, Linux 5.8 and later).
    Id(u64),
    /// Only its device number (`st_dev`), where the kernel gives no mount ID: every
    /// mount with that number in the list is taken for the file's. A file in a Btrfs
    /// subvolume has a number of its own, which no mount lists: that is an error.
    Device { major: u32, minor: u32 },
}

/// Why the list cannot answer for the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoverError {
    /// No mount at `/` in the list.
    NoRoot,
    /// The file's mount ID is not in the list (a mount outside this process's root).
    FileMountUnlisted(u64),
    /// No mount of the list has the file's device number (a Btrfs subvolume's own).
    DeviceUnlisted { major: u32, minor: u32 },
    /// The mount with this ID is not a root, and what it is mounted on is not listed,
    /// or its parents loop.
    BrokenChain(u64),
}

impl fmt::Display for CoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoverError::NoRoot => f.write_str("no mount at /"),
            CoverError::FileMountUnlisted(id) => {
                write!(f, "the secret file's mount (ID {id}) is not listed")
            }
            CoverError::DeviceUnlisted { major, minor } => write!(
                f,
                "no mount has the secret file's device number {major}:{minor} (a Btrfs \
                 subvolume's own), and this kernel gives no mount ID"
            ),
            CoverError::BrokenChain(id) => write!(
                f,
                "what the mount with ID {id} is mounted on is not listed (or its parents loop)"
            ),
        }
    }
}

/// The exports of `exports` once each, by path in the order first listed: the path as
/// first written, and whether any line of it has `crossmnt` or `nohide` (a table lists
/// an export once for each client).
fn distinct(exports: &[Export]) -> Vec<(&[u8], bool)> {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::with_capacity(exports.len());
    let mut out: Vec<(&[u8], bool)> = Vec::new();
    for e in exports {
        let below = e.covers_mounts_below();
        match seen.entry(normalized(&e.path)) {
            Entry::Occupied(i) => out[*i.get()].1 |= below,
            Entry::Vacant(v) => {
                v.insert(out.len());
                out.push((&e.path, below));
            }
        }
    }
    out
}

/// The path of the first export (of `exports`, from the table) that covers the file on
/// `file`. The file's file system is its mount and every other mount of the list with
/// the same device number whose root overlaps its mount's (a bind mount of it, or of a
/// directory above or below the file's; with only a device number, every mount with
/// it). An export covers the file when:
///
/// - its path lies on one of those mounts, whether or not the file lies below the path,
///   which errs toward "exported";
/// - or it has `crossmnt` or `nohide`, and one of those mounts is mounted, through
///   mounts on mounts, on the export's mount below its path (a home on its own mount
///   below an exported `/home`, or a bind mount of the home's file system there).
///
/// Each distinct path is walked once, with the list indexed once.
pub fn export_covering<'a>(
    mounts: &[Mount],
    exports: &'a [Export],
    file: FileMount,
) -> Result<Option<&'a [u8]>, CoverError> {
    let index = Index::new(mounts);
    let files: Vec<&Mount> = match file {
        FileMount::Id(id) => {
            let own = index.get(id).ok_or(CoverError::FileMountUnlisted(id))?;
            mounts
                .iter()
                .filter(|m| (m.major, m.minor) == (own.major, own.minor) && roots_overlap(m, own))
                .collect()
        }
        FileMount::Device { major, minor } => mounts
            .iter()
            .filter(|m| (m.major, m.minor) == (major, minor))
            .collect(),
    };
    // (With a mount ID, its own mount is always there.)
    if files.is_empty()
        && let FileMount::Device { major, minor } = file
    {
        return Err(CoverError::DeviceUnlisted { major, minor });
    }
    let ids: HashSet<u64> = files.iter().map(|m| m.id).collect();
    let mut chains: HashMap<u64, Result<HashSet<u64>, CoverError>> = HashMap::new();
    // An export that cannot be decided makes the answer unknown only when no other
    // export covers the file.
    let mut doubt = None;
    for (path, below) in distinct(exports) {
        let on = index.mount_of(path).ok_or(CoverError::NoRoot)?;
        if ids.contains(&on.id) {
            return Ok(Some(path));
        }
        if !below {
            continue;
        }
        for f in files.iter().filter(|f| is_within(&f.mount_point, path)) {
            match chains.entry(f.id).or_insert_with(|| index.ancestors(f)) {
                Ok(chain) if chain.contains(&on.id) => return Ok(Some(path)),
                Ok(_) => {}
                Err(e) => doubt = doubt.or(Some(*e)),
            }
        }
    }
    doubt.map_or(Ok(None), Err)
}

/// Whether the kernel NFS server runs, from the contents of `/proc/fs/nfsd/threads`:
/// its number of threads, above 0. `None` for contents that are not a number.
pub fn nfsd_running(threads: &[u8]) -> Option<bool> {
    number::<u64>(threads.trim_ascii()).ok().map(|n| n > 0)
}

#[cfg(test)]
mod tests;
