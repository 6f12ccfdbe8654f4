//! One DNS message parsed as far as it goes: the header, the first question, the answer
//! section in presentation form, and the extended response code from an OPT record. A
//! message that breaks off keeps what was read before the break, and says why.

use std::fmt::Write;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::names::type_name;
use super::rdata;
use super::wire::{skip_name, Header, HEADER_LEN};
use crate::roundtrip::DnsAnswer;

/// Most answers kept of one message; the rest are counted.
pub(crate) const MAX_ANSWERS: usize = 64;

/// The OPT pseudo-record type (RFC 6891).
const OPT: u16 = 41;

/// The question of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    /// Presentation form, without the trailing dot; "." for the root.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// A message as far as it parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub header: Header,
    pub question: Option<Question>,
    pub answers: Vec<DnsAnswer>,
    /// Answers beyond [`MAX_ANSWERS`], not kept.
    pub answers_left_out: usize,
    /// The response code with the OPT record's extended bits.
    pub rcode: u16,
    /// Why parsing stopped early: the message is malformed.
    pub error: Option<String>,
}

/// A resource record's fixed fields, and where its data lies.
struct Record {
    rtype: u16,
    ttl: u32,
    data_at: usize,
    data_len: usize,
}

/// Parses `msg`; fails only when it is shorter than a header.
pub(crate) fn parse(msg: &[u8]) -> Result<Message, String> {
    // Offsets are 14 bits and messages at most 65535 bytes (the TCP length prefix).
    let msg = &msg[..msg.len().min(usize::from(u16::MAX))];
    let header = Header::read(msg).ok_or_else(|| {
        format!(
            "{} bytes, fewer than the {HEADER_LEN} of a header",
            msg.len()
        )
    })?;
    let mut m = Message {
        header,
        question: None,
        answers: Vec::new(),
        answers_left_out: 0,
        rcode: header.rcode(),
        error: None,
    };
    if let Err(e) = m.read_sections(msg) {
        m.error = Some(e);
    }
    Ok(m)
}

impl Message {
    /// A message of which only the header was read (the rest was not kept).
    pub fn header_only(header: Header) -> Message {
        Message {
            header,
            question: None,
            answers: Vec::new(),
            answers_left_out: 0,
            rcode: header.rcode(),
            error: None,
        }
    }

    fn read_sections(&mut self, msg: &[u8]) -> Result<(), String> {
        let h = self.header;
        let mut pos = HEADER_LEN;
        for i in 0..h.qdcount {
            let (question, end) = question_at(msg, pos).map_err(|e| format!("question: {e}"))?;
            if i == 0 {
                self.question = Some(question);
            }
            pos = end;
        }
        for i in 0..h.ancount {
            let (name, end) = name_at(msg, pos).map_err(|e| format!("answer {}: {e}", i + 1))?;
            let rr = record_at(msg, end).map_err(|e| format!("answer {}: {e}", i + 1))?;
            pos = rr.data_at + rr.data_len;
            if rr.rtype == OPT {
                continue;
            }
            if self.answers.len() == MAX_ANSWERS {
                self.answers_left_out += 1;
                continue;
            }
            self.answers.push(DnsAnswer {
                name,
                rtype: type_name(rr.rtype),
                ttl: rr.ttl,
                data: rdata::present(msg, rr.rtype, rr.data_at, rr.data_len),
            });
        }
        let others = u32::from(h.nscount) + u32::from(h.arcount);
        for i in 0..others {
            let section = if i < u32::from(h.nscount) {
                "authority record"
            } else {
                "additional record"
            };
            let end = skip_name(msg, pos).map_err(|e| format!("{section}: {e}"))?;
            let rr = record_at(msg, end).map_err(|e| format!("{section}: {e}"))?;
            pos = rr.data_at + rr.data_len;
            if rr.rtype == OPT {
                // RFC 6891 section 6.1.3: the TTL's top byte extends the rcode.
                self.rcode = ((rr.ttl >> 24) as u16) << 4 | h.rcode();
            }
        }
        Ok(())
    }
}

/// The question at `pos` and the offset after it.
fn question_at(msg: &[u8], pos: usize) -> Result<(Question, usize), String> {
    let (name, end) = name_at(msg, pos)?;
    let fixed = msg
        .get(end..end + 4)
        .ok_or("the type and class run past the end of the message")?;
    let question = Question {
        name,
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
    };
    Ok((question, end + 4))
}

/// The name at `pos` in presentation form and the offset after it (compression pointers
/// followed; hickory-proto refuses pointers that do not point backwards, so loops end).
pub(crate) fn name_at(msg: &[u8], pos: usize) -> Result<(String, usize), String> {
    let mut decoder = decoder_at(msg, pos)?;
    let name = Name::read(&mut decoder).map_err(|e| e.to_string())?;
    Ok((presentation(&name), decoder.index()))
}

fn decoder_at(msg: &[u8], pos: usize) -> Result<BinDecoder<'_>, String> {
    let at = u16::try_from(pos)
        .ok()
        .filter(|&p| usize::from(p) < msg.len())
        .ok_or("a name runs past the end of the message")?;
    Ok(BinDecoder::new(msg).clone(at))
}

/// "www.example.com", "." for the root; labels escaped as dig escapes them (RFC 1035
/// section 5.1: `\.`, `\\`, and `\DDD` in decimal for bytes outside printable ASCII).
fn presentation(name: &Name) -> String {
    let mut text = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    text.push('\\');
                    text.push(char::from(b));
                }
                0x21..=0x7e => text.push(char::from(b)),
                _ => {
                    let _ = write!(text, "\\{b:03}");
                }
            }
        }
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

/// The type, class, TTL and data length after a record's name (at `pos`).
fn record_at(msg: &[u8], pos: usize) -> Result<Record, String> {
    let fixed = msg
        .get(pos..pos + 10)
        .ok_or("a record's type, class, TTL and length run past the end of the message")?;
    let data_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let data_at = pos + 10;
    if data_at + data_len > msg.len() {
        return Err(format!(
            "a record's data of {data_len} bytes runs {} bytes past the end of the message",
            data_at + data_len - msg.len()
        ));
    }
    Ok(Record {
        rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        data_at,
        data_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testing::{answer, captured, hex, query, wire_name};

    /// The answer of captured flow `n`.
    fn real_answer(n: u32) -> Message {
        let c = captured()
            .into_iter()
            .find(|c| c.flow == n && c.dir == crate::stream::Dir::ToClient)
            .unwrap();
        let msg = if c.transport == "tcp" {
            &c.bytes[2..]
        } else {
            &c.bytes[..]
        };
        parse(msg).unwrap()
    }

    fn shown(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .map(|a| format!("{} {} {} {}", a.name, a.rtype, a.ttl, a.data))
            .collect()
    }

    #[test]
    fn real_answers_of_every_common_type() {
        let expect: &[(u32, &str, &[&str])] = &[
            (2, "www.your.test", &["www.your.test A 0 192.0.2.10"]),
            (3, "www.your.test", &["www.your.test AAAA 0 2001:db8::10"]),
            (
                4,
                "alias.your.test",
                &[
                    "alias.your.test CNAME 0 www.your.test",
                    "www.your.test A 0 192.0.2.10",
                ],
            ),
            (5, "your.test", &["your.test MX 0 10 mail.your.test"]),
            (
                6,
                "txt.your.test",
                &[r#"txt.your.test TXT 0 "v=spf1 -all" "second \"string\"""#],
            ),
            (
                7,
                "_sip._udp.your.test",
                &["_sip._udp.your.test SRV 0 1 2 5060 sip.your.test"],
            ),
            (
                8,
                "10.2.0.192.in-addr.arpa",
                &["10.2.0.192.in-addr.arpa PTR 0 www.your.test"],
            ),
            (9, "missing.your.test", &[]),
            (
                10,
                "odd.your.test",
                &[r"odd.your.test TYPE65280 0 \# 3 0A0B0C"],
            ),
            (11, "ca.your.test", &[r#"ca.your.test CAA 0 0 issue "ca""#]),
            (14, "your.test", &["your.test MX 0 10 mail.your.test"]),
        ];
        for &(flow, name, answers) in expect {
            let m = real_answer(flow);
            assert_eq!(m.error, None, "flow {flow}");
            assert_eq!(m.question.as_ref().unwrap().name, name);
            assert_eq!(shown(&m), answers, "flow {flow}");
            assert_eq!(m.rcode, if name.starts_with("missing") { 3 } else { 0 });
        }
        let q = real_answer(10).question.unwrap();
        assert_eq!((q.qtype, q.qclass), (65280, 1));
    }

    #[test]
    fn the_opt_record_extends_the_rcode_and_is_not_an_answer() {
        let mut m = answer(1, "a.test", 1, 0, &[[192, 0, 2, 1]]);
        m[11] = 1; // one additional record: OPT with extended rcode 1 (BADVERS = 16)
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 1, 0, 0, 0, 0, 0]);
        let parsed = parse(&m).unwrap();
        assert_eq!(parsed.rcode, 16);
        assert_eq!(parsed.answers.len(), 1);
        assert_eq!(parsed.error, None);
    }

    #[test]
    fn the_root_and_odd_labels_in_presentation_form() {
        let m = parse(&query(1, "", 2)).unwrap();
        assert_eq!(m.question.unwrap().name, ".");
        let mut odd = query(1, "x", 1);
        odd.splice(12..15, b"\x03a.b\x00".iter().copied());
        assert_eq!(parse(&odd).unwrap().question.unwrap().name, "a\\.b");
        odd.splice(12..17, b"\x03a b\x00".iter().copied());
        assert_eq!(parse(&odd).unwrap().question.unwrap().name, "a\\032b");
        odd.splice(12..17, b"\x03\xffb\\\x00".iter().copied());
        assert_eq!(parse(&odd).unwrap().question.unwrap().name, "\\255b\\\\");
        let mut upper = query(1, "WWW.Example.test", 1);
        upper[2] = 0;
        assert_eq!(
            parse(&upper).unwrap().question.unwrap().name,
            "WWW.Example.test"
        );
    }

    #[test]
    fn a_truncated_message_keeps_what_was_read_and_says_why() {
        let full = answer(9, "a.test", 1, 0, &[[192, 0, 2, 1], [192, 0, 2, 2]]);
        let m = parse(&full[..full.len() - 2]).unwrap();
        assert_eq!(m.answers.len(), 1);
        let e = m.error.unwrap();
        assert!(
            e.starts_with("answer 2: a record's data of 4 bytes runs 2 bytes past"),
            "{e}"
        );
        let m = parse(&full[..14]).unwrap();
        assert_eq!(m.question, None);
        assert!(m.error.unwrap().starts_with("question:"));
        assert_eq!(
            parse(&full[..11]).unwrap_err(),
            "11 bytes, fewer than the 12 of a header"
        );
        // More answers than kept.
        let many = answer(9, "a.test", 1, 0, &[[10, 0, 0, 1]; 70]);
        let m = parse(&many).unwrap();
        assert_eq!((m.answers.len(), m.answers_left_out), (MAX_ANSWERS, 6));
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_errors_not_hangs() {
        // The answer's name points at itself.
        let mut m = answer(1, "a.test", 1, 0, &[]);
        m[7] = 1;
        let at = m.len();
        m.extend_from_slice(&[0xc0, at as u8, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&m).unwrap().error.unwrap().starts_with("answer 1:"));
        // Two names pointing at each other.
        let mut m = answer(1, "a.test", 1, 0, &[]);
        m[7] = 1;
        let at = m.len();
        m.extend_from_slice(&[0x01, b'x', 0xc0, at as u8 + 4, 0x01, b'y', 0xc0, at as u8]);
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&m).unwrap().error.is_some());
        // A CNAME whose data points forward, past the end.
        let mut m = answer(1, "a.test", 5, 0, &[]);
        m[7] = 1;
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, 0xff]);
        let parsed = parse(&m).unwrap();
        assert_eq!(parsed.error, None);
        assert_eq!(parsed.answers[0].data, r"\# 2 C0FF");
    }

    #[test]
    fn names_too_long_or_with_reserved_labels() {
        let mut m = query(1, "a", 1);
        m.splice(
            12..15,
            std::iter::repeat_n(
                b"\x3faaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
                5,
            )
            .flatten(),
        );
        assert!(parse(&m).unwrap().error.is_some());
        let mut m = query(1, "a", 1);
        m[12] = 0x41;
        assert!(parse(&m).unwrap().error.is_some());
        assert_eq!(wire_name("a.b"), b"\x01a\x01b\x00");
        assert_eq!(hex("00ff"), [0, 255]);
    }
}
