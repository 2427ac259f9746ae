//! The one OS layer of `pam_totp`, shared by the PAM module and `totp-enroll`.
//!
//! Everything that touches the kernel or NSS on behalf of the policy code lives here, so
//! the rules that keep a root process safe in a user-controlled directory are written
//! once:
//!
//! - [`creds`]: switch the calling thread's filesystem identity (fsuid, fsgid and
//!   supplementary groups) and restore it on drop, or abort (rule R4).
//! - [`nss`]: user and group lookups through NSS that tell "not found" from "lookup
//!   failed" (rules R8, R22, R27).
//! - [`safefile`]: no-follow walk, fd checks, bounded read, lock with a deadline and
//!   crash-safe rewrite (rules R5–R7, R15–R17).
//! - [`state_dir`]: the local state store (replay marks, throttling), one record file
//!   per uid in a directory only its owner can write (R14, R15, R19).
//!
//! Nothing here logs: callers decide what to say, and file contents (secrets) are never
//! part of an error.

pub mod boot;
pub mod command;
pub mod creds;
mod fsize;
pub mod inspect;
pub mod nfs_exports;
pub mod nss;
mod nss_sources;
pub mod pam_stack;
pub mod remote;
pub mod resolve;
pub mod safefile;
pub mod state_dir;

// Test-only failpoints. Production builds get an inert copy whose checks always succeed,
// so there is no switch an attacker could flip.
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
#[cfg(not(any(test, feature = "fault-injection")))]
mod fault;

#[cfg(test)]
mod testutil;
