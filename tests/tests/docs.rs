//! Every module option and every CLI flag is documented in the man pages.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use system_tests::{built, state_tool, workspace};
use totp_core::options::OPTION_NAMES;

/// The man page text with roff escapes for '-' undone, so "\-\-user" reads "--user".
fn man_text(name: &str) -> String {
    let path = workspace().join("man").join(name);
    let raw = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    raw.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
}

/// The names a man page gives its list items: the bold words of the line after each
/// `.TP`, `.TQ` or `.IP` (`.BI secret= spec` gives `secret` and `spec`).
fn man_item_names(man: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = man.lines().collect();
    let mut names = BTreeSet::new();
    for pair in lines.windows(2) {
        let [before, line] = pair else { continue };
        if !(before.starts_with(".TP") || before.starts_with(".TQ") || before.starts_with(".IP")) {
            continue;
        }
        let Some(rest) = [".B ", ".BI ", ".BR "]
            .iter()
            .find_map(|m| line.strip_prefix(m))
        else {
            continue;
        };
        for word in rest.split_whitespace() {
            let word = word.trim_matches(|c| c == '"' || c == ',');
            let name = word.split('=').next().unwrap_or(word);
            if !name.is_empty() {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Each option is an item of the man page's option list, not merely a word somewhere
/// in it (`user`, `debug` or `secret` would be found in any page).
#[test]
fn every_module_option_is_in_pam_totp_8() {
    let man = man_text("pam_totp.8");
    let items = man_item_names(&man);
    let missing: Vec<_> = OPTION_NAMES
        .iter()
        .filter(|o| !items.contains(**o))
        .collect();
    assert!(
        missing.is_empty(),
        "options missing from pam_totp.8: {missing:?}"
    );
}

/// Asserts that the man page `page` (text `man`) names every one of `flags` but the
/// `--help` and `--version` every tool has.
fn all_in_man(flags: &BTreeSet<String>, man: &str, page: &str) {
    // A whole flag: `--user` is not named by `--users-from`.
    let names = |flag: &str| {
        man.match_indices(flag).any(|(at, _)| {
            !man[at + flag.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    };
    let missing: Vec<_> = flags
        .iter()
        .filter(|f| *f != "--help" && *f != "--version" && !names(f))
        .collect();
    assert!(missing.is_empty(), "flags missing from {page}: {missing:?}");
}

/// Long flags as `--help` prints them (for every subcommand too).
fn long_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|w| !w.is_empty())
        .map(|w| format!("--{w}"))
        .collect()
}

fn help_of(args: &[&str]) -> String {
    let out = Command::new(&built().enroll)
        .args(args)
        .output()
        .expect("run totp-enroll");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_cli_flag_is_in_totp_enroll_1() {
    let man = man_text("totp-enroll.1");
    let top = help_of(&["--help"]);
    let mut flags = long_flags(&top);
    // Subcommands listed under "Commands:" have their own flags.
    let mut in_commands = false;
    for line in top.lines() {
        if line.trim_end().ends_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            match line.split_whitespace().next() {
                Some(cmd) if line.starts_with("  ") && cmd != "help" => {
                    flags.extend(long_flags(&help_of(&[cmd, "--help"])));
                }
                _ if line.trim().is_empty() => in_commands = false,
                _ => {}
            }
        }
    }
    assert!(
        flags.len() > 20,
        "expected GA's flags in --help, got {flags:?}"
    );
    all_in_man(&flags, &man, "totp-enroll.1");
}

#[test]
fn every_cli_flag_is_in_totp_state_8() {
    let man = man_text("totp-state.8");
    let mut flags = BTreeSet::new();
    for cmd in ["show", "reset", "audit"] {
        let out = state_tool(&[cmd, "--help"]);
        flags.extend(long_flags(&String::from_utf8_lossy(&out.stdout)));
        assert!(man.contains(cmd), "command {cmd} missing from totp-state.8");
    }
    assert!(flags.contains("--user"), "{flags:?}");
    all_in_man(&flags, &man, "totp-state.8");
}

/// Every man page formats without a single groff warning (`-ww` enables them all), so
/// a stray character or a misused macro cannot reach a reader as garbled text.
#[test]
fn every_man_page_is_groff_clean() {
    let dir = workspace().join("man");
    let mut pages: Vec<_> = fs::read_dir(&dir)
        .expect("man directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    pages.sort();
    assert!(pages.len() >= 3, "man pages: {pages:?}");
    for page in pages {
        let out = Command::new("groff")
            .args(["-ww", "-man", "-Tutf8", "-z"])
            .arg(&page)
            .output()
            .expect("run groff (package groff-base)");
        assert!(out.status.success(), "groff failed on {}", page.display());
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            warnings.trim().is_empty(),
            "groff -ww warns on {}:\n{warnings}",
            page.display()
        );
    }
}

/// The Rust version the README names is the one the RPM spec requires (the only
/// toolchain the suite runs; no older minimum is claimed anywhere).
#[test]
fn the_rpm_spec_requires_the_rust_version_the_readme_names() {
    let readme = fs::read_to_string(workspace().join("README.md")).expect("README");
    let spec = fs::read_to_string(workspace().join("packaging/rpm/pam_totp.spec")).expect("spec");
    let version_after = |text: &str, marker: &str| -> Option<String> {
        let rest = &text[text.find(marker)? + marker.len()..];
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        Some(v.trim_end_matches('.').to_owned()).filter(|v| !v.is_empty())
    };
    let readme_v = version_after(&readme, "Built and tested with Rust ").expect("README version");
    let spec_v = version_after(&spec, "BuildRequires:  rust >= ").expect("spec version");
    assert_eq!(
        readme_v, spec_v,
        "README says Rust {readme_v}, the spec {spec_v}"
    );
}

/// Every `.rs` file of the workspace (sources and tests; not `target/`, not the fuzz
/// crate, whose targets are cited as "fuzz target `name`"), as paths relative to the
/// workspace.
fn workspace_rust_files() -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "fuzz" {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, out);
            } else if name.ends_with(".rs") {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = workspace();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

/// Whether `text` defines a function `name` (at any indentation: tests in `mod tests`
/// and `proptest!` blocks are indented).
fn defines_fn(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("pub ").unwrap_or(l);
        l.strip_prefix("fn ")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with('(') || rest.starts_with('<'))
    })
}

/// Issue 25: the hostile-case tables of SECURITY.md cite tests that exist, each marked
/// with its kind, and every case has a test through libpam, the CLI or an end-to-end
/// script, or says "Partly"/"Not covered".
#[test]
fn security_md_cites_tests_that_exist_with_their_kind() {
    let text = fs::read_to_string(workspace().join("SECURITY.md")).expect("SECURITY.md");
    let start = text
        .find("## Hostile cases and the tests that cover them")
        .expect("hostile-case section");
    let end = start + text[start..].find("\n## ").expect("next section");
    let files = workspace_rust_files();
    let mut problems = Vec::new();
    let mut rows = 0;
    let mut cited = 0;
    for line in text[start..end].lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(id) = cells.first().and_then(|c| c.strip_prefix("| ")) else {
            continue;
        };
        if cells.len() < 3 || !id.starts_with(|c: char| c.is_ascii_uppercase()) || id == "#" {
            continue;
        }
        rows += 1;
        let cover = cells[2..].join(" | ");
        let strong = ["[libpam]", "[CLI]", "[e2e]"]
            .iter()
            .any(|k| cover.contains(k));
        if !strong && !cover.contains("Partly") && !cover.contains("Not covered") {
            problems.push(format!(
                "{id}: no [libpam]/[CLI]/[e2e] test and no \"Partly\""
            ));
        }
        // Backticked spans: `file::test`, or a bare `test` after one of the same file
        // (a test name has at least two underscores; `pam_start` is an identifier).
        let mut last_file: Option<String> = None;
        let parts: Vec<&str> = cover.split('`').collect();
        for (i, span) in parts.iter().enumerate().skip(1).step_by(2) {
            let after = parts.get(i + 1).copied().unwrap_or("");
            let before = parts[i - 1];
            let (file, test) = if let Some((f, t)) = span.split_once("::") {
                last_file = Some(f.to_owned());
                (f.to_owned(), t.to_owned())
            } else if span.matches('_').count() >= 2
                && span
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !before.trim_end().ends_with("fuzz target")
                && !before.trim_end().ends_with("fuzz targets")
                && let Some(f) = &last_file
            {
                (f.clone(), (*span).to_owned())
            } else {
                continue;
            };
            cited += 1;
            if !after.starts_with(" [") {
                problems.push(format!("{id}: `{span}` carries no kind marker"));
            }
            if test.ends_with('*') {
                continue;
            }
            let matches: Vec<&String> = files
                .iter()
                .filter(|p| *p == &file || p.ends_with(&format!("/{file}")))
                .collect();
            let [path] = matches.as_slice() else {
                problems.push(format!("{id}: `{file}` names {} files", matches.len()));
                continue;
            };
            let src = fs::read_to_string(workspace().join(path)).unwrap_or_default();
            if !defines_fn(&src, &test) {
                problems.push(format!("{id}: no test `{test}` in {path}"));
            }
        }
    }
    assert!(
        rows > 100,
        "only {rows} rows found: the table format changed"
    );
    assert!(cited > 200, "only {cited} citations found");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The text between the first `start` and the next `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in the page"));
    let rest = &text[from..];
    let to = rest[start.len()..]
        .find(end)
        .map_or(rest.len(), |i| i + start.len());
    &rest[..to]
}

/// The caps the pages promise are the module's: `totp-enroll resync` without `--service`
/// allows `DEFAULT_MAX_TIME_SKEW` steps (its page once said 3, the default before GA's
/// range was adopted), and every other place that names a default cap says the same.
#[test]
fn the_man_pages_state_the_module_default_caps() {
    use totp_core::policy::{DEFAULT_MAX_TIME_SKEW, DEFAULT_MAX_WINDOW};
    let enroll = man_text("totp-enroll.1");
    let resync = section(&enroll, ".SS \"resync\"", ".SS ");
    let want = format!("default cap ({DEFAULT_MAX_TIME_SKEW} steps)");
    assert!(
        resync.contains(&want),
        "totp-enroll.1, resync --service: expected {want:?} in:\n{resync}"
    );
    let caps = section(&enroll, ".SH \"CAPS SHARED WITH THE MODULE\"", ".SH ");
    let want = format!("(defaults {DEFAULT_MAX_WINDOW} and {DEFAULT_MAX_TIME_SKEW})");
    assert!(caps.contains(&want), "totp-enroll.1: {want:?} in:\n{caps}");
    let window = section(&enroll, "--window-size", ".TP");
    let want = format!("cap ({DEFAULT_MAX_WINDOW} unless");
    assert!(
        window.contains(&want),
        "totp-enroll.1 -w: {want:?} in:\n{window}"
    );

    let module = man_text("pam_totp.8");
    let want = format!("default {DEFAULT_MAX_WINDOW}.");
    let item = section(&module, ".BI max_window= n", ".TP");
    assert!(item.contains(&want), "pam_totp.8: {want:?} in:\n{item}");
    let want = format!("default {DEFAULT_MAX_TIME_SKEW}:");
    let item = section(&module, ".BI max_time_skew= steps", ".TP");
    assert!(item.contains(&want), "pam_totp.8: {want:?} in:\n{item}");

    let help = help_of(&["--help"]);
    let want = format!("{DEFAULT_MAX_WINDOW} unless --service");
    assert!(help.contains(&want), "totp-enroll --help: {want:?}");
}

/// Every test file the documentation names as proof (`tests/tests/NAME.rs`,
/// `tests/e2e/NAME`) exists, so a reader who follows a claim to its test finds it.
#[test]
fn every_test_file_the_docs_cite_exists() {
    fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let root = workspace();
    // Not CHANGELOG.md: it records what was true when each entry was written.
    let mut files = vec![root.join("README.md"), root.join("SECURITY.md")];
    for dir in ["docs", "man", "pam.d-examples", "packaging"] {
        collect(&root.join(dir), &mut files);
    }
    let mut cited = 0;
    let mut missing = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for prefix in ["tests/tests/", "tests/e2e/"] {
            for (at, _) in text.match_indices(prefix) {
                // The path as written: up to the first character a path does not hold.
                let path: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                    .collect();
                let path = path.trim_end_matches('.');
                if path.len() == prefix.len() || path.ends_with('/') {
                    continue;
                }
                cited += 1;
                if !root.join(path).exists() {
                    let shown = file.strip_prefix(&root).unwrap_or(file);
                    missing.push(format!("{}: {path}", shown.display()));
                }
            }
        }
    }
    assert!(cited > 10, "only {cited} citations found");
    assert!(
        missing.is_empty(),
        "cited test files that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Every test the documentation names as `FILE.rs::NAME` exists: a file whose path ends
/// with FILE.rs (citations shorten `totp-os/src/safefile/tests.rs` to
/// `safefile/tests.rs`, or name a file cited in full earlier by its name alone) holds a
/// `fn NAME` (`async fn`, generic `fn NAME<` included), so a claim never rests on a test
/// that was renamed or removed.
#[test]
fn every_function_the_docs_cite_exists() {
    fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if p.is_dir() {
                collect(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let root = workspace();
    let mut all = Vec::new();
    collect(&root, &mut all);
    let sources: Vec<(String, String)> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
            Some((rel, fs::read_to_string(p).ok()?))
        })
        .collect();
    let mut docs = vec![root.join("README.md"), root.join("SECURITY.md")];
    for dir in ["docs", "man", "pam.d-examples", "packaging"] {
        collect(&root.join(dir), &mut docs);
    }
    let path_char = |c: char| c.is_ascii_alphanumeric() || "/_-".contains(c);
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut cited = 0;
    let mut dangling = Vec::new();
    for doc in &docs {
        let Ok(text) = fs::read_to_string(doc) else {
            continue;
        };
        for (at, sep) in text.match_indices(".rs::") {
            let head = &text[..at];
            let start = head
                .char_indices()
                .rev()
                .take_while(|(_, c)| path_char(*c))
                .last()
                .map_or(at, |(i, _)| i);
            let file = format!("{}.rs", &text[start..at]);
            let after = &text[at + sep.len()..];
            let name: String = after.chars().take_while(|c| ident_char(*c)).collect();
            if start == at || name.is_empty() {
                continue;
            }
            // `NAME_*` cites every test whose name starts so: at least one must exist.
            let decls: Vec<String> = if after[name.len()..].starts_with('*') {
                vec![format!("fn {name}")]
            } else {
                vec![format!("fn {name}("), format!("fn {name}<")]
            };
            cited += 1;
            let tail = format!("/{file}");
            let found = sources.iter().any(|(rel, src)| {
                (*rel == file || rel.ends_with(&tail))
                    && decls.iter().any(|decl| src.contains(decl.as_str()))
            });
            if !found {
                let shown = doc.strip_prefix(&root).unwrap_or(doc);
                dangling.push(format!("{}: {file}::{name}", shown.display()));
            }
        }
    }
    assert!(cited > 50, "only {cited} citations found");
    dangling.sort();
    dangling.dedup();
    assert!(
        dangling.is_empty(),
        "cited functions that do not exist:\n{}",
        dangling.join("\n")
    );
}
