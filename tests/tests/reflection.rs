//! gRPC server reflection: a client that has no proto files (grpcio-reflection's, in
//! Python) discovers pcap.v1.Pcapd and its methods, over the UNIX socket and over mutual
//! TLS, in both protocol versions (v1alpha for grpcio, v1 for grpcurl).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

/// What reflection must tell about the API, line by line as the script prints it.
const EXPECTED: &[&str] = &[
    "v1alpha service pcap.v1.Pcapd",
    "v1alpha service grpc.reflection.v1alpha.ServerReflection",
    "method Init pcap.v1.InitRequest pcap.v1.InitResponse unary",
    "method Start pcap.v1.SelectRequest pcap.v1.CapturesResponse unary",
    "method Stop pcap.v1.SelectRequest pcap.v1.CapturesResponse unary",
    "method Delete pcap.v1.SelectRequest pcap.v1.CapturesResponse unary",
    "method List pcap.v1.ListRequest pcap.v1.ListResponse unary",
    "method Replay pcap.v1.ReplayRequest pcap.v1.StreamMessage stream",
    "method Listen pcap.v1.ListenRequest pcap.v1.StreamMessage stream",
    "method Interfaces pcap.v1.InterfacesRequest pcap.v1.InterfacesResponse unary",
    "method Version pcap.v1.VersionRequest pcap.v1.VersionResponse unary",
    "method Namespaces pcap.v1.NamespacesRequest pcap.v1.NamespacesResponse unary",
    "method Decode pcap.v1.DecodeRequest pcap.v1.DecodeMessage stream",
    "method Import pcap.v1.ImportMessage pcap.v1.InitResponse unary",
    "fields pcap.v1.Packet timestamp_ns captured_length original_length data sequence",
    "v1 service pcap.v1.Pcapd",
    "v1 service grpc.reflection.v1.ServerReflection",
];

/// Runs the reflection script with `args` and checks every expected line.
fn check_reflection(python: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/reflection_check.py");
    let out = run_bounded(
        Command::new(python).arg(&script).args(args),
        "the Python reflection client",
        Duration::from_secs(60),
    );
    let text = out.stdout_str();
    assert!(
        out.status.success(),
        "reflection client ({args:?}) failed: {}\n{text}",
        out.stderr
    );
    for line in EXPECTED {
        assert!(
            text.lines().any(|l| l == *line),
            "over {}: expected {line:?} in:\n{text}",
            args[0]
        );
    }
    let methods = text.lines().filter(|l| l.starts_with("method ")).count();
    assert_eq!(
        methods, 12,
        "exactly the twelve RPCs of pcap.v1.Pcapd:\n{text}"
    );
}

#[test]
fn reflection_describes_the_api_over_the_unix_socket_and_mutual_tls() {
    if !require_root() {
        return;
    }
    let python = python_venv();
    let certs = tempfile::tempdir().unwrap();
    let tls = certs.path().to_str().unwrap();
    pcapd_tls(&["init", "--out", tls, "--host", "localhost"]);
    pcapd_tls(&["client", "--out", tls, "--name", "alice"]);
    let port = free_port();
    let file = |name: &str| certs.path().join(name);
    let d = Daemon::builder()
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(file("server.pem"))
        .arg("--tls-key")
        .arg(file("server-key.pem"))
        .arg("--client-ca")
        .arg(file("ca.pem"))
        .start();

    check_reflection(&python, &["unix", d.socket().to_str().unwrap()]);
    check_reflection(
        &python,
        &[
            "tls",
            &format!("127.0.0.1:{port}"),
            file("ca.pem").to_str().unwrap(),
            file("alice.pem").to_str().unwrap(),
            file("alice-key.pem").to_str().unwrap(),
        ],
    );
    // The API itself is still served next to reflection.
    assert!(d.ok(&["version"]).contains("pcapd"));
}
