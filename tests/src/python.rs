//! Python for the tests that drive pcapd as a script would: a virtualenv under the target
//! directory with grpcio and friends from PyPI, made once (and again when the package list
//! changes), and the client generated from `proto/` with grpcio-tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bins::pcapd_bin;
use crate::cli::run_bounded;

/// What the tests import: the gRPC runtime and code generator, server reflection, and the
/// reference parser of the Prometheus text format.
const PACKAGES: &[&str] = &[
    "grpcio",
    "grpcio-tools",
    "grpcio-reflection",
    "prometheus-client",
];

/// The virtualenv's `python`, installing it first if needed.
pub fn python_venv() -> PathBuf {
    let target = pcapd_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_owned();
    let dir = target.join("python-e2e");
    let python = dir.join("bin/python");
    let marker = dir.join(".installed");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    if !python.exists() {
        let made = run_bounded(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            "python3 -m venv",
            Duration::from_secs(120),
        );
        assert!(
            made.status.success(),
            "python3 -m venv (Debian: apt-get install python3-venv): {}",
            made.stderr
        );
    }
    let pip = run_bounded(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES),
        "pip install",
        Duration::from_secs(600),
    );
    assert!(
        pip.status.success(),
        "pip install {}: {}",
        PACKAGES.join(" "),
        pip.stderr
    );
    std::fs::write(&marker, wanted).expect("write the virtualenv's marker");
    python
}

/// Generates the Python client (`pcap/v1/pcap_pb2.py`, `pcap_pb2_grpc.py`) into `out`.
pub fn generate_python_client(python: &Path, out: &Path) {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let gen = run_bounded(
        Command::new(python)
            .args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", proto.display()))
            .arg(format!("--python_out={}", out.display()))
            .arg(format!("--grpc_python_out={}", out.display()))
            .arg(proto.join("pcap/v1/pcap.proto")),
        "grpc_tools.protoc",
        Duration::from_secs(60),
    );
    assert!(
        gen.status.success(),
        "generating the Python client: {}",
        gen.stderr
    );
}
