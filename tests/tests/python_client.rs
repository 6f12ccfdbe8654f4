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

#[test]
fn a_python_client_can_read_the_segment_files_handed_over() {
    const PORT: u16 = 24002;
    const PACKETS: u64 = 700;
    if !require_root() {
        return;
    }
    let python = python_venv();
    let d = Daemon::start();
    let gen = d.dir().join("py");
    std::fs::create_dir_all(&gen).unwrap();
    generate_python_client(&python, &gen);
    // Segments of 128 KiB: several for these packets, none expired.
    let id = d.init_started(&[
        "lo",
        &format!("udp port {PORT}"),
        "--alias",
        "handed",
        "--max-size",
        "1M",
    ]);
    send_udp_seq(PORT, 0..PACKETS, 1000);
    d.wait_spooled(id, PACKETS);
    d.ok(&["stop", "handed"]);
    d.wait_state(id, "PAUSED");
    let segments = d.segments(id).len();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/handoff_check.py");
    let out = run_bounded(
        Command::new(&python)
            .arg(&script)
            .arg(d.socket())
            .arg("handed")
            .env("PYTHONPATH", &gen),
        "the Python handoff client",
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "python handoff client failed: {}\n{}",
        out.stderr,
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("handed {PACKETS}"),
        format!("files {segments}"),
        "wrong token PERMISSION_DENIED".into(),
        "other user nothing".into(),
        "other user PERMISSION_DENIED".into(),
        "filtered streamed".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "expected {line:?} in:\n{text}"
        );
    }
}
