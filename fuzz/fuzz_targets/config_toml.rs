//! The daemon's config file, parsed and validated.
//! The body lives in `pcapd_fuzz::config_toml` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::config_toml(data));
