//! The entry point: [`Decoder`] takes the packets of one capture or file, in order, and
//! returns roundtrips as they complete.

use std::net::SocketAddr;

use etherparse::TcpSlice;

use crate::connection::{Flow, Transport};
use crate::defrag::Defrag;
use crate::dispatch::{Candidates, Ctx, CANDIDATES};
use crate::flow::{FlowKey, FlowTable};
use crate::ip::{self, Transport as IpTransport};
use crate::link::{self, Network};
use crate::roundtrip::Roundtrip;
use crate::rules::{ProtoRule, Rules};
use crate::stream::{CloseReason, Exchange, Meta};
use crate::tcp::TcpConn;
use crate::udp::UdpFlow;

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
/// Decodes the packets of one capture or file into roundtrips.
///
/// Per packet: the link header, IP (fragments put together), then the flow of its 5-tuple
/// (made on a SYN or the first payload, ids from 1 in order of first packet). Flows are
/// kept in order of activity: idle ones are closed from the front of that order, and the
/// least recently active is evicted to stay within `max_flows` and `max_total_bytes`.
pub struct Decoder {
    config: DecodeConfig,
    rules: Rules,
    candidates: &'static Candidates,
    stats: DecodeStats,
    flows: FlowTable<Flow>,
    defrag: Defrag,
    /// Exchanges of the flow at hand, before they become roundtrips (kept for its capacity).
    scratch: Vec<Exchange>,
    /// The latest packet time seen (or given to `advance`).
    now_ns: i64,
    /// The latest packet's sequence number, for events without a packet of their own.
    last_seq: u64,
    next_tick_ns: i64,
    next_id: u64,
    /// Bytes held by flows, as last measured.
    flow_bytes: usize,
}

/// How often (packet time) parsers are asked about timeouts.
const TICK_NS: i64 = 1_000_000_000;
/// How long an IP fragment set may wait for its last piece (Linux's ipfrag_time).
const FRAGMENT_TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// Most IP fragment sets in flight.
const MAX_FRAGMENT_SETS: usize = 1024;

impl Decoder {
    /// A decoder with these bounds and rules.
    pub fn new(config: DecodeConfig) -> Self {
        let defrag = Defrag::new(
            (config.max_flows / 4).clamp(1, MAX_FRAGMENT_SETS),
            config.max_total_bytes / 8,
            FRAGMENT_TIMEOUT_NS.min(config.idle_timeout_ns),
        );
        Decoder {
            rules: Rules::new(config.rules.clone()),
            candidates: &CANDIDATES,
            config,
            stats: DecodeStats::default(),
            flows: FlowTable::default(),
            defrag,
            scratch: Vec::new(),
            now_ns: i64::MIN,
            last_seq: 0,
            next_tick_ns: i64::MIN,
            next_id: 1,
            flow_bytes: 0,
        }
    }

    /// A decoder that knows only `candidates` (tests use recording parsers).
    #[cfg(test)]
    pub(crate) fn with_candidates(config: DecodeConfig, candidates: &'static Candidates) -> Self {
        Decoder {
            candidates,
            ..Decoder::new(config)
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DecodeConfig {
        &self.config
    }

    /// Feeds one packet; roundtrips completed by it (or by timeouts it reveals) are pushed
    /// to `out`.
    pub fn push(&mut self, packet: &Packet<'_>, out: &mut Vec<Roundtrip>) {
        self.stats.packets += 1;
        self.now_ns = self.now_ns.max(packet.ts_ns);
        self.last_seq = packet.seq;
        let meta = Meta {
            ts_ns: packet.ts_ns,
            seq: packet.seq,
        };
        self.expire_idle(out);
        self.decode(packet, meta, out);
        if self.now_ns >= self.next_tick_ns {
            self.tick(out);
        }
        self.enforce_bounds(out);
        self.update_stats();
    }

    /// The reader was told that `dropped` packets were skipped before the next one (a slow
    /// reader's gap): every open flow may have lost bytes, so each is marked incomplete with
    /// a note and resynchronises on what comes next.
    pub fn gap(&mut self, dropped: u64, ts_ns: i64, out: &mut Vec<Roundtrip>) {
        self.now_ns = self.now_ns.max(ts_ns);
        let meta = Meta {
            ts_ns,
            seq: self.last_seq,
        };
        let note = format!(
            "{dropped} packets were skipped by a slow reader here: parts of this flow may be missing"
        );
        let mut total = 0;
        for flow in self.flows.values_mut() {
            if flow.active() {
                flow.add_note(note.clone());
                if let Transport::Tcp(conn) = &mut flow.transport {
                    conn.gap(meta, &mut self.scratch);
                }
                flow.emit(&mut self.scratch, out, &mut self.stats, None);
                flow.buffered = flow.measure();
            }
            total += flow.buffered;
        }
        self.flow_bytes = total;
        self.update_stats();
    }

    /// Time has moved on without packets (a live reader's clock): expire idle flows and
    /// report requests that timed out.
    pub fn advance(&mut self, now_ns: i64, out: &mut Vec<Roundtrip>) {
        self.now_ns = self.now_ns.max(now_ns);
        self.expire_idle(out);
        if self.now_ns >= self.next_tick_ns {
            self.tick(out);
        }
        self.enforce_bounds(out);
        self.update_stats();
    }

    /// End of input: report every roundtrip still open (unanswered, cut off).
    pub fn finish(&mut self, out: &mut Vec<Roundtrip>) {
        for idx in self.flows.slots_by_age() {
            self.close(idx, CloseReason::EndOfInput, out);
        }
        self.defrag.clear();
        self.update_stats();
    }

    /// Counters so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    // === the packet path ===

    fn decode(&mut self, packet: &Packet<'_>, meta: Meta, out: &mut Vec<Roundtrip>) {
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
            whole = self.defrag.add(&ip, frag, self.now_ns);
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
                self.tcp(src, dst, &tcp, missing, meta, out);
            }
            IpTransport::Udp(udp) => {
                let src = SocketAddr::new(ip.src, udp.source_port());
                let dst = SocketAddr::new(ip.dst, udp.destination_port());
                self.udp(src, dst, udp.payload(), meta, out);
            }
            IpTransport::Other => self.stats.packets_skipped += 1,
            IpTransport::Malformed => self.stats.packets_malformed += 1,
        }
        if let Some(data) = whole {
            self.defrag.give_back(data);
        }
    }

    fn tcp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        tcp: &TcpSlice<'_>,
        missing: u32,
        meta: Meta,
        out: &mut Vec<Roundtrip>,
    ) {
        let key = FlowKey::new(6, src, dst);
        let new_connection = tcp.syn() && !tcp.ack();
        let mut idx = self.flows.find(&key);
        if let (Some(i), true) = (idx, new_connection) {
            // The same 5-tuple again: a new connection if the old one ended or began with
            // another ISN.
            let flow = self.flows.get_mut(i);
            let side = flow.side(src);
            if let Transport::Tcp(conn) = &flow.transport {
                if conn.closed() || conn.client_isn(side) != Some(tcp.sequence_number()) {
                    self.close(i, CloseReason::Ended, out);
                    idx = None;
                }
            }
        }
        let idx = match idx {
            Some(i) => i,
            // A bare ACK, FIN or RST tells nothing about a connection not seen before.
            None if !tcp.syn() && tcp.payload().is_empty() && missing == 0 => return,
            None => {
                let syn_client = tcp.syn().then_some(usize::from(tcp.ack()));
                self.add_flow(key, src, dst, out, |ctx, scratch| {
                    Transport::Tcp(TcpConn::new(ctx, syn_client, scratch))
                })
            }
        };
        self.flows.touch(idx, self.now_ns);
        let flow = self.flows.get_mut(idx);
        let side = flow.side(src);
        let ctx = Ctx {
            config: &self.config,
            rules: &self.rules,
            candidates: self.candidates,
            ports: flow.ports(),
        };
        if let Transport::Tcp(conn) = &mut flow.transport {
            conn.segment(side, tcp, missing, meta, &ctx, &mut self.scratch);
        }
        flow.note_anomalies(self.config.max_flow_bytes);
        flow.emit(&mut self.scratch, out, &mut self.stats, None);
        self.remeasure(idx);
    }

    fn udp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        meta: Meta,
        out: &mut Vec<Roundtrip>,
    ) {
        let key = FlowKey::new(17, src, dst);
        let idx = match self.flows.find(&key) {
            Some(i) => i,
            None => self.add_flow(key, src, dst, out, |ctx, _| {
                Transport::Udp(UdpFlow::new(ctx))
            }),
        };
        self.flows.touch(idx, self.now_ns);
        let flow = self.flows.get_mut(idx);
        let side = flow.side(src);
        let ctx = Ctx {
            config: &self.config,
            rules: &self.rules,
            candidates: self.candidates,
            ports: flow.ports(),
        };
        if let Transport::Udp(u) = &mut flow.transport {
            u.datagram(side, payload, meta, &ctx, &mut self.scratch);
        }
        flow.emit(&mut self.scratch, out, &mut self.stats, None);
        self.remeasure(idx);
    }

    /// Adds a flow, evicting the least recently active ones to stay within `max_flows`.
    fn add_flow(
        &mut self,
        key: FlowKey,
        src: SocketAddr,
        dst: SocketAddr,
        out: &mut Vec<Roundtrip>,
        make: impl FnOnce(&Ctx<'_>, &mut Vec<Exchange>) -> Transport,
    ) -> u32 {
        while self.flows.len() >= self.config.max_flows.max(1) {
            let Some((oldest, _)) = self.flows.oldest() else {
                break;
            };
            self.close(oldest, CloseReason::Evicted, out);
        }
        let ctx = Ctx {
            config: &self.config,
            rules: &self.rules,
            candidates: self.candidates,
            ports: [src.port(), dst.port()],
        };
        let transport = make(&ctx, &mut self.scratch);
        let mut flow = Flow::new(self.next_id, src, dst, transport);
        self.next_id += 1;
        // A parser chosen by a rule has nothing to report yet.
        self.scratch.clear();
        flow.buffered = flow.measure();
        self.flow_bytes += flow.buffered;
        self.flows.insert(key, flow, self.now_ns)
    }

    // === flows leaving, bounds, time ===

    /// Closes the flow in `idx` and takes it out of the table.
    fn close(&mut self, idx: u32, reason: CloseReason, out: &mut Vec<Roundtrip>) {
        let mut flow = self.flows.remove(idx);
        self.flow_bytes -= flow.buffered.min(self.flow_bytes);
        let meta = Meta {
            ts_ns: self.now_ns,
            seq: self.last_seq,
        };
        let ports = flow.ports();
        let evicted = reason == CloseReason::Evicted && flow.active();
        match &mut flow.transport {
            Transport::Tcp(conn) => {
                let ctx = Ctx {
                    config: &self.config,
                    rules: &self.rules,
                    candidates: self.candidates,
                    ports,
                };
                conn.finish(None, reason, meta, &ctx, &mut self.scratch);
            }
            Transport::Udp(u) => u.close(reason, meta, &mut self.scratch),
        }
        flow.note_anomalies(self.config.max_flow_bytes);
        let note = evicted.then(|| {
            self.stats.flows_evicted += 1;
            format!(
                "flow evicted to stay within the decoder's bounds (max_flows = {}, \
                 max_total_bytes = {}): what followed was not decoded",
                self.config.max_flows, self.config.max_total_bytes
            )
        });
        flow.emit(&mut self.scratch, out, &mut self.stats, note.as_deref());
    }

    /// Closes flows without a packet for the idle timeout, least recently active first.
    fn expire_idle(&mut self, out: &mut Vec<Roundtrip>) {
        while let Some((idx, last)) = self.flows.oldest() {
            if self.now_ns.saturating_sub(last) < self.config.idle_timeout_ns {
                break;
            }
            self.close(idx, CloseReason::Idle, out);
        }
    }

    /// Lets every parser report what timed out, and drops stale IP fragments.
    fn tick(&mut self, out: &mut Vec<Roundtrip>) {
        let now = self.now_ns;
        self.next_tick_ns = now.saturating_add(TICK_NS);
        self.defrag.expire(now);
        let mut total = 0;
        for flow in self.flows.values_mut() {
            match &mut flow.transport {
                Transport::Tcp(conn) => conn.tick(now, &mut self.scratch),
                Transport::Udp(u) => u.tick(now, &mut self.scratch),
            }
            flow.emit(&mut self.scratch, out, &mut self.stats, None);
            flow.buffered = flow.measure();
            total += flow.buffered;
        }
        self.flow_bytes = total;
    }

    /// Evicts the least recently active flows while more than `max_total_bytes` is held.
    fn enforce_bounds(&mut self, out: &mut Vec<Roundtrip>) {
        while self.flow_bytes + self.defrag.buffered() > self.config.max_total_bytes {
            let Some((oldest, _)) = self.flows.oldest() else {
                break;
            };
            self.close(oldest, CloseReason::Evicted, out);
        }
    }

    /// Measures the flow in `idx` again after a packet.
    fn remeasure(&mut self, idx: u32) {
        let flow = self.flows.get_mut(idx);
        let now = flow.measure();
        self.flow_bytes = self.flow_bytes - flow.buffered.min(self.flow_bytes) + now;
        flow.buffered = now;
    }

    fn update_stats(&mut self) {
        self.stats.flows = self.flows.len() as u64;
        self.stats.buffered_bytes = (self.flow_bytes + self.defrag.buffered()) as u64;
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
    use crate::Proto;

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
    fn udp_pairs_go_to_one_parser() {
        let mut f = Feed::new(DecodeConfig::default());
        f.ip(&udp4(40000, 5353, b"Qname"));
        f.ip(&udp4(5353, 40000, b"Aanswer"));
        f.ip(&udp4(40001, 5353, b"not it"));
        assert_eq!(take_log(), ["> Qname", "< Aanswer"]);
        assert_eq!(f.out.len(), 1);
        let rt = &f.out[0];
        assert_eq!(
            (rt.proto, rt.client.port(), rt.flow),
            (Proto::Dns, 40000, 1)
        );
        assert_eq!(f.dec.stats().flows, 2);
        f.ip(&udp4(40002, 53, b"by port"));
        assert_eq!(take_log(), ["> by port"]);
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
    fn idle_flows_expire_by_packet_time() {
        let mut f = Feed::new(DecodeConfig {
            idle_timeout_ns: 10_000_000,
            ..DecodeConfig::default()
        });
        for p in req_packets() {
            f.ip(&p);
        }
        f.ts_ns += 5_000_000;
        f.ip(&udp4(40000, 5353, b"Qkeeps time going"));
        assert_eq!(take_log(), ["> REQ x", "> Qkeeps time going"]);
        f.ts_ns += 20_000_000;
        f.ip(&udp4(40001, 5353, b"Qlater"));
        assert_eq!(take_log(), ["close Idle", "close Idle", "> Qlater"]);
        assert_eq!(f.out[0].notes, ["closed Idle after 5 bytes"]);
        f.dec.advance(f.ts_ns + 20_000_000, &mut f.out);
        assert_eq!(take_log(), ["close Idle"]);
        assert_eq!(f.dec.stats().flows, 0);
    }

    #[test]
    fn max_flows_evicts_the_least_recently_active() {
        let mut f = Feed::new(DecodeConfig {
            max_flows: 2,
            ..DecodeConfig::default()
        });
        for port in [40000, 40001, 40002] {
            f.ip(&tcp4(port, 8000, 1, syn(), b""));
            f.ip(&tcp4(port, 8000, 2, Flags::default(), b"REQ"));
        }
        assert_eq!(take_log(), ["> REQ", "> REQ", "close Evicted", "> REQ"]);
        let s = f.dec.stats();
        assert_eq!((s.flows, s.flows_evicted), (2, 1));
        let rt = &f.out[0];
        assert_eq!((rt.flow, rt.complete), (1, false));
        assert!(
            rt.notes.iter().any(|n| n.contains("evicted")),
            "{:?}",
            rt.notes
        );
    }

    #[test]
    fn max_total_bytes_evicts_the_least_recently_active() {
        let mut f = Feed::new(DecodeConfig {
            max_total_bytes: 100,
            ..DecodeConfig::default()
        });
        for port in [40000, 40001] {
            f.ip(&tcp4(port, 8000, 1, syn(), b""));
            f.ip(&tcp4(port, 8000, 2, Flags::default(), b"REQ"));
            f.ip(&tcp4(port, 8000, 100, Flags::default(), &[b'x'; 60]));
        }
        assert_eq!(
            take_log(),
            [
                "> REQ",
                "> REQ",
                "> hole 95",
                &format!("> {}", "x".repeat(60)),
                "close Evicted"
            ]
        );
        let s = f.dec.stats();
        assert_eq!((s.flows, s.flows_evicted, s.buffered_bytes), (1, 1, 60));
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
