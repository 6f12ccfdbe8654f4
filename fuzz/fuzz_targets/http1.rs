//! The HTTP/1.x parser of pcap-decode, fed a script of stream events.
//! The body lives in `pcapd_fuzz::http1` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::http1(data));
