//! Finds in one packet what the index keeps. It reads the fields at the offsets libpcap's
//! filters load them from, with no more checking than they do (an IPv4 header's version
//! or length is not checked, only that the bytes were captured), so that a field a filter
//! can match is always indexed; where it goes further (VLAN tags, IPv6 extension headers)
//! it only adds entries, which can never rule out a segment wrongly.

use super::{layer, v4_key, SegmentIndex};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_RARP: u16 = 0x8035;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

/// Takes packet `b` of the index's link type apart into `ix`.
pub(super) fn observe(ix: &mut SegmentIndex, b: &[u8]) {
    match ix.link_type {
        // LINKTYPE_ETHERNET
        1 => ethernet(ix, b),
        // LINKTYPE_LINUX_SLL: the protocol at 14, the network layer at 16.
        113 => match (be16(b, 14), b.get(16..)) {
            (Some(t), Some(net)) => ethertype(ix, t, net),
            _ => ix.layer(layer::OTHER),
        },
        // LINKTYPE_LINUX_SLL2: the protocol at 0, the network layer at 20.
        276 => match (be16(b, 0), b.get(20..)) {
            (Some(t), Some(net)) => ethertype(ix, t, net),
            _ => ix.layer(layer::OTHER),
        },
        // LINKTYPE_RAW (and DLT_RAW's values): the IP version says which.
        101 | 12 | 14 => match b.first().map(|v| v >> 4) {
            Some(4) => ipv4(ix, b),
            Some(6) => ipv6(ix, b),
            _ => ix.layer(layer::OTHER),
        },
        // LINKTYPE_NULL and LINKTYPE_LOOP: an address family in either byte order.
        0 | 108 => null(ix, b),
        228 => ipv4(ix, b),
        229 => ipv6(ix, b),
        _ => ix.layer(layer::OPAQUE),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ethernet(ix: &mut SegmentIndex, b: &[u8]) {
    let Some(mut t) = be16(b, 12) else {
        return ix.layer(layer::OTHER);
    };
    let mut at = 14;
    if ETH_VLAN.contains(&t) {
        // A filter without `vlan` sees no IP here; one with it is not read by the index.
        // The inner packet is indexed all the same, though not as IP: entries only ever
        // widen what may match.
        let mut tags = 0;
        while ETH_VLAN.contains(&t) && tags < 4 {
            let Some(inner) = be16(b, at + 2) else {
                return ix.layer(layer::OTHER);
            };
            t = inner;
            at += 4;
            tags += 1;
        }
        let layers = ix.layers;
        ethertype(ix, t, b.get(at..).unwrap_or_default());
        ix.layers = layers | layer::OTHER;
        return;
    }
    ethertype(ix, t, &b[at..]);
}

fn ethertype(ix: &mut SegmentIndex, t: u16, net: &[u8]) {
    match t {
        ETH_IPV4 => ipv4(ix, net),
        ETH_IPV6 => ipv6(ix, net),
        ETH_ARP | ETH_RARP => arp(ix, net),
        _ => ix.layer(layer::OTHER),
    }
}

fn null(ix: &mut SegmentIndex, b: &[u8]) {
    let Some(family) = b.get(..4) else {
        return ix.layer(layer::OTHER);
    };
    let family: [u8; 4] = family.try_into().expect("four bytes");
    let (le, be) = (u32::from_le_bytes(family), u32::from_be_bytes(family));
    let is = |values: &[u32]| values.contains(&le) || values.contains(&be);
    // AF_INET; AF_INET6 as Linux, the BSDs and Darwin number it.
    if is(&[2]) {
        ipv4(ix, &b[4..]);
    } else if is(&[10, 24, 28, 30]) {
        ipv6(ix, &b[4..]);
    } else {
        ix.layer(layer::OTHER);
    }
}

fn addr4(ix: &mut SegmentIndex, b: &[u8], at: usize) {
    if let Some(a) = b.get(at..at + 4) {
        ix.addr(v4_key(a.try_into().expect("four bytes")));
    }
}

fn addr6(ix: &mut SegmentIndex, b: &[u8], at: usize) {
    if let Some(a) = b.get(at..at + 16) {
        ix.addr(u128::from_be_bytes(a.try_into().expect("sixteen bytes")));
    }
}

fn ports(ix: &mut SegmentIndex, b: &[u8], at: usize) {
    for at in [at, at + 2] {
        if let Some(p) = be16(b, at) {
            ix.port(p);
        }
    }
}

fn ipv4(ix: &mut SegmentIndex, n: &[u8]) {
    ix.layer(layer::IPV4);
    addr4(ix, n, 12);
    addr4(ix, n, 16);
    let Some(&proto) = n.get(9) else { return };
    ix.proto(proto);
    if matches!(proto, TCP | UDP | SCTP) {
        // Where libpcap's filters look: 4 × the header length field, fragments or not.
        let ihl = usize::from(n[0] & 0x0f) * 4;
        ports(ix, n, ihl);
    }
}

fn ipv6(ix: &mut SegmentIndex, n: &[u8]) {
    ix.layer(layer::IPV6);
    addr6(ix, n, 8);
    addr6(ix, n, 24);
    let Some(&first) = n.get(6) else { return };
    ix.proto(first);
    // libpcap looks at the fixed header's next header and, after a fragment header, at
    // the one it names; every header of the chain is indexed here, which covers both.
    let (mut next, mut at) = (first, 40usize);
    for _ in 0..8 {
        if matches!(next, TCP | UDP | SCTP) {
            ports(ix, n, at);
            break;
        }
        let len = match next {
            0 | 43 | 60 => n.get(at + 1).map(|l| (usize::from(*l) + 1) * 8),
            44 => Some(8),
            51 => n.get(at + 1).map(|l| (usize::from(*l) + 2) * 4),
            _ => None,
        };
        let (Some(len), Some(&after)) = (len, n.get(at)) else {
            break;
        };
        ix.proto(after);
        next = after;
        at += len;
    }
}

fn arp(ix: &mut SegmentIndex, n: &[u8]) {
    ix.layer(layer::ARP);
    // Sender and target protocol addresses where libpcap's `arp host` loads them.
    addr4(ix, n, 14);
    addr4(ix, n, 24);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&ETH_IPV4.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&sport.to_be_bytes());
        ip.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&ip);
        p
    }

    #[test]
    fn ethernet_ipv4_tcp_gives_addresses_ports_and_protocol() {
        let mut ix = SegmentIndex::new(1);
        ix.observe(&eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], TCP, 40000, 80));
        assert!(ix.addrs.may_contain(v4_key([10, 0, 0, 1])));
        assert!(ix.addrs.may_contain(v4_key([10, 0, 0, 2])));
        assert!(!ix.addrs.may_contain(v4_key([10, 0, 0, 3])));
        assert!(ix.has_port_in(80, 80) && ix.has_port_in(40000, 40000));
        assert!(!ix.has_port_in(81, 39999));
        assert!(ix.has_proto(TCP) && !ix.has_proto(UDP));
        assert_eq!(ix.layers, layer::IPV4);
    }

    #[test]
    fn truncated_packets_give_what_was_captured() {
        let mut ix = SegmentIndex::new(1);
        let p = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], UDP, 53, 53);
        ix.observe(&p[..14 + 16]);
        assert!(ix.addrs.may_contain(v4_key([10, 0, 0, 1])));
        assert!(!ix.addrs.may_contain(v4_key([10, 0, 0, 2])));
        assert!(!ix.has_port_in(0, u16::MAX));
        ix.observe(&p[..5]);
        assert_eq!(ix.layers, layer::IPV4 | layer::OTHER);
    }

    #[test]
    fn vlan_inner_packets_are_indexed_but_not_as_ip() {
        let p = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], UDP, 1, 2);
        let mut tagged = p[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0, 5]);
        tagged.extend_from_slice(&p[12..]);
        let mut ix = SegmentIndex::new(1);
        ix.observe(&tagged);
        assert!(ix.addrs.may_contain(v4_key([10, 0, 0, 2])));
        assert!(ix.has_port_in(2, 2) && ix.has_proto(UDP));
        assert_eq!(ix.layers, layer::OTHER);
    }

    #[test]
    fn ipv6_extension_headers_are_followed() {
        let mut n = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        n.extend_from_slice(&[0u8; 15]);
        n.push(1); // ::1
        n.extend_from_slice(&[0u8; 15]);
        n.push(2); // ::2
        n.extend_from_slice(&[UDP, 0, 0, 0, 0, 0, 0, 0]); // fragment header
        n.extend_from_slice(&[0, 7, 0, 9, 0, 8, 0, 0]);
        let mut ix = SegmentIndex::new(229);
        ix.observe(&n);
        assert!(ix.addrs.may_contain(1) && ix.addrs.may_contain(2));
        assert!(ix.has_proto(44) && ix.has_proto(UDP));
        assert!(ix.has_port_in(7, 7) && ix.has_port_in(9, 9));
        let mut raw = SegmentIndex::new(101);
        raw.observe(&n);
        assert_eq!(raw.addrs, ix.addrs);
    }

    #[test]
    fn arp_addresses_are_hosts_too_and_unknown_links_rule_nothing_out() {
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&ETH_ARP.to_be_bytes());
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0, 0, 0, 0];
        arp.extend_from_slice(&[127, 0, 0, 9, 0, 0, 0, 0, 0, 0, 127, 0, 0, 10]);
        p.extend_from_slice(&arp);
        let mut ix = SegmentIndex::new(1);
        ix.observe(&p);
        assert!(ix.addrs.may_contain(v4_key([127, 0, 0, 9])));
        assert!(ix.addrs.may_contain(v4_key([127, 0, 0, 10])));
        let mut wifi = SegmentIndex::new(127);
        wifi.observe(&p);
        assert!(wifi.is_opaque());
    }
}
