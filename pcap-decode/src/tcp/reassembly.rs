//! One direction of a TCP connection: segments in, bytes out in order, each byte once.
//!
//! Sequence numbers are compared relative to the next byte expected (`next`), as signed
//! 32-bit distances, so that wraparound needs no special case. Segments ahead of `next` are
//! buffered (copied) until the bytes before them arrive; data at `next` with nothing
//! buffered is handed on without a copy. Where an overlap differs, the first copy wins.
//! What is never seen becomes a [`Event::Hole`]: when the peer acknowledges bytes this side
//! never showed us, when the buffer exceeds its bound, or when the direction is flushed.

use std::collections::VecDeque;

use crate::stream::Meta;

/// Largest jump forward an acknowledgement may cause: beyond it the number is taken as
/// noise rather than proof of lost bytes.
const MAX_ACK_JUMP: i64 = 1 << 30;

/// What a direction hands on, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Bytes at the current position, from the packet `Meta` names.
    Data(&'a [u8], Meta),
    /// Bytes never seen: `Some(n)` for a known count, `None` for an unknown amount (the
    /// start of a direction whose SYN was not seen, or a reader's gap).
    Hole(Option<u64>),
    /// The direction ended: FIN in sequence (false) or RST (true).
    End(bool),
}

/// A segment buffered ahead of the next byte expected.
#[derive(Debug)]
struct Pending {
    seq: u32,
    data: Vec<u8>,
    meta: Meta,
}

/// The header fields of one segment that reassembly needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Segment {
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Half {
    started: bool,
    /// The initial sequence number, when the direction's SYN was seen.
    isn: Option<u32>,
    /// Set until the first event of a direction whose start was not seen.
    announce_start: bool,
    /// After a reader's gap: the next segment ahead of `next` becomes the new position.
    resync: bool,
    next: u32,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    fin: Option<u32>,
    ended: bool,
    /// An overlapping copy differed from the one kept.
    pub differs: bool,
    /// Bytes skipped because the buffer hit its bound.
    pub overflowed: u64,
}

impl Half {
    /// Whether the direction's start (its SYN) was seen.
    pub fn syn_seen(&self) -> bool {
        self.isn.is_some()
    }

    /// The sequence number of the SYN (the ISN), when one was seen.
    pub fn isn(&self) -> Option<u32> {
        self.isn
    }

    /// Whether the direction ended (its FIN delivered in order, or it was flushed).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes buffered out of order.
    pub fn buffered(&self) -> usize {
        self.pending_bytes
    }

    /// One segment with the `captured` part of its payload and `missing` bytes more that
    /// were on the wire but not captured (cut by the snaplen). Buffers at most `limit`
    /// bytes out of order; past it, skips to the buffered data (a hole).
    pub fn segment<F: FnMut(Event<'_>)>(
        &mut self,
        seg: Segment,
        captured: &[u8],
        missing: u32,
        meta: Meta,
        limit: usize,
        emit: &mut F,
    ) {
        let len = captured.len() as u32 + missing;
        if !self.started {
            if seg.syn {
                self.isn = Some(seg.seq);
                self.next = seg.seq.wrapping_add(1);
            } else if len > 0 || seg.fin {
                self.next = seg.seq;
                self.announce_start = true;
            } else {
                return;
            }
            self.started = true;
        }
        if self.ended {
            return;
        }
        // The SYN takes one sequence number; data it carries follows it.
        let seq = seg.seq.wrapping_add(seg.syn as u32);
        if self.resync && len > 0 && distance(self.next, seq) > 0 {
            self.next = seq;
            self.resync = false;
        }
        if seg.fin && self.fin.is_none() {
            let fin = seq.wrapping_add(len);
            if distance(self.next, fin) >= 0 {
                self.fin = Some(fin);
            }
        }
        if len > 0 {
            self.add(seq, captured, missing, meta, emit);
            self.drain(emit);
            self.bound(limit, emit);
        }
        self.check_end(emit);
    }

    /// The peer's SYN-ACK acknowledged this direction's SYN (which was not seen): its
    /// first byte is `next`.
    pub fn start_at(&mut self, next: u32) {
        if !self.started {
            self.started = true;
            self.isn = Some(next.wrapping_sub(1));
            self.next = next;
        }
    }

    /// The peer acknowledged everything before `ack`: bytes of this direction before it
    /// that never arrived are a hole.
    pub fn acked<F: FnMut(Event<'_>)>(&mut self, ack: u32, emit: &mut F) {
        if !self.started || self.ended || self.resync {
            return;
        }
        let mut target = ack;
        if let Some(fin) = self.fin {
            // The FIN takes a sequence number of its own.
            if distance(fin, target) > 0 {
                target = fin;
            }
        }
        let jump = distance(self.next, target);
        if jump <= 0 || jump > MAX_ACK_JUMP {
            return;
        }
        self.skip_to(target, emit);
        self.drain(emit);
        self.check_end(emit);
    }

    /// Hands on everything buffered, with holes for what is missing between, up to the FIN
    /// when one was seen (for a RST or a close: nothing more will come).
    pub fn flush<F: FnMut(Event<'_>)>(&mut self, emit: &mut F) {
        if !self.started || self.ended {
            return;
        }
        while let Some(first) = self.pending.front() {
            let to = first.seq;
            self.skip_to(to, emit);
            self.drain(emit);
        }
        if let Some(fin) = self.fin {
            if distance(self.next, fin) > 0 {
                self.skip_to(fin, emit);
            }
        }
        self.check_end(emit);
    }

    /// A reader's gap: what is buffered is dropped (the caller reports the hole), and the
    /// direction picks up at the next segment ahead of where it was.
    pub fn gap(&mut self) {
        if self.started && !self.ended {
            self.pending.clear();
            self.pending_bytes = 0;
            self.resync = true;
            self.fin = None;
        }
    }

    /// Marks the direction ended without an event (the connection is being closed).
    pub fn stop(&mut self) {
        self.ended = true;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    fn add<F: FnMut(Event<'_>)>(
        &mut self,
        seq: u32,
        data: &[u8],
        missing: u32,
        meta: Meta,
        emit: &mut F,
    ) {
        let off = distance(self.next, seq);
        let end = off + data.len() as i64 + i64::from(missing);
        if end <= 0 {
            return; // a retransmission of bytes already handed on
        }
        if off <= 0 && self.pending.is_empty() {
            // The common case: in order, nothing buffered.
            let skip = (-off) as usize;
            if skip < data.len() {
                self.deliver(&data[skip..], meta, emit);
            }
            let hole = end - (off + data.len() as i64).max(0);
            if hole > 0 {
                self.hole(Some(hole as u64), emit);
                self.next = self.next.wrapping_add(hole as u32);
            }
            return;
        }
        // Buffer the parts not already held (the first copy wins).
        let start = (-off).max(0) as usize;
        if start >= data.len() {
            return;
        }
        self.insert(seq.wrapping_add(start as u32), &data[start..], meta);
    }

    /// Inserts `data` at `seq` (at or ahead of `next`) where nothing is buffered yet.
    fn insert(&mut self, mut seq: u32, mut data: &[u8], meta: Meta) {
        let mut i = 0;
        while !data.is_empty() {
            let rel = distance(self.next, seq);
            let Some(p) = self.pending.get(i) else {
                self.put(i, seq, data, meta);
                return;
            };
            let p_start = distance(self.next, p.seq);
            let p_end = p_start + p.data.len() as i64;
            if rel + (data.len() as i64) <= p_start {
                self.put(i, seq, data, meta);
                return;
            }
            if rel < p_start {
                let head = (p_start - rel) as usize;
                self.put(i, seq, &data[..head], meta);
                i += 1;
                seq = seq.wrapping_add(head as u32);
                data = &data[head..];
                continue;
            }
            let p = &self.pending[i];
            if rel < p_end {
                let within = (rel - p_start) as usize;
                let n = ((p_end - rel) as usize).min(data.len());
                if p.data[within..within + n] != data[..n] {
                    self.differs = true;
                }
                seq = seq.wrapping_add(n as u32);
                data = &data[n..];
            }
            i += 1;
        }
    }

    fn put(&mut self, at: usize, seq: u32, data: &[u8], meta: Meta) {
        self.pending_bytes += data.len();
        self.pending.insert(
            at,
            Pending {
                seq,
                data: data.to_vec(),
                meta,
            },
        );
    }

    /// Hands on buffered segments that start at or before `next`.
    fn drain<F: FnMut(Event<'_>)>(&mut self, emit: &mut F) {
        while let Some(first) = self.pending.front() {
            let off = distance(self.next, first.seq);
            if off > 0 {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= p.data.len();
            let skip = (-off) as usize;
            if skip < p.data.len() {
                self.deliver(&p.data[skip..], p.meta, emit);
            }
        }
    }

    /// While over `limit`, skips to the first buffered segment and hands it on.
    fn bound<F: FnMut(Event<'_>)>(&mut self, limit: usize, emit: &mut F) {
        while self.pending_bytes > limit {
            let Some(first) = self.pending.front() else {
                break;
            };
            let to = first.seq;
            self.overflowed += distance(self.next, to).max(0) as u64;
            self.skip_to(to, emit);
            self.drain(emit);
        }
    }

    /// Moves `next` to `target` (ahead of it): buffered data on the way is handed on, the
    /// rest is reported as holes.
    fn skip_to<F: FnMut(Event<'_>)>(&mut self, target: u32, emit: &mut F) {
        loop {
            let left = distance(self.next, target);
            if left <= 0 {
                return;
            }
            match self.pending.front().map(|p| p.seq) {
                Some(seq) if distance(self.next, seq) <= 0 => self.drain(emit),
                Some(seq) if distance(seq, target) > 0 => {
                    let gap = distance(self.next, seq);
                    self.hole(Some(gap as u64), emit);
                    self.next = seq;
                }
                _ => {
                    self.hole(Some(left as u64), emit);
                    self.next = target;
                }
            }
        }
    }

    fn deliver<F: FnMut(Event<'_>)>(&mut self, data: &[u8], meta: Meta, emit: &mut F) {
        self.announce(emit);
        self.next = self.next.wrapping_add(data.len() as u32);
        emit(Event::Data(data, meta));
    }

    fn hole<F: FnMut(Event<'_>)>(&mut self, len: Option<u64>, emit: &mut F) {
        self.announce(emit);
        emit(Event::Hole(len));
    }

    fn announce<F: FnMut(Event<'_>)>(&mut self, emit: &mut F) {
        if self.announce_start {
            self.announce_start = false;
            emit(Event::Hole(None));
        }
    }

    fn check_end<F: FnMut(Event<'_>)>(&mut self, emit: &mut F) {
        if !self.ended && self.fin.is_some_and(|fin| distance(fin, self.next) >= 0) {
            self.ended = true;
            self.pending.clear();
            self.pending_bytes = 0;
            emit(Event::End(false));
        }
    }
}

/// How far `to` is ahead of `from` in sequence space (negative: behind).
fn distance(from: u32, to: u32) -> i64 {
    i64::from(to.wrapping_sub(from) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds segments (seq, payload, missing) to one direction and logs what comes out.
    struct Run {
        half: Half,
        log: Vec<String>,
        limit: usize,
    }

    impl Run {
        fn new(limit: usize) -> Run {
            Run {
                half: Half::default(),
                log: Vec::new(),
                limit,
            }
        }

        fn seg(&mut self, seq: u32, syn: bool, fin: bool, data: &[u8], missing: u32) {
            let meta = Meta {
                ts_ns: 0,
                seq: u64::from(seq),
            };
            let log = &mut self.log;
            self.half.segment(
                Segment { seq, syn, fin },
                data,
                missing,
                meta,
                self.limit,
                &mut |ev| log.push(show(ev)),
            );
        }

        fn data(&mut self, seq: u32, data: &str) {
            self.seg(seq, false, false, data.as_bytes(), 0);
        }

        fn acked(&mut self, ack: u32) {
            let log = &mut self.log;
            self.half.acked(ack, &mut |ev| log.push(show(ev)));
        }

        fn flush(&mut self) {
            let log = &mut self.log;
            self.half.flush(&mut |ev| log.push(show(ev)));
        }

        fn take(&mut self) -> Vec<String> {
            std::mem::take(&mut self.log)
        }
    }

    fn show(ev: Event<'_>) -> String {
        match ev {
            Event::Data(d, _) => String::from_utf8_lossy(d).into_owned(),
            Event::Hole(Some(n)) => format!("hole {n}"),
            Event::Hole(None) => "hole ?".to_string(),
            Event::End(reset) => format!("end {reset}"),
        }
    }

    #[test]
    fn in_order_after_a_syn() {
        let mut r = Run::new(1000);
        r.seg(100, true, false, b"", 0);
        r.data(101, "abc");
        r.data(104, "def");
        r.seg(107, false, true, b"", 0);
        assert_eq!(r.take(), ["abc", "def", "end false"]);
        assert_eq!(r.half.isn(), Some(100));
        assert!(r.half.ended());
        r.data(107, "late");
        assert!(r.take().is_empty());
    }

    #[test]
    fn out_of_order_is_put_in_order_and_buffered_within_the_bound() {
        let mut r = Run::new(1000);
        r.seg(0, true, false, b"", 0);
        r.data(7, "ghi");
        r.data(4, "def");
        assert!(r.take().is_empty());
        assert_eq!(r.half.buffered(), 6);
        r.data(1, "abc");
        assert_eq!(r.take(), ["abc", "def", "ghi"]);
        assert_eq!(r.half.buffered(), 0);
    }

    #[test]
    fn retransmissions_and_overlaps_are_delivered_once_first_copy_wins() {
        let mut r = Run::new(1000);
        r.seg(0, true, false, b"", 0);
        r.data(1, "abcd");
        r.data(1, "abcd");
        r.data(3, "cdef");
        assert_eq!(r.take(), ["abcd", "ef"]);
        assert!(!r.half.differs);
        // Buffered first, then a differing copy over it: the first stays.
        r.data(9, "ijkl");
        r.data(8, "hXXkl");
        assert!(r.half.differs);
        assert!(r.take().is_empty());
        r.data(7, "gh");
        assert_eq!(r.take(), ["g", "h", "ijkl"]);
        // An in-order segment over buffered data: its own bytes up to the buffer, then the
        // buffered copy, then its rest.
        r.data(15, "pq");
        r.data(13, "MNOPQRS");
        assert_eq!(r.take(), ["MN", "pq", "QRS"]);
    }

    #[test]
    fn no_syn_starts_at_the_first_segment_after_an_unknown_hole() {
        let mut r = Run::new(1000);
        r.seg(5000, false, false, b"", 0);
        assert!(r.take().is_empty(), "a bare ACK does not start a direction");
        r.data(5000, "mid");
        r.data(4990, "old bytes ");
        r.data(5003, "dle");
        assert_eq!(r.take(), ["hole ?", "mid", "dle"]);
        assert_eq!(r.half.isn(), None);
    }

    #[test]
    fn a_syn_ack_tells_where_a_direction_starts() {
        let mut r = Run::new(1000);
        r.half.start_at(51);
        assert!(r.half.syn_seen());
        r.data(55, "efg");
        r.data(51, "abcd");
        assert_eq!(r.take(), ["abcd", "efg"]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Run::new(1000);
        r.seg(u32::MAX - 2, true, false, b"", 0);
        r.data(1, "after");
        r.data(u32::MAX - 1, "xyz");
        assert_eq!(r.take(), ["xyz", "after"]);
        r.seg(6, false, true, b"", 0);
        assert_eq!(r.take(), ["end false"]);
    }

    #[test]
    fn an_ack_past_missing_bytes_makes_a_hole() {
        let mut r = Run::new(1000);
        r.seg(0, true, false, b"", 0);
        r.data(1, "ab");
        r.data(8, "hi");
        r.acked(6);
        assert_eq!(r.take(), ["ab", "hole 3"]);
        r.acked(10);
        assert_eq!(r.take(), ["hole 2", "hi"]);
        r.acked(5);
        r.acked(0x8000_0000);
        assert!(r.take().is_empty(), "old and absurd ACKs are ignored");
        // The ACK of a FIN after missing data: a hole, then the end.
        r.seg(20, false, true, b"", 0);
        r.acked(21);
        assert_eq!(r.take(), ["hole 10", "end false"]);
    }

    #[test]
    fn a_full_buffer_skips_to_what_it_holds() {
        let mut r = Run::new(8);
        r.seg(0, true, false, b"", 0);
        r.data(11, "12345");
        r.data(21, "abcdef");
        assert_eq!(r.take(), ["hole 10", "12345"]);
        assert_eq!(r.half.overflowed, 10);
        assert_eq!(r.half.buffered(), 6);
    }

    #[test]
    fn a_flush_fills_holes_up_to_the_fin() {
        let mut r = Run::new(1000);
        r.seg(0, true, false, b"", 0);
        r.data(4, "def");
        r.seg(10, false, true, b"jk", 0);
        r.flush();
        assert_eq!(r.take(), ["hole 3", "def", "hole 3", "jk", "end false"]);
    }

    #[test]
    fn bytes_cut_by_the_snaplen_are_a_hole() {
        let mut r = Run::new(1000);
        r.seg(0, true, false, b"", 0);
        r.seg(1, false, false, b"abc", 7);
        r.data(11, "next");
        assert_eq!(r.take(), ["abc", "hole 7", "next"]);
    }

    #[test]
    fn after_a_gap_the_next_segment_ahead_is_the_new_position() {
        let mut r = Run::new(1000);
        r.seg(0, true, false, b"", 0);
        r.data(1, "ab");
        r.data(10, "buffered");
        r.half.gap();
        assert_eq!(r.half.buffered(), 0);
        r.data(2, "b-again");
        r.data(500, "resumed");
        r.data(3, "old");
        assert_eq!(r.take(), ["ab", "-again", "resumed"]);
    }
}
