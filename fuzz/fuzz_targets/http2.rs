//! pcap-decode's HTTP/2 parser: frames and HPACK header blocks from both sides, with holes.
//! The body lives in `pcapd_fuzz::http2` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::http2(data));
