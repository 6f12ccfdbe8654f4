//! Merging the packets of several captures into one stream in time order. Each source
//! (a lane) delivers its packets in its own order, in batches; the merge always writes the
//! earliest packet at the head of a lane (ties: the first lane given, then the order within
//! the lane), which is exact when it can see a head in every lane. A replay waits for every
//! lane, so its order is exact. Live lanes cannot be waited for (a quiet capture would stop
//! the others), so a packet is held at most a reorder window after it arrived; a packet
//! from another lane that arrives later than that, yet is older, comes out after it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pcap_core::savefile::{RecordHeader, RECORD_HEADER_LEN};

use crate::sources::Batch;

/// How long `listen` holds a live packet so that older packets of other captures can
/// overtake it. pcapd hands a packet to its readers within a few milliseconds of capture
/// (libpcap's 1 ms ring timeout, then one batch); what differs between sources is the way
/// to this program (TLS to a remote, its round trip, a busy daemon). 200 ms covers those
/// on any LAN or nearby site, and is still short enough for Wireshark's live view to feel
/// immediate. Clocks of different hosts are compared as they are: keep them in sync (NTP).
pub const LIVE_WINDOW: Duration = Duration::from_millis(200);

/// A packet the merge chose to write next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub lane: usize,
    pub ts_ns: i64,
    pub origlen: u32,
    pub data: Bytes,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Write(Merged),
    /// Wait for a batch of a lane that has none (see [`Merge::starving`]), or until the
    /// instant given, when the head packet may go out anyway.
    Wait(Option<Instant>),
    /// Every lane has ended and every packet was written.
    Done,
}

/// The batch a lane is being read from.
struct Head {
    batch: Batch,
    /// Offset of the next record in the batch.
    at: usize,
    /// The next record: its time, original length and where its data lies.
    next: Option<(i64, u32, std::ops::Range<usize>)>,
}

impl Head {
    fn new(batch: Batch) -> Self {
        let mut head = Head {
            batch,
            at: 0,
            next: None,
        };
        head.advance();
        head
    }

    /// Reads the record at `at` (none at the end of the batch, or on a broken one).
    fn advance(&mut self) {
        let rest = &self.batch.records[self.at..];
        self.next = rest
            .get(..RECORD_HEADER_LEN)
            .map(|h| RecordHeader::decode(h.try_into().expect("16 bytes")))
            .and_then(|h| {
                let start = self.at + RECORD_HEADER_LEN;
                let end = start + h.caplen as usize;
                (end <= self.batch.records.len()).then(|| {
                    let ts = h.ts_ns(self.batch.resolution);
                    (ts, h.origlen, start..end)
                })
            });
    }
}

/// One lane: the batch at its head, and whether more may come.
#[derive(Default)]
struct Lane {
    head: Option<Head>,
    ended: bool,
}

/// The state of a merge of several lanes.
pub struct Merge {
    lanes: Vec<Lane>,
    /// `None`: wait for every lane (exact order); else how long a packet may be held.
    window: Option<Duration>,
}

impl Merge {
    /// A merge of `lanes` lanes; `window` as for [`LIVE_WINDOW`], `None` for exact order.
    pub fn new(lanes: usize, window: Option<Duration>) -> Self {
        Merge {
            lanes: (0..lanes).map(|_| Lane::default()).collect(),
            window,
        }
    }

    /// Lanes with nothing at their head that may still deliver: batches to wait for.
    pub fn starving(&self) -> impl Iterator<Item = usize> + '_ {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| l.head.is_none() && !l.ended)
            .map(|(i, _)| i)
    }

    /// Puts a batch at the head of `lane`, which must be starving.
    pub fn feed(&mut self, lane: usize, batch: Batch) {
        let l = &mut self.lanes[lane];
        debug_assert!(l.head.is_none(), "lane {lane} fed while it has a head");
        let head = Head::new(batch);
        l.head = head.next.is_some().then_some(head);
    }

    /// Marks `lane` as ended: it delivers nothing more.
    pub fn end(&mut self, lane: usize) {
        self.lanes[lane].ended = true;
    }

    /// The next step at time `now`.
    pub fn step(&mut self, now: Instant) -> Step {
        let earliest = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let h = l.head.as_ref()?;
                let (ts, _, _) = h.next.as_ref()?;
                Some((*ts, i, h.batch.arrived))
            })
            .min_by_key(|(ts, i, _)| (*ts, *i));
        let waiting = self.starving().next().is_some();
        let (lane, arrived) = match (earliest, waiting) {
            (None, false) => return Step::Done,
            (None, true) => return Step::Wait(None),
            (Some((_, lane, _)), false) => (lane, None),
            (Some((_, lane, arrived)), true) => match self.window {
                None => return Step::Wait(None),
                Some(w) => (lane, Some(arrived + w)),
            },
        };
        if let Some(due) = arrived.filter(|due| now < *due) {
            return Step::Wait(Some(due));
        }
        Step::Write(self.take(lane))
    }

    /// Takes the head packet of `lane`, which has one.
    fn take(&mut self, lane: usize) -> Merged {
        let l = &mut self.lanes[lane];
        let head = l.head.as_mut().expect("a lane with a head");
        let (ts_ns, origlen, range) = head.next.take().expect("a head packet");
        let data = head.batch.records.slice(range.clone());
        head.at = range.end;
        head.advance();
        if head.next.is_none() {
            l.head = None;
        }
        Merged {
            lane,
            ts_ns,
            origlen,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::savefile::{encode_record, Resolution};

    /// A batch of records at these times (µs or ns), each holding its lane and time.
    fn batch(res: Resolution, lane: u8, times: &[i64], arrived: Instant) -> Batch {
        let mut b = Vec::new();
        for t in times {
            encode_record(&mut b, res, *t, 9, &[lane, *t as u8]);
        }
        Batch {
            records: Bytes::from(b),
            resolution: res,
            count: times.len() as u32,
            arrived,
        }
    }

    fn drain(m: &mut Merge, now: Instant) -> (Vec<(usize, i64)>, Step) {
        let mut out = Vec::new();
        loop {
            match m.step(now) {
                Step::Write(p) => out.push((p.lane, p.ts_ns)),
                other => return (out, other),
            }
        }
    }

    #[test]
    fn a_replay_merge_waits_for_every_lane_and_is_in_exact_order() {
        let t0 = Instant::now();
        let ns = Resolution::Nano;
        let mut m = Merge::new(3, None);
        m.feed(0, batch(ns, 0, &[10, 40, 70], t0));
        m.feed(1, batch(ns, 1, &[20, 40], t0));
        // Lane 2 has not delivered: nothing can go out.
        assert_eq!(drain(&mut m, t0), (vec![], Step::Wait(None)));
        assert_eq!(m.starving().collect::<Vec<_>>(), [2]);
        m.feed(2, batch(Resolution::Micro, 2, &[0, 30_000], t0));
        let (out, next) = drain(&mut m, t0);
        // Ties go to the first lane; lane 2's 30 µs comes after every nanosecond time.
        assert_eq!(out, [(2, 0), (0, 10), (1, 20), (0, 40), (1, 40)]);
        assert_eq!(next, Step::Wait(None));
        assert_eq!(m.starving().collect::<Vec<_>>(), [1]);
        m.end(1);
        let (out, next) = drain(&mut m, t0);
        assert_eq!(out, [(0, 70)]);
        assert_eq!(next, Step::Wait(None));
        m.end(0);
        m.end(2);
        let (out, next) = drain(&mut m, t0);
        assert_eq!(out, [(2, 30_000)]);
        assert_eq!(next, Step::Done);
    }

    #[test]
    fn a_live_merge_holds_packets_for_the_window_only() {
        let t0 = Instant::now();
        let ns = Resolution::Nano;
        let w = Duration::from_millis(200);
        let mut m = Merge::new(2, Some(w));
        m.feed(0, batch(ns, 0, &[100, 300], t0));
        // Lane 1 is quiet: lane 0's packets wait until the window has passed.
        assert_eq!(drain(&mut m, t0), (vec![], Step::Wait(Some(t0 + w))));
        // An older packet of lane 1 arriving within the window overtakes them.
        m.feed(1, batch(ns, 1, &[50], t0 + Duration::from_millis(50)));
        let (out, next) = drain(&mut m, t0 + Duration::from_millis(60));
        assert_eq!(out, [(1, 50)]);
        assert_eq!(next, Step::Wait(Some(t0 + w)));
        let (out, _) = drain(&mut m, t0 + w);
        assert_eq!(out, [(0, 100), (0, 300)]);
        // Late and older: out of order, but not held back.
        m.feed(1, batch(ns, 1, &[200], t0 + w));
        m.end(0);
        let (out, next) = drain(&mut m, t0 + w);
        assert_eq!(out, [(1, 200)]);
        assert_eq!(next, Step::Wait(None));
        m.end(1);
        assert_eq!(m.step(t0 + w), Step::Done);
    }

    #[test]
    fn packets_carry_their_data() {
        let t0 = Instant::now();
        let mut m = Merge::new(1, None);
        m.feed(0, batch(Resolution::Nano, 7, &[5], t0));
        let Step::Write(p) = m.step(t0) else { panic!() };
        assert_eq!(
            (p.lane, p.ts_ns, p.origlen, &p.data[..]),
            (0, 5, 9, &[7u8, 5][..])
        );
        // An empty batch leaves the lane starving.
        m.feed(0, batch(Resolution::Nano, 7, &[], t0));
        assert_eq!(m.starving().collect::<Vec<_>>(), [0]);
    }
}
