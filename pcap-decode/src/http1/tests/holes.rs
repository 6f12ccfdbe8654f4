//! Holes and connections seen from the middle: what is lost is reported, and parsing
//! picks up at the next message.

use super::*;

#[test]
fn a_hole_in_a_body_of_known_length_keeps_framing() {
    let resp_head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let out = check(&[
        C(GET_A),
        S(resp_head),
        S(&[b'x'; 88]),
        Hole(Dir::ToClient, Some(412)),
        S(&[b'y'; 500]),
        C(GET_B),
        S(NOT_FOUND),
    ]);
    assert_eq!(out.len(), 2);
    assert_eq!(http(&out[0]).response_body_bytes, 1000);
    assert!(!out[0].complete);
    assert_eq!(
        out[0].notes,
        ["412 bytes of the response body were not captured"]
    );
    assert!(out[1].complete, "{:?}", out[1]);
}

#[test]
fn a_hole_in_a_request_head_resynchronises() {
    let out = check(&[
        C(b"GET /lost HTTP/1.1\r\nHo"),
        Hole(Dir::ToServer, Some(30)),
        C(b"ader: tail\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
        S(OK_5),
        S(NOT_FOUND),
    ]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        (http(&out[0]).method.as_str(), http(&out[0]).status),
        ("", Some(200))
    );
    assert_eq!(out[0].notes, ["the request was not captured"]);
    assert_eq!(
        (http(&out[1]).target.as_str(), http(&out[1]).status),
        ("/b", Some(404))
    );
}

#[test]
fn a_hole_in_a_response_head_loses_that_response_only() {
    let out = check(&[
        C(GET_A),
        C(GET_B),
        S(b"HTTP/1.1 200 OK\r\nConte"),
        Hole(Dir::ToClient, Some(20)),
        S(b"\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        (http(&out[0]).target.as_str(), http(&out[0]).status),
        ("/a", None)
    );
    assert_eq!(
        out[0].notes,
        ["the response was not captured (20 bytes lost)"]
    );
    assert_eq!(
        (http(&out[1]).target.as_str(), http(&out[1]).status),
        ("/b", Some(404))
    );
    assert!(out[1].complete, "{:?}", out[1]);
}

#[test]
fn a_hole_of_unknown_size_in_a_chunked_body() {
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
    let out = check(&[
        C(GET_A),
        C(GET_B),
        S(resp),
        Hole(Dir::ToClient, None),
        S(b"lo\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(out.len(), 2);
    assert!(!out[0].complete);
    assert_eq!(
        out[0].notes,
        [
            "a hole in the response",
            "part of the response body was not captured"
        ]
    );
    assert_eq!(http(&out[1]).status, Some(404));
    assert!(!out[1].complete);
    assert_eq!(
        out[1].notes,
        ["part of the response stream was not captured before this response"]
    );
}

#[test]
fn a_connection_seen_from_the_middle() {
    let out = check(&[
        C(b"dy of an upload\r\nmore body\nGET /b HTTP/1.1\r\n\r\n"),
        S(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        S(NOT_FOUND),
    ]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(http(&out[0]).status, Some(201));
    assert_eq!(out[0].notes, ["the request was not captured"]);
    assert_eq!(
        (http(&out[1]).target.as_str(), http(&out[1]).status),
        ("/b", Some(404))
    );
    assert!(out[1].complete);

    // A response seen from the middle of its body: skipped.
    let tail: &[u8] = b"tail of a body\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let out = check(&[C(GET_B), S(tail)]);
    assert_eq!(out.len(), 1);
    assert_eq!(http(&out[0]).status, Some(404));
}

#[test]
fn a_hole_in_a_request_body_of_known_length() {
    let post: &[u8] = b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n012";
    let out = check(&[
        C(post),
        Hole(Dir::ToServer, Some(4)),
        C(b"789"),
        C(GET_B),
        S(OK_5),
        S(NOT_FOUND),
    ]);
    assert_eq!(out.len(), 2);
    assert_eq!(http(&out[0]).request_body_bytes, 10);
    assert_eq!(
        out[0].notes,
        ["4 bytes of the request body were not captured"]
    );
    assert!(out[1].complete);
}

#[test]
fn a_hole_past_the_end_of_a_body_loses_the_next_request() {
    let post: &[u8] = b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n012";
    let out = check(&[
        C(post),
        Hole(Dir::ToServer, Some(30)),
        C(GET_B),
        S(OK_5),
        S(OK_5),
        S(NOT_FOUND),
    ]);
    let got: Vec<_> = out
        .iter()
        .map(|e| (http(e).target.as_str(), http(e).status))
        .collect();
    assert_eq!(got, [("/p", Some(200)), ("", Some(200)), ("/b", Some(404))]);
    assert_eq!(
        out[0].notes,
        ["7 bytes of the request body were not captured"]
    );
    assert_eq!(out[1].notes, ["the request was not captured"]);
}

#[test]
fn a_gap_of_unknown_size_between_messages_marks_the_next() {
    let out = check(&[
        C(GET_A),
        S(OK_5),
        Hole(Dir::ToServer, None),
        C(GET_B),
        S(NOT_FOUND),
    ]);
    assert_eq!(out.len(), 2);
    assert!(out[0].complete);
    assert!(!out[1].complete);
    assert_eq!(
        out[1].notes,
        ["part of the request stream was not captured before this request"]
    );
}
