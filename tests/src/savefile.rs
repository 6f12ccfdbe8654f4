//! Reading what pcapd hands back. Complete files are read with libpcap itself (through the
//! `pcap` crate), so a file libpcap rejects fails the test; files still being written are
//! read with a small tolerant parser that stops at a partial record. Packets are taken
//! apart down to the UDP/TCP header to check ports and the sequence numbers in payloads.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::privilege::skipping_forbidden;
use crate::traffic::payload_seq;

/// DLT_EN10MB: what `lo` gives.
const DLT_EN10MB: u32 = 1;
/// DLT_LINUX_SLL.
const DLT_LINUX_SLL: u32 = 113;
/// DLT_LINUX_SLL2.
const DLT_LINUX_SLL2: u32 = 276;

/// A pcap savefile, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapFile {
    pub link_type: u32,
    pub snaplen: u32,
    pub packets: Vec<Packet>,
}

/// DLT_LINUX_SLL2: captures on several interfaces, or on all of them.
pub const LINUX_SLL2: u32 = 276;

/// One record of a savefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Unix time in microseconds.
    pub ts_us: i64,
    pub caplen: u32,
    pub origlen: u32,
    pub data: Vec<u8>,
}

/// The UDP part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// The TCP part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// The flags byte (FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10).
    pub flags: u8,
    pub payload: &'a [u8],
}

/// Reads a savefile with libpcap; panics if libpcap cannot read all of it.
pub fn read_pcap(path: &Path) -> PcapFile {
    let mut cap = pcap::Capture::from_file(path)
        .unwrap_or_else(|e| panic!("libpcap cannot open {}: {e}", path.display()));
    let link_type = cap.get_datalink().0 as u32;
    let snaplen = file_snaplen(path);
    let mut packets = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(p) => packets.push(Packet {
                ts_us: p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec,
                caplen: p.header.caplen,
                origlen: p.header.len,
                data: p.data.to_vec(),
            }),
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => panic!(
                "libpcap failed reading {} after {} packets: {e}",
                path.display(),
                packets.len()
            ),
        }
    }
    PcapFile {
        link_type,
        snaplen,
        packets,
    }
}

/// Ports of the UDP packets in `packets` (others are skipped).
pub fn udp_dst_ports(packets: &[Packet], link_type: u32) -> Vec<u16> {
    packets
        .iter()
        .filter_map(|p| p.udp(link_type))
        .map(|u| u.dst_port)
        .collect()
}

/// How many packets `tcpdump -r FILE -nn` prints, or `None` when tcpdump is not installed
/// (the caller skips its check). Panics instead when `PCAPD_REQUIRE_PRIVILEGED=1`: a run
/// that must test everything may not lose this cross-check to a missing package.
pub fn tcpdump_count(path: &Path) -> Option<usize> {
    let out = match Command::new("tcpdump")
        .arg("-r")
        .arg(path)
        .arg("-nn")
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if skipping_forbidden() {
                panic!(
                    "tcpdump is not installed, and PCAPD_REQUIRE_PRIVILEGED=1 forbids skipping \
                     the check that it reads {}: install it (Debian: apt-get install tcpdump) \
                     or unset PCAPD_REQUIRE_PRIVILEGED",
                    path.display()
                );
            }
            println!("skipping the tcpdump check: tcpdump is not installed");
            return None;
        }
        Err(e) => panic!("cannot run tcpdump: {e}"),
    };
    assert!(
        out.status.success(),
        "tcpdump -r {} failed ({}): {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).lines().count())
}

// === impl PcapFile ===

impl PcapFile {
    /// Reads savefile bytes with libpcap (through a temporary file).
    pub fn from_bytes(bytes: &[u8]) -> PcapFile {
        let mut f = tempfile::Builder::new()
            .suffix(".pcap")
            .tempfile()
            .expect("temp file");
        f.write_all(bytes).expect("write temp pcap");
        f.flush().expect("flush temp pcap");
        read_pcap(f.path())
    }

    /// Parses the whole records at the start of `bytes`, ignoring a partial one at the end:
    /// for files another process is still writing. `None` until the file header is there.
    pub fn parse_prefix(bytes: &[u8]) -> Option<PcapFile> {
        if bytes.len() < 24 {
            return None;
        }
        let le = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let nanos = match le(0) {
            0xa1b2_c3d4 => false,
            0xa1b2_3c4d => true,
            m => panic!("not a little-endian pcap savefile (magic {m:08x})"),
        };
        let (snaplen, link_type) = (le(16), le(20));
        let mut packets = Vec::new();
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let (sec, frac, caplen, origlen) = (le(at), le(at + 4), le(at + 8), le(at + 12));
            let end = at + 16 + caplen as usize;
            if end > bytes.len() {
                break;
            }
            let frac_us = if nanos { frac / 1000 } else { frac };
            packets.push(Packet {
                ts_us: i64::from(sec) * 1_000_000 + i64::from(frac_us),
                caplen,
                origlen,
                data: bytes[at + 16..end].to_vec(),
            });
            at = end;
        }
        Some(PcapFile {
            link_type,
            snaplen,
            packets,
        })
    }

    /// Number of whole records in a file that may still be growing.
    pub fn count_in(path: &Path) -> usize {
        let bytes = std::fs::read(path).unwrap_or_default();
        PcapFile::parse_prefix(&bytes).map_or(0, |f| f.packets.len())
    }

    /// Destination ports of the UDP packets.
    pub fn udp_dst_ports(&self) -> Vec<u16> {
        udp_dst_ports(&self.packets, self.link_type)
    }

    /// Payload sequence numbers (see [`crate::send_udp_seq`]) of UDP packets to `port`, in
    /// file order.
    pub fn seqs_to(&self, port: u16) -> Vec<u64> {
        self.packets
            .iter()
            .filter_map(|p| p.udp(self.link_type))
            .filter(|u| u.dst_port == port)
            .map(|u| payload_seq(u.payload).expect("payload made by send_udp"))
            .collect()
    }
}

// === impl Packet ===

impl Packet {
    /// The packet's UDP header and payload, if it is UDP over IPv4 or IPv6.
    pub fn udp(&self, link_type: u32) -> Option<Udp<'_>> {
        let (proto, l4) = self.l4(link_type)?;
        if proto != 17 || l4.len() < 8 {
            return None;
        }
        Some(Udp {
            src_port: be16(l4, 0),
            dst_port: be16(l4, 2),
            payload: &l4[8..],
        })
    }

    /// The packet's TCP header ports and payload, if it is TCP over IPv4 or IPv6.
    pub fn tcp(&self, link_type: u32) -> Option<Tcp<'_>> {
        let (proto, l4) = self.l4(link_type)?;
        if proto != 6 || l4.len() < 20 {
            return None;
        }
        let off = usize::from(l4[12] >> 4) * 4;
        Some(Tcp {
            src_port: be16(l4, 0),
            dst_port: be16(l4, 2),
            flags: l4[13],
            payload: l4.get(off..)?,
        })
    }

    /// IP protocol number and the bytes after the IP header.
    fn l4(&self, link_type: u32) -> Option<(u8, &[u8])> {
        let d = &self.data[..];
        let (ethertype, ip) = match link_type {
            DLT_EN10MB => (be16(d, 12), d.get(14..)?),
            DLT_LINUX_SLL => (be16(d, 14), d.get(16..)?),
            DLT_LINUX_SLL2 => (be16(d, 0), d.get(20..)?),
            other => panic!("link type {other} is not one the tests can take apart"),
        };
        match ethertype {
            0x0800 => {
                let ihl = usize::from(*ip.first()? & 0x0f) * 4;
                let total = usize::from(be16(ip, 2)).min(ip.len());
                Some((*ip.get(9)?, ip.get(ihl..total)?))
            }
            0x86dd => {
                let len = usize::from(be16(ip, 4));
                Some((*ip.get(6)?, ip.get(40..(40 + len).min(ip.len()))?))
            }
            _ => None,
        }
    }
}

/// The snaplen field of a savefile's header (the `pcap` crate does not expose it).
fn file_snaplen(path: &Path) -> u32 {
    let mut h = [0u8; 24];
    let mut f = std::fs::File::open(path).expect("open savefile");
    std::io::Read::read_exact(&mut f, &mut h).expect("read savefile header");
    let field = [h[16], h[17], h[18], h[19]];
    // libpcap accepted the file, so the magic says which byte order it was written in.
    if h[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || h[..4] == [0x4d, 0x3c, 0xb2, 0xa1] {
        u32::from_le_bytes(field)
    } else {
        u32::from_be_bytes(field)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

impl Packet {
    /// The interface index an SLL2 record carries (bytes 4..8 of its header, big-endian).
    pub fn sll2_ifindex(&self) -> u32 {
        u32::from_be_bytes(self.data[4..8].try_into().expect("an SLL2 header"))
    }
}
