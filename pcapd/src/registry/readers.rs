//! Who is reading which capture: the Replay, Listen and Decode streams being served, and how many
//! packets were skipped for them because they read too slowly. Read for metrics only;
//! a stream registers itself with a guard that it drops when it ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use pcap_core::domain::CaptureId;

use super::Registry;
use crate::capture::live::Subscription;

/// The call a reader came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReaderKind {
    Replay,
    Listen,
    Decode,
}

impl ReaderKind {
    /// Every kind, for reporting zeros too.
    pub const ALL: [ReaderKind; 3] = [ReaderKind::Replay, ReaderKind::Listen, ReaderKind::Decode];

    /// Lower-case name, as in the CLI.
    pub fn name(self) -> &'static str {
        match self {
            ReaderKind::Replay => "replay",
            ReaderKind::Listen => "listen",
            ReaderKind::Decode => "decode",
        }
    }
}

/// Readers of one capture through one kind of call, now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Streams being served.
    pub connected: u64,
    /// Packets skipped for slow readers, those that left included.
    pub skipped: u64,
}

/// Every capture's readers.
#[derive(Debug, Default)]
pub struct Readers {
    tallies: Mutex<BTreeMap<(CaptureId, ReaderKind), Tally>>,
}

#[derive(Debug, Default)]
struct Tally {
    /// The lost-packet counter of each connected reader (zero for spool-only replays).
    connected: Vec<Arc<AtomicU64>>,
    /// Packets lost by readers that have left.
    skipped_by_gone: u64,
}

/// Counts a stream as connected until it is dropped.
#[derive(Debug)]
pub struct ReaderGuard {
    readers: Arc<Readers>,
    key: (CaptureId, ReaderKind),
    lost: Arc<AtomicU64>,
}

impl Readers {
    /// Counts a reader of `key` until the guard is dropped; `lost` is its skip counter.
    fn open(self: &Arc<Self>, key: (CaptureId, ReaderKind), lost: Arc<AtomicU64>) -> ReaderGuard {
        self.lock()
            .entry(key)
            .or_default()
            .connected
            .push(lost.clone());
        ReaderGuard {
            readers: self.clone(),
            key,
            lost,
        }
    }

    fn stats(&self, key: (CaptureId, ReaderKind)) -> ReaderStats {
        self.lock()
            .get(&key)
            .map(|t| ReaderStats {
                connected: t.connected.len() as u64,
                skipped: t.skipped_by_gone
                    + t.connected.iter().map(|l| l.load(Relaxed)).sum::<u64>(),
            })
            .unwrap_or_default()
    }

    /// Keeps the tallies of `known` captures and of those still being read.
    fn retain(&self, known: &[CaptureId]) {
        self.lock()
            .retain(|(id, _), t| !t.connected.is_empty() || known.contains(id));
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(CaptureId, ReaderKind), Tally>> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Registry {
    /// Registers a stream reading capture `id`; `live` is its queue of new packets, if any.
    pub fn reader_opened(
        &self,
        id: CaptureId,
        kind: ReaderKind,
        live: Option<&Subscription>,
    ) -> ReaderGuard {
        let lost = live.map(Subscription::lost_counter).unwrap_or_default();
        self.readers.open((id, kind), lost)
    }

    /// The readers of capture `id` through `kind` of call.
    pub fn reader_stats(&self, id: CaptureId, kind: ReaderKind) -> ReaderStats {
        self.readers.stats((id, kind))
    }

    /// Forgets what the readers of deleted captures lost, once none is connected.
    pub fn forget_readers_of_deleted(&self) {
        let known: Vec<CaptureId> = self.lock().by_id.keys().copied().collect();
        self.readers.retain(&known);
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut tallies = self.readers.lock();
        if let Some(t) = tallies.get_mut(&self.key) {
            if let Some(i) = t.connected.iter().position(|l| Arc::ptr_eq(l, &self.lost)) {
                t.connected.swap_remove(i);
            }
            t.skipped_by_gone += self.lost.load(Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_counts_while_connected_and_its_losses_stay() {
        let readers = Arc::new(Readers::default());
        let key = (1, ReaderKind::Listen);
        let lost = Arc::new(AtomicU64::new(0));
        let first = readers.open(key, lost.clone());
        let second = readers.open(key, Arc::default());
        assert_eq!(readers.stats(key).connected, 2);
        assert_eq!(
            readers.stats((1, ReaderKind::Replay)),
            ReaderStats::default()
        );
        lost.store(7, Relaxed);
        assert_eq!(readers.stats(key).skipped, 7, "counted while connected");
        drop(first);
        assert_eq!(
            readers.stats(key),
            ReaderStats {
                connected: 1,
                skipped: 7
            },
            "and kept after it left"
        );
        readers.retain(&[]);
        assert_eq!(readers.stats(key).skipped, 7, "kept while still read");
        drop(second);
        readers.retain(&[]);
        assert_eq!(
            readers.stats(key),
            ReaderStats::default(),
            "forgotten once deleted"
        );
    }
}
