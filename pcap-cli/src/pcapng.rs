//! pcapng output (`--format pcapng`, and every merge of several captures): a section header
//! naming the host, the captures and the program, one interface block per interface with
//! its name, description, filter and nanosecond resolution, enhanced packet blocks with
//! direction flags where the link type tells them, and interface statistics at the end.
//! Blocks are written with pcap-file; what it cannot say right is said here.

use std::io::{self, BufWriter, Write};

use anyhow::{Context as _, Result};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};

use crate::output::Flow;

/// DLT_LINUX_SLL: its header says the packet's direction.
pub const LINUX_SLL: u32 = 113;
/// DLT_LINUX_SLL2: its header says the interface (by index) and the direction.
pub const LINUX_SLL2: u32 = 276;

/// What the section header says about where the packets come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// shb_os: the system `pcap` runs on.
    pub os: String,
    /// shb_userappl: "pcapd X.Y.Z" of the daemon (or of this pcap).
    pub application: String,
    /// A comment naming the host, the captures and their aliases.
    pub comment: String,
}

/// One interface block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// if_name: `eth0`, or `lab/web/eth0` for a remote or container source.
    pub name: String,
    /// if_description: the capture's alias and target.
    pub description: String,
    /// if_filter: the filter applied in the kernel (empty: none).
    pub filter: String,
    pub link_type: u32,
    pub snaplen: u32,
}

/// What an interface statistics block says; times are unix nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    pub start_ns: i64,
    pub end_ns: i64,
    /// isb_ifrecv: packets received.
    pub received: Option<u64>,
    /// isb_ifdrop: packets dropped by the kernel or the interface.
    pub dropped: Option<u64>,
    pub comment: Option<String>,
}

/// A packet as an enhanced packet block takes it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub interface: u32,
    pub ts_ns: i64,
    pub origlen: u32,
    pub data: &'a [u8],
}

/// Writes one pcapng section to a buffered output; the caller flushes it batch by batch.
pub struct PcapngWriter<W: Write> {
    out: PcapNgWriter<BufWriter<W>>,
    name: String,
    /// Bytes of packet blocks written.
    packet_bytes: u64,
}

impl<W: Write> PcapngWriter<W> {
    /// Starts the section on `out` (named `name` in messages) with its header block;
    /// `None` when the reader is gone already.
    pub fn new(out: BufWriter<W>, name: String, section: &Section) -> Result<Option<Self>> {
        let mut options = vec![
            SectionHeaderOption::OS(section.os.clone().into()),
            SectionHeaderOption::UserApplication(section.application.clone().into()),
        ];
        if !section.comment.is_empty() {
            options.push(SectionHeaderOption::Comment(section.comment.clone().into()));
        }
        let shb = SectionHeaderBlock {
            endianness: Endianness::Little,
            options,
            ..Default::default()
        };
        match PcapNgWriter::with_section_header(out, shb) {
            Ok(out) => Ok(Some(PcapngWriter {
                out,
                name,
                packet_bytes: 0,
            })),
            // A reader gone is a quiet end; anything else is an error.
            Err(e) => check(&name, Err(e)).map(|_| None),
        }
    }

    /// Adds an interface block; returns the interface's number for its packets.
    pub fn interface(&mut self, i: &Interface) -> Result<(u32, Flow)> {
        let mut options = vec![
            InterfaceDescriptionOption::IfName(i.name.clone().into()),
            InterfaceDescriptionOption::IfDescription(i.description.clone().into()),
            // Times are nanoseconds: 10^-9.
            InterfaceDescriptionOption::IfTsResol(9),
        ];
        if !i.filter.is_empty() {
            // The first byte says what follows: 0 is a libpcap filter string.
            let mut filter = vec![0u8];
            filter.extend_from_slice(i.filter.as_bytes());
            options.push(InterfaceDescriptionOption::IfFilter(filter.into()));
        }
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::from(i.link_type),
            snaplen: i.snaplen,
            options,
        };
        let id = self.out.interfaces().len() as u32;
        let written = self.out.write_pcapng_block(idb).map(drop);
        Ok((id, check(&self.name, written)?))
    }

    /// Adds a packet, with its direction flags and a comment when given.
    pub fn packet(&mut self, p: Packet<'_>, comment: Option<&str>) -> Result<Flow> {
        let link_type = self.link_type(p.interface);
        let mut options = Vec::new();
        if let Some(flags) = link_type.and_then(|l| flags(l, p.data)) {
            options.push(EnhancedPacketOption::Flags(flags));
        }
        if let Some(c) = comment {
            options.push(EnhancedPacketOption::Comment(c.into()));
        }
        let epb = EnhancedPacketBlock {
            interface_id: p.interface,
            timestamp: std::time::Duration::from_nanos(p.ts_ns.max(0) as u64),
            original_len: p.origlen,
            data: p.data.into(),
            options,
        };
        let written = self.out.write_pcapng_block(epb).map(|n| {
            self.packet_bytes += n as u64;
        });
        check(&self.name, written)
    }

    /// Bytes of packet blocks written so far.
    pub fn packet_bytes(&self) -> u64 {
        self.packet_bytes
    }

    /// Adds the statistics of an interface, at the end.
    pub fn statistics(&mut self, interface: u32, s: &Statistics) -> Result<Flow> {
        let mut options = vec![
            InterfaceStatisticsOption::IsbStartTime(timestamp_words(s.start_ns)),
            InterfaceStatisticsOption::IsbEndTime(timestamp_words(s.end_ns)),
        ];
        if let Some(n) = s.received {
            options.push(InterfaceStatisticsOption::IsbIfRecv(n));
        }
        if let Some(n) = s.dropped {
            options.push(InterfaceStatisticsOption::IsbIfDrop(n));
        }
        if let Some(c) = &s.comment {
            options.push(InterfaceStatisticsOption::Comment(c.clone().into()));
        }
        let isb = InterfaceStatisticsBlock {
            interface_id: interface,
            timestamp: timestamp_words(s.end_ns),
            options,
        };
        let written = self.out.write_pcapng_block(isb).map(drop);
        check(&self.name, written)
    }

    /// Hands what is buffered to the reader.
    pub fn flush(&mut self) -> Result<Flow> {
        let flushed = self.out.get_mut().flush().map_err(PcapError::IoError);
        check(&self.name, flushed)
    }

    fn link_type(&self, interface: u32) -> Option<u32> {
        self.out
            .interfaces()
            .get(interface as usize)
            .map(|i| u32::from(i.linktype))
    }
}

/// A 64-bit pcapng timestamp as pcap-file writes it: it writes the value as one u64 in the
/// section's byte order, while pcapng keeps the high 32 bits first, each half in that
/// order. In a little-endian section the halves are swapped first, so they land right.
fn timestamp_words(ns: i64) -> u64 {
    let ns = ns.max(0) as u64;
    ns.rotate_left(32)
}

/// `Continue` for a write that went through, `ReaderGone` for a closed pipe; other
/// failures are errors naming the output.
fn check(name: &str, r: std::result::Result<(), PcapError>) -> Result<Flow> {
    match r {
        Ok(()) => Ok(Flow::Continue),
        Err(PcapError::IoError(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::ReaderGone),
        Err(e) => Err(e).with_context(|| format!("cannot write to {name}")),
    }
}

/// The interface index an SLL2 packet header carries.
pub fn sll2_interface(data: &[u8]) -> Option<u32> {
    data.get(4..8)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}

/// linux/if_packet.h: the kinds of packet an SLL header tells; all but OUTGOING came in.
const PACKET_HOST: u16 = 0;
const PACKET_BROADCAST: u16 = 1;
const PACKET_MULTICAST: u16 = 2;
const PACKET_OTHERHOST: u16 = 3;
const PACKET_OUTGOING: u16 = 4;

fn packet_type(link_type: u32, data: &[u8]) -> Option<u16> {
    match link_type {
        LINUX_SLL => data.get(0..2).map(|b| u16::from_be_bytes([b[0], b[1]])),
        LINUX_SLL2 => data.get(10).map(|b| u16::from(*b)),
        _ => None,
    }
}

/// epb_flags: direction in bits 0-1 (1 inbound, 2 outbound), and how an inbound packet
/// was addressed in bits 2-4 (1 unicast, 2 multicast, 3 broadcast, 4 promiscuous).
fn flags(link_type: u32, data: &[u8]) -> Option<u32> {
    let reception = match packet_type(link_type, data)? {
        PACKET_OUTGOING => return Some(2),
        PACKET_HOST => 1,
        PACKET_MULTICAST => 2,
        PACKET_BROADCAST => 3,
        PACKET_OTHERHOST => 4,
        _ => 0,
    };
    Some(1 | reception << 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    /// An SLL2 header for interface `index` of packet type `kind`, then `payload`.
    fn sll2(index: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x08, 0x00, 0, 0];
        b.extend_from_slice(&index.to_be_bytes());
        b.extend_from_slice(&[0, 1, kind, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
        b.extend_from_slice(payload);
        b
    }

    fn written(f: impl FnOnce(&mut PcapngWriter<&mut Vec<u8>>)) -> Vec<u8> {
        let mut bytes = Vec::new();
        let section = Section {
            os: "Linux 6.1".into(),
            application: "pcapd 1.2.3".into(),
            comment: "host lab1; capture 3 (web)".into(),
        };
        let out = BufWriter::new(&mut bytes);
        let mut w = PcapngWriter::new(out, "test".into(), &section)
            .unwrap()
            .unwrap();
        f(&mut w);
        w.flush().unwrap();
        drop(w);
        bytes
    }

    #[test]
    fn what_is_written_reads_back_block_by_block() {
        let eth0 = sll2(2, 0, b"in");
        let out = sll2(2, 4, b"out");
        let bytes = written(|w| {
            let iface = Interface {
                name: "lab/web/eth0".into(),
                description: "capture 3 (web): eth0,lo".into(),
                filter: "udp port 53".into(),
                link_type: LINUX_SLL2,
                snaplen: 262_144,
            };
            let (id, _) = w.interface(&iface).unwrap();
            assert_eq!(id, 0);
            let p = |ts_ns, data: &'static [u8]| Packet {
                interface: 0,
                ts_ns,
                origlen: data.len() as u32,
                data,
            };
            let (a, b) = (eth0.clone().leak(), out.clone().leak());
            w.packet(p(1_700_000_000_123_456_789, a), None).unwrap();
            w.packet(p(1_700_000_001_000_000_001, b), Some("3 packets skipped"))
                .unwrap();
            let stats = Statistics {
                start_ns: 1_700_000_000_000_000_000,
                end_ns: 1_700_000_002_500_000_000,
                received: Some(10),
                dropped: Some(1),
                comment: Some("counts of the whole capture".into()),
            };
            w.statistics(0, &stats).unwrap();
        });
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let shb = reader.section().clone();
        assert!(shb
            .options
            .contains(&SectionHeaderOption::UserApplication("pcapd 1.2.3".into())));
        assert!(shb.options.contains(&SectionHeaderOption::Comment(
            "host lab1; capture 3 (web)".into()
        )));
        let mut blocks = Vec::new();
        while let Some(b) = reader.next_block() {
            blocks.push(b.unwrap().into_owned());
        }
        let Block::InterfaceDescription(idb) = &blocks[0] else {
            panic!("{:?}", blocks[0])
        };
        assert_eq!(u32::from(idb.linktype), LINUX_SLL2);
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfName("lab/web/eth0".into())));
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        let mut filter = vec![0u8];
        filter.extend_from_slice(b"udp port 53");
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfFilter(filter.into())));
        let Block::EnhancedPacket(first) = &blocks[1] else {
            panic!("{:?}", blocks[1])
        };
        assert_eq!(first.timestamp.as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(&first.data[..], &eth0[..]);
        // Inbound, unicast.
        assert_eq!(first.options, [EnhancedPacketOption::Flags(1 | 1 << 2)]);
        let Block::EnhancedPacket(second) = &blocks[2] else {
            panic!("{:?}", blocks[2])
        };
        assert_eq!(
            second.options,
            [
                EnhancedPacketOption::Flags(2),
                EnhancedPacketOption::Comment("3 packets skipped".into())
            ]
        );
        let Block::InterfaceStatistics(isb) = &blocks[3] else {
            panic!("{:?}", blocks[3])
        };
        // pcap-file reads the halves the way it writes them: swapped back, they are the time.
        let unswap = |v: u64| v.rotate_left(32);
        assert_eq!(unswap(isb.timestamp), 1_700_000_002_500_000_000);
        assert!(isb
            .options
            .contains(&InterfaceStatisticsOption::IsbStartTime(timestamp_words(
                1_700_000_000_000_000_000
            ))));
        assert!(isb
            .options
            .contains(&InterfaceStatisticsOption::IsbIfDrop(1)));
        assert_eq!(blocks.len(), 4);
    }

    #[test]
    fn timestamps_keep_the_high_word_first() {
        let bytes = written(|w| {
            w.interface(&Interface {
                link_type: 1,
                snaplen: 100,
                ..Default::default()
            })
            .unwrap();
            let s = Statistics {
                start_ns: 0x0000_0001_0000_0002,
                end_ns: 0x0000_0003_0000_0004,
                ..Default::default()
            };
            w.statistics(0, &s).unwrap();
        });
        // The ISB is last: type, length, interface id, then the end time's two words.
        let isb = bytes
            .windows(4)
            .rposition(|w| w == 5u32.to_le_bytes())
            .unwrap();
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!((word(isb + 12), word(isb + 16)), (3, 4));
    }

    #[test]
    fn directions_come_from_sll_and_sll2_headers() {
        const OUT: u32 = 2;
        const IN: u32 = 1;
        assert_eq!(flags(LINUX_SLL2, &sll2(1, 4, b"")), Some(OUT));
        assert_eq!(flags(LINUX_SLL2, &sll2(1, 1, b"")), Some(IN | 3 << 2));
        assert_eq!(flags(LINUX_SLL, &[0, 4, 0, 1]), Some(OUT));
        assert_eq!(flags(LINUX_SLL, &[0, 0, 0, 1]), Some(IN | 1 << 2));
        assert_eq!(flags(LINUX_SLL, &[0, 3]), Some(IN | 4 << 2));
        // Ethernet says nothing of direction; a header too short says nothing either.
        assert_eq!(flags(1, &[0; 20]), None);
        assert_eq!(flags(LINUX_SLL2, &[0; 5]), None);
        assert_eq!(sll2_interface(&sll2(7, 0, b"")), Some(7));
    }
}
