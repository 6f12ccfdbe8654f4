//! A Python gRPC client (grpcio, from PyPI into a virtualenv under the target directory)
//! drives pcapd over the UNIX socket with a plain `unix://PATH` channel. grpcio sends the
//! socket path as the HTTP/2 authority, which pcapd must accept.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

#[test]
fn a_python_grpc_client_works_over_the_unix_socket() {
    if !require_root() {
        return;
    }
    let python = python_venv();
    let d = Daemon::start();
    let gen = d.dir().join("py");
    std::fs::create_dir_all(&gen).unwrap();
    generate_python_client(&python, &gen);
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
