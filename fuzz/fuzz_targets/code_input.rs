//! libFuzzer target `code_input`: see `fuzz/props.rs` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::code_input(data));
