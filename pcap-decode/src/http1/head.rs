//! Message heads, parsed with `httparse`: the request line or status line, the headers
//! (values capped), and what the headers say about framing.

use httparse::{Header as RawHeader, ParserConfig, Status, EMPTY_HEADER};

use crate::roundtrip::Header;
use crate::stream::cap_value;

/// Headers parsed without allocating a header array; a head with more retries with one
/// sized from its length.
const INLINE_HEADERS: usize = 64;

/// The outcome of parsing the bytes collected so far.
pub(super) enum Parsed<T> {
    /// A whole head of this many bytes.
    Complete(T, usize),
    /// A head so far: wait for more bytes.
    Partial,
    /// Not a head.
    Invalid,
}

/// What the headers say about the body and the connection.
#[derive(Debug, Default)]
pub(super) struct Framing {
    /// `Some(Err(()))` for an unusable Content-Length (not a number, or two that differ).
    pub content_length: Option<Result<u64, ()>>,
    /// Transfer-Encoding was present.
    pub transfer_encoding: bool,
    /// ... and its last coding was `chunked`.
    pub chunked: bool,
    pub expect_continue: bool,
    pub host: Option<String>,
    pub upgrade: Option<String>,
}

/// A request head.
pub(super) struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: &'static str,
    pub headers: Vec<Header>,
    pub framing: Framing,
}

/// A status line and headers.
pub(super) struct ResponseHead {
    pub version: &'static str,
    pub code: u16,
    pub reason: String,
    pub headers: Vec<Header>,
    pub framing: Framing,
}

fn version_name(minor: Option<u8>) -> &'static str {
    match minor {
        Some(0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// Parses a request head from `buf`; values are cut at `max_value` bytes.
pub(super) fn parse_request(buf: &[u8], max_value: usize) -> Parsed<RequestHead> {
    let mut config = ParserConfig::default();
    config
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .ignore_invalid_headers_in_requests(true);
    with_headers(buf, |headers| {
        let mut req = httparse::Request::new(headers);
        let status = config.parse_request(&mut req, buf)?;
        Ok(map(status, |n| {
            let (headers, framing) = convert(req.headers, max_value);
            let head = RequestHead {
                method: req.method.unwrap_or_default().to_owned(),
                target: req.path.unwrap_or_default().to_owned(),
                version: version_name(req.version),
                headers,
                framing,
            };
            (head, n)
        }))
    })
}

/// Parses a response head from `buf`; values are cut at `max_value` bytes.
pub(super) fn parse_response(buf: &[u8], max_value: usize) -> Parsed<ResponseHead> {
    let mut config = ParserConfig::default();
    config
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true);
    with_headers(buf, |headers| {
        let mut resp = httparse::Response::new(headers);
        let status = config.parse_response(&mut resp, buf)?;
        Ok(map(status, |n| {
            let (headers, framing) = convert(resp.headers, max_value);
            let head = ResponseHead {
                version: version_name(resp.version),
                code: resp.code.unwrap_or_default(),
                reason: cap_value(resp.reason.unwrap_or_default(), max_value),
                headers,
                framing,
            };
            (head, n)
        }))
    })
}

/// Parses the trailer section of a chunked body (possibly just its empty line).
pub(super) fn parse_trailers(buf: &[u8], max_value: usize) -> Parsed<Vec<Header>> {
    with_headers(buf, |headers| {
        let status = httparse::parse_headers(buf, headers)?;
        Ok(map(status, |(n, parsed)| (convert(parsed, max_value).0, n)))
    })
}

fn map<A, B>(status: Status<A>, f: impl FnOnce(A) -> B) -> Status<B> {
    match status {
        Status::Complete(a) => Status::Complete(f(a)),
        Status::Partial => Status::Partial,
    }
}

/// Runs `parse` with an inline header array, then once more with one large enough for
/// any head of `buf.len()` bytes if the first was too small.
fn with_headers<'b, T>(
    buf: &'b [u8],
    mut parse: impl FnMut(&mut [RawHeader<'b>]) -> httparse::Result<(T, usize)>,
) -> Parsed<T> {
    let mut inline = [EMPTY_HEADER; INLINE_HEADERS];
    let result = match parse(&mut inline) {
        Err(httparse::Error::TooManyHeaders) => {
            // The shortest header line ("a:\n") is 3 bytes.
            let mut many = vec![EMPTY_HEADER; buf.len() / 3 + 1];
            parse(&mut many)
        }
        other => other,
    };
    match result {
        Ok(Status::Complete((t, n))) => Parsed::Complete(t, n),
        Ok(Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

/// The headers as the crate reports them, and what they say about framing.
fn convert(raw: &[RawHeader<'_>], max_value: usize) -> (Vec<Header>, Framing) {
    let mut framing = Framing::default();
    let mut headers = Vec::with_capacity(raw.len());
    for h in raw {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = content_length(value);
            framing.content_length = match (framing.content_length, parsed) {
                (None, v) => Some(v),
                (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                _ => Some(Err(())),
            };
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            framing.transfer_encoding = true;
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            framing.chunked = last.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("expect") {
            framing.expect_continue |= value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("host") {
            framing.host = Some(cap_value(value, max_value));
        } else if name.eq_ignore_ascii_case("upgrade") {
            framing.upgrade = Some(cap_value(value, max_value));
        }
        headers.push(Header {
            name: cap_value(name, max_value),
            value: cap_value(value, max_value),
        });
    }
    (headers, framing)
}

/// A Content-Length value: digits, or a list of equal values ("5, 5").
fn content_length(value: &str) -> Result<u64, ()> {
    let mut found = None;
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: u64 = part.parse().map_err(|_| ())?;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    found.ok_or(())
}

/// Method, target and version from the first line of a head too large to parse, for a
/// report that says what the request was. The target is capped like a header value.
pub(super) fn salvage_request_line(buf: &[u8], max_value: usize) -> Option<(String, String)> {
    let line = buf.split(|&b| b == b'\n').next()?;
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = String::from_utf8_lossy(parts.next()?).into_owned();
    let target = String::from_utf8_lossy(parts.next()?);
    Some((method, cap_value(&target, max_value)))
}

/// Status code and reason from the first line of a response head too large to parse.
pub(super) fn salvage_status_line(buf: &[u8], max_value: usize) -> Option<(u16, String)> {
    let line = buf.split(|&b| b == b'\n').next()?;
    let code = std::str::from_utf8(line.get(9..12)?).ok()?.parse().ok()?;
    let reason = String::from_utf8_lossy(line.get(13..).unwrap_or_default());
    Some((code, cap_value(reason.trim_end(), max_value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(buf: &[u8]) -> (RequestHead, usize) {
        match parse_request(buf, 16) {
            Parsed::Complete(h, n) => (h, n),
            _ => panic!("not a complete request: {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn request_heads() {
        let (h, n) =
            request(b"POST /up HTTP/1.0\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.version),
            ("POST", "/up", "HTTP/1.0")
        );
        assert_eq!(n, 54);
        assert_eq!(h.framing.host.as_deref(), Some("a.test"));
        assert_eq!(h.framing.content_length, Some(Ok(5)));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHo", 16),
            Parsed::Partial
        ));
        assert!(matches!(
            parse_request(b"GET / HTTP/3\r\n", 16),
            Parsed::Invalid
        ));
    }

    #[test]
    fn framing_headers() {
        let (h, _) = request(
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nExpect: 100-Continue\r\n\r\n",
        );
        assert!(h.framing.transfer_encoding && h.framing.chunked && h.framing.expect_continue);
        let (h, _) = request(b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(h.framing.content_length, Some(Err(())));
        let (h, _) = request(b"GET / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!(h.framing.content_length, Some(Ok(7)));
        let (h, _) = request(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(h.framing.content_length, Some(Err(())));
    }

    #[test]
    fn values_are_capped_and_many_headers_parse() {
        let long = format!("GET / HTTP/1.1\r\nCookie: {}\r\n\r\n", "c".repeat(100));
        let (h, _) = request(long.as_bytes());
        assert_eq!(h.headers[0].value, format!("{}…", "c".repeat(16)));
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..200 {
            many.push_str(&format!("X-{i}: {i}\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(request(many.as_bytes()).0.headers.len(), 200);
    }

    #[test]
    fn responses_and_trailers() {
        let Parsed::Complete(h, n) = parse_response(b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n", 64)
        else {
            panic!("not complete")
        };
        assert_eq!((h.code, h.reason.as_str(), n), (404, "Not Found", 32));
        let Parsed::Complete(t, n) = parse_trailers(b"\r\nrest", 64) else {
            panic!()
        };
        assert_eq!((t.len(), n), (0, 2));
        let Parsed::Complete(t, n) = parse_trailers(b"X-Sum: 1\r\n\r\n", 64) else {
            panic!()
        };
        assert_eq!((t[0].name.as_str(), n), ("X-Sum", 12));
    }

    #[test]
    fn salvages_start_lines() {
        let r = salvage_request_line(b"GET /a HTTP/1.1\r\nX: y", 64);
        assert_eq!(r, Some(("GET".into(), "/a".into())));
        let s = salvage_status_line(b"HTTP/1.1 200 OK\r\nX: y", 64);
        assert_eq!(s, Some((200, "OK".into())));
    }
}
