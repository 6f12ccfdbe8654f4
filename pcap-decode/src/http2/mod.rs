//! HTTP/2 over cleartext TCP (h2c, by prior knowledge or `Upgrade: h2c`), and gRPC on it:
//! one roundtrip per stream.
//!
//! Frames are cut by [`frames::FrameReader`], header blocks decoded per direction by
//! [`hpack::HeaderDecoder`], and each stream gathered by [`streams::Stream`]. A connection
//! first seen mid-stream is decoded as far as it can be: frames are found by their headers,
//! header fields that refer to dynamic-table entries inserted before the capture began are
//! counted, never guessed, and every roundtrip says what it lacks.
//!
//! A stream is reported when the server ends it (END_STREAM), when either side resets it
//! (RST_STREAM), when a GOAWAY says it was not processed, when the response timeout passes
//! without a response, or when the connection goes. Streams that only ever saw PRIORITY
//! frames are not roundtrips.

pub mod frames;
pub mod grpc;
pub mod hpack;
pub mod streams;

use std::collections::{BTreeMap, VecDeque};

use crate::roundtrip::Header;
use crate::stream::{cap_value, CloseReason, Dir, Exchange, Meta, ParserLimits, StreamParser};

use frames::{Event, FrameHeader, FrameReader, Start};
use hpack::HeaderDecoder;
use streams::{Block, Stream};

/// Most fields taken from one header block (the rest are counted as not kept).
const MAX_BLOCK_FIELDS: usize = 2 * streams::MAX_HEADERS;

/// Whether one direction's first bytes are HTTP/2: `Some(Dir::ToServer)` for the client
/// preface (or a client's frames), `Some(Dir::ToClient)` for a server's frames, `None` when
/// they are not HTTP/2 or too few to tell.
///
/// Without the preface (a connection first seen mid-stream), the bytes must hold a run of
/// plausible frame headers ([`frames::find_run`]). Their sender is the client when a HEADERS
/// frame starts with a request pseudo-header, the server when one starts with `:status`,
/// when a frame is one only a server sends (PUSH_PROMISE, DATA or HEADERS on an even
/// stream), and otherwise the server as well: callers that see both directions should
/// prefer the other direction's answer when it is decisive.
pub fn recognise(first: &[u8]) -> Option<Dir> {
    if first.starts_with(frames::PREFACE)
        || (first.len() >= 14 && frames::PREFACE.starts_with(first))
    {
        return Some(Dir::ToServer);
    }
    let mut pos = frames::find_run(first, None)?;
    let mut client_possible = frames::find_run(first, Some(Dir::ToServer)).is_some();
    while let Some(h) = first
        .get(pos..)
        .and_then(|rest| frames::plausible(rest, frames::DEFAULT_MAX_FRAME_SIZE, None))
    {
        let Some(payload) =
            first.get(pos + frames::HEADER_LEN..pos + frames::HEADER_LEN + h.len as usize)
        else {
            break;
        };
        match h.kind {
            frames::PUSH_PROMISE => client_possible = false,
            frames::DATA | frames::HEADERS if h.stream % 2 == 0 => client_possible = false,
            frames::HEADERS => {
                if let Some(fragment) = headers_fragment(&h, payload) {
                    match hpack::first_field_is_request(fragment) {
                        Some(true) if client_possible => return Some(Dir::ToServer),
                        Some(false) => return Some(Dir::ToClient),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        pos += frames::HEADER_LEN + h.len as usize;
    }
    Some(Dir::ToClient)
}

/// The header block fragment of a HEADERS frame (padding and priority removed).
fn headers_fragment<'a>(h: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let (pad, rest) = padding(h, payload)?;
    let rest = if h.has(frames::PRIORITY_FLAG) {
        rest.get(5..)?
    } else {
        rest
    };
    rest.get(..rest.len().checked_sub(pad)?)
}

/// The pad length of a PADDED frame and the payload after it.
fn padding<'a>(h: &FrameHeader, payload: &'a [u8]) -> Option<(usize, &'a [u8])> {
    if h.has(frames::PADDED) {
        let (&pad, rest) = payload.split_first()?;
        Some((usize::from(pad), rest))
    } else {
        Some((0, payload))
    }
}

/// The HTTP/1.1 request of a connection upgraded with `Upgrade: h2c`: after the 101
/// response, it is HTTP/2 stream 1, whose response comes in HTTP/2 frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradedRequest {
    pub method: String,
    /// The request target.
    pub path: String,
    /// The Host header.
    pub authority: String,
    /// The request's headers (values already capped).
    pub request_headers: Vec<Header>,
    pub request_body_bytes: u64,
    /// First packet of the HTTP/1.1 request.
    pub start: Meta,
}

/// The HTTP/2 parser of one TCP connection.
pub struct Http2Parser {
    /// By sender: the client's bytes, then the server's.
    readers: [FrameReader; 2],
    conn: Connection,
}

/// Everything but the frame readers, so that their events can change it.
struct Connection {
    limits: ParserLimits,
    /// By sender, as the readers.
    hpack: [HeaderDecoder; 2],
    streams: BTreeMap<u32, Stream>,
    /// Recently finished streams, whose late frames (a RST after END_STREAM, a WINDOW_UPDATE)
    /// must not open them again.
    closed: VecDeque<u32>,
    /// A header block waiting for its CONTINUATION frames, by sender.
    pending: [Option<PendingBlock>; 2],
    /// Whether a direction was seen from its start (then only HEADERS and PUSH_PROMISE open
    /// streams; mid-stream, DATA of an unknown stream opens it too).
    seen_start: [bool; 2],
    /// SETTINGS_MAX_FRAME_SIZE announced for the sender of that index, for its reader.
    max_frame: [Option<u32>; 2],
    /// The last GOAWAY: "NO_ERROR from the server, last stream 7".
    goaway: Option<String>,
    /// The server's direction began with SETTINGS before the client's preface was seen: a
    /// connection start only if the preface comes (a server may send SETTINGS at any time).
    /// Decided at the server's first header block.
    server_start_unconfirmed: bool,
}

struct PendingBlock {
    stream: u32,
    /// Promised stream of a PUSH_PROMISE.
    promised: Option<u32>,
    end_stream: bool,
    buf: Vec<u8>,
    too_large: bool,
    first: Meta,
}

fn side(dir: Dir) -> usize {
    match dir {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

fn direction_name(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "client→server",
        Dir::ToClient => "server→client",
    }
}

fn sender_name(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "client",
        Dir::ToClient => "server",
    }
}

/// How a stream is being opened.
#[derive(PartialEq, Eq)]
enum Opener {
    ClientHeaders,
    PushPromise,
    /// A frame that opens a stream only when the connection was seen mid-stream.
    Other,
}

impl Http2Parser {
    /// A parser for a connection: one that begins with the client preface (and the server's
    /// SETTINGS), or one first seen mid-stream, told apart by the first bytes.
    pub fn new(limits: ParserLimits) -> Self {
        Http2Parser {
            readers: [
                FrameReader::new(Start::Preface, Dir::ToServer, limits.max_buffer),
                FrameReader::new(Start::Detect, Dir::ToClient, limits.max_buffer),
            ],
            conn: Connection::new(limits, [false, false]),
        }
    }

    /// A parser for a connection upgraded from HTTP/1.1 after the 101 response: the client
    /// sends the preface next, the server its SETTINGS and the response to `request` on
    /// stream 1.
    pub fn upgraded(limits: ParserLimits, request: UpgradedRequest) -> Self {
        let mut conn = Connection::new(limits, [true, true]);
        let mut stream = Stream::new(1, request.start, limits.max_header_value);
        stream.ex.method = request.method;
        stream.ex.scheme = "http".to_owned();
        stream.ex.authority = request.authority;
        stream.ex.path = request.path;
        stream.ex.request_headers = request.request_headers;
        stream.ex.request_headers.truncate(streams::MAX_HEADERS);
        stream.ex.request_body_bytes = request.request_body_bytes;
        stream.request_seen = true;
        stream.request_ended = true;
        stream.note("request sent in HTTP/1.1, upgraded to HTTP/2 (h2c)", false);
        conn.streams.insert(1, stream);
        Http2Parser {
            readers: [
                FrameReader::new(Start::Preface, Dir::ToServer, limits.max_buffer),
                FrameReader::new(Start::Frames, Dir::ToClient, limits.max_buffer),
            ],
            conn,
        }
    }

    fn apply_settings(&mut self) {
        for (i, size) in self.conn.max_frame.iter_mut().enumerate() {
            if let Some(size) = size.take() {
                self.readers[i].set_max_frame_size(size);
            }
        }
    }
}

impl StreamParser for Http2Parser {
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        let Http2Parser { readers, conn } = self;
        readers[side(dir)].push(bytes, &mut |ev| conn.event(dir, ev, meta, out));
        if dir == Dir::ToServer && !readers[0].awaiting_preface() && !conn.seen_start[0] {
            // The client did not begin with the preface: neither did the server begin here.
            readers[1].hunt_if_detecting();
        }
        self.apply_settings();
    }

    fn hole(&mut self, dir: Dir, len: Option<u64>, meta: Meta, out: &mut Vec<Exchange>) {
        let Http2Parser { readers, conn } = self;
        readers[side(dir)].hole(len, &mut |ev| conn.event(dir, ev, meta, out));
    }

    fn end(&mut self, dir: Dir, reset: bool, meta: Meta, out: &mut Vec<Exchange>) {
        let mid_frame = self.readers[side(dir)].mid_frame();
        let conn = &mut self.conn;
        if mid_frame {
            let note = format!("the {} direction ended inside a frame", direction_name(dir));
            for s in conn.streams.values_mut() {
                s.note(note.clone(), true);
            }
        }
        if dir == Dir::ToClient {
            let how = if reset {
                "the server reset the connection before the stream ended"
            } else {
                "the server closed its side of the connection before the stream ended"
            };
            conn.finish_all(how, meta, out);
        }
    }

    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        let why = match reason {
            CloseReason::Ended => "the connection closed before the stream ended",
            CloseReason::Idle => "the connection went idle before the stream ended",
            CloseReason::EndOfInput => "the capture ended before the stream did",
            CloseReason::Evicted => {
                "the connection was dropped to stay within the decoder's memory bound"
            }
        };
        self.conn.pending = [None, None];
        self.conn.finish_all(why, meta, out);
    }

    fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        let timeout = self.conn.limits.response_timeout_ns;
        let late: Vec<u32> = self
            .conn
            .streams
            .iter()
            // A request still being sent (a client stream) is not waiting for an answer.
            .filter(|(_, s)| {
                s.request_ended
                    && !s.response_started
                    && now_ns.saturating_sub(s.end.ts_ns) > timeout
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(s) = self.conn.streams.get_mut(&id) {
                let secs = timeout / 1_000_000_000;
                s.note(format!("no response within {secs} s"), true);
            }
            let end = self
                .conn
                .streams
                .get(&id)
                .map(|s| s.end)
                .unwrap_or_default();
            self.conn.finish(id, end, out);
        }
    }

    fn buffered(&self) -> usize {
        self.readers
            .iter()
            .map(FrameReader::buffered)
            .sum::<usize>()
            + self
                .conn
                .hpack
                .iter()
                .map(HeaderDecoder::buffered)
                .sum::<usize>()
            + self
                .conn
                .pending
                .iter()
                .flatten()
                .map(|p| p.buf.capacity())
                .sum::<usize>()
            + self
                .conn
                .streams
                .values()
                .map(Stream::buffered)
                .sum::<usize>()
    }
}

// === impl Connection ===

impl Connection {
    fn new(limits: ParserLimits, seen_start: [bool; 2]) -> Self {
        Connection {
            limits,
            hpack: [
                HeaderDecoder::new(seen_start[0]),
                HeaderDecoder::new(seen_start[1]),
            ],
            streams: BTreeMap::new(),
            closed: VecDeque::new(),
            pending: [None, None],
            seen_start,
            max_frame: [None, None],
            goaway: None,
            server_start_unconfirmed: false,
        }
    }

    fn event(&mut self, dir: Dir, ev: Event<'_>, meta: Meta, out: &mut Vec<Exchange>) {
        let i = side(dir);
        let continuation = matches!(
            ev,
            Event::Frame { header, .. } | Event::Dropped { header, .. }
                if header.kind == frames::CONTINUATION
        );
        if !continuation && !matches!(ev, Event::Synced { .. }) {
            if let Some(p) = self.pending[i].take() {
                // A header block must be followed by its CONTINUATION frames at once.
                self.hpack[i].lose_sync();
                if let Some(s) = self.streams.get_mut(&p.stream) {
                    s.note("a header block was interrupted by another frame", true);
                }
            }
        }
        match ev {
            Event::Synced { at_start, .. } => {
                if at_start {
                    self.hpack[i] = HeaderDecoder::new(true);
                    self.seen_start[i] = true;
                    self.server_start_unconfirmed = dir == Dir::ToClient && !self.seen_start[0];
                }
            }
            Event::Lost => self.lost(dir),
            Event::Frame { header, payload } => self.frame(dir, header, payload, meta, out),
            Event::Dropped { header, hole } => self.dropped(dir, header, hole, meta, out),
            Event::Data { header, chunk } => {
                if let Some(s) = self.data_stream(dir, header.stream, meta, out) {
                    s.data(dir, chunk);
                    s.end = meta;
                }
            }
            Event::DataHole { header, len } => {
                if let Some(s) = self.data_stream(dir, header.stream, meta, out) {
                    s.data_hole(dir, len);
                    s.end = meta;
                }
            }
            Event::DataEnd { header } => {
                if let Some(s) = self.data_stream(dir, header.stream, meta, out) {
                    s.end = meta;
                    if header.has(frames::END_STREAM) {
                        match dir {
                            Dir::ToServer => s.request_ended = true,
                            Dir::ToClient => self.finish(header.stream, meta, out),
                        }
                    }
                }
            }
        }
    }

    /// Frames of `dir` were lost: header blocks may be among them, and any open stream may
    /// have lost frames.
    fn lost(&mut self, dir: Dir) {
        let i = side(dir);
        self.hpack[i].lose_sync();
        self.pending[i] = None;
        self.seen_start[i] = false;
        let why = format!(
            "frames of the {} direction could not be followed (bytes not captured, or not \
             HTTP/2); the stream may lack parts",
            direction_name(dir)
        );
        for s in self.streams.values_mut() {
            s.frames_lost(dir, &why);
        }
    }

    fn frame(
        &mut self,
        dir: Dir,
        h: FrameHeader,
        payload: &[u8],
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        let i = side(dir);
        match h.kind {
            frames::HEADERS => match headers_fragment(&h, payload) {
                Some(fragment) => self.begin_block(dir, h, None, fragment, meta, out),
                None => self.dropped(dir, h, false, meta, out),
            },
            frames::PUSH_PROMISE => {
                let promised = padding(&h, payload).and_then(|(pad, rest)| {
                    let id = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) & 0x7fff_ffff;
                    Some((id, rest.get(4..rest.len().checked_sub(pad)?)?))
                });
                match promised {
                    Some((id, fragment)) if dir == Dir::ToClient => {
                        self.begin_block(dir, h, Some(id), fragment, meta, out)
                    }
                    _ => self.dropped(dir, h, false, meta, out),
                }
            }
            frames::CONTINUATION => {
                let limit = self.limits.max_buffer;
                match &mut self.pending[i] {
                    Some(p) if p.stream == h.stream => {
                        if p.buf.len() + payload.len() > limit {
                            p.too_large = true;
                            p.buf = Vec::new();
                        } else if !p.too_large {
                            p.buf.extend_from_slice(payload);
                        }
                        if h.has(frames::END_HEADERS) {
                            self.complete_block(dir, meta, out);
                        }
                    }
                    _ => {
                        // The start of this block was never seen; it may have changed the
                        // dynamic table.
                        self.pending[i] = None;
                        self.hpack[i].lose_sync();
                        if let Some(s) = self.streams.get_mut(&h.stream) {
                            s.note("a header block's first frame was not seen", true);
                        }
                    }
                }
            }
            frames::RST_STREAM => {
                let code = payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    s.ex.reset = frames::error_name(code);
                    let before = if s.response_started {
                        ""
                    } else {
                        " before a response"
                    };
                    s.note(
                        format!("reset by the {} ({}){before}", sender_name(dir), s.ex.reset),
                        !s.response_started,
                    );
                    self.finish(h.stream, meta, out);
                }
            }
            frames::SETTINGS if !h.has(frames::ACK) => {
                // A setting bounds what the other side sends.
                let other = 1 - i;
                for setting in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                    match id {
                        frames::SETTINGS_HEADER_TABLE_SIZE => {
                            self.hpack[other].set_table_size_setting(value)
                        }
                        frames::SETTINGS_MAX_FRAME_SIZE => self.max_frame[other] = Some(value),
                        _ => {}
                    }
                }
            }
            frames::GOAWAY => {
                let Some(b) = payload.get(..8) else { return };
                let last = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
                let code = frames::error_name(u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
                let goaway = format!("GOAWAY ({code}) from the {}", sender_name(dir));
                // Streams the receiver opened above the last stream were not processed.
                let parity = match dir {
                    Dir::ToClient => 1,
                    Dir::ToServer => 0,
                };
                let unprocessed: Vec<u32> = self
                    .streams
                    .range(last.saturating_add(1)..)
                    .filter(|(id, _)| *id % 2 == parity)
                    .map(|(id, _)| *id)
                    .collect();
                for id in unprocessed {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.note(
                            format!("not processed: {goaway} names {last} as the last stream"),
                            true,
                        );
                    }
                    self.finish(id, meta, out);
                }
                self.goaway = Some(goaway);
            }
            // PRIORITY (on idle streams too), PING, WINDOW_UPDATE, SETTINGS ACK and
            // extension frames carry nothing a roundtrip reports.
            _ => {}
        }
    }

    /// A HEADERS or PUSH_PROMISE frame that could not be read (too large, damaged by a hole,
    /// malformed): its header block is lost, and with it the dynamic table's state.
    fn dropped(
        &mut self,
        dir: Dir,
        h: FrameHeader,
        hole: bool,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        let i = side(dir);
        if !matches!(
            h.kind,
            frames::HEADERS | frames::PUSH_PROMISE | frames::CONTINUATION
        ) {
            if hole {
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    s.note(
                        format!("a frame of the {} was not captured whole", sender_name(dir)),
                        true,
                    );
                }
            }
            return;
        }
        self.hpack[i].lose_sync();
        let why = if hole {
            "a header block was not captured whole".to_owned()
        } else {
            format!(
                "a header block was not decoded (malformed, or beyond the {}-byte bound)",
                self.limits.max_buffer
            )
        };
        if h.kind == frames::CONTINUATION {
            if let Some(p) = &mut self.pending[i] {
                p.too_large = true;
                p.buf = Vec::new();
                if h.has(frames::END_HEADERS) {
                    self.complete_block(dir, meta, out);
                }
            }
            return;
        }
        self.pending[i] = None;
        if h.kind == frames::HEADERS {
            let opener = match dir {
                Dir::ToServer => Opener::ClientHeaders,
                Dir::ToClient => Opener::Other,
            };
            if let Some(s) = self.open(h.stream, opener, meta, out) {
                s.note(why, true);
                s.end = meta;
                if dir == Dir::ToServer {
                    s.request_seen = true;
                }
                if h.has(frames::END_STREAM) {
                    match dir {
                        Dir::ToServer => s.request_ended = true,
                        Dir::ToClient => self.finish(h.stream, meta, out),
                    }
                }
            }
        }
    }

    fn begin_block(
        &mut self,
        dir: Dir,
        h: FrameHeader,
        promised: Option<u32>,
        fragment: &[u8],
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        let too_large = fragment.len() > self.limits.max_buffer;
        self.pending[side(dir)] = Some(PendingBlock {
            stream: h.stream,
            promised,
            end_stream: h.has(frames::END_STREAM),
            buf: if too_large {
                Vec::new()
            } else {
                fragment.to_vec()
            },
            too_large,
            first: meta,
        });
        if h.has(frames::END_HEADERS) {
            self.complete_block(dir, meta, out);
        }
    }

    fn complete_block(&mut self, dir: Dir, meta: Meta, out: &mut Vec<Exchange>) {
        let i = side(dir);
        let unconfirmed =
            dir == Dir::ToClient && std::mem::take(&mut self.server_start_unconfirmed);
        if unconfirmed && !self.seen_start[0] {
            // No preface: the SETTINGS was a mid-connection one, the table unknown.
            self.hpack[1].lose_sync();
            self.seen_start[1] = false;
        }
        let Some(p) = self.pending[i].take() else {
            return;
        };
        let block = if p.too_large {
            self.hpack[i].lose_sync();
            Block {
                error: Some(format!(
                    "larger than the {}-byte bound, not decoded",
                    self.limits.max_buffer
                )),
                ..Block::default()
            }
        } else {
            decode_block(&mut self.hpack[i], &p.buf, self.limits.max_header_value)
        };
        match (dir, p.promised) {
            (Dir::ToServer, _) => {
                if let Some(s) = self.open(p.stream, Opener::ClientHeaders, p.first, out) {
                    s.request_block(block);
                    s.end = meta;
                    if p.end_stream {
                        s.request_ended = true;
                    }
                }
            }
            (Dir::ToClient, None) => {
                if let Some(s) = self.open(p.stream, Opener::Other, p.first, out) {
                    s.response_block(block);
                    s.end = meta;
                    if p.end_stream {
                        self.finish(p.stream, meta, out);
                    }
                }
            }
            (Dir::ToClient, Some(promised)) => {
                if let Some(s) = self.open(promised, Opener::PushPromise, p.first, out) {
                    s.request_block(block);
                    s.request_ended = true;
                    s.end = meta;
                    s.note(
                        format!("pushed by the server (promised on stream {})", p.stream),
                        false,
                    );
                }
            }
        }
    }

    /// The stream DATA of `dir` belongs to, opened when the connection was seen mid-stream.
    fn data_stream(
        &mut self,
        dir: Dir,
        id: u32,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            let s = self.open(id, Opener::Other, meta, out)?;
            s.note(
                "the stream began before the capture: its headers were not seen",
                true,
            );
            s.seen_from_middle(Dir::ToServer);
            s.seen_from_middle(Dir::ToClient);
            let _ = dir;
        }
        self.streams.get_mut(&id)
    }

    /// The stream `id`, opened by `opener` if it is not open and may be.
    fn open(
        &mut self,
        id: u32,
        opener: Opener,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            if id == 0 || self.closed.contains(&id) {
                return None;
            }
            let client_stream = id % 2 == 1;
            let allowed = match opener {
                Opener::ClientHeaders => client_stream,
                Opener::PushPromise => !client_stream,
                Opener::Other => {
                    // Seen from its start, a side opens streams only by their first header
                    // block: anything else is a late frame of a stream already reported.
                    !self.seen_start[if client_stream { 0 } else { 1 }]
                }
            };
            if !allowed {
                return None;
            }
            if self.streams.len() >= self.limits.max_pending.max(1) {
                let oldest = self
                    .streams
                    .iter()
                    .min_by_key(|(id, s)| (s.start.seq, **id))
                    .map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    let limit = self.limits.max_pending;
                    if let Some(s) = self.streams.get_mut(&oldest) {
                        s.note(
                            format!(
                                "more than {limit} streams open at once: reported before it ended"
                            ),
                            true,
                        );
                    }
                    let end = self.streams.get(&oldest).map(|s| s.end).unwrap_or(meta);
                    self.finish(oldest, end, out);
                }
            }
            let mut s = Stream::new(id, meta, self.limits.max_header_value);
            if opener == Opener::Other {
                s.note(
                    "request not seen: the capture began after it was sent",
                    true,
                );
                s.seen_from_middle(Dir::ToServer);
            }
            self.streams.insert(id, s);
        }
        self.streams.get_mut(&id)
    }

    /// Reports stream `id`, ended at `meta`.
    fn finish(&mut self, id: u32, meta: Meta, out: &mut Vec<Exchange>) {
        let Some(mut s) = self.streams.remove(&id) else {
            return;
        };
        s.end = meta;
        self.closed.push_back(id);
        while self.closed.len() > self.limits.max_pending.max(128) * 2 {
            self.closed.pop_front();
        }
        out.push(s.into_exchange());
    }

    /// Reports every open stream, each with `why` (and the GOAWAY seen, if any).
    fn finish_all(&mut self, why: &str, meta: Meta, out: &mut Vec<Exchange>) {
        let note = match &self.goaway {
            Some(goaway) => format!("{why} (after {goaway})"),
            None => why.to_owned(),
        };
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.streams.get_mut(&id) {
                s.note(note.clone(), true);
            }
            let end = self.streams.get(&id).map(|s| s.end).unwrap_or(meta);
            self.finish(id, end, out);
        }
    }
}

/// Decodes a header block into at most [`MAX_BLOCK_FIELDS`] capped fields.
fn decode_block(decoder: &mut HeaderDecoder, block: &[u8], max_value: usize) -> Block {
    let mut fields = Vec::new();
    let mut extra = 0usize;
    let outcome = decoder.decode(block, &mut |name, value| {
        if fields.len() < MAX_BLOCK_FIELDS {
            let name = cap_value(&String::from_utf8_lossy(name), max_value);
            let value = cap_value(&String::from_utf8_lossy(value), max_value);
            fields.push((name, value));
        } else {
            extra += 1;
        }
    });
    Block {
        fields,
        unknown: outcome.unknown,
        error: outcome.error,
        extra,
    }
}

#[cfg(test)]
pub(crate) mod tests;
