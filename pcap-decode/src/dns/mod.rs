//! DNS over UDP and TCP: queries paired with answers by id.
//!
//! Names are read with hickory-proto's name reader (compression pointers followed, loops
//! refused) on a header, section and record-data walk of our own, so that a message keeps
//! what was read before a break, and every type, class and code keeps its number.

mod framing;
mod message;
mod names;
mod pairing;
mod rdata;
mod svcb;
mod tcp;
mod udp;
mod wire;

pub use tcp::DnsTcp;
pub use udp::DnsUdp;

use crate::stream::Dir;
use wire::{plausible, Verdict};

/// Whether a UDP payload looks like a DNS message: `Some(Dir::ToServer)` for a query (the
/// sender is the client), `Some(Dir::ToClient)` for a response, `None` otherwise.
///
/// Plausible means: a known opcode, the Z bit clear, section counts that fit in the length,
/// and one question that parses with a known class; a response may have no question when it
/// is an error, or when its first record parses with a known class instead.
pub fn recognise_datagram(payload: &[u8]) -> Option<Dir> {
    match plausible(payload, payload.len()) {
        Verdict::Dns(dir) => Some(dir),
        Verdict::NotDns | Verdict::NeedMore => None,
    }
}

/// As [`recognise_datagram`], for the first bytes of a TCP direction (2-byte length prefix,
/// then a message); `None` too when the header and question are not all there yet.
pub fn recognise_stream(first: &[u8]) -> Option<Dir> {
    let prefix = first.get(..2)?;
    let declared = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    match plausible(&first[2..], declared) {
        Verdict::Dns(dir) => Some(dir),
        Verdict::NotDns | Verdict::NeedMore => None,
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::{captured, framed, query, XorShift};
    use super::*;

    #[test]
    fn real_queries_and_answers_are_recognised_with_their_direction() {
        let all = captured();
        assert!(
            all.len() >= 20,
            "testdata/dns/messages.txt has {} lines",
            all.len()
        );
        for c in all {
            match c.transport.as_str() {
                "udp" => assert_eq!(
                    recognise_datagram(&c.bytes),
                    Some(c.dir),
                    "{:02x?}",
                    c.bytes
                ),
                _ => {
                    assert_eq!(recognise_stream(&c.bytes), Some(c.dir), "{:02x?}", c.bytes);
                    // Too few bytes to see the question: not yet.
                    assert_eq!(recognise_stream(&c.bytes[..16]), None);
                    // The message alone, without its prefix, is a datagram.
                    assert_eq!(recognise_datagram(&c.bytes[2..]), Some(c.dir));
                }
            }
        }
    }

    #[test]
    fn a_stream_is_recognised_before_its_first_message_is_whole() {
        let mut two = framed(&query(7, "a.test", 1));
        two.extend(framed(&query(8, "b.test", 28)));
        assert_eq!(recognise_stream(&two), Some(Dir::ToServer));
        // dig's query: the question, then an OPT record (11 bytes) and a cookie (12 bytes).
        let q = captured()
            .into_iter()
            .find(|c| c.transport == "tcp")
            .unwrap()
            .bytes;
        assert_eq!(recognise_stream(&q[..q.len() - 23]), Some(Dir::ToServer));
        assert_eq!(recognise_stream(&q[..q.len() - 24]), None);
        // A prefix that does not match the counts.
        let mut short = q.clone();
        short[1] = 13;
        assert_eq!(recognise_stream(&short), None);
    }

    #[test]
    fn other_protocols_and_odd_headers_are_refused() {
        for not_dns in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"",
            b"\x00\x01",
        ] {
            assert_eq!(recognise_datagram(not_dns), None, "{not_dns:?}");
            assert_eq!(recognise_stream(not_dns), None, "{not_dns:?}");
        }
        let q = query(1, "a.test", 1);
        let mut bad = q.clone();
        bad[2] |= 3 << 3; // opcode 3 is unassigned
        assert_eq!(recognise_datagram(&bad), None);
        let mut bad = q.clone();
        bad[5] = 2; // two questions, one present
        assert_eq!(recognise_datagram(&bad), None);
        let mut bad = q.clone();
        let n = bad.len();
        bad[n - 1] = 9; // class 9 does not exist
        assert_eq!(recognise_datagram(&bad), None);
        assert_eq!(recognise_datagram(&q[..q.len() - 1]), None);
        // A response without a question: an error, or records alone (as mDNS sends them).
        let mut formerr = q[..12].to_vec();
        formerr[2..6].copy_from_slice(&[0x81, 0x81, 0, 0]);
        assert_eq!(recognise_datagram(&formerr), Some(Dir::ToClient));
        formerr[3] = 0x80;
        assert_eq!(recognise_datagram(&formerr), None);
        let mut records = formerr.clone();
        records[7] = 1;
        records.extend(b"\x05local\x00\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04\xc0\x00\x02\x01");
        assert_eq!(recognise_datagram(&records), Some(Dir::ToClient));
        records[22] = 9; // class 9 does not exist
        assert_eq!(recognise_datagram(&records), None);
    }

    #[test]
    fn random_bytes_are_almost_never_taken_for_dns() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut datagrams, mut streams) = (0, 0);
        let tries = 200_000;
        for i in 0..tries {
            let len = 12 + (rng.next() % 500) as usize;
            let mut bytes = rng.bytes(len);
            if i % 2 == 0 {
                // Give half of them the most common header shape, to test the rest.
                bytes[2..6].copy_from_slice(&[0x01, 0x00, 0x00, 0x01]);
            }
            datagrams += usize::from(recognise_datagram(&bytes).is_some());
            streams += usize::from(recognise_stream(&bytes).is_some());
        }
        assert!(
            datagrams * 1000 < tries,
            "{datagrams} of {tries} random datagrams accepted"
        );
        assert!(
            streams * 1000 < tries,
            "{streams} of {tries} random streams accepted"
        );
    }
}
