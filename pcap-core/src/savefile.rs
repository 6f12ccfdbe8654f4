//! The classic pcap savefile format that pcapd spools and `pcap` writes: a 24-byte file
//! header, then records of a 16-byte header and the packet bytes. The magic number says
//! whether record times are in microseconds (a1b2c3d4) or nanoseconds (a1b23c4d). Written
//! little-endian, as on the machines pcapd runs on.

use crate::{Error, Result};

/// Magic number of a microsecond-resolution savefile.
pub const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic number of a nanosecond-resolution savefile.
pub const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// The libpcap DLT_ value for a file's LINKTYPE_ value, for compiling filters: they differ
/// for RAW (LINKTYPE_RAW 101 is DLT_RAW 12 on Linux; OpenBSD's 14 too); the rest are equal.
pub fn dlt_of(link_type: u32) -> u32 {
    match link_type {
        101 | 14 => 12,
        other => other,
    }
}

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// The unit of the fraction of a second in record headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// Microseconds: the classic savefile, what tcpdump writes and every reader knows.
    #[default]
    Micro,
    /// Nanoseconds: what libpcap gives on Linux when asked, and what pcapd spools.
    Nano,
}

impl Resolution {
    /// Nanoseconds in one unit of the fraction.
    pub const fn ns_per_unit(self) -> i64 {
        match self {
            Resolution::Micro => 1_000,
            Resolution::Nano => 1,
        }
    }

    /// `Nano` when `nanoseconds` is true (as the API says it), `Micro` otherwise.
    pub const fn nano_if(nanoseconds: bool) -> Self {
        if nanoseconds {
            Resolution::Nano
        } else {
            Resolution::Micro
        }
    }

    /// The savefile magic number of this resolution.
    pub const fn magic(self) -> u32 {
        match self {
            Resolution::Micro => MAGIC_USEC,
            Resolution::Nano => MAGIC_NSEC,
        }
    }
}

/// The file header's fields that matter to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub link_type: u32,
    pub snaplen: u32,
    pub resolution: Resolution,
}

impl FileHeader {
    /// The 24 bytes that open a savefile.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut h = [0u8; FILE_HEADER_LEN];
        h[0..4].copy_from_slice(&self.resolution.magic().to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&self.snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&self.link_type.to_le_bytes());
        h
    }

    /// Reads a header written by [`FileHeader::encode`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < FILE_HEADER_LEN {
            return Err(Error::Invalid("truncated pcap file header".into()));
        }
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let resolution = match word(0) {
            MAGIC_USEC => Resolution::Micro,
            MAGIC_NSEC => Resolution::Nano,
            other => {
                return Err(Error::Invalid(format!(
                    "not a little-endian pcap file (magic {other:08x}, expected a1b2c3d4 or \
                     a1b23c4d)"
                )))
            }
        };
        Ok(FileHeader {
            snaplen: word(16),
            link_type: word(20),
            resolution,
        })
    }
}

/// A record header: when, how much was kept, how long the packet was. The fraction of the
/// second is in the unit of the file's [`Resolution`], which the header itself does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub ts_sec: u32,
    pub ts_frac: u32,
    pub caplen: u32,
    pub origlen: u32,
}

impl RecordHeader {
    /// A header for a packet seen at `ts_ns` (unix nanoseconds), in a file of `res`.
    pub fn new(res: Resolution, ts_ns: i64, caplen: u32, origlen: u32) -> Self {
        let ts_ns = ts_ns.max(0) as u64;
        RecordHeader {
            ts_sec: (ts_ns / 1_000_000_000) as u32,
            ts_frac: ((ts_ns % 1_000_000_000) / res.ns_per_unit() as u64) as u32,
            caplen,
            origlen,
        }
    }

    /// Unix nanoseconds of the record, read from a file of `res`.
    pub fn ts_ns(&self, res: Resolution) -> i64 {
        self.ts_sec as i64 * 1_000_000_000 + self.ts_frac as i64 * res.ns_per_unit()
    }

    /// The same header in a file of `to`, read from a file of `from` (nanoseconds to
    /// microseconds truncate, as libpcap does).
    pub fn convert(&self, from: Resolution, to: Resolution) -> Self {
        let ts_frac = match (from, to) {
            (Resolution::Nano, Resolution::Micro) => self.ts_frac / 1_000,
            (Resolution::Micro, Resolution::Nano) => self.ts_frac.saturating_mul(1_000),
            _ => self.ts_frac,
        };
        RecordHeader { ts_frac, ..*self }
    }

    /// Appends the 16 header bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The 16 header bytes.
    pub fn to_bytes(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&self.ts_sec.to_le_bytes());
        b[4..8].copy_from_slice(&self.ts_frac.to_le_bytes());
        b[8..12].copy_from_slice(&self.caplen.to_le_bytes());
        b[12..16].copy_from_slice(&self.origlen.to_le_bytes());
        b
    }

    /// Reads 16 header bytes.
    pub fn decode(b: &[u8; RECORD_HEADER_LEN]) -> Self {
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        RecordHeader {
            ts_sec: word(0),
            ts_frac: word(4),
            caplen: word(8),
            origlen: word(12),
        }
    }
}

/// Appends one whole record (header and data) to `out`, for a file of `res`.
pub fn encode_record(out: &mut Vec<u8>, res: Resolution, ts_ns: i64, origlen: u32, data: &[u8]) {
    RecordHeader::new(res, ts_ns, data.len() as u32, origlen).encode_into(out);
    out.extend_from_slice(data);
}

/// Appends the whole records of `records` (from a file of `from`) to `out` in a file of
/// `to`: copied as they are when the resolutions agree, each header converted otherwise.
/// Returns how many records were appended; a trailing partial record is left out.
pub fn convert_records(records: &[u8], from: Resolution, to: Resolution, out: &mut Vec<u8>) -> u64 {
    let mut it = Records::new(records, u32::MAX);
    if from == to {
        let n = it.by_ref().count() as u64;
        out.extend_from_slice(&records[..it.consumed()]);
        return n;
    }
    out.reserve(records.len());
    let mut n = 0;
    for (h, data) in it {
        h.convert(from, to).encode_into(out);
        out.extend_from_slice(data);
        n += 1;
    }
    n
}

/// Converts the times of the whole records at the start of `records` from `from` to `to`
/// where they lie, leaving a trailing partial record alone; returns how many were
/// converted. No copy: for a buffer the caller owns.
pub fn convert_records_in_place(records: &mut [u8], from: Resolution, to: Resolution) -> u64 {
    let mut n = 0;
    let mut pos = 0;
    while let Some(h) = records.get(pos..pos + RECORD_HEADER_LEN) {
        let h = RecordHeader::decode(h.try_into().expect("a record header"));
        let end = pos + RECORD_HEADER_LEN + h.caplen as usize;
        if end > records.len() {
            break;
        }
        if from != to {
            let frac = h.convert(from, to).ts_frac.to_le_bytes();
            records[pos + 4..pos + 8].copy_from_slice(&frac);
        }
        pos = end;
        n += 1;
    }
    n
}

/// Splits a buffer of records into whole records, leaving a trailing partial one alone.
/// `max_caplen` guards against garbage: a record claiming more is reported as corrupt.
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    max_caplen: u32,
}

/// What [`Records`] found where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belonged to a whole record.
    Clean,
    /// The buffer ends inside a record (more may follow in the file).
    Partial,
    /// A record header makes no sense (caplen above the snaplen or above origlen).
    Corrupt,
}

impl<'a> Records<'a> {
    /// Iterates the records in `buf`, which must start at a record boundary.
    pub fn new(buf: &'a [u8], max_caplen: u32) -> Self {
        Records {
            buf,
            pos: 0,
            max_caplen,
        }
    }

    /// Bytes of `buf` consumed by whole records so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Why iteration stopped (or would stop now).
    pub fn tail(&self) -> Tail {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Tail::Clean;
        }
        if rest.len() < RECORD_HEADER_LEN {
            return Tail::Partial;
        }
        let h = RecordHeader::decode(rest[..RECORD_HEADER_LEN].try_into().expect("16 bytes"));
        if h.caplen > self.max_caplen || h.caplen > h.origlen {
            Tail::Corrupt
        } else {
            Tail::Partial
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = (RecordHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.len() < RECORD_HEADER_LEN {
            return None;
        }
        let h = RecordHeader::decode(rest[..RECORD_HEADER_LEN].try_into().expect("16 bytes"));
        if h.caplen > self.max_caplen || h.caplen > h.origlen {
            return None;
        }
        let end = RECORD_HEADER_LEN + h.caplen as usize;
        if rest.len() < end {
            return None;
        }
        self.pos += end;
        Some((h, &rest[RECORD_HEADER_LEN..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_round_trip() {
        let hdr = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: Resolution::Micro,
        };
        assert_eq!(FileHeader::decode(&hdr.encode()).unwrap(), hdr);
        assert_eq!(&hdr.encode()[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);

        let mut buf = Vec::new();
        let us = Resolution::Micro;
        encode_record(&mut buf, us, 1_795_000_000_123_456_789, 60, &[7u8; 60]);
        encode_record(&mut buf, us, 1_795_000_001_000_000_000, 1500, &[9u8; 100]);
        let whole = buf.len();
        buf.extend_from_slice(&[1, 2, 3]); // a partial third record
        let mut it = Records::new(&buf, 262_144);
        let (h1, d1) = it.next().unwrap();
        assert_eq!(h1.ts_ns(us), 1_795_000_000_123_456_000);
        assert_eq!((h1.caplen, h1.origlen, d1.len()), (60, 60, 60));
        let (h2, d2) = it.next().unwrap();
        assert_eq!((h2.caplen, h2.origlen, d2[0]), (100, 1500, 9));
        assert!(it.next().is_none());
        assert_eq!(it.consumed(), whole);
        assert_eq!(it.tail(), Tail::Partial);
    }

    #[test]
    fn garbage_is_reported_corrupt() {
        let mut buf = Vec::new();
        RecordHeader {
            ts_sec: 1,
            ts_frac: 0,
            caplen: 70_000,
            origlen: 70_000,
        }
        .encode_into(&mut buf);
        buf.extend_from_slice(&[0u8; 100]);
        let mut it = Records::new(&buf, 65_536);
        assert!(it.next().is_none());
        assert_eq!(it.tail(), Tail::Corrupt);
    }

    #[test]
    fn nanosecond_files_keep_nanoseconds() {
        let hdr = FileHeader {
            link_type: 276,
            snaplen: 262_144,
            resolution: Resolution::Nano,
        };
        let bytes = hdr.encode();
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(FileHeader::decode(&bytes).unwrap(), hdr);
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            Resolution::Nano,
            1_795_000_000_123_456_789,
            3,
            &[1, 2, 3],
        );
        let (h, _) = Records::new(&buf, 262_144).next().unwrap();
        assert_eq!(h.ts_frac, 123_456_789);
        assert_eq!(h.ts_ns(Resolution::Nano), 1_795_000_000_123_456_789);
        let mut bad = bytes;
        bad[0] = 0;
        let e = FileHeader::decode(&bad).unwrap_err().to_string();
        assert!(e.contains("a1b23c4d"), "{e}");
    }

    #[test]
    fn records_convert_between_resolutions() {
        let mut ns = Vec::new();
        encode_record(
            &mut ns,
            Resolution::Nano,
            1_000_000_001_999_999_999,
            2,
            &[1, 2],
        );
        encode_record(
            &mut ns,
            Resolution::Nano,
            1_000_000_002_000_000_500,
            1,
            &[3],
        );
        let mut us = Vec::new();
        assert_eq!(
            convert_records(&ns, Resolution::Nano, Resolution::Micro, &mut us),
            2
        );
        let got: Vec<_> = Records::new(&us, 10)
            .map(|(h, d)| (h.ts_ns(Resolution::Micro), d.to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                (1_000_000_001_999_999_000, vec![1, 2]),
                (1_000_000_002_000_000_000, vec![3])
            ]
        );
        let mut back = Vec::new();
        convert_records(&us, Resolution::Micro, Resolution::Nano, &mut back);
        let (h, _) = Records::new(&back, 10).next().unwrap();
        assert_eq!(h.ts_frac, 999_999_000);
        let mut same = Vec::new();
        assert_eq!(
            convert_records(&ns, Resolution::Nano, Resolution::Nano, &mut same),
            2
        );
        assert_eq!(same, ns);
        // In place: the same bytes as the copy, a trailing partial record untouched.
        let mut in_place = ns.clone();
        in_place.extend_from_slice(&[9, 9, 9]);
        assert_eq!(
            convert_records_in_place(&mut in_place, Resolution::Nano, Resolution::Micro),
            2
        );
        assert_eq!(&in_place[..us.len()], &us[..]);
        assert_eq!(&in_place[us.len()..], &[9, 9, 9]);
    }
}
