//! One request and what is known of its response, until it is reported.

use crate::roundtrip::HttpExchange;
use crate::stream::{Detail, Exchange, Meta};

/// Bytes of a body (or of a stream between messages) that were never seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Missing {
    pub bytes: u64,
    /// Some bytes were lost and how many is not known.
    pub unknown: bool,
}

impl Missing {
    pub fn add(&mut self, len: Option<u64>) {
        match len {
            Some(n) => self.bytes = self.bytes.saturating_add(n),
            None => self.unknown = true,
        }
    }

    pub fn any(&self) -> bool {
        self.bytes > 0 || self.unknown
    }

    /// "412 bytes of the response body were not captured".
    pub fn note(&self, what: &str) -> Option<String> {
        match (self.bytes, self.unknown) {
            (0, false) => None,
            (0, true) => Some(format!("part of the {what} was not captured")),
            (1, false) => Some(format!("1 byte of the {what} was not captured")),
            (n, false) => Some(format!("{n} bytes of the {what} were not captured")),
            (n, true) => Some(format!("{n} bytes or more of the {what} were not captured")),
        }
    }
}

/// What a transaction stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A request that was seen.
    Request,
    /// A request that was not captured (before a capture began mid-connection, or in a
    /// hole), kept so that its response pairs with it and not with the next request.
    Unseen,
    /// A request already reported (timed out, or pushed out by too many in flight): its
    /// response is read to keep pairing right, and not reported.
    Reported,
}

/// A request and its response as far as seen.
#[derive(Debug)]
pub(super) struct Txn {
    pub id: u64,
    pub kind: Kind,
    pub start: Meta,
    pub end: Meta,
    pub http: HttpExchange,
    pub notes: Vec<String>,
    pub complete: bool,
    /// The request was HEAD: its response has no body whatever its headers say.
    pub head: bool,
    /// The request was CONNECT: a 2xx response turns the connection into a tunnel.
    pub connect: bool,
    /// The whole request (head and body) was read.
    pub request_done: bool,
    /// The last interim (1xx) status seen while the final one is awaited.
    pub interim: Option<u16>,
    pub missing_request: Missing,
    pub missing_response: Missing,
}

impl Txn {
    pub fn new(id: u64, kind: Kind, start: Meta) -> Self {
        Txn {
            id,
            kind,
            start,
            end: start,
            http: HttpExchange::default(),
            notes: Vec::new(),
            complete: kind == Kind::Request,
            head: false,
            connect: false,
            request_done: true,
            interim: None,
            missing_request: Missing::default(),
            missing_response: Missing::default(),
        }
    }

    /// Marks the transaction incomplete with a note saying why.
    pub fn cut(&mut self, note: impl Into<String>) {
        self.complete = false;
        self.notes.push(note.into());
    }

    /// The report, with notes on whatever was not captured. Takes the contents out, so
    /// that a transaction reported early (timed out) keeps only what pairing needs.
    pub fn take_exchange(&mut self) -> Exchange {
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(self.missing_request.note("request body"));
        notes.extend(self.missing_response.note("response body"));
        if self.http.status.is_none() {
            if let Some(code) = self.interim {
                notes.push(format!("only an interim {code} response was seen"));
            }
        }
        let complete = self.complete
            && self.http.status.is_some()
            && !self.missing_request.any()
            && !self.missing_response.any();
        self.missing_request = Missing::default();
        self.missing_response = Missing::default();
        Exchange {
            start: self.start,
            end: self.end,
            complete,
            notes,
            detail: Detail::Http(std::mem::take(&mut self.http)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_notes() {
        let mut m = Missing::default();
        assert_eq!(m.note("response body"), None);
        m.add(Some(412));
        assert_eq!(
            m.note("response body").as_deref(),
            Some("412 bytes of the response body were not captured")
        );
        m.add(None);
        assert!(m.note("x").unwrap().contains("or more"));
    }

    #[test]
    fn no_status_is_not_complete() {
        let mut t = Txn::new(1, Kind::Request, Meta::default());
        t.interim = Some(100);
        let e = t.take_exchange();
        assert!(!e.complete);
        assert_eq!(e.notes, ["only an interim 100 response was seen"]);
    }
}
