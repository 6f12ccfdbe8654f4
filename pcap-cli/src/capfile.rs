//! Reading pcap and pcapng files for `pcap decode --file`, as a stream: a multi-gigabyte
//! file or a pipe is read through a fixed buffer, never loaded whole. Both pcap magics
//! (microseconds a1b2c3d4, nanoseconds a1b23c4d) in either byte order, and pcapng with any
//! number of sections and interfaces, each with its own link type and time resolution
//! (if_tsresol, if_tsoffset).
//!
//! pcap-parser does the parsing rather than pcap-file 2: pcap-file 2.0 reads an Enhanced
//! Packet Block's timestamp as nanoseconds whatever the interface's if_tsresol says, and
//! tells neither where a damaged record starts nor a record length that cannot be right
//! (it buffers on, then reports the end of the file). pcap-parser counts what it consumed
//! and says which of "truncated", "too long" and "malformed" it met.

use std::io::Read;

use anyhow::{anyhow, bail, Result};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

/// Bytes read ahead; also the longest record the file may hold.
const BUFFER: usize = 4 << 20;

/// One packet of a file.
#[derive(Debug, Clone, Copy)]
pub struct FilePacket<'a> {
    /// Packet number in the file, from 1 (as Wireshark numbers frames).
    pub number: u64,
    pub link_type: u32,
    /// Unix time in ns.
    pub ts_ns: i64,
    pub data: &'a [u8],
    pub orig_len: u32,
}

/// Whether the reader of the packets wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    More,
    Stop,
}

/// What a pcapng interface says about its packets.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// Timestamp units per second (if_tsresol); `None` when the option cannot be used.
    units: Option<u64>,
    /// Seconds added to every timestamp (if_tsoffset).
    offset_secs: i64,
}

/// A pcap or pcapng file being read.
pub struct CaptureFile {
    name: String,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Bytes consumed so far: the offset of the next record.
    offset: u64,
    packets: u64,
    /// pcap: the file's link type and whether its fractions are nanoseconds.
    legacy: Option<(u32, bool)>,
    /// pcapng: the interfaces of the current section.
    interfaces: Vec<Interface>,
}

impl CaptureFile {
    /// Starts reading `input` (named `name` in messages): the file header must be a pcap or
    /// pcapng one.
    pub fn open(name: &str, input: impl Read + Send + 'static) -> Result<Self> {
        let reader = pcap_parser::create_reader(BUFFER, input).map_err(|e| match e {
            PcapError::Eof => anyhow!("{name} is empty: it holds no pcap or pcapng header"),
            PcapError::Incomplete(_) | PcapError::UnexpectedEof => anyhow!(
                "{name} is too short to be a pcap or pcapng file: it ends inside the file \
                 header (byte offset 0)"
            ),
            PcapError::ReadError => anyhow!("cannot read {name}"),
            _ => anyhow!(
                "{name} is neither a pcap nor a pcapng file: its first bytes (offset 0) are \
                 no pcap magic (a1b2c3d4, a1b23c4d, either byte order) nor a pcapng section \
                 header"
            ),
        })?;
        Ok(CaptureFile {
            name: name.to_owned(),
            reader,
            offset: 0,
            packets: 0,
            legacy: None,
            interfaces: Vec::new(),
        })
    }

    /// Calls `each` with every packet in order, until the end of the file or until it says
    /// [`Next::Stop`]. Damage is an error naming its byte offset; the packets before it have
    /// been handed over by then. `header` is told each link type as a pcap header or a pcapng
    /// interface declares it, before that link type's first packet.
    pub fn read(
        &mut self,
        mut header: impl FnMut(u32) -> Result<()>,
        mut each: impl FnMut(FilePacket<'_>) -> Result<Next>,
    ) -> Result<()> {
        loop {
            let before = self.reader.data().len();
            let failure = match self.reader.next() {
                Ok((len, block)) => {
                    let at = self.offset;
                    let packet = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            let link_type = h.network.0 as u32;
                            self.legacy = Some((link_type, h.is_nanosecond_precision()));
                            header(link_type)?;
                            None
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (link_type, nano) = self.legacy.ok_or_else(|| {
                                anyhow!("{}: a record before the file header", self.name)
                            })?;
                            let frac = i64::from(b.ts_usec) * if nano { 1 } else { 1000 };
                            let caplen = (b.caplen as usize).min(b.data.len());
                            Some((
                                link_type,
                                i64::from(b.ts_sec) * 1_000_000_000 + frac,
                                &b.data[..caplen],
                                b.origlen,
                            ))
                        }
                        PcapBlockOwned::NG(block) => {
                            ng_block(&mut self.interfaces, &self.name, block, at, &mut header)?
                        }
                    };
                    let mut next = Next::More;
                    if let Some((link_type, ts_ns, data, orig_len)) = packet {
                        self.packets += 1;
                        next = each(FilePacket {
                            number: self.packets,
                            link_type,
                            ts_ns,
                            data,
                            orig_len,
                        })?;
                    }
                    self.reader.consume(len);
                    self.offset += len as u64;
                    if next == Next::Stop {
                        return Ok(());
                    }
                    continue;
                }
                Err(PcapError::Eof) => return Ok(()),
                Err(PcapError::Incomplete(_)) => Failure::Incomplete,
                Err(PcapError::UnexpectedEof) => Failure::Truncated,
                Err(PcapError::BufferTooSmall) => Failure::TooLong,
                Err(PcapError::ReadError) => Failure::Read,
                Err(PcapError::NomError(_, kind)) | Err(PcapError::OwnedNomError(_, kind)) => {
                    Failure::Malformed(format!("{kind:?}"))
                }
                Err(PcapError::HeaderNotRecognized) => Failure::Malformed("header".into()),
            };
            match failure {
                Failure::Incomplete => {
                    self.reader
                        .refill()
                        .map_err(|_| anyhow!("cannot read {}", self.name))?;
                    if self.reader.data().len() == before && !self.reader.reader_exhausted() {
                        bail!(self.damage("a record longer than pcap can read"));
                    }
                }
                Failure::Truncated => {
                    bail!(self
                        .damage("is cut short: the file ends inside the record that starts there"))
                }
                Failure::TooLong => bail!(self.damage(&format!(
                    "holds a record that claims more than {} MiB: its length field is \
                     damaged",
                    BUFFER >> 20
                ))),
                Failure::Read => bail!("cannot read {}", self.name),
                Failure::Malformed(kind) => bail!(self.damage(&format!(
                    "a malformed record (the parser stopped at: {kind})"
                ))),
            }
        }
    }

    fn damage(&self, what: &str) -> String {
        format!(
            "{} is damaged at byte offset {} (after {} good packets): {what}",
            self.name, self.offset, self.packets
        )
    }
}

/// Why the next record could not be had.
enum Failure {
    /// More bytes are needed: read on.
    Incomplete,
    Truncated,
    TooLong,
    Read,
    Malformed(String),
}

/// A packet's link type, time (ns), captured bytes and length on the wire.
type Parts<'b> = (u32, i64, &'b [u8], u32);

/// A pcapng block: the packet it carries, if any; interfaces are remembered.
fn ng_block<'b>(
    interfaces: &mut Vec<Interface>,
    name: &str,
    block: Block<'b>,
    at: u64,
    header: &mut impl FnMut(u32) -> Result<()>,
) -> Result<Option<Parts<'b>>> {
    match block {
        Block::SectionHeader(_) => {
            interfaces.clear();
            Ok(None)
        }
        Block::InterfaceDescription(idb) => {
            let link_type = idb.linktype.0 as u32;
            interfaces.push(Interface {
                link_type,
                snaplen: idb.snaplen,
                units: units_per_second(idb.if_tsresol),
                offset_secs: idb.ts_offset(),
            });
            header(link_type)?;
            Ok(None)
        }
        Block::EnhancedPacket(epb) => {
            let iface = interface(interfaces, name, epb.if_id, at)?;
            let Some(units) = iface.units else {
                bail!(
                    "{name}: interface {} has an if_tsresol that pcap cannot use (more than \
                     2^64 units a second); the packet at byte offset {at} names it",
                    epb.if_id
                );
            };
            let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let ns = i128::from(ticks) * 1_000_000_000 / i128::from(units.max(1))
                + i128::from(iface.offset_secs) * 1_000_000_000;
            let ts_ns = i64::try_from(ns).unwrap_or(i64::MAX);
            let caplen = (epb.caplen as usize).min(epb.data.len());
            Ok(Some((
                iface.link_type,
                ts_ns,
                &epb.data[..caplen],
                epb.origlen,
            )))
        }
        Block::SimplePacket(spb) => {
            let iface = interface(interfaces, name, 0, at)?;
            let mut caplen = (spb.origlen as usize).min(spb.data.len());
            if iface.snaplen > 0 {
                caplen = caplen.min(iface.snaplen as usize);
            }
            // A simple packet carries no time.
            Ok(Some((iface.link_type, 0, &spb.data[..caplen], spb.origlen)))
        }
        _ => Ok(None),
    }
}

/// if_tsresol as units per second: 10^n, or 2^n with the high bit set; `None` past u64.
/// (pcap-parser's own `ts_resolution` refuses every power of two, by testing the high bit
/// against the limit.)
fn units_per_second(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

fn interface(interfaces: &[Interface], name: &str, id: u32, at: u64) -> Result<Interface> {
    interfaces.get(id as usize).copied().ok_or_else(|| {
        anyhow!(
            "{name}: the packet at byte offset {at} names interface {id}, but the section \
             describes {} interface(s) before it: the file is damaged",
            interfaces.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap file: header in the given byte order and resolution, then records.
    fn pcap(big: bool, nano: bool, link_type: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend(u32b(if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        f.extend(u16b(2));
        f.extend(u16b(4));
        f.extend(u32b(0));
        f.extend(u32b(0));
        f.extend(u32b(262_144));
        f.extend(u32b(link_type));
        for (sec, frac, data) in records {
            f.extend(u32b(*sec));
            f.extend(u32b(*frac));
            f.extend(u32b(data.len() as u32));
            f.extend(u32b(data.len() as u32 + 10));
            f.extend_from_slice(data);
        }
        f
    }

    /// Number, link type, time, bytes and length on the wire of a packet read.
    type Read = (u64, u32, i64, Vec<u8>, u32);

    fn read_all(bytes: Vec<u8>) -> (Vec<Read>, Vec<u32>, Result<()>) {
        let mut packets = Vec::new();
        let mut headers = Vec::new();
        let mut file = match CaptureFile::open("t.pcap", std::io::Cursor::new(bytes)) {
            Ok(f) => f,
            Err(e) => return (packets, headers, Err(e)),
        };
        let r = file.read(
            |lt| {
                headers.push(lt);
                Ok(())
            },
            |p| {
                packets.push((p.number, p.link_type, p.ts_ns, p.data.to_vec(), p.orig_len));
                Ok(Next::More)
            },
        );
        (packets, headers, r)
    }

    #[test]
    fn reads_both_magics_in_both_byte_orders() {
        for big in [false, true] {
            for nano in [false, true] {
                let f = pcap(big, nano, 1, &[(10, 5, b"abc"), (11, 6, b"de")]);
                let (packets, headers, r) = read_all(f);
                r.unwrap();
                assert_eq!(headers, [1]);
                let unit = if nano { 1 } else { 1000 };
                assert_eq!(
                    packets,
                    [
                        (1, 1, 10_000_000_000 + 5 * unit, b"abc".to_vec(), 13),
                        (2, 1, 11_000_000_000 + 6 * unit, b"de".to_vec(), 12)
                    ],
                    "big {big} nano {nano}"
                );
            }
        }
    }

    #[test]
    fn a_truncated_file_names_the_offset_after_the_good_packets() {
        let mut f = pcap(false, false, 1, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        f.truncate(f.len() - 2);
        let (packets, _, r) = read_all(f);
        assert_eq!(packets.len(), 1);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("cut short") && e.contains("byte offset 44"),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_length_is_refused() {
        let mut f = pcap(false, false, 1, &[(1, 0, b"abcd")]);
        f.extend([0u8; 8]);
        f.extend(0x7fff_ffffu32.to_le_bytes());
        f.extend(0x7fff_ffffu32.to_le_bytes());
        f.extend([0u8; 64]);
        let (packets, _, r) = read_all(f);
        assert_eq!(packets.len(), 1);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("at byte offset 44") && e.contains("length field"),
            "{e}"
        );
    }

    #[test]
    fn garbage_and_empty_files_are_refused() {
        let e = read_all(b"hello, this is not a capture file at all".to_vec())
            .2
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither a pcap nor a pcapng"), "{e}");
        let e = read_all(Vec::new()).2.unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    /// A little-endian pcapng block.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut b = Vec::new();
        b.extend(kind.to_le_bytes());
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    }

    fn idb(link_type: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(link_type.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(262_144u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend(9u16.to_le_bytes()); // if_tsresol
            body.extend(1u16.to_le_bytes());
            body.extend([r, 0, 0, 0]);
            body.extend([0u8; 4]); // opt_endofopt
        }
        block(1, &body)
    }

    fn epb(if_id: u32, ticks: u64, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(if_id.to_le_bytes());
        body.extend(((ticks >> 32) as u32).to_le_bytes());
        body.extend((ticks as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        block(6, &body)
    }

    fn shb() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(0x1a2b_3c4du32.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend((-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &body)
    }

    #[test]
    fn pcapng_interfaces_keep_their_link_type_and_time_resolution() {
        let mut f = shb();
        f.extend(idb(1, None)); // microseconds by default
        f.extend(idb(276, Some(9))); // nanoseconds
        f.extend(idb(101, Some(0x80 | 10))); // 2^-10 s
        f.extend(epb(0, 1_500_000, b"eth"));
        f.extend(epb(1, 2_000_000_001, b"sll2!"));
        f.extend(epb(2, 1024 * 3, b"raw"));
        let (packets, headers, r) = read_all(f);
        r.unwrap();
        assert_eq!(headers, [1, 276, 101]);
        let got: Vec<(u64, u32, i64, usize)> =
            packets.iter().map(|p| (p.0, p.1, p.2, p.3.len())).collect();
        assert_eq!(
            got,
            [
                (1, 1, 1_500_000_000, 3),
                (2, 276, 2_000_000_001, 5),
                (3, 101, 3_000_000_000, 3)
            ]
        );
    }

    #[test]
    fn a_packet_of_an_undescribed_interface_is_damage() {
        let mut f = shb();
        f.extend(idb(1, None));
        f.extend(epb(3, 1, b"x"));
        let e = read_all(f).2.unwrap_err().to_string();
        assert!(
            e.contains("interface 3") && e.contains("byte offset"),
            "{e}"
        );
    }
}
