//! The kernel NFS server's list of current exports, `/var/lib/nfs/etab`, as `exportfs`
//! writes it and `rpc.mountd` serves it: one export per line, the exported path, a tab,
//! then `client(options)`. The path has every blank, control character, `"`, `\` and
//! `#` written as `\` and three octal digits (`\040` a space); other bytes, UTF-8
//! included, are written as they are.
//!
//! The path and the options are taken (`shared_file=auto` asks whether a local file
//! lies on an exported mount, or below an export with `crossmnt`); the client is not
//! parsed. The path is taken as written, never resolved (looking at it could hang a
//! login on a dead export): a relative one, or one with a `.` or `..` component, is an
//! error rather than a walk to the wrong directory. A line that does not have that shape is an error, never skipped: the caller
//! cannot tell what it would have listed, and errs toward "exported".

use std::fmt;

use crate::mountinfo::{UnescapeError, unescape_octal};
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
    /// No `(options)` after the client.
    NoOptions,
    /// A `.` or `..` component, which `exportfs` does not write: walked as written it
    /// would name another directory than the one exported.
    DotComponent,
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
            EtabError::NoOptions => "no (options) after the client",
            EtabError::DotComponent => "a . or .. component in the path",
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

/// One line of the table: an exported path and one client's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// The exported path, unescaped.
    pub path: Vec<u8>,
    /// The options in the parentheses after the client, split at commas, as written
    /// (`exportfs` writes every flag, `nocrossmnt` and `hide` included).
    pub options: Vec<Vec<u8>>,
}

impl Export {
    /// Whether the export serves the mounts below its path too (`crossmnt`, or
    /// `nohide`, which lets a client see a mount below another export).
    pub fn covers_mounts_below(&self) -> bool {
        self.options
            .iter()
            .any(|o| o == b"crossmnt" || o == b"nohide")
    }
}

/// One line (without its newline): the exported path, unescaped, and the options.
pub fn export(line: &[u8]) -> Result<Export, EtabError> {
    let tab = line.iter().position(|&b| b == b'\t');
    let field = &line[..tab.unwrap_or(line.len())];
    // Checked before the tab, so that an overlong line costs no more than its scan.
    if field.len() > MAX_FIELD_LEN {
        return Err(EtabError::TooLong);
    }
    let Some(tab) = tab else {
        return Err(EtabError::NoTab);
    };
    if field
        .iter()
        .any(|&b| b != 0 && (b.is_ascii_control() || b == b' '))
    {
        return Err(EtabError::Unescaped);
    }
    let path = unescape_octal(field).map_err(|e| match e {
        UnescapeError::BadEscape => EtabError::BadEscape,
        UnescapeError::Nul => EtabError::Nul,
    })?;
    if path.first() != Some(&b'/') {
        return Err(EtabError::NotAbsolute);
    }
    if path.len() >= MAX_PATH_LEN {
        return Err(EtabError::TooLong);
    }
    if path.split(|&b| b == b'/').any(|c| c == b"." || c == b"..") {
        return Err(EtabError::DotComponent);
    }
    // `client(options)`: the client may hold no parenthesis, the options no `)`.
    let rest = &line[tab + 1..];
    let options = rest
        .iter()
        .position(|&b| b == b'(')
        .and_then(|open| {
            let inner = &rest[open + 1..];
            inner
                .iter()
                .position(|&b| b == b')')
                .map(|close| &inner[..close])
        })
        .ok_or(EtabError::NoOptions)?;
    let options = options
        .split(|&b| b == b',')
        .filter(|o| !o.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(Export { path, options })
}

/// Every export of the table `contents`, a line each, in its order. Empty lines are
/// skipped; a final line without its newline is taken like the others. The first line
/// that is not an export is the error.
pub fn exports(contents: &[u8]) -> Result<Vec<Export>, LineError> {
    contents
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| export(line).map_err(|error| LineError { line: i + 1, error }))
        .collect()
}

#[cfg(test)]
mod tests;
