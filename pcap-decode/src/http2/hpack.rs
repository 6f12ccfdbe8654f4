//! HPACK (RFC 7541), one decoder per direction.
//!
//! A direction seen from its start is decoded by `loona_hpack`'s decoder, which keeps the
//! dynamic table exactly as the peer's encoder does. That decoder cannot decode a block that
//! refers to entries it never saw: it stops at the first such reference, and its table is
//! then out of step with the encoder. So a direction first seen mid-stream (or one whose
//! table went out of step after a hole) is decoded by [`PartialTable`] instead: a walk of the
//! representations (with the crate's Huffman decoder) over a table holding only the entries
//! inserted since we began watching. Those are the newest entries, so entry `k` we saw
//! (newest first) is at index 62 + k whatever came before; a reference beyond them is to an
//! entry inserted before the capture began and is counted as unknown, never guessed. Once
//! the whole table is known again (a size update to 0, or entries we saw filling the table
//! size a size update set), decoding goes back to the crate's decoder.

use std::collections::VecDeque;

use loona_hpack::huffman::HuffmanDecoder;
use loona_hpack::Decoder;

/// Largest dynamic table kept per direction, whatever the peers announce. A larger table
/// only makes references to old entries come out as unknown.
pub const MAX_TABLE_SIZE: usize = 65_536;
/// SETTINGS_HEADER_TABLE_SIZE until a SETTINGS frame says otherwise.
const DEFAULT_TABLE_SIZE: usize = 4096;
/// RFC 7541 section 4.1: an entry's size is its name and value plus 32.
const ENTRY_OVERHEAD: usize = 32;

/// What decoding one header block gave besides the fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Fields that referred to dynamic-table entries inserted before the capture began.
    pub unknown: usize,
    /// Why the block could not be decoded to its end (fields before it were delivered).
    pub error: Option<String>,
}

/// The HPACK decoding state of one direction.
pub struct HeaderDecoder {
    mode: Mode,
    /// The receiver's SETTINGS_HEADER_TABLE_SIZE (capped), for the memory estimate.
    announced: usize,
}

enum Mode {
    Synced(Box<Decoder<'static>>),
    Partial(PartialTable),
}

fn synced_decoder() -> Decoder<'static> {
    let mut decoder = Decoder::new();
    // An observer does not enforce the receiver's limit: it follows the encoder's size
    // updates up to its own bound.
    decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
    decoder
}

impl HeaderDecoder {
    /// A decoder for a direction seen from its start (`synced`), or first seen mid-stream.
    pub fn new(synced: bool) -> Self {
        let mode = if synced {
            Mode::Synced(Box::new(synced_decoder()))
        } else {
            Mode::Partial(PartialTable::new())
        };
        HeaderDecoder {
            mode,
            announced: DEFAULT_TABLE_SIZE,
        }
    }

    /// Whether every entry of the encoder's table is known.
    pub fn is_synced(&self) -> bool {
        matches!(self.mode, Mode::Synced(_))
    }

    /// Header blocks may have been lost (a hole): the table is no longer known.
    pub fn lose_sync(&mut self) {
        self.mode = Mode::Partial(PartialTable::new());
    }

    /// The receiver announced SETTINGS_HEADER_TABLE_SIZE. The encoder changes its table
    /// only with size updates in its blocks, which both modes follow; this only bounds the
    /// memory estimate.
    pub fn set_table_size_setting(&mut self, size: u32) {
        self.announced = (size as usize).min(MAX_TABLE_SIZE);
    }

    /// Bytes the table may hold now.
    pub fn buffered(&self) -> usize {
        match &self.mode {
            Mode::Synced(_) => self.announced.max(DEFAULT_TABLE_SIZE),
            Mode::Partial(t) => t.size,
        }
    }

    /// Decodes one whole header block, giving each field it can to `sink` in order.
    pub fn decode(&mut self, block: &[u8], sink: &mut dyn FnMut(&[u8], &[u8])) -> BlockOutcome {
        match &mut self.mode {
            Mode::Synced(decoder) => {
                match decoder.decode_with_cb(block, |name, value| sink(&name, &value)) {
                    Ok(()) => BlockOutcome::default(),
                    Err(e) => {
                        self.mode = Mode::Partial(PartialTable::new());
                        BlockOutcome {
                            unknown: 0,
                            error: Some(e.to_string()),
                        }
                    }
                }
            }
            Mode::Partial(table) => {
                let outcome = match table.decode(block, sink) {
                    Ok(unknown) => BlockOutcome {
                        unknown,
                        error: None,
                    },
                    Err(e) => {
                        *table = PartialTable::new();
                        BlockOutcome {
                            unknown: 0,
                            error: Some(e.to_owned()),
                        }
                    }
                };
                if let Some(decoder) = table.to_synced() {
                    self.mode = Mode::Synced(Box::new(decoder));
                }
                outcome
            }
        }
    }
}

// === impl PartialTable ===

/// A dynamic table of which only the newest entries may be known.
pub struct PartialTable {
    /// Newest first. A name is `None` when it referred to an entry we never saw.
    entries: VecDeque<(Option<Vec<u8>>, Vec<u8>)>,
    /// Sum of the entries' sizes (unknown names counted as empty).
    size: usize,
    /// The table size we believe in: the last size update seen, else our bound.
    max_size: usize,
    /// Whether `max_size` came from a size update we saw.
    max_known: bool,
    /// Whether entries inserted before we began watching may still be in the table.
    older_unknown: bool,
    huffman: Option<HuffmanDecoder>,
}

enum Lookup<'a> {
    Known(&'a [u8], &'a [u8]),
    /// Inserted before the capture began (or with a name that was).
    Unknown,
}

impl PartialTable {
    pub fn new() -> Self {
        PartialTable {
            entries: VecDeque::new(),
            size: 0,
            max_size: MAX_TABLE_SIZE,
            max_known: false,
            older_unknown: true,
            huffman: None,
        }
    }

    fn lookup(&self, index: usize) -> Result<Lookup<'_>, &'static str> {
        if index == 0 {
            return Err("header field index 0");
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok(Lookup::Known(name.as_bytes(), value.as_bytes()));
        }
        match self.entries.get(index - STATIC_TABLE.len() - 1) {
            Some((Some(name), value)) => Ok(Lookup::Known(name, value)),
            Some((None, _)) => Ok(Lookup::Unknown),
            None if self.older_unknown => Ok(Lookup::Unknown),
            None => Err("header field index beyond the dynamic table"),
        }
    }

    fn insert(&mut self, name: Option<Vec<u8>>, value: Vec<u8>) {
        self.size += name.as_ref().map_or(0, Vec::len) + value.len() + ENTRY_OVERHEAD;
        self.entries.push_front((name, value));
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            let Some((name, value)) = self.entries.pop_back() else {
                break;
            };
            self.size -= name.map_or(0, |n| n.len()) + value.len() + ENTRY_OVERHEAD;
        }
        // Older entries are evicted before ours: when ours leave no room for another, or
        // the table was emptied, nothing from before the capture is left.
        if self.max_known && self.size + ENTRY_OVERHEAD > self.max_size {
            self.older_unknown = false;
        }
    }

    fn size_update(&mut self, size: usize) {
        if size > MAX_TABLE_SIZE {
            self.max_size = MAX_TABLE_SIZE;
            self.max_known = false;
            self.older_unknown = true;
        } else {
            self.max_size = size;
            self.max_known = true;
        }
        self.evict();
    }

    /// Decodes a block; returns how many fields could not be (they refer to entries never
    /// seen). On an error the table is no longer trustworthy.
    fn decode(
        &mut self,
        block: &[u8],
        sink: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize, &'static str> {
        let mut pos = 0;
        let mut unknown = 0;
        while pos < block.len() {
            let first = block[pos];
            if first & 0x80 != 0 {
                let (index, used) = integer(&block[pos..], 7)?;
                pos += used;
                match self.lookup(index)? {
                    Lookup::Known(name, value) => sink(name, value),
                    Lookup::Unknown => unknown += 1,
                }
            } else if first & 0xe0 == 0x20 {
                let (size, used) = integer(&block[pos..], 5)?;
                pos += used;
                self.size_update(size);
            } else {
                let indexing = first & 0x40 != 0;
                let (index, used) = integer(&block[pos..], if indexing { 6 } else { 4 })?;
                pos += used;
                let name = if index == 0 {
                    let (name, used) = self.string(&block[pos..])?;
                    pos += used;
                    Some(name)
                } else {
                    match self.lookup(index)? {
                        Lookup::Known(name, _) => Some(name.to_vec()),
                        Lookup::Unknown => None,
                    }
                };
                let (value, used) = self.string(&block[pos..])?;
                pos += used;
                match &name {
                    Some(name) => sink(name, &value),
                    None => unknown += 1,
                }
                if indexing {
                    self.insert(name, value);
                }
            }
        }
        Ok(unknown)
    }

    fn string(&mut self, buf: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
        let Some(&first) = buf.first() else {
            return Err("header block ends inside a field");
        };
        let (len, used) = integer(buf, 7)?;
        let raw = buf
            .get(used..used.saturating_add(len))
            .ok_or("header block ends inside a string")?;
        if first & 0x80 == 0 {
            return Ok((raw.to_vec(), used + len));
        }
        let huffman = self.huffman.get_or_insert_with(HuffmanDecoder::new);
        let text = huffman
            .decode(raw)
            .map_err(|_| "a Huffman-coded string does not decode")?;
        Ok((text, used + len))
    }

    /// A decoder of the crate holding this table, when every entry of it is known.
    fn to_synced(&self) -> Option<Decoder<'static>> {
        if self.older_unknown || !self.max_known || self.entries.iter().any(|e| e.0.is_none()) {
            return None;
        }
        let mut decoder = synced_decoder();
        decoder.set_max_table_size(self.max_size);
        // Replay the entries, oldest first, as literals with incremental indexing.
        let mut replay = Vec::new();
        for (name, value) in self.entries.iter().rev() {
            let name = name.as_deref().unwrap_or_default();
            replay.push(0x40);
            for s in [name, value.as_slice()] {
                loona_hpack::encoder::encode_integer_into(s.len(), 7, 0, &mut replay).ok()?;
                replay.extend_from_slice(s);
            }
        }
        decoder.decode_with_cb(&replay, |_, _| {}).ok()?;
        Some(decoder)
    }
}

impl Default for PartialTable {
    fn default() -> Self {
        PartialTable::new()
    }
}

/// An HPACK integer with a `prefix`-bit prefix (RFC 7541 section 5.1): value and length.
fn integer(buf: &[u8], prefix: u8) -> Result<(usize, usize), &'static str> {
    let mask = (1u16 << prefix) as usize - 1;
    let first = *buf.first().ok_or("header block ends inside an integer")?;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok((value, 1));
    }
    for (i, &b) in buf.iter().enumerate().skip(1) {
        // Five bytes at most, as values beyond 2^28 mean nothing here.
        if i > 4 {
            return Err("an HPACK integer is too long");
        }
        value += usize::from(b & 0x7f) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("header block ends inside an integer")
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Whether the first field of a header block is a request pseudo-header
/// (`Some(true)`), a response's `:status` (`Some(false)`), or cannot be told from the
/// static table (`None`). Used to tell a client from a server mid-stream.
pub fn first_field_is_request(block: &[u8]) -> Option<bool> {
    let mut pos = 0;
    while pos < block.len() {
        let first = block[pos];
        let (index, used) = if first & 0x80 != 0 {
            integer(&block[pos..], 7).ok()?
        } else if first & 0xe0 == 0x20 {
            let (_, used) = integer(&block[pos..], 5).ok()?;
            pos += used;
            continue;
        } else {
            integer(&block[pos..], if first & 0x40 != 0 { 6 } else { 4 }).ok()?
        };
        let _ = used;
        return match index {
            1..=7 => Some(true),
            8..=14 => Some(false),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use loona_hpack::Encoder;

    fn fields(decoder: &mut HeaderDecoder, block: &[u8]) -> (Vec<String>, BlockOutcome) {
        let mut out = Vec::new();
        let outcome = decoder.decode(block, &mut |n, v| {
            out.push(format!(
                "{}: {}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            ))
        });
        (out, outcome)
    }

    fn request(path: &str, agent: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), path.as_bytes().to_vec()),
            (b":authority".to_vec(), b"example.test".to_vec()),
            (b"user-agent".to_vec(), agent.as_bytes().to_vec()),
            (b"x-trace".to_vec(), path.as_bytes().to_vec()),
        ]
    }

    fn encode(encoder: &mut Encoder<'_>, headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    #[test]
    fn synced_and_partial_agree_on_blocks_seen_from_the_start() {
        let mut encoder = Encoder::new();
        let mut synced = HeaderDecoder::new(true);
        let mut partial = HeaderDecoder::new(false);
        for i in 0..5 {
            let block = encode(&mut encoder, &request(&format!("/{i}"), "curl/8"));
            let (a, oa) = fields(&mut synced, &block);
            let (b, ob) = fields(&mut partial, &block);
            assert_eq!(a, b);
            assert_eq!(oa, BlockOutcome::default());
            assert_eq!(ob, BlockOutcome::default());
        }
    }

    #[test]
    fn entries_inserted_before_watching_are_unknown_never_wrong() {
        let mut encoder = Encoder::new();
        // Inserted before the capture began: x-trace /a (the only new name).
        let _ = encode(&mut encoder, &request("/a", "old-agent"));
        let mut partial = HeaderDecoder::new(false);
        // x-trace /b is now a literal whose name refers to that entry.
        for _ in 0..2 {
            let block = encode(&mut encoder, &request("/b", "old-agent"));
            let (got, outcome) = fields(&mut partial, &block);
            assert_eq!(
                got,
                [
                    ":method: GET",
                    ":path: /b",
                    ":authority: example.test",
                    "user-agent: old-agent"
                ]
            );
            assert_eq!(outcome.unknown, 1);
            assert_eq!(outcome.error, None);
        }
    }

    #[test]
    fn entries_seen_inserted_are_found_by_their_index() {
        let mut encoder = Encoder::new();
        let _ = encode(&mut encoder, &[(b"x-old".to_vec(), b"1".to_vec())]);
        let mut partial = HeaderDecoder::new(false);
        let block = encode(&mut encoder, &[(b"x-new".to_vec(), b"2".to_vec())]);
        assert_eq!(fields(&mut partial, &block).0, ["x-new: 2"]);
        // Both referred to: x-new (62) is known, x-old (63) is not.
        let block = encode(
            &mut encoder,
            &[
                (b"x-new".to_vec(), b"2".to_vec()),
                (b"x-old".to_vec(), b"1".to_vec()),
            ],
        );
        assert_eq!(block, [0x80 | 62, 0x80 | 63]);
        let (got, outcome) = fields(&mut partial, &block);
        assert_eq!(got, ["x-new: 2"]);
        assert_eq!(outcome.unknown, 1);
    }

    #[test]
    fn a_size_update_to_zero_makes_the_table_known_again() {
        let mut partial = HeaderDecoder::new(false);
        // Size update 0, size update 4096, then a literal with indexing, then index 62.
        let mut block = vec![0x20, 0x3f, 0xe1, 0x1f];
        block.extend([0x40, 1, b'a', 1, b'b', 0x80 | 62]);
        let (got, outcome) = fields(&mut partial, &block);
        assert_eq!(got, ["a: b", "a: b"]);
        assert_eq!(outcome.unknown, 0);
        assert!(partial.is_synced());
        let (got, _) = fields(&mut partial, &[0x80 | 62]);
        assert_eq!(got, ["a: b"]);
        let (_, outcome) = fields(&mut partial, &[0x80 | 63]);
        assert!(outcome.error.is_some());
    }

    #[test]
    fn huffman_strings_decode_in_the_walk() {
        // RFC 7541 C.4.1: a request with Huffman-coded literals.
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let mut partial = HeaderDecoder::new(false);
        let (got, _) = fields(&mut partial, &block);
        assert_eq!(
            got,
            [
                ":method: GET",
                ":scheme: http",
                ":path: /",
                ":authority: www.example.com"
            ]
        );
        assert_eq!(first_field_is_request(&block), Some(true));
        assert_eq!(first_field_is_request(&[0x88]), Some(false));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut partial = HeaderDecoder::new(false);
        for block in [
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x40, 0x7f],
            &[0x80],
        ] {
            assert!(fields(&mut partial, block).1.error.is_some(), "{block:?}");
        }
    }
}
