//! The HTTP/2 parser (frames, HPACK, streams, gRPC counting) and the TLS hello reader of
//! `pcap-decode`, fed as the transport layer feeds them: bytes per direction, holes, ends.
//!
//! Input: one byte of options (bit 0: a connection upgraded from HTTP/1.1; bit 1: small
//! limits), then events, each an op byte: bit 7 is the direction (set: server to client),
//! bits 4-6 the kind: 0-3 bytes (a 2-byte little-endian length, then that many bytes),
//! 4 a hole of (next byte × 37) bytes, 5 a hole of unknown length, 6 the direction's end
//! (bit 0: by RST), 7 a tick. The connection is closed at the end of the input.

use pcap_decode::http2::hpack::HeaderDecoder;
use pcap_decode::http2::{self, Http2Parser, UpgradedRequest};
use pcap_decode::stream::{CloseReason, Detail, Dir, Exchange, Meta, ParserLimits, StreamParser};
use pcap_decode::tls::{self, TlsParser};

fn limits(options: u8) -> ParserLimits {
    if options & 2 != 0 {
        ParserLimits {
            max_buffer: 1024,
            max_header_value: 16,
            max_pending: 4,
            response_timeout_ns: 1_000_000_000,
        }
    } else {
        ParserLimits::default()
    }
}

/// Runs the events of `data` through `parser`, checking what comes out after each.
fn run(parser: &mut dyn StreamParser, data: &[u8], bound: usize, check: fn(&Exchange)) {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        seq += 1;
        let meta = Meta {
            ts_ns: seq as i64 * 1_000_000,
            seq,
        };
        let dir = if op & 0x80 != 0 {
            Dir::ToClient
        } else {
            Dir::ToServer
        };
        match (op >> 4) & 7 {
            0..=3 => {
                let len = match rest {
                    [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
                    _ => rest.len(),
                };
                rest = rest.get(2..).unwrap_or_default();
                let (bytes, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                parser.data(dir, bytes, meta, &mut out);
            }
            4 => {
                let len = rest.first().map_or(0, |b| u64::from(*b) * 37);
                rest = rest.get(1..).unwrap_or_default();
                parser.hole(dir, Some(len), meta, &mut out);
            }
            5 => parser.hole(dir, None, meta, &mut out),
            6 => parser.end(dir, op & 1 == 1, meta, &mut out),
            _ => parser.tick(meta.ts_ns + i64::from(op & 0xf) * 10_000_000_000, &mut out),
        }
        assert!(
            parser.buffered() <= bound,
            "{} bytes buffered, more than {bound}",
            parser.buffered()
        );
        out.iter().for_each(check);
        out.clear();
    }
    parser.close(CloseReason::EndOfInput, Meta::default(), &mut out);
    out.iter().for_each(check);
}

/// HTTP/2: frames and header blocks from both sides, holes, ends.
pub fn http2(data: &[u8]) {
    let Some((&options, events)) = data.split_first() else {
        return;
    };
    let _ = http2::recognise(&events[..events.len().min(256)]);
    // Header blocks straight into both HPACK decoders.
    for synced in [true, false] {
        let mut decoder = HeaderDecoder::new(synced);
        for block in events.chunks(97) {
            let _ = decoder.decode(block, &mut |_, _| {});
        }
        assert!(decoder.buffered() <= 1 << 17);
    }
    let limits = limits(options);
    let mut parser = if options & 1 != 0 {
        Http2Parser::upgraded(
            limits,
            UpgradedRequest {
                method: "GET".into(),
                path: "/".into(),
                authority: "a.test".into(),
                ..UpgradedRequest::default()
            },
        )
    } else {
        Http2Parser::new(limits)
    };
    // Frame readers and pending blocks (max_buffer each), two tables of at most 64 KiB,
    // and streams of at most 64 capped headers per side.
    let per_stream = 1024 + 2 * 64 * (2 * (limits.max_header_value + 4) + 48) + 512;
    let bound = 8 * limits.max_buffer.max(1024) + (2 << 16) + limits.max_pending * per_stream;
    run(&mut parser, events, bound, |ex| {
        assert!(ex.end.seq >= ex.start.seq || ex.end.seq == 0, "{ex:?}");
        assert!(
            matches!(ex.detail, Detail::Http2(_) | Detail::Grpc(..)),
            "{ex:?}"
        );
    });
}

/// TLS: the hellos in records split anywhere, holes, ends.
pub fn tls_hello(data: &[u8]) {
    let Some((&options, events)) = data.split_first() else {
        return;
    };
    let _ = tls::recognise(events);
    let limits = limits(options);
    let mut parser = TlsParser::new(limits);
    run(
        &mut parser,
        events,
        2 * limits.max_buffer.min(1 << 16) + 64,
        |ex| {
            assert!(matches!(ex.detail, Detail::Tls(_)), "{ex:?}");
        },
    );
}

// === seeds ===

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header field as a literal with incremental indexing and a new name.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x40, name.len() as u8];
    out.extend(name.as_bytes());
    out.push(value.len() as u8);
    out.extend(value.as_bytes());
    out
}

/// Events: bytes from one side.
fn bytes(to_client: bool, b: &[u8]) -> Vec<u8> {
    let mut out = vec![if to_client { 0x80 } else { 0 }];
    out.extend((b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
    out
}

fn script(options: u8, events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![options];
    for e in events {
        out.extend(e);
    }
    out
}

/// A gRPC message with its 5-byte prefix.
fn message(flag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend((len as u32).to_be_bytes());
    out.extend(std::iter::repeat_n(7, len));
    out
}

/// Seeds of the `http2` target: a prior-knowledge connection with two requests (the second
/// referring to the dynamic table), CONTINUATION, padding, PRIORITY, RST_STREAM, GOAWAY,
/// PUSH_PROMISE, gRPC calls, a start mid-stream, holes, an upgrade, and HTTP/1.
pub fn http2_seeds() -> Vec<Vec<u8>> {
    let mut client = PREFACE.to_vec();
    client.extend(frame(4, 0, 0, &[0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0x40, 0]));
    client.extend(frame(2, 0, 3, &[0, 0, 0, 0, 200]));
    let mut req = vec![0x82, 0x86, 0x84];
    req.extend(literal(":authority", "a.test"));
    req.extend(literal("x-trace", "1"));
    client.extend(frame(1, 0x5, 1, &req));
    client.extend(frame(1, 0x5, 3, &[0x82, 0x86, 0x85, 0xbf, 0xbe]));
    let mut server = frame(4, 0, 0, &[]);
    server.extend(frame(4, 1, 0, &[]));
    server.extend(frame(1, 0x4, 1, &[0x88]));
    server.extend(frame(0, 0x9, 1, &[2, b'o', b'k', 0, 0]));
    server.extend(frame(1, 0x5, 3, &[0x20, 0x8d]));
    let prior = script(0, &[bytes(false, &client), bytes(true, &server)]);

    // CONTINUATION, RST_STREAM, PUSH_PROMISE, GOAWAY.
    let mut c2 = PREFACE.to_vec();
    c2.extend(frame(1, 0, 1, &[0x82, 0x86]));
    c2.extend(frame(9, 0x4, 1, &[0x84]));
    c2.extend(frame(1, 0x5, 3, &[0x82, 0x86, 0x84]));
    c2.extend(frame(3, 0, 3, &8u32.to_be_bytes()));
    let mut s2 = frame(4, 0, 0, &[0, 1, 0, 0, 0, 0]);
    let mut promise = 2u32.to_be_bytes().to_vec();
    promise.extend([0x82, 0x86, 0x85]);
    s2.extend(frame(5, 0x4, 1, &promise));
    s2.extend(frame(1, 0x4, 2, &[0x88]));
    s2.extend(frame(7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 2]));
    let control = script(0, &[bytes(false, &c2), bytes(true, &s2), vec![0x60]]);

    // gRPC: a request message, response headers, messages and trailers.
    let mut c3 = PREFACE.to_vec();
    let mut greq = vec![0x83, 0x86];
    greq.extend(literal(":path", "/pkg.Svc/Call"));
    greq.extend(literal("content-type", "application/grpc"));
    greq.extend(literal("grpc-timeout", "1S"));
    c3.extend(frame(1, 0x4, 1, &greq));
    c3.extend(frame(0, 0x1, 1, &message(0, 3)));
    let mut s3 = frame(4, 0, 0, &[]);
    let mut gresp = vec![0x88];
    gresp.extend(literal("content-type", "application/grpc"));
    s3.extend(frame(1, 0x4, 1, &gresp));
    let mut msgs = message(1, 20);
    msgs.extend(message(0, 300));
    s3.extend(frame(0, 0, 1, &msgs[..100]));
    s3.extend(frame(0, 0, 1, &msgs[100..]));
    let mut trailers = literal("grpc-status", "2");
    trailers.extend(literal("grpc-message", "bad%20thing"));
    s3.extend(frame(1, 0x5, 1, &trailers));
    let grpc = script(
        2,
        &[
            bytes(false, &c3),
            bytes(true, &s3[..150]),
            bytes(true, &s3[150..]),
        ],
    );

    // Mid-stream: the tail of a DATA frame, frames referring to unseen entries, holes.
    let mut c4 = vec![0x61; 50];
    c4.extend(frame(0, 0x1, 5, b"tail"));
    c4.extend(frame(1, 0x5, 7, &[0x82, 0xc0, 0xbe, 0x84]));
    let mut s4 = vec![0x62; 30];
    s4.extend(frame(1, 0x4, 7, &[0x88, 0xbf]));
    s4.extend(frame(0, 0, 7, &[1; 40]));
    let mid = script(
        0,
        &[
            bytes(false, &c4),
            bytes(true, &s4[..60]),
            vec![0xc0, 1],
            bytes(true, &s4[60..]),
            vec![0xd0],
            bytes(true, &frame(0, 1, 7, b"end")),
            vec![0x70],
        ],
    );

    let upgraded = script(
        1,
        &[
            bytes(true, &frame(4, 0, 0, &[])),
            bytes(false, PREFACE),
            bytes(true, &frame(1, 0x5, 1, &[0x88])),
        ],
    );
    vec![
        prior,
        control,
        grpc,
        mid,
        upgraded,
        script(0, &[bytes(false, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]),
    ]
}

/// A handshake message in records of at most `split` bytes.
fn records(kind: u8, body: &[u8], split: usize) -> Vec<u8> {
    let mut msg = vec![kind];
    msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(body);
    let mut out = Vec::new();
    for chunk in msg.chunks(split) {
        out.extend([22, 3, 1]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend((data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Seeds of the `tls_hello` target: a ClientHello with SNI, ALPN and supported_versions
/// (whole and split over records), a ServerHello, application data, and plain text.
pub fn tls_seeds() -> Vec<Vec<u8>> {
    let mut body = vec![3, 3];
    body.extend([0x11; 32]);
    body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    let mut exts = ext(0, &[0, 9, 0, 0, 6, b'a', b'.', b't', b'e', b's', b't']);
    exts.extend(ext(
        16,
        &[
            0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
        ],
    ));
    exts.extend(ext(43, &[4, 3, 4, 3, 3]));
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let client = records(1, &body, 1 << 14);
    let split = records(1, &body, 40);
    let mut sbody = vec![3, 3];
    sbody.extend([0x22; 32]);
    sbody.extend([0, 0x13, 0x01, 0]);
    let sext = ext(43, &[3, 4]);
    sbody.extend((sext.len() as u16).to_be_bytes());
    sbody.extend(sext);
    let server = records(2, &sbody, 1 << 14);
    vec![
        script(0, &[bytes(false, &client), bytes(true, &server)]),
        script(
            2,
            &[
                bytes(false, &split[..70]),
                bytes(false, &split[70..]),
                vec![0x60],
            ],
        ),
        script(
            0,
            &[
                bytes(false, &client[..30]),
                vec![0x40, 3],
                bytes(true, &server),
            ],
        ),
        script(0, &[bytes(false, &[23, 3, 3, 0, 4, 1, 2, 3, 4])]),
        script(0, &[bytes(false, b"GET / HTTP/1.1\r\n\r\n")]),
    ]
}
