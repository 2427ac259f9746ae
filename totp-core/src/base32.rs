//! Base32 as GA reads and writes it.
//!
//! The decoder is deliberately lenient in exactly GA's ways, so that every file
//! GA accepts is accepted here and vice versa: letters in either case, the digits
//! 2–7, space/tab/CR/LF/`-` skipped, the typos `0`→`O`, `1`→`L`, `8`→`B` mapped,
//! and everything else (including `=` padding and non-ASCII) rejected. Trailing
//! bits that do not fill a byte are dropped, so 16/26/32 characters give 10/16/20
//! bytes. The encoder writes RFC 4648 upper case without padding.

use std::fmt;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The input holds a byte that is neither a base32 digit nor skippable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base32Error {
    /// Offset of the offending byte (the byte itself is not kept: it may be part
    /// of a secret).
    pub offset: usize,
}

impl fmt::Display for Base32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid base32 character at offset {}", self.offset)
    }
}

impl std::error::Error for Base32Error {}

fn digit_value(ch: u8) -> Option<u8> {
    let ch = match ch {
        b'0' => b'O',
        b'1' => b'L',
        b'8' => b'B',
        c => c,
    };
    match ch {
        b'A'..=b'Z' => Some(ch - b'A'),
        b'a'..=b'z' => Some(ch - b'a'),
        b'2'..=b'7' => Some(ch - b'2' + 26),
        _ => None,
    }
}

/// Decodes like GA's `base32_decode`. The result may be empty; callers decide
/// what length is acceptable.
pub fn decode_lenient(input: &[u8]) -> Result<Vec<u8>, Base32Error> {
    let mut out = Vec::with_capacity(input.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for (offset, &ch) in input.iter().enumerate() {
        if matches!(ch, b' ' | b'\t' | b'\r' | b'\n' | b'-') {
            continue;
        }
        let v = digit_value(ch).ok_or(Base32Error { offset })?;
        buffer = ((buffer << 5) | u32::from(v)) & 0x1fff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Ok(out)
}

/// Upper-case RFC 4648 base32 without padding.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        buffer = ((buffer << 8) | u32::from(b)) & 0xfff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 0x1f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_hello_world_with_its_nul_like_ga_unit_test() {
        assert_eq!(encode(b"Hello world...\0"), "JBSWY3DPEB3W64TMMQXC4LQA");
    }

    #[test]
    fn encodes_without_padding() {
        assert_eq!(encode(b"Hello world..."), "JBSWY3DPEB3W64TMMQXC4LQ");
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "MY");
        assert_eq!(encode(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn ga_test_secret_decodes_to_known_bytes() {
        let b = decode_lenient(b"2SH3V3GDW7ZNMGYE").unwrap();
        assert_eq!(
            b,
            [0xd4, 0x8f, 0xba, 0xec, 0xc3, 0xb7, 0xf2, 0xd6, 0x1b, 0x04]
        );
    }

    #[test]
    fn lower_case_spaces_and_dashes_are_accepted() {
        assert_eq!(
            decode_lenient(b"2sh3 v3gd-w7zn mgye").unwrap(),
            decode_lenient(b"2SH3V3GDW7ZNMGYE").unwrap()
        );
        assert_eq!(
            decode_lenient(b"2SH3V3GD\tW7ZNMGYE\r\n").unwrap(),
            decode_lenient(b"2SH3V3GDW7ZNMGYE").unwrap()
        );
    }

    #[test]
    fn typos_0_1_8_are_mapped() {
        assert_eq!(
            decode_lenient(b"J8SWY3DPE83W64TMMQXC4LQA").unwrap(),
            decode_lenient(b"JBSWY3DPEB3W64TMMQXC4LQA").unwrap()
        );
        assert_eq!(decode_lenient(b"0").unwrap(), decode_lenient(b"O").unwrap());
        assert_eq!(
            decode_lenient(b"11111111").unwrap(),
            decode_lenient(b"LLLLLLLL").unwrap()
        );
    }

    #[test]
    fn padding_and_other_bytes_are_rejected() {
        assert_eq!(
            decode_lenient(b"2SH3V3GDW7ZNMGYE===="),
            Err(Base32Error { offset: 16 })
        );
        assert!(decode_lenient(b"9").is_err());
        assert!(decode_lenient("2SH3\u{00e9}".as_bytes()).is_err());
        assert!(decode_lenient(b"\xef\xbb\xbf2SH3V3GDW7ZNMGYE").is_err());
        assert!(decode_lenient(b"ABC\0").is_err());
    }

    #[test]
    fn decoded_length_of_16_26_32_chars_is_10_16_20_bytes() {
        assert_eq!(decode_lenient(&[b'A'; 16]).unwrap().len(), 10);
        assert_eq!(decode_lenient(&[b'A'; 26]).unwrap().len(), 16);
        assert_eq!(decode_lenient(&[b'A'; 32]).unwrap().len(), 20);
        assert_eq!(decode_lenient(b"A").unwrap().len(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn decode_inverts_encode(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(decode_lenient(encode(&data).as_bytes()).unwrap(), data);
        }

        #[test]
        fn lower_case_decodes_the_same(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let e = encode(&data).to_ascii_lowercase();
            prop_assert_eq!(decode_lenient(e.as_bytes()).unwrap(), data);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_lenient(&data);
        }
    }
}
