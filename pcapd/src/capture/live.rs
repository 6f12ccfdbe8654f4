//! Fan-out of captured packets to live readers. Each reader has a bounded queue; the
//! capture thread never waits on one: when a queue is full the batch is skipped for that
//! reader only, and it is told how many packets it missed before its next batch.

use std::sync::Arc;

use bytes::Bytes;
use pcap_core::domain::State;
use tokio::sync::mpsc;

/// Batches a reader may have queued before it starts losing packets.
pub const QUEUE_BATCHES: usize = 512;

/// A packet as handed to live readers.
#[derive(Debug, Clone)]
pub struct LivePacket {
    pub ts_ns: i64,
    pub origlen: u32,
    pub seq: u64,
    pub data: Bytes,
}

/// What a live reader receives.
#[derive(Debug, Clone)]
pub enum LiveItem {
    Packets(Arc<Vec<LivePacket>>),
    /// This many packets were skipped because the reader's queue was full.
    Gap(u64),
    /// The capture changed state; after a stopping state the queue closes.
    State(State, String),
}

/// Receiving end of a live reader's queue.
pub type Subscription = mpsc::Receiver<LiveItem>;

struct Reader {
    tx: mpsc::Sender<LiveItem>,
    skipped: u64,
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
        self.readers.push(Reader { tx, skipped: 0 });
        rx
    }

    /// Whether anyone is listening (so packets need copying at all).
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// Offers a batch to every reader without blocking; drops readers that went away.
    pub fn publish(&mut self, batch: Arc<Vec<LivePacket>>) {
        let n = batch.len() as u64;
        self.readers.retain_mut(|r| {
            if r.skipped > 0 {
                match r.tx.try_send(LiveItem::Gap(r.skipped)) {
                    Ok(()) => r.skipped = 0,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        r.skipped += n;
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            match r.tx.try_send(LiveItem::Packets(batch.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    r.skipped += n;
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

    fn batch(seq: u64) -> Arc<Vec<LivePacket>> {
        Arc::new(vec![LivePacket {
            ts_ns: 0,
            origlen: 1,
            seq,
            data: Bytes::from_static(b"x"),
        }])
    }

    #[test]
    fn a_slow_reader_loses_only_its_own_packets_and_is_told() {
        let mut f = Fanout::default();
        let mut fast = f.subscribe();
        let mut slow = f.subscribe();
        let total = QUEUE_BATCHES as u64 + 10;
        for seq in 1..=total {
            f.publish(batch(seq));
            assert!(matches!(fast.try_recv(), Ok(LiveItem::Packets(b)) if b[0].seq == seq));
        }
        for _ in 0..QUEUE_BATCHES {
            assert!(matches!(slow.try_recv(), Ok(LiveItem::Packets(_))));
        }
        f.publish(batch(total + 1));
        assert!(matches!(slow.try_recv(), Ok(LiveItem::Gap(10))));
        assert!(matches!(slow.try_recv(), Ok(LiveItem::Packets(b)) if b[0].seq == total + 1));
    }

    #[test]
    fn readers_that_left_are_dropped() {
        let mut f = Fanout::default();
        drop(f.subscribe());
        f.publish(batch(1));
        assert!(f.is_empty());
    }
}
