//! Closing a segment (fsync, rename into place, cataloguing) and removing expired ones
//! happen here, on a thread of the spool's own, so that neither the capture thread nor the
//! spool's writing thread waits on the disk's sync. Jobs run in the order given, so a segment is always in place before it
//! can be removed. What is queued stays small (a file handle and a few numbers per job):
//! the capture thread asks [`Closer::backlog`] before closing another segment and, when
//! the disk has fallen that far behind, keeps writing the open one instead.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use pcap_core::domain::CaptureId;

use crate::segment_index::{self, SegmentIndex};
use crate::store::{SegmentMeta, Store};
use crate::{Error, Result};

/// Segments whose close may be pending at once; beyond it the open segment grows.
pub const MAX_PENDING_CLOSES: usize = 4;

enum Job {
    Close {
        file: Arc<File>,
        from: PathBuf,
        to: PathBuf,
        meta: SegmentMeta,
        index: SegmentIndex,
    },
    Remove {
        paths: Vec<PathBuf>,
        first_seqs: Vec<u64>,
        bytes: u64,
    },
    /// Answered once every job before it is done.
    Barrier(mpsc::Sender<()>),
    /// Holds the thread until released: a disk that has fallen behind, in tests.
    #[cfg(test)]
    Stall(mpsc::Receiver<()>),
}

/// What the closing thread and the capture thread share.
#[derive(Default)]
struct Shared {
    /// Closes queued and not yet done.
    pending_closes: AtomicUsize,
    /// Bytes of segments queued for removal and not yet removed.
    removing_bytes: AtomicU64,
    /// The first error met, for the capture thread to end the capture with.
    failure: Mutex<Option<Error>>,
}

/// The closing thread of one spool.
pub struct Closer {
    jobs: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Closer {
    /// Starts the closing thread of capture `id`'s spool.
    pub fn start(id: CaptureId, store: Arc<Store>) -> Result<Closer> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pcapd-close-{id}"))
            .spawn(move || run(id, &store, rx, &theirs))
            .map_err(|e| Error::Internal(format!("starting the segment closer: {e}")))?;
        Ok(Closer {
            jobs: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// Counts a close that [`Closer::close_counted`] will queue once the segment's writes
    /// are done, so that [`Closer::backlog`] includes it from now on.
    pub fn count_close(&self) {
        self.shared.pending_closes.fetch_add(1, Relaxed);
    }

    /// Takes back a close counted by [`Closer::count_close`] that will not be queued.
    pub fn cancel_close(&self) {
        self.shared.pending_closes.fetch_sub(1, Relaxed);
    }

    /// Closes segment `file` (at `from`): fsync, store its `index` beside it, rename to
    /// `to`, record `meta`. Counted before by [`Closer::count_close`].
    pub fn close_counted(
        &self,
        file: Arc<File>,
        from: PathBuf,
        to: PathBuf,
        meta: SegmentMeta,
        index: SegmentIndex,
    ) {
        self.send(Job::Close {
            file,
            from,
            to,
            meta,
            index,
        });
    }

    /// Counts `bytes` of segments that [`Closer::remove_counted`] will queue for removal,
    /// so that [`Closer::removing_bytes`] includes them from now on.
    pub fn count_removal(&self, bytes: u64) {
        self.shared.removing_bytes.fetch_add(bytes, Relaxed);
    }

    /// Removes closed segments (files and catalog entries) holding `bytes` in all, counted
    /// before by [`Closer::count_removal`].
    pub fn remove_counted(&self, paths: Vec<PathBuf>, first_seqs: Vec<u64>, bytes: u64) {
        self.send(Job::Remove {
            paths,
            first_seqs,
            bytes,
        });
    }

    /// Closes not done yet.
    pub fn backlog(&self) -> usize {
        self.shared.pending_closes.load(Relaxed)
    }

    /// Bytes queued for removal, not freed yet: counted as free when checking the floor.
    pub fn removing_bytes(&self) -> u64 {
        self.shared.removing_bytes.load(Relaxed)
    }

    /// The first error the closing thread met, once.
    pub fn take_failure(&self) -> Option<Error> {
        self.shared.failure.lock().ok()?.take()
    }

    /// Waits until every job given so far is done; returns the first error met.
    pub fn wait(&self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Barrier(tx));
        let _ = rx.recv();
        match self.take_failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Holds the closing thread until the returned sender is dropped or sent to.
    #[cfg(test)]
    pub fn stall(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Stall(rx));
        tx
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // The thread only ends when this sender is dropped.
            let _ = jobs.send(job);
        }
    }
}

impl Drop for Closer {
    /// Lets the thread finish what it was given, and waits for it.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(id: CaptureId, store: &Store, jobs: mpsc::Receiver<Job>, shared: &Shared) {
    for job in jobs {
        let done = match job {
            Job::Close {
                file,
                from,
                to,
                meta,
                index,
            } => {
                let r = close_segment(id, store, file, &from, &to, &meta, &index);
                shared.pending_closes.fetch_sub(1, Relaxed);
                r
            }
            Job::Remove {
                paths,
                first_seqs,
                bytes,
            } => {
                let r = remove_segments(id, store, &paths, &first_seqs);
                shared.removing_bytes.fetch_sub(bytes, Relaxed);
                r
            }
            Job::Barrier(reply) => {
                let _ = reply.send(());
                Ok(())
            }
            #[cfg(test)]
            Job::Stall(release) => {
                let _ = release.recv();
                Ok(())
            }
        };
        if let Err(e) = done {
            tracing::error!(capture.id = id, error = %e, "closing or removing a segment");
            if let Ok(mut slot) = shared.failure.lock() {
                slot.get_or_insert(e);
            }
        }
    }
}

fn close_segment(
    id: CaptureId,
    store: &Store,
    file: Arc<File>,
    from: &std::path::Path,
    to: &std::path::Path,
    meta: &SegmentMeta,
    index: &SegmentIndex,
) -> Result<()> {
    // Gives back the disk space reserved past the segment's end: a truncation to the size
    // the file has already frees it, and changes nothing else.
    let len = file.metadata().map_err(|e| Error::io(from, e))?.len();
    file.set_len(len).map_err(|e| Error::io(from, e))?;
    file.sync_all().map_err(|e| Error::io(from, e))?;
    drop(file);
    // In place before the segment is: a closed segment is never without its index but for
    // a crash, and then a replay rebuilds it. Not a reason to fail the capture either.
    if let Some(dir) = to.parent() {
        if let Err(e) = segment_index::file::store(dir, meta.first_seq, index, meta.bytes, true) {
            tracing::warn!(capture.id = id, segment = %to.display(), error = %e,
                "could not store the segment's index; filtered replays will read it in full");
        }
    }
    std::fs::rename(from, to).map_err(|e| Error::io(from, e))?;
    store.put_segment(id, meta)
}

fn remove_segments(
    id: CaptureId,
    store: &Store,
    paths: &[PathBuf],
    first_seqs: &[u64],
) -> Result<()> {
    for path in paths {
        // The index first: a crash in between leaves a segment that rebuilds its index,
        // not an index without a segment.
        let index = path.with_extension(&segment_index::file::SUFFIX[1..]);
        if let Err(e) = std::fs::remove_file(&index) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::io(&index, e));
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    store.remove_segments(id, first_seqs)
}
