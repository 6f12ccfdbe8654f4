//! The fixed parts of a DNS message (RFC 1035 section 4.1): the 12-byte header, names
//! stepped over without decoding, and the plausibility test that recognition and TCP
//! resynchronisation share.

use crate::stream::Dir;

/// Bytes of the header every DNS message starts with.
pub(crate) const HEADER_LEN: usize = 12;

/// Fewest bytes a question takes: the root name, type and class.
const MIN_QUESTION: usize = 5;

/// Fewest bytes a resource record takes: the root name, type, class, TTL and data length.
pub(crate) const MIN_RECORD: usize = 11;

/// A name is at most 255 bytes on the wire (RFC 1035 section 2.3.4).
const MAX_NAME: usize = 255;

/// The header of a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u16,
    /// The second 16-bit word: QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode.
    pub bits: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// The header at the start of `msg`, if there are enough bytes for one.
    pub fn read(msg: &[u8]) -> Option<Header> {
        let word = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
        (msg.len() >= HEADER_LEN).then(|| Header {
            id: word(0),
            bits: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
        })
    }

    /// QR: the message is a response.
    pub fn response(&self) -> bool {
        self.bits & 0x8000 != 0
    }

    pub fn opcode(&self) -> u16 {
        (self.bits >> 11) & 0xf
    }

    /// The low four bits of the response code (the OPT record may carry eight more).
    pub fn rcode(&self) -> u16 {
        self.bits & 0xf
    }

    /// Fewest bytes a message with these counts can take.
    fn min_len(&self) -> usize {
        let records = self.ancount as usize + self.nscount as usize + self.arcount as usize;
        HEADER_LEN + MIN_QUESTION * self.qdcount as usize + MIN_RECORD * records
    }
}

/// The offset just past the name at `pos`, without following compression pointers.
pub(crate) fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, &'static str> {
    let start = pos;
    loop {
        let len = *msg
            .get(pos)
            .ok_or("a name runs past the end of the message")?;
        match len & 0xc0 {
            0 if len == 0 => return Ok(pos + 1),
            0 => pos += 1 + len as usize,
            0xc0 if pos + 2 <= msg.len() => return Ok(pos + 2),
            0xc0 => return Err("a name runs past the end of the message"),
            _ => return Err("a name has a label of a reserved type (0x40 or 0x80)"),
        }
        if pos - start > MAX_NAME {
            return Err("a name is longer than 255 bytes");
        }
    }
}

/// What [`plausible`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A DNS message, sent in this direction (a query goes to the server).
    Dns(Dir),
    NotDns,
    /// Too few bytes to tell.
    NeedMore,
}

/// Whether `msg`, the first bytes of a message said to be `declared` bytes long, looks like
/// DNS: a known opcode, counts that fit in the length, and one question that parses with a
/// known class (a response may instead have no question and be an error, or have a first
/// record that parses with a known class).
pub(crate) fn plausible(msg: &[u8], declared: usize) -> Verdict {
    let msg = &msg[..msg.len().min(declared)];
    if declared < HEADER_LEN {
        return Verdict::NotDns;
    }
    let Some(h) = Header::read(msg) else {
        return Verdict::NeedMore;
    };
    let known_opcode = matches!(h.opcode(), 0 | 1 | 2 | 4 | 5);
    let z_clear = h.bits & 0x0040 == 0;
    if !known_opcode || !z_clear || h.min_len() > declared {
        return Verdict::NotDns;
    }
    let dir = if h.response() {
        Dir::ToClient
    } else {
        Dir::ToServer
    };
    let fits = match (h.response(), h.qdcount) {
        (false, 1) if h.rcode() == 0 => question_fits(msg),
        (true, 1) => question_fits(msg),
        // A response may echo no question: an error (FORMERR, NOTIMP) with at most an OPT
        // record, or records alone (mDNS answers).
        (true, 0) if h.ancount == 0 && h.nscount == 0 && h.arcount <= 1 && h.rcode() != 0 => {
            return Verdict::Dns(dir)
        }
        (true, 0) if h.ancount > 0 || h.nscount > 0 => record_fits(msg),
        _ => return Verdict::NotDns,
    };
    match fits {
        Ok(true) => Verdict::Dns(dir),
        Ok(false) if msg.len() < declared => Verdict::NeedMore,
        _ => Verdict::NotDns,
    }
}

/// Whether the question after the header is whole and sound: `Ok(false)` when `msg` ends
/// before it does.
fn question_fits(msg: &[u8]) -> Result<bool, ()> {
    first_name_fits(msg, 4, |fixed| {
        u16::from_be_bytes([fixed[0], fixed[1]]) != 0
    })
}

/// As [`question_fits`], for a first record in place of a question: its name, then type,
/// class, TTL and data length.
fn record_fits(msg: &[u8]) -> Result<bool, ()> {
    first_name_fits(msg, 10, |fixed| {
        u16::from_be_bytes([fixed[0], fixed[1]]) != 41
    })
}

/// Whether the name after the header is sound, followed by `fixed` bytes whose type
/// `known_type` accepts and whose class (bytes 2 and 3) is known.
fn first_name_fits(
    msg: &[u8],
    fixed: usize,
    known_type: impl Fn(&[u8]) -> bool,
) -> Result<bool, ()> {
    let mut pos = HEADER_LEN;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Ok(false);
        };
        match len & 0xc0 {
            0 if len == 0 => break,
            0 => pos += 1 + len as usize,
            0xc0 => {
                // A pointer in the first name can only point back into that name.
                let Some(&low) = msg.get(pos + 1) else {
                    return Ok(false);
                };
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if target < HEADER_LEN || target >= pos {
                    return Err(());
                }
                pos += 1;
                break;
            }
            _ => return Err(()),
        }
        if pos - HEADER_LEN > MAX_NAME {
            return Err(());
        }
    }
    let Some(fixed) = msg.get(pos + 1..pos + 1 + fixed) else {
        return Ok(false);
    };
    // The top bit of the class is mDNS's unicast-response (or cache-flush) bit.
    let class = u16::from_be_bytes([fixed[2], fixed[3]]) & 0x7fff;
    let known_class = matches!(class, 1 | 3 | 4 | 254 | 255);
    if !known_type(fixed) || !known_class {
        return Err(());
    }
    Ok(true)
}
