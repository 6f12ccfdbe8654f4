//! Test material: real messages between dig and dnsmasq (`testdata/dns/make.sh`), and a
//! small builder of messages by hand.

use crate::roundtrip::DnsExchange;
use crate::stream::{Detail, Dir, Exchange, Meta, ParserLimits};

/// One payload of the capture: transport, flow, direction, bytes.
pub(crate) struct Captured {
    pub transport: String,
    pub flow: u32,
    pub dir: Dir,
    pub bytes: Vec<u8>,
}

/// The payloads of `testdata/dns/messages.txt`, in capture order.
pub(crate) fn captured() -> Vec<Captured> {
    include_str!("../../testdata/dns/messages.txt")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Captured {
                transport: f[0].to_owned(),
                flow: f[1].parse().unwrap(),
                dir: if f[2] == "q" {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                },
                bytes: hex(f[3]),
            }
        })
        .collect()
}

/// The payloads of one flow.
pub(crate) fn flow(n: u32) -> Vec<Captured> {
    captured().into_iter().filter(|c| c.flow == n).collect()
}

pub(crate) fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The packet at `s` seconds, numbered `seq`.
pub(crate) fn at(s: f64, seq: u64) -> Meta {
    Meta {
        ts_ns: 1_700_000_000_000_000_000 + (s * 1e9) as i64,
        seq,
    }
}

/// Limits as the decoder builds them for DNS: 5 s timeout.
pub(crate) fn limits() -> ParserLimits {
    ParserLimits {
        response_timeout_ns: 5_000_000_000,
        ..ParserLimits::default()
    }
}

pub(crate) fn dns(e: &Exchange) -> &DnsExchange {
    match &e.detail {
        Detail::Dns(d) => d,
        other => panic!("not a DNS exchange: {other:?}"),
    }
}

/// A name in wire form, without compression.
pub(crate) fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A query for `name` and `qtype` (class IN, RD set).
pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(wire_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// The answer to `query(id, name, qtype)` with `rcode` and one A record per address, each
/// named by a pointer to the question.
pub(crate) fn answer(id: u16, name: &str, qtype: u16, rcode: u8, addrs: &[[u8; 4]]) -> Vec<u8> {
    let mut m = query(id, name, qtype);
    m[2] = 0x81;
    m[3] = 0x80 | rcode;
    m[7] = addrs.len() as u8;
    for a in addrs {
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        m.extend_from_slice(a);
    }
    m
}

/// `msg` behind its RFC 7766 length prefix.
pub(crate) fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

/// A fixed-seed xorshift generator for random payloads.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
