//! The entry point: [`Decoder`] takes the packets of one capture or file, in order, and
//! returns roundtrips as they complete.

use crate::roundtrip::Roundtrip;
use crate::rules::ProtoRule;

/// One packet as read from a capture or a file.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// libpcap DLT_* link type: EN10MB (1, with VLAN tags), NULL (0), LOOP (108), RAW (101,
    /// and 12/14 where libpcap maps them), LINUX_SLL (113), LINUX_SLL2 (276).
    pub link_type: u32,
    /// Unix time in ns.
    pub ts_ns: i64,
    /// The captured bytes (possibly cut at the snaplen).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
    /// Sequence number in the capture, or packet number (from 1) in a file.
    pub seq: u64,
}

/// Bounds and timeouts of a decoder. The defaults suit a capture of a busy host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeConfig {
    /// Protocols (and ports) to decode; empty: every protocol, recognised by content.
    pub rules: Vec<ProtoRule>,
    /// Most bytes buffered for one flow (out-of-order segments plus parser buffers).
    pub max_flow_bytes: usize,
    /// Most bytes buffered for all flows together; beyond it the least recently active flow
    /// is evicted (its open roundtrips reported with a note).
    pub max_total_bytes: usize,
    /// Most flows tracked at once (TCP connections, UDP 5-tuples, IP fragment sets).
    pub max_flows: usize,
    /// A flow without a packet for this long is closed.
    pub idle_timeout_ns: i64,
    /// A request (HTTP) without a response after this long is reported unanswered.
    pub response_timeout_ns: i64,
    /// A DNS query without an answer after this long is reported unanswered.
    pub dns_timeout_ns: i64,
    /// Header values (HTTP, HTTP/2) are cut at this many bytes, with "…" appended.
    pub max_header_value: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            rules: Vec::new(),
            max_flow_bytes: 1 << 20,
            max_total_bytes: 64 << 20,
            max_flows: 100_000,
            idle_timeout_ns: 300 * 1_000_000_000,
            response_timeout_ns: 60 * 1_000_000_000,
            dns_timeout_ns: 5 * 1_000_000_000,
            max_header_value: 256,
        }
    }
}

/// What a decoder has seen and done, for counters and the end of `pcap decode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub packets: u64,
    /// Packets of a link type or network protocol the decoder does not read.
    pub packets_skipped: u64,
    /// Packets too short or malformed below the application layer.
    pub packets_malformed: u64,
    pub roundtrips: u64,
    /// Flows tracked now.
    pub flows: u64,
    /// Flows dropped to stay within `max_total_bytes` or `max_flows`.
    pub flows_evicted: u64,
    /// Bytes buffered now, across all flows.
    pub buffered_bytes: u64,
}

/// Decodes the packets of one capture or file into roundtrips.
pub struct Decoder {
    config: DecodeConfig,
    stats: DecodeStats,
}

impl Decoder {
    /// A decoder with these bounds and rules.
    pub fn new(config: DecodeConfig) -> Self {
        Decoder {
            config,
            stats: DecodeStats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DecodeConfig {
        &self.config
    }

    /// Feeds one packet; roundtrips completed by it (or by timeouts it reveals) are pushed
    /// to `out`.
    pub fn push(&mut self, packet: &Packet<'_>, out: &mut Vec<Roundtrip>) {
        let _ = (packet, out);
        self.stats.packets += 1;
    }

    /// The reader was told that `dropped` packets were skipped before the next one (a slow
    /// reader's gap): every open flow may have lost bytes, so each is marked incomplete with
    /// a note and resynchronises on what comes next.
    pub fn gap(&mut self, dropped: u64, ts_ns: i64, out: &mut Vec<Roundtrip>) {
        let _ = (dropped, ts_ns, out);
    }

    /// Time has moved on without packets (a live reader's clock): expire idle flows and
    /// report requests that timed out.
    pub fn advance(&mut self, now_ns: i64, out: &mut Vec<Roundtrip>) {
        let _ = (now_ns, out);
    }

    /// End of input: report every roundtrip still open (unanswered, cut off).
    pub fn finish(&mut self, out: &mut Vec<Roundtrip>) {
        let _ = out;
    }

    /// Counters so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }
}
