//! Reading captures back: whole files with libpcap itself (so that a file libpcap rejects
//! fails the run), and a savefile stream from a pipe, record by record, as it arrives.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Records in savefiles, split by whether the Ethernet source is the sender's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Records sent by the benchmark.
    pub ours: u64,
    /// Any other record (there should be none).
    pub other: u64,
}

/// Counts the records of the savefiles at `paths` with libpcap.
pub fn count_records(paths: &[PathBuf], src_mac: &[u8; 6]) -> Result<Count> {
    let mut count = Count::default();
    for path in paths {
        let mut cap = pcap::Capture::from_file(path)
            .with_context(|| format!("libpcap cannot open {}", path.display()))?;
        loop {
            match cap.next_packet() {
                Ok(p) if p.data.get(6..12) == Some(&src_mac[..]) => count.ours += 1,
                Ok(_) => count.other += 1,
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => bail!("libpcap cannot read {}: {e}", path.display()),
            }
        }
    }
    Ok(count)
}

/// The segment files of a capture's spool directory, in order (their names are the
/// sequence number of their first packet, zero-padded).
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read spool directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".pcap") || name.ends_with(".pcap.part")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Total size of `paths` in bytes.
pub fn total_bytes(paths: &[PathBuf]) -> Result<u64> {
    paths.iter().try_fold(0u64, |acc, p| {
        Ok(acc
            + std::fs::metadata(p)
                .with_context(|| format!("stat {}", p.display()))?
                .len())
    })
}

/// A savefile arriving in pieces: feed it bytes, take out whole records.
#[derive(Debug, Default)]
pub struct RecordStream {
    buf: Vec<u8>,
    header_seen: bool,
    swapped: bool,
}

impl RecordStream {
    /// Appends bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether the 24-byte file header has arrived.
    pub fn has_header(&mut self) -> Result<bool> {
        if !self.header_seen && self.buf.len() >= 24 {
            let magic = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            self.swapped = match magic {
                0xa1b2_c3d4 | 0xa1b2_3c4d => false,
                0xd4c3_b2a1 | 0x4d3c_b2a1 => true,
                other => bail!("not a pcap savefile: magic {other:08x}"),
            };
            self.buf.drain(..24);
            self.header_seen = true;
        }
        Ok(self.header_seen)
    }

    /// The data of the next whole record, if one has arrived.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        if !self.has_header()? || self.buf.len() < 16 {
            return Ok(None);
        }
        let field = [self.buf[8], self.buf[9], self.buf[10], self.buf[11]];
        let caplen = if self.swapped {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        } as usize;
        if caplen > 1 << 20 {
            bail!("record of {caplen} bytes: the stream is corrupt");
        }
        if self.buf.len() < 16 + caplen {
            return Ok(None);
        }
        let data = self.buf[16..16 + caplen].to_vec();
        self.buf.drain(..16 + caplen);
        Ok(Some(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 8];
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn records_come_out_whole_however_the_bytes_arrive() {
        let mut all = crate::packets::savefile_header().to_vec();
        all.extend(record(b"first"));
        all.extend(record(b""));
        all.extend(record(b"third record"));
        for step in [1, 3, 7, 16, 1000] {
            let mut s = RecordStream::default();
            let mut got = Vec::new();
            for chunk in all.chunks(step) {
                s.feed(chunk);
                while let Some(r) = s.next_record().unwrap() {
                    got.push(r);
                }
            }
            assert_eq!(
                got,
                [b"first".to_vec(), Vec::new(), b"third record".to_vec()],
                "step {step}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_savefile() {
        let mut s = RecordStream::default();
        s.feed(&[0u8; 24]);
        assert!(s.has_header().is_err());
    }
}
