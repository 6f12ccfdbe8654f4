//! Which records a stream passes on. One rule serves the spool and the live queue: a
//! replay reads the spool up to where it ended when the replay began, then hands over to
//! live records, which start right after it.

use pcap_core::domain::{ListenSpec, ReplaySpec};

use crate::segment_index::{SegmentFilter, SegmentIndex, Verdict};
use crate::store::SegmentMeta;

/// What a stream does with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Take,
    Skip,
    /// Skip this record and everything after it: the stream has what it wanted.
    Stop,
}

/// The records one stream wants.
pub struct Selection {
    /// Records up to this sequence number were read already (from the spool).
    after_seq: u64,
    /// Records after this one are not read from here (the end of the spool).
    upto_seq: u64,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    filter: Option<pcap::BpfProgram>,
    /// The filter as read for ruling out whole segments by their index, when it can be.
    segment_filter: Option<SegmentFilter>,
    /// Records still wanted, when the stream asked for a number of them.
    left: Option<u64>,
    /// Whether records come from the live queue rather than the spool.
    live: bool,
    /// Whether spooled records are sent with microsecond times.
    micro: bool,
}

impl Selection {
    /// A replay's records in the spool up to `upto_seq` (its end when the replay began),
    /// within the time bounds of `spec` ([`ReplaySpec::time_bounds`]) and passing `filter`
    /// (compiled from `spec`'s).
    pub fn replay(spec: &ReplaySpec, upto_seq: u64, filter: Option<pcap::BpfProgram>) -> Self {
        let (since_ns, until_ns) = spec.time_bounds();
        Selection {
            after_seq: 0,
            upto_seq,
            since_ns,
            until_ns,
            segment_filter: filter.as_ref().and(SegmentFilter::parse(&spec.filter)),
            filter,
            left: None,
            live: false,
            micro: spec.microseconds,
        }
    }

    /// A listener's live records, as many as `spec` asks for.
    pub fn listen(spec: &ListenSpec) -> Self {
        Selection {
            after_seq: 0,
            upto_seq: u64::MAX,
            since_ns: None,
            until_ns: None,
            filter: None,
            segment_filter: None,
            left: spec.count,
            live: true,
            micro: false,
        }
    }

    /// Whether spooled records are to be sent with microsecond times.
    pub fn wants_micro(&self) -> bool {
        self.micro
    }

    /// Goes on with live records once the spool is read: those after the spool's end, with
    /// the same bounds and filter.
    pub fn hand_over(&mut self) {
        self.after_seq = self.upto_seq;
        self.upto_seq = u64::MAX;
        self.live = true;
    }

    /// Whether the stream has every record it asked for.
    pub fn is_done(&self) -> bool {
        self.left == Some(0)
    }

    /// Whether a segment whose first record is `first_seq` lies past what is wanted here,
    /// and so does every later one.
    pub fn is_past(&self, first_seq: u64) -> bool {
        first_seq > self.upto_seq
    }

    /// Whether a closed segment may hold wanted records (its catalog entry says when and
    /// which it holds), so that the others are never read.
    pub fn may_want(&self, seg: &SegmentMeta) -> bool {
        seg.last_seq() > self.after_seq
            && self.since_ns.is_none_or(|s| seg.last_ts_ns >= s)
            && self.until_ns.is_none_or(|u| seg.first_ts_ns <= u)
    }

    /// Whether the filter can be judged from segment indexes at all.
    pub fn judges_indexes(&self) -> bool {
        self.segment_filter.is_some()
    }

    /// Whether a segment whose index is `ix` may hold records passing the filter; a
    /// filter that cannot be judged from the index says it may.
    pub fn may_match(&self, ix: &SegmentIndex) -> bool {
        self.segment_filter
            .as_ref()
            .is_none_or(|f| f.verdict(ix) != Verdict::Never)
    }

    /// The blocks of a segment whose index is `ix` that may hold records passing the
    /// filter (bits, see [`SegmentIndex::blocks`]).
    pub fn blocks(&self, ix: &SegmentIndex) -> u64 {
        self.segment_filter
            .as_ref()
            .map_or(crate::segment_index::ALL_BLOCKS, |f| f.blocks(ix))
    }

    /// Decides about record `seq` of time `ts_ns`, and counts it when taken.
    pub fn pick(&mut self, seq: u64, ts_ns: i64, data: &[u8]) -> Pick {
        if seq > self.upto_seq || self.is_done() {
            return Pick::Stop;
        }
        if self.until_ns.is_some_and(|u| ts_ns > u) {
            // The spool may hold records slightly out of time order (several interfaces):
            // later ones may still be in bounds. Live records only get later.
            return if self.live { Pick::Stop } else { Pick::Skip };
        }
        if seq <= self.after_seq
            || self.since_ns.is_some_and(|s| ts_ns < s)
            || self.filter.as_ref().is_some_and(|f| !f.filter(data))
        {
            return Pick::Skip;
        }
        if let Some(left) = self.left.as_mut() {
            *left -= 1;
        }
        Pick::Take
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::domain::Selector;

    fn replay_spec(since: Option<i64>, until: Option<i64>) -> ReplaySpec {
        ReplaySpec {
            selector: Selector::Id(1),
            live: true,
            since_unix_ns: since,
            until_unix_ns: until,
            filter: String::new(),
            raw_records: true,
            microseconds: false,
            segment_handoff: false,
        }
    }

    fn picks(sel: &mut Selection, seqs: std::ops::RangeInclusive<u64>) -> Vec<Pick> {
        seqs.map(|seq| sel.pick(seq, seq as i64 * 1_000, &[0; 10]))
            .collect()
    }

    #[test]
    fn the_spool_ends_where_it_ended_and_live_records_follow_it() {
        use Pick::*;
        let mut sel = Selection::replay(&replay_spec(None, None), 3, None);
        assert!(!sel.is_past(3) && sel.is_past(4));
        assert_eq!(picks(&mut sel, 1..=4), [Take, Take, Take, Stop]);
        sel.hand_over();
        // A live batch may begin before the spool's end: those records were replayed.
        assert_eq!(picks(&mut sel, 2..=5), [Skip, Skip, Take, Take]);
        assert!(!sel.is_past(u64::MAX));
    }

    #[test]
    fn time_bounds_skip_in_the_spool_and_end_a_live_stream() {
        use Pick::*;
        let mut sel = Selection::replay(&replay_spec(Some(2_000), Some(3_000)), 10, None);
        assert_eq!(picks(&mut sel, 1..=5), [Skip, Take, Take, Skip, Skip]);
        sel.hand_over();
        assert_eq!(picks(&mut sel, 11..=11), [Stop]);
    }

    #[test]
    fn segments_outside_the_bounds_are_not_read() {
        let seg = |first_seq, first_ts_ns, last_ts_ns| SegmentMeta {
            first_seq,
            packets: 10,
            first_ts_ns,
            last_ts_ns,
            bytes: 1000,
        };
        let mut sel = Selection::replay(&replay_spec(Some(100), Some(200)), 100, None);
        assert!(sel.may_want(&seg(1, 150, 160)));
        assert!(sel.may_want(&seg(1, 50, 100)));
        assert!(!sel.may_want(&seg(1, 0, 99)));
        assert!(!sel.may_want(&seg(1, 201, 300)));
        sel.hand_over();
        assert!(!sel.may_want(&seg(91, 150, 160)), "replayed already");
        assert!(sel.may_want(&seg(92, 150, 160)));
    }

    #[test]
    fn the_filter_selects_by_content() {
        let filter = crate::capture::device::compile_offline(1, "greater 50").unwrap();
        let mut sel = Selection::replay(&replay_spec(None, None), 10, Some(filter));
        assert_eq!(sel.pick(1, 0, &[0; 10]), Pick::Skip);
        assert_eq!(sel.pick(2, 0, &[0; 60]), Pick::Take);
    }

    #[test]
    fn a_listener_stops_at_its_count() {
        use Pick::*;
        let spec = ListenSpec {
            selector: Selector::Id(1),
            count: Some(2),
            raw_records: false,
        };
        let mut sel = Selection::listen(&spec);
        assert!(!sel.is_done());
        assert_eq!(picks(&mut sel, 7..=9), [Take, Take, Stop]);
        assert!(sel.is_done());
    }
}
