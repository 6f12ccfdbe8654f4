//! SVCB and HTTPS record data (RFC 9460) in presentation form:
//! `1 . alpn="h2,h3" port=8443 ipv4hint=192.0.2.1`.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::message::name_at;

/// `priority target key=value...`, or `None` when the data does not parse.
pub(crate) fn present(msg: &[u8], at: usize, len: usize) -> Option<String> {
    let end = at + len;
    let priority = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    if len < 3 {
        return None;
    }
    let (target, mut pos) = name_at(msg, at + 2).ok()?;
    if pos > end {
        return None;
    }
    let mut text = format!("{priority} {target}");
    while pos < end {
        let fixed = msg.get(pos..pos + 4).filter(|_| pos + 4 <= end)?;
        let key = u16::from_be_bytes([fixed[0], fixed[1]]);
        let vlen = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        let value = msg
            .get(pos + 4..pos + 4 + vlen)
            .filter(|_| pos + 4 + vlen <= end)?;
        text.push(' ');
        param(&mut text, key, value)?;
        pos += 4 + vlen;
    }
    Some(text)
}

fn key_name(key: u16) -> String {
    match key {
        0 => "mandatory".to_owned(),
        1 => "alpn".to_owned(),
        2 => "no-default-alpn".to_owned(),
        3 => "port".to_owned(),
        4 => "ipv4hint".to_owned(),
        5 => "ech".to_owned(),
        6 => "ipv6hint".to_owned(),
        _ => format!("key{key}"),
    }
}

fn param(text: &mut String, key: u16, v: &[u8]) -> Option<()> {
    text.push_str(&key_name(key));
    let list = |size: usize| {
        let chunks = v.chunks_exact(size);
        (!v.is_empty() && chunks.remainder().is_empty()).then_some(chunks)
    };
    let joined: String = match key {
        0 => list(2)?
            .map(|k| key_name(u16::from_be_bytes([k[0], k[1]])))
            .collect::<Vec<_>>()
            .join(","),
        1 => {
            let mut ids = Vec::new();
            let mut rest = v;
            while let Some((&n, tail)) = rest.split_first() {
                let id = tail.get(..usize::from(n))?;
                ids.push(escaped(id, true));
                rest = &tail[usize::from(n)..];
            }
            format!("\"{}\"", ids.join(","))
        }
        2 if v.is_empty() => return Some(()),
        3 if v.len() == 2 => u16::from_be_bytes([v[0], v[1]]).to_string(),
        4 => list(4)?
            .map(|a| Ipv4Addr::from([a[0], a[1], a[2], a[3]]).to_string())
            .collect::<Vec<_>>()
            .join(","),
        5 => base64(v),
        6 => list(16)?
            .map(|a| Ipv6Addr::from(<[u8; 16]>::try_from(a).expect("chunks of 16")).to_string())
            .collect::<Vec<_>>()
            .join(","),
        _ if key <= 6 => return None,
        _ if v.is_empty() => return Some(()),
        _ => format!("\"{}\"", escaped(v, false)),
    };
    text.push('=');
    text.push_str(&joined);
    Some(())
}

/// Printable ASCII as is, but `"`, `\` (and `,` inside a list) escaped; other bytes `\DDD`.
fn escaped(v: &[u8], in_list: bool) -> String {
    let mut s = String::new();
    for &b in v {
        match b {
            b',' if in_list => s.push_str("\\\\,"),
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x21..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
    s
}

fn base64(v: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in v.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(data: &[u8]) -> Option<String> {
        present(data, 0, data.len())
    }

    #[test]
    fn parameters_in_presentation_form() {
        // priority 1, target ".", alpn=h2,h3, port=8443, ipv4hint=192.0.2.1, ech
        let mut d = b"\x00\x01\x00".to_vec();
        d.extend_from_slice(b"\x00\x01\x00\x06\x02h2\x02h3");
        d.extend_from_slice(b"\x00\x03\x00\x02\x20\xfb");
        d.extend_from_slice(b"\x00\x04\x00\x04\xc0\x00\x02\x01");
        d.extend_from_slice(b"\x00\x05\x00\x04abcd");
        d.extend_from_slice(b"\x00\x02\x00\x00");
        d.extend_from_slice(b"\x01\x00\x00\x01x");
        assert_eq!(
            show(&d).unwrap(),
            "1 . alpn=\"h2,h3\" port=8443 ipv4hint=192.0.2.1 ech=YWJjZA== no-default-alpn key256=\"x\""
        );
        assert_eq!(show(b"\x00\x00\x03svc\x01t\x00").unwrap(), "0 svc.t");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn broken_parameters_are_refused() {
        assert_eq!(show(b"\x00\x01"), None);
        assert_eq!(show(b"\x00\x01\x00\x00\x03\x00\x03\x20\xfb\x00"), None);
        assert_eq!(show(b"\x00\x01\x00\x00\x01\x00\x03\x05h2"), None);
        assert_eq!(show(b"\x00\x01\x00\x00\x04\x00\x03\x01\x02\x03"), None);
    }
}
