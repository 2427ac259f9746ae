//! Test builds only (feature `test-hmac-count`): how many HMACs this process computed,
//! so a test through libpam can see the work of one attempt (SECURITY.md I8). No
//! shipped build has this module.

use std::sync::atomic::{AtomicU64, Ordering};

static OTP: AtomicU64 = AtomicU64::new(0);
static TAGS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn count_otp() {
    OTP.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_tag() {
    TAGS.fetch_add(1, Ordering::Relaxed);
}

/// OTP HMACs ([`crate::otp::hotp`]) computed so far.
pub fn otp() -> u64 {
    OTP.load(Ordering::Relaxed)
}

/// Store-key tags ([`crate::state::StoreKey::tag`], HMAC-SHA256) computed so far.
pub fn tags() -> u64 {
    TAGS.load(Ordering::Relaxed)
}
