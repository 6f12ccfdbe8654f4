//! What the transport layer reports besides bytes: holes, a direction's end, the
//! connection's close, and time passing.

use super::side::State;
use super::txn::Kind;
use super::Http1Parser;
use crate::stream::{CloseReason, Dir, Exchange, Meta};

impl Http1Parser {
    pub(super) fn on_hole(
        &mut self,
        dir: Dir,
        len: Option<u64>,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        let state = self.side(dir).state;
        match (state, len) {
            (State::Stopped, _) => {}
            (State::Body(left) | State::ChunkData(left), Some(n)) if n <= left => {
                self.body_missing(dir, Some(n));
                self.body_bytes(dir, n, None);
                let left = left - n;
                match state {
                    State::Body(_) if left == 0 => self.body_done(dir, out),
                    State::Body(_) => self.side_mut(dir).state = State::Body(left),
                    _ if left == 0 => self.side_mut(dir).state = State::ChunkEnd { cr: false },
                    _ => self.side_mut(dir).state = State::ChunkData(left),
                }
            }
            (State::Body(left), Some(n)) => {
                // The body's end, and the start of what follows, are in the hole.
                self.body_missing(dir, Some(left));
                self.body_bytes(dir, left, None);
                self.body_done(dir, out);
                self.lost(dir, Some(n - left), true, meta, out);
            }
            (State::UntilClose, _) => {
                self.body_missing(dir, len);
                self.body_bytes(dir, len.unwrap_or(0), None);
            }
            (State::Resync { .. }, _) => {
                let side = self.side_mut(dir);
                side.gap.add(len);
                side.state = State::Resync { line_start: true };
            }
            (State::Head, _) => self.lost(dir, len, true, meta, out),
            _ => {
                self.body_missing(dir, None);
                self.body_lost(dir, "a hole", out);
                self.lost(dir, len, false, meta, out);
            }
        }
    }

    fn body_missing(&mut self, dir: Dir, len: Option<u64>) {
        if let Some(t) = self.body_txn_mut(dir) {
            match dir {
                Dir::ToServer => t.missing_request.add(len),
                Dir::ToClient => t.missing_response.add(len),
            }
        }
    }

    /// `len` bytes of `dir` between messages (or of a head) were lost: resynchronise.
    /// When they are known to hold the start of a message (`head` and a known size), that
    /// message keeps its place in the pairing: a request not seen, or a response not seen.
    fn lost(
        &mut self,
        dir: Dir,
        len: Option<u64>,
        head: bool,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        let side = self.side_mut(dir);
        side.resync(true);
        side.fresh = false;
        let Some(n) = len.filter(|&n| head && n > 0) else {
            side.gap.add(len);
            return;
        };
        match dir {
            Dir::ToServer => self.enqueue(super::txn::Txn::new(u64::MAX, Kind::Unseen, meta), out),
            Dir::ToClient => {
                if self.current.is_none() && self.orphans == 0 && self.queue.is_empty() {
                    self.resp.gap.add(len);
                    return;
                }
                let mut t = self.take_responding(meta);
                t.cut(format!("the response was not captured ({n} bytes lost)"));
                self.report(t, out);
            }
        }
    }

    pub(super) fn on_end(&mut self, dir: Dir, reset: bool, meta: Meta, out: &mut Vec<Exchange>) {
        let (who, how) = match (dir, reset) {
            (Dir::ToServer, false) => ("client", "closed its side of the connection"),
            (Dir::ToServer, true) => ("client", "reset the connection"),
            (Dir::ToClient, false) => ("server", "closed its side of the connection"),
            (Dir::ToClient, true) => ("server", "reset the connection"),
        };
        let phrase = format!("the {who} {how}");
        match dir {
            Dir::ToServer => {
                self.request_cut(&phrase);
                self.req.stop();
            }
            Dir::ToClient => self.responses_cut(&phrase, !reset, meta, out),
        }
    }

    pub(super) fn on_close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        let phrase = match reason {
            CloseReason::Ended => "connection closed",
            CloseReason::EndOfInput => "capture ended",
            CloseReason::Idle => "connection went idle",
            CloseReason::Evicted => "connection dropped to stay within the memory bound",
        };
        self.request_cut(phrase);
        self.req.stop();
        self.responses_cut(phrase, reason == CloseReason::Ended, meta, out);
    }

    /// The request side stopped: a request body still being read was cut short.
    fn request_cut(&mut self, phrase: &str) {
        if self.req.state.in_body() {
            if let Some(t) = self.body_txn_mut(Dir::ToServer) {
                t.cut(format!("{phrase} before the end of the request body"));
                t.request_done = true;
            }
        }
    }

    /// No more response can come: finish the one being read (a body delimited by the close
    /// ends here when `close_ends_body`), and report every request still waiting.
    fn responses_cut(
        &mut self,
        phrase: &str,
        close_ends_body: bool,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        if let Some(mut t) = self.current.take() {
            match self.resp.state {
                State::UntilClose if close_ends_body => {
                    if meta.seq >= t.end.seq {
                        t.end = meta;
                    }
                }
                State::Body(left) => t.cut(format!(
                    "{phrase} with {left} bytes of the response body still to come"
                )),
                _ => t.cut(format!("{phrase} before the end of the response")),
            }
            self.report(t, out);
        }
        while let Some(mut t) = self.queue.pop_front() {
            t.cut(format!("{phrase} before the response"));
            self.report(t, out);
        }
        self.orphans = 0;
        self.timed = 0;
        self.resp.stop();
    }

    /// Reports requests that waited longer than the response timeout since their last
    /// packet. They keep their place in the queue, so that a late response pairs right.
    pub(super) fn on_tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        let timeout = self.limits.response_timeout_ns;
        while let Some(t) = self.queue.get_mut(self.timed) {
            if t.kind == Kind::Request {
                if now_ns.saturating_sub(t.end.ts_ns) <= timeout {
                    break;
                }
                t.cut(format!("no response within {}", seconds(timeout)));
                out.push(t.take_exchange());
                t.kind = Kind::Reported;
            }
            self.timed += 1;
        }
    }
}

/// A timeout as people write it: "60 s", "1.5 s".
fn seconds(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    if ns % 1_000_000_000 == 0 {
        format!("{} s", ns / 1_000_000_000)
    } else {
        format!("{s} s")
    }
}
