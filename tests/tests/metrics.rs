//! Prometheus metrics: `pcapd --metrics ADDR:PORT` serves GET /metrics over plain HTTP,
//! read here as Prometheus would and parsed with the reference parsers (Python
//! prometheus-client), against what `pcap --json list` says about real loopback traffic.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::time::Duration;

use pcapd_e2e::*;
use serde_json::json;

/// One HTTP/1.1 request over plain TCP; returns the status line, headers and body.
fn http(port: u16, method: &str, path: &str) -> (String, String) {
    http_accepting(port, method, path, None)
}

#[test]
fn metrics_show_the_captures_their_readers_and_the_daemon() {
    const PORT: u16 = 23961;
    if !require_root() {
        return;
    }
    let python = python_venv();
    let metrics = free_port();
    let d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}"), "--alias", "metered"]);
    let idle = d.init(&["lo", "udp port 23962"]);
    let this = json!({"id": id.to_string(), "alias": "metered"});
    let listen = json!({"id": id.to_string(), "alias": "metered", "kind": "listen"});
    send_udp_seq(PORT, 0..200, 64);
    d.wait_spooled(id, 200);

    // A listener: counted as a reader while it runs.
    let out = d.dir().join("listen.pcap");
    let listener = d.spawn_to_file(&["listen", "metered"], &out);
    eventually_ok(DEFAULT_WAIT, "the listener counted as a reader", || {
        let s = Scrape::take(&python, d.dir(), metrics);
        match s.get("pcapd_capture_readers", listen.clone()) {
            1.0 => Ok(()),
            n => Err(format!("{n} listen readers")),
        }
    });
    send_udp_seq(PORT, 200..300, 64);
    d.wait_spooled(id, 300);
    eventually(DEFAULT_WAIT, "the listener to get the new packets", || {
        PcapFile::count_in(&out) >= 100
    });

    // The counters are the registry's: the same as `pcap --json list` (compared until
    // both are read between two packets, should anything else reach the port).
    eventually_ok(DEFAULT_WAIT, "metrics to agree with pcap list", || {
        let s = Scrape::take(&python, d.dir(), metrics);
        let c = d.capture(id)["counters"].clone();
        let pairs = [
            ("pcapd_capture_received_packets_total", "received"),
            ("pcapd_capture_spooled_packets_total", "spooled_packets"),
            ("pcapd_capture_spooled_bytes_total", "spooled_bytes"),
            ("pcapd_capture_spool_bytes", "spool_bytes"),
            ("pcapd_capture_spool_segments", "spool_segments"),
        ];
        for (metric, counter) in pairs {
            let (got, want) = (s.get(metric, this.clone()), c[counter].as_f64().unwrap());
            if got != want {
                return Err(format!("{metric} = {got}, list says {counter} = {want}"));
            }
        }
        Ok(())
    });
    let s = Scrape::take(&python, d.dir(), metrics);
    assert!(s.get("pcapd_capture_received_packets_total", this.clone()) >= 300.0);
    assert_eq!(s.families["pcapd_capture_received_packets"], "counter");
    assert_eq!(s.families["pcapd_capture_spool_bytes"], "gauge");
    for (state, want) in [("ACTIVE", 1.0), ("PAUSED", 0.0), ("PENDING", 0.0)] {
        let labels = json!({"id": id.to_string(), "alias": "metered", "state": state});
        assert_eq!(s.get("pcapd_capture_state", labels), want, "{state}");
    }
    let pending = json!({"id": idle.to_string(), "alias": "", "state": "PENDING"});
    assert_eq!(s.get("pcapd_capture_state", pending), 1.0);
    for name in [
        "pcapd_capture_kernel_dropped_packets_total",
        "pcapd_capture_interface_dropped_packets_total",
        "pcapd_capture_expired_packets_total",
    ] {
        assert!(s.value(name, this.clone()).is_some(), "{name} is exposed");
    }
    let replay = json!({"id": id.to_string(), "kind": "replay"});
    assert_eq!(s.get("pcapd_capture_readers", replay), 0.0);
    assert!(s.get("pcapd_uptime_seconds", json!({})) > 0.0);
    // A quiet disk: no capture thread waited for its spool's writes.
    assert_eq!(s.get("pcapd_spool_write_waits_total", json!({})), 0.0);
    let version = json!({"version": env!("CARGO_PKG_VERSION")});
    assert_eq!(s.get("pcapd_build_info", version), 1.0);
    assert_eq!(s.families["pcapd_build"], "info");

    drop(listener); // kills it
    eventually_ok(DEFAULT_WAIT, "the listener to leave", || {
        let s = Scrape::take(&python, d.dir(), metrics);
        match s.get("pcapd_capture_readers", listen.clone()) {
            0.0 => Ok(()),
            n => Err(format!("{n} listen readers")),
        }
    });

    // A reader that never reads: packets are skipped for it, and counted.
    let mut stalled = d.spawn_piped(&["listen", "metered"]);
    let _pipe = stalled.stdout();
    let mut next = 1000;
    eventually_ok(
        Duration::from_secs(60),
        "packets skipped for a stalled reader",
        || {
            send_udp_seq(PORT, next..next + 2000, 1200);
            next += 2000;
            let s = Scrape::take(&python, d.dir(), metrics);
            let readers = s.get("pcapd_capture_readers", listen.clone());
            let skipped = s.get("pcapd_capture_reader_skipped_packets_total", listen.clone());
            if readers == 1.0 && skipped > 0.0 {
                Ok(())
            } else {
                Err(format!("{readers} readers, {skipped} skipped"))
            }
        },
    );
    assert!(stalled.try_status().is_none(), "the stalled reader runs on");
}

#[test]
fn paths_and_methods_other_than_get_metrics_are_refused() {
    if !require_root() {
        return;
    }
    let metrics = free_port();
    let _d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    let (head, body) = http_accepting(metrics, "GET", "/metrics", Some(OPENMETRICS_ACCEPT));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let (head, body) = http(metrics, "GET", "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("# TYPE pcapd_build_info gauge\n"), "{body}");
    let (head, _) = http(metrics, "GET", "/");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = http(metrics, "GET", "/metrics/x");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = http(metrics, "POST", "/metrics");
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(head.to_lowercase().contains("allow: get, head"), "{head}");
}

#[test]
fn a_bad_metrics_address_or_a_port_in_use_is_refused_with_status_64() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let cases = [
        ("9100".to_owned(), "ADDR:PORT"),
        ("localhost:9100".to_owned(), "ADDR:PORT"),
        (taken_addr.clone(), "cannot serve metrics on"),
    ];
    for (value, expected) in &cases {
        let socket = dir.path().join("s.sock");
        let out = pcapd_once(dir.path(), &["--metrics", value.as_str()]);
        assert_eq!(out.status.code(), Some(64), "{value}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected) && out.stderr.contains(value.as_str()),
            "{value} should be named with {expected:?}: {}",
            out.stderr
        );
        assert!(!socket.exists(), "no socket is left behind for {value}");
    }
    // The config file's key is checked the same way.
    let config = dir.path().join("pcapd.toml");
    std::fs::write(&config, "metrics = \"not an address\"\n").unwrap();
    let out = pcapd_once(dir.path(), &[OsStr::new("--config"), config.as_os_str()]);
    assert_eq!(out.status.code(), Some(64), "{}", out.stderr);
    assert!(out.stderr.contains("not an address"), "{}", out.stderr);
    drop(taken);
}
