//! Python for the tests that drive pcapd as a script would: a virtualenv under the target
//! directory with grpcio and friends from PyPI at the exact versions of
//! `tests/python/requirements.txt`, made once (and again when that file changes), and the
//! client generated from `proto/` with grpcio-tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bins::pcapd_bin;
use crate::cli::run_bounded;

/// The pinned Python packages: `name==version` lines, comments and blank lines.
fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/requirements.txt")
}

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
    let file = requirements();
    let wanted = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    for line in wanted.lines().map(str::trim) {
        assert!(
            line.is_empty() || line.starts_with('#') || line.contains("=="),
            "{}: {line:?} is not pinned: give every package an exact version (name==X.Y.Z)",
            file.display()
        );
    }
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
                "--requirement",
            ])
            .arg(&file),
        "pip install",
        Duration::from_secs(600),
    );
    assert!(
        pip.status.success(),
        "pip install --requirement {}: {}",
        file.display(),
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
