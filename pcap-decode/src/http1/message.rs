//! Messages: a request head opens a transaction, a response head pairs with the oldest
//! waiting one and frames its body, and what cannot be parsed is reported and skipped.

use super::head::{self, RequestHead, ResponseHead};
use super::line::{self, Verdict};
use super::side::State;
use super::txn::{Kind, Txn};
use super::Http1Parser;
use crate::stream::{Dir, Exchange, Meta};

impl Http1Parser {
    pub(super) fn on_request(&mut self, h: RequestHead, meta: Meta, out: &mut Vec<Exchange>) {
        let side = &mut self.req;
        side.fresh = false;
        side.guessed = false;
        let mut t = Txn::new(self.next_id, Kind::Request, side.head_start);
        self.next_id += 1;
        t.end = meta;
        if let Some(note) = side.gap.note("request stream") {
            t.cut(format!("{note} before this request"));
        }
        if side.malformed {
            t.cut("a malformed request was skipped before this request");
        }
        side.gap = Default::default();
        side.malformed = false;
        t.head = h.method == "HEAD";
        t.connect = h.method == "CONNECT";
        let f = h.framing;
        t.http.method = h.method;
        t.http.target = h.target;
        t.http.version = h.version.to_owned();
        t.http.host = f.host.unwrap_or_default();
        t.http.request_headers = h.headers;
        let body = if f.transfer_encoding && !f.chunked {
            t.cut("the request's Transfer-Encoding does not end in chunked: its body could not be delimited");
            None
        } else if f.transfer_encoding {
            Some(State::ChunkSize)
        } else {
            match f.content_length {
                Some(Err(())) => {
                    t.cut("invalid Content-Length in the request: its body could not be delimited");
                    None
                }
                Some(Ok(n)) if n > 0 => Some(State::Body(n)),
                _ => Some(State::Head),
            }
        };
        match body {
            None => side.resync(false),
            Some(State::Head) => side.state = State::Head,
            Some(state) => {
                side.state = state;
                side.body_txn = Some(t.id);
                side.body_started = false;
                side.answered = false;
                side.expect_continue = f.expect_continue;
                t.request_done = false;
            }
        }
        self.enqueue(t, out);
    }

    /// Queues a request for its response; beyond `max_pending`, the oldest is reported
    /// without one (its response, when it comes, is read and dropped).
    pub(super) fn enqueue(&mut self, t: Txn, out: &mut Vec<Exchange>) {
        let max = self.limits.max_pending.max(1);
        if self.queue.len() >= max {
            if let Some(mut old) = self.queue.pop_front() {
                self.timed = self.timed.saturating_sub(1);
                self.orphans += 1;
                old.cut(format!(
                    "more than {max} requests were waiting for a response: reported without its response"
                ));
                self.report(old, out);
            }
        }
        self.queue.push_back(t);
    }

    /// The transaction the next response belongs to.
    fn next_for_response(&mut self, start: Meta) -> Txn {
        if self.orphans > 0 {
            self.orphans -= 1;
            return Txn::new(u64::MAX, Kind::Reported, start);
        }
        if let Some(t) = self.queue.pop_front() {
            self.timed = self.timed.saturating_sub(1);
            return t;
        }
        Txn::new(u64::MAX, Kind::Unseen, start)
    }

    /// The transaction whose response is being read or is next, taken out.
    pub(super) fn take_responding(&mut self, start: Meta) -> Txn {
        match self.current.take() {
            Some(t) => t,
            None => self.next_for_response(start),
        }
    }

    pub(super) fn on_response(&mut self, h: ResponseHead, meta: Meta, out: &mut Vec<Exchange>) {
        let start = self.resp.head_start;
        let mut t = self.take_responding(start);
        self.attach_response(&mut t, start, h.version);
        t.end = meta;
        let code = h.code;
        if (100..200).contains(&code) && code != 101 {
            t.interim = Some(code);
            self.current = Some(t);
            return;
        }
        t.http.status = Some(code);
        t.http.reason = h.reason;
        t.http.response_headers = h.headers;
        let f = h.framing;
        if code == 101 || (t.connect && (200..300).contains(&code)) {
            let what = match (code, f.upgrade) {
                (101, Some(to)) => format!("switched protocols to {to}"),
                (101, None) => "switched protocols".to_owned(),
                _ => "CONNECT opened a tunnel".to_owned(),
            };
            t.notes.push(format!(
                "{what}: the rest of the connection was not decoded"
            ));
            self.report(t, out);
            self.switch(out);
            return;
        }
        let state = if t.head || code == 204 || code == 304 {
            State::Head
        } else if f.transfer_encoding && f.chunked {
            State::ChunkSize
        } else if f.transfer_encoding {
            State::UntilClose
        } else {
            match f.content_length {
                Some(Err(())) => {
                    t.notes.push(
                        "invalid Content-Length in the response: its body was read to the connection's close".to_owned(),
                    );
                    State::UntilClose
                }
                Some(Ok(0)) => State::Head,
                Some(Ok(n)) => State::Body(n),
                None => State::UntilClose,
            }
        };
        self.resp.state = state;
        if state == State::Head {
            self.report(t, out);
        } else {
            self.current = Some(t);
        }
    }

    /// Notes on a transaction what came before its response, and fills in a request that
    /// was not seen.
    fn attach_response(&mut self, t: &mut Txn, start: Meta, version: &str) {
        let side = &mut self.resp;
        side.fresh = false;
        side.guessed = false;
        if let Some(note) = side.gap.note("response stream") {
            t.cut(format!("{note} before this response"));
        }
        if side.malformed {
            t.cut("a malformed response was skipped before this response");
        }
        side.gap = Default::default();
        side.malformed = false;
        if t.kind == Kind::Unseen && t.http.version.is_empty() {
            t.start = start;
            t.end = start;
            t.http.version = version.to_owned();
            t.cut("the request was not captured");
        }
    }

    /// Hands a finished transaction out, unless it was reported already or is only a
    /// placeholder for a request never seen that got no response either.
    pub(super) fn report(&mut self, mut t: Txn, out: &mut Vec<Exchange>) {
        if self.req.body_txn == Some(t.id) && !t.request_done {
            self.req.answered = true;
            if self.req.body_started {
                t.notes
                    .push("the response ended before the request body".to_owned());
            }
        }
        let placeholder = t.kind == Kind::Unseen && t.http.version.is_empty();
        if t.kind != Kind::Reported && !placeholder {
            out.push(t.take_exchange());
        }
    }

    /// The connection left HTTP/1: report what waits, parse nothing more.
    fn switch(&mut self, out: &mut Vec<Exchange>) {
        while let Some(mut t) = self.queue.pop_front() {
            t.cut("the connection switched protocols before the response");
            self.report(t, out);
        }
        self.req.stop();
        self.resp.stop();
        self.orphans = 0;
        self.timed = 0;
        self.switched = true;
    }

    /// What `dir` was reading is not what it should be: report what it spoils and look for
    /// the next start line.
    pub(super) fn bad(&mut self, dir: Dir, out: &mut Vec<Exchange>) {
        let side = self.side_mut(dir);
        let state = side.state;
        let unexpected = !(side.guessed || side.fresh);
        let fresh = side.fresh;
        side.fresh = false;
        side.resync(false);
        match state {
            State::Head => {
                side.malformed |= unexpected;
                if fresh && dir == Dir::ToServer {
                    // The capture began inside a request: its response is still to come.
                    let start = self.req.head_start;
                    let t = Txn::new(u64::MAX, Kind::Unseen, start);
                    self.enqueue(t, out);
                }
                if dir == Dir::ToClient && unexpected {
                    if let Some(mut t) = self.current.take() {
                        t.cut("the final response was malformed");
                        self.report(t, out);
                    }
                }
            }
            _ => self.body_lost(dir, "malformed chunked body", out),
        }
    }

    /// The end of the body `dir` was reading can no longer be found.
    pub(super) fn body_lost(&mut self, dir: Dir, why: &str, out: &mut Vec<Exchange>) {
        match dir {
            Dir::ToServer => {
                if let Some(t) = self.body_txn_mut(dir) {
                    t.cut(format!(
                        "{why} in the request: the request stream was resynchronised"
                    ));
                    t.request_done = true;
                }
                self.req.body_txn = None;
            }
            Dir::ToClient => {
                if let Some(mut t) = self.current.take() {
                    t.cut(format!("{why} in the response"));
                    self.report(t, out);
                }
            }
        }
    }

    /// A head outgrew the buffer: report what its first line says, and resynchronise.
    pub(super) fn too_large(&mut self, dir: Dir, s: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        let side = self.side_mut(dir);
        if side.state != State::Head || line::start_line(dir, s) != Verdict::Yes {
            self.bad(dir, out);
            return;
        }
        let line_start = s.last() == Some(&b'\n');
        side.resync(line_start);
        let cap = self.limits.max_buffer;
        let max_value = self.limits.max_header_value;
        let start = self.side(dir).head_start;
        let note = |what: &str| {
            format!("{what} head larger than {cap} bytes: its headers were not decoded")
        };
        match dir {
            Dir::ToServer => {
                let (method, target) = head::salvage_request_line(s, max_value).unwrap_or_default();
                let mut t = Txn::new(self.next_id, Kind::Request, start);
                self.next_id += 1;
                t.end = meta;
                t.head = method == "HEAD";
                t.http.version = version_in(s).to_owned();
                t.http.method = method;
                t.http.target = target;
                t.cut(note("request"));
                self.req.fresh = false;
                self.enqueue(t, out);
            }
            Dir::ToClient => {
                let mut t = self.take_responding(start);
                self.attach_response(&mut t, start, version_in(s));
                t.end = meta;
                if let Some((code, reason)) = head::salvage_status_line(s, max_value) {
                    if !(100..200).contains(&code) || code == 101 {
                        t.http.status = Some(code);
                        t.http.reason = reason;
                    }
                }
                t.cut(format!(
                    "{}; the response stream was resynchronised",
                    note("response")
                ));
                self.report(t, out);
            }
        }
    }

    /// The transaction whose body `dir` is reading.
    pub(super) fn body_txn_mut(&mut self, dir: Dir) -> Option<&mut Txn> {
        match dir {
            Dir::ToClient => self.current.as_mut(),
            Dir::ToServer => {
                let id = self.req.body_txn?;
                if self.current.as_ref().is_some_and(|t| t.id == id) {
                    return self.current.as_mut();
                }
                self.queue.iter_mut().rev().find(|t| t.id == id)
            }
        }
    }
}

/// The version a start line names, for heads too large to parse.
fn version_in(s: &[u8]) -> &'static str {
    let line = s.split(|&b| b == b'\n').next().unwrap_or_default();
    if line.windows(8).any(|w| w == b"HTTP/1.0") {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}
