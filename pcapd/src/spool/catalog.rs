//! Keeps the catalog (a cache in the registry database) true to the disk. At start-up
//! every segment left open by a crash is repaired and closed, and the catalog is rebuilt
//! from a scan of whatever it got wrong.

use std::collections::HashMap;
use std::path::Path;

use pcap_core::domain::CaptureId;
use pcap_core::savefile::FILE_HEADER_LEN;
use pcap_core::segment;

use crate::spool::list_segments;
use crate::store::{SegmentMeta, Store};
use crate::{Error, Result};

/// What reconciling a spool directory found and did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Closed segments, oldest first, as now recorded in the catalog.
    pub segments: Vec<SegmentMeta>,
    /// Segments repaired after a crash.
    pub repaired: usize,
    /// Whether the catalog had to be rewritten.
    pub rebuilt: bool,
}

impl Reconciled {
    /// Sequence number of the last packet on disk (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.segments.last().map(|s| s.last_seq()).unwrap_or(0)
    }
}

/// Repairs and closes open segments in `dir`, then makes the catalog of capture `id`
/// match the files on disk.
pub fn reconcile(store: &Store, id: CaptureId, dir: &Path) -> Result<Reconciled> {
    let known: HashMap<u64, SegmentMeta> = store
        .segments(id)?
        .into_iter()
        .map(|s| (s.first_seq, s))
        .collect();
    let mut out = Reconciled::default();
    for (name, path) in list_segments(dir)? {
        let meta = if name.open {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            if len < FILE_HEADER_LEN as u64 {
                // Created, and the crash came before its header was written: it holds nothing.
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                out.repaired += 1;
                continue;
            }
            let summary = segment::repair(&path)?;
            out.repaired += 1;
            if summary.packets == 0 {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
            let closed = segment::closed_path(dir, name.first_seq);
            std::fs::rename(&path, &closed).map_err(|e| Error::io(&path, e))?;
            tracing::warn!(capture.id = id, segment = %closed.display(), packets = summary.packets,
                "repaired a segment left open");
            meta_of(name.first_seq, &summary)
        } else {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            match known.get(&name.first_seq) {
                Some(m) if m.bytes == len => *m,
                _ => match segment::scan(&path) {
                    Ok(summary) => meta_of(name.first_seq, &summary),
                    Err(e) => {
                        tracing::error!(capture.id = id, segment = %path.display(), error = %e,
                            "unreadable segment left out of the catalog");
                        continue;
                    }
                },
            }
        };
        if meta.packets == 0 {
            continue;
        }
        out.segments.push(meta);
    }
    let kept: Vec<u64> = out.segments.iter().map(|s| s.first_seq).collect();
    crate::segment_index::file::remove_strays(dir, &kept);
    let unchanged = out.segments.len() == known.len()
        && out
            .segments
            .iter()
            .all(|s| known.get(&s.first_seq) == Some(s));
    if !unchanged {
        store.replace_segments(id, &out.segments)?;
        out.rebuilt = true;
    }
    Ok(out)
}

fn meta_of(first_seq: u64, s: &segment::SegmentSummary) -> SegmentMeta {
    SegmentMeta {
        first_seq,
        packets: s.packets,
        first_ts_ns: s.first_ts_ns,
        last_ts_ns: s.last_ts_ns,
        bytes: s.valid_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::savefile::{encode_record, FileHeader};
    use pcap_core::segment::SegmentName;

    fn write_segment(dir: &Path, name: SegmentName, packets: u64, tail: &[u8]) {
        let mut b = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: pcap_core::savefile::Resolution::Micro,
        }
        .encode()
        .to_vec();
        for i in 0..packets {
            let res = pcap_core::savefile::Resolution::Micro;
            encode_record(&mut b, res, (i as i64 + 1) * 1_000_000_000, 64, &[0u8; 64]);
        }
        b.extend_from_slice(tail);
        std::fs::write(dir.join(name.file_name()), b).unwrap();
    }

    #[test]
    fn crash_leftovers_are_repaired_and_the_catalog_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("db")).unwrap();
        let dir = tmp.path().join("7");
        std::fs::create_dir(&dir).unwrap();
        write_segment(
            &dir,
            SegmentName {
                first_seq: 1,
                open: false,
            },
            10,
            &[],
        );
        write_segment(
            &dir,
            SegmentName {
                first_seq: 11,
                open: true,
            },
            5,
            &[9; 7],
        );

        // A segment created just before the crash, its header not written yet.
        let empty = SegmentName {
            first_seq: 16,
            open: true,
        };
        std::fs::write(dir.join(empty.file_name()), [0xd4, 0xc3]).unwrap();

        let r = reconcile(&store, 7, &dir).unwrap();
        assert_eq!(r.repaired, 2);
        assert!(!dir.join(empty.file_name()).exists());
        assert!(r.rebuilt);
        assert_eq!(r.last_seq(), 15);
        assert!(segment::closed_path(&dir, 11).exists());
        assert_eq!(store.segments(7).unwrap(), r.segments);

        // A second pass finds nothing to do; a deleted file drops out of the catalog.
        assert!(!reconcile(&store, 7, &dir).unwrap().rebuilt);
        std::fs::remove_file(segment::closed_path(&dir, 1)).unwrap();
        let r = reconcile(&store, 7, &dir).unwrap();
        assert!(r.rebuilt);
        assert_eq!(r.segments.len(), 1);
        assert_eq!(r.segments[0].first_seq, 11);
    }
}
