//! The link layer: from a captured frame of one of the libpcap link types to the network
//! packet it carries and its EtherType. Ethernet and VLAN tags are sliced with etherparse;
//! the small Linux cooked, BSD loopback and raw headers are read here.

use etherparse::{ether_type, EtherType, Ethernet2Slice, SingleVlanSlice};

/// DLT_NULL: 4-byte address family in the capturing host's byte order.
pub const NULL: u32 = 0;
/// DLT_EN10MB: Ethernet II, possibly with 802.1Q / 802.1ad tags.
pub const EN10MB: u32 = 1;
/// DLT_RAW as some platforms number it.
pub const RAW_12: u32 = 12;
/// DLT_RAW as OpenBSD numbers it.
pub const RAW_14: u32 = 14;
/// LINKTYPE_RAW: the packet starts with its IPv4 or IPv6 header.
pub const RAW: u32 = 101;
/// DLT_LOOP: as NULL, the family in network byte order.
pub const LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: 16-byte Linux cooked header, protocol at offset 14.
pub const LINUX_SLL: u32 = 113;
/// LINKTYPE_LINUX_SLL2: 20-byte Linux cooked header, protocol at offset 0.
pub const LINUX_SLL2: u32 = 276;

/// Most VLAN tags read in front of the network header (QinQ and one more).
const MAX_VLAN_TAGS: usize = 3;

/// What a frame carries, as far as the link layer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    /// An IPv4 or IPv6 packet (the version is in its first byte).
    Ip(&'a [u8]),
    /// Something the decoder does not read (ARP, another EtherType or family, a link type
    /// it does not know).
    Other,
    /// The frame is shorter than its link header.
    Malformed,
}

/// The network packet of a frame of `link_type`.
pub fn network(link_type: u32, frame: &[u8]) -> Network<'_> {
    match link_type {
        EN10MB => ethernet(frame),
        NULL => match frame.get(..4) {
            Some(af) => {
                let af = [af[0], af[1], af[2], af[3]];
                // Host byte order of the capturing machine, which we do not know: a family
                // is small, so whichever order gives a known one is the right one.
                let family = match u32::from_le_bytes(af) {
                    f if f < 0x1_0000 => f,
                    _ => u32::from_be_bytes(af),
                };
                by_family(family, &frame[4..])
            }
            None => Network::Malformed,
        },
        LOOP => match frame.get(..4) {
            Some(af) => by_family(
                u32::from_be_bytes([af[0], af[1], af[2], af[3]]),
                &frame[4..],
            ),
            None => Network::Malformed,
        },
        RAW | RAW_12 | RAW_14 => raw(frame),
        LINUX_SLL => match frame.get(..16) {
            Some(h) => by_ether_type(EtherType(u16::from_be_bytes([h[14], h[15]])), &frame[16..]),
            None => Network::Malformed,
        },
        LINUX_SLL2 => match frame.get(..20) {
            Some(h) => by_ether_type(EtherType(u16::from_be_bytes([h[0], h[1]])), &frame[20..]),
            None => Network::Malformed,
        },
        _ => Network::Other,
    }
}

fn ethernet(frame: &[u8]) -> Network<'_> {
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(frame) else {
        return Network::Malformed;
    };
    by_ether_type(eth.ether_type(), eth.payload_slice())
}

/// Follows VLAN tags (802.1Q, 802.1ad, the old QinQ type) to the network packet.
fn by_ether_type(mut ty: EtherType, mut payload: &[u8]) -> Network<'_> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ty {
            ether_type::IPV4 | ether_type::IPV6 => return raw(payload),
            ether_type::VLAN_TAGGED_FRAME
            | ether_type::PROVIDER_BRIDGING
            | ether_type::VLAN_DOUBLE_TAGGED_FRAME => {
                let Ok(vlan) = SingleVlanSlice::from_slice(payload) else {
                    return Network::Malformed;
                };
                ty = vlan.ether_type();
                payload = vlan.payload_slice();
            }
            _ => return Network::Other,
        }
    }
    Network::Other
}

/// BSD address families: AF_INET is 2 everywhere; AF_INET6 is 10 on Linux, 24 on
/// NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS.
fn by_family(family: u32, payload: &[u8]) -> Network<'_> {
    match family {
        2 | 10 | 24 | 28 | 30 => raw(payload),
        _ => Network::Other,
    }
}

fn raw(packet: &[u8]) -> Network<'_> {
    match packet.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Network::Ip(packet),
        Some(_) => Network::Other,
        None => Network::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn ipv4_udp() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 53)
            .write(&mut out, b"x")
            .unwrap();
        out
    }

    #[test]
    fn every_link_type_finds_the_ip_packet() {
        let ip = ipv4_udp();
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(network(EN10MB, &eth), Network::Ip(&ip));

        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        vlan.extend_from_slice(&ip);
        assert_eq!(network(EN10MB, &vlan), Network::Ip(&ip));

        for af in [2u32.to_le_bytes(), 2u32.to_be_bytes(), 30u32.to_le_bytes()] {
            let mut null = af.to_vec();
            null.extend_from_slice(&ip);
            assert_eq!(network(NULL, &null), Network::Ip(&ip));
        }
        let mut lo = 24u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        assert_eq!(network(LOOP, &lo), Network::Ip(&ip));

        for raw in [RAW, RAW_12, RAW_14] {
            assert_eq!(network(raw, &ip), Network::Ip(&ip));
        }
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(network(LINUX_SLL, &sll), Network::Ip(&ip));
        let mut sll2 = vec![0x86, 0xdd, 0, 0];
        sll2.extend_from_slice(&[0u8; 16]);
        sll2.extend_from_slice(&ip);
        assert_eq!(network(LINUX_SLL2, &sll2), Network::Ip(&ip));
    }

    #[test]
    fn others_and_short_frames_are_told_apart() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1, 2, 3]);
        assert_eq!(network(EN10MB, &arp), Network::Other);
        assert_eq!(network(EN10MB, &[0u8; 13]), Network::Malformed);
        assert_eq!(network(NULL, &[2, 0, 0]), Network::Malformed);
        assert_eq!(network(NULL, &[7, 0, 0, 0, 0x45]), Network::Other);
        assert_eq!(network(LINUX_SLL2, &[0u8; 19]), Network::Malformed);
        assert_eq!(network(RAW, &[]), Network::Malformed);
        assert_eq!(network(RAW, &[0x12]), Network::Other);
        assert_eq!(network(9999, &[0x45]), Network::Other);
        let mut cut_vlan = vec![0u8; 12];
        cut_vlan.extend_from_slice(&[0x81, 0x00, 0]);
        assert_eq!(network(EN10MB, &cut_vlan), Network::Malformed);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x1234_5678u32;
        for len in 0..80 {
            let frame: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for lt in [
                NULL, EN10MB, RAW, RAW_12, RAW_14, LOOP, LINUX_SLL, LINUX_SLL2, 7,
            ] {
                let _ = network(lt, &frame);
            }
        }
    }
}
