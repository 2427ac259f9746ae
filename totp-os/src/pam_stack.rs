//! The `pam_totp` lines of a PAM service, read the way libpam reads the stack: the
//! lines of type `auth` that load `pam_totp.so` (by name or path), following
//! `@include`, `include` and `substack`, each parsed by the module's own option parser.
//! The CLIs use it so `--service NAME` means what the module on that service does.
//!
//! Nothing here is a security boundary: the module parses its own arguments whatever
//! this finds. It only keeps the tools from describing a different configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use totp_core::options::ModuleOptions;

/// Where libpam looks for service files.
pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
/// A PAM service file larger than this is not a configuration file.
const MAX_SERVICE_FILE: u64 = 256 * 1024;
/// Include chains deeper than this are a loop (libpam stops far earlier in practice).
const MAX_INCLUDE_DEPTH: usize = 8;
/// The module's file name in a stack line (by name or by absolute path).
pub const MODULE_FILE: &str = "pam_totp.so";
/// The name cargo builds it under, for stacks that load it from a build tree.
const BUILT_MODULE_FILE: &str = "libpam_totp.so";

/// Why a service's module lines could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum StackError {
    /// The name is not a service name (a path, `.`, empty).
    BadName(String),
    /// The file is missing, unreadable, loops, or has an option the module refuses.
    Unusable(String),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::BadName(m) | StackError::Unusable(m) => f.write_str(m),
        }
    }
}

/// The directory `pam_dir` names, or libpam's.
pub fn pam_dir_or_default(pam_dir: Option<&Path>) -> PathBuf {
    pam_dir.map_or_else(|| PathBuf::from(DEFAULT_PAM_DIR), Path::to_path_buf)
}

/// One line of a stack that loads the module.
#[derive(Debug)]
pub struct ModuleLine {
    /// The line's type without a leading `-`: `auth`, `account`, `session`, `password`.
    pub kind: String,
    /// The control value as written: `required`, `optional`, `[success=ok default=die]`.
    pub control: String,
    /// The module's options, parsed by its own parser (`auth` lines only: on other lines
    /// the module fails whatever they say).
    pub options: Option<ModuleOptions>,
}

/// The options of every `auth` line of `service` (in `dir`) that loads the module, in
/// stack order. Empty when the service exists but never loads it.
pub fn module_options(dir: &Path, service: &str) -> Result<Vec<ModuleOptions>, StackError> {
    Ok(module_lines(dir, service)?
        .into_iter()
        .filter_map(|l| l.options)
        .collect())
}

/// Every line of `service` (in `dir`) that loads the module, of any type, in stack order.
pub fn module_lines(dir: &Path, service: &str) -> Result<Vec<ModuleLine>, StackError> {
    let mut found = Vec::new();
    collect(dir, service, 0, false, &mut found)?;
    Ok(found)
}

/// Whether `service` has its own file in `dir`; libpam uses `other` when it has not.
pub fn service_exists(dir: &Path, service: &str) -> Result<bool, StackError> {
    let path = service_path(dir, service)?;
    Ok(std::fs::symlink_metadata(path).is_ok())
}

/// `auth_only`: the file is read for an `auth include` or `auth substack`, which take
/// only its auth lines.
fn collect(
    dir: &Path,
    service: &str,
    depth: usize,
    auth_only: bool,
    out: &mut Vec<ModuleLine>,
) -> Result<(), StackError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(StackError::Unusable(format!(
            "PAM service \"{service}\": includes nested more than {MAX_INCLUDE_DEPTH} deep"
        )));
    }
    // libpam reads an include named by an absolute path from that path
    // (`@include /etc/pam.d/common-auth`); a service named on the command line, and any
    // other include, is a file of the directory.
    let path = if depth > 0 && service.starts_with('/') {
        PathBuf::from(service)
    } else {
        service_path(dir, service)?
    };
    let text = read_bounded(&path)?;
    for line in logical_lines(&text) {
        match parse_line(&line) {
            Line::Include { name, auth } => collect(dir, &name, depth + 1, auth_only || auth, out)?,
            Line::Module {
                kind,
                control,
                args,
            } if kind == "auth" => {
                let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let opts = ModuleOptions::parse(&raw).map_err(|e| {
                    StackError::Unusable(format!(
                        "\"{}\": the {MODULE_FILE} line has an option the module refuses \
                         (so every login fails): {e}",
                        path.display()
                    ))
                })?;
                out.push(ModuleLine {
                    kind,
                    control,
                    options: Some(opts),
                });
            }
            Line::Module { kind, control, .. } if !auth_only => out.push(ModuleLine {
                kind,
                control,
                options: None,
            }),
            Line::Module { .. } | Line::Other => {}
        }
    }
    Ok(())
}

/// A service name is a file name in the PAM directory, nothing more.
fn service_path(dir: &Path, service: &str) -> Result<PathBuf, StackError> {
    if service.is_empty() || service.contains('/') || service == "." || service == ".." {
        return Err(StackError::BadName(format!(
            "\"{service}\" is not a PAM service name"
        )));
    }
    Ok(dir.join(service))
}

fn read_bounded(path: &Path) -> Result<String, StackError> {
    use std::io::Read;
    let unusable = |e: std::io::Error| {
        StackError::Unusable(format!("cannot read \"{}\": {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(unusable)?;
    let mut text = String::new();
    file.take(MAX_SERVICE_FILE)
        .read_to_string(&mut text)
        .map_err(unusable)?;
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
    /// `@include NAME` (every type), or `auth include|substack NAME` (`auth`).
    Include {
        name: String,
        auth: bool,
    },
    /// A `pam_totp.so` line of type `kind` (without a leading `-`).
    Module {
        kind: String,
        control: String,
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
        [inc, name, ..] if inc == "@include" => Line::Include {
            name: name.clone(),
            auth: false,
        },
        [kind, control, module, args @ ..] => {
            let kind = kind.trim_start_matches('-');
            if control == "include" || control == "substack" {
                return if kind == "auth" {
                    Line::Include {
                        name: module.clone(),
                        auth: true,
                    }
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
                kind: kind.to_owned(),
                control: control.clone(),
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
    fn module_lines_are_found_through_includes() {
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
        let found = module_options(dir.path(), "svc").expect("lines");
        let caps: Vec<_> = found
            .iter()
            .map(|o| (o.max_window, o.max_time_skew))
            .collect();
        assert_eq!(caps.len(), 2, "{caps:?}");
        assert_eq!(caps[0], (9, 40));
        assert_eq!(caps[1].1, 60);
        assert!(service_exists(dir.path(), "svc").expect("name"));
        assert!(!service_exists(dir.path(), "typo").expect("name"));
        assert!(service_exists(dir.path(), "../x").is_err());
    }

    #[test]
    fn an_include_by_absolute_path_is_read_from_that_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let elsewhere = tempfile::tempdir().expect("tmp");
        write(
            elsewhere.path(),
            "common-auth",
            "auth required pam_totp.so max_window=7\n",
        );
        write(
            dir.path(),
            "svc",
            &format!(
                "@include {}\nauth substack {}\n",
                elsewhere.path().join("common-auth").display(),
                elsewhere.path().join("common-auth").display()
            ),
        );
        let found = module_options(dir.path(), "svc").expect("lines");
        assert_eq!(
            found.iter().map(|o| o.max_window).collect::<Vec<_>>(),
            [7, 7]
        );
        // Only an include: the service itself is a name in the directory.
        let absolute = elsewhere.path().join("common-auth");
        assert!(matches!(
            module_options(dir.path(), &absolute.to_string_lossy()),
            Err(StackError::BadName(_))
        ));
    }

    #[test]
    fn lines_of_every_type_keep_their_control_value() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "common",
            "auth optional pam_totp.so\naccount required pam_totp.so\n",
        );
        write(
            dir.path(),
            "svc",
            "auth include nested\n@include common\nsession [default=ignore] pam_totp.so\n",
        );
        write(dir.path(), "nested", "@include common\n");
        let found: Vec<(String, String, bool)> = module_lines(dir.path(), "svc")
            .expect("lines")
            .into_iter()
            .map(|l| (l.kind, l.control, l.options.is_some()))
            .collect();
        let row = |k: &str, c: &str, o: bool| (k.to_owned(), c.to_owned(), o);
        assert_eq!(
            found,
            [
                // `auth include` takes the auth line only, also through a nested
                // `@include`; a plain `@include` takes both.
                row("auth", "optional", true),
                row("auth", "optional", true),
                row("account", "required", false),
                row("session", "[default=ignore]", false),
            ]
        );
    }

    #[test]
    fn unusable_services_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "bad",
            "auth required pam_totp.so max_window=0\n",
        );
        let e = module_options(dir.path(), "bad").unwrap_err();
        assert!(e.to_string().contains("max_window"), "{e}");
        assert!(matches!(
            module_options(dir.path(), "../etc/passwd"),
            Err(StackError::BadName(_))
        ));
        assert!(module_options(dir.path(), "missing").is_err());
        write(dir.path(), "loop", "@include loop\n");
        assert!(module_options(dir.path(), "loop").is_err());
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
                kind: "auth".into(),
                control: "[success=ok default=die]".into(),
                args: vec!["authtok_prompt=Code: ".into()]
            }
        );
    }
}
