//! Indexes read from their files, kept between replays. A closed segment and its index
//! never change (an index is only ever replaced whole, by a rename), so a filtered replay
//! that finds the file it read before, by device, inode, length and times, takes the index
//! it decoded then instead of reading, checking and decoding the file again. On a spool of
//! 33 segments that halves the daemon's work for a replay no segment can match (1.17 to
//! 0.63 ms of CPU). The cache is bounded in bytes and forgets what was used longest ago.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{file, Addrs, SegmentIndex};

/// Bytes of decoded indexes kept, about: the indexes of a few hundred segments of
/// thousands of addresses each.
pub const CACHE_BYTES: usize = 32 << 20;

/// Which file an index was read from: a file replaced by a rename, or rewritten, differs.
/// pcapd only ever replaces index files, so the inode would nearly always tell (a removed
/// file's inode number can be given to a new one); the rest guards against that and
/// against edits in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    fn of(m: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }
}

struct Entry {
    file: FileIdentity,
    segment_bytes: u64,
    index: Arc<SegmentIndex>,
    bytes: usize,
    used: u64,
}

/// Decoded indexes by file path, at most `budget` bytes of them.
pub struct IndexCache {
    entries: HashMap<PathBuf, Entry>,
    bytes: usize,
    budget: usize,
    clock: u64,
    hits: u64,
}

impl IndexCache {
    /// An empty cache holding at most about `budget` bytes.
    pub fn new(budget: usize) -> Self {
        IndexCache {
            entries: HashMap::new(),
            bytes: 0,
            budget,
            clock: 0,
            hits: 0,
        }
    }

    /// The index read before from the file at `path`, if the file is still `file` and was
    /// checked against a segment `segment_bytes` long.
    fn get(
        &mut self,
        path: &Path,
        file: FileIdentity,
        segment_bytes: u64,
    ) -> Option<Arc<SegmentIndex>> {
        self.clock += 1;
        let e = self.entries.get_mut(path)?;
        if e.file != file || e.segment_bytes != segment_bytes {
            return None;
        }
        e.used = self.clock;
        self.hits += 1;
        Some(Arc::clone(&e.index))
    }

    /// Indexes answered from the cache since it was made.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    fn insert(
        &mut self,
        path: PathBuf,
        file: FileIdentity,
        segment_bytes: u64,
        index: Arc<SegmentIndex>,
    ) {
        let bytes = heap_bytes(&index);
        if bytes > self.budget {
            return;
        }
        if let Some(old) = self.entries.remove(&path) {
            self.bytes -= old.bytes;
        }
        while self.bytes + bytes > self.budget {
            self.evict_oldest();
        }
        self.bytes += bytes;
        let used = self.clock;
        self.entries.insert(
            path,
            Entry {
                file,
                segment_bytes,
                index,
                bytes,
                used,
            },
        );
    }

    /// Forgets the least recently used eighth of the entries (at least one), so that a
    /// full cache pays the scan once per many inserts.
    fn evict_oldest(&mut self) {
        let mut used: Vec<u64> = self.entries.values().map(|e| e.used).collect();
        if used.is_empty() {
            return;
        }
        let k = used.len() / 8;
        let (_, &mut cut, _) = used.select_nth_unstable(k);
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let keep = e.used > cut;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }
}

/// About what a decoded index holds on the heap.
fn heap_bytes(ix: &SegmentIndex) -> usize {
    let addrs = match &ix.addrs {
        // Key, blocks and a control byte per bucket, buckets at most 8/7 of the entries.
        Addrs::Exact(map) => map.capacity() * 8 / 7 * 25,
        Addrs::Bloom(bits) => bits.len() * 8,
    };
    512 + addrs + ix.ports.len() * 8 + ix.blocks.len() * 16
}

/// The daemon's cache of decoded indexes, shared by every replay.
pub fn shared() -> &'static Mutex<IndexCache> {
    static CACHE: std::sync::OnceLock<Mutex<IndexCache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(IndexCache::new(CACHE_BYTES)))
}

/// The index of the segment starting at `first_seq` in `dir`, `segment_bytes` long, if its
/// file is there and trustworthy: through the daemon's cache.
pub fn load(dir: &Path, first_seq: u64, segment_bytes: u64) -> Option<Arc<SegmentIndex>> {
    load_through(shared(), dir, first_seq, segment_bytes)
}

/// [`load`] through `cache`, which is locked only to look up and to keep, never while the
/// file is read.
fn load_through(
    cache: &Mutex<IndexCache>,
    dir: &Path,
    first_seq: u64,
    segment_bytes: u64,
) -> Option<Arc<SegmentIndex>> {
    let path = file::path(dir, first_seq);
    let before = FileIdentity::of(&std::fs::metadata(&path).ok()?);
    if let Some(index) = lock(cache).get(&path, before, segment_bytes) {
        return Some(index);
    }
    let b = std::fs::read(&path).ok()?;
    let index = Arc::new(file::decode(&b, segment_bytes)?);
    // Kept only if the file read is the one identified: one renamed over it meanwhile is
    // read again next time.
    let after = std::fs::metadata(&path).ok().map(|m| FileIdentity::of(&m));
    if after == Some(before) {
        lock(cache).insert(path, before, segment_bytes, Arc::clone(&index));
    }
    Some(index)
}

fn lock(cache: &Mutex<IndexCache>) -> std::sync::MutexGuard<'_, IndexCache> {
    // Poisoned only if a replay panicked holding it, and no method leaves it half-changed.
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(addrs: u32) -> SegmentIndex {
        let mut ix = SegmentIndex::new(1);
        ix.set_block_size(1 << 20);
        for a in 0..addrs {
            ix.addrs.insert(super::super::v4_key(a.to_be_bytes()), 1);
        }
        ix.packets = u64::from(addrs);
        ix
    }

    #[test]
    fn the_same_file_is_read_once_and_a_replaced_one_again() {
        let dir = tempfile::tempdir().unwrap();
        file::store(dir.path(), 1, &index(10), 4096, false).unwrap();
        let cache = Mutex::new(IndexCache::new(1 << 20));
        let load = |seq, len| load_through(&cache, dir.path(), seq, len);
        let hits = || cache.lock().unwrap().hits();
        let a = load(1, 4096).unwrap();
        let b = load(1, 4096).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(hits(), 1);
        // Another length of the segment: the file does not describe it.
        assert!(load(1, 4097).is_none());
        // Replaced by a rename (as a rebuilt index is): a new inode, read again.
        file::store(dir.path(), 1, &index(20), 4096, false).unwrap();
        let c = load(1, 4096).unwrap();
        assert_eq!(c.packets, 20);
        assert_eq!(hits(), 1);
        // Removed with its segment: nothing, whatever was cached.
        std::fs::remove_file(file::path(dir.path(), 1)).unwrap();
        assert!(load(1, 4096).is_none());
    }

    #[test]
    fn bounded_by_bytes_forgetting_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        for seq in 1..=40 {
            file::store(dir.path(), seq, &index(100), 4096, false).unwrap();
        }
        let one = heap_bytes(&file::load(dir.path(), 1, 4096).unwrap());
        let cache = Mutex::new(IndexCache::new(one * 10));
        let load = |seq| load_through(&cache, dir.path(), seq, 4096).unwrap();
        let state = || {
            let c = cache.lock().unwrap();
            (c.entries.len(), c.bytes, c.hits())
        };
        for seq in 1..=10 {
            load(seq);
        }
        assert_eq!(state().0, 10);
        // Segment 1 used again: it outlives 2 when room is needed.
        load(1);
        load(11);
        let hits = state().2;
        load(1);
        assert_eq!(state().2, hits + 1, "the one used lately stays");
        load(2);
        assert_eq!(state().2, hits + 1, "the one used longest ago went");
        for seq in 12..=40 {
            load(seq);
            assert!(state().1 <= one * 10, "{} > {}", state().1, one * 10);
        }
        assert!(state().0 <= 10);
        let hits = state().2;
        load(40);
        assert_eq!(state().2, hits + 1, "the latest stays");
        load(3);
        assert_eq!(state().2, hits + 1, "an old one was forgotten");
    }
}
