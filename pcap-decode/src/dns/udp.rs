//! DNS over UDP: one datagram, one message.

use super::pairing::Pairing;
use crate::stream::{CloseReason, DatagramParser, Dir, Exchange, Meta, ParserLimits};

/// DNS over one UDP 5-tuple: queries paired with answers by id.
pub struct DnsUdp {
    pairing: Pairing,
}

impl DnsUdp {
    /// A parser for a new 5-tuple; `limits.response_timeout_ns` is the DNS timeout and
    /// `limits.max_pending` bounds the queries in flight.
    pub fn new(limits: ParserLimits) -> Self {
        DnsUdp {
            pairing: Pairing::new(limits, "udp"),
        }
    }
}

impl DatagramParser for DnsUdp {
    /// The QR bit, not `dir`, says whether a message is a query or an answer.
    fn datagram(&mut self, _dir: Dir, bytes: &[u8], meta: Meta, out: &mut Vec<Exchange>) {
        self.pairing.message(bytes, meta, meta, out);
    }

    fn close(&mut self, reason: CloseReason, _meta: Meta, out: &mut Vec<Exchange>) {
        self.pairing.close(unanswered_note(reason), out);
    }

    fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        self.pairing.expire(now_ns, out);
    }

    fn buffered(&self) -> usize {
        self.pairing.buffered()
    }

    fn settled(&self) -> bool {
        self.pairing.nothing_pending()
    }
}

/// Why a query pending when its flow closes had no answer.
pub(crate) fn unanswered_note(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::EndOfInput => "no answer before the capture ended",
        CloseReason::Ended => "no answer before the connection closed",
        CloseReason::Idle => "no answer before the flow went idle",
        CloseReason::Evicted => {
            "no answer before the flow was dropped to stay within the memory bound"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testing::{answer, at, captured, dns, limits, query};

    fn run(parser: &mut DnsUdp, msgs: &[(Dir, Vec<u8>, Meta)]) -> Vec<Exchange> {
        let mut out = Vec::new();
        for (dir, bytes, meta) in msgs {
            parser.tick(meta.ts_ns, &mut out);
            parser.datagram(*dir, bytes, *meta, &mut out);
        }
        out
    }

    #[test]
    fn every_real_query_is_paired_with_its_answer() {
        let mut out = Vec::new();
        let mut parsers: std::collections::HashMap<u32, DnsUdp> = Default::default();
        for (i, c) in captured()
            .into_iter()
            .filter(|c| c.transport == "udp")
            .enumerate()
        {
            let p = parsers
                .entry(c.flow)
                .or_insert_with(|| DnsUdp::new(limits()));
            p.datagram(
                c.dir,
                &c.bytes,
                at(i as f64 * 0.001, i as u64 + 1),
                &mut out,
            );
        }
        assert_eq!(out.len(), 11);
        for e in &out {
            assert!(e.complete && e.notes.is_empty(), "{e:?}");
            assert_eq!((e.start.seq + 1, e.end.seq), (e.end.seq, e.end.seq));
            let d = dns(e);
            assert_eq!((d.transport.as_str(), d.class.as_str()), ("udp", "IN"));
            // dnsmasq is authoritative for the names it has, not for the missing one.
            let flags: &[&str] = match d.rcode.as_str() {
                "NXDOMAIN" => &["qr", "rd", "ra"],
                _ => &["qr", "aa", "rd", "ra"],
            };
            assert_eq!(d.flags, flags);
        }
        let missing = out
            .iter()
            .map(dns)
            .find(|d| d.name == "missing.your.test")
            .unwrap();
        assert_eq!(
            (missing.rcode.as_str(), missing.qtype.as_str()),
            ("NXDOMAIN", "A")
        );
        let odd = out
            .iter()
            .map(dns)
            .find(|d| d.name == "odd.your.test")
            .unwrap();
        assert_eq!(
            (odd.qtype.as_str(), odd.answers[0].data.as_str()),
            ("TYPE65280", r"\# 3 0A0B0C")
        );
        for p in parsers.values() {
            assert!(p.buffered() < 1024, "{}", p.buffered());
        }
    }

    #[test]
    fn several_ids_in_flight_are_paired_out_of_order() {
        let mut p = DnsUdp::new(limits());
        let out = run(
            &mut p,
            &[
                (Dir::ToServer, query(1, "a.test", 1), at(0.0, 1)),
                (Dir::ToServer, query(2, "b.test", 28), at(0.1, 2)),
                (Dir::ToServer, query(3, "c.test", 1), at(0.2, 3)),
                (
                    Dir::ToClient,
                    answer(3, "c.test", 1, 0, &[[10, 0, 0, 3]]),
                    at(0.3, 4),
                ),
                (Dir::ToClient, answer(1, "a.test", 1, 3, &[]), at(0.4, 5)),
            ],
        );
        assert!(p.buffered() > 0);
        let got: Vec<_> = out
            .iter()
            .map(|e| (dns(e).id, dns(e).name.as_str(), e.start.seq, e.end.seq))
            .collect();
        assert_eq!(got, [(3, "c.test", 3, 4), (1, "a.test", 1, 5)]);
        assert_eq!(dns(&out[0]).answers[0].data, "10.0.0.3");
        assert_eq!(dns(&out[1]).rcode, "NXDOMAIN");
        let mut out = Vec::new();
        p.close(CloseReason::EndOfInput, at(9.0, 6), &mut out);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(
            (dns(e).id, dns(e).rcode.as_str(), e.complete),
            (2, "", false)
        );
        assert_eq!(e.notes, ["no answer before the capture ended"]);
        assert_eq!(dns(e).flags, ["rd"]);
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn a_retransmission_is_one_roundtrip_noted_once() {
        let mut p = DnsUdp::new(limits());
        let out = run(
            &mut p,
            &[
                (Dir::ToServer, query(7, "a.test", 1), at(0.0, 1)),
                (Dir::ToServer, query(7, "a.test", 1), at(1.0, 2)),
                (Dir::ToServer, query(7, "A.TEST", 1), at(2.0, 3)),
                (
                    Dir::ToClient,
                    answer(7, "a.test", 1, 0, &[[1, 2, 3, 4]]),
                    at(2.1, 4),
                ),
                // The answer to the first sending, late: not a roundtrip of its own.
                (
                    Dir::ToClient,
                    answer(7, "a.test", 1, 0, &[[1, 2, 3, 4]]),
                    at(2.2, 5),
                ),
            ],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].notes, ["query retransmitted"]);
        assert_eq!(
            (out[0].start.seq, out[0].end.seq, out[0].complete),
            (1, 4, true)
        );
    }

    #[test]
    fn a_query_without_answer_times_out_after_the_dns_timeout() {
        let mut p = DnsUdp::new(limits());
        let mut out = run(
            &mut p,
            &[(Dir::ToServer, query(5, "slow.test", 1), at(0.0, 1))],
        );
        p.tick(at(5.0, 0).ts_ns, &mut out);
        assert!(out.is_empty(), "exactly 5 s is not yet late");
        p.tick(at(5.001, 0).ts_ns, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].notes, ["no answer within 5 s"]);
        assert_eq!(
            (out[0].start, out[0].end, out[0].complete),
            (at(0.0, 1), at(0.0, 1), false)
        );
        // Its answer, too late, is an answer without a query.
        let out = run(
            &mut p,
            &[(Dir::ToClient, answer(5, "slow.test", 1, 0, &[]), at(6.0, 2))],
        );
        assert_eq!(out[0].notes, ["query not seen"]);
        let mut p = DnsUdp::new(ParserLimits {
            response_timeout_ns: 1_500_000_000,
            ..limits()
        });
        let mut out = run(
            &mut p,
            &[(Dir::ToServer, query(5, "slow.test", 1), at(0.0, 1))],
        );
        p.tick(at(2.0, 0).ts_ns, &mut out);
        assert_eq!(out[0].notes, ["no answer within 1500 ms"]);
    }

    #[test]
    fn an_answer_without_its_query_is_reported_with_the_answers_question() {
        let mut p = DnsUdp::new(limits());
        let out = run(
            &mut p,
            &[(Dir::ToClient, answer(9, "late.test", 1, 2, &[]), at(0.0, 1))],
        );
        let e = &out[0];
        assert_eq!(
            (e.complete, e.notes.as_slice()),
            (false, &["query not seen".to_owned()][..])
        );
        let d = dns(e);
        assert_eq!(
            (d.name.as_str(), d.qtype.as_str(), d.rcode.as_str()),
            ("late.test", "A", "SERVFAIL")
        );
        assert_eq!(d.flags, ["qr", "rd", "ra"]);
    }

    #[test]
    fn malformed_messages_are_reported_a_bounded_number_of_times() {
        let mut p = DnsUdp::new(limits());
        let mut msgs = vec![(Dir::ToServer, b"\x00\x01garbage".to_vec(), at(0.0, 1))];
        msgs.extend((0..50).map(|i| (Dir::ToServer, vec![0xff; i], at(0.0, 2))));
        let out = run(&mut p, &msgs);
        assert_eq!(out.len(), 1);
        assert!(!out[0].complete);
        assert_eq!(
            out[0].notes,
            ["malformed DNS message: 9 bytes, fewer than the 12 of a header"]
        );
        // A good message starts a new run: the next bad one is reported, with the count.
        let mut bad = query(4, "a.test", 1);
        bad.truncate(15);
        let out = run(
            &mut p,
            &[
                (Dir::ToServer, query(3, "ok.test", 1), at(1.0, 3)),
                (Dir::ToServer, bad, at(1.0, 4)),
            ],
        );
        assert_eq!(out.len(), 1);
        assert!(
            out[0].notes[0].starts_with("malformed DNS message: question:"),
            "{:?}",
            out[0].notes
        );
        assert_eq!(
            out[0].notes[1],
            "50 more malformed DNS messages on this flow were not reported"
        );
        assert_eq!(dns(&out[0]).id, 4);
        // Never more than the budget, however they alternate.
        let mut total = 0;
        for i in 0..100 {
            total += run(
                &mut p,
                &[
                    (Dir::ToServer, query(100 + i, "ok.test", 1), at(1.0, 5)),
                    (Dir::ToServer, vec![0; 3], at(1.0, 6)),
                ],
            )
            .len();
        }
        assert!(total < 100 + 16, "{total}");
    }

    #[test]
    fn the_pending_bound_reports_the_oldest_query() {
        let mut p = DnsUdp::new(ParserLimits {
            max_pending: 2,
            ..limits()
        });
        let out = run(
            &mut p,
            &[
                (Dir::ToServer, query(1, "a.test", 1), at(0.0, 1)),
                (Dir::ToServer, query(2, "b.test", 1), at(0.0, 2)),
                (Dir::ToServer, query(3, "c.test", 1), at(0.0, 3)),
                (Dir::ToServer, query(3, "other.test", 1), at(0.0, 4)),
            ],
        );
        let got: Vec<_> = out
            .iter()
            .map(|e| (dns(e).id, e.notes.last().unwrap().as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    "more than 2 queries in flight: reported without its answer"
                ),
                (3, "its id was used by another query before an answer"),
            ]
        );
    }
}
