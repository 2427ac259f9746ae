//! The kernel NFS server's list of current exports, `/var/lib/nfs/etab`, as `exportfs`
//! writes it and `rpc.mountd` serves it: one export per line, the exported path, a tab,
//! then `client(options)`. The path has every blank, control character, `"`, `\` and
//! `#` written as `\` and three octal digits (`\040` a space); other bytes, UTF-8
//! included, are written as they are.
//!
//! Only the paths are needed (`shared_file=auto` asks whether a local file lies on an
//! exported file system), so the rest of a line is not parsed. A line that does not
//! have that shape is an error, never skipped: the caller cannot tell what it would
//! have listed, and errs toward "exported".

use std::fmt;

use crate::user::MAX_PATH_LEN;

/// Longest path field taken, written: every byte of the longest path escaped.
const MAX_FIELD_LEN: usize = 4 * MAX_PATH_LEN;

/// Why a line of the export table is not one `exportfs` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtabError {
    /// No tab after the path.
    NoTab,
    /// The path does not start with `/`.
    NotAbsolute,
    /// A `\` not followed by three octal digits of a byte (`\000` to `\377`).
    BadEscape,
    /// A NUL byte, raw or escaped (`\000`), which no path holds.
    Nul,
    /// A blank or control byte left unescaped in the path, which `exportfs` escapes.
    Unescaped,
    /// A path longer than `PATH_MAX`.
    TooLong,
}

impl fmt::Display for EtabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EtabError::NoTab => "no tab after the path",
            EtabError::NotAbsolute => "the path is not absolute",
            EtabError::BadEscape => "a backslash not followed by three octal digits of a byte",
            EtabError::Nul => "a NUL byte in the path",
            EtabError::Unescaped => "a blank or control character left unescaped in the path",
            EtabError::TooLong => "the path is longer than PATH_MAX",
        })
    }
}

/// An [`EtabError`] and the line (from 1) it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: EtabError,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// The exported path of one line (without its newline), unescaped.
pub fn export_path(line: &[u8]) -> Result<Vec<u8>, EtabError> {
    let tab = line.iter().position(|&b| b == b'\t');
    let field = &line[..tab.unwrap_or(line.len())];
    // Checked before the tab, so that an overlong line costs no more than its scan.
    if field.len() > MAX_FIELD_LEN {
        return Err(EtabError::TooLong);
    }
    if tab.is_none() {
        return Err(EtabError::NoTab);
    }
    let mut path = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&b, after)) = rest.split_first() {
        let byte = match b {
            0 => return Err(EtabError::Nul),
            b'\\' => {
                let [d0, d1, d2, ..] = *after else {
                    return Err(EtabError::BadEscape);
                };
                let value = [d0, d1, d2].iter().try_fold(0u32, |acc, &d| match d {
                    b'0'..=b'7' => Ok(acc * 8 + u32::from(d - b'0')),
                    _ => Err(EtabError::BadEscape),
                })?;
                rest = &after[3..];
                match u8::try_from(value) {
                    Ok(0) => return Err(EtabError::Nul),
                    Ok(v) => v,
                    Err(_) => return Err(EtabError::BadEscape),
                }
            }
            b if b.is_ascii_control() || b == b' ' => return Err(EtabError::Unescaped),
            b => {
                rest = after;
                b
            }
        };
        path.push(byte);
    }
    if path.first() != Some(&b'/') {
        return Err(EtabError::NotAbsolute);
    }
    if path.len() >= MAX_PATH_LEN {
        return Err(EtabError::TooLong);
    }
    Ok(path)
}

/// Every exported path of the table `contents`, in its order, a path listed for several
/// clients on consecutive lines once. Empty lines are skipped; a final line without its
/// newline is taken like the others. The first line that is not an export is the error.
pub fn export_paths(contents: &[u8]) -> Result<Vec<Vec<u8>>, LineError> {
    let mut paths: Vec<Vec<u8>> = Vec::new();
    for (i, line) in contents.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let path = export_path(line).map_err(|error| LineError { line: i + 1, error })?;
        if paths.last() != Some(&path) {
            paths.push(path);
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests;
