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

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::console::Console;
use crate::error::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("totp-enroll: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
