//! The `pam_totp` lines of a PAM service, read the way libpam reads the stack: the
//! lines of type `auth` that load `pam_totp.so` (by name or path), following
//! `@include`, `include` and `substack`, each parsed by the module's own option parser.
//! The CLIs use it so `--service NAME` means what the module on that service does.
//!
//! Nothing here is a security boundary: the module parses its own arguments whatever
//! this finds. It only keeps the tools from describing a different configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use totp_core::options::{ModuleOptions, SharedFile};

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
    /// The file is missing, unreadable or loops.
    Unusable(String),
    /// A file of the stack that this process may not read (EACCES, EPERM). libpam in
    /// this process would not read it either, while root's services may: a check run
    /// here is not made, rather than a finding about the stack.
    Denied(String),
    /// A pam_totp line has an option the module refuses: every login through it fails.
    /// A finding about the service, where the others are a failure to read it.
    Refused(String),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::BadName(m)
            | StackError::Unusable(m)
            | StackError::Denied(m)
            | StackError::Refused(m) => f.write_str(m),
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
    /// The file the line is in, and its number there (of its first physical line).
    pub file: PathBuf,
    pub line: usize,
    /// Where an `auth` line sits in the stack libpam builds, for the jumps of a control
    /// value (`success=N` skips the next N `auth` modules, whichever they load): its index
    /// among the `auth` module lines, `include`d and `@include`d files flattened in; a
    /// line in an `auth substack` file has the substack line's index in front of its
    /// index within the substack (a jump never leaves a substack). Empty for the other
    /// types.
    pub position: Vec<usize>,
    /// How many `auth` modules come after this line in its stack frame (a substack
    /// counts as one): a jump further than that is libpam's "bad jump in stack", which
    /// fails the login.
    pub after: usize,
}

impl ModuleLine {
    /// `FILE:LINE`, for messages that name the line.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// What libpam does when the module returns `returned` on this line, by its control
    /// value ([`control_action`]). A jump past the end of the line's frame is `bad`
    /// (libpam fails the login).
    pub fn action(&self, returned: Returned) -> Action {
        match control_action(&self.control, returned) {
            Action::Jump(n) if n > self.after => Action::Bad,
            a => a,
        }
    }
}

/// The return values a bracketed control value may name (pam.conf(5)), `default` last.
/// libpam takes the first of them the text at hand starts with.
const RETURN_NAMES: [&str; 33] = [
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
    "default",
];

/// The action words, in the order libpam tries them against the text at hand.
const ACTION_NAMES: [(&str, Action); 6] = [
    ("ignore", Action::Ignore),
    ("ok", Action::Ok),
    ("done", Action::Done),
    ("bad", Action::Bad),
    ("die", Action::Die),
    ("reset", Action::Reset),
];

/// A control value as libpam reads it: the action for each of the module's return
/// values, and why libpam refused the text, if it did (every action is then `bad`).
struct Control {
    actions: [Action; SLOTS],
    problem: Option<&'static str>,
}

/// Reads a control value the way libpam does, the one reading the CLIs use (the
/// audit's run of a stack, `totp-enroll check`'s warnings, the bypass warnings):
/// - a keyword, in any case, stands for its bracketed form; `[required]` is the keyword
///   (libpam strips the brackets first), and a value without brackets is read as if
///   it had them;
/// - blanks may surround `=`; the next pair may follow an action without a blank;
/// - a value named twice takes its last action; `default=` sets only the values not
///   named before it, so the first `default=` counts;
/// - a value never named is `bad`;
/// - a jump number past 2147483647 wraps round as in libpam's int (up to 1.5.2): to a
///   jump, to an action word's code, or to "not set";
/// - anything else (an unknown word, a jump of 0, a missing `=` or action) makes every
///   action `bad`: libpam logs "pam_parse" and loads the line, which then fails every
///   login it runs in.
fn parse_control(control: &str) -> Control {
    let inner = control
        .strip_prefix('[')
        .map_or(control, |c| c.strip_suffix(']').unwrap_or(c));
    let keyword = |k: &str| inner.eq_ignore_ascii_case(k);
    let spelled = if keyword("required") {
        "success=ok new_authtok_reqd=ok ignore=ignore default=bad"
    } else if keyword("requisite") {
        "success=ok new_authtok_reqd=ok ignore=ignore default=die"
    } else if keyword("sufficient") {
        "success=done new_authtok_reqd=done default=ignore"
    } else if keyword("optional") {
        "success=ok new_authtok_reqd=ok default=ignore"
    } else {
        inner
    };
    match read_pairs(spelled.as_bytes()) {
        Ok(set) => Control {
            actions: set.map(|a| a.unwrap_or(Action::Bad)),
            problem: None,
        },
        Err(problem) => Control {
            actions: [Action::Bad; SLOTS],
            problem: Some(problem),
        },
    }
}

/// The return values a control value is read for: [`Returned`]'s, [`Failing`]'s, then
/// [`Fault`]'s.
const SLOTS: usize = 10;

/// The `value=action` pairs of `text`, for [`Returned`]'s values (in its order), then
/// [`Failing`]'s, then [`Fault`]'s; `None`: not named (nor by a `default=`).
fn read_pairs(text: &[u8]) -> Result<[Option<Action>; SLOTS], &'static str> {
    let ours = |name: &str| match name {
        "success" => Some(0),
        "ignore" => Some(1),
        "auth_err" => Some(2),
        "perm_denied" => Some(3),
        "module_unknown" => Some(4),
        "system_err" => Some(5),
        "service_err" => Some(6),
        "conv_err" => Some(7),
        "abort" => Some(8),
        "buf_err" => Some(9),
        _ => None,
    };
    let mut set: [Option<Action>; SLOTS] = [None; SLOTS];
    let mut at = 0;
    let blanks = |at: &mut usize| {
        while text.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
    };
    loop {
        blanks(&mut at);
        if at == text.len() {
            return Ok(set);
        }
        let rest = &text[at..];
        let name = RETURN_NAMES
            .iter()
            .find(|n| rest.starts_with(n.as_bytes()))
            .ok_or("expecting a return value")?;
        at += name.len();
        if at == text.len() {
            return Err("expecting a return value");
        }
        blanks(&mut at);
        if text.get(at) != Some(&b'=') {
            return Err("expecting '='");
        }
        at += 1;
        blanks(&mut at);
        if at == text.len() {
            return Err("expecting an action");
        }
        let rest = &text[at..];
        let action = match ACTION_NAMES
            .iter()
            .find(|(w, _)| rest.starts_with(w.as_bytes()))
        {
            Some(&(w, a)) => {
                at += w.len();
                Some(a)
            }
            None => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 {
                    return Err("expecting a jump number");
                }
                at += digits;
                // libpam up to 1.5.2 sums the digits in a C int without a bound, so a
                // number past 2147483647 wraps round, and the negative ones are its
                // codes for the action words: `auth_err=4294967291` is `reset`, and a
                // wrong code logs in. Read as that libpam does (the one the
                // differential runs); later ones refuse the line, which fails it.
                let n = rest[..digits].iter().fold(0i32, |n, d| {
                    n.wrapping_mul(10).wrapping_add(i32::from(d - b'0'))
                });
                match n {
                    0 => return Err("a jump of 0 (libpam wants ignore for that)"),
                    1.. => Some(Action::Jump(n.unsigned_abs() as usize)),
                    -1 => Some(Action::Ok),
                    -2 => Some(Action::Done),
                    -3 => Some(Action::Bad),
                    -4 => Some(Action::Die),
                    -5 => Some(Action::Reset),
                    // libpam's "not set": a later default= sets it, or it stays bad.
                    -6 => None,
                    // No action libpam knows: the login fails.
                    _ => Some(Action::Bad),
                }
            }
        };
        let Some(action) = action else {
            if let Some(i) = ours(name) {
                set[i] = None;
            }
            continue;
        };
        if *name == "default" {
            for slot in set.iter_mut().filter(|s| s.is_none()) {
                *slot = Some(action);
            }
        } else if let Some(i) = ours(name) {
            set[i] = Some(action);
        }
    }
}

/// What libpam does when a module returns `returned` on a line with control value
/// `control` (see `parse_control`), jumps not bounded by the line's frame.
pub fn control_action(control: &str, returned: Returned) -> Action {
    parse_control(control).actions[returned as usize]
}

/// What libpam does on a line with control value `control` that it runs as `failing`
/// (every login that reaches the line).
pub fn failing_action(control: &str, failing: Failing) -> Action {
    parse_control(control).actions[failing as usize]
}

/// What libpam does when the module fails itself with `fault` on a line with control
/// value `control` (see `parse_control`), jumps not bounded by the line's frame.
pub fn fault_action(control: &str, fault: Fault) -> Action {
    parse_control(control).actions[fault as usize]
}

/// The module's own failures, which are not a wrong code: a fault of the host or of its
/// configuration, or the application's conversation ending. A control value that lets
/// one of them through lets the login past the line without a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `PAM_SYSTEM_ERR`: the state store down, the secret file's lock not granted in
    /// time (its owner can hold it), the clock.
    SystemErr = 5,
    /// `PAM_SERVICE_ERR`: the module's arguments.
    ServiceErr = 6,
    /// `PAM_CONV_ERR`: the conversation failed (a client that hangs up at the prompt).
    ConvErr = 7,
    /// `PAM_ABORT`: the application's conversation aborted.
    Abort = 8,
    /// `PAM_BUF_ERR`: the application's conversation ran out of memory.
    BufErr = 9,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::SystemErr,
        Fault::ServiceErr,
        Fault::ConvErr,
        Fault::Abort,
        Fault::BufErr,
    ];

    /// The return value's name in `<security/_pam_types.h>`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::SystemErr => "PAM_SYSTEM_ERR",
            Fault::ServiceErr => "PAM_SERVICE_ERR",
            Fault::ConvErr => "PAM_CONV_ERR",
            Fault::Abort => "PAM_ABORT",
            Fault::BufErr => "PAM_BUF_ERR",
        }
    }
}

/// An `auth` line libpam installs but never runs a module for: every login that
/// reaches it gets the failure named here, which its control value then acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failing {
    /// A type libpam does not know (`--auth`, `xauth`, `Auth2`, a blank line that is
    /// only a carriage return): it logs "illegal module type" and installs the line for
    /// the type it was reading (`auth` here) as a handler that returns
    /// `PAM_PERM_DENIED`. So does a line with no module (no control value: every
    /// action `bad`).
    MustFail = 3,
    /// A module name with a carriage return in it (a pam.d file with CRLF line ends):
    /// no such file, so libpam returns `PAM_MODULE_UNKNOWN` for it.
    NotLoaded = 4,
}

/// Why libpam refuses the text of `control`, in which case every return value of the
/// line is `bad` (the line fails every login it runs in).
pub fn control_problem(control: &str) -> Option<&'static str> {
    parse_control(control).problem
}

/// The return values of the module a stack's control values are read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    /// `PAM_SUCCESS`: the right code.
    Success = 0,
    /// `PAM_IGNORE`: a skip (`nullok` without a file, an access rule or group option).
    Ignore = 1,
    /// `PAM_AUTH_ERR`: every refusal of an account (a wrong code, a refused file).
    AuthErr = 2,
}

/// An action of a control value (pam.conf(5)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Bad,
    Die,
    Ok,
    Done,
    Reset,
    /// Skip the next N `auth` modules of the stack (or substack); the value itself is
    /// not recorded.
    Jump(usize),
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
    Ok(auth_stack(dir, service)?.0)
}

/// An `auth` line of `service` that loads another module, for what its control value
/// does to the `pam_totp` lines after it.
#[derive(Debug)]
pub struct OtherLine {
    /// The module as written (a name or a path).
    pub module: String,
    pub control: String,
    pub file: PathBuf,
    pub line: usize,
    /// As [`ModuleLine::position`].
    pub position: Vec<usize>,
    /// The `include` or `@include` line that brought the line's file into the stack
    /// frame it runs in (`FILE:LINE` and the name it includes), if it was not the
    /// frame's own file: a `substack` there would give the file a frame of its own.
    pub via: Option<(String, String)>,
    /// As [`ModuleLine::after`]: a `success=N` further than that fails the login.
    pub after: usize,
    /// Set when libpam never runs the line's module: the line never succeeds.
    pub failing: Option<Failing>,
    /// Set for an `include` or `substack` line whose file libpam cannot open (the name
    /// it includes): libpam installs the line itself as one that always fails, every
    /// action `bad`, and carries on with the stack.
    pub unopened: Option<String>,
}

impl OtherLine {
    fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// The lines of `service` (in `dir`) that load the module, of any type, and the
/// `auth` lines that load other modules, each in stack order.
pub fn auth_stack(
    dir: &Path,
    service: &str,
) -> Result<(Vec<ModuleLine>, Vec<OtherLine>), StackError> {
    let mut found = Found::default();
    let mut at = Stacked {
        prefix: Vec::new(),
        next: 0,
    };
    collect(dir, service, 0, false, None, &mut at, &mut found)?;
    let positions: Vec<Vec<usize>> = found
        .modules
        .iter()
        .map(|m| m.position.clone())
        .chain(found.others.iter().map(|o| o.position.clone()))
        .collect();
    for m in &mut found.modules {
        m.after = frame_after(&positions, &m.position);
    }
    for o in &mut found.others {
        o.after = frame_after(&positions, &o.position);
    }
    Ok((found.modules, found.others))
}

/// How many auth modules come after `position` in its stack frame (a substack counts
/// as one), given the positions of every auth line of the service.
fn frame_after(positions: &[Vec<usize>], position: &[usize]) -> usize {
    let Some((&at, frame)) = position.split_last() else {
        return 0;
    };
    // The last module of the frame: the furthest index any line in it (or in a
    // substack of it) has there.
    let last = positions
        .iter()
        .filter(|p| p.len() > frame.len() && p[..frame.len()] == *frame)
        .map(|p| p[frame.len()])
        .max()
        .unwrap_or(at);
    last.saturating_sub(at)
}

/// Whether `later` lies among the `n` auth modules after `from` in `from`'s stack
/// frame (a line of a substack there is skipped with it; a jump never leaves a
/// substack).
pub fn jumped(from: &[usize], later: &[usize], n: usize) -> bool {
    let Some((&at, frame)) = from.split_last() else {
        return false;
    };
    later.len() > frame.len()
        && later[..frame.len()] == *frame
        && (at + 1..=at.saturating_add(n)).contains(&later[frame.len()])
}

/// The module whose `sufficient` before the code line weakens nothing: `pam_rootok`
/// succeeds only for root, who could become anyone without it (su's stock first line).
const ROOT_ONLY_MODULE: &str = "pam_rootok.so";

/// One warning for each other module's `auth` line of `service` that, when it
/// succeeds, ends the stack (`sufficient`, `success=done`) or jumps (`success=N`)
/// past a `pam_totp` auth line after it: the code is not asked then. `pam_rootok.so`
/// is exempt (see `ROOT_ONLY_MODULE`). And one for each `auth` line libpam never runs a
/// module for ([`Failing`]): one whose control value fails the login on that failure
/// fails every login that reaches it; one that jumps on it jumps on every login.
pub fn bypass_warnings(modules: &[ModuleLine], others: &[OtherLine]) -> Vec<String> {
    let mut out = Vec::new();
    for other in others {
        let name = other.module.rsplit('/').next().unwrap_or(&other.module);
        if let Some(failing) = other.failing {
            let why = match failing {
                Failing::MustFail if other.unopened.is_some() => {
                    "libpam cannot open the file it includes (it logs \"unable to open \
                     config\") and installs the line as an auth line that returns \
                     PAM_PERM_DENIED, every action bad"
                }
                Failing::MustFail => {
                    "libpam reads no module type or module there (\"illegal module type\" \
                     for a type other than auth, account, session, password; a carriage \
                     return counts) and installs it as an auth line that returns \
                     PAM_PERM_DENIED"
                }
                Failing::NotLoaded => {
                    "its module name ends in a carriage return (a CRLF file), so libpam \
                     cannot load it and the line returns PAM_MODULE_UNKNOWN"
                }
            };
            let said = format!(
                "{} (auth {} {}) never runs its module: {why}",
                other.place(),
                other.control.escape_debug(),
                other.module.escape_debug()
            );
            match failing_action(&other.control, failing) {
                Action::Bad | Action::Die | Action::Ok | Action::Done => out.push(format!(
                    "{said}; its control value fails the login then, so it fails every \
                     login that reaches it"
                )),
                Action::Jump(n) => {
                    if let Some(first) = modules
                        .iter()
                        .find(|m| m.options.is_some() && jumped(&other.position, &m.position, n))
                    {
                        out.push(format!(
                            "{said}; its control value jumps {n} module(s) then, over the \
                             {MODULE_FILE} line at {}, on every login",
                            first.place()
                        ));
                    }
                }
                Action::Ignore | Action::Reset => {}
            }
            continue;
        }
        if name == ROOT_ONLY_MODULE {
            continue;
        }
        let action = control_action(&other.control, Returned::Success);
        let passed: Vec<&ModuleLine> = modules
            .iter()
            .filter(|m| m.options.is_some())
            .filter(|m| match action {
                Action::Done => jumped(&other.position, &m.position, usize::MAX),
                Action::Jump(n) => jumped(&other.position, &m.position, n),
                _ => false,
            })
            .collect();
        let Some(first) = passed.first() else {
            continue;
        };
        let more = match passed.len() {
            1 => String::new(),
            n => format!(" (and {} more {MODULE_FILE} line(s) after it)", n - 1),
        };
        if let Action::Jump(n) = action
            && n > other.after
        {
            // libpam's "bad jump in stack": not a skipped code but a failed login.
            out.push(format!(
                "{} (auth {} {}) comes before the {MODULE_FILE} line at {}{more} and, when \
                 it succeeds, jumps {n} module(s) but only {} follow it in its stack: \
                 libpam fails the login then (\"bad jump in stack\", PAM_PERM_DENIED), so \
                 every login that line approves is denied; make the jump land inside the \
                 stack",
                other.place(),
                other.control,
                other.module,
                first.place(),
                other.after
            ));
            continue;
        }
        let what = if action == Action::Done {
            "ends the stack"
        } else {
            "jumps over it"
        };
        let mut text = format!(
            "{} (auth {} {}) comes before the {MODULE_FILE} line at {}{more} and {what} when \
             it succeeds: that {MODULE_FILE} line is not run then, and no code is asked",
            other.place(),
            other.control,
            other.module,
            first.place()
        );
        if let Some((place, included)) = &other.via
            && action == Action::Done
        {
            text.push_str(&format!(
                "; it is included at {place}: read {included} with \"auth substack \
                 {included}\" instead, so its success ends only the substack"
            ));
        }
        out.push(text);
    }
    out
}

/// A warning when no `auth` line of the service (includes and substacks read) loads
/// a module other than `pam_totp` though one loads it: libpam denies a login that no
/// module approved (`PAM_PERM_DENIED` when every module returned `PAM_IGNORE`), so a
/// login every `pam_totp` line skips (`nullok` without a file, an access rule, a group
/// option) is refused, not let through.
pub fn code_only_warning(modules: &[ModuleLine], others: &[OtherLine]) -> Option<String> {
    let first = modules.iter().find(|m| m.options.is_some())?;
    // A line that never runs its module approves nothing.
    if others.iter().any(|o| o.failing.is_none()) {
        return None;
    }
    Some(format!(
        "the service has no auth module other than {MODULE_FILE} (first at {}): a login \
         every {MODULE_FILE} line skips is denied by libpam (PAM_PERM_DENIED: no module \
         approved it), not let through; add pam_unix.so or pam_permit.so before it as the \
         examples do",
        first.place()
    ))
}

/// google-authenticator's module file name in a stack line.
const GA_MODULE_FILE: &str = "pam_google_authenticator.so";
/// Files of the PAM directory looked at for [`ga_lines_warnings`]; a directory with
/// more is not a PAM configuration.
const MAX_PAM_DIR_FILES: usize = 1024;

/// Warnings for `auth` lines anywhere in `dir` that still load google-authenticator's
/// module on the secret files a `pam_totp` line of `modules` reads (the same `secret=`,
/// `${HOME}/` and `~/` alike) while that line runs with `shared_file=auto`: a host migrated one
/// service at a time. A file on a local file system then keeps its `DISALLOW_REUSE` and
/// `RATE_LIMIT` lines as they are, so google-authenticator takes once more a code
/// `pam_totp` accepted within its window, and does not count its attempts. A GA line
/// whose options `pam_totp` would refuse is left out (GA denies every login there too).
/// An error when the directory, or a file of it, cannot be read: no warning then would
/// claim there is no such line.
pub fn ga_lines_warnings(dir: &Path, modules: &[ModuleLine]) -> Result<Vec<String>, StackError> {
    let ours: Vec<(&ModuleLine, &str)> = modules
        .iter()
        .filter_map(|m| Some((m, m.options.as_ref()?)))
        .filter(|(_, o)| o.shared_file == SharedFile::Auto)
        .map(|(m, o)| (m, o.secret.as_str()))
        .collect();
    if ours.is_empty() {
        return Ok(Vec::new());
    }
    let unlooked = |what: &Path, e: std::io::Error| {
        let text = format!(
            "cannot look for {GA_MODULE_FILE} lines on the secret files of the \
             {MODULE_FILE} lines: \"{}\": {e}",
            what.display()
        );
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            StackError::Denied(text)
        } else {
            StackError::Unusable(text)
        }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .map_err(|e| unlooked(dir, e))?
        .take(MAX_PAM_DIR_FILES)
    {
        files.push(entry.map_err(|e| unlooked(dir, e))?.path());
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        match std::fs::metadata(&path) {
            // A name gone since the listing, or a dangling link: libpam opens no file.
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(unlooked(&path, e)),
            // No service (a FIFO, a directory): libpam gets no lines out of it.
            Ok(m) if !m.is_file() => continue,
            Ok(_) => {}
        }
        let text = read_bounded(&path).map_err(|e| {
            let text = format!(
                "cannot look for {GA_MODULE_FILE} lines on the secret files of the \
                 {MODULE_FILE} lines: {e}"
            );
            match e {
                StackError::Denied(_) => StackError::Denied(text),
                _ => StackError::Unusable(text),
            }
        })?;
        for (number, line) in logical_lines(&text) {
            let toks = tokens(&line);
            let [kind, _, module, args @ ..] = toks.as_slice() else {
                continue;
            };
            if line_type(kind) != "auth" || module.rsplit('/').next() != Some(GA_MODULE_FILE) {
                continue;
            }
            let args: Vec<&[u8]> = args
                .iter()
                .map(|a| {
                    a.strip_prefix('[')
                        .and_then(|a| a.strip_suffix(']'))
                        .unwrap_or(a)
                        .as_bytes()
                })
                .collect();
            let Ok(theirs) = ModuleOptions::parse(&args) else {
                continue;
            };
            if let Some((m, spec)) = ours
                .iter()
                .find(|(_, spec)| same_spec(spec, &theirs.secret))
            {
                out.push(format!(
                    "{}:{number} loads {GA_MODULE_FILE} on the secret files of the \
                     {MODULE_FILE} line at {} (secret={spec}), which runs with \
                     shared_file=auto: where a secret file is on a local file system its \
                     DISALLOW_REUSE and RATE_LIMIT lines are obeyed, not updated, so \
                     google-authenticator there takes once more a code pam_totp accepted \
                     within its window and does not count pam_totp's attempts; switch that \
                     line to {MODULE_FILE} too, or add shared_file=yes to the {MODULE_FILE} \
                     lines until no {GA_MODULE_FILE} line is left",
                    path.display(),
                    m.place()
                ));
            }
        }
    }
    Ok(out)
}

/// Two `secret=` values that name the same files for every user: equal once a leading
/// `${HOME}/` is written `~/` (GA expands both to the home).
fn same_spec(a: &str, b: &str) -> bool {
    let home = |s: &str| match s.strip_prefix("${HOME}/") {
        Some(rest) => format!("~/{rest}"),
        None => s.to_owned(),
    };
    home(a) == home(b)
}

#[derive(Default)]
struct Found {
    modules: Vec<ModuleLine>,
    others: Vec<OtherLine>,
}

/// The position the next `auth` module line is given (see [`ModuleLine::position`]).
struct Stacked {
    prefix: Vec<usize>,
    next: usize,
}

impl Stacked {
    fn take(&mut self) -> Vec<usize> {
        let mut p = self.prefix.clone();
        p.push(self.next);
        self.next += 1;
        p
    }
}

/// Whether `service` has its own file in `dir`; libpam uses `other` when it has not.
/// A file that cannot be looked at (a directory this process may not search, an I/O
/// error) is an error, not "no such service": a caller would otherwise tell the
/// operator that `other` decides, and judge that stack instead.
pub fn service_exists(dir: &Path, service: &str) -> Result<bool, StackError> {
    let path = service_path(dir, service)?;
    match std::fs::symlink_metadata(&path) {
        Ok(_) => Ok(true),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(StackError::Unusable(format!(
            "cannot look for the service file \"{}\": {e}",
            path.display()
        ))),
    }
}

/// Errors that mean the name is not there: no entry, a component that is not a
/// directory, or a name longer than any file name can be.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG)
    )
}

/// Whether libpam would fail to open the include `name` (read as [`collect`] reads
/// it): no such file. Any other failure to look is this process's, not libpam's.
fn unopenable(dir: &Path, name: &str) -> Result<bool, StackError> {
    let path = if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        match service_path(dir, name) {
            Ok(p) => p,
            // Not a name of the directory: `collect` says so.
            Err(_) => return Ok(false),
        }
    };
    match std::fs::metadata(&path) {
        Ok(_) => Ok(false),
        Err(e) if is_absent(&e) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// `auth_only`: the file is read for an `auth include` or `auth substack`, which take
/// only its auth lines. `via`: see [`OtherLine::via`].
fn collect(
    dir: &Path,
    service: &str,
    depth: usize,
    auth_only: bool,
    via: Option<&(String, String)>,
    at: &mut Stacked,
    out: &mut Found,
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
    let (lines, unfinished) = assemble(&text);
    if unfinished {
        return Err(StackError::Refused(format!(
            "{}: the file ends inside a line continued with a backslash: libpam cannot \
             read it, and every login through it fails (PAM_ABORT); end that line",
            path.display()
        )));
    }
    for (number, line) in lines {
        let line = parse_line(&line);
        if let Line::Nameless { auth } = line
            && (auth || !auth_only)
        {
            return Err(StackError::Refused(format!(
                "{}:{number}: an include with no file name after it: libpam 1.5.2 \
                 crashes reading it (a segmentation fault in the program that logs in, \
                 sshd's or sudo's), so every login through it fails; name the file or \
                 remove the line",
                path.display()
            )));
        }
        if let Line::Include { name, auth, .. } = &line
            && unopenable(dir, name)?
        {
            if !auth && !auth_only {
                return Err(StackError::Refused(format!(
                    "{}:{number}: \"@include {}\" names a file libpam cannot open: it \
                     then fails to read the whole service, and every login through it \
                     fails (PAM_ABORT); create the file or remove the line",
                    path.display(),
                    name.escape_debug()
                )));
            }
            if !auth {
                // libpam reads no control value for an `@include`, and installs the
                // line that fails with whatever its action array held: seen through
                // libpam, the same stack asks the code on one login and not the next.
                return Err(StackError::Refused(format!(
                    "{}:{number}: \"@include {}\" names a file libpam cannot open, in a \
                     file read as auth lines: libpam 1.5.2 then installs a line that \
                     fails with actions it never set, so what the stack does after it \
                     differs from one login to the next; create the file or remove the \
                     line",
                    path.display(),
                    name.escape_debug()
                )));
            }
            let substack = matches!(line, Line::Include { substack: true, .. });
            if substack {
                // libpam installs the substack's start before it finds no file, then
                // the failing line after it: a jump counts both.
                at.take();
            }
            out.others.push(OtherLine {
                module: name.clone(),
                control: if substack { "substack" } else { "include" }.to_owned(),
                file: path.clone(),
                line: number,
                position: at.take(),
                via: via.cloned(),
                after: 0,
                failing: Some(Failing::MustFail),
                unopened: Some(name.clone()),
            });
            continue;
        }
        match line {
            Line::Include {
                name,
                auth,
                substack: true,
            } => {
                // One module of this stack; its own lines a stack of their own.
                let mut inner = Stacked {
                    prefix: at.take(),
                    next: 0,
                };
                let auth_only = auth_only || auth;
                collect(dir, &name, depth + 1, auth_only, None, &mut inner, out)?
            }
            Line::Include { name, auth, .. } => {
                let here = (format!("{}:{number}", path.display()), name.clone());
                let via = via.or(Some(&here));
                collect(dir, &name, depth + 1, auth_only || auth, via, at, out)?
            }
            Line::Foreign {
                auth: true,
                module,
                control,
                failing,
            } => out.others.push(OtherLine {
                module,
                control,
                file: path.clone(),
                line: number,
                position: at.take(),
                via: via.cloned(),
                after: 0,
                failing,
                unopened: None,
            }),
            Line::Module {
                kind,
                control,
                args,
            } if kind == "auth" => {
                let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let opts = ModuleOptions::parse(&raw).map_err(|e| {
                    StackError::Refused(format!(
                        "\"{}\": the {MODULE_FILE} line has an option the module refuses \
                         (so every login fails): {e}",
                        path.display()
                    ))
                })?;
                out.modules.push(ModuleLine {
                    kind,
                    control,
                    options: Some(opts),
                    file: path.clone(),
                    line: number,
                    position: at.take(),
                    after: 0,
                });
            }
            Line::Module { kind, control, .. } if !auth_only => out.modules.push(ModuleLine {
                kind,
                control,
                options: None,
                file: path.clone(),
                line: number,
                position: Vec::new(),
                after: 0,
            }),
            Line::Module { .. } | Line::Foreign { .. } | Line::Nameless { .. } | Line::Other => {}
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
    use std::os::unix::fs::OpenOptionsExt;
    let unusable = |e: std::io::Error| {
        let text = format!("cannot read \"{}\": {e}", path.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            StackError::Denied(text)
        } else {
            StackError::Unusable(text)
        }
    };
    // Without O_NONBLOCK, opening a FIFO waits for a writer that may never come, and
    // the CLI hangs before it can say what it found; a device or socket is no
    // configuration either (libpam would not get lines out of it).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(unusable)?;
    if !file.metadata().map_err(unusable)?.is_file() {
        return Err(StackError::Unusable(format!(
            "\"{}\" is not a regular file",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_SERVICE_FILE)
        .read_to_string(&mut text)
        .map_err(unusable)?;
    Ok(text)
}

/// Lines without comments, with backslash-newline continuations joined, each with the
/// number (from 1) of its first physical line, as libpam assembles them: a backslash
/// continues the line when only blanks follow it; a line that is blank or only a
/// comment does not end a continued one (the next line with text joins it); a `#`
/// ends the line there, a backslash before it included. Read otherwise, a line libpam
/// joins to the one before (`pam_unix.so \` with a trailing blank, above a
/// `pam_totp.so` line) was judged as a code line the stack never runs.
/// Only `\n` ends a line: libpam keeps a carriage return (a CRLF file) as a character
/// of the line's last token.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    assemble(text).0
}

/// [`logical_lines`], and whether the text ends inside a continued line: libpam then
/// fails to read the file, and every login of a stack that reads it fails (PAM_ABORT
/// for the service's own file).
fn assemble(text: &str) -> (Vec<(usize, String)>, bool) {
    // libpam's blanks here: not `\r`, so a CRLF file's backslash continues nothing.
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n');
    let mut out = Vec::new();
    let mut current = String::new();
    let mut first = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_start_matches(blank);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let start = *first.get_or_insert(i + 1);
        if let Some((before, _)) = line.split_once('#') {
            current.push_str(before);
        } else if let Some(cont) = line.trim_end_matches(blank).strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        } else {
            current.push_str(line);
        }
        out.push((start, std::mem::take(&mut current)));
        first = None;
    }
    let unfinished = first.is_some();
    if let Some(start) = first {
        out.push((start, current));
    }
    (out, unfinished)
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `@include NAME` (every type), or `auth include|substack NAME` (`auth`).
    Include {
        name: String,
        auth: bool,
        substack: bool,
    },
    /// A line that loads another module; `auth`: of type `auth`; `failing`: libpam
    /// never runs a module there.
    Foreign {
        auth: bool,
        module: String,
        control: String,
        failing: Option<Failing>,
    },
    /// A `pam_totp.so` line of type `kind` (without a leading `-`).
    Module {
        kind: String,
        control: String,
        args: Vec<String>,
    },
    /// `@include`, `include` or `substack` with no file name: `auth` when an `auth
    /// include` file would take it too (an `@include`, an `auth` or illegal type).
    Nameless {
        auth: bool,
    },
    Other,
}

/// The blanks libpam splits a stack line on (`_pam_StrTok`'s " \n\t"): no other
/// character, so a carriage return or a no-break space stays inside its token.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n')
}

/// Splits a stack line the way libpam does: `[...]` groups (control values and
/// arguments) are one token even with blanks inside; the first `]` ends one, except
/// `\]`, which libpam keeps as a `]` of the token.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if is_blank(c) {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        if c == '[' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    ']' => break,
                    '\\' if chars.peek() == Some(&']') => {
                        chars.next();
                        tok.push(']');
                    }
                    c => tok.push(c),
                }
            }
            out.push(format!("[{tok}]"));
            continue;
        }
        while let Some(&c) = chars.peek() {
            if is_blank(c) {
                break;
            }
            tok.push(c);
            chars.next();
        }
        out.push(tok);
    }
    out
}

/// A line's type as libpam reads it: one leading `-` (do not log a module that fails
/// to load) stripped, in any case. `--auth` is no `auth` line for libpam (it takes the
/// type as illegal), so a second `-` stays.
fn line_type(kind: &str) -> String {
    kind.strip_prefix('-').unwrap_or(kind).to_ascii_lowercase()
}

/// Whether libpam knows the type (see [`line_type`]).
fn legal_type(kind: &str) -> bool {
    matches!(kind, "auth" | "account" | "session" | "password")
}

fn parse_line(line: &str) -> Line {
    let toks = tokens(line);
    match toks.as_slice() {
        [inc] if inc == "@include" => Line::Nameless { auth: true },
        [kind, control]
            if control.eq_ignore_ascii_case("include")
                || control.eq_ignore_ascii_case("substack") =>
        {
            let kind = line_type(kind);
            Line::Nameless {
                auth: kind == "auth" || !legal_type(&kind),
            }
        }
        [inc, name, ..] if inc == "@include" => Line::Include {
            name: name.clone(),
            auth: false,
            substack: false,
        },
        // libpam installs a line with no module as one that fails; with no control
        // value either, every action is `bad`.
        [kind] | [kind, _] => {
            let kind = line_type(kind);
            Line::Foreign {
                auth: kind == "auth" || !legal_type(&kind),
                module: String::new(),
                control: toks.get(1).map_or("[default=bad]", |c| c).to_owned(),
                failing: Some(Failing::MustFail),
            }
        }
        [kind, control, module, args @ ..] => {
            // libpam reads the type and the include keywords in any case.
            let kind = line_type(kind);
            // An illegal type is read as the type libpam was reading: `auth`, for
            // every line this reader follows.
            let illegal = !legal_type(&kind);
            let include = control.eq_ignore_ascii_case("include");
            let substack = control.eq_ignore_ascii_case("substack");
            if include || substack {
                return if kind == "auth" || illegal {
                    Line::Include {
                        name: module.clone(),
                        auth: true,
                        substack,
                    }
                } else {
                    Line::Other
                };
            }
            let name = module.rsplit('/').next().unwrap_or(module);
            let failing = if illegal {
                Some(Failing::MustFail)
            } else if module.contains('\r') {
                Some(Failing::NotLoaded)
            } else {
                None
            };
            if failing.is_some() || (name != MODULE_FILE && name != BUILT_MODULE_FILE) {
                return Line::Foreign {
                    auth: kind == "auth" || illegal,
                    module: module.clone(),
                    control: control.clone(),
                    failing,
                };
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
                kind,
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
        // A file in place of the directory is "absent", as libpam finds no file there.
        let file = dir.path().join("svc");
        assert!(!service_exists(&file, "svc").expect("absent"));
    }

    #[test]
    fn only_absence_errors_mean_no_service() {
        use std::io::Error;
        for absent in [libc::ENOENT, libc::ENOTDIR, libc::ENAMETOOLONG] {
            assert!(is_absent(&Error::from_raw_os_error(absent)), "{absent}");
        }
        for unknown in [libc::EACCES, libc::EIO, libc::ELOOP, libc::ENOMEM] {
            assert!(!is_absent(&Error::from_raw_os_error(unknown)), "{unknown}");
        }
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
    fn auth_lines_know_their_place_in_the_stack() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "common",
            "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n\
             auth required pam_permit.so\n",
        );
        write(
            dir.path(),
            "sub",
            "auth optional pam_env.so\nauth required pam_totp.so secret=/s/${USER}\n",
        );
        write(
            dir.path(),
            "svc",
            "session required pam_limits.so\n@include common\n\
             # a comment\n\
             auth [success=1 ignore=ignore default=die] pam_totp.so \\\n  nullok\n\
             auth substack sub\naccount required pam_totp.so\n\
             auth [success=ok ignore=ignore default=die] pam_totp.so nullok\n",
        );
        let found: Vec<(String, usize, Vec<usize>)> = module_lines(dir.path(), "svc")
            .expect("lines")
            .into_iter()
            .map(|l| {
                let name = l.file.file_name().expect("name").to_string_lossy().into();
                (name, l.line, l.position)
            })
            .collect();
        let row = |f: &str, l: usize, p: &[usize]| (f.to_owned(), l, p.to_vec());
        assert_eq!(
            found,
            [
                // After common's three auth modules; the continuation is one line.
                row("svc", 4, &[3]),
                // The substack is module 4; its lines count from 0 within it.
                row("sub", 2, &[4, 1]),
                row("svc", 7, &[]),
                row("svc", 8, &[5]),
            ]
        );
    }

    /// libpam fails the login on a jump past the end of the frame ("bad jump in
    /// stack"); a substack is one module of its parent, and its own frame ends with it.
    #[test]
    fn a_jump_past_the_end_of_its_frame_is_bad() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "sub",
            "auth [success=1 default=die] pam_totp.so\n",
        );
        write(
            dir.path(),
            "svc",
            "auth [success=2 default=die] pam_totp.so\nauth substack sub\n\
             auth required pam_permit.so\nauth [success=1 default=die] pam_totp.so\n",
        );
        let lines = module_lines(dir.path(), "svc").expect("lines");
        let after: Vec<usize> = lines.iter().map(|l| l.after).collect();
        assert_eq!(after, [3, 0, 0]);
        let jumps: Vec<Action> = lines.iter().map(|l| l.action(Returned::Success)).collect();
        assert_eq!(jumps, [Action::Jump(2), Action::Bad, Action::Bad]);
    }

    #[test]
    fn control_values_give_libpams_actions() {
        let line = |control: &str| ModuleLine {
            kind: "auth".into(),
            control: control.into(),
            options: None,
            file: PathBuf::from("svc"),
            line: 1,
            position: vec![0],
            after: 9,
        };
        let all = |c: &str| {
            [Returned::Success, Returned::Ignore, Returned::AuthErr].map(|r| line(c).action(r))
        };
        use Action::*;
        assert_eq!(all("required"), [Ok, Ignore, Bad]);
        assert_eq!(all("requisite"), [Ok, Ignore, Die]);
        assert_eq!(all("sufficient"), [Done, Ignore, Ignore]);
        assert_eq!(all("optional"), [Ok, Ignore, Ignore]);
        assert_eq!(
            all("[success=1 ignore=ignore default=die]"),
            [Jump(1), Ignore, Die]
        );
        // Without default=, a value not named is bad.
        assert_eq!(all("[success=done auth_err=ok]"), [Done, Bad, Ok]);
        // Keywords in any case, and in brackets (libpam strips them first).
        assert_eq!(all("Required"), [Ok, Ignore, Bad]);
        assert_eq!(all("[OPTIONAL]"), [Ok, Ignore, Ignore]);
        // The last of a value named twice; the first default= (a later one finds
        // every value set); a named value over a default= before it.
        assert_eq!(all("[success=ok success=die]"), [Die, Bad, Bad]);
        assert_eq!(all("[default=die default=ok]"), [Die, Die, Die]);
        assert_eq!(all("[default=ignore success=ok]"), [Ok, Ignore, Ignore]);
        // Blanks around `=`; a pair right after an action; values the module never
        // returns are read (and checked) too.
        assert_eq!(all("[success = ok default= die]"), [Ok, Die, Die]);
        assert_eq!(all("[success=okdefault=ignore]"), [Ok, Ignore, Ignore]);
        assert_eq!(all("[user_unknown=ignore success=ok]"), [Ok, Bad, Bad]);
        assert_eq!(control_problem("[success=ok default=die]"), None);
        // A jump number past 2147483647 wraps round in libpam's int: the action words'
        // codes (-1 ok ... -5 reset), -6 "not set" (a later default= sets it), below
        // that a failure, 2^32 a jump of 0 (unreadable).
        assert_eq!(all("[success=4294967295 default=die]"), [Ok, Die, Die]);
        assert_eq!(
            all("[success=ok auth_err=4294967291 default=die]"),
            [Ok, Die, Reset]
        );
        assert_eq!(
            all("[success=ok auth_err=4294967290 default=ignore]"),
            [Ok, Ignore, Ignore]
        );
        assert_eq!(
            all("[default=ignore success=ok auth_err=4294967290]"),
            [Ok, Ignore, Bad]
        );
        assert_eq!(
            all("[success=ok auth_err=4294967289 default=ignore]"),
            [Ok, Ignore, Bad]
        );
        assert_eq!(all("[success=4294967298 default=die]"), [Jump(2), Die, Die]);
        // Anything libpam cannot read makes every action bad, the pairs read before
        // it too.
        for broken in [
            "[success=maybe]",
            "mandatory",
            "[success=0 default=ignore]",
            "[success=ok default=ignore bogus=ok]",
            "[success=okay default=ignore]",
            "[success]",
            "[success=]",
            "[default=ignore success=1x]",
            "[success=ok auth_err=4294967296 default=ignore]",
        ] {
            assert_eq!(all(broken), [Bad, Bad, Bad], "{broken}");
            assert!(control_problem(broken).is_some(), "{broken}");
        }
        // An empty bracket names nothing: bad, but read.
        assert_eq!(all("[]"), [Bad, Bad, Bad]);
        assert_eq!(control_problem("[]"), None);
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

    /// libpam 1.5.2 (audit_stack_differential.rs): an `auth include`/`substack` it
    /// cannot open is a line that always fails, an `@include` of the service's own
    /// reading fails the whole service, and an include without a name crashes it.
    #[test]
    fn includes_libpam_cannot_open_are_read_as_libpam_runs_them() {
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), "a", "auth include gone\nauth substack gone\n");
        let (_, others) = auth_stack(dir.path(), "a").expect("read");
        assert_eq!(others.len(), 2);
        for (o, control) in others.iter().zip(["include", "substack"]) {
            assert_eq!(o.failing, Some(Failing::MustFail));
            assert_eq!(o.unopened.as_deref(), Some("gone"));
            assert_eq!(failing_action(&o.control, Failing::MustFail), Action::Bad);
            assert_eq!(o.control, control);
        }
        write(dir.path(), "inner", "auth include gone\n");
        write(dir.path(), "b", "@include inner\n");
        let (_, others) = auth_stack(dir.path(), "b").expect("read");
        assert_eq!(others[0].unopened.as_deref(), Some("gone"));
        write(dir.path(), "inner", "@include gone\n");
        for service in ["b", "c"] {
            write(dir.path(), "c", "auth include inner\n");
            assert!(
                matches!(auth_stack(dir.path(), service), Err(StackError::Refused(_))),
                "{service}"
            );
        }
        for nameless in [
            "auth include",
            "@include",
            "account substack",
            "xauth include",
        ] {
            write(dir.path(), "d", &format!("{nameless}\n"));
            assert!(
                matches!(auth_stack(dir.path(), "d"), Err(StackError::Refused(_))),
                "{nameless}"
            );
        }
        // An `auth include` file skips other types' lines before their names.
        write(dir.path(), "inner", "account include\n");
        assert!(auth_stack(dir.path(), "c").is_ok());
    }

    fn warnings(dir: &Path, service: &str) -> Vec<String> {
        let (modules, others) = auth_stack(dir, service).expect("stack");
        bypass_warnings(&modules, &others)
    }

    /// RHEL's `auth include system-auth`, whose `sufficient pam_unix` ends the whole
    /// stack on a right password: the code line after it is never run. Under
    /// `substack` it ends only the substack (no warning).
    #[test]
    fn a_line_that_ends_the_stack_before_the_code_line_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "system-auth",
            "auth required pam_env.so\nauth sufficient pam_unix.so nullok\n\
             auth required pam_deny.so\n",
        );
        write(
            dir.path(),
            "include",
            "auth include system-auth\nauth required pam_totp.so\n",
        );
        write(
            dir.path(),
            "substack",
            "auth substack system-auth\nauth required pam_totp.so\n",
        );
        let w = warnings(dir.path(), "include");
        assert_eq!(w.len(), 1, "{w:?}");
        let sys = dir.path().join("system-auth");
        let svc = dir.path().join("include");
        assert!(
            w[0].starts_with(&format!(
                "{}:2 (auth sufficient pam_unix.so) comes before the pam_totp.so line at {}:2",
                sys.display(),
                svc.display()
            )),
            "{w:?}"
        );
        assert!(
            w[0].contains(&format!(
                "included at {}:1: read system-auth with \"auth substack system-auth\"",
                svc.display()
            )),
            "{w:?}"
        );
        assert!(warnings(dir.path(), "substack").is_empty());

        // Debian's common-auth jumps over pam_deny only; su's pam_rootok is exempt.
        write(
            dir.path(),
            "common-auth",
            "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\n\
             auth required pam_permit.so\n",
        );
        write(
            dir.path(),
            "su",
            "auth sufficient /lib/security/pam_rootok.so\n@include common-auth\n\
             auth [success=ok ignore=ignore default=die] pam_totp.so nullok\n",
        );
        assert!(warnings(dir.path(), "su").is_empty());
        // A jump of 2 lands past the code line; `success=done` ends the stack too.
        write(
            dir.path(),
            "jump",
            "auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n\
             auth required pam_totp.so\nauth required pam_totp.so\n\
             auth [success=done default=ignore] pam_sss.so\nauth required pam_totp.so\n",
        );
        let w = warnings(dir.path(), "jump");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("jump:3 and jumps over it"), "{w:?}");
        assert!(w[1].contains("jump:6 and ends the stack"), "{w:?}");
        // A line after the code line, or in a substack of its own, skips no code.
        write(
            dir.path(),
            "after",
            "auth substack system-auth\nauth required pam_totp.so\n\
             auth sufficient pam_unix.so\n",
        );
        assert!(warnings(dir.path(), "after").is_empty());
    }

    /// A `success=N` past the end of its frame is libpam's "bad jump in stack": the
    /// login fails, which is no skipped code; a jump that lands inside is.
    #[test]
    fn a_jump_past_the_end_of_the_frame_is_named_a_failed_login() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "bad",
            "auth [success=3 default=ignore] pam_unix.so\nauth required pam_totp.so\n",
        );
        write(
            dir.path(),
            "good",
            "auth [success=1 default=ignore] pam_unix.so\nauth required pam_totp.so\n\
             auth required pam_permit.so\n",
        );
        let w = warnings(dir.path(), "bad");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("bad jump in stack"), "{w:?}");
        assert!(
            w[0].contains("jumps 3 module(s) but only 1 follow"),
            "{w:?}"
        );
        assert!(!w[0].contains("jumps over it"), "{w:?}");
        let w = warnings(dir.path(), "good");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("jumps over it"), "{w:?}");
        assert!(!w[0].contains("bad jump"), "{w:?}");
    }

    /// Only a stack with no other auth module, includes and substacks read, is named.
    #[test]
    fn a_stack_of_code_lines_only_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), "inner", "auth required pam_permit.so\n");
        write(dir.path(), "totp", "auth required pam_totp.so nullok\n");
        write(
            dir.path(),
            "only",
            "account required pam_permit.so\nauth substack totp\n\
             auth required pam_totp.so\n",
        );
        write(
            dir.path(),
            "sub",
            "auth substack inner\nauth required pam_totp.so\n",
        );
        write(dir.path(), "none", "auth required pam_permit.so\n");
        let only = |service: &str| {
            let (modules, others) = auth_stack(dir.path(), service).expect("stack");
            code_only_warning(&modules, &others)
        };
        let w = only("only").expect("warned");
        assert!(w.contains("PAM_PERM_DENIED"), "{w}");
        assert!(
            w.contains(&format!("{}:1", dir.path().join("totp").display())),
            "{w}"
        );
        assert_eq!(only("sub"), None);
        assert_eq!(only("none"), None);
    }

    /// A FIFO where a service or include is read would block the CLIs for ever.
    #[test]
    fn a_fifo_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        write(
            dir.path(),
            "svc",
            &format!("@include {}\nauth required pam_totp.so\n", fifo.display()),
        );
        let e = module_lines(dir.path(), "svc").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = module_lines(dir.path(), "fifo").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // Control: the same include as a regular file.
        std::fs::remove_file(&fifo).expect("rm");
        write(dir.path(), "fifo", "auth required pam_permit.so\n");
        assert_eq!(module_lines(dir.path(), "svc").expect("lines").len(), 1);
    }

    #[test]
    fn continued_lines_are_joined_as_libpam_joins_them() {
        let joined = |t: &str| logical_lines(t);
        // Blanks after the backslash; blank and comment lines inside a continuation.
        assert_eq!(
            joined("auth required a.so \\  \n\n  # c\nauth required b.so\n"),
            vec![(1, "auth required a.so  auth required b.so".to_owned())]
        );
        // A `#` ends the line, a backslash before it too; a CR is no blank.
        assert_eq!(
            joined("auth required a.so \\# c\nauth required b.so\n"),
            vec![
                (1, "auth required a.so \\".to_owned()),
                (2, "auth required b.so".to_owned())
            ]
        );
        assert_eq!(joined("a \\\r\nb\n").len(), 2);
        // Text that ends inside a continued line, blank and comment lines after it too.
        assert!(assemble("a \\\n\n# x\n").1);
        assert!(assemble("a \\").1);
        assert!(!assemble("a \\\nb").1);
        // The number is the first physical line with text.
        assert_eq!(joined("\n# x\n\nauth x\n"), vec![(4, "auth x".to_owned())]);
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

    /// libpam keeps `\]` inside brackets as a `]` and goes on; a `\` before anything
    /// else stays. It splits on blank, tab and newline only.
    #[test]
    fn tokens_read_escaped_brackets_and_blanks_as_libpam() {
        assert_eq!(
            parse_line("auth required pam_totp.so [authtok_prompt=Code\\] 0:] nullok"),
            Line::Module {
                kind: "auth".into(),
                control: "required".into(),
                args: vec!["authtok_prompt=Code] 0:".into(), "nullok".into()]
            }
        );
        assert_eq!(tokens("[a\\b\\]]"), ["[a\\b]]"]);
        // Control: without the escape the first `]` ends the token.
        assert_eq!(tokens("[a] 0:]"), ["[a]", "0:]"]);
        assert_eq!(
            tokens("auth\u{b}required pam_totp.so a\u{a0}b\r"),
            ["auth\u{b}required", "pam_totp.so", "a\u{a0}b\r"]
        );
    }

    /// One leading `-` is stripped from the type, and the type is read in any case; an
    /// illegal type is an auth line that never runs its module, whichever it names.
    #[test]
    fn line_types_strip_one_dash() {
        assert_eq!(line_type("-auth"), "auth");
        assert_eq!(line_type("-AUTH"), "auth");
        assert_eq!(line_type("--auth"), "-auth");
        assert!(matches!(
            parse_line("--auth required pam_totp.so"),
            Line::Foreign {
                auth: true,
                failing: Some(Failing::MustFail),
                ..
            }
        ));
        assert!(matches!(
            parse_line("-auth required pam_totp.so"),
            Line::Module { kind, .. } if kind == "auth"
        ));
    }

    /// Only `\n` ends a line; the carriage return of a CRLF file stays in the last token.
    #[test]
    fn logical_lines_keep_carriage_returns() {
        assert_eq!(
            logical_lines("a b\r\n\r\nc \\\n d\n"),
            [
                (1, "a b\r".to_owned()),
                (2, "\r".to_owned()),
                (3, "c  d".to_owned())
            ]
        );
        assert!(matches!(
            parse_line("auth required pam_permit.so\r"),
            Line::Foreign {
                auth: true,
                failing: Some(Failing::NotLoaded),
                ..
            }
        ));
        assert!(matches!(
            parse_line("\r"),
            Line::Foreign {
                auth: true,
                failing: Some(Failing::MustFail),
                ..
            }
        ));
    }

    #[test]
    fn ga_lines_on_the_same_secret_files_are_named_only_under_shared_file_auto() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "sudo",
            "auth required pam_unix.so\n\
             # auth required pam_google_authenticator.so\n\
             auth required /lib/security/pam_google_authenticator.so nullok\n\
             -auth required pam_google_authenticator.so [secret=${HOME}/.google_authenticator]\n\
             account required pam_google_authenticator.so\n\
             Auth required pam_google_authenticator.so\n",
        );
        write(
            dir.path(),
            "other-store",
            "auth required pam_google_authenticator.so secret=/etc/ga/${USER} user=root\n",
        );
        write(
            dir.path(),
            "refused",
            "auth required pam_google_authenticator.so no_such_option\n",
        );
        for (args, warned) in [
            ("", vec![3, 4, 6]),
            ("secret=~/.google_authenticator", vec![3, 4, 6]),
            ("shared_file=yes", vec![]),
            ("shared_file=no", vec![]),
            ("secret=/var/lib/pam_totp/${USER} user=root", vec![]),
        ] {
            write(
                dir.path(),
                "sshd",
                &format!("auth required pam_unix.so\nauth required pam_totp.so {args}\n"),
            );
            let (modules, _) = auth_stack(dir.path(), "sshd").expect("stack");
            let found = ga_lines_warnings(dir.path(), &modules).expect("readable");
            let lines: Vec<String> = warned
                .iter()
                .map(|n| format!("{}:{n} ", dir.path().join("sudo").display()))
                .collect();
            assert_eq!(found.len(), lines.len(), "{args}: {found:#?}");
            for (w, line) in found.iter().zip(&lines) {
                assert!(w.starts_with(line), "{args}: {w}");
                assert!(w.contains("sshd:2") && w.contains("shared_file=yes"), "{w}");
            }
        }
        // The store GA's other line reads, by ours: named there.
        write(
            dir.path(),
            "sshd",
            "auth required pam_totp.so user=root secret=/etc/ga/${USER}\n",
        );
        let (modules, _) = auth_stack(dir.path(), "sshd").expect("stack");
        let found = ga_lines_warnings(dir.path(), &modules).expect("readable");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("other-store:1 "), "{found:#?}");
    }
}
