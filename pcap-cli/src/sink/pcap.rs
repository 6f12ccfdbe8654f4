//! The pcap savefile sink: one capture's records, whole batches at a time.

use anyhow::Result;
use pcap_core::savefile::{self, FileHeader, Records, Resolution};

use super::LaneInfo;
use crate::output::{Flow, PcapWriter};
use crate::sources::Batch;

/// A pcap savefile: records go out as they came when their unit is the file's, each
/// header converted otherwise.
pub struct PcapSink {
    out: PcapWriter,
    resolution: Resolution,
    scratch: Vec<u8>,
}

impl PcapSink {
    /// Writes the file header; `None` when the reader is gone already.
    pub fn start(
        mut out: PcapWriter,
        lane: &LaneInfo,
        resolution: Resolution,
    ) -> Result<Option<Self>> {
        let header = FileHeader {
            link_type: lane.link_type,
            snaplen: lane.snaplen,
            resolution,
        };
        if out.header(header)? == Flow::ReaderGone {
            return Ok(None);
        }
        Ok(Some(PcapSink {
            out,
            resolution,
            scratch: Vec::new(),
        }))
    }

    pub(super) fn batch(&mut self, b: &Batch, limit: Option<u64>) -> Result<(u64, u64, Flow)> {
        let mut records = &b.records[..];
        let mut count = u64::from(b.count);
        if let Some(n) = limit.filter(|n| *n < count) {
            let mut it = Records::new(records, u32::MAX);
            it.by_ref().take(n as usize).for_each(drop);
            records = &records[..it.consumed()];
            count = n;
        }
        let bytes = if b.resolution == self.resolution {
            records
        } else {
            self.scratch.clear();
            savefile::convert_records(records, b.resolution, self.resolution, &mut self.scratch);
            &self.scratch[..]
        };
        let flow = self.out.records(bytes)?;
        Ok((count, bytes.len() as u64, flow))
    }

    pub(super) fn flush(&mut self) -> Result<Flow> {
        self.out.records(&[])
    }

    pub(super) fn finish(self) -> Result<Flow> {
        self.out.finish()
    }
}
