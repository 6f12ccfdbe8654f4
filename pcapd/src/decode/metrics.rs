//! RED metrics of the captures decoded while capturing (`init --decode`): requests, their
//! outcome and their duration per protocol, and the decoder's own counters, shown on
//! `/metrics` at scrape time. Every label is bounded: methods, DNS types and rcodes from
//! fixed lists (else "OTHER"), status codes as numbers, gRPC service/method pairs capped per
//! capture; no path, host or address is ever a label. A deleted capture's series go with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use pcap_core::domain::{CaptureId, CaptureInfo};
use pcap_decode::{DecodeStats, Proto, Roundtrip};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::Unit;

/// Distinct gRPC (service, method) pairs labelled per capture; later ones count as "OTHER".
pub const MAX_GRPC_METHODS: usize = 100;

/// Label of everything outside a fixed list.
const OTHER: &str = "OTHER";
/// Label of a request that got no response (status code, rcode, grpc status).
const NONE: &str = "none";

/// HTTP methods labelled by name (RFC 9110 and PATCH).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// DNS question types labelled by name.
const QTYPES: [&str; 18] = [
    "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "HTTPS", "SVCB", "CAA", "DS",
    "DNSKEY", "NAPTR", "ANY", "AXFR", "IXFR",
];

/// DNS response codes labelled by name (RFC 1035, 2136, 6891).
const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// Request durations, in seconds: 250 µs to 60 s.
const DURATION_BUCKETS: [f64; 15] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Body sizes: 64 bytes to 16 MiB, by powers of 4.
fn body_histogram() -> Histogram {
    Histogram::new(exponential_buckets(64.0, 4.0, 10))
}

/// The `capture` label: the capture's first alias, or its id when it has none.
pub fn capture_label(info: &CaptureInfo) -> String {
    match info.aliases.first() {
        Some(a) => a.to_string(),
        None => info.id.to_string(),
    }
}

/// The method as labelled: a standard method, or "OTHER".
pub fn method_label(method: &str) -> &'static str {
    METHODS.into_iter().find(|m| *m == method).unwrap_or(OTHER)
}

/// The status code as labelled: the number (100-599), "none" without a response, else
/// "OTHER".
pub fn status_label(status: Option<u16>) -> String {
    match status {
        None => NONE.to_owned(),
        Some(s @ 100..=599) => s.to_string(),
        Some(_) => OTHER.to_owned(),
    }
}

/// The DNS question type as labelled: a name from a fixed list, or "OTHER".
pub fn qtype_label(qtype: &str) -> &'static str {
    QTYPES.into_iter().find(|t| *t == qtype).unwrap_or(OTHER)
}

/// The DNS rcode as labelled: a name from a fixed list, "none" when unanswered, or "OTHER".
pub fn rcode_label(rcode: &str) -> &'static str {
    if rcode.is_empty() {
        return NONE;
    }
    RCODES.into_iter().find(|r| *r == rcode).unwrap_or(OTHER)
}

/// The grpc-status as labelled: 0-16 by number, "none" when not seen, else "OTHER".
pub fn grpc_status_label(status: Option<u32>) -> String {
    match status {
        None => NONE.to_owned(),
        Some(s @ 0..=16) => s.to_string(),
        Some(_) => OTHER.to_owned(),
    }
}

// === impl DecodeMetrics ===

/// The series of every capture decoded while capturing, shared by their decoders (which
/// record) and the metrics endpoint (which encodes).
#[derive(Debug, Default)]
pub struct DecodeMetrics {
    captures: Mutex<BTreeMap<CaptureId, Arc<CaptureSeries>>>,
}

impl DecodeMetrics {
    /// The series of capture `id`, made with the label `capture` the first time.
    pub fn series(&self, id: CaptureId, capture: String) -> Arc<CaptureSeries> {
        self.lock()
            .entry(id)
            .or_insert_with(|| {
                Arc::new(CaptureSeries {
                    capture,
                    inner: Mutex::default(),
                })
            })
            .clone()
    }

    /// Forgets a deleted capture's series.
    pub fn remove(&self, id: CaptureId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<CaptureId, Arc<CaptureSeries>>> {
        self.captures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One capture's decoding counters and histograms.
#[derive(Debug)]
pub struct CaptureSeries {
    capture: String,
    inner: Mutex<Series>,
}

#[derive(Debug, Default)]
struct Series {
    http_requests: BTreeMap<(&'static str, String), Counter>,
    http_duration: BTreeMap<&'static str, Histogram>,
    http_request_body: Option<Histogram>,
    http_response_body: Option<Histogram>,
    dns_requests: BTreeMap<(&'static str, &'static str), Counter>,
    dns_duration: Option<Histogram>,
    grpc_requests: BTreeMap<(String, String, String), Counter>,
    grpc_duration: BTreeMap<(String, String), Histogram>,
    /// The (service, method) pairs labelled so far, at most [`MAX_GRPC_METHODS`].
    grpc_methods: BTreeSet<(String, String)>,
    roundtrips: BTreeMap<Proto, u64>,
    packets: u64,
    gap_packets: u64,
    flows_evicted: u64,
}

impl CaptureSeries {
    /// Counts decoded roundtrips.
    pub fn record(&self, roundtrips: &[Roundtrip]) {
        let mut s = self.lock();
        for rt in roundtrips {
            s.record(rt);
        }
    }

    /// Counts packets the decoder never saw because it fell behind the capture.
    pub fn gap(&self, dropped: u64) {
        self.lock().gap_packets += dropped;
    }

    /// Adds what a decoder did between two of its `stats()`.
    pub fn decoder_progress(&self, before: &DecodeStats, now: &DecodeStats) {
        let mut s = self.lock();
        s.packets += now.packets.saturating_sub(before.packets);
        s.flows_evicted += now.flows_evicted.saturating_sub(before.flows_evicted);
    }

    fn lock(&self) -> MutexGuard<'_, Series> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Series {
    fn record(&mut self, rt: &Roundtrip) {
        *self.roundtrips.entry(rt.proto).or_default() += 1;
        let seconds = rt.duration_ns as f64 / 1e9;
        if let Some(h) = &rt.http {
            let method = method_label(&h.method);
            self.http_requests
                .entry((method, status_label(h.status)))
                .or_default()
                .inc();
            self.http_duration
                .entry(method)
                .or_insert_with(duration_histogram)
                .observe(seconds);
            self.http_request_body
                .get_or_insert_with(body_histogram)
                .observe(h.request_body_bytes as f64);
            if h.status.is_some() {
                self.http_response_body
                    .get_or_insert_with(body_histogram)
                    .observe(h.response_body_bytes as f64);
            }
        }
        if let Some(d) = &rt.dns {
            self.dns_requests
                .entry((qtype_label(&d.qtype), rcode_label(&d.rcode)))
                .or_default()
                .inc();
            self.dns_duration
                .get_or_insert_with(duration_histogram)
                .observe(seconds);
        }
        if let Some(g) = &rt.grpc {
            let pair = self.grpc_pair(&g.service, &g.method);
            self.grpc_requests
                .entry((
                    pair.0.clone(),
                    pair.1.clone(),
                    grpc_status_label(g.grpc_status),
                ))
                .or_default()
                .inc();
            self.grpc_duration
                .entry(pair)
                .or_insert_with(duration_histogram)
                .observe(seconds);
        }
    }

    /// The labels of a gRPC method: itself while fewer than [`MAX_GRPC_METHODS`] are known.
    fn grpc_pair(&mut self, service: &str, method: &str) -> (String, String) {
        let pair = (service.to_owned(), method.to_owned());
        if self.grpc_methods.contains(&pair) {
            return pair;
        }
        if self.grpc_methods.len() < MAX_GRPC_METHODS {
            self.grpc_methods.insert(pair.clone());
            return pair;
        }
        (OTHER.to_owned(), OTHER.to_owned())
    }
}

// === Encoding ===

/// A counter family with only the `capture` label: name, help, value.
type Total = (&'static str, &'static str, fn(&Series) -> u64);

/// Encodes the decode metrics on each scrape.
#[derive(Debug)]
pub struct DecodeCollector(pub Arc<DecodeMetrics>);

/// One family: its descriptor, then the samples `each` encodes for every capture.
fn family<M: TypedMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    captures: &[(String, MutexGuard<'_, Series>)],
    each: impl Fn(&str, &Series, &mut prometheus_client::encoding::MetricEncoder) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, M::TYPE)?;
    for (capture, series) in captures {
        each(capture, series, &mut family)?;
    }
    Ok(())
}

impl Collector for DecodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let all: Vec<Arc<CaptureSeries>> = self.0.lock().values().cloned().collect();
        let captures: Vec<(String, MutexGuard<'_, Series>)> =
            all.iter().map(|c| (c.capture.clone(), c.lock())).collect();
        let e = &mut encoder;
        let seconds = Some(&Unit::Seconds);
        let bytes = Some(&Unit::Bytes);

        family::<Counter>(
            e,
            (
                "pcapd_http_requests",
                "HTTP requests decoded, by method and status code (\"none\": no response).",
                None,
            ),
            &captures,
            |c, s, f| {
                for ((method, status), n) in &s.http_requests {
                    let labels = [("capture", c), ("method", method), ("status_code", status)];
                    n.encode(f.encode_family(&labels)?)?;
                }
                Ok(())
            },
        )?;
        family::<Histogram>(
            e,
            (
                "pcapd_http_request_duration",
                "From the first packet of an HTTP request to the last of its response.",
                seconds,
            ),
            &captures,
            |c, s, f| {
                for (method, h) in &s.http_duration {
                    h.encode(f.encode_family(&[("capture", c), ("method", method)])?)?;
                }
                Ok(())
            },
        )?;
        family::<Histogram>(
            e,
            (
                "pcapd_http_request_body",
                "Body sizes of HTTP requests.",
                bytes,
            ),
            &captures,
            |c, s, f| match &s.http_request_body {
                Some(h) => h.encode(f.encode_family(&[("capture", c)])?),
                None => Ok(()),
            },
        )?;
        family::<Histogram>(
            e,
            (
                "pcapd_http_response_body",
                "Body sizes of HTTP responses.",
                bytes,
            ),
            &captures,
            |c, s, f| match &s.http_response_body {
                Some(h) => h.encode(f.encode_family(&[("capture", c)])?),
                None => Ok(()),
            },
        )?;
        family::<Counter>(
            e,
            (
                "pcapd_dns_requests",
                "DNS queries decoded, by question type and rcode (\"none\": unanswered).",
                None,
            ),
            &captures,
            |c, s, f| {
                for ((qtype, rcode), n) in &s.dns_requests {
                    let labels = [("capture", c), ("qtype", qtype), ("rcode", rcode)];
                    n.encode(f.encode_family(&labels)?)?;
                }
                Ok(())
            },
        )?;
        family::<Histogram>(
            e,
            (
                "pcapd_dns_request_duration",
                "From a DNS query to its answer.",
                seconds,
            ),
            &captures,
            |c, s, f| match &s.dns_duration {
                Some(h) => h.encode(f.encode_family(&[("capture", c)])?),
                None => Ok(()),
            },
        )?;
        family::<Counter>(
            e,
            (
                "pcapd_grpc_requests",
                "gRPC calls decoded, by service, method and grpc-status (\"none\": not seen).",
                None,
            ),
            &captures,
            |c, s, f| {
                for ((service, method, status), n) in &s.grpc_requests {
                    let labels = [
                        ("capture", c),
                        ("service", service),
                        ("method", method),
                        ("grpc_status", status),
                    ];
                    n.encode(f.encode_family(&labels)?)?;
                }
                Ok(())
            },
        )?;
        family::<Histogram>(
            e,
            (
                "pcapd_grpc_request_duration",
                "From the first packet of a gRPC call to the last of its response.",
                seconds,
            ),
            &captures,
            |c, s, f| {
                for ((service, method), h) in &s.grpc_duration {
                    let labels = [("capture", c), ("service", service), ("method", method)];
                    h.encode(f.encode_family(&labels)?)?;
                }
                Ok(())
            },
        )?;
        family::<ConstCounter>(
            e,
            (
                "pcapd_decode_roundtrips",
                "Roundtrips the capture's decoder reported, by protocol.",
                None,
            ),
            &captures,
            |c, s, f| {
                for (proto, n) in &s.roundtrips {
                    let labels = [("capture", c), ("proto", proto.name())];
                    ConstCounter::new(*n).encode(f.encode_family(&labels)?)?;
                }
                Ok(())
            },
        )?;
        let totals: [Total; 3] = [
            (
                "pcapd_decode_packets",
                "Packets the capture's decoder read.",
                |s| s.packets,
            ),
            (
                "pcapd_decode_gap_packets",
                "Packets the capture's decoder skipped because it fell behind the capture (the flows they hit are marked incomplete).",
                |s| s.gap_packets,
            ),
            (
                "pcapd_decode_flows_evicted",
                "Flows the capture's decoder dropped to stay within its memory bounds.",
                |s| s.flows_evicted,
            ),
        ];
        for (name, help, value) in totals {
            family::<ConstCounter>(e, (name, help, None), &captures, |c, s, f| {
                ConstCounter::new(value(s)).encode(f.encode_family(&[("capture", c)])?)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_decode::{DnsExchange, GrpcCall, HttpExchange};

    fn roundtrip(proto: Proto) -> Roundtrip {
        Roundtrip {
            ts_ns: 1,
            duration_ns: 2_000_000,
            proto,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:80".parse().unwrap(),
            flow: 1,
            packets: [1, 2],
            complete: true,
            notes: vec![],
            http: None,
            dns: None,
            http2: None,
            grpc: None,
        }
    }

    fn http(method: &str, status: Option<u16>) -> Roundtrip {
        Roundtrip {
            http: Some(HttpExchange {
                method: method.into(),
                target: "/secret/path?token=1".into(),
                status,
                response_body_bytes: 100,
                ..Default::default()
            }),
            ..roundtrip(Proto::Http)
        }
    }

    fn dns(qtype: &str, rcode: &str) -> Roundtrip {
        Roundtrip {
            dns: Some(DnsExchange {
                name: "a.test".into(),
                qtype: qtype.into(),
                rcode: rcode.into(),
                ..Default::default()
            }),
            ..roundtrip(Proto::Dns)
        }
    }

    fn scrape(metrics: &Arc<DecodeMetrics>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(DecodeCollector(metrics.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("get"), "OTHER");
        assert_eq!(method_label("BREW"), "OTHER");
        assert_eq!(status_label(Some(404)), "404");
        assert_eq!(status_label(None), "none");
        assert_eq!(status_label(Some(999)), "OTHER");
        assert_eq!(qtype_label("AAAA"), "AAAA");
        assert_eq!(qtype_label("TYPE65534"), "OTHER");
        assert_eq!(rcode_label("NXDOMAIN"), "NXDOMAIN");
        assert_eq!(rcode_label(""), "none");
        assert_eq!(rcode_label("RCODE11"), "OTHER");
        assert_eq!(grpc_status_label(Some(14)), "14");
        assert_eq!(grpc_status_label(Some(99)), "OTHER");
    }

    #[test]
    fn roundtrips_are_counted_by_their_labels_and_paths_never_show() {
        let metrics = Arc::new(DecodeMetrics::default());
        let web = metrics.series(3, "web".into());
        web.record(&[
            http("GET", Some(200)),
            http("GET", Some(200)),
            http("GET", Some(404)),
            http("POST", None),
            dns("A", "NOERROR"),
            dns("AAAA", "NXDOMAIN"),
            dns("A", ""),
        ]);
        web.gap(7);
        let text = scrape(&metrics);
        for line in [
            r#"pcapd_http_requests_total{capture="web",method="GET",status_code="200"} 2"#,
            r#"pcapd_http_requests_total{capture="web",method="GET",status_code="404"} 1"#,
            r#"pcapd_http_requests_total{capture="web",method="POST",status_code="none"} 1"#,
            r#"pcapd_http_request_duration_seconds_count{capture="web",method="GET"} 3"#,
            r#"pcapd_http_request_body_bytes_count{capture="web"} 4"#,
            r#"pcapd_http_response_body_bytes_count{capture="web"} 3"#,
            r#"pcapd_dns_requests_total{capture="web",qtype="A",rcode="NOERROR"} 1"#,
            r#"pcapd_dns_requests_total{capture="web",qtype="AAAA",rcode="NXDOMAIN"} 1"#,
            r#"pcapd_dns_requests_total{capture="web",qtype="A",rcode="none"} 1"#,
            r#"pcapd_dns_request_duration_seconds_count{capture="web"} 3"#,
            r#"pcapd_decode_roundtrips_total{capture="web",proto="http"} 4"#,
            r#"pcapd_decode_gap_packets_total{capture="web"} 7"#,
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
        assert!(!text.contains("secret"), "{text}");
        metrics.remove(3);
        assert!(!scrape(&metrics).contains("capture=\"web\""));
    }

    #[test]
    fn grpc_methods_are_capped_per_capture() {
        let metrics = Arc::new(DecodeMetrics::default());
        let series = metrics.series(1, "1".into());
        let call = |i: usize| Roundtrip {
            grpc: Some(GrpcCall {
                service: "pkg.Svc".into(),
                method: format!("M{i}"),
                grpc_status: Some(0),
                ..Default::default()
            }),
            ..roundtrip(Proto::Grpc)
        };
        let calls: Vec<Roundtrip> = (0..MAX_GRPC_METHODS + 5).map(call).collect();
        series.record(&calls);
        series.record(&[call(0)]);
        let text = scrape(&metrics);
        assert!(text.contains(r#"pcapd_grpc_requests_total{capture="1",service="OTHER",method="OTHER",grpc_status="0"} 5"#), "{text}");
        assert!(text.contains(r#"pcapd_grpc_requests_total{capture="1",service="pkg.Svc",method="M0",grpc_status="0"} 2"#), "{text}");
        let labelled = text
            .lines()
            .filter(|l| l.starts_with("pcapd_grpc_requests_total"))
            .count();
        assert_eq!(labelled, MAX_GRPC_METHODS + 1);
    }

    #[test]
    fn decoder_progress_adds_the_difference() {
        let metrics = Arc::new(DecodeMetrics::default());
        let series = metrics.series(1, "web".into());
        let a = DecodeStats {
            packets: 10,
            flows_evicted: 1,
            ..Default::default()
        };
        let b = DecodeStats {
            packets: 25,
            flows_evicted: 3,
            ..Default::default()
        };
        series.decoder_progress(&DecodeStats::default(), &a);
        series.decoder_progress(&a, &b);
        let text = scrape(&metrics);
        assert!(
            text.contains(r#"pcapd_decode_packets_total{capture="web"} 25"#),
            "{text}"
        );
        assert!(
            text.contains(r#"pcapd_decode_flows_evicted_total{capture="web"} 3"#),
            "{text}"
        );
    }
}
