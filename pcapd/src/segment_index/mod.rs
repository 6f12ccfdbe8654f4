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
//! Within a segment, each address also carries the blocks (a 64th of the segment's size
//! each, at least 1 KiB) whose records hold it, and the index keeps where each block's
//! records begin: a filter on hosts then reads only the blocks that may hold them, as
//! stenographer reads only the packets its per-host offsets point to.
//!
//! The index only ever rules segments out: it keeps a superset of what libpcap's filters
//! can see in a packet (inner addresses of VLAN-tagged frames, every IPv6 extension header's
//! next header, ports of fragments), and the compiled filter is still applied to every
//! packet of the segments read, so results never change. The filter text is read
//! conservatively ([`filter`]): anything not understood reads every segment.

pub mod cache;
pub mod file;
pub mod filter;
mod headers;

use std::collections::HashMap;
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

/// Blocks a segment is cut into, at most: one bit each in an address's blocks. Records
/// starting past the last block's start count in the last block.
pub const BLOCKS: usize = 64;
/// Every block (also what is known when blocks were not noted).
pub const ALL_BLOCKS: u64 = u64::MAX;
/// The smallest block: 1 KiB.
const MIN_BLOCK_SHIFT: u8 = 10;

/// The addresses of a segment: exact up to [`MAX_EXACT_ADDRS`], each with the blocks it
/// was seen in (bit k: in a record starting in block k), then a Bloom filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addrs {
    Exact(HashMap<u128, u64, BuildHasherDefault<AddrHasher>>),
    Bloom(Box<[u64]>),
}

impl Default for Addrs {
    fn default() -> Self {
        Addrs::Exact(HashMap::default())
    }
}

impl Addrs {
    /// Notes `a`, seen in the blocks `blocks`.
    fn insert(&mut self, a: u128, blocks: u64) {
        match self {
            Addrs::Exact(map) => {
                if let Some(b) = map.get_mut(&a) {
                    *b |= blocks;
                } else if map.len() < MAX_EXACT_ADDRS {
                    map.insert(a, blocks);
                } else {
                    let mut bloom = vec![0u64; BLOOM_WORDS].into_boxed_slice();
                    for &x in map.keys().chain(std::iter::once(&a)) {
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
            Addrs::Exact(map) => map.contains_key(&a),
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
            Addrs::Exact(map) if len == 128 => map.contains_key(&prefix),
            Addrs::Exact(map) => map.keys().any(|a| a & mask == prefix & mask),
            Addrs::Bloom(_) if len == 128 => self.may_contain(prefix),
            Addrs::Bloom(_) => true,
        }
    }

    /// The blocks an address under `prefix` (the first `len` of 128 bits) may be in.
    pub fn blocks_of_net(&self, prefix: u128, len: u32) -> u64 {
        match self {
            Addrs::Exact(map) if len == 128 => map.get(&prefix).copied().unwrap_or(0),
            Addrs::Exact(map) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                map.iter()
                    .filter(|(a, _)| *a & mask == prefix & mask)
                    .fold(0, |m, (_, b)| m | b)
            }
            Addrs::Bloom(_) if self.may_contain_net(prefix, len) => ALL_BLOCKS,
            Addrs::Bloom(_) => 0,
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
    /// log2 of the block size in bytes.
    pub block_shift: u8,
    /// For each block that records start in or after: the file offset and sequence number
    /// of the first record starting at or after the block's start. Empty when blocks were
    /// not noted (an index rebuilt by a replay, or written by an older pcapd): then every
    /// address counts as in every block.
    pub blocks: Vec<(u64, u64)>,
    /// The block bit of the record being observed ([`ALL_BLOCKS`] when not noted).
    block_bit: u64,
    /// Addresses inserted lately (in the current block), each in the slot its hash picks:
    /// most packets carry addresses seen just before, and a slot compare costs less than a
    /// map lookup.
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
            self.block_shift,
            &self.blocks,
        ) == (
            o.link_type,
            o.layers,
            o.protos,
            &o.ports,
            &o.addrs,
            o.packets,
            o.block_shift,
            &o.blocks,
        )
    }
}

impl Eq for SegmentIndex {}

impl SegmentIndex {
    /// An empty index of packets of `link_type`.
    pub fn new(link_type: u32) -> Self {
        Self::with_slots(link_type, SEEN_SLOTS)
    }

    /// An empty index of packets of `link_type` for what a file holds: without the slots
    /// that save map lookups while packets are observed.
    pub fn stored(link_type: u32) -> Self {
        Self::with_slots(link_type, 0)
    }

    fn with_slots(link_type: u32, slots: usize) -> Self {
        SegmentIndex {
            link_type,
            layers: 0,
            protos: [0; 4],
            ports: Vec::new(),
            addrs: Addrs::default(),
            packets: 0,
            block_shift: MIN_BLOCK_SHIFT,
            blocks: Vec::new(),
            block_bit: ALL_BLOCKS,
            seen: vec![u128::MAX; slots].into_boxed_slice(),
        }
    }

    /// Sizes the blocks for segments of about `segment_bytes`: a 64th of that, at least
    /// 1 KiB, a power of two.
    pub fn set_block_size(&mut self, segment_bytes: u64) {
        let block = (segment_bytes / BLOCKS as u64).max(1);
        let shift = 64 - (block - 1).leading_zeros();
        self.block_shift = (shift as u8).max(MIN_BLOCK_SHIFT);
    }

    /// Adds what packet `data` (as captured, from its link-layer header) holds, without
    /// noting where it is: its addresses count as in every block.
    pub fn observe(&mut self, data: &[u8]) {
        self.packets += 1;
        headers::observe(self, data);
    }

    /// Adds what packet `data` holds, as the record at file offset `offset` numbered `seq`,
    /// noting the block it starts in. Records must come in file order.
    pub fn observe_at(&mut self, data: &[u8], offset: u64, seq: u64) {
        let block = ((offset >> self.block_shift) as usize).min(BLOCKS - 1);
        if self.blocks.len() <= block {
            self.blocks.resize(block + 1, (offset, seq));
            self.block_bit = 1 << block;
            // Every address is noted again in each block.
            self.seen.iter_mut().for_each(|a| *a = u128::MAX);
        }
        self.observe(data);
    }

    /// Empties the index for the next segment, keeping its allocations.
    pub fn clear(&mut self) {
        self.layers = 0;
        self.protos = [0; 4];
        self.ports.iter_mut().for_each(|w| *w = 0);
        match &mut self.addrs {
            Addrs::Exact(map) => map.clear(),
            Addrs::Bloom(_) => self.addrs = Addrs::default(),
        }
        self.packets = 0;
        self.blocks.clear();
        self.block_bit = ALL_BLOCKS;
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
        // An index read from its file has no slots: it is not added to.
        if let Some(slot) = self.seen.get_mut(mix(a) as usize % SEEN_SLOTS) {
            if *slot == a {
                return;
            }
            *slot = a;
        }
        self.addrs.insert(a, self.block_bit);
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
        // As the spool writer does: 64 MiB segments of 1 MiB blocks, a fresh index for each.
        let mut ix = SegmentIndex::new(1);
        ix.set_block_size(64 << 20);
        let mut offset = 24u64;
        let t = std::time::Instant::now();
        for i in 0..n {
            let f = std::hint::black_box(&frames[i % frames.len()]);
            ix.observe_at(f, offset, i as u64 + 1);
            offset += 16 + f.len() as u64;
            if offset > 64 << 20 {
                ix.clear();
                offset = 24;
            }
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
