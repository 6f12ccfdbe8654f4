//! An HTTP/1.1 connection that may become HTTP/2: `Upgrade: h2c` answered by 101 (RFC 7540,
//! section 3.2) hands the connection to an HTTP/2 parser whose stream 1 is the request that
//! asked for it. Any other upgrade (WebSocket) or a CONNECT tunnel ends the decoding of the
//! connection, as HTTP/1.1 alone does.

use crate::http1::{Http1Parser, Upgrade};
use crate::http2::{Http2Parser, UpgradedRequest};
use crate::stream::{CloseReason, Dir, Exchange, Meta, ParserLimits, StreamParser};

/// The parser of a connection recognised as HTTP/1.x.
pub struct Http1Connection {
    limits: ParserLimits,
    now: Now,
}

enum Now {
    Http1(Box<Http1Parser>),
    Http2(Box<Http2Parser>),
    /// Switched to something not decoded: bytes are dropped.
    Other,
}

impl Http1Connection {
    /// A parser for a new connection.
    pub fn new(limits: ParserLimits) -> Self {
        Http1Connection {
            limits,
            now: Now::Http1(Box::new(Http1Parser::new(limits))),
        }
    }

    /// After HTTP/1 bytes: moves to the protocol the connection switched to, if it did.
    fn follow(&mut self, meta: Meta, out: &mut Vec<Exchange>) {
        let Now::Http1(h1) = &mut self.now else {
            return;
        };
        if !h1.switched_protocols() {
            return;
        }
        self.now = match h1.take_upgrade() {
            Some(mut up) if up.protocol.eq_ignore_ascii_case("h2c") => {
                let server_bytes = std::mem::take(&mut up.server_bytes);
                let mut h2 = Http2Parser::upgraded(self.limits, upgraded_request(up));
                if !server_bytes.is_empty() {
                    h2.data(Dir::ToClient, &server_bytes, meta, out);
                }
                Now::Http2(Box::new(h2))
            }
            _ => Now::Other,
        };
    }
}

fn upgraded_request(up: Upgrade) -> UpgradedRequest {
    let r = up.request;
    UpgradedRequest {
        method: r.method,
        path: r.target,
        authority: r.host,
        request_headers: r.request_headers,
        request_body_bytes: r.request_body_bytes,
        start: up.start,
    }
}

impl StreamParser for Http1Connection {
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        match &mut self.now {
            Now::Http1(p) => {
                p.data(dir, bytes, meta, out);
                self.follow(meta, out);
            }
            Now::Http2(p) => p.data(dir, bytes, meta, out),
            Now::Other => {}
        }
    }

    fn hole(&mut self, dir: Dir, len: Option<u64>, meta: Meta, out: &mut Vec<Exchange>) {
        match &mut self.now {
            Now::Http1(p) => p.hole(dir, len, meta, out),
            Now::Http2(p) => p.hole(dir, len, meta, out),
            Now::Other => {}
        }
    }

    fn end(&mut self, dir: Dir, reset: bool, meta: Meta, out: &mut Vec<Exchange>) {
        match &mut self.now {
            Now::Http1(p) => p.end(dir, reset, meta, out),
            Now::Http2(p) => p.end(dir, reset, meta, out),
            Now::Other => {}
        }
    }

    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        match &mut self.now {
            Now::Http1(p) => p.close(reason, meta, out),
            Now::Http2(p) => p.close(reason, meta, out),
            Now::Other => {}
        }
    }

    fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        match &mut self.now {
            Now::Http1(p) => p.tick(now_ns, out),
            Now::Http2(p) => p.tick(now_ns, out),
            Now::Other => {}
        }
    }

    fn buffered(&self) -> usize {
        match &self.now {
            Now::Http1(p) => p.buffered(),
            Now::Http2(p) => p.buffered(),
            Now::Other => 0,
        }
    }
}
