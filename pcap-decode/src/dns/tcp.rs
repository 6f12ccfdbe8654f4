//! DNS over TCP (RFC 7766): length-prefixed messages in each direction, several queries in
//! flight on one connection, paired by id.

use super::framing::{Event, Framer, Partial};
use super::message::Message;
use super::pairing::Pairing;
use super::udp::unanswered_note;
use super::wire::Header;
use crate::stream::{CloseReason, Dir, Exchange, Meta, ParserLimits, StreamParser};

/// DNS over one TCP connection (RFC 7766: 2-byte length prefix, several queries in flight).
pub struct DnsTcp {
    limits: ParserLimits,
    pairing: Pairing,
    /// Framing of the client's bytes, then the server's.
    framers: [Framer; 2],
}

impl DnsTcp {
    /// A parser for a new connection; each direction buffers at most `limits.max_buffer`
    /// bytes (a message longer than that is skipped, and reported).
    pub fn new(limits: ParserLimits) -> Self {
        DnsTcp {
            limits,
            pairing: Pairing::new(limits, "tcp"),
            framers: [Framer::new(), Framer::new()],
        }
    }

    /// A message cut before its end: the query it answers is reported with `note`.
    fn cut(&mut self, partial: Option<Partial>, note: &str, meta: Meta, out: &mut Vec<Exchange>) {
        if let Some(p) = partial.filter(|p| p.response == Some(true)) {
            self.pairing.answer_lost(p.id, None, note, meta, out);
        }
    }
}

fn index(dir: Dir) -> usize {
    match dir {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

fn side(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "client",
        Dir::ToClient => "server",
    }
}

impl StreamParser for DnsTcp {
    fn data(&mut self, dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        let limit = self.limits.max_buffer;
        let pairing = &mut self.pairing;
        self.framers[index(dir)].feed(bytes, limit, meta, &mut |event| match event {
            Event::Message(msg, first) => pairing.message(msg, first, meta, out),
            Event::Oversize { declared, header } => {
                let Some(h) = Header::read(header) else { return };
                let note = format!(
                    "a DNS message of {declared} bytes, over the buffer limit of {limit} bytes: skipped"
                );
                if h.response() && pairing.answer_lost(h.id, Some(h), &note, meta, out) {
                    return;
                }
                pairing.malformed(Some(&Message::header_only(h)), note, meta, out);
            }
            Event::BadLength(len) => {
                let note = format!(
                    "malformed DNS message: a length prefix of {len} bytes, too short for a \
                     header; looking for the next message"
                );
                pairing.malformed(None, note, meta, out);
            }
        });
    }

    fn hole(&mut self, dir: Dir, len: Option<u64>, meta: Meta, out: &mut Vec<Exchange>) {
        let partial = self.framers[index(dir)].hole(len);
        let what = match len {
            Some(n) => format!("{n} bytes of the {}'s side were never seen", side(dir)),
            None => format!("bytes of the {}'s side were skipped", side(dir)),
        };
        self.cut(partial, &format!("{what}: the answer was cut"), meta, out);
        // Queries already seen are whole; their answers may have been in the hole.
        if dir == Dir::ToClient {
            self.pairing
                .mark_pending(&format!("{what}: the answer may be lost"));
        }
    }

    fn end(&mut self, dir: Dir, reset: bool, meta: Meta, out: &mut Vec<Exchange>) {
        let partial = self.framers[index(dir)].end();
        let how = if reset { "reset" } else { "closed" };
        let note = format!(
            "the {} {how} the connection in the middle of the answer",
            side(dir)
        );
        self.cut(partial, &note, meta, out);
        if dir == Dir::ToClient {
            let note = format!("no answer before the server {how} the connection");
            self.pairing.close(&note, out);
        }
    }

    fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        let partial = self.framers[index(Dir::ToClient)].end();
        self.framers[index(Dir::ToServer)].end();
        self.cut(
            partial,
            "the connection ended in the middle of the answer",
            meta,
            out,
        );
        self.pairing.close(unanswered_note(reason), out);
    }

    fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        self.pairing.expire(now_ns, out);
    }

    fn buffered(&self) -> usize {
        self.pairing.buffered() + self.framers.iter().map(Framer::buffered).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testing::{answer, at, dns, flow, framed, limits, query};

    /// Feeds `(dir, bytes)` in order, one packet each, and returns what came out.
    fn run(p: &mut DnsTcp, segments: &[(Dir, &[u8])]) -> Vec<Exchange> {
        let mut out = Vec::new();
        for (i, (dir, bytes)) in segments.iter().enumerate() {
            p.data(*dir, bytes, at(i as f64 * 0.001, i as u64 + 1), &mut out);
        }
        out
    }

    #[test]
    fn real_connections_split_at_every_byte() {
        for n in [12, 13, 14] {
            let c = flow(n);
            let (q, r) = (&c[0].bytes, &c[1].bytes);
            for cut in 0..=q.len().max(r.len()) {
                let (qc, rc) = (cut.min(q.len()), cut.min(r.len()));
                let mut p = DnsTcp::new(limits());
                let out = run(
                    &mut p,
                    &[
                        (Dir::ToServer, &q[..qc]),
                        (Dir::ToServer, &q[qc..]),
                        (Dir::ToClient, &r[..rc]),
                        (Dir::ToClient, &r[rc..]),
                    ],
                );
                assert_eq!(out.len(), 1, "flow {n} cut at {cut}: {out:?}");
                let (e, d) = (&out[0], dns(&out[0]));
                assert!(e.complete && e.notes.is_empty());
                assert_eq!(d.transport, "tcp");
                assert_eq!(e.start.seq, if qc == 0 { 2 } else { 1 });
                assert_eq!(e.end.seq, if rc == r.len() { 3 } else { 4 });
                match n {
                    12 => assert_eq!(d.answers[0].data, "192.0.2.10"),
                    13 => assert_eq!((d.rcode.as_str(), d.qtype.as_str()), ("NXDOMAIN", "AAAA")),
                    _ => assert_eq!(d.answers[0].data, "10 mail.your.test"),
                }
            }
        }
    }

    #[test]
    fn pipelined_queries_answered_in_any_order_in_one_segment() {
        let mut qs = framed(&query(1, "a.test", 1));
        qs.extend(framed(&query(2, "b.test", 1)));
        let mut rs = framed(&answer(2, "b.test", 1, 0, &[[10, 0, 0, 2]]));
        rs.extend(framed(&answer(1, "a.test", 1, 0, &[[10, 0, 0, 1]])));
        let mut p = DnsTcp::new(limits());
        let out = run(&mut p, &[(Dir::ToServer, &qs), (Dir::ToClient, &rs)]);
        let ids: Vec<_> = out.iter().map(|e| (dns(e).id, e.complete)).collect();
        assert_eq!(ids, [(2, true), (1, true)]);
        assert!(p.buffered() < 2048);
    }

    #[test]
    fn a_hole_in_an_answer_reports_its_query_cut_and_the_rest_goes_on() {
        let mut qs = framed(&query(1, "a.test", 1));
        qs.extend(framed(&query(2, "b.test", 1)));
        let r1 = framed(&answer(1, "a.test", 1, 0, &[[10, 0, 0, 1]]));
        let r2 = framed(&answer(2, "b.test", 1, 0, &[[10, 0, 0, 2]]));
        let mut p = DnsTcp::new(limits());
        let mut out = run(&mut p, &[(Dir::ToServer, &qs), (Dir::ToClient, &r1[..10])]);
        p.hole(Dir::ToClient, Some(5), at(1.0, 9), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(dns(&out[0]).id, 1);
        assert!(!out[0].complete);
        assert_eq!(
            out[0].notes,
            ["5 bytes of the server's side were never seen: the answer was cut"]
        );
        p.data(Dir::ToClient, &r1[15..], at(1.1, 10), &mut out);
        p.data(Dir::ToClient, &r2, at(1.2, 11), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(dns(&out[1]).id, 2);
        assert_eq!(
            out[1].notes,
            ["5 bytes of the server's side were never seen: the answer may be lost"]
        );
        assert!(!out[1].complete);
    }

    #[test]
    fn a_hole_of_unknown_length_resynchronises_on_the_next_answer() {
        let mut qs = framed(&query(1, "a.test", 1));
        qs.extend(framed(&query(2, "b.test", 1)));
        let mut p = DnsTcp::new(limits());
        let mut out = run(&mut p, &[(Dir::ToServer, &qs)]);
        p.hole(Dir::ToClient, None, at(1.0, 2), &mut out);
        let mut rs = b"tail of something lost".to_vec();
        rs.extend(framed(&answer(2, "b.test", 1, 0, &[[10, 0, 0, 2]])));
        p.data(Dir::ToClient, &rs, at(1.1, 3), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(dns(&out[0]).answers[0].data, "10.0.0.2");
        assert!(!out[0].complete);
        p.close(CloseReason::EndOfInput, at(2.0, 4), &mut out);
        assert_eq!(
            out[1].notes,
            [
                "bytes of the server's side were skipped: the answer may be lost",
                "no answer before the capture ended",
            ]
        );
    }

    #[test]
    fn an_answer_over_the_buffer_limit_is_reported_not_buffered() {
        let mut big = answer(1, "a.test", 1, 0, &[[10, 0, 0, 1]; 100]);
        big[3] = 0x85; // REFUSED, to see that the header was read
        let rs = framed(&big);
        let mut p = DnsTcp::new(ParserLimits {
            max_buffer: 512,
            ..limits()
        });
        let out = run(
            &mut p,
            &[
                (Dir::ToServer, &framed(&query(1, "a.test", 1))),
                (Dir::ToClient, &rs),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].notes,
            [format!(
                "a DNS message of {} bytes, over the buffer limit of 512 bytes: skipped",
                big.len()
            )]
        );
        assert_eq!(dns(&out[0]).rcode, "REFUSED");
        assert!(p.buffered() <= 2 * 512 + 1024);
    }

    #[test]
    fn the_server_closing_ends_the_wait_and_a_cut_answer_is_said() {
        let r = framed(&answer(1, "a.test", 1, 0, &[[10, 0, 0, 1]]));
        let mut p = DnsTcp::new(limits());
        let mut out = run(
            &mut p,
            &[
                (Dir::ToServer, &framed(&query(1, "a.test", 1))),
                (Dir::ToServer, &framed(&query(2, "b.test", 1))),
                (Dir::ToClient, &r[..20]),
            ],
        );
        p.end(Dir::ToServer, false, at(1.0, 4), &mut out);
        assert!(out.is_empty(), "the client's FIN does not end the wait");
        p.end(Dir::ToClient, true, at(1.1, 5), &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|e| (dns(e).id, e.notes.last().unwrap().as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    "the server reset the connection in the middle of the answer"
                ),
                (2, "no answer before the server reset the connection"),
            ]
        );
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn tick_times_out_queries_on_a_connection() {
        let mut p = DnsTcp::new(limits());
        let mut out = run(&mut p, &[(Dir::ToServer, &framed(&query(1, "a.test", 1)))]);
        p.tick(at(6.0, 0).ts_ns, &mut out);
        assert_eq!(out[0].notes, ["no answer within 5 s"]);
    }
}
