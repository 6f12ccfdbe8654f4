//! The DNS parsers of pcap-decode (`DnsUdp`, `DnsTcp`) and DNS recognition, fed what a
//! capture holds: any bytes, as datagrams or stream chunks in both directions, with holes,
//! time passing and connections ending.

use pcap_decode::dns::{recognise_datagram, recognise_stream, DnsTcp, DnsUdp};
use pcap_decode::stream::{
    CloseReason, DatagramParser, Detail, Dir, Exchange, Meta, ParserLimits, StreamParser,
};

/// Small limits, so that the fuzzer reaches them.
const LIMITS: ParserLimits = ParserLimits {
    max_buffer: 256,
    max_header_value: 32,
    max_pending: 4,
    response_timeout_ns: 1_000_000_000,
};

/// Most bytes either parser may hold with [`LIMITS`]: two framing buffers (a Vec may
/// double past the limit) and four pending queries with their names and notes.
const MAX_BUFFERED: usize = 4 * 256 + 4 * 2048 + 1024;

/// The input is a list of operations, each starting with a byte `op`:
/// - `op & 3 == 0`: a length byte, then that many bytes, sent in direction `op >> 2 & 1`
///   (0: to the server) as a UDP datagram and as TCP bytes;
/// - `1`: a hole in the TCP direction, of the length in the next byte (0: unknown);
/// - `2`: time passes by `op >> 3` tenths of a second, then both parsers tick;
/// - `3`: the TCP direction ends, by RST when `op & 8`.
///
/// Neither parser may panic, hold more than [`MAX_BUFFERED`] bytes, or report a DNS
/// exchange that is incomplete without a note or ends before it starts.
pub fn dns(data: &[u8]) {
    let mut udp = DnsUdp::new(LIMITS);
    let mut tcp = DnsTcp::new(LIMITS);
    let mut out = Vec::new();
    let mut meta = Meta {
        ts_ns: 1_795_000_000_000_000_000,
        seq: 0,
    };
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        meta.seq += 1;
        let dir = if op >> 2 & 1 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        match op & 3 {
            0 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let (bytes, tail) = tail.split_at(usize::from(len).min(tail.len()));
                rest = tail;
                let _ = recognise_datagram(bytes);
                let _ = recognise_stream(bytes);
                udp.datagram(dir, bytes, meta, &mut out);
                tcp.data(dir, bytes, meta, &mut out);
            }
            1 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                let len = (len != 0).then_some(u64::from(len));
                tcp.hole(dir, len, meta, &mut out);
            }
            2 => {
                meta.ts_ns += i64::from(op >> 3) * 100_000_000;
                udp.tick(meta.ts_ns, &mut out);
                tcp.tick(meta.ts_ns, &mut out);
            }
            _ => tcp.end(dir, op & 8 != 0, meta, &mut out),
        }
        assert!(
            udp.buffered() <= MAX_BUFFERED,
            "udp holds {}",
            udp.buffered()
        );
        assert!(
            tcp.buffered() <= MAX_BUFFERED,
            "tcp holds {}",
            tcp.buffered()
        );
        check(&mut out);
    }
    udp.close(CloseReason::EndOfInput, meta, &mut out);
    tcp.close(CloseReason::EndOfInput, meta, &mut out);
    check(&mut out);
    assert_eq!(udp.buffered(), 0);
}

fn check(out: &mut Vec<Exchange>) {
    for e in out.drain(..) {
        assert!(matches!(e.detail, Detail::Dns(_)), "{e:?}");
        assert!(
            e.complete || !e.notes.is_empty(),
            "incomplete without a note: {e:?}"
        );
        assert!(
            e.start.seq <= e.end.seq && e.start.ts_ns <= e.end.ts_ns,
            "{e:?}"
        );
    }
}

/// Seeds: real dig and dnsmasq traffic (UDP and TCP), cut, retransmitted, timed out and
/// holed.
pub fn seeds() -> Vec<Vec<u8>> {
    let real: Vec<(bool, u8, Vec<u8>)> =
        include_str!("../../pcap-decode/testdata/dns/messages.txt")
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let bytes = (0..f[3].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&f[3][i..i + 2], 16).expect("hex"))
                    .collect();
                (f[0] == "tcp", if f[2] == "q" { 0 } else { 4 }, bytes)
            })
            .collect();
    let send = |op: u8, bytes: &[u8]| -> Vec<u8> {
        let mut v = vec![op, bytes.len().min(255) as u8];
        v.extend_from_slice(&bytes[..bytes.len().min(255)]);
        v
    };
    let mut seeds = Vec::new();
    for pair in real.chunks(2) {
        let mut s: Vec<u8> = pair.iter().flat_map(|(_, op, b)| send(*op, b)).collect();
        seeds.push(s.clone());
        // The same, cut in two, with a hole, a timeout and an end.
        let (_, op, b) = &pair[1];
        let half = b.len() / 2;
        s.extend(send(*op, &b[..half]));
        s.extend([1 | op, 3]);
        s.extend(send(*op, &b[half + 3..]));
        s.extend([2 | 0xf8, 3 | 8 | op]);
        seeds.push(s);
    }
    // Several queries in flight, a retransmission, and answers out of order.
    let udp: Vec<&Vec<u8>> = real.iter().filter(|r| !r.0).map(|r| &r.2).collect();
    let mut s = Vec::new();
    for q in udp.iter().step_by(2).take(6) {
        s.extend(send(0, q));
    }
    s.extend(send(0, udp[2]));
    for r in udp.iter().skip(1).step_by(2).take(6).rev() {
        s.extend(send(4, r));
    }
    seeds.push(s);
    seeds
}
