//! Writing a spool's records to disk, on a thread of the spool's own. The capture thread
//! fills aligned blocks ([`Block`]) and hands each full one over; this thread writes it
//! with direct I/O (`O_DIRECT`: from the block to the disk, not copied into the page cache
//! and written back later, which cost more CPU per packet than everything else the capture
//! thread did), gives the block back for reuse, and passes segment closes on to the
//! spool's [`Closer`] once their writes are done. A flush for readers writes the part of
//! a block that is not whole through the page cache; the next direct write of that block
//! replaces it. Blocks in flight are bounded: when the disk falls behind that far, the
//! capture thread waits for one (and counts it).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use pcap_core::domain::CaptureId;

use crate::{Error, Result};

/// Alignment of direct I/O: file offsets, lengths and memory (the largest logical block
/// size of common disks).
pub const ALIGN: usize = 4096;

/// Bytes of one block: one direct write.
pub const BLOCK_BYTES: usize = 1 << 20;

/// Blocks handed to the disk thread and not yet written, at most; then the capture
/// thread waits (8 MiB of records per capture held while the disk is behind).
const MAX_IN_FLIGHT: usize = 8;

/// Written blocks kept for reuse (a fresh block's pages are new memory to fault in).
const MAX_SPARES: usize = 2;

/// Writes waited for by capture threads because their spool's disk was behind, since
/// the daemon started.
static WRITE_WAITS: AtomicU64 = AtomicU64::new(0);

/// See [`WRITE_WAITS`].
pub fn write_waits() -> u64 {
    WRITE_WAITS.load(Relaxed)
}

/// A buffer of [`BLOCK_BYTES`] whose bytes start at an address aligned for direct I/O.
pub struct Block {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Block {
        // Zeroed memory comes as untouched pages: only what is filled becomes resident.
        let mem = vec![0u8; BLOCK_BYTES + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        Block { mem, start, len: 0 }
    }

    /// The bytes filled so far.
    pub fn data(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BLOCK_BYTES
    }

    /// Appends as much of `bytes` as fits; returns how much did.
    pub fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BLOCK_BYTES - self.len);
        let at = self.start + self.len;
        self.mem[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// What the disk thread does, in the order given.
enum Job {
    /// Writes `block`'s first `len` bytes (a multiple of [`ALIGN`]) at `at`.
    Block {
        file: Arc<File>,
        path: Arc<PathBuf>,
        at: u64,
        block: Block,
        len: usize,
    },
    /// Writes `bytes` at `at` through the page cache: the end of what a flush makes
    /// readable, short of a whole aligned block.
    Tail {
        file: Arc<File>,
        path: Arc<PathBuf>,
        at: u64,
        bytes: Vec<u8>,
    },
    /// Runs once the writes before it are done (a segment close handed on, a reply), told
    /// whether every write so far succeeded.
    Then(Box<dyn FnOnce(bool) + Send>),
}

/// What the disk thread and the capture thread share.
#[derive(Default)]
struct Shared {
    /// The first error met; no write is made after it, so that a file never has a hole.
    failure: Mutex<Option<Error>>,
}

/// The disk thread of one spool, and the blocks it gives back.
pub struct Disk {
    jobs: Option<mpsc::Sender<Job>>,
    returned: mpsc::Receiver<Block>,
    spares: Vec<Block>,
    in_flight: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Disk {
    /// Starts the disk thread of capture `id`'s spool.
    pub fn start(id: CaptureId) -> Result<Disk> {
        let (tx, rx) = mpsc::channel();
        let (give_back, returned) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pcapd-write-{id}"))
            .spawn(move || run(id, rx, &give_back, &theirs))
            .map_err(|e| Error::Internal(format!("starting the spool's writer: {e}")))?;
        Ok(Disk {
            jobs: Some(tx),
            returned,
            spares: Vec::new(),
            in_flight: 0,
            shared,
            thread: Some(thread),
        })
    }

    /// An empty block: a spare, a new one, or, with [`MAX_IN_FLIGHT`] blocks not yet
    /// written, the next one the disk thread gives back.
    pub fn block(&mut self) -> Block {
        self.take_returned();
        if let Some(mut b) = self.spares.pop() {
            b.clear();
            return b;
        }
        if self.in_flight < MAX_IN_FLIGHT {
            return Block::new();
        }
        WRITE_WAITS.fetch_add(1, Relaxed);
        match self.returned.recv() {
            Ok(mut b) => {
                self.in_flight -= 1;
                b.clear();
                b
            }
            // The thread is gone (it only ends when this is dropped): a new block.
            Err(_) => Block::new(),
        }
    }

    fn take_returned(&mut self) {
        while let Ok(b) = self.returned.try_recv() {
            self.in_flight -= 1;
            if self.spares.len() < MAX_SPARES {
                self.spares.push(b);
            }
        }
    }

    /// Hands `block`'s first `len` bytes (aligned) over to be written at `at` of `file`.
    pub fn write_block(
        &mut self,
        file: &Arc<File>,
        path: &Arc<PathBuf>,
        at: u64,
        block: Block,
        len: usize,
    ) {
        self.in_flight += 1;
        self.send(Job::Block {
            file: file.clone(),
            path: path.clone(),
            at,
            block,
            len,
        });
    }

    /// Hands `bytes` over to be written at `at` of `file` through the page cache.
    pub fn write_tail(&mut self, file: &Arc<File>, path: &Arc<PathBuf>, at: u64, bytes: &[u8]) {
        self.send(Job::Tail {
            file: file.clone(),
            path: path.clone(),
            at,
            bytes: bytes.to_vec(),
        });
    }

    /// Runs `f` on the disk thread once every write handed over so far is done, telling
    /// it whether they all succeeded (after a failure, no write is made).
    pub fn then(&mut self, f: impl FnOnce(bool) + Send + 'static) {
        self.send(Job::Then(Box::new(f)));
    }

    /// Waits until every write handed over so far is done.
    pub fn wait(&mut self) {
        let (tx, rx) = mpsc::channel();
        self.then(move |_| {
            let _ = tx.send(());
        });
        let _ = rx.recv();
    }

    /// The first error a write met, once.
    pub fn take_failure(&self) -> Option<Error> {
        self.shared.failure.lock().ok()?.take()
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // The thread only ends when this sender is dropped.
            let _ = jobs.send(job);
        }
    }
}

impl Drop for Disk {
    /// Lets the thread finish what it was given, and waits for it.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(id: CaptureId, jobs: mpsc::Receiver<Job>, give_back: &mpsc::Sender<Block>, shared: &Shared) {
    let mut failed = false;
    for job in jobs {
        let done = match job {
            Job::Block {
                file,
                path,
                at,
                block,
                len,
            } => {
                let r = if failed {
                    Ok(())
                } else {
                    file.write_all_at(&block.data()[..len], at)
                        .map_err(|e| Error::io(path.as_path(), e))
                };
                let _ = give_back.send(block);
                r
            }
            Job::Tail {
                file,
                path,
                at,
                bytes,
            } => match failed {
                true => Ok(()),
                false => file
                    .write_all_at(&bytes, at)
                    .map_err(|e| Error::io(path.as_path(), e)),
            },
            Job::Then(f) => {
                f(!failed);
                Ok(())
            }
        };
        if let Err(e) = done {
            failed = true;
            tracing::error!(capture.id = id, error = %e, "writing the spool");
            if let Ok(mut slot) = shared.failure.lock() {
                slot.get_or_insert(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_fill_up_to_their_size() {
        let mut b = Block::new();
        assert_eq!(b.data().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.fill(&[1; 100]), 100);
        assert_eq!(b.fill(&vec![2; BLOCK_BYTES]), BLOCK_BYTES - 100);
        assert!(b.is_full());
        assert_eq!(&b.data()[98..102], &[1, 1, 2, 2]);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn a_disk_behind_holds_blocks_to_a_bound_and_the_wait_is_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Arc::new(tmp.path().join("f"));
        let file = Arc::new(File::create(path.as_path()).unwrap());
        let mut disk = Disk::start(1).unwrap();
        let (release, stalled) = mpsc::channel::<()>();
        disk.then(move |_| {
            let _ = stalled.recv();
        });
        for i in 0..MAX_IN_FLIGHT {
            let mut b = disk.block();
            b.fill(&[i as u8; ALIGN]);
            disk.write_block(&file, &path, (i * ALIGN) as u64, b, ALIGN);
        }
        let before = write_waits();
        let taker = std::thread::spawn(move || {
            let b = disk.block();
            (disk, b.len())
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while write_waits() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "the wait was not counted"
            );
            std::thread::yield_now();
        }
        assert!(
            !taker.is_finished(),
            "a block beyond the bound waits for the disk"
        );
        release.send(()).unwrap();
        let (mut disk, len) = taker.join().unwrap();
        assert_eq!(len, 0, "a written block comes back empty");
        disk.wait();
        let got = std::fs::read(path.as_path()).unwrap();
        assert_eq!(got.len(), MAX_IN_FLIGHT * ALIGN);
        assert_eq!(got[ALIGN * 3], 3);
    }

    #[test]
    fn writes_land_in_order_and_blocks_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Arc::new(tmp.path().join("f"));
        let file = Arc::new(File::create(path.as_path()).unwrap());
        let mut disk = Disk::start(1).unwrap();
        let mut b = disk.block();
        b.fill(&[7; ALIGN + 10]);
        disk.write_tail(&file, &path, 0, &b.data()[..ALIGN + 10]);
        disk.write_block(&file, &path, 0, b, ALIGN);
        disk.write_tail(&file, &path, ALIGN as u64, &[8; 5]);
        disk.wait();
        let got = std::fs::read(path.as_path()).unwrap();
        assert_eq!(got.len(), ALIGN + 10);
        assert!(got[..ALIGN + 5].iter().all(|&x| x == 7 || x == 8));
        assert_eq!(&got[ALIGN..ALIGN + 5], &[8; 5]);
        assert!(disk.take_failure().is_none());
        // The block came back: taking one reuses it.
        let _ = disk.block();
        assert_eq!(disk.in_flight, 0);
    }
}
