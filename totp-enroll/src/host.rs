//! Facts about this process and machine: who runs the tool, and the host name for
//! the default label. Through nix, so the CLI has no `unsafe` of its own.

use nix::unistd;
use totp_core::placement::Caller;

/// The real and effective uid of this process.
pub fn caller() -> Caller {
    Caller {
        uid: unistd::getuid().as_raw(),
        euid: unistd::geteuid().as_raw(),
    }
}

/// The machine name for the default label and issuer, or `unix` as
/// google-authenticator falls back to.
pub fn hostname() -> String {
    match unistd::gethostname().map(|h| h.into_string()) {
        Ok(Ok(name)) if !name.is_empty() => name,
        _ => "unix".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
