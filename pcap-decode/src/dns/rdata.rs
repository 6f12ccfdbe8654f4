//! Record data in presentation form (RFC 1035 section 5, as dig prints it, names without
//! the trailing dot), or RFC 3597's `\# LEN HEX` for types without a known form and for data
//! that does not parse as its type says.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::message::name_at;

/// Longest data shown, in bytes of text; longer data is cut and ends with "…".
pub(crate) const MAX_DATA: usize = 1024;

/// The data of a record of type `rtype`, found at `msg[at..at + len]`.
pub(crate) fn present(msg: &[u8], rtype: u16, at: usize, len: usize) -> String {
    let raw = &msg[at..at + len];
    let text = match rtype {
        1 => <[u8; 4]>::try_from(raw)
            .ok()
            .map(|a| Ipv4Addr::from(a).to_string()),
        28 => <[u8; 16]>::try_from(raw)
            .ok()
            .map(|a| Ipv6Addr::from(a).to_string()),
        // NS, CNAME, PTR, DNAME: one name.
        2 | 5 | 12 | 39 => names(msg, at, len, 0, 1).map(|(_, n)| n.join(" ")),
        15 => names(msg, at, len, 2, 1).map(|(fixed, n)| format!("{} {}", word(fixed, 0), n[0])),
        33 => names(msg, at, len, 6, 1).map(|(fixed, n)| {
            let (prio, weight, port) = (word(fixed, 0), word(fixed, 2), word(fixed, 4));
            format!("{prio} {weight} {port} {}", n[0])
        }),
        6 => soa(msg, at, len),
        16 | 99 => txt(raw),
        257 => caa(raw),
        64 | 65 => super::svcb::present(msg, at, len),
        _ => None,
    };
    let text = text.unwrap_or_else(|| unknown(raw));
    crate::stream::cap_value(&text, MAX_DATA)
}

/// RFC 3597 section 5: `\# 4 0A000001`.
pub(crate) fn unknown(raw: &[u8]) -> String {
    let mut text = format!("\\# {}", raw.len());
    if !raw.is_empty() {
        text.push(' ');
    }
    // Enough to fill MAX_DATA; the rest would be cut anyway.
    for b in raw.iter().take(MAX_DATA / 2) {
        let _ = write!(text, "{b:02X}");
    }
    text
}

fn word(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// `fixed` bytes, then `count` names filling the rest of the data exactly.
fn names(
    msg: &[u8],
    at: usize,
    len: usize,
    fixed: usize,
    count: usize,
) -> Option<(&[u8], Vec<String>)> {
    if len < fixed {
        return None;
    }
    let mut pos = at + fixed;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (name, end) = name_at(msg, pos).ok()?;
        out.push(name);
        pos = end;
    }
    (pos == at + len).then_some((&msg[at..at + fixed], out))
}

/// `mname rname serial refresh retry expire minimum`.
fn soa(msg: &[u8], at: usize, len: usize) -> Option<String> {
    let (mname, end) = name_at(msg, at).ok()?;
    let (rname, end) = name_at(msg, end).ok()?;
    let numbers = msg.get(end..at + len).filter(|n| n.len() == 20)?;
    let mut text = format!("{mname} {rname}");
    for n in numbers.chunks(4) {
        let _ = write!(text, " {}", u32::from_be_bytes([n[0], n[1], n[2], n[3]]));
    }
    Some(text)
}

/// Each character-string quoted, separated by spaces.
fn txt(mut raw: &[u8]) -> Option<String> {
    let mut text = String::new();
    while let Some((&n, rest)) = raw.split_first() {
        let s = rest.get(..n as usize)?;
        if !text.is_empty() {
            text.push(' ');
        }
        quoted(&mut text, s);
        raw = &rest[n as usize..];
    }
    Some(text)
}

/// A character-string in double quotes: `"` and `\` escaped, other bytes outside printable
/// ASCII as `\DDD`.
fn quoted(text: &mut String, s: &[u8]) {
    text.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                text.push('\\');
                text.push(b as char);
            }
            0x20..=0x7e => text.push(b as char),
            _ => {
                let _ = write!(text, "\\{b:03}");
            }
        }
    }
    text.push('"');
}

/// `flags tag "value"` (RFC 8659 section 4.1.1).
fn caa(raw: &[u8]) -> Option<String> {
    let (&flags, rest) = raw.split_first()?;
    let (&tag_len, rest) = rest.split_first()?;
    let tag = rest.get(..tag_len as usize).filter(|t| !t.is_empty())?;
    if !tag.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut text = format!("{flags} {} ", String::from_utf8_lossy(tag));
    quoted(&mut text, &rest[tag_len as usize..]);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_end(msg: &[u8], rtype: u16, data: &[u8]) -> String {
        let mut all = msg.to_vec();
        let at = all.len();
        all.extend_from_slice(data);
        present(&all, rtype, at, data.len())
    }

    #[test]
    fn addresses_and_names() {
        assert_eq!(at_end(&[], 1, &[192, 0, 2, 1]), "192.0.2.1");
        assert_eq!(at_end(&[], 1, &[192, 0, 2]), "\\# 3 C00002");
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[15] = 1;
        assert_eq!(at_end(&[], 28, &v6), "2001::1");
        assert_eq!(at_end(&[], 5, b"\x03www\x04test\x00"), "www.test");
        assert_eq!(at_end(&[], 12, b"\x00"), ".");
        // A name that does not fill the data exactly is shown as hex.
        assert_eq!(at_end(&[], 2, b"\x01a\x00\xff"), "\\# 4 016100FF");
        assert_eq!(at_end(&[], 15, b"\x00\x0a\x04mail\x01t\x00"), "10 mail.t");
        assert_eq!(
            at_end(&[], 33, b"\x00\x01\x00\x02\x13\xc4\x03sip\x01t\x00"),
            "1 2 5060 sip.t"
        );
    }

    #[test]
    fn names_follow_compression_pointers() {
        // "x.test" at offset 0, then a CNAME pointing at it.
        let msg = b"\x01x\x04test\x00";
        assert_eq!(at_end(msg, 5, b"\x03www\xc0\x00"), "www.x.test");
        // A pointer to itself is refused by the name reader: the data is shown as hex.
        let at = msg.len();
        let data = [0xc0, at as u8];
        assert_eq!(at_end(msg, 5, &data), format!("\\# 2 C0{at:02X}"));
    }

    #[test]
    fn soa_txt_caa_and_unknown() {
        let mut soa = b"\x02ns\x01t\x00\x04host\x01t\x00".to_vec();
        for n in [2026u32, 3600, 600, 86400, 60] {
            soa.extend_from_slice(&n.to_be_bytes());
        }
        assert_eq!(at_end(&[], 6, &soa), "ns.t host.t 2026 3600 600 86400 60");
        assert_eq!(
            at_end(&[], 16, b"\x05hello\x07a \"q\"\\\x01\x00"),
            r#""hello" "a \"q\"\\\001" """#
        );
        assert_eq!(at_end(&[], 16, b"\x05hi"), "\\# 3 056869");
        assert_eq!(
            at_end(&[], 257, b"\x00\x05issueca.test"),
            "0 issue \"ca.test\""
        );
        assert_eq!(at_end(&[], 65280, b""), "\\# 0");
        assert_eq!(at_end(&[], 65280, b"\x01\xab"), "\\# 2 01AB");
        let long = at_end(&[], 65280, &[7u8; 4000]);
        assert!(long.len() <= MAX_DATA + 3 && long.ends_with('…'), "{long}");
    }

    #[test]
    fn https_with_its_parameters() {
        // priority 1, target ".", alpn=h2
        let data = b"\x00\x01\x00\x00\x01\x00\x03\x02h2";
        assert_eq!(at_end(&[], 65, data), "1 . alpn=\"h2\"");
        assert_eq!(at_end(&[], 65, b"\x00\x01\x00\x00\x01"), "\\# 5 0001000001");
    }
}
