//! DNS over UDP and TCP: queries paired with answers by id.

use crate::stream::{CloseReason, DatagramParser, Dir, Exchange, Meta, ParserLimits, StreamParser};

/// Whether a UDP payload looks like a DNS message: `Some(Dir::ToServer)` for a query (the
/// sender is the client), `Some(Dir::ToClient)` for a response, `None` otherwise.
pub fn recognise_datagram(payload: &[u8]) -> Option<Dir> {
    let _ = payload;
    None
}

/// As [`recognise_datagram`], for the first bytes of a TCP direction (2-byte length prefix,
/// then a message).
pub fn recognise_stream(first: &[u8]) -> Option<Dir> {
    let _ = first;
    None
}

/// DNS over one UDP 5-tuple.
pub struct DnsUdp {
    limits: ParserLimits,
}

impl DnsUdp {
    /// A parser for a new 5-tuple; `limits.response_timeout_ns` is the DNS timeout.
    pub fn new(limits: ParserLimits) -> Self {
        DnsUdp { limits }
    }
}

impl DatagramParser for DnsUdp {
    fn datagram(&mut self, _dir: Dir, _bytes: &[u8], _meta: Meta, _out: &mut Vec<Exchange>) {
        let _ = self.limits;
    }
    fn close(&mut self, _reason: CloseReason, _meta: Meta, _out: &mut Vec<Exchange>) {}
    fn tick(&mut self, _now_ns: i64, _out: &mut Vec<Exchange>) {}
    fn buffered(&self) -> usize {
        0
    }
}

/// DNS over one TCP connection (RFC 7766: 2-byte length prefix, several queries in flight).
pub struct DnsTcp {
    limits: ParserLimits,
}

impl DnsTcp {
    /// A parser for a new connection.
    pub fn new(limits: ParserLimits) -> Self {
        DnsTcp { limits }
    }
}

impl StreamParser for DnsTcp {
    fn data(&mut self, _dir: Dir, _bytes: &[u8], _meta: Meta, _out: &mut Vec<Exchange>) {
        let _ = self.limits;
    }
    fn hole(&mut self, _dir: Dir, _len: Option<u64>, _meta: Meta, _out: &mut Vec<Exchange>) {}
    fn end(&mut self, _dir: Dir, _reset: bool, _meta: Meta, _out: &mut Vec<Exchange>) {}
    fn close(&mut self, _reason: CloseReason, _meta: Meta, _out: &mut Vec<Exchange>) {}
    fn buffered(&self) -> usize {
        0
    }
}
