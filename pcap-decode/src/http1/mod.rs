//! HTTP/1.x: requests paired with responses on one connection.

use crate::stream::{CloseReason, Dir, Exchange, Meta, ParserLimits, StreamParser};

/// Whether the first bytes one side sent look like HTTP/1.x: `Some(Dir::ToServer)` for a
/// request line (the sender is the client), `Some(Dir::ToClient)` for a status line (the
/// sender is the server), `None` otherwise or when too few bytes to tell.
pub fn recognise(first: &[u8]) -> Option<Dir> {
    let _ = first;
    None
}

/// The HTTP/1.x parser of one TCP connection.
pub struct Http1Parser {
    limits: ParserLimits,
}

impl Http1Parser {
    /// A parser for a new connection.
    pub fn new(limits: ParserLimits) -> Self {
        Http1Parser { limits }
    }
}

impl StreamParser for Http1Parser {
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
