//! The admin's caps on a secret file, as the module will apply them.
//!
//! The module cuts a file's `WINDOW_SIZE` to `max_window=` and its `TIME_SKEW` to
//! `max_time_skew=` (defaults in `totp_core::policy`). The CLI must not write what
//! the module would cut, so it reads the same setting from the same place: with
//! `--service NAME` the `auth` lines of that PAM service that load `pam_totp.so`
//! (following `@include`, `include` and `substack`), parsed by the module's own
//! option parser; without it, the module's defaults. Several `pam_totp` lines give
//! the tightest cap, which every one of them accepts.
//!
//! Nothing here is a security boundary: the module enforces its caps whatever the
//! file says. This only keeps the CLI from promising what a login will not honour.

use std::path::{Path, PathBuf};

use totp_core::options::ModuleOptions;
use totp_core::policy::{DEFAULT_MAX_TIME_SKEW, DEFAULT_MAX_WINDOW};

use crate::error::Error;

const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
/// A PAM service file larger than this is not a configuration file.
const MAX_SERVICE_FILE: u64 = 256 * 1024;
/// Include chains deeper than this are a loop (libpam stops far earlier in practice).
const MAX_INCLUDE_DEPTH: usize = 8;
/// The module's file name in a stack line (by name or by absolute path).
const MODULE_FILE: &str = "pam_totp.so";
/// The name cargo builds it under, for stacks that load it from a build tree.
const BUILT_MODULE_FILE: &str = "libpam_totp.so";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max_window: u32,
    pub max_time_skew: u32,
    /// Where the caps come from, for messages.
    pub source: String,
}

impl Caps {
    pub fn module_defaults() -> Caps {
        Caps {
            max_window: DEFAULT_MAX_WINDOW,
            max_time_skew: DEFAULT_MAX_TIME_SKEW,
            source: "the module's defaults; pass --service NAME to use a PAM service's options"
                .into(),
        }
    }
}

/// The caps for `service` (read from `pam_dir`, default /etc/pam.d), or the
/// module's defaults when no service is named.
pub fn load(service: Option<&str>, pam_dir: Option<&Path>) -> Result<Caps, Error> {
    let Some(service) = service else {
        return Ok(Caps::module_defaults());
    };
    let dir = pam_dir.map_or_else(|| PathBuf::from(DEFAULT_PAM_DIR), Path::to_path_buf);
    let mut found: Vec<ModuleOptions> = Vec::new();
    collect(&dir, service, 0, &mut found)?;
    let where_ = format!("service \"{service}\" in \"{}\"", dir.display());
    if found.is_empty() {
        return Err(Error::failed(format!(
            "{where_} has no auth line for {MODULE_FILE}"
        )));
    }
    Ok(Caps {
        max_window: found.iter().map(|o| o.max_window).min().unwrap_or(1),
        max_time_skew: found.iter().map(|o| o.max_time_skew).min().unwrap_or(0),
        source: format!("the max_window/max_time_skew options of {where_}"),
    })
}

fn collect(
    dir: &Path,
    service: &str,
    depth: usize,
    out: &mut Vec<ModuleOptions>,
) -> Result<(), Error> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(Error::failed(format!(
            "PAM service \"{service}\": includes nested more than {MAX_INCLUDE_DEPTH} deep"
        )));
    }
    let path = service_path(dir, service)?;
    let text = read_bounded(&path)?;
    for line in logical_lines(&text) {
        match parse_line(&line) {
            Line::Include(name) => collect(dir, &name, depth + 1, out)?,
            Line::Module { auth: true, args } => {
                let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let opts = ModuleOptions::parse(&raw).map_err(|e| {
                    Error::failed(format!(
                        "\"{}\": the {MODULE_FILE} line has an option the module refuses \
                         (so every login fails): {e}",
                        path.display()
                    ))
                })?;
                out.push(opts);
            }
            Line::Module { auth: false, .. } | Line::Other => {}
        }
    }
    Ok(())
}

/// A service name is a file name in the PAM directory, nothing more.
fn service_path(dir: &Path, service: &str) -> Result<PathBuf, Error> {
    if service.is_empty() || service.contains('/') || service == "." || service == ".." {
        return Err(Error::usage(format!(
            "\"{service}\" is not a PAM service name"
        )));
    }
    Ok(dir.join(service))
}

fn read_bounded(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::failed(format!("cannot read \"{}\": {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_SERVICE_FILE)
        .read_to_string(&mut text)
        .map_err(|e| Error::failed(format!("cannot read \"{}\": {e}", path.display())))?;
    Ok(text)
}

/// Lines without comments, with backslash-newline continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("");
        if let Some(cont) = line.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        out.push(std::mem::take(&mut current));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `@include NAME`, or `TYPE include|substack NAME`.
    Include(String),
    /// A `pam_totp.so` line; `auth` says whether it is of type auth.
    Module {
        auth: bool,
        args: Vec<String>,
    },
    Other,
}

/// Splits a stack line the way libpam does: `[...]` groups (control values and
/// arguments) are one token even with blanks inside.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        if c == '[' {
            chars.next();
            for c in chars.by_ref() {
                if c == ']' {
                    break;
                }
                tok.push(c);
            }
            out.push(format!("[{tok}]"));
            continue;
        }
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            tok.push(c);
            chars.next();
        }
        out.push(tok);
    }
    out
}

fn parse_line(line: &str) -> Line {
    let toks = tokens(line);
    match toks.as_slice() {
        [inc, name, ..] if inc == "@include" => Line::Include(name.clone()),
        [kind, control, module, args @ ..] => {
            let kind = kind.trim_start_matches('-');
            if control == "include" || control == "substack" {
                return if kind == "auth" {
                    Line::Include(module.clone())
                } else {
                    Line::Other
                };
            }
            let name = module.rsplit('/').next().unwrap_or(module);
            if name != MODULE_FILE && name != BUILT_MODULE_FILE {
                return Line::Other;
            }
            // libpam passes a bracketed argument without its brackets.
            let args = args
                .iter()
                .map(|a| {
                    a.strip_prefix('[')
                        .and_then(|a| a.strip_suffix(']'))
                        .unwrap_or(a)
                        .to_owned()
                })
                .collect();
            Line::Module {
                auth: kind == "auth",
                args,
            }
        }
        _ => Line::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn no_service_means_the_module_defaults() {
        let c = load(None, None).expect("defaults");
        assert_eq!(
            (c.max_window, c.max_time_skew),
            (DEFAULT_MAX_WINDOW, DEFAULT_MAX_TIME_SKEW)
        );
    }

    #[test]
    fn options_come_from_the_services_pam_totp_lines_through_includes() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "common",
            "auth [success=1 default=ignore] pam_unix.so nullok\n\
             auth required /lib/security/pam_totp.so max_time_skew=40 \\\n  max_window=9\n",
        );
        write(
            dir.path(),
            "svc",
            "# max_time_skew=1 in a comment does not count\n@include common\n\
             account include common\n-auth optional pam_totp.so max_time_skew=60\n\
             session required pam_totp.so max_window=1\n",
        );
        let c = load(Some("svc"), Some(dir.path())).expect("caps");
        assert_eq!((c.max_window, c.max_time_skew), (9, 40));
        write(dir.path(), "sub", "auth substack svc\n");
        let c = load(Some("sub"), Some(dir.path())).expect("caps");
        assert_eq!((c.max_window, c.max_time_skew), (9, 40));
    }

    #[test]
    fn a_service_without_the_module_or_with_a_bad_option_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), "plain", "auth required pam_unix.so\n");
        assert!(load(Some("plain"), Some(dir.path())).is_err());
        write(
            dir.path(),
            "bad",
            "auth required pam_totp.so max_window=0\n",
        );
        let e = load(Some("bad"), Some(dir.path())).unwrap_err();
        assert!(e.to_string().contains("max_window"), "{e}");
        assert!(load(Some("../etc/passwd"), Some(dir.path())).is_err());
        assert!(load(Some("missing"), Some(dir.path())).is_err());
        write(dir.path(), "loop", "@include loop\n");
        assert!(load(Some("loop"), Some(dir.path())).is_err());
    }

    #[test]
    fn bracketed_tokens_stay_whole() {
        assert_eq!(
            tokens("auth [success=ok default=die] pam_totp.so [authtok_prompt=Code: ]"),
            [
                "auth",
                "[success=ok default=die]",
                "pam_totp.so",
                "[authtok_prompt=Code: ]"
            ]
        );
        assert_eq!(
            parse_line("auth [success=ok default=die] pam_totp.so [authtok_prompt=Code: ]"),
            Line::Module {
                auth: true,
                args: vec!["authtok_prompt=Code: ".into()]
            }
        );
    }
}
