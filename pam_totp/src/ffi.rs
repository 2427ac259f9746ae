//! Every unsafe line of the module: the `pam_sm_*` exports, the panic firewall, and
//! the libpam calls `pam-bindings` does not wrap (`pam_syslog`, setting `PAM_AUTHTOK`).

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO, PamFlag, PamResultCode,
};
use pam::conv::Conv;
use pam::items::{RHost, RUser, Service, Tty, User};
use pam::module::{PamHandle, PamHooks};
use zeroize::Zeroizing;

use crate::error::{AuthError, to_pam_code};
use crate::log::safety_net;
use crate::pamio::{ConvError, ItemKind, Level, PamIo, Style};

/// The item number comes from pam-bindings, the one definition of PAM's constants here.
const PAM_AUTHTOK: c_int = pam::items::ItemType::AuthTok as c_int;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const libc::c_void) -> c_int;
}

struct PamTotp;
pam::pam_hooks!(PamTotp);

impl PamHooks for PamTotp {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        // The test-panic build never reaches the body, so `pamh` is unused there.
        firewall(pamh, |#[allow(unused_variables)] pamh| {
            #[cfg(feature = "test-panic")]
            panic!("forced panic in pam_sm_authenticate (test-panic build)");
            #[allow(unreachable_code)]
            {
                let args: Vec<&[u8]> = args.iter().map(|a| a.to_bytes()).collect();
                let mut io = LivePam { pamh };
                crate::auth::authenticate(&mut io, &args, flags)
            }
        })
    }

    // The module only authenticates; on a line of any other type it fails (and logs
    // why) rather than return PAM_IGNORE, which would drop the second factor unseen.
    fn acct_mgmt(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        firewall(pamh, |pamh| {
            crate::auth::misplaced(&LivePam { pamh }, "account")
        })
    }

    fn sm_open_session(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        firewall(pamh, |pamh| {
            crate::auth::misplaced(&LivePam { pamh }, "session")
        })
    }

    fn sm_close_session(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        firewall(pamh, |pamh| {
            crate::auth::misplaced(&LivePam { pamh }, "session")
        })
    }

    fn sm_chauthtok(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        firewall(pamh, |pamh| {
            crate::auth::misplaced(&LivePam { pamh }, "password")
        })
    }

    fn sm_setcred(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        // sshd calls pam_setcred after authentication; there is no credential to set.
        firewall(pamh, |_| {
            #[cfg(feature = "test-panic")]
            panic!("forced panic in pam_sm_setcred (test-panic build)");
            #[allow(unreachable_code)]
            Ok(crate::error::Outcome::Success)
        })
    }
}

/// Runs one export body: a panic becomes `PAM_SYSTEM_ERR` and one syslog line, never
/// an unwind into the host and never a message on the host's stderr.
fn firewall(
    pamh: &mut PamHandle,
    body: impl FnOnce(&mut PamHandle) -> Result<crate::error::Outcome, AuthError>,
) -> PamResultCode {
    static SILENCE: Once = Once::new();
    // This cdylib carries its own copy of std, so this hook only silences panics raised
    // in our own code; the message is logged below instead of printed on the user's tty.
    SILENCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let result = catch_unwind(AssertUnwindSafe(|| body(&mut *pamh)));
    let code = match result {
        Ok(r) => to_pam_code(&r),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            let io = LivePam { pamh };
            io.log(
                Level::Err,
                &format!("internal error (panic): {what}; denying"),
            );
            to_pam_code(&Err(AuthError::Panic))
        }
    };
    wipe_used_stack();
    PamResultCode::try_from(code).unwrap_or(PamResultCode::PAM_SYSTEM_ERR)
}

/// How much of the stack below an export's frame [`wipe_used_stack`] overwrites: more
/// than a login's calls below it use in the release build (the HMACs of the window are
/// computed a few KiB down), and small beside any thread stack a PAM application runs
/// logins on.
const STACK_WIPE_BYTES: usize = 32 * 1024;

/// Overwrites the stack the export's body used. Its frames held the HMAC values of the
/// window's steps (each a code the user may type next) and copies of the key schedule
/// inside the hash crates, which keep no wipe of their own; libpam returns to the
/// application with that memory untouched, so a later leak of the process' memory
/// (a core file, a swap page) would carry them (SECURITY.md K4).
#[inline(never)]
fn wipe_used_stack() {
    use zeroize::Zeroize;
    let mut area = [0u64; STACK_WIPE_BYTES / 8];
    area.zeroize();
    std::hint::black_box(&area);
}

/// What a failed conversation (or `pam_get_user`'s prompt) returned, as far as the
/// module's own return code passes it on.
fn conv_error(code: PamResultCode) -> ConvError {
    match code {
        PamResultCode::PAM_ABORT => ConvError::Aborted,
        PamResultCode::PAM_BUF_ERR => ConvError::NoMemory,
        _ => ConvError::Failed,
    }
}

/// The live PAM handle behind [`PamIo`].
struct LivePam<'a> {
    pamh: &'a mut PamHandle,
}

fn cstr_bytes(s: &CStr) -> Vec<u8> {
    s.to_bytes().to_vec()
}

impl PamIo for LivePam<'_> {
    fn user(&mut self) -> Result<Option<Vec<u8>>, ConvError> {
        match self.pamh.get_user(None) {
            Ok(name) => Ok(Some(name.into_bytes())),
            // A non-UTF-8 name (pam-bindings' answer for it) still gets the same
            // prompt-then-deny flow: read it raw.
            Err(PamResultCode::PAM_SYSTEM_ERR) => Ok(self.item(ItemKind::User)),
            // libpam asked for the name (PAM_USER unset) and the conversation failed or,
            // with PAM_CONV_AGAIN, is waiting for an event (the module cannot be
            // resumed): no name to hide, and a conversation that has just failed, or
            // that the application aborted, is not asked for a code.
            Err(code) => Err(conv_error(code)),
        }
    }

    fn item(&self, kind: ItemKind) -> Option<Vec<u8>> {
        match kind {
            ItemKind::Service => self
                .pamh
                .get_item::<Service>()
                .ok()?
                .map(|v| cstr_bytes(v.0)),
            ItemKind::User => self.pamh.get_item::<User>().ok()?.map(|v| cstr_bytes(v.0)),
            ItemKind::Tty => self.pamh.get_item::<Tty>().ok()?.map(|v| cstr_bytes(v.0)),
            ItemKind::RHost => self.pamh.get_item::<RHost>().ok()?.map(|v| cstr_bytes(v.0)),
            ItemKind::RUser => self.pamh.get_item::<RUser>().ok()?.map(|v| cstr_bytes(v.0)),
        }
    }

    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        let tok = self.pamh.get_item::<pam::items::AuthTok>().ok()??;
        Some(Zeroizing::new(tok.as_bytes().to_vec()))
    }

    fn set_authtok(&mut self, value_in: &[u8]) -> Result<(), ConvError> {
        if value_in.contains(&0) {
            return Err(ConvError::Failed);
        }
        // A NUL-terminated copy that is wiped on drop (it holds a password). Sized for
        // the NUL up front: a push that reallocated would free an unwiped copy.
        let mut value = Zeroizing::new(Vec::with_capacity(value_in.len() + 1));
        value.extend_from_slice(value_in);
        value.push(0);
        let handle: *mut PamHandle = &mut *self.pamh;
        // SAFETY: `handle` is the live handle libpam passed to this hook; libpam copies
        // the string (and wipes its own copy on pam_end), so `value` only has to outlive
        // the call.
        let rc = unsafe { pam_set_item(handle, PAM_AUTHTOK, value.as_ptr().cast()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(ConvError::Failed)
        }
    }

    fn converse(
        &mut self,
        style: Style,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConvError> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(c)) => c,
            _ => return Err(ConvError::Failed),
        };
        let raw_style = match style {
            Style::PromptEchoOff => PAM_PROMPT_ECHO_OFF,
            Style::PromptEchoOn => PAM_PROMPT_ECHO_ON,
            Style::ErrorMsg => PAM_ERROR_MSG,
            Style::TextInfo => PAM_TEXT_INFO,
        };
        let reply = match conv.send(raw_style, text) {
            Ok(reply) => reply.map(|r| Zeroizing::new(r.as_bytes().to_vec())),
            Err(code) => return Err(conv_error(code)),
        };
        #[cfg(feature = "test-panic-after-prompt")]
        if matches!(style, Style::PromptEchoOff | Style::PromptEchoOn) {
            panic!("forced panic after the prompt was answered (test build)");
        }
        Ok(reply)
    }

    fn log(&self, level: Level, message: &str) {
        let priority = match level {
            Level::Err => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
            Level::Debug => libc::LOG_DEBUG,
        };
        let Ok(text) = CString::new(safety_net(message.as_bytes())) else {
            return;
        };
        let handle: *const PamHandle = &*self.pamh;
        // SAFETY: live handle; the format is the literal "%s" and the one vararg is a
        // NUL-terminated string that outlives the call, so user text is never a format.
        unsafe { pam_syslog(handle, priority, c"%s".as_ptr(), text.as_ptr()) };
    }
}
