//! libFuzzer target `otpauth_uri`: see `fuzz/props.rs` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::otpauth_uri(data));
