//! libFuzzer target `access_rules`: see `fuzz/props.rs` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::access_rules(data));
