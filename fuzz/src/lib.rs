//! Fuzz target bodies for pcapd: the parsers of what users type, the API request
//! conversions, the daemon's config file, the savefile record splitter, the spool segment
//! scanner and repairer, the HTTP/2 rewriter on the UNIX socket, and the roundtrip decoder.
//!
//! Each body is a plain function of the input bytes. The cargo-fuzz targets in
//! `fuzz_targets/` call them under libFuzzer (nightly); the tests at the end of this file
//! run them on stable over the seed corpus in `corpus/<target>/` and 20,000 inputs mutated
//! from it by a fixed-seed generator, so that a plain `cargo test` keeps them exercised.
//!
//! A body panics only when pcapd's code breaks one of its own promises: a parser that
//! panics, a round trip that does not come back, a repair that leaves a torn record.

#![forbid(unsafe_code)]

mod config;
mod http1;
mod decode;
mod dns;
mod inputs;
pub mod mutate;
mod requests;
mod rewriter;
mod savefile;
pub mod seeds;

pub use config::config_toml;
pub use http1::http1;
pub use decode::decode_packets;
pub use dns::dns;
pub use inputs::parse_inputs;
pub use requests::convert_requests;
pub use rewriter::uds_frames;
pub use savefile::{savefile_records, segment_scan};

/// A target: its name (also the directory of its corpus) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("parse_inputs", parse_inputs),
    ("savefile_records", savefile_records),
    ("segment_scan", segment_scan),
    ("convert_requests", convert_requests),
    ("config_toml", config_toml),
    ("uds_frames", uds_frames),
    ("http1", http1),
    ("decode_packets", decode_packets),
    ("dns", dns),
];

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Once;

    use crate::mutate::{self, XorShift};
    use crate::seeds;

    /// Inputs generated per target on top of the seed corpus.
    const GENERATED: usize = 20_000;

    /// Runs `body` over the committed corpus of `target` and [`GENERATED`] mutations of it.
    fn exercise(target: &str, body: fn(&[u8])) {
        abort_on_any_panic();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let corpus = seeds::read_dir(&dir);
        assert!(
            !corpus.is_empty(),
            "no seeds in {}: run `cargo test --manifest-path fuzz/Cargo.toml -- --ignored \
             write_seed_corpus`",
            dir.display()
        );
        for input in &corpus {
            body(input);
        }
        let mut rng = XorShift::new(0x5eed_0000 ^ target.len() as u64);
        for _ in 0..GENERATED {
            body(&mutate::mutate(&mut rng, &corpus));
        }
    }

    /// libFuzzer aborts on a panic in any thread; do the same, so that a panic inside a
    /// task the rewriter spawns (which tokio would catch) still fails the test.
    fn abort_on_any_panic() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                default(info);
                std::process::abort();
            }));
        });
    }

    #[test]
    fn parse_inputs() {
        exercise("parse_inputs", crate::parse_inputs);
    }

    #[test]
    fn savefile_records() {
        exercise("savefile_records", crate::savefile_records);
    }

    #[test]
    fn segment_scan() {
        exercise("segment_scan", crate::segment_scan);
    }

    #[test]
    fn convert_requests() {
        exercise("convert_requests", crate::convert_requests);
    }

    #[test]
    fn config_toml() {
        exercise("config_toml", crate::config_toml);
    }

    #[test]
    fn uds_frames() {
        exercise("uds_frames", crate::uds_frames);
    }

    #[test]
    fn http1() {
        exercise("http1", crate::http1);
    }

    #[test]
    fn decode_packets() {
        exercise("decode_packets", crate::decode_packets);
    }

    #[test]
    fn dns() {
        exercise("dns", crate::dns);
    }

    #[test]
    fn every_target_has_a_fuzz_target_file() {
        for (name, _) in crate::TARGETS {
            let file = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz_targets")
                .join(format!("{name}.rs"));
            assert!(file.is_file(), "{} is missing", file.display());
        }
    }

    /// Writes the seed corpus; run it after changing `seeds.rs`:
    /// `cargo test --manifest-path fuzz/Cargo.toml -- --ignored write_seed_corpus`.
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, _) in crate::TARGETS {
            seeds::write(&root.join(name), &seeds::for_target(name));
        }
    }
}
