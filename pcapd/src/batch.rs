//! Packing savefile records into stream messages. Records arrive in shared chunks (a block
//! read from a segment, or what one read of the capture ring produced); the records a
//! reader wants are picked out and shipped as [`api::RecordBatch`] (slices of the chunk,
//! not re-encoded) or, for clients that did not ask for raw records, as
//! [`api::PacketBatch`] whose packet data also points into the chunk.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use pcap_core::api::v1 as api;
use pcap_core::savefile::{RecordHeader, Records, RECORD_HEADER_LEN};

/// A message is shipped once it holds this many bytes of records.
pub const BATCH_BYTES: usize = 256 << 10;
/// ... or this many packets (per-packet messages cost more to encode).
const BATCH_PACKETS: usize = 4096;

/// What a reader does with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Take,
    Skip,
    /// Skip this record and everything after it: the reader has what it wanted.
    Stop,
}

/// Chunks hold only whole records already checked against their snaplen when read.
const CHECKED: u32 = u32::MAX;

/// How a stream carries packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Packets,
    Records,
}

impl Format {
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

/// Gathers picked records into messages of about [`BATCH_BYTES`].
pub struct Batcher {
    format: Format,
    /// Record bytes so far, as slices of chunks (one slice when nothing was skipped).
    parts: Vec<Bytes>,
    packets: Vec<api::Packet>,
    count: u32,
    bytes: usize,
    last_seq: u64,
}

impl Batcher {
    pub fn new(format: Format) -> Self {
        Batcher {
            format,
            parts: Vec::new(),
            packets: Vec::new(),
            count: 0,
            bytes: 0,
            last_seq: 0,
        }
    }

    /// Records (or packets) gathered and not shipped yet.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Walks the whole records in `chunk`, the first of which has sequence number
    /// `first_seq`, asks `pick` about each, and gathers those taken; every full message
    /// goes to `ship`, which returns false when the reader is gone. Returns false if the
    /// walk ended early: `pick` said stop or `ship` said the reader is gone.
    pub fn walk(
        &mut self,
        chunk: &Bytes,
        first_seq: u64,
        mut pick: impl FnMut(u64, &RecordHeader, &[u8]) -> Pick,
        ship: &mut impl FnMut(api::stream_message::Kind) -> bool,
    ) -> bool {
        let mut run: Option<Run> = None;
        let mut seq = first_seq;
        let mut records = Records::new(chunk, CHECKED);
        let mut at = 0usize;
        let mut stopped = false;
        while let Some((h, data)) = records.next() {
            let end = records.consumed();
            let this = seq;
            seq += 1;
            match pick(this, &h, data) {
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
                            return false;
                        }
                    }
                }
                Pick::Stop => {
                    stopped = true;
                    break;
                }
            }
            at = end;
        }
        if let Some(r) = run.take() {
            if !self.add(chunk, r, ship) {
                return false;
            }
        }
        !stopped
    }

    /// Adds a run of consecutive records of `chunk`.
    fn add(
        &mut self,
        chunk: &Bytes,
        run: Run,
        ship: &mut impl FnMut(api::stream_message::Kind) -> bool,
    ) -> bool {
        match self.format {
            Format::Records => {
                let bytes = chunk.slice(run.bytes);
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
                    self.packets.push(api::Packet {
                        timestamp_ns: h.ts_ns(),
                        captured_length: h.caplen,
                        original_length: h.origlen,
                        data: chunk.slice(start..offset),
                        sequence: seq,
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
    pub fn ship(&mut self, ship: &mut impl FnMut(api::stream_message::Kind) -> bool) -> bool {
        match self.take() {
            Some(kind) => ship(kind),
            None => true,
        }
    }

    /// The gathered message, if any, leaving the batcher empty.
    pub fn take(&mut self) -> Option<api::stream_message::Kind> {
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
                api::stream_message::Kind::Records(api::RecordBatch {
                    count: self.count,
                    records,
                    last_sequence: self.last_seq,
                })
            }
            Format::Packets => api::stream_message::Kind::Packets(api::PacketBatch {
                packets: std::mem::take(&mut self.packets),
            }),
        };
        self.count = 0;
        self.bytes = 0;
        Some(kind)
    }
}
