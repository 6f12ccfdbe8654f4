//! Test helpers: parsers that record what the transport layer hands them (so that the
//! transport is tested without the HTTP and DNS parsers), and packet builders.

use std::cell::RefCell;

use etherparse::{PacketBuilder, TcpHeader};

use crate::decoder::{DecodeConfig, Packet};
use crate::dispatch::{Candidates, DatagramCandidate, StreamCandidate};
use crate::link;
use crate::roundtrip::{DnsExchange, HttpExchange};
use crate::stream::{CloseReason, DatagramParser, Detail, Dir, Exchange, Meta, StreamParser};
use crate::Proto;

thread_local! {
    /// What the recording parsers of this test thread were handed.
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Takes the log of this thread.
pub fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

fn log(entry: String) {
    LOG.with(|l| l.borrow_mut().push(entry));
}

fn d(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => ">",
        Dir::ToClient => "<",
    }
}

/// Logs every call; reports one exchange (an HTTP one) when closed, spanning the packets
/// of the bytes it saw.
#[derive(Default)]
pub struct Recorder {
    first: Option<Meta>,
    last: Meta,
    bytes: usize,
}

impl StreamParser for Recorder {
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, _out: &mut Vec<Exchange>) {
        log(format!("{} {}", d(dir), String::from_utf8_lossy(bytes)));
        self.first.get_or_insert(meta);
        self.last = meta;
        self.bytes += bytes.len();
    }
    fn hole(&mut self, dir: Dir, len: Option<u64>, _meta: Meta, _out: &mut Vec<Exchange>) {
        match len {
            Some(n) => log(format!("{} hole {n}", d(dir))),
            None => log(format!("{} hole ?", d(dir))),
        }
    }
    fn end(&mut self, dir: Dir, reset: bool, _meta: Meta, _out: &mut Vec<Exchange>) {
        log(format!("{} {}", d(dir), if reset { "rst" } else { "fin" }));
    }
    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        log(format!("close {reason:?}"));
        if let Some(first) = self.first {
            out.push(Exchange {
                start: first,
                end: self.last,
                complete: true,
                notes: vec![format!("closed {reason:?} after {} bytes", self.bytes)],
                detail: Detail::Http(HttpExchange::default()),
            });
        }
        let _ = meta;
    }
    fn tick(&mut self, _now_ns: i64, _out: &mut Vec<Exchange>) {}
    fn buffered(&self) -> usize {
        0
    }
}

/// "REQ..." is a client's first bytes, "RSP..." a server's.
fn recognise(first: &[u8]) -> Option<Dir> {
    match first.get(..3)? {
        b"REQ" => Some(Dir::ToServer),
        b"RSP" => Some(Dir::ToClient),
        _ => None,
    }
}

/// Logs datagrams; a datagram starting "A" is an answer and reports an exchange.
pub struct DatagramRecorder;

impl DatagramParser for DatagramRecorder {
    fn datagram(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        log(format!("{} {}", d(dir), String::from_utf8_lossy(bytes)));
        if bytes.first() == Some(&b'A') {
            out.push(Exchange {
                start: meta,
                end: meta,
                complete: true,
                notes: vec![],
                detail: Detail::Dns(DnsExchange::default()),
            });
        }
    }
    fn close(&mut self, reason: CloseReason, _meta: Meta, _out: &mut Vec<Exchange>) {
        log(format!("close {reason:?}"));
    }
    fn tick(&mut self, _now_ns: i64, _out: &mut Vec<Exchange>) {}
    fn buffered(&self) -> usize {
        0
    }
}

fn recognise_datagram(payload: &[u8]) -> Option<Dir> {
    match payload.first()? {
        b'Q' => Some(Dir::ToServer),
        b'A' => Some(Dir::ToClient),
        _ => None,
    }
}

/// The recording parsers as a decoder's only protocols.
pub static RECORDERS: Candidates = Candidates {
    streams: &[StreamCandidate {
        proto: Proto::Http,
        recognise,
        well_known_port: Some(9999),
        make: |_: &DecodeConfig| Box::new(Recorder::default()),
    }],
    datagrams: &[DatagramCandidate {
        proto: Proto::Dns,
        recognise: recognise_datagram,
        well_known_port: Some(53),
        make: |_: &DecodeConfig| Box::new(DatagramRecorder),
    }],
};

/// TCP flags of a built segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: Option<u32>,
    pub fin: bool,
    pub rst: bool,
}

/// An IPv4 TCP segment from `src` port to `dst` port, as raw IP (link type RAW).
pub fn tcp4(sport: u16, dport: u16, seq: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = if sport > dport {
        ([10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1])
    };
    let mut h = TcpHeader::new(sport, dport, seq, 65_535);
    h.syn = flags.syn;
    h.fin = flags.fin;
    h.rst = flags.rst;
    if let Some(ack) = flags.ack {
        h.ack = true;
        h.acknowledgment_number = ack;
    }
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .tcp_header(h)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A UDP datagram between 10.0.0.1 (the higher port) and 10.0.0.2, as raw IP.
pub fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = if sport > dport {
        ([10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1])
    };
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A decoder with the recording parsers, fed packets one millisecond apart.
pub struct Feed {
    pub dec: crate::Decoder,
    pub out: Vec<crate::Roundtrip>,
    pub seq: u64,
    pub ts_ns: i64,
}

impl Feed {
    pub fn new(config: DecodeConfig) -> Feed {
        take_log();
        Feed {
            dec: crate::Decoder::with_candidates(config, &RECORDERS),
            out: Vec::new(),
            seq: 0,
            ts_ns: 1_000_000_000,
        }
    }

    /// Feeds one packet of `link_type`.
    pub fn link(&mut self, link_type: u32, data: &[u8]) {
        self.seq += 1;
        self.ts_ns += 1_000_000;
        let p = Packet {
            link_type,
            ts_ns: self.ts_ns,
            data,
            orig_len: data.len() as u32,
            seq: self.seq,
        };
        self.dec.push(&p, &mut self.out);
        let s = self.dec.stats();
        assert!(s.buffered_bytes <= self.dec.config().max_total_bytes as u64);
    }

    /// Feeds one raw IP packet.
    pub fn ip(&mut self, data: &[u8]) {
        self.link(link::RAW, data);
    }

    /// A TCP segment (see [`tcp4`]).
    pub fn tcp(&mut self, sport: u16, dport: u16, seq: u32, flags: Flags, payload: &str) {
        self.ip(&tcp4(sport, dport, seq, flags, payload.as_bytes()));
    }

    pub fn finish(&mut self) {
        self.dec.finish(&mut self.out);
    }
}

/// Flags helpers.
pub const SYN: Flags = Flags {
    syn: true,
    ack: None,
    fin: false,
    rst: false,
};

pub fn ack(n: u32) -> Flags {
    Flags {
        ack: Some(n),
        ..Flags::default()
    }
}

pub fn syn_ack(n: u32) -> Flags {
    Flags {
        syn: true,
        ack: Some(n),
        ..Flags::default()
    }
}

pub fn fin_ack(n: u32) -> Flags {
    Flags {
        fin: true,
        ack: Some(n),
        ..Flags::default()
    }
}

pub const RST: Flags = Flags {
    syn: false,
    ack: None,
    fin: false,
    rst: true,
};
