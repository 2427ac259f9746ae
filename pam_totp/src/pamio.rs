//! The narrow interface between the authentication flow and libpam.
//!
//! `auth` only talks to this trait, so the flow is exercised in unit tests with a
//! scripted fake, and through the real libpam by the integration tests.

use zeroize::Zeroizing;

/// String items the module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Service,
    User,
    Tty,
    RHost,
    RUser,
}

/// Message styles the module sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    PromptEchoOff,
    PromptEchoOn,
    ErrorMsg,
    TextInfo,
}

/// Syslog priorities the module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

/// The conversation failed or answered with nothing usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvError {
    /// No conversation function, or it returned an error code other than the two below.
    Failed,
    /// The conversation returned `PAM_ABORT`: the application wants the transaction
    /// ended (pam(3)); the module asks nothing more and returns `PAM_ABORT` too.
    Aborted,
    /// The conversation returned `PAM_BUF_ERR` (the application ran out of memory):
    /// returned as it is.
    NoMemory,
}

/// Access to the PAM handle, as seen by the module.
pub trait PamIo {
    /// The user name (`pam_get_user`), as raw bytes: it is validated later. An error
    /// when libpam had to ask for the name and the conversation failed.
    fn user(&mut self) -> Result<Option<Vec<u8>>, ConvError>;
    /// A string item, as raw bytes.
    fn item(&self, kind: ItemKind) -> Option<Vec<u8>>;
    /// `PAM_AUTHTOK`, set by an earlier module.
    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// Sets `PAM_AUTHTOK` for the next module (`forward_pass`).
    fn set_authtok(&mut self, value: &[u8]) -> Result<(), ConvError>;
    /// Sends one message; prompts return the answer (`None` for a NULL reply).
    fn converse(
        &mut self,
        style: Style,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConvError>;
    /// One log line via `pam_syslog` (facility authpriv).
    fn log(&self, level: Level, message: &str);
}
