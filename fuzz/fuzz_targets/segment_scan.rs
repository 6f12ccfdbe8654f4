//! Scanning and repairing a spool segment file: repair leaves a file that scans clean.
//! The body lives in `pcapd_fuzz::segment_scan` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::segment_scan(data));
