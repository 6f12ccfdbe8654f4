//! What `replay` and `listen` write their packets into: a pcap savefile (microseconds, or
//! nanoseconds with `--nano`), whole batches at a time, or pcapng with an interface block
//! for every interface of every capture, named as the capture names them.

use anyhow::Result;
use pcap_core::domain::{CaptureInfo, Selector};

use crate::merge::Merged;
use crate::output::Flow;
use crate::sources::Batch;
use crate::target::Endpoint;

mod pcap;
mod pcapng;

pub use self::pcap::PcapSink;
pub use self::pcapng::PcapngSink;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Classic pcap savefile (tcpdump's), one capture only
    Pcap,
    /// pcapng: named interfaces, filters, comments, statistics; several captures merged
    Pcapng,
}

/// What is known of one source when the output is made.
pub struct LaneInfo {
    /// As the user named it: `web`, `lab:web`.
    pub label: String,
    pub endpoint: Endpoint,
    pub selector: Selector,
    pub capture_id: u64,
    pub link_type: u32,
    pub snaplen: u32,
    /// From the daemon's list; `None` if it could not be had.
    pub info: Option<CaptureInfo>,
}

/// Where packets go.
pub enum Sink {
    Pcap(PcapSink),
    Pcapng(Box<PcapngSink>),
}

impl Sink {
    /// Writes a batch of one source whole, or its first `limit` packets; returns the
    /// packets and bytes written.
    pub fn batch(
        &mut self,
        lane: usize,
        b: &Batch,
        limit: Option<u64>,
    ) -> Result<(u64, u64, Flow)> {
        match self {
            Sink::Pcap(s) => s.batch(b, limit),
            Sink::Pcapng(s) => s.batch(lane, b, limit),
        }
    }

    /// Writes one packet chosen by a merge; returns the bytes written.
    pub fn packet(&mut self, p: &Merged) -> Result<(u64, Flow)> {
        match self {
            Sink::Pcap(_) => unreachable!("merges are always written as pcapng"),
            Sink::Pcapng(s) => s.packet(p),
        }
    }

    /// Tells that `dropped` packets of `lane` were skipped for this slow reader.
    pub fn gap(&mut self, lane: usize, dropped: u64) {
        if let Sink::Pcapng(s) = self {
            s.gap(lane, dropped);
        }
    }

    /// Tells that `lane` ended before the others: on the next packet written, and in the
    /// statistics of its interfaces.
    pub fn ended(&mut self, lane: usize, why: &str) {
        if let Sink::Pcapng(s) = self {
            s.ended(lane, why);
        }
    }

    /// Hands what is written to the reader.
    pub fn flush(&mut self) -> Result<Flow> {
        match self {
            Sink::Pcap(s) => s.flush(),
            Sink::Pcapng(s) => s.flush(),
        }
    }

    /// Ends the output; pcapng gets the statistics of every interface, with the capture
    /// counters of `infos` (from a list made at the end; `None` where not had).
    pub fn finish(self, infos: Vec<Option<CaptureInfo>>, now_ns: i64) -> Result<Flow> {
        match self {
            Sink::Pcap(s) => s.finish(),
            Sink::Pcapng(s) => s.finish(infos, now_ns),
        }
    }
}

/// shb_os: the kernel's name and release, as `uname -sr` says them.
pub fn os_name() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    format!("{} {}", read("ostype"), read("osrelease"))
        .trim()
        .to_owned()
}

/// This host's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "this host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Destination;
    use crate::pcapng::{Section, LINUX_SLL2};
    use bytes::Bytes;
    use pcap_core::api::v1 as api;
    use pcap_core::domain::Alias;
    use pcap_core::savefile::{self, FileHeader, Records, Resolution};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::time::Instant;

    fn batch(res: Resolution, times: &[i64], data: &[u8]) -> Batch {
        let mut b = Vec::new();
        for t in times {
            savefile::encode_record(&mut b, res, *t, data.len() as u32, data);
        }
        Batch {
            records: Bytes::from(b),
            resolution: res,
            count: times.len() as u32,
            arrived: Instant::now(),
        }
    }

    fn info(id: u64, alias: &str, interfaces: &[&str], names: &[(u32, &str)]) -> CaptureInfo {
        let c = api::Capture {
            id,
            aliases: vec![alias.into()],
            target: Some(api::Target {
                interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            applied_filter: "udp".into(),
            state: api::State::Active.into(),
            interface_names: names.iter().map(|(i, n)| (*i, n.to_string())).collect(),
            counters: Some(api::Counters {
                received: 10,
                dropped_kernel: 2,
                dropped_interface: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        CaptureInfo::try_from(c).unwrap()
    }

    fn lane(endpoint: Endpoint, alias: &str, link_type: u32, info: CaptureInfo) -> LaneInfo {
        LaneInfo {
            label: format!("{}{alias}", endpoint.prefix()),
            endpoint,
            selector: Selector::Alias(Alias::new(alias).unwrap()),
            capture_id: info.id,
            link_type,
            snaplen: 262_144,
            info: Some(info),
        }
    }

    #[test]
    fn pcap_output_is_in_the_unit_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pcap");
        let local = Endpoint::Unix("/s".into());
        let l = lane(local, "web", 1, info(1, "web", &["lo"], &[]));
        let out = Destination::File(path.clone()).open().unwrap();
        let mut sink = Sink::Pcap(
            PcapSink::start(out, &l, Resolution::Micro)
                .unwrap()
                .unwrap(),
        );
        let ns = batch(
            Resolution::Nano,
            &[1_000_000_000_123_456_789, 2, 3],
            &[7; 4],
        );
        let (n, _, _) = sink.batch(0, &ns, Some(2)).unwrap();
        assert_eq!(n, 2, "the limit holds within a batch");
        let us = batch(Resolution::Micro, &[5_000], &[8; 4]);
        sink.batch(0, &us, None).unwrap();
        sink.finish(Vec::new(), 0).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = FileHeader::decode(&bytes).unwrap();
        assert_eq!(header.resolution, Resolution::Micro);
        let times: Vec<i64> = Records::new(&bytes[savefile::FILE_HEADER_LEN..], 100)
            .map(|(h, _)| h.ts_ns(Resolution::Micro))
            .collect();
        assert_eq!(times, [1_000_000_000_123_456_000, 0, 5_000]);
    }

    #[test]
    fn pcapng_interfaces_are_named_per_source_and_end_with_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pcapng");
        let local = Endpoint::Unix("/s".into());
        let lab = Endpoint::Remote(crate::remotes::sample_lab());
        let lanes = [
            lane(local, "web", 1, info(1, "web", &["lo"], &[])),
            lane(
                lab,
                "db",
                LINUX_SLL2,
                info(4, "db", &["eth0", "eth1"], &[(2, "eth0"), (3, "eth1")]),
            ),
        ];
        let (out, name) = Destination::File(path.clone()).open_buffered().unwrap();
        let section = Section::default();
        let sink = PcapngSink::start(out, name, &section, &lanes)
            .unwrap()
            .unwrap();
        let mut sink = Sink::Pcapng(Box::new(sink));
        let sll2 = |index: u32| {
            let mut b = vec![8, 0, 0, 0];
            b.extend_from_slice(&index.to_be_bytes());
            b.extend_from_slice(&[0, 1, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
            b
        };
        sink.gap(0, 5);
        sink.batch(0, &batch(Resolution::Nano, &[10], &[1; 20]), None)
            .unwrap();
        let merged = |lane, ts_ns, data: Vec<u8>| Merged {
            lane,
            ts_ns,
            origlen: data.len() as u32,
            data: Bytes::from(data),
        };
        sink.packet(&merged(1, 20, sll2(3))).unwrap();
        sink.ended(1, "the connection was lost");
        sink.packet(&merged(0, 30, vec![2; 20])).unwrap();
        sink.packet(&merged(1, 40, sll2(9))).unwrap();
        let infos = vec![None, Some(info(4, "db", &[], &[]))];
        sink.finish(infos, 99).unwrap();

        let bytes = std::fs::read(&path).unwrap();
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let (mut names, mut packets, mut stats) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(b) = reader.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => {
                    names.extend(i.options.iter().filter_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    }))
                }
                Block::EnhancedPacket(p) => {
                    let comment = p.options.iter().find_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    });
                    packets.push((p.interface_id, p.timestamp.as_nanos(), comment));
                }
                Block::InterfaceStatistics(s) => {
                    let recv = s.options.iter().find_map(|o| match o {
                        InterfaceStatisticsOption::IsbIfRecv(n) => Some(*n),
                        _ => None,
                    });
                    stats.push((s.interface_id, recv));
                }
                _ => {}
            }
        }
        // A local capture alone would be `lo`: merged, each is named after its capture.
        assert_eq!(
            names,
            ["web/lo", "lab/db/eth0", "lab/db/eth1", "lab/db/ifindex 9"]
        );
        let gap = "5 packets skipped: this reader fell behind".to_owned();
        let ended = "lab:db ended: the connection was lost".to_owned();
        assert_eq!(
            packets,
            [
                (0, 10, Some(gap)),
                (2, 20, None),
                (0, 30, Some(ended)),
                (3, 40, None)
            ]
        );
        // The counters of the local capture were not had; the remote's once, on its first.
        assert_eq!(stats, [(0, None), (1, Some(10)), (2, None), (3, None)]);
    }
}
