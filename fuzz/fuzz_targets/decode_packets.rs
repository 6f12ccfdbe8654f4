//! The roundtrip decoder over arbitrary packets of every link type.
//! The body lives in `pcapd_fuzz::decode_packets` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::decode_packets(data));
