//! Application-side libpam driver.
//!
//! `totp-enroll check`, the integration tests and the benchmark all need to run a
//! real PAM transaction (`pam_start_confdir` → `pam_authenticate` → `pam_end`) with a
//! scripted or interactive conversation. Keeping that FFI in one small crate means one
//! audited place for it; the module's own FFI lives in `pam_totp/src/ffi.rs`.

mod sys;

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

pub use sys::codes;

/// Message styles of `struct pam_message`.
pub mod style {
    pub const PROMPT_ECHO_OFF: i32 = 1;
    pub const PROMPT_ECHO_ON: i32 = 2;
    pub const ERROR_MSG: i32 = 3;
    pub const TEXT_INFO: i32 = 4;
}

/// PAM items an application may set before authenticating. (`PAM_AUTHTOK` is not
/// among them: libpam lets only modules set or read it; tests that need it put a
/// `pam_exec.so expose_authtok` line in the stack.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    User,
    Tty,
    RHost,
    RUser,
}

impl Item {
    fn raw(self) -> libc::c_int {
        match self {
            Item::User => 2,
            Item::Tty => 3,
            Item::RHost => 4,
            Item::RUser => 8,
        }
    }
}

/// What the conversation function answers to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A reply string (for prompts) or an empty acknowledgement (for info/error).
    Text(String),
    /// A reply of raw bytes: what a terminal in another locale, or a client that sends
    /// no text at all, can put in `resp` (a NUL ends it, as C reads it).
    Bytes(Vec<u8>),
    /// `PAM_SUCCESS` with a NULL `resp` string.
    NullText,
    /// `PAM_SUCCESS` with a NULL response array.
    NullArray,
    /// The conversation fails with this PAM code.
    Fail(i32),
    /// The conversation fails with this PAM code but hands back this reply anyway, as
    /// a careless application may: libpam's name prompt then returns the code as given.
    FailWithText(i32, String),
}

/// One message the module sent, as the application saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub style: i32,
    pub text: String,
}

/// Decides the reply to each message.
pub trait Conversation {
    fn reply(&mut self, message: &Message) -> Reply;
}

/// Answers prompts from a fixed script; info and error messages get no answer.
/// Running out of answers is a conversation error, as with a closed terminal.
#[derive(Default)]
pub struct Scripted {
    answers: VecDeque<Reply>,
}

impl Scripted {
    pub fn new<I: IntoIterator<Item = Reply>>(answers: I) -> Self {
        Scripted {
            answers: answers.into_iter().collect(),
        }
    }

    /// Convenience: every prompt is answered with the next string.
    pub fn texts<I: IntoIterator<Item = S>, S: Into<String>>(answers: I) -> Self {
        Scripted::new(answers.into_iter().map(|s| Reply::Text(s.into())))
    }
}

impl Conversation for Scripted {
    fn reply(&mut self, message: &Message) -> Reply {
        match message.style {
            style::PROMPT_ECHO_OFF | style::PROMPT_ECHO_ON => self
                .answers
                .pop_front()
                .unwrap_or(Reply::Fail(codes::CONV_ERR)),
            _ => Reply::Text(String::new()),
        }
    }
}

/// State shared with the C conversation callback.
pub(crate) struct ConvState {
    pub(crate) conversation: Box<dyn Conversation>,
    pub(crate) transcript: Vec<Message>,
    /// The transaction's handle, once `pam_start` gave it (for `user_at_prompt`).
    pub(crate) handle: *mut sys::PamHandle,
    /// Set as `PAM_USER` by the conversation itself at the next prompt, before it
    /// answers: what libpam lets an application's conversation function do.
    pub(crate) user_at_prompt: Option<CString>,
}

/// An open PAM transaction. `pam_end` runs on drop.
pub struct Transaction {
    handle: *mut sys::PamHandle,
    // Boxed so its address, handed to libpam as appdata_ptr, stays fixed.
    state: Box<ConvState>,
    // libpam keeps a pointer to this struct for the life of the handle.
    _conv: Box<sys::PamConv>,
    last: i32,
}

/// Error starting a transaction: the PAM code from `pam_start_confdir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartError(pub i32);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pam_start failed: {}", code_name(self.0))
    }
}

impl std::error::Error for StartError {}

fn cstring(s: &[u8]) -> Result<CString, StartError> {
    CString::new(s).map_err(|_| StartError(codes::BUF_ERR))
}

impl Transaction {
    /// Starts a transaction for `service`. With `confdir`, service files are read from
    /// that directory only (`pam_start_confdir`), never from `/etc/pam.d`.
    pub fn start(
        service: &str,
        user: Option<&str>,
        confdir: Option<&Path>,
        conversation: Box<dyn Conversation>,
    ) -> Result<Transaction, StartError> {
        Self::start_with(service, user, confdir, conversation, true)
    }

    /// Like [`Transaction::start`], but the `pam_conv` passed to libpam has a NULL
    /// conversation function: what a broken application gives a module (tests only).
    pub fn start_without_conversation_function(
        service: &str,
        user: Option<&str>,
        confdir: Option<&Path>,
    ) -> Result<Transaction, StartError> {
        Self::start_with(service, user, confdir, Box::new(Scripted::default()), false)
    }

    fn start_with(
        service: &str,
        user: Option<&str>,
        confdir: Option<&Path>,
        conversation: Box<dyn Conversation>,
        with_function: bool,
    ) -> Result<Transaction, StartError> {
        let service = cstring(service.as_bytes())?;
        let user = user.map(|u| cstring(u.as_bytes())).transpose()?;
        let confdir = confdir
            .map(|d| cstring(d.as_os_str().as_bytes()))
            .transpose()?;
        let mut state = Box::new(ConvState {
            conversation,
            transcript: Vec::new(),
            handle: ptr::null_mut(),
            user_at_prompt: None,
        });
        let conv = Box::new(sys::PamConv {
            conv: if with_function {
                Some(sys::conversation_trampoline)
            } else {
                None
            },
            appdata_ptr: (&mut *state as *mut ConvState).cast(),
        });
        let mut handle: *mut sys::PamHandle = ptr::null_mut();
        let rc = sys::start(
            &service,
            user.as_deref(),
            confdir.as_deref(),
            &conv,
            &mut handle,
        );
        if rc != codes::SUCCESS || handle.is_null() {
            return Err(StartError(rc));
        }
        state.handle = handle;
        Ok(Transaction {
            handle,
            state,
            _conv: conv,
            last: rc,
        })
    }

    /// Sets a string item (`PAM_TTY`, `PAM_RHOST`, …).
    pub fn set_item(&mut self, item: Item, value: &[u8]) -> i32 {
        let Ok(value) = CString::new(value) else {
            return codes::BAD_ITEM;
        };
        sys::set_item(self.handle, item.raw(), &value)
    }

    /// Has the conversation function itself set `PAM_USER` to `name` at the next
    /// prompt, before answering it (libpam allows it during a module's call).
    pub fn set_user_at_next_prompt(&mut self, name: &[u8]) -> i32 {
        let Ok(name) = CString::new(name) else {
            return codes::BAD_ITEM;
        };
        self.state.user_at_prompt = Some(name);
        codes::SUCCESS
    }

    /// Runs `pam_authenticate` with the given flags.
    pub fn authenticate(&mut self, flags: i32) -> i32 {
        self.last = sys::authenticate(self.handle, flags);
        self.last
    }

    /// Runs `pam_setcred(PAM_ESTABLISH_CRED)`.
    pub fn setcred(&mut self) -> i32 {
        sys::setcred(self.handle, sys::PAM_ESTABLISH_CRED)
    }

    /// A variable of the PAM environment (`pam_getenv`): what modules put there, such
    /// as `pam_env` in its `pam_setcred`.
    pub fn getenv(&self, name: &str) -> Option<Vec<u8>> {
        let name = CString::new(name).ok()?;
        sys::getenv(self.handle, &name)
    }

    /// Runs `pam_acct_mgmt`.
    pub fn acct_mgmt(&mut self) -> i32 {
        sys::acct_mgmt(self.handle, 0)
    }

    /// The raw `pam_handle_t *`, for tests that call a module's exports directly
    /// (argument-validation edge cases). Valid until the transaction is dropped.
    pub fn raw_handle(&mut self) -> *mut std::ffi::c_void {
        self.handle.cast()
    }

    /// Messages the modules sent so far.
    pub fn transcript(&self) -> &[Message] {
        &self.state.transcript
    }

    /// Number of prompts (echo on or off) the modules issued.
    pub fn prompt_count(&self) -> usize {
        self.state
            .transcript
            .iter()
            .filter(|m| m.style == style::PROMPT_ECHO_OFF || m.style == style::PROMPT_ECHO_ON)
            .count()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        sys::end(self.handle, self.last);
    }
}

/// The host application's own syslog, as a program that uses PAM sets it up: tests
/// check that a module's logging leaves the host's ident, facility and options alone.
pub mod host_log {
    use std::ffi::CStr;

    pub use libc::{LOG_AUTHPRIV, LOG_INFO, LOG_LOCAL3, LOG_PID};

    /// `openlog(3)`; `ident` is 'static because glibc keeps the pointer.
    pub fn open(ident: &'static CStr, option: i32, facility: i32) {
        crate::sys::openlog(ident, option, facility);
    }

    /// `syslog(3)` of `text` as data, never as a format.
    pub fn log(priority: i32, text: &str) {
        // A NUL would end the line early in C: the tests never log one, so it is cut.
        let text = text.split('\0').next().unwrap_or_default();
        if let Ok(text) = std::ffi::CString::new(text) {
            crate::sys::syslog(priority, &text);
        }
    }

    /// `closelog(3)`: what a module must never do to its host.
    pub fn close() {
        crate::sys::closelog();
    }

    /// Leaks `ident` into a 'static C string for [`open`]; `None` if it holds a NUL.
    pub fn leak_ident(ident: &str) -> Option<&'static CStr> {
        let c = std::ffi::CString::new(ident).ok()?;
        Some(Box::leak(c.into_boxed_c_str()))
    }
}

/// The host application's SIGCHLD disposition, as programs that use PAM leave it: a
/// module that runs a child must get its exit status whatever the host set.
pub mod host_signals {
    /// What the host does with SIGCHLD.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Sigchld {
        Default,
        /// `SIG_IGN`: the kernel reaps children, so `wait` finds none.
        Ignore,
        /// A handler that reaps every child that exits (`waitpid(-1, …)` in a loop).
        Reap,
    }

    impl Sigchld {
        pub fn parse(s: &str) -> Option<Sigchld> {
            match s {
                "default" => Some(Sigchld::Default),
                "ignore" => Some(Sigchld::Ignore),
                "reap" => Some(Sigchld::Reap),
                _ => None,
            }
        }
        pub fn name(self) -> &'static str {
            match self {
                Sigchld::Default => "default",
                Sigchld::Ignore => "ignore",
                Sigchld::Reap => "reap",
            }
        }
    }

    pub fn set(how: Sigchld) -> std::io::Result<()> {
        crate::sys::set_sigchld(how)
    }

    /// The disposition now; `None` for a handler this driver did not install.
    pub fn current() -> Option<Sigchld> {
        crate::sys::sigchld()
    }

    /// Blocks every signal in the calling thread (a threaded daemon's worker).
    pub fn block_all() -> std::io::Result<()> {
        crate::sys::block_all_signals()
    }

    /// Ignores SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1 and SIGUSR2.
    pub fn ignore_common() -> std::io::Result<()> {
        crate::sys::ignore_signals()
    }

    /// A SIGALRM every `ms` milliseconds into a counting handler without SA_RESTART.
    pub fn alarm_every(ms: u64) -> std::io::Result<()> {
        crate::sys::start_itimer(ms)
    }

    /// SIGALRMs taken by the [`alarm_every`] handler so far.
    pub fn alarms() -> usize {
        crate::sys::HOST_ALARMS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Children the [`Sigchld::Reap`] handler has reaped so far.
    pub fn reaped() -> usize {
        crate::sys::HOST_REAPED.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A host that closed some of its standard descriptors (0, 1, 2) before calling PAM, as
/// a daemon that never reopened them on /dev/null does: the module's own descriptors may
/// then take those numbers, and nothing may be written to them as if they were stdio.
pub mod host_fds {
    /// Closes `fds`; the driver's stdout is first kept at a high descriptor, returned so
    /// that [`restore_stdout`] can bring the report back.
    pub fn close(fds: &[i32]) -> Option<i32> {
        let saved = crate::sys::dup_high(1);
        for &fd in fds {
            crate::sys::close_fd(fd);
        }
        saved
    }

    /// Which of `fds` are open now.
    pub fn open_among(fds: &[i32]) -> Vec<i32> {
        fds.iter()
            .copied()
            .filter(|&fd| crate::sys::fd_is_open(fd))
            .collect()
    }

    /// Puts the saved stdout back at 1.
    pub fn restore_stdout(saved: i32) -> bool {
        crate::sys::dup2(saved, 1)
    }
}

/// A host whose thread already runs with another filesystem uid (a file server that
/// switches per request and calls PAM in between).
pub mod host_ids {
    /// Sets the calling thread's fsuid; returns the fsuid now in effect.
    pub fn set_fsuid(uid: u32) -> u32 {
        crate::sys::set_fsuid(uid)
    }

    /// The calling thread's fsuid.
    pub fn fsuid() -> u32 {
        crate::sys::set_fsuid(u32::MAX)
    }
}

/// The symbolic name of a PAM return code.
pub fn code_name(code: i32) -> &'static str {
    sys::code_name(code)
}

/// The PAM code for a symbolic name (`PAM_SUCCESS` or `SUCCESS`).
pub fn code_from_name(name: &str) -> Option<i32> {
    let name = name.strip_prefix("PAM_").unwrap_or(name);
    (0..=31).find(|&c| code_name(c).strip_prefix("PAM_") == Some(name))
}

pub(crate) fn cstr_lossy(p: &CStr) -> String {
    String::from_utf8_lossy(p.to_bytes()).into_owned()
}
