//! What users type: selectors, aliases, sizes, durations, times, daemon URLs, segment names.
//! The body lives in `pcapd_fuzz::parse_inputs` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::parse_inputs(data));
