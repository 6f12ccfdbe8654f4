//! Bad input of every kind gets a clear error on stderr and a non-zero exit status, and
//! never crashes or wedges the daemon: filters, interfaces, aliases, selectors, sizes,
//! durations, times, oversized requests, URLs, certificates, config files, and bytes that
//! are not gRPC at all, written straight to the socket while idle half-open connections
//! are held. The table of inputs and answers it prints is the one in docs/RELIABILITY.md.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

/// The programs a case can run.
const P: &str = "pcap";
const D: &str = "pcapd";

/// A bad input: the program, the exit status it must end with, its arguments (`DIR` is the
/// daemon's temporary directory, `SOCK` its socket), and a piece of what it must say.
type Case = (&'static str, i32, &'static [&'static str], &'static str);

const A65: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HTTPS: &str = "https://127.0.0.1:2020";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Filters (libpcap's own words) and interfaces.
    (P, 1, &["init", "lo", "udp prot 1"], "syntax error"),
    (P, 1, &["init", "lo", "udp port nosuchport"], "unknown port 'nosuchport'"),
    (P, 1, &["init", "lo", "ether host zz"], "unknown ether host 'zz'"),
    (P, 1, &["init", "lo", "udp and ("], "syntax error"),
    (P, 1, &["init", "lo", "tcp[99999999999999] = 1"], "invalid filter"),
    (P, 1, &["init", "nosuch0", "udp"], "unknown interface \"nosuch0\""),
    (P, 2, &["init", "../../etc", "udp"], "interface name \"../../etc\" is not valid"),
    // Aliases.
    (P, 2, &["init", "lo", "udp", "--alias", ""], "invalid alias \"\""),
    (P, 2, &["init", "lo", "udp", "--alias", "123"], "cannot be all digits"),
    (P, 2, &["init", "lo", "udp", "--alias", "has space"], "invalid alias"),
    (P, 2, &["init", "lo", "udp", "--alias", "a/b"], "invalid alias"),
    (P, 2, &["init", "lo", "udp", "--alias", "ünï"], "invalid alias"),
    (P, 2, &["init", "lo", "udp", "--alias", A65], "1 to 64"),
    (P, 1, &["init", "lo", "udp port 23912", "--alias", "taken"], "already used by capture 1"),
    // Selectors.
    (P, 1, &["start", "4242"], "no capture has id 4242"),
    (P, 1, &["stop", "ghost"], "no capture is called \"ghost\""),
    (P, 2, &["delete", "99999999999999999999999"], "out of range"),
    (P, 2, &["delete", "0"], "ids start at 1"),
    (P, 1, &["replay", "ghost"], "no capture is called \"ghost\""),
    (P, 2, &["start", "--all", "taken"], "--all selects every capture"),
    (P, 2, &["stop"], "required arguments were not provided"),
    (P, 1, &["listen", "taken", "--count", "1"], "is PENDING"),
    // Numbers, sizes, durations and times.
    (P, 2, &["init", "lo", "udp", "--snaplen", "1"], "--snaplen 1 is out of range"),
    (P, 2, &["init", "lo", "udp", "--snaplen", "9999999"], "use 16 to 262144"),
    (P, 2, &["init", "lo", "udp", "--snaplen", "abc"], "invalid digit"),
    (P, 2, &["init", "lo", "udp", "--max-size", "0"], "invalid size \"0\""),
    (P, 2, &["init", "lo", "udp", "--max-size=-5"], "invalid size \"-5\""),
    (P, 2, &["init", "lo", "udp", "--max-size", "12X"], "invalid size \"12X\""),
    (P, 2, &["init", "lo", "udp", "--max-size", "1e999"], "invalid size \"1e999\""),
    (P, 2, &["init", "lo", "udp", "--max-age", "0"], "invalid duration \"0\""),
    (P, 2, &["init", "lo", "udp", "--max-age", "abc"], "invalid duration \"abc\""),
    (P, 2, &["init", "lo", "udp", "--duration", "abc"], "invalid duration \"abc\""),
    (P, 2, &["init", "lo", "udp", "--duration", "10ms"], "less than a second"),
    (P, 2, &["init", "lo", "udp", "--count", "0"], "'0' for '--count <N>'"),
    (P, 2, &["listen", "taken", "--count", "0"], "'0' for '--count <N>'"),
    (P, 2, &["replay", "taken", "--since", "garbage"], "invalid time \"garbage\""),
    (P, 2, &["replay", "taken", "--since", "99999999999999999999999"], "out of range"),
    (P, 2, &["replay", "taken", "--since", "2026-11-22T14:05:00Z", "--until", "2026-11-22T14:00:00Z"],
        "--since is later than --until"),
    (P, 1, &["replay", "taken", "--filter", "udp prot 1"], "syntax error"),
    (P, 1, &["replay", "taken", "-w", "DIR/nodir/out.pcap"], "cannot create DIR/nodir/out.pcap"),
    // Daemons, remotes, URLs and certificates on the client side.
    (P, 1, &["--socket", "DIR/absent.sock", "list"], "not running at DIR/absent.sock"),
    (P, 1, &["list", "nosuch:"], "unknown remote \"nosuch\""),
    (P, 1, &["list", "gone:"], "not running at DIR/absent.sock"),
    (P, 1, &["list", "a:b"], "is not a remote"),
    (P, 1, &["remote", "add", "lab", "http://127.0.0.1:2020"], "no plaintext listener"),
    (P, 1, &["remote", "add", "lab", "ftp://127.0.0.1"], "unsupported URL scheme \"ftp\""),
    (P, 1, &["remote", "add", "lab", "unix://relative.sock"], "absolute path"),
    (P, 1, &["remote", "add", "lab", "https://127.0.0.1:99999"], "not a port number"),
    (P, 1, &["remote", "add", "bad name", "unix:///x"], "invalid remote name"),
    (P, 1, &["remote", "add", "lab", HTTPS], "needs --ca FILE"),
    (P, 1, &["remote", "add", "lab", HTTPS, "--ca", "DIR/missing.pem", "--cert", "DIR/missing.pem",
        "--key", "DIR/missing.pem"], "cannot read --ca DIR/missing.pem"),
    (P, 1, &["remote", "add", "lab", HTTPS, "--ca", "DIR/garbage.pem", "--cert", "DIR/garbage.pem",
        "--key", "DIR/garbage.pem"], "cannot read a CA certificate from DIR/garbage.pem"),
    (P, 1, &["remote", "add", "lab", HTTPS, "--ca", "DIR/tls/ca.pem", "--cert", "DIR/tls/server.pem",
        "--key", "DIR/tls/ca-key.pem"], "cannot be used with the key DIR/tls/ca-key.pem"),
    // The daemon's own flags, config file and TLS files.
    (D, 64, &["--config", "DIR/unknown.toml"], "unknown field `sokcet`"),
    (D, 64, &["--config", "DIR/garbage.pem"], "TOML parse error"),
    (D, 64, &["--config", "DIR/absent.toml"], "cannot read config file DIR/absent.toml"),
    (D, 64, &["--config", "DIR/zero.toml"], "max_captures"),
    (D, 64, &["--config", "DIR/floor.toml"], "free_space_floor_percent = 120 is out of range"),
    (D, 64, &["--config", "DIR/memory.toml"], "capture_memory = \"3T\" is out of range: use 0"),
    (D, 64, &["--socket-group", "nosuchgroup"], "group \"nosuchgroup\" does not exist"),
    (D, 64, &["--socket", "SOCK"], "already serving SOCK"),
    (D, 64, &["--data-dir", "DIR/garbage.pem"], "DIR/garbage.pem exists and is not a directory"),
    (D, 64, &["--listen", "127.0.0.1:0"], "needs --tls-cert, --tls-key, --client-ca"),
    (D, 64, &["--listen", "nonsense", "--tls-cert", "DIR/tls/server.pem", "--tls-key",
        "DIR/tls/server-key.pem", "--client-ca", "DIR/tls/ca.pem"], "is not an address"),
    (D, 64, &["--tls-cert", "DIR/tls/server.pem"], "TLS files given without --listen"),
    (D, 64, &["--listen", "127.0.0.1:0", "--tls-cert", "DIR/missing.pem", "--tls-key",
        "DIR/tls/server-key.pem", "--client-ca", "DIR/tls/ca.pem"], "DIR/missing.pem: cannot read it"),
    (D, 64, &["--listen", "127.0.0.1:0", "--tls-cert", "DIR/garbage.pem", "--tls-key",
        "DIR/tls/server-key.pem", "--client-ca", "DIR/tls/ca.pem"], "no PEM certificate"),
    (D, 64, &["--listen", "127.0.0.1:0", "--tls-cert", "DIR/tls/server.pem", "--tls-key",
        "DIR/tls/ca-key.pem", "--client-ca", "DIR/tls/ca.pem"], "do not go together"),
    (D, 64, &["--listen", "127.0.0.1:0", "--tls-cert", "DIR/tls/server.pem", "--tls-key",
        "DIR/tls/server.pem", "--client-ca", "DIR/tls/ca.pem"], "no usable private key"),
    (D, 1, &["tls", "init", "--out", "DIR/tls"], "refusing to overwrite"),
    (D, 1, &["tls", "client", "--out", "DIR/absent", "--name", "bob"], "make the CA first"),
    (D, 1, &["tls", "client", "--out", "DIR/tls", "--name", "../evil"], "is not valid"),
];

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes that are not gRPC, to be written straight to the socket.
#[rustfmt::skip]
fn raw_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("1 KiB of bytes 00..ff", (0..1024).map(|i| i as u8).collect()),
        ("an HTTP/1.1 request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
        ("HTTP/2 preface, a HEADERS frame of garbage HPACK",
            [PREFACE, &frame(1, 0x5, 1, &[0xff; 16])].concat()),
        ("HTTP/2 preface, a frame header claiming 16 MiB",
            [PREFACE, &[0xff, 0xff, 0xff, 1, 4, 0, 0, 0, 1]].concat()),
        ("HTTP/2 preface, DATA on stream 0", [PREFACE, &frame(0, 1, 0, b"abc")].concat()),
    ]
}

/// The table of what was tried and what came back, and what was wrong with the answers.
#[derive(Default)]
struct Report {
    rows: Vec<[String; 3]>,
    problems: Vec<String>,
}

#[test]
fn bad_input_gets_a_clear_error_and_leaves_the_daemon_serving() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    let dir = d.dir().display().to_string();
    let sock = d.socket().display().to_string();
    setup_files(&d);
    d.ok(&[
        "remote",
        "add",
        "gone",
        &format!("unix://{dir}/absent.sock"),
    ]);
    let id = d.init(&["lo", "udp port 23911", "--alias", "taken"]);

    // Clients that open a connection and stop half-way must not hold the others up.
    let idle: Vec<UnixStream> = (0..64)
        .map(|i| {
            let mut s = UnixStream::connect(d.socket()).expect("connect to pcapd");
            s.write_all(&PREFACE[..i % PREFACE.len()]).expect("write");
            s
        })
        .collect();

    let mut r = Report::default();
    let sub = |s: &str| s.replace("SOCK", &sock).replace("DIR", &dir);
    for &(prog, exit, args, expect) in CASES {
        let argv: Vec<String> = args.iter().map(|a| sub(a)).collect();
        let out = match prog {
            P => d.pcap(&argv),
            _ => run_pcapd(&dir, &argv),
        };
        let shown = format!("{prog} {}", shell_words(args));
        r.judge(&shown, &out, exit, &sub(expect));
        if Path::new(&dir).join("bad.sock").exists() {
            r.problems
                .push(format!("{shown}: pcapd left a socket behind"));
        }
    }

    // A filter longer than the daemon takes, made with the real client (a request larger
    // than max_request_bytes, which pcap no longer makes, is sent by tests/bounds.rs).
    let long = "x".repeat(9_000);
    let what = "pcap init lo xxx…(a 9000-byte filter)";
    r.judge(what, &d.pcap(&["init", "lo", &long]), 1, "max_filter_len");

    for (what, bytes) in raw_inputs() {
        let message = send_raw(&d, &bytes);
        if !message.starts_with("pcapd closed") {
            r.problems.push(format!("raw bytes ({what}): {message}"));
        }
        r.rows.push([
            format!("raw bytes on the socket: {what}"),
            "–".into(),
            message,
        ]);
    }
    r.rows.push([
        "64 connections stopped inside the HTTP/2 preface, held open all along".into(),
        "–".into(),
        "every other call above was answered meanwhile".into(),
    ]);

    eprintln!("\n| input | exit | message |\n| --- | --- | --- |");
    for [input, exit, message] in &r.rows {
        let message = message.replace(&sock, "SOCK").replace(&dir, "DIR");
        eprintln!("| `{input}` | {exit} | {} |", message.replace('|', "\\|"));
    }
    assert!(r.rows.len() >= 35, "only {} bad inputs tried", r.rows.len());
    assert!(
        r.problems.is_empty(),
        "mishandled:\n{}",
        r.problems.join("\n")
    );

    assert!(d.is_running(), "pcapd died; log:\n{}", d.log());
    let listed = d.list();
    let ids: Vec<u64> = listed.iter().filter_map(|c| c["id"].as_u64()).collect();
    assert_eq!(ids, vec![id], "a failed call created a capture: {listed:?}");
    drop(idle);
    d.ok(&["version"]);
    assert!(
        d.is_running(),
        "pcapd died as idle clients left; log:\n{}",
        d.log()
    );
    let log = d.log();
    assert!(!log.contains("panicked"), "pcapd panicked:\n{log}");
}

impl Report {
    /// Checks one answer: the exit status, no panic, and `expect` on stderr; adds its row.
    fn judge(&mut self, input: &str, out: &Output, exit: i32, expect: &str) {
        let code = out.status.code();
        let err = &out.stderr;
        // The first line that is not one of pcapd's log lines, and the one that says
        // `expect` if that is another.
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty() && !l.contains(" INFO "));
        let first = first.unwrap_or("").trim();
        let mut message = first.to_owned();
        if let Some(line) = err
            .lines()
            .find(|l| l.contains(expect) && !first.contains(expect))
        {
            message = format!("{first} … {}", line.trim());
        }
        if code != Some(exit) {
            let status = out.status;
            self.problems
                .push(format!("{input}: {status}, expected {exit}; stderr: {err}"));
        }
        if code == Some(101) || err.contains("panicked") {
            self.problems.push(format!("{input}: panicked: {err}"));
        }
        if !err.contains(expect) {
            self.problems
                .push(format!("{input}: stderr lacks {expect:?}: {err}"));
        }
        let exit = code.map_or_else(|| out.status.to_string(), |c| c.to_string());
        self.rows.push([input.to_owned(), exit, message]);
    }
}

/// Runs `pcapd ARGS`; flags get a socket and data directory of their own under `dir`.
fn run_pcapd(dir: &str, args: &[String]) -> Output {
    let mut cmd = Command::new(pcapd_bin());
    if args[0].starts_with("--") {
        if !args.iter().any(|a| a == "--socket") {
            cmd.args(["--socket", &format!("{dir}/bad.sock")]);
        }
        if !args.iter().any(|a| a == "--data-dir") {
            cmd.args(["--data-dir", &format!("{dir}/bad-data")]);
        }
    }
    cmd.args(args).env_remove("RUST_LOG").env("NO_COLOR", "1");
    let what = format!("pcapd {}", args.join(" "));
    run_bounded(&mut cmd, &what, Duration::from_secs(20))
}

/// Writes `bytes` to the socket and says what pcapd did: closed the connection (after a
/// GOAWAY or not), or kept it open for 5 s.
fn send_raw(d: &Daemon, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(d.socket()).expect("connect to pcapd");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break "pcapd closed the connection",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "pcapd closed (reset) it",
            Err(_) => return "the connection was still open after 5 s".into(),
        }
    };
    // pcapd answers in HTTP/2 frames: its SETTINGS, and a GOAWAY when it says why.
    let mut frames = &got[..];
    while frames.len() >= 17 {
        if frames[3] == 7 {
            let code = u32::from_be_bytes(frames[13..17].try_into().expect("4 bytes"));
            return format!("{end} after a GOAWAY (error code {code:#x})");
        }
        let len = u32::from_be_bytes([0, frames[0], frames[1], frames[2]]) as usize;
        frames = &frames[(9 + len).min(frames.len())..];
    }
    end.to_owned()
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    b.extend([kind, flags]);
    b.extend(stream.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The files the cases name: configs, a file that is not PEM, and real TLS material.
fn setup_files(d: &Daemon) {
    for (name, text) in [
        ("unknown.toml", "sokcet = \"/run/pcapd/pcapd.sock\"\n"),
        ("zero.toml", "max_captures = 0\n"),
        ("floor.toml", "free_space_floor_percent = 120.0\n"),
        ("memory.toml", "capture_memory = \"3T\"\n"),
        ("garbage.pem", "this is not a certificate [\n"),
    ] {
        std::fs::write(d.dir().join(name), text).expect("write a test file");
    }
    let mut tls = Command::new(pcapd_bin());
    tls.args(["tls", "init", "--host", "127.0.0.1", "--out"])
        .arg(d.dir().join("tls"));
    let out = run_bounded(&mut tls, "pcapd tls init", Duration::from_secs(30));
    assert!(out.status.success(), "pcapd tls init: {}", out.stderr);
}

/// Arguments as a shell would need them written.
fn shell_words(args: &[&str]) -> String {
    let plain = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_alphanumeric() || "-_./:=,@".contains(c))
    };
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if plain(a) {
                a.to_string()
            } else {
                format!("'{a}'")
            }
        })
        .collect();
    quoted.join(" ")
}
