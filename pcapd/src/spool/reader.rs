//! Reads a capture's spool back for `Replay`: segments in sequence order, whole segments
//! pruned by the catalog's time bounds, each record checked against the time bounds and
//! the BPF filter, shipped in large batches.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use bytes::Bytes;
use pcap_core::api::v1 as api;
use pcap_core::savefile::RecordHeader;
use pcap_core::segment::{self, SegmentName};

use crate::batch::{Batcher, Format, Pick};
use crate::spool::list_segments;
use crate::store::SegmentMeta;
use crate::{Error, Result};

/// Bytes read from a segment at a time.
const READ_BLOCK: usize = 256 << 10;

/// Which records a replay wants.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRange {
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// Last sequence number to read: the end of the spool when the replay began.
    pub upto_seq: u64,
}

impl ReplayRange {
    fn wants_time(&self, ts_ns: i64) -> bool {
        self.since_ns.is_none_or(|s| ts_ns >= s) && self.until_ns.is_none_or(|u| ts_ns <= u)
    }

    fn overlaps(&self, seg: &SegmentMeta) -> bool {
        self.since_ns.is_none_or(|s| seg.last_ts_ns >= s)
            && self.until_ns.is_none_or(|u| seg.first_ts_ns <= u)
    }
}

/// Streams the records of the spool in `dir` that fall in `range` and pass `filter`, in
/// messages of the given `format` handed to `ship`; `ship` returns false to stop (the
/// reader went away). Returns the number of packets shipped.
pub fn replay(
    dir: &Path,
    catalog: &[SegmentMeta],
    range: ReplayRange,
    filter: Option<&pcap::BpfProgram>,
    format: Format,
    mut ship: impl FnMut(api::stream_message::Kind) -> bool,
) -> Result<u64> {
    let catalog: HashMap<u64, &SegmentMeta> = catalog.iter().map(|s| (s.first_seq, s)).collect();
    let mut batcher = Batcher::new(format);
    let mut shipped = 0u64;
    let mut counting = |kind: api::stream_message::Kind| {
        shipped += match &kind {
            api::stream_message::Kind::Records(b) => u64::from(b.count),
            api::stream_message::Kind::Packets(b) => b.packets.len() as u64,
            _ => 0,
        };
        ship(kind)
    };
    let pick = |seq: u64, h: &RecordHeader, data: &[u8]| {
        if seq > range.upto_seq {
            Pick::Stop
        } else if !range.wants_time(h.ts_ns()) || filter.is_some_and(|f| !f.filter(data)) {
            Pick::Skip
        } else {
            Pick::Take
        }
    };
    for (name, path) in list_segments(dir)? {
        if name.first_seq > range.upto_seq {
            break;
        }
        if let Some(meta) = catalog.get(&name.first_seq) {
            if !range.overlaps(meta) {
                continue;
            }
        }
        let mut next_seq = Some(name.first_seq);
        let mut visit = |chunk: Bytes| match next_seq {
            Some(seq) => {
                next_seq = batcher.walk(&chunk, seq, pick, &mut counting);
                if next_seq.is_some() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            }
            None => ControlFlow::Break(()),
        };
        match read_segment(&path, name, dir, &mut visit) {
            Ok(()) => {}
            // Deleted by retention while we were getting to it: nothing left to read.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if next_seq.is_none() {
            break;
        }
    }
    batcher.ship(&mut counting);
    Ok(shipped)
}

/// Reads one segment; an open segment renamed into place meanwhile is found by its new name.
fn read_segment(
    path: &Path,
    name: SegmentName,
    dir: &Path,
    visit: &mut impl FnMut(Bytes) -> ControlFlow<()>,
) -> Result<()> {
    let first = segment::for_each_chunk(path, READ_BLOCK, &mut *visit);
    match first {
        Err(pcap_core::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && name.open =>
        {
            let closed = dir.join(
                SegmentName {
                    first_seq: name.first_seq,
                    open: false,
                }
                .file_name(),
            );
            segment::for_each_chunk(&closed, READ_BLOCK, visit)
                .map(|_| ())
                .map_err(Error::from)
        }
        other => other.map(|_| ()).map_err(Error::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::retention::RetentionPolicy;
    use crate::spool::writer::Spool;
    use crate::store::Store;
    use pcap_core::savefile::FileHeader;
    use std::sync::Arc;

    fn spool_with(n: u64) -> (tempfile::TempDir, Arc<Store>, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&tmp.path().join("db")).unwrap());
        let dir = tmp.path().join("1");
        let policy = RetentionPolicy {
            max_bytes: 1 << 30,
            max_age_ns: None,
            floor_percent: 0.0,
        };
        let header = FileHeader {
            link_type: 1,
            snaplen: 262_144,
        };
        let mut s = Spool::new(1, &dir, store.clone(), header, policy, vec![]).unwrap();
        for i in 0..n {
            s.append(i as i64 * 1_000_000_000, 100, &[i as u8; 100])
                .unwrap();
            if i % 100 == 99 {
                s.rotate().unwrap();
            }
        }
        s.flush().unwrap(); // the last segment stays open, as while capturing
        (tmp, store, dir)
    }

    fn collect(dir: &Path, store: &Store, range: ReplayRange) -> Vec<api::Packet> {
        let mut out = Vec::new();
        let n = replay(
            dir,
            &store.segments(1).unwrap(),
            range,
            None,
            Format::Packets,
            |b| {
                match b {
                    api::stream_message::Kind::Packets(b) => out.extend(b.packets),
                    other => panic!("asked for packets, got {other:?}"),
                }
                true
            },
        )
        .unwrap();
        assert_eq!(n, out.len() as u64);
        // The same as savefile records, byte for byte what the packets encode to.
        let mut raw = Vec::new();
        let mut count = 0;
        replay(
            dir,
            &store.segments(1).unwrap(),
            range,
            None,
            Format::Records,
            |b| {
                match b {
                    api::stream_message::Kind::Records(b) => {
                        count += b.count as usize;
                        raw.extend_from_slice(&b.records);
                    }
                    other => panic!("asked for records, got {other:?}"),
                }
                true
            },
        )
        .unwrap();
        let mut expected = Vec::new();
        for p in &out {
            pcap_core::savefile::encode_record(
                &mut expected,
                p.timestamp_ns,
                p.original_length,
                &p.data,
            );
        }
        assert_eq!(count, out.len());
        assert!(
            raw == expected,
            "records differ from the packets they carry"
        );
        out
    }

    #[test]
    fn replays_everything_up_to_the_given_sequence() {
        let (_tmp, store, dir) = spool_with(250);
        let all = ReplayRange {
            since_ns: None,
            until_ns: None,
            upto_seq: 250,
        };
        let got = collect(&dir, &store, all);
        assert_eq!(got.len(), 250);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, p)| p.sequence == i as u64 + 1));
        let some = ReplayRange {
            upto_seq: 120,
            ..all
        };
        assert_eq!(collect(&dir, &store, some).len(), 120);
    }

    #[test]
    fn time_bounds_select_records() {
        let (_tmp, store, dir) = spool_with(250);
        let r = ReplayRange {
            since_ns: Some(150_000_000_000),
            until_ns: Some(209_000_000_000),
            upto_seq: 250,
        };
        let got = collect(&dir, &store, r);
        assert_eq!(got.len(), 60);
        assert_eq!(got[0].sequence, 151);
    }
}
