//! The network layer: IPv4 and IPv6 (with extension headers) sliced by etherparse, leniently,
//! so that a packet cut at the snaplen still yields what was captured and how much is
//! missing; and the TCP or UDP header of the payload.

use std::net::IpAddr;

use etherparse::{ip_number, IpFragOffset, Ipv6ExtensionSlice, LaxIpSlice, TcpSlice, UdpSlice};

/// An IP packet as far as the decoder needs it.
#[derive(Debug, Clone, Copy)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The protocol of the payload (after extension headers).
    pub proto: u8,
    /// The payload as captured.
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire but not captured.
    pub missing: usize,
    /// Set when this is a fragment of a larger packet.
    pub fragment: Option<Fragment>,
}

/// Where a fragment goes in its packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    pub offset: IpFragOffset,
    pub more: bool,
}

/// Slices an IPv4 or IPv6 packet; `None` when even its fixed header is not there or is
/// invalid.
pub fn parse(bytes: &[u8]) -> Option<IpPacket<'_>> {
    let (ip, ext_err) = LaxIpSlice::from_slice(bytes).ok()?;
    if ext_err.is_some() {
        // An extension header is cut or broken: the payload cannot be found. (Walking
        // etherparse 0.21's extension iterator after such an error also reads out of
        // bounds: it assumes every header it is given parsed whole.)
        return None;
    }
    let payload = ip.payload();
    let header_len = bytes.len() - payload.payload.len();
    let (declared, fragment) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let fragment = h.is_fragmenting_payload().then(|| Fragment {
                id: u32::from(h.identification()),
                offset: h.fragments_offset(),
                more: h.more_fragments(),
            });
            (usize::from(h.total_len()), fragment)
        }
        LaxIpSlice::Ipv6(v6) => {
            let mut fragment = None;
            for ext in v6.extensions().clone() {
                if let Ipv6ExtensionSlice::Fragment(f) = ext {
                    if f.is_fragmenting_payload() {
                        fragment = Some(Fragment {
                            id: f.identification(),
                            offset: f.fragment_offset(),
                            more: f.more_fragments(),
                        });
                    }
                }
            }
            (40 + usize::from(v6.header().payload_length()), fragment)
        }
    };
    let missing = if payload.incomplete {
        declared.saturating_sub(header_len + payload.payload.len())
    } else {
        0
    };
    Some(IpPacket {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        proto: payload.ip_number.0,
        payload: payload.payload,
        missing,
        fragment,
    })
}

/// The transport layer of an IP payload.
#[derive(Debug, Clone)]
pub enum Transport<'a> {
    Tcp(TcpSlice<'a>),
    Udp(UdpSlice<'a>),
    /// Another protocol (ICMP, SCTP, ...).
    Other,
    /// A TCP or UDP header that is cut or invalid.
    Malformed,
}

/// The TCP or UDP header and payload of `payload` (of protocol `proto`).
pub fn transport(proto: u8, payload: &[u8]) -> Transport<'_> {
    match etherparse::IpNumber(proto) {
        ip_number::TCP => match TcpSlice::from_slice(payload) {
            Ok(tcp) => Transport::Tcp(tcp),
            Err(_) => Transport::Malformed,
        },
        ip_number::UDP => match UdpSlice::from_slice_lax(payload) {
            Ok(udp) => Transport::Udp(udp),
            Err(_) => Transport::Malformed,
        },
        _ => Transport::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn reads_ipv4_and_ipv6_with_their_payload() {
        let mut v4 = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 80, 7, 1024)
            .write(&mut v4, b"hello")
            .unwrap();
        let p = parse(&v4).unwrap();
        assert_eq!(p.src, IpAddr::from([10, 0, 0, 1]));
        assert_eq!((p.proto, p.missing, p.fragment), (6, 0, None));
        let Transport::Tcp(tcp) = transport(p.proto, p.payload) else {
            panic!("not TCP")
        };
        assert_eq!((tcp.sequence_number(), tcp.payload()), (7, &b"hello"[..]));

        let mut v6 = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .udp(5353, 53)
            .write(&mut v6, b"query")
            .unwrap();
        let p = parse(&v6).unwrap();
        assert_eq!(p.dst, IpAddr::from([2u8; 16]));
        let Transport::Udp(udp) = transport(p.proto, p.payload) else {
            panic!("not UDP")
        };
        assert_eq!(udp.payload(), b"query");
    }

    #[test]
    fn a_cut_packet_says_how_much_is_missing() {
        let mut v4 = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 80, 7, 1024)
            .write(&mut v4, &[b'x'; 100])
            .unwrap();
        let p = parse(&v4[..20 + 20 + 30]).unwrap();
        assert_eq!((p.payload.len(), p.missing), (50, 70));
        let Transport::Tcp(tcp) = transport(p.proto, p.payload) else {
            panic!("not TCP")
        };
        assert_eq!(tcp.payload().len(), 30);
        assert!(matches!(
            transport(6, &p.payload[..10]),
            Transport::Malformed
        ));
        assert!(parse(&v4[..10]).is_none());
        assert!(parse(&[0x60, 0, 0]).is_none());
    }

    #[test]
    fn a_cut_extension_header_is_refused() {
        // IPv6, next header hop-by-hop (8 bytes), then destination options cut short.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 12, 0, 64];
        v6.extend_from_slice(&[1; 32]);
        v6.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        v6.extend_from_slice(&[6, 9, 0, 0]);
        assert!(parse(&v6).is_none());
    }
}
