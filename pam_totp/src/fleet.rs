//! The module's side of fleets (`state=redis…`, `secret_command=`).
//!
//! Both need the state store (a secret from a command has no file to keep its replay
//! mark in, and a shared store is a state store): until this build has one, a pam.d line
//! asking for either is a configuration error that denies everybody, never an option
//! that is accepted and silently ignored.

use totp_core::options::ModuleOptions;

/// Why these options cannot be served by this build, if they cannot.
pub fn unavailable(opts: &ModuleOptions) -> Option<&'static str> {
    if opts.fleet.redis.is_some() {
        return Some("state=redis… needs the state store, which this build does not have yet");
    }
    if opts.fleet.secret_command.is_some() {
        return Some("secret_command= needs the state store, which this build does not have yet");
    }
    None
}
