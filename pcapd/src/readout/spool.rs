//! The spool part of a replay: segments in sequence order, those the catalog shows to hold
//! nothing wanted left unread, the wanted records shipped in large chunks as read from
//! disk. Blocking: it runs on a thread of its own, paced by the client.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use super::batch::{Batcher, Format};
use super::select::Selection;
use super::Chunk;
use crate::spool::{list_segments, reader::read_segment};
use crate::store::SegmentMeta;
use crate::Result;

/// Ships the records of the spool in `dir` that `sel` wants, as chunks in `format`, to
/// `ship`, which returns false when the reader went away; `catalog` describes the closed
/// segments. Returns the number of packets shipped.
pub fn replay_spool(
    dir: &Path,
    catalog: &[SegmentMeta],
    sel: &mut Selection,
    format: Format,
    mut ship: impl FnMut(Chunk) -> bool,
) -> Result<u64> {
    let catalog: HashMap<u64, &SegmentMeta> = catalog.iter().map(|s| (s.first_seq, s)).collect();
    let mut batcher = Batcher::new(format);
    let mut shipped = 0u64;
    let mut counting = |chunk: Chunk| {
        shipped += chunk.count();
        ship(chunk)
    };
    for (name, _) in list_segments(dir)? {
        if sel.is_past(name.first_seq) {
            break;
        }
        if catalog
            .get(&name.first_seq)
            .is_some_and(|meta| !sel.may_want(meta))
        {
            continue;
        }
        let mut next_seq = Some(name.first_seq);
        read_segment(dir, name, |resolution, block| {
            let Some(seq) = next_seq else {
                return ControlFlow::Break(());
            };
            let pick = |s, ts, d: &_| sel.pick(s, ts, d);
            next_seq = batcher.walk(&block, seq, resolution, pick, &mut counting);
            match next_seq {
                Some(_) => ControlFlow::Continue(()),
                None => ControlFlow::Break(()),
            }
        })?;
        if next_seq.is_none() {
            break;
        }
    }
    batcher.ship(&mut counting);
    Ok(shipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readout::Packet;
    use crate::spool::retention::RetentionPolicy;
    use crate::spool::writer::Spool;
    use crate::store::Store;
    use pcap_core::domain::{ReplaySpec, Selector};
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
            resolution: pcap_core::savefile::Resolution::Nano,
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

    fn selection(since_ns: Option<i64>, until_ns: Option<i64>, upto_seq: u64) -> Selection {
        let spec = ReplaySpec {
            selector: Selector::Id(1),
            live: false,
            since_unix_ns: since_ns,
            until_unix_ns: until_ns,
            filter: String::new(),
            raw_records: false,
        };
        Selection::replay(&spec, upto_seq, None)
    }

    fn collect(
        dir: &Path,
        store: &Store,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        upto_seq: u64,
    ) -> Vec<Packet> {
        let catalog = store.segments(1).unwrap();
        let mut out = Vec::new();
        let mut sel = selection(since_ns, until_ns, upto_seq);
        let n = replay_spool(dir, &catalog, &mut sel, Format::Packets, |c| {
            match c {
                Chunk::Packets(p) => out.extend(p),
                other => panic!("asked for packets, got {other:?}"),
            }
            true
        })
        .unwrap();
        assert_eq!(n, out.len() as u64);
        // The same as savefile records, byte for byte what the packets encode to.
        let mut raw = Vec::new();
        let mut count = 0;
        let mut sel = selection(since_ns, until_ns, upto_seq);
        replay_spool(dir, &catalog, &mut sel, Format::Records, |c| {
            match c {
                Chunk::Records {
                    records,
                    count: n,
                    resolution,
                    ..
                } => {
                    assert_eq!(resolution, pcap_core::savefile::Resolution::Nano);
                    count += n as usize;
                    raw.extend_from_slice(&records);
                }
                other => panic!("asked for records, got {other:?}"),
            }
            true
        })
        .unwrap();
        let mut expected = Vec::new();
        for p in &out {
            let ns = pcap_core::savefile::Resolution::Nano;
            pcap_core::savefile::encode_record(&mut expected, ns, p.ts_ns, p.origlen, &p.data);
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
        let got = collect(&dir, &store, None, None, 250);
        assert_eq!(got.len(), 250);
        assert!(got.iter().enumerate().all(|(i, p)| p.seq == i as u64 + 1));
        assert_eq!(collect(&dir, &store, None, None, 120).len(), 120);
    }

    #[test]
    fn time_bounds_select_records() {
        let (_tmp, store, dir) = spool_with(250);
        let got = collect(
            &dir,
            &store,
            Some(150_000_000_000),
            Some(209_000_000_000),
            250,
        );
        assert_eq!(got.len(), 60);
        assert_eq!(got[0].seq, 151);
    }
}
