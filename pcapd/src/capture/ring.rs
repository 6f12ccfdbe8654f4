//! How big each running capture's kernel ring is.
//!
//! The ring is what absorbs the moments the capture thread is not running; too small and a
//! burst is dropped by the kernel, too big and a hundred mostly idle captures pin gigabytes
//! (every page of a TPACKET_V3 ring is mapped into pcapd, whether packets reach it or not).
//! So, unless `capture_buffer` fixes one size for all, rings share a budget
//! (`capture_memory`): each holds at least [`MIN_RING`], and what it holds above that comes
//! out of the budget. A capture starts with the largest power of two up to [`MAX_RING`]
//! that fits what is free beyond a third of the budget (kept for growth), and its ring then
//! follows its traffic: when one read found a quarter of it filled, or the kernel dropped
//! packets, it moves in one step to [`MAX_RING`] or the largest the budget has room for
//! (each move keeps the capture on the small ring for tens of milliseconds); when the
//! budget fell short for another capture lately, it shrinks if it was hardly used for
//! [`SHRINK_AFTER`]. A
//! ring is not shrunk while nobody needs the memory: a capture quiet for a while is often
//! the one a burst hits next. When a running capture's ring is filling and the budget cannot
//! give it a bigger one, that capture is losing slack now, so the others give back what they
//! hardly used in the last [`WANTED_SHRINK_AFTER`] instead, and the filling one asks again at
//! every read until it has grown (captures started together otherwise kept whatever the
//! order of their starts gave them: a selective one 64 MiB, the busy one 2 MiB, for 10 s).
//! The engine swaps rings without losing or doubling a packet (see `overlap`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Smallest ring: four of libpcap's 256 KiB TPACKET_V3 blocks.
pub const MIN_RING: u32 = 1 << 20;
/// Largest ring a capture is given from the budget: at 480 MB/s (the heavy mix at top
/// speed on a veth) it holds about 140 ms of traffic.
pub const MAX_RING: u32 = 64 << 20;
/// Budget shared by the rings above their floor unless the configuration says otherwise:
/// one capture at [`MAX_RING`] and a second at half of it; a hundred captures then hold
/// about 195 MiB of rings in all.
pub const DEFAULT_MEMORY: u64 = 96 << 20;
/// A ring not used past 1/16 of its size for this long shrinks, if the budget is short.
pub const SHRINK_AFTER: Duration = Duration::from_secs(10);
/// The budget counts as short for this long after it could not give a capture what it
/// asked for.
const SHORT_FOR: Duration = Duration::from_secs(60);
/// While a running capture's filling ring waits for budget, rings hardly used for this long
/// shrink.
pub const WANTED_SHRINK_AFTER: Duration = Duration::from_secs(1);
/// A filling ring that could not grow asks again at each read for this long after it last
/// filled, and the budget counts as wanted as long as it asks.
const WANTED_FOR: Duration = Duration::from_secs(10);
/// Bytes a packet takes in the ring besides its data (TPACKET3 header, sockaddr_ll,
/// alignment), roughly.
pub const PER_PACKET_OVERHEAD: u64 = 64;

/// Kernel ring memory shared by the running captures, above each one's floor.
#[derive(Debug)]
pub struct RingBudget {
    total: AtomicU64,
    used: Mutex<u64>,
    /// When a capture last got less than it asked for.
    short_at: Mutex<Option<Instant>>,
    /// When a running capture's filling ring last could not grow as far as it asked.
    wanted_at: Mutex<Option<Instant>>,
}

impl RingBudget {
    pub fn new(total: u64) -> Arc<RingBudget> {
        Arc::new(RingBudget {
            total: total.into(),
            used: Mutex::new(0),
            short_at: Mutex::new(None),
            wanted_at: Mutex::new(None),
        })
    }

    /// A reloaded configuration's size; rings already above it shrink as they go idle.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Relaxed);
    }

    /// The budget's size, and what the rings hold of it now.
    pub fn usage(&self) -> (u64, u64) {
        (self.total.load(Relaxed), *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fell_short(&self) {
        *self.short_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether a capture got less than it asked for lately, so idle rings should give
    /// memory back.
    fn is_short(&self, now: Instant) -> bool {
        self.short_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| now.saturating_duration_since(t) < SHORT_FOR)
    }

    /// A running capture's filling ring could not grow as far as it asked, at `now`.
    fn wanted(&self, now: Instant) {
        self.fell_short();
        *self.wanted_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    /// Whether a filling ring waits for budget, so rings hardly used for
    /// [`WANTED_SHRINK_AFTER`] should give memory back: it asks at each read, so an ask
    /// within the last two such windows means it still waits.
    fn is_wanted(&self, now: Instant) -> bool {
        self.wanted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| now.saturating_duration_since(t) < WANTED_SHRINK_AFTER * 2)
    }

    /// A ring for a capture that starts: the largest power of two up to `max` whose part
    /// above the floor fits what is free beyond a third of the budget; the floor when
    /// nothing is. That third is left for growth: which of several captures started
    /// together is the busy one shows only once packets come, and the rings that started
    /// big give memory back only once they have been seen idle.
    pub fn lease(self: &Arc<Self>, max: u32) -> Lease {
        self.lease_keeping(max, true)
    }

    /// As [`RingBudget::lease`], for a capture without a filter: it sees every packet of its
    /// interface, so it is the one that would grow into the third kept for growth, and it
    /// may start with it. (Ten captures started together, the first without a filter: when
    /// selective ones happened to ask first, it started with 1 MiB and dropped packets in
    /// the 100-150 ms its first move took at 200,000 packets/s.)
    pub fn lease_unfiltered(self: &Arc<Self>, max: u32) -> Lease {
        self.lease_keeping(max, false)
    }

    fn lease_keeping(self: &Arc<Self>, max: u32, keep_for_growth: bool) -> Lease {
        let mut used = self.lock();
        let total = self.total.load(Relaxed);
        let kept = if keep_for_growth { total / 3 } else { 0 };
        let free = total.saturating_sub(*used).saturating_sub(kept);
        let size = fitting(max, free);
        *used += excess(size);
        if size < max {
            self.fell_short();
        }
        Lease {
            size,
            budget: self.clone(),
        }
    }

    /// A ring of exactly `size` beside the current one of the same size (a move for another
    /// read timeout), even if the budget is short: it is given back when the move ends.
    pub fn lease_exact(self: &Arc<Self>, size: u32) -> Lease {
        *self.lock() += excess(size);
        Lease {
            size,
            budget: self.clone(),
        }
    }

    /// A further ring of `size` (or the largest power of two below it that fits, if that is
    /// still above `above`), held beside the current one while the capture moves over.
    fn lease_up_to(self: &Arc<Self>, size: u32, above: u32) -> Option<Lease> {
        let mut used = self.lock();
        let free = self.total.load(Relaxed).saturating_sub(*used);
        let asked = size;
        let size = fitting(size, free);
        if size < asked {
            self.fell_short();
        }
        if size <= above {
            return None;
        }
        *used += excess(size);
        Some(Lease {
            size,
            budget: self.clone(),
        })
    }
}

/// The largest power of two in `MIN_RING..=max` whose excess over the floor is at most
/// `free`.
fn fitting(max: u32, free: u64) -> u32 {
    let mut size = max.max(MIN_RING).next_power_of_two();
    if size > max.max(MIN_RING) {
        size /= 2;
    }
    while size > MIN_RING && excess(size) > free {
        size /= 2;
    }
    size.max(MIN_RING)
}

fn excess(size: u32) -> u64 {
    u64::from(size.saturating_sub(MIN_RING))
}

/// A ring's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Lease {
    size: u32,
    budget: Arc<RingBudget>,
}

impl Lease {
    pub fn size(&self) -> u32 {
        self.size
    }

    /// A lease of `size` outside any budget (`capture_buffer` set, or a test).
    pub fn fixed(size: u32) -> Lease {
        Lease {
            size,
            budget: RingBudget::new(0),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut used = self.budget.lock();
        *used = used.saturating_sub(excess(self.size));
    }
}

/// Watches how full one capture's ring gets and says when it should change size.
#[derive(Debug)]
pub struct Sizer {
    /// Whether the ring may change at all (not when `capture_buffer` fixes it).
    adaptive: bool,
    max: u32,
    /// Most bytes one read found waiting, since `since`.
    peak: u64,
    /// Bytes read since `since`.
    read: u64,
    since: Instant,
    /// When the ring last grew; it does not shrink soon after.
    grew: Option<Instant>,
    /// Said once per ring that it cannot grow for want of budget.
    told_short: bool,
    /// When the ring last filled or dropped without growing as far as it asked: until
    /// [`WANTED_FOR`] after that, it asks again at every read.
    wanting: Option<Instant>,
}

impl Sizer {
    pub fn new(adaptive: bool, max: u32) -> Sizer {
        Sizer {
            adaptive,
            max,
            peak: 0,
            read: 0,
            since: Instant::now(),
            grew: None,
            told_short: false,
            wanting: None,
        }
    }

    /// After a read that found `backlog` bytes waiting (`dropped`: the kernel dropped
    /// packets since the last look), with the ring held by `lease`: whether to move to
    /// another ring, whose lease is returned.
    pub fn after_read(
        &mut self,
        lease: &Lease,
        backlog: u64,
        dropped: bool,
        now: Instant,
    ) -> Option<Lease> {
        if !self.adaptive {
            return None;
        }
        let size = lease.size;
        self.peak = self.peak.max(backlog);
        self.read += backlog;
        let filling = dropped || backlog * 4 > u64::from(size);
        if size >= self.max
            || self
                .wanting
                .is_some_and(|t| now.saturating_duration_since(t) >= WANTED_FOR)
        {
            self.wanting = None;
        }
        if (filling || self.wanting.is_some()) && size < self.max {
            // As big as the budget lets it be, in one move: a ring that fills is read by a
            // thread that fell behind, and each move keeps it on the small ring a while.
            let want = self.max;
            let bigger = lease.budget.lease_up_to(want, size);
            if bigger.as_ref().is_none_or(|b| b.size < want) {
                // This ring asks again at each read until it has what it asked for, and
                // meanwhile the others give back what they hardly use.
                if filling {
                    self.wanting = Some(now);
                }
                lease.budget.wanted(now);
            } else {
                self.wanting = None;
            }
            match bigger {
                Some(bigger) => {
                    self.grew = Some(now);
                    self.reset(now);
                    self.told_short = false;
                    return Some(bigger);
                }
                None if !self.told_short => {
                    self.told_short = true;
                    tracing::warn!(
                        ring = size,
                        backlog,
                        "the capture's ring is filling but capture_memory has no room for a \
                         bigger one; raise capture_memory if the kernel drops packets"
                    );
                }
                None => {}
            }
        }
        // The shorter window only while another ring waits for memory (the budget is
        // asked only once that window has passed: most reads end here).
        let elapsed = now.duration_since(self.since);
        if elapsed < WANTED_SHRINK_AFTER
            || (elapsed < SHRINK_AFTER && !(self.wanting.is_none() && lease.budget.is_wanted(now)))
        {
            return None;
        }
        let recent_growth = self
            .grew
            .is_some_and(|g| now.duration_since(g) < 3 * SHRINK_AFTER);
        let (peak, read) = (self.peak, self.read);
        self.reset(now);
        // A ring that keeps up with a busy capture reads little at a time, yet its size is
        // what carries the capture through a stall: only a ring that would hold the whole
        // window's traffic is too big.
        if size <= MIN_RING
            || recent_growth
            || peak * 16 >= u64::from(size)
            || read >= u64::from(size)
            || !lease.budget.is_short(now)
        {
            return None;
        }
        // Room for eight times the busiest read of the window, and the window's traffic.
        let want = (peak * 8)
            .max(read)
            .clamp(u64::from(MIN_RING), u64::from((size / 4).max(MIN_RING)))
            .next_power_of_two() as u32;
        (want < size)
            .then(|| lease.budget.lease_up_to(want, 0))
            .flatten()
    }

    fn reset(&mut self, now: Instant) {
        self.peak = 0;
        self.read = 0;
        self.since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u32 = 1 << 20;

    #[test]
    fn captures_start_as_big_as_the_budget_lets_them() {
        let budget = RingBudget::new(96 << 20);
        let first = budget.lease(MAX_RING);
        let second = budget.lease(MAX_RING);
        let third = budget.lease(MAX_RING);
        let rest: Vec<_> = (0..97).map(|_| budget.lease(MAX_RING)).collect();
        // A third of the budget is kept for growth: 1 MiB was left above it.
        assert_eq!(
            (first.size(), second.size(), third.size()),
            (64 * MIB, 2 * MIB, MIN_RING)
        );
        assert!(rest.iter().all(|l| l.size() == MIN_RING));
        let all: u64 = [&first, &second, &third]
            .into_iter()
            .chain(&rest)
            .map(|l| u64::from(l.size()))
            .sum();
        assert_eq!(all, 164 << 20, "a hundred captures hold {all} bytes");
        // One without a filter started among them may take the third kept.
        let unfiltered = budget.lease_unfiltered(MAX_RING);
        assert_eq!(unfiltered.size(), 32 * MIB);
        drop(unfiltered);
        // Whichever of them turns out busy grows at once, from the third kept.
        let mut s = Sizer::new(true, MAX_RING);
        let t0 = Instant::now();
        let grown = s
            .after_read(&rest[50], 512 << 10, false, t0)
            .expect("grows");
        assert_eq!(grown.size(), 32 * MIB, "the third kept, in one move");
        assert!(
            s.after_read(&grown, 0, true, t0).is_none(),
            "nothing more in the budget"
        );
        drop(grown);
        drop(first);
        assert_eq!(budget.lease(MAX_RING).size(), 64 * MIB, "given back");
    }

    #[test]
    fn a_filling_ring_grows_and_an_idle_one_shrinks_back_when_another_needs_it() {
        let budget = RingBudget::new(96 << 20);
        let lease = budget.lease(4 * MIB);
        assert_eq!(lease.size(), 4 * MIB);
        let t0 = Instant::now();
        let mut s = Sizer::new(true, MAX_RING);
        assert!(s.after_read(&lease, 512 << 10, false, t0).is_none());
        let biggest = s.after_read(&lease, 2 << 20, false, t0).expect("grows");
        assert_eq!(
            biggest.size(),
            64 * MIB,
            "as big as a ring may be, in one move"
        );
        drop(lease);
        // Not shrunk right after growing, even when idle.
        let later = t0 + SHRINK_AFTER + Duration::from_secs(1);
        assert!(s.after_read(&biggest, 0, false, later).is_none());
        let much_later = t0 + 4 * SHRINK_AFTER;
        assert!(
            s.after_read(&biggest, 100 << 10, false, much_later)
                .is_none(),
            "hardly used, but nobody needs the memory"
        );
        // Another capture asks for more than is left: the idle ring gives memory back.
        let other = budget.lease(MAX_RING);
        assert_eq!(other.size(), 2 * MIB);
        let smaller = s
            .after_read(&biggest, 100 << 10, false, much_later + SHRINK_AFTER)
            .expect("shrinks");
        assert_eq!(smaller.size(), 1 << 20, "room for 8 x 100 KiB");
        drop(biggest);
        drop(other);
        assert_eq!(budget.usage().1, 0);
    }

    #[test]
    fn a_filling_ring_that_cannot_grow_makes_idle_ones_give_back_within_a_second() {
        // The whole budget held, the busy capture's ring the smallest.
        let budget = RingBudget::new(96 << 20);
        let idle = budget.lease_exact(64 * MIB);
        let other = budget.lease_exact(32 * MIB);
        let busy = budget.lease_exact(2 * MIB);
        assert_eq!(budget.usage(), (96 << 20, 95 << 20));
        let (mut s_idle, mut s_busy) = (Sizer::new(true, MAX_RING), Sizer::new(true, MAX_RING));
        let t0 = Instant::now();
        let later = |ms: u64| t0 + Duration::from_millis(ms);
        // Nobody waits for memory: an idle ring keeps its size past a second.
        assert!(s_idle.after_read(&idle, 0, false, later(1100)).is_none());
        // The busy ring fills and cannot grow...
        assert!(s_busy
            .after_read(&busy, 1 << 20, false, later(1200))
            .is_none());
        // ...so the idle one, hardly used for a second, gives back what it does not use.
        let smaller = s_idle
            .after_read(&idle, 64 << 10, false, later(1300))
            .expect("shrinks while another ring waits");
        assert_eq!(smaller.size(), MIN_RING);
        drop(idle);
        // The busy ring asks again at its next read, even one that found little waiting.
        let grown = s_busy
            .after_read(&busy, 4096, false, later(1400))
            .expect("grows once there is room");
        assert_eq!(grown.size(), 64 * MIB);
        drop(busy);
        // It got all it asked for: it no longer asks without filling.
        assert!(s_busy
            .after_read(&grown, 4096, false, later(1500))
            .is_none());
        drop(other);
    }

    #[test]
    fn a_ring_that_keeps_up_with_a_busy_capture_keeps_its_size() {
        let budget = RingBudget::new(63 << 20);
        let busy = budget.lease_exact(MAX_RING);
        assert_eq!(
            budget.lease(MAX_RING).size(),
            MIN_RING,
            "the budget is short"
        );
        let mut s = Sizer::new(true, MAX_RING);
        let t0 = Instant::now();
        // 256 KiB a read, 400 reads a second: 100 MB/s through a ring never a 16th full.
        for i in 1..=4000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 5 / 2);
            assert!(
                s.after_read(&busy, 256 << 10, false, now).is_none(),
                "shrunk at read {i}"
            );
        }
    }

    #[test]
    fn small_idle_rings_shrink_to_the_floor() {
        for size in [2 * MIB, 4 * MIB] {
            let budget = RingBudget::new(u64::from(size - MIN_RING));
            let lease = budget.lease_exact(size);
            assert_eq!(lease.size(), size);
            // Nothing left: the budget is short, so idle rings give memory back.
            assert_eq!(budget.lease(MAX_RING).size(), MIN_RING);
            let mut s = Sizer::new(true, MAX_RING);
            let t0 = Instant::now();
            assert!(s.after_read(&lease, 0, false, t0).is_none());
            let smaller = s
                .after_read(&lease, 0, false, t0 + SHRINK_AFTER)
                .expect("shrinks");
            assert_eq!(smaller.size(), MIN_RING, "from {size}");
        }
    }

    #[test]
    fn growth_takes_what_the_budget_has_and_says_so_when_nothing() {
        let budget = RingBudget::new(7 << 20);
        let hog = budget.lease_exact(8 * MIB);
        let small = budget.lease(MAX_RING);
        assert_eq!(small.size(), MIN_RING);
        let mut s = Sizer::new(true, MAX_RING);
        assert!(s
            .after_read(&small, 1 << 20, true, Instant::now())
            .is_none());
        drop(hog);
        let grown = s
            .after_read(&small, 1 << 20, true, Instant::now())
            .expect("room now");
        assert_eq!(grown.size(), 8 * MIB, "all there is");
    }

    #[test]
    fn a_fixed_ring_never_changes() {
        let lease = Lease::fixed(32 * MIB);
        let mut s = Sizer::new(false, MAX_RING);
        assert!(s
            .after_read(&lease, 32 << 20, true, Instant::now())
            .is_none());
    }
}
