//! The HTTP/2 header-block rewriter in front of the daemon's UNIX socket.
//! The body lives in `pcapd_fuzz::uds_frames` so that stable `cargo test` runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcapd_fuzz::uds_frames(data));
