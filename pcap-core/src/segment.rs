//! The spool segment format. A capture's spool is a directory of segments, each a valid
//! pcap savefile on its own. A closed segment is named after the sequence number of its
//! first packet (`00000000000000000001.pcap`); the one being written carries `.part`
//! until it is fsynced and renamed into place on rotation.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::savefile::{FileHeader, RecordHeader, Records, Tail, FILE_HEADER_LEN};
use crate::{Error, Result};

/// Suffix of a closed segment.
pub const CLOSED_SUFFIX: &str = ".pcap";
/// Suffix of the segment being written.
pub const OPEN_SUFFIX: &str = ".pcap.part";
/// Block size for reading segments.
const READ_BLOCK: usize = 1 << 20;

/// A segment's identity as carried by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    pub first_seq: u64,
    pub open: bool,
}

impl SegmentName {
    /// The file name for this segment.
    pub fn file_name(&self) -> String {
        let suffix = if self.open {
            OPEN_SUFFIX
        } else {
            CLOSED_SUFFIX
        };
        format!("{:020}{suffix}", self.first_seq)
    }

    /// Recognises a segment file name; anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        let (digits, open) = if let Some(d) = name.strip_suffix(OPEN_SUFFIX) {
            (d, true)
        } else {
            (name.strip_suffix(CLOSED_SUFFIX)?, false)
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(SegmentName {
            first_seq: digits.parse().ok()?,
            open,
        })
    }
}

/// Where the closed segment whose first packet is `first_seq` lives in the spool `dir`.
pub fn closed_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(
        SegmentName {
            first_seq,
            open: false,
        }
        .file_name(),
    )
}

/// What a scan of a segment file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub header: FileHeader,
    pub packets: u64,
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    /// Length of the file up to the end of its last whole record.
    pub valid_len: u64,
    /// Length of the file on disk.
    pub file_len: u64,
}

/// Calls `f` with the segment's file header (which says the unit of its record times) and
/// its whole records in chunks: each chunk holds one or more records back to back, as read from disk in blocks of about `block` bytes, shared
/// rather than copied (handing a chunk or a slice of it on costs nothing). Stops where
/// `f` breaks or the records end; a trailing partial or corrupt record is left out, as
/// [`for_each_record`] does. Returns the file header and how the records ended.
pub fn for_each_chunk(
    path: &Path,
    block: usize,
    f: impl FnMut(&FileHeader, Bytes) -> ControlFlow<()>,
) -> Result<(FileHeader, Tail)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    for_each_chunk_of(file, path, block, f)
}

/// [`for_each_chunk`] on a segment opened already (read from where its file offset is, its
/// start); `path` names it in errors.
pub fn for_each_chunk_of(
    file: File,
    path: &Path,
    block: usize,
    f: impl FnMut(&FileHeader, Bytes) -> ControlFlow<()>,
) -> Result<(FileHeader, Tail)> {
    for_each_chunk_in(file, path, FILE_HEADER_LEN as u64..u64::MAX, block, f)
}

/// [`for_each_chunk_of`] for the records in `range` of the file (byte offsets: from a record
/// boundary, up to another or the end of the file). Reads the file header first.
pub fn for_each_chunk_in(
    mut file: File,
    path: &Path,
    range: std::ops::Range<u64>,
    block: usize,
    mut f: impl FnMut(&FileHeader, Bytes) -> ControlFlow<()>,
) -> Result<(FileHeader, Tail)> {
    let header = read_header(&mut file, path)?;
    if range.start != FILE_HEADER_LEN as u64 {
        file.seek(SeekFrom::Start(range.start))
            .map_err(|e| Error::io(path, e))?;
    }
    let mut left = range.end.saturating_sub(range.start);
    let max_caplen = header.snaplen.max(crate::DEFAULT_SNAPLEN);
    let mut carry: Vec<u8> = Vec::new();
    loop {
        // A block after the partial record carried over (more if that record is larger).
        let want = block.max(carry.len() * 2);
        let mut buf = Vec::with_capacity(want);
        buf.extend_from_slice(&carry);
        // read_to_end fills spare capacity without zeroing it first; `take` bounds it.
        let limit = ((want - buf.len()) as u64).min(left);
        let n = loop {
            match file.by_ref().take(limit).read_to_end(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(path, e)),
            }
        };
        left -= n as u64;
        let mut records = Records::new(&buf, max_caplen);
        records.by_ref().for_each(drop);
        let (whole, tail) = (records.consumed(), records.tail());
        carry = buf[whole..].to_vec();
        buf.truncate(whole);
        if whole > 0 && f(&header, Bytes::from(buf)).is_break() {
            return Ok((header, Tail::Clean));
        }
        if tail == Tail::Corrupt || n == 0 {
            return Ok((header, tail));
        }
    }
}

/// Reads a segment's file header.
pub fn read_header(file: &mut File, path: &Path) -> Result<FileHeader> {
    let mut h = [0u8; FILE_HEADER_LEN];
    file.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
    FileHeader::decode(&h).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Calls `f` with every whole record of the segment at `path`, in order, reading in large
/// blocks, until `f` breaks, `max_packets` records were seen, or the records end. Returns
/// the file header and the byte offset just past the last whole record read.
pub fn for_each_record(
    path: &Path,
    max_packets: Option<u64>,
    mut f: impl FnMut(&RecordHeader, &[u8]) -> ControlFlow<()>,
) -> Result<(FileHeader, u64, Tail)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let header = read_header(&mut file, path)?;
    let max_caplen = header.snaplen.max(crate::DEFAULT_SNAPLEN);
    let mut buf = vec![0u8; READ_BLOCK];
    let mut filled = 0usize;
    let mut offset = FILE_HEADER_LEN as u64;
    let mut seen = 0u64;
    loop {
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        filled += n;
        let mut records = Records::new(&buf[..filled], max_caplen);
        for (h, data) in records.by_ref() {
            if max_packets.is_some_and(|m| seen >= m) {
                return Ok((header, offset, Tail::Clean));
            }
            seen += 1;
            offset += (crate::savefile::RECORD_HEADER_LEN + data.len()) as u64;
            if f(&h, data).is_break() {
                return Ok((header, offset, Tail::Clean));
            }
        }
        let consumed = records.consumed();
        let tail = records.tail();
        if tail == Tail::Corrupt {
            return Ok((header, offset, Tail::Corrupt));
        }
        if n == 0 {
            return Ok((header, offset, tail));
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if filled == buf.len() {
            // A record larger than the block: grow to hold it.
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// Reads a whole segment (of either resolution) and summarises it.
pub fn scan(path: &Path) -> Result<SegmentSummary> {
    let mut packets = 0u64;
    let (mut first, mut last) = (None, None);
    let (header, valid_len, _) = for_each_record(path, None, |h, _| {
        first.get_or_insert(*h);
        last = Some(*h);
        packets += 1;
        ControlFlow::Continue(())
    })?;
    let ts = |h: Option<RecordHeader>| h.map_or(0, |h| h.ts_ns(header.resolution));
    let (first_ts_ns, last_ts_ns) = (ts(first), ts(last));
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok(SegmentSummary {
        header,
        packets,
        first_ts_ns,
        last_ts_ns,
        valid_len,
        file_len,
    })
}

/// Cuts a trailing partial (or corrupt) record from a segment left open by a crash, and
/// returns its summary. A file too short for a header is reported as invalid.
pub fn repair(path: &Path) -> Result<SegmentSummary> {
    let mut s = scan(path)?;
    if s.valid_len < s.file_len {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(s.valid_len).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        s.file_len = s.valid_len;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::savefile::{encode_record, Resolution};
    use std::io::Write;

    const US: Resolution = Resolution::Micro;
    const NS: Resolution = Resolution::Nano;

    #[test]
    fn names_round_trip() {
        let n = SegmentName {
            first_seq: 42,
            open: true,
        };
        assert_eq!(n.file_name(), "00000000000000000042.pcap.part");
        assert_eq!(SegmentName::parse(&n.file_name()), Some(n));
        let c = SegmentName {
            first_seq: 7,
            open: false,
        };
        assert_eq!(SegmentName::parse(&c.file_name()), Some(c));
        assert_eq!(SegmentName::parse("notes.txt"), None);
        assert_eq!(SegmentName::parse("42.pcap"), None);
    }

    #[test]
    fn repair_cuts_a_partial_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(
            SegmentName {
                first_seq: 1,
                open: true,
            }
            .file_name(),
        );
        let mut bytes = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: US,
        }
        .encode()
        .to_vec();
        for i in 0..3 {
            encode_record(&mut bytes, US, 1_000_000_000 * (i + 1), 64, &[i as u8; 64]);
        }
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[5u8; 30]);
        File::create(&path).unwrap().write_all(&bytes).unwrap();

        let s = repair(&path).unwrap();
        assert_eq!(s.packets, 3);
        assert_eq!(s.valid_len, whole);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(
            (s.first_ts_ns, s.last_ts_ns),
            (1_000_000_000, 3_000_000_000)
        );
    }

    #[test]
    fn chunks_hold_whole_records_in_order_and_leave_a_partial_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.pcap.part");
        let mut bytes = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: NS,
        }
        .encode()
        .to_vec();
        let sizes = [10usize, 5000, 70, 3000, 1, 9000, 64];
        for (i, n) in sizes.iter().enumerate() {
            encode_record(
                &mut bytes,
                NS,
                i as i64 * 1_000,
                *n as u32,
                &vec![i as u8; *n],
            );
        }
        let whole = bytes[FILE_HEADER_LEN..].to_vec();
        let mut partial = Vec::new();
        encode_record(&mut partial, NS, 9_000, 100, &[7u8; 100]);
        bytes.extend_from_slice(&partial[..50]); // a record being written
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        // Blocks smaller than some records: those must still come whole.
        for block in [16, 100, 4096, 1 << 20] {
            let mut got = Vec::new();
            let mut chunks = 0;
            let (_, tail) = for_each_chunk(&path, block, |h, c| {
                assert_eq!(h.resolution, NS);
                assert!(Records::new(&c, 262_144).count() > 0);
                got.extend_from_slice(&c);
                chunks += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(got, whole, "block {block}");
            assert_eq!(tail, Tail::Partial);
            if block == 1 << 20 {
                assert_eq!(chunks, 1);
            }
        }
        // Breaking stops the reading.
        let mut seen = 0;
        for_each_chunk(&path, 16, |_, _| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn scan_reads_times_in_the_unit_of_each_file() {
        let dir = tempfile::tempdir().unwrap();
        for res in [US, NS] {
            let path = dir.path().join(format!("{res:?}.pcap"));
            let mut bytes = FileHeader {
                link_type: 1,
                snaplen: 262_144,
                resolution: res,
            }
            .encode()
            .to_vec();
            encode_record(&mut bytes, res, 1_700_000_000_123_456_789, 4, &[0; 4]);
            encode_record(&mut bytes, res, 1_700_000_001_000_000_001, 4, &[0; 4]);
            File::create(&path).unwrap().write_all(&bytes).unwrap();
            let s = scan(&path).unwrap();
            let cut = |ns: i64| ns - ns % res.ns_per_unit();
            assert_eq!(s.header.resolution, res);
            assert_eq!(
                (s.first_ts_ns, s.last_ts_ns),
                (
                    cut(1_700_000_000_123_456_789),
                    cut(1_700_000_001_000_000_001)
                )
            );
        }
    }

    #[test]
    fn records_larger_than_a_block_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.pcap");
        let mut bytes = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: US,
        }
        .encode()
        .to_vec();
        for _ in 0..20 {
            encode_record(&mut bytes, US, 5, 200_000, &[1u8; 200_000]);
        }
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        assert_eq!(scan(&path).unwrap().packets, 20);
        let mut n = 0;
        for_each_record(&path, Some(7), |_, _| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(n, 7);
    }
}
