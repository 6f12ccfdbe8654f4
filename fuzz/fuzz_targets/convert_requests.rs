//! API requests decoded from protobuf bytes and converted to domain types.
//! The body lives in `pcapd_fuzz::convert_requests` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::convert_requests(data));
