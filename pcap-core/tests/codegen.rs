//! The generated API code and the encoded descriptor set of the proto (what gRPC server
//! reflection serves) are committed so that building needs no protoc. This test
//! regenerates both from `proto/` and fails if a committed file differs; the files are
//! rewritten in place, so committing the result fixes the failure.

use std::{fs, path::PathBuf};

#[test]
fn generated_api_matches_proto() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("../proto");
    let out = tempfile::tempdir().expect("temp dir");
    let descriptor = out.path().join("pcap_descriptor.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".pcap.v1.Packet.data")
        .bytes(".pcap.v1.RecordBatch.records")
        .file_descriptor_set_path(&descriptor)
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[proto_dir.join("pcap/v1/pcap.proto")], &[proto_dir])
        .expect("generating code from proto/ (needs protoc: apt-get install protobuf-compiler)");

    let mut stale = Vec::new();
    for (fresh, committed) in [
        (
            out.path().join("pcap.v1.rs"),
            root.join("src/api/pcap.v1.rs"),
        ),
        (descriptor, root.join("src/api/pcap_descriptor.bin")),
    ] {
        let fresh = fs::read(&fresh).expect("generated file");
        if fs::read(&committed).ok().as_deref() != Some(&fresh[..]) {
            fs::write(&committed, &fresh).expect("rewrite generated file");
            stale.push(committed.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{} out of date with proto/ and regenerated; review and commit: {}",
        if stale.len() == 1 { "was" } else { "were" },
        stale.join(", ")
    );
}
