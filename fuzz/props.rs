//! The properties every fuzz target checks, written once.
//!
//! Each function takes the raw fuzz input and panics (via `assert!`) when a property
//! is broken. The libFuzzer targets in `fuzz_targets/` call them, and so does the stable
//! proptest suite `totp-core/tests/properties.rs` (through `#[path]`), so the same
//! properties run with and without a nightly-capable toolchain.
//!
//! Only `totp_core` and `std`: no I/O, no clock.

#![allow(dead_code)]

use std::net::IpAddr;

use totp_core::access::{AccessRules, Groups, ParseOptions, SkipVerdict, Subject, decide};
use totp_core::addr::{self, Origin, RemoteHost, parse_rhost};
use totp_core::base32;
use totp_core::code::{Code, candidates};
use totp_core::gafile::{self, GaFile};
use totp_core::options::{ModuleOptions, OPTION_NAMES};
use totp_core::otp::Digits;
use totp_core::policy::Policy;
use totp_core::uri::{KeyUri, MAX_URI_LEN};
use totp_core::user::{UserName, expand_secret_spec};
use totp_core::verify;

/// A fixed clock for the state checks (2026-01-01T00:00:10Z).
const NOW: i64 = 1_767_225_610;

/// `secret_file` / `state_file`: the `~/.google_authenticator` parser and the state
/// machine on top of it.
///
/// - never a panic;
/// - an accepted file round-trips byte-exactly, and re-parses to the same value;
/// - a file whose configuration is invalid is never evaluated: `verify::prepare`
///   refuses it too;
/// - an attempt without a code is never accepted, and any file change it makes (the
///   HOTP counter) parses again;
/// - setting the replay mark keeps the file valid and reads back.
pub fn secret_file(data: &[u8]) {
    let Ok(f) = GaFile::parse(data) else {
        return;
    };
    assert!(
        data.len() <= gafile::MAX_FILE_LEN,
        "oversized file accepted"
    );
    assert_eq!(f.as_bytes(), data, "accepted file does not round-trip");
    assert_eq!(*f.to_bytes(), *data);
    let again = GaFile::parse(f.as_bytes()).expect("serialised file re-parses");
    assert_eq!(again, f);
    let _ = f.secret();
    let _ = f.scratch_codes();
    let config = f.config();
    let key = totp_core::state::StoreKey::new([0; totp_core::state::STORE_KEY_LEN]);
    let prepared = verify::prepare(&f, &Policy::default(), &[], NOW, &key);
    if config.is_err() {
        assert!(
            prepared.is_err(),
            "invalid configuration was still evaluated"
        );
        return;
    }
    if let Ok(p) = prepared {
        // No usable candidate can only reject, and a TOTP attempt never edits the file.
        let attempt = verify::Attempt {
            origin: totp_core::ledger::OriginKey(0),
            rhost: None,
            local: false,
            now: NOW,
            continued: false,
            boot_time: None,
            store_complete_since: 0,
            keep_ga_lines: true,
        };
        let state = totp_core::state::UserState::default();
        if let Ok(d) = p.decide(&state, &Policy::default(), &attempt) {
            assert!(!d.verdict.is_accepted(), "accepted without a code");
            if let Some(changed) = d.file {
                GaFile::parse(changed.as_bytes()).expect("changed file re-parses");
            }
        }
    }
    let mut edited = f.clone();
    if edited.set(gafile::KEY_LAST_STEP, "5").is_ok() {
        let back = GaFile::parse(edited.as_bytes()).expect("edited file re-parses");
        if let Ok(c) = back.config() {
            assert_eq!(c.last_step, Some(5));
        }
    }
}

/// `access_rules`: first line is a `PAM_RHOST` value, the rest the rule file.
///
/// - never a panic; bounded (the parser caps size, line length and rule count);
/// - the per-login path [`decide`] (each rule matched as it is parsed) agrees with
///   parse + evaluate, error for error and verdict for verdict;
/// - an accepted file has at most one rule per line, and the deciding rule is the
///   trimmed text of the line it names;
/// - a missing group fact never adds a skip: what skips with the groups unknown also
///   skips with them known;
/// - an error names a line of the file (or the file as a whole, for its size);
/// - only strict IP literals become an address, cross-checked against `std`.
pub fn access_rules(data: &[u8]) {
    let (rhost, text) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    rhost_parse(rhost);
    let origin = match parse_rhost(Some(rhost)) {
        RemoteHost::Address(ip) => Origin::Network(ip),
        RemoteHost::Absent => Origin::Local,
        RemoteHost::NotAnAddress => Origin::Unknown,
    };
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let groups = vec!["wheel".to_string(), "staff".to_string()];
    for allow_any_network in [false, true] {
        let opts = ParseOptions { allow_any_network };
        let parsed = AccessRules::parse(text, opts);
        for groups in [Groups::Unknown, Groups::Complete(&groups)] {
            let subject = Subject {
                user: "alice",
                groups,
                origin,
            };
            let streamed = decide(text, opts, &subject);
            match &parsed {
                Ok(rules) => assert_eq!(streamed, Ok(rules.evaluate(&subject))),
                Err(e) => assert_eq!(
                    streamed.as_ref().err(),
                    Some(e),
                    "decide accepted a bad file"
                ),
            }
        }
        let rules = match parsed {
            Ok(rules) => rules,
            Err(e) => {
                assert!(
                    e.line.is_none_or(|l| (1..=lines.len()).contains(&l)),
                    "error names no line of the file"
                );
                continue;
            }
        };
        assert!(rules.len() <= lines.len(), "more rules than lines");
        let subject = |groups| Subject {
            user: "alice",
            groups,
            origin,
        };
        let unknown = rules.evaluate(&subject(Groups::Unknown));
        let known = rules.evaluate(&subject(Groups::Complete(&groups)));
        if unknown.verdict == SkipVerdict::Skip {
            assert_eq!(
                known.verdict,
                SkipVerdict::Skip,
                "a missing fact added a skip"
            );
        }
        for decision in [&unknown, &known] {
            if let Some(m) = &decision.matched {
                let line = lines[m.line - 1];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let trimmed = line.trim_ascii();
                assert_eq!(trimmed, m.text.as_bytes(), "matched text is not its line");
            }
        }
    }
}

/// `rhost_parse`: `PAM_RHOST` bytes.
pub fn rhost_parse(rhost: &[u8]) {
    match parse_rhost(Some(rhost)) {
        RemoteHost::Address(ip) => {
            let text = std::str::from_utf8(rhost).expect("an address is UTF-8");
            let addr_part = text.split_once('%').map_or(text, |(a, _)| a);
            let std_ip: IpAddr = addr_part.parse().expect("std accepts what we accept");
            assert_eq!(ip, addr::canonical(std_ip));
            assert!(!text.contains(['[', ']', ' ', '\t']));
        }
        RemoteHost::Absent => assert!(rhost.is_empty()),
        RemoteHost::NotAnAddress => {
            if let Ok(text) = std::str::from_utf8(rhost)
                && !text.contains('%')
            {
                assert!(
                    text.parse::<IpAddr>().is_err(),
                    "a plain literal was refused"
                );
            }
        }
    }
}

/// `module_args`: NUL-separated module arguments (they are C strings in `argv`).
///
/// - never a panic; an unknown option is an error;
/// - every accepted argument names a known option;
/// - numbers stay within their bounds;
/// - `secret=` expands to an absolute path without `..`, or is refused.
pub fn module_args(data: &[u8]) {
    let args: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let Ok(opts) = ModuleOptions::parse(&args) else {
        return;
    };
    for a in &args {
        let text = std::str::from_utf8(a).expect("accepted args are UTF-8");
        let name = text.split_once('=').map_or(text, |(n, _)| n);
        assert!(
            OPTION_NAMES.contains(&name),
            "accepted unknown option {name:?}"
        );
    }
    assert!(opts.lock_timeout_ms <= totp_core::options::MAX_LOCK_TIMEOUT_MS);
    assert!((1..=100).contains(&opts.max_window));
    assert_eq!(
        opts.allowed_perm & !totp_core::options::ALLOWED_PERM_CEILING,
        0
    );
    if let Some(path) = &opts.accessfile {
        assert!(path.starts_with('/') && !path.split('/').any(|c| c == ".."));
    }
    let user = UserName::parse(b"alice").expect("valid name");
    for home in [Some("/home/alice"), None] {
        if let Ok(p) = expand_secret_spec(&opts.secret, &user, home) {
            assert!(p.starts_with('/'), "relative secret path {p:?}");
            assert!(
                !p.split('/').any(|c| c == ".."),
                "secret path with .. {p:?}"
            );
        }
    }
    let _ = opts.policy();
    let _ = opts.weakening();
}

/// `code_input`: first byte picks the OTP length and `forward_pass`; the rest is the
/// answer. Only exact ASCII-digit codes come out, always the tail of the answer.
pub fn code_input(data: &[u8]) {
    let Some((&sel, answer)) = data.split_first() else {
        return;
    };
    let digits = [Digits::SIX, Digits::SEVEN, Digits::EIGHT][usize::from(sel % 3)];
    let allow_prefix = sel & 0x80 != 0;
    for c in candidates(answer, digits, allow_prefix) {
        let want = if c.scratch { 8 } else { digits.len() };
        let code = c.code.as_bytes();
        assert_eq!(code.len(), want);
        assert!(code.iter().all(u8::is_ascii_digit), "non-digit code");
        assert!(answer.ends_with(code));
        assert_eq!(c.prefix.len() + code.len(), answer.len());
        assert!(
            allow_prefix || c.prefix.is_empty(),
            "prefix without forward_pass"
        );
        if c.scratch {
            assert_ne!(code[0], b'0');
        }
    }
    for len in 6..=8 {
        let ok = answer.len() == len && answer.iter().all(u8::is_ascii_digit);
        assert_eq!(Code::parse(answer, len).is_some(), ok);
    }
}

/// `base32`: GA-compatible lenient decoding.
///
/// - never a panic; `=` and non-ASCII are refused;
/// - the output has exactly floor(5 × significant characters / 8) bytes;
/// - `decode(encode(x)) == x` for the decoded bytes and for the raw input.
pub fn base32(data: &[u8]) {
    if let Ok(bytes) = base32::decode_lenient(data) {
        assert!(!data.contains(&b'='), "padding accepted");
        assert!(data.is_ascii(), "non-ASCII accepted");
        let significant = data
            .iter()
            .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'-'))
            .count();
        assert_eq!(bytes.len(), significant * 5 / 8);
        let enc = base32::encode(&bytes);
        assert_eq!(
            base32::decode_lenient(enc.as_bytes()).expect("own output"),
            bytes
        );
    }
    let enc = base32::encode(data);
    assert!(
        enc.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    assert_eq!(
        base32::decode_lenient(enc.as_bytes()).expect("own output"),
        data
    );
}

/// `otpauth_uri`: bounded parsing; what parses rebuilds to a URI that parses to the
/// same key.
pub fn otpauth_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(k) = KeyUri::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_URI_LEN);
    assert!(
        k.secret_base32()
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    let built = k.to_uri();
    assert!(
        built.bytes().all(|b| b.is_ascii_graphic()),
        "rebuilt URI not printable ASCII"
    );
    let back = KeyUri::parse(&built).expect("rebuilt URI parses");
    assert_eq!(back, k, "rebuilt URI differs");
}
