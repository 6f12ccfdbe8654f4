//! HTTP/1.x: requests paired with responses on one connection.
//!
//! Each direction is a state machine over its bytes ([`side::State`]): a head is parsed
//! with `httparse` (from the packet itself when it holds the whole head, else from a buffer
//! bounded by [`ParserLimits::max_buffer`]), and a body is skipped by counting, never
//! stored. Requests wait in a queue in the order they were sent (pipelining, up to
//! [`ParserLimits::max_pending`]); each response is paired with the oldest.
//!
//! Choices a reader of the roundtrips should know:
//! - Trailers of a chunked body are appended to the headers of the message they end.
//! - A hole inside a body of known length (Content-Length, or the data of a chunk) is
//!   skipped and framing goes on. The missing bytes are counted in the body's size, since
//!   the length is known, and the exchange is `complete: false` with a note ("412 bytes of
//!   the response body were not captured").
//! - A hole anywhere else (a head, chunk framing, a gap of unknown size) drops what that
//!   direction was reading and resynchronises at the next request line (client side) or
//!   `HTTP/1.` status line (server side). The exchanges it touched are `complete: false`.
//!   A hole of known size met between messages holds the start of one: that request (or
//!   response) keeps its place in the pairing, reported as not captured. Otherwise the
//!   next message is `complete: false` too, since its pairing rests on a guess.
//! - A connection first seen mid-stream resynchronises the same way. When the client's
//!   first bytes are the end of a request, that request's response is reported with a
//!   note that the request was not captured.
//! - A request without a response is reported after `response_timeout_ns` since its last
//!   packet, or when the connection closes or the input ends, with `status: None`. A
//!   response that comes after its request was reported as timed out is read and dropped.
//! - More than `max_pending` requests waiting: the oldest is reported without response.
//! - A 101 (Switching Protocols), or a 2xx to CONNECT, ends the exchange and the parsing of
//!   the connection ([`Http1Parser::switched_protocols`]). Other 1xx responses are interim:
//!   the exchange's status is the final one.

mod events;
mod feed;
mod head;
mod line;
mod message;
mod side;
mod txn;

use std::collections::VecDeque;

use crate::stream::{CloseReason, Dir, Exchange, Meta, ParserLimits, StreamParser};
use side::Side;
use txn::Txn;

/// Whether the first bytes one side sent look like HTTP/1.x: `Some(Dir::ToServer)` for a
/// request line (the sender is the client), `Some(Dir::ToClient)` for a status line (the
/// sender is the server), `None` otherwise or when too few bytes to tell. A known method
/// followed by ` /` is enough; any other method token needs the line up to `HTTP/1.`.
pub fn recognise(first: &[u8]) -> Option<Dir> {
    line::recognise(first)
}

/// The HTTP/1.x parser of one TCP connection.
pub struct Http1Parser {
    limits: ParserLimits,
    /// The client's side (requests).
    req: Side,
    /// The server's side (responses).
    resp: Side,
    /// Requests waiting for their response, oldest first.
    queue: VecDeque<Txn>,
    /// The request whose response is being read.
    current: Option<Txn>,
    /// Responses still to come for requests dropped from the front of the queue (too many
    /// pending): read and not reported. They come before those of `queue`.
    orphans: u64,
    /// The first `timed` entries of `queue` need no timeout check (reported or unseen).
    timed: usize,
    next_id: u64,
    switched: bool,
}

impl Http1Parser {
    /// A parser for a new connection.
    pub fn new(limits: ParserLimits) -> Self {
        Http1Parser {
            limits,
            req: Side::new(),
            resp: Side::new(),
            queue: VecDeque::new(),
            current: None,
            orphans: 0,
            timed: 0,
            next_id: 0,
            switched: false,
        }
    }

    /// True once the connection left HTTP/1 (101 Switching Protocols, or a CONNECT
    /// tunnel): the parser reads nothing more, and another parser may take over.
    pub fn switched_protocols(&self) -> bool {
        self.switched
    }

    fn side(&self, dir: Dir) -> &Side {
        match dir {
            Dir::ToServer => &self.req,
            Dir::ToClient => &self.resp,
        }
    }

    fn side_mut(&mut self, dir: Dir) -> &mut Side {
        match dir {
            Dir::ToServer => &mut self.req,
            Dir::ToClient => &mut self.resp,
        }
    }
}

impl StreamParser for Http1Parser {
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        self.feed(dir, bytes, meta, out);
    }

    fn hole(&mut self, dir: Dir, len: Option<u64>, meta: Meta, out: &mut Vec<Exchange>) {
        self.on_hole(dir, len, meta, out);
    }

    fn end(&mut self, dir: Dir, reset: bool, meta: Meta, out: &mut Vec<Exchange>) {
        self.on_end(dir, reset, meta, out);
    }

    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        self.on_close(reason, meta, out);
    }

    fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        self.on_tick(now_ns, out);
    }

    fn buffered(&self) -> usize {
        self.req.buf.len() + self.resp.buf.len()
    }
}

#[cfg(test)]
mod tests;
