//! What decoding produces: one [`Roundtrip`] per request and its response (or per query and
//! its answer), with the fields DESIGN.md lists and `docs/DECODE.md` documents. Serialised
//! with serde as one JSON object per roundtrip (`pcap decode --json`).

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// An application protocol pcap-decode knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Http,
    Dns,
    Http2,
    Grpc,
}

impl Proto {
    /// Every protocol, in the order help texts list them.
    pub const ALL: [Proto; 4] = [Proto::Http, Proto::Dns, Proto::Http2, Proto::Grpc];

    /// The name used on the command line, in JSON and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Dns => "dns",
            Proto::Http2 => "http2",
            Proto::Grpc => "grpc",
        }
    }

    /// The protocol a name stands for (`http`, `dns`, `http2`, `grpc`).
    pub fn from_name(name: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One request and its response, or one query and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roundtrip {
    /// When the first packet of the request was seen, Unix time in ns (RFC 3339 in JSON).
    #[serde(rename = "ts", with = "rfc3339_ns")]
    pub ts_ns: i64,
    /// From the first packet of the request to the last of the response; to the last packet
    /// of the request when no response was seen.
    pub duration_ns: u64,
    pub proto: Proto,
    /// The side that sent the request.
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Shared by every roundtrip of one connection (or one UDP 5-tuple); counts from 1.
    pub flow: u64,
    /// First and last packet of the roundtrip: sequence numbers of a capture, or packet
    /// numbers (from 1) in a file.
    pub packets: [u64; 2],
    /// False when a part of the request or response was never seen (a hole, a reader's gap,
    /// a capture that began mid-connection, a response that never came).
    pub complete: bool,
    /// What a reader should know: holes, limits hit, timeouts, malformed parts.
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpExchange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsExchange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<Http2Exchange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcCall>,
}

impl Roundtrip {
    /// The roundtrip as one line of JSON (without the newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a roundtrip always serialises")
    }
}

/// A header as seen on the wire; the value is cut at the configured length (and says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// An HTTP/1.x request and its response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpExchange {
    pub method: String,
    pub target: String,
    /// "HTTP/1.1" or "HTTP/1.0".
    pub version: String,
    /// The Host header, empty when the request had none.
    pub host: String,
    pub request_headers: Vec<Header>,
    /// The final status (not a 1xx); none when no response was seen.
    pub status: Option<u16>,
    pub reason: String,
    pub response_headers: Vec<Header>,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
}

/// A DNS query and its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsExchange {
    pub id: u16,
    /// "udp" or "tcp".
    pub transport: String,
    /// The question's name, without the trailing dot ("example.com"); "." for the root.
    pub name: String,
    /// Question type by name ("A", "AAAA"), or "TYPE65280" for types without one (RFC 3597).
    #[serde(rename = "type")]
    pub qtype: String,
    /// Question class by name ("IN", "CH"), or "CLASS42".
    pub class: String,
    /// Response code by name ("NOERROR", "NXDOMAIN", "SERVFAIL"), or "RCODE11"; empty when
    /// no answer was seen.
    pub rcode: String,
    /// Header flags set in the answer (or the query, when unanswered): "qr", "aa", "tc",
    /// "rd", "ra", "ad", "cd".
    pub flags: Vec<String>,
    /// The answer section.
    pub answers: Vec<DnsAnswer>,
}

/// One record of a DNS answer section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    /// The record's data in presentation form ("93.184.216.34", "10 mail.example.com",
    /// "\"text\""); hex (RFC 3597 `\# len hex`) for types without a known form.
    pub data: String,
}

/// One HTTP/2 stream: request and response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http2Exchange {
    pub stream: u32,
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub status: Option<u16>,
    pub request_headers: Vec<Header>,
    pub response_headers: Vec<Header>,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// RST_STREAM error code by name ("CANCEL"), empty when the stream was not reset.
    pub reset: String,
}

/// A gRPC call carried by an HTTP/2 stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpcCall {
    pub service: String,
    pub method: String,
    /// grpc-status from the trailers (or a Trailers-Only response); none when not seen.
    pub grpc_status: Option<u32>,
    pub grpc_message: String,
    pub request_messages: u64,
    pub response_messages: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// `ts` as RFC 3339 with nanoseconds, in UTC.
mod rfc3339_ns {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts_ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        let ns = u64::try_from(*ts_ns).unwrap_or(0);
        let t = UNIX_EPOCH + Duration::from_nanos(ns);
        s.collect_str(&humantime::format_rfc3339_nanos(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        let t = humantime::parse_rfc3339(&text).map_err(de::Error::custom)?;
        let since = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(de::Error::custom)?;
        i64::try_from(since.as_nanos()).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape_and_reads_back() {
        let rt = Roundtrip {
            ts_ns: 1_700_000_000_123_456_789,
            duration_ns: 1500,
            proto: Proto::Dns,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            flow: 1,
            packets: [3, 4],
            complete: true,
            notes: vec![],
            http: None,
            dns: Some(DnsExchange {
                id: 7,
                transport: "udp".into(),
                name: "a.test".into(),
                qtype: "A".into(),
                class: "IN".into(),
                rcode: "NOERROR".into(),
                flags: vec!["qr".into(), "rd".into()],
                answers: vec![],
            }),
            http2: None,
            grpc: None,
        };
        let json = rt.to_json();
        assert!(json.starts_with(r#"{"ts":"2023-11-14T22:13:20.123456789Z","duration_ns":1500,"proto":"dns","client":"127.0.0.1:40000""#), "{json}");
        assert!(json.contains(r#""type":"A""#), "{json}");
        assert!(!json.contains("http"), "{json}");
        let back: Roundtrip = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rt);
    }
}
