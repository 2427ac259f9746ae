//! `pam_totp.so`: TOTP second factor for PAM, a drop-in for `pam_google_authenticator.so`.
//!
//! All FFI lives in the private `ffi` module, the one place allowed `unsafe`; everything
//! else is safe Rust over `totp-core` (policy) and `totp-os` (files and credentials).
#![deny(unsafe_code)]

pub mod auth;
pub mod error;
#[allow(unsafe_code)]
mod ffi;
pub mod fleet;
pub mod log;
pub mod pamio;
pub mod skip;
pub mod store;
pub mod system;
pub mod target;
