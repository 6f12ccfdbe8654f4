//! TLS is recognised and reported, not decoded: one roundtrip per connection, from the
//! ClientHello to the ServerHello, saying what the hellos say in the clear (server name,
//! ALPN protocols offered, version; the server's ALPN choice too where the ServerHello
//! carries it, up to TLS 1.2). Nothing after the hellos is looked at.

use crate::roundtrip::TlsHello;
use crate::stream::{
    cap_value, CloseReason, Detail, Dir, Exchange, Meta, ParserLimits, StreamParser,
};

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
/// A record's payload is at most 2^14 bytes, plus 2048 of expansion (RFC 8446 section 5.2).
const MAX_RECORD: usize = 16_384 + 2048;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
/// ALPN protocols kept from a ClientHello.
const MAX_ALPN: usize = 16;

/// Whether one direction's first bytes are a TLS handshake record holding a ClientHello
/// (`Some(Dir::ToServer)`) or a ServerHello (`Some(Dir::ToClient)`); `None` otherwise or when
/// fewer than 11 bytes are there to tell.
pub fn recognise(first: &[u8]) -> Option<Dir> {
    if first.len() < 11 || !plausible_record(first) || first[0] != HANDSHAKE {
        return None;
    }
    let hello_len = u32::from_be_bytes([0, first[6], first[7], first[8]]) as usize;
    // legacy_version of the hello: 3.0 to 3.4.
    if first[9] != 3 || first[10] > 4 || hello_len < 38 {
        return None;
    }
    match first[5] {
        CLIENT_HELLO => Some(Dir::ToServer),
        SERVER_HELLO => Some(Dir::ToClient),
        _ => None,
    }
}

/// A record header: a known content type, version 3.x, a length within the limit.
fn plausible_record(b: &[u8]) -> bool {
    let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
    (20..=23).contains(&b[0]) && b[1] == 3 && b[2] <= 4 && len > 0 && len <= MAX_RECORD
}

/// A protocol version by name ("TLS1.3"), or in hex.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL3.0".to_owned(),
        0x0301 => "TLS1.0".to_owned(),
        0x0302 => "TLS1.1".to_owned(),
        0x0303 => "TLS1.2".to_owned(),
        0x0304 => "TLS1.3".to_owned(),
        other => format!("0x{other:04x}"),
    }
}

/// GREASE values (RFC 8701) are offered only to be ignored.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a
}

/// The first handshake message of one direction, gathered across records.
#[derive(Debug, Default)]
struct HelloReader {
    header: [u8; 5],
    have: usize,
    /// Bytes left of the current record, and whether it is a handshake record.
    remaining: usize,
    handshake: bool,
    message: Vec<u8>,
    /// The hello was read, or cannot be (a hole, not TLS): nothing more is looked at.
    done: bool,
    /// The first record was TLS but held no hello (the handshake was before the capture).
    saw_records: bool,
}

impl HelloReader {
    /// Feeds bytes; returns the whole first handshake message once it is there.
    fn push(&mut self, mut bytes: &[u8], limit: usize) -> Option<Vec<u8>> {
        while !bytes.is_empty() && !self.done {
            if self.remaining == 0 {
                let n = (5 - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 5 {
                    self.have = 0;
                    if !plausible_record(&self.header) {
                        self.done = true;
                        return None;
                    }
                    self.saw_records = true;
                    self.handshake = self.header[0] == HANDSHAKE;
                    self.remaining =
                        usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                }
                continue;
            }
            let n = self.remaining.min(bytes.len());
            if self.handshake {
                self.message.extend_from_slice(&bytes[..n]);
            }
            self.remaining -= n;
            bytes = &bytes[n..];
            if self.message.len() >= 4 {
                let want =
                    4 + u32::from_be_bytes([0, self.message[1], self.message[2], self.message[3]])
                        as usize;
                if want > limit {
                    self.done = true;
                    self.message = Vec::new();
                    return None;
                }
                if self.message.len() >= want {
                    self.done = true;
                    let mut message = std::mem::take(&mut self.message);
                    message.truncate(want);
                    return Some(message);
                }
            }
        }
        None
    }
}

/// Reads big-endian fields of a hello, refusing to run past its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// What a hello says: (server name, ALPN protocols, versions offered or chosen).
#[derive(Debug, Default, PartialEq, Eq)]
struct Hello {
    sni: String,
    alpn: Vec<String>,
    /// The legacy version field, then supported_versions (offered, or the one chosen).
    legacy_version: u16,
    versions: Vec<u16>,
}

/// Parses a ClientHello or ServerHello message (with its 4-byte handshake header).
fn parse_hello(message: &[u8], max_value: usize) -> Option<Hello> {
    let client = message.first() == Some(&CLIENT_HELLO);
    let mut c = Cursor(message.get(4..)?);
    let mut hello = Hello {
        legacy_version: c.u16()?,
        ..Hello::default()
    };
    c.take(32)?;
    c.vec8()?;
    if client {
        c.vec16()?;
        c.vec8()?;
    } else {
        c.take(3)?;
    }
    let Some(mut exts) = c.vec16().map(Cursor) else {
        // Hellos without extensions (old clients).
        return Some(hello);
    };
    while let (Some(kind), Some(data)) = (exts.u16(), exts.vec16()) {
        let mut d = Cursor(data);
        match kind {
            EXT_SERVER_NAME if client => {
                let mut list = Cursor(d.vec16()?);
                while let (Some(name_type), Some(name)) = (list.u8(), list.vec16()) {
                    if name_type == 0 {
                        hello.sni = cap_value(&String::from_utf8_lossy(name), max_value);
                        break;
                    }
                }
            }
            EXT_ALPN => {
                let mut list = Cursor(d.vec16()?);
                while let Some(proto) = list.vec8() {
                    if hello.alpn.len() < MAX_ALPN {
                        hello
                            .alpn
                            .push(cap_value(&String::from_utf8_lossy(proto), max_value));
                    }
                }
            }
            EXT_SUPPORTED_VERSIONS if client => {
                let mut list = Cursor(d.vec8()?);
                while let Some(v) = list.u16() {
                    hello.versions.push(v);
                }
            }
            EXT_SUPPORTED_VERSIONS => hello.versions.push(d.u16()?),
            _ => {}
        }
    }
    Some(hello)
}

/// The TLS "parser" of one TCP connection: the hellos, then nothing.
pub struct TlsParser {
    limits: ParserLimits,
    readers: [HelloReader; 2],
    client: Option<Hello>,
    /// First packet of the ClientHello (or of the connection).
    start: Option<Meta>,
    last: Meta,
    notes: Vec<String>,
    reported: bool,
}

impl TlsParser {
    /// A parser for a new connection.
    pub fn new(limits: ParserLimits) -> Self {
        TlsParser {
            limits,
            readers: [HelloReader::default(), HelloReader::default()],
            client: None,
            start: None,
            last: Meta::default(),
            notes: Vec::new(),
            reported: false,
        }
    }

    fn report(&mut self, server: Option<Hello>, complete: bool, out: &mut Vec<Exchange>) {
        if self.reported {
            return;
        }
        let Some(start) = self.start else { return };
        self.reported = true;
        let client = self.client.take().unwrap_or_default();
        let offered = client
            .versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(client.legacy_version);
        let version = match &server {
            Some(s) => s.versions.first().copied().unwrap_or(s.legacy_version),
            None => offered,
        };
        let hello = TlsHello {
            sni: client.sni,
            alpn: client.alpn,
            version: if version == 0 {
                String::new()
            } else {
                version_name(version)
            },
        };
        let mut note = "TLS:".to_owned();
        if !hello.sni.is_empty() {
            note.push_str(&format!(" sni={}", hello.sni));
        }
        if !hello.alpn.is_empty() {
            note.push_str(&format!(" alpn={}", hello.alpn.join(",")));
        }
        if !hello.version.is_empty() {
            let offered = if server.is_some() { "" } else { " (offered)" };
            note.push_str(&format!(" version={}{offered}", hello.version));
        }
        if let Some(chosen) = server.as_ref().and_then(|s| s.alpn.first()) {
            note.push_str(&format!(" server_alpn={chosen}"));
        }
        let mut notes = vec![note];
        notes.append(&mut self.notes);
        out.push(Exchange {
            start,
            end: self.last,
            complete,
            notes,
            detail: Detail::Tls(hello),
        });
    }
}

impl StreamParser for TlsParser {
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        if self.reported {
            return;
        }
        let limit = self.limits.max_buffer.min(1 << 16);
        let i = match dir {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        };
        let first = !self.readers[i].saw_records && !self.readers[i].done;
        let Some(message) = self.readers[i].push(bytes, limit) else {
            if first && self.readers[i].saw_records && self.start.is_none() {
                self.start = Some(meta);
            }
            return;
        };
        self.last = meta;
        match (dir, message[0]) {
            (Dir::ToServer, CLIENT_HELLO) => {
                if self.start.is_none() || self.client.is_none() {
                    self.start.get_or_insert(meta);
                }
                match parse_hello(&message, self.limits.max_header_value) {
                    Some(hello) => self.client = Some(hello),
                    None => self.notes.push("the ClientHello is malformed".to_owned()),
                }
            }
            (Dir::ToClient, SERVER_HELLO) => {
                self.start.get_or_insert(meta);
                if self.client.is_none() {
                    self.notes.push("the ClientHello was not seen".to_owned());
                }
                let server = parse_hello(&message, self.limits.max_header_value);
                if server.is_none() {
                    self.notes.push("the ServerHello is malformed".to_owned());
                }
                let complete = self.client.is_some() && server.is_some();
                self.report(server, complete, out);
            }
            _ => {}
        }
    }

    fn hole(&mut self, dir: Dir, _len: Option<u64>, meta: Meta, _out: &mut Vec<Exchange>) {
        let i = match dir {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        };
        if !self.readers[i].done {
            self.readers[i].done = true;
            self.last = meta;
            let hello = match dir {
                Dir::ToServer => "ClientHello",
                Dir::ToClient => "ServerHello",
            };
            self.notes
                .push(format!("the {hello} was not captured whole"));
        }
    }

    fn end(&mut self, _dir: Dir, _reset: bool, meta: Meta, _out: &mut Vec<Exchange>) {
        if !self.reported {
            self.last = meta;
        }
    }

    fn close(&mut self, _reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        if self.reported {
            return;
        }
        if self.client.is_some() {
            self.notes
                .push("no ServerHello: the connection ended before it".to_owned());
            if self.last.seq == 0 {
                self.last = meta;
            }
        } else {
            self.notes
                .push("no hello seen: the capture began after the handshake".to_owned());
        }
        self.report(None, false, out);
    }

    fn buffered(&self) -> usize {
        self.readers.iter().map(|r| r.message.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend((data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn vec16(data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(data);
        out
    }

    /// A handshake message in one record (or in records of `split` bytes).
    fn records(kind: u8, body: &[u8], split: usize) -> Vec<u8> {
        let mut message = vec![kind];
        message.extend(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(body);
        let mut out = Vec::new();
        for chunk in message.chunks(split) {
            out.extend([HANDSHAKE, 3, 1]);
            out.extend((chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    pub(crate) fn client_hello(sni: &str, alpn: &[&str], split: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([0x11; 32]);
        body.push(0);
        body.extend(vec16(&[0x13, 0x01, 0x13, 0x02]));
        body.extend([1, 0]);
        let mut exts = Vec::new();
        let mut name = vec![0];
        name.extend(vec16(sni.as_bytes()));
        exts.extend(ext(EXT_SERVER_NAME, &vec16(&name)));
        let mut protos = Vec::new();
        for p in alpn {
            protos.push(p.len() as u8);
            protos.extend(p.as_bytes());
        }
        exts.extend(ext(EXT_ALPN, &vec16(&protos)));
        exts.extend(ext(EXT_SUPPORTED_VERSIONS, &[6, 0x3a, 0x3a, 3, 4, 3, 3]));
        body.extend(vec16(&exts));
        records(CLIENT_HELLO, &body, split)
    }

    fn server_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([0x22; 32]);
        body.push(0);
        body.extend([0x13, 0x01, 0]);
        // A TLS 1.2 ServerHello: the ALPN choice is in the clear.
        let exts = ext(EXT_ALPN, &vec16(&[2, b'h', b'2']));
        body.extend(vec16(&exts));
        records(SERVER_HELLO, &body, 1 << 14)
    }

    fn meta(seq: u64) -> Meta {
        Meta {
            ts_ns: seq as i64 * 1000,
            seq,
        }
    }

    #[test]
    fn recognises_hellos_and_nothing_else() {
        assert_eq!(
            recognise(&client_hello("a.test", &["h2"], 1 << 14)),
            Some(Dir::ToServer)
        );
        assert_eq!(recognise(&server_hello()), Some(Dir::ToClient));
        assert_eq!(recognise(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(recognise(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        assert_eq!(recognise(&[22, 3, 1, 0, 5]), None);
        // An application-data record is TLS, but not a hello.
        assert_eq!(recognise(&[23, 3, 3, 0, 40, 1, 2, 3, 4, 5, 6, 7]), None);
    }

    #[test]
    fn reports_one_roundtrip_from_client_hello_to_server_hello() {
        let mut parser = TlsParser::new(ParserLimits::default());
        let mut out = Vec::new();
        // A ClientHello split over two records and three segments.
        let hello = client_hello("example.com", &["h2", "http/1.1"], 60);
        for (n, part) in hello.chunks(50).enumerate() {
            parser.data(Dir::ToServer, part, meta(1 + n as u64), &mut out);
        }
        assert!(out.is_empty());
        parser.data(Dir::ToClient, &server_hello(), meta(9), &mut out);
        parser.data(Dir::ToServer, &[23, 3, 3, 0, 1, 0], meta(10), &mut out);
        parser.close(CloseReason::Ended, meta(11), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let ex = &out[0];
        assert_eq!(ex.start.seq, 1);
        assert_eq!(ex.end.seq, 9);
        assert!(ex.complete);
        assert_eq!(
            ex.notes,
            ["TLS: sni=example.com alpn=h2,http/1.1 version=TLS1.2 server_alpn=h2"]
        );
        let Detail::Tls(hello) = &ex.detail else {
            panic!("{ex:?}")
        };
        assert_eq!(hello.sni, "example.com");
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert_eq!(hello.version, "TLS1.2");
    }

    #[test]
    fn a_client_hello_without_answer_is_reported_at_close() {
        let mut parser = TlsParser::new(ParserLimits::default());
        let mut out = Vec::new();
        parser.data(
            Dir::ToServer,
            &client_hello("x.test", &[], 1 << 14),
            meta(3),
            &mut out,
        );
        parser.close(CloseReason::EndOfInput, meta(4), &mut out);
        assert_eq!(out.len(), 1);
        assert!(!out[0].complete);
        assert!(
            out[0].notes[0].contains("version=TLS1.3 (offered)"),
            "{:?}",
            out[0].notes
        );
        assert!(out[0].notes[1].contains("no ServerHello"));
    }

    #[test]
    fn curl_against_openssl_s_server() {
        // testdata/make-fixtures.sh: curl -k --http2 to https://example.test:PORT/.
        let segments = crate::http2::tests::fixture::read("tls-hello.pcap");
        assert_eq!(recognise(&segments[0].payload), Some(Dir::ToServer));
        let mut parser = TlsParser::new(ParserLimits::default());
        let mut out = Vec::new();
        let mut last = Meta::default();
        for s in &segments {
            parser.data(s.dir, &s.payload, s.meta, &mut out);
            last = s.meta;
        }
        parser.close(CloseReason::Ended, last, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].complete);
        assert_eq!(out[0].start, segments[0].meta);
        assert_eq!(
            out[0].notes,
            // TLS 1.3 sends the server's ALPN choice encrypted: only the offer is seen.
            ["TLS: sni=example.test alpn=h2,http/1.1 version=TLS1.3"]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 99;
        let mut parser = TlsParser::new(ParserLimits::default());
        let mut out = Vec::new();
        for round in 0..200u64 {
            let mut bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            bytes[..3].copy_from_slice(&[22, 3, 1]);
            let _ = parse_hello(&bytes, 64);
            parser.data(Dir::ToServer, &bytes, meta(round), &mut out);
        }
        parser.close(CloseReason::Ended, meta(999), &mut out);
        assert!(out.len() <= 1);
    }
}
