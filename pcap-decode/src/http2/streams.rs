//! One HTTP/2 stream as a roundtrip in the making: request and response fields as header
//! blocks arrive, body and gRPC message counts as DATA goes by, and what was missed.
//!
//! Pseudo-headers go into their fields (`method`, `scheme`, `authority`, `path`, `status`)
//! and are not repeated in the header lists; unknown pseudo-headers (`:protocol`) stay in the
//! list. Trailers are appended to the header list of their side, after the headers.

use crate::roundtrip::{GrpcCall, Header, Http2Exchange};
use crate::stream::{Detail, Dir, Exchange, Meta};

use super::grpc::{self, MessageCounter};

/// Most fields kept per header list (headers and trailers together).
pub const MAX_HEADERS: usize = 64;

/// A decoded header block: fields with names and values already capped.
#[derive(Debug, Default)]
pub struct Block {
    pub fields: Vec<(String, String)>,
    /// Fields that referred to dynamic-table entries never seen.
    pub unknown: usize,
    /// Why decoding stopped before the end of the block.
    pub error: Option<String>,
    /// Fields decoded but not kept (beyond the bound on fields per block).
    pub extra: usize,
}

impl Block {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The gRPC side of a stream, once its content-type said so.
#[derive(Debug, Default)]
struct GrpcState {
    request: MessageCounter,
    response: MessageCounter,
    status: Option<u32>,
    message: String,
}

/// A stream being watched.
#[derive(Debug)]
pub struct Stream {
    pub ex: Http2Exchange,
    pub start: Meta,
    pub end: Meta,
    notes: Vec<String>,
    pub incomplete: bool,
    /// The request's header block was seen (or the stream was promised, or upgraded).
    pub request_seen: bool,
    /// The client ended its side (END_STREAM).
    pub request_ended: bool,
    /// A final (not 1xx) response header block was seen.
    pub response_started: bool,
    dropped_request_headers: usize,
    dropped_response_headers: usize,
    grpc: Option<GrpcState>,
    /// Whether DATA of the client (0) or the server (1) may have gone by unseen.
    from_middle: [bool; 2],
    max_value: usize,
}

fn side(dir: Dir) -> usize {
    match dir {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

fn name_of(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "request",
        Dir::ToClient => "response",
    }
}

impl Stream {
    /// A stream whose first frame was seen at `meta`.
    pub fn new(id: u32, meta: Meta, max_value: usize) -> Self {
        Stream {
            ex: Http2Exchange {
                stream: id,
                ..Http2Exchange::default()
            },
            start: meta,
            end: meta,
            notes: Vec::new(),
            incomplete: false,
            request_seen: false,
            request_ended: false,
            response_started: false,
            dropped_request_headers: 0,
            dropped_response_headers: 0,
            grpc: None,
            from_middle: [false; 2],
            max_value,
        }
    }

    /// Adds a note once, and marks the roundtrip incomplete when `incomplete`.
    pub fn note(&mut self, text: impl Into<String>, incomplete: bool) {
        let text = text.into();
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
        self.incomplete |= incomplete;
    }

    pub fn is_grpc(&self) -> bool {
        self.grpc.is_some()
    }

    /// What a header block could not give, in the notes.
    pub fn block_notes(&mut self, dir: Dir, block: &Block) {
        if block.unknown > 0 {
            self.note(
                format!(
                    "{} header block refers to dynamic-table entries inserted before the capture \
                     began: {} field{} unknown",
                    name_of(dir),
                    block.unknown,
                    if block.unknown == 1 { "" } else { "s" }
                ),
                true,
            );
        }
        if let Some(error) = &block.error {
            self.note(
                format!(
                    "{} header block could not be decoded to its end: {error}",
                    name_of(dir)
                ),
                true,
            );
        }
    }

    /// The request's header block (from HEADERS or PUSH_PROMISE), or the client's trailers.
    pub fn request_block(&mut self, block: Block) {
        let trailers = self.request_seen && block.get(":method").is_none();
        self.block_notes(Dir::ToServer, &block);
        self.dropped_request_headers += block.extra;
        if !trailers {
            self.request_seen = true;
        }
        for (name, value) in block.fields {
            match name.as_str() {
                ":method" if !trailers => self.ex.method = value,
                ":scheme" if !trailers => self.ex.scheme = value,
                ":authority" if !trailers => self.ex.authority = value,
                ":path" if !trailers => self.ex.path = value,
                _ => {
                    if name == "content-type" && grpc::is_grpc(&value) {
                        self.start_grpc();
                    }
                    if name == "grpc-timeout" {
                        if let Some(ns) = grpc::timeout_ns(&value) {
                            self.note(grpc::deadline_note(ns), false);
                        }
                    }
                    push_capped(
                        &mut self.ex.request_headers,
                        &mut self.dropped_request_headers,
                        name,
                        value,
                    );
                }
            }
        }
    }

    /// A header block from the server: informational (1xx, skipped), the final headers, a
    /// Trailers-Only response, or trailers.
    pub fn response_block(&mut self, block: Block) {
        self.block_notes(Dir::ToClient, &block);
        self.dropped_response_headers += block.extra;
        let status = block.get(":status").map(|s| s.parse::<u16>().ok());
        match status {
            Some(Some(code)) if (100..200).contains(&code) => return,
            Some(Some(code)) => {
                self.ex.status = Some(code);
                self.response_started = true;
            }
            Some(None) => {
                self.note("the response's :status is not a number", false);
                self.response_started = true;
            }
            None => {}
        }
        for (name, value) in block.fields {
            if name == ":status" {
                continue;
            }
            if name == "content-type" && grpc::is_grpc(&value) && !self.request_seen {
                self.start_grpc();
            }
            if let Some(g) = &mut self.grpc {
                match name.as_str() {
                    "grpc-status" => g.status = value.trim().parse().ok(),
                    "grpc-message" => g.message = grpc::percent_decode(&value),
                    _ => {}
                }
            }
            push_capped(
                &mut self.ex.response_headers,
                &mut self.dropped_response_headers,
                name,
                value,
            );
        }
    }

    fn start_grpc(&mut self) {
        if self.grpc.is_none() {
            let counter = |bytes: u64, from_middle: bool| {
                if bytes > 0 || from_middle {
                    MessageCounter::lost()
                } else {
                    MessageCounter::default()
                }
            };
            self.grpc = Some(GrpcState {
                request: counter(self.ex.request_body_bytes, self.from_middle[0]),
                response: counter(self.ex.response_body_bytes, self.from_middle[1]),
                ..GrpcState::default()
            });
        }
    }

    /// DATA content from `dir`.
    pub fn data(&mut self, dir: Dir, chunk: &[u8]) {
        let len = chunk.len() as u64;
        match dir {
            Dir::ToServer => self.ex.request_body_bytes += len,
            Dir::ToClient => self.ex.response_body_bytes += len,
        }
        if let Some(g) = &mut self.grpc {
            match dir {
                Dir::ToServer => g.request.data(chunk),
                Dir::ToClient => g.response.data(chunk),
            }
        }
    }

    /// `len` bytes of DATA content from `dir` were never seen: counted as body bytes (their
    /// number is known), noted.
    pub fn data_hole(&mut self, dir: Dir, len: u64) {
        match dir {
            Dir::ToServer => self.ex.request_body_bytes += len,
            Dir::ToClient => self.ex.response_body_bytes += len,
        }
        if let Some(g) = &mut self.grpc {
            match dir {
                Dir::ToServer => g.request.hole(len),
                Dir::ToClient => g.response.hole(len),
            };
        }
        self.note(
            format!(
                "{} body bytes were not captured (counted in the body size)",
                name_of(dir)
            ),
            true,
        );
    }

    /// Frames of `dir` were lost: message framing of that direction is lost too.
    pub fn frames_lost(&mut self, dir: Dir, why: &str) {
        if let Some(g) = &mut self.grpc {
            match dir {
                Dir::ToServer => g.request.lost = true,
                Dir::ToClient => g.response.lost = true,
            }
        }
        self.note(why.to_owned(), true);
    }

    /// The stream was first seen in its middle (DATA, or a response without its request):
    /// the first messages of `dir` cannot be counted.
    pub fn seen_from_middle(&mut self, dir: Dir) {
        self.from_middle[side(dir)] = true;
        if let Some(g) = &mut self.grpc {
            match dir {
                Dir::ToServer => g.request.lost = true,
                Dir::ToClient => g.response.lost = true,
            }
        }
    }

    /// The roundtrip as the transport layer takes it.
    pub fn into_exchange(mut self) -> Exchange {
        for (count, side) in [
            (self.dropped_request_headers, "request"),
            (self.dropped_response_headers, "response"),
        ] {
            if count > 0 {
                self.notes.push(format!(
                    "{count} more {side} header fields not kept (at most {MAX_HEADERS})"
                ));
            }
        }
        let detail = match self.grpc.take() {
            None => Detail::Http2(self.ex),
            Some(g) => {
                let (service, method) = grpc::service_and_method(&self.ex.path);
                if g.request.lost || g.response.lost {
                    self.notes.push(
                        "gRPC message framing was not followed throughout: message counts and \
                         sizes are partial"
                            .to_owned(),
                    );
                } else if g.request.mid_message() || g.response.mid_message() {
                    self.notes
                        .push("the stream ended inside a gRPC message".to_owned());
                }
                let compressed = g.request.compressed + g.response.compressed;
                if compressed > 0 {
                    self.notes.push(format!(
                        "{compressed} compressed message{}",
                        if compressed == 1 { "" } else { "s" }
                    ));
                }
                let call = GrpcCall {
                    service,
                    method,
                    grpc_status: g.status,
                    grpc_message: crate::stream::cap_value(&g.message, self.max_value),
                    request_messages: g.request.messages,
                    response_messages: g.response.messages,
                    request_bytes: g.request.bytes,
                    response_bytes: g.response.bytes,
                };
                Detail::Grpc(self.ex, call)
            }
        };
        Exchange {
            start: self.start,
            end: self.end,
            complete: !self.incomplete,
            notes: self.notes,
            detail,
        }
    }

    /// Rough bytes held.
    pub fn buffered(&self) -> usize {
        let list = |h: &[Header]| {
            h.iter()
                .map(|h| h.name.len() + h.value.len() + 48)
                .sum::<usize>()
        };
        256 + list(&self.ex.request_headers)
            + list(&self.ex.response_headers)
            + self.ex.path.len()
            + self.ex.authority.len()
            + self.notes.iter().map(String::len).sum::<usize>()
    }
}

fn push_capped(list: &mut Vec<Header>, dropped: &mut usize, name: String, value: String) {
    if list.len() < MAX_HEADERS {
        list.push(Header { name, value });
    } else {
        *dropped += 1;
    }
}
