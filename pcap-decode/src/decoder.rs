//! The entry point: [`Decoder`] takes the packets of one capture or file, in order, and
//! returns roundtrips as they complete.

use std::net::SocketAddr;

use crate::defrag::Defrag;
use crate::dispatch::{Candidates, CANDIDATES};
use crate::ip::{self, Transport as IpTransport};
use crate::link::{self, Network};
use crate::roundtrip::Roundtrip;
use crate::rules::ProtoRule;
use crate::stream::Meta;
use crate::tracker::Tracker;

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
///
/// Per packet: the link header, IP (fragments put together), then the flow of its 5-tuple
/// (see `tracker.rs`): TCP reassembled per direction, UDP per datagram, each to the parser
/// its content (or a rule, or a well-known port) calls for.
pub struct Decoder {
    flows: Tracker,
    defrag: Defrag,
    stats: DecodeStats,
}

/// How long an IP fragment set may wait for its last piece (Linux's ipfrag_time).
const FRAGMENT_TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// Most IP fragment sets in flight.
const MAX_FRAGMENT_SETS: usize = 1024;

impl Decoder {
    /// A decoder with these bounds and rules.
    pub fn new(config: DecodeConfig) -> Self {
        Decoder::with_candidates(config, &CANDIDATES)
    }

    /// A decoder that knows only `candidates` (tests use recording parsers).
    pub(crate) fn with_candidates(config: DecodeConfig, candidates: &'static Candidates) -> Self {
        let defrag = Defrag::new(
            (config.max_flows / 4).clamp(1, MAX_FRAGMENT_SETS),
            config.max_total_bytes / 8,
            FRAGMENT_TIMEOUT_NS.min(config.idle_timeout_ns),
        );
        Decoder {
            flows: Tracker::new(config, candidates),
            defrag,
            stats: DecodeStats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DecodeConfig {
        self.flows.config()
    }

    /// Feeds one packet; roundtrips completed by it (or by timeouts it reveals) are pushed
    /// to `out`.
    pub fn push(&mut self, packet: &Packet<'_>, out: &mut Vec<Roundtrip>) {
        let from = out.len();
        self.stats.packets += 1;
        self.flows.set_time(packet.ts_ns, Some(packet.seq));
        self.flows.expire_idle(out);
        self.decode(packet, out);
        self.housekeeping(packet.ts_ns, out);
        self.keep_asked(out, from);
    }

    /// The reader was told that `dropped` packets were skipped before the next one (a slow
    /// reader's gap): every open flow may have lost bytes, so each is marked incomplete with
    /// a note and resynchronises on what comes next.
    pub fn gap(&mut self, dropped: u64, ts_ns: i64, out: &mut Vec<Roundtrip>) {
        let from = out.len();
        self.flows.set_time(ts_ns, None);
        self.flows.gap(dropped, out);
        self.update_stats();
        self.keep_asked(out, from);
    }

    /// Time has moved on without packets (a live reader's clock): expire idle flows and
    /// report requests that timed out.
    pub fn advance(&mut self, now_ns: i64, out: &mut Vec<Roundtrip>) {
        let from = out.len();
        self.flows.set_time(now_ns, None);
        self.flows.expire_idle(out);
        self.housekeeping(now_ns, out);
        self.keep_asked(out, from);
    }

    /// End of input: report every roundtrip still open (unanswered, cut off).
    pub fn finish(&mut self, out: &mut Vec<Roundtrip>) {
        let from = out.len();
        self.flows.finish(out);
        self.defrag.clear();
        self.update_stats();
        self.keep_asked(out, from);
    }

    /// Drops the roundtrips from `from` on that the rules do not ask for: the plain HTTP/2
    /// streams of a connection decoded for a `grpc` rule.
    fn keep_asked(&self, out: &mut Vec<Roundtrip>, from: usize) {
        let rules = self.flows.rules();
        if rules.as_slice().is_empty() || out.len() == from {
            return;
        }
        let mut i = 0;
        out.retain(|rt| {
            i += 1;
            i <= from || rules.keeps(rt.proto, rt.server.port())
        });
    }

    /// Counters so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Timeouts once a second of packet time, then the memory bound.
    fn housekeeping(&mut self, now_ns: i64, out: &mut Vec<Roundtrip>) {
        if self.flows.tick(out) {
            self.defrag.expire(now_ns);
        }
        self.flows.enforce_bounds(self.defrag.buffered(), out);
        self.update_stats();
    }

    fn update_stats(&mut self) {
        self.stats.roundtrips = self.flows.roundtrips;
        self.stats.flows_evicted = self.flows.evicted;
        self.stats.flows = self.flows.len() as u64;
        self.stats.buffered_bytes = (self.flows.buffered() + self.defrag.buffered()) as u64;
    }

    /// The link and network layers, then the flow.
    fn decode(&mut self, packet: &Packet<'_>, out: &mut Vec<Roundtrip>) {
        let meta = Meta {
            ts_ns: packet.ts_ns,
            seq: packet.seq,
        };
        let bytes = match link::network(packet.link_type, packet.data) {
            Network::Ip(bytes) => bytes,
            Network::Other => return self.stats.packets_skipped += 1,
            Network::Malformed => return self.stats.packets_malformed += 1,
        };
        let Some(ip) = ip::parse(bytes) else {
            return self.stats.packets_malformed += 1;
        };
        let mut whole = None;
        if let Some(frag) = ip.fragment {
            whole = self.defrag.add(&ip, frag, packet.ts_ns);
            if whole.is_none() {
                return;
            }
        }
        let (payload, missing) = match &whole {
            Some(data) => (&data[..], 0),
            None => (ip.payload, ip.missing),
        };
        match ip::transport(ip.proto, payload) {
            IpTransport::Tcp(tcp) => {
                let src = SocketAddr::new(ip.src, tcp.source_port());
                let dst = SocketAddr::new(ip.dst, tcp.destination_port());
                let missing = u32::try_from(missing).unwrap_or(u32::MAX);
                self.flows.tcp(src, dst, &tcp, missing, meta, out);
            }
            IpTransport::Udp(udp) => {
                let src = SocketAddr::new(ip.src, udp.source_port());
                let dst = SocketAddr::new(ip.dst, udp.destination_port());
                self.flows.udp(src, dst, udp.payload(), meta, out);
            }
            IpTransport::Other => self.stats.packets_skipped += 1,
            IpTransport::Malformed => self.stats.packets_malformed += 1,
        }
        if let Some(data) = whole {
            self.defrag.give_back(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{
        IpFragOffset, IpNumber, Ipv4Header, LinuxSllPacketType, PacketBuilder, VlanId,
    };

    use super::*;
    use crate::link;
    use crate::testing::{take_log, tcp4, udp4, Feed, Flags, SYN};

    fn syn() -> Flags {
        SYN
    }

    /// A client's SYN and "REQ x" to port 8000, over IPv4, as raw IP.
    fn req_packets() -> [Vec<u8>; 2] {
        [
            tcp4(40000, 8000, 1, syn(), b""),
            tcp4(40000, 8000, 2, Flags::default(), b"REQ x"),
        ]
    }

    fn ether(vlan: bool, ip: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let h = etherparse::IpHeaders::from_slice(ip).unwrap().0;
        let payload = &ip[h.header_len()..];
        let tcp = etherparse::TcpHeader::from_slice(payload).unwrap();
        let data = tcp.1;
        if vlan {
            b.single_vlan(VlanId::try_new(7).unwrap())
                .ip(h)
                .tcp_header(tcp.0)
                .write(&mut out, data)
                .unwrap();
        } else {
            b.ip(h).tcp_header(tcp.0).write(&mut out, data).unwrap();
        }
        out
    }

    fn sll(ip: &[u8]) -> Vec<u8> {
        let h = etherparse::IpHeaders::from_slice(ip).unwrap().0;
        let (tcp, data) = etherparse::TcpHeader::from_slice(&ip[h.header_len()..]).unwrap();
        let mut out = Vec::new();
        PacketBuilder::linux_sll(LinuxSllPacketType::HOST, 6, [1; 8])
            .ip(h)
            .tcp_header(tcp)
            .write(&mut out, data)
            .unwrap();
        out
    }

    fn prefixed(prefix: &[u8], ip: &[u8]) -> Vec<u8> {
        let mut out = prefix.to_vec();
        out.extend_from_slice(ip);
        out
    }

    #[test]
    fn every_link_type_is_decoded() {
        let mut sll2_head = vec![0x08, 0x00, 0, 0];
        sll2_head.extend_from_slice(&[0; 16]);
        type Wrap = Box<dyn Fn(&[u8]) -> Vec<u8>>;
        let cases: Vec<(u32, Wrap)> = vec![
            (link::EN10MB, Box::new(|ip| ether(false, ip))),
            (link::EN10MB, Box::new(|ip| ether(true, ip))),
            (link::LINUX_SLL, Box::new(sll)),
            (
                link::LINUX_SLL2,
                Box::new(move |ip| prefixed(&sll2_head, ip)),
            ),
            (link::NULL, Box::new(|ip| prefixed(&2u32.to_le_bytes(), ip))),
            (link::NULL, Box::new(|ip| prefixed(&2u32.to_be_bytes(), ip))),
            (link::LOOP, Box::new(|ip| prefixed(&2u32.to_be_bytes(), ip))),
            (link::RAW, Box::new(|ip| ip.to_vec())),
            (link::RAW_12, Box::new(|ip| ip.to_vec())),
            (link::RAW_14, Box::new(|ip| ip.to_vec())),
        ];
        for (lt, wrap) in cases {
            let mut f = Feed::new(DecodeConfig::default());
            for p in req_packets() {
                f.link(lt, &wrap(&p));
            }
            assert_eq!(take_log(), ["> REQ x"], "link type {lt}");
            let s = f.dec.stats();
            assert_eq!(
                (s.packets, s.packets_skipped, s.packets_malformed),
                (2, 0, 0)
            );
        }
    }

    #[test]
    fn ipv6_with_an_extension_header() {
        let mut f = Feed::new(DecodeConfig::default());
        for (seq, syn, data) in [(1, true, &b""[..]), (2, false, b"REQ six")] {
            let mut h = etherparse::TcpHeader::new(40000, 8000, seq, 1000);
            h.syn = syn;
            let mut ip = Vec::new();
            PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
                .tcp_header(h)
                .write(&mut ip, data)
                .unwrap();
            // Put a hop-by-hop options header (8 bytes, next header TCP) after the header.
            let mut with_ext = ip[..40].to_vec();
            with_ext[6] = 0;
            let len = u16::from_be_bytes([ip[4], ip[5]]) + 8;
            with_ext[4..6].copy_from_slice(&len.to_be_bytes());
            with_ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
            with_ext.extend_from_slice(&ip[40..]);
            f.ip(&with_ext);
        }
        f.finish();
        assert_eq!(take_log(), ["> REQ six", "close EndOfInput"]);
        assert_eq!(
            f.out[0].client.to_string(),
            "[fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd]:40000"
        );
    }

    #[test]
    fn ipv4_fragments_are_put_together() {
        let mut f = Feed::new(DecodeConfig::default());
        let whole = udp4(40000, 5353, b"Q0123456789abcdefghij");
        let udp = &whole[20..];
        let (first, rest) = udp.split_at(16);
        for (off, more, part) in [(2u16, false, rest), (0, true, first)] {
            let mut h = Ipv4Header::new(
                part.len() as u16,
                64,
                IpNumber(17),
                [10, 0, 0, 1],
                [10, 0, 0, 2],
            )
            .unwrap();
            h.identification = 77;
            h.more_fragments = more;
            h.fragment_offset = IpFragOffset::try_new(off).unwrap();
            let mut p = h.to_bytes().to_vec();
            p.extend_from_slice(part);
            f.ip(&p);
        }
        assert_eq!(take_log(), ["> Q0123456789abcdefghij"]);
        assert_eq!(f.dec.stats().buffered_bytes, 0);
    }

    #[test]
    fn a_cut_segment_is_a_hole_of_the_missing_bytes() {
        let mut f = Feed::new(DecodeConfig::default());
        let [syn, _] = req_packets();
        f.ip(&syn);
        let long = tcp4(40000, 8000, 2, Flags::default(), b"REQ long payload");
        f.ip(&long[..40 + 8]);
        f.ip(&tcp4(40000, 8000, 18, Flags::default(), b"next"));
        f.ip(&long[..30]);
        assert_eq!(take_log(), ["> REQ long", "> hole 8", "> next"]);
        assert_eq!(f.dec.stats().packets_malformed, 1);
    }

    #[test]
    fn garbage_of_every_link_type_never_panics() {
        let mut f = Feed::new(DecodeConfig {
            max_flow_bytes: 64,
            max_total_bytes: 256,
            max_flows: 8,
            ..DecodeConfig::default()
        });
        let mut x = 0x9e37_79b9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let valid = req_packets();
        for i in 0..4000 {
            let lt = [0, 1, 12, 14, 101, 108, 113, 276, 9][next() as usize % 9];
            let mut data: Vec<u8> = match next() % 3 {
                0 => (0..next() % 90).map(|_| next() as u8).collect(),
                _ => prefixed(&[0x08, 0, 0, 0][..(next() % 5) as usize], &valid[i % 2]),
            };
            if next() % 4 == 0 && !data.is_empty() {
                let at = next() as usize % data.len();
                data[at] ^= next() as u8;
            }
            f.link(lt, &data);
        }
        f.finish();
        let s = f.dec.stats();
        assert_eq!(s.packets, 4000);
        assert!(s.packets_skipped > 0 && s.packets_malformed > 0);
        assert_eq!(s.buffered_bytes, 0);
    }
}
