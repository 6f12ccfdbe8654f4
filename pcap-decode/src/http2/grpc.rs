//! gRPC over HTTP/2 (the PROTOCOL-HTTP2 document of grpc/grpc): service and method from
//! `:path`, messages counted from their 5-byte length prefix across DATA frames, the
//! deadline from `grpc-timeout`, and `grpc-message` percent-decoded.

/// Whether a content-type is gRPC's (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc(content_type: &str) -> bool {
    content_type
        .get(..16)
        .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
}

/// Service and method of `/pkg.Service/Method`; empty strings when the path has another
/// shape.
pub fn service_and_method(path: &str) -> (String, String) {
    path.strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .filter(|(service, method)| !service.is_empty() && !method.contains('/'))
        .map(|(s, m)| (s.to_owned(), m.to_owned()))
        .unwrap_or_default()
}

/// `grpc-timeout` ("1500m", "2S", "1H") in ns.
pub fn timeout_ns(value: &str) -> Option<u64> {
    let value = value.trim();
    if !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "H" => 3_600_000_000_000,
        "M" => 60_000_000_000,
        "S" => 1_000_000_000,
        "m" => 1_000_000,
        "u" => 1_000,
        "n" => 1,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// A deadline for people: "deadline 1.5 s", "deadline 0.002 s".
pub fn deadline_note(ns: u64) -> String {
    let secs = format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    format!("deadline {secs} s")
}

/// `grpc-message` is percent-encoded (bytes outside printable ASCII, and '%').
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts the messages of one direction of a call from their length prefixes
/// (1 byte compressed flag, 4 bytes length), without keeping them.
#[derive(Debug, Clone, Default)]
pub struct MessageCounter {
    prefix: [u8; 5],
    have: usize,
    /// Payload bytes of the current message still to come.
    remaining: u64,
    pub messages: u64,
    /// Payload bytes (prefixes not counted).
    pub bytes: u64,
    pub compressed: u64,
    /// The framing was lost (a hole across a prefix, a stream seen from its middle):
    /// counting stopped.
    pub lost: bool,
}

impl MessageCounter {
    /// A counter for a direction first seen in its middle: nothing can be counted.
    pub fn lost() -> Self {
        MessageCounter {
            lost: true,
            ..MessageCounter::default()
        }
    }

    /// DATA content of the direction, in order.
    pub fn data(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.lost {
            if self.remaining > 0 {
                let n = (self.remaining).min(chunk.len() as u64);
                self.remaining -= n;
                self.bytes += n;
                chunk = &chunk[n as usize..];
                continue;
            }
            let n = (5 - self.have).min(chunk.len());
            self.prefix[self.have..self.have + n].copy_from_slice(&chunk[..n]);
            self.have += n;
            chunk = &chunk[n..];
            if self.have == 5 {
                self.have = 0;
                self.messages += 1;
                match self.prefix[0] {
                    0 => {}
                    1 => self.compressed += 1,
                    // Not gRPC framing after all.
                    _ => self.lost = true,
                }
                self.remaining = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
            }
        }
    }

    /// `len` content bytes were never seen: counting goes on when they fell inside one
    /// message's payload (they count in its size, known from its prefix). Returns whether
    /// it does.
    pub fn hole(&mut self, len: u64) -> bool {
        if !self.lost && self.have == 0 && len <= self.remaining {
            self.remaining -= len;
            self.bytes += len;
            return true;
        }
        self.lost = true;
        false
    }

    /// Whether the direction ended inside a message.
    pub fn mid_message(&self) -> bool {
        !self.lost && (self.have > 0 || self.remaining > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_across_chunks() {
        let mut bytes = vec![0, 0, 0, 0, 3, b'a', b'b', b'c', 1, 0, 0, 0, 0];
        bytes.extend([0, 0, 0, 1, 0]);
        bytes.extend([7; 256]);
        for step in [1, 2, 7, 300] {
            let mut c = MessageCounter::default();
            for chunk in bytes.chunks(step) {
                c.data(chunk);
            }
            assert_eq!((c.messages, c.bytes, c.compressed), (3, 259, 1), "{step}");
            assert!(!c.mid_message());
        }
        let mut c = MessageCounter::default();
        c.data(&bytes[..20]);
        assert!(c.hole(100));
        c.data(&bytes[120..]);
        assert_eq!((c.messages, c.bytes), (3, 259));
        assert!(!c.hole(1_000));
    }

    #[test]
    fn reads_paths_timeouts_and_messages() {
        assert_eq!(
            service_and_method("/helloworld.Greeter/SayHello"),
            ("helloworld.Greeter".to_owned(), "SayHello".to_owned())
        );
        assert_eq!(service_and_method("/index.html"), Default::default());
        assert_eq!(timeout_ns("1500m"), Some(1_500_000_000));
        assert_eq!(timeout_ns("1H"), Some(3_600_000_000_000));
        assert_eq!(timeout_ns("123456789S"), None);
        assert_eq!(timeout_ns("S"), None);
        assert_eq!(timeout_ns("1\u{fffd}"), None);
        assert_eq!(deadline_note(1_500_000_000), "deadline 1.5 s");
        assert_eq!(deadline_note(2_000_000_000), "deadline 2 s");
        assert_eq!(
            percent_decode("not found: %E2%9C%93 100%"),
            "not found: ✓ 100%"
        );
        assert!(is_grpc("application/grpc+proto"));
        assert!(!is_grpc("application/json"));
    }
}
