//! The byte path: each direction's bytes run through its state machine. Bodies are skipped
//! by counting; heads are parsed in place when a packet holds them whole, and otherwise
//! collected in the direction's bounded buffer.

use std::mem;

use super::head::{self, Parsed};
use super::line::{self, Verdict};
use super::side::{self, State};
use super::Http1Parser;
use crate::stream::{Dir, Exchange, Meta};

/// What parsing collected bytes gave.
pub(super) enum Outcome {
    /// A head (or chunk-size line, or trailer section) of this many bytes was handled.
    Done(usize),
    NeedMore,
    /// Not what was expected here.
    Bad,
}

impl Http1Parser {
    pub(super) fn feed(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        let mut input = bytes;
        loop {
            if !self.side(dir).buf.is_empty() {
                if input.is_empty() {
                    break;
                }
                input = self.feed_buffered(dir, input, meta, out);
                continue;
            }
            if input.is_empty() {
                break;
            }
            let used = self.step(dir, input, meta, out);
            input = &input[used..];
        }
    }

    /// Runs every byte of `bytes` through the state machine, when nothing is buffered.
    fn run(&mut self, dir: Dir, mut bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        while !bytes.is_empty() {
            let used = self.step(dir, bytes, meta, out);
            bytes = &bytes[used..];
        }
    }

    /// Adds `input` to an unfinished head and tries again; returns what is left of `input`.
    fn feed_buffered<'a>(
        &mut self,
        dir: Dir,
        input: &'a [u8],
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) -> &'a [u8] {
        let cap = self.limits.max_buffer;
        let mut buf = mem::take(&mut self.side_mut(dir).buf);
        let old = buf.len();
        let take = cap.saturating_sub(old).min(input.len());
        buf.extend_from_slice(&input[..take]);
        let rest = &input[take..];
        let state = self.side(dir).state;
        let outcome = if side::worth_parsing(state, &buf, old) {
            self.parse_collected(dir, &buf, meta, out)
        } else {
            Outcome::NeedMore
        };
        match outcome {
            Outcome::Done(n) => {
                buf.drain(..n);
                self.run(dir, &buf, meta, out);
            }
            Outcome::NeedMore if buf.len() < cap => {
                self.side_mut(dir).buf = buf;
                return rest;
            }
            Outcome::NeedMore => self.too_large(dir, &buf, meta, out),
            Outcome::Bad => {
                self.bad(dir, out);
                self.run(dir, &buf[1..], meta, out);
            }
        }
        self.side_mut(dir).recycle(buf);
        rest
    }

    /// Takes the first bytes of `s` in the current state; returns how many were used.
    /// Uses none only when the state changed (so the loop always moves on).
    fn step(&mut self, dir: Dir, s: &[u8], meta: Meta, out: &mut Vec<Exchange>) -> usize {
        let state = self.side(dir).state;
        if dir == Dir::ToServer && state.in_body() && self.body_never_sent(s) {
            return 0;
        }
        let side = self.side_mut(dir);
        match state {
            State::Stopped => s.len(),
            State::Resync { line_start } => match line::find_start(dir, s, line_start) {
                Some(at) => {
                    side.state = State::Head;
                    side.guessed = true;
                    at
                }
                None => {
                    side.state = State::Resync {
                        line_start: s.last() == Some(&b'\n'),
                    };
                    s.len()
                }
            },
            State::Head | State::ChunkSize | State::Trailers => {
                self.step_collect(dir, s, meta, out)
            }
            State::Body(left) | State::ChunkData(left) => {
                let n = left.min(s.len() as u64);
                self.body_bytes(dir, n, Some(meta));
                let next = match (state, left - n) {
                    (State::Body(_), 0) => None,
                    (State::Body(_), left) => Some(State::Body(left)),
                    (_, 0) => Some(State::ChunkEnd { cr: false }),
                    (_, left) => Some(State::ChunkData(left)),
                };
                match next {
                    Some(next) => self.side_mut(dir).state = next,
                    None => self.body_done(dir, out),
                }
                n as usize
            }
            State::ChunkEnd { cr } => match (cr, s[0]) {
                (false, b'\r') => {
                    side.state = State::ChunkEnd { cr: true };
                    1
                }
                (_, b'\n') => {
                    side.state = State::ChunkSize;
                    1
                }
                _ => {
                    self.bad(dir, out);
                    0
                }
            },
            State::UntilClose => {
                self.body_bytes(dir, s.len() as u64, Some(meta));
                s.len()
            }
        }
    }

    /// A client that sent `Expect: 100-continue` and got a final response instead may
    /// send its next request without the body: take a request line there for what it is.
    fn body_never_sent(&mut self, s: &[u8]) -> bool {
        let side = &self.req;
        if !(side.answered && side.expect_continue && !side.body_started) {
            return false;
        }
        if line::request_line(s) == Verdict::No {
            return false;
        }
        // Its transaction was reported already: if this is body after all, it is
        // skipped like any bytes that are not a head.
        self.req.state = State::Head;
        self.req.guessed = true;
        self.req.body_txn = None;
        true
    }

    /// A head, chunk-size line or trailer section from `s`, in place if `s` holds it whole.
    fn step_collect(&mut self, dir: Dir, s: &[u8], meta: Meta, out: &mut Vec<Exchange>) -> usize {
        let side = self.side_mut(dir);
        if side.state == State::Head {
            // Empty lines between messages are tolerated (RFC 9112, section 2.2).
            let blank = s.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if blank > 0 {
                return blank;
            }
            side.head_start = meta;
            if line::start_line(dir, s) == Verdict::No {
                self.bad(dir, out);
                return 0;
            }
        }
        // No more than a buffer's worth, so that a head is too large or not whatever the
        // packets' sizes.
        let cap = self.limits.max_buffer;
        let s = &s[..s.len().min(cap)];
        match self.parse_collected(dir, s, meta, out) {
            Outcome::Done(n) => n,
            Outcome::NeedMore if s.len() >= cap => {
                self.too_large(dir, s, meta, out);
                s.len()
            }
            Outcome::NeedMore => {
                self.side_mut(dir).buf.extend_from_slice(s);
                s.len()
            }
            Outcome::Bad => {
                self.bad(dir, out);
                1
            }
        }
    }

    /// Parses what the current collecting state waits for from the start of `s`.
    pub(super) fn parse_collected(
        &mut self,
        dir: Dir,
        s: &[u8],
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) -> Outcome {
        let max_value = self.limits.max_header_value;
        match (self.side(dir).state, dir) {
            (State::Head, Dir::ToServer) => match head::parse_request(s, max_value) {
                Parsed::Complete(h, n) => {
                    self.on_request(h, meta, out);
                    Outcome::Done(n)
                }
                Parsed::Partial => Outcome::NeedMore,
                Parsed::Invalid => Outcome::Bad,
            },
            (State::Head, Dir::ToClient) => match head::parse_response(s, max_value) {
                Parsed::Complete(h, n) => {
                    self.on_response(h, meta, out);
                    Outcome::Done(n)
                }
                Parsed::Partial => Outcome::NeedMore,
                Parsed::Invalid => Outcome::Bad,
            },
            (State::ChunkSize, _) => {
                let Some(end) = s.iter().position(|&b| b == b'\n') else {
                    return Outcome::NeedMore;
                };
                match httparse::parse_chunk_size(&s[..=end]) {
                    Ok(httparse::Status::Complete((n, 0))) => {
                        self.side_mut(dir).state = State::Trailers;
                        Outcome::Done(n)
                    }
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.side_mut(dir).state = State::ChunkData(size);
                        Outcome::Done(n)
                    }
                    _ => Outcome::Bad,
                }
            }
            (State::Trailers, _) => match head::parse_trailers(s, max_value) {
                Parsed::Complete(trailers, n) => {
                    if let Some(t) = self.body_txn_mut(dir) {
                        let headers = match dir {
                            Dir::ToServer => &mut t.http.request_headers,
                            Dir::ToClient => &mut t.http.response_headers,
                        };
                        headers.extend(trailers);
                    }
                    self.body_done(dir, out);
                    Outcome::Done(n)
                }
                Parsed::Partial => Outcome::NeedMore,
                Parsed::Invalid => Outcome::Bad,
            },
            _ => Outcome::Bad,
        }
    }

    /// `n` bytes of the body being read in `dir`, seen in the packet `meta`, or lost in a
    /// hole of known size (`None`).
    pub(super) fn body_bytes(&mut self, dir: Dir, n: u64, meta: Option<Meta>) {
        if dir == Dir::ToServer && n > 0 {
            self.req.body_started = true;
        }
        if let Some(t) = self.body_txn_mut(dir) {
            let count = match dir {
                Dir::ToServer => &mut t.http.request_body_bytes,
                Dir::ToClient => &mut t.http.response_body_bytes,
            };
            *count = count.saturating_add(n);
            match meta {
                Some(meta) if meta.seq >= t.end.seq => t.end = meta,
                _ => {}
            }
        }
    }

    /// The body being read in `dir` ended: a response is reported.
    pub(super) fn body_done(&mut self, dir: Dir, out: &mut Vec<Exchange>) {
        self.side_mut(dir).state = State::Head;
        match dir {
            Dir::ToServer => {
                if let Some(t) = self.body_txn_mut(dir) {
                    t.request_done = true;
                }
                self.req.body_txn = None;
            }
            Dir::ToClient => {
                if let Some(t) = self.current.take() {
                    self.report(t, out);
                }
            }
        }
    }
}
