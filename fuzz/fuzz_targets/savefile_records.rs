//! Splitting a buffer into pcap records, and the savefile header.
//! The body lives in `pcapd_fuzz::savefile_records` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::savefile_records(data));
