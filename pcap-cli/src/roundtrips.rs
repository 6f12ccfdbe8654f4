//! How `pcap decode` shows roundtrips: one JSON object per line for scripts
//! ([`pcap_decode::Roundtrip::to_json`]), or an aligned table for people, written as the
//! roundtrips come. The table's columns have minimum widths and widen when a longer cell
//! comes (they never narrow), so a live stream is never held back to measure it.

use std::io::{self, BufWriter, Write};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use pcap_decode::Roundtrip;

use crate::output::Flow;

/// The table's columns and their minimum widths; NOTES is last and never padded.
const COLUMNS: [(&str, usize); 8] = [
    ("TIME", 24),
    ("CLIENT", 21),
    ("SERVER", 21),
    ("PROTO", 5),
    ("REQUEST", 32),
    ("STATUS", 8),
    ("DURATION", 8),
    ("NOTES", 0),
];

/// Columns aligned to the right (numbers).
const RIGHT: [bool; 8] = [false, false, false, false, false, false, true, false];

/// A REQUEST cell longer than this is cut, with "…", so that one long URL does not widen
/// the table for good.
const MAX_REQUEST: usize = 60;

/// Writes roundtrips to standard output as they come.
pub struct RoundtripWriter {
    out: BufWriter<io::Stdout>,
    json: bool,
    widths: [usize; 8],
    header_done: bool,
}

impl RoundtripWriter {
    /// A writer of JSON lines (`json`) or of the table.
    pub fn stdout(json: bool) -> Self {
        RoundtripWriter {
            out: BufWriter::with_capacity(1 << 16, io::stdout()),
            json,
            widths: COLUMNS.map(|(_, w)| w),
            header_done: false,
        }
    }

    /// Writes the table's header now (a live stream shows it before the first row).
    pub fn start(&mut self) -> Result<Flow> {
        if !self.json && !self.header_done {
            self.header_done = true;
            let cells = COLUMNS.map(|(title, _)| title.to_owned());
            let line = self.line(&cells);
            let written = self.out.write_all(line.as_bytes());
            return self.check(written);
        }
        Ok(Flow::Continue)
    }

    /// Writes roundtrips (not flushed: see [`RoundtripWriter::flush`]).
    pub fn write(&mut self, roundtrips: &[Roundtrip]) -> Result<Flow> {
        if self.start()? == Flow::ReaderGone {
            return Ok(Flow::ReaderGone);
        }
        for rt in roundtrips {
            let text = if self.json {
                let mut line = rt.to_json();
                line.push('\n');
                line
            } else {
                let cells = row(rt);
                self.line(&cells)
            };
            let written = self.out.write_all(text.as_bytes());
            if self.check(written)? == Flow::ReaderGone {
                return Ok(Flow::ReaderGone);
            }
        }
        Ok(Flow::Continue)
    }

    /// Hands what was written to the reader.
    pub fn flush(&mut self) -> Result<Flow> {
        let flushed = self.out.flush();
        self.check(flushed)
    }

    /// One table line, widening the columns a cell does not fit in.
    fn line(&mut self, cells: &[String; 8]) -> String {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let len = cell.chars().count();
            let last = i == cells.len() - 1;
            if i > 0 {
                line.push_str("  ");
            }
            if last {
                line.push_str(cell);
                break;
            }
            self.widths[i] = self.widths[i].max(len);
            let pad = " ".repeat(self.widths[i] - len);
            if RIGHT[i] {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        let mut line = line.trim_end().to_owned();
        line.push('\n');
        line
    }

    fn check(&self, r: io::Result<()>) -> Result<Flow> {
        match r {
            Ok(()) => Ok(Flow::Continue),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::ReaderGone),
            Err(e) => Err(e).context("cannot write to standard output"),
        }
    }
}

/// The cells of one roundtrip.
fn row(rt: &Roundtrip) -> [String; 8] {
    let (request, status) = request_and_status(rt);
    [
        time(rt.ts_ns),
        rt.client.to_string(),
        rt.server.to_string(),
        rt.proto.to_string(),
        cut(&request, MAX_REQUEST),
        status,
        duration(rt.duration_ns),
        notes(rt),
    ]
}

/// REQUEST and STATUS: method and target with the status code, query name and type with
/// the rcode, gRPC service/method with grpc-status; "-" for what was not seen.
fn request_and_status(rt: &Roundtrip) -> (String, String) {
    let dash = || "-".to_owned();
    if let Some(g) = &rt.grpc {
        let status = g.grpc_status.map_or_else(dash, |s| s.to_string());
        return (format!("{}/{}", g.service, g.method), status);
    }
    if let Some(h) = &rt.http {
        let status = h.status.map_or_else(dash, |s| s.to_string());
        return (format!("{} {}", h.method, h.target), status);
    }
    if let Some(d) = &rt.dns {
        let status = if d.rcode.is_empty() {
            dash()
        } else {
            d.rcode.clone()
        };
        return (format!("{} {}", d.name, d.qtype), status);
    }
    if let Some(h) = &rt.http2 {
        let status = h.status.map_or_else(dash, |s| s.to_string());
        return (format!("{} {}", h.method, h.path), status);
    }
    (dash(), dash())
}

/// What a reader should know, with "incomplete" first when a part was never seen.
fn notes(rt: &Roundtrip) -> String {
    let joined = rt.notes.join("; ");
    match (rt.complete, joined.is_empty()) {
        (true, _) => joined,
        (false, true) => "incomplete".to_owned(),
        (false, false) => format!("incomplete: {joined}"),
    }
}

/// RFC 3339 in UTC with milliseconds, as `ts` in JSON but shorter.
fn time(ts_ns: i64) -> String {
    let ns = u64::try_from(ts_ns).unwrap_or(0);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// A duration as people read it: 850ns, 12.5µs, 1.2ms, 3.04s, 2m05s.
pub fn duration(ns: u64) -> String {
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    let f = ns as f64;
    match ns {
        n if n < US => format!("{n}ns"),
        n if n < MS => format!("{:.1}µs", f / US as f64),
        n if n < S => format!("{:.1}ms", f / MS as f64),
        n if n < 60 * S => format!("{:.2}s", f / S as f64),
        n => format!("{}m{:02}s", n / (60 * S), (n / S) % 60),
    }
}

/// `text` cut at `max` characters, the cut marked with "…".
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_decode::{DnsExchange, HttpExchange, Proto};

    fn http(status: Option<u16>, complete: bool, notes: &[&str]) -> Roundtrip {
        Roundtrip {
            ts_ns: 1_795_356_300_250_000_000,
            duration_ns: 1_234_567,
            proto: Proto::Http,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            flow: 1,
            packets: [4, 9],
            complete,
            notes: notes.iter().map(|s| s.to_string()).collect(),
            http: Some(HttpExchange {
                method: "GET".into(),
                target: "/index.html".into(),
                status,
                ..Default::default()
            }),
            dns: None,
            http2: None,
            grpc: None,
        }
    }

    fn dns(rcode: &str) -> Roundtrip {
        Roundtrip {
            proto: Proto::Dns,
            server: "[::1]:53".parse().unwrap(),
            http: None,
            dns: Some(DnsExchange {
                name: "www.example.test".into(),
                qtype: "AAAA".into(),
                rcode: rcode.into(),
                ..Default::default()
            }),
            duration_ns: 850,
            ..http(None, true, &[])
        }
    }

    #[test]
    fn rows_say_request_status_duration_and_notes() {
        let cells = row(&http(Some(200), true, &[]));
        assert_eq!(cells[0], "2026-11-22T14:05:00.250Z");
        assert_eq!(cells[4], "GET /index.html");
        assert_eq!((cells[5].as_str(), cells[6].as_str()), ("200", "1.2ms"));
        assert_eq!(cells[7], "");
        let cells = row(&http(None, false, &["no response: cut off"]));
        assert_eq!(cells[5], "-");
        assert_eq!(cells[7], "incomplete: no response: cut off");
        let cells = row(&dns("NXDOMAIN"));
        assert_eq!(cells[4], "www.example.test AAAA");
        assert_eq!(
            (cells[5].as_str(), cells[6].as_str()),
            ("NXDOMAIN", "850ns")
        );
        assert_eq!(row(&dns(""))[5], "-");
    }

    #[test]
    fn columns_line_up_and_widen_without_narrowing() {
        let mut w = RoundtripWriter::stdout(false);
        let head = w.line(&COLUMNS.map(|(t, _)| t.to_owned()));
        let first = w.line(&row(&http(Some(200), true, &[])));
        assert_eq!(head.find("CLIENT"), first.find("127.0.0.1:40000"));
        assert_eq!(head.find("SERVER"), first.find("127.0.0.1:8080"));
        assert_eq!(head.find("STATUS"), first.find("200"));
        assert!(first.ends_with("1.2ms\n"), "{first:?}");
        let mut long = http(Some(404), true, &[]);
        long.client = "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535"
            .parse()
            .unwrap();
        let wide = w.line(&row(&long));
        let after = w.line(&row(&http(Some(200), true, &[])));
        assert_eq!(wide.find("127.0.0.1:8080"), after.find("127.0.0.1:8080"));
        assert!(after.find("127.0.0.1:8080") > first.find("127.0.0.1:8080"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(0), "0ns");
        assert_eq!(duration(12_500), "12.5µs");
        assert_eq!(duration(1_200_000), "1.2ms");
        assert_eq!(duration(3_040_000_000), "3.04s");
        assert_eq!(duration(125_000_000_000), "2m05s");
    }

    #[test]
    fn long_requests_are_cut() {
        let text = "x".repeat(100);
        let c = cut(&text, MAX_REQUEST);
        assert_eq!(c.chars().count(), MAX_REQUEST);
        assert!(c.ends_with('…'));
    }
}
