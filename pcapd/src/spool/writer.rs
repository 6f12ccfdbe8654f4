//! Writes one capture's spool: records are gathered in aligned blocks that the spool's
//! [`Disk`] thread writes to the open segment with direct I/O; at the size (or age) limit
//! the segment is handed on, once its writes are done, to the spool's [`Closer`] (fsync,
//! rename into place, catalog) and a new one is opened, without waiting for the disk.
//! Retention picks the segments to delete here and has the closer delete them, in order
//! after the closes before.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pcap_core::domain::CaptureId;
use pcap_core::savefile::{FileHeader, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use pcap_core::segment::{self, SegmentName};

use crate::segment_index::SegmentIndex;
use crate::spool::closer::{Closer, MAX_PENDING_CLOSES};
use crate::spool::disk::{Block, Disk, ALIGN, BLOCK_BYTES};
use crate::spool::retention::RetentionPolicy;
use crate::store::{SegmentMeta, Store};
use crate::{Error, Result};

/// Disk space reserved ahead of the writes to an open segment (at most a segment's
/// size): a write into reserved space costs the filesystem less than one that has to find
/// room (measured on ext4: a fifth less system time per byte). The file's size is not
/// changed; what a segment did not use is given back when it is closed.
const RESERVE_AHEAD: u64 = 8 << 20;

struct OpenSegment {
    first_seq: u64,
    path: Arc<PathBuf>,
    /// Written through the page cache: the tails of flushes; reserved, synced and closed.
    file: Arc<File>,
    /// Written with direct I/O: whole blocks (the same handle as `file` where the
    /// filesystem has no direct I/O).
    direct: Arc<File>,
    /// File offset of the current block's first byte (a multiple of [`ALIGN`]).
    block_at: u64,
    /// Bytes of the current block written already as a tail.
    tail_len: usize,
    /// Bytes in the file plus those still buffered.
    bytes: u64,
    /// Bytes of the file the disk thread was asked to reserve so far.
    reserved: u64,
    packets: u64,
    first_ts_ns: i64,
    last_ts_ns: i64,
}

/// What retention removed in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub segments: usize,
    pub packets: u64,
    pub bytes: u64,
}

/// One capture's spool, owned by its capture thread.
pub struct Spool {
    id: CaptureId,
    dir: PathBuf,
    header: FileHeader,
    policy: RetentionPolicy,
    closed: VecDeque<SegmentMeta>,
    open: Option<OpenSegment>,
    /// Records not yet handed to the disk thread, from `open.block_at` on.
    block: Block,
    next_seq: u64,
    /// Before `closer`: dropped first, it finishes its writes and hands on its closes.
    disk: Disk,
    closer: Arc<Closer>,
    /// Times a full segment was kept open because earlier closes were still pending.
    deferred_closes: u64,
    /// What the open segment holds, for replays to skip it when it cannot match.
    index: SegmentIndex,
}

impl Spool {
    /// Takes over the spool in `dir` whose closed segments are `closed` (oldest first).
    pub fn new(
        id: CaptureId,
        dir: &Path,
        store: Arc<Store>,
        header: FileHeader,
        policy: RetentionPolicy,
        closed: Vec<SegmentMeta>,
    ) -> Result<Spool> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let next_seq = closed.last().map(|s| s.last_seq() + 1).unwrap_or(1);
        let closer = Arc::new(Closer::start(id, store.clone())?);
        let mut disk = Disk::start(id)?;
        Ok(Spool {
            id,
            dir: dir.to_owned(),
            header,
            policy,
            closed: closed.into(),
            open: None,
            block: disk.block(),
            next_seq,
            disk,
            closer,
            deferred_closes: 0,
            index: SegmentIndex::new(header.link_type),
        })
    }

    /// Keeps the spool within `policy` from now on (a reloaded configuration).
    pub fn set_policy(&mut self, policy: RetentionPolicy) {
        self.policy = policy;
    }

    /// Sequence number of the last packet appended (0 if none ever was).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Bytes the spool holds on disk (and in the buffer), and its number of segments.
    pub fn size(&self) -> (u64, u32) {
        let closed: u64 = self.closed.iter().map(|s| s.bytes).sum();
        let open = self.open.as_ref().map(|o| o.bytes).unwrap_or(0);
        (
            closed + open,
            (self.closed.len() + self.open.is_some() as usize) as u32,
        )
    }

    /// Appends one packet, returning its sequence number and the bytes it took.
    pub fn append(&mut self, ts_ns: i64, origlen: u32, data: &[u8]) -> Result<(u64, u64)> {
        if self.open.is_none() {
            self.open_segment(ts_ns)?;
            self.index.set_block_size(self.policy.segment_bytes());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let caplen = data.len() as u32;
        let header = RecordHeader::new(self.header.resolution, ts_ns, caplen, origlen);
        self.push(&header.to_bytes());
        self.push(data);
        let open = self.open.as_mut().expect("segment opened above");
        self.index.observe_at(data, open.bytes, seq);
        let len = (RECORD_HEADER_LEN + data.len()) as u64;
        open.bytes += len;
        open.packets += 1;
        open.last_ts_ns = ts_ns;
        if open_too_big(self.open.as_ref(), &self.policy, ts_ns) {
            self.rotate()?;
        }
        Ok((seq, len))
    }

    /// Times a full segment was kept open because the disk had not caught up with closing
    /// the ones before.
    pub fn deferred_closes(&self) -> u64 {
        self.deferred_closes
    }

    /// The first error writing, closing or removing segments met (the disk), once.
    pub fn take_failure(&self) -> Option<Error> {
        self.disk
            .take_failure()
            .or_else(|| self.closer.take_failure())
    }

    /// Appends `bytes` to the open segment's records; every block filled goes to the disk
    /// thread.
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.block.fill(bytes);
            bytes = &bytes[n..];
            if self.block.is_full() {
                self.write_whole(BLOCK_BYTES);
            }
        }
    }

    /// Hands the first `whole` bytes of the current block (a multiple of [`ALIGN`]) to the
    /// disk thread; the rest starts the next block.
    fn write_whole(&mut self, whole: usize) {
        let open = self
            .open
            .as_mut()
            .expect("records belong to an open segment");
        reserve(
            &mut self.disk,
            open,
            &self.policy,
            open.block_at + whole as u64,
        );
        let mut next = self.disk.block();
        next.fill(&self.block.data()[whole..]);
        let done = std::mem::replace(&mut self.block, next);
        self.disk
            .write_block(&open.direct, &open.path, open.block_at, done, whole);
        open.block_at += whole as u64;
        open.tail_len = 0;
    }

    /// Makes every record appended so far readable in the open segment: hands what is not
    /// written yet to the disk thread (no fsync). Write errors come from
    /// [`Spool::take_failure`].
    pub fn flush(&mut self) -> Result<()> {
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        if self.block.len() == open.tail_len {
            return Ok(());
        }
        let whole = self.block.len() / ALIGN * ALIGN;
        if whole > 0 {
            self.write_whole(whole);
        }
        let open = self.open.as_mut().expect("checked above");
        if !self.block.is_empty() {
            let upto = open.block_at + self.block.len() as u64;
            reserve(&mut self.disk, open, &self.policy, upto);
            self.disk
                .write_tail(&open.file, &open.path, open.block_at, self.block.data());
        }
        open.tail_len = self.block.len();
        Ok(())
    }

    /// Makes every record appended so far readable in the open segment, and waits until
    /// it is.
    pub fn flush_and_wait(&mut self) -> Result<()> {
        self.flush()?;
        self.disk.wait();
        self.disk.take_failure().map_or(Ok(()), Err)
    }

    /// Runs `f` once every record appended so far is readable in the spool's files (on the
    /// disk thread, after a [`Spool::flush`]).
    pub fn when_written(&mut self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.flush()?;
        self.disk.then(|_| f());
        Ok(())
    }

    /// Ends the open segment: writes what is buffered and hands it to the closer (fsync,
    /// rename into place, catalog) without waiting. When [`MAX_PENDING_CLOSES`] are still
    /// pending (the disk has fallen behind), the segment stays open and grows instead, up to
    /// twice its size; only then does this wait for the closer, since a segment growing
    /// without bound would end up larger than the retention limit itself.
    pub fn rotate(&mut self) -> Result<()> {
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        if self.closer.backlog() >= MAX_PENDING_CLOSES {
            if open.bytes < 2 * self.policy.segment_bytes() {
                self.deferred_closes += 1;
                return Ok(());
            }
            self.closer.wait()?;
        }
        self.hand_over()
    }

    fn hand_over(&mut self) -> Result<()> {
        self.flush()?;
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let meta = SegmentMeta {
            first_seq: open.first_seq,
            packets: open.packets,
            first_ts_ns: open.first_ts_ns,
            last_ts_ns: open.last_ts_ns,
            bytes: open.bytes,
        };
        // The tail is in the disk thread's hands: the next segment starts a block afresh.
        self.block.clear();
        let closed = segment::closed_path(&self.dir, open.first_seq);
        let index = std::mem::replace(&mut self.index, SegmentIndex::new(self.header.link_type));
        self.closer.count_close();
        let closer = self.closer.clone();
        let (file, path) = (open.file, (*open.path).clone());
        drop(open.direct);
        // A segment whose writes failed is not closed: it stays open on disk, and is read
        // up to its last whole record.
        self.disk.then(move |written| match written {
            true => closer.close_counted(file, path, closed, meta, index),
            false => closer.cancel_close(),
        });
        self.closed.push_back(meta);
        Ok(())
    }

    /// Deletes the oldest closed segments beyond the byte and age limits, and as many more
    /// as it takes to get back above the free-space floor.
    pub fn enforce_retention(&mut self, now_ns: i64) -> Result<Expired> {
        let open_bytes = self.open.as_ref().map(|o| o.bytes).unwrap_or(0);
        let by_limits = self
            .policy
            .expired(self.closed.make_contiguous(), open_bytes, now_ns);
        let mut deficit = self.floor_deficit();
        let mut out = Expired::default();
        let mut removed = Vec::new();
        let mut paths = Vec::new();
        while let Some(oldest) = self.closed.front().copied() {
            if removed.len() >= by_limits && deficit == 0 {
                break;
            }
            paths.push(segment::closed_path(&self.dir, oldest.first_seq));
            deficit = deficit.saturating_sub(oldest.bytes);
            out.segments += 1;
            out.packets += oldest.packets;
            out.bytes += oldest.bytes;
            removed.push(oldest.first_seq);
            self.closed.pop_front();
        }
        if !removed.is_empty() {
            self.closer.count_removal(out.bytes);
            let closer = self.closer.clone();
            let bytes = out.bytes;
            self.disk
                .then(move |_| closer.remove_counted(paths, removed, bytes));
            tracing::info!(
                capture.id = self.id,
                segments = out.segments,
                packets = out.packets,
                bytes = out.bytes,
                "retention removed the oldest segments"
            );
        }
        Ok(out)
    }

    /// Bytes still missing to the free-space floor once retention did what it could;
    /// segments being removed count as freed already.
    pub fn floor_deficit(&self) -> u64 {
        self.policy
            .floor_deficit(&self.dir)
            .saturating_sub(self.closer.removing_bytes())
    }

    /// Whether the open segment is older than the policy allows.
    pub fn open_segment_expired(&self, now_ns: i64) -> bool {
        match (self.open.as_ref(), self.policy.segment_age_ns()) {
            (Some(o), Some(age)) => o.first_ts_ns < now_ns - age,
            _ => false,
        }
    }

    /// Closes the open segment and waits until everything is in place, fsynced and
    /// catalogued, and what retention removed is gone.
    pub fn close(&mut self) -> Result<()> {
        let handed = self.hand_over();
        self.disk.wait();
        let written = self.disk.take_failure().map_or(Ok(()), Err);
        let done = self.closer.wait();
        handed.and(written).and(done)
    }

    fn open_segment(&mut self, ts_ns: i64) -> Result<()> {
        let name = SegmentName {
            first_seq: self.next_seq,
            open: true,
        };
        let path = self.dir.join(name.file_name());
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // The header at once, so that a crash leaves a readable file.
        let header = self.header.encode();
        file.write_all_at(&header, 0)
            .map_err(|e| Error::io(&path, e))?;
        let file = Arc::new(file);
        // Filesystems without direct I/O (tmpfs before Linux 6.6) refuse it: the page
        // cache then takes whole blocks too.
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(&path)
            .map(Arc::new)
            .unwrap_or_else(|_| file.clone());
        self.block.clear();
        self.open = Some(OpenSegment {
            first_seq: self.next_seq,
            path: Arc::new(path),
            file,
            direct,
            block_at: 0,
            tail_len: 0,
            bytes: FILE_HEADER_LEN as u64,
            reserved: 0,
            packets: 0,
            first_ts_ns: ts_ns,
            last_ts_ns: ts_ns,
        });
        self.push(&header);
        Ok(())
    }
}

/// Has the disk thread reserve space for `open` up to at least `upto` bytes, before the
/// writes handed to it after this, [`RESERVE_AHEAD`] at a time: off the capture thread,
/// since a filesystem may make fallocate wait for its journal. Best effort: a filesystem
/// without fallocate, or a full disk (which the write itself then reports), writes without
/// a reservation.
fn reserve(disk: &mut Disk, open: &mut OpenSegment, policy: &RetentionPolicy, upto: u64) {
    if upto <= open.reserved {
        return;
    }
    let (at, file) = (open.reserved, open.file.clone());
    let len = RESERVE_AHEAD
        .min(policy.segment_bytes())
        .max(upto - open.reserved);
    disk.then(move |written| {
        if written {
            let _ = nix::fcntl::fallocate(
                file.as_ref(),
                nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
                at as i64,
                len as i64,
            );
        }
    });
    open.reserved += len;
}

fn open_too_big(open: Option<&OpenSegment>, policy: &RetentionPolicy, ts_ns: i64) -> bool {
    let Some(o) = open else { return false };
    o.bytes >= policy.segment_bytes()
        || policy
            .segment_age_ns()
            .is_some_and(|age| o.first_ts_ns < ts_ns - age)
}

/// The file header of test spools: Ethernet, nanoseconds.
#[cfg(test)]
pub(crate) const TEST_HEADER: FileHeader = FileHeader {
    link_type: 1,
    snaplen: 262_144,
    resolution: pcap_core::savefile::Resolution::Nano,
};

/// Retention of test spools: `max_bytes`, no age limit, no free-space floor.
#[cfg(test)]
pub(crate) fn test_policy(max_bytes: u64) -> RetentionPolicy {
    RetentionPolicy {
        max_bytes,
        max_age_ns: None,
        floor_percent: 0.0,
    }
}

/// An empty spool of capture 1 in `DIR/1` of a temporary directory, with its store.
#[cfg(test)]
pub(crate) fn test_spool(max_bytes: u64) -> (tempfile::TempDir, Arc<Store>, PathBuf, Spool) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&tmp.path().join("db")).unwrap());
    let dir = tmp.path().join("1");
    let policy = test_policy(max_bytes);
    let spool = Spool::new(1, &dir, store.clone(), TEST_HEADER, policy, vec![]).unwrap();
    (tmp, store, dir, spool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_exactly_the_records_appended_across_blocks_and_flushes() {
        let (_tmp, _store, dir, mut spool) = test_spool(1 << 30);
        let mut expected = TEST_HEADER.encode().to_vec();
        let open = dir.join(
            SegmentName {
                first_seq: 1,
                open: true,
            }
            .file_name(),
        );
        // Sizes that straddle aligned boundaries and blocks, one larger than a block's
        // remainder; flushes (readable at once) at uneven points in between.
        let sizes = [60usize, 1500, 4000, 4081, 9000, 65_535, 200_000, 1, 1514];
        for i in 0..600usize {
            let len = sizes[i % sizes.len()];
            let data: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            let ts = i as i64 * 1_000_003;
            spool.append(ts, len as u32 + 4, &data).unwrap();
            let res = pcap_core::savefile::Resolution::Nano;
            pcap_core::savefile::encode_record(&mut expected, res, ts, len as u32 + 4, &data);
            if i % 37 == 5 {
                spool.flush_and_wait().unwrap();
                let got = std::fs::read(&open).unwrap();
                assert!(got == expected, "after {} records the file differs", i + 1);
            }
        }
        assert!(
            expected.len() > 4 * BLOCK_BYTES,
            "several blocks were written"
        );
        spool.close().unwrap();
        let got = std::fs::read(segment::closed_path(&dir, 1)).unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the closed segment differs");
    }

    #[test]
    fn space_reserved_ahead_is_given_back_when_the_segment_closes() {
        use std::os::unix::fs::MetadataExt;
        let (_tmp, _store, dir, mut spool) = test_spool(1 << 30);
        for i in 0..100u64 {
            spool.append(i as i64, 1000, &[i as u8; 1000]).unwrap();
        }
        spool.flush_and_wait().unwrap();
        let open = dir.join(
            SegmentName {
                first_seq: 1,
                open: true,
            }
            .file_name(),
        );
        let m = std::fs::metadata(&open).unwrap();
        let len = (FILE_HEADER_LEN + 100 * (RECORD_HEADER_LEN + 1000)) as u64;
        assert_eq!(
            m.len(),
            len,
            "the reservation does not change the file's size"
        );
        assert!(
            m.blocks() * 512 >= RESERVE_AHEAD,
            "{} bytes reserved on disk for an open segment of {len}",
            m.blocks() * 512
        );
        spool.close().unwrap();
        let closed = segment::closed_path(&dir, 1);
        let m = std::fs::metadata(&closed).unwrap();
        assert_eq!(m.len(), len);
        assert!(
            m.blocks() * 512 < len + (64 << 10),
            "{} bytes still held on disk for a closed segment of {len}",
            m.blocks() * 512
        );
        let records =
            segment::for_each_record(&closed, None, |_, _| std::ops::ControlFlow::Continue(()))
                .unwrap()
                .1;
        assert_eq!(records, len);
    }

    #[test]
    fn rotation_and_retention_keep_the_newest() {
        let (_tmp, store, dir, mut spool) = test_spool(512 << 10);
        let mut total = 0u64;
        for i in 0..3000u64 {
            spool
                .append(i as i64 * 1000, 1000, &[i as u8; 1000])
                .unwrap();
            total += 1;
            spool.enforce_retention(0).unwrap();
        }
        // Closing went on beside the appends (a segment kept open grows meanwhile); once
        // it has caught up, the spool is back within its limit.
        spool.close().unwrap();
        spool.enforce_retention(0).unwrap();
        spool.close().unwrap();
        assert_eq!(spool.last_seq(), total);
        let (bytes, _) = spool.size();
        assert!(bytes <= 512 << 10, "spool holds {bytes} bytes");

        let segs = store.segments(1).unwrap();
        assert_eq!(segs.last().unwrap().last_seq(), total);
        let on_disk: u64 = segs
            .iter()
            .map(|s| {
                segment::scan(&segment::closed_path(&dir, s.first_seq))
                    .unwrap()
                    .packets
            })
            .sum();
        assert_eq!(on_disk, segs.iter().map(|s| s.packets).sum::<u64>());
        // A new writer continues the sequence where the catalog ends.
        let again = Spool::new(
            1,
            &dir,
            store.clone(),
            TEST_HEADER,
            test_policy(512 << 10),
            segs,
        )
        .unwrap();
        assert_eq!(again.last_seq(), total);
    }

    #[test]
    fn a_disk_behind_never_holds_up_appends_and_loses_nothing() {
        let (_tmp, store, dir, mut spool) = test_spool(8 << 20);
        let segment_bytes = test_policy(8 << 20).segment_bytes();
        // The closing thread is stuck (an fsync that takes long): segments are handed over
        // up to the bound, then the open one grows, and every append still goes through.
        let release = spool.closer.stall();
        let per_segment = segment_bytes / 1016 + 1;
        // Enough for every close allowed to be pending, and half a segment more.
        let n = per_segment * (2 * MAX_PENDING_CLOSES as u64 + 3) / 2;
        for i in 0..n {
            spool.append(i as i64, 1000, &[i as u8; 1000]).unwrap();
        }
        assert_eq!(spool.closer.backlog(), MAX_PENDING_CLOSES);
        assert!(spool.deferred_closes() > 0);
        assert!(
            store.segments(1).unwrap().is_empty(),
            "nothing catalogued while the closer is stuck"
        );
        // Readers see every packet meanwhile, under whichever name each segment has.
        let on_disk = |dir: &Path| -> u64 {
            crate::spool::list_segments(dir)
                .unwrap()
                .iter()
                .map(|(_, p)| segment::scan(p).map(|s| s.packets).unwrap_or(0))
                .sum()
        };
        spool.flush_and_wait().unwrap();
        assert_eq!(on_disk(&dir), n);

        drop(release);
        spool.close().unwrap();
        let segs = store.segments(1).unwrap();
        assert_eq!(segs.iter().map(|s| s.packets).sum::<u64>(), n);
        assert_eq!(segs.last().unwrap().last_seq(), n);
        assert!(crate::spool::list_segments(&dir)
            .unwrap()
            .iter()
            .all(|(name, _)| !name.open));
        assert_eq!(on_disk(&dir), n);
    }
}
