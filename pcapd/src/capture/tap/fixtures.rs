//! Packets and filters that the shared ring's filter tests try every combination of,
//! each checked against libpcap.

/// Packets of many kinds, whole and cut short: what the filters below are tried on.
pub fn packets() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let eth = |ty: u16| {
        let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        p.extend_from_slice(&ty.to_be_bytes());
        p
    };
    let ipv4 = |proto: u8, src: [u8; 4], dst: [u8; 4], frag: u16, ihl: u8, l4: &[u8]| {
        let mut p = eth(0x0800);
        let opts = usize::from(ihl - 5) * 4;
        let total = (20 + opts + l4.len()) as u16;
        p.push(0x40 | ihl);
        p.push(0);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend(std::iter::repeat_n(1u8, opts));
        p.extend_from_slice(l4);
        p
    };
    let ports = |s: u16, d: u16, tail: usize| {
        let mut l4 = s.to_be_bytes().to_vec();
        l4.extend_from_slice(&d.to_be_bytes());
        l4.extend(std::iter::repeat_n(0x12u8, tail));
        l4
    };
    let hosts = [
        [10, 202, 1, 1],
        [10, 202, 2, 1],
        [10, 0, 0, 1],
        [127, 0, 0, 1],
    ];
    let port_list = [53u16, 80, 5000, 5001, 5255, 0];
    for (n, &src) in hosts.iter().enumerate() {
        let dst = hosts[(n + 1) % hosts.len()];
        for (m, &sp) in port_list.iter().enumerate() {
            let dp = port_list[(m + 2) % port_list.len()];
            for proto in [6u8, 17, 1] {
                for frag in [0u16, 0x2000, 0x0010] {
                    for ihl in [5u8, 6] {
                        out.push(ipv4(proto, src, dst, frag, ihl, &ports(sp, dp, 20)));
                    }
                }
            }
        }
    }
    for (n, &src) in hosts.iter().enumerate() {
        let dst = hosts[(n + 2) % hosts.len()];
        // ARP and RARP requests (Ethernet, IPv4).
        for ty in [0x0806u16, 0x8035] {
            let mut p = eth(ty);
            p.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            p.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
            p.extend_from_slice(&src);
            p.extend_from_slice(&[0; 6]);
            p.extend_from_slice(&dst);
            out.push(p);
        }
        // IPv6 UDP and TCP, the IPv4 address in the low bits.
        for nh in [17u8, 6] {
            let mut p = eth(0x86dd);
            p.extend_from_slice(&[0x60, 0, 0, 0, 0, 28, nh, 64]);
            for a in [src, dst] {
                p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                p.extend_from_slice(&a);
            }
            p.extend_from_slice(&ports(5000 + n as u16, 53, 24));
            out.push(p);
        }
        // 802.1Q-tagged IPv4.
        let mut p = eth(0x8100);
        p.extend_from_slice(&[0, 5, 0x08, 0x00]);
        p.extend_from_slice(&ipv4(17, src, dst, 0, 5, &ports(80, 5001, 8))[14..]);
        out.push(p);
    }
    let whole = out.clone();
    for p in &whole {
        for cut in [0, 1, 13, 14, 20, 26, 29, 30, 33, 34, 36, 37, 38] {
            if cut < p.len() {
                out.push(p[..cut].to_vec());
            }
        }
    }
    out
}

pub const FILTERS: &[&str] = &[
    "host 10.202.1.1",
    "host 10.202.2.1",
    "src host 10.0.0.1",
    "dst host 127.0.0.1",
    "not host 10.202.1.1",
    "net 10.202.0.0/16",
    "net 10.0.0.0/8 and not host 10.0.0.1",
    "udp dst port 5000",
    "udp dst port 5001",
    "tcp port 80",
    "port 53",
    "portrange 5000-5100",
    "src port 0",
    "ip6",
    "arp",
    "vlan and udp",
    "tcp[13] & 2 != 0",
    "ip[8] > 32",
    "len > 60",
    "ip[2:2] / 4 = 11",
    "ip[2:2] % 7 = 2",
    "ip[0] << 2 = 0x114",
    "ip[2:2] >> 1 = 22",
    "udp[8:4] - 1 = 0x12121211",
    "ip[3] * 3 = 0x84",
    "-ip[3] = 0xffffffd4",
    "ip[1] ^ 1 = 1",
    "ip[1] | 1 = 1",
    "ip[2:2] - len + 14 = 0",
    "icmp or (udp and not port 53)",
    "ether host 02:00:00:00:00:01",
];
