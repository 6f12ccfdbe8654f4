//! The HTTP/1.x parser of pcap-decode (`pcap_decode::http1::Http1Parser`), driven the way
//! the TCP reassembler drives it: the input is a script of events (bytes in either
//! direction cut into pieces, holes, ends, ticks, a close), so that the parser meets
//! every split of a head, every hole and every end a capture can give it.

use pcap_decode::http1::Http1Parser;
use pcap_decode::stream::{CloseReason, Detail, Dir, Exchange, Meta, ParserLimits, StreamParser};

/// Event tags (the low 3 bits of an event's first byte); bit 3 is the direction.
const DATA: u8 = 0;
const HOLE: u8 = 1;
const END: u8 = 2;
const TICK: u8 = 3;
const CLOSE: u8 = 4;

/// Feeds the script in `data` to a parser with small limits (from its first two bytes).
/// It must not panic, must keep `buffered()` within twice its buffer limit, and what it
/// reports must hold together: HTTP details, capped header values, a start no later than
/// the end, no status means not complete.
///
/// Script: `[buffer][pending]`, then events `[tag|dir<<3|flags]`:
/// data `[len][piece-1][len bytes]` (fed in pieces of `piece` bytes), hole `[len]` (flag
/// 0x80: of unknown size), end (flag 0x10: reset), tick `[seconds]`, close `[reason]`.
pub fn http1(data: &[u8]) {
    let Some((&[buffer, pending], mut script)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = ParserLimits {
        max_buffer: 16 + usize::from(buffer) * 4,
        max_header_value: 4 + usize::from(pending >> 3),
        max_pending: 1 + usize::from(pending & 7),
        response_timeout_ns: 5_000_000_000,
    };
    let mut parser = Http1Parser::new(limits);
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut now = 1_000_000_000i64;
    let mut meta = |now: i64| {
        seq += 1;
        Meta {
            ts_ns: now + seq as i64,
            seq,
        }
    };
    while let Some((&op, rest)) = script.split_first() {
        script = rest;
        let dir = if op & 0x08 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let arg = |script: &mut &[u8]| -> u8 {
            let (&b, rest) = script.split_first().unwrap_or((&0, &[]));
            *script = rest;
            b
        };
        match op & 0x07 {
            DATA => {
                let len = usize::from(arg(&mut script)).min(script.len());
                let piece = usize::from(arg(&mut script)) + 1;
                let (bytes, rest) = script.split_at(len.min(script.len()));
                script = rest;
                for chunk in bytes.chunks(piece) {
                    parser.data(dir, chunk, meta(now), &mut out);
                    check_buffered(&parser, &limits);
                }
            }
            HOLE => {
                let len = arg(&mut script);
                let len = (op & 0x80 == 0).then_some(u64::from(len));
                parser.hole(dir, len, meta(now), &mut out);
            }
            END => parser.end(dir, op & 0x10 != 0, meta(now), &mut out),
            TICK => {
                now += i64::from(arg(&mut script)) * 1_000_000_000;
                parser.tick(now, &mut out);
            }
            CLOSE => {
                let reason = match arg(&mut script) % 4 {
                    0 => CloseReason::Ended,
                    1 => CloseReason::EndOfInput,
                    2 => CloseReason::Idle,
                    _ => CloseReason::Evicted,
                };
                parser.close(reason, meta(now), &mut out);
            }
            _ => {}
        }
        check_buffered(&parser, &limits);
    }
    parser.close(CloseReason::EndOfInput, meta(now), &mut out);
    for e in &out {
        check_exchange(e, &limits);
    }
}

fn check_buffered(parser: &Http1Parser, limits: &ParserLimits) {
    assert!(
        parser.buffered() <= 2 * limits.max_buffer,
        "{} bytes buffered, limit {}",
        parser.buffered(),
        limits.max_buffer
    );
}

fn check_exchange(e: &Exchange, limits: &ParserLimits) {
    let Detail::Http(h) = &e.detail else {
        panic!("an HTTP/1 parser reported {:?}", e.detail);
    };
    assert!(e.start.seq <= e.end.seq, "start after end: {e:?}");
    assert!(
        h.status.is_some() || !e.complete,
        "complete without a response: {e:?}"
    );
    let cap = limits.max_header_value + '…'.len_utf8();
    for header in h.request_headers.iter().chain(&h.response_headers) {
        assert!(header.value.len() <= cap, "value not capped: {header:?}");
    }
}

/// A script as [`http1`] reads it.
#[derive(Default)]
struct Script(Vec<u8>);

impl Script {
    fn new(buffer: u8, pending: u8) -> Self {
        Script(vec![buffer, pending])
    }

    /// `bytes` from the client (`ToServer`) or the server, in pieces of `piece` bytes.
    fn data(mut self, to_client: bool, bytes: &[u8], piece: u8) -> Self {
        for part in bytes.chunks(255) {
            self.0.push(DATA | u8::from(to_client) << 3);
            self.0.push(part.len() as u8);
            self.0.push(piece.saturating_sub(1));
            self.0.extend_from_slice(part);
        }
        self
    }

    fn c(self, bytes: &[u8]) -> Self {
        self.data(false, bytes, 255)
    }

    fn s(self, bytes: &[u8]) -> Self {
        self.data(true, bytes, 255)
    }

    fn hole(mut self, to_client: bool, len: Option<u8>) -> Self {
        let unknown = if len.is_none() { 0x80 } else { 0 };
        self.0.push(HOLE | u8::from(to_client) << 3 | unknown);
        self.0.push(len.unwrap_or(0));
        self
    }

    fn end(mut self, to_client: bool) -> Self {
        self.0.push(END | u8::from(to_client) << 3);
        self
    }

    fn tick(mut self, seconds: u8) -> Self {
        self.0.extend_from_slice(&[TICK, seconds]);
        self
    }
}

/// Real exchanges as curl and common servers write them.
pub fn seeds() -> Vec<Vec<u8>> {
    let get = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\n\
        Accept: */*\r\n\r\n";
    let ok = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.12.3\r\n\
        Content-type: text/html\r\nContent-Length: 12\r\n\r\nhello world\n";
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
        5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n";
    let post = b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\
        Expect: 100-continue\r\n\r\n";
    vec![
        Script::new(64, 0x23).c(get).s(ok).c(get).s(chunked).end(true).0,
        Script::new(8, 0x12).data(false, get, 3).data(true, chunked, 7).0,
        Script::new(32, 0x01)
            .c(&[&get[..], get, get].concat())
            .s(&[&ok[..], ok, ok].concat())
            .0,
        Script::new(64, 0x23)
            .c(post)
            .s(b"HTTP/1.1 100 Continue\r\n\r\n")
            .c(b"hello world")
            .s(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
            .0,
        Script::new(64, 0x23)
            .c(b"GET / HTTP/1.0\r\n\r\n")
            .s(b"HTTP/1.0 200 OK\r\n\r\nbody to the close")
            .end(true)
            .0,
        Script::new(64, 0x23)
            .c(get)
            .s(&ok[..40])
            .hole(true, Some(20))
            .s(&ok[60..])
            .c(get)
            .hole(false, None)
            .tick(10)
            .0,
        Script::new(2, 0x07)
            .c(b"HEAD / HTTP/1.1\r\n\r\nGET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
            .s(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n")
            .c(b"\x81\x80abcd")
            .0,
    ]
}
