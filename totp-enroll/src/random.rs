//! New secrets and scratch codes from the OS CSPRNG.

use totp_core::secret::Secret;
use zeroize::Zeroizing;

use crate::error::Error;

/// 160 bits: RFC 4226 §4 R6 recommends it, and it is what google-authenticator
/// 1.11 writes (32 base32 characters).
pub const SECRET_BYTES: usize = 20;

/// Scratch codes are 8 digits without a leading zero: both modules read a line
/// as a scratch code only when it is an integer 10000000..=99999999 (GA #213).
const SCRATCH_MIN: u32 = 10_000_000;
const SCRATCH_SPAN: u32 = 90_000_000;
/// Largest multiple of the span that fits in a u32: draws at or above it are
/// rejected so every code is equally likely (no modulo bias).
const SCRATCH_LIMIT: u32 = (u32::MAX / SCRATCH_SPAN) * SCRATCH_SPAN;

fn fill(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf)
        .map_err(|e| Error::failed(format!("cannot read the system random generator: {e}")))
}

pub fn new_secret() -> Result<Secret, Error> {
    let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    fill(&mut bytes)?;
    Ok(Secret::from_slice(&bytes))
}

pub fn scratch_codes(count: u32) -> Result<Vec<u32>, Error> {
    let mut codes = Vec::new();
    while codes.len() < count as usize {
        let code = scratch_from_draws(|| {
            let mut b = [0u8; 4];
            fill(&mut b)?;
            Ok(u32::from_be_bytes(b))
        })?;
        // A repeated code would be one code, not two: draw again.
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

fn scratch_from_draws(mut draw: impl FnMut() -> Result<u32, Error>) -> Result<u32, Error> {
    loop {
        let v = draw()?;
        if v < SCRATCH_LIMIT {
            return Ok(SCRATCH_MIN + v % SCRATCH_SPAN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_160_bits_and_differs_between_calls() {
        let a = new_secret().expect("random");
        let b = new_secret().expect("random");
        assert_eq!(a.len(), SECRET_BYTES);
        assert_ne!(a, b);
    }

    #[test]
    fn scratch_codes_have_eight_digits_without_leading_zero() {
        let codes = scratch_codes(10).expect("random");
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert!((10_000_000..=99_999_999).contains(c), "{c}");
        }
        let mut dedup = codes.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), codes.len());
        assert!(scratch_codes(0).expect("random").is_empty());
    }

    #[test]
    fn draws_above_the_unbiased_limit_are_rejected() {
        let mut draws = [u32::MAX, SCRATCH_LIMIT, 0].into_iter();
        let code = scratch_from_draws(|| Ok(draws.next().expect("enough draws")));
        assert_eq!(code.expect("ok"), SCRATCH_MIN);
        let mut top = [SCRATCH_LIMIT - 1].into_iter();
        assert_eq!(
            scratch_from_draws(|| Ok(top.next().expect("one draw"))).expect("ok"),
            99_999_999
        );
    }
}
