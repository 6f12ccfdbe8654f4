//! One TCP connection: both directions reassembled ([`Half`]), and what their bytes go to:
//! recognition while the protocol is not known, then the protocol's [`StreamParser`].
//!
//! Sides are numbered as the flow saw them (0 sent the flow's first packet); which side is
//! the client is learnt from the SYN, else from recognition, else from a port.

pub mod reassembly;
mod sink;

use etherparse::TcpSlice;

use crate::dispatch::{self, Ctx, Recognition};
use crate::stream::{CloseReason, Exchange, Meta};
use reassembly::{Event, Half, Segment};
use sink::{deliver, dir, install, Sink};

/// One TCP connection.
pub struct TcpConn {
    half: [Half; 2],
    client: Option<usize>,
    sink: Sink,
    closed: bool,
}

impl TcpConn {
    /// A connection; `syn_client` is the client's side when its first packet was a SYN.
    pub fn new(ctx: &Ctx<'_>, syn_client: Option<usize>, out: &mut Vec<Exchange>) -> TcpConn {
        let mut client = syn_client;
        let sink = if dispatch::stream_excluded(ctx) {
            Sink::Ignored
        } else if let Some(choice) = dispatch::stream_by_rule(ctx, client) {
            let meta = Meta::default();
            Sink::Parser(install(
                choice,
                Recognition::default(),
                &mut client,
                meta,
                out,
            ))
        } else {
            Sink::Recognising(Box::default())
        };
        TcpConn {
            half: [Half::default(), Half::default()],
            client,
            sink,
            closed: false,
        }
    }

    /// Whether the connection ended (both FINs, a RST, or a close): its later packets are
    /// stragglers.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Whether the connection is decoded or may still be (not closed, not ignored).
    pub fn active(&self) -> bool {
        !self.closed && !matches!(self.sink, Sink::Ignored)
    }

    /// The ISN of side 0's SYN (the client's), when seen.
    pub fn client_isn(&self, side: usize) -> Option<u32> {
        self.half[side].isn()
    }

    /// The client's side: as learnt, else the side with the higher port.
    pub fn client(&self, ports: [u16; 2]) -> usize {
        self.client
            .unwrap_or(if ports[0] > ports[1] { 0 } else { 1 })
    }

    /// Bytes held: out-of-order segments, first bytes kept for recognition, parser buffers.
    pub fn buffered(&self) -> usize {
        self.half[0].buffered() + self.half[1].buffered() + self.sink_buffered()
    }

    /// Whether an overlapping copy differed, and how many bytes the buffer bound skipped;
    /// both reset.
    pub fn take_anomalies(&mut self) -> (bool, u64) {
        let differs = self.half.iter().any(|h| h.differs);
        let skipped = self.half.iter().map(|h| h.overflowed).sum();
        for h in &mut self.half {
            h.differs = false;
            h.overflowed = 0;
        }
        (differs, skipped)
    }

    fn sink_buffered(&self) -> usize {
        match &self.sink {
            Sink::Recognising(r) => r.buffered(),
            Sink::Parser(p) => p.buffered(),
            Sink::Ignored => 0,
        }
    }

    /// One segment `side` sent.
    pub fn segment(
        &mut self,
        side: usize,
        tcp: &TcpSlice<'_>,
        missing: u32,
        meta: Meta,
        ctx: &Ctx<'_>,
        out: &mut Vec<Exchange>,
    ) {
        if self.closed {
            return;
        }
        if tcp.syn() && self.client.is_none() {
            self.client = Some(if tcp.ack() { 1 - side } else { side });
        }
        if let Sink::Ignored = self.sink {
            self.closed = tcp.rst();
            return;
        }
        if tcp.syn() && tcp.ack() {
            // The SYN it answers may have been missed: its ACK says where the client starts.
            self.half[1 - side].start_at(tcp.acknowledgment_number());
        }
        let start_seen = tcp.syn() || self.half.iter().any(Half::syn_seen);
        let others = self.half[1 - side].buffered() + self.sink_buffered();
        let limit = ctx.config.max_flow_bytes.saturating_sub(others);
        let seg = Segment {
            seq: tcp.sequence_number(),
            syn: tcp.syn(),
            fin: tcp.fin(),
        };
        {
            let TcpConn {
                half, client, sink, ..
            } = self;
            let mut to_sink =
                |s: usize, ev: Event<'_>| deliver(sink, client, s, ev, meta, start_seen, ctx, out);
            half[side].segment(seg, tcp.payload(), missing, meta, limit, &mut |ev| {
                to_sink(side, ev)
            });
            if tcp.ack() {
                half[1 - side].acked(tcp.acknowledgment_number(), &mut |ev| to_sink(1 - side, ev));
            }
        }
        if let Sink::Ignored = self.sink {
            self.half[0].stop();
            self.half[1].stop();
        }
        if tcp.rst() {
            self.finish(Some(side), CloseReason::Ended, meta, ctx, out);
        } else if self.half[0].ended() && self.half[1].ended() {
            self.finish(None, CloseReason::Ended, meta, ctx, out);
        }
    }

    /// A reader's gap: every direction lost an unknown number of bytes.
    pub fn gap(&mut self, meta: Meta, out: &mut Vec<Exchange>) {
        if self.closed {
            return;
        }
        for side in 0..2 {
            if self.half[side].ended() {
                continue;
            }
            self.half[side].gap();
            match &mut self.sink {
                Sink::Parser(p) => p.hole(dir(self.client, side), None, meta, out),
                Sink::Recognising(r) => {
                    if r.first[side].is_empty() && r.lost[side].is_none() {
                        r.unknown_start[side] = true;
                    } else {
                        r.lose(side, None);
                    }
                }
                Sink::Ignored => {}
            }
        }
    }

    /// Time moved on: the parser reports what timed out.
    pub fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        if let Sink::Parser(p) = &mut self.sink {
            p.tick(now_ns, out);
        }
    }

    /// Ends the connection: what is buffered is handed on with holes for what is missing,
    /// `reset_by`'s direction ends with a RST, and the parser reports what is still open.
    pub fn finish(
        &mut self,
        reset_by: Option<usize>,
        reason: CloseReason,
        meta: Meta,
        ctx: &Ctx<'_>,
        out: &mut Vec<Exchange>,
    ) {
        if self.closed {
            return;
        }
        self.closed = true;
        let TcpConn {
            half, client, sink, ..
        } = self;
        if !matches!(sink, Sink::Ignored) {
            for (side, h) in half.iter_mut().enumerate() {
                h.flush(&mut |ev| deliver(sink, client, side, ev, meta, true, ctx, out));
            }
        }
        if let Sink::Recognising(r) = sink {
            // Nothing recognised by content: a well-known port may still name the protocol.
            if r.first.iter().all(Vec::is_empty) && r.lost.iter().all(Option::is_none) {
                *sink = Sink::Ignored;
            }
        }
        if let Sink::Recognising(r) = sink {
            let r = std::mem::take(r);
            *sink = match dispatch::stream_by_port(ctx, *client) {
                Some(choice) => Sink::Parser(install(choice, *r, client, meta, out)),
                None => Sink::Ignored,
            };
        }
        if let Sink::Parser(p) = sink {
            if let Some(side) = reset_by {
                if !half[side].ended() {
                    p.end(dir(*client, side), true, meta, out);
                }
            }
            p.close(reason, meta, out);
        }
        half[0].stop();
        half[1].stop();
        *sink = Sink::Ignored;
    }
}

#[cfg(test)]
mod tests {
    use crate::decoder::DecodeConfig;
    use crate::testing::{ack, fin_ack, syn_ack, take_log, Feed, Flags, RST, SYN};
    use crate::Proto;

    /// The client is port 40000 (10.0.0.1), the server port 8000 (10.0.0.2).
    const C: u16 = 40000;
    const S: u16 = 8000;

    fn handshake(f: &mut Feed) {
        f.tcp(C, S, 100, SYN, "");
        f.tcp(S, C, 500, syn_ack(101), "");
        f.tcp(C, S, 101, ack(501), "");
    }

    #[test]
    fn a_whole_connection_in_order() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ one");
        f.tcp(S, C, 501, ack(108), "RSP two");
        f.tcp(C, S, 108, fin_ack(508), "");
        f.tcp(S, C, 508, fin_ack(109), "");
        f.tcp(C, S, 109, ack(509), "");
        assert_eq!(
            take_log(),
            ["> REQ one", "< RSP two", "> fin", "< fin", "close Ended"]
        );
        assert_eq!(f.out.len(), 1);
        let rt = &f.out[0];
        assert_eq!(rt.client.to_string(), "10.0.0.1:40000");
        assert_eq!(rt.server.to_string(), "10.0.0.2:8000");
        assert_eq!((rt.flow, rt.packets, rt.proto), (1, [4, 5], Proto::Http));
        assert_eq!(rt.duration_ns, 1_000_000);
        let s = f.dec.stats();
        assert_eq!((s.roundtrips, s.buffered_bytes), (1, 0));
        // A straggler of the closed connection does not start a flow.
        f.tcp(C, S, 109, ack(509), "");
        f.finish();
        assert!(take_log().is_empty());
    }

    #[test]
    fn out_of_order_segments_and_retransmissions() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 104, ack(501), " two");
        f.tcp(C, S, 101, ack(501), "REQ");
        f.tcp(C, S, 101, ack(501), "REQ two");
        f.tcp(C, S, 108, ack(501), "!");
        assert_eq!(take_log(), ["> REQ", ">  two", "> !"]);
        assert!(f.out.is_empty());
    }

    #[test]
    fn a_differing_overlap_is_noted_once() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        f.tcp(C, S, 106, ack(501), "abc");
        f.tcp(C, S, 106, ack(501), "xyz");
        f.tcp(C, S, 104, ack(501), "--abc");
        f.finish();
        assert_eq!(take_log(), ["> REQ", "> --", "> abc", "close EndOfInput"]);
        assert_eq!(f.out.len(), 1);
        assert!(
            f.out[0].notes.iter().any(|n| n.contains("differ")),
            "{:?}",
            f.out[0].notes
        );
    }

    #[test]
    fn an_ack_of_bytes_never_seen_is_a_hole() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        f.tcp(C, S, 114, ack(501), "tail");
        f.tcp(S, C, 501, ack(118), "");
        assert_eq!(take_log(), ["> REQ", "> hole 10", "> tail"]);
    }

    #[test]
    fn missing_data_at_close_is_a_hole() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        f.tcp(C, S, 110, fin_ack(501), "end");
        f.finish();
        assert_eq!(
            take_log(),
            ["> REQ", "> hole 6", "> end", "> fin", "close EndOfInput"]
        );
    }

    #[test]
    fn without_a_syn_each_direction_starts_after_an_unknown_hole() {
        let mut f = Feed::new(DecodeConfig::default());
        f.tcp(S, C, 7000, ack(9000), "RSP first seen");
        f.tcp(C, S, 9000, ack(7014), "REQ next");
        f.finish();
        assert_eq!(
            take_log(),
            [
                "< hole ?",
                "< RSP first seen",
                "> hole ?",
                "> REQ next",
                "close EndOfInput"
            ]
        );
        let rt = &f.out[0];
        assert_eq!(rt.client.port(), C, "the recogniser named the client");
    }

    #[test]
    fn a_syn_ack_without_its_syn_still_gives_the_client_start() {
        let mut f = Feed::new(DecodeConfig::default());
        f.tcp(S, C, 500, syn_ack(101), "");
        f.tcp(C, S, 101, ack(501), "REQ");
        f.finish();
        assert_eq!(take_log(), ["> REQ", "close EndOfInput"]);
        assert_eq!(f.out[0].client.port(), C);
    }

    #[test]
    fn a_rst_ends_the_connection() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        f.tcp(S, C, 501, RST, "");
        assert_eq!(take_log(), ["> REQ", "< rst", "close Ended"]);
        assert_eq!(f.out.len(), 1);
    }

    #[test]
    fn a_new_syn_on_the_same_ports_is_a_new_flow() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ a");
        f.tcp(C, S, 100, SYN, "");
        f.tcp(C, S, 5000, SYN, "");
        f.tcp(C, S, 5001, ack(1), "REQ b");
        f.finish();
        assert_eq!(
            take_log(),
            ["> REQ a", "close Ended", "> REQ b", "close EndOfInput"]
        );
        assert_eq!(f.out.iter().map(|r| r.flow).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn unrecognised_connections_are_ignored_without_buffering() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), &"\u{16}".repeat(300));
        f.tcp(C, S, 1000, ack(501), "REQ far ahead");
        assert_eq!(f.dec.stats().buffered_bytes, 0);
        f.finish();
        assert!(take_log().is_empty());
        assert!(f.out.is_empty());
    }

    #[test]
    fn a_well_known_port_decides_when_content_does_not() {
        let mut f = Feed::new(DecodeConfig::default());
        f.tcp(C, 9999, 1, SYN, "");
        f.tcp(C, 9999, 2, ack(1), "tiny");
        f.finish();
        assert_eq!(take_log(), ["> tiny", "close EndOfInput"]);
    }

    #[test]
    fn rules_pick_by_port_or_exclude() {
        let config = DecodeConfig {
            rules: vec!["http:8000".parse().unwrap()],
            ..DecodeConfig::default()
        };
        let mut f = Feed::new(config.clone());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "not a request line");
        assert_eq!(take_log(), ["> not a request line"]);
        let mut f = Feed::new(DecodeConfig {
            rules: vec!["http:80".parse().unwrap()],
            ..config
        });
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        f.finish();
        assert!(take_log().is_empty());
    }

    #[test]
    fn a_gap_is_an_unknown_hole_both_ways() {
        let mut f = Feed::new(DecodeConfig::default());
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        f.dec.gap(5, f.ts_ns, &mut f.out);
        f.tcp(C, S, 300, ack(501), "after");
        f.finish();
        assert_eq!(
            take_log(),
            [
                "> REQ",
                "> hole ?",
                "< hole ?",
                "> after",
                "close EndOfInput"
            ]
        );
        assert!(f.out[0].notes.iter().any(|n| n.contains("5 packets")));
    }

    #[test]
    fn out_of_order_data_is_bounded_per_flow() {
        let mut f = Feed::new(DecodeConfig {
            max_flow_bytes: 64,
            ..DecodeConfig::default()
        });
        handshake(&mut f);
        f.tcp(C, S, 101, ack(501), "REQ");
        for i in 0..10u32 {
            f.tcp(C, S, 200 + i * 10, ack(501), "0123456789");
            assert!(f.dec.stats().buffered_bytes <= 64);
        }
        f.finish();
        let log = take_log();
        assert_eq!(log[..3], ["> REQ", "> hole 96", "> 0123456789"]);
        assert!(f.out[0].notes.iter().any(|n| n.contains("max_flow_bytes")));
    }

    #[test]
    fn a_flag_soup_never_panics() {
        let mut f = Feed::new(DecodeConfig {
            max_flow_bytes: 32,
            max_total_bytes: 64,
            max_flows: 3,
            ..DecodeConfig::default()
        });
        let mut x = 7u32;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let flags = Flags {
                syn: x & 1 != 0,
                ack: (x & 2 != 0).then_some(x >> 3),
                fin: x & 4 != 0,
                rst: x & 0x3f == 0x38,
            };
            let (a, b) = if x & 8 != 0 {
                (C, S)
            } else {
                (S, C + (x as u16 & 3))
            };
            let payload = ["REQ", "RSP", "", "xx", "0123456789abcdef"][(x >> 9) as usize % 5];
            f.tcp(a, b, (x >> 5) & 0xff, flags, payload);
        }
        f.finish();
        assert_eq!(f.dec.stats().buffered_bytes, 0);
    }
}
