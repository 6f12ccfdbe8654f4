//! The shared ring's side: its thread reads the socket, runs each member's filter, and
//! gathers what each keeps into batches handed to the member's capture thread.

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use pcap::{Active, BpfProgram, Capture};
use pcap_core::domain::CaptureId;
use pcap_core::savefile::Resolution;

use super::{close, taps, Tap, TapKey};
use crate::capture::ring::Lease;

/// Bytes of packets a capture may have queued from the shared ring before packets are
/// skipped for it (and counted as dropped): a quarter of a second of a busy gigabit link.
const QUEUE_BYTES: usize = 32 << 20;

/// A batch is handed over once it holds this much, even in the middle of a read.
pub(super) const BATCH_BYTES: usize = 1 << 20;

/// A capture nobody reads live gets its packets at least this often; one read live gets
/// them after every read of the shared ring. Waking a hundred capture threads after every
/// read would cost more than filtering for them. 50 ms is the block timeout a capture
/// with a ring of its own has when nobody reads it live, so neither kind is later.
const HAND_OVER_EVERY: Duration = Duration::from_millis(50);

/// How often the shared socket's drop counts are read.
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Longest wait for packets, so that a shared ring whose captures all left closes.
const POLL_MS: u16 = 200;

/// One packet of a batch.
pub(super) struct Packet {
    ts_ns: i64,
    origlen: u32,
    start: usize,
    end: usize,
}

/// Packets a capture's filter kept, from one read of the shared ring.
#[derive(Default)]
pub struct TapBatch {
    pub(super) data: Vec<u8>,
    pub(super) packets: Vec<Packet>,
}

impl TapBatch {
    fn push(&mut self, ts_ns: i64, origlen: u32, data: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(data);
        self.packets.push(Packet {
            ts_ns,
            origlen,
            start,
            end: self.data.len(),
        });
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Each packet: time in nanoseconds, length on the wire, the bytes captured.
    pub fn packets(&self) -> impl Iterator<Item = (i64, u32, &[u8])> {
        self.packets
            .iter()
            .map(|p| (p.ts_ns, p.origlen, &self.data[p.start..p.end]))
    }
}

/// A capture reading the shared ring, as its thread sees it.
pub(super) struct Member {
    pub(super) token: u64,
    pub(super) capture: CaptureId,
    /// The filter's text, so that members with the same filter run it once per packet.
    pub(super) filter: String,
    pub(super) program: BpfProgram,
    pub(super) tx: mpsc::Sender<TapBatch>,
    pub(super) queued: Arc<AtomicUsize>,
    /// Packets skipped for it because its queue was full.
    pub(super) skipped: Arc<AtomicU64>,
    pub(super) wake: UnixDatagram,
    pub(super) pending: TapBatch,
    /// Batches the capture thread gave back, to be filled again (so that the memory of
    /// batches is reused rather than allocated on one thread and freed on another).
    pub(super) spare: mpsc::Receiver<TapBatch>,
    /// When the oldest packet of `pending` was gathered.
    pub(super) since: Option<Instant>,
    /// Whether someone reads the capture live (its packets are handed over at once).
    pub(super) live: Arc<AtomicBool>,
}

impl Member {
    pub(super) fn gather(&mut self, ts_ns: i64, origlen: u32, data: &[u8]) {
        if self.pending.is_empty() {
            self.since = Some(Instant::now());
            if self.pending.data.capacity() == 0 {
                if let Ok(b) = self.spare.try_recv() {
                    self.pending = b;
                }
            }
        }
        self.pending.push(ts_ns, origlen, data);
        if self.pending.data.len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    /// Whether what was gathered is due.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|t| self.live.load(Relaxed) || now.duration_since(t) >= HAND_OVER_EVERY)
    }

    /// Hands what was gathered to the capture thread, or counts it as skipped.
    pub(super) fn hand_over(&mut self) {
        self.since = None;
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let bytes = batch.data.len();
        if self.queued.load(Relaxed) + bytes > QUEUE_BYTES {
            self.skipped.fetch_add(batch.len() as u64, Relaxed);
            return;
        }
        self.queued.fetch_add(bytes, Relaxed);
        if self.tx.send(batch).is_ok() {
            // A full socket buffer means a wake-up is already pending.
            let _ = self.wake.send(&[1]);
        } else {
            self.queued.fetch_sub(bytes, Relaxed);
        }
    }
}

/// Runs a shared ring's thread; a panic ends the ring like a failed socket: its captures
/// are told and open their next run, instead of waiting for packets that never come.
pub(super) fn guarded(key: &TapKey, tap: &Arc<Tap>, body: impl FnOnce()) {
    let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) else {
        return;
    };
    let why = format!(
        "the shared ring's thread crashed ({}); this is a bug in pcapd: please report it \
         with pcapd's log",
        crate::capture::panic_message(panic.as_ref())
    );
    tracing::error!(device = %key.device, reason = %why, "shared ring crashed");
    close(&mut taps().lock(), key, tap, Some(why));
}

/// A capture's place on a shared ring; it leaves when this is dropped.
/// The shared ring's thread: reads the socket and hands each member what its filter keeps,
/// until the last member leaves or the socket fails.
pub(super) fn read(
    key: TapKey,
    tap: Arc<Tap>,
    mut cap: Capture<Active>,
    precision: Resolution,
    lease: Lease,
) {
    let frac_ns = precision.ns_per_unit();
    let mut last_stats = Instant::now();
    let mut gathered = false;
    let failure = loop {
        let wait = if gathered {
            HAND_OVER_EVERY
        } else {
            Duration::from_millis(POLL_MS.into())
        };
        if let Err(e) = wait_ready(&cap, wait) {
            break format!("waiting for packets on the shared ring: {e}");
        }
        let mut members = tap.members();
        if members.list.is_empty() {
            // Leave under the registry's lock, taken first, so that nobody joins meanwhile.
            drop(members);
            let mut inner = taps().lock();
            if tap.members().list.is_empty() {
                close(&mut inner, &key, &tap, None);
                drop(inner);
                tracing::info!(device = %key.device, "closed the shared ring: no capture reads it");
                drop(lease);
                return;
            }
            continue;
        }
        members.refresh();
        let super::Members { list, plan, .. } = &mut *members;
        let result = cap.dispatch(None, |p| {
            let ts_ns = p.header.ts.tv_sec * 1_000_000_000 + p.header.ts.tv_usec * frac_ns;
            for &i in plan.select(p.data, |i| list[i].program.filter(p.data)) {
                list[i].gather(ts_ns, p.header.len, p.data);
            }
        });
        let now = Instant::now();
        gathered = false;
        for m in list.iter_mut() {
            if m.due(now) {
                m.hand_over();
            }
            gathered |= m.since.is_some();
        }
        drop(members);
        match result {
            Ok(_) | Err(pcap::Error::TimeoutExpired) => {}
            Err(e) => break format!("reading packets on the shared ring: {e}"),
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            if let Ok(st) = cap.stats() {
                tap.dropped_kernel.store(u64::from(st.dropped), Relaxed);
                tap.dropped_interface
                    .store(u64::from(st.if_dropped), Relaxed);
            }
        }
    };
    tracing::warn!(device = %key.device, reason = %failure, "the shared ring failed");
    let mut inner = taps().lock();
    let members: Vec<CaptureId> = tap.members().list.iter().map(|m| m.capture).collect();
    close(&mut inner, &key, &tap, Some(failure));
    tracing::debug!(device = %key.device, ?members, "told the shared ring's captures");
}

fn wait_ready(cap: &Capture<Active>, wait: Duration) -> nix::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
    let ms = u16::try_from(wait.as_millis()).unwrap_or(POLL_MS);
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::Error::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}
