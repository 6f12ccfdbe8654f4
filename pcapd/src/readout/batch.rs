//! Packing the records a stream wants into chunks for it. Records arrive in shared blocks
//! (one read from a segment, or what one read of the capture ring produced); the records
//! picked are shipped as [`Chunk::Records`] (slices of the block, not re-encoded) or, for
//! clients that did not ask for raw records, as [`Chunk::Packets`] whose data also points
//! into the block.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use pcap_core::savefile::{Records, Resolution, RECORD_HEADER_LEN};

use super::select::Pick;
use super::{Chunk, Packet};

/// A chunk is shipped once it holds this many bytes of records.
pub const BATCH_BYTES: usize = 256 << 10;
/// ... or this many packets (each is a protobuf message of its own, costlier to encode).
const BATCH_PACKETS: usize = 4096;

/// Chunks hold only whole records already checked against their snaplen when read.
const CHECKED: u32 = u32::MAX;

/// How a stream carries packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Packets,
    Records,
}

impl Format {
    /// Savefile records when the client asked for raw records, packets otherwise.
    pub fn raw(raw_records: bool) -> Self {
        if raw_records {
            Format::Records
        } else {
            Format::Packets
        }
    }
}

/// Consecutive records taken from one chunk.
struct Run {
    bytes: Range<usize>,
    first_seq: u64,
    count: u32,
}

/// Gathers picked records into chunks of about [`BATCH_BYTES`].
pub struct Batcher {
    format: Format,
    /// The unit of the times of the records gathered: one per chunk.
    resolution: Resolution,
    /// Record bytes so far, as slices of blocks (one slice when nothing was skipped).
    parts: Vec<Bytes>,
    packets: Vec<Packet>,
    count: u32,
    bytes: usize,
    last_seq: u64,
}

impl Batcher {
    /// An empty batcher gathering records in `format`.
    pub fn new(format: Format) -> Self {
        Batcher {
            format,
            resolution: Resolution::Nano,
            parts: Vec::new(),
            packets: Vec::new(),
            count: 0,
            bytes: 0,
            last_seq: 0,
        }
    }

    /// Walks the whole records in `chunk`, whose times are in `resolution` and the first
    /// of which has sequence number `first_seq`, asks `pick` about each (sequence number,
    /// unix nanoseconds, data), and gathers those taken; every full chunk goes to `ship`,
    /// which returns false when the reader is gone. Returns the sequence number after the
    /// chunk's last record, or `None` if the walk ended early: `pick` said stop or `ship`
    /// said the reader is gone.
    pub fn walk(
        &mut self,
        chunk: &Bytes,
        first_seq: u64,
        resolution: Resolution,
        mut pick: impl FnMut(u64, i64, &[u8]) -> Pick,
        ship: &mut impl FnMut(Chunk) -> bool,
    ) -> Option<u64> {
        // Records of both units never share a chunk: its clients read one unit per chunk.
        if resolution != self.resolution {
            if !self.ship(ship) {
                return None;
            }
            self.resolution = resolution;
        }
        let mut run: Option<Run> = None;
        let mut seq = first_seq;
        let mut records = Records::new(chunk, CHECKED);
        let mut at = 0usize;
        while let Some((h, data)) = records.next() {
            let end = records.consumed();
            let this = seq;
            seq += 1;
            match pick(this, h.ts_ns(resolution), data) {
                Pick::Take => match run.as_mut() {
                    Some(r) => {
                        r.bytes.end = end;
                        r.count += 1;
                    }
                    None => {
                        run = Some(Run {
                            bytes: at..end,
                            first_seq: this,
                            count: 1,
                        })
                    }
                },
                Pick::Skip => {
                    if let Some(r) = run.take() {
                        if !self.add(chunk, r, ship) {
                            return None;
                        }
                    }
                }
                Pick::Stop => {
                    if let Some(r) = run.take() {
                        self.add(chunk, r, ship);
                    }
                    return None;
                }
            }
            at = end;
        }
        if let Some(r) = run.take() {
            if !self.add(chunk, r, ship) {
                return None;
            }
        }
        Some(seq)
    }

    /// Adds a run of consecutive records of `chunk`.
    fn add(&mut self, chunk: &Bytes, run: Run, ship: &mut impl FnMut(Chunk) -> bool) -> bool {
        // A slice keeps its whole chunk in memory until the client has it: worth it only
        // for a run that is a good part of the chunk. Small runs (a selective filter) are
        // copied, so that a batch never pins many chunks for a few records each.
        let share = run.bytes.len() * 2 >= chunk.len();
        match self.format {
            Format::Records => {
                let bytes = if share {
                    chunk.slice(run.bytes)
                } else {
                    Bytes::copy_from_slice(&chunk[run.bytes])
                };
                if self.bytes > 0 && self.bytes + bytes.len() > BATCH_BYTES && !self.ship(ship) {
                    return false;
                }
                self.bytes += bytes.len();
                self.count += run.count;
                self.last_seq = run.first_seq + u64::from(run.count) - 1;
                self.parts.push(bytes);
            }
            Format::Packets => {
                let mut offset = run.bytes.start;
                let records = Records::new(&chunk[run.bytes], CHECKED);
                for (seq, (h, data)) in (run.first_seq..).zip(records) {
                    let start = offset + RECORD_HEADER_LEN;
                    offset = start + data.len();
                    self.packets.push(Packet {
                        seq,
                        ts_ns: h.ts_ns(self.resolution),
                        caplen: h.caplen,
                        origlen: h.origlen,
                        data: if share {
                            chunk.slice(start..offset)
                        } else {
                            Bytes::copy_from_slice(data)
                        },
                    });
                    self.last_seq = seq;
                    self.count += 1;
                    self.bytes += data.len();
                    if (self.bytes >= BATCH_BYTES || self.packets.len() >= BATCH_PACKETS)
                        && !self.ship(ship)
                    {
                        return false;
                    }
                }
            }
        }
        if self.bytes >= BATCH_BYTES {
            return self.ship(ship);
        }
        true
    }

    /// Ships what is gathered, if anything; false if the reader is gone.
    pub fn ship(&mut self, ship: &mut impl FnMut(Chunk) -> bool) -> bool {
        match self.take() {
            Some(kind) => ship(kind),
            None => true,
        }
    }

    /// The gathered chunk, if any, leaving the batcher empty.
    pub fn take(&mut self) -> Option<Chunk> {
        if self.count == 0 {
            return None;
        }
        let kind = match self.format {
            Format::Records => {
                let records = match self.parts.len() {
                    1 => self.parts.pop().expect("one part"),
                    _ => {
                        let mut joined = BytesMut::with_capacity(self.bytes);
                        for p in self.parts.drain(..) {
                            joined.extend_from_slice(&p);
                        }
                        joined.freeze()
                    }
                };
                Chunk::Records {
                    records,
                    count: self.count,
                    last_seq: self.last_seq,
                    resolution: self.resolution,
                }
            }
            Format::Packets => Chunk::Packets(std::mem::take(&mut self.packets)),
        };
        self.count = 0;
        self.bytes = 0;
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::savefile::encode_record;

    /// `n` records numbered from 0, of `len` bytes each (the first byte is the number).
    fn chunk(n: u64, len: usize) -> Bytes {
        let mut b = Vec::new();
        for i in 0..n {
            let mut data = vec![0u8; len];
            data[0] = i as u8;
            encode_record(
                &mut b,
                Resolution::Nano,
                i as i64 * 1_000,
                len as u32,
                &data,
            );
        }
        Bytes::from(b)
    }

    fn run(
        format: Format,
        chunk: &Bytes,
        mut pick: impl FnMut(u64) -> Pick,
    ) -> (Vec<Chunk>, Option<u64>) {
        let mut b = Batcher::new(format);
        let mut out = Vec::new();
        let mut ship = |k| {
            out.push(k);
            true
        };
        let more = b.walk(chunk, 1, Resolution::Nano, |seq, _, _| pick(seq), &mut ship);
        b.ship(&mut ship);
        (out, more)
    }

    fn records(chunks: &[Chunk]) -> (Vec<u8>, u32, u64) {
        let mut bytes = Vec::new();
        let (mut count, mut last) = (0, 0);
        for c in chunks {
            let Chunk::Records {
                records,
                count: n,
                last_seq,
                ..
            } = c
            else {
                panic!("{c:?}")
            };
            assert_eq!(Records::new(records, CHECKED).count(), *n as usize);
            bytes.extend_from_slice(records);
            count += n;
            last = *last_seq;
        }
        (bytes, count, last)
    }

    fn only_records(out: &[Chunk]) -> &Bytes {
        match out {
            [Chunk::Records { records, .. }] => records,
            other => panic!("{other:?}"),
        }
    }

    fn only_packets(out: &[Chunk]) -> &[Packet] {
        match out {
            [Chunk::Packets(p)] => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn everything_taken_is_the_chunk_itself() {
        let c = chunk(100, 100);
        let (out, more) = run(Format::Records, &c, |_| Pick::Take);
        assert_eq!(more, Some(101));
        assert_eq!(out.len(), 1);
        let (_, count, last) = records(&out);
        assert_eq!((count, last), (100, 100));
        // Not a copy: the same memory.
        let r = only_records(&out);
        assert_eq!(r.as_ptr(), c.as_ptr());
        assert_eq!(r.len(), c.len());
    }

    #[test]
    fn skipped_records_are_left_out_and_the_rest_joined() {
        let c = chunk(10, 50);
        let (out, more) = run(Format::Records, &c, |seq| {
            if seq % 3 == 0 {
                Pick::Skip
            } else {
                Pick::Take
            }
        });
        assert_eq!(more, Some(11));
        let (bytes, count, last) = records(&out);
        let kept: Vec<u8> = Records::new(&bytes, CHECKED).map(|(_, d)| d[0]).collect();
        // Sequence numbers start at 1 for record 0.
        assert_eq!(kept, vec![0, 1, 3, 4, 6, 7, 9]);
        assert_eq!((count, last), (7, 10));
    }

    #[test]
    fn stop_ends_the_walk_after_what_was_taken() {
        let c = chunk(10, 50);
        let (out, more) = run(Format::Records, &c, |seq| {
            if seq > 4 {
                Pick::Stop
            } else {
                Pick::Take
            }
        });
        assert_eq!(more, None);
        let (_, count, last) = records(&out);
        assert_eq!((count, last), (4, 4));
    }

    #[test]
    fn chunks_stay_near_the_batch_size() {
        let c = chunk(2000, 1000); // about 2 MB
        let (out, _) = run(Format::Records, &c, |seq| {
            if seq % 2 == 0 {
                Pick::Skip
            } else {
                Pick::Take
            }
        });
        assert!(out.len() >= 3, "{} chunks", out.len());
        for c in &out {
            let Chunk::Records { records, .. } = c else {
                panic!("{c:?}")
            };
            assert!(records.len() <= BATCH_BYTES + 1016, "{}", records.len());
        }
        assert_eq!(records(&out).1, 1000);
    }

    #[test]
    fn small_runs_are_copied_so_they_do_not_pin_their_chunk() {
        let c = chunk(100, 100);
        let within = |b: &Bytes| {
            let start = c.as_ptr() as usize;
            (start..start + c.len()).contains(&(b.as_ptr() as usize))
        };
        // Most of the chunk: shared.
        let (out, _) = run(Format::Records, &c, |seq| {
            if seq == 1 {
                Pick::Skip
            } else {
                Pick::Take
            }
        });
        assert!(within(only_records(&out)));
        // A record here and there: copied, for records and for packets alike.
        let (out, _) = run(Format::Records, &c, |seq| {
            if seq % 10 == 0 {
                Pick::Take
            } else {
                Pick::Skip
            }
        });
        assert_eq!(records(&out).1, 10);
        assert!(!within(only_records(&out)));
        let (out, _) = run(Format::Packets, &c, |seq| {
            if seq % 10 == 0 {
                Pick::Take
            } else {
                Pick::Skip
            }
        });
        assert_eq!(only_packets(&out).len(), 10);
        assert!(only_packets(&out).iter().all(|p| !within(&p.data)));
        let (out, _) = run(Format::Packets, &c, |_| Pick::Take);
        assert!(only_packets(&out).iter().all(|p| within(&p.data)));
    }

    #[test]
    fn records_of_two_units_never_share_a_chunk() {
        let mut us = Vec::new();
        pcap_core::savefile::encode_record(&mut us, Resolution::Micro, 5_000, 4, &[1; 4]);
        let us = Bytes::from(us);
        let ns = chunk(2, 4);
        let mut b = Batcher::new(Format::Records);
        let mut out = Vec::new();
        let mut ship = |k| {
            out.push(k);
            true
        };
        let mut times = Vec::new();
        let mut pick = |_, ts, _: &[u8]| {
            times.push(ts);
            Pick::Take
        };
        b.walk(&us, 1, Resolution::Micro, &mut pick, &mut ship);
        b.walk(&ns, 2, Resolution::Nano, &mut pick, &mut ship);
        b.ship(&mut ship);
        assert_eq!(times, [5_000, 0, 1_000]);
        let units: Vec<_> = out
            .iter()
            .map(|c| match c {
                Chunk::Records {
                    resolution, count, ..
                } => (*resolution, *count),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(units, [(Resolution::Micro, 1), (Resolution::Nano, 2)]);
    }

    #[test]
    fn packets_carry_their_sequence_and_data() {
        let c = chunk(10, 64);
        let (out, _) = run(Format::Packets, &c, |seq| {
            if seq == 5 {
                Pick::Skip
            } else {
                Pick::Take
            }
        });
        let packets = only_packets(&out);
        let seqs: Vec<u64> = packets.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 6, 7, 8, 9, 10]);
        for p in packets {
            assert_eq!(p.data[0] as u64, p.seq - 1);
            assert_eq!((p.caplen, p.origlen), (64, 64));
            assert_eq!(p.ts_ns, (p.seq as i64 - 1) * 1_000);
        }
    }
}
