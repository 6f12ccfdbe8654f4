//! One UDP 5-tuple: its datagrams go to a [`DatagramParser`] once one is chosen (by a rule,
//! by content, or by a well-known port); a 5-tuple none of them fits after a few datagrams
//! is ignored.

use crate::dispatch::{self, Ctx};
use crate::stream::{CloseReason, DatagramParser, Dir, Exchange, Meta};

/// Datagrams looked at before a 5-tuple is taken for none of the protocols.
const GIVE_UP_DATAGRAMS: u8 = 4;

enum Sink {
    Recognising(u8),
    Parser(Box<dyn DatagramParser>),
    Ignored,
}

/// One UDP 5-tuple.
pub struct UdpFlow {
    sink: Sink,
    client: Option<usize>,
}

impl UdpFlow {
    /// A 5-tuple first seen now.
    pub fn new(ctx: &Ctx<'_>) -> UdpFlow {
        UdpFlow {
            sink: if dispatch::datagram_excluded(ctx) {
                Sink::Ignored
            } else {
                Sink::Recognising(0)
            },
            client: None,
        }
    }

    /// The client's side: as learnt, else the side with the higher port.
    pub fn client(&self, ports: [u16; 2]) -> usize {
        self.client
            .unwrap_or(if ports[0] > ports[1] { 0 } else { 1 })
    }

    /// Whether a parser decodes this 5-tuple.
    pub fn decoded(&self) -> bool {
        matches!(self.sink, Sink::Parser(_))
    }

    /// Bytes the parser holds.
    pub fn buffered(&self) -> usize {
        match &self.sink {
            Sink::Parser(p) => p.buffered(),
            _ => 0,
        }
    }

    /// One datagram `side` sent.
    pub fn datagram(
        &mut self,
        side: usize,
        payload: &[u8],
        meta: Meta,
        ctx: &Ctx<'_>,
        out: &mut Vec<Exchange>,
    ) {
        if let Sink::Recognising(tries) = &mut self.sink {
            match dispatch::datagram(ctx, payload, side) {
                Some(choice) => {
                    self.client = Some(choice.client);
                    self.sink = Sink::Parser(choice.parser);
                }
                None if *tries + 1 >= GIVE_UP_DATAGRAMS => self.sink = Sink::Ignored,
                None => *tries += 1,
            }
        }
        if let Sink::Parser(p) = &mut self.sink {
            let dir = if self.client == Some(side) {
                Dir::ToServer
            } else {
                Dir::ToClient
            };
            p.datagram(dir, payload, meta, out);
        }
    }

    /// Whether the 5-tuple can be let go once quiet: nothing pending in its parser, or no
    /// parser at all.
    pub fn settled(&self) -> bool {
        match &self.sink {
            Sink::Parser(p) => p.settled(),
            Sink::Recognising(_) | Sink::Ignored => true,
        }
    }

    /// Time moved on: the parser reports queries that timed out.
    pub fn tick(&mut self, now_ns: i64, out: &mut Vec<Exchange>) {
        if let Sink::Parser(p) = &mut self.sink {
            p.tick(now_ns, out);
        }
    }

    /// The 5-tuple is gone.
    pub fn close(&mut self, reason: CloseReason, meta: Meta, out: &mut Vec<Exchange>) {
        if let Sink::Parser(p) = &mut self.sink {
            p.close(reason, meta, out);
        }
        self.sink = Sink::Ignored;
    }
}
