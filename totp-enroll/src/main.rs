//! `totp-enroll`: put a phone on an account (a drop-in for google-authenticator's
//! `google-authenticator` command), check a PAM stack, explain access rules.

// System calls go through totp-os, nix and pamapp; the CLI itself has no unsafe code.
#![forbid(unsafe_code)]

// The doc comments in `args` are clap's --help text, where "[default: USER@HOST]" is
// the conventional notation, not an intra-doc link.
#[allow(rustdoc::broken_intra_doc_links)]
mod args;
mod caps;
mod check;
mod console;
mod error;
mod explain;
mod flow;
mod host;
mod output;
mod qr;
mod random;
mod resync;
mod target;
mod write;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::console::Console;
use crate::error::Error;

/// Whether the command line asks for `--json` (before a `--` that ends the options).
fn asks_for_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A usage error clap finds (a conflict, a value out of range, a missing
            // flag) is answered on stdout as JSON too, as every later error is, so a
            // provisioning tool never reads an empty standard output. --help and
            // --version are not errors.
            if e.use_stderr() && asks_for_json() {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                let _ = flow::print_stdout(&output::error_json(&Error::usage(message)));
            }
            e.exit()
        }
    };
    let (result, json) = match cli.command {
        Some(Command::Resync(a)) => {
            let json = a.json;
            (resync::run(a), json)
        }
        Some(Command::Check(a)) => {
            let json = a.json;
            (check::run(a), json)
        }
        Some(Command::Explain(a)) => {
            let json = a.json;
            (explain::run(a), json)
        }
        None => {
            let json = cli.enroll.json;
            let result = cli.enroll.validate().and_then(|req| {
                // Standard output carries data (JSON or the printed file): people get stderr.
                let mut console = Console::new(req.json || req.print_file, req.non_interactive);
                if req.print_uri && !req.json {
                    console = console.with_prompts_on_stderr();
                }
                flow::run(req, &mut console).map(|()| 0)
            });
            (result, json)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Error::ClosedOutput) => ExitCode::from(Error::ClosedOutput.exit_code()),
        Err(err) => {
            if json {
                // Best effort: the message below says it all if stdout is gone too.
                let _ = flow::print_stdout(&output::error_json(&err));
            }
            // Not `eprintln!`, which panics (exit 101) when standard error is a pipe
            // whose reader went away: the message may be lost, the status must not.
            let _ = writeln!(std::io::stderr().lock(), "totp-enroll: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
