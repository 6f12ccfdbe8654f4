//! What `replay` and `listen` write their packets into: a pcap savefile (microseconds, or
//! nanoseconds with `--nano`), whole batches at a time, or pcapng with an interface block
//! for every interface of every capture, named as the capture names them.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use anyhow::Result;
use pcap_core::domain::{CaptureInfo, Selector};
use pcap_core::savefile::{self, FileHeader, Records, Resolution};

use crate::merge::Merged;
use crate::output::{Flow, PcapWriter};
use crate::pcapng::{self, Interface, PcapngWriter, Section, Statistics, LINUX_SLL2};
use crate::sources::Batch;
use crate::target::Endpoint;

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
            let text = format!("{dropped} packets skipped: this reader fell behind");
            let c = &mut s.lanes[lane].comment;
            *c = Some(match c.take() {
                Some(before) => format!("{before}; {text}"),
                None => text,
            });
        }
    }

    /// Tells that `lane` ended before the others: on the next packet written, and in the
    /// statistics of its interfaces.
    pub fn ended(&mut self, lane: usize, why: &str) {
        if let Sink::Pcapng(s) = self {
            let text = format!("{} ended: {why}", s.lanes[lane].label);
            s.notes.push(text.clone());
            s.lanes[lane].ended = Some(text);
        }
    }

    /// Hands what is written to the reader.
    pub fn flush(&mut self) -> Result<Flow> {
        match self {
            Sink::Pcap(s) => s.out.records(&[]),
            Sink::Pcapng(s) => s.out.flush(),
        }
    }

    /// Ends the output; pcapng gets the statistics of every interface, with the capture
    /// counters of `infos` (from a list made at the end; `None` where not had).
    pub fn finish(self, infos: Vec<Option<CaptureInfo>>, now_ns: i64) -> Result<Flow> {
        match self {
            Sink::Pcap(s) => s.out.finish(),
            Sink::Pcapng(s) => s.finish(infos, now_ns),
        }
    }
}

// === impl PcapSink ===

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

    fn batch(&mut self, b: &Batch, limit: Option<u64>) -> Result<(u64, u64, Flow)> {
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
}

// === impl PcapngSink ===

/// pcapng, with the interfaces of every source.
pub struct PcapngSink {
    out: PcapngWriter<Box<dyn Write>>,
    lanes: Vec<NgLane>,
    /// Said on the next packet, whichever source it comes from.
    notes: Vec<String>,
}

/// One source's interfaces in the output.
struct NgLane {
    label: String,
    link_type: u32,
    snaplen: u32,
    /// `lab/web/` before interface names, or nothing.
    prefix: String,
    description: String,
    filter: String,
    /// SLL2 interface index -> name, from the capture.
    names: BTreeMap<u32, String>,
    /// The interface of a source that is one interface.
    single: Option<u32>,
    /// SLL2 interface index -> interface number in the output.
    by_index: BTreeMap<u32, u32>,
    /// Interface number -> first and last packet time written.
    seen: BTreeMap<u32, (i64, i64)>,
    /// Said on this source's next packet.
    comment: Option<String>,
    /// Why the source ended early, if it did.
    ended: Option<String>,
    started_ns: i64,
}

impl PcapngSink {
    /// Writes the section header and the interface blocks known from the start; `None`
    /// when the reader is gone already.
    pub fn start(
        out: BufWriter<Box<dyn Write>>,
        name: String,
        section: &Section,
        lanes: &[LaneInfo],
    ) -> Result<Option<Self>> {
        let Some(out) = PcapngWriter::new(out, name, section)? else {
            return Ok(None);
        };
        let merging = lanes.len() > 1;
        let mut sink = PcapngSink {
            out,
            lanes: lanes.iter().map(|l| NgLane::new(l, merging)).collect(),
            notes: Vec::new(),
        };
        for (i, lane) in lanes.iter().enumerate() {
            if lane.link_type == LINUX_SLL2 {
                let names = lane.info.as_ref().map(|c| &c.interface_names);
                for index in names.into_iter().flat_map(|n| n.keys()) {
                    if sink.interface_of_index(i, *index)?.1 == Flow::ReaderGone {
                        return Ok(None);
                    }
                }
            } else {
                let l = &sink.lanes[i];
                let name = format!("{}{}", l.prefix, single_name(lane));
                let (id, flow) = sink.out.interface(&l.interface(name))?;
                if flow == Flow::ReaderGone {
                    return Ok(None);
                }
                sink.lanes[i].single = Some(id);
            }
        }
        Ok(Some(sink))
    }

    fn batch(&mut self, lane: usize, b: &Batch, limit: Option<u64>) -> Result<(u64, u64, Flow)> {
        let before = self.out.packet_bytes();
        let mut count = 0u64;
        for (h, data) in Records::new(&b.records, u32::MAX) {
            if limit.is_some_and(|n| count >= n) {
                break;
            }
            count += 1;
            let ts_ns = h.ts_ns(b.resolution);
            if self.write(lane, ts_ns, h.origlen, data)? == Flow::ReaderGone {
                return Ok((count, 0, Flow::ReaderGone));
            }
        }
        Ok((count, self.out.packet_bytes() - before, Flow::Continue))
    }

    fn packet(&mut self, p: &Merged) -> Result<(u64, Flow)> {
        let before = self.out.packet_bytes();
        let flow = self.write(p.lane, p.ts_ns, p.origlen, &p.data)?;
        Ok((self.out.packet_bytes() - before, flow))
    }

    fn write(&mut self, lane: usize, ts_ns: i64, origlen: u32, data: &[u8]) -> Result<Flow> {
        let interface = match self.lanes[lane].single {
            Some(id) => id,
            None => {
                // An SLL2 header too short for an index: the record is written on
                // "index 0" rather than dropped.
                let index = pcapng::sll2_interface(data).unwrap_or(0);
                let (id, flow) = self.interface_of_index(lane, index)?;
                if flow == Flow::ReaderGone {
                    return Ok(flow);
                }
                id
            }
        };
        let l = &mut self.lanes[lane];
        let seen = l.seen.entry(interface).or_insert((ts_ns, ts_ns));
        seen.0 = seen.0.min(ts_ns);
        seen.1 = seen.1.max(ts_ns);
        let mut comment = l.comment.take();
        if !self.notes.is_empty() {
            let notes = std::mem::take(&mut self.notes).join("; ");
            comment = Some(match comment {
                Some(c) => format!("{c}; {notes}"),
                None => notes,
            });
        }
        let packet = pcapng::Packet {
            interface,
            ts_ns,
            origlen,
            data,
        };
        self.out.packet(packet, comment.as_deref())
    }

    /// The output interface of SLL2 interface `index` of `lane`, made when first needed.
    fn interface_of_index(&mut self, lane: usize, index: u32) -> Result<(u32, Flow)> {
        if let Some(id) = self.lanes[lane].by_index.get(&index) {
            return Ok((*id, Flow::Continue));
        }
        let l = &self.lanes[lane];
        let name = match l.names.get(&index) {
            Some(n) => format!("{}{n}", l.prefix),
            None => format!("{}ifindex {index}", l.prefix),
        };
        let (id, flow) = self.out.interface(&l.interface(name))?;
        self.lanes[lane].by_index.insert(index, id);
        Ok((id, flow))
    }

    fn finish(mut self, infos: Vec<Option<CaptureInfo>>, now_ns: i64) -> Result<Flow> {
        for (lane, info) in infos.into_iter().enumerate() {
            let l = &self.lanes[lane];
            let ids: Vec<u32> = l
                .single
                .into_iter()
                .chain(l.by_index.values().copied())
                .collect();
            let several = ids.len() > 1;
            for (n, id) in ids.iter().enumerate() {
                let (start, end) = l.seen.get(id).copied().unwrap_or((l.started_ns, now_ns));
                let mut comments = Vec::new();
                let mut stats = Statistics {
                    start_ns: start,
                    end_ns: end,
                    ..Default::default()
                };
                match &info {
                    // The counters are the capture's, not an interface's: on its first
                    // interface only, so that adding them up counts them once.
                    Some(c) if n == 0 => {
                        stats.received = Some(c.counters.received);
                        stats.dropped =
                            Some(c.counters.dropped_kernel + c.counters.dropped_interface);
                        comments.push(format!(
                            "received and dropped count capture {} since it was created{}",
                            c.id,
                            if several {
                                format!(", all {} of its interfaces", ids.len())
                            } else {
                                String::new()
                            }
                        ));
                    }
                    Some(c) => comments.push(format!(
                        "received and dropped of capture {} (all its interfaces) are on its \
                         first interface",
                        c.id
                    )),
                    None => {}
                }
                if let Some(e) = &l.ended {
                    comments.push(e.clone());
                }
                stats.comment = (!comments.is_empty()).then(|| comments.join("; "));
                if self.out.statistics(*id, &stats)? == Flow::ReaderGone {
                    return Ok(Flow::ReaderGone);
                }
            }
        }
        self.out.flush()
    }
}

impl NgLane {
    fn new(l: &LaneInfo, merging: bool) -> Self {
        let remote = match &l.endpoint {
            Endpoint::Remote(r) => Some(r.name.clone()),
            Endpoint::Unix(_) => None,
        };
        let in_netns = l.info.as_ref().is_some_and(|c| c.target.netns.is_some());
        let capture = capture_name(&l.selector, l.info.as_ref(), l.capture_id);
        let mut prefix = String::new();
        if let Some(r) = &remote {
            prefix.push_str(r);
            prefix.push('/');
        }
        if remote.is_some() || in_netns || merging {
            prefix.push_str(&capture);
            prefix.push('/');
        }
        let description = match &l.info {
            Some(c) => format!("{}: capture {} on {}", l.label, c.id, c.target),
            None => format!("{}: capture {}", l.label, l.capture_id),
        };
        let filter = l
            .info
            .as_ref()
            .map(|c| match c.applied_filter.as_str() {
                "" => c.filter.clone(),
                applied => applied.to_owned(),
            })
            .unwrap_or_default();
        NgLane {
            label: l.label.clone(),
            link_type: l.link_type,
            snaplen: l.snaplen,
            prefix,
            description,
            filter,
            single: None,
            by_index: BTreeMap::new(),
            seen: BTreeMap::new(),
            comment: None,
            ended: None,
            started_ns: l.info.as_ref().map(|c| c.started_unix_ns).unwrap_or(0),
            names: l
                .info
                .as_ref()
                .map(|c| c.interface_names.clone())
                .unwrap_or_default(),
        }
    }

    fn interface(&self, name: String) -> Interface {
        Interface {
            name,
            description: self.description.clone(),
            filter: self.filter.clone(),
            link_type: self.link_type,
            snaplen: self.snaplen,
        }
    }
}

/// The capture as interface names show it: the alias it was named by, else its first
/// alias, else its id.
fn capture_name(selector: &Selector, info: Option<&CaptureInfo>, id: u64) -> String {
    match (selector, info.and_then(|c| c.aliases.first())) {
        (Selector::Alias(a), _) => a.to_string(),
        (_, Some(a)) => a.to_string(),
        _ => id.to_string(),
    }
}

/// The interface of a capture that is not recorded as SLL2: its one interface, or `any`.
fn single_name(l: &LaneInfo) -> String {
    match l.info.as_ref().and_then(|c| c.target.single_interface()) {
        Some(name) => name.to_owned(),
        None if l.info.as_ref().is_some_and(|c| c.target.netns.is_some()) => "all".to_owned(),
        None => "any".to_owned(),
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
    use bytes::Bytes;
    use pcap_core::api::v1 as api;
    use pcap_core::domain::Alias;
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
