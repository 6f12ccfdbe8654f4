//! A capture reading its interface's shared ring (see [`crate::capture::tap`]): the same
//! loop as with a ring of its own, fed by the batches the shared ring's thread hands over.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use pcap_core::domain::State;

use super::moves::OLD_RING_DRAIN;
use super::{describe_write_error, End, Engine, HOUSEKEEPING_EVERY, POLL_MS};
use super::{MAX_RING, STATS_EVERY};
use crate::capture::device::{compile_offline, ANY};
use crate::capture::live::PendingBatch;
use crate::capture::open::{open, retryable, Opening};
use crate::capture::ring::Lease;
use crate::capture::tap::{taps, Membership, Received, Sharing, TapBatch, TapKey};
use crate::capture::RingPlan;

/// Where the kernel's ancillary data starts in a BPF load's offset (`SKF_AD_OFF`, -4096):
/// the packet type, interface, VLAN tag as the kernel holds them.
const ANCILLARY_OFFSET: u32 = 0xffff_f000;

/// Whether a program loads ancillary data (`inbound` and `outbound` compile to a load of
/// the packet type on Linux): run in pcapd on a packet's bytes it would match nothing, so
/// such a capture keeps a socket of its own.
fn kernel_only(program: &pcap::BpfProgram) -> bool {
    const BPF_LD: u32 = 0x00;
    const BPF_LDX: u32 = 0x01;
    const BPF_ABS: u32 = 0x20;
    const BPF_IND: u32 = 0x40;
    program.get_instructions().iter().any(|insn| {
        // "code jt jf k", as the crate prints an instruction.
        let fields: Vec<u64> = insn
            .to_string()
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let [code, _, _, k] = fields[..] else {
            return true;
        };
        let (code, k) = (code as u32, k as u32);
        let class = code & 0x07;
        let mode = code & 0xe0;
        (class == BPF_LD || class == BPF_LDX)
            && (mode == BPF_ABS || mode == BPF_IND)
            && k >= ANCILLARY_OFFSET
    })
}

impl Engine {
    /// What this capture shares a ring by, when it may: in pcapd's own namespace, on one
    /// named interface, with nothing cut off its packets (a filter run on a cut packet
    /// would see its captured length as its length).
    fn tap_key(&self) -> Option<TapKey> {
        let eligible = self.p.netns.is_none()
            && !self.p.all_interfaces
            && self.selected.is_empty()
            && self.p.device != ANY
            && self.p.snaplen >= pcap_core::DEFAULT_SNAPLEN;
        eligible.then(|| TapKey {
            device: self.p.device.clone(),
            snaplen: self.p.snaplen,
            promisc: self.p.promisc,
            link_type: self.p.link_type,
        })
    }

    /// Whether this run reads a socket of its own or the interface's shared ring.
    pub(super) fn sharing(&self) -> Result<Option<Sharing>, End> {
        let Some(key) = self.tap_key() else {
            return Ok(None);
        };
        let (link_type, filter) = (self.p.link_type, self.p.filter.clone());
        let mut opening = Opening::of(&self.p, 0, true);
        let ring = self.p.ring.clone();
        let shared = taps().join(
            &key,
            self.p.share_after,
            self.p.id,
            &self.p.filter,
            || {
                let program = compile_offline(link_type, &filter).map_err(|e| e.to_string())?;
                match kernel_only(&program) {
                    false => Ok(program),
                    true => Err(format!("`{filter}` reads what only the kernel knows")),
                }
            },
            move || {
                // It carries everything the interface does, for many captures: the largest
                // ring, beside the budget of the captures' own rings (charged to it, a
                // shared ring opened when the budget is taken would start on the floor and
                // drop, or leave the busy own rings no room to grow).
                let lease = match ring {
                    RingPlan::Fixed(n) => Lease::fixed(n),
                    RingPlan::Shared(_) => Lease::fixed(MAX_RING),
                };
                opening.ring_bytes = lease.size();
                let (cap, precision) = open(&opening, "")?;
                Ok((cap, precision, lease))
            },
        );
        match shared {
            Ok(s) => Ok(Some(s)),
            Err(e) if retryable(&e) => Err(End::Retry(e)),
            Err(e) => Err(End::Failed(e)),
        }
    }

    /// A run on the shared ring, until something ends it.
    pub(super) fn run_shared(&mut self, m: Membership) -> End {
        self.ring_quick = Some(true);
        if let Err(e) = self.answer_waiting() {
            return End::Failed(describe_write_error(&e));
        }
        // The ring is the interface's, not this capture's.
        self.counters.ring_bytes.store(0, Relaxed);
        self.report_opened();
        self.set_state(State::Active, String::new());
        tracing::debug!(
            capture.id = self.p.id,
            ring_bytes = m.ring_bytes(),
            "capturing from the shared ring"
        );
        self.pump_shared(m)
    }

    fn pump_shared(&mut self, m: Membership) -> End {
        let base = (
            self.counters.dropped_kernel.load(Relaxed),
            self.counters.dropped_interface.load(Relaxed),
        );
        let mut last_flush = Instant::now();
        let mut last_housekeeping = Instant::now();
        let mut last_stats = Instant::now();
        let mut pending = PendingBatch::default();
        let end = 'run: loop {
            if let Some(end) = self.poll_control() {
                break 'run end;
            }
            if let Some((filter, reply)) = self.refilter.take() {
                match compile_offline(self.p.link_type, &filter) {
                    Ok(program) => {
                        m.set_filter(&filter, program);
                        self.p.filter = filter;
                        self.report_opened();
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        tracing::error!(capture.id = self.p.id, error = %e, "the new filter was refused; the old one stays");
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            m.set_live(!self.fanout.is_empty());
            if let Err(e) = self.wait_shared(&m, POLL_MS) {
                break 'run End::Failed(format!("waiting for packets: {e}"));
            }
            let mut idle = true;
            loop {
                match m.try_recv() {
                    Received::Batch(b) => {
                        idle = false;
                        let failed = self.take_batch(&b, &mut pending);
                        m.give_back(b);
                        if let Some(why) = failed {
                            break 'run End::Failed(why);
                        }
                    }
                    Received::Nothing => break,
                    Received::Ended(why) => break 'run End::Retry(why),
                }
            }
            if let Some(end) = self
                .flush_when_due(idle, &mut last_flush)
                .or_else(|| self.stop_reached())
            {
                break 'run end;
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                self.store_shared_drops(&m, base);
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                last_housekeeping = Instant::now();
                if let Some(end) = self.housekeeping() {
                    break 'run end;
                }
            }
        };
        // What the shared ring still holds for this capture comes within its read timeout.
        if matches!(end, End::Stopped | End::Shutdown | End::Finished(_)) {
            let until = Instant::now() + OLD_RING_DRAIN;
            while Instant::now() < until {
                let _ = self.wait_shared(&m, 10);
                while let Received::Batch(b) = m.try_recv() {
                    if self.take_batch(&b, &mut pending).is_some() {
                        break;
                    }
                }
            }
            if let Err(e) = self.spool.flush() {
                tracing::error!(capture.id = self.p.id, error = %e, "flushing the spool");
            }
        }
        self.store_shared_drops(&m, base);
        end
    }

    fn store_shared_drops(&self, m: &Membership, base: (u64, u64)) {
        let (kernel, interface) = m.dropped();
        self.counters.dropped_kernel.store(base.0 + kernel, Relaxed);
        self.counters
            .dropped_interface
            .store(base.1 + interface, Relaxed);
    }

    /// Spools a batch from the shared ring and feeds live readers; says why not when the
    /// spool cannot be written.
    fn take_batch(&mut self, batch: &TapBatch, pending: &mut PendingBatch) -> Option<String> {
        let live = !self.fanout.is_empty();
        let count_limit = self.p.stop.packet_count;
        let (mut spooled, mut bytes) = (0u64, 0u64);
        let mut failure = None;
        for (ts_ns, origlen, data) in batch.packets() {
            if count_limit.is_some_and(|c| self.run_packets >= c) {
                break;
            }
            match self.spool.append(ts_ns, origlen, data) {
                Ok((seq, len)) => {
                    self.run_packets += 1;
                    spooled += 1;
                    bytes += len;
                    if live {
                        pending.push(seq, ts_ns, origlen, data);
                        if pending.is_full() {
                            self.fanout.publish(pending.take());
                        }
                    }
                }
                Err(e) => {
                    failure = Some(describe_write_error(&e));
                    break;
                }
            }
        }
        self.counters
            .received
            .fetch_add(batch.len() as u64, Relaxed);
        self.counters.spooled_packets.fetch_add(spooled, Relaxed);
        self.counters.spooled_bytes.fetch_add(bytes, Relaxed);
        if spooled > 0 {
            self.publish_size();
        }
        if !pending.is_empty() {
            self.fanout.publish(pending.take());
        }
        failure
    }

    /// Sleeps until the shared ring hands something over, a request arrives, or the poll
    /// interval passes.
    fn wait_shared(&self, m: &Membership, ms: u16) -> nix::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [
            PollFd::new(m.wake_fd(), PollFlags::POLLIN),
            PollFd::new(self.woken.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        let mut sink = [0u8; 64];
        while self.woken.recv(&mut sink).is_ok() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_only;
    use crate::capture::device::compile_offline;

    const ETHERNET: u32 = 1;

    #[test]
    fn only_filters_on_what_the_kernel_knows_need_a_socket_of_their_own() {
        for f in ["inbound", "outbound and udp", "udp port 53 or inbound"] {
            let p = compile_offline(ETHERNET, f).expect(f);
            assert!(kernel_only(&p), "{f}");
        }
        for f in [
            "",
            "udp port 53",
            "host 10.0.0.1",
            "vlan and tcp",
            "greater 100",
        ] {
            let p = compile_offline(ETHERNET, f).expect(f);
            assert!(!kernel_only(&p), "{f}");
        }
    }
}
