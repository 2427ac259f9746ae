//! The pure core of pam_totp.
//!
//! Everything here is deterministic: no I/O, no clock reads, no environment.
//! The PAM module and `totp-enroll` are thin shells over these functions, so
//! the security policy can be audited without reading any `unsafe` code.
#![forbid(unsafe_code)]

pub mod access;
pub mod addr;
pub mod base32;
pub mod code;
pub mod fleet;
pub mod gafile;
#[cfg(feature = "test-hmac-count")]
pub mod hmac_count;
pub mod ledger;
pub mod membership;
pub mod mountinfo;
pub mod nfs_etab;
pub mod options;
pub mod otp;
pub mod placement;
pub mod policy;
pub mod resync;
pub mod secret;
pub mod shell;
pub mod state;
pub mod uri;
pub mod user;
pub mod utc;
pub mod verify;
