//! The traffic the capture benchmark replays: Ethernet/IPv4 frames of 64, 512 and 1500
//! bytes, UDP and TCP in turn, with correct IPv4, UDP and TCP checksums, written as a
//! little-endian pcap savefile (magic a1b2c3d4, microseconds) for `tcpreplay`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};

/// Frame lengths (Ethernet header to the end of the payload, no FCS), in turn.
pub const FRAME_SIZES: [usize; 3] = [64, 512, 1500];
/// Destination port of every generated packet (discard).
const DST_PORT: u16 = 9;
const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;
/// Snaplen written in the savefile header (libpcap's default).
const SNAPLEN: u32 = 262_144;
/// DLT_EN10MB.
const LINKTYPE_ETHERNET: u32 = 1;

/// Who sends to whom: the sending end's MAC and address, the receiving end's MAC, and the
/// destination address.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
}

/// What a generated file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub packets: u64,
    /// Bytes of the savefile.
    pub file_bytes: u64,
}

/// Frame number `i`: sizes cycle 64, 512, 1500; each size is sent as UDP, then as TCP.
pub fn frame(ep: &Endpoints, i: u64) -> Vec<u8> {
    let len = FRAME_SIZES[(i % 3) as usize];
    let tcp = (i / 3) % 2 == 1;
    let l4_len = if tcp { TCP_LEN } else { UDP_LEN };
    let payload_len = len - ETH_LEN - IP_LEN - l4_len;
    let mut f = Vec::with_capacity(len);

    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());

    let ip_total = (IP_LEN + l4_len + payload_len) as u16;
    let proto = if tcp { 6 } else { 17 };
    let mut ip = [0u8; IP_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
    ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&ep.src_ip.octets());
    ip[16..20].copy_from_slice(&ep.dst_ip.octets());
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);

    let src_port = 20_000 + (i % 40_000) as u16;
    let l4_start = f.len();
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&DST_PORT.to_be_bytes());
    if tcp {
        f.extend_from_slice(&(i as u32).to_be_bytes()); // sequence
        f.extend_from_slice(&1u32.to_be_bytes()); // acknowledgement
        f.push((TCP_LEN as u8 / 4) << 4);
        f.push(0x18); // PSH, ACK
        f.extend_from_slice(&65_535u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    } else {
        f.extend_from_slice(&((UDP_LEN + payload_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]); // checksum
    }
    f.extend((0..payload_len).map(|k| (i as usize + k) as u8));

    let l4 = &f[l4_start..];
    let mut sum = checksum(l4, pseudo_header_sum(ep, proto, l4.len()));
    if !tcp && sum == 0 {
        sum = 0xffff; // UDP: zero means "no checksum"
    }
    let at = l4_start + if tcp { 16 } else { 6 };
    f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Writes `packets` frames to a savefile at `path`, one microsecond apart.
pub fn write_savefile(path: &Path, ep: &Endpoints, packets: u64) -> Result<Generated> {
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&savefile_header())?;
    let mut bytes = 24u64;
    for i in 0..packets {
        let f = frame(ep, i);
        let (sec, usec) = (1_700_000_000 + i / 1_000_000, i % 1_000_000);
        let len = f.len() as u32;
        w.write_all(&(sec as u32).to_le_bytes())?;
        w.write_all(&(usec as u32).to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&f)?;
        bytes += 16 + f.len() as u64;
    }
    w.flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(Generated {
        packets,
        file_bytes: bytes,
    })
}

/// The 24-byte savefile header: little-endian magic a1b2c3d4, version 2.4, Ethernet.
pub fn savefile_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum `initial`.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The partial sum of the IPv4 pseudo header for a UDP or TCP checksum.
fn pseudo_header_sum(ep: &Endpoints, proto: u8, l4_len: usize) -> u32 {
    let (s, d) = (ep.src_ip.octets(), ep.dst_ip.octets());
    [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(proto),
        l4_len as u16,
    ]
    .iter()
    .map(|&w| u32::from(w))
    .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 201, 7, 1),
            dst_ip: Ipv4Addr::new(10, 201, 7, 3),
        }
    }

    #[test]
    fn rfc1071_example_header() {
        // A well-known IPv4 header whose checksum is b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h, 0), 0xb861);
        assert_eq!(checksum(&[0xff], 0), 0x00ff);
    }

    #[test]
    fn sizes_and_protocols_cycle() {
        let e = ep();
        let kinds: Vec<(usize, u8)> = (0..6)
            .map(|i| (frame(&e, i).len(), frame(&e, i)[23]))
            .collect();
        assert_eq!(
            kinds,
            [
                (64, 17),
                (512, 17),
                (1500, 17),
                (64, 6),
                (512, 6),
                (1500, 6)
            ]
        );
    }

    #[test]
    fn every_checksum_verifies() {
        let e = ep();
        for i in 0..12 {
            let f = frame(&e, i);
            assert_eq!(&f[0..6], &e.dst_mac);
            assert_eq!(&f[6..12], &e.src_mac);
            let ip = &f[ETH_LEN..ETH_LEN + IP_LEN];
            // Summing a header with its checksum in place gives zero.
            assert_eq!(checksum(ip, 0), 0, "IPv4 header of frame {i}");
            assert_eq!(
                usize::from(u16::from_be_bytes([ip[2], ip[3]])),
                f.len() - ETH_LEN
            );
            let l4 = &f[ETH_LEN + IP_LEN..];
            assert_eq!(
                checksum(l4, pseudo_header_sum(&e, ip[9], l4.len())),
                0,
                "L4 checksum of frame {i}"
            );
        }
    }

    #[test]
    fn savefile_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        let g = write_savefile(&path, &ep(), 4).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(g.file_bytes, bytes.len() as u64);
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(bytes.len(), 24 + 4 * 16 + 64 + 512 + 1500 + 64);
        // libpcap reads it back.
        let mut cap = pcap::Capture::from_file(&path).unwrap();
        let mut n = 0;
        while cap.next_packet().is_ok() {
            n += 1;
        }
        assert_eq!(n, 4);
    }
}
