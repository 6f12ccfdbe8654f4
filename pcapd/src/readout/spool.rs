//! The spool part of a replay: segments in sequence order, those the catalog shows to hold
//! nothing wanted (times) or their index shows to hold nothing passing the filter left
//! unread, the wanted records shipped in large chunks as read from disk. A catalogued
//! segment read for a filter without a usable index gets one from the records read.
//! Blocking: it runs on a thread of its own, paced by the client.

use std::collections::HashMap;
use std::ops::{ControlFlow, Range};
use std::path::Path;

use bytes::Bytes;
use pcap_core::savefile::{self, Resolution, FILE_HEADER_LEN};

use super::batch::{Batcher, Format};
use super::select::Selection;
use super::Chunk;
use crate::segment_index::{self, SegmentIndex};
use crate::spool::{list_segments, reader::read_segment_range};
use crate::store::SegmentMeta;
use crate::Result;

/// Ships the records of the spool in `dir` that `sel` wants, as chunks in `format`, to
/// `ship`, which returns false when the reader went away; `catalog` describes the closed
/// segments, whose packets are of `link_type`. Returns the number of packets shipped.
pub fn replay_spool(
    dir: &Path,
    catalog: &[SegmentMeta],
    link_type: u32,
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
    let (mut skipped, mut rebuilt) = (0u32, 0u32);
    for (name, _) in list_segments(dir)? {
        if sel.is_past(name.first_seq) {
            break;
        }
        let meta = catalog.get(&name.first_seq).copied();
        if meta.is_some_and(|meta| !sel.may_want(meta)) {
            continue;
        }
        // Only closed, catalogued segments have an index, of the length catalogued.
        let mut rebuild = None;
        let mut parts = None;
        if let Some(meta) = meta.filter(|_| sel.judges_indexes() && !name.open) {
            match segment_index::cache::load(dir, name.first_seq, meta.bytes) {
                Some(ix) if !sel.may_match(&ix) => {
                    segment_index::count_skipped();
                    skipped += 1;
                    continue;
                }
                Some(ix) => parts = block_ranges(&ix, sel.blocks(&ix), meta.bytes),
                None => {
                    let mut ix = SegmentIndex::new(link_type);
                    ix.set_block_size(meta.bytes);
                    rebuild = Some(ix);
                }
            }
        }
        // The whole segment, or only the blocks its index shows may hold wanted records.
        let parts = parts.unwrap_or_else(|| vec![(WHOLE, name.first_seq)]);
        let micro = sel.wants_micro();
        let mut next_seq = Some(name.first_seq);
        for (range, first_seq) in parts {
            next_seq = Some(first_seq);
            // Where the next record starts in the file (for an index being rebuilt).
            let mut offset = range.start;
            read_segment_range(dir, name, range, |mut resolution, mut block| {
                let Some(seq) = next_seq else {
                    return ControlFlow::Break(());
                };
                if micro && resolution == Resolution::Nano {
                    (block, resolution) = (to_micro(block), Resolution::Micro);
                }
                if let Some(ix) = rebuild.as_mut() {
                    for (n, (_, d)) in savefile::Records::new(&block, u32::MAX).enumerate() {
                        ix.observe_at(d, offset, seq + n as u64);
                        offset += (savefile::RECORD_HEADER_LEN + d.len()) as u64;
                    }
                }
                let pick = |s, ts, d: &[u8]| sel.pick(s, ts, d);
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
        if let (Some(ix), Some(meta), Some(_)) = (rebuild, meta, next_seq) {
            // Every record was seen (not cut short, not deleted by retention meanwhile).
            if ix.packets == meta.packets && store_rebuilt(dir, meta, &ix) {
                segment_index::count_rebuilt();
                rebuilt += 1;
            }
        }
        if next_seq.is_none() {
            break;
        }
    }
    batcher.ship(&mut counting);
    if skipped > 0 || rebuilt > 0 {
        tracing::debug!(
            segments.skipped = skipped,
            indexes.rebuilt = rebuilt,
            spool = %dir.display(),
            "segments ruled out by their index"
        );
    }
    Ok(shipped)
}

/// Every record of a segment, as a range of its file.
const WHOLE: Range<u64> = FILE_HEADER_LEN as u64..u64::MAX;

/// The parts of a segment `segment_bytes` long to read for the blocks `mask` of its index
/// `ix`, each a byte range and the sequence number of its first record; `None` to read it
/// whole (every block, or the index does not say where blocks begin).
fn block_ranges(
    ix: &SegmentIndex,
    mask: u64,
    segment_bytes: u64,
) -> Option<Vec<(Range<u64>, u64)>> {
    if mask == segment_index::ALL_BLOCKS || ix.blocks.is_empty() {
        return None;
    }
    let mut parts: Vec<(Range<u64>, u64)> = Vec::new();
    for (k, &(start, seq)) in ix.blocks.iter().enumerate() {
        if mask & (1 << k) == 0 {
            continue;
        }
        // Records starting in block k end where the next block's first record starts; the
        // last block's run to the end of the segment.
        let end = ix.blocks.get(k + 1).map_or(segment_bytes, |&(o, _)| o);
        if start >= end {
            continue;
        }
        match parts.last_mut() {
            Some((r, _)) if r.end == start => r.end = end,
            _ => parts.push((start..end, seq)),
        }
    }
    Some(parts)
}

/// `block`'s records with microsecond times: converted where they lie when the block is
/// this reader's alone (as read from a segment), else in a copy.
fn to_micro(block: Bytes) -> Bytes {
    match block.try_into_mut() {
        Ok(mut own) => {
            savefile::convert_records_in_place(&mut own, Resolution::Nano, Resolution::Micro);
            own.freeze()
        }
        Err(shared) => {
            let mut copy = Vec::with_capacity(shared.len());
            savefile::convert_records(&shared, Resolution::Nano, Resolution::Micro, &mut copy);
            Bytes::from(copy)
        }
    }
}

/// Stores an index rebuilt from the records of segment `meta`; false if it could not be
/// (a read-only disk), or the segment was removed by retention meanwhile.
fn store_rebuilt(dir: &Path, meta: &SegmentMeta, ix: &SegmentIndex) -> bool {
    // Not synced: a replay should not wait on the disk for what can be rebuilt again.
    if let Err(e) = segment_index::file::store(dir, meta.first_seq, ix, meta.bytes, false) {
        tracing::debug!(error = %e, spool = %dir.display(), "could not store a rebuilt segment index");
        return false;
    }
    if !pcap_core::segment::closed_path(dir, meta.first_seq).exists() {
        let _ = std::fs::remove_file(segment_index::file::path(dir, meta.first_seq));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readout::Packet;
    use crate::spool::writer::{test_policy, test_spool};
    use crate::store::Store;
    use pcap_core::domain::{ReplaySpec, Selector};
    use std::sync::Arc;

    fn spool_with(n: u64) -> (tempfile::TempDir, Arc<Store>, std::path::PathBuf) {
        let (tmp, store, dir, mut s) = test_spool(1 << 30);
        for i in 0..n {
            s.append(i as i64 * 1_000_000_000, 100, &[i as u8; 100])
                .unwrap();
            if i % 100 == 99 {
                s.rotate().unwrap();
            }
        }
        s.flush_and_wait().unwrap(); // the last segment stays open, as while capturing
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
            microseconds: false,
            segment_handoff: false,
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
        let n = replay_spool(dir, &catalog, 1, &mut sel, Format::Packets, |c| {
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
        replay_spool(dir, &catalog, 1, &mut sel, Format::Records, |c| {
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
    fn spooled_records_go_out_in_microseconds_when_asked() {
        let (_tmp, store, dir, mut s) = test_spool(1 << 30);
        let at = |i: u64| i as i64 * 1_000_000_000 + 123_456_789;
        for i in 0..250u64 {
            s.append(at(i), 60, &[i as u8; 60]).unwrap();
            if i % 100 == 99 {
                s.rotate().unwrap();
            }
        }
        s.flush_and_wait().unwrap();
        let catalog = store.segments(1).unwrap();
        // From 100 ns after record 7: record 7 shows 7.123456 in the file, the
        // bound's own microsecond, and is kept.
        let spec = ReplaySpec {
            selector: Selector::Id(1),
            live: false,
            since_unix_ns: Some(at(7) + 100),
            until_unix_ns: None,
            filter: String::new(),
            raw_records: true,
            microseconds: true,
            segment_handoff: false,
        };
        let mut sel = Selection::replay(&spec, u64::MAX, None);
        let mut times = Vec::new();
        replay_spool(&dir, &catalog, 1, &mut sel, Format::Records, |c| {
            let Chunk::Records {
                records,
                resolution,
                ..
            } = c
            else {
                panic!("asked for records, got {c:?}");
            };
            assert_eq!(resolution, Resolution::Micro);
            for (h, data) in savefile::Records::new(&records, u32::MAX) {
                assert_eq!(h.ts_frac, 123_456, "microseconds in the record header");
                assert_eq!(data.len(), 60);
                times.push(h.ts_ns(Resolution::Micro));
            }
            true
        })
        .unwrap();
        let expected: Vec<i64> = (7..250).map(|i| at(i) - 789).collect();
        assert_eq!(times, expected);
    }

    #[test]
    fn replays_everything_up_to_the_given_sequence() {
        let (_tmp, store, dir) = spool_with(250);
        let got = collect(&dir, &store, None, None, 250);
        assert_eq!(got.len(), 250);
        assert!(got.iter().enumerate().all(|(i, p)| p.seq == i as u64 + 1));
        assert_eq!(collect(&dir, &store, None, None, 120).len(), 120);
    }

    /// An Ethernet/IPv4/UDP frame from 10.0.0.`host`.
    fn frame(host: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, host, 10, 0, 0, 100]);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn segments_the_index_rules_out_are_not_read_and_missing_indexes_are_rebuilt() {
        let (_tmp, store, dir, mut s) = test_spool(1 << 30);
        for host in 1..=3u8 {
            for i in 0..50 {
                s.append(i, 42, &frame(host)).unwrap();
            }
            s.rotate().unwrap();
        }
        s.close().unwrap();
        let catalog = store.segments(1).unwrap();
        assert_eq!(catalog.len(), 3);
        let replay = |filter: &str| {
            let spec = ReplaySpec {
                microseconds: false,
                segment_handoff: false,
                selector: Selector::Id(1),
                live: false,
                since_unix_ns: None,
                until_unix_ns: None,
                filter: filter.into(),
                raw_records: false,
            };
            let bpf = crate::capture::device::compile_offline(1, filter).unwrap();
            let mut sel = Selection::replay(&spec, u64::MAX, Some(bpf));
            replay_spool(&dir, &catalog, 1, &mut sel, Format::Packets, |_| true)
        };
        // Segments 1 and 3 are damaged past reading: only the index keeps them unread.
        for seq in [catalog[0].first_seq, catalog[2].first_seq] {
            let path = pcap_core::segment::closed_path(&dir, seq);
            let len = std::fs::metadata(&path).unwrap().len();
            std::fs::write(&path, vec![0u8; len as usize]).unwrap();
        }
        assert_eq!(replay("host 10.0.0.2").unwrap(), 50);
        assert_eq!(
            replay("udp and not host 10.0.0.9 and host 10.0.0.2").unwrap(),
            50
        );
        assert!(
            replay("host 10.0.0.1").is_err(),
            "the damaged segment is read"
        );
        assert!(replay("not host 10.0.0.2").is_err());

        // Without its index, a segment is read, and its index rebuilt from what was read.
        let middle = catalog[1].first_seq;
        let index = crate::segment_index::file::path(&dir, middle);
        let stored = std::fs::read(&index).unwrap();
        std::fs::remove_file(&index).unwrap();
        assert_eq!(replay("host 10.0.0.2").unwrap(), 50);
        let holds = |b: &[u8]| {
            let ix = crate::segment_index::file::decode(b, catalog[1].bytes).unwrap();
            let addrs: std::collections::BTreeSet<u128> = match &ix.addrs {
                crate::segment_index::Addrs::Exact(m) => m.keys().copied().collect(),
                other => panic!("{other:?}"),
            };
            (addrs, ix.packets, ix.protos, ix.layers)
        };
        // The same, its blocks sized for the segment as it is rather than as it was meant
        // to grow: three of 1 KiB here, where the writer made one.
        let rebuilt = std::fs::read(&index).unwrap();
        assert_eq!(holds(&rebuilt), holds(&stored));
        let blocks = crate::segment_index::file::decode(&rebuilt, catalog[1].bytes)
            .unwrap()
            .blocks;
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0], (24, middle));
        // One that does not describe the segment is not trusted: rebuilt the same.
        std::fs::write(&index, b"PCAPDIDX").unwrap();
        assert_eq!(replay("host 10.0.0.2").unwrap(), 50);
        assert_eq!(holds(&std::fs::read(&index).unwrap()), holds(&stored));
        // Retention removes the index with its segment.
        s.set_policy(test_policy(1));
        s.enforce_retention(0).unwrap();
        s.close().unwrap();
        assert!(!index.exists());
        assert!(crate::spool::list_segments(&dir).unwrap().is_empty());
    }

    #[test]
    fn a_host_filter_reads_only_the_blocks_its_host_is_in() {
        // Segments of 64 KiB, so blocks of 1 KiB: about 17 of these records each.
        let (_tmp, store, dir, mut s) = test_spool(512 << 10);
        for i in 0..600u32 {
            let host = if (300..310).contains(&i) { 2 } else { 1 };
            s.append(i64::from(i), 42, &frame(host)).unwrap();
        }
        s.close().unwrap();
        let catalog = store.segments(1).unwrap();
        assert_eq!(catalog.len(), 1);
        let meta = &catalog[0];
        let ix = segment_index::file::load(&dir, meta.first_seq, meta.bytes).unwrap();
        assert_eq!(ix.block_shift, 10);
        let filter = segment_index::SegmentFilter::parse("host 10.0.0.2").unwrap();
        let parts = block_ranges(&ix, filter.blocks(&ix), meta.bytes).unwrap();
        let read: u64 = parts.iter().map(|(r, _)| r.end - r.start).sum();
        assert!(read <= 2048, "{read} of {} bytes read", meta.bytes);

        // Everything before those blocks damaged: a read of the whole segment stops there.
        let path = pcap_core::segment::closed_path(&dir, meta.first_seq);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[FILE_HEADER_LEN..parts[0].0.start as usize].fill(0xff);
        std::fs::write(&path, &bytes).unwrap();
        let replay = |filter: &str| -> Vec<u64> {
            let spec = ReplaySpec {
                filter: filter.into(),
                ..spec_for_tests()
            };
            let bpf = crate::capture::device::compile_offline(1, filter).unwrap();
            let mut sel = Selection::replay(&spec, u64::MAX, Some(bpf));
            let mut seqs = Vec::new();
            replay_spool(&dir, &catalog, 1, &mut sel, Format::Packets, |c| {
                if let Chunk::Packets(p) = c {
                    seqs.extend(p.iter().map(|p| p.seq));
                }
                true
            })
            .unwrap();
            seqs
        };
        assert_eq!(replay("host 10.0.0.2"), (301..=310).collect::<Vec<_>>());
        assert_eq!(
            replay("udp and host 10.0.0.2"),
            (301..=310).collect::<Vec<_>>()
        );
        assert!(replay("udp").is_empty(), "the whole segment was read");
    }

    fn spec_for_tests() -> ReplaySpec {
        ReplaySpec {
            selector: Selector::Id(1),
            live: false,
            since_unix_ns: None,
            until_unix_ns: None,
            filter: String::new(),
            raw_records: false,
            microseconds: false,
            segment_handoff: false,
        }
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
