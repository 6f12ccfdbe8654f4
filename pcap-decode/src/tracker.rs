//! The flows of a decoder: TCP connections and UDP 5-tuples by key, made on their first
//! packet (ids from 1 in that order), kept in order of activity so that idle ones are closed
//! from the front and the least recently active is evicted to stay within `max_flows` and
//! `max_total_bytes`, and their parsers' exchanges turned into roundtrips.

use std::net::SocketAddr;

use etherparse::TcpSlice;

use crate::connection::{Flow, Transport};
use crate::decoder::DecodeConfig;
use crate::dispatch::{Candidates, Ctx};
use crate::flow::{FlowKey, FlowTable};
use crate::roundtrip::Roundtrip;
use crate::rules::Rules;
use crate::stream::{CloseReason, Exchange, Meta};
use crate::tcp::TcpConn;
use crate::udp::UdpFlow;

/// How often (packet time) parsers are asked about timeouts.
pub const TICK_NS: i64 = 1_000_000_000;
/// Quiet after which a UDP 5-tuple with nothing pending is closed.
const SETTLED_QUIET_NS: i64 = 1_000_000_000;

/// Every flow of one decoder.
pub struct Tracker {
    config: DecodeConfig,
    rules: Rules,
    candidates: &'static Candidates,
    table: FlowTable<Flow>,
    /// Exchanges of the flow at hand, before they become roundtrips (kept for its capacity).
    scratch: Vec<Exchange>,
    /// Slots of UDP flows to let go at a tick (kept to reuse its allocation).
    settled: Vec<u32>,
    /// The latest packet time seen (or given to `advance`).
    now_ns: i64,
    /// The latest packet's number, for events without a packet of their own.
    last_seq: u64,
    next_tick_ns: i64,
    next_id: u64,
    /// Bytes held by flows, as last measured.
    flow_bytes: usize,
    /// Roundtrips reported.
    pub roundtrips: u64,
    /// Flows evicted while still decoded.
    pub evicted: u64,
}

impl Tracker {
    /// No flows yet.
    pub fn new(config: DecodeConfig, candidates: &'static Candidates) -> Tracker {
        Tracker {
            rules: Rules::new(config.rules.clone()),
            config,
            candidates,
            table: FlowTable::default(),
            scratch: Vec::new(),
            settled: Vec::new(),
            now_ns: i64::MIN,
            last_seq: 0,
            next_tick_ns: i64::MIN,
            next_id: 1,
            flow_bytes: 0,
            roundtrips: 0,
            evicted: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DecodeConfig {
        &self.config
    }

    /// Flows tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes held by flows.
    pub fn buffered(&self) -> usize {
        self.flow_bytes
    }

    /// The time is now `now_ns` (never going back), and `seq` the latest packet.
    pub fn set_time(&mut self, now_ns: i64, seq: Option<u64>) {
        self.now_ns = self.now_ns.max(now_ns);
        if let Some(seq) = seq {
            self.last_seq = seq;
        }
    }

    /// A reader's gap: every open TCP direction gets a hole of unknown size, every decoded
    /// flow a note for its next roundtrip.
    pub fn gap(&mut self, dropped: u64, out: &mut Vec<Roundtrip>) {
        let meta = Meta {
            ts_ns: self.now_ns,
            seq: self.last_seq,
        };
        let note = format!(
            "{dropped} packets were skipped by a slow reader here: parts of this flow may be missing"
        );
        let mut total = 0;
        for flow in self.table.values_mut() {
            if flow.active() {
                flow.add_note(note.clone());
                if let Transport::Tcp(conn) = &mut flow.transport {
                    conn.gap(meta, &mut self.scratch);
                }
                flow.emit(&mut self.scratch, out, &mut self.roundtrips, None);
                flow.buffered = flow.measure();
            }
            total += flow.buffered;
        }
        self.flow_bytes = total;
    }

    /// Closes every flow (the end of input).
    pub fn finish(&mut self, out: &mut Vec<Roundtrip>) {
        for idx in self.table.slots_by_age() {
            self.close(idx, CloseReason::EndOfInput, out);
        }
    }

    pub fn tcp(
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
        let mut idx = self.table.find(&key);
        if let (Some(i), true) = (idx, new_connection) {
            // The same 5-tuple again: a new connection if the old one ended or began with
            // another ISN.
            let flow = self.table.get_mut(i);
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
        self.table.touch(idx, self.now_ns);
        let flow = self.table.get_mut(idx);
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
        flow.emit(&mut self.scratch, out, &mut self.roundtrips, None);
        self.remeasure(idx);
    }

    pub fn udp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        meta: Meta,
        out: &mut Vec<Roundtrip>,
    ) {
        let key = FlowKey::new(17, src, dst);
        let idx = match self.table.find(&key) {
            Some(i) => i,
            None => self.add_flow(key, src, dst, out, |ctx, _| {
                Transport::Udp(UdpFlow::new(ctx))
            }),
        };
        self.table.touch(idx, self.now_ns);
        let flow = self.table.get_mut(idx);
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
        flow.emit(&mut self.scratch, out, &mut self.roundtrips, None);
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
        while self.table.len() >= self.config.max_flows.max(1) {
            let Some((oldest, _)) = self.table.oldest() else {
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
        self.table.insert(key, flow, self.now_ns)
    }

    /// Closes the flow in `idx` and takes it out of the table.
    fn close(&mut self, idx: u32, reason: CloseReason, out: &mut Vec<Roundtrip>) {
        let mut flow = self.table.remove(idx);
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
            self.evicted += 1;
            format!(
                "flow evicted to stay within the decoder's bounds (max_flows = {}, \
                 max_total_bytes = {}): what followed was not decoded",
                self.config.max_flows, self.config.max_total_bytes
            )
        });
        flow.emit(
            &mut self.scratch,
            out,
            &mut self.roundtrips,
            note.as_deref(),
        );
    }

    /// The rules flows are decoded by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Closes flows without a packet for the idle timeout, least recently active first.
    pub fn expire_idle(&mut self, out: &mut Vec<Roundtrip>) {
        while let Some((idx, last)) = self.table.oldest() {
            if self.now_ns.saturating_sub(last) < self.config.idle_timeout_ns {
                break;
            }
            self.close(idx, CloseReason::Idle, out);
        }
    }

    /// Lets every parser report what timed out, once per [`TICK_NS`] of packet time;
    /// returns whether it was time.
    pub fn tick(&mut self, out: &mut Vec<Roundtrip>) -> bool {
        let now = self.now_ns;
        if now < self.next_tick_ns {
            return false;
        }
        self.next_tick_ns = now.saturating_add(TICK_NS);
        let mut total = 0;
        // A UDP 5-tuple quiet for a second with nothing pending is let go now rather than
        // at the idle timeout: a resolver's every lookup comes from a new port, and a busy
        // one makes tens of thousands a second.
        let quiet_ns = SETTLED_QUIET_NS.min(self.config.dns_timeout_ns);
        let mut settled = std::mem::take(&mut self.settled);
        for (idx, last_ns, flow) in self.table.iter_mut() {
            match &mut flow.transport {
                Transport::Tcp(conn) => conn.tick(now, &mut self.scratch),
                Transport::Udp(u) => {
                    u.tick(now, &mut self.scratch);
                    if u.settled() && now.saturating_sub(last_ns) >= quiet_ns {
                        settled.push(idx);
                    }
                }
            }
            flow.emit(&mut self.scratch, out, &mut self.roundtrips, None);
            flow.buffered = flow.measure();
            total += flow.buffered;
        }
        self.flow_bytes = total;
        for idx in settled.drain(..) {
            self.close(idx, CloseReason::Idle, out);
        }
        self.settled = settled;
        true
    }

    /// Evicts the least recently active flows while more than `max_total_bytes` is held,
    /// counting `other` bytes held outside the flows (IP fragments).
    pub fn enforce_bounds(&mut self, other: usize, out: &mut Vec<Roundtrip>) {
        while self.flow_bytes + other > self.config.max_total_bytes {
            let Some((oldest, _)) = self.table.oldest() else {
                break;
            };
            self.close(oldest, CloseReason::Evicted, out);
        }
    }

    /// Measures the flow in `idx` again after a packet.
    fn remeasure(&mut self, idx: u32) {
        let flow = self.table.get_mut(idx);
        let now = flow.measure();
        self.flow_bytes = self.flow_bytes - flow.buffered.min(self.flow_bytes) + now;
        flow.buffered = now;
    }
}

#[cfg(test)]
mod tests {
    use crate::decoder::DecodeConfig;
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
}
