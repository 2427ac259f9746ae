//! Text for people, and answers from them.
//!
//! With `--json` the standard output carries exactly one JSON object (with
//! `--print-file`, exactly the secret file), so every message, question and QR code
//! goes to the standard error instead.
//! Answers are read a line at a time from standard input, which may be a pipe
//! (scripts that fed google-authenticator `y` lines keep working); end of input
//! where an answer is needed is an error naming the flag that answers it.

use std::io::{self, BufRead, IsTerminal, Read, Write};

use zeroize::Zeroizing;

use crate::error::Error;
use crate::qr::Terminal;

/// Longest answer line read; the rest of a longer line is discarded.
const MAX_LINE: u64 = 1024;

pub struct Console {
    human: Box<dyn Write>,
    human_is_tty: bool,
    human_is_stderr: bool,
    input: Box<dyn BufRead>,
    non_interactive: bool,
}

impl Console {
    /// `stdout_is_data`: standard output is reserved for `--json` or `--print-file`.
    pub fn new(stdout_is_data: bool, non_interactive: bool) -> Console {
        let (human, human_is_tty): (Box<dyn Write>, bool) = if stdout_is_data {
            (Box::new(io::stderr()), io::stderr().is_terminal())
        } else {
            (Box::new(io::stdout()), io::stdout().is_terminal())
        };
        Console {
            human,
            human_is_tty,
            human_is_stderr: stdout_is_data,
            input: Box::new(io::BufReader::new(io::stdin())),
            non_interactive,
        }
    }

    /// Whether secrets may be shown without an explicit request (rule R29:
    /// a secret must not end up in a log file or a pipe by accident).
    pub fn human_is_tty(&self) -> bool {
        self.human_is_tty
    }

    /// What the terminal people read can draw. The locale and `TERM` variables are
    /// read here only: they describe the user's terminal (what it shows), not how
    /// pam_totp behaves, and are what every program and multiplexer goes by.
    pub fn terminal(&self) -> Terminal {
        let charset = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|v| std::env::var_os(v).filter(|s| !s.is_empty()));
        // Unset means the POSIX locale, whose character set is ASCII.
        let utf8 = charset.is_some_and(|v| {
            let v = v.to_string_lossy().to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        });
        let colours = std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        let size = if self.human_is_stderr {
            rustix::termios::tcgetwinsize(io::stderr())
        } else {
            rustix::termios::tcgetwinsize(io::stdout())
        };
        // A pty nobody sized reports 0 columns and rows: unknown, not zero.
        let size = size.ok();
        let columns = size.map(|w| w.ws_col).filter(|&c| c > 0);
        let rows = size.map(|w| w.ws_row).filter(|&r| r > 0);
        Terminal {
            utf8,
            colours,
            columns,
            rows,
        }
    }

    pub fn non_interactive(&self) -> bool {
        self.non_interactive
    }

    pub fn say(&mut self, text: &str) -> Result<(), Error> {
        self.human
            .write_all(text.as_bytes())
            .and_then(|()| self.human.flush())
            .map_err(|e| Error::failed(format!("cannot write to the terminal: {e}")))
    }

    /// Asks until the first non-blank character is y or n, as google-authenticator
    /// does. `flags` names what answers the question without asking.
    pub fn ask_yes_no(&mut self, question: &str, flags: &'static str) -> Result<bool, Error> {
        loop {
            let Some(line) = self.ask_line(&format!("{question} (y/n) "), flags)? else {
                return Err(Error::EndOfInput(flags));
            };
            match line.trim_start().chars().next() {
                Some('y' | 'Y') => return Ok(true),
                Some('n' | 'N') => return Ok(false),
                _ => {}
            }
        }
    }

    /// One line of input (without the line end), `None` at end of input.
    pub fn ask_line(
        &mut self,
        prompt: &str,
        flags: &'static str,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        if self.non_interactive {
            return Err(Error::MissingAnswers(vec![flags]));
        }
        self.say(prompt)?;
        let mut raw = Zeroizing::new(Vec::new());
        let n = (&mut self.input)
            .take(MAX_LINE)
            .read_until(b'\n', &mut raw)
            .map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?;
        if n == 0 {
            // Leave the prompt's line so the error starts on its own.
            self.say("\n")?;
            return Ok(None);
        }
        if raw.last() != Some(&b'\n') {
            // Over-long line: drop its remainder so it is not read as the next answer.
            let mut sink = Vec::new();
            let _ = self.input.read_until(b'\n', &mut sink);
            sink.fill(0);
        }
        let text = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        Ok(Some(Zeroizing::new(text)))
    }
}
