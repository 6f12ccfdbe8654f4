//! The segment index: what each closed segment holds (IP addresses, TCP/UDP/SCTP ports, IP
//! protocols, which network layers), so that a replay with a selective `--filter` leaves
//! unread the segments that cannot hold a matching packet, as stenographer does.
//!
//! It is gathered on the capture thread as packets are appended ([`SegmentIndex::observe`]:
//! a few header reads, a bit set and, for a new address, one hash set insert), handed to the
//! spool's closing thread with the segment, and written beside it as a sidecar file
//! ([`file`]) before the segment is renamed into place and catalogued. Retention removes it
//! with its segment. A segment whose index is missing or unreadable (a spool from before the
//! index, a crash between closing and writing it, a damaged file) is simply read in full by
//! the next filtered replay, which rebuilds the index from the records it reads anyway: the
//! daemon's start-up never waits on it.
//!
//! The index only ever rules segments out: it keeps a superset of what libpcap's filters
//! can see in a packet (inner addresses of VLAN-tagged frames, every IPv6 extension header's
//! next header, ports of fragments), and the compiled filter is still applied to every
//! packet of the segments read, so results never change. The filter text is read
//! conservatively ([`filter`]): anything not understood reads every segment.

pub mod file;
pub mod filter;
mod headers;

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use filter::{SegmentFilter, Verdict};

/// Distinct addresses kept exactly; past this the addresses go into a Bloom filter of
/// [`BLOOM_BITS`] bits, which never forgets an address but may claim one it never saw.
/// At 4096 addresses the exact set holds at most 64 KiB (as many bytes as the Bloom
/// filter), and host lookups stay exact for most segments; `net` lookups on a segment in
/// Bloom form cannot rule it out.
pub const MAX_EXACT_ADDRS: usize = 4096;
/// Bits of the Bloom filter: 64 KiB, about 1% false positives at 50,000 addresses (3
/// hashes).
pub const BLOOM_BITS: usize = 1 << 19;
const BLOOM_WORDS: usize = BLOOM_BITS / 64;

/// Which network layers the segment's packets had, as libpcap classifies them.
pub mod layer {
    /// IPv4 (Ethernet type 0x0800 and its equivalents per link type).
    pub const IPV4: u8 = 1;
    /// IPv6.
    pub const IPV6: u8 = 2;
    /// ARP or RARP.
    pub const ARP: u8 = 4;
    /// Anything else (VLAN-tagged frames included: a filter without `vlan` does not see
    /// their inner packet).
    pub const OTHER: u8 = 8;
    /// Packets of a link type the index does not take apart: nothing can be ruled out.
    pub const OPAQUE: u8 = 16;
}

/// Segments left unread by filtered replays since the daemon started.
static SEGMENTS_SKIPPED: AtomicU64 = AtomicU64::new(0);
/// Indexes rebuilt from their segment (missing or damaged ones) since the daemon started.
static INDEXES_REBUILT: AtomicU64 = AtomicU64::new(0);

/// Counts a segment a filtered replay did not read.
pub fn count_skipped() {
    SEGMENTS_SKIPPED.fetch_add(1, Relaxed);
}

/// Counts an index rebuilt from its segment.
pub fn count_rebuilt() {
    INDEXES_REBUILT.fetch_add(1, Relaxed);
}

/// Segments skipped and indexes rebuilt since the daemon started, for `/metrics`.
pub fn counters() -> (u64, u64) {
    (
        SEGMENTS_SKIPPED.load(Relaxed),
        INDEXES_REBUILT.load(Relaxed),
    )
}

/// Slots of [`SegmentIndex`]'s cache of addresses seen (16 KiB).
const SEEN_SLOTS: usize = 1024;

/// A multiply-shift hash of one address: the set holds addresses only, no hash flooding
/// concern is worth SipHash's cost per packet (a peer can at worst push a segment into
/// its Bloom filter, which the cap does anyway).
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = mix(v);
    }
}

fn mix(v: u128) -> u64 {
    let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
    let x = (x ^ (x >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// The addresses of a segment: exact up to [`MAX_EXACT_ADDRS`], then a Bloom filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addrs {
    Exact(HashSet<u128, BuildHasherDefault<AddrHasher>>),
    Bloom(Box<[u64]>),
}

impl Default for Addrs {
    fn default() -> Self {
        Addrs::Exact(HashSet::default())
    }
}

impl Addrs {
    fn insert(&mut self, a: u128) {
        match self {
            Addrs::Exact(set) => {
                if set.len() < MAX_EXACT_ADDRS {
                    set.insert(a);
                } else if !set.contains(&a) {
                    let mut bloom = vec![0u64; BLOOM_WORDS].into_boxed_slice();
                    for &x in set.iter().chain(std::iter::once(&a)) {
                        bloom_set(&mut bloom, x);
                    }
                    *self = Addrs::Bloom(bloom);
                }
            }
            Addrs::Bloom(bits) => bloom_set(bits, a),
        }
    }

    /// Whether `a` may be among the addresses.
    pub fn may_contain(&self, a: u128) -> bool {
        match self {
            Addrs::Exact(set) => set.contains(&a),
            Addrs::Bloom(bits) => bloom_bits(a)
                .iter()
                .all(|&b| bits[b / 64] & (1 << (b % 64)) != 0),
        }
    }

    /// Whether an address under `prefix` (the first `len` of 128 bits) may be among them.
    pub fn may_contain_net(&self, prefix: u128, len: u32) -> bool {
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        match self {
            Addrs::Exact(set) => set.iter().any(|a| a & mask == prefix & mask),
            Addrs::Bloom(_) if len == 128 => self.may_contain(prefix),
            Addrs::Bloom(_) => true,
        }
    }
}

fn bloom_bits(a: u128) -> [usize; 3] {
    let h = mix(a);
    let m = BLOOM_BITS as u64 - 1;
    [
        (h & m) as usize,
        ((h >> 21) & m) as usize,
        ((h >> 42) & m) as usize,
    ]
}

fn bloom_set(bits: &mut [u64], a: u128) {
    for b in bloom_bits(a) {
        bits[b / 64] |= 1 << (b % 64);
    }
}

/// An IPv4 address as the index keys it: IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
pub fn v4_key(a: [u8; 4]) -> u128 {
    0xffff_0000_0000 | u128::from(u32::from_be_bytes(a))
}

/// What one segment holds, as far as filters on hosts, ports and protocols go.
#[derive(Debug, Clone)]
pub struct SegmentIndex {
    /// The link type its packets were taken apart as.
    pub link_type: u32,
    /// [`layer`] bits seen.
    pub layers: u8,
    /// IP protocol numbers seen (IPv4 protocol, IPv6 next headers), one bit each.
    pub protos: [u64; 4],
    /// TCP, UDP and SCTP ports seen (source and destination), one bit each; empty until
    /// the first port.
    pub ports: Vec<u64>,
    /// IPv4 (mapped) and IPv6 addresses seen, source and destination, ARP's included.
    pub addrs: Addrs,
    /// Packets observed.
    pub packets: u64,
    /// Addresses inserted lately, each in the slot its hash picks: most packets carry
    /// addresses seen just before, and a slot compare costs less than a set lookup.
    seen: Box<[u128]>,
}

/// Equal when they hold the same (the cache of addresses seen aside).
impl PartialEq for SegmentIndex {
    fn eq(&self, o: &Self) -> bool {
        (
            self.link_type,
            self.layers,
            self.protos,
            &self.ports,
            &self.addrs,
            self.packets,
        ) == (
            o.link_type,
            o.layers,
            o.protos,
            &o.ports,
            &o.addrs,
            o.packets,
        )
    }
}

impl Eq for SegmentIndex {}

impl SegmentIndex {
    /// An empty index of packets of `link_type`.
    pub fn new(link_type: u32) -> Self {
        SegmentIndex {
            link_type,
            layers: 0,
            protos: [0; 4],
            ports: Vec::new(),
            addrs: Addrs::default(),
            packets: 0,
            seen: vec![u128::MAX; SEEN_SLOTS].into_boxed_slice(),
        }
    }

    /// Adds what packet `data` (as captured, from its link-layer header) holds.
    pub fn observe(&mut self, data: &[u8]) {
        self.packets += 1;
        headers::observe(self, data);
    }

    /// Empties the index for the next segment, keeping its allocations.
    pub fn clear(&mut self) {
        self.layers = 0;
        self.protos = [0; 4];
        self.ports.iter_mut().for_each(|w| *w = 0);
        match &mut self.addrs {
            Addrs::Exact(set) => set.clear(),
            Addrs::Bloom(_) => self.addrs = Addrs::default(),
        }
        self.packets = 0;
        self.seen.iter_mut().for_each(|a| *a = u128::MAX);
    }

    fn layer(&mut self, bit: u8) {
        self.layers |= bit;
    }

    fn proto(&mut self, p: u8) {
        self.protos[usize::from(p / 64)] |= 1 << (p % 64);
    }

    fn port(&mut self, p: u16) {
        if self.ports.is_empty() {
            self.ports = vec![0; 1024];
        }
        self.ports[usize::from(p / 64)] |= 1 << (p % 64);
    }

    fn addr(&mut self, a: u128) {
        let slot = &mut self.seen[mix(a) as usize % SEEN_SLOTS];
        if *slot == a {
            return;
        }
        *slot = a;
        self.addrs.insert(a);
    }

    /// Whether IP protocol `p` was seen.
    pub fn has_proto(&self, p: u8) -> bool {
        self.protos[usize::from(p / 64)] & (1 << (p % 64)) != 0
    }

    /// Whether a port in `lo..=hi` was seen.
    pub fn has_port_in(&self, lo: u16, hi: u16) -> bool {
        if self.ports.is_empty() {
            return false;
        }
        (lo..=hi).any(|p| self.ports[usize::from(p / 64)] & (1 << (p % 64)) != 0)
    }

    /// Whether packets of a link type the index does not take apart were seen.
    pub fn is_opaque(&self) -> bool {
        self.layers & layer::OPAQUE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_addresses_go_to_a_bloom_filter_that_forgets_none() {
        let mut ix = SegmentIndex::new(101);
        for i in 0..(MAX_EXACT_ADDRS as u32 + 1000) {
            ix.addr(v4_key(i.to_be_bytes()));
        }
        assert!(matches!(ix.addrs, Addrs::Bloom(_)));
        for i in 0..(MAX_EXACT_ADDRS as u32 + 1000) {
            assert!(ix.addrs.may_contain(v4_key(i.to_be_bytes())));
        }
        let false_positives = (1_000_000u32..1_010_000)
            .filter(|i| ix.addrs.may_contain(v4_key(i.to_be_bytes())))
            .count();
        assert!(false_positives < 100, "{false_positives} of 10000");
        ix.clear();
        assert_eq!(ix.addrs, Addrs::default());
    }

    /// The cost per packet on the capture thread, beside that of copying the record into
    /// the write buffer: `cargo test -p pcapd --release --lib -- --ignored --nocapture
    /// observe_cost`.
    #[test]
    #[ignore = "a measurement, run in release"]
    fn observe_cost() {
        let frames: Vec<Vec<u8>> = (0..4096u32)
            .map(|i| {
                let size = [64usize, 512, 1500][(i % 3) as usize];
                let mut f = vec![0u8; size];
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                f[14] = 0x45;
                f[23] = 17;
                let h = (i / 7) % 1024;
                f[26..30].copy_from_slice(&[10, 0, (h / 256) as u8, (h % 256) as u8]);
                f[30..34].copy_from_slice(&[10, 250, 0, (i % 16) as u8 + 1]);
                f[34..36].copy_from_slice(&(1024 + (i % 1000) as u16).to_be_bytes());
                f[36..38].copy_from_slice(&[0, 53]);
                f
            })
            .collect();
        let n = 3_000_000usize;
        let mut ix = SegmentIndex::new(1);
        let t = std::time::Instant::now();
        for i in 0..n {
            ix.observe(std::hint::black_box(&frames[i % frames.len()]));
        }
        let observe = t.elapsed().as_nanos() as f64 / n as f64;
        let mut buf = Vec::with_capacity(1 << 20);
        let t = std::time::Instant::now();
        for i in 0..n {
            let f = &frames[i % frames.len()];
            let res = pcap_core::savefile::Resolution::Nano;
            pcap_core::savefile::encode_record(&mut buf, res, i as i64, f.len() as u32, f);
            if buf.len() > (1 << 20) - 2000 {
                std::hint::black_box(&buf);
                buf.clear();
            }
        }
        let copy = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "index: {observe:.1} ns/packet; record copy: {copy:.1} ns/packet; {} addresses",
            match &ix.addrs {
                Addrs::Exact(s) => s.len(),
                Addrs::Bloom(_) => usize::MAX,
            }
        );
    }

    #[test]
    fn nets_are_looked_up_in_the_exact_set() {
        let mut ix = SegmentIndex::new(101);
        ix.addr(v4_key([10, 1, 2, 3]));
        assert!(ix.addrs.may_contain_net(v4_key([10, 0, 0, 0]), 96 + 8));
        assert!(!ix.addrs.may_contain_net(v4_key([10, 2, 0, 0]), 96 + 16));
        assert!(ix.addrs.may_contain_net(0, 0));
    }
}
