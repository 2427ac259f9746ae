//! `totp-enroll check`: one real PAM authentication, reported exactly.
//!
//! Changing an sshd or sudo stack can lock an administrator out. This runs the
//! stack through libpam as the application would (via `pamapp`), with the
//! prompts on this terminal, then prints the PAM result name and every message
//! the modules sent, so a broken stack shows up while a root shell is still open.
//! `--pam-dir` reads the service from a scratch directory (`pam_start_confdir`)
//! instead of /etc/pam.d.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, raise};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use pamapp::{Conversation, Item, Message, Reply, Transaction, codes, style};
use serde::Serialize;
use zeroize::Zeroizing;

use totp_core::options::ModuleOptions;
use totp_os::pam_stack;
use totp_os::state_dir::DEFAULT_STATE_DIR;

use crate::args::CheckArgs;
use crate::console::{Line, read_line_bounded};
use crate::error::Error;

/// Answers are short codes or passwords; a longer line is refused
/// (`console::read_line_bounded`).
const MAX_ANSWER: u64 = 4096;

/// Exit status when the stack did not return `PAM_SUCCESS` (a problem found).
pub const EXIT_DENIED: u8 = 1;
/// Exit status when the check could not be made: the stack failed after a prompt that
/// got no answer (standard input ended, could not be read, or held an over-long
/// answer), so its result says nothing about the login (as `totp-state show`/`audit` use 2 for "could not look").
pub const EXIT_NOT_CHECKED: u8 = crate::error::EXIT_USAGE;

/// How a note that the module would deny the login begins (see [`stack_notes`]).
const WOULD_DENY: &str = "warning: the module would deny";

/// Shows each message on stderr and reads prompt answers from stdin, with
/// echo off for `PAM_PROMPT_ECHO_OFF` when stdin is a terminal. `unanswered` counts the
/// prompts that got no answer.
struct TerminalConversation {
    unanswered: std::rc::Rc<std::cell::Cell<u32>>,
    /// `--non-interactive`: standard input is never read (a pipe nobody writes to
    /// would block the run for good), every prompt goes unanswered.
    non_interactive: bool,
}

impl Conversation for TerminalConversation {
    fn reply(&mut self, message: &Message) -> Reply {
        let mut err = io::stderr();
        match message.style {
            style::PROMPT_ECHO_OFF | style::PROMPT_ECHO_ON => {
                let _ = write!(err, "{}", message.text);
                let _ = err.flush();
                let echo_off = message.style == style::PROMPT_ECHO_OFF;
                let answer = if self.non_interactive {
                    let _ = writeln!(err);
                    None
                } else {
                    read_answer(echo_off)
                };
                match answer {
                    Some(answer) => Reply::Text(answer.to_string()),
                    // A closed input is what a hung-up terminal looks like to PAM.
                    None => {
                        self.unanswered.set(self.unanswered.get().saturating_add(1));
                        Reply::Fail(codes::CONV_ERR)
                    }
                }
            }
            _ => {
                let _ = writeln!(err, "{}", message.text);
                Reply::Text(String::new())
            }
        }
    }
}

fn read_answer(echo_off: bool) -> Option<Zeroizing<String>> {
    let stdin = io::stdin();
    let _echo = if echo_off && stdin.is_terminal() {
        EchoOff::new()
    } else {
        None
    };
    let line = read_line_bounded(&mut stdin.lock(), MAX_ANSWER);
    if echo_off && io::stdin().is_terminal() {
        // The user's Enter was not echoed either.
        crate::error::to_stderr("\n");
    }
    let raw = match line {
        Ok(Line::Text(raw)) => raw,
        Ok(Line::End) | Err(_) => return None,
        // Answered like a closed input: the stack gets a conversation error, and the
        // rest of the line is not the answer to the next prompt.
        Ok(Line::TooLong) => {
            crate::error::to_stderr(&format!(
                "totp-enroll: an answer of more than {MAX_ANSWER} bytes was refused\n"
            ));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&raw)
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    Some(Zeroizing::new(text))
}

/// Terminal echo switched off until dropped, and switched back on before the process
/// dies of SIGINT, SIGTERM or SIGHUP meanwhile, or stops on SIGTSTP (off again once
/// continued): a Ctrl-C or Ctrl-Z at the password prompt would otherwise leave the
/// terminal without echo (dash and other shells do not restore it).
struct EchoOff {
    saved: Termios,
    guard: Option<SignalGuard>,
}

impl EchoOff {
    fn new() -> Option<EchoOff> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        // Before echo goes off, so that no signal finds it off and unguarded. Without
        // the guard (no signalfd) echo still goes off, as a prompt needs it.
        let guard = SignalGuard::start(&saved);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &echo_off(&saved)).ok()?;
        Some(EchoOff { saved, guard })
    }
}

/// `saved` with echo off, but for the Enter that ends the answer.
fn echo_off(saved: &Termios) -> Termios {
    let mut t = saved.clone();
    t.local_flags.remove(LocalFlags::ECHO);
    t.local_flags.insert(LocalFlags::ECHONL);
    t
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // The watcher is stopped first: once it is gone, a signal stays pending until
        // the mask is given back below, and then kills with echo already on.
        let mask = self.guard.take().map(SignalGuard::stop);
        // Nothing sensible to do if the terminal went away meanwhile.
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
        if let Some(mask) = mask {
            let _ = mask.thread_set_mask();
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGTSTP blocked in this thread (the prompt's) and waited for by
/// a watcher thread on a signalfd. Blocked signals that are ignored stay ignored (the
/// kernel discards them); one whose action is the default one wakes the watcher,
/// which restores the terminal and re-raises it, so the exit status is still "killed
/// by SIGINT". (A process-directed signal goes to a thread that does not block it:
/// this program starts no other thread while it prompts.)
struct SignalGuard {
    /// The mask before, given back once the watcher is gone.
    old_mask: SigSet,
    /// Its end of the socket pair: closing it wakes and ends the watcher.
    stop: UnixStream,
    watcher: JoinHandle<()>,
}

impl SignalGuard {
    fn start(saved: &Termios) -> Option<SignalGuard> {
        let mut set = SigSet::empty();
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGTSTP,
        ] {
            set.add(sig);
        }
        let old_mask = set.thread_swap_mask(SigmaskHow::SIG_BLOCK).ok()?;
        let started = (|| {
            let fd =
                SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()?;
            let (stop, woken) = UnixStream::pair().ok()?;
            let saved = saved.clone();
            let watcher = std::thread::Builder::new()
                .name("echo-guard".to_owned())
                .spawn(move || watch(&fd, &woken, &saved))
                .ok()?;
            Some((stop, watcher))
        })();
        match started {
            Some((stop, watcher)) => Some(SignalGuard {
                old_mask,
                stop,
                watcher,
            }),
            None => {
                let _ = old_mask.thread_set_mask();
                None
            }
        }
    }

    /// Ends the watcher and returns the mask to give back.
    fn stop(self) -> SigSet {
        drop(self.stop);
        let _ = self.watcher.join();
        self.old_mask
    }
}

/// The watcher: until `woken` is closed, a signal from `fd` puts `saved` back on the
/// terminal and is raised again with its default action, in this thread (which
/// inherited the blocked mask and unblocks only that signal).
fn watch(fd: &SignalFd, woken: &UnixStream, saved: &Termios) {
    loop {
        let mut fds = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(woken.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        if let Ok(Some(info)) = fd.read_signal() {
            let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, saved);
            let signo = i32::try_from(info.ssi_signo).unwrap_or(Signal::SIGTERM as i32);
            if signo == Signal::SIGTSTP as i32 {
                // Ctrl-Z: stopped with echo on, as the shell the user is handed back
                // to expects; the prompt is still waiting once continued, so echo goes
                // off again then. SIGSTOP stops every thread, the prompt's too; raised
                // at this thread, so that this thread stops before it goes on (sent to
                // the process, another thread may take it while this one runs on and
                // turns echo off before the stop).
                let _ = raise(Signal::SIGSTOP);
                let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &echo_off(saved));
                continue;
            }
            if let Ok(sig) = Signal::try_from(signo) {
                let mut only = SigSet::empty();
                only.add(sig);
                let _ = only.thread_unblock();
                let _ = raise(sig);
            }
            // Still alive: the signal had a handler of someone else's. The run
            // was interrupted all the same; a shell's convention for it.
            std::process::exit(128 + signo);
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return;
        }
    }
}

fn style_name(style: i32) -> &'static str {
    match style {
        style::PROMPT_ECHO_OFF => "prompt (echo off)",
        style::PROMPT_ECHO_ON => "prompt (echo on)",
        style::ERROR_MSG => "error",
        style::TEXT_INFO => "info",
        _ => "message of unknown style",
    }
}

/// `check --json`: the result and every message, for scripts and configuration tools.
#[derive(Serialize)]
struct CheckJson<'a> {
    action: &'static str,
    service: &'a str,
    user: &'a str,
    pam_dir: Option<&'a std::path::Path>,
    rhost: Option<&'a str>,
    tty: Option<&'a str>,
    /// The PAM result name, e.g. "PAM_SUCCESS".
    result: &'static str,
    code: i32,
    success: bool,
    /// Prompts that got no answer (standard input ended). A failure after one is not
    /// a verdict on the stack: the run exits 2, "could not check".
    unanswered_prompts: u32,
    /// What the tool found in the service file before running it: a missing service,
    /// the store each pam_totp line uses, options that weaken security.
    notes: Vec<&'a str>,
    messages: Vec<MessageJson<'a>>,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    style: &'static str,
    text: &'a str,
}

/// Stable identifiers for the message styles in JSON.
fn style_key(style: i32) -> &'static str {
    match style {
        style::PROMPT_ECHO_OFF => "prompt_echo_off",
        style::PROMPT_ECHO_ON => "prompt_echo_on",
        style::ERROR_MSG => "error",
        style::TEXT_INFO => "info",
        _ => "unknown",
    }
}

/// What an admin should know about the stack before trusting the result: libpam runs
/// `other` for a service without a file (a typo tests the wrong stack), another
/// module's line before a `pam_totp` line that ends the stack or jumps over it when it
/// succeeds (`pam_stack::bypass_warnings`: the check's right code may then never be
/// asked for), a google-authenticator line left on the same secret files under
/// `shared_file=auto` (`pam_stack::ga_lines_warnings`), which store
/// each `pam_totp` line uses (as this process: a non-root run uses its own), the
/// options the module would call weakening (it logs them only with `debug`), a rule
/// file (`accessfile=`) the module would refuse or reject, or a bare name in it that is
/// a group (see [`crate::explain::group_name_warnings`]), and what
/// the module would find in `user`'s secret file (`totp_os::inspect`: refused and why,
/// no file, or the facts logged only with `debug`).
fn stack_notes(service: &str, confdir: Option<&Path>, user: &str) -> Result<Vec<String>, Error> {
    use totp_os::inspect::{self, Verdict};
    let dir = pam_stack::pam_dir_or_default(confdir);
    if !pam_stack::service_exists(&dir, service)? {
        return Ok(vec![format!(
            "warning: there is no service \"{service}\" in \"{}\"; libpam runs the \"other\" stack instead",
            dir.display()
        )]);
    }
    let (all, others) = match pam_stack::auth_stack(&dir, service) {
        Ok(l) => l,
        // An include this user may not read fails the stack here and not at root's
        // services: the result would blame the stack for the check's own limits.
        Err(pam_stack::StackError::Denied(m)) => {
            return Err(Error::NotChecked(format!(
                "{m}: libpam would not read it as this user either; run the check as root"
            )));
        }
        Err(e) => return Ok(vec![format!("warning: {e}")]),
    };
    let mut notes: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !notes.contains(&n) {
            notes.push(n);
        }
    };
    for w in pam_stack::bypass_warnings(&all, &others) {
        add(format!("warning: {w}"));
    }
    // The same words as `totp-state audit --service`: one function for both.
    match pam_stack::ga_lines_warnings(&dir, &all) {
        Ok(found) => {
            for w in found {
                add(format!("warning: {w}"));
            }
        }
        // Said, not passed over: no warning would read as "no such line".
        Err(e) => add(format!("warning: {e}")),
    }
    for line in &all {
        if let Some(w) = control_warning(line) {
            add(w);
        }
    }
    let lines: Vec<&ModuleOptions> = all.iter().filter_map(|l| l.options.as_ref()).collect();
    if lines.is_empty() {
        add(format!(
            "note: service \"{service}\" has no auth line for {}",
            pam_stack::MODULE_FILE
        ));
        return Ok(notes);
    }
    // As the module resolves the login (R8): an alias it denies is foretold, not
    // inspected as the account its canonical name belongs to.
    let pw = match totp_os::nss::lookup_login_user(user) {
        Ok(pw) => pw,
        Err(e @ totp_os::nss::LoginUserError::AnotherAccount { .. }) => {
            add(format!("{WOULD_DENY} {user}: {e}"));
            None
        }
        Err(_) => None,
    };
    for o in lines {
        add(format!("note: state store: {}", store_of(o)));
        if let Some(problem) = local_store_problem(o) {
            add(format!("{WOULD_DENY} every login: {problem}"));
        }
        for w in o.weakening() {
            add(format!(
                "warning: option {w} weakens security (see pam_totp(8))"
            ));
        }
        if o.redis_ttl_raised {
            add(format!(
                "note: redis_ttl= is shorter than a record may still protect a used code or \
                 throttling; {} seconds is used instead",
                o.min_redis_ttl_secs()
            ));
        }
        if let Some(file) = &o.accessfile {
            match crate::explain::read_rule_file(Path::new(file), o.allow_any_network) {
                Err(problem) => add(format!(
                    "warning: the module would require the code for everybody: {problem}"
                )),
                Ok(text) => {
                    for w in crate::explain::group_name_warnings(&text) {
                        add(format!("warning: access file {file} {w}"));
                    }
                }
            }
        }
        let Some(pw) = &pw else { continue };
        let finding = inspect::inspect(o, pw);
        let kind = match finding.verdict {
            Verdict::Ok => continue,
            // inspect() itself never leaves it unverified; a note if it ever does.
            Verdict::NotEnrolled | Verdict::Unverified => "note",
            Verdict::Warning => "warning",
            Verdict::Refused => WOULD_DENY,
        };
        for reason in finding.reasons {
            add(format!("{kind} {user}: {reason}"));
        }
    }
    Ok(notes)
}

/// Why this process cannot read the service's file, when it cannot: libpam, running
/// with the same credentials, would then run another stack (`other`) or none, and its
/// result would say nothing about the service's. A name that is not a service name is
/// left to [`stack_notes`], which refuses it.
fn unreadable_service(service: &str, confdir: Option<&Path>) -> Option<String> {
    if service.is_empty() || service.contains('/') || service == "." || service == ".." {
        return None;
    }
    let dir = pam_stack::pam_dir_or_default(confdir);
    let path = dir.join(service);
    // access(2), not open(2): a FIFO planted under the name must not block the check.
    match nix::unistd::access(&path, nix::unistd::AccessFlags::R_OK) {
        Err(Errno::EACCES) => Some(format!(
            "cannot read the service file \"{}\" as this user (permission denied): libpam \
             would not run its stack; run the check as root",
            path.display()
        )),
        _ => None,
    }
}

/// What a module line's type or control value does to a wrong code, when that is not
/// "the login fails": the stacks copied from guides with `optional`, `sufficient`,
/// `[success=1 default=ignore]`, or the module on an account or session line.
fn control_warning(line: &pam_stack::ModuleLine) -> Option<String> {
    let m = pam_stack::MODULE_FILE;
    let c = &line.control;
    if line.kind != "auth" {
        return Some(format!(
            "warning: the {m} line of type {} fails every time: the module can ask for no \
             code there; put it on an auth line (pam_totp(8), PAM LINE TYPES)",
            line.kind
        ));
    }
    if let Some(problem) = pam_stack::control_problem(c) {
        return Some(format!(
            "warning: libpam cannot read the control value {c} of the {m} auth line \
             ({problem}): it fails every login (pam_totp(8), CONTROL VALUES)"
        ));
    }
    // The keywords have wording of their own; libpam reads them in any case.
    let keyword = c
        .strip_prefix('[')
        .and_then(|k| k.strip_suffix(']'))
        .unwrap_or(c);
    if keyword.eq_ignore_ascii_case("optional") {
        return Some(format!(
            "warning: the {m} auth line is optional: a wrong or missing code does not \
             fail the login (pam_totp(8), CONTROL VALUES)"
        ));
    }
    if keyword.eq_ignore_ascii_case("sufficient") {
        return Some(format!(
            "warning: the {m} auth line is sufficient: a right code ends the stack, so \
             the code alone can log in (pam_totp(8), CONTROL VALUES)"
        ));
    }
    use pam_stack::Action;
    let what = match line.action(pam_stack::Returned::AuthErr) {
        Action::Ok => "counts as a success".to_owned(),
        Action::Ignore => {
            "is ignored: only a later line (such as requisite pam_deny.so) can deny".to_owned()
        }
        Action::Done => "ends the stack with the result so far".to_owned(),
        Action::Reset => {
            "is forgotten (reset): only a later line (such as requisite pam_deny.so) can deny"
                .to_owned()
        }
        Action::Jump(n) => format!("jumps over the next {n} lines"),
        Action::Bad | Action::Die => return fault_warning(c),
    };
    Some(format!(
        "warning: on the {m} auth line {c} a wrong code {what} (pam_totp(8), CONTROL VALUES)"
    ))
}

/// A control value that fails a wrong code but lets one of the module's own failures
/// through (`[success=ok auth_err=die default=ignore]`): a client that ends the
/// conversation at the prompt, or a user holding their own secret file's lock, then
/// passes the line without a code.
fn fault_warning(c: &str) -> Option<String> {
    use pam_stack::{Action, Fault};
    let passed: Vec<&str> = Fault::ALL
        .into_iter()
        .filter(|&f| !matches!(pam_stack::fault_action(c, f), Action::Bad | Action::Die))
        .map(Fault::name)
        .collect();
    if passed.is_empty() {
        return None;
    }
    Some(format!(
        "warning: on the {} auth line {c} a wrong code fails, but the module's own failures \
         ({}: a conversation ended at the prompt, a fault of the host) do not, so the login \
         can pass the line without a code; give them bad or die, as default=bad does \
         (pam_totp(8), CONTROL VALUES)",
        pam_stack::MODULE_FILE,
        passed.join(", ")
    ))
}

/// Why the local store of a module line would refuse every login's write (a read-only
/// file system in a container, a directory the module refuses), where this process
/// uses the store logins use (root's). Without a syslog in the container, this is the
/// only place the admin reads it.
fn local_store_problem(o: &ModuleOptions) -> Option<String> {
    use totp_core::state::StoreError;
    use totp_os::state_dir::StateDir;
    if o.fleet.shared().is_some() || !nix::unistd::geteuid().is_root() {
        return None;
    }
    let dir = o.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR);
    match StateDir::new(dir, std::time::Duration::from_secs(5))
        .check_writable()
        .err()?
    {
        StoreError::Refused(m)
        | StoreError::Unavailable(m)
        | StoreError::Corrupt(m)
        | StoreError::Clock(m)
        | StoreError::StoreChanged(m) => Some(m),
    }
}

/// The store a module line uses when run by this process.
fn store_of(o: &ModuleOptions) -> String {
    use totp_core::fleet::RedisTarget;
    if let Some(etcd) = &o.fleet.etcd.endpoints {
        return format!("the shared etcd store at {}", etcd.url());
    }
    if let Some(ep) = &o.fleet.redis {
        let at = match &ep.target {
            RedisTarget::Tcp { host, port, tls } => {
                format!("{}://{host}:{port}", if *tls { "rediss" } else { "redis" })
            }
            RedisTarget::Unix { path } => format!("unix:{path}"),
            RedisTarget::Sentinel { .. } => ep.url(),
        };
        return format!("the shared Redis store at {at} (database {})", ep.db);
    }
    match &o.state_dir {
        Some(d) => format!("the directory {d}"),
        None if nix::unistd::geteuid().is_root() => {
            format!("the directory {DEFAULT_STATE_DIR}")
        }
        None => "~/.local/state/pam_totp of the account running this check (not root's \
                 directory: run the check as root to use the store logins use)"
            .to_owned(),
    }
}

/// Runs the check; `Ok(status)` is the exit status: 0 for `PAM_SUCCESS`, 1 for any
/// other result of a stack that got every answer it asked for, 2 for a failure after a
/// prompt without an answer. A check that could not run at all is an error with 2
/// ([`Error::NotChecked`]), as is a usage error; a closed output keeps its own status.
pub fn run(args: CheckArgs) -> Result<u8, Error> {
    run_check(args).map_err(|e| match e {
        Error::Failed(m) => Error::NotChecked(m),
        other => other,
    })
}

fn run_check(args: CheckArgs) -> Result<u8, Error> {
    let user = match args.user {
        Some(u) => u,
        None => {
            let caller = crate::host::caller();
            totp_os::nss::lookup_user_by_uid(caller.uid)
                .map_err(|e| Error::failed(format!("cannot look up uid {}: {e}", caller.uid)))?
                .map(|pw| pw.name)
                .ok_or_else(|| Error::usage("your uid has no user name; pass --user"))?
        }
    };
    let confdir: Option<PathBuf> = match &args.pam_dir {
        Some(d) => {
            let abs = std::path::absolute(d)
                .map_err(|e| Error::failed(format!("\"{}\": {e}", d.display())))?;
            // Only a name that is not there, or not a directory, is the admin's
            // mistake; a directory this user may not reach is a check not made.
            match std::fs::metadata(&abs) {
                Ok(m) if m.is_dir() => {}
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::NotChecked(format!(
                        "cannot look at --pam-dir \"{}\" as this user: {e}",
                        d.display()
                    )));
                }
                _ => {
                    return Err(Error::usage(format!(
                        "--pam-dir \"{}\" is not a directory",
                        d.display()
                    )));
                }
            }
            Some(abs)
        }
        None => None,
    };

    if let Some(problem) = unreadable_service(&args.service, confdir.as_deref()) {
        return Err(Error::NotChecked(problem));
    }
    let notes = stack_notes(&args.service, confdir.as_deref(), &user)?;
    if !args.json {
        for n in &notes {
            crate::error::to_stderr(&format!("{n}\n"));
        }
    }

    let unanswered = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let mut tx = Transaction::start(
        &args.service,
        Some(&user),
        confdir.as_deref(),
        Box::new(TerminalConversation {
            unanswered: std::rc::Rc::clone(&unanswered),
            non_interactive: args.non_interactive,
        }),
    )
    .map_err(|e| Error::failed(format!("service \"{}\": {e}", args.service)))?;
    for (item, value) in [(Item::RHost, &args.rhost), (Item::Tty, &args.tty)] {
        if let Some(v) = value {
            let rc = tx.set_item(item, v.as_bytes());
            if rc != codes::SUCCESS {
                return Err(Error::failed(format!(
                    "cannot set {item:?}: {}",
                    pamapp::code_name(rc)
                )));
            }
        }
    }
    let rc = tx.authenticate(0);
    let unanswered = unanswered.get();
    // A refusal the notes foretold (a file or store the module refuses) is a problem
    // found even when the prompt went unanswered: the module asks for the code before
    // it says no, so that nobody learns who is enrolled.
    let foretold = notes.iter().any(|n| n.starts_with(WOULD_DENY));
    let warned = notes.iter().any(|n| n.starts_with("warning:"));
    let status = if rc == codes::SUCCESS && !(args.strict && warned) {
        0
    } else if rc == codes::SUCCESS {
        EXIT_DENIED
    } else if unanswered > 0 && !foretold {
        EXIT_NOT_CHECKED
    } else {
        EXIT_DENIED
    };

    if args.json {
        let json = CheckJson {
            action: "check",
            service: &args.service,
            user: &user,
            pam_dir: confdir.as_deref(),
            rhost: args.rhost.as_deref(),
            tty: args.tty.as_deref(),
            result: pamapp::code_name(rc),
            code: rc,
            success: rc == codes::SUCCESS,
            unanswered_prompts: unanswered,
            notes: notes.iter().map(String::as_str).collect(),
            messages: tx
                .transcript()
                .iter()
                .map(|m| MessageJson {
                    style: style_key(m.style),
                    text: &m.text,
                })
                .collect(),
        };
        crate::flow::print_stdout(&crate::output::to_json_line(&json)?)?;
        return Ok(status);
    }
    let mut report = format!(
        "PAM result: {} ({rc}) for user {user:?}, service \"{}\"{}\n",
        pamapp::code_name(rc),
        args.service,
        confdir
            .as_ref()
            .map(|d| format!(" from \"{}\"", d.display()))
            .unwrap_or_default(),
    );
    if tx.transcript().is_empty() {
        report.push_str("The stack sent no messages.\n");
    } else {
        report.push_str("Messages from the stack:\n");
        for m in tx.transcript() {
            report.push_str(&format!("  {}: {:?}\n", style_name(m.style), m.text));
        }
    }
    crate::flow::print_stdout(&report)?;
    if status == EXIT_NOT_CHECKED && args.non_interactive {
        crate::error::to_stderr(&format!(
            "totp-enroll: could not check: {unanswered} prompt(s) left unanswered \
             (--non-interactive); run the check on a terminal or give the answers on \
             standard input\n"
        ));
    } else if status == EXIT_NOT_CHECKED {
        crate::error::to_stderr(&format!(
            "totp-enroll: could not check: {unanswered} prompt(s) got no answer (standard \
             input ended, or an answer was refused); run the check on a terminal or give the \
             answers on standard input\n"
        ));
    }
    if rc == codes::SUCCESS && status == EXIT_DENIED {
        crate::error::to_stderr(
            "totp-enroll: the stack let the login in, but warned of the stack above: \
             counted as a problem (--strict)\n",
        );
    }
    Ok(status)
}
