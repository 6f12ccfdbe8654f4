//! The index's sidecar file, beside its segment (`00000000000000000001.idx` for
//! `00000000000000000001.pcap`). It names the length of the segment it describes and ends
//! with a checksum: a file that is short, damaged, of another version or written for
//! another length of its segment (a crash between closing and repairing) is not trusted,
//! and the segment is read in full (and its index rebuilt) instead.
//!
//! Layout, little-endian: magic, version, link type, segment length, packets, layers,
//! address form; 32 bytes of protocol bits; ports (a count and the ports, or `u32::MAX`
//! and 8 KiB of bits); addresses (a count and, for each, 16 bytes and, from version 2, the
//! 8 bytes of its blocks; or the Bloom filter's bits); from version 2, the block shift
//! (1 byte), a count and each block's start (8-byte offset, 8-byte sequence number); the
//! FNV-1a hash of everything before it. Version 1 files (no blocks) are still read.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Addrs, SegmentIndex, BLOOM_WORDS};

const MAGIC: &[u8; 8] = b"PCAPDIDX";
const VERSION: u32 = 2;
/// Suffix of an index file.
pub const SUFFIX: &str = ".idx";
/// Ports beyond this many are stored as bits.
const MAX_LISTED_PORTS: usize = 4096;

/// Where the index of the segment whose first packet is `first_seq` lives in `dir`.
pub fn path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

/// The index of a segment `segment_bytes` long, as stored.
pub fn encode(ix: &SegmentIndex, segment_bytes: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&ix.link_type.to_le_bytes());
    b.extend_from_slice(&segment_bytes.to_le_bytes());
    b.extend_from_slice(&ix.packets.to_le_bytes());
    b.push(ix.layers);
    b.push(matches!(ix.addrs, Addrs::Bloom(_)) as u8);
    for w in ix.protos {
        b.extend_from_slice(&w.to_le_bytes());
    }
    let ports: Vec<u16> = (0..=u16::MAX).filter(|&p| ix.has_port_in(p, p)).collect();
    if ports.len() <= MAX_LISTED_PORTS {
        b.extend_from_slice(&(ports.len() as u32).to_le_bytes());
        ports
            .iter()
            .for_each(|p| b.extend_from_slice(&p.to_le_bytes()));
    } else {
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        ix.ports
            .iter()
            .for_each(|w| b.extend_from_slice(&w.to_le_bytes()));
    }
    match &ix.addrs {
        Addrs::Exact(map) => {
            b.extend_from_slice(&(map.len() as u32).to_le_bytes());
            let mut sorted: Vec<(u128, u64)> = map.iter().map(|(a, k)| (*a, *k)).collect();
            sorted.sort_unstable();
            for (a, blocks) in sorted {
                b.extend_from_slice(&a.to_le_bytes());
                b.extend_from_slice(&blocks.to_le_bytes());
            }
        }
        Addrs::Bloom(bits) => bits
            .iter()
            .for_each(|w| b.extend_from_slice(&w.to_le_bytes())),
    }
    b.push(ix.block_shift);
    b.extend_from_slice(&(ix.blocks.len() as u32).to_le_bytes());
    for (offset, seq) in &ix.blocks {
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
    }
    let sum = checksum(VERSION, &b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

/// Reads back what [`encode`] wrote, if it is whole and describes a segment
/// `segment_bytes` long.
pub fn decode(b: &[u8], segment_bytes: u64) -> Option<SegmentIndex> {
    let (body, sum) = b.split_at_checked(b.len().checked_sub(8)?)?;
    let mut r = Reader(body);
    if r.take(8)? != MAGIC {
        return None;
    }
    let version = r.u32()?;
    if (version != 1 && version != VERSION) || checksum(version, body).to_le_bytes() != sum {
        return None;
    }
    let mut ix = SegmentIndex::stored(r.u32()?);
    if r.u64()? != segment_bytes {
        return None;
    }
    ix.packets = r.u64()?;
    ix.layers = r.take(1)?[0];
    let bloom = match r.take(1)?[0] {
        0 => false,
        1 => true,
        _ => return None,
    };
    for w in ix.protos.iter_mut() {
        *w = r.u64()?;
    }
    match r.u32()? {
        u32::MAX => {
            ix.ports = (0..1024).map(|_| r.u64()).collect::<Option<_>>()?;
        }
        n => {
            for _ in 0..n {
                let p = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
                ix.port(p);
            }
        }
    }
    if bloom {
        let bits = (0..BLOOM_WORDS)
            .map(|_| r.u64())
            .collect::<Option<Vec<_>>>()?;
        ix.addrs = Addrs::Bloom(bits.into_boxed_slice());
    } else {
        let n = r.u32()? as usize;
        if n > super::MAX_EXACT_ADDRS {
            return None;
        }
        let mut map = std::collections::HashMap::with_capacity_and_hasher(n, Default::default());
        for _ in 0..n {
            let a = u128::from_le_bytes(r.take(16)?.try_into().ok()?);
            let blocks = match version {
                1 => super::ALL_BLOCKS,
                _ => r.u64()?,
            };
            map.insert(a, blocks);
        }
        ix.addrs = Addrs::Exact(map);
    }
    if version > 1 {
        ix.block_shift = r.take(1)?[0];
        let n = r.u32()? as usize;
        if n > super::BLOCKS || ix.block_shift > 63 {
            return None;
        }
        for _ in 0..n {
            let offset = r.u64()?;
            let seq = r.u64()?;
            ix.blocks.push((offset, seq));
        }
        // Offsets and sequence numbers only grow, within the segment.
        let ordered = ix.blocks.windows(2).all(|w| w[0] <= w[1]);
        if !ordered || ix.blocks.iter().any(|(o, _)| *o >= segment_bytes) {
            return None;
        }
    }
    r.0.is_empty().then_some(ix)
}

/// The index stored for the segment starting at `first_seq` in `dir`, if there is a
/// trustworthy one for its length `segment_bytes`.
pub fn load(dir: &Path, first_seq: u64, segment_bytes: u64) -> Option<SegmentIndex> {
    let b = std::fs::read(path(dir, first_seq)).ok()?;
    decode(&b, segment_bytes)
}

/// Stores `ix` for the segment starting at `first_seq` in `dir`: written under a name of
/// its own, synced, then renamed into place, so that a reader sees a whole file or none.
pub fn store(
    dir: &Path,
    first_seq: u64,
    ix: &SegmentIndex,
    segment_bytes: u64,
    sync: bool,
) -> std::io::Result<()> {
    let to = path(dir, first_seq);
    // Two replays may rebuild the same index at once: each writes a file of its own.
    static TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        "{first_seq:020}{SUFFIX}.{}.{n}.tmp",
        std::process::id()
    ));
    let written = (|| {
        // As private as the segments themselves.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(&encode(ix, segment_bytes))?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &to)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Removes index files in `dir` whose segment is not among `kept` (first sequence
/// numbers), and half-written ones: what a crash between steps leaves.
pub fn remove_strays(dir: &Path, kept: &[u64]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stray = if name.ends_with(".tmp") && name.contains(SUFFIX) {
            true
        } else if let Some(digits) = name.strip_suffix(SUFFIX) {
            digits
                .parse::<u64>()
                .is_ok_and(|seq| kept.binary_search(&seq).is_err())
        } else {
            false
        };
        if stray {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The checksum of an index file of `version`: FNV-1a over bytes for version 1, over
/// little-endian 8-byte words (then the last bytes) from version 2, which a replay reading
/// dozens of indexes checks eight times faster.
fn checksum(version: u32, b: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    if version == 1 {
        return fnv1a(b);
    }
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    let h = words.fold(0xcbf2_9ce4_8422_2325, |h, w| {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        (h ^ w).wrapping_mul(PRIME)
    });
    tail.iter()
        .fold(h, |h, &x| (h ^ u64::from(x)).wrapping_mul(PRIME))
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::v4_key;
    use super::*;

    fn sample(addrs: u32, ports: u16) -> SegmentIndex {
        let mut ix = SegmentIndex::new(1);
        for i in 0..addrs {
            ix.addr(v4_key(i.to_be_bytes()));
        }
        for p in 0..ports {
            ix.port(p * 3);
        }
        ix.proto(6);
        ix.layer(super::super::layer::IPV4);
        ix.packets = 77;
        ix
    }

    fn same(a: &SegmentIndex, b: &SegmentIndex) {
        assert_eq!(
            (a.link_type, a.layers, a.protos, a.packets),
            (b.link_type, b.layers, b.protos, b.packets)
        );
        assert_eq!(a.addrs, b.addrs);
        assert!((0..=u16::MAX).all(|p| a.has_port_in(p, p) == b.has_port_in(p, p)));
    }

    #[test]
    fn round_trips_in_each_form() {
        for (addrs, ports) in [(0, 0), (3, 5), (5000, 20_000)] {
            let ix = sample(addrs, ports);
            let b = encode(&ix, 1234);
            same(&decode(&b, 1234).unwrap(), &ix);
        }
    }

    #[test]
    fn blocks_round_trip_and_older_files_without_them_still_read() {
        let mut ix = sample(3, 5);
        ix.block_shift = 12;
        ix.blocks = vec![(24, 1), (4100, 40), (8200, 77)];
        if let Addrs::Exact(map) = &mut ix.addrs {
            map.values_mut().enumerate().for_each(|(i, b)| *b = 1 << i);
        }
        let back = decode(&encode(&ix, 9000), 9000).unwrap();
        assert_eq!(back, ix);
        assert_eq!((back.block_shift, &back.blocks), (12, &ix.blocks));
        // Block starts past the segment, or out of order, are not trusted.
        let mut bad = ix.clone();
        bad.blocks = vec![(24, 1), (9000, 2)];
        assert!(decode(&encode(&bad, 9000), 9000).is_none());
        bad.blocks = vec![(4100, 40), (24, 1)];
        assert!(decode(&encode(&bad, 9000), 9000).is_none());

        // A version 1 file: addresses without blocks, no block starts.
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&9000u64.to_le_bytes());
        v1.extend_from_slice(&77u64.to_le_bytes());
        v1.extend_from_slice(&[super::super::layer::IPV4, 0]);
        v1.extend_from_slice(&[0u8; 32]);
        v1.extend_from_slice(&0u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&v4_key([10, 0, 0, 1]).to_le_bytes());
        let sum = fnv1a(&v1);
        v1.extend_from_slice(&sum.to_le_bytes());
        let old = decode(&v1, 9000).expect("a version 1 index");
        assert!(old.blocks.is_empty());
        assert_eq!(
            old.addrs.blocks_of_net(v4_key([10, 0, 0, 1]), 128),
            super::super::ALL_BLOCKS
        );
    }

    /// What reading one index costs a filtered replay, for a segment of 1,040 hosts (the
    /// benchmark's): `cargo test -p pcapd --release --lib -- --ignored --nocapture
    /// decode_cost`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn decode_cost() {
        let mut ix = sample(1040, 16);
        ix.blocks = (0..64)
            .map(|k| (24 + k * 1_048_576, 1 + k * 1500))
            .collect();
        let b = encode(&ix, 64 << 20);
        let rounds = 2000;
        let t0 = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(decode(std::hint::black_box(&b), 64 << 20).unwrap());
        }
        let per = t0.elapsed() / rounds;
        let t0 = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(checksum(VERSION, std::hint::black_box(&b)));
        }
        let sum = t0.elapsed() / rounds;
        println!(
            "{} bytes: decode {per:?}, of which the checksum {sum:?}",
            b.len()
        );
    }

    #[test]
    fn damaged_or_stale_files_are_not_trusted() {
        let b = encode(&sample(3, 5), 1234);
        assert!(decode(&b, 1235).is_none(), "written for another length");
        for at in [0, 9, 40, b.len() / 2, b.len() - 1] {
            let mut bad = b.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad, 1234).is_none(), "byte {at} changed");
        }
        assert!(decode(&b[..b.len() - 3], 1234).is_none());
        assert!(decode(&[], 1234).is_none());
    }

    #[test]
    fn stored_beside_the_segment_and_strays_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let ix = sample(2, 2);
        store(tmp.path(), 1, &ix, 100, true).unwrap();
        store(tmp.path(), 9, &ix, 100, false).unwrap();
        std::fs::write(tmp.path().join("00000000000000000005.idx.1.1.tmp"), b"x").unwrap();
        same(&load(tmp.path(), 1, 100).unwrap(), &ix);
        let mode = std::fs::metadata(path(tmp.path(), 1))
            .unwrap()
            .permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o007, 0);
        remove_strays(tmp.path(), &[1]);
        let mut left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["00000000000000000001.idx"]);
        assert!(load(tmp.path(), 1, 101).is_none());
    }
}
