//! Shared rings: past [`SHARE_AFTER`] (16, `shared_ring_after` in the configuration) running
//! captures on one interface, the next ones do not open a kernel socket each but read one
//! shared socket together.
//!
//! Every packet socket on an interface costs the kernel a run of its filter for every
//! packet the interface carries, in the softirq of whoever sent or received it: a hundred
//! captures on one interface cut what a sender on this host gets through by a third to two
//! thirds, whatever their filters keep. One shared socket without a filter costs that once;
//! its thread runs each capture's filter in pcapd (compiled for the link type, as `tcpdump
//! -r` would run it on the savefile) and hands each capture what its filter keeps, in
//! batches over a queue bounded in bytes. The capture threads spool them as they spool
//! their own ring.
//!
//! Drops stay visible per capture: a capture on a shared ring counts every packet the
//! shared ring's kernel socket dropped since it joined (any of them may have been its
//! own), and every packet skipped because its queue was full.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};

use pcap::{Active, BpfProgram, Capture};
use pcap_core::domain::CaptureId;
use pcap_core::savefile::Resolution;

use super::ring::Lease;

mod classic;
#[cfg(test)]
mod fixtures;
mod groups;
mod reader;

use groups::Plan;
pub use reader::TapBatch;
use reader::{guarded, read, Member, BATCH_BYTES};

/// Captures on one interface that each have a socket of their own; later ones share one.
/// Up to this many, each capture's filter runs in the kernel and a capture that keeps
/// little costs pcapd little (a shared ring costs a copy of every packet of the interface
/// and a run of each member's filter in pcapd); past it, what one more socket costs every
/// packet of the interface (about 40 ns of the sender's or receiver's CPU here) outweighs
/// filtering in pcapd. The default of `shared_ring_after`.
pub const SHARE_AFTER: usize = 16;

/// What captures must have in common to share a ring.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TapKey {
    pub device: String,
    pub snaplen: u32,
    pub promisc: bool,
    pub link_type: u32,
}

#[derive(Default)]
struct Members {
    list: Vec<Member>,
    /// What each member runs for a packet (filters of one form run once for all their
    /// members); rebuilt when `list` or a filter changed.
    plan: Plan,
    changed: bool,
    /// Set once the shared ring's thread ended: nobody may join it any more.
    closed: bool,
    /// Why it ended, when its socket failed.
    failure: Option<String>,
}

/// One shared ring.
struct Tap {
    members: Mutex<Members>,
    /// The socket's drop counts (kernel, interface) since it was opened.
    dropped_kernel: AtomicU64,
    dropped_interface: AtomicU64,
    ring_bytes: u32,
}

impl Tap {
    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Members {
    /// Works out again what each member runs, if a member or a filter changed.
    fn refresh(&mut self) {
        if self.changed || self.plan.members() != self.list.len() {
            let filters: Vec<(&str, Option<Vec<classic::Insn>>)> = self
                .list
                .iter()
                .map(|m| (m.filter.as_str(), classic::instructions(&m.program)))
                .collect();
            self.plan = Plan::new(&filters);
            self.changed = false;
            let (groups, grouped) = self.plan.grouped();
            tracing::debug!(
                members = self.list.len(),
                groups,
                grouped,
                "filters of the shared ring"
            );
        }
    }
}

#[derive(Default)]
struct Inner {
    taps: HashMap<TapKey, Arc<Tap>>,
    /// Running captures with a socket of their own, per interface.
    own: HashMap<TapKey, usize>,
    next_token: u64,
}

/// Every shared ring of this process, and the captures with a socket of their own.
#[derive(Default)]
pub struct Taps {
    inner: Mutex<Inner>,
    /// Held while a shared ring opens.
    opening: Mutex<()>,
}

/// The shared rings of this process.
pub fn taps() -> &'static Taps {
    static TAPS: OnceLock<Taps> = OnceLock::new();
    TAPS.get_or_init(Taps::default)
}

/// How a capture reads its packets.
pub enum Sharing {
    /// From a socket of its own; holding this counts it among its interface's captures.
    Own(OwnSocket),
    /// From the interface's shared ring.
    Shared(Membership),
}

/// A running capture with a socket of its own; counted until dropped.
pub struct OwnSocket {
    key: TapKey,
}

impl Drop for OwnSocket {
    fn drop(&mut self) {
        let mut inner = taps().lock();
        if let Some(n) = inner.own.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                inner.own.remove(&self.key);
            }
        }
    }
}

/// What opening the shared socket gives: the handle, its timestamps' resolution, and
/// the ring's lease (given back when the shared ring closes).
pub type Opened = (Capture<Active>, Resolution, Lease);

impl Taps {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A capture about to read `key`'s interface: with a socket of its own while fewer
    /// than `share_after` have one, else on the shared ring (opened with `open` when
    /// there is none), where `program` picks its packets. When `program` cannot give one
    /// that pcapd can run (a filter on what only the kernel knows, such as `inbound`), the
    /// capture keeps a socket of its own.
    pub fn join(
        &'static self,
        key: &TapKey,
        share_after: usize,
        capture: CaptureId,
        filter: &str,
        program: impl FnOnce() -> Result<BpfProgram, String>,
        open: impl FnOnce() -> Result<Opened, String>,
    ) -> Result<Sharing, String> {
        let own = |inner: &mut Inner| {
            *inner.own.entry(key.clone()).or_insert(0) += 1;
            Sharing::Own(OwnSocket { key: key.clone() })
        };
        {
            let mut inner = self.lock();
            if inner.own.get(key).copied().unwrap_or(0) < share_after {
                return Ok(own(&mut inner));
            }
        }
        let program = match program() {
            Ok(p) => p,
            Err(why) => {
                tracing::debug!(capture.id = capture, reason = %why, "the filter needs the kernel: a socket of its own");
                return Ok(own(&mut self.lock()));
            }
        };
        // One shared ring is opened at a time: captures started together would otherwise
        // each map a ring of the largest size, all but one closed at once.
        let _opening = self.opening.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tap) = self.open_tap(key) {
            return Ok(Sharing::Shared(
                self.add(key, &tap, capture, filter, program)?,
            ));
        }
        let (cap, precision, lease) = open()?;
        let mut inner = self.lock();
        let tap = Arc::new(Tap {
            members: Mutex::new(Members::default()),
            dropped_kernel: AtomicU64::new(0),
            dropped_interface: AtomicU64::new(0),
            ring_bytes: lease.size(),
        });
        inner.taps.insert(key.clone(), tap.clone());
        drop(inner);
        let membership = match self.add(key, &tap, capture, filter, program) {
            Ok(m) => m,
            Err(e) => {
                close(&mut self.lock(), key, &tap, Some(e.clone()));
                return Err(e);
            }
        };
        let thread_tap = tap.clone();
        let thread_key = key.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("shared-{}", key.device))
            .spawn(move || {
                let (key, tap) = (thread_key.clone(), thread_tap.clone());
                guarded(&key, &tap, move || {
                    read(thread_key, thread_tap, cap, precision, lease)
                })
            });
        if let Err(e) = spawned {
            let mut inner = self.lock();
            close(
                &mut inner,
                key,
                &tap,
                Some(format!("starting its thread: {e}")),
            );
            return Err(format!("starting the shared ring's thread: {e}"));
        }
        tracing::info!(device = %key.device, ring_bytes = tap.ring_bytes, "opened a shared ring");
        Ok(Sharing::Shared(membership))
    }

    /// The interface's shared ring, if one is open.
    fn open_tap(&self, key: &TapKey) -> Option<Arc<Tap>> {
        let inner = self.lock();
        inner.taps.get(key).filter(|t| !t.members().closed).cloned()
    }

    fn add(
        &self,
        key: &TapKey,
        tap: &Arc<Tap>,
        capture: CaptureId,
        filter: &str,
        program: BpfProgram,
    ) -> Result<Membership, String> {
        let token = {
            let mut inner = self.lock();
            inner.next_token += 1;
            inner.next_token
        };
        let (tx, rx) = mpsc::channel();
        let (wake_tx, wake_rx) = UnixDatagram::pair()
            .map_err(|e| format!("a socket pair to wake the capture thread: {e}"))?;
        let _ = wake_tx.set_nonblocking(true);
        let _ = wake_rx.set_nonblocking(true);
        let queued = Arc::new(AtomicUsize::new(0));
        let skipped = Arc::new(AtomicU64::new(0));
        let live = Arc::new(AtomicBool::new(false));
        let (give_back, spare) = mpsc::channel();
        let mut members = tap.members();
        members.list.push(Member {
            token,
            capture,
            filter: filter.to_owned(),
            program,
            tx,
            queued: queued.clone(),
            skipped: skipped.clone(),
            wake: wake_tx,
            pending: TapBatch::default(),
            since: None,
            live: live.clone(),
            spare,
        });
        members.changed = true;
        let sharing = members.list.len();
        drop(members);
        tracing::info!(capture.id = capture, device = %key.device, sharing, "reading the interface's shared ring");
        Ok(Membership {
            tap: tap.clone(),
            token,
            rx,
            queued,
            skipped,
            wake: wake_rx,
            live,
            give_back,
            kernel_at_join: tap.dropped_kernel.load(Relaxed),
            interface_at_join: tap.dropped_interface.load(Relaxed),
        })
    }
}

/// Ends a shared ring: nobody joins it any more, and its members learn why.
fn close(inner: &mut Inner, key: &TapKey, tap: &Arc<Tap>, failure: Option<String>) {
    let mut members = tap.members();
    members.closed = true;
    members.failure = failure;
    // Dropping the senders tells the capture threads.
    for m in members.list.drain(..) {
        let _ = m.wake.send(&[1]);
    }
    if inner.taps.get(key).is_some_and(|t| Arc::ptr_eq(t, tap)) {
        inner.taps.remove(key);
    }
}

pub struct Membership {
    tap: Arc<Tap>,
    token: u64,
    rx: mpsc::Receiver<TapBatch>,
    queued: Arc<AtomicUsize>,
    skipped: Arc<AtomicU64>,
    wake: UnixDatagram,
    live: Arc<AtomicBool>,
    give_back: mpsc::Sender<TapBatch>,
    kernel_at_join: u64,
    interface_at_join: u64,
}

/// What waiting on a shared ring gave.
pub enum Received {
    Batch(TapBatch),
    Nothing,
    /// The shared ring ended, and why.
    Ended(String),
}

impl Membership {
    /// Readable when batches are waiting.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The next batch, without waiting.
    pub fn try_recv(&self) -> Received {
        match self.rx.try_recv() {
            Ok(b) => {
                self.queued.fetch_sub(b.data.len(), Relaxed);
                Received::Batch(b)
            }
            Err(mpsc::TryRecvError::Empty) => {
                let mut sink = [0u8; 64];
                while self.wake.recv(&mut sink).is_ok() {}
                // A batch sent between the first look and the wake-up being read.
                match self.rx.try_recv() {
                    Ok(b) => {
                        self.queued.fetch_sub(b.data.len(), Relaxed);
                        Received::Batch(b)
                    }
                    Err(mpsc::TryRecvError::Empty) => Received::Nothing,
                    Err(mpsc::TryRecvError::Disconnected) => Received::Ended(self.failure()),
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => Received::Ended(self.failure()),
        }
    }

    fn failure(&self) -> String {
        self.tap
            .members()
            .failure
            .clone()
            .unwrap_or_else(|| "the shared ring closed".to_owned())
    }

    /// Packets lost to this capture since it joined: (kernel, interface), the kernel's
    /// including those skipped because its queue was full.
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.tap
                .dropped_kernel
                .load(Relaxed)
                .saturating_sub(self.kernel_at_join)
                + self.skipped.load(Relaxed),
            self.tap
                .dropped_interface
                .load(Relaxed)
                .saturating_sub(self.interface_at_join),
        )
    }

    /// Returns a batch once spooled, to be filled again; one much larger than usual is
    /// freed instead.
    pub fn give_back(&self, mut batch: TapBatch) {
        if batch.data.capacity() <= 2 * BATCH_BYTES {
            batch.data.clear();
            batch.packets.clear();
            let _ = self.give_back.send(batch);
        }
    }

    /// Picks this capture's packets with another filter from now on.
    pub fn set_filter(&self, filter: &str, program: BpfProgram) {
        let mut members = self.tap.members();
        if let Some(m) = members.list.iter_mut().find(|m| m.token == self.token) {
            m.filter = filter.to_owned();
            m.program = program;
        }
        members.changed = true;
    }

    /// Says whether someone reads the capture live: then its packets come after every
    /// read of the shared ring, else at least every 50 ms.
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Relaxed);
    }

    pub fn ring_bytes(&self) -> u32 {
        self.tap.ring_bytes
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut members = self.tap.members();
        members.list.retain(|m| m.token != self.token);
        members.changed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::device::compile_offline;

    #[test]
    fn a_crashed_shared_ring_tells_its_captures_why() {
        let key = TapKey {
            device: "crash-test".into(),
            snaplen: pcap_core::DEFAULT_SNAPLEN,
            promisc: false,
            link_type: 1,
        };
        let tap = Arc::new(Tap {
            members: Mutex::new(Members::default()),
            dropped_kernel: AtomicU64::new(0),
            dropped_interface: AtomicU64::new(0),
            ring_bytes: 1 << 20,
        });
        taps().lock().taps.insert(key.clone(), tap.clone());
        let program = compile_offline(1, "udp").expect("compile");
        let m = taps().add(&key, &tap, 7, "udp", program).expect("a member");
        assert!(matches!(m.try_recv(), Received::Nothing));
        guarded(&key, &tap, || panic!("index out of bounds"));
        match m.try_recv() {
            Received::Ended(why) => {
                assert!(why.contains("crashed (index out of bounds)"), "{why}")
            }
            _ => panic!("the member was not told the shared ring ended"),
        }
        assert!(
            !taps().lock().taps.contains_key(&key),
            "nobody joins a crashed shared ring"
        );
    }
}
