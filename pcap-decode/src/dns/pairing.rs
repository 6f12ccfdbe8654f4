//! Queries paired with their answers by id within one UDP 5-tuple or TCP connection:
//! several in flight, retransmissions folded into the first query, answers without a query
//! and queries without an answer reported as such, and malformed messages reported a bounded
//! number of times.

use std::collections::VecDeque;

use super::message::{parse, Message, Question};
use super::names::{class_name, flag_names, rcode_name, type_name};
use super::wire::Header;
use crate::roundtrip::DnsExchange;
use crate::stream::{Detail, Exchange, Meta, ParserLimits};

/// Ids answered lately, remembered so that a second answer to a retransmitted query is
/// not reported as an answer without a query.
const RECENT_ANSWERS: usize = 32;

/// Most malformed messages reported per flow; the rest are counted in the last report's
/// neighbours (see [`MalformedBudget`]).
const MAX_MALFORMED_REPORTS: u32 = 16;

/// Most notes one pending query collects.
const MAX_NOTES: usize = 8;

/// A query waiting for its answer.
#[derive(Debug)]
struct Pending {
    id: u16,
    /// The query's packet, and the packet of its last retransmission.
    first: Meta,
    last: Meta,
    question: Question,
    /// The query's header flags, shown when no answer comes.
    bits: u16,
    notes: Vec<String>,
    complete: bool,
}

/// Reports of malformed messages: one per run of malformed messages (a well-formed one
/// starts a new run), at most [`MAX_MALFORMED_REPORTS`] per flow; the next report says how
/// many were not reported.
#[derive(Debug, Default)]
struct MalformedBudget {
    reported: u32,
    in_run: bool,
    unreported: u64,
}

impl MalformedBudget {
    /// Whether to report this one; when yes, how many before it were not reported.
    fn take(&mut self) -> Option<u64> {
        if self.in_run || self.reported >= MAX_MALFORMED_REPORTS {
            self.unreported += 1;
            return None;
        }
        self.reported += 1;
        self.in_run = true;
        Some(std::mem::take(&mut self.unreported))
    }

    fn well_formed(&mut self) {
        self.in_run = false;
    }
}

/// The pairing state of one flow.
#[derive(Debug)]
pub(crate) struct Pairing {
    limits: ParserLimits,
    transport: &'static str,
    pending: VecDeque<Pending>,
    /// (id, time of the answer).
    answered: VecDeque<(u16, i64)>,
    malformed: MalformedBudget,
}

impl Pairing {
    /// `transport` is "udp" or "tcp", as the exchanges say.
    pub fn new(limits: ParserLimits, transport: &'static str) -> Self {
        Pairing {
            limits,
            transport,
            pending: VecDeque::new(),
            answered: VecDeque::new(),
            malformed: MalformedBudget::default(),
        }
    }

    /// One whole message (a datagram, or one length-prefixed message over TCP) that came
    /// in the packets from `first` to `meta`.
    pub fn message(&mut self, msg: &[u8], first: Meta, meta: Meta, out: &mut Vec<Exchange>) {
        match parse(msg) {
            Err(reason) => self.malformed(None, malformed_note(&reason), meta, out),
            Ok(m) if m.header.response() => self.answer(m, meta, out),
            Ok(m) => self.query(m, first, meta, out),
        }
    }

    fn query(&mut self, m: Message, first: Meta, meta: Meta, out: &mut Vec<Exchange>) {
        let Some(question) = m.question.clone() else {
            let reason = m.error.as_deref().unwrap_or("a query without a question");
            self.malformed(Some(&m), malformed_note(reason), meta, out);
            return;
        };
        let id = m.header.id;
        if let Some(i) = self.find(id) {
            let p = &mut self.pending[i];
            if same_question(&p.question, &question) {
                p.last = meta;
                add_note(&mut p.notes, "query retransmitted");
                return;
            }
            let old = self.remove(i);
            out.push(self.unanswered(old, "its id was used by another query before an answer"));
        }
        let max = self.limits.max_pending.max(1);
        if self.pending.len() >= max {
            if let Some(old) = self.pending.pop_front() {
                let note =
                    format!("more than {max} queries in flight: reported without its answer");
                out.push(self.unanswered(old, &note));
            }
        }
        let mut notes = Vec::new();
        match &m.error {
            Some(e) => notes.push(malformed_note(e)),
            None => self.malformed.well_formed(),
        }
        self.pending.push_back(Pending {
            id,
            first,
            last: meta,
            question,
            bits: m.header.bits,
            complete: m.error.is_none(),
            notes,
        });
    }

    fn answer(&mut self, m: Message, meta: Meta, out: &mut Vec<Exchange>) {
        let id = m.header.id;
        let Some(i) = self.find(id) else {
            let window = self.limits.response_timeout_ns;
            let duplicate = self
                .answered
                .iter()
                .any(|&(a, t)| a == id && meta.ts_ns.saturating_sub(t) <= window);
            if duplicate {
                return;
            }
            if let Some(e) = &m.error {
                self.malformed(Some(&m), malformed_note(e), meta, out);
                return;
            }
            self.malformed.well_formed();
            self.remember(id, meta);
            let detail = self.detail(id, m.question.as_ref(), Some(&m), m.header.bits);
            out.push(Exchange {
                start: meta,
                end: meta,
                complete: false,
                notes: vec!["query not seen".to_owned()],
                detail,
            });
            return;
        };
        let p = self.remove(i);
        let mut notes = p.notes;
        let mut complete = p.complete;
        match &m.error {
            Some(e) => {
                notes.push(malformed_note(e));
                complete = false;
            }
            None => self.malformed.well_formed(),
        }
        if m.answers_left_out > 0 {
            notes.push(format!("{} more answers not shown", m.answers_left_out));
        }
        if m.question
            .as_ref()
            .is_some_and(|q| !same_question(q, &p.question))
        {
            notes.push("the answer's question differs from the query's".to_owned());
        }
        self.remember(id, meta);
        let detail = self.detail(id, Some(&p.question), Some(&m), m.header.bits);
        out.push(Exchange {
            start: p.first,
            end: meta,
            complete,
            notes,
            detail,
        });
    }

    /// An answer that could not be read whole (cut by a hole, over the buffer limit): the
    /// query it answers, if pending, is reported with `note` and whatever `header` says.
    /// Returns whether such a query was pending.
    pub fn answer_lost(
        &mut self,
        id: u16,
        header: Option<Header>,
        note: &str,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) -> bool {
        let Some(i) = self.find(id) else { return false };
        let p = self.remove(i);
        let mut notes = p.notes;
        notes.push(note.to_owned());
        let mut detail = self.detail(id, Some(&p.question), None, p.bits);
        if let (Some(h), Detail::Dns(dns)) = (header, &mut detail) {
            dns.rcode = rcode_name(h.rcode());
            dns.flags = flag_names(h.bits);
        }
        self.remember(id, meta);
        out.push(Exchange {
            start: p.first,
            end: meta,
            complete: false,
            notes,
            detail,
        });
        true
    }

    /// A message that could not be read (or kept), reported alone with `note` and what was
    /// read of it, within the budget for such reports.
    pub fn malformed(
        &mut self,
        m: Option<&Message>,
        note: String,
        meta: Meta,
        out: &mut Vec<Exchange>,
    ) {
        let Some(unreported) = self.malformed.take() else {
            return;
        };
        let mut notes = vec![note];
        if unreported > 0 {
            notes.push(format!(
                "{unreported} more malformed DNS messages on this flow were not reported"
            ));
        }
        let detail = match m {
            Some(m) => self.detail(
                m.header.id,
                m.question.as_ref(),
                m.header.response().then_some(m),
                m.header.bits,
            ),
            None => self.detail(0, None, None, 0),
        };
        out.push(Exchange {
            start: meta,
            end: meta,
            complete: false,
            notes,
            detail,
        });
    }

    /// Reports the queries that waited longer than the timeout since their last sending.
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        let timeout = self.limits.response_timeout_ns;
        let note = format!("no answer within {}", human(timeout));
        let mut i = 0;
        while i < self.pending.len() {
            if now_ns.saturating_sub(self.pending[i].last.ts_ns) > timeout {
                let p = self.remove(i);
                out.push(self.unanswered(p, &note));
            } else {
                i += 1;
            }
        }
    }

    /// Reports every pending query, with `note` saying why no answer came.
    pub fn close(&mut self, note: &str, out: &mut Vec<Exchange>) {
        while let Some(p) = self.pending.pop_front() {
            out.push(self.unanswered(p, note));
        }
        self.answered.clear();
    }

    /// Adds `note` to every pending query and marks it incomplete.
    pub fn mark_pending(&mut self, note: &str) {
        for p in &mut self.pending {
            add_note(&mut p.notes, note);
            p.complete = false;
        }
    }

    /// Whether no query waits for its answer.
    pub fn nothing_pending(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes held for pending queries and remembered answers.
    pub fn buffered(&self) -> usize {
        let each = std::mem::size_of::<Pending>();
        let text: usize = self
            .pending
            .iter()
            .map(|p| p.question.name.len() + p.notes.iter().map(String::len).sum::<usize>())
            .sum();
        self.pending.len() * each + text + self.answered.len() * std::mem::size_of::<(u16, i64)>()
    }

    fn find(&self, id: u16) -> Option<usize> {
        self.pending.iter().position(|p| p.id == id)
    }

    fn remove(&mut self, i: usize) -> Pending {
        self.pending
            .remove(i)
            .expect("index from find or a bounded loop")
    }

    fn remember(&mut self, id: u16, meta: Meta) {
        if self.answered.len() == RECENT_ANSWERS {
            self.answered.pop_front();
        }
        self.answered.push_back((id, meta.ts_ns));
    }

    fn unanswered(&self, p: Pending, note: &str) -> Exchange {
        let mut notes = p.notes;
        notes.push(note.to_owned());
        Exchange {
            start: p.first,
            end: p.last,
            complete: false,
            notes,
            detail: self.detail(p.id, Some(&p.question), None, p.bits),
        }
    }

    /// The exchange's DNS part: the question, and the answer's code, flags and records
    /// (the query's flags when there is no answer).
    fn detail(&self, id: u16, q: Option<&Question>, reply: Option<&Message>, bits: u16) -> Detail {
        Detail::Dns(DnsExchange {
            id,
            transport: self.transport.to_owned(),
            name: q.map(|q| q.name.clone()).unwrap_or_default(),
            qtype: q.map(|q| type_name(q.qtype)).unwrap_or_default(),
            class: q.map(|q| class_name(q.qclass)).unwrap_or_default(),
            rcode: reply.map(|m| rcode_name(m.rcode)).unwrap_or_default(),
            flags: flag_names(bits),
            answers: reply.map(|m| m.answers.clone()).unwrap_or_default(),
        })
    }
}

/// The note of a message that does not parse.
pub(crate) fn malformed_note(reason: &str) -> String {
    format!("malformed DNS message: {reason}")
}

/// Same name (ignoring case: resolvers randomise it), type and class.
fn same_question(a: &Question, b: &Question) -> bool {
    a.qtype == b.qtype && a.qclass == b.qclass && a.name.eq_ignore_ascii_case(&b.name)
}

fn add_note(notes: &mut Vec<String>, note: &str) {
    if notes.len() < MAX_NOTES && !notes.iter().any(|n| n == note) {
        notes.push(note.to_owned());
    }
}

/// "5 s", "1500 ms".
pub(crate) fn human(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        format!("{} s", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{} ms", ns / 1_000_000)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}
