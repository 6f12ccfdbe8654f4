//! HTTP/2 frames (RFC 9113 sections 4 and 6): the 9-byte header, what each type may carry,
//! and a reader that cuts one direction's bytes into frames as they arrive. DATA payloads
//! are passed through in pieces, never buffered; other frames are kept whole up to a bound.
//! When the reader is not at a frame boundary (a connection first seen mid-stream, a hole)
//! it hunts for one: a plausible header followed by another, or one that fills the bytes.

use crate::stream::Dir;

/// What a client sends first on a connection (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until a SETTINGS frame says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// The 9 bytes in front of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// Without the reserved bit.
    pub stream: u32,
}

impl FrameHeader {
    /// Reads a header; `raw` holds at least 9 bytes.
    pub fn parse(raw: &[u8]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, raw[0], raw[1], raw[2]]),
            kind: raw[3],
            flags: raw[4],
            stream: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// RST_STREAM and GOAWAY error codes by name (RFC 9113 section 7).
pub fn error_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        other => return format!("0x{other:x}"),
    };
    name.to_owned()
}

/// Whether 9 bytes are a header a conforming `sender` (either side when `None`) could have
/// written, with a length of at most `max_len`: a known type, only the flags that type
/// defines (senders must leave the others unset), the reserved bit clear, stream 0 exactly
/// for connection frames, the fixed lengths of fixed-size frames, and stream-id parity.
pub fn plausible(raw: &[u8], max_len: u32, sender: Option<Dir>) -> Option<FrameHeader> {
    if raw.len() < HEADER_LEN || raw[5] & 0x80 != 0 {
        return None;
    }
    let h = FrameHeader::parse(raw);
    if h.len > max_len {
        return None;
    }
    let (allowed_flags, on_stream) = match h.kind {
        DATA => (END_STREAM | PADDED, true),
        HEADERS => (END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, true),
        PRIORITY | RST_STREAM => (0, true),
        SETTINGS | PING => (ACK, false),
        PUSH_PROMISE => (END_HEADERS | PADDED, true),
        GOAWAY => (0, false),
        WINDOW_UPDATE => (0, h.stream != 0),
        CONTINUATION => (END_HEADERS, true),
        _ => return None,
    };
    if h.flags & !allowed_flags != 0 || (h.stream != 0) != on_stream {
        return None;
    }
    let padded = u32::from(h.has(PADDED));
    let len_ok = match h.kind {
        DATA => h.len >= padded,
        HEADERS => h.len >= padded + if h.has(PRIORITY_FLAG) { 5 } else { 0 },
        PRIORITY => h.len == 5,
        RST_STREAM | WINDOW_UPDATE => h.len == 4,
        SETTINGS if h.has(ACK) => h.len == 0,
        SETTINGS => h.len.is_multiple_of(6),
        PUSH_PROMISE => h.len >= padded + 4,
        PING => h.len == 8,
        GOAWAY => h.len >= 8,
        _ => true,
    };
    if !len_ok {
        return None;
    }
    let odd = h.stream % 2 == 1;
    let parity_ok = match (sender, h.kind) {
        // A client opens odd streams and cannot send on streams the server pushed.
        (Some(Dir::ToServer), DATA | HEADERS | CONTINUATION) => odd,
        (Some(Dir::ToServer), PUSH_PROMISE) => false,
        // A push is promised on a stream the client opened.
        (_, PUSH_PROMISE) => odd,
        _ => true,
    };
    parity_ok.then_some(h)
}

/// What the reader found in the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The reader is at a frame boundary again: at the very start of the direction
    /// (`at_start`: the client preface, or the server's first SETTINGS), or after passing
    /// over `skipped` bytes it could not place.
    Synced { at_start: bool, skipped: u64 },
    /// A whole frame other than DATA.
    Frame {
        header: FrameHeader,
        payload: &'a [u8],
    },
    /// A frame other than DATA that could not be kept: larger than the bound, or damaged by
    /// a hole.
    Dropped { header: FrameHeader, hole: bool },
    /// Content of a DATA frame (padding removed), in order.
    Data {
        header: FrameHeader,
        chunk: &'a [u8],
    },
    /// `len` bytes of a DATA frame's content were never seen.
    DataHole { header: FrameHeader, len: u64 },
    /// The end of a DATA frame.
    DataEnd { header: FrameHeader },
    /// The frame boundary was lost (a hole the reader cannot step over, or a header no
    /// conforming peer writes); frames are hunted for again.
    Lost,
}

/// How a direction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The client's direction of a new connection: the preface, then frames.
    Preface,
    /// The server's direction of a new connection: frames from the first byte.
    Frames,
    /// Unknown: a SETTINGS frame in the first bytes means the start of the direction,
    /// anything else is hunted through.
    Detect,
    /// The connection was first seen mid-stream: hunt for frames.
    Hunt,
}

#[derive(Debug)]
enum State {
    Preface {
        have: usize,
    },
    Detect,
    Header {
        buf: [u8; HEADER_LEN],
        have: usize,
    },
    Body {
        header: FrameHeader,
        remaining: u32,
        keep: bool,
        damaged: bool,
    },
    DataPadLen {
        header: FrameHeader,
    },
    DataContent {
        header: FrameHeader,
        content: u32,
        pad: u32,
    },
    Hunt,
}

/// Cuts one direction's bytes into frames.
#[derive(Debug)]
pub struct FrameReader {
    sender: Dir,
    state: State,
    /// Frames other than DATA are kept whole up to this many bytes.
    keep_limit: usize,
    /// The sender's frames are at most this long (the receiver's SETTINGS_MAX_FRAME_SIZE).
    max_frame_size: u32,
    /// Whether the direction was seen from its start: then any frame type is accepted
    /// (extensions are skipped); otherwise a header a conforming peer would not write means
    /// the reader lost its way.
    from_start: bool,
    payload: Vec<u8>,
    scan: Vec<u8>,
}

enum Found {
    At(usize),
    /// No boundary yet; bytes before this offset cannot hold one.
    NeedMore(usize),
}

impl FrameReader {
    /// A reader of `sender`'s bytes that keeps frames other than DATA up to `keep_limit`
    /// bytes (and hunts through at most that many bytes at once, at least 1 KiB).
    pub fn new(start: Start, sender: Dir, keep_limit: usize) -> Self {
        let state = match start {
            Start::Preface => State::Preface { have: 0 },
            Start::Frames => State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
            Start::Detect => State::Detect,
            Start::Hunt => State::Hunt,
        };
        FrameReader {
            sender,
            state,
            keep_limit: keep_limit.max(1024),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            from_start: matches!(start, Start::Frames | Start::Preface),
            payload: Vec::new(),
            scan: Vec::new(),
        }
    }

    /// The receiver announced SETTINGS_MAX_FRAME_SIZE.
    pub fn set_max_frame_size(&mut self, size: u32) {
        self.max_frame_size = size.clamp(DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT);
    }

    /// Whether the reader still waits for the client preface.
    pub fn awaiting_preface(&self) -> bool {
        matches!(self.state, State::Preface { .. })
    }

    /// A reader still waiting to see whether the direction starts with SETTINGS hunts
    /// instead: the other direction showed the connection was first seen mid-stream.
    pub fn hunt_if_detecting(&mut self) {
        if matches!(self.state, State::Detect) {
            self.state = State::Hunt;
        }
    }

    /// Bytes held now.
    pub fn buffered(&self) -> usize {
        self.payload.capacity() + self.scan.capacity()
    }

    /// Whether the direction stopped inside a frame (or before finding one).
    pub fn mid_frame(&self) -> bool {
        match &self.state {
            State::Header { have, .. } => *have > 0,
            State::Preface { have } => *have > 0,
            State::Hunt => !self.scan.is_empty(),
            State::Detect => false,
            _ => true,
        }
    }

    /// In-order bytes of the direction.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(Event<'_>)) {
        while !bytes.is_empty() {
            let used = self.step(bytes, emit);
            bytes = &bytes[used..];
        }
    }

    /// `len` bytes (or an unknown amount) were never seen. Inside a frame whose end is
    /// known the reader steps over them; otherwise it hunts for the next frame.
    pub fn hole(&mut self, len: Option<u64>, emit: &mut dyn FnMut(Event<'_>)) {
        match &mut self.state {
            State::Body {
                remaining, damaged, ..
            } if len.is_some_and(|n| n <= u64::from(*remaining)) => {
                *remaining -= len.unwrap_or(0) as u32;
                *damaged = true;
                if *remaining == 0 {
                    self.finish_body(emit);
                }
            }
            State::DataContent {
                header,
                content,
                pad,
            } if len.is_some_and(|n| n <= u64::from(*content) + u64::from(*pad)) => {
                let n = len.unwrap_or(0);
                let header = *header;
                let in_content = n.min(u64::from(*content));
                *content -= in_content as u32;
                *pad -= (n - in_content) as u32;
                if in_content > 0 {
                    emit(Event::DataHole {
                        header,
                        len: in_content,
                    });
                }
                if *content == 0 && *pad == 0 {
                    emit(Event::DataEnd { header });
                    self.await_header();
                }
            }
            State::Hunt => {
                if !self.scan.is_empty() {
                    self.scan.clear();
                }
            }
            _ => {
                if let State::DataContent {
                    header, content, ..
                } = self.state
                {
                    if content > 0 {
                        emit(Event::DataHole {
                            header,
                            len: u64::from(content),
                        });
                    }
                }
                if let State::Body { header, .. } = self.state {
                    emit(Event::Dropped { header, hole: true });
                }
                self.lose(emit);
            }
        }
    }

    fn lose(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        self.state = State::Hunt;
        self.from_start = false;
        self.payload = Vec::new();
        emit(Event::Lost);
    }

    fn await_header(&mut self) {
        self.state = State::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
    }

    /// Handles a prefix of `bytes`, returns how many were used (at least one).
    fn step(&mut self, bytes: &[u8], emit: &mut dyn FnMut(Event<'_>)) -> usize {
        match &mut self.state {
            State::Preface { have } => {
                let want = &PREFACE[*have..];
                let n = want.len().min(bytes.len());
                if bytes[..n] == want[..n] {
                    *have += n;
                    if *have == PREFACE.len() {
                        self.await_header();
                        emit(Event::Synced {
                            at_start: true,
                            skipped: 0,
                        });
                    }
                    n
                } else {
                    // Not a connection start after all: what matched so far is hunted through.
                    let matched = *have;
                    self.state = State::Hunt;
                    self.from_start = false;
                    self.scan.extend_from_slice(&PREFACE[..matched]);
                    self.hunt(bytes, emit)
                }
            }
            State::Detect => {
                // The start of a server's direction is its SETTINGS frame.
                self.state = State::Hunt;
                if bytes.len() >= HEADER_LEN {
                    if let Some(h) = plausible(bytes, self.max_frame_size, Some(self.sender)) {
                        if h.kind == SETTINGS && !h.has(ACK) {
                            self.from_start = true;
                            self.await_header();
                            emit(Event::Synced {
                                at_start: true,
                                skipped: 0,
                            });
                            return self.step(bytes, emit);
                        }
                    }
                }
                self.hunt(bytes, emit)
            }
            State::Hunt => self.hunt(bytes, emit),
            State::Header { buf, have } => {
                let n = (HEADER_LEN - *have).min(bytes.len());
                buf[*have..*have + n].copy_from_slice(&bytes[..n]);
                *have += n;
                if *have == HEADER_LEN {
                    let raw = *buf;
                    self.start_frame(&raw, emit);
                }
                n
            }
            State::Body {
                remaining, keep, ..
            } => {
                let n = (*remaining as usize).min(bytes.len());
                if *keep {
                    self.payload.extend_from_slice(&bytes[..n]);
                }
                *remaining -= n as u32;
                if *remaining == 0 {
                    self.finish_body(emit);
                }
                n
            }
            State::DataPadLen { header } => {
                let header = *header;
                let pad = u32::from(bytes[0]);
                let rest = header.len - 1;
                // A pad length beyond the frame is a protocol error: count nothing as content.
                let pad = pad.min(rest);
                self.state = State::DataContent {
                    header,
                    content: rest - pad,
                    pad,
                };
                self.maybe_end_data(emit);
                1
            }
            State::DataContent {
                header,
                content,
                pad,
            } => {
                let header = *header;
                let used;
                if *content > 0 {
                    let n = (*content as usize).min(bytes.len());
                    *content -= n as u32;
                    used = n;
                    emit(Event::Data {
                        header,
                        chunk: &bytes[..n],
                    });
                } else {
                    let n = (*pad as usize).min(bytes.len());
                    *pad -= n as u32;
                    used = n;
                }
                self.maybe_end_data(emit);
                used
            }
        }
    }

    fn maybe_end_data(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        if let State::DataContent {
            header,
            content: 0,
            pad: 0,
        } = self.state
        {
            emit(Event::DataEnd { header });
            self.await_header();
        }
    }

    fn start_frame(&mut self, raw: &[u8; HEADER_LEN], emit: &mut dyn FnMut(Event<'_>)) {
        // Seen from its start, the direction is trusted (extension types are skipped);
        // otherwise a header no conforming peer writes means a wrong boundary.
        let header = if self.from_start {
            Some(FrameHeader::parse(raw))
        } else {
            // Extension frames (ALTSVC, ORIGIN, PRIORITY_UPDATE, ...) are skipped, though
            // never taken as a boundary when hunting.
            let h = FrameHeader::parse(raw);
            plausible(raw, self.max_frame_size, Some(self.sender)).or((h.kind > CONTINUATION
                && raw[5] & 0x80 == 0
                && h.len <= self.max_frame_size)
                .then_some(h))
        };
        let Some(header) = header else {
            self.lose(emit);
            self.scan.extend_from_slice(&raw[1..]);
            return;
        };
        if header.kind == DATA {
            if header.has(PADDED) && header.len > 0 {
                self.state = State::DataPadLen { header };
            } else {
                self.state = State::DataContent {
                    header,
                    content: header.len,
                    pad: 0,
                };
                self.maybe_end_data(emit);
            }
            return;
        }
        let keep = header.len as usize <= self.keep_limit;
        self.payload.clear();
        self.state = State::Body {
            header,
            remaining: header.len,
            keep,
            damaged: false,
        };
        if header.len == 0 {
            self.finish_body(emit);
        }
    }

    fn finish_body(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        if let State::Body {
            header,
            keep,
            damaged,
            ..
        } = self.state
        {
            self.await_header();
            if damaged || !keep {
                emit(Event::Dropped {
                    header,
                    hole: damaged,
                });
            } else {
                emit(Event::Frame {
                    header,
                    payload: &self.payload,
                });
            }
            if self.payload.capacity() > 4096 {
                self.payload = Vec::new();
            } else {
                self.payload.clear();
            }
        }
    }

    /// Adds bytes to the hunt and looks for a boundary; returns how many bytes of `bytes`
    /// were taken (the rest is handled in frame mode once a boundary is found).
    fn hunt(&mut self, bytes: &[u8], emit: &mut dyn FnMut(Event<'_>)) -> usize {
        let room = self.keep_limit.saturating_sub(self.scan.len()).max(1);
        let take = room.min(bytes.len());
        self.scan.extend_from_slice(&bytes[..take]);
        loop {
            match find_boundary(
                &self.scan,
                self.max_frame_size,
                self.sender,
                self.keep_limit,
            ) {
                Found::At(offset) => {
                    let scan = std::mem::take(&mut self.scan);
                    self.await_header();
                    emit(Event::Synced {
                        at_start: false,
                        skipped: offset as u64,
                    });
                    let mut rest = &scan[offset..];
                    while !rest.is_empty() {
                        if matches!(self.state, State::Hunt) {
                            // Lost again at once: keep hunting through what is left.
                            self.scan.extend_from_slice(rest);
                            break;
                        }
                        let used = self.step(rest, emit);
                        rest = &rest[used..];
                    }
                    if !matches!(self.state, State::Hunt) {
                        return take;
                    }
                }
                Found::NeedMore(keep_from) => {
                    let keep_from = if self.scan.len() - keep_from >= self.keep_limit {
                        keep_from + 1
                    } else {
                        keep_from
                    };
                    if keep_from > 0 {
                        self.scan.drain(..keep_from.min(self.scan.len()));
                    }
                    if self.scan.len() < self.keep_limit {
                        return take;
                    }
                }
            }
        }
    }
}

enum Verdict {
    Reject,
    Pending,
    Accept { strong: bool },
}

/// The first offset of `buf` where frames plausibly begin: a header whose frame is followed
/// by another plausible header, or ends exactly at the end of the bytes. A candidate that
/// needs more bytes to tell holds back later weak ones, but not a run of three frames (or
/// two ending exactly at the end).
fn find_boundary(buf: &[u8], max_len: u32, sender: Dir, limit: usize) -> Found {
    let mut first_pending = None;
    for offset in 0..buf.len() {
        match check(buf, offset, max_len, sender, limit) {
            Verdict::Reject => {}
            Verdict::Pending => {
                first_pending.get_or_insert(offset);
            }
            Verdict::Accept { strong } => {
                if strong || first_pending.is_none() {
                    return Found::At(offset);
                }
            }
        }
    }
    Found::NeedMore(first_pending.unwrap_or(buf.len()))
}

fn check(buf: &[u8], offset: usize, max_len: u32, sender: Dir, limit: usize) -> Verdict {
    let rest = &buf[offset..];
    if rest.len() < HEADER_LEN {
        return Verdict::Pending;
    }
    let Some(first) = plausible(rest, max_len, Some(sender)) else {
        return Verdict::Reject;
    };
    if first.len as usize + 2 * HEADER_LEN > limit {
        return Verdict::Reject;
    }
    let mut pos = HEADER_LEN + first.len as usize;
    if pos == rest.len() {
        return Verdict::Accept { strong: false };
    }
    let mut frames = 1;
    loop {
        if pos + HEADER_LEN > rest.len() {
            return if frames >= 2 {
                Verdict::Accept {
                    strong: frames >= 3,
                }
            } else {
                Verdict::Pending
            };
        }
        let Some(next) = plausible(&rest[pos..], max_len, Some(sender)) else {
            return if frames >= 2 {
                Verdict::Accept {
                    strong: frames >= 3,
                }
            } else {
                Verdict::Reject
            };
        };
        frames += 1;
        pos += HEADER_LEN + next.len as usize;
        if pos == rest.len() {
            return Verdict::Accept { strong: true };
        }
        if pos > rest.len() || frames >= 3 {
            return Verdict::Accept {
                strong: frames >= 3,
            };
        }
    }
}

/// Whether `first` (one direction's first bytes) look like a run of frames: a plausible
/// header at offset 0 followed by another (or filling the bytes exactly), or, further in,
/// at least two whole frames ending exactly at the end of the bytes or three in a row.
/// Returns the offset of the first frame.
pub fn find_run(first: &[u8], sender: Option<Dir>) -> Option<usize> {
    (0..first.len().saturating_sub(HEADER_LEN - 1)).find(|&offset| {
        let rest = &first[offset..];
        let mut pos = 0;
        let mut frames = 0;
        while pos + HEADER_LEN <= rest.len() {
            let Some(h) = plausible(&rest[pos..], DEFAULT_MAX_FRAME_SIZE, sender) else {
                break;
            };
            let end = pos + HEADER_LEN + h.len as usize;
            if end > rest.len() {
                break;
            }
            frames += 1;
            pos = end;
        }
        let exact = pos == rest.len();
        if offset == 0 {
            frames >= 2 || (frames == 1 && exact)
        } else {
            (frames >= 2 && exact) || frames >= 3
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn collect(reader: &mut FrameReader, bytes: &[u8]) -> Vec<String> {
        let mut seen = Vec::new();
        reader.push(bytes, &mut |e| seen.push(format!("{e:?}")));
        seen
    }

    #[test]
    fn reads_frames_in_pieces_and_strips_padding() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0]));
        let mut padded = vec![3];
        padded.extend(b"hello");
        padded.extend([0, 0, 0]);
        bytes.extend(frame(DATA, PADDED | END_STREAM, 1, &padded));
        let mut reader = FrameReader::new(Start::Preface, Dir::ToServer, 1024);
        let mut seen = Vec::new();
        for b in bytes.chunks(1) {
            reader.push(b, &mut |e| {
                if let Event::Data { chunk, .. } = e {
                    seen.push(format!("data {}", String::from_utf8_lossy(chunk)));
                } else {
                    seen.push(format!("{e:?}").chars().take(12).collect());
                }
            });
        }
        let text = seen.join("|");
        assert!(text.starts_with("Synced { at_|Frame { head|"), "{text}");
        assert_eq!(text.matches("data ").count(), 5, "{text}");
        assert!(text.ends_with("DataEnd { he"), "{text}");
        assert!(!reader.mid_frame());
    }

    #[test]
    fn hunts_for_frames_after_garbage_and_inside_data() {
        // The tail of a DATA frame, then two whole frames.
        let mut bytes = vec![0x41; 300];
        bytes.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        bytes.extend(frame(DATA, END_STREAM, 3, b"xyz"));
        let mut reader = FrameReader::new(Start::Hunt, Dir::ToServer, 4096);
        let seen = collect(&mut reader, &bytes);
        assert!(seen[0].contains("skipped: 300"), "{seen:?}");
        assert!(seen[1].starts_with("Frame"), "{seen:?}");
        assert!(seen.iter().any(|s| s.starts_with("DataEnd")), "{seen:?}");
    }

    #[test]
    fn a_hole_inside_a_data_frame_keeps_the_boundary() {
        let mut reader = FrameReader::new(Start::Frames, Dir::ToClient, 4096);
        let f = frame(DATA, 0, 1, &[7; 100]);
        let mut seen = collect(&mut reader, &f[..50]);
        reader.hole(Some(30), &mut |e| seen.push(format!("{e:?}")));
        seen.extend(collect(&mut reader, &f[80..]));
        seen.extend(collect(&mut reader, &frame(PING, 0, 0, &[0; 8])));
        assert!(seen
            .iter()
            .any(|s| s.contains("DataHole") && s.contains("len: 30")));
        assert!(seen.iter().any(|s| s.starts_with("DataEnd")));
        assert!(seen.last().unwrap().starts_with("Frame"), "{seen:?}");
        assert!(!seen.iter().any(|s| s == "Lost"));
    }

    #[test]
    fn extension_frames_are_skipped_mid_stream_too() {
        let mut bytes = frame(PING, 0, 0, &[0; 8]);
        bytes.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        bytes.extend(frame(0xc, 0, 0, b"\x00\x0ehttps://a.test"));
        bytes.extend(frame(PING, ACK, 0, &[0; 8]));
        let mut reader = FrameReader::new(Start::Hunt, Dir::ToClient, 4096);
        let seen = collect(&mut reader, &bytes);
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert!(!seen.iter().any(|s| s == "Lost"), "{seen:?}");
    }

    #[test]
    fn random_bytes_and_http1_are_not_a_run() {
        assert_eq!(find_run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", None), None);
        assert_eq!(
            find_run(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None),
            None
        );
        let mut x: u32 = 12345;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(find_run(&noise, None), None);
        let mut run = frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]);
        run.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        assert_eq!(find_run(&run, None), Some(0));
    }
}
