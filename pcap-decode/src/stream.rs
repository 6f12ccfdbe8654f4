//! The interface between the transport layer (TCP reassembly, UDP datagrams) and the
//! application parsers (HTTP/1.1, DNS, HTTP/2). The transport layer knows addresses and
//! packets; a parser knows bytes in order per direction and pairs requests with responses.
//! A parser never sees a byte twice or out of order: retransmissions and overlaps are
//! resolved before, and what was never seen arrives as a [`StreamParser::hole`].

use crate::roundtrip::{DnsExchange, GrpcCall, Http2Exchange, HttpExchange};

/// Which way bytes flow, relative to the side that sends requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    ToServer,
    ToClient,
}

impl Dir {
    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}

/// The packet that delivered some bytes (or an event): its time and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Unix time in ns.
    pub ts_ns: i64,
    /// Sequence number in the capture, or packet number in a file.
    pub seq: u64,
}

/// A roundtrip as a parser knows it: everything but the addresses and the flow id, which
/// the transport layer adds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exchange {
    /// First packet of the request.
    pub start: Meta,
    /// Last packet of the response (or of the request when there was no response).
    pub end: Meta,
    pub complete: bool,
    pub notes: Vec<String>,
    pub detail: Detail,
}

/// The protocol part of an [`Exchange`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Detail {
    #[default]
    None,
    Http(HttpExchange),
    Dns(DnsExchange),
    Http2(Http2Exchange),
    Grpc(Http2Exchange, GrpcCall),
}

/// Why a connection's parser is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both directions ended (FIN or RST seen both ways, or RST one way).
    Ended,
    /// No packet for the idle timeout.
    Idle,
    /// The end of the input (file read to its end, replay done, decoder finished).
    EndOfInput,
    /// The flow was dropped to stay within the total memory bound.
    Evicted,
}

/// A parser of one TCP connection's byte streams (HTTP/1.1, DNS over TCP, HTTP/2).
///
/// It keeps only what it must (an unfinished head, a length prefix), within `limit` bytes
/// of buffer per direction given at construction, and reports what it could not keep in the
/// exchange's notes.
///
/// What the transport layer promises, per direction:
/// - Bytes arrive in sequence order, each once; `meta` names the packet that carried them.
/// - A direction whose start (its SYN) was not seen (the capture began mid-connection) gets
///   `hole(dir, None)` before its first bytes: they may begin mid-message. A hole before an exchange's first byte does not make that
///   exchange incomplete; one inside it does.
/// - `hole(dir, Some(n))` is exactly `n` bytes missing at that point (the peer acknowledged
///   bytes never captured, the snaplen cut a segment, the out-of-order buffer reached its
///   bound, or the connection closed with bytes missing); the bytes after it follow.
/// - `hole(dir, None)` on both directions: a reader's gap (packets dropped before the next).
/// - `end(dir, false)` once the FIN is in sequence; `end(dir, true)` for the side that sent a
///   RST, followed at once by `close(Ended)`. `close` comes exactly once, last: after both
///   FINs or a RST (`Ended`), idle expiry (`Idle`), eviction (`Evicted`, the decoder adds a
///   note of its own to what this reports) or the end of input (`EndOfInput`). Bytes still
///   buffered out of order are handed on (with holes) before `close`.
/// - The first bytes the recogniser saw are handed on as one `data` call, with the packet of
///   the first of them.
pub trait StreamParser: Send {
    /// In-order bytes of one direction.
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>);

    /// `len` bytes of `dir` were never seen (a hole in the sequence space), or an unknown
    /// amount when `len` is `None` (packets skipped by a slow reader, a buffer limit).
    /// The parser resynchronises if it can (e.g. at the next HTTP message head), and marks
    /// the exchanges it hits `complete: false` with a note.
    fn hole(&mut self, dir: Dir, len: Option<u64>, meta: Meta, out: &mut Vec<Exchange>);

    /// `dir` ended: FIN (`reset` false) or RST (`reset` true). Bodies delimited by the
    /// connection's close end here.
    fn end(&mut self, dir: Dir, reset: bool, meta: Meta, out: &mut Vec<Exchange>);

    /// The connection is gone: report every exchange still open, with a note saying why it
    /// did not finish.
    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>);

    /// Time has moved on to `now_ns` (the latest packet's time): report requests that have
    /// waited longer than the response timeout as unanswered.
    fn tick(&mut self, _now_ns: i64, _out: &mut Vec<Exchange>) {}

    /// Bytes of buffer this parser holds now (counted against the decoder's total bound).
    fn buffered(&self) -> usize;
}

/// A parser of one UDP 5-tuple's datagrams (DNS).
pub trait DatagramParser: Send {
    /// One datagram's payload, in `dir`.
    fn datagram(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>);

    /// The flow is gone (idle, end of input, evicted): report every exchange still open.
    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>);

    /// Time has moved on to `now_ns`: report queries that waited longer than their timeout.
    fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>);

    /// Bytes this parser holds now (pending queries).
    fn buffered(&self) -> usize;

    /// Whether nothing is waiting for an answer: a 5-tuple quiet for a while with nothing
    /// pending is let go early (clients use a new port per lookup, so waiting for the idle
    /// timeout would keep one flow per lookup for minutes).
    fn settled(&self) -> bool {
        false
    }
}

/// Bounds and timeouts every parser is built with (from [`crate::DecodeConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Most bytes a parser buffers per direction (an unfinished head, a DNS message over TCP).
    pub max_buffer: usize,
    /// Header values are cut at this many bytes, with "…" appended.
    pub max_header_value: usize,
    /// Most exchanges a parser keeps open at once (pipelined requests, DNS ids in flight).
    pub max_pending: usize,
    /// A request without a response after this long is reported unanswered.
    pub response_timeout_ns: i64,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_buffer: 64 << 10,
            max_header_value: 256,
            max_pending: 128,
            response_timeout_ns: 60 * 1_000_000_000,
        }
    }
}

/// Cuts a header value at `max` bytes (at a character boundary), marking the cut with "…".
pub fn cap_value(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_owned();
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}
