//! pcap-decode's TLS hello reader: records split anywhere, with holes.
//! The body lives in `pcapd_fuzz::tls_hello` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::tls_hello(data));
