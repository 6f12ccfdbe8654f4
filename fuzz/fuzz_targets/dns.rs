//! pcap-decode's DNS parsers over UDP and TCP, fed datagrams, stream chunks, holes and time.
//! The body lives in `pcapd_fuzz::dns` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::dns(data));
