//! Requests paired with responses: keep-alive, pipelining, interim responses, upgrades,
//! requests left without a response.

use super::*;

#[test]
fn keep_alive_pairs_in_order() {
    let out = check(&[
        C(GET_A),
        S(OK_5),
        C(GET_B),
        S(NOT_FOUND),
        Close(CloseReason::Ended),
    ]);
    assert_eq!(out.len(), 2);
    let (a, b) = (http(&out[0]), http(&out[1]));
    assert_eq!(
        (a.method.as_str(), a.target.as_str(), a.host.as_str()),
        ("GET", "/a", "a.test")
    );
    assert_eq!(
        (a.status, a.reason.as_str(), a.response_body_bytes),
        (Some(200), "OK", 5)
    );
    assert_eq!((b.target.as_str(), b.status), ("/b", Some(404)));
    assert_eq!(a.version, "HTTP/1.1");
    assert!(
        out.iter().all(|e| e.complete && e.notes.is_empty()),
        "{out:?}"
    );
    assert_eq!((out[0].start.seq, out[0].end.seq), (1, 2));
    assert_eq!((out[1].start.seq, out[1].end.seq), (3, 4));
}

#[test]
fn pipelined_requests_pair_with_responses_in_order() {
    let reqs: &[u8] = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    let resps: &[u8] = b"HTTP/1.1 200 one\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 201 two\r\n\
        Content-Length: 2\r\n\r\nxxHTTP/1.1 202 three\r\nContent-Length: 0\r\n\r\n";
    let out = check(&[C(reqs), S(resps)]);
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            (
                http(e).target.as_str(),
                http(e).reason.as_str(),
                http(e).response_body_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("/1", "one", 1), ("/2", "two", 2), ("/3", "three", 0)]
    );
}

#[test]
fn too_many_pipelined_requests_report_the_oldest_without_response() {
    let l = ParserLimits {
        max_pending: 2,
        ..limits()
    };
    let reqs: &[u8] = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    let resps: &[u8] = b"HTTP/1.1 200 one\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 two\r\n\
        Content-Length: 0\r\n\r\nHTTP/1.1 200 three\r\nContent-Length: 0\r\n\r\n";
    let out = check_with(l, &[C(reqs), S(resps)]);
    assert_eq!(out.len(), 3);
    assert_eq!(
        (http(&out[0]).target.as_str(), http(&out[0]).status),
        ("/1", None)
    );
    assert!(
        out[0].notes[0].starts_with("more than 2 requests"),
        "{:?}",
        out[0].notes
    );
    assert_eq!(
        (http(&out[1]).target.as_str(), http(&out[1]).reason.as_str()),
        ("/2", "two")
    );
    assert_eq!(
        (http(&out[2]).target.as_str(), http(&out[2]).reason.as_str()),
        ("/3", "three")
    );
}

#[test]
fn expect_100_continue_with_a_body() {
    let head: &[u8] = b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    let out = check(&[
        C(head),
        S(b"HTTP/1.1 100 Continue\r\n\r\n"),
        C(b"data"),
        S(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        C(GET_B),
        S(NOT_FOUND),
    ]);
    assert_eq!(out.len(), 2);
    let h = http(&out[0]);
    assert_eq!((h.status, h.request_body_bytes), (Some(201), 4));
    assert!(out[0].complete && out[0].notes.is_empty(), "{:?}", out[0]);
    assert_eq!(out[0].end.seq, 4);
}

#[test]
fn a_final_response_to_expect_100_before_the_body_lets_the_next_request_through() {
    let head: &[u8] = b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 400\r\n\r\n";
    let deny: &[u8] = b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n";
    let out = check(&[C(head), S(deny), C(GET_B), S(NOT_FOUND)]);
    let got: Vec<_> = out
        .iter()
        .map(|e| (http(e).target.as_str(), http(e).status))
        .collect();
    assert_eq!(got, [("/f", Some(417)), ("/b", Some(404))]);
}

#[test]
fn interim_responses_do_not_end_the_exchange() {
    let early: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
        HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let out = check(&[C(GET_A), S(early)]);
    assert_eq!(out.len(), 1);
    assert_eq!(http(&out[0]).status, Some(200));
    assert_eq!(http(&out[0]).response_headers[0].name, "Content-Length");
}

#[test]
fn switching_protocols_ends_http1_parsing() {
    let up: &[u8] = b"GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let sw: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    let mut c = Conn::new(limits());
    for ev in [
        C(up),
        S(sw),
        C(b"\x81\x85abcdGET / HTTP/1.1\r\n\r\n"),
        Close(CloseReason::Ended),
    ] {
        c.run(&ev, 0);
    }
    assert!(c.p.switched_protocols());
    assert_eq!(c.out.len(), 1);
    assert_eq!(http(&c.out[0]).status, Some(101));
    assert!(c.out[0].complete);
    assert_eq!(
        c.out[0].notes,
        ["switched protocols to websocket: the rest of the connection was not decoded"]
    );
    check(&[C(up), S(sw)]);
}

#[test]
fn unanswered_requests_are_reported() {
    // By the timeout; a late response is then read and dropped.
    let mut c = Conn::new(limits());
    for ev in [
        C(GET_A),
        Tick(30 * SEC),
        Tick(61 * SEC),
        S(OK_5),
        C(GET_B),
        S(NOT_FOUND),
    ] {
        c.run(&ev, 0);
    }
    assert_eq!(c.out.len(), 2);
    assert_eq!(
        (http(&c.out[0]).target.as_str(), http(&c.out[0]).status),
        ("/a", None)
    );
    assert_eq!(c.out[0].notes, ["no response within 60 s"]);
    assert!(!c.out[0].complete);
    assert_eq!(c.out[0].end.seq, 1);
    assert_eq!(
        (http(&c.out[1]).target.as_str(), http(&c.out[1]).status),
        ("/b", Some(404))
    );

    let out = check(&[C(GET_A), Close(CloseReason::Ended)]);
    assert_eq!(out[0].notes, ["connection closed before the response"]);
    assert_eq!(http(&out[0]).status, None);
    let out = check(&[C(GET_A), C(GET_B), Close(CloseReason::EndOfInput)]);
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|e| e.notes == ["capture ended before the response"]));
    let out = check(&[C(GET_A), End(Dir::ToClient)]);
    assert_eq!(
        out[0].notes,
        ["the server closed its side of the connection before the response"]
    );
}

#[test]
fn an_early_final_response_before_the_end_of_the_request_body() {
    let post: &[u8] = b"POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789";
    let tl: &[u8] =
        b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let out = check(&[C(post), S(tl), End(Dir::ToClient)]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (http(&out[0]).status, http(&out[0]).request_body_bytes),
        (Some(413), 10)
    );
    assert_eq!(out[0].notes, ["the response ended before the request body"]);
}

#[test]
fn connect_tunnels_end_parsing() {
    let req: &[u8] = b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01\x02\x00";
    let out = check(&[
        C(req),
        S(resp),
        C(b"\x16\x03\x01"),
        Close(CloseReason::Ended),
    ]);
    assert_eq!(out.len(), 1);
    assert_eq!(http(&out[0]).status, Some(200));
    assert_eq!(
        out[0].notes,
        ["CONNECT opened a tunnel: the rest of the connection was not decoded"]
    );
}

#[test]
fn a_response_in_progress_does_not_time_out() {
    let resp_head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let mut c = Conn::new(limits());
    for ev in [C(GET_A), S(resp_head), Tick(500 * SEC), S(b"0123456789")] {
        c.run(&ev, 0);
    }
    assert_eq!(c.out.len(), 1);
    assert!(c.out[0].complete);
}

#[test]
fn a_long_script_split_everywhere() {
    let out = check(&[
        C(b"\r\nPOST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"),
        S(b"HTTP/1.1 100 Continue\r\n\r\n"),
        C(b"4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nDigest: z\r\n\r\nGET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\n"),
        S(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
        S(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
        C(b"GET /3 HTTP/1.0\r\n\r\n"),
        S(b"HTTP/1.0 200 OK\r\n\r\nto the end"),
        End(Dir::ToClient),
    ]);
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            let h = http(e);
            (
                h.target.as_str(),
                h.status,
                h.request_body_bytes,
                h.response_body_bytes,
                e.complete,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/up", Some(200), 9, 3, true),
            ("/1", Some(200), 0, 1, true),
            ("/2", Some(200), 0, 0, true),
            ("/3", Some(200), 0, 10, true),
        ]
    );
    assert_eq!(http(&out[0]).request_headers.last().unwrap().name, "Digest");
}
