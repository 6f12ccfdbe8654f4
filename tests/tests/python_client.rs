//! A Python gRPC client (grpcio, from PyPI into a virtualenv under the target directory)
//! drives pcapd over the UNIX socket with a plain `unix://PATH` channel. grpcio sends the
//! socket path as the HTTP/2 authority, which pcapd must accept.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

/// Runs `tests/python/SCRIPT SOCKET ARG` against `d` with the generated client, asserts it
/// succeeded, and returns what it printed.
fn run_script(d: &Daemon, script: &str, arg: &str) -> String {
    let python = python_venv();
    let gen = d.dir().join("py");
    std::fs::create_dir_all(&gen).unwrap();
    generate_python_client(&python, &gen);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let out = run_bounded(
        Command::new(&python)
            .arg(&path)
            .arg(d.socket())
            .arg(arg)
            .env("PYTHONPATH", &gen),
        script,
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        out.stderr,
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_python_grpc_client_works_over_the_unix_socket() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let text = run_script(&d, "client_check.py", "24001");
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
    let d = Daemon::start();
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
    let text = run_script(&d, "handoff_check.py", "handed");
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
