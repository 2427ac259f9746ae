//! Every unsafe line of the application-side driver.

use std::ffi::{CStr, CString, c_void};
use std::os::raw::{c_char, c_int};
use std::ptr;

use crate::{ConvState, Message, Reply, cstr_lossy};

/// PAM return codes (Linux-PAM `_pam_types.h`).
pub mod codes {
    pub const SUCCESS: i32 = 0;
    pub const SERVICE_ERR: i32 = 3;
    pub const SYSTEM_ERR: i32 = 4;
    pub const BUF_ERR: i32 = 5;
    pub const PERM_DENIED: i32 = 6;
    pub const AUTH_ERR: i32 = 7;
    pub const USER_UNKNOWN: i32 = 10;
    pub const MAXTRIES: i32 = 11;
    pub const CONV_ERR: i32 = 19;
    pub const IGNORE: i32 = 25;
    pub const ABORT: i32 = 26;
    pub const BAD_ITEM: i32 = 29;
}

const NAMES: [&str; 32] = [
    "PAM_SUCCESS",
    "PAM_OPEN_ERR",
    "PAM_SYMBOL_ERR",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_BUF_ERR",
    "PAM_PERM_DENIED",
    "PAM_AUTH_ERR",
    "PAM_CRED_INSUFFICIENT",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_ACCT_EXPIRED",
    "PAM_SESSION_ERR",
    "PAM_CRED_UNAVAIL",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
    "PAM_NO_MODULE_DATA",
    "PAM_CONV_ERR",
    "PAM_AUTHTOK_ERR",
    "PAM_AUTHTOK_RECOVERY_ERR",
    "PAM_AUTHTOK_LOCK_BUSY",
    "PAM_AUTHTOK_DISABLE_AGING",
    "PAM_TRY_AGAIN",
    "PAM_IGNORE",
    "PAM_ABORT",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_MODULE_UNKNOWN",
    "PAM_BAD_ITEM",
    "PAM_CONV_AGAIN",
    "PAM_INCOMPLETE",
];

pub fn code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("PAM_(unknown)")
}

pub const PAM_ESTABLISH_CRED: c_int = 0x0002;

#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

#[repr(C)]
pub struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
pub struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item: c_int, value: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
}

pub fn start(
    service: &CStr,
    user: Option<&CStr>,
    confdir: Option<&CStr>,
    conv: &PamConv,
    handle: &mut *mut PamHandle,
) -> c_int {
    let user = user.map_or(ptr::null(), CStr::as_ptr);
    match confdir {
        // SAFETY: all strings are NUL-terminated and outlive the call; `conv` is boxed by
        // the caller and outlives the handle; `handle` is a valid out-pointer.
        Some(dir) => unsafe {
            pam_start_confdir(service.as_ptr(), user, conv, dir.as_ptr(), handle)
        },
        // SAFETY: as above, without a configuration directory.
        None => unsafe { pam_start(service.as_ptr(), user, conv, handle) },
    }
}

pub fn set_item(handle: *mut PamHandle, item: c_int, value: &CString) -> c_int {
    // SAFETY: `handle` came from a successful pam_start and is not yet ended; libpam
    // copies string items, so `value` only needs to live for the call.
    unsafe { pam_set_item(handle, item, value.as_ptr().cast()) }
}

pub fn authenticate(handle: *mut PamHandle, flags: c_int) -> c_int {
    // SAFETY: valid, not-yet-ended handle.
    unsafe { pam_authenticate(handle, flags) }
}

pub fn setcred(handle: *mut PamHandle, flags: c_int) -> c_int {
    // SAFETY: valid, not-yet-ended handle.
    unsafe { pam_setcred(handle, flags) }
}

/// A variable of the PAM environment (`pam_getenv`), copied out.
pub fn getenv(handle: *mut PamHandle, name: &CStr) -> Option<Vec<u8>> {
    // SAFETY: valid, not-yet-ended handle; `name` is NUL-terminated. The returned
    // string belongs to libpam and is copied before any other PAM call can free it.
    let value = unsafe { pam_getenv(handle, name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-NULL, a NUL-terminated string of libpam's (above).
    Some(unsafe { CStr::from_ptr(value) }.to_bytes().to_vec())
}

pub fn acct_mgmt(handle: *mut PamHandle, flags: c_int) -> c_int {
    // SAFETY: valid, not-yet-ended handle.
    unsafe { pam_acct_mgmt(handle, flags) }
}

pub fn end(handle: *mut PamHandle, status: c_int) {
    // SAFETY: called exactly once, from Transaction::drop, on a handle from pam_start.
    unsafe {
        pam_end(handle, status);
    }
}

/// `openlog(3)` for the host application: glibc keeps the `ident` pointer, not a copy,
/// so only a string that lives for the rest of the process is accepted.
pub fn openlog(ident: &'static CStr, option: c_int, facility: c_int) {
    // SAFETY: `ident` is NUL-terminated and 'static, so every later syslog() that reads
    // glibc's stored pointer finds it alive.
    unsafe { libc::openlog(ident.as_ptr(), option, facility) }
}

/// `syslog(3)` with a fixed `%s` format: the text is never read as a format string.
pub fn syslog(priority: c_int, text: &CStr) {
    // SAFETY: the format is a literal with one `%s`, matched by one NUL-terminated
    // string that outlives the call.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) }
}

/// `closelog(3)`.
pub fn closelog() {
    // SAFETY: takes no arguments; glibc serialises it with syslog() under its own lock.
    unsafe { libc::closelog() }
}

/// Children the host's own SIGCHLD handler reaped (see [`set_sigchld`]).
pub static HOST_REAPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn reap_every_child(_: c_int) {
    // What many daemons do on SIGCHLD: reap whatever exited, whoever started it.
    // SAFETY: waitpid with a null status pointer is async-signal-safe.
    while unsafe { libc::waitpid(-1, ptr::null_mut(), libc::WNOHANG) } > 0 {
        HOST_REAPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sets the process's SIGCHLD disposition: ignored (children reaped by the kernel), or a
/// handler that reaps every child that exits, or the default.
pub fn set_sigchld(how: crate::host_signals::Sigchld) -> std::io::Result<()> {
    use crate::host_signals::Sigchld;
    let handler = match how {
        Sigchld::Default => libc::SIG_DFL,
        Sigchld::Ignore => libc::SIG_IGN,
        Sigchld::Reap => reap_every_child as extern "C" fn(c_int) as libc::sighandler_t,
    };
    install(libc::SIGCHLD, handler, libc::SA_RESTART)
}

/// `sigaction(2)`: `handler` (a function of this driver, `SIG_DFL` or `SIG_IGN`) for
/// `sig`, with `flags` and an empty mask.
fn install(sig: c_int, handler: libc::sighandler_t, flags: c_int) -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "default, no flags, empty mask" action.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: `act` is initialised, and its handler is async-signal-safe; the old action
    // is not asked for.
    if unsafe { libc::sigaction(sig, &act, ptr::null_mut()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The process's SIGCHLD disposition now (`None` for a handler this driver did not set).
pub fn sigchld() -> Option<crate::host_signals::Sigchld> {
    use crate::host_signals::Sigchld;
    // SAFETY: a zeroed sigaction is valid storage for the old action.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    if unsafe { libc::sigaction(libc::SIGCHLD, ptr::null(), &mut old) } != 0 {
        return None;
    }
    let reaper = reap_every_child as extern "C" fn(c_int) as libc::sighandler_t;
    match old.sa_sigaction {
        libc::SIG_DFL => Some(Sigchld::Default),
        libc::SIG_IGN => Some(Sigchld::Ignore),
        h if h == reaper => Some(Sigchld::Reap),
        _ => None,
    }
}

/// Allocates a C string with malloc, as libpam frees replies with free().
fn malloc_string(s: &[u8]) -> *mut c_char {
    // SAFETY: calloc returns either NULL or a zeroed block of len+1 bytes.
    let p = unsafe { libc::calloc(s.len() + 1, 1) }.cast::<c_char>();
    if !p.is_null() {
        // SAFETY: `p` has room for s.len() bytes plus the NUL that calloc zeroed.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr().cast(), p, s.len()) };
    }
    p
}

/// The C conversation callback. Never unwinds: a panic in a Rust conversation becomes
/// PAM_CONV_ERR.
pub unsafe extern "C" fn conversation_trampoline(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    std::panic::catch_unwind(|| {
        // SAFETY: libpam passes what the module passed: `num_msg` valid message
        // pointers, a response out-pointer, and our appdata (a live ConvState).
        unsafe { converse(num_msg, msg, resp, appdata) }
    })
    .unwrap_or(codes::CONV_ERR)
}

/// # Safety
/// Arguments as for a `pam_conv` callback; `appdata` must point to a live `ConvState`.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return codes::CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return codes::CONV_ERR;
    }
    // SAFETY: appdata is the boxed ConvState registered in Transaction::start, alive for
    // the whole transaction, and libpam calls us from the thread that called into it.
    let state = unsafe { &mut *appdata.cast::<ConvState>() };
    let mut replies = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of `n` message pointers.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            return codes::CONV_ERR;
        }
        // SAFETY: non-null message pointer from the module.
        let m = unsafe { &*m };
        let text = if m.msg.is_null() {
            String::new()
        } else {
            // SAFETY: message texts are NUL-terminated C strings.
            cstr_lossy(unsafe { CStr::from_ptr(m.msg) })
        };
        let message = Message {
            style: m.msg_style,
            text,
        };
        let prompt = message.style == crate::style::PROMPT_ECHO_OFF
            || message.style == crate::style::PROMPT_ECHO_ON;
        if prompt
            && !state.handle.is_null()
            && let Some(name) = state.user_at_prompt.take()
        {
            // PAM_USER is item 2 (<security/_pam_types.h>).
            if set_item(state.handle, 2, &name) != codes::SUCCESS {
                return codes::CONV_ERR;
            }
        }
        let reply = state.conversation.reply(&message);
        state.transcript.push(message);
        match reply {
            Reply::Fail(code) => return code,
            Reply::NullArray => {
                // SAFETY: valid out-pointer.
                unsafe { *resp = ptr::null_mut() };
                return codes::SUCCESS;
            }
            other => replies.push(other),
        }
    }
    // SAFETY: calloc of n zeroed responses (resp NULL, retcode 0).
    let array =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if array.is_null() {
        return codes::BUF_ERR;
    }
    let mut code = codes::SUCCESS;
    for (i, reply) in replies.iter().enumerate() {
        let bytes = match reply {
            Reply::Text(t) => t.as_bytes(),
            Reply::FailWithText(c, t) => {
                code = *c;
                t.as_bytes()
            }
            Reply::Bytes(b) => b.as_slice(),
            _ => continue,
        };
        // SAFETY: i < n, inside the calloc'd array.
        unsafe { (*array.add(i)).resp = malloc_string(bytes) };
    }
    // SAFETY: valid out-pointer; libpam (the module) takes ownership and frees it.
    unsafe { *resp = array };
    code
}

/// `close(2)` of a descriptor the host gives up (tests of a host with 0, 1 or 2 closed).
pub fn close_fd(fd: c_int) {
    // SAFETY: closing a descriptor number touches no memory; std objects that may wrap
    // 0, 1 or 2 (Stdin, Stdout, Stderr) treat EBADF as a closed stream.
    unsafe { libc::close(fd) };
}

/// A close-on-exec duplicate of `fd` at 100 or above, out of the way of the module's.
pub fn dup_high(fd: c_int) -> Option<c_int> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer and touches no memory.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    (new >= 0).then_some(new)
}

/// `dup2(2)`.
pub fn dup2(from: c_int, to: c_int) -> bool {
    // SAFETY: integers only.
    unsafe { libc::dup2(from, to) == to }
}

/// Whether `fd` is an open descriptor.
pub fn fd_is_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD takes no argument and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Blocks every signal in the calling thread, as a threaded daemon's workers do (one
/// thread takes them with sigwait); inherited by threads it starts and across exec.
pub fn block_all_signals() -> std::io::Result<()> {
    // SAFETY: a zeroed sigset_t is valid storage; sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `all` is a valid sigset_t, only read by pthread_sigmask.
    let rc = unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// Ignores the signals daemons commonly ignore (`nohup`, terminal and pipe signals).
pub fn ignore_signals() -> std::io::Result<()> {
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        install(sig, libc::SIG_IGN, 0)?;
    }
    Ok(())
}

/// SIGALRMs the host's own handler took (see [`start_itimer`]).
pub static HOST_ALARMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_alarm(_: c_int) {
    HOST_ALARMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A periodic SIGALRM every `ms` milliseconds, taken by a handler installed without
/// SA_RESTART (as login's alarm handler is): every slow system call of the process is
/// then interrupted with EINTR again and again.
pub fn start_itimer(ms: u64) -> std::io::Result<()> {
    install(
        libc::SIGALRM,
        count_alarm as extern "C" fn(c_int) as libc::sighandler_t,
        0,
    )?;
    let every = libc::timeval {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: every,
        it_value: every,
    };
    // SAFETY: `timer` is initialised; the old value is not asked for.
    if unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `setfsuid(2)` for the calling thread; returns the fsuid in effect afterwards.
pub fn set_fsuid(uid: u32) -> u32 {
    // SAFETY: integers only; setfsuid(-1) changes nothing and reports the current id.
    unsafe {
        libc::setfsuid(uid);
        libc::setfsuid(u32::MAX) as u32
    }
}
