//! Scrapes of pcapd's `/metrics`, read as Prometheus reads them and parsed by the reference
//! parsers of the Python prometheus-client package (`tests/python/metrics_check.py`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::cli::run_bounded;

/// What Prometheus sends to ask for OpenMetrics.
pub const OPENMETRICS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A counter's value from the `/metrics` of 127.0.0.1:`port`, as `NAME_total` in the text
/// format (0 when absent).
pub fn counter_total(port: u16, name: &str) -> u64 {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("ask for /metrics");
    let mut text = String::new();
    tcp.read_to_string(&mut text).expect("read /metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}_total ")))
        .map(|v| v.trim().parse::<f64>().expect("a number") as u64)
        .unwrap_or(0)
}

/// One HTTP/1.1 request over plain TCP to 127.0.0.1:`port`, with an Accept header when
/// given; returns the status line and headers, and the body.
pub fn http_accepting(
    port: u16,
    method: &str,
    path: &str,
    accept: Option<&str>,
) -> (String, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (head.to_owned(), body.to_owned())
}

/// A scrape, parsed by both reference parsers.
pub struct Scrape {
    /// Family name -> type, from the OpenMetrics parser.
    pub families: Value,
    /// `[name, labels, value]` of every sample.
    pub samples: Vec<Value>,
}

impl Scrape {
    /// Scrapes twice: as Prometheus does (OpenMetrics, parsed strictly) and as curl does
    /// (no Accept header: the classic text format, parsed by the classic parser); `python`
    /// is the test virtualenv's, `dir` a directory for the scraped files.
    pub fn take(python: &Path, dir: &Path, port: u16) -> Scrape {
        let (head, body) = http_accepting(port, "GET", "/metrics", Some(OPENMETRICS_ACCEPT));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{head}"
        );
        let file = dir.join("scrape.txt");
        std::fs::write(&file, &body).unwrap();
        let (head, classic) = http_accepting(port, "GET", "/metrics", None);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
        let classic_file = dir.join("scrape-classic.txt");
        std::fs::write(&classic_file, &classic).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/metrics_check.py");
        let out = run_bounded(
            Command::new(python)
                .arg(script)
                .arg(&file)
                .arg(&classic_file),
            "the Prometheus parsers",
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "the reference parser refused the scrape: {}\n{body}",
            out.stderr
        );
        let parsed: Value = serde_json::from_slice(&out.stdout).expect("JSON from the parser");
        // The classic text-format parser reads the classic scrape's samples (counters may
        // have moved between the two scrapes, and series been added, never removed: every
        // series of the first is in the second).
        let text_samples = parsed["text_samples"].as_array().unwrap();
        let samples = parsed["samples"].as_array().unwrap().clone();
        for s in &samples {
            assert!(
                text_samples.iter().any(|t| t[0] == s[0] && t[1] == s[1]),
                "the classic scrape has no {s}"
            );
        }
        assert!(text_samples.len() >= samples.len(), "{text_samples:?}");
        Scrape {
            families: parsed["families"].clone(),
            samples,
        }
    }

    /// The samples called `name` whose labels include `labels`, as (labels, value).
    pub fn all(&self, name: &str, labels: &Value) -> Vec<(Value, f64)> {
        let want = labels.as_object().unwrap();
        self.samples
            .iter()
            .filter(|s| {
                s[0] == name
                    && want
                        .iter()
                        .all(|(k, v)| s[1].get(k).is_some_and(|got| got == v))
            })
            .map(|s| (s[1].clone(), s[2].as_f64().unwrap()))
            .collect()
    }

    /// The value of the one sample `name` whose labels include `labels`, if there is one;
    /// panics when several match.
    pub fn value(&self, name: &str, labels: Value) -> Option<f64> {
        match self.all(name, &labels).as_slice() {
            [(_, v)] => Some(*v),
            [] => None,
            many => panic!("several samples {name} {labels}: {many:?}"),
        }
    }

    /// As [`Scrape::value`], 0 when no sample matches (a counter not yet counted).
    pub fn count(&self, name: &str, labels: Value) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// As [`Scrape::value`], panicking when no sample matches.
    pub fn get(&self, name: &str, labels: Value) -> f64 {
        self.value(name, labels.clone())
            .unwrap_or_else(|| panic!("no sample {name} {labels} in {:?}", self.samples))
    }
}
