//! Message framing: chunked bodies, bodies to the close, bodies a response does not
//! have, and heads that are capped, too large or malformed.

use super::*;

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let req: &[u8] = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
        3;ext=1\r\nabc\r\n0\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=\"v\"\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Checksum: abc\r\n\r\n";
    let out = check(&[C(req), S(resp), C(GET_B), S(NOT_FOUND)]);
    assert_eq!(out.len(), 2);
    let h = http(&out[0]);
    assert_eq!((h.request_body_bytes, h.response_body_bytes), (3, 15));
    let last = h.response_headers.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.value.as_str()),
        ("X-Checksum", "abc")
    );
    assert!(out[0].complete);
    assert_eq!(http(&out[1]).status, Some(404));
}

#[test]
fn a_body_delimited_by_the_close() {
    let resp: &[u8] = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of this is body";
    let req: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
    let out = check(&[
        C(req),
        S(resp),
        End(Dir::ToClient),
        Close(CloseReason::Ended),
    ]);
    assert_eq!(out.len(), 1);
    assert_eq!(http(&out[0]).response_body_bytes, 19);
    assert_eq!(http(&out[0]).version, "HTTP/1.0");
    assert!(out[0].complete && out[0].notes.is_empty(), "{:?}", out[0]);
    // Without the close, the body's end is not known.
    let out = check(&[C(req), S(resp), Close(CloseReason::EndOfInput)]);
    assert!(!out[0].complete);
    assert_eq!(
        out[0].notes,
        ["capture ended before the end of the response"]
    );
}

#[test]
fn connection_close_ends_the_exchange_at_its_length() {
    let req: &[u8] = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    let out = check(&[C(req), S(resp)]);
    assert_eq!(out.len(), 1);
    assert!(out[0].complete);
}

#[test]
fn head_204_and_304_have_no_body() {
    let head: &[u8] = b"HEAD /big HTTP/1.1\r\n\r\n";
    let resp_head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let get304: &[u8] = b"GET /c HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n";
    let resp304: &[u8] = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n";
    let del: &[u8] = b"DELETE /d HTTP/1.1\r\n\r\n";
    let resp204: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let out = check(&[
        C(head),
        S(resp_head),
        C(get304),
        S(resp304),
        C(del),
        S(resp204),
        C(GET_A),
        S(OK_5),
    ]);
    let got: Vec<_> = out
        .iter()
        .map(|e| (http(e).status, http(e).response_body_bytes))
        .collect();
    assert_eq!(
        got,
        [
            (Some(200), 0),
            (Some(304), 0),
            (Some(204), 0),
            (Some(200), 5)
        ]
    );
    assert!(out.iter().all(|e| e.complete));
}

#[test]
fn header_values_are_capped() {
    let req: &'static [u8] = Box::leak(
        format!(
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: {}\r\n\r\n",
            "c".repeat(300)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let out = check(&[C(req), S(NOT_FOUND)]);
    let v = &http(&out[0]).request_headers[1].value;
    assert_eq!(v, &format!("{}…", "c".repeat(40)));
}

#[test]
fn a_head_larger_than_the_buffer_is_noted_and_skipped() {
    let huge: &'static [u8] = Box::leak(
        format!("GET /huge HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(3000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let out = check(&[C(huge), C(GET_B), S(OK_5), S(NOT_FOUND)]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        (http(&out[0]).target.as_str(), http(&out[0]).status),
        ("/huge", Some(200))
    );
    assert_eq!(
        out[0].notes,
        ["request head larger than 1024 bytes: its headers were not decoded"]
    );
    assert!(!out[0].complete);
    assert_eq!(http(&out[1]).target.as_str(), "/b");
}

#[test]
fn garbage_reports_nothing_and_buffers_within_bounds() {
    let mut noise = Vec::new();
    let mut x = 0x1234_5678u32;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push((x >> 24) as u8);
    }
    let noise: &'static [u8] = Box::leak(noise.into_boxed_slice());
    for chunk in [0, 1, 7, 1500] {
        let mut c = Conn::new(limits());
        for ev in [
            C(noise),
            S(noise),
            C(b"GET"),
            S(b"HTTP/1.1 2"),
            Close(CloseReason::EndOfInput),
        ] {
            c.run(&ev, chunk);
        }
        assert!(c.out.is_empty(), "{:?}", c.out);
        assert_eq!(c.p.buffered(), 0);
    }
}

#[test]
fn a_malformed_request_is_skipped_and_noted() {
    let out = check(&[
        C(GET_A),
        S(OK_5),
        C(b"GET / HTTP/1.1\r\nBad\0Header\r\n\r\n"),
        C(GET_B),
        S(NOT_FOUND),
    ]);
    let last = out.last().unwrap();
    assert_eq!(http(last).target, "/b");
    assert!(
        last.notes.iter().any(|n| n.contains("malformed request")),
        "{out:?}"
    );
}

#[test]
fn malformed_chunk_framing_cuts_the_response() {
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nHTTP/1.1 404 Not Found\r\n\r\n";
    let out = check(&[C(GET_A), C(GET_B), S(resp), End(Dir::ToClient)]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].notes, ["malformed chunked body in the response"]);
    assert_eq!(
        (http(&out[1]).target.as_str(), http(&out[1]).status),
        ("/b", Some(404))
    );
}

#[test]
fn a_response_head_larger_than_the_buffer() {
    let huge: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "b".repeat(3000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let out = check(&[C(GET_A), C(GET_B), S(huge), S(NOT_FOUND)]);
    assert_eq!(out.len(), 2);
    assert_eq!(http(&out[0]).status, Some(200));
    assert!(
        out[0].notes[0].starts_with("response head larger than 1024 bytes"),
        "{out:?}"
    );
    assert_eq!(
        (http(&out[1]).target.as_str(), http(&out[1]).status),
        ("/b", Some(404))
    );
}
