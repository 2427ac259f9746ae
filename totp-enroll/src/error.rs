//! What can go wrong, and which exit status it gets.

use std::fmt;
use std::path::PathBuf;

/// Exit status for a usage error or an unanswered question (as clap uses), and for a
/// `check` that could not be made (as `totp-state show`/`audit` use 2 for "could not
/// look").
pub const EXIT_USAGE: u8 = 2;
/// Exit status for everything else that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status when the secret file is already there and nothing was written (no
/// `-f`): a script enrolling a fleet (Ansible, Puppet) tells "already enrolled" from a
/// failure without `--json`, whose success would print the secret into its log.
pub const EXIT_EXISTS: u8 = 3;
/// Exit status when the reader of standard output went away (`| head`): what a shell
/// reports for a tool killed by SIGPIPE, without the signal or a message.
pub const EXIT_CLOSED_OUTPUT: u8 = 128 + 13;

#[derive(Debug)]
pub enum Error {
    /// Bad flags or flag combinations.
    Usage(String),
    /// Questions no flag answered, in non-interactive mode.
    /// Each entry names the flags that answer one question.
    MissingAnswers(Vec<&'static str>),
    /// Standard input ended where an answer was needed.
    EndOfInput(&'static str),
    /// Standard input could not be read where an answer was needed (a directory, a
    /// closed descriptor): no answer, as at its end, with the reason.
    UnreadableInput(&'static str, String),
    /// The secret file exists and `-f` was not given.
    Exists(PathBuf),
    /// Another file this run would create (a QR image) exists and `-f` was not given.
    OtherExists(PathBuf),
    /// Anything that failed while doing the work; the text says what.
    Failed(String),
    /// The confirmation code shows the app ignored settings of the URI.
    AppIgnoredSettings(crate::flow::IgnoredSettings),
    /// Standard output was closed by its reader; nothing more is said.
    ClosedOutput,
    /// `check` could not make its check (the service could not be started or read, a
    /// name could not be looked up): told apart from a login the stack refused.
    NotChecked(String),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn failed(msg: impl Into<String>) -> Error {
        Error::Failed(msg.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::MissingAnswers(_)
            | Error::EndOfInput(_)
            | Error::UnreadableInput(..)
            | Error::NotChecked(_) => EXIT_USAGE,
            Error::Exists(_) => EXIT_EXISTS,
            Error::OtherExists(_) | Error::Failed(_) | Error::AppIgnoredSettings(_) => EXIT_FAILURE,
            Error::ClosedOutput => EXIT_CLOSED_OUTPUT,
        }
    }

    /// A stable identifier for `--json` consumers.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::MissingAnswers(_) | Error::EndOfInput(_) | Error::UnreadableInput(..) => {
                "missing-answer"
            }
            Error::Exists(_) | Error::OtherExists(_) => "exists",
            Error::Failed(_) => "failed",
            Error::AppIgnoredSettings(_) => "app-ignored-settings",
            Error::ClosedOutput => "closed-output",
            Error::NotChecked(_) => "not-checked",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Failed(m) | Error::NotChecked(m) => f.write_str(m),
            Error::ClosedOutput => f.write_str("standard output was closed"),
            Error::AppIgnoredSettings(ignored) => write!(f, "{ignored}"),
            Error::MissingAnswers(flags) => {
                f.write_str(
                    "cannot ask questions in non-interactive mode; answer them with flags:",
                )?;
                for flag in flags {
                    write!(f, "\n  {flag}")?;
                }
                Ok(())
            }
            Error::EndOfInput(flags) => write!(
                f,
                "no answer on standard input (end of input); answer the question with {flags}"
            ),
            Error::UnreadableInput(flags, reason) => write!(
                f,
                "no answer: cannot read standard input ({reason}); answer the question with \
                 {flags}"
            ),
            Error::OtherExists(path) => write!(
                f,
                "\"{}\" already exists; pass -f/--force to replace it",
                path.display()
            ),
            Error::Exists(path) => write!(
                f,
                "\"{}\" already exists; pass -f/--force to replace it \
                 (or --regenerate-scratch-codes to keep its secret)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Writes `text` to standard error. A reader of it that went away (`2>&1 | head`) does
/// not end the run in a panic (as `eprint!` would, exit 101): the text is lost, the
/// run and its status are not.
pub fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
