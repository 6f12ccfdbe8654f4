//! The generated API code is committed so that building needs no protoc. This test
//! regenerates it from `proto/` and fails if the committed file differs; the file is
//! rewritten in place, so committing the result fixes the failure.

use std::{fs, path::PathBuf};

#[test]
fn generated_api_matches_proto() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("../proto");
    let out = tempfile::tempdir().expect("temp dir");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".pcap.v1.Packet.data")
        .bytes(".pcap.v1.RecordBatch.records")
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[proto_dir.join("pcap/v1/pcap.proto")], &[proto_dir])
        .expect("generating code from proto/ (needs protoc: apt-get install protobuf-compiler)");

    let fresh = fs::read_to_string(out.path().join("pcap.v1.rs")).expect("generated file");
    let committed_path = root.join("src/api/pcap.v1.rs");
    let committed = fs::read_to_string(&committed_path).unwrap_or_default();
    if fresh != committed {
        fs::write(&committed_path, &fresh).expect("rewrite generated file");
        panic!(
            "{} was out of date with proto/ and has been regenerated; review and commit it",
            committed_path.display()
        );
    }
}
