//! One enrollment (or scratch-code regeneration), start to finish.
//!
//! Order matters for the user: everything that can be decided without them
//! (unanswered questions in non-interactive mode, an existing file without
//! `-f`, QR encoding) fails before a secret is shown, so nobody scans a code
//! that is then not saved. Nothing is written until every question is answered.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use totp_core::code;
use totp_core::gafile::{self, EnrollSettings, GaFile, GaFileError, MAX_FILE_LEN};
use totp_core::ledger::OriginKey;
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::policy::Policy;
use totp_core::secret::Secret;
use totp_core::state::{STORE_KEY_LEN, StoreKey, UserState};
use totp_core::uri::{KeyUri, Kind};
use totp_core::verify;
use zeroize::Zeroizing;

use crate::args::{AlgorithmArg, ModeChoice, Request, WindowChoice};
use crate::caps::{self, Caps};
use crate::console::Console;
use crate::error::Error;
use crate::output::{self, EnrollJson, RateLimitJson, RegenerateJson};
use crate::qr::{self, Choice, Matrix, QrMode};
use crate::random;
use crate::target::{self, Target};
use crate::write;

const FLAGS_MODE: &str = "-t/--time-based or -c/--counter-based";
const FLAGS_REUSE: &str = "-d/--disallow-reuse or -D/--allow-reuse";
const FLAGS_WINDOW: &str = "-w/--window-size N or -W/--minimal-window";
const FLAGS_RATE: &str = "-r/--rate-limit N with -R/--rate-time SECONDS, or -u/--no-rate-limit";
const FLAGS_FORCE: &str = "-f/--force";
const FLAGS_CONFIRM: &str = "-C/--no-confirm";

/// google-authenticator's "yes" answers.
const WIDE_WINDOW: u32 = 17;
const ASKED_RATE_LIMIT: (u32, u32) = (3, 30);
const DEFAULT_STEP: u32 = 30;
/// HOTP files start at counter 1 (`" HOTP_COUNTER 1`), the next one the module
/// expects; the URI says the same so the app and the server agree.
const FIRST_HOTP_COUNTER: u64 = 1;

pub fn run(req: Request, console: &mut Console) -> Result<(), Error> {
    if req.print_file {
        // No local account or file: the fleet's secret source names the user.
        return enroll(&req, None, console);
    }
    let caller = crate::host::caller();
    let service = req.service.as_deref().map(|name| target::Service {
        name,
        pam_dir: req.pam_dir.as_deref(),
    });
    let target = target::resolve(
        caller,
        req.user.as_deref(),
        req.secret_path.as_deref(),
        service,
    )?;
    for note in &target.notes {
        console.say(note)?;
    }
    if req.regenerate {
        regenerate(&req, &target, console)
    } else {
        enroll(&req, Some(&target), console)
    }
}

/// Questions no flag answered, named by the flags that answer them. The reuse
/// question depends on the mode: an unknown mode is already one missing answer.
fn missing_answers(req: &Request) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if req.mode.is_none() {
        missing.push(FLAGS_MODE);
    }
    if req.mode == Some(ModeChoice::Totp) && req.disallow_reuse.is_none() {
        missing.push(FLAGS_REUSE);
    }
    if req.window.is_none() {
        missing.push(FLAGS_WINDOW);
    }
    if req.rate_limit.is_none() {
        missing.push(FLAGS_RATE);
    }
    missing
}

fn algorithm(a: AlgorithmArg) -> Algorithm {
    match a {
        AlgorithmArg::Sha1 => Algorithm::Sha1,
        AlgorithmArg::Sha256 => Algorithm::Sha256,
        AlgorithmArg::Sha512 => Algorithm::Sha512,
    }
}

pub fn now_unix() -> Result<i64, Error> {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::failed("the system clock is set before 1970"))?;
    i64::try_from(d.as_secs()).map_err(|_| Error::failed("the system clock is out of range"))
}

fn minimal_window(totp: bool) -> u32 {
    if totp { 3 } else { 1 }
}

/// Refuses a window the module would cut at every login: one cap for both, read
/// from the same place (see `caps`). Checked before any secret is shown.
fn check_window(req: &Request, totp: bool, caps: &Caps) -> Result<(), Error> {
    let (w, flag) = match req.window {
        Some(WindowChoice::Size(w)) => (w, "-w/--window-size"),
        Some(WindowChoice::Minimal) => (minimal_window(totp), "-W/--minimal-window"),
        None => return Ok(()),
    };
    if w > caps.max_window {
        return Err(Error::usage(format!(
            "{flag} asks for {w} codes, but the module accepts at most {} ({}); \
             it would cut the window at every login",
            caps.max_window, caps.source
        )));
    }
    Ok(())
}

/// Whether the new secret will reach a person or a program: a terminal, an
/// output or export flag, or `-q` (writing it unseen on purpose). Otherwise a
/// scripted run would enroll the user with a secret nobody ever had.
fn secret_reaches_someone(req: &Request, console: &Console) -> bool {
    req.quiet
        || req.json
        // An explicit export, even into a pipe: the file is the secret's destination.
        || req.print_file
        || req.print_uri
        || req.qr_mode.is_some()
        || req.qr_png.is_some()
        || req.qr_svg.is_some()
        || console.human_is_tty()
}

/// Everything decided about one new enrollment.
struct Enrollment {
    totp: bool,
    step: u32,
    algorithm: Algorithm,
    digits: Digits,
    secret: Secret,
    scratch: Zeroizing<Vec<u32>>,
    label: String,
    issuer: String,
    key: KeyUri,
    uri: Zeroizing<String>,
}

/// `target` is `None` with `--print-file`: the file goes to standard output.
fn enroll(req: &Request, target: Option<&Target>, console: &mut Console) -> Result<(), Error> {
    if console.non_interactive() {
        let missing = missing_answers(req);
        if !missing.is_empty() {
            return Err(Error::MissingAnswers(missing));
        }
    }
    if !secret_reaches_someone(req, console) {
        return Err(Error::usage(output::UNSEEN_SECRET));
    }
    // Asked with -f too: the look walks the directories the write will, so a place
    // the write would refuse is refused before anyone scans a secret for it.
    let found = match target {
        Some(target) => write::target_exists(target)?,
        None => None,
    };
    let replacing = found.is_some();
    if let Some(target) = target
        && !req.force
    {
        match found {
            // Exit 3 tells a fleet's script "enrolled before": never of an entry no
            // login reads as a secret file (a symlink, a directory), which leaves the
            // account locked out.
            Some(false) => {
                return Err(Error::failed(format!(
                    "\"{}\" is there but is not a regular file (a symbolic link, a \
                     directory or another kind): no login reads it; remove it, or pass \
                     -f/--force to replace a symbolic link",
                    target.path().display()
                )));
            }
            // Nor of a file no login can use: the account is locked out as surely.
            Some(true) => {
                if let Some(why) = write::existing_unusable(target)? {
                    return Err(Error::failed(format!(
                        "\"{}\" is there but no login can use it: {why}; fix it, or pass \
                         -f/--force to replace it",
                        target.path().display()
                    )));
                }
                return Err(Error::Exists(target.path().to_path_buf()));
            }
            None => {}
        }
    }
    for qr in [&req.qr_png, &req.qr_svg].into_iter().flatten() {
        write::check_qr_dir(target, qr)?;
    }

    let totp = match req.mode {
        Some(m) => m == ModeChoice::Totp,
        None => console.ask_yes_no(output::Q_TIME_BASED, FLAGS_MODE)?,
    };
    let caps = caps::load(req.service.as_deref(), req.pam_dir.as_deref())?;
    check_window(req, totp, &caps)?;
    let e = new_enrollment(req, target, totp)?;

    // -Q is an explicit request to show, as are --json and --uri for their own
    // output; otherwise only a terminal gets the secret (rule R29).
    let show = !req.quiet && (req.qr_mode.is_some() || (!req.json && console.human_is_tty()));
    let matrix = if (show && req.qr_mode != Some(QrMode::None))
        || req.qr_png.is_some()
        || req.qr_svg.is_some()
    {
        Some(Matrix::new(&e.uri).map_err(|err| Error::failed(err.to_string()))?)
    } else {
        None
    };
    let png = match (&req.qr_png, &matrix) {
        (Some(_), Some(m)) => Some(m.png().map_err(|err| Error::failed(err.to_string()))?),
        _ => None,
    };
    let svg = match (&req.qr_svg, &matrix) {
        (Some(_), Some(m)) => Some(m.svg()),
        _ => None,
    };

    if show {
        // What is printed after display() until the user can read the screen at rest:
        // the next question, or, when none is left, the rest of the run and the shell's
        // prompt. All of it pushes the code up.
        let asks_more = (target.is_some() && !req.force && !console.non_interactive())
            || (totp && req.disallow_reuse.is_none())
            || req.window.is_none()
            || req.rate_limit.is_none();
        let trailing = match target {
            Some(target) if !asks_more => {
                let rest = trailing_text(
                    &e,
                    req.print_uri && !req.json,
                    (!req.json).then_some((target.path(), replacing)),
                );
                qr::screen_rows(&rest, console.terminal().columns) + 1
            }
            _ => 1,
        };
        display(req, console, &e, matrix.as_ref(), trailing)?;
    } else if req.print_file {
        if !req.quiet && !req.json {
            crate::error::to_stderr(output::PRINTED_NOT_SHOWN);
        }
    } else if !req.quiet && !req.json && !req.print_uri {
        // Only a QR file carries the secret; say where it went.
        crate::error::to_stderr(output::NOT_SHOWN);
    }

    if let Some(target) = target
        && !req.force
        && !console.non_interactive()
        && !console.ask_yes_no(
            &format!(
                "Do you want me to update your \"{}\" file?",
                target.path().display()
            ),
            FLAGS_FORCE,
        )?
    {
        // A URI on standard output is read as the secret that was saved: declined, no
        // file holds it, and a script must not take it for one (JSON says
        // "written":false instead).
        if req.print_uri && !req.json {
            return Err(Error::failed(format!(
                "not saved: the new secret was not written to \"{}\", so its URI is not \
                 printed",
                target.path().display()
            )));
        }
        // Declining is an answer, not a failure (google-authenticator exits 0 too).
        return publish(req, target, &e, None);
    }

    let disallow_reuse = if totp {
        match req.disallow_reuse {
            Some(d) => d,
            None => console.ask_yes_no(&output::q_disallow_reuse(e.step), FLAGS_REUSE)?,
        }
    } else {
        false
    };
    let window = match req.window {
        Some(WindowChoice::Size(w)) => Some(w),
        Some(WindowChoice::Minimal) => Some(minimal_window(totp)),
        None => {
            let wide = WIDE_WINDOW.min(caps.max_window);
            let q = if totp {
                output::q_window_totp(wide, e.step)
            } else {
                output::q_window_hotp(wide)
            };
            console.ask_yes_no(&q, FLAGS_WINDOW)?.then_some(wide)
        }
    };
    let rate_limit = match req.rate_limit {
        Some(r) => r,
        None => console
            .ask_yes_no(output::Q_RATE_LIMIT, FLAGS_RATE)?
            .then_some(ASKED_RATE_LIMIT),
    };

    let settings = EnrollSettings {
        totp,
        disallow_reuse,
        step: if totp { req.step_size } else { None },
        window,
        rate_limit,
        algorithm: e.algorithm,
        digits: e.digits,
        scratch_codes: e.scratch.to_vec(),
    };
    let file = GaFile::new_enrollment(&e.secret, &settings)
        .map_err(|err| Error::failed(format!("cannot build the secret file: {err}")))?;

    // QR files first, under temp names: if one of them cannot be written, the secret
    // file is not written either. They take their names only once the secret file has
    // taken its own; if it fails, only their temp files go, and an image from an
    // earlier enrolment stays as it was. The JSON or URI is printed before the new
    // secret file replaces anything, and a failed print leaves the old one. Either way
    // a failed run leaves no half-enrollment behind.
    let mut saved = Saved {
        replaced: replacing,
        window,
        disallow_reuse,
        rate_limit,
        png: None,
        svg: None,
    };
    let mut pending = Vec::new();
    let discard = |pending: Vec<write::PendingQr>| {
        for qr in pending {
            write::discard_qr(target, qr);
        }
    };
    if let (Some(path), Some(bytes)) = (&req.qr_png, &png) {
        let qr = write::write_qr_file(target, path, bytes, req.force)?;
        saved.png = Some(qr.path.clone());
        pending.push(qr);
    }
    if let (Some(path), Some(text)) = (&req.qr_svg, &svg) {
        match write::write_qr_file(target, path, text.as_bytes(), req.force) {
            Ok(qr) => {
                saved.svg = Some(qr.path.clone());
                pending.push(qr);
            }
            Err(err) => {
                discard(pending);
                return Err(err);
            }
        }
    }
    let Some(target) = target else {
        // --print-file: nothing was written (clap refuses the QR file flags with it).
        return print_file(req, console, &e, &saved, &file);
    };
    let mut opened = false;
    let written = write::write_secret(target, &file.to_bytes(), caps.file_mode, req.force, || {
        publish(req, target, &e, Some(&saved))?;
        opened = true;
        Ok(())
    });
    let placed = if written.is_ok() {
        place_qrs(Some(target), pending)
    } else {
        discard(pending);
        Ok(())
    };
    if req.json && opened {
        // The JSON object is complete only now, so "written" is never claimed early.
        let closed = print_stdout(output::written_end(written.is_ok()));
        if written.is_ok() {
            closed?;
        }
    }
    written?;
    placed?;
    report_written(req, console, target, &saved)
}

/// Puts the QR images in place once the secret file is; the secret stays written if
/// one cannot be (the rest are discarded), and the error says so.
fn place_qrs(target: Option<&Target>, pending: Vec<write::PendingQr>) -> Result<(), Error> {
    let mut pending = pending.into_iter();
    while let Some(qr) = pending.next() {
        let path = qr.path.clone();
        if let Err(err) = write::place_qr(target, qr) {
            for rest in pending {
                write::discard_qr(target, rest);
            }
            return Err(Error::failed(format!(
                "the secret file was written, but the QR image \"{}\" was not put in place: {err}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `--print-file`: the file's exact bytes on standard output, or its text in the JSON.
fn print_file(
    req: &Request,
    console: &mut Console,
    e: &Enrollment,
    saved: &Saved,
    file: &GaFile,
) -> Result<(), Error> {
    let bytes = file.to_bytes();
    // The file is ASCII by construction (base32 and option lines).
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::failed("the new secret file is not text"))?;
    if req.json {
        let json = enroll_json(e, None, Some(saved), Some(text));
        return print_stdout(&output::to_json_line(&json)?);
    }
    print_stdout(text)?;
    if !req.quiet && console.human_is_tty() {
        console.say("Printed the secret file on standard output; nothing was written here.\n")?;
    }
    Ok(())
}

/// What the file holds and which QR files were written, for the report.
struct Saved {
    /// An earlier enrolment was at the path (only with -f).
    replaced: bool,
    window: Option<u32>,
    disallow_reuse: bool,
    rate_limit: Option<(u32, u32)>,
    png: Option<PathBuf>,
    svg: Option<PathBuf>,
}

fn new_enrollment(req: &Request, target: Option<&Target>, totp: bool) -> Result<Enrollment, Error> {
    let algorithm = algorithm(req.algorithm);
    let digits =
        Digits::new(req.digits).ok_or_else(|| Error::usage("--digits must be 6, 7 or 8"))?;
    let step = req.step_size.unwrap_or(DEFAULT_STEP);
    let secret = random::new_secret()?;
    let scratch = Zeroizing::new(random::scratch_codes(req.scratch_codes)?);
    let host = crate::host::hostname();
    let label = match (&req.label, target) {
        (Some(label), _) => label.clone(),
        (None, Some(t)) => format!("{}@{host}", t.user.name),
        // clap makes --print-file require -l; keep the message should that change.
        (None, None) => return Err(Error::usage("--print-file needs -l/--label")),
    };
    let issuer = req.issuer.clone().unwrap_or(host);
    let kind = if totp {
        Kind::Totp { period: step }
    } else {
        Kind::Hotp {
            counter: FIRST_HOTP_COUNTER,
        }
    };
    let key = KeyUri::new(kind, &issuer, &label, &secret, algorithm, digits)
        .map_err(|err| Error::usage(format!("cannot build the otpauth URI: {err}")))?;
    let uri = key.to_uri();
    Ok(Enrollment {
        totp,
        step,
        algorithm,
        digits,
        secret,
        scratch,
        // Without an `Issuer:` prefix that repeated the issuer (`KeyUri::new`).
        label: key.account.clone(),
        issuer,
        key,
        uri,
    })
}

/// What follows the code on screen when no question is left: the URI with `--uri`,
/// and `wrote` (the file's path, and whether it replaced one) unless `--json`. It
/// holds the secret with `--uri`, hence a buffer sized for it (`output::secret_text`).
fn trailing_text(
    e: &Enrollment,
    print_uri: bool,
    wrote: Option<(&std::path::Path, bool)>,
) -> Zeroizing<String> {
    output::secret_text(|out| {
        if print_uri {
            out.write_str(&e.uri)?;
            out.write_str("\n")?;
        }
        if let Some((path, replacing)) = wrote {
            out.write_str(&output::wrote(path))?;
            if replacing {
                out.write_str(output::REPLACED)?;
            }
        }
        Ok(())
    })
}

/// Everything between the code and the first prompt: the secret, notes on settings
/// apps ignore, and unless confirming, the current `code` and the scratch codes.
/// Written straight into a buffer sized for it (`output::secret_text`).
fn after_text(e: &Enrollment, code: Option<&str>) -> Zeroizing<String> {
    output::secret_text(|out| {
        writeln!(out, "Your new secret key is: {}", e.key.secret_base32())?;
        if e.algorithm != Algorithm::Sha1 || e.digits != Digits::SIX {
            writeln!(
                out,
                "Codes use {} with {} digits: pam_google_authenticator cannot check them \
                 (pam_totp can), and some apps ignore these settings.",
                e.algorithm.name(),
                e.digits
            )?;
        }
        // The Key Uri Format says Google Authenticator ignores `period` as it does
        // `algorithm` and `digits`; such an app shows 30-second codes this file refuses.
        if e.totp && e.step != DEFAULT_STEP {
            writeln!(
                out,
                "Codes change every {} seconds: some apps ignore this setting of the QR \
                 code and show {DEFAULT_STEP}-second codes, which will not log in.",
                e.step
            )?;
        }
        if let Some(code) = code {
            if e.totp {
                writeln!(out, "Your current verification code is {code}")?;
            } else {
                writeln!(
                    out,
                    "Your verification code for code {FIRST_HOTP_COUNTER} is {code}"
                )?;
            }
            if !e.scratch.is_empty() {
                output::write_scratch_block(out, &e.scratch)?;
            }
        }
        Ok(())
    })
}

fn display(
    req: &Request,
    console: &mut Console,
    e: &Enrollment,
    matrix: Option<&Matrix>,
    trailing: usize,
) -> Result<(), Error> {
    let confirming = e.totp && req.confirm && !console.non_interactive();
    // Everything between the code and the first prompt, built before the code is drawn:
    // a code whose top scrolled away under these lines does not scan, and the note
    // about the window's height has to count them.
    let code = if confirming {
        None
    } else {
        let code = if e.totp {
            let now = now_unix()?;
            otp::totp(&e.secret, now, u64::from(e.step), e.algorithm, e.digits)
                .ok_or_else(|| Error::failed("the system clock is set before 1970"))?
        } else {
            otp::hotp(&e.secret, FIRST_HOTP_COUNTER, e.algorithm, e.digits)
        };
        Some(otp::format_code(code, e.digits))
    };
    let after = after_text(e, code.as_deref().map(String::as_str));
    if let Some(m) = matrix {
        let term = console.terminal();
        match qr::choose(req.qr_mode, term, m.size()) {
            Choice::Draw(mode) => {
                let text = m.render_text(mode);
                console.say(&text)?;
                // Confirming, the prompt for the code comes next.
                let below =
                    qr::screen_rows(&after, term.columns) + if confirming { 1 } else { trailing };
                if let Some(note) = qr::height_note(term, &text, below) {
                    console.say(&note)?;
                }
            }
            // A code that wraps or turns into wrong glyphs does not scan, and a
            // scanner's failure says nothing about why.
            Choice::Skip(why) => console.say(&format!(
                "No QR code: {why}.\nType the secret key below into the app, or widen the \
                 window and run totp-enroll again (--qr-png FILE writes the QR code to an \
                 image, -Q MODE draws it anyway).\n"
            ))?,
        }
    }
    console.say(&after)?;
    if confirming {
        confirm(console, e)?;
        if !e.scratch.is_empty() {
            console.say(&output::scratch_block(&e.scratch))?;
        }
    }
    Ok(())
}

/// Asks for a code from the app until it matches or the user skips. A wrong
/// code never reveals the right one: that would let anyone at the keyboard
/// finish the enrollment without the phone (GA prints it; rule R29).
fn confirm(console: &mut Console, e: &Enrollment) -> Result<(), Error> {
    loop {
        let Some(answer) = console.ask_line("Enter code from app (-1 to skip): ", FLAGS_CONFIRM)?
        else {
            return Err(Error::EndOfInput(FLAGS_CONFIRM));
        };
        let answer = answer.trim();
        if answer == "-1" {
            console.say("Code confirmation skipped\n")?;
            return Ok(());
        }
        let now = now_unix()?;
        if code_matches(e, answer, now) {
            console.say("Code confirmed\n")?;
            return Ok(());
        }
        // Apps show "123 456"; the login prompt, like GA's, takes digits only. Saying
        // "incorrect" to a right code sends the user hunting for a clock problem.
        let digits = Zeroizing::new(
            answer
                .chars()
                .filter(|c| !matches!(c, ' ' | '-'))
                .collect::<String>(),
        );
        if digits.as_str() != answer && code_matches(e, &digits, now) {
            console.say(
                "Code confirmed. At login, type the digits without spaces or dashes: \
                 the prompt refuses them.\n",
            )?;
            return Ok(());
        }
        if let Some(ignored) = ignored_settings(e, &digits, now) {
            // Skipping would save a secret this phone can never log in with.
            return Err(Error::AppIgnoredSettings(ignored));
        }
        console.say("Code incorrect. Try again.\n")?;
    }
}

/// Whether a login would accept `answer` now, with the default window (one step
/// either way: the phone's clock may be a little off, and typing takes time). The
/// check is the module's own (`verify`, every position compared in constant time),
/// run on a file that holds only the new secret: no scratch codes, no replay mark.
/// The window the user picks later is not asked for yet, and a wider one only adds
/// steps.
fn code_matches(e: &Enrollment, answer: &str, now: i64) -> bool {
    let settings = EnrollSettings {
        totp: true,
        disallow_reuse: false,
        step: Some(e.step),
        window: None,
        rate_limit: None,
        algorithm: e.algorithm,
        digits: e.digits,
        scratch_codes: Vec::new(),
    };
    let Ok(file) = GaFile::new_enrollment(&e.secret, &settings) else {
        return false;
    };
    let policy = Policy::default();
    // The whole answer is the code: no password prefix.
    let candidates = code::candidates(answer.as_bytes(), e.digits, false);
    // No store is involved: any key names the one enrolment the fresh state has none of.
    let key = StoreKey::new([0; STORE_KEY_LEN]);
    let Ok(prepared) = verify::prepare(&file, &policy, &candidates, now, &key) else {
        return false;
    };
    // A fresh state: nothing used, nothing throttled, so only the code decides.
    let attempt = verify::Attempt {
        origin: OriginKey::from_items(None, None),
        rhost: None,
        local: false,
        now,
        continued: false,
        boot_time: None,
        store_complete_since: 0,
        keep_ga_lines: false,
    };
    prepared
        .decide(&UserState::default(), &policy, &attempt)
        .is_ok_and(|d| d.verdict.is_accepted())
}

/// When `answer` is a code of this secret under the defaults an app falls back to
/// (SHA1, 6 digits, 30 s) for one or more of the settings the URI names, the settings
/// the app ignored, as the flags that chose them. Some apps (Google Authenticator
/// among them, for years) read only the secret. Never true for a default enrolment.
fn ignored_settings(e: &Enrollment, answer: &str, now: i64) -> Option<IgnoredSettings> {
    let algorithms = [e.algorithm, Algorithm::Sha1];
    let digits = [e.digits, Digits::SIX];
    let steps = [e.step, DEFAULT_STEP];
    let mut found = None;
    for (ai, alg) in algorithms.iter().enumerate() {
        for (di, dig) in digits.iter().enumerate() {
            for (si, step) in steps.iter().enumerate() {
                let ignored = IgnoredSettings {
                    algorithm: (ai == 1 && *alg != e.algorithm).then_some(e.algorithm),
                    digits: (di == 1 && *dig != e.digits).then_some(e.digits),
                    step: (si == 1 && *step != e.step).then_some(e.step),
                };
                if ignored.is_empty() || found.is_some() {
                    continue;
                }
                let step = u64::from(*step);
                let step_secs = i64::try_from(step).unwrap_or(i64::MAX);
                let hit = [
                    now.saturating_sub(step_secs),
                    now,
                    now.saturating_add(step_secs),
                ]
                .into_iter()
                .filter_map(|t| otp::totp(&e.secret, t, step, *alg, *dig))
                .any(|c| *otp::format_code(c, *dig) == *answer);
                if hit {
                    found = Some(ignored);
                }
            }
        }
    }
    found
}

/// The settings of the URI an app did not apply, each with the value it should have.
#[derive(Debug, PartialEq, Eq)]
pub struct IgnoredSettings {
    pub algorithm: Option<Algorithm>,
    pub digits: Option<Digits>,
    pub step: Option<u32>,
}

impl IgnoredSettings {
    fn is_empty(&self) -> bool {
        self.algorithm.is_none() && self.digits.is_none() && self.step.is_none()
    }
}

impl std::fmt::Display for IgnoredSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let mut flags = Vec::new();
        if let Some(a) = self.algorithm {
            parts.push(format!("algorithm={} (it used SHA1)", a.name()));
            flags.push("--algorithm");
        }
        if let Some(d) = self.digits {
            parts.push(format!("digits={d} (it used 6)"));
            flags.push("--digits");
        }
        if let Some(s) = self.step {
            parts.push(format!("period={s} (it used {DEFAULT_STEP})"));
            flags.push("-S/--step-size");
        }
        write!(
            f,
            "the code you entered is the one an app shows when it ignores {} of the \
             QR code, so this phone would never log in; nothing was written. Delete this \
             account from the app, then run totp-enroll again without {} or with an app \
             that honours these settings",
            parts.join(", "),
            flags.join(", ")
        )
    }
}

/// The outputs that carry the new secret to the program that asked for them (`--json`,
/// `--uri`). `saved` is `None` when the user declined to save; otherwise this runs
/// before the new file takes its place (`write::write_secret`), and the JSON object is
/// left open: whether the file was written is its last key, printed once known.
fn publish(
    req: &Request,
    target: &Target,
    e: &Enrollment,
    saved: Option<&Saved>,
) -> Result<(), Error> {
    if req.json {
        let json = enroll_json(e, Some(target), saved, None);
        let text = match saved {
            None => output::to_json_line(&json)?,
            Some(_) => output::to_open_json(&json)?,
        };
        return print_stdout(&text);
    }
    if req.print_uri {
        print_stdout(&output::secret_text(|out| {
            out.write_str(&e.uri)?;
            out.write_str("\n")
        }))?;
    }
    Ok(())
}

/// What a person reads once the new file is in place. The enrolment is done by then
/// and its secret shown: a reader that already went away (`--uri | head -n 1`) does not
/// turn it into a failure, which a script would answer by enrolling again with `-f`
/// and so replace the secret it had just handed out.
fn report_written(
    req: &Request,
    console: &mut Console,
    target: &Target,
    saved: &Saved,
) -> Result<(), Error> {
    if req.json || req.quiet {
        return Ok(());
    }
    let said = console.say(&output::wrote(target.path())).and_then(|()| {
        if saved.replaced {
            console.say(output::REPLACED)
        } else {
            Ok(())
        }
    });
    match said {
        Err(Error::ClosedOutput) => Ok(()),
        said => said,
    }
}

/// The `--json` result. `saved` is `None` when the user declined to save; `target` is
/// `None` and `printed` the file text with `--print-file`. Without either, the file is
/// still to be written and the object has no `written` key yet.
fn enroll_json<'a>(
    e: &'a Enrollment,
    target: Option<&'a Target>,
    saved: Option<&'a Saved>,
    printed: Option<&'a str>,
) -> EnrollJson<'a> {
    EnrollJson {
        action: "enroll",
        user: target.map(|t| t.user.name.as_str()),
        path: target.map(Target::path),
        // Still to be installed: the caller prints the key once the rename is done.
        written: (target.is_none() || saved.is_none()).then_some(false),
        replaced: saved.is_some_and(|s| s.replaced),
        kind: if e.totp { "totp" } else { "hotp" },
        secret: e.key.secret_base32(),
        uri: &e.uri,
        scratch_codes: output::ScratchCodes(&e.scratch),
        label: &e.label,
        issuer: &e.issuer,
        algorithm: e.algorithm.name(),
        digits: e.digits.get(),
        period: e.totp.then_some(e.step),
        counter: (!e.totp).then_some(FIRST_HOTP_COUNTER),
        window_size: saved.and_then(|s| s.window),
        disallow_reuse: saved.is_some_and(|s| s.disallow_reuse),
        rate_limit: saved
            .and_then(|s| s.rate_limit)
            .map(|(attempts, interval_secs)| RateLimitJson {
                attempts,
                interval_secs,
            }),
        qr_png: saved.and_then(|s| s.png.as_deref()),
        qr_svg: saved.and_then(|s| s.svg.as_deref()),
        file: printed,
    }
}

/// Writes `text` to standard output; a closed reader is [`Error::ClosedOutput`].
/// Written to the descriptor, not through std's standard output buffer: the text may
/// hold the secret (`--json`, `--uri`), and a line without its end (an open JSON
/// object) would stay copied in that buffer, which nothing wipes, until the exit.
pub fn print_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::fd::AsFd;
    let mut out = std::io::stdout().lock();
    let failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Error::ClosedOutput,
        _ => Error::failed(format!("cannot write to standard output: {e}")),
    };
    // What was written through the buffer goes first.
    out.flush().map_err(failed)?;
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        match nix::unistd::write(out.as_fd(), rest) {
            Ok(0) => return Err(failed(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(failed(e.into())),
        }
    }
    Ok(())
}

fn regenerate(req: &Request, target: &Target, console: &mut Console) -> Result<(), Error> {
    let show = !req.quiet && !req.json && console.human_is_tty();
    if !req.quiet && !req.json && !show {
        // The old codes would be gone and the new ones never seen.
        return Err(Error::usage(
            "standard output is not a terminal: pass --json to receive the new scratch \
             codes (or -q to replace them without showing any)",
        ));
    }
    let codes = Zeroizing::new(random::scratch_codes(req.scratch_codes)?);
    let updated = |contents: &[u8]| {
        let mut file = GaFile::parse(contents)
            .map_err(|err| Error::failed(format!("\"{}\": {err}", target.path().display())))?;
        file.regenerate_scratch_codes(&codes)
            .map_err(|err| match err {
                // The file is at most MAX_FILE_LEN bytes only after the new codes are in: it
                // was within it before, so "larger than" would send the admin looking for
                // a file that is not there.
                GaFileError::TooLarge => Error::failed(format!(
                    "cannot replace the scratch codes: \"{}\" has no room for {} {} (a secret \
                 file holds at most {MAX_FILE_LEN} bytes); remove lines it does not need, \
                 or ask for fewer with -e",
                    target.path().display(),
                    codes.len(),
                    if codes.len() == 1 {
                        "scratch code"
                    } else {
                        "scratch codes"
                    },
                )),
                err => Error::failed(format!("cannot replace the scratch codes: {err}")),
            })?;
        // GA checks the size only when it reads: a file its next login takes past the
        // cap is refused from then on, by GA and the module alike.
        if file.as_bytes().len() > totp_core::resync::rewrite_limit(contents.len()) {
            return Err(Error::failed(format!(
                "cannot replace the scratch codes: the new ones would take \"{}\" within {} \
                 bytes of the {} bytes GA and the module read at most, and GA's next login \
                 could take it past them (both then refuse it); nothing was changed. Make \
                 room in the file (remove what is not GA's or pam_totp's), or ask for fewer \
                 codes",
                target.path().display(),
                totp_core::resync::GA_LOGIN_RESERVE,
                gafile::MAX_FILE_LEN
            )));
        }
        Ok::<_, Error>(file)
    };
    // What can be refused (no file, a directory a login would refuse, a file that does
    // not parse) is refused before a code is shown, as for an enrolment; the update
    // below reads the file again under its lock.
    let shown = write::as_writer(target, || updated(&write::read_existing(target)?.contents))?;
    // The enrolment the codes are printed for: the update refuses any other. The file
    // is read again under the lock after the print, and `-f` may have replaced it
    // meanwhile (a print blocked on a full pipe or a stopped terminal); the codes must
    // not replace those of an enrolment nobody printed them for. The secret is the
    // enrolment, not the inode: a login that rewrites the file (a used scratch code, a
    // HOTP counter, the rate limit) keeps it, and the update keeps those changes.
    let shown_secret = shown
        .secret()
        .map_err(|err| Error::failed(format!("\"{}\": {err}", target.path().display())))?;
    drop(shown);
    // The new codes reach their reader before the old ones are gone, so a failed print
    // leaves the file as it was (rule R29); and before the lock is taken, so a reader
    // that does not read (a full pipe, a stopped terminal) never holds up a login
    // waiting for it. The JSON object stays open until the file holds these codes.
    if req.json {
        let json = RegenerateJson {
            action: "regenerate-scratch-codes",
            user: &target.user.name,
            path: target.path(),
            scratch_codes: output::ScratchCodes(&codes),
            written: None,
        };
        print_stdout(&output::to_open_json(&json)?)?;
    } else if show {
        console.say(&output::scratch_block(&codes))?;
    }
    let replaced = write::as_writer(target, || {
        let mut locked = write::lock_existing(target)?;
        let file = updated(locked.contents())?;
        if file.secret().ok().as_ref() != Some(&shown_secret) {
            return Err(Error::failed(format!(
                "\"{}\" changed since the codes were printed (a new enrolment replaced \
                 it): they were not saved; run again",
                target.path().display()
            )));
        }
        write::replace_existing(target, &mut locked, &file.to_bytes())
        // The lock goes with `locked`, before anything more is printed.
    });
    if req.json {
        let closed = print_stdout(output::written_end(replaced.is_ok()));
        if replaced.is_ok() {
            closed?;
        }
    }
    if let Err(err) = replaced {
        if show {
            console
                .say("The scratch codes above were not saved; the file's codes are unchanged.\n")?;
        }
        return Err(err);
    }
    if show {
        console.say(&format!(
            "Replaced the scratch codes in \"{}\"; the secret is unchanged.\n",
            target.path().display()
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment(step: u32, digits: Digits) -> Enrollment {
        let secret = Secret::from_slice(b"12345678901234567890");
        let key = KeyUri::new(
            Kind::Totp { period: step },
            "i",
            "a",
            &secret,
            Algorithm::Sha1,
            digits,
        )
        .expect("valid");
        let uri = key.to_uri();
        Enrollment {
            totp: true,
            step,
            algorithm: Algorithm::Sha1,
            digits,
            secret,
            scratch: Zeroizing::new(vec![]),
            label: "a".into(),
            issuer: "i".into(),
            key,
            uri,
        }
    }

    /// The buffers that hold the secret on its way to the screen are sized for what
    /// they hold: one that grew would leave the old one, secret and all, unwiped. The
    /// CLI takes a label of any length, and a capacity above the length is the sign of
    /// a growth (each at least doubles it).
    #[test]
    fn a_long_label_never_grows_the_buffers_that_hold_the_secret() {
        let mut e = enrollment(30, Digits::SIX);
        let label = "a very long account name ".repeat(80);
        e.key = KeyUri::new(
            Kind::Totp { period: 30 },
            "i",
            &label,
            &e.secret,
            Algorithm::Sha1,
            Digits::SIX,
        )
        .expect("valid");
        e.uri = e.key.to_uri();
        e.scratch = Zeroizing::new(vec![12_345_678; 10]);
        let path = std::path::PathBuf::from("/home/".to_owned() + &"x".repeat(300));
        let rest = trailing_text(&e, true, Some((&path, true)));
        assert!(
            rest.len() > 2048,
            "longer than any fixed guess: {}",
            rest.len()
        );
        assert!(rest.starts_with(e.uri.as_str()));
        assert_eq!(rest.capacity(), rest.len());
        let after = after_text(&e, Some("123456"));
        assert!(after.contains("is 123456\n"));
        assert!(after.ends_with("  12345678\n"));
        assert_eq!(after.capacity(), after.len());
        // Control: the same texts without the URI or the codes are sized as tightly.
        let short = trailing_text(&e, false, None);
        assert_eq!((short.len(), short.capacity()), (0, 0));
        let confirming = after_text(&e, None);
        assert!(!confirming.contains("12345678"));
        assert_eq!(confirming.capacity(), confirming.len());
    }

    #[test]
    fn confirmation_accepts_one_step_either_way_and_nothing_else() {
        // RFC 6238 Appendix B: SHA1, 8 digits, t = 59 -> 94287082 (step 1).
        let e = enrollment(30, Digits::EIGHT);
        assert!(code_matches(&e, "94287082", 59));
        assert!(code_matches(&e, "94287082", 30 + 59));
        assert!(code_matches(&e, "94287082", 5));
        assert!(!code_matches(&e, "94287082", 59 + 60));
        assert!(!code_matches(&e, "9428708", 59));
        assert!(!code_matches(&e, " 94287082", 59));
        assert!(!code_matches(&e, "+4287082", 59));
    }

    #[test]
    fn a_default_enrolment_never_blames_the_app() {
        // Every variant of the defaults is the enrolment itself: nothing to ignore.
        let e = enrollment(30, Digits::SIX);
        for t in [0, 29, 30, 59, 89] {
            let code = otp::format_code(
                otp::totp(&e.secret, t, 30, Algorithm::Sha1, Digits::SIX).expect("code"),
                Digits::SIX,
            );
            assert_eq!(ignored_settings(&e, &code, 59), None);
        }
    }

    #[test]
    fn non_interactive_lists_every_unanswered_question() {
        let req = Request::default();
        assert_eq!(
            missing_answers(&req),
            vec![FLAGS_MODE, FLAGS_WINDOW, FLAGS_RATE]
        );
        let req = Request {
            mode: Some(ModeChoice::Totp),
            ..Request::default()
        };
        assert_eq!(
            missing_answers(&req),
            vec![FLAGS_REUSE, FLAGS_WINDOW, FLAGS_RATE]
        );
        let req = Request {
            mode: Some(ModeChoice::Hotp),
            window: Some(WindowChoice::Minimal),
            rate_limit: Some(None),
            ..Request::default()
        };
        assert!(missing_answers(&req).is_empty());
    }
}
