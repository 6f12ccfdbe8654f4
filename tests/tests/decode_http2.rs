//! HTTP/2 and gRPC decoding of real traffic captured by pcapd on loopback: nghttpd serving
//! files over h2c, fetched by nghttp (which sends PRIORITY frames on idle streams: not
//! roundtrips) and by `curl --http2-prior-knowledge`; an `Upgrade: h2c` from HTTP/1.1 by
//! `curl --http2` against a server on python3-h2 (nghttpd does not speak it); a grpcio server
//! and client making a unary call, a server stream, a client stream, a bidi stream, an error
//! with a message, a large message and a call with a deadline. Decoded through the daemon,
//! from `replay -w`'s file and live while the traffic flowed alike, and cross-checked with
//! tshark's HTTP/2 dissector: the same paths, statuses and grpc-status values.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use pcapd_e2e::*;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);
const NGHTTPD: u16 = 24621;
const UPGRADE: u16 = 24622;
const GRPC: u16 = 24623;

/// A server of this test: its stdin is held open (closing it ends the Python servers) and
/// it is ended by its pid when dropped.
struct Server {
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl Server {
    /// Starts `cmd` and, when `ready` is given, waits for that line on its stdout.
    fn start(cmd: &mut Command, what: &str, ready: Option<&str>) -> Server {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(if ready.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        if let Some(ready) = ready {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), ready, "{what} did not start");
        }
        Server {
            _stdin: child.stdin.take(),
            child,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

fn wait_listening(port: u16, what: &str) {
    eventually(LIMIT, what, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Runs a client to its end, asserting it succeeded; its stdout.
fn client(cmd: &mut Command, what: &str) -> String {
    let out = run_bounded(cmd, what, LIMIT);
    assert!(out.status.success(), "{what}: {}", out.stderr);
    out.stdout_str()
}

fn roundtrips(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
        .collect()
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|r| r.to_string());
    v
}

fn on_port(rts: &[Value], port: u16) -> Vec<&Value> {
    let server = format!("127.0.0.1:{port}");
    rts.iter().filter(|r| r["server"] == server).collect()
}

/// Paths with their statuses, of HTTP/2 roundtrips.
fn paths(rts: &[&Value]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = rts
        .iter()
        .filter(|r| r["proto"] == "http2")
        .map(|r| {
            let h = &r["http2"];
            (
                h["path"].as_str().unwrap().to_owned(),
                h["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// What tshark's HTTP/2 dissector finds on `ports` in `file`: every :path, every :status
/// and every grpc-status value, each sorted.
fn tshark_sees(file: &Path, ports: &[u16]) -> (Vec<String>, Vec<u64>, Vec<u64>) {
    let mut args = vec!["-o".to_owned(), "tcp.desegment_tcp_streams:TRUE".to_owned()];
    for p in ports {
        args.push("-d".into());
        args.push(format!("tcp.port=={p},http2"));
    }
    // Only these ports: tshark also follows the h2c upgrade on the other one by itself.
    let on_ports: Vec<String> = ports.iter().map(|p| format!("tcp.port=={p}")).collect();
    args.push("-Y".into());
    args.push(format!("http2.header and ({})", on_ports.join(" or ")));
    for a in [
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "aggregator=~",
        "-e",
        "http2.headers.path",
        "-e",
        "http2.headers.status",
        "-e",
        "http2.header.name",
        "-e",
        "http2.header.value",
    ] {
        args.push(a.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut paths, mut statuses, mut grpc) = (Vec::new(), Vec::new(), Vec::new());
    for line in tshark_file(file, &args) {
        let cols: Vec<&str> = line.split('|').collect();
        let list = |i: usize| -> Vec<&str> {
            cols.get(i)
                .map(|c| c.split('~').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default()
        };
        paths.extend(list(0).into_iter().map(str::to_owned));
        statuses.extend(list(1).into_iter().filter_map(|s| s.parse::<u64>().ok()));
        let names: Vec<&str> = cols
            .get(2)
            .map(|c| c.split('~').collect())
            .unwrap_or_default();
        let values: Vec<&str> = cols
            .get(3)
            .map(|c| c.split('~').collect())
            .unwrap_or_default();
        for (n, v) in names.iter().zip(&values) {
            if *n == "grpc-status" {
                grpc.push(v.parse().unwrap());
            }
        }
    }
    paths.sort();
    statuses.sort();
    grpc.sort();
    (paths, statuses, grpc)
}

/// The same, from roundtrips.
fn decode_sees(rts: &[&Value]) -> (Vec<String>, Vec<u64>, Vec<u64>) {
    let h2: Vec<&Value> = rts
        .iter()
        .map(|r| &r["http2"])
        .filter(|h| h.is_object())
        .collect();
    let mut paths: Vec<String> = h2
        .iter()
        .map(|h| h["path"].as_str().unwrap().to_owned())
        .collect();
    let mut statuses: Vec<u64> = h2.iter().filter_map(|h| h["status"].as_u64()).collect();
    let mut grpc: Vec<u64> = rts
        .iter()
        .filter_map(|r| r["grpc"]["grpc_status"].as_u64())
        .collect();
    paths.sort();
    statuses.sort();
    grpc.sort();
    (paths, statuses, grpc)
}

#[test]
fn http2_and_grpc_are_decoded_as_tshark_reads_them() {
    if !require_root() {
        return;
    }
    let metrics = free_port();
    let d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    let dir = d.dir().join("h2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a".repeat(100)).unwrap();
    std::fs::write(dir.join("b.txt"), "b".repeat(30_000)).unwrap();

    // The servers.
    let _nghttpd = Server::start(
        Command::new("nghttpd")
            .args(["--no-tls", "-a", "127.0.0.1", "-d"])
            .arg(&dir)
            .arg(NGHTTPD.to_string()),
        "nghttpd (apt-get install nghttp2-server)",
        None,
    );
    wait_listening(NGHTTPD, "nghttpd to listen");
    let _upgrade = Server::start(
        // Debian's own Python, which python3-h2 installs into (not a python3 earlier in PATH).
        Command::new("/usr/bin/python3")
            .arg(python_dir().join("h2c_upgrade_server.py"))
            .arg(UPGRADE.to_string()),
        "h2c_upgrade_server.py (apt-get install python3-h2)",
        Some("ready"),
    );
    let python = python_venv();
    let generated = dir.join("grpc");
    std::fs::create_dir_all(&generated).unwrap();
    let proto_dir = python_dir().join("grpc_peer");
    client(
        Command::new(&python)
            .args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", proto_dir.display()))
            .arg(format!("--python_out={}", generated.display()))
            .arg(format!("--grpc_python_out={}", generated.display()))
            .arg(proto_dir.join("echo.proto")),
        "grpc_tools.protoc",
    );
    let pythonpath = format!("{}:{}", generated.display(), proto_dir.display());
    let _grpc = Server::start(
        Command::new(&python)
            .env("PYTHONPATH", &pythonpath)
            .arg(proto_dir.join("grpc_peer.py"))
            .args(["server", &GRPC.to_string()]),
        "grpc_peer.py server",
        Some("ready"),
    );

    let filter = format!("tcp port {NGHTTPD} or tcp port {UPGRADE} or tcp port {GRPC}");
    // Decoded while capturing too, for the gRPC metrics.
    let grpc_rule = format!("grpc:{GRPC}");
    let id = d.init_started(&["lo", &filter, "--decode", &grpc_rule]);
    let id_s = id.to_string();
    let live_out = dir.join("live.json");
    let mut live = d.spawn_to_file(&["decode", &id_s, "--live", "--json"], &live_out);

    // The traffic.
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    client(
        Command::new("nghttp").args(["-n", &url(NGHTTPD, "/a.txt"), &url(NGHTTPD, "/missing")]),
        "nghttp (apt-get install nghttp2-client)",
    );
    client(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--http2-prior-knowledge"])
            .arg(url(NGHTTPD, "/b.txt")),
        "curl --http2-prior-knowledge",
    );
    let codes = client(
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}\\n",
                "--http2",
            ])
            .args([url(UPGRADE, "/up"), url(UPGRADE, "/missing")]),
        "curl --http2 (Upgrade: h2c)",
    );
    assert_eq!(codes, "200 2\n404 2\n", "the h2c upgrade happened");
    let made: Value = serde_json::from_str(&client(
        Command::new(&python)
            .env("PYTHONPATH", &pythonpath)
            .arg(proto_dir.join("grpc_peer.py"))
            .args(["client", &GRPC.to_string()]),
        "grpc_peer.py client",
    ))
    .unwrap();
    let calls = made["calls"].as_array().unwrap();

    // Everything spooled: every gRPC call decoded from a replay.
    let probe = dir.join("probe.pcap");
    eventually(LIMIT, "the traffic to be spooled", || {
        d.ok(&["replay", &id_s, "-w", probe.to_str().unwrap()]);
        let rts = roundtrips(&d.ok(&["decode", "--file", probe.to_str().unwrap(), "--json"]));
        rts.iter().filter(|r| r["proto"] == "grpc").count() == calls.len()
    });
    // The calls counted on /metrics while capturing, by service, method and grpc-status.
    let call = |method: &str, status: &str| json!({"capture": id_s, "service": "peer.v1.Echo", "method": method, "grpc_status": status});
    let expected = [
        (call("Unary", "0"), 3.0),
        (call("Unary", "5"), 1.0),
        (call("ServerStream", "0"), 1.0),
        (call("ClientStream", "0"), 1.0),
        (call("Bidi", "0"), 1.0),
    ];
    eventually_ok(LIMIT, "the gRPC calls on /metrics", || {
        let s = Scrape::take(&python, &dir, metrics);
        for (labels, want) in &expected {
            let got = s.count("pcapd_grpc_requests_total", labels.clone());
            if got != *want {
                return Err(format!(
                    "pcapd_grpc_requests_total {labels} = {got}, not {want}"
                ));
            }
        }
        let unary = json!({"capture": id_s, "service": "peer.v1.Echo", "method": "Unary"});
        match s.count("pcapd_grpc_request_duration_seconds_count", unary) {
            4.0 => Ok(()),
            n => Err(format!("{n} Unary durations, not 4")),
        }
    });
    d.ok(&["stop", &id_s]);
    d.wait_state(id, "PAUSED");
    let status = live.wait(LIMIT);
    assert!(status.success(), "pcap decode --live: {}", live.stderr());

    // Three ways alike: through the daemon, from replay's file, and live as it happened.
    let through_daemon = roundtrips(&d.ok(&["decode", &id_s, "--json"]));
    let file = dir.join("capture.pcap");
    d.ok(&["replay", &id_s, "--nano", "-w", file.to_str().unwrap()]);
    let from_file = roundtrips(&d.ok(&["decode", "--json", "--file", file.to_str().unwrap()]));
    assert_eq!(sorted(from_file.clone()), sorted(through_daemon.clone()));
    let while_live = roundtrips(&std::fs::read_to_string(&live_out).unwrap());
    assert_eq!(
        sorted(while_live),
        sorted(through_daemon.clone()),
        "decode --live"
    );

    // nghttpd: three requests, the PRIORITY-only idle streams of nghttp are none.
    let files = on_port(&from_file, NGHTTPD);
    assert_eq!(
        paths(&files),
        vec![
            ("/a.txt".to_owned(), 200),
            ("/b.txt".to_owned(), 200),
            ("/missing".to_owned(), 404)
        ],
        "{files:#?}"
    );
    let b = files
        .iter()
        .find(|r| r["http2"]["path"] == "/b.txt")
        .unwrap();
    assert_eq!(b["http2"]["response_body_bytes"], 30_000);
    assert_eq!(b["complete"], true, "{b}");

    // The upgrade: the HTTP/1.1 request answered 101, then HTTP/2 streams.
    let up = on_port(&from_file, UPGRADE);
    assert!(
        up.iter().any(|r| r["proto"] == "http"
            && r["http"]["status"] == 101
            && r["http"]["target"] == "/up"),
        "{up:#?}"
    );
    assert_eq!(
        paths(&up),
        vec![("/missing".to_owned(), 404), ("/up".to_owned(), 200)],
        "{up:#?}"
    );
    let first = up
        .iter()
        .find(|r| r["proto"] == "http2" && r["http2"]["path"] == "/up")
        .unwrap();
    assert_eq!(
        first["http2"]["stream"], 1,
        "the upgraded request is stream 1"
    );
    assert_eq!(first["http2"]["response_body_bytes"], 1000);

    // gRPC: every call, as the client made it.
    let grpc: Vec<&Value> = on_port(&from_file, GRPC)
        .into_iter()
        .filter(|r| r["proto"] == "grpc")
        .collect();
    assert_eq!(grpc.len(), calls.len(), "{grpc:#?}");
    let mut by_method: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &grpc {
        assert_eq!(r["grpc"]["service"], "peer.v1.Echo", "{r}");
        by_method
            .entry(r["grpc"]["method"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    let one = |m: &str| -> &Value {
        assert_eq!(by_method[m].len(), 1, "{m}: {:#?}", by_method[m]);
        by_method[m][0]
    };
    let ss = one("ServerStream");
    assert_eq!(ss["grpc"]["response_messages"], 5);
    assert_eq!(ss["grpc"]["grpc_status"], 0);
    let cs = one("ClientStream");
    assert_eq!(cs["grpc"]["request_messages"], 4);
    let bidi = one("Bidi");
    assert_eq!(
        (
            bidi["grpc"]["request_messages"].as_u64(),
            bidi["grpc"]["response_messages"].as_u64()
        ),
        (Some(3), Some(3))
    );
    let unary = &by_method["Unary"];
    assert_eq!(unary.len(), 4, "{unary:#?}");
    let failed: Vec<&&Value> = unary
        .iter()
        .filter(|r| r["grpc"]["grpc_status"] == 5)
        .collect();
    assert_eq!(failed.len(), 1, "{unary:#?}");
    assert_eq!(failed[0]["grpc"]["grpc_message"], "no such thing");
    assert!(
        unary
            .iter()
            .any(|r| r["grpc"]["response_bytes"].as_u64() > Some(1 << 20)),
        "the 1 MiB message: {unary:#?}"
    );
    assert!(
        unary.iter().any(|r| r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("deadline"))),
        "the call with a deadline: {unary:#?}"
    );
    for r in &grpc {
        assert_eq!(r["complete"], true, "{r}");
    }

    // tshark's dissector, on the connections it reads as HTTP/2 from their start.
    let ours: Vec<&Value> = from_file
        .iter()
        .filter(|r| {
            r["server"] == format!("127.0.0.1:{NGHTTPD}")
                || r["server"] == format!("127.0.0.1:{GRPC}")
        })
        .collect();
    let (our_paths, our_statuses, our_grpc) = decode_sees(&ours);
    let (their_paths, their_statuses, their_grpc) = tshark_sees(&file, &[NGHTTPD, GRPC]);
    assert_eq!(our_paths, their_paths, "paths");
    assert_eq!(our_statuses, their_statuses, "statuses");
    assert_eq!(our_grpc, their_grpc, "grpc-status values");

    // Narrowed to gRPC: only the calls.
    let only = roundtrips(&d.ok(&[
        "decode",
        &id_s,
        "--json",
        "--proto",
        &format!("grpc:{GRPC}"),
    ]));
    assert_eq!(only.len(), calls.len());
    assert!(only.iter().all(|r| r["proto"] == "grpc"));
}
