//! RFC 7766 framing of DNS over TCP: each message behind a 2-byte length. Messages may
//! share a segment or span several; a message longer than the buffer limit is skipped by
//! its length; after a hole, framing is found again at a length prefix followed by a
//! plausible header and question.

use super::wire::{plausible, Verdict, HEADER_LEN};
use crate::stream::Meta;

/// The length prefix and a header: the least kept to say what a skipped message was.
const HEAD: usize = 2 + HEADER_LEN;

/// A buffer larger than this is given back once emptied.
const KEEP_CAPACITY: usize = 4096;

/// What the framer found in the bytes it was fed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// One whole message, without its length prefix, and the packet its first byte came in.
    Message(&'a [u8], Meta),
    /// A message of `declared` bytes, over the buffer limit: skipped after its header.
    Oversize { declared: usize, header: &'a [u8] },
    /// A length prefix too short for a header: framing is lost until found again.
    BadLength(usize),
}

/// The first bytes of a message dropped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partial {
    pub id: u16,
    /// QR, when the byte holding it was seen.
    pub response: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a length prefix, or inside the message `buf` holds the start of.
    Frame,
    /// Inside a message that is being skipped: this many bytes left.
    Skip(usize),
    /// Looking for a length prefix followed by a plausible message.
    Resync,
}

/// The framing state of one direction of a connection.
#[derive(Debug)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    state: State,
    /// The packet that brought the first byte in `buf`.
    first: Meta,
}

impl Framer {
    pub fn new() -> Self {
        Framer {
            buf: Vec::new(),
            state: State::Frame,
            first: Meta::default(),
        }
    }

    /// Feeds in-order bytes that came in `meta`'s packet; `limit` bounds the buffer (at
    /// least a length and a header).
    pub fn feed(
        &mut self,
        mut input: &[u8],
        limit: usize,
        meta: Meta,
        emit: &mut impl FnMut(Event<'_>),
    ) {
        let limit = limit.max(HEAD);
        loop {
            match self.state {
                State::Skip(left) => {
                    if input.is_empty() {
                        return;
                    }
                    let n = left.min(input.len());
                    input = &input[n..];
                    self.state = if n == left {
                        State::Frame
                    } else {
                        State::Skip(left - n)
                    };
                }
                State::Resync => {
                    let n = (limit - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.resync(limit) {
                        self.state = State::Frame;
                        self.first = meta;
                    } else if input.is_empty() {
                        return;
                    }
                }
                State::Frame if self.buf.is_empty() => {
                    // Whole messages straight from the input, without copying.
                    match whole(input, limit) {
                        Some(len) => {
                            emit(Event::Message(&input[2..2 + len], meta));
                            input = &input[2 + len..];
                        }
                        None if input.is_empty() => return,
                        None => {
                            self.first = meta;
                            self.frame(&mut input, limit, emit);
                        }
                    }
                }
                State::Frame => {
                    if input.is_empty() && !self.holds_whole_message(limit) {
                        return;
                    }
                    self.frame(&mut input, limit, emit);
                }
            }
        }
    }

    /// One step at a length prefix with bytes in (or going into) `buf`.
    fn frame(&mut self, input: &mut &[u8], limit: usize, emit: &mut impl FnMut(Event<'_>)) {
        if self.buf.len() < 2 {
            self.take(input, 2);
            if self.buf.len() < 2 {
                return;
            }
        }
        let declared = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if declared < HEADER_LEN {
            emit(Event::BadLength(declared));
            self.buf.drain(..1);
            self.state = State::Resync;
            return;
        }
        let total = 2 + declared;
        if total > limit {
            self.take(input, HEAD);
            if self.buf.len() >= HEAD {
                emit(Event::Oversize {
                    declared,
                    header: &self.buf[2..HEAD],
                });
                let left = total - self.buf.len().min(total);
                self.clear();
                self.state = if left == 0 {
                    State::Frame
                } else {
                    State::Skip(left)
                };
            }
            return;
        }
        self.take(input, total);
        if self.buf.len() >= total {
            emit(Event::Message(&self.buf[2..total], self.first));
            self.buf.drain(..total);
            if self.buf.is_empty() {
                self.clear();
            }
        }
    }

    /// Moves input into `buf` until it holds `upto` bytes.
    fn take(&mut self, input: &mut &[u8], upto: usize) {
        let n = upto.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        *input = &input[n..];
    }

    /// Whether `buf` alone lets [`Framer::frame`] go on: a message, a header of one to skip,
    /// or a bad length.
    fn holds_whole_message(&self, limit: usize) -> bool {
        if self.buf.len() < 2 {
            return false;
        }
        let declared = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        let total = 2 + declared;
        declared < HEADER_LEN
            || self.buf.len() >= total
            || (total > limit && self.buf.len() >= HEAD)
    }

    /// Drops bytes of `buf` up to the first plausible message; true when one starts it.
    fn resync(&mut self, limit: usize) -> bool {
        let mut i = 0;
        while i + 2 <= self.buf.len() {
            let declared = usize::from(u16::from_be_bytes([self.buf[i], self.buf[i + 1]]));
            let rest = &self.buf[i + 2..];
            match plausible(rest, declared) {
                Verdict::Dns(_) => {
                    self.buf.drain(..i);
                    return true;
                }
                // A full buffer cannot wait for more: give up on this position.
                Verdict::NeedMore if self.buf.len() - i < limit => {
                    self.buf.drain(..i);
                    return false;
                }
                _ => i += 1,
            }
        }
        self.buf.drain(..i);
        false
    }

    /// Bytes were lost (`len` of them, or an unknown number): the message under way is
    /// dropped (its first bytes returned), and framing goes on past the gap when its length
    /// says where the next message starts, or is found again.
    pub fn hole(&mut self, len: Option<u64>) -> Option<Partial> {
        let partial = self.partial();
        let left = match self.state {
            State::Skip(left) => Some(left),
            State::Frame if self.buf.len() >= 2 => {
                let declared = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                (declared >= HEADER_LEN).then(|| (2 + declared).saturating_sub(self.buf.len()))
            }
            _ => None,
        };
        self.state = match (left, len.and_then(|l| usize::try_from(l).ok())) {
            (Some(left), Some(len)) if len < left => State::Skip(left - len),
            (Some(left), Some(len)) if len == left => State::Frame,
            _ => State::Resync,
        };
        self.clear();
        partial
    }

    /// The direction ended: a message under way is dropped (its first bytes returned).
    pub fn end(&mut self) -> Option<Partial> {
        let partial = self.partial();
        self.buf = Vec::new();
        self.state = State::Frame;
        partial
    }

    fn partial(&self) -> Option<Partial> {
        if self.state != State::Frame || self.buf.len() < 4 {
            return None;
        }
        Some(Partial {
            id: u16::from_be_bytes([self.buf[2], self.buf[3]]),
            response: self.buf.get(4).map(|b| b & 0x80 != 0),
        })
    }

    fn clear(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// Bytes of buffer held.
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }
}

/// The length of the whole message at the start of `input`, if it is all there and within
/// `limit` and long enough for a header.
fn whole(input: &[u8], limit: usize) -> Option<usize> {
    let prefix = input.get(..2)?;
    let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    (len >= HEADER_LEN && 2 + len <= input.len() && 2 + len <= limit).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testing::{framed, query};

    /// What feeding `chunks` gives, as text.
    fn feed(f: &mut Framer, chunks: &[&[u8]], limit: usize) -> Vec<String> {
        let mut seen = Vec::new();
        for chunk in chunks {
            f.feed(chunk, limit, Meta::default(), &mut |e| {
                seen.push(match e {
                    Event::Message(m, _) => format!(
                        "msg id={} len={}",
                        u16::from_be_bytes([m[0], m[1]]),
                        m.len()
                    ),
                    Event::Oversize { declared, header } => {
                        format!("oversize {declared} id={}", header[1])
                    }
                    Event::BadLength(n) => format!("bad {n}"),
                })
            });
        }
        seen
    }

    fn stream() -> Vec<u8> {
        let mut s = framed(&query(1, "a.test", 1));
        s.extend(framed(&query(2, "bb.test", 1)));
        s.extend(framed(&query(3, "ccc.test", 28)));
        s
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_are_cut() {
        let s = stream();
        let want = ["msg id=1 len=24", "msg id=2 len=25", "msg id=3 len=26"];
        assert_eq!(feed(&mut Framer::new(), &[&s], 1000), want);
        for cut in 0..=s.len() {
            let mut f = Framer::new();
            assert_eq!(
                feed(&mut f, &[&s[..cut], &s[cut..]], 1000),
                want,
                "cut at {cut}"
            );
            assert_eq!(f.buf.len(), 0);
        }
        let mut f = Framer::new();
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(feed(&mut f, &bytes, 1000), want);
        for cut in 1..s.len() {
            for cut2 in cut..s.len() {
                let mut f = Framer::new();
                assert_eq!(
                    feed(&mut f, &[&s[..cut], &s[cut..cut2], &s[cut2..]], 1000),
                    want
                );
            }
        }
    }

    #[test]
    fn a_message_over_the_limit_is_skipped_by_its_length() {
        let mut big = query(9, "big.test", 16);
        big.resize(300, 0);
        let mut s = framed(&big);
        s.extend(framed(&query(1, "a.test", 1)));
        for cut in 0..=s.len() {
            let mut f = Framer::new();
            let seen = feed(&mut f, &[&s[..cut], &s[cut..]], 100);
            assert_eq!(
                seen,
                ["oversize 300 id=9", "msg id=1 len=24"],
                "cut at {cut}"
            );
            assert!(f.buffered() <= 100);
        }
    }

    #[test]
    fn a_bad_length_loses_framing_until_a_plausible_message() {
        let mut s = vec![0, 3, 0xde, 0xad, 0xbe];
        s.extend(b"junk junk junk junk");
        s.extend(stream());
        for cut in 0..=s.len() {
            let seen = feed(&mut Framer::new(), &[&s[..cut], &s[cut..]], 1000);
            assert_eq!(seen[0], "bad 3");
            assert_eq!(
                seen[1..],
                ["msg id=1 len=24", "msg id=2 len=25", "msg id=3 len=26"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_hole_inside_a_message_of_known_length_is_stepped_over() {
        let s = stream();
        // The first message (26 bytes with its prefix) loses bytes 10..20.
        let mut f = Framer::new();
        assert!(feed(&mut f, &[&s[..10]], 1000).is_empty());
        let p = f.hole(Some(10)).unwrap();
        assert_eq!((p.id, p.response), (1, Some(false)));
        assert_eq!(
            feed(&mut f, &[&s[20..]], 1000),
            ["msg id=2 len=25", "msg id=3 len=26"]
        );
        // A hole that ends exactly at the next message.
        let mut f = Framer::new();
        feed(&mut f, &[&s[..10]], 1000);
        f.hole(Some(16));
        assert_eq!(
            feed(&mut f, &[&s[26..]], 1000),
            ["msg id=2 len=25", "msg id=3 len=26"]
        );
        // A hole of unknown length: found again at the next plausible message.
        let mut f = Framer::new();
        feed(&mut f, &[&s[..10]], 1000);
        assert_eq!(f.hole(None).map(|p| p.id), Some(1));
        assert_eq!(feed(&mut f, &[&s[33..]], 1000), ["msg id=3 len=26"]);
        // A hole while skipping.
        let mut f = Framer::new();
        let mut big = query(9, "big.test", 16);
        big.resize(300, 0);
        let b = framed(&big);
        feed(&mut f, &[&b[..50]], 100);
        f.hole(Some(200));
        assert_eq!(
            feed(&mut f, &[&b[250..], &s], 100),
            ["msg id=1 len=24", "msg id=2 len=25", "msg id=3 len=26"]
        );
    }

    #[test]
    fn resynchronising_on_garbage_stays_within_the_limit() {
        let mut f = Framer::new();
        f.hole(None);
        let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        feed(&mut f, &[&garbage], 64);
        assert!(f.buf.len() <= 64, "{}", f.buf.len());
        assert_eq!(
            feed(&mut f, &[&stream()], 64).last().unwrap(),
            "msg id=3 len=26"
        );
    }
}
