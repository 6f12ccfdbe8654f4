//! The body of a capture thread: open the device, read blocks of packets with libpcap,
//! append them to the spool, feed live readers, enforce retention and stop conditions,
//! and retry with backoff while the interface is gone.

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use pcap::{Active, Capture};
use pcap_core::domain::State;
use pcap_core::savefile::{FileHeader, Resolution};
use tokio::sync::{mpsc as tmpsc, oneshot};

use super::live::{Fanout, PendingBatch, Subscription};
use super::open::{interface_indexes, interface_up, open, retryable, Opening};
use super::overlap::Overlap;
use super::ring::{Lease, Sizer, MAX_RING, PER_PACKET_OVERHEAD};
use super::tap::Sharing;
use super::{CaptureParams, Control, Event, LiveCounters, RingPlan};
use crate::spool::writer::Spool;

mod moves;
mod readers;
mod shared;

use moves::{Moving, COPIES_FOR, OLD_RING_DRAIN, QUIET_WHEN_UNREAD};
use readers::Reply;

/// Longest wait in poll when nothing happens, so that housekeeping still runs.
const POLL_MS: u16 = 200;
/// How often buffered records are written out (bounds what a crash can lose).
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often retention, the disk floor and kernel statistics are looked at.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often the kernel's drop count is read (a ring that drops grows).
const STATS_EVERY: Duration = Duration::from_millis(100);

/// What one read of the ring did.
struct Read {
    result: std::result::Result<usize, pcap::Error>,
    /// Bytes the read found waiting in the ring, roughly (data and per-packet overhead).
    backlog: u64,
    failure: Option<String>,
}

/// How a run of the read loop ended.
enum End {
    Stopped,
    Shutdown,
    Finished(String),
    Retry(String),
    Failed(String),
}

struct Engine {
    p: CaptureParams,
    control: mpsc::Receiver<Control>,
    woken: UnixDatagram,
    counters: Arc<LiveCounters>,
    events: tmpsc::UnboundedSender<Event>,
    spool: Spool,
    fanout: Fanout,
    state: State,
    /// Told the first state reached, once: the capture's owner waits for it.
    ready: Option<oneshot::Sender<(State, String)>>,
    /// A new filter to put into the kernel, and who waits to hear that it is in place.
    refilter: Option<(String, oneshot::Sender<std::result::Result<(), String>>)>,
    /// Packets spooled in this run, for the count stop condition.
    run_packets: u64,
    /// Deferred closes of this run already added to the counters.
    deferred_told: u64,
    deadline: Option<Instant>,
    /// The namespace this thread is in while it captures in another one.
    ns: Option<(crate::netns::Opened, crate::netns::Inside)>,
    /// With several interfaces: their indexes in the open device's kernel filter.
    selected: Vec<u32>,
    /// Index -> name of the interfaces, as found when the device was opened.
    names: std::collections::BTreeMap<u32, String>,
    /// Whether the ring now open has the short read timeout of live readers; `None`
    /// while no ring is open.
    ring_quick: Option<bool>,
    /// Live readers subscribed and not answered yet, each with the sequence number its
    /// queue starts after: they wait for a ring with the short read timeout.
    waiting: Vec<(u64, Subscription, Reply)>,
    /// After a ring move failed, no other is tried until then.
    moves_paused_until: Option<Instant>,
}

/// Runs a capture until it is stopped, finishes or fails.
pub fn run(
    p: CaptureParams,
    control: mpsc::Receiver<Control>,
    woken: UnixDatagram,
    counters: Arc<LiveCounters>,
    events: tmpsc::UnboundedSender<Event>,
    ready: oneshot::Sender<(State, String)>,
) {
    let (id, generation) = (p.id, p.generation);
    // Segments are written with nanosecond times whatever libpcap gives (converted).
    let header = FileHeader {
        link_type: p.link_type,
        snaplen: p.snaplen,
        resolution: Resolution::Nano,
    };
    let spool = match Spool::new(
        p.id,
        &p.dir,
        p.store.clone(),
        header,
        p.policy,
        p.closed.clone(),
    ) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("spool: {e}");
            let _ = ready.send((State::Failed, reason.clone()));
            let _ = events.send(Event::Exited {
                id,
                generation,
                state: State::Failed,
                reason,
            });
            return;
        }
    };
    // Durations are bounded where requests enter; a deadline beyond what the clock holds
    // is no deadline at all.
    let deadline = p
        .stop
        .duration_secs
        .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
    let mut engine = Engine {
        p,
        control,
        woken,
        counters,
        events,
        spool,
        fanout: Fanout::default(),
        state: State::Active,
        ready: Some(ready),
        refilter: None,
        run_packets: 0,
        deferred_told: 0,
        deadline,
        ns: None,
        selected: Vec::new(),
        names: Default::default(),
        ring_quick: None,
        waiting: Vec::new(),
        moves_paused_until: None,
    };
    let (state, reason) = engine.run();
    if let Some(ready) = engine.ready.take() {
        let _ = ready.send((state, reason.clone()));
    }
    if let Err(e) = engine.spool.close() {
        tracing::error!(capture.id = id, error = %e, "closing the spool");
    }
    engine.publish_size();
    engine.fanout.notify(state, &reason);
    tracing::info!(capture.id = id, state = %state, reason = %reason, "capture ended");
    let _ = engine.events.send(Event::Exited {
        id,
        generation,
        state,
        reason,
    });
}

impl Engine {
    fn run(&mut self) -> (State, String) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let end = match self.enter_netns().and_then(|()| self.resolve_interfaces()) {
                Err(end) => end,
                Ok(()) => match self.sharing() {
                    Err(end) => end,
                    Ok(Some(Sharing::Shared(m))) => self.run_shared(m),
                    Ok(own) => {
                        // Counted among the interface's own sockets while this run lasts.
                        let _own = own;
                        let lease = self.ring_lease();
                        let quick = !QUIET_WHEN_UNREAD
                            || !self.fanout.is_empty()
                            || !self.waiting.is_empty();
                        let opening = Opening::of(&self.p, lease.size(), quick);
                        match open(&opening, &self.kernel_filter(&self.p.filter)) {
                            Ok((cap, precision)) => {
                                backoff = Duration::from_secs(1);
                                self.ring_quick = Some(quick);
                                match self.answer_waiting() {
                                    Err(e) => End::Failed(describe_write_error(&e)),
                                    Ok(()) => {
                                        self.report_opened();
                                        self.set_state(State::Active, String::new());
                                        self.pump(cap, precision, lease)
                                    }
                                }
                            }
                            Err(e) if retryable(&e) => End::Retry(e),
                            Err(e) => End::Failed(e),
                        }
                    }
                },
            };
            self.counters.ring_bytes.store(0, Relaxed);
            // Without a ring, readers waiting for a quick one are served as they are.
            self.ring_quick = None;
            if let Err(e) = self.answer_waiting() {
                tracing::error!(capture.id = self.p.id, error = %e, "adding live readers");
            }
            // An interface that disappeared with its namespace: say so, naming the namespace.
            let end = match (end, &self.ns) {
                (End::Retry(why), Some((opened, _))) => match opened.check() {
                    Ok(()) => End::Retry(why),
                    Err(crate::netns::Unusable::Gone(ns_why)) => End::Retry(ns_why),
                    Err(crate::netns::Unusable::Ended(ns_why)) => End::Finished(ns_why),
                },
                (end, _) => end,
            };
            // Between attempts, and once ended, the thread holds no namespace alive.
            self.ns = None;
            match end {
                End::Stopped => return (State::Paused, String::new()),
                End::Shutdown => return (self.state, String::new()),
                End::Finished(why) => return (State::Finished, why),
                End::Failed(why) => return (State::Failed, why),
                End::Retry(why) => {
                    tracing::warn!(capture.id = self.p.id, reason = %why, retry_in = ?backoff, "interface unavailable");
                    self.set_state(State::Retrying, why);
                    if let Some(end) = self.wait(backoff) {
                        return match end {
                            End::Stopped => (State::Paused, String::new()),
                            _ => (self.state, String::new()),
                        };
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// A ring for a run that starts: the fixed size, or what the shared budget gives.
    fn ring_lease(&self) -> Lease {
        match &self.p.ring {
            RingPlan::Fixed(n) => Lease::fixed(*n),
            RingPlan::Shared(budget) if self.p.filter.trim().is_empty() => {
                budget.lease_unfiltered(MAX_RING)
            }
            RingPlan::Shared(budget) => budget.lease(MAX_RING),
        }
    }

    /// Reads until something ends the run; libpcap gives timestamps in `precision`, from a
    /// ring of the size `lease` holds.
    fn pump(&mut self, mut cap: Capture<Active>, precision: Resolution, mut lease: Lease) -> End {
        let frac_ns = precision.ns_per_unit();
        let mut last_flush = Instant::now();
        let mut last_housekeeping = Instant::now();
        let mut last_stats = Instant::now();
        // Kernel statistics restart with each handle; add them to what earlier ones counted.
        let (mut base_kernel, mut base_iface) = (
            self.counters.dropped_kernel.load(Relaxed),
            self.counters.dropped_interface.load(Relaxed),
        );
        // This handle's kernel drops when last looked at.
        let mut handle_dropped = 0u64;
        // What this handle counted before it was read (kernel, interface): a ring moved to
        // drops, once full, what the old one still read.
        let mut unread_drops = (0u64, 0u64);
        let mut sizer = Sizer::new(matches!(self.p.ring, RingPlan::Shared(_)), MAX_RING);
        let mut moving: Option<Moving> = None;
        let mut copies: Option<Overlap> = None;
        let mut recovered_told = 0u64;
        let mut moved_at = Instant::now();
        // Since when nobody has read the capture live while its ring has the short timeout.
        let mut quiet_since: Option<Instant> = None;
        self.counters
            .ring_bytes
            .store(u64::from(lease.size()), Relaxed);
        let mut pending = PendingBatch::default();
        let end = 'run: loop {
            if let Some(end) = self.poll_control() {
                break 'run end;
            }
            if let Some((filter, reply)) = self.refilter.take() {
                // A ring being opened has the old filter: open another one later.
                moving = None;
                let r = cap
                    .filter(&self.kernel_filter(&filter), true)
                    .map_err(|e| e.to_string());
                if let Err(e) = &r {
                    tracing::error!(capture.id = self.p.id, error = %e, "the new filter was refused; the old one stays");
                } else {
                    self.p.filter = filter;
                    // Before the reply, so that the owner ends with the filter shown whole.
                    self.report_opened();
                }
                let _ = reply.send(r);
            }
            if let Err(e) = self.wait_readable(&cap) {
                break 'run End::Failed(format!("waiting for packets: {e}"));
            }
            let read = self.read_ring(
                &mut cap,
                frac_ns,
                &mut pending,
                moving.as_mut().map(|m| &mut m.overlap),
                copies.as_mut(),
            );
            if let Some(why) = read.failure {
                break 'run End::Failed(why);
            }
            if let Some(c) = &copies {
                // What the old ring dropped and the new one gave was counted as dropped.
                base_kernel = base_kernel.saturating_sub(c.recovered() - recovered_told);
                recovered_told = c.recovered();
                // Copies come first in the new ring, within milliseconds; if traffic stopped
                // before one newer than them came, there is nothing left to skip.
                if c.is_over() || moved_at.elapsed() >= COPIES_FOR {
                    tracing::debug!(
                        capture.id = self.p.id,
                        skipped = c.skipped(),
                        recovered = c.recovered(),
                        "moved to the new ring"
                    );
                    copies = None;
                }
            }
            let idle = matches!(read.result, Ok(0) | Err(pcap::Error::TimeoutExpired));
            if let Err(e) = &read.result {
                if !matches!(e, pcap::Error::TimeoutExpired) {
                    let msg = e.to_string();
                    break 'run if retryable(&msg) {
                        End::Retry(msg)
                    } else {
                        End::Failed(format!("reading packets: {msg}"))
                    };
                }
            }
            if let Some(end) = self
                .flush_when_due(idle, &mut last_flush)
                .or_else(|| self.stop_reached())
            {
                break 'run end;
            }
            let mut dropped = false;
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                if let Ok(st) = cap.stats() {
                    dropped = u64::from(st.dropped) > handle_dropped;
                    handle_dropped = u64::from(st.dropped);
                    self.store_drops(&st, (base_kernel, base_iface), unread_drops);
                }
            }
            // The ring: a move under way, or whether one should start.
            self.check_opening(&mut moving, precision);
            // The new ring is bound: once the old ring's partly filled block has been handed
            // over (its read timeout passed), everything the new ring lacks is in what the
            // old ring gave.
            if moving.as_ref().is_some_and(Moving::can_switch) {
                let mut m = moving.take().expect("a move is under way");
                let (mut new, _, _) = m.ready.take().expect("the new ring is open");
                // What the old ring holds now; anything it takes after this read
                // arrived after the new ring was bound, so the new ring has it too.
                let r = self.read_ring(&mut cap, frac_ns, &mut pending, Some(&mut m.overlap), None);
                if let Some(why) = r.failure {
                    break 'run End::Failed(why);
                }
                if let Ok(st) = cap.stats() {
                    base_kernel += u64::from(st.dropped).saturating_sub(unread_drops.0);
                    base_iface += u64::from(st.if_dropped).saturating_sub(unread_drops.1);
                }
                // Until now the new ring was not read: what it dropped (a ring smaller than
                // the traffic of the move fills) the old ring gave, or counted itself.
                unread_drops = new.stats().map_or((0, 0), |st| {
                    (u64::from(st.dropped), u64::from(st.if_dropped))
                });
                handle_dropped = unread_drops.0;
                let from = lease.size();
                cap = new;
                lease = m.lease;
                copies = Some(m.overlap);
                moved_at = Instant::now();
                recovered_told = 0;
                quiet_since = None;
                self.counters
                    .ring_bytes
                    .store(u64::from(lease.size()), Relaxed);
                if from != lease.size() {
                    self.counters.ring_resizes.fetch_add(1, Relaxed);
                    tracing::info!(
                        capture.id = self.p.id,
                        from,
                        to = lease.size(),
                        took_ms = m.asked.elapsed().as_millis() as u64,
                        "moved to a ring of another size"
                    );
                }
                self.ring_quick = Some(m.quick);
                if m.quick {
                    if let Err(e) = self.answer_waiting() {
                        break 'run End::Failed(describe_write_error(&e));
                    }
                }
            }
            if moving.is_none() && copies.is_none() && !self.moves_paused() {
                moving =
                    self.next_move(&mut sizer, &lease, read.backlog, dropped, &mut quiet_since);
            }
            // A reader arrived while a ring with the long timeout was opening: open another.
            if moving.as_ref().is_some_and(|m| !m.quick) && !self.fanout.is_empty() {
                moving = None;
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                last_housekeeping = Instant::now();
                if let Some(end) = self.housekeeping() {
                    break 'run end;
                }
            }
        };
        // Stopped, or finished: what the kernel still holds in a partly filled block comes
        // out once the ring's read timeout has passed, and is spooled before the ring closes.
        if matches!(end, End::Stopped | End::Shutdown | End::Finished(_)) {
            let until = Instant::now() + OLD_RING_DRAIN;
            while Instant::now() < until {
                let _ = self.wait_ready(&cap, 10);
                let r = self.read_ring(&mut cap, frac_ns, &mut pending, None, copies.as_mut());
                if r.failure.is_some()
                    || matches!(r.result, Err(ref e) if !matches!(e, pcap::Error::TimeoutExpired))
                {
                    break;
                }
            }
            if let Err(e) = self.spool.flush() {
                tracing::error!(capture.id = self.p.id, error = %e, "flushing the spool");
            }
        }
        // The kernel's last word on drops, so that a stopped capture's counters are whole.
        if let Ok(st) = cap.stats() {
            self.store_drops(&st, (base_kernel, base_iface), unread_drops);
        }
        end
    }

    /// Writes buffered records out when the ring was idle or [`FLUSH_EVERY`] has passed;
    /// says why the run ends when they cannot be written.
    fn flush_when_due(&mut self, idle: bool, last_flush: &mut Instant) -> Option<End> {
        if idle || last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = self.spool.flush() {
                return Some(End::Failed(describe_write_error(&e)));
            }
            *last_flush = Instant::now();
        }
        None
    }

    /// The run's end when its packet count (`--count`) or duration (`--duration`) is reached.
    fn stop_reached(&self) -> Option<End> {
        if let Some(c) = self.p.stop.packet_count {
            if self.run_packets >= c {
                return Some(End::Finished(format!("captured {c} packets (--count)")));
            }
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            let secs = self.p.stop.duration_secs.unwrap_or(0);
            return Some(End::Finished(format!("ran for {secs} s (--duration)")));
        }
        None
    }

    /// The drop counters (kernel, interface): what earlier handles counted (`base`), and
    /// the open one's statistics less what it counted before it was read (`unread`).
    fn store_drops(&self, st: &pcap::Stat, base: (u64, u64), unread: (u64, u64)) {
        self.counters.dropped_kernel.store(
            base.0 + u64::from(st.dropped).saturating_sub(unread.0),
            Relaxed,
        );
        self.counters.dropped_interface.store(
            base.1 + u64::from(st.if_dropped).saturating_sub(unread.1),
            Relaxed,
        );
    }

    /// One read of the ring: what it holds goes to the spool and to live readers. Packets
    /// are remembered in `remember` while another ring opens, and skipped when `copies`
    /// says the ring before this one gave them already.
    fn read_ring(
        &mut self,
        cap: &mut Capture<Active>,
        frac_ns: i64,
        pending: &mut PendingBatch,
        mut remember: Option<&mut Overlap>,
        mut copies: Option<&mut Overlap>,
    ) -> Read {
        let live = !self.fanout.is_empty();
        let fanout = &mut self.fanout;
        let spool = &mut self.spool;
        let run_packets = &mut self.run_packets;
        let count_limit = self.p.stop.packet_count;
        let mut failure = None;
        let (mut received, mut spooled, mut bytes, mut backlog) = (0u64, 0u64, 0u64, 0u64);
        let result = cap.dispatch(None, |p| {
            // tv_usec holds nanoseconds when libpcap was asked for them.
            let ts_ns = p.header.ts.tv_sec * 1_000_000_000 + p.header.ts.tv_usec * frac_ns;
            if let Some(c) = copies.as_deref_mut() {
                if c.already_read(ts_ns, p.header.len, p.data) {
                    return;
                }
            }
            received += 1;
            backlog += p.data.len() as u64 + PER_PACKET_OVERHEAD;
            if failure.is_some() || count_limit.is_some_and(|c| *run_packets >= c) {
                return;
            }
            if let Some(r) = remember.as_deref_mut() {
                r.remember(ts_ns, p.header.len, p.data);
            }
            match spool.append(ts_ns, p.header.len, p.data) {
                Ok((seq, len)) => {
                    *run_packets += 1;
                    spooled += 1;
                    bytes += len;
                    if live {
                        pending.push(seq, ts_ns, p.header.len, p.data);
                        if pending.is_full() {
                            fanout.publish(pending.take());
                        }
                    }
                }
                Err(e) => failure = Some(describe_write_error(&e)),
            }
        });
        self.counters.received.fetch_add(received, Relaxed);
        self.counters.spooled_packets.fetch_add(spooled, Relaxed);
        self.counters.spooled_bytes.fetch_add(bytes, Relaxed);
        if spooled > 0 {
            self.publish_size();
        }
        if !pending.is_empty() {
            self.fanout.publish(pending.take());
        }
        Read {
            result,
            backlog,
            failure,
        }
    }

    /// Moves the thread into the capture's namespace, found anew (a name or path is
    /// followed to a namespace made again; a process must be the same one).
    fn enter_netns(&mut self) -> Result<(), End> {
        use crate::netns::{self, Anchor, Unusable};
        let Some(ns) = &self.p.netns else {
            return Ok(());
        };
        let was = self.p.anchor.map(netns::Process::from);
        match netns::open_target(ns, was.as_ref()) {
            Ok(opened) => {
                let inside = netns::enter(&opened.file).map_err(|e| End::Failed(e.to_string()))?;
                if let (pcap_core::domain::Netns::Inode(inode), Some(was)) =
                    (ns, self.p.netns_cookie)
                {
                    if netns::current_cookie().is_some_and(|now| now != was) {
                        return Err(End::Finished(format!(
                            "the network namespace with inode {inode} is gone: that inode now \
                             belongs to another namespace"
                        )));
                    }
                }
                // A container's process changes when it runs again: only a pid or inode
                // target is pinned to the process it was found through.
                if let Anchor::Process(p) = &opened.anchor {
                    self.p.anchor.get_or_insert((*p).into());
                }
                self.ns = Some((opened, inside));
                Ok(())
            }
            Err(Unusable::Gone(why)) => Err(End::Retry(why)),
            Err(Unusable::Ended(why)) => Err(End::Finished(why)),
        }
    }

    /// Finds the indexes of the named interfaces in the namespace the thread is in now
    /// (interfaces made again get new ones); a missing interface is retried.
    fn resolve_interfaces(&mut self) -> Result<(), End> {
        let (indexes, names) = interface_indexes(&self.p.interfaces).map_err(End::Retry)?;
        // One interface is opened by name; only several need the kernel to pick theirs.
        self.selected = if indexes.len() > 1 {
            indexes
        } else {
            Vec::new()
        };
        self.names = names;
        Ok(())
    }

    /// The filter put into the kernel for the user's (applied) `filter`.
    fn kernel_filter(&self, filter: &str) -> String {
        super::exclusion::on_interfaces(&self.selected, filter)
    }

    /// Tells the owner the interfaces' names and the filter in the kernel.
    fn report_opened(&self) {
        let _ = self.events.send(Event::Opened {
            id: self.p.id,
            generation: self.p.generation,
            interface_names: self.names.clone(),
            filter: self.kernel_filter(&self.p.filter),
        });
    }

    /// Whether every interface picked by index still has the index it had when the device
    /// was opened; an interface gone, or made again with another index, is reopened.
    fn interfaces_moved(&self) -> Option<String> {
        if self.selected.is_empty() {
            return None;
        }
        for (name, was) in self.p.interfaces.iter().zip(&self.selected) {
            match nix::net::if_::if_nametoindex(name.as_str()) {
                Ok(now) if now == *was => {}
                Ok(_) => return Some(format!("interface {name} was made again")),
                Err(_) => return Some(format!("interface {name} is gone")),
            }
        }
        None
    }

    /// Retention, rotation by age, the free-space floor, the namespace still the same, and
    /// the interface still up (libpcap says nothing when an interface goes down: it just
    /// stops delivering).
    fn housekeeping(&mut self) -> Option<End> {
        self.fanout.prune();
        if let Some((opened, _)) = &self.ns {
            match opened.check() {
                Ok(()) => {}
                Err(crate::netns::Unusable::Gone(why)) => return Some(End::Retry(why)),
                Err(crate::netns::Unusable::Ended(why)) => return Some(End::Finished(why)),
            }
        }
        if !interface_up(&self.p.device, self.ns.is_some()) {
            return Some(End::Retry(format!("interface {} is down", self.p.device)));
        }
        if let Some(why) = self.interfaces_moved() {
            return Some(End::Retry(why));
        }
        if let Some(e) = self.spool.take_failure() {
            return Some(End::Failed(describe_write_error(&e)));
        }
        let deferred = self.spool.deferred_closes();
        self.counters
            .deferred_closes
            .fetch_add(deferred - self.deferred_told, Relaxed);
        self.deferred_told = deferred;
        let now = pcap_core::parse::unix_ns(SystemTime::now());
        if self.spool.open_segment_expired(now) {
            if let Err(e) = self.spool.rotate() {
                return Some(End::Failed(describe_write_error(&e)));
            }
        }
        match self.spool.enforce_retention(now) {
            Ok(x) => {
                self.counters.expired_packets.fetch_add(x.packets, Relaxed);
            }
            Err(e) => return Some(End::Failed(format!("retention: {e}"))),
        }
        self.publish_size();
        let deficit = self.spool.floor_deficit();
        if deficit > 0 {
            return Some(End::Failed(format!(
                "disk almost full: free space is {} below the floor of {}% on the data directory's \
                 filesystem and this capture has no older segments left to delete",
                pcap_core::parse::human_size(deficit),
                self.p.policy.floor_percent
            )));
        }
        None
    }

    fn publish_size(&self) {
        let (bytes, segments) = self.spool.size();
        self.counters.spool_bytes.store(bytes, Relaxed);
        self.counters.spool_segments.store(segments as u64, Relaxed);
    }

    /// Sleeps until the ring has packets or `ms` milliseconds pass.
    fn wait_ready(&self, cap: &Capture<Active>, ms: u16) -> nix::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::Error::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sleeps until packets are ready, a request arrives, or the poll interval passes.
    fn wait_readable(&self, cap: &Capture<Active>) -> nix::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [
            PollFd::new(cap.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.woken.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        let mut sink = [0u8; 64];
        while self.woken.recv(&mut sink).is_ok() {}
        Ok(())
    }

    /// Handles pending control requests without blocking.
    fn poll_control(&mut self) -> Option<End> {
        loop {
            match self.control.try_recv() {
                Ok(c) => {
                    if let Some(end) = self.handle(c) {
                        return Some(end);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => return Some(End::Shutdown),
            }
        }
    }

    /// Waits up to `d` for control requests (while retrying).
    fn wait(&mut self, d: Duration) -> Option<End> {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.control.recv_timeout(left) {
                Ok(c) => {
                    if let Some(end) = self.handle(c) {
                        return Some(end);
                    }
                    if let Some((filter, reply)) = self.refilter.take() {
                        self.p.filter = filter;
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Some(End::Shutdown),
            }
        }
    }

    fn handle(&mut self, c: Control) -> Option<End> {
        match c {
            Control::Stop => Some(End::Stopped),
            Control::Shutdown => Some(End::Shutdown),
            Control::Subscribe(reply) => {
                // A reader's queue starts at once; a ring with the long read timeout is
                // replaced by one with the short timeout soon after (the read loop sees the
                // reader), and the reader is answered then.
                self.subscribe(reply)
                    .err()
                    .map(|e| End::Failed(describe_write_error(&e)))
            }
            Control::Reconfigure {
                filter,
                policy,
                reply,
            } => {
                self.p.policy = policy;
                self.spool.set_policy(policy);
                // The read loop puts the filter into the kernel; while retrying there is no
                // handle, and the next one is opened with it.
                self.refilter = Some((filter, reply));
                None
            }
        }
    }

    fn set_state(&mut self, state: State, reason: String) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send((state, reason.clone()));
        } else if self.state == state && state == State::Active {
            return;
        }
        self.state = state;
        self.fanout.notify(state, &reason);
        let _ = self.events.send(Event::State {
            id: self.p.id,
            generation: self.p.generation,
            state,
            reason,
        });
    }
}

fn describe_write_error(e: &crate::Error) -> String {
    if let crate::Error::Io { source, .. } = e {
        if source.raw_os_error() == Some(nix::libc::ENOSPC) {
            return format!("disk full: {e}");
        }
    }
    format!("spool write failed: {e}")
}
