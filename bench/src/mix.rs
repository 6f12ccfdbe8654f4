//! The heavy mix: Ethernet/IPv4 frames of 64, 512 and 1500 bytes in equal thirds,
//! interleaved, UDP and TCP in turn, to 256 destination hosts and 256 destination ports
//! (both drawn from a fixed pseudo-random sequence, so that runs are alike), with correct
//! checksums. Selective filters (`host H`, `udp dst port P`) each pick a small, known share,
//! which the generator counts while it writes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::packets::{checksum, savefile_header, Endpoints, FRAME_SIZES};

/// Destination hosts: 10.202.H.1 for H in 0..=255. Nobody holds them and forwarding is off
/// in the receiving namespace, so its kernel drops the packets without a reply.
pub const HOSTS: usize = 256;
/// Destination ports: FIRST_PORT + P for P in 0..=255.
pub const PORTS: usize = 256;
pub const FIRST_PORT: u16 = 5_000;
const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;

/// What frame `i` is: its size, protocol, destination host and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub len: usize,
    pub tcp: bool,
    pub host: u8,
    pub port: u8,
    pub src_port: u16,
}

/// How many frames of a file each selective filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub packets: u64,
    pub per_host: [u64; HOSTS],
    pub per_udp_port: [u64; PORTS],
}

/// A generated heavy-mix file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixFile {
    /// Bytes of the savefile.
    pub file_bytes: u64,
    /// Bytes of the frames alone (what goes on the wire).
    pub frame_bytes: u64,
    pub tally: Tally,
}

/// The capture filter of capture number `k` of a set (0 matches everything), and how many
/// packets of the file it matches.
pub fn filter(k: usize, tally: &Tally) -> (Option<String>, u64) {
    if k == 0 {
        return (None, tally.packets);
    }
    // Odd: a host; even: a UDP port; each used once in a set of up to 2 * 256 + 1.
    let j = (k - 1) / 2;
    if k % 2 == 1 {
        let h = j % HOSTS;
        (Some(format!("host {}", host(h as u8))), tally.per_host[h])
    } else {
        let p = j % PORTS;
        (
            Some(format!("udp dst port {}", FIRST_PORT + p as u16)),
            tally.per_udp_port[p],
        )
    }
}

/// Destination host number `h`.
pub fn host(h: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 202, h, 1)
}

/// splitmix64: a fixed, well-spread sequence.
fn scramble(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Frame `i`: sizes cycle 64, 512, 1500; each size goes as UDP, then as TCP.
pub fn flow(i: u64) -> Flow {
    let r = scramble(i);
    Flow {
        len: FRAME_SIZES[(i % 3) as usize],
        tcp: (i / 3) % 2 == 1,
        host: r as u8,
        port: (r >> 8) as u8,
        src_port: 20_000 + ((r >> 16) % 40_000) as u16,
    }
}

/// The bytes of frame `i`, from the sender's MAC and address.
pub fn frame(ep: &Endpoints, i: u64) -> Vec<u8> {
    let fl = flow(i);
    let l4_len = if fl.tcp { TCP_LEN } else { UDP_LEN };
    let payload_len = fl.len - ETH_LEN - IP_LEN - l4_len;
    let (src, dst) = (ep.src_ip, host(fl.host));
    let proto = if fl.tcp { 6u8 } else { 17 };
    let mut f = Vec::with_capacity(fl.len);
    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());

    let mut ip = [0u8; IP_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((IP_LEN + l4_len + payload_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);

    let l4_start = f.len();
    f.extend_from_slice(&fl.src_port.to_be_bytes());
    f.extend_from_slice(&(FIRST_PORT + u16::from(fl.port)).to_be_bytes());
    if fl.tcp {
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

    let l4_len_total = f.len() - l4_start;
    let (s, d) = (src.octets(), dst.octets());
    let pseudo: u32 = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(proto),
        l4_len_total as u16,
    ]
    .iter()
    .map(|&w| u32::from(w))
    .sum();
    let mut sum = checksum(&f[l4_start..], pseudo);
    if !fl.tcp && sum == 0 {
        sum = 0xffff; // UDP: zero means "no checksum"
    }
    let at = l4_start + if fl.tcp { 16 } else { 6 };
    f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Writes `packets` frames of the mix to a savefile at `path`, one microsecond apart.
pub fn write_savefile(path: &Path, ep: &Endpoints, packets: u64) -> Result<MixFile> {
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&savefile_header())?;
    let mut out = MixFile {
        file_bytes: 24,
        frame_bytes: 0,
        tally: Tally {
            packets,
            per_host: [0; HOSTS],
            per_udp_port: [0; PORTS],
        },
    };
    for i in 0..packets {
        let fl = flow(i);
        let f = frame(ep, i);
        let (sec, usec) = (1_700_000_000 + i / 1_000_000, i % 1_000_000);
        let len = f.len() as u32;
        w.write_all(&(sec as u32).to_le_bytes())?;
        w.write_all(&(usec as u32).to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&f)?;
        out.file_bytes += 16 + f.len() as u64;
        out.frame_bytes += f.len() as u64;
        out.tally.per_host[usize::from(fl.host)] += 1;
        if !fl.tcp {
            out.tally.per_udp_port[usize::from(fl.port)] += 1;
        }
    }
    w.flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(out)
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
    fn sizes_in_equal_thirds_and_hosts_spread() {
        let n = 30_000u64;
        let mut sizes = [0u64; 3];
        let mut hosts = [0u64; HOSTS];
        for i in 0..n {
            let f = flow(i);
            sizes[FRAME_SIZES.iter().position(|&s| s == f.len).unwrap()] += 1;
            hosts[usize::from(f.host)] += 1;
        }
        assert_eq!(sizes, [n / 3; 3]);
        // Every host appears, none far from its share (117 on average).
        assert!(hosts.iter().all(|&c| (60..200).contains(&c)), "{hosts:?}");
    }

    #[test]
    fn checksums_verify_and_libpcap_filters_agree_with_the_tally() {
        let e = ep();
        for i in 0..12 {
            let f = frame(&e, i);
            assert_eq!(f.len(), flow(i).len);
            assert_eq!(checksum(&f[ETH_LEN..ETH_LEN + IP_LEN], 0), 0, "frame {i}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mix.pcap");
        let mix = write_savefile(&path, &e, 3_000).unwrap();
        assert_eq!(mix.file_bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(mix.frame_bytes, 1_000 * (64 + 512 + 1500));
        for k in [0usize, 1, 2, 7, 8, 99] {
            let (expr, want) = filter(k, &mix.tally);
            let mut cap = pcap::Capture::from_file(&path).unwrap();
            if let Some(expr) = &expr {
                cap.filter(expr, true).unwrap();
            }
            let mut got = 0u64;
            while cap.next_packet().is_ok() {
                got += 1;
            }
            assert_eq!(got, want, "filter {expr:?}");
        }
    }
}
