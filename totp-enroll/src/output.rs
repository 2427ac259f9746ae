//! The `--json` result and the fixed texts people see.
//!
//! The JSON object is the interface for provisioning tools: it carries the
//! secret, the URI and the scratch codes, because a tool that enrolls someone
//! else has to hand them over. Keys are always present (null when they do not
//! apply) so consumers need not guess.

use std::path::Path;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::Error;

#[derive(Serialize)]
pub struct RateLimitJson {
    pub attempts: u32,
    pub interval_secs: u32,
}

#[derive(Serialize)]
pub struct EnrollJson<'a> {
    pub action: &'static str,
    /// Null with `--print-file` (no local account is involved; `label` names it).
    pub user: Option<&'a str>,
    /// Null with `--print-file`.
    pub path: Option<&'a Path>,
    /// False when the user declined to save the file, and with `--print-file`. `None`
    /// while the file is still to be installed: the key is then printed last, once the
    /// rename succeeded or failed (see [`to_open_json`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<bool>,
    /// The file written replaced an earlier enrolment (`-f`).
    pub replaced: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub secret: &'a str,
    pub uri: &'a str,
    pub scratch_codes: ScratchCodes<'a>,
    pub label: &'a str,
    pub issuer: &'a str,
    pub algorithm: &'static str,
    pub digits: u8,
    pub period: Option<u32>,
    pub counter: Option<u64>,
    pub window_size: Option<u32>,
    pub disallow_reuse: bool,
    pub rate_limit: Option<RateLimitJson>,
    pub qr_png: Option<&'a Path>,
    pub qr_svg: Option<&'a Path>,
    /// With `--print-file`: the secret file's text, byte for byte what a
    /// `secret_command=` program prints.
    pub file: Option<&'a str>,
}

#[derive(Serialize)]
pub struct RegenerateJson<'a> {
    pub action: &'static str,
    pub user: &'a str,
    pub path: &'a Path,
    pub scratch_codes: ScratchCodes<'a>,
    /// `None` until the file holds the codes; printed last, as for [`EnrollJson`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<bool>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'static str,
    message: &'a str,
    exit_code: u8,
}

/// Serialises `value` as one line. The text may hold a secret, hence the wrapper, and
/// the buffer sized before it is written (see [`secret_text`]).
pub fn to_json_line<T: Serialize>(value: &T) -> Result<Zeroizing<String>, Error> {
    let mut s = json_text(value, 1)?;
    s.push('\n');
    Ok(s)
}

/// `value`, a JSON object, serialised without its closing brace: the data a program
/// needs goes out before the file changes (a failed print leaves the old file, rule
/// R29), while the object is not complete, so no parser accepts it, until
/// [`written_end`] says whether the file was written.
pub fn to_open_json<T: Serialize>(value: &T) -> Result<Zeroizing<String>, Error> {
    let mut s = json_text(value, 0)?;
    // Every caller passes an object with keys, so a comma may follow.
    if !s.starts_with('{') || !s.ends_with('}') || s.len() < 3 {
        return Err(Error::failed("cannot encode JSON: not an object"));
    }
    s.pop();
    Ok(s)
}

/// `value` as JSON in a buffer with room for it and `spare` more bytes, counted by a
/// first pass that keeps nothing.
fn json_text<T: Serialize>(value: &T, spare: usize) -> Result<Zeroizing<String>, Error> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let failed = |e: serde_json::Error| Error::failed(format!("cannot encode JSON: {e}"));
    let mut len = Count(0);
    serde_json::to_writer(&mut len, value).map_err(failed)?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(len.0 + spare));
    serde_json::to_writer(&mut *bytes, value).map_err(failed)?;
    // Moved, not copied: the wrapper around the String wipes the same buffer.
    let text = String::from_utf8(std::mem::take(&mut *bytes))
        .map_err(|_| Error::failed("cannot encode JSON: not UTF-8"))?;
    Ok(Zeroizing::new(text))
}

/// The last key of an object [`to_open_json`] began, and the end of its line.
pub fn written_end(written: bool) -> &'static str {
    if written {
        ",\"written\":true}\n"
    } else {
        ",\"written\":false}\n"
    }
}

pub fn error_json(err: &Error) -> String {
    let message = err.to_string();
    let body = ErrorJson {
        error: ErrorBody {
            kind: err.kind(),
            message: &message,
            exit_code: err.exit_code(),
        },
    };
    // Plain strings and numbers cannot fail to serialise; fall back to a fixed
    // object rather than printing nothing.
    serde_json::to_string(&body)
        .unwrap_or_else(|_| r#"{"error":{"kind":"failed","message":"","exit_code":1}}"#.into())
        + "\n"
}

/// Scratch codes as JSON strings of eight digits, written straight into the output:
/// a `String` per code would be a copy nobody wipes.
pub struct ScratchCodes<'a>(pub &'a [u32]);

impl Serialize for ScratchCodes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Code(u32);
        impl Serialize for Code {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&format_args!("{:08}", self.0))
            }
        }
        serializer.collect_seq(self.0.iter().map(|&c| Code(c)))
    }
}

pub fn scratch_block(codes: &[u32]) -> Zeroizing<String> {
    secret_text(|out| write_scratch_block(out, codes))
}

pub fn write_scratch_block(out: &mut dyn std::fmt::Write, codes: &[u32]) -> std::fmt::Result {
    out.write_str("Your emergency scratch codes are:\n")?;
    for c in codes {
        writeln!(out, "  {c:08}")?;
    }
    Ok(())
}

/// Text that holds a secret, written straight into a wiping buffer of exactly its
/// size: `compose` runs twice, first to count, so it must write the same both times.
/// A `format!` in between, or a buffer that grew, would leave a copy nobody wipes.
pub fn secret_text(
    compose: impl Fn(&mut dyn std::fmt::Write) -> std::fmt::Result,
) -> Zeroizing<String> {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut len = Count(0);
    // Writing to a String or a count cannot fail; a compose that fails on its own
    // stops both passes at the same point.
    let _ = compose(&mut len);
    let mut out = Zeroizing::new(String::with_capacity(len.0));
    let _ = compose(&mut *out);
    out
}

/// The line that says where the new secret file went.
pub fn wrote(path: &std::path::Path) -> String {
    format!("Wrote \"{}\".\n", path.display())
}

/// Apps keep the old entry, often under the same name: its codes are now refused, and
/// a user who picks it thinks the new enrolment failed.
pub const REPLACED: &str = "The earlier secret and its scratch codes no longer work: delete \
the earlier entry from the authenticator app.\n";

pub const NOT_SHOWN: &str = "Standard output is not a terminal, so the secret, QR code and \
scratch codes are not shown; the QR file holds the secret.\n";

pub const PRINTED_NOT_SHOWN: &str = "Standard error is not a terminal, so the QR code and \
secret are not shown; the secret file on standard output holds the secret.\n";

pub const UNSEEN_SECRET: &str = "standard output is not a terminal, so nobody would see the \
new secret and nothing was written; pass --json, --uri, -Q MODE, --qr-png PATH or \
--qr-svg PATH to show or export it (or -q to write it unseen on purpose)";

pub const Q_TIME_BASED: &str = "Do you want authentication tokens to be time-based";

/// The reuse question; `step` is the time step the file gets, in seconds.
pub fn q_disallow_reuse(step: u32) -> String {
    format!(
        "Refusing a code that was already used means at most one login per time step \
         (every {}),\nbut it defeats an attacker who watched you type a code. (pam_totp \
         always refuses reuse;\nthis line matters for pam_google_authenticator.)\n\
         Do you want to disallow multiple uses of the same authentication\ntoken?",
        duration(u64::from(step))
    )
}

/// Seconds as people say them: whole minutes in minutes, the rest in seconds.
fn duration(secs: u64) -> String {
    if secs >= 60 && secs.is_multiple_of(60) {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{secs}s")
    }
}

/// The wider-window question for TOTP; `wide` is the window a "yes" writes (17, or the
/// service's `max_window=` when lower), so the question promises what is written, and
/// `step` the time step the file gets, so the times it names are the module's.
pub fn q_window_totp(wide: u32, step: u32) -> String {
    // The module's offsets for a window of `wide` codes: -((w-1)/2) ..= w/2 steps.
    let before = wide.saturating_sub(1) / 2;
    let after = wide / 2;
    let reach = duration(u64::from(before.max(after)) * u64::from(step));
    let default_reach = duration(u64::from(step));
    format!(
        "Codes one step before and after the current one are accepted (3 codes), which\n\
         covers {default_reach} of clock difference between the phone and this machine. If \
         the clocks drift\nmore, {wide} codes (the {before} before, the current one and the \
         {after} after) cover about {reach},\nat the price of more codes an attacker could \
         guess.\nDo you want to do so?"
    )
}

/// The wider-window question for HOTP; `wide` as for [`q_window_totp`].
pub fn q_window_hotp(wide: u32) -> String {
    format!(
        "By default the next 3 codes of the counter are accepted. Pressing the button\n\
         without logging in moves the phone ahead; {wide} codes tolerate more of that.\n\
         Do you want to increase the window from 3 to {wide}?"
    )
}

pub const Q_RATE_LIMIT: &str = "Without other protection against guessing, the module can \
limit attempts:\nno more than 3 login attempts every 30s.\nDo you want to enable \
rate-limiting?";
