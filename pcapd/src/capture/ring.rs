//! How big each running capture's kernel ring is.
//!
//! The ring is what absorbs the moments the capture thread is not running; too small and a
//! burst is dropped by the kernel, too big and a hundred mostly idle captures pin gigabytes
//! (every page of a TPACKET_V3 ring is mapped into pcapd, whether packets reach it or not).
//! So, unless `capture_buffer` fixes one size for all, rings share a budget
//! (`capture_memory`): each holds at least [`MIN_RING`], and what it holds above that comes
//! out of the budget. A capture starts with the largest power of two up to [`MAX_RING`]
//! that fits what is free, and its ring then follows its traffic: it grows fourfold when one
//! read found a quarter of it filled or the kernel dropped packets, and, when the budget fell
//! short for another capture lately, shrinks if it was hardly used for [`SHRINK_AFTER`]. A
//! ring is not shrunk while nobody needs the memory: a capture quiet for a while is often
//! the one a burst hits next. The engine swaps rings without losing or doubling a packet
//! (see `overlap`).

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
}

impl RingBudget {
    pub fn new(total: u64) -> Arc<RingBudget> {
        Arc::new(RingBudget {
            total: total.into(),
            used: Mutex::new(0),
            short_at: Mutex::new(None),
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

    /// A ring for a capture that starts: the largest power of two up to `max` whose part
    /// above the floor fits what is free; the floor when nothing is.
    pub fn lease(self: &Arc<Self>, max: u32) -> Lease {
        let mut used = self.lock();
        let free = self.total.load(Relaxed).saturating_sub(*used);
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
        if (dropped || backlog * 4 > u64::from(size)) && size < self.max {
            let want = size.saturating_mul(4).min(self.max);
            match lease.budget.lease_up_to(want, size) {
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
        if now.duration_since(self.since) < SHRINK_AFTER {
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
        assert_eq!(
            (first.size(), second.size(), third.size()),
            (64 * MIB, 32 * MIB, 2 * MIB)
        );
        // 1 MiB was left above the floor: one more 2 MiB ring, then the floor.
        assert_eq!(rest[0].size(), 2 * MIB);
        assert!(rest[1..].iter().all(|l| l.size() == MIN_RING));
        let all: u64 = [&first, &second, &third]
            .into_iter()
            .chain(&rest)
            .map(|l| u64::from(l.size()))
            .sum();
        assert!(all < 200 << 20, "a hundred captures hold {all} bytes");
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
        let bigger = s.after_read(&lease, 2 << 20, false, t0).expect("grows");
        assert_eq!(bigger.size(), 16 * MIB);
        drop(lease);
        // Kernel drops make it grow even when one read saw little.
        let biggest = s.after_read(&bigger, 1000, true, t0).expect("grows");
        assert_eq!(biggest.size(), 64 * MIB);
        drop(bigger);
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
        assert_eq!(other.size(), 32 * MIB);
        let smaller = s
            .after_read(&biggest, 100 << 10, false, much_later + SHRINK_AFTER)
            .expect("shrinks");
        assert_eq!(smaller.size(), 1 << 20, "room for 8 x 100 KiB");
        drop(biggest);
        drop(other);
        assert_eq!(budget.usage().1, 0);
    }

    #[test]
    fn a_ring_that_keeps_up_with_a_busy_capture_keeps_its_size() {
        let budget = RingBudget::new(63 << 20);
        let busy = budget.lease(MAX_RING);
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
            let lease = budget.lease(size);
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
        let hog = budget.lease(8 * MIB);
        assert_eq!(hog.size(), 8 * MIB, "7 MiB above the floor fit");
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
        assert_eq!(grown.size(), 4 * MIB);
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
