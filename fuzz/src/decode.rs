//! The decoder of `pcap decode` and of `pcapd --decode`: its input is whatever was on the
//! wire, so any bytes, cut into packets of any link type, must decode without a panic and
//! within the memory bound.
//!
//! Input: one byte choosing the bounds, then records of
//! `kind (1) | time step in ms (2, LE) | length (2, LE) | data`: a kind below 0xf0 is a
//! packet of link type `LINK_TYPES[kind % 8]`; 0xfe is a reader's gap of `length` packets,
//! 0xff the clock moving on (`advance`) without a packet.

use pcap_decode::{DecodeConfig, Decoder, Packet, Roundtrip};

/// The link types the decoder reads, and one it does not.
pub const LINK_TYPES: [u32; 8] = [1, 0, 108, 101, 12, 113, 276, 147];

/// Record kinds that are not packets.
pub const GAP: u8 = 0xfe;
pub const ADVANCE: u8 = 0xff;

/// Decodes `data` as packets (see the module documentation) with small bounds.
pub fn decode_packets(data: &[u8]) {
    let Some((&select, mut rest)) = data.split_first() else {
        return;
    };
    let config = DecodeConfig {
        max_flow_bytes: 256 << (select & 3),
        max_total_bytes: 1024 << ((select >> 2) & 3),
        max_flows: 2 + usize::from((select >> 4) & 7),
        idle_timeout_ns: 2_000_000_000,
        response_timeout_ns: 500_000_000,
        dns_timeout_ns: 300_000_000,
        max_header_value: 16,
        rules: if select & 0x80 != 0 {
            vec!["http:80".parse().unwrap(), "dns".parse().unwrap()]
        } else {
            Vec::new()
        },
    };
    let bound = config.max_total_bytes as u64;
    let max_flows = config.max_flows as u64;
    let mut dec = Decoder::new(config);
    let mut out: Vec<Roundtrip> = Vec::new();
    let mut ts_ns = 1_700_000_000_000_000_000i64;
    let mut seq = 0u64;
    while rest.len() >= 5 {
        let kind = rest[0];
        let step = i64::from(u16::from_le_bytes([rest[1], rest[2]]));
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        let body = &rest[5..5 + len];
        rest = &rest[5 + len..];
        ts_ns += step * 1_000_000;
        match kind {
            GAP => dec.gap(len as u64, ts_ns, &mut out),
            ADVANCE => dec.advance(ts_ns, &mut out),
            _ => {
                seq += 1;
                let packet = Packet {
                    link_type: LINK_TYPES[usize::from(kind % 8)],
                    ts_ns,
                    data: body,
                    orig_len: body.len() as u32 + u32::from(kind >> 4),
                    seq,
                };
                dec.push(&packet, &mut out);
            }
        }
        let stats = dec.stats();
        assert!(
            stats.buffered_bytes <= bound,
            "{} bytes buffered, over the bound of {bound}",
            stats.buffered_bytes
        );
        assert!(
            stats.flows <= max_flows,
            "{} flows, over {max_flows}",
            stats.flows
        );
        check(&out, seq);
        out.clear();
    }
    dec.finish(&mut out);
    check(&out, seq);
    let stats = dec.stats();
    assert_eq!(stats.buffered_bytes, 0, "bytes still buffered after finish");
    assert_eq!(stats.flows, 0, "flows still tracked after finish");
    assert_eq!(stats.packets, seq);
}

/// What the transport layer promises of every roundtrip: a flow id from 1, and packets
/// that were fed.
fn check(out: &[Roundtrip], last_seq: u64) {
    for rt in out {
        assert!(rt.flow >= 1, "flow ids count from 1");
        assert!(
            rt.packets[1] <= last_seq,
            "packets {:?} were never fed (last {last_seq})",
            rt.packets
        );
    }
}

/// Encodes packets as an input of [`decode_packets`].
pub fn encode(select: u8, records: &[(u8, u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![select];
    for (kind, step_ms, data) in records {
        out.push(*kind);
        out.extend_from_slice(&step_ms.to_le_bytes());
        out.extend_from_slice(&(data.len() as u16).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Seeds: small valid conversations on each link type (see `seeds.rs`).
pub fn seeds() -> Vec<Vec<u8>> {
    use etherparse::{PacketBuilder, TcpHeader};

    let tcp = |c: bool, seq: u32, ack: u32, flags: &str, data: &[u8]| {
        let (sp, dp, src, dst) = if c {
            (40000, 80, [10, 0, 0, 1], [10, 0, 0, 2])
        } else {
            (80, 40000, [10, 0, 0, 2], [10, 0, 0, 1])
        };
        let mut h = TcpHeader::new(sp, dp, seq, 65535);
        h.syn = flags.contains('S');
        h.fin = flags.contains('F');
        h.rst = flags.contains('R');
        if flags.contains('A') {
            h.ack = true;
            h.acknowledgment_number = ack;
        }
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .tcp_header(h)
            .write(&mut out, data)
            .unwrap();
        out
    };
    let req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let rsp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let (q, r) = (req.len() as u32, rsp.len() as u32);
    let http = vec![
        tcp(true, 1, 0, "S", b""),
        tcp(false, 100, 2, "SA", b""),
        tcp(true, 2, 101, "A", b""),
        tcp(true, 2, 101, "A", req),
        tcp(false, 101, 2 + q, "A", rsp),
        tcp(true, 2 + q, 101 + r, "FA", b""),
        tcp(false, 101 + r, 3 + q, "FA", b""),
    ];
    let ether = |ip: &[u8]| [&[2u8, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0][..], ip].concat();
    let vlan = |ip: &[u8]| {
        [
            &[2u8, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 5, 8, 0][..],
            ip,
        ]
        .concat()
    };
    let sll2 = |ip: &[u8]| [&[8u8, 0, 0, 0][..], &[0; 16], ip].concat();
    let null = |ip: &[u8]| [&2u32.to_le_bytes()[..], ip].concat();
    let records = |link: u8, wrap: &dyn Fn(&[u8]) -> Vec<u8>, packets: &[Vec<u8>]| {
        packets
            .iter()
            .map(|p| (link, 1, wrap(p)))
            .collect::<Vec<_>>()
    };
    let plain = |ip: &[u8]| ip.to_vec();

    // DNS over UDP: a query for a.test and its answer.
    let dns_q = [
        &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
        b"\x01a\x04test\x00\x00\x01\x00\x01",
    ]
    .concat();
    let mut dns_a = dns_q.clone();
    dns_a[2] = 0x81;
    dns_a[3] = 0x80;
    dns_a[7] = 1;
    dns_a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    let udp = |c: bool, data: &[u8]| {
        let (sp, dp, src, dst) = if c {
            (40000, 53, [10, 0, 0, 1], [10, 0, 0, 2])
        } else {
            (53, 40000, [10, 0, 0, 2], [10, 0, 0, 1])
        };
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(sp, dp)
            .write(&mut out, data)
            .unwrap();
        out
    };
    let dns = vec![udp(true, &dns_q), udp(false, &dns_a)];

    let mut out_of_order = http.clone();
    out_of_order.swap(3, 4);
    let mut with_gap = records(3, &plain, &http[..4]);
    with_gap.push((GAP, 1, vec![0; 3]));
    with_gap.extend(records(3, &plain, &http[4..]));
    with_gap.push((ADVANCE, 5000, Vec::new()));

    // A selector with 0x80 set has rules naming port 80, so that TCP is decoded whatever
    // the HTTP recogniser says.
    vec![
        encode(0xbf, &records(0, &ether, &http)),
        encode(0x80, &records(0, &vlan, &out_of_order)),
        encode(0x15, &records(6, &sll2, &dns)),
        encode(0x2a, &records(1, &null, &http)),
        encode(
            0x80,
            &records(3, &plain, &[http.clone(), dns.clone()].concat()),
        ),
        encode(0x85, &with_gap),
    ]
}
