//! The spool: per capture, a directory of pcap segment files with bounded retention.
//! The capture thread writes it ([`writer::Spool`]); replays read it ([`reader`]).

pub mod catalog;
pub mod closer;
pub mod disk;
pub mod reader;
pub mod retention;
pub mod writer;

use std::path::{Path, PathBuf};

use pcap_core::domain::CaptureId;
use pcap_core::segment::SegmentName;

use crate::{Error, Result};

/// The spool directory of capture `id` under the daemon's data directory.
pub fn capture_dir(data_dir: &Path, id: CaptureId) -> PathBuf {
    data_dir.join("captures").join(id.to_string())
}

/// The segment files in `dir`, in sequence order. A missing directory holds none.
pub fn list_segments(dir: &Path) -> Result<Vec<(SegmentName, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if let Some(seg) = name.to_str().and_then(SegmentName::parse) {
            out.push((seg, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}
