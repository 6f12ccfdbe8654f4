//! Start lines: whether bytes begin an HTTP/1.x request line or status line. Used to
//! recognise a connection, to reject what is not a head before buffering it, and to find
//! the next message after a hole. Nothing here allocates.

use crate::stream::Dir;

/// What the first bytes of a would-be start line say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not a start line.
    No,
    /// A start line so far; more bytes would tell.
    Maybe,
    /// A start line up to the version (request) or the status code (response).
    Yes,
}

/// Methods that need no version to be believed (`GET /` is a request).
const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"PURGE",
];

/// Longest method token taken for one: real methods are short, and a cap keeps a stream
/// of letters from passing for the start of a request line.
const MAX_METHOD: usize = 24;

const VERSION: &[u8] = b"HTTP/1.";

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte of a request target: visible, not a space (obs-text is let through).
fn is_target(b: u8) -> bool {
    b > 0x20 && b != 0x7f
}

/// Whether `b` begins a request line: `token SP target SP HTTP/1.d`.
pub(super) fn request_line(b: &[u8]) -> Verdict {
    let method = b.iter().take_while(|&&c| is_tchar(c)).count();
    if method > MAX_METHOD {
        return Verdict::No;
    }
    if method == b.len() {
        return Verdict::Maybe;
    }
    if method == 0 || b[method] != b' ' {
        return Verdict::No;
    }
    let rest = &b[method + 1..];
    let target = rest.iter().take_while(|&&c| is_target(c)).count();
    if target == rest.len() {
        return Verdict::Maybe;
    }
    if target == 0 || rest[target] != b' ' {
        return Verdict::No;
    }
    version(&rest[target + 1..])
}

/// `HTTP/1.d` at the start of `b`.
fn version(b: &[u8]) -> Verdict {
    let n = b.len().min(VERSION.len());
    if b[..n] != VERSION[..n] {
        return Verdict::No;
    }
    match b.get(VERSION.len()) {
        None => Verdict::Maybe,
        Some(d) if d.is_ascii_digit() => Verdict::Yes,
        Some(_) => Verdict::No,
    }
}

/// Whether `b` begins a status line: `HTTP/1.d SP ddd`.
pub(super) fn status_line(b: &[u8]) -> Verdict {
    match version(b) {
        Verdict::Yes => {}
        other => return other,
    }
    let rest = &b[VERSION.len() + 1..];
    let want = [b' ', b'0', b'0', b'0'];
    for (i, &c) in rest.iter().take(want.len()).enumerate() {
        let ok = if i == 0 {
            c == b' '
        } else {
            c.is_ascii_digit()
        };
        if !ok {
            return Verdict::No;
        }
    }
    if rest.len() < want.len() {
        return Verdict::Maybe;
    }
    match rest.get(want.len()) {
        None | Some(b' ' | b'\r' | b'\n') => Verdict::Yes,
        Some(_) => Verdict::No,
    }
}

/// The start line a sender in `dir` writes.
pub(super) fn start_line(dir: Dir, b: &[u8]) -> Verdict {
    match dir {
        Dir::ToServer => request_line(b),
        Dir::ToClient => status_line(b),
    }
}

/// See [`crate::http1::recognise`].
pub(super) fn recognise(first: &[u8]) -> Option<Dir> {
    if status_line(first) == Verdict::Yes {
        return Some(Dir::ToClient);
    }
    match request_line(first) {
        Verdict::Yes => Some(Dir::ToServer),
        Verdict::Maybe if known_method_then_path(first) => Some(Dir::ToServer),
        _ => None,
    }
}

/// A known method, a space and an origin-form target: a request even before its version.
fn known_method_then_path(b: &[u8]) -> bool {
    METHODS.iter().any(|m| {
        b.len() > m.len() + 1 && b.starts_with(m) && b[m.len()] == b' ' && b[m.len() + 1] == b'/'
    })
}

/// The first place in `b` where a start line of `dir` may begin. A status line is looked
/// for anywhere (`HTTP/1.` is distinctive). A request line is looked for at line starts
/// (0 counts when `line_start`: the bytes before `b` ended a line, or a hole did), and
/// anywhere in a line when the whole line up to `HTTP/1.` is there (a body without a line
/// end runs into the next request).
pub(super) fn find_start(dir: Dir, b: &[u8], line_start: bool) -> Option<usize> {
    match dir {
        Dir::ToClient => find_status_line(b),
        Dir::ToServer => find_request_line(b, line_start),
    }
}

fn find_status_line(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&c| c == b'H') {
        let at = from + i;
        if status_line(&b[at..]) != Verdict::No {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn find_request_line(b: &[u8], line_start: bool) -> Option<usize> {
    let mut from = 0;
    while from < b.len() {
        if (from > 0 || line_start) && request_line(&b[from..]) != Verdict::No {
            return Some(from);
        }
        let end = b[from..].iter().position(|&c| c == b'\n').map(|i| from + i);
        let line = &b[from..end.unwrap_or(b.len())];
        if let Some(at) = request_line_inside(line) {
            return Some(from + at);
        }
        from = end? + 1;
    }
    None
}

/// A whole request line that begins after other bytes in `line`: found from its
/// ` HTTP/1.`, back over the target and the method. When the bytes before the target end
/// in a known method, the line starts there.
fn request_line_inside(line: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = line[from..].iter().position(|&c| c == b' ') {
        let v = from + i;
        from = v + 1;
        if !line[v + 1..].starts_with(VERSION) {
            continue;
        }
        let target = line[..v]
            .iter()
            .rev()
            .take_while(|&&c| is_target(c))
            .count();
        let Some(sp) = v.checked_sub(target + 1) else {
            continue;
        };
        if target == 0 || line[sp] != b' ' {
            continue;
        }
        let token = line[..sp]
            .iter()
            .rev()
            .take_while(|&&c| is_tchar(c))
            .take(MAX_METHOD)
            .count();
        if token == 0 {
            continue;
        }
        let known = METHODS
            .iter()
            .filter(|m| m.len() <= token && line[..sp].ends_with(m))
            .map(|m| m.len())
            .max();
        let start = sp - known.unwrap_or(token);
        if start > 0 && request_line(&line[start..]) == Verdict::Yes {
            return Some(start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(request_line(b"GET / HTTP/1.1\r\n"), Verdict::Yes);
        assert_eq!(request_line(b"BREW /pot HTTP/1.0"), Verdict::Yes);
        assert_eq!(request_line(b"GET /a"), Verdict::Maybe);
        assert_eq!(request_line(b"GET / HTT"), Verdict::Maybe);
        assert_eq!(request_line(b""), Verdict::Maybe);
        assert_eq!(request_line(b"GET / HTTP/2.0"), Verdict::No);
        assert_eq!(request_line(b"GET  / HTTP/1.1"), Verdict::No);
        assert_eq!(request_line(b"Host: x\r\n"), Verdict::No);
        assert_eq!(request_line(b"\x16\x03\x01"), Verdict::No);
        assert_eq!(request_line(&[b'A'; 40]), Verdict::No);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\n"), Verdict::Yes);
        assert_eq!(status_line(b"HTTP/1.0 404"), Verdict::Yes);
        assert_eq!(status_line(b"HTTP/1.1 20"), Verdict::Maybe);
        assert_eq!(status_line(b"HTT"), Verdict::Maybe);
        assert_eq!(status_line(b"HTTP/1.1 2000"), Verdict::No);
        assert_eq!(status_line(b"HTTP/2 200"), Verdict::No);
        assert_eq!(status_line(b"hello"), Verdict::No);
    }

    #[test]
    fn recognises_by_content() {
        assert_eq!(recognise(b"GET / HTTP/1.1\r\n"), Some(Dir::ToServer));
        assert_eq!(
            recognise(b"GET /very/long/path/not/yet/ended"),
            Some(Dir::ToServer)
        );
        assert_eq!(recognise(b"M-SEARCH * HTTP/1.1\r\n"), Some(Dir::ToServer));
        assert_eq!(recognise(b"HTTP/1.1 200 OK\r\n"), Some(Dir::ToClient));
        assert_eq!(recognise(b"HTTP/1.1 2"), None);
        assert_eq!(recognise(b"GE"), None);
        assert_eq!(recognise(b"FOO /x"), None);
        assert_eq!(recognise(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        assert_eq!(recognise(b"\0\0\0\x1c\x01\0"), None);
        assert_eq!(recognise(b""), None);
    }

    #[test]
    fn finds_the_next_start_line() {
        let b = b"tail of a body\nGET / HTTP/1.1\r\n";
        assert_eq!(find_start(Dir::ToServer, b, false), Some(15));
        assert_eq!(find_start(Dir::ToServer, b"GET / HTTP/1.1", true), Some(0));
        assert_eq!(find_start(Dir::ToServer, b"GET / HTTP/1.1", false), None);
        assert_eq!(
            find_start(Dir::ToClient, b"xx\r\nHTTP/1.1 200 OK", false),
            Some(4)
        );
        assert_eq!(find_start(Dir::ToClient, b"xx\r\nyy\n", false), None);
        assert_eq!(find_start(Dir::ToClient, b"xx\nHTT", false), Some(3));
        assert_eq!(
            find_start(Dir::ToClient, b"helloHTTP/1.1 200", false),
            Some(5)
        );
        assert_eq!(
            find_start(Dir::ToServer, b"bodyGET /x HTTP/1.1\r\n", false),
            Some(4)
        );
        assert_eq!(
            find_start(Dir::ToServer, b"a\nbody BREW /x HTTP/1.1\r\n", false),
            Some(7)
        );
        assert_eq!(
            find_start(Dir::ToServer, b"body GET /x HTTP/1", false),
            None
        );
        assert_eq!(find_start(Dir::ToServer, b"GET /x HTTP/1.1", false), None);
    }
}
