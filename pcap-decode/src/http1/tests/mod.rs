//! The parser driven like the transport layer drives it: bytes per direction, holes, ends,
//! close and ticks; every script also fed split at every position and a byte at a time.

use super::*;
use crate::roundtrip::HttpExchange;
use crate::stream::Detail;

const SEC: i64 = 1_000_000_000;

fn limits() -> ParserLimits {
    ParserLimits {
        max_buffer: 1024,
        max_header_value: 40,
        max_pending: 4,
        response_timeout_ns: 60 * SEC,
    }
}

/// One thing the transport layer does.
#[derive(Clone, Debug)]
enum Ev {
    C(&'static [u8]),
    S(&'static [u8]),
    Hole(Dir, Option<u64>),
    End(Dir),
    Close(CloseReason),
    Tick(i64),
}
use Ev::*;

/// A parser and what it reported, with one packet per event, 1 ms apart.
struct Conn {
    p: Http1Parser,
    out: Vec<Exchange>,
    seq: u64,
}

impl Conn {
    fn new(limits: ParserLimits) -> Self {
        Conn {
            p: Http1Parser::new(limits),
            out: Vec::new(),
            seq: 0,
        }
    }

    fn meta(&mut self) -> Meta {
        self.seq += 1;
        Meta {
            ts_ns: self.seq as i64 * 1_000_000,
            seq: self.seq,
        }
    }

    /// Runs `ev`, its data cut into pieces of `chunk` bytes (0: whole).
    fn run(&mut self, ev: &Ev, chunk: usize) {
        let max = self.p.limits.max_buffer;
        match ev {
            C(b) | S(b) => {
                let dir = if matches!(ev, C(_)) {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                };
                let size = if chunk == 0 { b.len().max(1) } else { chunk };
                for piece in b.chunks(size) {
                    let m = self.meta();
                    self.p.data(dir, piece, m, &mut self.out);
                    assert!(self.p.buffered() <= 2 * max);
                }
            }
            Hole(dir, len) => {
                let m = self.meta();
                self.p.hole(*dir, *len, m, &mut self.out);
            }
            End(dir) => {
                let m = self.meta();
                self.p.end(*dir, false, m, &mut self.out);
            }
            Close(reason) => {
                let m = self.meta();
                self.p.close(*reason, m, &mut self.out);
            }
            Tick(ns) => self.p.tick(*ns, &mut self.out),
        }
    }
}

fn http(e: &Exchange) -> &HttpExchange {
    match &e.detail {
        Detail::Http(h) => h,
        other => panic!("not HTTP: {other:?}"),
    }
}

/// What must not depend on how the bytes were cut.
fn summary(out: &[Exchange]) -> Vec<(HttpExchange, bool, Vec<String>)> {
    out.iter()
        .map(|e| (http(e).clone(), e.complete, e.notes.clone()))
        .collect()
}

/// Runs `script` whole, then split in two at every position of each data event, then a
/// byte at a time; all runs must report the same. Returns the whole run's reports.
fn check(script: &[Ev]) -> Vec<Exchange> {
    check_with(limits(), script)
}

fn check_with(limits: ParserLimits, script: &[Ev]) -> Vec<Exchange> {
    let mut whole = Conn::new(limits);
    for ev in script {
        whole.run(ev, 0);
    }
    let want = summary(&whole.out);
    let mut bytewise = Conn::new(limits);
    for ev in script {
        bytewise.run(ev, 1);
    }
    assert_eq!(summary(&bytewise.out), want, "fed a byte at a time");
    for (i, ev) in script.iter().enumerate() {
        let (C(b) | S(b)) = ev else { continue };
        for at in 1..b.len() {
            let mut split = Conn::new(limits);
            for (j, e) in script.iter().enumerate() {
                if i != j {
                    split.run(e, 0);
                    continue;
                }
                let (x, y): (&'static [u8], &'static [u8]) = (&b[..at], &b[at..]);
                let (a, c) = if matches!(ev, C(_)) {
                    (C(x), C(y))
                } else {
                    (S(x), S(y))
                };
                split.run(&a, 0);
                split.run(&c, 0);
            }
            assert_eq!(summary(&split.out), want, "event {i} split at {at}");
        }
    }
    whole.out
}

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n";
const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

mod framing;
mod holes;
mod pairing;
