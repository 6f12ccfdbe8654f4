//! The pcapng sink: a section for the whole output, an interface block for every interface
//! of every source (named `capture/interface`, or `remote/capture/interface` in a merge),
//! comments for gaps and ended sources, statistics at the end.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use anyhow::Result;
use pcap_core::domain::{CaptureInfo, Selector};
use pcap_core::savefile::Records;

use super::LaneInfo;
use crate::merge::Merged;
use crate::output::Flow;
use crate::pcapng::{self, Interface, PcapngWriter, Section, Statistics, LINUX_SLL2};
use crate::sources::Batch;
use crate::target::Endpoint;

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

    pub(super) fn batch(
        &mut self,
        lane: usize,
        b: &Batch,
        limit: Option<u64>,
    ) -> Result<(u64, u64, Flow)> {
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

    /// Tells that `dropped` packets of `lane` were skipped for this slow reader: in a
    /// comment on its next packet.
    pub(super) fn gap(&mut self, lane: usize, dropped: u64) {
        let text = format!("{dropped} packets skipped: this reader fell behind");
        let c = &mut self.lanes[lane].comment;
        *c = Some(match c.take() {
            Some(before) => format!("{before}; {text}"),
            None => text,
        });
    }

    /// Tells that `lane` ended before the others.
    pub(super) fn ended(&mut self, lane: usize, why: &str) {
        let text = format!("{} ended: {why}", self.lanes[lane].label);
        self.notes.push(text.clone());
        self.lanes[lane].ended = Some(text);
    }

    pub(super) fn flush(&mut self) -> Result<Flow> {
        self.out.flush()
    }

    pub(super) fn packet(&mut self, p: &Merged) -> Result<(u64, Flow)> {
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

    pub(super) fn finish(mut self, infos: Vec<Option<CaptureInfo>>, now_ns: i64) -> Result<Flow> {
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
