//! Which accounts `totp-state audit` checks when the name service does not list them
//! all: the names an admin gives (`--user`, `--users-from`), and whether the `passwd`
//! sources of nsswitch.conf are ones `getent passwd` lists in full.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::{Fatal, Stop};

/// Longest line `--users-from` takes: a user name is at most 256 bytes (R8), and a line
/// far longer is no list of names (a binary file, the wrong file); memory stays bounded.
pub const MAX_LINE: usize = 4096;
/// Most lines, comments and blank ones included: input without end (`yes ''`) stops.
pub const MAX_LINES: usize = 1_000_000;
/// Most names one audit takes: each is looked up and its file checked in turn; a larger
/// directory is audited in parts.
pub const MAX_NAMES: usize = 100_000;

/// Exit status for a names file that is not one (as for a usage error).
const EXIT_BAD_LIST: u8 = 2;

/// The accounts `--user` and `--users-from` name, in the order given, each once; `None`
/// when neither is given (the audit lists the name service's accounts).
pub fn requested(users: &[String], from: Option<&Path>) -> Result<Option<Vec<String>>, Stop> {
    if users.is_empty() && from.is_none() {
        return Ok(None);
    }
    let mut names: Vec<String> = users.to_vec();
    if let Some(path) = from {
        let shown = path.display().to_string();
        let read = if path == Path::new("-") {
            names_in(BufReader::new(std::io::stdin().lock()))
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| Fatal(format!("--users-from {shown}: {e}")))?;
            names_in(BufReader::new(file))
        };
        let found = read.map_err(|e| match e {
            ListError::Io(e) => Stop::Fatal(Fatal(format!("--users-from {shown}: {e}"))),
            ListError::Bad(m) => Stop::Status(EXIT_BAD_LIST, format!("--users-from {shown}: {m}")),
        })?;
        // An empty list would pass an audit that checked nobody: a failed pipeline
        // (`ldapsearch` that could not bind) must not read as success.
        if found.is_empty() {
            return Err(Stop::Status(
                EXIT_BAD_LIST,
                format!("--users-from {shown}: no names in it (one a line, # for comments)"),
            ));
        }
        names.extend(found);
    }
    if names.len() > MAX_NAMES {
        return Err(Stop::Status(
            EXIT_BAD_LIST,
            format!("more than {MAX_NAMES} names: audit them in parts"),
        ));
    }
    let mut seen = HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(Some(names))
}

#[derive(Debug)]
enum ListError {
    Io(std::io::Error),
    Bad(String),
}

/// One name a line, surrounding blanks (and a CRLF file's `\r`) trimmed; blank lines and
/// lines whose first non-blank character is `#` skipped. The name is not checked here:
/// one the module refuses is reported by the audit, as an account would be.
fn names_in(mut input: impl BufRead) -> Result<Vec<String>, ListError> {
    let mut names = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        if number > MAX_LINES {
            return Err(ListError::Bad(format!("more than {MAX_LINES} lines")));
        }
        line.clear();
        // One byte past the longest line: a longer one is seen without buffering it.
        let read = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(ListError::Io)?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.len() > MAX_LINE {
            return Err(ListError::Bad(format!(
                "line {number} is longer than {MAX_LINE} bytes: not a list of names"
            )));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| ListError::Bad(format!("line {number} is not UTF-8")))?;
        let name = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if names.len() == MAX_NAMES {
            return Err(ListError::Bad(format!(
                "more than {MAX_NAMES} names: audit them in parts"
            )));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Where the name service's sources are configured; read as the system configuration it
/// is (never a path from the environment).
pub const NSSWITCH: &str = "/etc/nsswitch.conf";
/// More than any nsswitch.conf: the read stays bounded.
const MAX_NSSWITCH: u64 = 1 << 20;

/// `passwd` sources whose accounts `getent passwd` lists in full: local files (`files`,
/// `altfiles`, `compat`, whose `+` entries come from NIS, which enumerates), and
/// systemd's (`systemd`: dynamic and built-in system accounts; `mymachines`: the uid
/// ranges of local containers), which enumerate too and have no one to lock out.
const ENUMERATED: [&str; 5] = ["files", "altfiles", "compat", "systemd", "mymachines"];

/// The sources of every `passwd:` line of an nsswitch.conf, in order; action items
/// (`[NOTFOUND=return]`, with or without blanks inside) and comments left out.
fn passwd_sources(conf: &str) -> Vec<String> {
    let mut sources = Vec::new();
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("");
        let Some((database, rest)) = line.split_once(':') else {
            continue;
        };
        if !database.trim().eq_ignore_ascii_case("passwd") {
            continue;
        }
        let mut in_action = false;
        let mut word = String::new();
        for c in rest.chars().chain([' ']) {
            match c {
                '[' => in_action = true,
                ']' => in_action = false,
                c if c.is_whitespace() || in_action => {}
                c => {
                    word.push(c);
                    continue;
                }
            }
            if !word.is_empty() {
                sources.push(std::mem::take(&mut word));
            }
        }
    }
    sources
}

/// The `passwd` sources in nsswitch.conf that may list fewer accounts than they have
/// (`sss`, `ldap`, `winbind`...). No file, or no `passwd:` line, is glibc's default
/// (`files`): none. `Err`: the file cannot be read.
fn unlisted_sources(path: &Path) -> Result<Vec<String>, String> {
    let mut conf = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => f
            .take(MAX_NSSWITCH)
            .read_to_end(&mut conf)
            .map_err(|e| e.to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut found: Vec<String> = passwd_sources(&String::from_utf8_lossy(&conf))
        .into_iter()
        .filter(|s| !ENUMERATED.iter().any(|e| s.eq_ignore_ascii_case(e)))
        .collect();
    found.dedup();
    Ok(found)
}

/// The warning an audit of the listed accounts prints when the name service may not
/// list them all: SSSD (`enumerate = false` by default), most LDAP and AD setups answer
/// a lookup by name and list nothing, so their accounts, the ones a migration would lock
/// out, would pass unseen. `None` when every source lists its accounts.
pub fn incomplete_listing_warning() -> Option<String> {
    let why = match unlisted_sources(Path::new(NSSWITCH)) {
        Ok(s) if s.is_empty() => return None,
        Ok(s) => format!("the passwd line of {NSSWITCH} names {}", s.join(", ")),
        Err(e) => format!("{NSSWITCH} cannot be read ({e})"),
    };
    Some(format!(
        "warning: {why}: a directory service (SSSD, LDAP, AD) does not list its accounts \
         unless set to enumerate them, so this audit covers only the accounts the name \
         service listed; audit directory users by name with --user NAME or --users-from \
         FILE (one name a line, - for standard input; for example from \
         getent group staff | cut -d: -f4 | tr , '\\n', or the uid values of an ldapsearch)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Result<Vec<String>, String> {
        names_in(text.as_bytes()).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn a_names_file_skips_comments_and_blank_lines() {
        assert_eq!(
            names("# staff\n\n  alice \t\r\nbob\n   # bob's deputy\ncarol").as_deref(),
            Ok(&["alice".to_owned(), "bob".to_owned(), "carol".to_owned()][..])
        );
        assert_eq!(names("").as_deref(), Ok(&[][..]));
    }

    #[test]
    fn a_names_file_is_bounded() {
        let long = format!("alice\n{}\n", "x".repeat(MAX_LINE + 1));
        assert!(names(&long).is_err_and(|e| e.contains("line 2 is longer")));
        // Control: a line of exactly the bound is a name.
        let at_bound = format!("{}\n", "x".repeat(MAX_LINE));
        assert_eq!(names(&at_bound).map(|n| n.len()), Ok(1));
        let many = "a\n".repeat(MAX_NAMES + 1);
        assert!(names(&many).is_err_and(|e| e.contains("more than 100000 names")));
        assert_eq!(
            names(&"a\n".repeat(MAX_NAMES)).map(|n| n.len()),
            Ok(MAX_NAMES)
        );
        let blank = "\n".repeat(MAX_LINES + 1);
        assert!(names(&blank).is_err_and(|e| e.contains("lines")));
        assert!(names_in(&b"alice\n\xff\n"[..]).is_err());
    }

    #[test]
    fn passwd_sources_skip_actions_and_comments() {
        let conf = "# passwd: ldap\npasswd:  files [NOTFOUND=return] sss systemd # x\n\
                    group: files winbind\nshadow: files ldap\n  passwd:[ !UNAVAIL = return ]winbind\n\
                    passwd_compat: nis\n";
        assert_eq!(passwd_sources(conf), ["files", "sss", "systemd", "winbind"]);
        assert!(passwd_sources("hosts: files dns\n").is_empty());
    }

    #[test]
    fn only_sources_that_may_not_enumerate_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let conf = dir.path().join("nsswitch.conf");
        let sources = |text: &str| {
            std::fs::write(&conf, text).expect("write");
            unlisted_sources(&conf)
        };
        assert_eq!(sources("passwd: files systemd\n"), Ok(Vec::new()));
        assert_eq!(sources("passwd: compat\ngroup: sss\n"), Ok(Vec::new()));
        assert_eq!(sources("passwd: files sss\n"), Ok(vec!["sss".to_owned()]));
        assert_eq!(
            sources("passwd: files ldap [NOTFOUND=return] SSS\n"),
            Ok(vec!["ldap".to_owned(), "SSS".to_owned()])
        );
        assert_eq!(unlisted_sources(&dir.path().join("none")), Ok(Vec::new()));
    }
}
