//! Connections built frame by frame (header blocks by `loona_hpack`'s encoder, or by hand
//! where a test needs a representation that encoder does not write).

use loona_hpack::Encoder;

use super::frames::*;
use super::*;
use crate::roundtrip::{GrpcCall, Http2Exchange};
use crate::stream::Detail;

pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub(crate) fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in pairs {
        payload.extend(id.to_be_bytes());
        payload.extend(value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

fn grpc_message(flag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend((len as u32).to_be_bytes());
    out.extend(std::iter::repeat_n(0x2a, len));
    out
}

/// Both sides of one connection, with an HPACK encoder each.
pub(crate) struct Wire {
    pub parser: Http2Parser,
    pub out: Vec<Exchange>,
    pub seq: u64,
    encoders: [Encoder<'static>; 2],
}

impl Wire {
    pub fn new() -> Self {
        Wire::with(Http2Parser::new(ParserLimits::default()))
    }

    pub fn with(parser: Http2Parser) -> Self {
        Wire {
            parser,
            out: Vec::new(),
            seq: 0,
            encoders: [Encoder::new(), Encoder::new()],
        }
    }

    fn meta(&mut self) -> Meta {
        self.seq += 1;
        Meta {
            ts_ns: self.seq as i64 * 1_000_000,
            seq: self.seq,
        }
    }

    pub fn send(&mut self, dir: Dir, bytes: &[u8]) {
        let meta = self.meta();
        self.parser.data(dir, bytes, meta, &mut self.out);
    }

    pub fn hole(&mut self, dir: Dir, len: Option<u64>) {
        let meta = self.meta();
        self.parser.hole(dir, len, meta, &mut self.out);
    }

    pub fn close(&mut self) {
        let meta = self.meta();
        self.parser.close(CloseReason::Ended, meta, &mut self.out);
    }

    /// A header block encoded by `dir`'s encoder.
    pub fn block(&mut self, dir: Dir, fields: &[(&str, &str)]) -> Vec<u8> {
        self.encoders[side(dir)].encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    pub fn headers(
        &mut self,
        dir: Dir,
        stream: u32,
        flags: u8,
        fields: &[(&str, &str)],
    ) -> Vec<u8> {
        let block = self.block(dir, fields);
        frame(HEADERS, flags | END_HEADERS, stream, &block)
    }

    /// The client preface and both sides' SETTINGS.
    pub fn start(&mut self) {
        let mut client = PREFACE.to_vec();
        client.extend(settings(&[(3, 100), (4, 65535)]));
        self.send(Dir::ToServer, &client);
        self.send(Dir::ToClient, &settings(&[(3, 100)]));
        self.send(Dir::ToServer, &frame(SETTINGS, ACK, 0, &[]));
        self.send(Dir::ToClient, &frame(SETTINGS, ACK, 0, &[]));
    }

    pub fn get(&mut self, stream: u32, path: &str) {
        let f = self.headers(
            Dir::ToServer,
            stream,
            END_STREAM,
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "127.0.0.1:8080"),
                (":path", path),
                ("user-agent", "nghttp2/1.52.0"),
                ("x-request", path),
            ],
        );
        self.send(Dir::ToServer, &f);
    }

    pub fn respond(&mut self, stream: u32, status: &str, body: usize) {
        let f = self.headers(
            Dir::ToClient,
            stream,
            if body == 0 { END_STREAM } else { 0 },
            &[
                (":status", status),
                ("server", "nghttpd"),
                ("content-length", &body.to_string()),
            ],
        );
        self.send(Dir::ToClient, &f);
        if body > 0 {
            self.send(
                Dir::ToClient,
                &frame(DATA, END_STREAM, stream, &vec![b'x'; body]),
            );
        }
    }

    pub fn take(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.out)
    }
}

fn http2(ex: &Exchange) -> &Http2Exchange {
    match &ex.detail {
        Detail::Http2(h) | Detail::Grpc(h, _) => h,
        other => panic!("not HTTP/2: {other:?}"),
    }
}

fn grpc(ex: &Exchange) -> (&Http2Exchange, &GrpcCall) {
    match &ex.detail {
        Detail::Grpc(h, g) => (h, g),
        other => panic!("not gRPC: {other:?}"),
    }
}

fn header<'a>(list: &'a [Header], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_str())
}

#[test]
fn interleaved_requests_on_one_connection() {
    let mut w = Wire::new();
    w.start();
    w.get(1, "/a");
    w.get(3, "/b");
    w.get(5, "/c");
    w.respond(3, "404", 10);
    w.respond(1, "200", 100);
    w.respond(5, "204", 0);
    let out = w.take();
    let got: Vec<_> = out
        .iter()
        .map(|e| (http2(e).stream, http2(e).path.as_str(), http2(e).status))
        .collect();
    assert_eq!(
        got,
        [
            (3, "/b", Some(404)),
            (1, "/a", Some(200)),
            (5, "/c", Some(204))
        ]
    );
    let first = &out[1];
    assert!(first.complete, "{first:?}");
    assert!(first.notes.is_empty(), "{first:?}");
    let h = http2(first);
    assert_eq!((h.method.as_str(), h.scheme.as_str()), ("GET", "http"));
    assert_eq!(h.authority, "127.0.0.1:8080");
    assert_eq!(h.response_body_bytes, 100);
    assert_eq!(header(&h.request_headers, "x-request"), Some("/a"));
    assert!(h.request_headers.iter().all(|h| !h.name.starts_with(':')));
    assert_eq!(header(&h.response_headers, "server"), Some("nghttpd"));
    // From the request's HEADERS (packet 5) to the response's END_STREAM.
    assert_eq!(first.start.seq, 5);
    assert_eq!(first.end.seq, 11);
    w.close();
    assert!(w.take().is_empty());
}

#[test]
fn continuation_frames_and_padding() {
    let mut w = Wire::new();
    w.start();
    let block = w.block(
        Dir::ToServer,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "a.test"),
            (":path", "/upload"),
            ("x-long", &"v".repeat(300)),
        ],
    );
    // HEADERS padded with 7 bytes and a priority, then two CONTINUATION frames.
    let mut payload = vec![7];
    payload.extend([0, 0, 0, 0, 15]);
    payload.extend(&block[..10]);
    payload.extend([0; 7]);
    w.send(
        Dir::ToServer,
        &frame(HEADERS, PADDED | PRIORITY_FLAG, 1, &payload),
    );
    w.send(Dir::ToServer, &frame(CONTINUATION, 0, 1, &block[10..50]));
    w.send(
        Dir::ToServer,
        &frame(CONTINUATION, END_HEADERS, 1, &block[50..]),
    );
    let mut data = vec![3];
    data.extend(b"hello");
    data.extend([0; 3]);
    w.send(Dir::ToServer, &frame(DATA, PADDED, 1, &data));
    w.send(Dir::ToServer, &frame(DATA, END_STREAM, 1, b"!"));
    w.respond(1, "201", 0);
    let out = w.take();
    assert_eq!(out.len(), 1);
    let h = http2(&out[0]);
    assert_eq!(
        (h.method.as_str(), h.path.as_str(), h.status),
        ("POST", "/upload", Some(201))
    );
    assert_eq!(h.request_body_bytes, 6);
    // Values are capped at 256 bytes, and say so.
    let long = header(&h.request_headers, "x-long").unwrap();
    assert!(
        long.ends_with('…') && long.len() == 256 + '…'.len_utf8(),
        "{long}"
    );
}

#[test]
fn priority_frames_on_idle_streams_are_not_roundtrips() {
    let mut w = Wire::new();
    w.start();
    // What nghttp sends first: PRIORITY frames building a dependency tree.
    for (stream, weight) in [(3, 200), (5, 100), (7, 0), (9, 0), (11, 0)] {
        w.send(
            Dir::ToServer,
            &frame(PRIORITY, 0, stream, &[0, 0, 0, 0, weight]),
        );
    }
    w.get(13, "/");
    w.respond(13, "200", 5);
    w.close();
    let out = w.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(http2(&out[0]).stream, 13);
}

#[test]
fn rst_stream_cancel_and_goaway() {
    let mut w = Wire::new();
    w.start();
    w.get(1, "/slow");
    w.get(3, "/never");
    w.get(5, "/late");
    w.send(Dir::ToServer, &frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    let out = w.take();
    assert_eq!(out.len(), 1);
    assert_eq!(http2(&out[0]).reset, "CANCEL");
    assert!(!out[0].complete);
    assert!(
        out[0].notes[0].contains("reset by the client (CANCEL)"),
        "{:?}",
        out[0].notes
    );
    // The server processed stream 3 only.
    let mut goaway = 3u32.to_be_bytes().to_vec();
    goaway.extend(0u32.to_be_bytes());
    w.send(Dir::ToClient, &frame(GOAWAY, 0, 0, &goaway));
    let out = w.take();
    assert_eq!(out.len(), 1);
    assert_eq!(http2(&out[0]).stream, 5);
    assert!(
        out[0].notes.iter().any(|n| n.contains("GOAWAY (NO_ERROR)")),
        "{:?}",
        out[0].notes
    );
    // A late frame of the reset stream opens nothing.
    w.send(Dir::ToClient, &frame(WINDOW_UPDATE, 0, 1, &[0, 0, 1, 0]));
    w.respond(3, "200", 1);
    w.close();
    let out = w.take();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (http2(&out[0]).stream, http2(&out[0]).status),
        (3, Some(200))
    );
}

#[test]
fn a_connection_closed_with_open_streams_says_so() {
    let mut w = Wire::new();
    w.start();
    w.get(1, "/x");
    let mut goaway = 1u32.to_be_bytes().to_vec();
    goaway.extend(2u32.to_be_bytes());
    w.send(Dir::ToClient, &frame(GOAWAY, 0, 0, &goaway));
    w.close();
    let out = w.take();
    assert_eq!(out.len(), 1);
    assert!(!out[0].complete);
    assert_eq!(
        out[0].notes,
        ["the connection closed before the stream ended (after GOAWAY (INTERNAL_ERROR) from the server)"]
    );
}

#[test]
fn push_promise_is_a_roundtrip_of_its_own() {
    let mut w = Wire::new();
    w.start();
    w.get(1, "/index.html");
    let block = w.block(
        Dir::ToClient,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "127.0.0.1:8080"),
            (":path", "/style.css"),
        ],
    );
    let mut payload = 2u32.to_be_bytes().to_vec();
    payload.extend(block);
    w.send(
        Dir::ToClient,
        &frame(PUSH_PROMISE, END_HEADERS, 1, &payload),
    );
    w.respond(1, "200", 20);
    w.respond(2, "200", 30);
    let out = w.take();
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            (
                http2(e).stream,
                http2(e).path.as_str(),
                http2(e).response_body_bytes,
            )
        })
        .collect();
    assert_eq!(got, [(1, "/index.html", 20), (2, "/style.css", 30)]);
    assert!(out[1].complete);
    assert_eq!(
        out[1].notes,
        ["pushed by the server (promised on stream 1)"]
    );
}

#[test]
fn dynamic_table_across_requests_and_a_table_size_change() {
    let mut w = Wire::new();
    w.start();
    for (i, stream) in [1, 3, 5].into_iter().enumerate() {
        w.get(stream, "/same");
        // The client's SETTINGS_HEADER_TABLE_SIZE of 256 makes the server's encoder shrink
        // its table; its blocks begin with a size update, then evict as they insert.
        let mut block = if i == 0 {
            vec![0x3f, 0xe1, 0x01]
        } else {
            vec![]
        };
        block.push(0x88);
        // x-big: 60 bytes (98 in the table), inserted (literal with incremental indexing,
        // new name): the third evicts the first.
        let value = format!("{i}{}", "v".repeat(59));
        block.extend([0x40, 5]);
        block.extend(b"x-big");
        block.push(value.len() as u8);
        block.extend(value.as_bytes());
        if i > 0 {
            // The entry inserted by the previous response, now at 63.
            block.push(0x80 | 63);
        }
        w.send(
            Dir::ToClient,
            &frame(HEADERS, END_HEADERS | END_STREAM, stream, &block),
        );
    }
    let out = w.take();
    assert_eq!(out.len(), 3);
    for (i, ex) in out.iter().enumerate() {
        let h = http2(ex);
        assert!(ex.complete, "{ex:?}");
        assert_eq!(h.path, "/same");
        assert_eq!(
            header(&h.request_headers, "user-agent"),
            Some("nghttp2/1.52.0")
        );
        let values: Vec<_> = h
            .response_headers
            .iter()
            .map(|h| h.value.chars().next().unwrap())
            .collect();
        let expected: Vec<char> = match i {
            0 => vec!['0'],
            1 => vec!['1', '0'],
            _ => vec!['2', '1'],
        };
        assert_eq!(values, expected, "{h:?}");
    }
}

#[test]
fn first_seen_mid_stream() {
    let common = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "127.0.0.1:8080"),
        ("user-agent", "nghttp2/1.52.0"),
    ];
    let with = |path: &'static str, more: &[(&'static str, &'static str)]| {
        let mut fields = common.to_vec();
        fields.push((":path", path));
        fields.extend_from_slice(more);
        fields
    };
    // The encoders' tables fill before the capture begins: x-request and x-trace are
    // inserted (the encoder inserts fields whose name no table has).
    let mut before = Wire::new();
    before.start();
    let f = before.headers(
        Dir::ToServer,
        1,
        END_STREAM,
        &with("/upload", &[("x-request", "/upload"), ("x-trace", "abc")]),
    );
    before.send(Dir::ToServer, &f);
    before.respond(1, "200", 0);
    let mut w = Wire::new();
    w.encoders = std::mem::replace(&mut before.encoders, [Encoder::new(), Encoder::new()]);
    // The capture begins inside a DATA frame of stream 7 (a request body), and inside a
    // DATA frame of stream 7's response.
    let mut client = vec![0x55; 700];
    client.extend(frame(DATA, END_STREAM, 7, b"last"));
    // x-request refers to its whole entry, x-trace to its name; x-new is inserted now.
    let request = w.headers(
        Dir::ToServer,
        9,
        END_STREAM,
        &with(
            "/next",
            &[("x-request", "/upload"), ("x-trace", "def"), ("x-new", "1")],
        ),
    );
    client.extend(&request);
    w.send(Dir::ToServer, &client);
    let mut server = vec![0x66; 1000];
    server.extend(frame(DATA, END_STREAM, 7, b"done"));
    w.send(Dir::ToClient, &server);
    w.respond(9, "200", 3);
    // x-new is the newest entry, at 62: it decodes.
    let f = w.headers(
        Dir::ToServer,
        11,
        END_STREAM,
        &with("/third", &[("x-new", "1")]),
    );
    w.send(Dir::ToServer, &f);
    w.respond(11, "200", 0);
    let out = w.take();
    assert_eq!(out.len(), 3, "{out:#?}");
    let (seven, nine, eleven) = (&out[0], &out[1], &out[2]);
    assert_eq!(http2(seven).stream, 7);
    assert!(!seven.complete);
    assert!(seven
        .notes
        .iter()
        .any(|n| n.contains("began before the capture")));
    assert_eq!(http2(seven).response_body_bytes, 4);
    let h = http2(nine);
    assert_eq!(h.stream, 9);
    assert_eq!(
        (h.method.as_str(), h.path.as_str(), h.status),
        ("GET", "/next", Some(200))
    );
    assert_eq!(h.authority, "127.0.0.1:8080");
    assert_eq!(
        header(&h.request_headers, "user-agent"),
        Some("nghttp2/1.52.0")
    );
    assert_eq!(header(&h.request_headers, "x-new"), Some("1"));
    // Unknown, never guessed.
    assert_eq!(header(&h.request_headers, "x-request"), None);
    assert_eq!(header(&h.request_headers, "x-trace"), None);
    assert!(!nine.complete);
    assert_eq!(
        nine.notes,
        [
            "request header block refers to dynamic-table entries inserted before the capture \
          began: 2 fields unknown"
        ]
    );
    let h = http2(eleven);
    assert_eq!(header(&h.request_headers, "x-new"), Some("1"));
    assert!(eleven.complete, "{eleven:?}");
}

#[test]
fn h2c_upgrade_answers_the_http1_request_on_stream_1() {
    let request = UpgradedRequest {
        method: "GET".into(),
        path: "/upgrade".into(),
        authority: "127.0.0.1:8443".into(),
        request_headers: vec![Header {
            name: "Upgrade".into(),
            value: "h2c".into(),
        }],
        request_body_bytes: 0,
        start: Meta { ts_ns: 1, seq: 1 },
    };
    let mut w = Wire::with(Http2Parser::upgraded(ParserLimits::default(), request));
    w.seq = 2;
    w.send(Dir::ToClient, &settings(&[]));
    let mut client = PREFACE.to_vec();
    client.extend(settings(&[]));
    w.send(Dir::ToServer, &client);
    w.respond(1, "200", 12);
    w.get(3, "/second");
    w.respond(3, "200", 0);
    let out = w.take();
    assert_eq!(out.len(), 2);
    let h = http2(&out[0]);
    assert_eq!(
        (h.stream, h.path.as_str(), h.status),
        (1, "/upgrade", Some(200))
    );
    assert_eq!(out[0].start.seq, 1);
    assert!(out[0].complete);
    assert_eq!(http2(&out[1]).path, "/second");
}

fn grpc_request(w: &mut Wire, stream: u32, method: &str, end: bool) {
    let f = w.headers(
        Dir::ToServer,
        stream,
        if end { END_STREAM } else { 0 },
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "127.0.0.1:50051"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", "1500m"),
        ],
    );
    w.send(Dir::ToServer, &f);
}

fn grpc_response_headers(w: &mut Wire, stream: u32) {
    let f = w.headers(
        Dir::ToClient,
        stream,
        0,
        &[
            (":status", "200"),
            ("content-type", "application/grpc+proto"),
        ],
    );
    w.send(Dir::ToClient, &f);
}

fn grpc_trailers(w: &mut Wire, stream: u32, status: &str, message: &str) {
    let f = w.headers(
        Dir::ToClient,
        stream,
        END_STREAM,
        &[("grpc-status", status), ("grpc-message", message)],
    );
    w.send(Dir::ToClient, &f);
}

#[test]
fn grpc_unary_streaming_and_errors() {
    let mut w = Wire::new();
    w.start();
    // Unary.
    grpc_request(&mut w, 1, "/helloworld.Greeter/SayHello", false);
    w.send(
        Dir::ToServer,
        &frame(DATA, END_STREAM, 1, &grpc_message(0, 7)),
    );
    grpc_response_headers(&mut w, 1);
    w.send(Dir::ToClient, &frame(DATA, 0, 1, &grpc_message(0, 12)));
    grpc_trailers(&mut w, 1, "0", "");
    // Server streaming, messages split across frames and several in one frame.
    grpc_request(&mut w, 3, "/route.Guide/ListFeatures", false);
    w.send(
        Dir::ToServer,
        &frame(DATA, END_STREAM, 3, &grpc_message(0, 3)),
    );
    grpc_response_headers(&mut w, 3);
    let mut many = Vec::new();
    for n in 0..5 {
        many.extend(grpc_message(0, 10 + n));
    }
    for chunk in many.chunks(13) {
        w.send(Dir::ToClient, &frame(DATA, 0, 3, chunk));
    }
    grpc_trailers(&mut w, 3, "0", "");
    // Client streaming, one message compressed; then an error with a message.
    grpc_request(&mut w, 5, "/route.Guide/RecordRoute", false);
    for flag in [0, 1, 0] {
        w.send(Dir::ToServer, &frame(DATA, 0, 5, &grpc_message(flag, 4)));
    }
    w.send(Dir::ToServer, &frame(DATA, END_STREAM, 5, &[]));
    grpc_response_headers(&mut w, 5);
    grpc_trailers(&mut w, 5, "3", "bad point: %E2%9C%93 lat%3D0");
    let out = w.take();
    assert_eq!(out.len(), 3);
    let (h, g) = grpc(&out[0]);
    assert_eq!(h.status, Some(200));
    assert_eq!(
        g,
        &GrpcCall {
            service: "helloworld.Greeter".into(),
            method: "SayHello".into(),
            grpc_status: Some(0),
            grpc_message: String::new(),
            request_messages: 1,
            response_messages: 1,
            request_bytes: 7,
            response_bytes: 12,
        }
    );
    assert!(
        out[0].notes.contains(&"deadline 1.5 s".to_owned()),
        "{:?}",
        out[0].notes
    );
    assert!(out[0].complete);
    let (_, g) = grpc(&out[1]);
    assert_eq!(
        (g.method.as_str(), g.response_messages, g.response_bytes),
        ("ListFeatures", 5, 60)
    );
    let (h, g) = grpc(&out[2]);
    assert_eq!((g.request_messages, g.request_bytes), (3, 12));
    assert_eq!(g.grpc_status, Some(3));
    assert_eq!(g.grpc_message, "bad point: ✓ lat=0");
    assert!(
        out[2].notes.contains(&"1 compressed message".to_owned()),
        "{:?}",
        out[2].notes
    );
    // Trailers follow the headers in the response list.
    assert_eq!(header(&h.response_headers, "grpc-status"), Some("3"));
}

#[test]
fn grpc_trailers_only_bidi_and_a_large_message() {
    let mut w = Wire::new();
    w.start();
    // Trailers-Only: one HEADERS frame with END_STREAM and grpc-status.
    grpc_request(&mut w, 1, "/pkg.Svc/Get", false);
    w.send(
        Dir::ToServer,
        &frame(DATA, END_STREAM, 1, &grpc_message(0, 2)),
    );
    let f = w.headers(
        Dir::ToClient,
        1,
        END_STREAM,
        &[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "5"),
            ("grpc-message", "not%20found"),
        ],
    );
    w.send(Dir::ToClient, &f);
    // Bidi: messages interleaved both ways.
    grpc_request(&mut w, 3, "/pkg.Svc/Chat", false);
    grpc_response_headers(&mut w, 3);
    for n in 0..4 {
        w.send(Dir::ToServer, &frame(DATA, 0, 3, &grpc_message(0, n)));
        w.send(Dir::ToClient, &frame(DATA, 0, 3, &grpc_message(0, 2 * n)));
    }
    w.send(Dir::ToServer, &frame(DATA, END_STREAM, 3, &[]));
    grpc_trailers(&mut w, 3, "0", "");
    // A 100 000-byte message over 16 KiB DATA frames.
    grpc_request(&mut w, 5, "/pkg.Svc/Upload", false);
    let big = grpc_message(0, 100_000);
    let chunks = big.chunks(16_384).count();
    for (n, chunk) in big.chunks(16_384).enumerate() {
        let flags = if n + 1 == chunks { END_STREAM } else { 0 };
        w.send(Dir::ToServer, &frame(DATA, flags, 5, chunk));
    }
    grpc_response_headers(&mut w, 5);
    w.send(Dir::ToClient, &frame(DATA, 0, 5, &grpc_message(0, 0)));
    grpc_trailers(&mut w, 5, "0", "");
    let out = w.take();
    assert_eq!(out.len(), 3);
    let (h, g) = grpc(&out[0]);
    assert_eq!(
        (h.status, g.grpc_status, g.grpc_message.as_str()),
        (Some(200), Some(5), "not found")
    );
    assert_eq!((g.request_messages, g.response_messages), (1, 0));
    let (_, g) = grpc(&out[1]);
    assert_eq!(
        (
            g.request_messages,
            g.request_bytes,
            g.response_messages,
            g.response_bytes
        ),
        (4, 6, 4, 12)
    );
    let (h, g) = grpc(&out[2]);
    assert_eq!((g.request_messages, g.request_bytes), (1, 100_000));
    assert_eq!(h.request_body_bytes, 100_005);
    assert!(out.iter().all(|e| e.complete), "{out:?}");
}

#[test]
fn holes_inside_data_and_across_frames() {
    let mut w = Wire::new();
    w.start();
    grpc_request(&mut w, 1, "/pkg.Svc/Put", false);
    let message = grpc_message(0, 1000);
    let f = frame(DATA, END_STREAM, 1, &message);
    // 200 bytes inside the message's payload are missing: the frame and the message
    // framing both survive.
    w.send(Dir::ToServer, &f[..300]);
    w.hole(Dir::ToServer, Some(200));
    w.send(Dir::ToServer, &f[500..]);
    grpc_response_headers(&mut w, 1);
    // The server's direction loses an unknown amount: frames are hunted for again.
    w.send(
        Dir::ToClient,
        &frame(DATA, 0, 1, &grpc_message(0, 50)[..20]),
    );
    w.hole(Dir::ToClient, None);
    w.send(Dir::ToClient, &frame(PING, 0, 0, &[1; 8]));
    grpc_trailers(&mut w, 1, "0", "");
    let out = w.take();
    assert_eq!(out.len(), 1, "{out:?}");
    let (h, g) = grpc(&out[0]);
    assert!(!out[0].complete);
    assert_eq!(h.request_body_bytes, 1005);
    assert_eq!((g.request_messages, g.request_bytes), (1, 1000));
    assert_eq!(g.grpc_status, Some(0));
    assert!(
        out[0]
            .notes
            .iter()
            .any(|n| n.contains("server→client direction could not be followed")),
        "{:?}",
        out[0].notes
    );
}

#[test]
fn too_many_open_streams_are_reported_early() {
    let limits = ParserLimits {
        max_pending: 4,
        ..ParserLimits::default()
    };
    let mut w = Wire::with(Http2Parser::new(limits));
    w.start();
    for stream in (1..=11).step_by(2) {
        w.get(stream, "/");
    }
    let out = w.take();
    assert_eq!(out.len(), 2);
    assert!(
        out[0].notes[0].contains("more than 4 streams"),
        "{:?}",
        out[0].notes
    );
    assert!(w.parser.buffered() < 64 << 10);
}

#[test]
fn recognises_http2_and_nothing_else() {
    let mut w = Wire::new();
    assert_eq!(recognise(PREFACE), Some(Dir::ToServer));
    assert_eq!(recognise(&PREFACE[..16]), Some(Dir::ToServer));
    let mut client = w.headers(
        Dir::ToServer,
        5,
        END_STREAM,
        &[(":method", "GET"), (":path", "/")],
    );
    client.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    assert_eq!(recognise(&client), Some(Dir::ToServer));
    let mut server = w.headers(Dir::ToClient, 5, 0, &[(":status", "200")]);
    server.extend(frame(DATA, END_STREAM, 5, b"hello"));
    assert_eq!(recognise(&server), Some(Dir::ToClient));
    // Mid-stream: the tail of a DATA frame, then three frames.
    let mut tail = vec![0x20; 40];
    tail.extend(frame(DATA, 0, 7, b"abc"));
    tail.extend(frame(DATA, 0, 7, b"def"));
    tail.extend(frame(DATA, 0, 9, b"ghi"));
    assert!(recognise(&tail).is_some());
    for text in [
        &b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
        b"PRI",
        b"",
        &[0u8; 64],
    ] {
        assert_eq!(recognise(text), None, "{:?}", String::from_utf8_lossy(text));
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let len = (x % 300) as usize + 9;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(recognise(&bytes), None, "{bytes:?}");
    }
}

#[test]
fn garbage_in_both_directions_with_holes_is_bounded() {
    let limits = ParserLimits {
        max_buffer: 4096,
        ..ParserLimits::default()
    };
    let mut w = Wire::with(Http2Parser::new(limits));
    let mut x: u64 = 7;
    for round in 0..3000u64 {
        let len = (x % 2000) as usize;
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 7) as u8
            })
            .collect();
        if round % 5 == 0 {
            bytes.extend(frame(
                HEADERS,
                END_HEADERS,
                (round as u32) | 1,
                &[0x82, 0x84, 0x86, 0xbe],
            ));
        }
        let dir = if round % 2 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        w.send(dir, &bytes);
        if round % 97 == 0 {
            w.hole(
                dir,
                if round % 2 == 0 {
                    None
                } else {
                    Some(x % 50_000)
                },
            );
        }
        assert!(w.parser.buffered() < 1 << 20, "{}", w.parser.buffered());
    }
    w.close();
}

/// TCP payloads of a loopback capture (EN10MB, IPv4, no loss or reordering), as segments
/// of numbered connections in the order the SYNs came.
pub(crate) mod fixture {
    use crate::stream::{Dir, Meta};

    pub struct Segment {
        pub conn: usize,
        pub dir: Dir,
        pub payload: Vec<u8>,
        pub meta: Meta,
    }

    pub fn read(name: &str) -> Vec<Segment> {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            &file[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "a little-endian µs pcap"
        );
        let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut conns: Vec<([u8; 6], [u8; 6])> = Vec::new();
        let mut out = Vec::new();
        let (mut pos, mut number) = (24, 0u64);
        while pos + 16 <= file.len() {
            let (sec, usec, len) = (
                u32le(&file[pos..]),
                u32le(&file[pos + 4..]),
                u32le(&file[pos + 8..]) as usize,
            );
            let packet = &file[pos + 16..pos + 16 + len];
            pos += 16 + len;
            number += 1;
            if packet[12..14] != [8, 0] || packet[23] != 6 {
                continue;
            }
            let ip = &packet[14..];
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let tcp = &ip[ihl..total];
            let offset = usize::from(tcp[12] >> 4) * 4;
            let mut src = [0; 6];
            src[..4].copy_from_slice(&ip[12..16]);
            src[4..].copy_from_slice(&tcp[..2]);
            let mut dst = [0; 6];
            dst[..4].copy_from_slice(&ip[16..20]);
            dst[4..].copy_from_slice(&tcp[2..4]);
            let flags = tcp[13];
            if flags & 0x12 == 0x02 {
                conns.push((src, dst));
            }
            let Some(conn) = conns
                .iter()
                .position(|c| *c == (src, dst) || *c == (dst, src))
            else {
                continue;
            };
            let payload = tcp[offset..].to_vec();
            if payload.is_empty() {
                continue;
            }
            out.push(Segment {
                conn,
                dir: if conns[conn].0 == src {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                },
                payload,
                meta: Meta {
                    ts_ns: i64::from(sec) * 1_000_000_000 + i64::from(usec) * 1000,
                    seq: number,
                },
            });
        }
        out
    }
}

/// Feeds connection `conn` of a fixture from its `skip`-th segment on.
fn decode_fixture(name: &str, conn: usize, skip: usize) -> Vec<Exchange> {
    let mut parser = Http2Parser::new(ParserLimits::default());
    let mut out = Vec::new();
    let mut last = Meta::default();
    for s in fixture::read(name)
        .into_iter()
        .filter(|s| s.conn == conn)
        .skip(skip)
    {
        parser.data(s.dir, &s.payload, s.meta, &mut out);
        last = s.meta;
    }
    parser.close(CloseReason::EndOfInput, last, &mut out);
    out
}

#[test]
fn nghttp_against_nghttpd() {
    // nghttp opens PRIORITY-only streams 3 to 11, then GETs on 13, 15 and 17.
    let out = decode_fixture("h2c-nghttp.pcap", 0, 0);
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            (
                http2(e).stream,
                http2(e).path.as_str(),
                http2(e).status,
                e.complete,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (13, "/a.txt", Some(200), true),
            (15, "/b.txt", Some(200), true),
            (17, "/missing", Some(404), true)
        ],
        "{out:#?}"
    );
    let h = http2(&out[0]);
    assert_eq!(h.response_body_bytes, 13);
    assert_eq!(
        header(&h.response_headers, "server"),
        Some("nghttpd nghttp2/1.52.0")
    );
    assert!(header(&h.request_headers, "user-agent")
        .unwrap()
        .starts_with("nghttp2/"));
    assert!(out.iter().all(|e| e.notes.is_empty()), "{out:#?}");
}

#[test]
fn curl_prior_knowledge_and_the_same_connection_cut() {
    let out = decode_fixture("h2c-nghttp.pcap", 1, 0);
    assert_eq!(out.len(), 1, "{out:#?}");
    let h = http2(&out[0]);
    assert_eq!(
        (h.path.as_str(), h.status, h.response_body_bytes),
        ("/big.txt", Some(200), 33_000)
    );
    assert!(out[0].complete);
    // Cut after the request: the response's headers are seen, the request is not.
    let segments: Vec<_> = fixture::read("h2c-nghttp.pcap")
        .into_iter()
        .filter(|s| s.conn == 1)
        .collect();
    let request_at = segments
        .iter()
        .position(|s| s.dir == Dir::ToServer && s.payload.get(3) == Some(&HEADERS))
        .unwrap();
    let out = decode_fixture("h2c-nghttp.pcap", 1, request_at + 1);
    assert_eq!(out.len(), 1, "{out:#?}");
    let h = http2(&out[0]);
    assert_eq!((h.stream, h.status, h.path.as_str()), (1, Some(200), ""));
    assert!(!out[0].complete);
    assert!(
        out[0].notes.iter().any(|n| n.contains("request not seen")),
        "{out:#?}"
    );
    // Cut inside the response body (after the largest segment, which holds the response's
    // HEADERS and the first DATA frames): only DATA of stream 1, and nothing wrong.
    let largest = (0..segments.len())
        .max_by_key(|&i| segments[i].payload.len())
        .unwrap();
    let out = decode_fixture("h2c-nghttp.pcap", 1, largest + 1);
    assert_eq!(out.len(), 1, "{out:#?}");
    for e in &out {
        let h = http2(e);
        assert!(!e.complete);
        assert_eq!((h.status, h.path.as_str()), (None, ""));
        // The last DATA frame (33 000 - 2 * 16 384 bytes) is found by its header.
        assert_eq!(h.response_body_bytes, 232, "{e:?}");
        assert!(e
            .notes
            .iter()
            .any(|n| n.contains("began before the capture")));
    }
}

/// A fixture through Wireshark's dissector: the same streams, paths, statuses and
/// grpc-status values as ours (`conns` connections).
fn agrees_with_tshark(name: &str, conns: usize) {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    // The server port: the destination port of the first packet, a SYN (file header,
    // record header, Ethernet, a 20-byte IPv4 header, source port).
    let file = std::fs::read(&path).unwrap();
    let server_port = u16::from_be_bytes([file[24 + 16 + 36], file[24 + 16 + 37]]);
    let run = std::process::Command::new("tshark")
        .args([
            "-r",
            &path,
            "-d",
            &format!("tcp.port=={server_port},http2"),
            "-T",
            "pdml",
        ])
        .output();
    let Ok(run) = run.map_err(|e| eprintln!("tshark not run ({e}): cross-check skipped")) else {
        return;
    };
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let show = |line: &str| {
        let start = line.find(" show=\"")? + 7;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_owned())
    };
    let (mut conn, mut stream, mut field) = (String::new(), String::new(), String::new());
    let mut theirs = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&run.stdout).lines() {
        let Some(value) = show(line) else { continue };
        if line.contains("name=\"tcp.stream\"") {
            conn = value;
        } else if line.contains("name=\"http2.streamid\"") {
            stream = value;
        } else if line.contains("name=\"http2.header.name\"") {
            field = value;
        } else if line.contains("name=\"http2.header.value\"")
            && [":path", ":status", "grpc-status"].contains(&field.as_str())
        {
            theirs.insert(format!("{conn}/{stream} {field} {value}"));
        }
    }
    let mut ours = std::collections::BTreeSet::new();
    for conn in 0..conns {
        for e in decode_fixture(name, conn, 0) {
            let h = http2(&e);
            ours.insert(format!("{conn}/{} :path {}", h.stream, h.path));
            ours.insert(format!("{conn}/{} :status {}", h.stream, h.status.unwrap()));
            if let Detail::Grpc(_, g) = &e.detail {
                ours.insert(format!(
                    "{conn}/{} grpc-status {}",
                    h.stream,
                    g.grpc_status.unwrap()
                ));
            }
        }
    }
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}

#[test]
fn nghttp_agrees_with_tshark() {
    agrees_with_tshark("h2c-nghttp.pcap", 2);
}

#[test]
fn grpc_agrees_with_tshark() {
    agrees_with_tshark("grpc.pcap", 1);
}

#[test]
fn grpcio_calls_of_every_kind() {
    let out = decode_fixture("grpc.pcap", 0, 0);
    let calls: Vec<_> = out
        .iter()
        .map(|e| {
            let (h, g) = grpc(e);
            assert!(e.complete, "{e:?}");
            assert_eq!((h.status, g.service.as_str()), (Some(200), "demo.Echo"));
            (
                h.stream,
                g.method.as_str(),
                g.grpc_status,
                [
                    g.request_messages,
                    g.request_bytes,
                    g.response_messages,
                    g.response_bytes,
                ],
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (1, "Unary", Some(0), [1, 5, 1, 6]),
            (3, "ServerStream", Some(0), [1, 2, 3, 33]),
            (5, "ClientStream", Some(0), [3, 6, 1, 1]),
            (7, "Bidi", Some(0), [2, 4, 2, 4]),
            (9, "Fail", Some(3), [1, 1, 0, 0]),
            (11, "Large", Some(0), [1, 40_000, 1, 5]),
            (
                13,
                "Unary",
                Some(0),
                [1, calls_compressed_size(&out[6]), 1, 301]
            ),
        ]
    );
    assert!(
        out[0].notes.contains(&"deadline 5 s".to_owned()),
        "{:?}",
        out[0].notes
    );
    assert_eq!(grpc(&out[4]).1.grpc_message, "bad input: ✓ 100%");
    assert!(
        out[6].notes.contains(&"1 compressed message".to_owned()),
        "{:?}",
        out[6].notes
    );
    assert_eq!(
        header(&grpc(&out[6]).0.request_headers, "grpc-encoding"),
        Some("gzip")
    );
}

/// The gzip-compressed request's size, whatever zlib made of it (below the 300 bytes sent).
fn calls_compressed_size(e: &Exchange) -> u64 {
    let bytes = grpc(e).1.request_bytes;
    assert!(bytes > 0 && bytes < 300, "{bytes}");
    bytes
}

#[test]
fn a_request_without_response_times_out() {
    let limits = ParserLimits {
        response_timeout_ns: 5_000_000_000,
        ..ParserLimits::default()
    };
    let mut w = Wire::with(Http2Parser::new(limits));
    w.start();
    w.get(1, "/slow");
    grpc_request(&mut w, 3, "/pkg.Svc/Upload", false);
    w.parser.tick(4_000_000_000, &mut w.out);
    assert!(w.take().is_empty());
    w.parser.tick(10_000_000_000, &mut w.out);
    let out = w.take();
    // Stream 3 is still sending its request: it waits for nothing yet.
    assert_eq!(out.len(), 1);
    assert_eq!(http2(&out[0]).stream, 1);
    assert_eq!(out[0].notes, ["no response within 5 s"]);
    assert!(!out[0].complete);
}

/// Cut anywhere (the capture beginning at any segment), a fixture gives only values the
/// whole capture gives too: decoded as far as it can be, never wrong.
/// Returns how many roundtrips had fields left unknown.
fn every_cut_agrees(name: &str, conn: usize) -> usize {
    let mut unknown = 0;
    let whole = decode_fixture(name, conn, 0);
    let by_stream: std::collections::HashMap<u32, &Exchange> =
        whole.iter().map(|e| (http2(e).stream, e)).collect();
    let segments = fixture::read(name)
        .into_iter()
        .filter(|s| s.conn == conn)
        .count();
    for skip in 1..segments {
        for e in decode_fixture(name, conn, skip) {
            let h = http2(&e);
            let full = by_stream[&h.stream];
            let f = http2(full);
            let same = |ours: &str, theirs: &str| ours.is_empty() || ours == theirs;
            assert!(
                same(&h.method, &f.method) && same(&h.path, &f.path),
                "cut {skip}: {e:?}"
            );
            assert!(same(&h.authority, &f.authority), "cut {skip}: {e:?}");
            assert!(
                h.status.is_none() || h.status == f.status,
                "cut {skip}: {e:?}"
            );
            for header in h.request_headers.iter().chain(&h.response_headers) {
                let all: Vec<_> = f
                    .request_headers
                    .iter()
                    .chain(&f.response_headers)
                    .collect();
                assert!(all.contains(&header), "cut {skip}: {header:?} in {e:?}");
            }
            if let (Detail::Grpc(_, g), Detail::Grpc(_, fg)) = (&e.detail, &full.detail) {
                assert!(g.grpc_status.is_none() || g.grpc_status == fg.grpc_status);
                assert!(
                    g.request_messages <= fg.request_messages,
                    "cut {skip}: {e:?}"
                );
                assert!(
                    g.response_messages <= fg.response_messages,
                    "cut {skip}: {e:?}"
                );
            }
            assert!(
                h.response_body_bytes <= f.response_body_bytes,
                "cut {skip}: {e:?}"
            );
            if e.complete {
                assert_eq!(&e.detail, &full.detail, "cut {skip}");
            }
            if e.notes.iter().any(|n| n.contains("dynamic-table entries")) {
                unknown += 1;
            }
        }
    }
    unknown
}

#[test]
fn cut_captures_give_no_wrong_values() {
    // grpcio's encoder refers to its dynamic table in every request after the first.
    assert!(every_cut_agrees("grpc.pcap", 0) > 0);
    every_cut_agrees("h2c-nghttp.pcap", 0);
    every_cut_agrees("h2c-nghttp.pcap", 1);
}

#[test]
fn curl_upgrades_to_h2c() {
    // What the HTTP/1.1 parser hands over: the bytes after the request's head and after the
    // 101 response's head.
    let segments: Vec<_> = fixture::read("h2c-upgrade.pcap")
        .into_iter()
        .filter(|s| s.conn == 0)
        .collect();
    let mut parser = None;
    let mut out = Vec::new();
    let mut handed_over = [false, false];
    let mut last = Meta::default();
    for s in &segments {
        let i = side(s.dir);
        let mut bytes = &s.payload[..];
        if !handed_over[i] {
            let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            bytes = &bytes[end..];
            handed_over[i] = true;
            if s.dir == Dir::ToServer {
                assert!(head.starts_with("GET /first HTTP/1.1\r\n"), "{head}");
                let host = head.lines().find_map(|l| l.strip_prefix("Host: ")).unwrap();
                parser = Some(Http2Parser::upgraded(
                    ParserLimits::default(),
                    UpgradedRequest {
                        method: "GET".into(),
                        path: "/first".into(),
                        authority: host.into(),
                        request_headers: Vec::new(),
                        request_body_bytes: 0,
                        start: s.meta,
                    },
                ));
            } else {
                assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
            }
        }
        let parser = parser.as_mut().expect("the request comes first");
        parser.data(s.dir, bytes, s.meta, &mut out);
        last = s.meta;
    }
    parser
        .unwrap()
        .close(CloseReason::EndOfInput, last, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            let h = http2(e);
            (
                h.stream,
                h.path.as_str(),
                h.status,
                h.response_body_bytes,
                e.complete,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "/first", Some(200), 11, true),
            (3, "/second", Some(200), 11, true)
        ],
        "{out:#?}"
    );
    assert_eq!(out[0].start, segments[0].meta);
}

#[test]
fn a_server_settings_frame_mid_connection_is_not_a_start() {
    // Before the capture: the server's encoder inserted x-old.
    let mut w = Wire::new();
    let _ = w.block(Dir::ToClient, &[("x-old", "1")]);
    // The capture begins with a SETTINGS frame of the server, then the client's request
    // (no preface), then a response referring to x-old.
    w.send(Dir::ToClient, &settings(&[(4, 1 << 20)]));
    w.get(5, "/x");
    let block = w.block(Dir::ToClient, &[(":status", "200"), ("x-old", "1")]);
    assert_eq!(block, [0x88, 0x80 | 62]);
    w.send(
        Dir::ToClient,
        &frame(HEADERS, END_HEADERS | END_STREAM, 5, &block),
    );
    let out = w.take();
    assert_eq!(out.len(), 1);
    assert_eq!(http2(&out[0]).status, Some(200));
    assert!(
        out[0].notes.iter().any(|n| n.contains(
            "response header block refers to dynamic-table \
                                                entries inserted before the capture began: 1 field"
        )),
        "{:?}",
        out[0].notes
    );
}
