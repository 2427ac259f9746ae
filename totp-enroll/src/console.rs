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

/// Longest answer line read; a longer line is refused.
const MAX_LINE: u64 = 1024;

/// Most bytes of an over-long line thrown away while looking for its end: far more than
/// anything pasted by hand, and a bound for a line that never ends (`yes | tr -d '\n'`),
/// which would otherwise keep the tool reading for ever.
const MAX_DISCARD: u64 = 1 << 20;

/// One line read by [`read_line_bounded`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// End of input before any byte.
    End,
    /// The line, with its line end when it had one.
    Text(Zeroizing<Vec<u8>>),
    /// Longer than the limit; read to its end and thrown away.
    TooLong,
}

/// One line of at most `max` bytes (line end included) from `input`. The rest of a
/// longer line is read in the reader's own chunks up to its end and dropped, so that
/// it is never taken for the next answer, and the line is [`Line::TooLong`]: a
/// truncated answer would be judged as something the user did not type. A line with
/// no end within `MAX_DISCARD` bytes is an error.
pub fn read_line_bounded(input: &mut dyn BufRead, max: u64) -> io::Result<Line> {
    let mut raw = Zeroizing::new(Vec::new());
    let n = input.take(max).read_until(b'\n', &mut raw)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if raw.last() == Some(&b'\n') || (n as u64) < max {
        return Ok(Line::Text(raw));
    }
    let mut discarded = 0u64;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(Line::TooLong);
        }
        let (used, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        input.consume(used);
        if ended {
            return Ok(Line::TooLong);
        }
        discarded += used as u64;
        if discarded > MAX_DISCARD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a line of more than {MAX_DISCARD} bytes without a line end"),
            ));
        }
    }
}

pub struct Console {
    human: Box<dyn Write>,
    human_is_tty: bool,
    human_is_stderr: bool,
    input: Box<dyn BufRead>,
    non_interactive: bool,
    /// Questions go to standard error although other text goes to standard output:
    /// that carries the URI (`--uri`), which a script reads as its first line, and a
    /// person who sent it into a file still sees what is asked.
    prompts_on_stderr: bool,
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
            prompts_on_stderr: false,
        }
    }

    /// Questions asked on standard error from now on (see `prompts_on_stderr`).
    pub fn with_prompts_on_stderr(mut self) -> Console {
        self.prompts_on_stderr = true;
        self
    }

    /// Writes part of a question where questions go.
    fn prompt(&mut self, text: &str) -> Result<(), Error> {
        if !self.prompts_on_stderr {
            return self.say(text);
        }
        let mut err = io::stderr().lock();
        err.write_all(text.as_bytes())
            .and_then(|()| err.flush())
            .map_err(|e| match e.kind() {
                io::ErrorKind::BrokenPipe => Error::ClosedOutput,
                _ => Error::failed(format!("cannot write to the terminal: {e}")),
            })
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
        // DEC's vt terminals (vt52, vt100, vt220, ...: serial consoles) draw no
        // background colours, so an ANSI code would show as blank space.
        let colours = std::env::var_os("TERM").is_none_or(|t| {
            let t = t.to_string_lossy();
            t != "dumb" && !t.starts_with("vt")
        });
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

    /// A reader that went away (`| head`) ends the run as for standard output
    /// ([`Error::ClosedOutput`]), not as a terminal that failed.
    pub fn say(&mut self, text: &str) -> Result<(), Error> {
        self.human
            .write_all(text.as_bytes())
            .and_then(|()| self.human.flush())
            .map_err(|e| match e.kind() {
                io::ErrorKind::BrokenPipe => Error::ClosedOutput,
                _ => Error::failed(format!("cannot write to the terminal: {e}")),
            })
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

    /// One line of input (without the line end), `None` at end of input; a read
    /// error is [`Error::UnreadableInput`].
    pub fn ask_line(
        &mut self,
        prompt: &str,
        flags: &'static str,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        if self.non_interactive {
            return Err(Error::MissingAnswers(vec![flags]));
        }
        self.prompt(prompt)?;
        // A read error is no answer, as the end of input is (exit 2, not a failure of
        // the work): a configuration tool that started us with stdin closed or not a
        // file learns to pass the flags, not that enrolment broke.
        let read = read_line_bounded(&mut *self.input, MAX_LINE);
        let raw = match read {
            Err(e) => {
                self.prompt("\n")?;
                return Err(Error::UnreadableInput(flags, e.to_string()));
            }
            Ok(Line::Text(raw)) => raw,
            Ok(Line::End) => {
                // Leave the prompt's line so the error starts on its own.
                self.prompt("\n")?;
                return Ok(None);
            }
            Ok(Line::TooLong) => {
                return Err(Error::failed(format!(
                    "an answer of more than {MAX_LINE} bytes is not an answer to this question"
                )));
            }
        };
        let text = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        Ok(Some(Zeroizing::new(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Line {
        Line::Text(Zeroizing::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn lines_within_the_limit_are_read_one_at_a_time() {
        let mut input = io::Cursor::new(b"y\r\n123456\nlast".to_vec());
        assert_eq!(
            read_line_bounded(&mut input, 8).expect("read"),
            text("y\r\n")
        );
        assert_eq!(
            read_line_bounded(&mut input, 8).expect("read"),
            text("123456\n")
        );
        // The last line may lack its end, as google-authenticator accepts.
        assert_eq!(
            read_line_bounded(&mut input, 8).expect("read"),
            text("last")
        );
        assert_eq!(read_line_bounded(&mut input, 8).expect("read"), Line::End);
    }

    // The rest of an over-long line is not the next answer, and the line is refused
    // rather than cut to something the user did not type; small reader chunks show the
    // rest is dropped piece by piece.
    #[test]
    fn an_over_long_line_is_refused_and_its_rest_never_read_as_the_next_answer() {
        let mut data = vec![b'7'; 5000];
        data.extend_from_slice(b"\nn\n");
        let mut input = io::BufReader::with_capacity(7, io::Cursor::new(data));
        assert_eq!(
            read_line_bounded(&mut input, 1024).expect("read"),
            Line::TooLong
        );
        assert_eq!(
            read_line_bounded(&mut input, 1024).expect("read"),
            text("n\n")
        );
        // Exactly at the limit with its line end: still a line.
        let mut line = vec![b'1'; 1023];
        line.push(b'\n');
        let mut input = io::Cursor::new(line.clone());
        assert_eq!(
            read_line_bounded(&mut input, 1024).expect("read"),
            Line::Text(Zeroizing::new(line))
        );
        // Over the limit up to the end of input: refused too.
        let mut input = io::Cursor::new(vec![b'1'; 1025]);
        assert_eq!(
            read_line_bounded(&mut input, 1024).expect("read"),
            Line::TooLong
        );
    }

    #[test]
    fn a_line_that_never_ends_is_an_error_after_a_bounded_read() {
        let endless = io::repeat(b'y');
        let mut input = io::BufReader::new(endless);
        let err = read_line_bounded(&mut input, 1024).expect_err("no end");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
