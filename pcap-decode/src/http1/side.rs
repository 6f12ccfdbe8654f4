//! The state of one direction: where in a message its next byte falls, and the bytes of an
//! unfinished head kept until the rest arrives.

use super::txn::Missing;
use crate::stream::Meta;

/// A buffer grown larger than this by a long head is dropped once the head is read, so an
/// idle connection does not keep it.
const KEEP_CAPACITY: usize = 8 << 10;

/// Where the next byte of a direction falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// A request line or status line, then headers.
    Head,
    /// Looking for the next start line after a hole, a malformed message, or a capture
    /// begun mid-connection. `line_start`: the next byte begins a line.
    Resync { line_start: bool },
    /// This many bytes of a body delimited by Content-Length remain.
    Body(u64),
    /// A chunk-size line (with its extensions).
    ChunkSize,
    /// This many bytes of chunk data remain.
    ChunkData(u64),
    /// The CRLF after chunk data; `cr` when the CR was seen.
    ChunkEnd { cr: bool },
    /// The trailer section after the last chunk, up to its empty line.
    Trailers,
    /// A response body delimited by the connection's close.
    UntilClose,
    /// Nothing more to parse: the direction ended, or the connection left HTTP/1.
    Stopped,
}

impl State {
    /// Inside a message body (the message has begun and not ended).
    pub fn in_body(self) -> bool {
        matches!(
            self,
            State::Body(_)
                | State::ChunkSize
                | State::ChunkData(_)
                | State::ChunkEnd { .. }
                | State::Trailers
                | State::UntilClose
        )
    }
}

/// One direction of the connection.
#[derive(Debug)]
pub(super) struct Side {
    pub state: State,
    /// An unfinished head, chunk-size line or trailer section; never above the limit.
    pub buf: Vec<u8>,
    /// The packet of the first byte of the head being read.
    pub head_start: Meta,
    /// Nothing of this direction seen yet: a first message that is not a head means the
    /// capture began mid-connection.
    pub fresh: bool,
    /// The head being read begins where a resynchronisation guessed: if it is not one,
    /// it is dropped without a note.
    pub guessed: bool,
    /// Bytes lost before the next message (noted on it).
    pub gap: Missing,
    /// A malformed message was skipped before the next one (noted on it).
    pub malformed: bool,
    /// Request side: the transaction whose body is being read.
    pub body_txn: Option<u64>,
    /// ... a byte of that body was seen.
    pub body_started: bool,
    /// ... it sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// ... its final response came before any byte of its body.
    pub answered: bool,
}

impl Side {
    pub fn new() -> Self {
        Side {
            state: State::Head,
            buf: Vec::new(),
            head_start: Meta::default(),
            fresh: true,
            guessed: false,
            gap: Missing::default(),
            malformed: false,
            body_txn: None,
            body_started: false,
            expect_continue: false,
            answered: false,
        }
    }

    /// Gives back a buffer taken out to parse from, keeping its capacity if modest.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.buf.is_empty() && buf.capacity() <= KEEP_CAPACITY {
            buf.clear();
            self.buf = buf;
        }
    }

    /// Drops what is buffered and stops parsing this direction.
    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.buf = Vec::new();
        self.body_txn = None;
    }

    /// Drops what is buffered and looks for the next start line.
    pub fn resync(&mut self, line_start: bool) {
        self.state = State::Resync { line_start };
        self.buf.clear();
        self.guessed = true;
    }
}

/// Whether bytes appended to a collecting state (`buf[old..]` are new) may have completed
/// what it collects, so that parsing again is worth it. Keeps a head fed a byte at a time
/// from being parsed again for each byte.
pub(super) fn worth_parsing(state: State, buf: &[u8], old: usize) -> bool {
    let new_line = buf[old..].contains(&b'\n');
    match state {
        State::ChunkSize => new_line,
        // The first line complete: httparse refuses a bad one early.
        State::Head if new_line && !buf[..old].contains(&b'\n') => true,
        State::Head | State::Trailers => {
            let trailers = state == State::Trailers;
            let from = old.saturating_sub(2);
            (from..buf.len()).any(|i| ends_blank_line(buf, i, trailers))
        }
        _ => true,
    }
}

/// Whether `buf[i]` is the LF of an empty line (a section's end). A trailer section may be
/// only that empty line.
fn ends_blank_line(buf: &[u8], i: usize, trailers: bool) -> bool {
    if buf[i] != b'\n' {
        return false;
    }
    match i {
        0 => trailers,
        1 if buf[0] == b'\r' => trailers,
        _ => buf[i - 1] == b'\n' || (buf[i - 1] == b'\r' && buf[i - 2] == b'\n'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_again_only_when_a_head_may_have_ended() {
        let b = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(!worth_parsing(State::Head, &b[..5], 3));
        assert!(worth_parsing(State::Head, &b[..16], 15));
        assert!(!worth_parsing(State::Head, &b[..25], 24));
        assert!(worth_parsing(State::Head, b, 26));
        assert!(worth_parsing(State::Trailers, b"\r\n", 1));
        assert!(!worth_parsing(State::Trailers, b"X: 1\r\n", 5));
        assert!(worth_parsing(State::ChunkSize, b"5;a=b\r\n", 6));
    }

    #[test]
    fn a_large_buffer_is_not_kept() {
        let mut side = Side::new();
        side.recycle(Vec::with_capacity(KEEP_CAPACITY * 2));
        assert_eq!(side.buf.capacity(), 0);
        side.recycle(Vec::with_capacity(64));
        assert!(side.buf.capacity() >= 64);
    }
}
