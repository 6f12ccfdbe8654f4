//! Moving a capture from one kernel ring to another without losing or doubling a packet.
//!
//! The new ring is opened while the old one is still read: from the moment the new socket
//! is bound, every packet reaches both. So every packet read from the old ring after the
//! new one was asked for is remembered by a fingerprint (its lengths and a hash of its first
//! bytes; not its time: a packet the kernel did not stamp on arrival, such as TCP on `lo`,
//! is stamped by each socket as it gets it, microseconds apart); once the old ring is
//! drained and closed, packets of the new ring that match a fingerprint are the ones already
//! spooled and are skipped, as many times as the old ring gave them. Packets the old ring
//! missed (it may have been full) match none and are kept. Once the new ring gives a packet
//! later than everything remembered (with [`SLACK_NS`] for the stamps' differences), the
//! overlap is over.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Fingerprints remembered at most; past this (the new ring took far too long to open)
/// the move is abandoned and the old ring kept.
pub const MAX_REMEMBERED: usize = 4 << 20;
/// Bytes of a packet hashed into its fingerprint.
const HASHED: usize = 128;
/// How much later than the old ring's stamp the new ring's stamp of one packet may be.
pub const SLACK_NS: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Fingerprint {
    origlen: u32,
    caplen: u32,
    hash: u64,
}

impl Fingerprint {
    fn of(origlen: u32, data: &[u8]) -> Fingerprint {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data[..data.len().min(HASHED)].hash(&mut h);
        Fingerprint {
            origlen,
            caplen: data.len() as u32,
            hash: h.finish(),
        }
    }
}

/// The packets two rings may both hold while a capture moves from one to the other.
#[derive(Debug, Default)]
pub struct Overlap {
    seen: HashMap<Fingerprint, u32>,
    remembered: usize,
    newest_ns: i64,
    /// Packets of the new ring skipped as already spooled.
    skipped: u64,
    /// Packets of the new ring from within the overlap, older than the newest the old ring
    /// gave, that the old ring did not give: ones it dropped, recovered.
    recovered: u64,
}

impl Overlap {
    /// Remembers a packet read from the old ring.
    pub fn remember(&mut self, ts_ns: i64, origlen: u32, data: &[u8]) {
        *self.seen.entry(Fingerprint::of(origlen, data)).or_default() += 1;
        self.remembered += 1;
        self.newest_ns = self.newest_ns.max(ts_ns);
    }

    /// The newest stamp among the packets remembered (0 before the first).
    pub fn newest_ns(&self) -> i64 {
        self.newest_ns
    }

    /// Whether so much was remembered that the move should be given up.
    pub fn is_full(&self) -> bool {
        self.remembered >= MAX_REMEMBERED
    }

    /// Whether a packet read from the new ring was already read from the old one (it is
    /// then forgotten: a second copy in the new ring is a packet of its own).
    pub fn already_read(&mut self, ts_ns: i64, origlen: u32, data: &[u8]) -> bool {
        if self.is_over() || ts_ns > self.newest_ns.saturating_add(SLACK_NS) {
            self.seen.clear();
            return false;
        }
        let fp = Fingerprint::of(origlen, data);
        match self.seen.get_mut(&fp) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.seen.remove(&fp);
                }
                self.skipped += 1;
                true
            }
            None => {
                // Older than the old ring's newest: the old ring dropped it. A newer one
                // arrived after the old ring's last read (its partly filled block, closed
                // with it), which the old ring did not count as dropped.
                if ts_ns <= self.newest_ns {
                    self.recovered += 1;
                }
                false
            }
        }
    }

    /// Whether nothing more can be a copy.
    pub fn is_over(&self) -> bool {
        self.seen.is_empty()
    }

    /// Packets of the new ring skipped as copies so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Packets the old ring dropped that the new one gave, so far: the kernel counted them
    /// as dropped, yet they were spooled.
    pub fn recovered(&self) -> u64 {
        self.recovered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packet `i` of a stream: a time, a length and bytes of its own.
    fn packet(i: u32) -> (i64, u32, Vec<u8>) {
        let mut data = vec![0u8; 60 + (i as usize % 3) * 200];
        data[..4].copy_from_slice(&i.to_be_bytes());
        (
            1_000_000_000 + i64::from(i) * 2 * SLACK_NS,
            data.len() as u32,
            data,
        )
    }

    /// The old ring delivers packets `old`, the new one `new` (both slices of one stream);
    /// what is spooled is the old ring's, then the new ring's not already read.
    fn spooled(old: &[u32], new: &[u32]) -> Vec<u32> {
        let mut o = Overlap::default();
        let mut out = Vec::new();
        for &i in old {
            let (ts, len, data) = packet(i);
            o.remember(ts, len, &data);
            out.push(i);
        }
        for &i in new {
            let (ts, len, data) = packet(i);
            if !o.already_read(ts, len, &data) {
                out.push(i);
            }
        }
        out
    }

    #[test]
    fn the_packets_both_rings_saw_are_spooled_once() {
        // The new ring was bound at packet 50; the old one was closed after packet 80.
        let old: Vec<u32> = (0..=80).collect();
        let new: Vec<u32> = (50..200).collect();
        assert_eq!(spooled(&old, &new), (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn what_the_full_old_ring_dropped_comes_from_the_new_one() {
        // The old ring overflowed and lost 60..70 while the new one was opening.
        let old: Vec<u32> = (0..60).chain(70..90).collect();
        let new: Vec<u32> = (40..120).collect();
        assert_eq!(spooled(&old, &new), {
            let mut v: Vec<u32> = (0..60).chain(70..90).collect();
            v.extend(60..70);
            v.extend(90..120);
            v
        });
        let mut o = Overlap::default();
        for i in (0..60).chain(70..90) {
            let (ts, len, data) = packet(i);
            o.remember(ts, len, &data);
        }
        for i in 40..120 {
            let (ts, len, data) = packet(i);
            o.already_read(ts, len, &data);
        }
        assert_eq!(o.recovered(), 10, "60..70 came from the new ring only");
    }

    #[test]
    fn the_old_rings_unread_last_block_is_not_counted_as_recovered() {
        // Packets a microsecond apart, as at 200,000 packets/s and more. The old ring lost
        // 60..70 and was closed with 80..90 in the block the kernel was filling.
        let at = |i: u32| 1_000_000_000 + i64::from(i) * 1_000;
        let mut o = Overlap::default();
        for i in (0..60).chain(70..80) {
            let (_, len, data) = packet(i);
            o.remember(at(i), len, &data);
        }
        let kept: Vec<u32> = (50..100)
            .filter(|&i| {
                let (_, len, data) = packet(i);
                !o.already_read(at(i), len, &data)
            })
            .collect();
        assert_eq!(kept, (60..70).chain(80..100).collect::<Vec<_>>());
        assert_eq!(o.recovered(), 10, "only 60..70 were counted as dropped");
    }

    #[test]
    fn no_overlap_when_the_new_ring_starts_later() {
        let old: Vec<u32> = (0..10).collect();
        let new: Vec<u32> = (10..20).collect();
        assert_eq!(spooled(&old, &new), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn copies_stamped_a_little_later_by_the_new_socket_are_still_copies() {
        let mut o = Overlap::default();
        let (ts, len, data) = packet(7);
        o.remember(ts, len, &data);
        assert!(o.already_read(ts + 3_000, len, &data));
        assert_eq!(o.skipped(), 1);
    }

    #[test]
    fn identical_packets_are_counted() {
        let mut o = Overlap::default();
        let data = [7u8; 64];
        // The same bytes twice at one time (a packet seen on two interfaces of `any`).
        o.remember(5, 64, &data);
        o.remember(5, 64, &data);
        assert!(o.already_read(5, 64, &data));
        assert!(o.already_read(5, 64, &data));
        assert!(!o.already_read(5, 64, &data), "a third copy is new");
        assert_eq!(o.skipped(), 2);
        assert!(o.is_over());
    }
}
