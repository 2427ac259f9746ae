//! The shared HOTP/TOTP key.
//!
//! A [`Secret`] never prints its bytes: `Debug` shows `Secret(REDACTED, <bits> bits)`
//! and there is deliberately no `Display`, so a stray `{}` or `{:?}` in a log line
//! cannot leak it. The bytes are wiped when the value is dropped.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Raw key bytes, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// Takes ownership of `bytes`; the vector's storage is wiped on drop.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// Copies `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Key length in bits (bytes × 8), as used by the strength rules (R10).
    pub fn bits(&self) -> usize {
        self.bytes.len().saturating_mul(8)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(REDACTED, {} bits)", self.bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::from_slice(b"ABCDEFGHIJ");
        let shown = format!("{s:?}");
        assert_eq!(shown, "Secret(REDACTED, 80 bits)");
        assert!(!shown.contains("ABC"));
        assert!(!shown.contains("41"));
    }

    #[test]
    fn bits_counts_whole_bytes() {
        assert_eq!(Secret::new(vec![0; 10]).bits(), 80);
        assert_eq!(Secret::new(vec![0; 20]).bits(), 160);
        assert!(Secret::new(Vec::new()).is_empty());
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut s = Secret::from_slice(&[7; 16]);
        s.zeroize();
        assert!(s.as_bytes().iter().all(|&b| b == 0) || s.is_empty());
    }
}
