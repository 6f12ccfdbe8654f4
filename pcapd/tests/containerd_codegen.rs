//! The containerd client code in `src/engines/containerd/api/` is generated from the trimmed
//! containerd protos vendored in `proto/containerd/` and committed, so building pcapd needs
//! no protoc. This test regenerates it and fails if a committed file differs; the files are
//! rewritten in place, so committing the result fixes the failure.

use std::{fs, path::PathBuf};

#[test]
fn generated_containerd_client_matches_proto() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("../proto");
    let out = tempfile::tempdir().expect("temp dir");
    let protos = [
        "containerd/services/containers/v1/containers.proto",
        "containerd/services/tasks/v1/tasks.proto",
        "containerd/types/task/task.proto",
    ]
    .map(|p| proto_dir.join(p));
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&protos, &[proto_dir])
        .expect("generating code from proto/containerd (needs protoc: apt-get install protobuf-compiler)");

    let mut stale = Vec::new();
    for name in [
        "containerd.services.containers.v1.rs",
        "containerd.services.tasks.v1.rs",
        "containerd.v1.types.rs",
    ] {
        let fresh = fs::read(out.path().join(name)).expect("generated file");
        let committed = root.join("src/engines/containerd/api").join(name);
        if fs::read(&committed).ok().as_deref() != Some(&fresh[..]) {
            fs::write(&committed, &fresh).expect("rewrite generated file");
            stale.push(committed.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{} out of date with proto/containerd and regenerated; review and commit: {}",
        if stale.len() == 1 { "was" } else { "were" },
        stale.join(", ")
    );
}
