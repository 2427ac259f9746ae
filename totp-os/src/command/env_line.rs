//! Which program a `#!/usr/bin/env …` line makes `env` start, worked out as GNU
//! coreutils `env` (and the kernel before it) would: the kernel passes everything after
//! the interpreter as ONE argument, then the script's path; `env` reads options from
//! those (`-S` splits its argument into several), then `NAME=value` assignments, and
//! runs the first word left, found on its `PATH` (the command's fixed one unless the
//! line changes or clears it). Anything this parser does not know is refused: guessing
//! wrong would let an unchecked program decide the answer.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The search path glibc's `execvp` uses when `PATH` is unset (`-i`, `-u PATH`).
const DEFAULT_SEARCH_PATH: &str = "/bin:/usr/bin";

/// The program `env` starts, before the `PATH` search.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EnvRun {
    /// The name as `env` passes it to `execvp` (searched for when it has no `/`).
    pub name: Vec<u8>,
    /// `PATH` in `env`'s environment when it runs the program.
    pub path: Vec<u8>,
    /// Its working directory (`-C`), for relative names and `PATH` entries.
    pub cwd: PathBuf,
}

impl EnvRun {
    /// Where `execvp` looks for the program, in its order.
    pub(super) fn candidates(&self) -> Vec<PathBuf> {
        let name = OsStr::from_bytes(&self.name);
        if self.name.contains(&b'/') {
            return vec![self.cwd.join(name)];
        }
        self.path
            .split(|&b| b == b':')
            .map(|dir| {
                // An empty entry is the working directory.
                self.cwd.join(OsStr::from_bytes(dir)).join(name)
            })
            .collect()
    }
}

/// `env`'s long options (getopt_long takes an unambiguous prefix) and whether each
/// takes an argument (`Some(true)` required, `Some(false)` optional with `=` only).
const LONG: [(&str, Option<bool>); 11] = [
    ("ignore-environment", None),
    ("null", None),
    ("unset", Some(true)),
    ("chdir", Some(true)),
    ("split-string", Some(true)),
    ("debug", None),
    ("default-signal", Some(false)),
    ("ignore-signal", Some(false)),
    ("block-signal", Some(false)),
    ("list-signal-handling", None),
    // `--help` and `--version` print and exit: nothing runs.
    ("help", None),
];

/// The program `env` runs for the `#!` argument `arg` (`None`: the line has none) of the
/// script at `script`, with `command_path` its inherited `PATH`. `Ok(None)`: it runs
/// none (it prints its environment, or fails). `Err`: why the line cannot be followed.
pub(super) fn env_run(
    arg: Option<&[u8]>,
    script: &Path,
    command_path: &str,
) -> Result<Option<EnvRun>, String> {
    let mut argv: Vec<Vec<u8>> = arg.map(<[u8]>::to_vec).into_iter().collect();
    argv.push(script.as_os_str().as_bytes().to_vec());
    // Past the script's path come the command's own arguments (the user name): a line
    // whose program would be one of them is not followed.
    let mut script_at = argv.len() - 1;
    let mut path = Some(command_path.as_bytes().to_vec());
    let mut cwd = PathBuf::from("/");
    let mut i = 0;
    let mut splits = 0;
    let unset = |path: &mut Option<Vec<u8>>, name: &[u8]| {
        if name == b"PATH" {
            *path = None;
        }
    };
    while i < argv.len() {
        let a = argv[i].clone();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        i += 1;
        if let Some(long) = a.strip_prefix(b"--") {
            let (key, value) = match long.iter().position(|&b| b == b'=') {
                Some(p) => (&long[..p], Some(long[p + 1..].to_vec())),
                None => (long, None),
            };
            let exact = LONG.iter().find(|(n, _)| n.as_bytes() == key);
            let prefixed: Vec<_> = LONG
                .iter()
                .filter(|(n, _)| n.as_bytes().starts_with(key))
                .collect();
            let &(name, takes) = match (exact, prefixed.as_slice()) {
                (Some(o), _) => o,
                (None, [o]) => o,
                _ => return Err(format!("unknown option --{}", show(key))),
            };
            let value = match (takes, value) {
                (None, Some(_)) => return Err(format!("--{name} takes no value")),
                (Some(true), None) => {
                    if i >= script_at {
                        return Err(
                            "an option would take the script's path as its value".to_owned()
                        );
                    }
                    let v = argv[i].clone();
                    i += 1;
                    Some(v)
                }
                (_, v) => v,
            };
            match (name, value) {
                ("ignore-environment", _) => path = None,
                ("unset", Some(v)) => unset(&mut path, &v),
                ("chdir", Some(v)) => cwd = cwd.join(OsStr::from_bytes(&v)),
                ("split-string", Some(v)) => {
                    splits += 1;
                    script_at += insert_split(&mut argv, i, &v, splits)?;
                }
                ("help", _) => return Ok(None),
                _ => {}
            }
            continue;
        }
        // A cluster of short options: `-iS bash -e`, `-uPATH`, `-u` `PATH`.
        let mut k = 1;
        while k < a.len() {
            let c = a[k];
            k += 1;
            match c {
                b'i' => path = None,
                b'0' | b'v' => {}
                b'u' | b'C' | b'S' => {
                    let v = if k < a.len() {
                        let v = a[k..].to_vec();
                        k = a.len();
                        v
                    } else {
                        if i >= script_at {
                            return Err(
                                "an option would take the script's path as its value".to_owned()
                            );
                        }
                        let v = argv[i].clone();
                        i += 1;
                        v
                    };
                    match c {
                        b'u' => unset(&mut path, &v),
                        b'C' => cwd = cwd.join(OsStr::from_bytes(&v)),
                        _ => {
                            splits += 1;
                            script_at += insert_split(&mut argv, i, &v, splits)?;
                        }
                    }
                }
                other => {
                    return Err(format!("unknown option -{}", show(&[other])));
                }
            }
        }
    }
    // The obsolete lone `-` also empties the environment.
    if argv.get(i).is_some_and(|a| a == b"-") {
        path = None;
        i += 1;
    }
    while let Some(a) = argv.get(i)
        && a.contains(&b'=')
    {
        if let Some(v) = a.strip_prefix(b"PATH=") {
            path = Some(v.to_vec());
        }
        i += 1;
    }
    if i > script_at {
        return Err("the program it runs would be one of the command's own arguments".to_owned());
    }
    let name = &argv[i];
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some(EnvRun {
        name: name.clone(),
        path: path.unwrap_or_else(|| DEFAULT_SEARCH_PATH.as_bytes().to_vec()),
        cwd,
    }))
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

/// `-S STRING`: its words take its place in `argv`, before what follows it.
/// Returns how many words went in.
fn insert_split(
    argv: &mut Vec<Vec<u8>>,
    at: usize,
    s: &[u8],
    splits: usize,
) -> Result<usize, String> {
    if splits > 1 {
        return Err("more than one -S".to_owned());
    }
    let words = split_string(s)?;
    let n = words.len();
    argv.splice(at..at, words);
    Ok(n)
}

/// `env -S`'s splitting: blanks separate words; single quotes keep everything but `\\`
/// and `\'`; double quotes keep blanks and take the escapes; `#` at a word's start
/// ends the line; `\c` ends it too; `\_` is a blank outside quotes and a space inside
/// double quotes; `${NAME}` is the value in env's environment (only `PATH` is set).
fn split_string(s: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const BLANKS: &[u8] = b" \t\n\x0b\x0c\r";
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < s.len() {
        let c = s[i];
        i += 1;
        match (quote, c) {
            (None, c) if BLANKS.contains(&c) => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            (None, b'#') if word.is_none() => break,
            (None, b'\'' | b'"') => {
                quote = Some(c);
                word.get_or_insert_with(Vec::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some(b'\''), b'\\') if matches!(s.get(i), Some(b'\\' | b'\'')) => {
                word.get_or_insert_with(Vec::new).push(s[i]);
                i += 1;
            }
            (Some(b'\''), c) => word.get_or_insert_with(Vec::new).push(c),
            (_, b'\\') => {
                let e = *s.get(i).ok_or("a backslash at the end")?;
                i += 1;
                let out = match e {
                    b'c' if quote.is_none() => {
                        if let Some(w) = word.take() {
                            words.push(w);
                        }
                        return Ok(words);
                    }
                    b'_' if quote.is_none() => {
                        if let Some(w) = word.take() {
                            words.push(w);
                        }
                        continue;
                    }
                    b'_' => b' ',
                    b'f' => b'\x0c',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => b'\x0b',
                    b'#' | b'$' | b'\\' | b'"' | b'\'' => e,
                    other => return Err(format!("invalid backslash escape \\{}", show(&[other]))),
                };
                word.get_or_insert_with(Vec::new).push(out);
            }
            (_, b'$') => {
                let rest = &s[i..];
                let end = rest
                    .strip_prefix(b"{")
                    .and_then(|r| r.iter().position(|&b| b == b'}'))
                    .ok_or("only ${NAME} is expanded")?;
                let var = &rest[1..=end];
                i += end + 2;
                let w = word.get_or_insert_with(Vec::new);
                if var == b"PATH" {
                    w.extend_from_slice(super::COMMAND_PATH.as_bytes());
                }
            }
            (_, c) => word.get_or_insert_with(Vec::new).push(c),
        }
    }
    if quote.is_some() {
        return Err("an unterminated quote".to_owned());
    }
    if let Some(w) = word.take() {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

    fn run(arg: &str) -> Result<Option<EnvRun>, String> {
        env_run(Some(arg.as_bytes()), Path::new("/etc/cmd"), P)
    }

    fn name(arg: &str) -> (String, String) {
        let r = run(arg).expect("parsed").expect("runs a program");
        (
            String::from_utf8(r.name).expect("utf8"),
            String::from_utf8(r.path).expect("utf8"),
        )
    }

    #[test]
    fn the_kernels_one_argument_is_the_name_unless_split() {
        assert_eq!(name("python3"), ("python3".into(), P.into()));
        // Without -S the blank is part of the name env looks for.
        assert_eq!(name("python3 -u").0, "python3 -u");
        assert_eq!(name("-S bash -e"), ("bash".into(), P.into()));
        assert_eq!(name("-S  bash -e").0, "bash");
        assert_eq!(name("-iS bash").1, DEFAULT_SEARCH_PATH);
        assert_eq!(name("--split-string=bash -e").0, "bash");
        assert_eq!(name("--split=bash -e").0, "bash");
        assert_eq!(
            name("-S -i PATH=/opt/x:/usr/bin python3"),
            ("python3".into(), "/opt/x:/usr/bin".into())
        );
        assert_eq!(name("-S -u PATH python3").1, DEFAULT_SEARCH_PATH);
        assert_eq!(name("-S -uPATH python3").1, DEFAULT_SEARCH_PATH);
        assert_eq!(name("-S -u HOME python3").1, P);
        assert_eq!(name("-S 'my prog' x").0, "my prog");
        assert_eq!(name("-S \"a\\_b\" x").0, "a b");
        assert_eq!(name("-S a\\_b").0, "a");
        assert_eq!(
            name("-S PATH=${PATH}:/opt/bin tool").1,
            format!("{P}:/opt/bin")
        );
        assert_eq!(name("-S -C /opt tool").0, "tool");
        // Options end at the first word that is not one.
        assert_eq!(name("-S perl -w -i").0, "perl");
    }

    #[test]
    fn env_running_the_script_or_nothing() {
        // Only assignments or options: the next word is the script's path.
        assert_eq!(name("FOO=bar").0, "/etc/cmd");
        assert_eq!(name("-i").0, "/etc/cmd");
        assert_eq!(
            env_run(None, Path::new("/etc/cmd"), P)
                .expect("ok")
                .expect("runs")
                .name,
            b"/etc/cmd"
        );
        assert_eq!(run("--help").expect("ok"), None);
    }

    #[test]
    fn lines_that_cannot_be_followed_are_refused() {
        for bad in [
            "-x",
            "--bogus",
            "--ignore",
            "-S 'open",
            "-S $HOME",
            "-S \\q",
            "-u",
            "-S -S a b",
            "-S -u",
        ] {
            assert!(run(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn candidates_follow_execvp() {
        let r = EnvRun {
            name: b"sh".to_vec(),
            path: b"/a::b".to_vec(),
            cwd: PathBuf::from("/c"),
        };
        assert_eq!(
            r.candidates(),
            [PathBuf::from("/a/sh"), "/c/sh".into(), "/c/b/sh".into()]
        );
        let r = EnvRun {
            name: b"x/sh".to_vec(),
            path: b"/a".to_vec(),
            cwd: PathBuf::from("/"),
        };
        assert_eq!(r.candidates(), [PathBuf::from("/x/sh")]);
    }
}
