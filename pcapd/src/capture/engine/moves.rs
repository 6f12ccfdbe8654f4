//! Moving a capture to another ring: of another size (the ring follows its traffic) or
//! of another read timeout (a live reader came or left), opened beside the one read.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pcap::{Active, Capture};
use pcap_core::savefile::Resolution;

use super::Engine;
use crate::capture::open::{open, Opening};
use crate::capture::overlap::{Overlap, SLACK_NS};
use crate::capture::ring::{Lease, Sizer};
use crate::capture::RingPlan;

/// A ring of another size being opened.
pub(super) struct Moving {
    pub(super) lease: Lease,
    pub(super) opened: mpsc::Receiver<std::result::Result<(Capture<Active>, Resolution), String>>,
    /// The new ring once open, and since when: as an instant, and in nanoseconds since the
    /// epoch (the packets' clock).
    pub(super) ready: Option<(Capture<Active>, Instant, i64)>,
    /// When the move began.
    pub(super) asked: Instant,
    pub(super) overlap: Overlap,
    /// Whether the new ring has the short read timeout.
    pub(super) quick: bool,
}

/// How long the old ring is still read once the new one is open: longer than the old
/// ring's read timeout, after which the kernel hands over its partly filled block. Sooner
/// once the old ring gave a packet stamped after the new one was open (see
/// [`Moving::can_switch`]).
pub(super) const OLD_RING_DRAIN: Duration = Duration::from_millis(60);
/// How long after a ring move packets of the new ring are checked for copies at most.
pub(super) const COPIES_FOR: Duration = Duration::from_secs(2);
/// Whether a capture nobody reads live gets a ring with the long read timeout (20 wake-ups a
/// second instead of 1000, and blocks that hold 50 ms of a trickle: four 256 KiB blocks of a
/// 1 MiB ring are then 200 ms of slack instead of 4 ms). A live reader starts at once and
/// the capture moves to a ring with the 1 ms timeout: until it has (tens of milliseconds),
/// the reader's packets come up to 50 ms late.
pub(super) const QUIET_WHEN_UNREAD: bool = true;
/// How long ring moves pause after one failed.
pub(super) const MOVES_PAUSE: Duration = Duration::from_secs(10);
/// A ring keeps the short read timeout this long after its last live reader left.
pub(super) const QUIET_AFTER: Duration = Duration::from_secs(10);

impl Moving {
    /// Whether the capture can go over to the new ring now: it is open, and what the old
    /// ring has not handed over yet is in the new one too. The kernel hands over blocks in
    /// order, so that holds once the old ring gave a packet stamped after the new one was
    /// open (with [`SLACK_NS`] for a stamp taken late), or once its partly filled block
    /// was handed over by its read timeout ([`OLD_RING_DRAIN`]). At 200,000 packets/s the
    /// first comes within a block's time, about 2 ms, instead of 60 ms during which a small
    /// ring is all the capture has.
    pub(super) fn can_switch(&self) -> bool {
        self.ready.as_ref().is_some_and(|(_, at, at_ns)| {
            at.elapsed() >= OLD_RING_DRAIN
                || self.overlap.newest_ns() >= at_ns.saturating_add(SLACK_NS)
        })
    }
}

/// Now, in nanoseconds since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Engine {
    /// The move to start after a read that found `backlog` bytes waiting in the ring of
    /// `lease` (and the kernel dropping, if `dropped`), when none is under way: to the short
    /// read timeout for a live reader, to another size as `sizer` says, or back to the long
    /// timeout once the last reader has been gone for [`QUIET_AFTER`] (since `quiet_since`).
    pub(super) fn next_move(
        &mut self,
        sizer: &mut Sizer,
        lease: &Lease,
        backlog: u64,
        dropped: bool,
        quiet_since: &mut Option<Instant>,
    ) -> Option<Moving> {
        let now = Instant::now();
        let listened = !self.fanout.is_empty();
        if listened && self.ring_quick == Some(false) {
            // A live reader: a ring of the same size with the short timeout.
            return Some(self.open_ring(self.same_ring(lease), true));
        }
        if let Some(next) = sizer.after_read(lease, backlog, dropped, now) {
            tracing::debug!(
                capture.id = self.p.id,
                from = lease.size(),
                to = next.size(),
                backlog,
                dropped,
                "opening a ring of another size"
            );
            return Some(self.open_ring(next, listened || !self.waiting.is_empty()));
        }
        if QUIET_WHEN_UNREAD && self.ring_quick == Some(true) && !listened {
            // The last live reader left a while ago: back to the quiet timeout.
            let since = *quiet_since.get_or_insert(now);
            if now.duration_since(since) >= QUIET_AFTER {
                return Some(self.open_ring(self.same_ring(lease), false));
            }
        } else {
            *quiet_since = None;
        }
        None
    }

    /// Takes the new ring of a move under way once it is open, or gives the move up: the
    /// ring could not be opened, gives timestamps of another precision, or took so long
    /// that the fingerprints kept meanwhile overflowed.
    pub(super) fn check_opening(&mut self, moving: &mut Option<Moving>, precision: Resolution) {
        let Some(m) = moving.as_mut() else {
            return;
        };
        if m.ready.is_none() {
            let failed = match m.opened.try_recv() {
                Ok(Ok((new, p))) if p == precision => {
                    m.ready = Some((new, Instant::now(), now_ns()));
                    None
                }
                Ok(Ok(_)) => Some("the new ring gives timestamps of another precision".to_owned()),
                Ok(Err(e)) => Some(e),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => {
                    Some("the thread opening it ended".to_owned())
                }
            };
            if let Some(why) = failed {
                *moving = None;
                self.move_failed(&why);
                return;
            }
        }
        if m.ready.is_none() && m.overlap.is_full() {
            *moving = None;
            self.move_failed("the new ring took too long to open");
        }
    }

    /// Starts opening a ring of the size `lease` holds, on a thread of its own (in the
    /// capture's namespace), while this one goes on reading the current ring.
    pub(super) fn open_ring(&self, lease: Lease, quick: bool) -> Moving {
        let (tx, opened) = mpsc::channel();
        let opening = Opening::of(&self.p, lease.size(), quick);
        let filter = self.kernel_filter(&self.p.filter);
        let ns = self.ns.as_ref().map(|(o, _)| o.file.try_clone());
        let spawned = std::thread::Builder::new()
            .name(format!("pcapd-ring-{}", self.p.id))
            .spawn(move || {
                let _inside = match ns {
                    None => None,
                    Some(Ok(file)) => match crate::netns::enter(&file) {
                        Ok(inside) => Some(inside),
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    },
                    Some(Err(e)) => {
                        let _ = tx.send(Err(format!("cannot hold the namespace: {e}")));
                        return;
                    }
                };
                let t0 = Instant::now();
                let r = open(&opening, &filter);
                tracing::debug!(
                    capture.id = opening.id,
                    ring = opening.ring_bytes,
                    took_us = t0.elapsed().as_micros() as u64,
                    "ring opened"
                );
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            tracing::warn!(capture.id = self.p.id, error = %e, "cannot start a thread to open a ring");
        }
        Moving {
            lease,
            opened,
            ready: None,
            asked: Instant::now(),
            overlap: Overlap::default(),
            quick,
        }
    }

    /// A lease for a ring of the size of `lease`'s, to move to for another read timeout.
    pub(super) fn same_ring(&self, lease: &Lease) -> Lease {
        match &self.p.ring {
            RingPlan::Fixed(n) => Lease::fixed(*n),
            RingPlan::Shared(budget) => budget.lease_exact(lease.size()),
        }
    }

    /// A ring move that did not happen: the old ring stays, moves pause for a while, and
    /// readers waiting for a quick ring are served by this one.
    pub(super) fn move_failed(&mut self, why: &str) {
        tracing::warn!(
            capture.id = self.p.id,
            reason = why,
            "cannot move to another ring; keeping this one"
        );
        self.moves_paused_until = Some(Instant::now() + MOVES_PAUSE);
        if let Err(e) = self.answer_waiting() {
            tracing::error!(capture.id = self.p.id, error = %e, "adding live readers");
        }
    }

    pub(super) fn moves_paused(&self) -> bool {
        self.moves_paused_until.is_some_and(|t| Instant::now() < t)
    }
}
