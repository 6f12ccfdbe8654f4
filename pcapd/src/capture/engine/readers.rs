//! Live readers of a capture: subscribed at once, answered once their records are written
//! and the ring has the short read timeout.

use tokio::sync::oneshot;

use super::Engine;
use crate::capture::live::Subscription;

/// Where a live reader learns where its queue starts, and gets it.
pub(super) type Reply = oneshot::Sender<(u64, Subscription)>;

impl Engine {
    /// Adds a live reader; it learns the last sequence number on disk, so that its queue
    /// starts exactly after it. Its queue gathers from now on; the answer goes once that
    /// record is in the spool's files (the reader may replay them first) and, while the
    /// ring has the long read timeout, once the capture has moved to one with the short
    /// timeout: a client that waits for its stream's header before it sends sees no packet
    /// held up to 50 ms in a partly filled block, and one that does not loses nothing.
    pub(super) fn subscribe(&mut self, reply: Reply) -> crate::Result<()> {
        let sub = self.fanout.subscribe();
        let seq = self.spool.last_seq();
        if self.ring_quick == Some(false) && !self.moves_paused() {
            self.waiting.push((seq, sub, reply));
            return Ok(());
        }
        self.answer(seq, sub, reply)
    }

    pub(super) fn answer(
        &mut self,
        seq: u64,
        sub: Subscription,
        reply: Reply,
    ) -> crate::Result<()> {
        self.spool.when_written(move || {
            let _ = reply.send((seq, sub));
        })
    }

    /// Serves the readers that waited for a ring with the short timeout.
    pub(super) fn answer_waiting(&mut self) -> crate::Result<()> {
        for (seq, sub, reply) in std::mem::take(&mut self.waiting) {
            self.answer(seq, sub, reply)?;
        }
        Ok(())
    }
}
