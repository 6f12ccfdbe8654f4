//! The traffic the decode benchmark reads: HTTP/1.1 connections (handshake, two keep-alive
//! requests answered with Content-Length bodies, close) and DNS queries with their answers,
//! as Ethernet/IPv4 frames with correct checksums in a pcap savefile. Each cycle is one
//! connection (10 packets, 2 roundtrips) and five DNS lookups (10 packets, 5 roundtrips),
//! each from a client address and port of its own, 10 µs apart.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::packets::{checksum, savefile_header, Generated};

/// Packets and roundtrips of one cycle.
pub const CYCLE_PACKETS: u64 = 20;
pub const CYCLE_ROUNDTRIPS: u64 = 7;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 80);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 53);
const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH_ACK: u8 = 0x18;
const ACK: u8 = 0x10;

/// Writes about `packets` packets (whole cycles, at least one) to a savefile at `path`.
pub fn write(path: &Path, packets: u64) -> Result<Generated> {
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = Writer {
        w: BufWriter::with_capacity(1 << 20, file),
        packets: 0,
        bytes: 24,
        frame: Vec::with_capacity(2048),
    };
    out.w.write_all(&savefile_header())?;
    let cycles = packets.div_ceil(CYCLE_PACKETS).max(1);
    for cycle in 0..cycles {
        out.connection(cycle)?;
        for k in 0..5 {
            out.lookup(cycle, k)?;
        }
    }
    out.w
        .flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(Generated {
        packets: out.packets,
        file_bytes: out.bytes,
    })
}

/// A client address and port for flow `n`, distinct for a long while.
fn client(n: u64) -> (Ipv4Addr, u16) {
    let host = (n % 60_000) as u32;
    let ip = Ipv4Addr::from(0x0a01_0000 | (host & 0xffff));
    (ip, 1024 + (n / 60_000 % 60_000) as u16 + (n % 7) as u16)
}

struct Writer {
    w: BufWriter<File>,
    packets: u64,
    bytes: u64,
    frame: Vec<u8>,
}

impl Writer {
    /// One HTTP/1.1 connection: 10 packets, 2 requests.
    fn connection(&mut self, cycle: u64) -> Result<()> {
        let (c, cport) = client(cycle * 2);
        let (mut cs, mut ss) = (1_000u32, 500_000u32);
        let tcp = |w: &mut Self, from_client: bool, flags: u8, cs: u32, ss: u32, p: &[u8]| {
            if from_client {
                w.tcp(c, cport, SERVER, 80, cs, ss, flags, p)
            } else {
                w.tcp(SERVER, 80, c, cport, ss, cs, flags, p)
            }
        };
        tcp(self, true, SYN, cs, 0, &[])?;
        cs += 1;
        tcp(self, false, SYN | ACK, cs, ss, &[])?;
        ss += 1;
        tcp(self, true, ACK, cs, ss, &[])?;
        for (i, size) in [(0u64, 400usize), (1, 1200)] {
            let req = format!(
                "GET /items/{}/{i} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench/1.0\r\n\
                 Accept: */*\r\n\r\n",
                cycle
            );
            tcp(self, true, PSH_ACK, cs, ss, req.as_bytes())?;
            cs += req.len() as u32;
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            )
            .into_bytes();
            resp.resize(resp.len() + size, b'j');
            tcp(self, false, PSH_ACK, cs, ss, &resp)?;
            ss += resp.len() as u32;
        }
        tcp(self, true, FIN | ACK, cs, ss, &[])?;
        cs += 1;
        tcp(self, false, FIN | ACK, cs, ss, &[])?;
        ss += 1;
        tcp(self, true, ACK, cs, ss, &[])
    }

    /// One DNS lookup over UDP: query and answer.
    fn lookup(&mut self, cycle: u64, k: u64) -> Result<()> {
        let (c, cport) = client(cycle * 2 + 1);
        let id = (cycle * 5 + k) as u16;
        let name = format!("host{}.svc{k}.example", cycle % 1000);
        let mut q = Vec::with_capacity(64);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&0x0100u16.to_be_bytes()); // rd
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&[0, 1, 0, 1]); // A, IN
        let sport = cport.wrapping_add(k as u16);
        self.udp(c, sport, RESOLVER, 53, &q)?;
        let mut a = q.clone();
        a[2..4].copy_from_slice(&0x8180u16.to_be_bytes()); // qr rd ra, NOERROR
        a[6..8].copy_from_slice(&1u16.to_be_bytes());
        a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        a.extend_from_slice(&[10, 7, (cycle >> 8) as u8, cycle as u8]);
        self.udp(RESOLVER, 53, c, sport, &a)
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Result<()> {
        let mut l4 = Vec::with_capacity(20 + payload.len());
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&seq.to_be_bytes());
        l4.extend_from_slice(&if flags & ACK != 0 { ack } else { 0 }.to_be_bytes());
        l4.push(5 << 4);
        l4.push(flags);
        l4.extend_from_slice(&65_535u16.to_be_bytes());
        l4.extend_from_slice(&[0, 0, 0, 0]);
        l4.extend_from_slice(payload);
        self.ip(src, dst, 6, l4, 16)
    }

    fn udp(
        &mut self,
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
        p: &[u8],
    ) -> Result<()> {
        let mut l4 = Vec::with_capacity(8 + p.len());
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.extend_from_slice(p);
        self.ip(src, dst, 17, l4, 6)
    }

    /// Wraps a TCP or UDP segment (checksum at `sum_at`) in IPv4 and Ethernet and writes it.
    fn ip(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        mut l4: Vec<u8>,
        sum_at: usize,
    ) -> Result<()> {
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let partial = pseudo
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let mut sum = checksum(&l4, partial);
        if proto == 17 && sum == 0 {
            sum = 0xffff;
        }
        l4[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());

        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(self.packets as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let s = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&s.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);

        let us = self.packets * 10;
        let len = f.len() as u32;
        self.w
            .write_all(&((1_700_000_000 + us / 1_000_000) as u32).to_le_bytes())?;
        self.w.write_all(&((us % 1_000_000) as u32).to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(f)?;
        self.packets += 1;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }
}
