//! Captures decoded while capturing (`pcap init --decode`): real HTTP (Python's
//! http.server driven by curl, several requests on one connection) and real DNS (dnsmasq
//! queried by dig over UDP and TCP) on loopback, counted on `/metrics` and read back with
//! Prometheus' own parsers (Python prometheus-client); and the same roundtrips read through
//! the `Decode` call by a Python gRPC client.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pcapd_e2e::*;
use serde_json::{json, Value};

/// A process this test started, killed (by its pid) when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `tool` is installed; without it the test skips, unless skipping is forbidden.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("PCAPD_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "{tool} is needed by this test: apt-get install it"
        );
        println!("skipping: {tool} is not installed");
    }
    found
}

/// Python's http.server speaking HTTP/1.1 (keep-alive) on 127.0.0.1:`port`, serving `root`.
fn http_server(port: u16, root: &Path) -> Server {
    let script = "import functools, http.server, sys\n\
        class H(http.server.SimpleHTTPRequestHandler):\n\
        \x20   protocol_version = 'HTTP/1.1'\n\
        \x20   def log_message(self, *a): pass\n\
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), \
        functools.partial(H, directory=sys.argv[2]))\n\
        print('ready', flush=True)\n\
        srv.serve_forever()\n";
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 http.server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the HTTP server did not start");
    Server(child)
}

/// dnsmasq answering for your.test from a hosts file on 127.0.0.1:`port` (NXDOMAIN for
/// names it does not have), forwarding nothing.
fn dns_server(port: u16, dir: &Path) -> Server {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.5 a.your.test\n::5 a.your.test\n").unwrap();
    let child = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--local=/your.test/",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
        ])
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    let server = Server(child);
    // Ready once it answers over TCP (a connection, not a query: nothing is captured yet
    // anyway, but no query should count).
    eventually(DEFAULT_WAIT, "dnsmasq to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

/// `dig` once (no retry), printing the answer's status line.
fn dig(port: u16, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new("dig")
            .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=5"])
            .args(args),
        "dig",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "dig {args:?}: {}", out.stderr);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the test expects on `/metrics` for capture `c`, as (metric, labels, value).
fn expected(c: &str) -> Vec<(&'static str, Value, f64)> {
    vec![
        (
            "pcapd_http_requests_total",
            json!({"capture": c, "method": "GET", "status_code": "200"}),
            2.0,
        ),
        (
            "pcapd_http_requests_total",
            json!({"capture": c, "method": "GET", "status_code": "404"}),
            1.0,
        ),
        (
            "pcapd_dns_requests_total",
            json!({"capture": c, "qtype": "A", "rcode": "NOERROR"}),
            2.0,
        ),
        (
            "pcapd_dns_requests_total",
            json!({"capture": c, "qtype": "AAAA", "rcode": "NOERROR"}),
            1.0,
        ),
        (
            "pcapd_dns_requests_total",
            json!({"capture": c, "qtype": "A", "rcode": "NXDOMAIN"}),
            1.0,
        ),
    ]
}

fn mismatches(s: &Scrape, c: &str) -> Result<(), String> {
    for (name, labels, want) in expected(c) {
        let got = s.count(name, labels.clone());
        if got != want {
            return Err(format!("{name} {labels} = {got}, expected {want}"));
        }
    }
    Ok(())
}

#[test]
fn decoded_http_and_dns_are_counted_on_metrics_and_read_through_decode() {
    if !require_root() || !have("dnsmasq") || !have("dig") || !have("curl") {
        return;
    }
    let (http_port, dns_port) = (free_port(), free_port());
    let python = python_venv();
    let metrics = free_port();
    let d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    let root: PathBuf = d.dir().join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(root.join("b.txt"), "bravo bravo\n").unwrap();
    let _http = http_server(http_port, &root);
    let _dns = dns_server(dns_port, d.dir());

    let filter = format!("port {http_port} or port {dns_port}");
    let id = d.init_started(&[
        "lo", &filter, "--alias", "dm", "--decode", "http", "--decode", "dns",
    ]);
    let listed = d.capture(id);
    assert_eq!(listed["decode"], json!(["http", "dns"]), "{listed}");
    let table = d.ok(&["list"]);
    assert!(table.lines().next().unwrap().ends_with("DECODE"), "{table}");
    assert!(table.contains("http dns"), "{table}");

    // Asking for other rules on the same target and filter is refused, saying why.
    let refused = d.fails(&["init", "lo", &filter, "--decode", "http:8080"]);
    assert!(
        refused.contains("decodes --decode http --decode dns, not --decode http:8080"),
        "{refused}"
    );
    // A bad rule never reaches the daemon: a usage error, with the library's message.
    let bad = d.client().run(&["init", "lo", "tcp", "--decode", "smtp"]);
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("use http, dns, http2, grpc or tls"),
        "{}",
        bad.stderr
    );

    // Three requests on one keep-alive connection, the last a 404.
    let base = format!("http://127.0.0.1:{http_port}");
    let out = run_bounded(
        Command::new("curl").args([
            "--http1.1",
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &format!("{base}/a.txt"),
            &format!("{base}/b.txt"),
            &format!("{base}/missing"),
        ]),
        "curl",
        Duration::from_secs(30),
    );
    let codes = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        codes, "200 1\n200 0\n404 0\n",
        "one connection: {}",
        out.stderr
    );

    assert!(dig(dns_port, &["a.your.test", "A"]).contains("status: NOERROR"));
    assert!(dig(dns_port, &["a.your.test", "AAAA"]).contains("status: NOERROR"));
    assert!(dig(dns_port, &["missing.your.test", "A"]).contains("status: NXDOMAIN"));
    assert!(dig(dns_port, &["+tcp", "a.your.test", "A"]).contains("status: NOERROR"));

    eventually_ok(DEFAULT_WAIT, "the decoded requests on /metrics", || {
        mismatches(&Scrape::take(&python, d.dir(), metrics), "dm")
    });
    let s = Scrape::take(&python, d.dir(), metrics);
    let dm = json!({"capture": "dm"});
    let http_total: f64 = s
        .all("pcapd_http_requests_total", &dm)
        .iter()
        .map(|(_, v)| v)
        .sum();
    let dns_total: f64 = s
        .all("pcapd_dns_requests_total", &dm)
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!((http_total, dns_total), (3.0, 4.0), "nothing else counted");
    for (labels, _) in s.all("pcapd_http_requests_total", &dm) {
        let keys: Vec<&String> = labels.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["capture", "method", "status_code"], "no path label");
    }
    assert_eq!(
        s.count(
            "pcapd_http_request_duration_seconds_count",
            json!({"capture": "dm", "method": "GET"})
        ),
        3.0
    );
    assert_eq!(
        s.count("pcapd_http_response_body_bytes_count", dm.clone()),
        3.0
    );
    assert_eq!(
        s.count("pcapd_dns_request_duration_seconds_count", dm.clone()),
        4.0
    );
    assert_eq!(
        s.families["pcapd_http_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(s.families["pcapd_dns_requests"], "counter");
    assert_eq!(
        s.count(
            "pcapd_decode_roundtrips_total",
            json!({"capture": "dm", "proto": "dns"})
        ),
        4.0
    );
    assert!(s.count("pcapd_decode_packets_total", dm.clone()) > 0.0);
    assert_eq!(s.count("pcapd_decode_gap_packets_total", dm.clone()), 0.0);

    // The same roundtrips through the Decode call, from Python.
    let gen = d.dir().join("py");
    std::fs::create_dir_all(&gen).unwrap();
    generate_python_client(&python, &gen);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/decode_check.py");
    let out = run_bounded(
        Command::new(&python)
            .arg(&script)
            .arg(d.socket())
            .arg("dm")
            .arg(http_port.to_string())
            .env("PYTHONPATH", &gen),
        "the Python Decode client",
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "python client failed: {}", out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("first header {id}"),
        "http GET /a.txt 200 True".into(),
        "http GET /b.txt 200 True".into(),
        "http GET /missing 404 True".into(),
        "dns a.your.test A NOERROR udp".into(),
        "dns a.your.test AAAA NOERROR udp".into(),
        "dns missing.your.test A NXDOMAIN udp".into(),
        "dns a.your.test A NOERROR tcp".into(),
        "dns only 4".into(),
        "error INVALID_ARGUMENT".into(),
        "live http GET /a.txt?live 200".into(),
        "cancelled".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "expected {line:?} in:\n{text}"
        );
    }

    // The live reader that went away is not counted any more: its decoding ended.
    let decoding = json!({"id": id.to_string(), "kind": "decode"});
    eventually(
        DEFAULT_WAIT,
        "the Decode stream to end with its client",
        || {
            Scrape::take(&python, d.dir(), metrics).count("pcapd_capture_readers", decoding.clone())
                == 0.0
        },
    );

    // Deleted, its series go.
    d.ok(&["delete", "dm"]);
    let s = Scrape::take(&python, d.dir(), metrics);
    assert!(s.all("pcapd_http_requests_total", &dm).is_empty());
    assert!(s.all("pcapd_decode_packets_total", &dm).is_empty());
}

#[test]
fn decoding_resumes_with_the_capture_after_a_daemon_restart() {
    if !require_root() {
        return;
    }
    let http_port = free_port();
    let python = python_venv();
    let metrics = free_port();
    let mut d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    let root = d.dir().join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "alpha\n").unwrap();
    let _http = http_server(http_port, &root);
    let id = d.init_started(&[
        "lo",
        &format!("tcp port {http_port}"),
        "--decode",
        &format!("http:{http_port}"),
    ]);
    let get = || {
        let out = run_bounded(
            Command::new("curl").args([
                "--http1.1",
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{http_port}/a.txt"),
            ]),
            "curl",
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "curl: {}", out.stderr);
    };
    // Without an alias, the capture label is the id.
    let ok = json!({"capture": id.to_string(), "method": "GET", "status_code": "200"});
    get();
    eventually(DEFAULT_WAIT, "the request counted", || {
        Scrape::take(&python, d.dir(), metrics).count("pcapd_http_requests_total", ok.clone())
            == 1.0
    });
    // The metrics start again from zero with the daemon; the capture resumes by itself
    // (listed ACTIVE all along), and its decoder with it.
    d.restart();
    eventually(DEFAULT_WAIT, "requests after the restart counted", || {
        get();
        Scrape::take(&python, d.dir(), metrics).count("pcapd_http_requests_total", ok.clone())
            >= 1.0
    });
    assert_eq!(d.state(id), "ACTIVE");
}
