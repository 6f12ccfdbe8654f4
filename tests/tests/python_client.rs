//! A Python gRPC client (grpcio, from PyPI into a virtualenv under the target directory)
//! drives pcapd over the UNIX socket with a plain `unix://PATH` channel. grpcio sends the
//! socket path as the HTTP/2 authority, which pcapd must accept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

/// A virtualenv with grpcio and grpcio-tools, made once and kept in the target directory.
fn venv() -> PathBuf {
    let target = pcapd_bin().parent().unwrap().parent().unwrap().to_owned();
    let dir = target.join("python-e2e");
    let python = dir.join("bin/python");
    let ready = dir.join(".installed");
    if !ready.exists() {
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
        let pip = run_bounded(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "grpcio",
                "grpcio-tools",
            ]),
            "pip install grpcio grpcio-tools",
            Duration::from_secs(600),
        );
        assert!(
            pip.status.success(),
            "pip install grpcio grpcio-tools: {}",
            pip.stderr
        );
        std::fs::write(&ready, "").unwrap();
    }
    python
}

fn generate(python: &Path, out: &Path) {
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

#[test]
fn a_python_grpc_client_works_over_the_unix_socket() {
    if !require_root() {
        return;
    }
    let python = venv();
    let d = Daemon::start();
    let gen = d.dir().join("py");
    std::fs::create_dir_all(&gen).unwrap();
    generate(&python, &gen);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_check.py");
    let out = run_bounded(
        Command::new(&python)
            .arg(&script)
            .arg(d.socket())
            .arg("24001")
            .env("PYTHONPATH", &gen),
        "the Python client",
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "python client failed: {}\n{}",
        out.stderr,
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "version pcapd",
        "init 1 True",
        "start STATE_ACTIVE",
        "listened 50",
        "replayed 80",
        "error INVALID_ARGUMENT",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "expected {line:?} in:\n{text}"
        );
    }
}
