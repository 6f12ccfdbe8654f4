//! The registry database (redb): captures, the next capture id, and the spool catalog.
//! The catalog is a cache of what is on disk; `spool::catalog` rebuilds it from a scan
//! whenever the two disagree.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use pcap_core::domain::{CaptureId, CaptureInfo};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const CAPTURES: TableDefinition<u64, &[u8]> = TableDefinition::new("captures");
const SEGMENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("segments");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_id";

/// A closed segment as recorded in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub first_seq: u64,
    pub packets: u64,
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    /// File length in bytes.
    pub bytes: u64,
}

impl SegmentMeta {
    /// Sequence number of the segment's last packet (`first_seq - 1` when empty).
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.packets - 1
    }
}

/// What redb says after an I/O error, until the database is opened again.
const PREVIOUS_IO: &str = "Previous I/O error occurred";

/// Handle on the database file.
pub struct Store {
    path: PathBuf,
    /// `None` only while being opened again.
    db: RwLock<Option<Database>>,
}

impl Store {
    /// Opens (or creates) the database at `path` and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store> {
        Ok(Store {
            path: path.to_owned(),
            db: RwLock::new(Some(Self::open_db(path)?)),
        })
    }

    fn open_db(path: &Path) -> Result<Database> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(CAPTURES)?;
        tx.open_table(SEGMENTS)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(db)
    }

    /// Runs `f` on the database. After an I/O error (a full disk, say) redb refuses
    /// everything until the database is opened again: that is done here once, and `f`
    /// tried again, so that a full disk now and then does not leave the registry unable to
    /// write for the rest of the daemon's life.
    fn with<T>(&self, f: impl Fn(&Database) -> Result<T>) -> Result<T> {
        let first = match self.db.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(db) => f(db),
            None => Err(Error::Store(PREVIOUS_IO.into())),
        };
        match first {
            Err(Error::Store(msg)) if msg.contains(PREVIOUS_IO) => {
                let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
                // Closed first: the file cannot be opened twice.
                *db = None;
                *db = Some(Self::open_db(&self.path)?);
                tracing::warn!(path = %self.path.display(), "registry database opened again after an I/O error");
                f(db.as_ref().expect("just opened"))
            }
            other => other,
        }
    }

    /// Every capture, in id order.
    pub fn load_captures(&self) -> Result<Vec<CaptureInfo>> {
        self.with(|db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(CAPTURES)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (_, v) = row?;
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
    }

    /// The id the next capture gets; ids are never reused, even after a delete.
    pub fn next_id(&self) -> Result<CaptureId> {
        self.with(|db| {
            let tx = db.begin_read()?;
            let meta = tx.open_table(META)?;
            let next = meta.get(NEXT_ID)?.map(|v| v.value()).unwrap_or(1);
            let captures = tx.open_table(CAPTURES)?;
            let after_last = captures.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            Ok(next.max(after_last))
        })
    }

    /// Writes a new capture's record, and takes its id for good.
    pub fn create_capture(&self, info: &CaptureInfo) -> Result<()> {
        self.with(|db| {
            let tx = db.begin_write()?;
            {
                let mut meta = tx.open_table(META)?;
                let next = meta.get(NEXT_ID)?.map(|v| v.value()).unwrap_or(1);
                meta.insert(NEXT_ID, next.max(info.id + 1))?;
                let mut table = tx.open_table(CAPTURES)?;
                table.insert(info.id, serde_json::to_vec(info)?.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Writes one capture's record.
    pub fn put_capture(&self, info: &CaptureInfo) -> Result<()> {
        self.put_captures(std::slice::from_ref(info))
    }

    /// Writes several capture records in one transaction.
    pub fn put_captures(&self, infos: &[CaptureInfo]) -> Result<()> {
        self.with(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(CAPTURES)?;
                for info in infos {
                    table.insert(info.id, serde_json::to_vec(info)?.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Removes a capture and its catalog.
    pub fn delete_capture(&self, id: CaptureId) -> Result<()> {
        self.with(|db| {
            let tx = db.begin_write()?;
            {
                tx.open_table(CAPTURES)?.remove(id)?;
                let mut segs = tx.open_table(SEGMENTS)?;
                segs.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The catalog of a capture's closed segments, oldest first.
    pub fn segments(&self, id: CaptureId) -> Result<Vec<SegmentMeta>> {
        self.with(|db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(SEGMENTS)?;
            let mut out = Vec::new();
            for row in table.range((id, 0)..=(id, u64::MAX))? {
                let (_, v) = row?;
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
    }

    /// Records a closed segment.
    pub fn put_segment(&self, id: CaptureId, seg: &SegmentMeta) -> Result<()> {
        self.with(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(SEGMENTS)?;
                table.insert((id, seg.first_seq), serde_json::to_vec(seg)?.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Forgets segments deleted by retention.
    pub fn remove_segments(&self, id: CaptureId, first_seqs: &[u64]) -> Result<()> {
        self.with(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(SEGMENTS)?;
                for s in first_seqs {
                    table.remove((id, *s))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Replaces a capture's whole catalog (after a scan of the disk).
    pub fn replace_segments(&self, id: CaptureId, segs: &[SegmentMeta]) -> Result<()> {
        self.with(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(SEGMENTS)?;
                table.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                for seg in segs {
                    table.insert((id, seg.first_seq), serde_json::to_vec(seg)?.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_catalog_is_per_capture() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.next_id().unwrap(), 1);
            for id in [1, 2] {
                let info = CaptureInfo {
                    id,
                    ..crate::registry::tests_support::capture_info()
                };
                store.create_capture(&info).unwrap();
            }
            assert_eq!(store.next_id().unwrap(), 3);
            let seg = |first_seq| SegmentMeta {
                first_seq,
                packets: 10,
                first_ts_ns: 1,
                last_ts_ns: 2,
                bytes: 100,
            };
            store.put_segment(1, &seg(1)).unwrap();
            store.put_segment(1, &seg(11)).unwrap();
            store.put_segment(2, &seg(1)).unwrap();
            store.delete_capture(2).unwrap();
            assert_eq!(store.segments(1).unwrap().len(), 2);
            assert!(store.segments(2).unwrap().is_empty());
            store.remove_segments(1, &[1]).unwrap();
            assert_eq!(store.segments(1).unwrap()[0].first_seq, 11);
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.next_id().unwrap(),
            3,
            "2 was deleted, and is not given again"
        );
    }
}
