//! The command line: google-authenticator's flags with its meaning, plus ours.
//!
//! clap checks types, ranges and simple conflicts; [`EnrollArgs::validate`]
//! adds the cross-flag rules google-authenticator enforces, with its messages
//! where scripts may depend on them, and turns the flags into a [`Request`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::qr::QrMode;

#[derive(Parser, Debug)]
#[command(
    name = "totp-enroll",
    version,
    about = "Put a phone on an account for pam_totp or pam_google_authenticator",
    long_about = "Create a TOTP or HOTP secret, show it as a QR code, and write \
        ~/.google_authenticator (or another secret file) in the format both \
        pam_totp and pam_google_authenticator read. Accepts google-authenticator's \
        flags with the same meaning.",
    after_help = "Subcommands: `totp-enroll resync --help`, `totp-enroll check --help`, \
        `totp-enroll explain --help`.\n\
        Exit status: 0 done (or declined), 1 failure, 2 usage error or missing answer, \
        3 the secret file exists (nothing written; -f replaces it), 141 standard output \
        closed before the secret was handed out (nothing written). `check` has its own: \
        see `totp-enroll check --help`.",
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub enroll: EnrollArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fix "codes not accepted" after the phone's clock drifted: type two consecutive
    /// codes from the app; records the offset (TIME_SKEW) within the admin's cap.
    Resync(ResyncArgs),
    /// Run a real PAM authentication for a service, to test a stack before logging out.
    Check(CheckArgs),
    /// Show which access rule matches a login (needs an access-rule file).
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 the stack logged in (PAM_SUCCESS), 1 any other PAM result \
        (a problem found; with --strict, also a login let in after a warning), 2 the \
        check could not be made (a prompt got no answer because standard input ended or \
        --non-interactive, a service libpam could not start, a usage error), 141 \
        standard output closed."
)]
pub struct CheckArgs {
    /// PAM service name to authenticate against (the file name under the PAM directory).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// User to authenticate; default: the user running the command.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Read the service from this directory instead of /etc/pam.d (pam_start_confdir).
    #[arg(long, value_name = "DIR")]
    pub pam_dir: Option<PathBuf>,
    /// Set PAM_RHOST, as sshd would for a remote client.
    #[arg(long, value_name = "ADDR")]
    pub rhost: Option<String>,
    /// Set PAM_TTY.
    #[arg(long, value_name = "TTY")]
    pub tty: Option<String>,
    /// Print the result as one JSON object on standard output (prompts and
    /// messages still appear on standard error).
    #[arg(long)]
    pub json: bool,
    /// Never read standard input: every prompt of the stack goes unanswered (exit 2,
    /// "could not check", unless the stack decides without the answer).
    #[arg(long)]
    pub non_interactive: bool,
    /// Count warnings about the stack as problems: a login the stack lets in exits 1
    /// when a warning was said (a line that skips the code, a GA line on the same files).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug)]
pub struct ResyncArgs {
    /// The code the app shows now (asked for when not given).
    #[arg(value_name = "CODE1", requires = "second")]
    pub first: Option<String>,
    /// The app's next code, after CODE1.
    #[arg(value_name = "CODE2")]
    pub second: Option<String>,
    /// Secret file [default: the user's home directory + /.google_authenticator].
    #[arg(short = 's', long, value_name = "FILE")]
    pub secret: Option<PathBuf>,
    /// Resynchronise this user's file (root only, unless it names yourself).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Take the skew cap from this PAM service's pam_totp options (max_time_skew=)
    /// [default: the module's default cap].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Read --service from this directory instead of /etc/pam.d.
    #[arg(long, value_name = "DIR", requires = "service")]
    pub pam_dir: Option<PathBuf>,
    /// Print one JSON object with the result on standard output.
    #[arg(long)]
    pub json: bool,
    /// Never prompt: without CODE1 and CODE2, an error naming them (exit 2).
    #[arg(long)]
    pub non_interactive: bool,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Access-rule file, as given to the module's access option.
    #[arg(long, value_name = "PATH")]
    pub accessfile: PathBuf,
    /// User logging in.
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// Remote address (PAM_RHOST); without it, a console login (no PAM_RHOST).
    #[arg(long, value_name = "ADDR")]
    pub rhost: Option<String>,
    /// Terminal (PAM_TTY).
    #[arg(long, value_name = "TTY")]
    pub tty: Option<String>,
    /// PAM service name.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Accept 0.0.0.0/0 and ::/0, as the module does when its line has allow_any_network.
    #[arg(long)]
    pub allow_any_network: bool,
    /// Print the explanation as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum AlgorithmArg {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Args, Debug, Default)]
pub struct EnrollArgs {
    /// Time-based tokens (TOTP).
    #[arg(short = 't', long)]
    pub time_based: bool,
    /// Counter-based tokens (HOTP).
    #[arg(short = 'c', long)]
    pub counter_based: bool,
    /// Refuse a code that was already used (writes DISALLOW_REUSE; TOTP only).
    #[arg(short = 'd', long, conflicts_with = "allow_reuse")]
    pub disallow_reuse: bool,
    /// Do not write DISALLOW_REUSE (pam_totp still refuses replays).
    #[arg(short = 'D', long)]
    pub allow_reuse: bool,
    /// Write the file without asking, replacing an existing one.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Account name shown in the app [default: USER@HOST].
    #[arg(short = 'l', long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Issuer shown in the app [default: HOST].
    #[arg(short = 'i', long, value_name = "ISSUER")]
    pub issuer: Option<String>,
    /// Show no QR code, secret, verification code or scratch codes.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Terminal QR code: NONE, ANSI, ANSI_INVERSE, ANSI_GREY, UTF8, UTF8_INVERSE,
    /// UTF8_GREY [default: UTF8_GREY on a UTF-8 terminal, else ANSI]. Giving it also
    /// shows the QR code when stdout is not a terminal.
    #[arg(short = 'Q', long, value_name = "MODE", value_parser = parse_qr_mode)]
    pub qr_mode: Option<QrMode>,
    /// Allow N logins per -R seconds (1-10; writes RATE_LIMIT).
    #[arg(short = 'r', long, value_name = "N", requires = "rate_time",
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub rate_limit: Option<u32>,
    /// Rate-limit interval in seconds (15-600).
    #[arg(short = 'R', long, value_name = "SECONDS", requires = "rate_limit",
          value_parser = clap::value_parser!(u32).range(15..=600))]
    pub rate_time: Option<u32>,
    /// No RATE_LIMIT line.
    #[arg(short = 'u', long, conflicts_with_all = ["rate_limit", "rate_time"])]
    pub no_rate_limit: bool,
    /// Secret file to write [default: the user's home directory from the
    /// password database + /.google_authenticator].
    #[arg(short = 's', long, value_name = "FILE")]
    pub secret: Option<PathBuf>,
    /// TOTP step in seconds (1-60; writes STEP_SIZE).
    #[arg(short = 'S', long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u32).range(1..=60))]
    pub step_size: Option<u32>,
    /// Accept W codes around the current one (1-21, and no more than the module's
    /// max_window cap, 17 unless --service names a service that sets it; writes
    /// WINDOW_SIZE).
    #[arg(short = 'w', long, value_name = "W", conflicts_with = "minimal_window",
          value_parser = clap::value_parser!(u32).range(1..=21))]
    pub window_size: Option<u32>,
    /// Smallest useful window: 3 codes for TOTP, 1 for HOTP.
    #[arg(short = 'W', long)]
    pub minimal_window: bool,
    /// Number of emergency scratch codes (0-10) [default: 5].
    #[arg(short = 'e', long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub emergency_codes: Option<u32>,
    /// Do not ask for a code from the app before saving.
    // Overrides itself because google-authenticator accepts -C twice.
    #[arg(short = 'C', long, overrides_with = "no_confirm")]
    pub no_confirm: bool,
    /// HMAC algorithm (pam_google_authenticator supports only SHA1).
    #[arg(long, value_name = "ALG", value_enum, ignore_case = true)]
    pub algorithm: Option<AlgorithmArg>,
    /// Code length (pam_google_authenticator supports only 6).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(6..=8))]
    pub digits: Option<u8>,
    /// Also write the QR code as a PNG file (mode 0600, never replaced without -f).
    #[arg(long, value_name = "PATH")]
    pub qr_png: Option<PathBuf>,
    /// Also write the QR code as an SVG file (mode 0600, never replaced without -f).
    #[arg(long, value_name = "PATH")]
    pub qr_svg: Option<PathBuf>,
    /// Print the otpauth:// URI (it contains the secret).
    #[arg(long)]
    pub uri: bool,
    /// Print one JSON object with the result, including the secret, the URI and
    /// the scratch codes; all other text goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Enroll this user (root only, unless it names yourself).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Replace the scratch codes of an existing file and keep its secret.
    #[arg(long, conflicts_with_all = [
        "time_based", "counter_based", "disallow_reuse", "allow_reuse", "label",
        "issuer", "qr_mode", "rate_limit", "rate_time", "no_rate_limit", "step_size",
        "window_size", "minimal_window", "no_confirm", "algorithm", "digits",
        "qr_png", "qr_svg", "uri",
    ])]
    pub regenerate_scratch_codes: bool,
    /// Never prompt: a question no flag answers is an error naming that flag.
    #[arg(long)]
    pub non_interactive: bool,
    /// Print the new secret file on standard output; write nothing (for secret_command=).
    ///
    /// The file a fleet's secret_command= program serves. TOTP only and no scratch
    /// codes (the module refuses both from a command); needs -l. With --json the file
    /// text is the "file" member of the JSON instead.
    #[arg(long, requires = "label", conflicts_with_all = [
        "secret", "user", "force", "counter_based", "qr_png", "qr_svg", "uri",
        "regenerate_scratch_codes",
    ])]
    pub print_file: bool,
    /// Check the window against this PAM service's pam_totp options (max_window=)
    /// [default: the module's default cap].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Read --service from this directory instead of /etc/pam.d.
    #[arg(long, value_name = "DIR", requires = "service")]
    pub pam_dir: Option<PathBuf>,
}

fn parse_qr_mode(s: &str) -> Result<QrMode, String> {
    s.parse()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeChoice {
    Totp,
    Hotp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowChoice {
    Size(u32),
    Minimal,
}

/// The enrollment as the flags describe it; `None` means "ask".
#[derive(Debug, Default)]
pub struct Request {
    pub mode: Option<ModeChoice>,
    pub disallow_reuse: Option<bool>,
    pub window: Option<WindowChoice>,
    /// `Some(None)`: explicitly no rate limit.
    pub rate_limit: Option<Option<(u32, u32)>>,
    pub step_size: Option<u32>,
    pub force: bool,
    pub label: Option<String>,
    pub issuer: Option<String>,
    pub quiet: bool,
    pub qr_mode: Option<QrMode>,
    pub secret_path: Option<PathBuf>,
    pub scratch_codes: u32,
    pub confirm: bool,
    pub algorithm: AlgorithmArg,
    pub digits: u8,
    pub qr_png: Option<PathBuf>,
    pub qr_svg: Option<PathBuf>,
    pub print_uri: bool,
    pub json: bool,
    pub user: Option<String>,
    pub regenerate: bool,
    pub non_interactive: bool,
    pub service: Option<String>,
    pub pam_dir: Option<PathBuf>,
    /// The file goes to standard output (or into the JSON), never to disk.
    pub print_file: bool,
}

pub const DEFAULT_SCRATCH_CODES: u32 = 5;

/// Scratch codes in a command-served file are refused by the module (a used one would
/// have to be struck from a file it cannot write), so asking for them is an error
/// rather than a file every login would deny.
const PRINT_FILE_SCRATCH: &str = "--print-file makes a file for secret_command=, which \
    refuses scratch codes: leave out -e/--emergency-codes (or pass -e 0)";

impl EnrollArgs {
    pub fn validate(self) -> Result<Request, Error> {
        let mode = match (self.time_based, self.counter_based) {
            (true, true) => {
                return Err(Error::usage("Duplicate -c and/or -t option detected"));
            }
            (true, false) => Some(ModeChoice::Totp),
            (false, true) => Some(ModeChoice::Hotp),
            // A command-served secret is TOTP only: there is nothing to ask.
            (false, false) if self.print_file => Some(ModeChoice::Totp),
            (false, false) => None,
        };
        let scratch_codes = match (self.print_file, self.emergency_codes) {
            (true, Some(n)) if n > 0 => return Err(Error::usage(PRINT_FILE_SCRATCH)),
            (true, _) => 0,
            (false, n) => n.unwrap_or(DEFAULT_SCRATCH_CODES),
        };
        let reuse = match (self.disallow_reuse, self.allow_reuse) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        if reuse.is_some() {
            match mode {
                Some(ModeChoice::Hotp) => {
                    return Err(Error::usage(
                        "Reuse of tokens is not a meaningful parameter in counter-based mode",
                    ));
                }
                None => {
                    return Err(Error::usage(
                        "Must select time-based mode, when using -d or -D",
                    ));
                }
                Some(ModeChoice::Totp) => {}
            }
        }
        if self.step_size.is_some() && mode != Some(ModeChoice::Totp) {
            return Err(Error::usage(
                "Must select time-based mode (-t), when using -S/--step-size",
            ));
        }
        if let Some(secret) = &self.secret
            && secret.as_os_str().is_empty()
        {
            return Err(Error::usage("-s/--secret needs a file name"));
        }
        if let Some(user) = &self.user
            && user.is_empty()
        {
            return Err(Error::usage("--user needs a user name"));
        }
        let window = match (self.window_size, self.minimal_window) {
            (Some(w), _) => Some(WindowChoice::Size(w)),
            (None, true) => Some(WindowChoice::Minimal),
            (None, false) => None,
        };
        let rate_limit = match (self.rate_limit, self.rate_time, self.no_rate_limit) {
            (Some(n), Some(m), _) => Some(Some((n, m))),
            (None, None, true) => Some(None),
            (None, None, false) => None,
            // clap's `requires` already refuses a lone -r or -R; keep GA's wording
            // in case that ever changes.
            _ => return Err(Error::usage("Must set -r when setting -R, and vice versa")),
        };
        let algorithm = self.algorithm.unwrap_or(AlgorithmArg::Sha1);
        Ok(Request {
            mode,
            disallow_reuse: reuse,
            window,
            rate_limit,
            step_size: self.step_size,
            force: self.force,
            label: self.label,
            issuer: self.issuer,
            quiet: self.quiet,
            qr_mode: self.qr_mode,
            secret_path: self.secret,
            scratch_codes,
            confirm: !self.no_confirm,
            algorithm,
            digits: self.digits.unwrap_or(6),
            qr_png: self.qr_png,
            qr_svg: self.qr_svg,
            print_uri: self.uri,
            json: self.json,
            user: self.user,
            regenerate: self.regenerate_scratch_codes,
            non_interactive: self.non_interactive,
            service: self.service,
            pam_dir: self.pam_dir,
            print_file: self.print_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Request, String> {
        let cli = Cli::try_parse_from(std::iter::once("totp-enroll").chain(args.iter().copied()))
            .map_err(|e| e.kind().to_string())?;
        cli.enroll.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ga_fully_non_interactive_flag_set_answers_every_question() {
        let r = parse(&[
            "-t", "-d", "-f", "-r", "3", "-R", "30", "-W", "-S", "30", "-e", "3", "-C",
        ])
        .expect("valid");
        assert_eq!(r.mode, Some(ModeChoice::Totp));
        assert_eq!(r.disallow_reuse, Some(true));
        assert_eq!(r.window, Some(WindowChoice::Minimal));
        assert_eq!(r.rate_limit, Some(Some((3, 30))));
        assert_eq!(r.step_size, Some(30));
        assert_eq!(r.scratch_codes, 3);
        assert!(r.force && !r.confirm);
    }

    #[test]
    fn ga_cross_flag_rules_keep_ga_messages() {
        assert_eq!(
            parse(&["-t", "-c"]).unwrap_err(),
            "Duplicate -c and/or -t option detected"
        );
        assert_eq!(
            parse(&["-c", "-d"]).unwrap_err(),
            "Reuse of tokens is not a meaningful parameter in counter-based mode"
        );
        assert_eq!(
            parse(&["-D"]).unwrap_err(),
            "Must select time-based mode, when using -d or -D"
        );
        assert!(parse(&["-r", "3"]).is_err());
        assert!(parse(&["-R", "30"]).is_err());
        assert!(parse(&["-u", "-r", "3", "-R", "30"]).is_err());
        assert!(parse(&["-w", "3", "-W"]).is_err());
        assert!(
            parse(&["-l", "a", "-l", "b"]).is_err(),
            "duplicates are refused"
        );
        assert!(parse(&["-C", "-C"]).is_ok(), "GA accepts -C twice");
    }

    #[test]
    fn ranges_match_google_authenticator() {
        for bad in [
            &["-r", "0", "-R", "30"][..],
            &["-r", "11", "-R", "30"],
            &["-r", "3", "-R", "14"],
            &["-r", "3", "-R", "601"],
            &["-t", "-S", "0"],
            &["-t", "-S", "61"],
            &["-w", "0"],
            &["-w", "22"],
            &["-e", "11"],
            &["--digits", "9"],
            &["--algorithm", "MD5"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            &["-r", "1", "-R", "15"][..],
            &["-r", "10", "-R", "600"],
            &["-t", "-S", "60"],
            &["-w", "21"],
            &["-e", "0"],
            &["--digits", "8"],
            &["--algorithm", "sha256"],
        ] {
            assert!(parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn regenerate_refuses_flags_that_would_need_a_new_secret() {
        assert!(parse(&["--regenerate-scratch-codes", "-t"]).is_err());
        assert!(parse(&["--regenerate-scratch-codes", "--digits", "8"]).is_err());
        let r = parse(&["--regenerate-scratch-codes", "-e", "7"]).expect("valid");
        assert!(r.regenerate);
        assert_eq!(r.scratch_codes, 7);
    }

    #[test]
    fn print_file_is_totp_without_scratch_codes_and_writes_nowhere() {
        let r = parse(&["--print-file", "-l", "alice"]).expect("valid");
        assert!(r.print_file);
        assert_eq!(r.mode, Some(ModeChoice::Totp));
        assert_eq!(r.scratch_codes, 0);
        assert!(parse(&["--print-file", "-l", "a", "-e", "0", "-d", "-S", "60"]).is_ok());
        assert_eq!(
            parse(&["--print-file", "-l", "a", "-e", "3"]).unwrap_err(),
            PRINT_FILE_SCRATCH
        );
        assert!(parse(&["--print-file"]).is_err(), "needs -l");
        for other in [
            &["-s", "x"][..],
            &["--user", "root"],
            &["-f"],
            &["-c"],
            &["--qr-png", "x.png"],
            &["--qr-svg", "x.svg"],
            &["--uri"],
            &["--regenerate-scratch-codes"],
        ] {
            let args: Vec<&str> = ["--print-file", "-l", "a"]
                .iter()
                .chain(other)
                .copied()
                .collect();
            assert!(parse(&args).is_err(), "{other:?}");
        }
    }

    #[test]
    fn step_size_requires_time_based_mode() {
        assert!(parse(&["-S", "30"]).is_err());
        assert!(parse(&["-c", "-S", "30"]).is_err());
    }
}
