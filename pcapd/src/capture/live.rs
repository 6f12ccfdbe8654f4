//! Fan-out of captured packets to live readers. Each reader has a queue bounded in batches
//! and in bytes; the capture thread never waits on one: when a queue is full the batch is
//! skipped for that reader only, and it is told how many packets it missed before its next
//! batch. So a stalled reader costs at most its queue's bytes of memory.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pcap_core::domain::State;
use pcap_core::savefile::{encode_record, Resolution};
use tokio::sync::mpsc;

/// Batches a reader may have queued before it starts losing packets.
pub const QUEUE_BATCHES: usize = 512;
/// Packet bytes a reader may have queued before it starts losing packets.
pub const QUEUE_BYTES: usize = 8 << 20;

/// Live readers get what one read produced, in batches of at most about this many bytes.
const LIVE_BATCH: usize = 256 << 10;
/// Room first made for them (it grows as needed).
const LIVE_START: usize = 16 << 10;

/// Packets as handed to live readers: savefile records back to back (as the spool holds
/// them, times in nanoseconds), shared by every reader without copying.
#[derive(Debug, Clone)]
pub struct LiveBatch {
    pub records: Bytes,
    /// Sequence number of the first record; the others follow one by one.
    pub first_seq: u64,
    pub count: u32,
}

/// What a live reader receives.
#[derive(Debug, Clone)]
pub enum LiveItem {
    Packets(LiveBatch),
    /// This many packets were skipped because the reader's queue was full.
    Gap(u64),
    /// The capture changed state; after a stopping state the queue closes.
    State(State, String),
}

/// Records for live readers gathered during one read of the ring.
#[derive(Default)]
pub struct PendingBatch {
    records: Vec<u8>,
    first_seq: u64,
    count: u32,
}

impl PendingBatch {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether it is time to hand the batch over, even in the middle of a read.
    pub fn is_full(&self) -> bool {
        self.records.len() >= LIVE_BATCH
    }

    pub fn push(&mut self, seq: u64, ts_ns: i64, origlen: u32, data: &[u8]) {
        if self.count == 0 {
            self.first_seq = seq;
            self.records.reserve(LIVE_START);
        }
        self.count += 1;
        encode_record(&mut self.records, Resolution::Nano, ts_ns, origlen, data);
    }

    pub fn take(&mut self) -> LiveBatch {
        let mut records = std::mem::take(&mut self.records);
        // Readers' queues are bounded by the bytes they hold: hold no more than that.
        if records.capacity() > 2 * records.len() {
            records.shrink_to_fit();
        }
        let batch = LiveBatch {
            records: Bytes::from(records),
            first_seq: self.first_seq,
            count: self.count,
        };
        self.count = 0;
        batch
    }
}

/// Receiving end of a live reader's queue.
pub struct Subscription {
    rx: mpsc::Receiver<LiveItem>,
    queued: Arc<AtomicUsize>,
    /// Packets skipped and not reported yet; reported here when the queue closes, since
    /// the capture may stop while this reader's queue is still full.
    skipped: Arc<AtomicU64>,
    /// Every packet ever skipped for this reader, reported or not (for metrics).
    lost: Arc<AtomicU64>,
}

impl Subscription {
    /// A running count of the packets skipped for this reader so far, which the capture
    /// thread keeps adding to while the reader is connected.
    pub fn lost_counter(&self) -> Arc<AtomicU64> {
        self.lost.clone()
    }

    /// The next item; `None` once the capture has stopped and everything was read.
    pub async fn recv(&mut self) -> Option<LiveItem> {
        let Some(item) = self.rx.recv().await else {
            return self.final_gap();
        };
        if let LiveItem::Packets(batch) = &item {
            self.queued.fetch_sub(batch_bytes(batch), Ordering::Relaxed);
        }
        Some(item)
    }

    /// Takes an item without waiting.
    pub fn try_recv(&mut self) -> Result<LiveItem, mpsc::error::TryRecvError> {
        let item = match self.rx.try_recv() {
            Err(mpsc::error::TryRecvError::Disconnected) => {
                return self
                    .final_gap()
                    .ok_or(mpsc::error::TryRecvError::Disconnected);
            }
            other => other?,
        };
        if let LiveItem::Packets(batch) = &item {
            self.queued.fetch_sub(batch_bytes(batch), Ordering::Relaxed);
        }
        Ok(item)
    }
}

impl Subscription {
    fn final_gap(&mut self) -> Option<LiveItem> {
        match self.skipped.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some(LiveItem::Gap(n)),
        }
    }
}

fn batch_bytes(batch: &LiveBatch) -> usize {
    batch.records.len()
}

struct Reader {
    tx: mpsc::Sender<LiveItem>,
    queued: Arc<AtomicUsize>,
    skipped: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

/// The live readers of one capture.
#[derive(Default)]
pub struct Fanout {
    readers: Vec<Reader>,
}

impl Fanout {
    /// Adds a reader and returns its queue.
    pub fn subscribe(&mut self) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let queued = Arc::new(AtomicUsize::new(0));
        let skipped = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        self.readers.push(Reader {
            tx,
            queued: queued.clone(),
            skipped: skipped.clone(),
            lost: lost.clone(),
        });
        Subscription {
            rx,
            queued,
            skipped,
            lost,
        }
    }

    /// Whether anyone is listening (so packets need copying at all).
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// Lets go of readers that went away (publishing does it too).
    pub fn prune(&mut self) {
        self.readers.retain(|r| !r.tx.is_closed());
    }

    /// Offers a batch to every reader without blocking; drops readers that went away.
    pub fn publish(&mut self, batch: LiveBatch) {
        let n = u64::from(batch.count);
        let bytes = batch_bytes(&batch);
        self.readers.retain_mut(|r| {
            if r.tx.is_closed() {
                return false;
            }
            if r.queued.load(Ordering::Relaxed) + bytes > QUEUE_BYTES {
                r.skipped.fetch_add(n, Ordering::Relaxed);
                r.lost.fetch_add(n, Ordering::Relaxed);
                return true;
            }
            let missed = r.skipped.swap(0, Ordering::Relaxed);
            if missed > 0 {
                match r.tx.try_send(LiveItem::Gap(missed)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        r.skipped.fetch_add(missed + n, Ordering::Relaxed);
                        r.lost.fetch_add(n, Ordering::Relaxed);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            match r.tx.try_send(LiveItem::Packets(batch.clone())) {
                Ok(()) => {
                    r.queued.fetch_add(bytes, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    r.skipped.fetch_add(n, Ordering::Relaxed);
                    r.lost.fetch_add(n, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Tells every reader of a state change (best effort: a full queue misses it).
    pub fn notify(&mut self, state: State, reason: &str) {
        self.readers.retain(|r| {
            !matches!(
                r.tx.try_send(LiveItem::State(state, reason.to_owned())),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64) -> LiveBatch {
        LiveBatch {
            records: Bytes::from_static(b"x"),
            first_seq: seq,
            count: 1,
        }
    }

    #[test]
    fn a_slow_reader_loses_only_its_own_packets_and_is_told() {
        let mut f = Fanout::default();
        let mut fast = f.subscribe();
        let mut slow = f.subscribe();
        let total = QUEUE_BATCHES as u64 + 10;
        for seq in 1..=total {
            f.publish(batch(seq));
            assert!(matches!(fast.try_recv(), Ok(LiveItem::Packets(b)) if b.first_seq == seq));
        }
        for _ in 0..QUEUE_BATCHES {
            assert!(matches!(slow.try_recv(), Ok(LiveItem::Packets(_))));
        }
        f.publish(batch(total + 1));
        assert!(matches!(slow.try_recv(), Ok(LiveItem::Gap(10))));
        assert!(matches!(slow.try_recv(), Ok(LiveItem::Packets(b)) if b.first_seq == total + 1));
    }

    #[test]
    fn a_reader_holds_at_most_its_byte_budget() {
        let mut f = Fanout::default();
        let mut slow = f.subscribe();
        let big = |seq| LiveBatch {
            records: Bytes::from(vec![0u8; 1 << 20]),
            first_seq: seq,
            count: 1,
        };
        for seq in 1..=100 {
            f.publish(big(seq));
        }
        let mut queued = 0;
        while let Ok(LiveItem::Packets(_)) = slow.try_recv() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE_BYTES >> 20, "only the byte budget was queued");
        f.publish(big(101));
        assert!(
            matches!(slow.try_recv(), Ok(LiveItem::Gap(n)) if n == 100 - (QUEUE_BYTES as u64 >> 20))
        );
    }

    #[test]
    fn a_reader_full_when_the_capture_stops_still_learns_what_it_missed() {
        let mut f = Fanout::default();
        let mut slow = f.subscribe();
        for seq in 1..=(QUEUE_BATCHES as u64 + 7) {
            f.publish(batch(seq));
        }
        drop(f); // the capture stops
        let mut packets = 0;
        let mut gap = 0;
        while let Ok(item) = slow.try_recv() {
            match item {
                LiveItem::Packets(_) => packets += 1,
                LiveItem::Gap(n) => gap += n,
                LiveItem::State(..) => {}
            }
        }
        assert_eq!((packets, gap), (QUEUE_BATCHES, 7));
    }

    #[test]
    fn the_lost_counter_counts_every_skipped_packet_once() {
        let mut f = Fanout::default();
        let mut slow = f.subscribe();
        let lost = slow.lost_counter();
        for seq in 1..=(QUEUE_BATCHES as u64 + 10) {
            f.publish(batch(seq));
        }
        assert_eq!(lost.load(Ordering::Relaxed), 10);
        // The gap cannot be queued either: only the new packet is lost on top.
        f.publish(batch(QUEUE_BATCHES as u64 + 11));
        assert_eq!(lost.load(Ordering::Relaxed), 11);
        while slow.try_recv().is_ok() {}
        assert_eq!(
            lost.load(Ordering::Relaxed),
            11,
            "reading does not change it"
        );
    }

    #[test]
    fn readers_that_left_are_dropped() {
        let mut f = Fanout::default();
        drop(f.subscribe());
        f.publish(batch(1));
        assert!(f.is_empty());
    }
}
