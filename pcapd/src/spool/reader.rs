//! Reads a spool's segments back while the capture may still be writing it: the open
//! segment can be closed (renamed) and old segments deleted by retention between listing
//! the directory and reading a file. Records come out as read from disk, in large shared
//! chunks; which of them a reader wants is not decided here.

use std::fs::File;
use std::ops::{ControlFlow, Range};
use std::path::Path;

use bytes::Bytes;
use pcap_core::savefile::{FileHeader, Resolution, FILE_HEADER_LEN};
use pcap_core::segment::{self, SegmentName};

use crate::{Error, Result};

/// Bytes read from a segment at a time.
const READ_BLOCK: usize = 256 << 10;

/// Calls `visit` with the whole records of segment `name` in the spool `dir`, and the unit
/// of their times (older segments are in microseconds, newer ones in nanoseconds), in chunks of
/// about [`READ_BLOCK`] bytes, until the records end or `visit` breaks. A segment that was
/// open when listed and closed since is read under its new name; one deleted by retention
/// meanwhile has nothing left to read.
pub fn read_segment(
    dir: &Path,
    name: SegmentName,
    visit: impl FnMut(Resolution, Bytes) -> ControlFlow<()>,
) -> Result<()> {
    let whole = FILE_HEADER_LEN as u64..u64::MAX;
    read_segment_range(dir, name, whole, visit)
}

/// [`read_segment`] for the records within `range` (byte offsets of the file, from a
/// record's start to another's or past the end).
pub fn read_segment_range(
    dir: &Path,
    name: SegmentName,
    range: Range<u64>,
    mut visit: impl FnMut(Resolution, Bytes) -> ControlFlow<()>,
) -> Result<()> {
    let mut visit = |h: &FileHeader, b| visit(h.resolution, b);
    let mut read_at = |path: &Path| {
        let file = File::open(path).map_err(|e| pcap_core::Error::io(path, e))?;
        segment::for_each_chunk_in(file, path, range.clone(), READ_BLOCK, &mut visit)
    };
    let first = read_at(&dir.join(name.file_name()));
    let read = match first {
        Err(pcap_core::Error::Io { source, .. }) if is_gone(&source) && name.open => {
            read_at(&segment::closed_path(dir, name.first_seq))
        }
        other => other,
    };
    match read {
        Ok(_) => Ok(()),
        Err(pcap_core::Error::Io { source, .. }) if is_gone(&source) => Ok(()),
        Err(e) => Err(Error::from(e)),
    }
}

fn is_gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::savefile::{encode_record, Records};

    fn write(dir: &Path, name: SegmentName, packets: u8) {
        let mut b = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: Resolution::Micro,
        }
        .encode()
        .to_vec();
        for i in 0..packets {
            encode_record(&mut b, Resolution::Micro, i64::from(i), 10, &[i; 10]);
        }
        std::fs::write(dir.join(name.file_name()), b).unwrap();
    }

    fn records_of(dir: &Path, name: SegmentName) -> usize {
        let mut n = 0;
        read_segment(dir, name, |res, chunk| {
            assert_eq!(res, Resolution::Micro);
            n += Records::new(&chunk, u32::MAX).count();
            ControlFlow::Continue(())
        })
        .unwrap();
        n
    }

    #[test]
    fn a_segment_closed_since_it_was_listed_is_read_under_its_new_name() {
        let tmp = tempfile::tempdir().unwrap();
        let open = SegmentName {
            first_seq: 5,
            open: true,
        };
        write(tmp.path(), open, 3);
        std::fs::rename(
            tmp.path().join(open.file_name()),
            segment::closed_path(tmp.path(), 5),
        )
        .unwrap();
        assert_eq!(records_of(tmp.path(), open), 3);
    }

    #[test]
    fn a_segment_deleted_since_it_was_listed_has_nothing_to_read() {
        let tmp = tempfile::tempdir().unwrap();
        let closed = SegmentName {
            first_seq: 1,
            open: false,
        };
        assert_eq!(records_of(tmp.path(), closed), 0);
        write(tmp.path(), closed, 4);
        assert_eq!(records_of(tmp.path(), closed), 4);
    }
}
