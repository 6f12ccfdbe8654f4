//! `pcap decode`: roundtrips of committed capture files (every format, filters, bad input;
//! no root needed), and of real traffic captured on loopback: curl against Python's
//! http.server and a keep-alive/chunked server of our own (`tests/python/http1_server.py`),
//! dig against dnsmasq. The same capture decoded three ways (through the daemon, from
//! `replay -w`'s file, and live while the traffic flows) gives the same roundtrips; what
//! tshark's own dissectors find in the file is what `pcap decode` finds; TCP segments cut
//! out with editcap are reported as holes, never as a complete body.
//!
//! The fixture files are made by `tests/fixtures/decode/make.py`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pcapd_e2e::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/decode")
        .join(name)
}

/// `pcap` with no daemon behind its socket: `decode --file` must not need one.
fn offline() -> (tempfile::TempDir, Pcap) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = Pcap::at(dir.path().join("no-daemon.sock"));
    (dir, pcap)
}

/// Parses `pcap decode --json` output: one object per line.
fn roundtrips(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("pcap decode --json printed a bad line ({e}): {l}"))
        })
        .collect()
}

/// Roundtrips in a stable order, for comparing decodes that may interleave differently.
fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|r| r.to_string());
    v
}

fn http_of(rts: &[Value]) -> Vec<&Value> {
    rts.iter().filter(|r| r["proto"] == "http").collect()
}

fn dns_of(rts: &[Value]) -> Vec<&Value> {
    rts.iter().filter(|r| r["proto"] == "dns").collect()
}

/// The HTTP roundtrip whose request was `method target`.
fn request<'a>(rts: &'a [Value], method: &str, target: &str) -> &'a Value {
    rts.iter()
        .find(|r| r["http"]["method"] == method && r["http"]["target"] == target)
        .unwrap_or_else(|| panic!("no roundtrip for {method} {target} in {rts:#?}"))
}

/// The DNS roundtrips asking `name` `qtype`.
fn queries<'a>(rts: &'a [Value], name: &str, qtype: &str) -> Vec<&'a Value> {
    rts.iter()
        .filter(|r| r["dns"]["name"] == name && r["dns"]["type"] == qtype)
        .collect()
}

// === Files, no daemon ===

#[test]
fn every_file_format_decodes_to_the_same_roundtrips() {
    let (_dir, pcap) = offline();
    let decode = |name: &str| {
        let path = fixture(name);
        roundtrips(&pcap.ok(&["decode", "--json", "--file", path.to_str().unwrap()]))
    };
    let pcap_us = decode("http_dns.pcap");
    assert_eq!(
        decode("http_dns_nano_be.pcap"),
        pcap_us,
        "nanosecond big-endian pcap"
    );
    assert_eq!(
        decode("http_dns.pcapng"),
        pcap_us,
        "pcapng, two interfaces and link types"
    );

    assert_eq!(pcap_us.len(), 4, "{pcap_us:#?}");
    let get = request(&pcap_us, "GET", "/a");
    assert_eq!(get["http"]["status"], 200);
    assert_eq!(get["http"]["host"], "web.dec.test");
    assert_eq!(get["http"]["response_body_bytes"], 5);
    assert_eq!(
        get["packets"],
        serde_json::json!([4, 6]),
        "packet numbers from 1"
    );
    assert_eq!(get["ts"], "2026-11-18T11:06:40.000400000Z");
    assert_eq!(get["duration_ns"], 200_000);
    assert_eq!(get["client"], "10.0.0.1:40000");
    assert_eq!(get["server"], "10.0.0.2:8080");
    let post = request(&pcap_us, "POST", "/b");
    assert_eq!(post["http"]["status"], 201);
    assert_eq!(post["http"]["request_body_bytes"], 3);
    assert_eq!(
        post["http"]["response_body_bytes"], 6,
        "chunked: 4 + 2 bytes"
    );
    assert_eq!(post["flow"], get["flow"], "one keep-alive connection");
    for rt in &pcap_us {
        assert_eq!(rt["complete"], true, "{rt}");
    }
    let www = &queries(&pcap_us, "www.dec.test", "A")[0]["dns"];
    assert_eq!(www["rcode"], "NOERROR");
    assert_eq!(www["transport"], "udp");
    assert_eq!(www["answers"][0]["data"], "127.0.0.5");
    assert_eq!(www["answers"][0]["ttl"], 300);
    let missing = &queries(&pcap_us, "missing.dec.test", "A")[0]["dns"];
    assert_eq!(missing["rcode"], "NXDOMAIN");
    assert_eq!(missing["answers"], serde_json::json!([]));
}

#[test]
fn the_table_is_for_people() {
    let (_dir, pcap) = offline();
    let path = fixture("http_dns.pcap");
    let table = pcap.ok(&["decode", "--file", path.to_str().unwrap()]);
    let lines: Vec<&str> = table.lines().collect();
    let head = lines[0];
    for title in [
        "TIME", "CLIENT", "SERVER", "PROTO", "REQUEST", "STATUS", "DURATION", "NOTES",
    ] {
        assert!(head.contains(title), "header {head:?} names {title}");
    }
    assert_eq!(lines.len(), 5, "a header and 4 rows:\n{table}");
    let row = |what: &str| {
        *lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no row with {what:?}:\n{table}"))
    };
    let get = row("GET /a");
    assert!(get.starts_with("2026-11-18T11:06:40.000Z"), "{get}");
    assert_eq!(get.find("10.0.0.1:40000"), head.find("CLIENT"), "{table}");
    assert_eq!(get.find("10.0.0.2:8080"), head.find("SERVER"), "{table}");
    assert_eq!(get.find("GET /a"), head.find("REQUEST"), "{table}");
    assert_eq!(get.find("200 "), head.find("STATUS"), "{table}");
    assert!(get.trim_end().ends_with("200.0µs"), "{get}");
    assert!(row("POST /b").contains("201"), "{table}");
    let nx = row("missing.dec.test A");
    assert_eq!(nx.find("NXDOMAIN"), head.find("STATUS"), "{table}");
}

#[test]
fn filter_and_proto_narrow_what_is_decoded() {
    let (_dir, pcap) = offline();
    let path = fixture("http_dns.pcapng");
    let file = path.to_str().unwrap();
    let decode = |extra: &[&str]| {
        let mut args = vec!["decode", "--json", "--file", file];
        args.extend_from_slice(extra);
        roundtrips(&pcap.ok(&args))
    };
    let udp = decode(&["--filter", "udp"]);
    assert_eq!(udp.len(), 2, "{udp:#?}");
    assert!(udp.iter().all(|r| r["proto"] == "dns"), "{udp:#?}");
    let http = decode(&["--proto", "http"]);
    assert_eq!(http_of(&http).len(), 2);
    assert!(dns_of(&http).is_empty(), "{http:#?}");
    assert_eq!(decode(&["--proto", "dns:53"]).len(), 2);
    assert!(decode(&["--proto", "dns:5353", "--proto", "http:80"]).is_empty());
    assert_eq!(decode(&["--proto", "http:8080", "--proto", "dns"]).len(), 4);
}

#[test]
fn standard_input_is_read_as_a_stream() {
    let (_dir, pcap) = offline();
    let path = fixture("http_dns.pcapng");
    let mut cmd = pcap.command(&["decode", "--json", "--file", "-"]);
    cmd.stdin(File::open(&path).unwrap());
    let out = run_bounded(&mut cmd, "pcap decode --file -", LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    let from_file = pcap.ok(&["decode", "--json", "--file", path.to_str().unwrap()]);
    assert_eq!(out.stdout_str(), from_file);
    assert_eq!(roundtrips(&from_file).len(), 4);
}

#[test]
fn a_reader_that_goes_away_ends_decode_quietly() {
    let (_dir, pcap) = offline();
    let path = fixture("http_dns.pcap");
    let mut running = pcap.spawn_piped(&["decode", "--file", path.to_str().unwrap()]);
    drop(running.stdout());
    let status = running.wait(LIMIT);
    assert!(status.success(), "{status}: {}", running.stderr());
    assert!(running.stderr().is_empty(), "{}", running.stderr());
}

#[test]
fn bad_input_is_refused_with_what_was_wrong() {
    let (dir, pcap) = offline();
    let file = |n: &str| fixture(n).to_str().unwrap().to_owned();
    let code = |args: &[&str]| {
        let out = pcap.run(args);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        let stdout = out.stdout_str();
        (out.status.code(), out.stderr, stdout)
    };

    let (status, err, _) = code(&[
        "decode",
        "--file",
        &file("http_dns.pcap"),
        "--proto",
        "smtp",
    ]);
    assert_eq!(status, Some(2), "{err}");
    assert!(
        err.contains("unknown protocol \"smtp\"") && err.contains("http, dns"),
        "{err}"
    );
    let (status, err, _) = code(&[
        "decode",
        "--file",
        &file("http_dns.pcap"),
        "--proto",
        "http:0",
    ]);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("1 to 65535"), "{err}");
    let (status, err, _) = code(&["decode", "web", "--file", &file("http_dns.pcap")]);
    assert_eq!(status, Some(2), "a capture and a file: {err}");
    assert!(err.contains("--file"), "{err}");
    let (status, err, _) = code(&[
        "decode",
        "--file",
        &file("http_dns.pcap"),
        "--filter",
        "port nonsense",
    ]);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("invalid filter \"port nonsense\""), "{err}");

    let missing = dir.path().join("missing.pcap");
    assert!(pcap
        .fails(&["decode", "--file", missing.to_str().unwrap()])
        .contains("cannot open"));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are not packets\n").unwrap();
    let err = pcap.fails(&["decode", "--file", text.to_str().unwrap()]);
    assert!(err.contains("neither a pcap nor a pcapng file"), "{err}");

    // Damage: the roundtrips before it are printed, then the error names where it is.
    let (status, err, out) = code(&["decode", "--json", "--file", &file("truncated.pcap")]);
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("cut short") && err.contains("at byte offset 1460"),
        "{err}"
    );
    assert_eq!(
        roundtrips(&out).len(),
        4,
        "everything before the cut:\n{out}"
    );
    let (status, err, out) = code(&["decode", "--json", "--file", &file("corrupt.pcap")]);
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("at byte offset 364") && err.contains("length field"),
        "{err}"
    );
    let cut = roundtrips(&out);
    assert_eq!(
        cut.len(),
        1,
        "the request seen before the damage, unanswered: {out}"
    );
    assert_eq!(cut[0]["complete"], false, "{out}");
    assert_eq!(cut[0]["http"]["status"], Value::Null, "{out}");

    let (status, err, _) = code(&["decode", "--file", &file("unknown_link.pcap")]);
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("link type (147)") && err.contains("EN10MB"),
        "{err}"
    );
}

// === Real traffic ===

/// A server process of this test, ended (by its pid) when dropped.
struct Server {
    child: Child,
    what: &'static str,
}

impl Server {
    fn spawn(cmd: &mut Command, what: &'static str) -> Server {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        Server { child, what }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/python/http1_server.py` on 127.0.0.1:`port`, once it accepts connections.
fn http1_server(port: u16) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/http1_server.py");
    let mut server = Server::spawn(
        Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped()),
        "http1_server.py",
    );
    let mut line = String::new();
    BufReader::new(server.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("listening {port}"), "{}", server.what);
    server
}

/// Python's own `http.server` serving `dir` on 127.0.0.1:`port`.
fn python_http_server(port: u16, dir: &Path) -> Server {
    let server = Server::spawn(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "python3 -m http.server",
    );
    eventually(LIMIT, "http.server to accept connections", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

/// dnsmasq answering for dec.test on 127.0.0.1:`port` from a hosts file: www.dec.test
/// (A and AAAA), alias.dec.test (a CNAME of www), NXDOMAIN for anything else.
fn dnsmasq(port: u16, dir: &Path) -> Server {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.5 www.dec.test\nfd00::5 www.dec.test\n").unwrap();
    let server = Server::spawn(
        Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
            ])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .args(["--local=/dec.test/", "--cname=alias.dec.test,www.dec.test"])
            .args(["-p", &port.to_string(), "--listen-address=127.0.0.1"])
            .arg("--bind-interfaces")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "dnsmasq",
    );
    eventually(LIMIT, "dnsmasq to answer", || {
        dig(port, &["www.dec.test", "A", "+short"]).trim() == "127.0.0.5"
    });
    server
}

/// `dig @127.0.0.1 -p PORT ARGS`; its output.
fn dig(port: u16, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new("dig")
            .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=2"])
            .args(args),
        "dig",
        LIMIT,
    );
    out.stdout_str()
}

/// `curl -s --http1.1 ARGS`, asserting it succeeded; its output.
fn curl(args: &[&str]) -> String {
    let out = run_bounded(
        Command::new("curl")
            .args(["-s", "-S", "--http1.1"])
            .args(args),
        "curl",
        LIMIT,
    );
    assert!(out.status.success(), "curl {args:?}: {}", out.stderr);
    out.stdout_str()
}

const HTTP1: u16 = 24611;
const HTTP_SERVER: u16 = 24612;
const DNS: u16 = 24613;

/// Every kind of roundtrip: keep-alive with several URLs on one connection, chunked with a
/// trailer, 204, 304, HEAD, POST with Expect: 100-continue, 404, Python's http.server, and
/// DNS over UDP and TCP (A, AAAA, CNAME, NXDOMAIN).
fn make_traffic(dir: &Path) {
    let base = format!("http://127.0.0.1:{HTTP1}");
    let url = |p: &str| format!("{base}{p}");
    let codes = curl(&[
        "-w",
        "%{http_code}\n",
        "-o",
        "/dev/null",
        &url("/len/100"),
        "-o",
        "/dev/null",
        &url("/chunked"),
        "-o",
        "/dev/null",
        &url("/empty"),
        "-o",
        "/dev/null",
        &url("/cached"),
    ]);
    assert_eq!(codes, "200\n200\n204\n304\n");
    assert!(curl(&["-I", &url("/len/5000")]).contains("Content-Length: 5000"));
    let body = dir.join("body.bin");
    std::fs::write(&body, vec![b'p'; 3000]).unwrap();
    let posted = curl(&[
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", body.display()),
        &url("/upload"),
    ]);
    assert_eq!(posted, "got 3000 bytes\n");
    assert_eq!(
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &url("/missing")]),
        "404"
    );
    let site = format!("http://127.0.0.1:{HTTP_SERVER}");
    assert_eq!(curl(&[&format!("{site}/hello.txt")]), "hello\n");
    assert!(curl(&[&format!("{site}/")]).contains("hello.txt"));

    assert_eq!(
        dig(DNS, &["www.dec.test", "A", "+short"]).trim(),
        "127.0.0.5"
    );
    assert_eq!(
        dig(DNS, &["www.dec.test", "AAAA", "+short"]).trim(),
        "fd00::5"
    );
    assert!(dig(DNS, &["alias.dec.test", "A", "+short"]).contains("www.dec.test."));
    assert!(dig(DNS, &["missing.dec.test", "A"]).contains("status: NXDOMAIN"));
    assert_eq!(
        dig(DNS, &["www.dec.test", "A", "+tcp", "+short"]).trim(),
        "127.0.0.5"
    );
}

/// What the decode of `make_traffic` must hold, whichever way it was read.
fn check_traffic(rts: &[Value]) {
    for rt in rts {
        assert_eq!(rt["complete"], true, "{rt}");
    }
    let http = |m: &str, t: &str| &request(rts, m, t)["http"];
    let len100 = request(rts, "GET", "/len/100");
    assert_eq!(len100["http"]["status"], 200);
    assert_eq!(len100["http"]["response_body_bytes"], 100);
    let chunked = request(rts, "GET", "/chunked");
    assert_eq!(
        chunked["http"]["response_body_bytes"], 1016,
        "5 + 11 + 1000"
    );
    assert_eq!(
        chunked["flow"], len100["flow"],
        "keep-alive: one connection"
    );
    for (target, status) in [("/empty", 204), ("/cached", 304)] {
        let rt = request(rts, "GET", target);
        assert_eq!(rt["http"]["status"], status);
        assert_eq!(rt["http"]["response_body_bytes"], 0);
        assert_eq!(rt["flow"], len100["flow"]);
    }
    assert_eq!(http("HEAD", "/len/5000")["status"], 200);
    assert_eq!(
        http("HEAD", "/len/5000")["response_body_bytes"],
        0,
        "HEAD has no body"
    );
    let post = http("POST", "/upload");
    assert_eq!(post["status"], 200, "the final status, not 100 Continue");
    assert_eq!(post["request_body_bytes"], 3000);
    assert_eq!(post["response_body_bytes"], 15);
    assert_eq!(http("GET", "/missing")["status"], 404);
    assert_eq!(http("GET", "/hello.txt")["status"], 200);
    assert_eq!(http("GET", "/hello.txt")["response_body_bytes"], 6);
    assert_eq!(http("GET", "/")["status"], 200);
    assert_eq!(http_of(rts).len(), 9, "{rts:#?}");

    let www = queries(rts, "www.dec.test", "A");
    let transports: Vec<&Value> = www.iter().map(|r| &r["dns"]["transport"]).collect();
    assert!(transports.contains(&&Value::from("udp")), "{www:#?}");
    assert!(transports.contains(&&Value::from("tcp")), "{www:#?}");
    for q in &www {
        assert_eq!(q["dns"]["rcode"], "NOERROR");
        assert_eq!(q["dns"]["answers"][0]["data"], "127.0.0.5", "{q}");
    }
    let aaaa = &queries(rts, "www.dec.test", "AAAA")[0]["dns"];
    assert_eq!(aaaa["answers"][0]["data"], "fd00::5", "{aaaa}");
    let alias = &queries(rts, "alias.dec.test", "A")[0]["dns"];
    assert_eq!(alias["answers"][0]["type"], "CNAME", "{alias}");
    assert!(
        alias["answers"][0]["data"]
            .as_str()
            .is_some_and(|d| d.starts_with("www.dec.test")),
        "{alias}"
    );
    assert_eq!(alias["answers"][1]["data"], "127.0.0.5", "{alias}");
    assert_eq!(
        queries(rts, "missing.dec.test", "A")[0]["dns"]["rcode"],
        "NXDOMAIN"
    );
}

/// What tshark's dissectors report in `file`: HTTP requests (method, uri), final response
/// codes, DNS query names, and (name, rcode) of DNS responses.
type Seen = (
    Vec<(String, String)>,
    Vec<u16>,
    Vec<String>,
    Vec<(String, String)>,
);

fn tshark_sees(file: &Path) -> Seen {
    let mut args: Vec<String> = vec!["-o".into(), "tcp.desegment_tcp_streams:TRUE".into()];
    for port in [HTTP1, HTTP_SERVER] {
        args.extend(["-d".into(), format!("tcp.port=={port},http")]);
    }
    args.extend(["-d".into(), format!("udp.port=={DNS},dns")]);
    args.extend(["-d".into(), format!("tcp.port=={DNS},dns")]);
    args.extend(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"].map(String::from));
    for field in [
        "http.request.method",
        "http.request.uri",
        "http.response.code",
        "dns.flags.response",
        "dns.qry.name",
        "dns.flags.rcode",
    ] {
        args.extend(["-e".to_owned(), field.to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut seen: Seen = Default::default();
    for line in tshark_file(file, &args) {
        let f: Vec<&str> = line.split('|').collect();
        let list = |i: usize| -> Vec<&str> { f[i].split(',').filter(|s| !s.is_empty()).collect() };
        for (m, u) in list(0).into_iter().zip(list(1)) {
            seen.0.push((m.to_owned(), u.to_owned()));
        }
        for code in list(2) {
            let code: u16 = code.parse().unwrap();
            if code >= 200 {
                seen.1.push(code);
            }
        }
        for (i, name) in list(4).into_iter().enumerate() {
            match list(3).get(i).copied() {
                Some("0") | Some("False") => seen.2.push(name.to_owned()),
                _ => {
                    let rcode = list(5).get(i).copied().unwrap_or("");
                    seen.3.push((name.to_owned(), rcode_name(rcode)));
                }
            }
        }
    }
    seen.0.sort();
    seen.1.sort();
    seen.2.sort();
    seen.3.sort();
    seen
}

/// tshark numbers rcodes; pcap decode names them.
fn rcode_name(number: &str) -> String {
    match number {
        "0" => "NOERROR",
        "1" => "FORMERR",
        "2" => "SERVFAIL",
        "3" => "NXDOMAIN",
        "4" => "NOTIMP",
        "5" => "REFUSED",
        other => return format!("RCODE{other}"),
    }
    .to_owned()
}

/// The same, from `pcap decode --json` output.
fn decode_sees(rts: &[Value]) -> Seen {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut seen: Seen = Default::default();
    for rt in rts {
        let h = &rt["http"];
        if !h.is_null() {
            seen.0.push((s(&h["method"]), s(&h["target"])));
            if let Some(code) = h["status"].as_u64() {
                seen.1.push(code as u16);
            }
        }
        let d = &rt["dns"];
        if !d.is_null() {
            seen.2.push(s(&d["name"]));
            if !s(&d["rcode"]).is_empty() {
                seen.3.push((s(&d["name"]), s(&d["rcode"])));
            }
        }
    }
    seen.0.sort();
    seen.1.sort();
    seen.2.sort();
    seen.3.sort();
    seen
}

#[test]
fn captured_traffic_decodes_alike_three_ways_and_as_tshark_reads_it() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let dir = d.dir().join("decode");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    let _http1 = http1_server(HTTP1);
    let _site = python_http_server(HTTP_SERVER, &dir);
    let _dns = dnsmasq(DNS, &dir);

    let filter = format!("tcp port {HTTP1} or tcp port {HTTP_SERVER} or port {DNS}");
    let id = d.init_started(&["lo", &filter]);
    let id_s = id.to_string();
    let live_out = dir.join("live.json");
    let mut live = d.spawn_to_file(&["decode", &id_s, "--live", "--json"], &live_out);

    make_traffic(&dir);
    // Each HTTP exchange is at least 4 packets and each query 2: wait until the last
    // (TCP) query is spooled before stopping.
    eventually(LIMIT, "the traffic to be spooled", || {
        let file = dir.join("probe.pcap");
        d.ok(&["replay", &id_s, "-w", file.to_str().unwrap()]);
        let rts = roundtrips(&d.ok(&["decode", "--file", file.to_str().unwrap(), "--json"]));
        rts.iter().any(|r| {
            r["dns"]["transport"] == "tcp" && !r["dns"]["rcode"].as_str().unwrap_or("").is_empty()
        })
    });
    d.ok(&["stop", &id_s]);
    d.wait_state(id, "PAUSED");
    let status = live.wait(LIMIT);
    assert!(status.success(), "pcap decode --live: {}", live.stderr());

    let through_daemon = roundtrips(&d.ok(&["decode", &id_s, "--json"]));
    check_traffic(&through_daemon);
    let file = dir.join("capture.pcap");
    // In nanoseconds, as pcapd keeps them: decoding through it gives the same times.
    d.ok(&["replay", &id_s, "--nano", "-w", file.to_str().unwrap()]);
    let from_file = roundtrips(&d.ok(&["decode", "--json", "--file", file.to_str().unwrap()]));
    let while_live = roundtrips(&std::fs::read_to_string(&live_out).unwrap());
    let through_daemon = sorted(through_daemon);
    assert_eq!(
        sorted(from_file.clone()),
        through_daemon,
        "decode --file of replay -w"
    );
    assert_eq!(
        sorted(while_live),
        through_daemon,
        "decode --live while the traffic flowed"
    );

    // Wireshark's dissectors find the same requests, codes, names and rcodes.
    let ours = decode_sees(&from_file);
    let theirs = tshark_sees(&file);
    assert_eq!(ours.0, theirs.0, "HTTP requests (method, target)");
    assert_eq!(ours.1, theirs.1, "HTTP final status codes");
    assert_eq!(ours.2, theirs.2, "DNS query names");
    assert_eq!(ours.3, theirs.3, "DNS answers (name, rcode)");

    // The table shows the same roundtrips, a row each.
    let table = d.ok(&["decode", &id_s]);
    assert_eq!(table.lines().count(), through_daemon.len() + 1, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("POST /upload") && l.contains(" 200 ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("missing.dec.test A") && l.contains("NXDOMAIN")),
        "{table}"
    );

    // Bad input through the daemon.
    let err = d.fails(&["decode", "no-such-capture"]);
    assert_unknown_capture(&err, "no-such-capture");
    let out = d.pcap(&["decode", &id_s, "--proto", "ftp"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}

#[test]
fn holes_cut_with_editcap_are_reported_not_papered_over() {
    const PORT: u16 = 24614;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let _server = http1_server(PORT);
    let id = d.init_started(&["lo", &format!("tcp port {PORT}")]);
    let id_s = id.to_string();
    let got = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("http://127.0.0.1:{PORT}/big"),
    ]);
    assert_eq!(got, "200000");
    eventually(LIMIT, "the connection's end to be spooled", || {
        roundtrips(&d.ok(&["decode", &id_s, "--json"]))
            .iter()
            .any(|r| r["http"]["status"] == 200)
    });
    d.ok(&["stop", &id_s]);
    d.wait_state(id, "PAUSED");
    let whole = d.dir().join("whole.pcap");
    d.ok(&["replay", &id_s, "-w", whole.to_str().unwrap()]);
    let all = roundtrips(&d.ok(&["decode", "--json", "--file", whole.to_str().unwrap()]));
    let big = request(&all, "GET", "/big");
    assert_eq!(big["complete"], true, "{big}");
    assert_eq!(big["http"]["response_body_bytes"], 200_000, "{big}");

    // The server's segments carrying data: the first holds the response's head; take out
    // the next one, which holds only body bytes.
    let data_frames: Vec<String> = tshark_file(
        &whole,
        &[
            "-Y",
            &format!("tcp.srcport == {PORT} && tcp.len > 0"),
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert!(
        data_frames.len() >= 2,
        "the response took one segment: {data_frames:?}"
    );
    let holed = d.dir().join("holed.pcap");
    let out = run_bounded(
        Command::new("editcap")
            .arg(&whole)
            .arg(&holed)
            .arg(data_frames[1].trim()),
        "editcap",
        LIMIT,
    );
    assert!(out.status.success(), "editcap: {}", out.stderr);
    let cut = roundtrips(&d.ok(&["decode", "--json", "--file", holed.to_str().unwrap()]));
    let big = request(&cut, "GET", "/big");
    assert_eq!(
        big["complete"], false,
        "a response with a hole is incomplete: {big}"
    );
    assert_eq!(big["http"]["status"], 200, "{big}");
    let notes = big["notes"].as_array().unwrap();
    assert!(!notes.is_empty(), "the hole is told in the notes: {big}");
    let table = d.ok(&["decode", "--file", holed.to_str().unwrap()]);
    let row = table.lines().find(|l| l.contains("GET /big")).unwrap();
    assert!(row.contains("incomplete"), "{table}");
    let mut by_flow: BTreeMap<String, usize> = BTreeMap::new();
    for rt in &cut {
        *by_flow.entry(rt["flow"].to_string()).or_default() += 1;
    }
    assert_eq!(by_flow.len(), 1, "one connection: {cut:#?}");
}
