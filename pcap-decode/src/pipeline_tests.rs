//! The whole decoder, with the real parsers behind the transport layer: packets in,
//! roundtrips out, as `pcap decode` and pcapd use it.

use crate::testing::{ack, fin_ack, syn_ack, tcp4, SYN};
use crate::{DecodeConfig, Decoder, Packet, Proto, Roundtrip};

/// Feeds raw IPv4 packets one millisecond apart and returns the roundtrips.
fn decode(packets: &[Vec<u8>]) -> Vec<Roundtrip> {
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut out = Vec::new();
    for (i, data) in packets.iter().enumerate() {
        let p = Packet {
            link_type: 101,
            ts_ns: 1_000_000_000 + i as i64 * 1_000_000,
            data,
            orig_len: data.len() as u32,
            seq: i as u64 + 1,
        };
        dec.push(&p, &mut out);
    }
    dec.finish(&mut out);
    out
}

#[test]
fn http_keep_alive_pairs_two_requests_on_one_connection() {
    let (c, s) = (40_000u16, 8080u16);
    let req1 = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let resp1 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let req2 = "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n";
    let resp2 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let (mut cs, mut ss) = (1000u32, 5000u32);
    let mut p = vec![tcp4(c, s, cs, SYN, b"")];
    cs += 1;
    p.push(tcp4(s, c, ss, syn_ack(cs), b""));
    ss += 1;
    p.push(tcp4(c, s, cs, ack(ss), req1.as_bytes()));
    cs += req1.len() as u32;
    p.push(tcp4(s, c, ss, ack(cs), resp1.as_bytes()));
    ss += resp1.len() as u32;
    p.push(tcp4(c, s, cs, ack(ss), req2.as_bytes()));
    cs += req2.len() as u32;
    p.push(tcp4(s, c, ss, ack(cs), resp2.as_bytes()));
    ss += resp2.len() as u32;
    p.push(tcp4(c, s, cs, fin_ack(ss), b""));
    p.push(tcp4(s, c, ss, fin_ack(cs + 1), b""));
    let out = decode(&p);
    assert_eq!(out.len(), 2, "{out:#?}");
    let (a, b) = (&out[0], &out[1]);
    assert_eq!(a.proto, Proto::Http);
    assert_eq!(a.client.port(), c);
    assert_eq!(a.server.port(), s);
    assert_eq!(a.flow, b.flow);
    let (ha, hb) = (a.http.as_ref().unwrap(), b.http.as_ref().unwrap());
    assert_eq!(
        (ha.method.as_str(), ha.target.as_str(), ha.status),
        ("GET", "/a", Some(200))
    );
    assert_eq!(ha.response_body_bytes, 5);
    assert_eq!((hb.target.as_str(), hb.status), ("/missing", Some(404)));
    assert!(a.complete && b.complete, "{out:#?}");
    assert_eq!(a.packets, [3, 4]);
    assert_eq!(a.duration_ns, 1_000_000);
}

#[test]
fn dns_over_udp_pairs_a_query_with_its_answer_on_any_port() {
    let question = [&[1u8, b'a', 4][..], b"test", &[0, 0, 1, 0, 1]].concat();
    let query = [
        &[0x12u8, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
        &question,
    ]
    .concat();
    let answer = [
        &[0x12u8, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0][..],
        &question,
        &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 9],
    ]
    .concat();
    // 5353 is not DNS's port: recognised by content.
    let out = decode(&[
        crate::testing::udp4(45_000, 5353, &query),
        crate::testing::udp4(5353, 45_000, &answer),
    ]);
    assert_eq!(out.len(), 1, "{out:#?}");
    let rt = &out[0];
    assert_eq!(rt.proto, Proto::Dns);
    assert_eq!((rt.client.port(), rt.server.port()), (45_000, 5353));
    let dns = rt.dns.as_ref().unwrap();
    assert_eq!(
        (
            dns.id,
            dns.name.as_str(),
            dns.qtype.as_str(),
            dns.rcode.as_str()
        ),
        (0x1234, "a.test", "A", "NOERROR")
    );
    assert_eq!(dns.answers.len(), 1);
    assert_eq!(
        (dns.answers[0].ttl, dns.answers[0].data.as_str()),
        (60, "10.0.0.9")
    );
    assert!(rt.complete);
    assert_eq!(rt.packets, [1, 2]);
}

#[test]
fn answered_dns_flows_are_let_go_after_a_second_of_quiet_not_the_idle_timeout() {
    let question = [&[1u8, b'a', 4][..], b"test", &[0, 0, 1, 0, 1]].concat();
    let query = [
        &[0x12u8, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
        &question,
    ]
    .concat();
    let answer = [
        &[0x12u8, 0x34, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0][..],
        &question,
    ]
    .concat();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut out = Vec::new();
    let mut most_flows = 0;
    // 2000 lookups, each from a new port, 100 ms apart (200 s of traffic).
    for i in 0..2000u16 {
        let port = 20_000 + i;
        for (n, data) in [
            crate::testing::udp4(port, 53, &query),
            crate::testing::udp4(53, port, &answer),
        ]
        .iter()
        .enumerate()
        {
            let p = Packet {
                link_type: 101,
                ts_ns: 1_000_000_000 + i64::from(i) * 100_000_000 + n as i64 * 1_000_000,
                data,
                orig_len: data.len() as u32,
                seq: u64::from(i) * 2 + n as u64 + 1,
            };
            dec.push(&p, &mut out);
        }
        most_flows = most_flows.max(dec.stats().flows);
    }
    dec.finish(&mut out);
    assert_eq!(out.len(), 2000);
    assert!(out
        .iter()
        .all(|r| r.complete && r.dns.as_ref().unwrap().rcode == "NXDOMAIN"));
    // A second of quiet plus a tick: about 20 lookups' worth, not 2000.
    assert!(most_flows <= 30, "{most_flows} flows tracked at once");
}
