//! One error enum for the module and the one table that maps outcomes to PAM codes.
//!
//! Per-user outcomes (wrong code, replay, throttled, unknown user, bad file) are all
//! `PAM_AUTH_ERR` so that the return code says nothing about the account. Only faults of
//! the module or the host (bad configuration, credentials, clock, panic) get other codes.

use pam::constants::PamResultCode;
use std::fmt;

use crate::pamio::ConvError;
use totp_core::verify::Throttle;

/// How an authentication ended when nothing went wrong inside the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A code (or a grace-period match) was verified.
    Success,
    /// A verified skip: `nullok` with no file, an access rule, a group rule.
    Ignore,
    /// The user is not let in; the reason is for the log only.
    Deny(Denial),
}

/// Why a user was denied. Never shown to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    InvalidUserName,
    UnknownUser,
    /// The name service failed for this user (not "no such user"): a host fault, such
    /// as a directory server that is down.
    NameService,
    NoSecret,
    BadFile,
    WrongCode,
    Replay,
    /// A right code for a step (counter) older than the last one accepted.
    OutOfOrder,
    /// Refused unevaluated; the rule that refused it is named in the log line.
    Throttled(Throttle),
    Locked,
    NoAnswer,
    NotPersisted,
    /// `forward_pass`: the password could not be stored as `PAM_AUTHTOK` for the next
    /// module (libpam out of memory), after a right code or within a grace period.
    NotForwarded,
    /// The state store refused, or holds a record that cannot be used.
    StateUnusable,
    /// A right scratch code, refused because the enrolment's record already holds as
    /// many used scratch codes as it keeps and the file still lists them all.
    ScratchRecordFull,
    /// `PAM_USER` named another account once the conversation had answered (the
    /// application's conversation function set it): nothing was compared.
    UserChanged,
}

impl Denial {
    /// The words of the log line that ends a denied login ("… for USER from HOST"). A
    /// code was compared only for the first three and a full record's scratch code;
    /// "code not verified" says none was.
    /// docs/logging.md and the fail2ban filter depend on these words.
    pub fn log_text(&self) -> &'static str {
        match self {
            Denial::WrongCode => "invalid verification code",
            Denial::Replay => "code already used",
            Denial::OutOfOrder => "expired code (older than the last accepted one)",
            Denial::Throttled(Throttle::Backoff) => {
                "too many failures; attempt refused unevaluated (backoff)"
            }
            Denial::Throttled(Throttle::Ceiling) => {
                "too many failures; attempt refused unevaluated (per-user ceiling)"
            }
            // GA's line limits attempts, right ones included, not failures.
            Denial::Throttled(Throttle::RateLimit) => {
                "too many login attempts; attempt refused unevaluated (RATE_LIMIT)"
            }
            Denial::Locked => "second factor disabled after too many failures (max_failures)",
            Denial::NotPersisted => "state could not be saved",
            Denial::NotForwarded => "password not passed on to the next module (forward_pass)",
            // Not "secret file unusable": the file is fine, the record of used scratch
            // codes has no room, and the err line before it names the way out.
            Denial::ScratchRecordFull => {
                "scratch code refused (the record of used scratch codes is full)"
            }
            Denial::StateUnusable => "code not verified (state store unusable)",
            Denial::BadFile => "code not verified (secret file unusable)",
            Denial::NoSecret => "code not verified (no secret configured)",
            Denial::UnknownUser => "code not verified (unknown user)",
            Denial::NameService => "code not verified (name service error)",
            Denial::InvalidUserName => "code not verified (invalid user name)",
            Denial::UserChanged => "code not verified (PAM_USER changed during the prompt)",
            Denial::NoAnswer => "no code given",
        }
    }
}

impl AuthError {
    /// The words of the line that ends an attempt this fault stopped once the answer
    /// was in ("… for USER from HOST", after the error line saying what failed), so that
    /// every answered attempt ends with a line naming the user and the host. `None` for
    /// faults that never happen there.
    pub fn log_text(&self) -> Option<&'static str> {
        match self {
            AuthError::Clock => Some("code not verified (clock fault)"),
            AuthError::LockTimeout => Some("code not verified (secret file lock timed out)"),
            AuthError::StoreUnavailable => Some(Denial::StateUnusable.log_text()),
            AuthError::Credentials(_) => Some("code not verified (credential switch failed)"),
            AuthError::Config(_)
            | AuthError::Conversation(_)
            | AuthError::Nss(_)
            | AuthError::Panic => None,
        }
    }
}

/// Faults of the module or its host; each denies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Module arguments could not be parsed (logged with the offending option).
    Config(String),
    /// The conversation function failed (also when libpam asked it for the user name).
    Conversation(ConvError),
    /// Switching or restoring file-system credentials failed.
    Credentials(String),
    /// The clock is before 1970 or far behind the stored state.
    Clock,
    /// The secret file's lock could not be taken in time.
    LockTimeout,
    /// The state store did not answer (or timed out on its record's lock).
    StoreUnavailable,
    /// A name service lookup failed (not "not found": a real error).
    Nss(String),
    /// A panic was caught at the FFI boundary.
    Panic,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Config(m) => write!(f, "configuration error: {m}"),
            AuthError::Conversation(ConvError::Aborted) => {
                f.write_str("conversation aborted by the application")
            }
            AuthError::Conversation(_) => f.write_str("conversation failed"),
            AuthError::Credentials(m) => write!(f, "credential switch failed: {m}"),
            AuthError::Clock => f.write_str("clock fault"),
            AuthError::LockTimeout => f.write_str("timed out waiting for the secret file lock"),
            AuthError::StoreUnavailable => f.write_str("state store unavailable"),
            AuthError::Nss(m) => write!(f, "name service error: {m}"),
            AuthError::Panic => f.write_str("internal error"),
        }
    }
}

// PAM's return codes as numbers, taken from pam-bindings (the one definition of PAM's
// constants in this crate) rather than retyped.
pub const PAM_SUCCESS: i32 = PamResultCode::PAM_SUCCESS as i32;
pub const PAM_SERVICE_ERR: i32 = PamResultCode::PAM_SERVICE_ERR as i32;
pub const PAM_SYSTEM_ERR: i32 = PamResultCode::PAM_SYSTEM_ERR as i32;
pub const PAM_AUTH_ERR: i32 = PamResultCode::PAM_AUTH_ERR as i32;
pub const PAM_CONV_ERR: i32 = PamResultCode::PAM_CONV_ERR as i32;
pub const PAM_IGNORE: i32 = PamResultCode::PAM_IGNORE as i32;
pub const PAM_ABORT: i32 = PamResultCode::PAM_ABORT as i32;
pub const PAM_BUF_ERR: i32 = PamResultCode::PAM_BUF_ERR as i32;

/// The single mapping from a result to a PAM return code.
pub fn to_pam_code(result: &Result<Outcome, AuthError>) -> i32 {
    match result {
        Ok(Outcome::Success) => PAM_SUCCESS,
        Ok(Outcome::Ignore) => PAM_IGNORE,
        Ok(Outcome::Deny(_)) => PAM_AUTH_ERR,
        Err(AuthError::Config(_)) => PAM_SERVICE_ERR,
        Err(AuthError::Conversation(ConvError::Failed)) => PAM_CONV_ERR,
        // The application's own answer, passed on: PAM_ABORT tells it to end the
        // transaction (pam(3)), and libpam returns the first failure of a required line.
        Err(AuthError::Conversation(ConvError::Aborted)) => PAM_ABORT,
        Err(AuthError::Conversation(ConvError::NoMemory)) => PAM_BUF_ERR,
        Err(AuthError::Credentials(_))
        | Err(AuthError::Clock)
        | Err(AuthError::LockTimeout)
        | Err(AuthError::StoreUnavailable)
        | Err(AuthError::Panic) => PAM_SYSTEM_ERR,
        // An NSS failure is about one user lookup; keep it indistinguishable from a denial.
        Err(AuthError::Nss(_)) => PAM_AUTH_ERR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_success_and_verified_skips_are_not_failures() {
        let table: Vec<(Result<Outcome, AuthError>, i32)> = vec![
            (Ok(Outcome::Success), PAM_SUCCESS),
            (Ok(Outcome::Ignore), PAM_IGNORE),
            (Ok(Outcome::Deny(Denial::WrongCode)), PAM_AUTH_ERR),
            (Ok(Outcome::Deny(Denial::UnknownUser)), PAM_AUTH_ERR),
            (
                Ok(Outcome::Deny(Denial::Throttled(Throttle::Ceiling))),
                PAM_AUTH_ERR,
            ),
            (Ok(Outcome::Deny(Denial::NotPersisted)), PAM_AUTH_ERR),
            (Ok(Outcome::Deny(Denial::StateUnusable)), PAM_AUTH_ERR),
            (Err(AuthError::Config("x".into())), PAM_SERVICE_ERR),
            (
                Err(AuthError::Conversation(ConvError::Failed)),
                PAM_CONV_ERR,
            ),
            (Err(AuthError::Conversation(ConvError::Aborted)), PAM_ABORT),
            (
                Err(AuthError::Conversation(ConvError::NoMemory)),
                PAM_BUF_ERR,
            ),
            (Err(AuthError::Credentials("x".into())), PAM_SYSTEM_ERR),
            (Err(AuthError::Clock), PAM_SYSTEM_ERR),
            (Err(AuthError::LockTimeout), PAM_SYSTEM_ERR),
            (Err(AuthError::StoreUnavailable), PAM_SYSTEM_ERR),
            (Err(AuthError::Panic), PAM_SYSTEM_ERR),
            (Err(AuthError::Nss("x".into())), PAM_AUTH_ERR),
        ];
        for (result, code) in table {
            assert_eq!(to_pam_code(&result), code, "{result:?}");
            if result.is_err() {
                assert_ne!(to_pam_code(&result), PAM_SUCCESS);
                assert_ne!(to_pam_code(&result), PAM_IGNORE);
            }
        }
    }
}
